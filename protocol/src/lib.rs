//! Tasker's wire contract, with no I/O.
//!
//! Everything two Tasker processes must agree on lives here, so that a worker
//! or a client in another language can be written from this crate and
//! `docs/protocol.md` alone:
//!
//! - [`codes`]: the error codes and dead-letter reasons Tasker itself
//!   writes, as enums;
//! - [`topology`]: the names of exchanges, queues and routing keys, and the
//!   AMQP headers every message carries;
//! - [`message`]: the JSON messages (task request, step ready, step result,
//!   task finished, task rejected, task command, worker announcement), each
//!   stamped with [`PROTOCOL_VERSION`];
//! - [`template`]: the YAML task-template schema, its defaults, and its
//!   validation, with errors that name the file, the line and the fix;
//! - [`dag`]: the step graph of a template (parents, children, ancestors,
//!   descendants) computed once at load time;
//! - [`retry`]: the retry policy as data, and the backoff schedule it yields;
//! - [`registry`]: templates keyed by (namespace, name, version);
//! - [`names`]: which names (namespaces, templates, steps, services) can
//!   become part of a queue name or a routing key.

#![warn(missing_docs)]

pub mod codes;
pub mod dag;
pub mod message;
pub mod registry;
pub mod retry;
pub mod template;
pub mod topology;

pub mod names;

pub use codes::{DeadLetterReason, ErrorCode};
pub use dag::Dag;
pub use message::{
    CommandReply, DecodeError, PROTOCOL_VERSION, ParentStep, RejectCode, ServedNamespace, StepFailure,
    StepOutcome, StepReady, StepReport, StepResult, StepState, TaskAction, TaskCommand, TaskFinished,
    TaskRejected, TaskRequest, TaskStatus, WorkerAnnouncement,
};
pub use registry::{LookupError, TemplateRegistry};
pub use retry::{Backoff, RetryPolicy};
pub use template::{StepTemplate, TaskTemplate, TemplateError};
