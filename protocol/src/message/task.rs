//! Task finished and task rejected, the coordinator's answers about a task,
//! with the states of a task and of its steps.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use super::step::present;
use super::{ParentStep, StepFailure};

/// The state of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Steps are still running or waiting.
    Running,
    /// Every step completed.
    Complete,
    /// At least one step failed; the steps that needed it were blocked.
    Failed,
    /// An operator cancelled it: no step started after that, the steps
    /// then running finished, and the rest were cancelled.
    Cancelled,
}

/// The state of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Waiting for its dependencies.
    Pending,
    /// Published to its queue; a worker may be running it.
    Enqueued,
    /// Failed retryably; waiting for its backoff before the next attempt.
    WaitingRetry,
    /// Finished with a result.
    Completed,
    /// Failed permanently, or ran out of attempts.
    Failed,
    /// Will never run, because a step it depends on failed.
    Blocked,
    /// Will never run, because the task was cancelled.
    Cancelled,
}

impl TaskStatus {
    /// Every status.
    pub const ALL: [Self; 4] = [Self::Running, Self::Complete, Self::Failed, Self::Cancelled];

    /// The status as the wire, the store and the CLI spell it, e.g. `complete`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Complete => "complete",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The status spelled `name`, as [`Self::as_str`] spells it.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl StepState {
    /// Every state.
    pub const ALL: [Self; 7] = [
        Self::Pending,
        Self::Enqueued,
        Self::WaitingRetry,
        Self::Completed,
        Self::Failed,
        Self::Blocked,
        Self::Cancelled,
    ];

    /// The state as the wire, the store and the CLI spell it, e.g.
    /// `waiting_retry`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Enqueued => "enqueued",
            Self::WaitingRetry => "waiting_retry",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Blocked => "blocked",
            Self::Cancelled => "cancelled",
        }
    }

    /// The state spelled `name`, as [`Self::as_str`] spells it.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether the step will change no more.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        match self {
            Self::Completed | Self::Failed | Self::Blocked | Self::Cancelled => true,
            Self::Pending | Self::Enqueued | Self::WaitingRetry => false,
        }
    }
}

/// One step in a task report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepReport {
    /// The step's name.
    pub name: String,
    /// Where it stands.
    pub state: StepState,
    /// How many attempts were started.
    pub attempts: u32,
    /// When its last attempt started, as the worker reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When its last attempt ended, as the worker reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// The result, for a completed step.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub result: Option<Box<RawValue>>,
    /// The last error, for a step that failed at least once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<StepFailure>,
    /// The child task the step started, for a step whose handler asked for
    /// one: while it runs the step stays `enqueued`, and its result is the
    /// child's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_task_id: Option<Uuid>,
    /// For an `enqueued` step that no service serves yet, its callable: the
    /// step waits for a worker that declares it, and has spent no attempt.
    /// Only in `tasker status`; never in a task-finished message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for_worker: Option<String>,
}

/// The coordinator reports a task's final state: published to
/// [`crate::topology::EVENTS_EXCHANGE`] with routing key
/// `task.finished.<namespace>.<name>`, and to the request's `reply_to`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskFinished {
    /// Always [`PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// The task.
    pub task_id: Uuid,
    /// The template's namespace.
    pub namespace: String,
    /// The template's name.
    pub name: String,
    /// The template's version.
    pub version: String,
    /// `complete` or `failed`.
    pub status: TaskStatus,
    /// When the coordinator accepted the request.
    pub created_at: DateTime<Utc>,
    /// When the last step ended.
    pub finished_at: DateTime<Utc>,
    /// Every step, in template order.
    pub steps: Vec<StepReport>,
    /// For a child task, the step of the parent task that waits for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentStep>,
    /// The steps' results are left out: with them, the message would be
    /// over the size limit. `tasker status` shows them.
    #[serde(default, skip_serializing_if = "is_false")]
    pub results_omitted: bool,
    /// In the copy sent to a requester's `reply_to`, the id of that
    /// requester's request, if it had one: a client that shares one reply
    /// queue among its requests matches replies by it. The copy published
    /// to the events exchange has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Uuid>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The coordinator refused a task request: published to
/// [`crate::topology::EVENTS_EXCHANGE`] with routing key `task.rejected`,
/// and to the request's `reply_to`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRejected {
    /// Always [`PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// The request's id, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Uuid>,
    /// The namespace asked for, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The template name asked for, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A stable code: see [`RejectCode`].
    pub code: RejectCode,
    /// What was wrong and what to do.
    pub reason: String,
}

/// Why a request was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    /// No template has that namespace and name.
    UnknownTemplate,
    /// The template exists, but not in that version.
    UnknownVersion,
    /// The context is missing, null, or not a JSON object.
    InvalidContext,
    /// The message is not a task request this coordinator can read: not
    /// JSON, too large, or a field missing or of the wrong type.
    Undecodable,
    /// The request is of another protocol version than the coordinator's.
    UnsupportedVersion,
    /// The namespace or name cannot be a template's (see
    /// [`crate::names::name_problem`]).
    InvalidName,
    /// The version asked for is not a semver version.
    InvalidVersion,
    /// The request was published with a routing key other than its
    /// namespace.
    NamespaceMismatch,
    /// A task with the request's idempotency key exists, with another
    /// context. The existing task is left as it is.
    IdempotencyConflict,
}

impl RejectCode {
    /// The code as the wire format spells it, e.g. `unknown_template`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownTemplate => "unknown_template",
            Self::UnknownVersion => "unknown_version",
            Self::InvalidContext => "invalid_context",
            Self::Undecodable => "undecodable",
            Self::UnsupportedVersion => "unsupported_version",
            Self::InvalidName => "invalid_name",
            Self::InvalidVersion => "invalid_version",
            Self::NamespaceMismatch => "namespace_mismatch",
            Self::IdempotencyConflict => "idempotency_conflict",
        }
    }
}
