//! The worker: consumes step-ready messages of its namespaces, runs their
//! handlers, publishes each result, and acks only once the result is safe.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use futures::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use tasker_protocol::message;
use tasker_protocol::topology::{self, message_type};
use tasker_protocol::{StepFailure, StepOutcome, StepReady};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, error, info, warn};

use tasker_protocol::{DeadLetterReason, ErrorCode, ServedNamespace};
use tasker_runtime::acks::Acks;
use tasker_runtime::broker::{self, Broker};
use tasker_runtime::health::{self, Health};
use tasker_runtime::publisher::{Outgoing, Publisher};
use tasker_runtime::{Reconnect, metrics};

use crate::announce::Identity;
pub use crate::config::WorkerConfig;
use crate::handler::Children;
use crate::recent::RecentResults;
use crate::{Error, StepContext, StepError, StepHandler};
use uuid::Uuid;

/// A worker: the namespaces it serves and the handlers it knows.
pub struct Worker {
    config: WorkerConfig,
    namespaces: Vec<String>,
    handlers: HashMap<String, Arc<dyn StepHandler>>,
}

impl Worker {
    /// A worker with no namespaces and no handlers yet.
    #[must_use]
    pub fn new(config: WorkerConfig) -> Self {
        Self {
            config,
            namespaces: Vec::new(),
            handlers: HashMap::new(),
        }
    }

    /// Serves the step queue of `namespace` too.
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespaces.push(namespace.into());
        self
    }

    /// The service this worker serves its namespaces' steps for.
    #[must_use]
    pub fn service(&self) -> &str {
        &self.config.service
    }

    /// The namespaces whose steps this worker serves.
    #[must_use]
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// Runs `handler` for steps whose template names `callable`.
    #[must_use]
    pub fn handler(mut self, callable: impl Into<String>, handler: impl StepHandler) -> Self {
        self.handlers.insert(callable.into(), Arc::new(handler));
        self
    }

    /// Consumes until `shutdown` is cancelled, reconnecting when the broker
    /// goes away. On shutdown it stops consuming, lets in-flight steps finish
    /// within the grace period, and closes the connection, which hands every
    /// unacked step back to its queue.
    ///
    /// # Errors
    ///
    /// Returns an error only for a configuration that cannot work (no
    /// namespace); broker failures are retried.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        if self.namespaces.is_empty() {
            return Err(Error::Config(
                "a worker needs at least one namespace; call .namespace(..)".into(),
            ));
        }
        if let Some(problem) = tasker_protocol::names::name_problem(&self.config.service) {
            return Err(Error::Config(format!(
                "the worker's service name {:?} {problem}; set WorkerConfig::service (or TASKER_SERVICE) to the \
                 service it is part of, such as \"billing\": workers of one service share its queue",
                self.config.service
            )));
        }
        if self.config.max_redeliveries >= u64::from(topology::DELIVERY_LIMIT) {
            return Err(Error::Config(format!(
                "WorkerConfig::max_redeliveries is {}; keep it below the queues' delivery limit, {}, \
                 so the worker dead-letters a message before the broker drops it",
                self.config.max_redeliveries,
                topology::DELIVERY_LIMIT
            )));
        }
        if !(1..=topology::MAX_PARTITIONS).contains(&self.config.partitions) {
            return Err(Error::Config(format!(
                "WorkerConfig::partitions is {}; split a service's steps over 1 to {} queues",
                self.config.partitions,
                topology::MAX_PARTITIONS
            )));
        }
        if self.handlers.is_empty() {
            return Err(Error::Config(
                "a worker needs at least one handler; call .handler(callable, handler)".into(),
            ));
        }
        let health = Health::new(&[health::RABBITMQ]);
        if let Some(addr) = self.config.health_addr {
            let (health, shutdown) = (health.clone(), shutdown.clone());
            tokio::spawn(async move {
                if let Err(e) = health::serve(addr, health, shutdown).await {
                    error!(%addr, error = %e, "cannot serve the health endpoints; pass another address");
                }
            });
        }
        let recent = Mutex::new(RecentResults::new(self.config.remembered_results));
        let identity = Identity {
            worker_id: Uuid::new_v4(),
            service: self.config.service.clone(),
            concurrency: self.config.concurrency,
            started_at: Utc::now(),
            every: self.config.announce_every,
        };
        let shared = Arc::new(Shared {
            config: self.config,
            handlers: self.handlers,
            health,
            recent,
            identity,
        });
        let mut backoff = Reconnect::default();
        loop {
            match session(&shared, &self.namespaces, &shutdown, &mut backoff).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_retryable() => {
                    shared.health.down(health::RABBITMQ, &e);
                    let delay = backoff.next_delay();
                    tokio::select! {
                        () = shutdown.cancelled() => return Ok(()),
                        () = tokio::time::sleep(delay) => {}
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

struct Shared {
    config: WorkerConfig,
    handlers: HashMap<String, Arc<dyn StepHandler>>,
    health: Health,
    recent: Mutex<RecentResults>,
    identity: Identity,
}

/// One connection's life: declare, consume, and on shutdown drain.
async fn session(
    shared: &Arc<Shared>,
    namespaces: &[String],
    shutdown: &CancellationToken,
    backoff: &mut Reconnect,
) -> Result<(), Error> {
    let broker = Broker::connect_with_heartbeat(
        &shared.config.amqp_url,
        &shared.config.name,
        shared.config.heartbeat,
    )
    .await?;
    let publisher = broker.publisher().await?;
    let channel = broker.channel().await?;
    broker.declare_common().await?;
    // RabbitMQ counts the prefetch per consumer: split over the queues, it
    // keeps the worker near `concurrency` steps at once.
    let partitions = shared.config.partitions;
    let prefetch = u32::from(shared.config.concurrency).div_ceil(partitions);
    channel
        .basic_qos(
            u16::try_from(prefetch).unwrap_or(u16::MAX),
            BasicQosOptions::default(),
        )
        .await
        .map_err(|e| broker.error(e))?;
    // The service's queue of each namespace, bound to every callable this
    // worker serves: its steps, and only those, reach it.
    let mut callables: Vec<&str> = shared.handlers.keys().map(String::as_str).collect();
    callables.sort_unstable();
    let mut consumers = Vec::new();
    let mut serves = Vec::with_capacity(namespaces.len());
    for namespace in namespaces {
        broker.declare_namespace(namespace).await?;
        let queues = broker
            .declare_partitions(
                &channel,
                namespace,
                &shared.config.service,
                &callables,
                partitions,
            )
            .await?;
        for (index, queue) in queues.into_iter().enumerate() {
            let consumer = channel
                .basic_consume(
                    queue.as_str().into(),
                    format!("{}-{namespace}-{index}", shared.config.name).into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| broker.error(e))?;
            let queue: Arc<str> = queue.into();
            consumers.push(consumer.map(move |d| (queue.clone(), d)));
        }
        serves.push(ServedNamespace {
            namespace: namespace.clone(),
            queue: topology::service_queue(namespace, &shared.config.service),
            callables: callables.iter().map(|c| (*c).to_owned()).collect(),
            partitions,
        });
    }
    backoff.succeeded();
    shared.health.up(health::RABBITMQ);
    info!(service = %shared.config.service, namespaces = ?namespaces, callables = callables.len(),
        concurrency = shared.config.concurrency, broker = broker.url(), "worker ready");
    // Announced once it consumes: a coordinator may then release the steps
    // that waited for these callables.
    if let Err(e) = shared.identity.announce(&publisher, &serves, false).await {
        warn!(error = %e, "the worker's announcement was not sent; the next one will be");
    }
    let announcing = CancellationToken::new();
    tokio::spawn(shared.identity.clone().keep_announcing(
        publisher.clone(),
        serves.clone(),
        announcing.clone(),
    ));

    let acks = Acks::start(channel.clone());
    let mut deliveries = futures::stream::select_all(consumers);
    let tracker = TaskTracker::new();
    let outcome = loop {
        tokio::select! {
            () = shutdown.cancelled() => break Ok(()),
            next = deliveries.next() => match next {
                Some((queue, Ok(delivery))) => {
                    let shared = shared.clone();
                    let publisher = publisher.clone();
                    let acks = acks.clone();
                    let span = delivery_span(&queue, &delivery);
                    tracker.spawn(async move {
                        if let Err(e) = handle_delivery(&shared, &publisher, &acks, &queue, delivery).instrument(span).await {
                            // The delivery stays unacked and comes back once the
                            // connection is replaced.
                            debug!(error = %e, "step not acknowledged");
                        }
                    });
                }
                Some((_, Err(e))) => break Err(broker.error(e)),
                None => break Err(Error::ConsumerCancelled),
            }
        }
    };
    // Stop taking new work first, then give in-flight steps their grace.
    drop(deliveries);
    tracker.close();
    if outcome.is_ok() {
        info!(in_flight = tracker.len(), grace = ?shared.config.shutdown_grace, "stopping: finishing in-flight steps");
        if tokio::time::timeout(shared.config.shutdown_grace, tracker.wait())
            .await
            .is_err()
        {
            warn!(
                unfinished = tracker.len(),
                "grace period over; unfinished steps go back to the queue"
            );
        }
    }
    announcing.cancel();
    if outcome.is_ok() {
        // Stopping on purpose: the coordinators drop it from the list now.
        let _ = shared.identity.announce(&publisher, &serves, true).await;
    }
    acks.flush().await;
    broker.close().await;
    outcome
}

/// The consumer span of one delivery: a child of the span that published
/// the message, so the task's trace continues across the queue. Named
/// `process step` until the message is read, `process <step>` after.
fn delivery_span(queue: &str, delivery: &Delivery) -> tracing::Span {
    let span = tracing::info_span!("process step",
        otel.name = "process step",
    trace_id = tracing::field::Empty,
    span_id = tracing::field::Empty,
        otel.kind = "consumer",
        otel.status_code = tracing::field::Empty,
        otel.status_message = tracing::field::Empty,
        messaging.system = "rabbitmq",
        messaging.operation.type = "process",
        messaging.destination.name = %queue,
        messaging.rabbitmq.destination.routing_key = %delivery.routing_key.as_str(),
        messaging.message.id = tracing::field::Empty,
        tasker.task.id = tracing::field::Empty,
        tasker.namespace = tracing::field::Empty,
        tasker.task.name = tracing::field::Empty,
        tasker.task.version = tracing::field::Empty,
        tasker.step.name = tracing::field::Empty,
        tasker.step.attempt = tracing::field::Empty,
        tasker.step.outcome = tracing::field::Empty,
    );
    tasker_runtime::telemetry::continue_from(&span, delivery.properties.headers().as_ref());
    tasker_runtime::telemetry::record_ids(&span);
    span
}

/// Runs one step-ready delivery to the end: result published and confirmed,
/// then acked; or dead-lettered when it cannot be used.
async fn handle_delivery(
    shared: &Shared,
    publisher: &Publisher,
    acks: &Acks,
    queue: &str,
    delivery: Delivery,
) -> Result<(), Error> {
    let ready: StepReady = match message::decode(&delivery.data, shared.config.max_message_bytes) {
        Ok(ready) => ready,
        Err(e) => {
            return publisher
                .dead_letter(&delivery, acks, queue, e.reason(), &e.to_string())
                .await;
        }
    };
    let span = tracing::Span::current();
    span.record("tasker.task.id", tracing::field::display(ready.task_id));
    span.record("tasker.namespace", ready.namespace.as_str());
    span.record("tasker.task.name", ready.task_name.as_str());
    span.record("tasker.task.version", ready.task_version.as_str());
    span.record("tasker.step.name", ready.step.as_str());
    // Named for its step once the message says which, as the
    // coordinator's `publish <step>` span is.
    tasker_runtime::telemetry::rename(&span, format!("process {}", ready.step));
    span.record("tasker.step.attempt", ready.attempt);
    if let Some(id) = delivery.properties.message_id() {
        span.record("messaging.message.id", id.as_str());
    }
    let redeliveries = broker::delivery_count(&delivery);
    if redeliveries > shared.config.max_redeliveries {
        let reason = format!(
            "redelivered {redeliveries} times, over the limit of {}; the step may crash its worker",
            shared.config.max_redeliveries
        );
        return publisher
            .dead_letter(&delivery, acks, queue, DeadLetterReason::RedeliveryLimit, &reason)
            .await;
    }

    let key = (ready.task_id, ready.step.clone(), ready.attempt);
    let remembered = shared.recent.lock().expect("recent results poisoned").get(&key);
    if let Some(result) = remembered {
        info!(task_id = %ready.task_id, step = %ready.step, attempt = ready.attempt,
            "step already finished here; sending its result again instead of running it twice");
        publisher.publish(result).await?;
        acks.ack(&delivery);
        return Ok(());
    }

    let started_at = Utc::now();
    let labels = metrics::step(&ready.namespace, &ready.task_name, &ready.step);
    if let Some(published) = broker::published_at(&delivery) {
        let wait = (started_at - published).num_microseconds().unwrap_or(0).max(0);
        metrics::global()
            .queue_wait
            .get_or_create(&labels)
            .observe(wait as f64 / 1e6);
    }
    let outcome = run_handler(shared, publisher, &ready).await;
    let finished_at = Utc::now();
    let ran = (finished_at - started_at).num_microseconds().unwrap_or(0).max(0);
    metrics::global()
        .step_duration
        .get_or_create(&labels)
        .observe(ran as f64 / 1e6);
    let mut result = ready.result(started_at, finished_at, outcome);
    let mut payload = message::encode(&result);
    let limit = shared.config.max_message_bytes;
    if payload.len() > limit {
        // Never published: the coordinator would dead-letter it, and the
        // step would wait for its lease. A small failure goes instead.
        result.outcome = failed(StepError::permanent(
            ErrorCode::ResultTooLarge,
            format!(
                "the result of step {} makes a step result of {} bytes, over the limit of {limit} bytes; return \
                 less (store large data elsewhere and return a reference to it), or raise the limit \
                 (TASKER_MAX_MESSAGE_BYTES) on every coordinator and worker",
                ready.step,
                payload.len()
            ),
        ));
        payload = message::encode(&result);
    }
    match &result.outcome {
        StepOutcome::Completed { .. } => {
            tracing::Span::current().record("tasker.step.outcome", "completed");
            info!(task_id = %ready.task_id, step = %ready.step, attempt = ready.attempt, "step completed");
        }
        StepOutcome::Failed { error } => {
            let span = tracing::Span::current();
            span.record(
                "tasker.step.outcome",
                if error.retryable {
                    "failed_retryable"
                } else {
                    "failed_permanent"
                },
            );
            span.record("otel.status_code", "ERROR");
            span.record("otel.status_message", error.code.as_str());
            warn!(task_id = %ready.task_id, step = %ready.step, attempt = ready.attempt,
                code = %error.code, retryable = error.retryable, message = %error.message, "step failed");
        }
        StepOutcome::WaitingForChild { child_task_id } => {
            tracing::Span::current().record("tasker.step.outcome", "waiting_for_child");
            info!(task_id = %ready.task_id, step = %ready.step, attempt = ready.attempt,
                %child_task_id, "step waits for its child task");
        }
    }
    let outgoing = Outgoing {
        exchange: topology::EVENTS_EXCHANGE.to_owned(),
        routing_key: topology::step_result_routing_key(&ready.namespace),
        payload,
        properties: broker::properties(message_type::STEP_RESULT, Some(ready.task_id)),
        mandatory: true,
    };
    // Remembered before it is published: a redelivery that overtakes the
    // confirm, or that follows a failed publish, sends this result rather
    // than running the handler a second time.
    shared
        .recent
        .lock()
        .expect("recent results poisoned")
        .insert(key, outgoing.clone());
    publisher.publish(outgoing).await?;
    acks.ack(&delivery);
    Ok(())
}

/// Runs the handler; a panic or a timeout becomes a step failure instead of
/// taking the worker down.
async fn run_handler(shared: &Shared, publisher: &Publisher, ready: &StepReady) -> StepOutcome {
    let Some(handler) = shared.handlers.get(&ready.callable).cloned() else {
        let known: Vec<&str> = shared.handlers.keys().map(String::as_str).collect();
        return failed(StepError::permanent(
            ErrorCode::HandlerNotFound,
            format!(
                "this worker has no handler for callable {:?}; register one with .handler({:?}, ..) (known: {})",
                ready.callable,
                ready.callable,
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        ));
    };
    let ctx = match StepContext::with_children(ready.clone(), Children::Broker(publisher.clone())) {
        Ok(ctx) => ctx,
        Err(e) => return failed(e),
    };
    // In place, in the delivery's span: what the handler logs and
    // publishes joins the task's trace. A panic is caught, and a timeout
    // drops the handler's future, which cancels it.
    let call = AssertUnwindSafe(handler.call(&ctx)).catch_unwind();
    // A timeout no template could give (negative, not a number, or past
    // a day's worth of u64 seconds) is read as none at all.
    let limit = ready
        .timeout_seconds
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok().map(|d| (secs, d)));
    let joined = match limit {
        Some((secs, limit)) => match tokio::time::timeout(limit, call).await {
            Ok(joined) => joined,
            Err(_) => {
                return failed(StepError::retryable(
                    ErrorCode::Timeout,
                    format!("the handler ran past timeout_seconds ({secs} s)"),
                ));
            }
        },
        None => call.await,
    };
    match joined {
        Ok(Ok(value)) => match serde_json::value::to_raw_value(&value) {
            Ok(result) => StepOutcome::Completed { result },
            Err(e) => failed(StepError::permanent(
                ErrorCode::InvalidResult,
                format!("the handler's result is not JSON: {e}"),
            )),
        },
        Ok(Err(StepError::WaitingForChild { child_task_id })) => {
            if ctx.started_child() == Some(child_task_id) {
                StepOutcome::WaitingForChild { child_task_id }
            } else {
                failed(StepError::permanent(
                    ErrorCode::NoChildTask,
                    format!(
                        "the handler says it waits for child task {child_task_id}, which it did not start; \
                         return what StepContext::complete_with_child returns"
                    ),
                ))
            }
        }
        Ok(Err(e)) => failed(e),
        Err(panic) => {
            let text = panic_text(panic.as_ref());
            error!(task_id = %ready.task_id, step = %ready.step, panic = %text, "step handler panicked");
            failed(StepError::permanent(
                ErrorCode::HandlerPanic,
                format!("the handler panicked: {text}"),
            ))
        }
    }
}

fn failed(error: StepError) -> StepOutcome {
    let (retryable, code, message, retry_after) = match error {
        StepError::Permanent { code, message } => (false, code, message, None),
        StepError::WaitingForChild { child_task_id } => (
            false,
            ErrorCode::NoChildTask.into(),
            format!("waiting for child task {child_task_id} is not possible here"),
            None,
        ),
        StepError::Retryable {
            code,
            message,
            retry_after,
        } => (true, code, message, retry_after),
    };
    StepOutcome::Failed {
        error: StepFailure {
            retryable,
            code,
            message,
            retry_after_seconds: retry_after.map(|d| d.as_secs_f64()),
        },
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic payload".to_owned())
}
