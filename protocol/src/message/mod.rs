//! The JSON messages Tasker sends, and how they are decoded.
//!
//! Every message is a JSON object with a `protocol_version` field equal to
//! [`PROTOCOL_VERSION`]. Timestamps are RFC 3339 strings in UTC. Results and
//! contexts are carried as raw JSON, so the coordinator stores and forwards
//! them without decoding them again.
//!
//! - `request`: the task request, and the parent step of a child task;
//! - `step`: step ready and step result;
//! - `task`: task finished and task rejected, with the task and step states;
//! - `command`: an operator's task command and its reply;
//! - `worker`: a worker's announcement.

mod command;
mod request;
mod step;
mod task;
mod worker;

use serde::{Deserialize, Serialize};

use crate::codes::DeadLetterReason;

pub use command::{CommandReply, TaskAction, TaskCommand};
pub use request::{ParentStep, TaskRequest};
pub use step::{StepFailure, StepOutcome, StepReady, StepResult};
pub use task::{RejectCode, StepReport, StepState, TaskFinished, TaskRejected, TaskStatus};
pub use worker::{ServedNamespace, WorkerAnnouncement};

/// The version of the wire format this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The default size limit of a message, in bytes: what a consumer accepts,
/// and what a producer sends. Every coordinator and worker must use the same
/// limit (`TASKER_MAX_MESSAGE_BYTES`), and RabbitMQ's `max_message_size`
/// must be at least this.
///
/// 1 MiB, because the limit multiplies: a coordinator holds up to its
/// prefetch (256 per input queue) of deliveries in memory, a quorum queue
/// writes every message to its log and, in a cluster, to each replica, and
/// Redis keeps every result for the retention period. A message that does
/// not fit fails its step at once with a clear error; a step names the
/// results it needs with `results_from`, and large data belongs in a store
/// of its own, passed by reference (docs/protocol.md, Large payloads).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Why a message could not be used. Its [`Self::code`] and message go into
/// the dead-letter reason header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The payload is larger than the consumer's limit.
    #[error("payload of {size} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// The payload's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The payload is not JSON.
    #[error("payload is not JSON: {0}")]
    NotJson(String),
    /// The payload is JSON of another protocol version.
    #[error(
        "protocol_version is {}, this process speaks only {PROTOCOL_VERSION}; resend the message as version {PROTOCOL_VERSION} or upgrade the consumer",
        found.map_or_else(|| "not a number".to_owned(), |v| v.to_string())
    )]
    WrongVersion {
        /// What the message says, if anything.
        found: Option<u64>,
    },
    /// The payload is JSON of the right version but the wrong shape.
    #[error("payload does not match the message schema: {0}")]
    Invalid(String),
}

impl DecodeError {
    /// The dead-letter reason of a message that cannot be decoded so.
    #[must_use]
    pub fn reason(&self) -> DeadLetterReason {
        match self {
            Self::TooLarge { .. } => DeadLetterReason::TooLarge,
            Self::NotJson(_) => DeadLetterReason::NotJson,
            Self::WrongVersion { .. } => DeadLetterReason::WrongProtocolVersion,
            Self::Invalid(_) => DeadLetterReason::InvalidMessage,
        }
    }
}

/// A message that carries [`PROTOCOL_VERSION`].
pub trait Versioned {
    /// The version the message says it is.
    fn protocol_version(&self) -> u32;
}

macro_rules! versioned {
    ($($t:ty),*) => {$(
        impl Versioned for $t {
            fn protocol_version(&self) -> u32 { self.protocol_version }
        }
    )*};
}
versioned!(
    TaskRequest,
    StepReady,
    StepResult,
    TaskFinished,
    TaskRejected,
    TaskCommand,
    CommandReply,
    WorkerAnnouncement
);

/// Decodes a message, checking its size and protocol version.
///
/// # Errors
///
/// Returns why the payload cannot be used.
pub fn decode<T>(payload: &[u8], max_bytes: usize) -> Result<T, DecodeError>
where
    T: serde::de::DeserializeOwned + Versioned,
{
    if payload.len() > max_bytes {
        return Err(DecodeError::TooLarge {
            size: payload.len(),
            limit: max_bytes,
        });
    }
    match serde_json::from_slice::<T>(payload) {
        Ok(msg) if msg.protocol_version() == PROTOCOL_VERSION => Ok(msg),
        Ok(msg) => Err(DecodeError::WrongVersion {
            found: Some(u64::from(msg.protocol_version())),
        }),
        Err(e) => Err(classify(payload, &e)),
    }
}

/// Tells a payload that is not JSON, or of another version, from one that
/// merely misses a field.
fn classify(payload: &[u8], error: &serde_json::Error) -> DecodeError {
    #[derive(Deserialize)]
    struct Probe {
        protocol_version: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Probe>(payload) {
        Err(_) if serde_json::from_slice::<serde::de::IgnoredAny>(payload).is_err() => {
            DecodeError::NotJson(error.to_string())
        }
        Ok(Probe {
            protocol_version: Some(v),
        }) if v.as_u64() != Some(u64::from(PROTOCOL_VERSION)) => {
            DecodeError::WrongVersion { found: v.as_u64() }
        }
        _ => DecodeError::Invalid(error.to_string()),
    }
}

/// Encodes a message as JSON.
///
/// # Panics
///
/// Never: every message type serializes to JSON without fail.
#[must_use]
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    serde_json::to_vec(message).expect("Tasker messages always serialize")
}
