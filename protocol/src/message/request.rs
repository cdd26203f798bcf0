//! The task request, and the parent step of a child task.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{PROTOCOL_VERSION, StepFailure, StepOutcome, StepResult, StepState, TaskFinished, TaskStatus};
use crate::codes::ErrorCode;

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
    /// The task's input. Must be a JSON object; a request without one is
    /// rejected with [`super::RejectCode::InvalidContext`].
    #[serde(default)]
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

impl TaskRequest {
    /// What makes this request one that no template could take, if
    /// anything: a namespace or name that cannot be a template's, or a
    /// version that is not semver. The rejection's code and reason.
    #[must_use]
    pub fn problem(&self) -> Option<(super::RejectCode, String)> {
        for (what, name) in [("namespace", &self.namespace), ("name", &self.name)] {
            if let Some(problem) = crate::names::name_problem(name) {
                return Some((
                    super::RejectCode::InvalidName,
                    format!("the request's {what} {name:?} {problem}"),
                ));
            }
        }
        if let Some(version) = &self.version
            && let Err(e) = semver::Version::parse(version)
        {
            return Some((
                super::RejectCode::InvalidVersion,
                format!(
                    "the request's version {version:?} is not a semver version ({e}); \
                     give one such as \"1.0.0\", or leave it out for the highest loaded"
                ),
            ));
        }
        None
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RejectCode;

    fn request(namespace: &str, name: &str, version: Option<&str>) -> TaskRequest {
        let mut r = TaskRequest::new(namespace, name, serde_json::json!({}));
        r.version = version.map(str::to_owned);
        r
    }

    #[test]
    fn a_request_names_a_template_that_could_exist() {
        assert_eq!(
            request("microservices", "user_registration", Some("1.0.0")).problem(),
            None
        );
        assert_eq!(
            request("microservices", "user_registration", None).problem(),
            None
        );
    }

    #[test]
    fn a_name_that_cannot_be_a_templates_is_invalid_name() {
        let (code, reason) = request("micro.services", "user_registration", None)
            .problem()
            .unwrap();
        assert_eq!(code, RejectCode::InvalidName);
        assert!(
            reason.contains("namespace \"micro.services\" contains '.'"),
            "{reason}"
        );
        let (code, reason) = request("microservices", "", None).problem().unwrap();
        assert_eq!(code, RejectCode::InvalidName);
        assert!(reason.contains("name \"\" is empty"), "{reason}");
    }

    #[test]
    fn a_version_that_is_not_semver_is_invalid_version() {
        let (code, reason) = request("microservices", "user_registration", Some("1.x"))
            .problem()
            .unwrap();
        assert_eq!(code, RejectCode::InvalidVersion);
        assert!(reason.contains("\"1.x\" is not a semver version"), "{reason}");
    }

    #[test]
    fn a_request_without_a_context_reads_with_a_null_one() {
        let r: TaskRequest =
            serde_json::from_str(r#"{"protocol_version":1,"namespace":"n","name":"t"}"#).unwrap();
        assert!(r.context.is_null());
    }
}
