//! `wait_worker.lua` and `dispatch_waiting.lua`: a step whose callable no
//! service serves waits, without spending an attempt, and is published
//! again once one does. `rearm_lease.lua`: a step whose service has no
//! worker running waits in that service's queue the same way.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::Utc;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tasker_protocol::TaskTemplate;
use uuid::Uuid;

use super::keys::{Shard, StepRef};
use super::script::{Inputs, JoinSpans, LuaScript};
use super::{Store, millis_of};
use crate::Error;

static WAIT_WORKER: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("wait_worker", 3, include_str!("wait_worker.lua")));
static DISPATCH_WAITING: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("dispatch_waiting", 3, include_str!("dispatch_waiting.lua")));
static REARM_LEASE: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("rearm_lease", 2, include_str!("rearm_lease.lua")));

/// The arguments of `rearm_lease.lua`, as its header names them.
#[derive(Debug, Serialize)]
struct RearmArgs<'a> {
    step: usize,
    attempt: u32,
    member: &'a str,
    until: i64,
    mode: &'static str,
    callable: &'a str,
}

/// The reply of `rearm_lease.lua`, as its header names it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RearmReply {
    renewed: bool,
    first: bool,
}

/// The arguments of `wait_worker.lua`, as its header names them.
#[derive(Debug, Serialize)]
struct WaitArgs<'a> {
    step: usize,
    attempt: u32,
    callable: &'a str,
    lease_member: String,
    member: String,
    next_try: i64,
}

/// The reply of `wait_worker.lua`, as its header names it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitReply {
    waiting: bool,
    first: bool,
}

/// The arguments of `dispatch_waiting.lua`, as its header names them.
#[derive(Debug, Serialize)]
struct DispatchArgs {
    step: usize,
    attempt: u32,
    member: String,
    inputs: Vec<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parents: Option<Vec<usize>>,
    lease_ms: u64,
    lease_prefix: String,
    now: i64,
}

/// The reply of `dispatch_waiting.lua`, as its header names it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DispatchReply {
    dispatched: bool,
    inputs: Option<Inputs>,
    #[serde(default)]
    joins: Vec<JoinSpans>,
}

/// How noting a step as waiting went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// It waits, and did not before: the moment to say so.
    Began,
    /// It waited already.
    Still,
    /// It has moved on: nothing waits.
    No,
}

/// A waiting step taken out of waiting, to publish.
#[derive(Debug)]
pub struct Released {
    /// What its message carries.
    pub inputs: Inputs,
    /// For a join, its parents' spans.
    pub joins: Vec<JoinSpans>,
}

impl Store {
    /// The lease `lease` of a step of `template` ran out while no worker
    /// consumed its service's queue: the step waits there for one, its
    /// lease renewed for `recheck`, its attempt not spent.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if the script fails.
    pub async fn wait_in_queue(
        &self,
        lease: &StepRef,
        template: &TaskTemplate,
        recheck: Duration,
    ) -> Result<Waiting, Error> {
        let reply = self.rearm(lease, template, recheck, "wait").await?;
        Ok(match (reply.renewed, reply.first) {
            (false, _) => Waiting::No,
            (true, true) => Waiting::Began,
            (true, false) => Waiting::Still,
        })
    }

    /// The lease `lease` ran out with a worker consuming the step's
    /// service's queue again: a step that waited for one gets a new lease
    /// of `lease_for`, for the worker to run it, and `true`; one that did
    /// not wait is left to time out (`false`).
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if the script fails.
    pub async fn resume_from_queue(
        &self,
        lease: &StepRef,
        template: &TaskTemplate,
        lease_for: Duration,
    ) -> Result<bool, Error> {
        Ok(self.rearm(lease, template, lease_for, "resume").await?.renewed)
    }

    async fn rearm(
        &self,
        lease: &StepRef,
        template: &TaskTemplate,
        renew_for: Duration,
        mode: &'static str,
    ) -> Result<RearmReply, Error> {
        let args = RearmArgs {
            step: lease.step,
            attempt: lease.attempt,
            member: &lease.member,
            until: Utc::now().timestamp_millis() + i64::try_from(millis_of(renew_for)).unwrap_or(i64::MAX),
            mode,
            callable: &template.steps[lease.step].callable,
        };
        let keys = [
            self.keys.task(lease.task_id),
            self.keys.leases_of(lease.task_id, &template.namespace),
        ];
        REARM_LEASE.call_one(self, &keys, &args).await
    }

    /// How many steps of `namespace` wait for a worker, in every shard.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if Redis fails.
    pub async fn count_waiting(&self, namespace: &str) -> Result<u64, Error> {
        let mut count = 0;
        for shard in self.keys.shards() {
            let n: u64 = self
                .conn()
                .zcard(self.keys.waiting(shard, namespace))
                .await
                .map_err(|e| self.error(e))?;
            count += n;
        }
        Ok(count)
    }

    /// Claims up to `limit` steps of `shard`'s tasks of `namespace` that
    /// wait for a worker and are due to be tried again, holding each for
    /// `hold`.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if the script fails.
    pub async fn claim_waiting(
        &self,
        namespace: &str,
        shard: Shard,
        hold: Duration,
        limit: usize,
    ) -> Result<super::Claimed, Error> {
        self.claim(self.keys.waiting(shard, namespace), hold, limit).await
    }

    /// Notes that `attempt` of `step` waits for a worker that serves its
    /// callable, to be tried again after `retry_in`. Its entry carries
    /// `trace`, the span that published it, so that the step, once
    /// published again, stays in the task's trace.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if the script fails.
    pub async fn wait_for_worker(
        &self,
        task_id: Uuid,
        template: &TaskTemplate,
        step: usize,
        attempt: u32,
        retry_in: Duration,
        trace: Option<&str>,
    ) -> Result<Waiting, Error> {
        let lease_member = StepRef::new(task_id, template, step, attempt).member;
        let member = match trace {
            Some(tp) => format!("{lease_member}|{tp}"),
            None => lease_member.clone(),
        };
        let args = WaitArgs {
            step,
            attempt,
            callable: &template.steps[step].callable,
            lease_member,
            member,
            next_try: Utc::now().timestamp_millis() + i64::try_from(millis_of(retry_in)).unwrap_or(i64::MAX),
        };
        let keys = [
            self.keys.task(task_id),
            self.keys.leases_of(task_id, &template.namespace),
            self.keys.waiting_of(task_id, &template.namespace),
        ];
        let reply: WaitReply = WAIT_WORKER.call_one(self, &keys, &args).await?;
        Ok(match (reply.waiting, reply.first) {
            (false, _) => Waiting::No,
            (true, true) => Waiting::Began,
            (true, false) => Waiting::Still,
        })
    }

    /// Takes the claimed waiting step `entry` out of waiting and leases it
    /// for `lease`, to publish; `None` if it has moved on. Either way it
    /// leaves the waiting set.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if the script fails.
    pub async fn dispatch_waiting(
        &self,
        entry: &StepRef,
        template: &TaskTemplate,
        lease: Duration,
    ) -> Result<Option<Released>, Error> {
        let parents = template.dag.parents(entry.step);
        let args = DispatchArgs {
            step: entry.step,
            attempt: entry.attempt,
            member: entry.member.clone(),
            inputs: template.carried(entry.step).to_vec(),
            parents: (parents.len() > 1).then(|| parents.to_vec()),
            lease_ms: millis_of(lease),
            lease_prefix: StepRef::prefix(entry.task_id, template),
            now: Utc::now().timestamp_millis(),
        };
        let keys = [
            self.keys.task(entry.task_id),
            self.keys.leases_of(entry.task_id, &template.namespace),
            self.keys.waiting_of(entry.task_id, &template.namespace),
        ];
        let reply: DispatchReply = DISPATCH_WAITING.call_one(self, &keys, &args).await?;
        Ok(reply.dispatched.then(|| Released {
            inputs: reply.inputs.unwrap_or_default(),
            joins: reply.joins,
        }))
    }

    /// Notes that a step that waited for a worker reached a service's queue
    /// when published again: it no longer shows as waiting. The mark stays
    /// while it is tried again, so that waiting again is not news.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Redis`] if Redis fails.
    pub async fn end_wait(&self, task_id: Uuid, step: usize) -> Result<(), Error> {
        self.conn()
            .hdel(self.keys.task(task_id), format!("ww:{step}"))
            .await
            .map_err(|e| self.error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::script::contract;

    #[test]
    fn the_headers_name_the_arguments_and_the_replies() {
        let wait = WaitArgs {
            step: 0,
            attempt: 1,
            callable: "c",
            lease_member: "m".into(),
            member: "m|tp".into(),
            next_try: 0,
        };
        contract::check(
            &WAIT_WORKER,
            &wait,
            &WaitReply {
                waiting: true,
                first: true,
            },
        );
        let dispatch = DispatchArgs {
            step: 0,
            attempt: 1,
            member: "m".into(),
            inputs: vec![],
            parents: Some(vec![0, 1]),
            lease_ms: 1,
            lease_prefix: "p|".into(),
            now: 0,
        };
        let reply = DispatchReply {
            dispatched: true,
            inputs: Some(Inputs::default()),
            joins: vec![],
        };
        contract::check(&DISPATCH_WAITING, &dispatch, &reply);
        let rearm = RearmArgs {
            step: 0,
            attempt: 1,
            member: "m",
            until: 0,
            mode: "wait",
            callable: "c",
        };
        contract::check(
            &REARM_LEASE,
            &rearm,
            &RearmReply {
                renewed: true,
                first: true,
            },
        );
    }
}
