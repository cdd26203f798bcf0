//! `record_result.lua`: how an attempt of a step ended is recorded, and the
//! task moves on: its ready children, its retry, or its end, together with
//! everything the coordinator needs to publish them.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tasker_protocol::{StepOutcome, StepResult, TaskStatus, TaskTemplate};
use uuid::Uuid;

use super::keys::StepRef;
use super::script::{Inputs, JoinSpans, LuaScript};
use super::snapshot::{TaskSnapshot, millis};
use super::{Store, millis_of};
use crate::Error;
use crate::batch::Batched;

static RECORD_RESULT: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("record_result", 3, include_str!("record_result.lua")));

/// How one attempt of a step ended, as the store takes it.
#[derive(Debug, Clone, Copy)]
pub struct StepEnd<'a> {
    /// The task's template.
    pub template: &'a TaskTemplate,
    /// The step's index in it.
    pub step: usize,
    /// The worker's result, or the timeout the coordinator made up. Its
    /// outcome is `completed` or `failed`: a step that waits for its child
    /// task has not ended.
    pub result: &'a StepResult,
    /// Whether the result was delivered before, or a try to record it
    /// failed and may have been applied: the script then hands back its
    /// effects rather than calling it a duplicate.
    pub redelivered: bool,
    /// The W3C traceparent of the span that records the result, for a
    /// join's publish to link to.
    pub traceparent: Option<&'a str>,
}

/// One step result, prepared by [`Store::prepare_result`] for
/// [`Store::record_results`], or for a [`Batcher`](crate::batch::Batcher).
#[derive(Debug)]
pub struct ResultToRecord {
    task_id: Uuid,
    keys: [String; 3],
    args: Args,
}

/// The arguments of one item, as the script's header names them.
#[derive(Debug, Serialize)]
struct Args {
    step: usize,
    attempt: u32,
    outcome: Outcome,
    retryable: bool,
    payload: String,
    started_at: i64,
    finished_at: i64,
    now: i64,
    retry_due: Vec<i64>,
    max_attempts: u32,
    redelivered: bool,
    retention_secs: u64,
    children: Vec<Child>,
    inputs: Vec<usize>,
    descendants: Vec<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    traceparent: Option<String>,
    lease_prefix: String,
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
enum Outcome {
    Completed,
    Failed,
}

#[derive(Debug, Serialize)]
struct Child {
    step: usize,
    lease_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    parents: Option<Vec<usize>>,
}

/// One item's reply, as the script's header names it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reply {
    verdict: Verdict,
    status: Option<TaskStatus>,
    #[serde(default)]
    ready: Vec<usize>,
    retry_due: Option<i64>,
    inputs: Option<Inputs>,
    #[serde(default)]
    joins: Vec<JoinSpans>,
    finished: Option<HashMap<String, String>>,
}

/// How the store took a step result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// This result moved the task on.
    Applied,
    /// The same result was applied before.
    Duplicate,
    /// The result is for an attempt that is no longer current.
    Stale,
    /// No such task: it never existed or has expired.
    #[serde(rename = "unknown")]
    UnknownTask,
}

/// What a recorded result asks the coordinator to do next.
#[derive(Debug)]
pub struct Recorded {
    /// How the result was taken.
    pub verdict: Verdict,
    /// The task's status afterwards; `None` for an unknown task.
    pub status: Option<TaskStatus>,
    /// Steps now enqueued at attempt 1, to publish.
    pub ready: Vec<usize>,
    /// When the step's retry is due, if it has one.
    pub retry_due: Option<DateTime<Utc>>,
    /// The inputs the ready steps' messages carry.
    pub inputs: Inputs,
    /// For each ready join, its parents' spans and how long it waited.
    pub joins: Vec<JoinSpans>,
    /// The task as it ended, when it has just finished (or finished before
    /// and this was a redelivery): the report to send.
    pub finished: Option<TaskSnapshot>,
}

impl Recorded {
    fn read(task_id: Uuid, reply: Reply) -> Result<Self, Error> {
        Ok(Self {
            verdict: reply.verdict,
            status: reply.status,
            ready: reply.ready,
            retry_due: reply.retry_due.map(millis),
            inputs: reply.inputs.unwrap_or_default(),
            joins: reply.joins,
            finished: reply
                .finished
                .map(|fields| TaskSnapshot::parse(task_id, &fields))
                .transpose()?,
        })
    }
}

impl Store {
    /// Prepares the recording of how an attempt ended: the call, which
    /// [`Store::record_results`] makes, also ends the attempt's lease,
    /// leases the children it makes ready (each for `lease(child)`), and
    /// puts a retry on the schedule.
    ///
    /// Whether a retryable failure is retried is the script's to say: the
    /// budget of attempts counts from an operator's last retry, which only
    /// the store knows. This gives it the due time after each attempt of
    /// the budget.
    ///
    /// # Panics
    ///
    /// If the result's outcome is `waiting_for_child`, which is no end:
    /// [`Store::wait_for_child`] notes it.
    #[must_use]
    pub fn prepare_result(&self, end: StepEnd<'_>, lease: impl Fn(usize) -> Duration) -> ResultToRecord {
        let StepEnd {
            template,
            step,
            result,
            ..
        } = end;
        let dag = &template.dag;
        let policy = &template.steps[step].retry;
        let now = Utc::now();
        let (outcome, payload, retryable, after) = match &result.outcome {
            StepOutcome::Completed { result } => (Outcome::Completed, result.get().to_owned(), false, None),
            StepOutcome::Failed { error } => {
                let after = tasker_protocol::retry::retry_after(error.retry_after_seconds);
                let payload = serde_json::to_string(error).expect("a failure always serializes");
                (
                    Outcome::Failed,
                    payload,
                    error.retryable && policy.retryable,
                    after,
                )
            }
            StepOutcome::WaitingForChild { .. } => {
                panic!("a step that waits for its child task has not ended; note it with wait_for_child")
            }
        };
        let retry_due = if retryable {
            (1..policy.max_attempts.max(2))
                .map(|k| {
                    let delay = after.unwrap_or_else(|| policy.delay(k, &mut rand::rng()));
                    (now + delay).timestamp_millis()
                })
                .collect()
        } else {
            Vec::new()
        };
        let children = dag
            .children(step)
            .iter()
            .map(|&c| Child {
                step: c,
                lease_ms: millis_of(lease(c)),
                parents: (dag.parents(c).len() > 1).then(|| dag.parents(c).to_vec()),
            })
            .collect();
        let (inputs, descendants) = match outcome {
            Outcome::Completed => {
                let mut inputs: Vec<usize> = dag
                    .children(step)
                    .iter()
                    .flat_map(|&c| template.carried(c).iter().copied())
                    .collect();
                inputs.sort_unstable();
                inputs.dedup();
                (inputs, Vec::new())
            }
            Outcome::Failed => (Vec::new(), dag.descendants(step).to_vec()),
        };
        let task_id = result.task_id;
        ResultToRecord {
            task_id,
            keys: [
                self.keys.task(task_id),
                self.keys.leases_of(task_id, &template.namespace),
                self.keys.schedule_of(task_id, &template.namespace),
            ],
            args: Args {
                step,
                attempt: result.attempt,
                outcome,
                retryable,
                payload,
                started_at: result.started_at.timestamp_millis(),
                finished_at: result.finished_at.timestamp_millis(),
                now: now.timestamp_millis(),
                retry_due,
                max_attempts: policy.max_attempts,
                redelivered: end.redelivered,
                retention_secs: self.retention().as_secs(),
                children,
                inputs,
                descendants,
                traceparent: end.traceparent.map(str::to_owned),
                lease_prefix: StepRef::prefix(task_id, template),
            },
        }
    }

    /// Records `results` in one call, in order, as if each were recorded
    /// alone; gives back what each asks the coordinator to do next.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if the script fails: then none, some or all
    /// of the results may have been recorded. The inner error is
    /// [`Error::ScriptReply`] or [`Error::CorruptState`] for a result whose
    /// reply cannot be read.
    pub async fn record_results(
        &self,
        results: &[ResultToRecord],
    ) -> Result<Vec<Result<Recorded, Error>>, Error> {
        let replies = RECORD_RESULT
            .call::<_, Reply>(self, results.iter().map(|r| (&r.keys[..], &r.args)))
            .await?;
        Ok(results
            .iter()
            .zip(replies)
            .map(|(r, reply)| reply.and_then(|reply| Recorded::read(r.task_id, reply)))
            .collect())
    }
}

impl Batched for ResultToRecord {
    type Target = Store;
    type Output = Recorded;

    fn task_id(&self) -> Uuid {
        self.task_id
    }

    /// The script then hands back the result's effects rather than calling
    /// it a duplicate.
    fn set_redelivered(&mut self) {
        self.args.redelivered = true;
    }

    async fn call(store: &Store, items: &[Self]) -> Result<Vec<Result<Recorded, Error>>, Error> {
        store.record_results(items).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::script::contract;

    #[test]
    fn the_header_names_the_arguments_and_the_reply() {
        let args = Args {
            step: 0,
            attempt: 1,
            outcome: Outcome::Completed,
            retryable: false,
            payload: "{}".into(),
            started_at: 0,
            finished_at: 0,
            now: 0,
            retry_due: vec![],
            max_attempts: 3,
            redelivered: false,
            retention_secs: 60,
            children: vec![],
            inputs: vec![],
            descendants: vec![],
            traceparent: Some("tp".into()),
            lease_prefix: "p|".into(),
        };
        let reply = Reply {
            verdict: Verdict::Applied,
            status: Some(TaskStatus::Running),
            ready: vec![1],
            retry_due: Some(0),
            inputs: Some(Inputs::default()),
            joins: vec![],
            finished: Some(HashMap::new()),
        };
        contract::check(&RECORD_RESULT, &args, &reply);
    }

    #[test]
    fn a_completion_reads_with_its_ready_steps_inputs_and_joins() {
        let reply: Reply = serde_json::from_str(
            r#"{"verdict":"applied","status":"running","ready":[3],
                "inputs":{"context":"{\"a\":1}","results":{"1":"{\"b\":2}","2":"3"}},
                "joins":[{"step":3,"links":["00-aa-bb-01"],"wait_ms":12}]}"#,
        )
        .unwrap();
        let recorded = Recorded::read(Uuid::nil(), reply).unwrap();
        assert_eq!(recorded.verdict, Verdict::Applied);
        assert_eq!(recorded.ready, [3]);
        assert_eq!(recorded.inputs.context, "{\"a\":1}");
        assert_eq!(recorded.inputs.results[&1], "{\"b\":2}");
        assert_eq!(recorded.joins[0].wait_ms, Some(12));
        assert!(recorded.finished.is_none());
    }

    #[test]
    fn an_unknown_task_has_no_status_and_a_retry_its_due_time() {
        let unknown: Reply = serde_json::from_str(r#"{"verdict":"unknown"}"#).unwrap();
        let unknown = Recorded::read(Uuid::nil(), unknown).unwrap();
        assert_eq!((unknown.verdict, unknown.status), (Verdict::UnknownTask, None));
        let retry: Reply =
            serde_json::from_str(r#"{"verdict":"applied","status":"running","retry_due":1700000000000}"#)
                .unwrap();
        let retry = Recorded::read(Uuid::nil(), retry).unwrap();
        assert_eq!(retry.retry_due, Some(millis(1_700_000_000_000)));
    }

    #[test]
    fn a_finished_task_reads_as_its_snapshot_and_a_broken_one_is_corrupt() {
        let finished: Reply = serde_json::from_str(
            r#"{"verdict":"applied","status":"complete","finished":{"ns":"n","name":"t","ver":"1.0.0",
                "status":"complete","created":"1","finished":"2","steps":"a","s:0":"completed","r:0":"1"}}"#,
        )
        .unwrap();
        let recorded = Recorded::read(Uuid::nil(), finished).unwrap();
        assert_eq!(recorded.finished.unwrap().status, TaskStatus::Complete);
        let broken: Reply =
            serde_json::from_str(r#"{"verdict":"applied","status":"complete","finished":{"ns":"n"}}"#)
                .unwrap();
        assert!(matches!(
            Recorded::read(Uuid::nil(), broken),
            Err(Error::CorruptState { .. })
        ));
    }

    #[test]
    fn a_reply_with_a_field_this_side_does_not_know_is_refused() {
        assert!(
            serde_json::from_str::<Reply>(r#"{"verdict":"applied","status":"running","extra":1}"#).is_err()
        );
        assert!(serde_json::from_str::<Reply>(r#"{"verdict":"maybe"}"#).is_err());
    }
}
