//! The JSON messages Tasker sends, and how they are decoded.
//!
//! Every message is a JSON object with a `protocol_version` field equal to
//! [`PROTOCOL_VERSION`]. Timestamps are RFC 3339 strings in UTC. Results and
//! contexts are carried as raw JSON, so the coordinator stores and forwards
//! them without decoding them again.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::codes::{DeadLetterReason, ErrorCode};

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

/// A client asks for a task: published to [`crate::topology::REQUESTS_EXCHANGE`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRequest {
    /// Always [`PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// Chosen by the client, unique per request. A request published twice
    /// with the same id creates one task. When absent, the coordinator makes
    /// one up, and a duplicate publish creates a second task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Uuid>,
    /// The template's namespace.
    pub namespace: String,
    /// The template's name.
    pub name: String,
    /// A semver version; the highest loaded version when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The task's input. Must be a JSON object.
    pub context: serde_json::Value,
    /// Requests with the same key (in the same namespace and name) create
    /// one task; a later request gets the existing task's outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Set when a step of another task asks for this one as its child: the
    /// step completes with this task's outcome. See [`ParentStep`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentStep>,
}

/// The step that is waiting for a child task: one attempt of one step of
/// another task, possibly of another namespace.
///
/// When the child finishes, its coordinator publishes a [`StepResult`] for
/// that attempt to [`crate::topology::EVENTS_EXCHANGE`] with routing key
/// `step.result.<parent namespace>`, made by [`ParentStep::result_of`]: the
/// parent's coordinator takes it as it takes a worker's. A request that is
/// rejected fails the parent step the same way, with
/// [`ParentStep::rejected`].
///
/// A child is requested with an idempotency key of the parent task and step
/// ([`ParentStep::idempotency_key`]), so every attempt of the parent step
/// finds the same child: a redelivery or a retry of the step never starts a
/// second one. A request for a child that exists moves its report to the
/// new attempt, and a child that has finished reports again at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentStep {
    /// The parent task.
    pub task_id: Uuid,
    /// The parent template's namespace.
    pub namespace: String,
    /// The parent template's name.
    pub name: String,
    /// The parent template's version.
    pub version: String,
    /// The waiting step.
    pub step: String,
    /// The waiting attempt.
    pub attempt: u32,
}

impl ParentStep {
    /// The idempotency key of the child task requested by this step: the
    /// same for every attempt and every delivery of the step.
    #[must_use]
    pub fn idempotency_key(&self) -> String {
        format!("child-of:{}:{}", self.task_id, self.step)
    }

    /// The result the parent step gets when its child has finished.
    ///
    /// A complete child completes the step with a JSON object holding the
    /// child's `task_id`, `namespace`, `name`, `version` and `results`, the
    /// result of each of its steps by name. A failed or cancelled child
    /// fails the step permanently, naming the child and its failed step.
    #[must_use]
    pub fn result_of(&self, child: &TaskFinished) -> StepResult {
        let outcome = match child.status {
            TaskStatus::Complete => {
                let results: serde_json::Map<String, serde_json::Value> = child
                    .steps
                    .iter()
                    .filter_map(|s| {
                        let value = serde_json::from_str(s.result.as_ref()?.get()).ok()?;
                        Some((s.name.clone(), value))
                    })
                    .collect();
                let result = serde_json::json!({
                    "task_id": child.task_id,
                    "namespace": child.namespace,
                    "name": child.name,
                    "version": child.version,
                    "results": results,
                });
                StepOutcome::Completed {
                    result: serde_json::value::to_raw_value(&result).expect("JSON always encodes"),
                }
            }
            status => {
                let failed = child
                    .steps
                    .iter()
                    .find(|s| s.state == StepState::Failed)
                    .map(|s| match &s.error {
                        Some(e) => format!(" at {}: {}: {}", s.name, e.code, e.message),
                        None => format!(" at {}", s.name),
                    })
                    .unwrap_or_default();
                let (code, verb) = if status == TaskStatus::Cancelled {
                    (ErrorCode::ChildTaskCancelled, "was cancelled")
                } else {
                    (ErrorCode::ChildTaskFailed, "failed")
                };
                StepOutcome::Failed {
                    error: StepFailure::of(
                        code,
                        format!(
                            "child task {}/{} {} {verb}{failed}; `tasker retry {}` it, then retry this task",
                            child.namespace, child.name, child.task_id, child.task_id
                        ),
                    ),
                }
            }
        };
        self.result(child.created_at, child.finished_at, outcome)
    }

    /// The result the parent step gets when the result its child's report
    /// makes is `size` bytes, over the `limit` a message may be.
    #[must_use]
    pub fn result_too_large(&self, child: &TaskFinished, size: usize, limit: usize) -> StepResult {
        let outcome = StepOutcome::Failed {
            error: StepFailure::of(
                ErrorCode::ResultTooLarge,
                format!(
                    "the results of child task {}/{} {} make a step result of {size} bytes, over the limit of {limit} bytes; \
                     have the child return less (store large data elsewhere and return a reference to it), or raise the \
                     limit (TASKER_MAX_MESSAGE_BYTES) on every coordinator and worker",
                    child.namespace, child.name, child.task_id
                ),
            ),
        };
        self.result(child.created_at, child.finished_at, outcome)
    }

    /// The result the parent step gets when its child's request is refused.
    #[must_use]
    pub fn rejected(&self, namespace: &str, name: &str, reason: &str) -> StepResult {
        let now = Utc::now();
        let outcome = StepOutcome::Failed {
            error: StepFailure::of(
                ErrorCode::ChildTaskRejected,
                format!("the child task {namespace}/{name} was refused: {reason}"),
            ),
        };
        self.result(now, now, outcome)
    }

    fn result(
        &self,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
        outcome: StepOutcome,
    ) -> StepResult {
        StepResult {
            protocol_version: PROTOCOL_VERSION,
            task_id: self.task_id,
            namespace: self.namespace.clone(),
            task_name: self.name.clone(),
            task_version: self.version.clone(),
            step: self.step.clone(),
            attempt: self.attempt,
            started_at,
            finished_at,
            outcome,
        }
    }
}

/// UUID namespace for task ids derived from requests.
const TASK_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6b1f_0c52_3e0a_4c8e_9d43_7a52_1f0e_b7c1);

impl TaskRequest {
    /// A request for the highest version of `namespace/name`.
    #[must_use]
    pub fn new(namespace: &str, name: &str, context: serde_json::Value) -> Self {
        Self {
            protocol_version: PROTOCOL_VERSION,
            request_id: Some(Uuid::new_v4()),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            version: None,
            context,
            idempotency_key: None,
            parent: None,
        }
    }

    /// The id of the task this request creates, when it can be known before
    /// the coordinator sees it: derived from the idempotency key when there
    /// is one, else from the request id. Both the client and the coordinator
    /// use this, so the client can wait for the task it asked for.
    #[must_use]
    pub fn task_id(&self) -> Option<Uuid> {
        match (&self.idempotency_key, &self.request_id) {
            (Some(key), _) => {
                let name = format!("{}/{}/{}", self.namespace, self.name, key);
                Some(Uuid::new_v5(&TASK_ID_NAMESPACE, name.as_bytes()))
            }
            (None, Some(id)) => Some(*id),
            (None, None) => None,
        }
    }
}

/// The coordinator asks a worker to run one attempt of one step: published
/// to [`crate::topology::STEPS_EXCHANGE`] with the namespace as routing key.
///
/// It carries everything the handler may read, so a worker needs no access
/// to the coordinator's store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepReady {
    /// Always [`PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// The task this step belongs to.
    pub task_id: Uuid,
    /// The template's namespace.
    pub namespace: String,
    /// The template's name.
    pub task_name: String,
    /// The template's version.
    pub task_version: String,
    /// The step's name.
    pub step: String,
    /// The handler to run, as named in the template.
    pub callable: String,
    /// This attempt, counting from 1.
    pub attempt: u32,
    /// The step's `max_attempts`.
    pub max_attempts: u32,
    /// The step's `timeout_seconds`, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
    /// The task's context: the request's input, a JSON object.
    pub context: Box<RawValue>,
    /// The step's `handler.initialization` map.
    pub initialization: serde_json::Map<String, serde_json::Value>,
    /// The result of every ancestor of the step, not only its parents, by step name.
    pub dependency_results: BTreeMap<String, Box<RawValue>>,
}

impl StepReady {
    /// A key that is the same for every attempt and every delivery of this
    /// step of this task. Handlers pass it to the services they call so that
    /// a repeated call has no second effect.
    #[must_use]
    pub fn idempotency_key(&self) -> String {
        format!("{}:{}", self.task_id, self.step)
    }

    /// The result of this attempt: it echoes the task, the template, the
    /// step and the attempt, as the protocol requires.
    #[must_use]
    pub fn result(
        &self,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
        outcome: StepOutcome,
    ) -> StepResult {
        StepResult {
            protocol_version: PROTOCOL_VERSION,
            task_id: self.task_id,
            namespace: self.namespace.clone(),
            task_name: self.task_name.clone(),
            task_version: self.task_version.clone(),
            step: self.step.clone(),
            attempt: self.attempt,
            started_at,
            finished_at,
            outcome,
        }
    }
}

/// A worker reports how one attempt ended: published to
/// [`crate::topology::EVENTS_EXCHANGE`] with routing key
/// `step.result.<namespace>`.
// Decoded through `StepResultWire`: serde buffers flattened and internally
// tagged content, and a buffered `RawValue` cannot be decoded, so the derived
// decoder refused every `completed` result.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "StepResultWire")]
pub struct StepResult {
    /// Always [`PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// The task.
    pub task_id: Uuid,
    /// The template's namespace, echoed from the step-ready message.
    pub namespace: String,
    /// The template's name, echoed from the step-ready message.
    pub task_name: String,
    /// The template's version, echoed from the step-ready message.
    pub task_version: String,
    /// The step's name.
    pub step: String,
    /// The attempt this result is for, as the step-ready message gave it.
    pub attempt: u32,
    /// When the handler started.
    pub started_at: DateTime<Utc>,
    /// When the handler ended.
    pub finished_at: DateTime<Utc>,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: StepOutcome,
}

/// How an attempt ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case", try_from = "OutcomeWire")]
pub enum StepOutcome {
    /// The handler succeeded, with this JSON result.
    Completed {
        /// The handler's result; any JSON value.
        result: Box<RawValue>,
    },
    /// The handler failed.
    Failed {
        /// Why.
        error: StepFailure,
    },
    /// Not an end: the handler started a child task, whose outcome will
    /// be this attempt's result. The step holds no worker meanwhile, and
    /// no lease: the child has its own.
    WaitingForChild {
        /// The child task.
        child_task_id: Uuid,
    },
}

/// The `status` field of a step result.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum OutcomeStatus {
    Completed,
    Failed,
    WaitingForChild,
}

/// [`StepOutcome`] as it is decoded: plain fields, so that `result` is read
/// straight from the JSON text.
#[derive(Deserialize)]
struct OutcomeWire {
    status: OutcomeStatus,
    #[serde(default, deserialize_with = "present")]
    result: Option<Box<RawValue>>,
    #[serde(default)]
    error: Option<StepFailure>,
    #[serde(default)]
    child_task_id: Option<Uuid>,
}

impl TryFrom<OutcomeWire> for StepOutcome {
    type Error = String;

    fn try_from(wire: OutcomeWire) -> Result<Self, Self::Error> {
        if let OutcomeStatus::WaitingForChild = wire.status {
            return match wire.child_task_id {
                Some(child_task_id) => Ok(Self::WaitingForChild { child_task_id }),
                None => Err(
                    "status is \"waiting_for_child\" but there is no `child_task_id`; send the id of the child task".to_owned(),
                ),
            };
        }
        match (wire.status, wire.result, wire.error) {
            (OutcomeStatus::Completed, Some(result), _) => Ok(Self::Completed { result }),
            (OutcomeStatus::Completed, None, _) => {
                Err("status is \"completed\" but there is no `result`; send the handler's result, or null".to_owned())
            }
            (OutcomeStatus::Failed, _, Some(error)) => Ok(Self::Failed { error }),
            (OutcomeStatus::Failed, _, None) => Err(
                "status is \"failed\" but there is no `error`; send an object with `retryable`, `code` and `message`"
                    .to_owned(),
            ),
            (OutcomeStatus::WaitingForChild, ..) => unreachable!("handled above"),
        }
    }
}

/// [`StepResult`] as it is decoded; see [`OutcomeWire`].
#[derive(Deserialize)]
struct StepResultWire {
    protocol_version: u32,
    task_id: Uuid,
    namespace: String,
    task_name: String,
    task_version: String,
    step: String,
    attempt: u32,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    status: OutcomeStatus,
    #[serde(default, deserialize_with = "present")]
    result: Option<Box<RawValue>>,
    #[serde(default)]
    error: Option<StepFailure>,
    #[serde(default)]
    child_task_id: Option<Uuid>,
}

impl TryFrom<StepResultWire> for StepResult {
    type Error = String;

    fn try_from(wire: StepResultWire) -> Result<Self, Self::Error> {
        let outcome = StepOutcome::try_from(OutcomeWire {
            status: wire.status,
            result: wire.result,
            error: wire.error,
            child_task_id: wire.child_task_id,
        })?;
        Ok(Self {
            protocol_version: wire.protocol_version,
            task_id: wire.task_id,
            namespace: wire.namespace,
            task_name: wire.task_name,
            task_version: wire.task_version,
            step: wire.step,
            attempt: wire.attempt,
            started_at: wire.started_at,
            finished_at: wire.finished_at,
            outcome,
        })
    }
}

/// Reads a field that is present as `Some`, even when it is JSON `null`:
/// `null` is a valid handler result, and must survive a round trip.
fn present<'de, D>(deserializer: D) -> Result<Option<Box<RawValue>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Box::<RawValue>::deserialize(deserializer).map(Some)
}

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepFailure {
    /// Whether trying again may help.
    pub retryable: bool,
    /// A short, stable code such as `INVALID_EMAIL` or `timeout`.
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// For retryable failures: wait at least this long before the next
    /// attempt, in seconds, instead of the step's backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<f64>,
}

impl StepFailure {
    /// A failure that Tasker reports with one of its own codes, retryable
    /// as the code says.
    #[must_use]
    pub fn of(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            retryable: code.is_retryable(),
            code: code.into(),
            message: message.into(),
            retry_after_seconds: None,
        }
    }
}

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

/// Why a request was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    /// No template has that namespace and name.
    UnknownTemplate,
    /// The template exists, but not in that version.
    UnknownVersion,
    /// The context is not a JSON object.
    InvalidContext,
    /// The message is not a task request this coordinator can read.
    Undecodable,
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
        }
    }
}

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
    CommandReply
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
