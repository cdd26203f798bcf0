//! The sweeper: for every served namespace, publishes the next attempt of
//! retries that are due, and times out attempts whose lease ran out, unless
//! their service has no worker running: those wait for one.
//!
//! Claims are held, not removed, so a coordinator that dies mid-way leaves
//! its claims to be taken over when the hold runs out; a claim ends only
//! once what it asked for is done.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tasker_protocol::{ErrorCode, PROTOCOL_VERSION, StepFailure, StepOutcome, StepResult, TaskTemplate};
use tasker_runtime::{health, metrics, telemetry};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, warn};

use super::Coordinator;
use super::publish::{ReadySteps, WAITING_RETRY};
use crate::Error;
use crate::store::{Shard, StepRef, Waiting};

/// The most retries, and the most expired leases, claimed at once per
/// namespace and shard.
const CLAIM_LIMIT: usize = 100;

/// How often expired leases are looked for: a lease lasts a step's timeout
/// and a margin of seconds, so a quarter of a second late is on time,
/// and a store of many shards is spared a call per shard every poll.
const LEASE_POLL: Duration = Duration::from_millis(250);

/// Sweeps due retries every `retry_poll` until `stop` is cancelled, expired
/// leases every [`LEASE_POLL`], and every [`WAITING_RETRY`] tries again the
/// steps that wait for a worker.
pub(super) async fn run(coordinator: Arc<Coordinator>, stop: CancellationToken) {
    let namespaces: Vec<String> = coordinator
        .templates
        .namespaces()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut waiting_pass = Instant::now();
    let mut lease_pass = Instant::now();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(coordinator.config.retry_poll) => {}
        }
        let try_waiting = waiting_pass.elapsed() >= WAITING_RETRY;
        if try_waiting {
            waiting_pass = Instant::now();
        }
        let leases = lease_pass.elapsed() >= LEASE_POLL;
        if leases {
            lease_pass = Instant::now();
        }
        for namespace in &namespaces {
            coordinator.sweep(namespace, leases).await;
            if try_waiting {
                coordinator.sweep_waiting(namespace).await;
            }
        }
    }
}

impl Coordinator {
    /// One pass over `namespace`'s due retries and expired leases, in
    /// every shard.
    async fn sweep(&self, namespace: &str, leases: bool) {
        for shard in self.store.keys().shards() {
            self.sweep_shard(namespace, shard, leases).await;
        }
    }

    /// One pass over the due retries, and with `leases` the expired leases,
    /// of `shard`'s tasks of `namespace`. What fails is tried again on a
    /// later pass, when its claim's hold is over.
    async fn sweep_shard(&self, namespace: &str, shard: Shard, leases: bool) {
        let hold = self.config.claim_hold;
        match self
            .store
            .claim_due_retries(namespace, shard, hold, CLAIM_LIMIT)
            .await
        {
            Ok(due) => {
                self.health.up(health::REDIS);
                for retry in due.entries {
                    let span = tracing::info_span!(
                        "retry step",
                        otel.kind = "internal",
                        tasker.task.id = %retry.task_id,
                        tasker.step.attempt = retry.attempt + 1,
                    );
                    if let Some(tp) = &retry.trace {
                        telemetry::continue_from_traceparent(&span, tp);
                    }
                    let dispatched = self.dispatch(&retry).instrument(span).await;
                    let ended = match dispatched {
                        Ok(true) => self.store.end_claim(&due.key, &retry.member).await,
                        Ok(false) => Ok(()),
                        Err(e) => Err(e),
                    };
                    if let Err(e) = ended {
                        warn!(error = %e, task_id = %retry.task_id, "retry not dispatched; it will be tried again");
                    }
                }
            }
            Err(e) => self.health.down(health::REDIS, &e),
        }
        if !leases {
            return;
        }
        match self
            .store
            .claim_expired_leases(namespace, shard, hold, CLAIM_LIMIT)
            .await
        {
            Ok(expired) => {
                for lease in expired.entries {
                    if let Err(e) = self.expire(&lease).await {
                        warn!(error = %e, task_id = %lease.task_id, "expired lease not handled; it will be tried again");
                    }
                }
            }
            Err(e) => self.health.down(health::REDIS, &e),
        }
    }

    /// Tries again to publish `namespace`'s steps that wait for a worker;
    /// one whose callable a service serves by now leaves waiting.
    async fn sweep_waiting(&self, namespace: &str) {
        for shard in self.store.keys().shards() {
            self.sweep_waiting_shard(namespace, shard).await;
        }
        if let Ok(count) = self.store.count_waiting(namespace).await {
            metrics::global()
                .steps_waiting_for_worker
                .get_or_create(&metrics::namespace(namespace))
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// [`Self::sweep_waiting`] in one shard.
    async fn sweep_waiting_shard(&self, namespace: &str, shard: Shard) {
        match self
            .store
            .claim_waiting(namespace, shard, self.config.claim_hold, CLAIM_LIMIT)
            .await
        {
            Ok(waiting) => {
                for entry in waiting.entries {
                    // Under the span that published it first: the step
                    // stays in its task's trace.
                    let span = tracing::info_span!(
                        "release waiting step",
                        otel.kind = "internal",
                        tasker.task.id = %entry.task_id,
                    );
                    if let Some(tp) = &entry.trace {
                        telemetry::continue_from_traceparent(&span, tp);
                    }
                    if let Err(e) = self.release_waiting(&entry).instrument(span).await {
                        warn!(error = %e, task_id = %entry.task_id, "waiting step not tried again; it will be");
                    }
                }
            }
            Err(e) => self.health.down(health::REDIS, &e),
        }
    }

    /// Publishes a step that waited for a worker; if its callable still
    /// reaches no queue, it waits again, and otherwise it waits no more.
    async fn release_waiting(&self, entry: &StepRef) -> Result<(), Error> {
        let Some(template) = self.template_of(entry) else {
            return Ok(());
        };
        let lease = self.lease(&template, entry.step);
        let Some(released) = self.store.dispatch_waiting(entry, &template, lease).await? else {
            return Ok(());
        };
        let published = self
            .publish_steps(ReadySteps {
                template: &template,
                task_id: entry.task_id,
                steps: &[entry.step],
                attempt: entry.attempt,
                inputs: &released.inputs,
                joins: &released.joins,
            })
            .await;
        let waiting = match published {
            Ok(waiting) => waiting,
            Err(e) => {
                // The step left the waiting set for a lease when it was
                // released: back it goes, to be tried again soon rather
                // than when that lease runs out.
                let back = self
                    .store
                    .wait_for_worker(
                        entry.task_id,
                        &template,
                        entry.step,
                        entry.attempt,
                        WAITING_RETRY,
                        entry.trace.as_deref(),
                    )
                    .await;
                if let Err(also) = back {
                    warn!(error = %also, task_id = %entry.task_id, "released step not published, nor put back to wait; its lease will time it out");
                }
                return Err(e);
            }
        };
        if waiting.is_empty() {
            self.store.end_wait(entry.task_id, entry.step).await?;
        }
        Ok(())
    }

    /// The template a schedule entry names, if this coordinator loads it.
    fn template_of(&self, entry: &StepRef) -> Option<Arc<TaskTemplate>> {
        let (ns, name, version) = &entry.template;
        let found = self.templates.get(ns, name, Some(version)).ok().cloned();
        if found.is_none() {
            // Another coordinator may load this version; its claim comes
            // when this one's hold runs out.
            warn!(task_id = %entry.task_id, template = %format!("{ns}/{name}@{version}"),
                "schedule entry for a template version this coordinator does not load; leaving it to one that does");
        }
        found
    }

    /// Starts the next attempt of a due retry and publishes it. `true` once
    /// the retry is done with: published, or no longer applying; `false`
    /// when it is left to a coordinator that loads its template.
    async fn dispatch(&self, retry: &StepRef) -> Result<bool, Error> {
        let Some(template) = self.template_of(retry) else {
            return Ok(false);
        };
        let lease = self.lease(&template, retry.step);
        let Some(dispatched) = self.store.dispatch_retry(retry, &template, lease).await? else {
            return Ok(true);
        };
        let attempt = retry.attempt + 1;
        // An event on the retry span: the wait is over.
        info!(task_id = %retry.task_id, step = %template.steps[retry.step].name, attempt, "retrying step");
        self.publish_steps(ReadySteps {
            template: &template,
            task_id: retry.task_id,
            steps: &[retry.step],
            attempt,
            inputs: &dispatched.inputs,
            joins: &dispatched.joins,
        })
        .await?;
        Ok(true)
    }

    /// An attempt outlived its lease: no result came, and the broker did not
    /// hand the step to another worker. It fails as a retryable `timeout`,
    /// recorded as a redelivery: if the timeout was recorded before, its
    /// effects are handed back and carried out again. Recording it ends the
    /// lease, and with it the claim.
    async fn expire(&self, lease: &StepRef) -> Result<(), Error> {
        let Some(template) = self.template_of(lease) else {
            return Ok(());
        };
        if self.waits_for_its_service(&template, lease).await? {
            return Ok(());
        }
        let step = &template.steps[lease.step];
        let lease_secs = self.lease(&template, lease.step).as_secs_f64();
        let now = Utc::now();
        let result = StepResult {
            protocol_version: PROTOCOL_VERSION,
            task_id: lease.task_id,
            namespace: template.namespace.clone(),
            task_name: template.name.clone(),
            task_version: template.version.to_string(),
            step: step.name.clone(),
            attempt: lease.attempt,
            started_at: now,
            finished_at: now,
            outcome: StepOutcome::Failed {
                error: StepFailure::of(
                    ErrorCode::Timeout,
                    format!(
                        "no result within the step's lease of {lease_secs} s; its worker may have hung or lost the message"
                    ),
                ),
            },
        };
        self.record(&template, lease.step, &result, true).await
    }

    /// A lease ran out. If no worker consumes the queue of the service that
    /// serves the step's callable, its message waits there (its worker died
    /// holding it, and the broker put it back), and so does the step: it
    /// spends no attempt, shows as waiting for a worker, and its lease is
    /// renewed until one consumes the queue again; then it gets a whole
    /// lease for that worker to run it. `true` when the lease was renewed,
    /// `false` when the attempt times out as usual: its service has workers
    /// and it did not wait, or which queue serves it is not known.
    async fn waits_for_its_service(&self, template: &TaskTemplate, lease: &StepRef) -> Result<bool, Error> {
        let step = &template.steps[lease.step];
        let Some(consumers) = self.consumers_serving(&template.namespace, &step.callable).await else {
            return Ok(false);
        };
        if consumers > 0 {
            let resumed = self
                .store
                .resume_from_queue(lease, template, self.lease(template, lease.step))
                .await?;
            if resumed {
                info!(task_id = %lease.task_id, step = %step.name, attempt = lease.attempt,
                    "a worker serves the waiting step's callable again; it gets a new lease");
            }
            return Ok(resumed);
        }
        Ok(
            match self.store.wait_in_queue(lease, template, QUEUE_RECHECK).await? {
                Waiting::Began => {
                    warn!(task_id = %lease.task_id, step = %step.name, attempt = lease.attempt, callable = %step.callable,
                    "step waits for a worker: its service's queue has no consumer; the attempt is not spent");
                    metrics::global()
                        .steps_without_worker
                        .get_or_create(&metrics::callable(&template.namespace, &step.callable))
                        .inc();
                    true
                }
                Waiting::Still => true,
                Waiting::No => false,
            },
        )
    }

    /// How many consumers the queues of the services that announced
    /// `callable` of `namespace` have; `None` if no service announced it, or
    /// the broker cannot say.
    async fn consumers_serving(&self, namespace: &str, callable: &str) -> Option<u32> {
        let workers = self.store.workers().await.ok()?;
        let queues: BTreeSet<String> = workers
            .iter()
            .flat_map(|w| {
                w.announcement
                    .serves
                    .iter()
                    .map(|s| (s, w.announcement.service.as_str()))
            })
            .filter(|(s, _)| s.namespace == namespace && s.callables.iter().any(|c| c == callable))
            .flat_map(|(s, service)| s.queues(service))
            .collect();
        if queues.is_empty() {
            return None;
        }
        let mut consumers = 0;
        for queue in queues {
            consumers += self
                .broker
                .queue_counts(&queue)
                .await
                .ok()?
                .map_or(0, |q| q.consumers);
        }
        Some(consumers)
    }
}

/// How often a step that waits in its service's queue checks whether a
/// worker consumes it again.
const QUEUE_RECHECK: Duration = Duration::from_secs(2);
