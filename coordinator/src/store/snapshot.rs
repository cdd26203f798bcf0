//! A task as the store holds it, read back from its hash, and the report
//! made of it when it ends.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use tasker_protocol::{
    PROTOCOL_VERSION, ParentStep, StepFailure, StepReport, StepState, TaskFinished, TaskStatus,
};
use uuid::Uuid;

use crate::Error;

/// A task as the store holds it.
#[derive(Debug, Clone)]
pub struct TaskSnapshot {
    /// The task.
    pub task_id: Uuid,
    /// The template's namespace.
    pub namespace: String,
    /// The template's name.
    pub name: String,
    /// The template's version.
    pub version: String,
    /// Where the task stands.
    pub status: TaskStatus,
    /// When the task was accepted.
    pub created_at: DateTime<Utc>,
    /// When its last step ended, once it has.
    pub finished_at: Option<DateTime<Utc>>,
    /// Each step, by index.
    pub steps: Vec<StepSnapshot>,
    /// Who asked for the task and gave a reply queue.
    pub replies: Vec<Reply>,
    /// The W3C traceparent of the span that accepted the task.
    pub traceparent: Option<String>,
    /// For a child task, the step that waits for it.
    pub parent: Option<ParentStep>,
}

/// A requester waiting for a task's outcome: `reply:<correlation id>` in
/// the task's hash holds its queue, and `rid:<correlation id>` its request's
/// id, if it had one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Its reply queue.
    pub queue: String,
    /// The correlation id its replies carry.
    pub correlation: String,
    /// Its request's `request_id`.
    pub request_id: Option<Uuid>,
}

/// A step as the store holds it.
#[derive(Debug, Clone)]
pub struct StepSnapshot {
    /// The step's name.
    pub name: String,
    /// Where it stands.
    pub state: StepState,
    /// Attempts started.
    pub attempts: u32,
    /// The result JSON, once completed.
    pub result: Option<String>,
    /// The last error, if any attempt failed.
    pub error: Option<StepFailure>,
    /// When its dependencies had all completed and it was enqueued (or an
    /// operator's retry enqueued it again); `None` for a root, which is
    /// enqueued with its task.
    pub released_at: Option<DateTime<Utc>>,
    /// When the last attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When the last attempt ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// The child task the step's handler started, if it started one.
    pub child: Option<Uuid>,
    /// While the step waits for a worker, the callable no service serves.
    pub waiting_for_worker: Option<String>,
}

impl TaskSnapshot {
    /// Reads a task from its hash's fields.
    ///
    /// # Errors
    ///
    /// Returns [`Error::CorruptState`] if a field the task needs is missing
    /// or unreadable.
    pub fn parse(task_id: Uuid, f: &HashMap<String, String>) -> Result<Self, Error> {
        let corrupt = |what: &str| Error::CorruptState {
            task_id,
            detail: format!("unreadable field {what}"),
        };
        let get = |k: &str| f.get(k).cloned().ok_or_else(|| corrupt(k));
        let time = |k: &str| f.get(k).and_then(|v| v.parse::<i64>().ok()).map(millis);
        let names = get("steps")?;
        let mut steps = Vec::new();
        for (i, name) in names.split(',').enumerate() {
            let state = get(&format!("s:{i}"))?;
            let state = parse_state(&state).ok_or_else(|| corrupt(&format!("s:{i}")))?;
            steps.push(StepSnapshot {
                name: name.to_owned(),
                state,
                attempts: f.get(&format!("a:{i}")).and_then(|a| a.parse().ok()).unwrap_or(0),
                result: f.get(&format!("r:{i}")).cloned(),
                error: f
                    .get(&format!("e:{i}"))
                    .and_then(|e| serde_json::from_str(e).ok()),
                released_at: time(&format!("q:{i}")),
                started_at: time(&format!("t0:{i}")),
                finished_at: time(&format!("t1:{i}")),
                child: f.get(&format!("ch:{i}")).and_then(|c| c.parse().ok()),
                waiting_for_worker: f.get(&format!("ww:{i}")).cloned(),
            });
        }
        let replies = f
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("reply:").map(|c| Reply {
                    queue: v.clone(),
                    correlation: c.to_owned(),
                    request_id: f.get(&format!("rid:{c}")).and_then(|r| r.parse().ok()),
                })
            })
            .collect();
        Ok(Self {
            task_id,
            namespace: get("ns")?,
            name: get("name")?,
            version: get("ver")?,
            status: TaskStatus::parse(&get("status")?).ok_or_else(|| corrupt("status"))?,
            created_at: time("created").ok_or_else(|| corrupt("created"))?,
            finished_at: time("finished"),
            steps,
            replies,
            traceparent: f.get("tp").filter(|tp| !tp.is_empty()).cloned(),
            parent: match f.get("parent") {
                Some(p) => Some(serde_json::from_str(p).map_err(|_| corrupt("parent"))?),
                None => None,
            },
        })
    }

    /// The task-finished report.
    #[must_use]
    pub fn report(&self) -> TaskFinished {
        TaskFinished {
            protocol_version: PROTOCOL_VERSION,
            task_id: self.task_id,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            version: self.version.clone(),
            status: self.status,
            created_at: self.created_at,
            finished_at: self.finished_at.unwrap_or(self.created_at),
            steps: self
                .steps
                .iter()
                .map(|s| StepReport {
                    name: s.name.clone(),
                    state: s.state,
                    attempts: s.attempts,
                    started_at: s.started_at,
                    finished_at: s.finished_at,
                    result: s
                        .result
                        .as_ref()
                        .and_then(|r| RawValue::from_string(r.clone()).ok()),
                    error: s.error.clone(),
                    child_task_id: s.child,
                    waiting_for_worker: s.waiting_for_worker.clone(),
                })
                .collect(),
            parent: self.parent.clone(),
            results_omitted: false,
            request_id: None,
        }
    }
}

/// A step state as the store spells it: as on the wire, or `retry`, the
/// spelling of `waiting_retry` in stores written before the names were
/// unified.
fn parse_state(name: &str) -> Option<StepState> {
    match name {
        "retry" => Some(StepState::WaitingRetry),
        name => StepState::parse(name),
    }
}

/// A time the store holds as unix ms.
pub(crate) fn millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_task_reads_back_from_its_fields() {
        let id = Uuid::new_v4();
        let fields = hash(&[
            ("ns", "shop"),
            ("name", "order"),
            ("ver", "1.0.0"),
            ("status", "running"),
            ("created", "1700000000000"),
            ("steps", "a,b"),
            ("s:0", "completed"),
            ("a:0", "1"),
            ("r:0", "{\"ok\":true}"),
            ("t1:0", "1700000000500"),
            ("s:1", "waiting_retry"),
            ("a:1", "2"),
            (
                "e:1",
                "{\"retryable\":true,\"code\":\"timeout\",\"message\":\"slow\"}",
            ),
            ("reply:c-1", "amq.gen-1"),
            ("rid:c-1", "7f2c5a2e-3d4b-4c1a-9e8f-0a1b2c3d4e5f"),
            ("reply:c-2", "amq.gen-2"),
        ]);
        let task = TaskSnapshot::parse(id, &fields).unwrap();
        assert_eq!((task.status, task.steps.len()), (TaskStatus::Running, 2));
        assert_eq!(task.steps[0].state, StepState::Completed);
        assert_eq!(task.steps[0].result.as_deref(), Some("{\"ok\":true}"));
        assert_eq!(task.steps[0].finished_at, Some(millis(1_700_000_000_500)));
        assert_eq!(
            (task.steps[1].state, task.steps[1].attempts),
            (StepState::WaitingRetry, 2)
        );
        assert_eq!(task.steps[1].error.as_ref().unwrap().code, "timeout");
        let mut replies = task.replies.clone();
        replies.sort_by(|a, b| a.correlation.cmp(&b.correlation));
        assert_eq!(
            replies,
            [
                Reply {
                    queue: "amq.gen-1".to_owned(),
                    correlation: "c-1".to_owned(),
                    request_id: Some("7f2c5a2e-3d4b-4c1a-9e8f-0a1b2c3d4e5f".parse().unwrap()),
                },
                Reply {
                    queue: "amq.gen-2".to_owned(),
                    correlation: "c-2".to_owned(),
                    request_id: None,
                },
            ]
        );
    }

    #[test]
    fn the_old_spelling_of_waiting_retry_still_reads() {
        assert_eq!(parse_state("retry"), Some(StepState::WaitingRetry));
        assert_eq!(parse_state("waiting_retry"), Some(StepState::WaitingRetry));
        assert_eq!(parse_state("later"), None);
    }

    #[test]
    fn a_missing_or_unknown_field_is_corrupt_state() {
        let id = Uuid::new_v4();
        let mut fields = hash(&[
            ("ns", "shop"),
            ("name", "order"),
            ("ver", "1.0.0"),
            ("status", "running"),
            ("created", "1700000000000"),
            ("steps", "a"),
        ]);
        let missing = TaskSnapshot::parse(id, &fields).unwrap_err();
        assert!(missing.to_string().contains("s:0"), "{missing}");
        fields.insert("s:0".into(), "sideways".into());
        let unknown = TaskSnapshot::parse(id, &fields).unwrap_err();
        assert!(unknown.to_string().contains("s:0"), "{unknown}");
    }
}
