//! `dispatch_retry.lua`: a claimed retry that is due starts its next
//! attempt, under a lease.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use tasker_protocol::TaskTemplate;

use super::keys::StepRef;
use super::script::{Inputs, JoinSpans, LuaScript};
use super::{Store, millis_of};
use crate::Error;

static DISPATCH_RETRY: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("dispatch_retry", 2, include_str!("dispatch_retry.lua")));

/// The arguments, as the script's header names them.
#[derive(Debug, Serialize)]
struct Args {
    step: usize,
    failed_attempt: u32,
    inputs: Vec<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parents: Option<Vec<usize>>,
    lease_ms: u64,
    lease_prefix: String,
    now: i64,
}

/// The reply, as the script's header names it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reply {
    dispatched: bool,
    inputs: Option<Inputs>,
    #[serde(default)]
    joins: Vec<JoinSpans>,
}

/// A retry's next attempt, now enqueued: what its message carries.
#[derive(Debug)]
pub struct Dispatched {
    /// The inputs its message carries.
    pub inputs: Inputs,
    /// For a join, its parents' spans.
    pub joins: Vec<JoinSpans>,
}

impl Store {
    /// Starts the next attempt of the claimed `retry` and leases it for
    /// `lease`; `None` if the retry no longer applies.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if the script fails.
    pub async fn dispatch_retry(
        &self,
        retry: &StepRef,
        template: &TaskTemplate,
        lease: Duration,
    ) -> Result<Option<Dispatched>, Error> {
        let dag = &template.dag;
        let parents = dag.parents(retry.step);
        let args = Args {
            step: retry.step,
            failed_attempt: retry.attempt,
            inputs: template.carried(retry.step).to_vec(),
            parents: (parents.len() > 1).then(|| parents.to_vec()),
            lease_ms: millis_of(lease),
            lease_prefix: StepRef::prefix(retry.task_id, template),
            now: Utc::now().timestamp_millis(),
        };
        let keys = [
            self.keys.task(retry.task_id),
            self.keys.leases_of(retry.task_id, &template.namespace),
        ];
        let reply: Reply = DISPATCH_RETRY.call_one(self, &keys, &args).await?;
        Ok(reply.dispatched.then(|| Dispatched {
            inputs: reply.inputs.unwrap_or_default(),
            joins: reply.joins,
        }))
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
            failed_attempt: 1,
            inputs: vec![],
            parents: Some(vec![0, 1]),
            lease_ms: 1,
            lease_prefix: "p|".into(),
            now: 0,
        };
        let reply = Reply {
            dispatched: true,
            inputs: Some(Inputs::default()),
            joins: vec![],
        };
        contract::check(&DISPATCH_RETRY, &args, &reply);
    }

    #[test]
    fn a_retry_that_no_longer_applies_reads_as_not_dispatched() {
        let reply: Reply = serde_json::from_str(r#"{"dispatched":false}"#).unwrap();
        assert!(!reply.dispatched);
        assert!(reply.inputs.is_none());
    }
}
