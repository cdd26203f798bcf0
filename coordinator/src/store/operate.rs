//! `operate.lua`: an operator's retry, resolve or cancel of a task, with
//! the leases of the steps it enqueues.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use tasker_protocol::{TaskStatus, TaskTemplate};
use uuid::Uuid;

use super::keys::StepRef;
use super::script::{Inputs, JoinSpans, LuaScript};
use super::{Store, millis_of};
use crate::Error;

static OPERATE: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("operate", 2, include_str!("operate.lua")));

/// An operator's change to a task.
#[derive(Debug, Clone, Copy)]
pub enum Operation<'a> {
    /// Failed steps back to pending, all of them or only `step`.
    Retry {
        /// Only this step.
        step: Option<usize>,
    },
    /// No step starts any more; the task ends cancelled once the running
    /// ones have finished.
    Cancel,
    /// The failed `step` completed by hand with `result` (JSON).
    Resolve {
        /// The step.
        step: usize,
        /// Its result.
        result: &'a str,
    },
}

/// The arguments, as the script's header names them.
#[derive(Debug, Serialize)]
struct Args<'a> {
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a str>,
    now: i64,
    retention_secs: u64,
    steps: Vec<StepArgs<'a>>,
    lease_prefix: String,
}

#[derive(Debug, Serialize)]
struct StepArgs<'a> {
    parents: &'a [usize],
    ancestors: &'a [usize],
    lease_ms: u64,
}

/// The reply, as the script's header names it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reply {
    refused: Option<String>,
    status: Option<TaskStatus>,
    #[serde(default)]
    ready: Vec<ReadyStep>,
    inputs: Option<Inputs>,
    #[serde(default)]
    joins: Vec<JoinSpans>,
}

/// A step an operation enqueued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadyStep {
    /// The step.
    pub step: usize,
    /// The attempt it is enqueued at.
    pub attempt: u32,
}

/// What [`Store::operate`] did.
#[derive(Debug)]
pub enum Operated {
    /// Nothing: the task is not in a state the operation applies to.
    Refused(String),
    /// Applied.
    Done {
        /// The task's status afterwards.
        status: TaskStatus,
        /// Steps now enqueued and leased, to publish.
        ready: Vec<ReadyStep>,
        /// What their messages carry.
        inputs: Inputs,
        /// For each ready join, its parents' spans.
        joins: Vec<JoinSpans>,
    },
}

impl Reply {
    fn read(self) -> Result<Operated, Error> {
        if let Some(reason) = self.refused {
            return Ok(Operated::Refused(reason));
        }
        let status = self.status.ok_or_else(|| Error::ScriptReply {
            script: "operate",
            detail: "neither refused nor a status".to_owned(),
        })?;
        Ok(Operated::Done {
            status,
            ready: self.ready,
            inputs: self.inputs.unwrap_or_default(),
            joins: self.joins,
        })
    }
}

impl Store {
    /// Retries or resolves failed steps of a task, or cancels it,
    /// atomically; each step it enqueues is leased for `lease(step)`.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if the script fails.
    pub async fn operate(
        &self,
        task_id: Uuid,
        template: &TaskTemplate,
        operation: Operation<'_>,
        lease: impl Fn(usize) -> Duration,
    ) -> Result<Operated, Error> {
        let (action, step, result) = match operation {
            Operation::Retry { step } => ("retry", step, None),
            Operation::Cancel => ("cancel", None, None),
            Operation::Resolve { step, result } => ("resolve", Some(step), Some(result)),
        };
        let dag = &template.dag;
        let args = Args {
            action,
            step,
            result,
            now: Utc::now().timestamp_millis(),
            retention_secs: self.retention().as_secs(),
            steps: (0..template.steps.len())
                .map(|i| StepArgs {
                    parents: dag.parents(i),
                    ancestors: dag.ancestors(i),
                    lease_ms: millis_of(lease(i)),
                })
                .collect(),
            lease_prefix: StepRef::prefix(task_id, template),
        };
        let keys = [
            self.keys.task(task_id),
            self.keys.leases_of(task_id, &template.namespace),
        ];
        let reply: Reply = OPERATE.call_one(self, &keys, &args).await?;
        reply.read()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::script::contract;

    #[test]
    fn the_header_names_the_arguments_and_the_reply() {
        let args = Args {
            action: "resolve",
            step: Some(0),
            result: Some("{}"),
            now: 0,
            retention_secs: 1,
            steps: vec![],
            lease_prefix: "p|".into(),
        };
        let reply = Reply {
            refused: Some("no".into()),
            status: Some(TaskStatus::Running),
            ready: vec![ReadyStep { step: 1, attempt: 2 }],
            inputs: Some(Inputs::default()),
            joins: vec![],
        };
        contract::check(&OPERATE, &args, &reply);
    }

    #[test]
    fn replies_read_as_refused_or_done() {
        let refused: Reply = serde_json::from_str(r#"{"refused":"the task was cancelled"}"#).unwrap();
        assert!(matches!(refused.read(), Ok(Operated::Refused(r)) if r == "the task was cancelled"));
        let done: Reply = serde_json::from_str(
            r#"{"status":"running","ready":[{"step":2,"attempt":4}],"inputs":{"context":"{}","results":{}}}"#,
        )
        .unwrap();
        let Ok(Operated::Done { status, ready, .. }) = done.read() else {
            panic!("a reply with a status is done");
        };
        assert_eq!(
            (status, ready),
            (TaskStatus::Running, vec![ReadyStep { step: 2, attempt: 4 }])
        );
        let neither: Reply = serde_json::from_str("{}").unwrap();
        assert!(matches!(neither.read(), Err(Error::ScriptReply { .. })));
    }
}
