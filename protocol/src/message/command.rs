//! An operator's task command, and a coordinator's reply.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::TaskStatus;

/// An operator's command for one task (`tasker retry`, `tasker resolve`):
/// published to [`crate::topology::REQUESTS_EXCHANGE`] with the task's
/// namespace as routing key and type [`crate::topology::message_type::TASK_COMMAND`],
/// so that a coordinator serving the namespace carries it out. It answers
/// the message's `reply_to` with a [`CommandReply`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskCommand {
    /// Always [`PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// The task.
    pub task_id: Uuid,
    /// What to do.
    #[serde(flatten)]
    pub action: TaskAction,
}

/// What a [`TaskCommand`] asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum TaskAction {
    /// Put failed steps (all of them, or only `step`) and the steps they
    /// blocked back to pending, with a fresh budget of attempts, keeping
    /// every completed result; the task runs on. Refused for a task that is
    /// complete or still running.
    Retry {
        /// Only this failed step (and what it blocked).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<String>,
    },
    /// Cancel the task: no step starts any more, the steps running now
    /// finish, and the task ends `cancelled`.
    Cancel,
    /// Complete a failed step by hand with `result`; the steps it blocked
    /// then run.
    Resolve {
        /// The failed step.
        step: String,
        /// Its result, as if its handler had returned it.
        result: serde_json::Value,
    },
}

/// A coordinator's answer to a [`TaskCommand`], sent to its `reply_to`
/// with type [`crate::topology::message_type::COMMAND_REPLY`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommandReply {
    /// Always [`PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// The task.
    pub task_id: Uuid,
    /// Whether the command was carried out.
    pub accepted: bool,
    /// What happened, or why not.
    pub message: String,
    /// The steps published because of it.
    #[serde(default)]
    pub started: Vec<String>,
    /// The task's status afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TaskStatus>,
}
