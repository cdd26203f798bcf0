//! Step ready, the coordinator's ask to run one attempt of a step, and step
//! result, the worker's report of how it ended.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use super::PROTOCOL_VERSION;
use crate::codes::ErrorCode;

/// The coordinator asks a worker to run one attempt of one step: published
/// to [`crate::topology::STEPS_EXCHANGE`] with
/// [`crate::topology::step_routing_key`] of its namespace and callable.
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
    /// The step's direct dependencies, by name, as its template lists them.
    /// Left out by coordinators that predate it: read as none.
    #[serde(default)]
    pub dependencies: Vec<String>,
    /// The results the step's message carries, by step name: every
    /// ancestor's, not only its direct dependencies', or those its template's
    /// `results_from` names.
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
pub(super) fn present<'de, D>(deserializer: D) -> Result<Option<Box<RawValue>>, D::Error>
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
    /// For retryable failures: wait this long before the next attempt, in
    /// seconds, instead of the step's backoff (see
    /// [`crate::retry::retry_after`]).
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
