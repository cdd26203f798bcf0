//! The coordinator's loops: task requests in, step results in, due retries
//! out. Each delivery is acked only after the Redis transition it caused and
//! every message that transition asks for are confirmed, so a crash at any
//! point leaves the delivery to be redelivered, and the scripts recognise a
//! redelivery and hand back the effects to carry out again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use serde_json::value::RawValue;
use tasker_protocol::message::{self, DEFAULT_MAX_MESSAGE_BYTES, RejectCode};
use tasker_protocol::registry::LookupError;
use tasker_protocol::topology::{self, message_type};
use tasker_protocol::{
    CommandReply, PROTOCOL_VERSION, ParentStep, StepOutcome, StepReady, StepResult, StepState, TaskAction,
    TaskCommand, TaskRejected, TaskRequest, TaskStatus, TaskTemplate, TemplateRegistry,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, error, info, warn};
use uuid::Uuid;

use tasker_worker::acks::Acks;
use tasker_worker::broker::{self, Broker, Outgoing, Publisher, REDELIVERY_LIMIT};
use tasker_worker::health::{self, Health};
use tasker_worker::metrics;
use tasker_worker::worker::Reconnect;

use crate::Error;
use crate::batch::Batcher;
use crate::store::{
    Applied, Bookkeeping, Created, Inputs, Operated, Operation, ResultToRecord, StepRef, Store, TaskSnapshot,
    TaskToCreate, Verdict,
};

/// How a coordinator runs.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// The RabbitMQ URL (`amqp://` or `amqps://`).
    pub amqp_url: String,
    /// The Redis URL (`redis://` or `rediss://`).
    pub redis_url: String,
    /// How many deliveries are processed at once, per input queue.
    pub prefetch: u16,
    /// Larger messages are dead-lettered.
    pub max_message_bytes: usize,
    /// How long a finished task stays in Redis.
    pub retention: Duration,
    /// How often the retry schedule is checked.
    pub retry_poll: Duration,
    /// How long a claimed retry or expired lease stays with its claimant
    /// before another coordinator may take it over.
    pub claim_hold: Duration,
    /// How long a step without `timeout_seconds` may run before it is
    /// treated as stuck: retried as a retryable `timeout`.
    pub default_lease: Duration,
    /// Added to every step's lease, for the trip through the broker.
    pub lease_margin: Duration,
    /// Shown in the broker's connection list and in logs.
    pub name: String,
    /// Where to serve `/healthz` and `/readyz`, if anywhere.
    pub health_addr: Option<std::net::SocketAddr>,
    /// A message delivered more often than this is dead-lettered: it is
    /// probably what crashes coordinators.
    pub max_redeliveries: u64,
    /// How long a request on `tasker.requests.unrouted` for a namespace
    /// this coordinator does not serve waits for that namespace's queue
    /// before it is rejected. A RabbitMQ that is starting routes requests
    /// there until it has recovered the queues, and the coordinator that
    /// sees them may be another team's.
    pub unrouted_grace: Duration,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            amqp_url: tasker_worker::defaults::AMQP_URL.to_owned(),
            redis_url: DEFAULT_REDIS_URL.to_owned(),
            prefetch: 256,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            retention: Duration::from_secs(7 * 24 * 3600),
            retry_poll: Duration::from_millis(50),
            claim_hold: Duration::from_secs(30),
            default_lease: Duration::from_secs(600),
            lease_margin: Duration::from_secs(30),
            name: format!("tasker-coordinator-{}", std::process::id()),
            health_addr: None,
            max_redeliveries: 5,
            unrouted_grace: Duration::from_secs(30),
        }
    }
}

/// How many calls creating tasks, and how many recording step results, are
/// out to Redis at once; requests and results that arrive meanwhile share
/// the next call of their kind.
const CALLS_IN_FLIGHT: usize = 2;

/// Where Redis is when `TASKER_REDIS_URL` is not set.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Runs a coordinator until `shutdown` is cancelled, reconnecting to the
/// broker and to Redis whenever they go away.
///
/// # Errors
///
/// Returns an error that retrying cannot fix, such as a malformed URL.
pub async fn run(
    config: CoordinatorConfig,
    templates: TemplateRegistry,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let health = Health::new(&[health::RABBITMQ, health::REDIS]);
    if let Some(addr) = config.health_addr {
        let (health, shutdown) = (health.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(e) = health::serve(addr, health, shutdown).await {
                error!(%addr, error = %e, "cannot serve the health endpoints; pass another address");
            }
        });
    }
    let mut backoff = Reconnect::default();
    let store = loop {
        match Store::connect(&config.redis_url, config.retention).await {
            Ok(store) => break store,
            Err(e) if e.is_retryable() => {
                health.down(health::REDIS, &e);
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
            Err(e) => return Err(e),
        }
    };
    health.up(health::REDIS);
    let mut backoff = Reconnect::default();
    let templates = Arc::new(templates);
    loop {
        match session(&config, &templates, &store, &health, &shutdown, &mut backoff).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_retryable() => {
                health.down(health::RABBITMQ, &e);
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// The consumer span of one delivery, a child of the span that published
/// the message: the client's for a request, the worker's for a result.
fn delivery_span(input: Input, queue: &str, delivery: &Delivery) -> tracing::Span {
    let name = match input {
        Input::Request => "accept task",
        Input::Result => "record result",
    };
    let span = tracing::info_span!(
        "coordinator",
        otel.name = name,
        otel.kind = "consumer",
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        messaging.system = "rabbitmq",
        messaging.operation.type = "process",
        messaging.destination.name = %queue,
        messaging.rabbitmq.destination.routing_key = %delivery.routing_key.as_str(),
        messaging.message.id = delivery.properties.message_id().as_ref().map(|m| m.to_string()).unwrap_or_default(),
        redelivered = delivery.redelivered,
        tasker.task.id = tracing::field::Empty,
        tasker.step.name = tracing::field::Empty,
        tasker.step.attempt = tracing::field::Empty,
        tasker.step.outcome = tracing::field::Empty,
    );
    tasker_worker::telemetry::continue_from(&span, delivery.properties.headers().as_ref());
    tasker_worker::telemetry::record_ids(&span);
    span
}

/// Which kind of message a queue holds.
#[derive(Debug, Clone, Copy)]
enum Input {
    Request,
    Result,
}

/// What every delivery handler needs.
struct Coordinator {
    config: CoordinatorConfig,
    templates: Arc<TemplateRegistry>,
    store: Store,
    /// Creates tasks in `store`, batched.
    creator: Batcher<TaskToCreate>,
    /// Records step results in `store`, batched.
    recorder: Batcher<ResultToRecord>,
    publisher: Publisher,
    /// Acks the deliveries of the consuming channel.
    acks: Acks,
    broker: Arc<Broker>,
    health: Health,
    /// Cancelled when the session ends, to stop retries in place.
    stop: CancellationToken,
}

async fn session(
    config: &CoordinatorConfig,
    templates: &Arc<TemplateRegistry>,
    store: &Store,
    health: &Health,
    shutdown: &CancellationToken,
    backoff: &mut Reconnect,
) -> Result<(), Error> {
    let broker = Arc::new(Broker::connect(&config.amqp_url, &config.name).await?);
    let publisher = broker.publisher().await?;
    let channel = broker.channel().await?;
    broker.declare_common(&channel).await?;
    broker.declare_requests_exchange(&channel).await?;
    channel
        .basic_qos(config.prefetch, BasicQosOptions::default())
        .await
        .map_err(|e| broker.error(e))?;
    let mut inputs = vec![(Input::Request, topology::UNROUTED_REQUESTS_QUEUE.to_owned())];
    for namespace in templates.namespaces() {
        broker.declare_namespace(&channel, namespace).await?;
        inputs.push((Input::Request, topology::request_queue(namespace)));
        inputs.push((Input::Result, topology::result_queue(namespace)));
    }
    let mut consumers = Vec::with_capacity(inputs.len());
    for (input, queue) in inputs {
        let consumer = channel
            .basic_consume(
                queue.as_str().into(),
                format!("{}-{queue}", config.name).into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| broker.error(e))?;
        let queue: Arc<str> = queue.into();
        consumers.push(consumer.map(move |d| (input, queue.clone(), d)));
    }
    backoff.succeeded();
    health.up(health::RABBITMQ);
    let stop = shutdown.child_token();
    info!(
        broker = broker.url(),
        templates = templates.iter().count(),
        "coordinator ready"
    );

    let coordinator = Arc::new(Coordinator {
        config: config.clone(),
        templates: templates.clone(),
        store: store.clone(),
        creator: Batcher::start(store.clone(), CALLS_IN_FLIGHT),
        recorder: Batcher::start(store.clone(), CALLS_IN_FLIGHT),
        publisher,
        acks: Acks::start(channel.clone()),
        broker: broker.clone(),
        health: health.clone(),
        stop: stop.clone(),
    });
    let tracker = TaskTracker::new();
    tracker.spawn(run_sweeper(coordinator.clone(), stop.clone()));

    let mut deliveries = futures::stream::select_all(consumers);
    let outcome = loop {
        tokio::select! {
            () = shutdown.cancelled() => break Ok(()),
            next = deliveries.next() => match next {
                Some((input, queue, Ok(delivery))) => {
                    let coordinator = coordinator.clone();
                    let span = delivery_span(input, &queue, &delivery);
                    tracker.spawn(async move { coordinator.handle(input, &queue, delivery).instrument(span).await });
                }
                Some((_, _, Err(e))) => break Err(Error::Broker(broker.error(e))),
                None => break Err(Error::Broker(tasker_worker::Error::ConsumerCancelled)),
            }
        }
    };
    stop.cancel();
    drop(deliveries);
    tracker.close();
    if tokio::time::timeout(Duration::from_secs(10), tracker.wait())
        .await
        .is_err()
    {
        warn!("in-flight deliveries did not finish in time; they will be redelivered");
    }
    coordinator.acks.flush().await;
    broker.close().await;
    outcome
}

impl Coordinator {
    /// Handles one delivery. A failure that may pass (Redis or the broker
    /// away) hands the delivery back to the queue after a pause.
    async fn handle(&self, input: Input, queue: &str, delivery: Delivery) {
        let deliveries = broker::delivery_count(&delivery);
        if deliveries > self.config.max_redeliveries {
            let reason = format!(
                "redelivered {deliveries} times, over the limit of {}; it may crash its coordinator",
                self.config.max_redeliveries
            );
            // If this fails the channel is gone, and the delivery comes back.
            let _ = self
                .dead_letter(&delivery, queue, REDELIVERY_LIMIT, &reason)
                .await;
            return;
        }
        // A failure of Redis or the broker is retried here, with the
        // delivery held, rather than handed back: a requeue would count as
        // a redelivery, and an outage would turn good messages into poison.
        let mut backoff = Reconnect::default();
        let mut retried = false;
        loop {
            // After a failed try, the transition may have been applied
            // already: treat the next try as a redelivery, so that the
            // scripts hand back the effects still to carry out.
            let redelivered = delivery.redelivered || retried;
            let result = match input {
                Input::Request => self.handle_request(queue, &delivery, redelivered).await,
                Input::Result => self.handle_result(queue, &delivery, redelivered).await,
            };
            match result {
                Ok(()) => {
                    self.health.up(health::REDIS);
                    return;
                }
                Err(e) if e.is_retryable() => {
                    match e {
                        Error::Redis { .. } => self.health.down(health::REDIS, &e),
                        Error::Broker(_) => self.health.down(health::RABBITMQ, &e),
                        _ => {}
                    }
                    retried = true;
                    tokio::select! {
                        () = self.stop.cancelled() => return,
                        () = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                }
                Err(e) => {
                    error!(error = %e, queue, "message cannot be processed; moving it to the dead-letter queue");
                    let _ = self
                        .dead_letter(&delivery, queue, "unprocessable", &e.to_string())
                        .await;
                    return;
                }
            }
        }
    }

    async fn handle_request(&self, queue: &str, delivery: &Delivery, redelivered: bool) -> Result<(), Error> {
        if delivery.properties.kind().as_ref().map(|k| k.as_str()) == Some(message_type::TASK_COMMAND) {
            return self.handle_command(queue, delivery).await;
        }
        let request: TaskRequest = match message::decode(&delivery.data, self.config.max_message_bytes) {
            Ok(r) => r,
            Err(e) => {
                let reason = format!("the task request cannot be read ({}): {e}", e.code());
                return self
                    .reject(queue, delivery, None, RejectCode::Undecodable, reason)
                    .await;
            }
        };
        let template = match self
            .templates
            .get(&request.namespace, &request.name, request.version.as_deref())
        {
            Ok(t) => t.clone(),
            Err(e) => {
                if queue == topology::UNROUTED_REQUESTS_QUEUE
                    && self.forward_unrouted(&request, delivery).await?
                {
                    self.acks.ack(delivery);
                    return Ok(());
                }
                let code = match e {
                    LookupError::UnknownTemplate { .. } => RejectCode::UnknownTemplate,
                    LookupError::UnknownVersion { .. } => RejectCode::UnknownVersion,
                };
                return self
                    .reject(queue, delivery, Some(&request), code, e.to_string())
                    .await;
            }
        };
        if !request.context.is_object() {
            let reason = format!(
                "the context of a {} request must be a JSON object, not {}",
                template.key(),
                json_kind(&request.context)
            );
            return self
                .reject(
                    queue,
                    delivery,
                    Some(&request),
                    RejectCode::InvalidContext,
                    reason,
                )
                .await;
        }
        let task_id = request
            .task_id()
            .or_else(|| {
                delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .and_then(|m| m.as_str().parse().ok())
            })
            .unwrap_or_else(Uuid::new_v4);
        let context = serde_json::to_string(&request.context).expect("a JSON value always serializes");
        let reply_to = delivery.properties.reply_to().as_ref().map(|q| q.to_string());
        let correlation = correlation_id(delivery, &request);
        let reply = reply_to.as_deref().map(|q| (q, correlation.as_str()));
        tracing::Span::current().record("tasker.task.id", tracing::field::display(task_id));
        let traceparent = tasker_worker::telemetry::traceparent(&tracing::Span::current());
        let prepared = self.store.prepare_task(
            task_id,
            &template,
            &context,
            reply,
            redelivered,
            traceparent.as_deref(),
            request.parent.as_ref(),
            |step| self.lease(&template, step),
        );
        let created = self.creator.apply(prepared).await?;
        let inputs = Inputs {
            context,
            results: Default::default(),
        };
        match created {
            Created::New { roots } => {
                match &request.parent {
                    Some(p) => info!(task_id = %task_id, template = %template.key(),
                        parent_task_id = %p.task_id, parent_step = %p.step, "child task accepted"),
                    None => info!(task_id = %task_id, template = %template.key(), "task accepted"),
                }
                let m = metrics::global();
                m.tasks
                    .get_or_create(&metrics::task_outcome(
                        &template.namespace,
                        &template.name,
                        "accepted",
                    ))
                    .inc();
                m.tasks_in_flight
                    .get_or_create(&metrics::task(&template.namespace, &template.name))
                    .inc();
                // The script has leased the roots and indexed the task.
                self.publish_steps(&template, task_id, &roots, 1, &inputs).await?;
            }
            Created::Existing { status, republish } => {
                info!(task_id = %task_id, ?status, "request for an existing task; nothing runs again");
                // The first delivery may have died before it published the
                // roots; the script has leased them again.
                self.publish_steps(&template, task_id, &republish, 1, &inputs)
                    .await?;
                // A late requester, or a later attempt of a parent step,
                // hears at once of a task that has finished.
                if status != TaskStatus::Running && (reply_to.is_some() || request.parent.is_some()) {
                    let late = Audience::Late {
                        reply: reply_to.as_deref().map(|q| (q, correlation.as_str())),
                        parent: request.parent.is_some(),
                    };
                    self.publish_finished(task_id, late).await?;
                }
            }
        }
        self.acks.ack(delivery);
        Ok(())
    }

    async fn handle_result(&self, queue: &str, delivery: &Delivery, redelivered: bool) -> Result<(), Error> {
        let result: StepResult = match message::decode(&delivery.data, self.config.max_message_bytes) {
            Ok(r) => r,
            Err(e) => {
                return self.dead_letter(delivery, queue, e.code(), &e.to_string()).await;
            }
        };
        let span = tracing::Span::current();
        span.record("tasker.task.id", tracing::field::display(result.task_id));
        span.record("tasker.step.name", result.step.as_str());
        span.record("tasker.step.attempt", result.attempt);
        let Ok(template) =
            self.templates
                .get(&result.namespace, &result.task_name, Some(&result.task_version))
        else {
            let reason = format!(
                "template {}/{}@{} is not loaded by this coordinator",
                result.namespace, result.task_name, result.task_version
            );
            return self
                .dead_letter(delivery, queue, "template_not_loaded", &reason)
                .await;
        };
        let template = template.clone();
        let Some(step) = template.step_index(&result.step) else {
            let reason = format!("template {} has no step {:?}", template.key(), result.step);
            return self.dead_letter(delivery, queue, "unknown_step", &reason).await;
        };
        if let StepOutcome::WaitingForChild { child_task_id } = result.outcome {
            self.wait_for_child(&template, step, &result, child_task_id)
                .await?;
        } else {
            self.apply(&template, step, &result, redelivered).await?;
        }
        self.acks.ack(delivery);
        Ok(())
    }

    /// A worker started a child task for the step: its lease ends, since the
    /// worker holds nothing any more, and the child's coordinator reports
    /// the outcome when the child finishes.
    async fn wait_for_child(
        &self,
        template: &TaskTemplate,
        step: usize,
        result: &StepResult,
        child: Uuid,
    ) -> Result<(), Error> {
        let noted = self
            .store
            .wait_for_child(result.task_id, step, result.attempt, child)
            .await?;
        let lease = StepRef::new(result.task_id, template, step, result.attempt);
        self.store
            .bookkeep(&template.namespace, &[Bookkeeping::EndLease(lease)])
            .await?;
        if noted {
            info!(task_id = %result.task_id, step = %result.step, attempt = result.attempt,
                child_task_id = %child, "step waits for its child task");
        } else {
            debug!(task_id = %result.task_id, step = %result.step, attempt = result.attempt,
                "the step moved on before its child task was noted; nothing to do");
        }
        Ok(())
    }

    /// An operator's retry or resolve: carried out, then answered on the
    /// command's `reply_to`.
    async fn handle_command(&self, queue: &str, delivery: &Delivery) -> Result<(), Error> {
        let command: TaskCommand = match message::decode(&delivery.data, self.config.max_message_bytes) {
            Ok(c) => c,
            Err(e) => return self.dead_letter(delivery, queue, e.code(), &e.to_string()).await,
        };
        tracing::Span::current().record("tasker.task.id", tracing::field::display(command.task_id));
        let reply = self.carry_out(&command).await?;
        if reply.accepted {
            info!(task_id = %command.task_id, action = ?command.action, message = %reply.message, "operator command carried out");
        } else {
            info!(task_id = %command.task_id, action = ?command.action, reason = %reply.message, "operator command refused");
        }
        if let Some(to) = delivery.properties.reply_to() {
            let mut properties = broker::properties(message_type::COMMAND_REPLY, Some(command.task_id));
            if let Some(c) = delivery.properties.correlation_id() {
                properties = properties.with_correlation_id(c.clone());
            }
            self.publisher
                .publish_all(vec![Outgoing {
                    exchange: String::new(),
                    routing_key: to.to_string(),
                    payload: message::encode(&reply),
                    properties,
                    mandatory: false,
                }])
                .await?;
        }
        self.acks.ack(delivery);
        Ok(())
    }

    async fn carry_out(&self, command: &TaskCommand) -> Result<CommandReply, Error> {
        let task_id = command.task_id;
        let refuse = |message: String| CommandReply {
            protocol_version: PROTOCOL_VERSION,
            task_id,
            accepted: false,
            message,
            started: Vec::new(),
            status: None,
        };
        let Some(snapshot) = self.store.task(task_id).await? else {
            return Ok(refuse(format!(
                "no task {task_id}; it never existed, or it finished more than the retention period ago"
            )));
        };
        let Ok(template) = self
            .templates
            .get(&snapshot.namespace, &snapshot.name, Some(&snapshot.version))
            .cloned()
        else {
            return Ok(refuse(format!(
                "template {}/{}@{} is not loaded by this coordinator",
                snapshot.namespace, snapshot.name, snapshot.version
            )));
        };
        let index = |name: &str| {
            template.step_index(name).ok_or_else(|| {
                let names: Vec<&str> = template.steps.iter().map(|s| s.name.as_str()).collect();
                format!(
                    "{} has no step {name:?}; its steps are {}",
                    template.key(),
                    names.join(", ")
                )
            })
        };
        let result_json = match &command.action {
            TaskAction::Resolve { result, .. } => result.to_string(),
            TaskAction::Retry { .. } | TaskAction::Cancel => String::new(),
        };
        let operation = match &command.action {
            TaskAction::Cancel => Operation::Cancel,
            TaskAction::Retry { step: None } => Operation::Retry { step: None },
            TaskAction::Retry { step: Some(name) } => match index(name) {
                Ok(i) => Operation::Retry { step: Some(i) },
                Err(m) => return Ok(refuse(m)),
            },
            TaskAction::Resolve { step, .. } => match index(step) {
                Ok(i) => Operation::Resolve {
                    step: i,
                    result: &result_json,
                },
                Err(m) => return Ok(refuse(m)),
            },
        };
        // Leases first, for every step the command may enqueue (a failed
        // or blocked step, at its next attempt): if this coordinator dies
        // after the store's change and before its publishes, the leases
        // run out and the steps are retried. Leases for steps that stay
        // put only ever expire into stale results, which are ignored.
        let candidates: Vec<Bookkeeping> = snapshot
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                !matches!(command.action, TaskAction::Cancel)
                    && matches!(s.state, StepState::Failed | StepState::Blocked)
            })
            .flat_map(|(i, s)| self.leases(&template, task_id, &[i], s.attempts + 1))
            .collect();
        self.store.bookkeep(&template.namespace, &candidates).await?;
        let (status, ready, inputs) = match self.store.operate(task_id, &template, operation).await? {
            Operated::Refused(reason) => return Ok(refuse(reason)),
            Operated::Done {
                status,
                ready,
                inputs,
            } => (status, ready, inputs),
        };
        let mut by_attempt: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (step, attempt) in &ready {
            by_attempt.entry(*attempt).or_default().push(*step);
        }
        for (attempt, steps) in &by_attempt {
            let leases = self.leases(&template, task_id, steps, *attempt);
            tokio::try_join!(
                self.store.bookkeep(&template.namespace, &leases),
                self.publish_steps(&template, task_id, steps, *attempt, &inputs),
            )?;
        }
        // Cancelling a task cancels the child tasks its steps wait for;
        // again for a redelivered command, since the first delivery may
        // have died before sending them.
        let children = match command.action {
            TaskAction::Cancel => self.cancel_children(&snapshot).await?,
            TaskAction::Retry { .. } | TaskAction::Resolve { .. } => Vec::new(),
        };
        if snapshot.status != TaskStatus::Running {
            // A retried or resolved task is in flight again.
            metrics::global()
                .tasks_in_flight
                .get_or_create(&metrics::task(&template.namespace, &template.name))
                .inc();
        }
        if status != TaskStatus::Running {
            self.publish_finished(task_id, Audience::Everyone).await?;
            count_finished(&template, status);
        }
        let started: Vec<String> = ready
            .iter()
            .map(|(s, _)| template.steps[*s].name.clone())
            .collect();
        let running = snapshot
            .steps
            .iter()
            .filter(|s| s.state == StepState::Enqueued)
            .count();
        let cancelling_children = match children.as_slice() {
            [] => String::new(),
            ids => format!(
                "; its child task(s) {} are being cancelled",
                ids.iter().map(Uuid::to_string).collect::<Vec<_>>().join(", ")
            ),
        };
        let message = match (&command.action, started.is_empty()) {
            (TaskAction::Cancel, _) if status == TaskStatus::Cancelled => "cancelled".to_owned(),
            (TaskAction::Cancel, _) => format!(
                "cancelling: nothing starts any more; the task ends cancelled once its {running} running step(s) finish{cancelling_children}"
            ),
            (TaskAction::Retry { .. }, _) => format!("retrying; started {}", started.join(", ")),
            (TaskAction::Resolve { step, .. }, true) => {
                format!("{step} resolved; nothing was waiting for it")
            }
            (TaskAction::Resolve { step, .. }, false) => {
                format!("{step} resolved; started {}", started.join(", "))
            }
        };
        Ok(CommandReply {
            protocol_version: PROTOCOL_VERSION,
            task_id,
            accepted: true,
            message,
            started,
            status: Some(status),
        })
    }

    /// Records a step result and carries out what it causes: the leases and
    /// retries to note, the steps now ready, and the task's report if it
    /// finished. Used for results from workers and for timeouts alike.
    async fn apply(
        &self,
        template: &Arc<TaskTemplate>,
        step: usize,
        result: &StepResult,
        redelivered: bool,
    ) -> Result<(), Error> {
        let policy = &template.steps[step].retry;
        let (applied, payload) = match &result.outcome {
            StepOutcome::Completed { result } => (Applied::Completed, result.get().to_owned()),
            StepOutcome::WaitingForChild { .. } => {
                unreachable!("handle_result notes children; they are no end")
            }
            StepOutcome::Failed { error } => {
                let payload = serde_json::to_string(error).expect("a failure always serializes");
                // Whether an attempt is left is the store's to say: attempts
                // count from an operator's last retry, which only it knows.
                if error.retryable && policy.retryable && policy.max_attempts > 1 {
                    let after = match error.retry_after_seconds {
                        Some(secs) if secs.is_finite() && secs >= 0.0 => Some(Duration::from_secs_f64(secs)),
                        _ => None,
                    };
                    (Applied::Retry { after }, payload)
                } else {
                    (Applied::Failed, payload)
                }
            }
        };
        let task_id = result.task_id;
        let prepared = self.store.prepare_result(
            task_id,
            template,
            step,
            result.attempt,
            applied,
            payload,
            result.started_at,
            result.finished_at,
            redelivered,
            tasker_worker::telemetry::traceparent(&tracing::Span::current()).as_deref(),
            |child| self.lease(template, child),
        );
        let recorded = self.recorder.apply(prepared).await?;
        match recorded.verdict {
            Verdict::Applied => {
                let outcome = match applied {
                    Applied::Completed => "completed",
                    Applied::Retry { .. } if recorded.retry_due.is_some() => "retried",
                    Applied::Retry { .. } | Applied::Failed => "failed",
                };
                metrics::global()
                    .steps
                    .get_or_create(&metrics::step_outcome(
                        &template.namespace,
                        &template.name,
                        &result.step,
                        outcome,
                    ))
                    .inc();
                debug!(task_id = %task_id, step = %result.step, attempt = result.attempt, ?applied, "step result applied");
            }
            Verdict::Duplicate => {
                info!(task_id = %task_id, step = %result.step, attempt = result.attempt,
                    redelivered, "duplicate step result; the first one stands");
            }
            Verdict::Stale => {
                info!(task_id = %task_id, step = %result.step, attempt = result.attempt,
                    "result for an attempt that is not the current one; ignored");
            }
            Verdict::UnknownTask => {
                warn!(task_id = %task_id, step = %result.step, "result for an unknown or expired task; ignored");
                return Ok(());
            }
        }
        // The script has ended the lease, leased the ready steps and
        // scheduled the retry already.
        if let Some(due) = recorded.retry_due {
            info!(task_id = %task_id, step = %result.step, attempt = result.attempt,
                retry_in_ms = (due - Utc::now()).num_milliseconds().max(0), "step will be retried");
        }
        // A task that has finished has no ready steps: at most one of the
        // two publishes anything. The script returns the report only when
        // it is to be sent: the first time, or again for a redelivery.
        let announce = async {
            match &recorded.finished {
                Some(snapshot) => self.announce(snapshot, Audience::Everyone).await,
                None => Ok(()),
            }
        };
        tokio::try_join!(
            self.publish_steps(template, task_id, &recorded.ready, 1, &recorded.inputs),
            announce,
        )?;
        if recorded.verdict == Verdict::Applied && recorded.status != TaskStatus::Running {
            count_finished(template, recorded.status);
        }
        if recorded.verdict == Verdict::Applied
            && recorded.ready.iter().any(|&s| template.dag.parents(s).len() > 1)
        {
            // A metric only: read off the delivery's path, so the ack does
            // not wait for it. One short task per released join.
            tokio::spawn(record_join_waits(
                self.store.clone(),
                template.clone(),
                task_id,
                recorded.ready.clone(),
            ));
        }
        Ok(())
    }

    /// Sends a cancel for the running child task of every step of `task`
    /// that waits for one, to the coordinators of the child's namespace,
    /// which cancel it as an operator's cancel would; the child then ends
    /// cancelled, and its report fails the step that waits for it. Gives
    /// back the children.
    async fn cancel_children(&self, task: &TaskSnapshot) -> Result<Vec<Uuid>, Error> {
        let waiting = task
            .steps
            .iter()
            .filter(|s| s.state == StepState::Enqueued)
            .filter_map(|s| s.child);
        let mut children = Vec::new();
        let mut commands = Vec::new();
        for child in waiting {
            let Some(snapshot) = self.store.task(child).await? else {
                continue;
            };
            if snapshot.status != TaskStatus::Running {
                continue; // Its report is on its way to the step.
            }
            info!(task_id = %task.task_id, child_task_id = %child, "cancelling the child task too");
            let cancel = TaskCommand {
                protocol_version: PROTOCOL_VERSION,
                task_id: child,
                action: TaskAction::Cancel,
            };
            commands.push(Outgoing {
                exchange: topology::REQUESTS_EXCHANGE.to_owned(),
                routing_key: snapshot.namespace,
                payload: message::encode(&cancel),
                properties: broker::properties(message_type::TASK_COMMAND, Some(child)),
                mandatory: true,
            });
            children.push(child);
        }
        self.publisher.publish_all(commands).await?;
        Ok(children)
    }

    /// How long an attempt of `step` may run before it is treated as lost:
    /// its `timeout_seconds` (or the default lease) plus a margin.
    fn lease(&self, template: &TaskTemplate, step: usize) -> Duration {
        template.steps[step].timeout.unwrap_or(self.config.default_lease) + self.config.lease_margin
    }

    /// Leases for `steps`, about to be published at `attempt`.
    fn leases(
        &self,
        template: &TaskTemplate,
        task_id: Uuid,
        steps: &[usize],
        attempt: u32,
    ) -> Vec<Bookkeeping> {
        steps
            .iter()
            .map(|&s| {
                let lease = StepRef::new(task_id, template, s, attempt);
                Bookkeeping::Lease(lease, Utc::now() + self.lease(template, s))
            })
            .collect()
    }

    /// Publishes a step-ready message for each step in `steps`, all at
    /// `attempt`, and waits for every confirm.
    async fn publish_steps(
        &self,
        template: &TaskTemplate,
        task_id: Uuid,
        steps: &[usize],
        attempt: u32,
        inputs: &Inputs,
    ) -> Result<(), Error> {
        if steps.is_empty() {
            return Ok(());
        }
        let mut messages = Vec::with_capacity(steps.len());
        let mut spans = Vec::with_capacity(steps.len());
        for &step in steps {
            let ready = step_ready(template, task_id, step, attempt, inputs)?;
            debug!(task_id = %task_id, step = %ready.step, attempt, "step published");
            // One producer span per attempt; the worker's span is its child.
            let queue = topology::step_queue(&template.namespace);
            let span = tracing::info_span!(
                "publish step",
                otel.name = format!("publish {}", ready.step),
                otel.kind = "producer",
                messaging.system = "rabbitmq",
                messaging.operation.type = "send",
                messaging.destination.name = %queue,
                messaging.rabbitmq.destination.routing_key = %template.namespace,
                messaging.message.id = tracing::field::Empty,
                tasker.task.id = %task_id,
                tasker.namespace = %template.namespace,
                tasker.task.name = %template.name,
                tasker.task.version = %template.version,
                tasker.step.name = %ready.step,
                tasker.step.attempt = attempt,
            );
            // A join's publish links to the recording of each predecessor's
            // result: it shows what the join waited for.
            let parents = template.dag.parents(step);
            if parents.len() > 1 && tasker_worker::telemetry::exporting() {
                let linked = self.store.result_spans(task_id, parents).await?;
                tasker_worker::telemetry::add_links(&span, linked.iter().flatten());
            }
            let properties = span.in_scope(|| broker::properties(message_type::STEP_READY, Some(task_id)));
            if let Some(id) = properties.message_id() {
                span.record("messaging.message.id", id.as_str());
            }
            spans.push(span);
            messages.push(Outgoing {
                exchange: topology::STEPS_EXCHANGE.to_owned(),
                routing_key: template.namespace.clone(),
                payload: message::encode(&ready),
                properties,
                mandatory: true,
            });
        }
        // The producer spans end when the broker has confirmed.
        let published = self.publisher.publish_all(messages).await;
        drop(spans);
        Ok(published?)
    }

    /// Reads the task and publishes its report to `audience`.
    async fn publish_finished(&self, task_id: Uuid, audience: Audience<'_>) -> Result<(), Error> {
        match self.store.task(task_id).await? {
            Some(snapshot) => self.announce(&snapshot, audience).await,
            None => Ok(()),
        }
    }

    /// Publishes the report of the finished task `snapshot` to `audience`.
    async fn announce(&self, snapshot: &TaskSnapshot, audience: Audience<'_>) -> Result<(), Error> {
        let task_id = snapshot.task_id;
        let report = snapshot.report();
        let payload = message::encode(&report);
        let props = || broker::properties(message_type::TASK_FINISHED, Some(task_id));
        let mut messages = Vec::new();
        let direct = |queue: &str, correlation: &str| Outgoing {
            exchange: String::new(),
            routing_key: queue.to_owned(),
            payload: payload.clone(),
            properties: props().with_correlation_id(correlation.into()),
            // A requester that went away takes its reply queue with it.
            mandatory: false,
        };
        match audience {
            Audience::Late { reply, parent } => {
                if let Some((queue, correlation)) = reply {
                    messages.push(direct(queue, correlation));
                }
                // The store has just moved the parent link to the asking attempt.
                if parent && let Some(parent) = &report.parent {
                    messages.push(to_parent(parent, &parent.result_of(&report)));
                }
            }
            Audience::Everyone => {
                info!(task_id = %task_id, status = ?report.status, "task finished");
                if let Some(tp) = &snapshot.traceparent {
                    tasker_worker::telemetry::record_finished_span(
                        &format!("task {}/{}", report.namespace, report.name),
                        tp,
                        report.created_at.into(),
                        report.finished_at.into(),
                        vec![
                            ("tasker.task.id", task_id.to_string()),
                            ("tasker.namespace", report.namespace.clone()),
                            ("tasker.task.name", report.name.clone()),
                            ("tasker.task.version", report.version.clone()),
                            (
                                "tasker.task.status",
                                format!("{:?}", report.status).to_lowercase(),
                            ),
                        ],
                        report.status != TaskStatus::Complete,
                    );
                }
                messages.push(Outgoing {
                    exchange: topology::EVENTS_EXCHANGE.to_owned(),
                    routing_key: topology::task_finished_routing_key(&report.namespace, &report.name),
                    payload: payload.clone(),
                    properties: props(),
                    mandatory: false,
                });
                for (queue, correlation) in &snapshot.replies {
                    messages.push(direct(queue, correlation));
                }
                if let Some(parent) = &report.parent {
                    messages.push(to_parent(parent, &parent.result_of(&report)));
                }
            }
        }
        Ok(self.publisher.publish_all(messages).await?)
    }

    /// Answers a request that cannot become a task: a task-rejected event to
    /// the events exchange and the requester, then the request itself to the
    /// dead-letter queue, so it can be replayed once the cause is fixed.
    async fn reject(
        &self,
        queue: &str,
        delivery: &Delivery,
        request: Option<&TaskRequest>,
        code: RejectCode,
        reason: String,
    ) -> Result<(), Error> {
        warn!(code = code.as_str(), %reason, "task request rejected");
        // Label only with names this coordinator serves: a client's typo
        // must not create a new series.
        let (namespace, name) = match request {
            Some(r) if self.templates.get(&r.namespace, &r.name, None).is_ok() => {
                (r.namespace.as_str(), r.name.as_str())
            }
            _ => ("unknown", "unknown"),
        };
        metrics::global()
            .tasks
            .get_or_create(&metrics::task_outcome(namespace, name, "rejected"))
            .inc();
        let rejected = TaskRejected {
            protocol_version: PROTOCOL_VERSION,
            request_id: request.and_then(|r| r.request_id),
            namespace: request.map(|r| r.namespace.clone()),
            name: request.map(|r| r.name.clone()),
            code,
            reason: reason.clone(),
        };
        let payload = message::encode(&rejected);
        let mut messages = vec![Outgoing {
            exchange: topology::EVENTS_EXCHANGE.to_owned(),
            routing_key: topology::TASK_REJECTED_ROUTING_KEY.to_owned(),
            payload: payload.clone(),
            properties: broker::properties(message_type::TASK_REJECTED, None),
            mandatory: false,
        }];
        if let Some(reply_to) = delivery.properties.reply_to() {
            let correlation = match request {
                Some(r) => correlation_id(delivery, r),
                None => fallback_correlation(delivery).unwrap_or_default(),
            };
            messages.push(Outgoing {
                exchange: String::new(),
                routing_key: reply_to.to_string(),
                payload,
                properties: broker::properties(message_type::TASK_REJECTED, None)
                    .with_correlation_id(correlation.into()),
                mandatory: false,
            });
        }
        if let Some(r) = request
            && let Some(parent) = &r.parent
        {
            messages.push(to_parent(
                parent,
                &parent.rejected(&r.namespace, &r.name, &reason),
            ));
        }
        self.publisher.publish_all(messages).await?;
        self.dead_letter(delivery, queue, code.as_str(), &reason).await
    }

    /// A request reached the unrouted queue although its namespace may be
    /// served: bindings can be missing for a moment while RabbitMQ
    /// recovers. If the namespace's request queue exists, the request goes
    /// straight to it, through the default exchange, which needs no binding,
    /// and `true` is returned; a coordinator that serves the namespace takes
    /// it from there.
    async fn forward_unrouted(&self, request: &TaskRequest, delivery: &Delivery) -> Result<bool, Error> {
        let queue = topology::request_queue(&request.namespace);
        // Until the request is `unrouted_grace` old, its namespace's queue
        // may only be missing because RabbitMQ is still recovering it.
        let deadline = broker::published_at(delivery)
            .and_then(|at| {
                chrono::Duration::from_std(self.config.unrouted_grace)
                    .ok()
                    .map(|g| at + g)
            })
            .unwrap_or_else(Utc::now);
        loop {
            // A passive declare of a missing queue closes its channel: use
            // one of its own.
            let channel = self.broker.channel().await?;
            let exists = channel
                .queue_declare(
                    queue.as_str().into(),
                    lapin::options::QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .is_ok();
            let _ = channel.close(200, "done".into()).await;
            if exists {
                break;
            }
            if Utc::now() >= deadline {
                return Ok(false);
            }
            // Stopping: leave the request unacked, for another coordinator.
            tokio::select! {
                () = self.stop.cancelled() => return Err(tasker_worker::Error::ConsumerCancelled.into()),
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        info!(namespace = %request.namespace, "request reached the unrouted queue while its namespace is served; forwarding it");
        self.publisher
            .publish(Outgoing {
                exchange: String::new(),
                routing_key: queue,
                payload: delivery.data.clone(),
                properties: delivery.properties.clone(),
                mandatory: true,
            })
            .await?;
        Ok(true)
    }

    async fn dead_letter(
        &self,
        delivery: &Delivery,
        queue: &str,
        code: &str,
        reason: &str,
    ) -> Result<(), Error> {
        Ok(self
            .publisher
            .dead_letter(delivery, &self.acks, queue, code, reason)
            .await?)
    }
}

/// Who hears of a finished task.
enum Audience<'a> {
    /// Everyone, when it has just finished: the events exchange, every
    /// requester, and the parent step of a child task.
    Everyone,
    /// A request for a task that had finished already: its requester's
    /// reply queue, if it gave one, and the parent step if it came from one.
    Late {
        /// The reply queue and correlation id.
        reply: Option<(&'a str, &'a str)>,
        /// Whether the request came from a parent step.
        parent: bool,
    },
}

/// A step result for the parent step of a child task, to the parent's
/// result queue.
fn to_parent(parent: &ParentStep, result: &StepResult) -> Outgoing {
    Outgoing {
        exchange: topology::EVENTS_EXCHANGE.to_owned(),
        routing_key: topology::step_result_routing_key(&parent.namespace),
        payload: message::encode(result),
        properties: broker::properties(message_type::STEP_RESULT, Some(parent.task_id)),
        mandatory: true,
    }
}

/// Counts a task that has just ended.
fn count_finished(template: &TaskTemplate, status: TaskStatus) {
    let m = metrics::global();
    let outcome = match status {
        TaskStatus::Complete => "complete",
        TaskStatus::Cancelled => "cancelled",
        TaskStatus::Failed | TaskStatus::Running => "failed",
    };
    m.tasks
        .get_or_create(&metrics::task_outcome(
            &template.namespace,
            &template.name,
            outcome,
        ))
        .inc();
    m.tasks_in_flight
        .get_or_create(&metrics::task(&template.namespace, &template.name))
        .dec();
}

/// For each join among `ready`, the time from its first parent finishing
/// to its last, into the join-wait histogram. A metric only: a failure
/// to read it is logged and forgotten.
async fn record_join_waits(store: Store, template: Arc<TaskTemplate>, task_id: Uuid, ready: Vec<usize>) {
    for &join in ready.iter().filter(|&&s| template.dag.parents(s).len() > 1) {
        match store.finish_times(task_id, template.dag.parents(join)).await {
            Ok(times) => {
                let times: Vec<i64> = times.into_iter().flatten().collect();
                if let (Some(first), Some(last)) = (times.iter().min(), times.iter().max()) {
                    let labels =
                        metrics::step(&template.namespace, &template.name, &template.steps[join].name);
                    metrics::global()
                        .join_wait
                        .get_or_create(&labels)
                        .observe((last - first) as f64 / 1000.0);
                }
            }
            Err(e) => debug!(error = %e, "join wait not recorded"),
        }
    }
}

/// The sweeper: for every served namespace, publishes the next attempt of
/// retries that are due, and times out attempts whose lease ran out.
/// Claims are held, not removed, so a coordinator that dies mid-way leaves
/// its claims to be taken over when the hold runs out.
async fn run_sweeper(coordinator: Arc<Coordinator>, stop: CancellationToken) {
    let namespaces: Vec<String> = coordinator
        .templates
        .namespaces()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let hold = coordinator.config.claim_hold;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(coordinator.config.retry_poll) => {}
        }
        for namespace in &namespaces {
            match coordinator.store.claim_due_retries(namespace, hold, 100).await {
                Ok(due) => {
                    coordinator.health.up(health::REDIS);
                    for retry in due {
                        let span = tracing::info_span!(
                            "retry step",
                            otel.kind = "internal",
                            tasker.task.id = %retry.task_id,
                            tasker.step.attempt = retry.attempt + 1,
                        );
                        if let Some(tp) = &retry.trace {
                            tasker_worker::telemetry::continue_from_traceparent(&span, tp);
                        }
                        if let Err(e) = coordinator.dispatch(&retry).instrument(span).await {
                            warn!(error = %e, task_id = %retry.task_id, "retry not dispatched; it will be tried again");
                        }
                    }
                }
                Err(e) => coordinator.health.down(health::REDIS, &e),
            }
            match coordinator.store.claim_expired_leases(namespace, hold, 100).await {
                Ok(expired) => {
                    for lease in expired {
                        if let Err(e) = coordinator.expire(&lease).await {
                            warn!(error = %e, task_id = %lease.task_id, "expired lease not handled; it will be tried again");
                        }
                    }
                }
                Err(e) => coordinator.health.down(health::REDIS, &e),
            }
        }
    }
}

impl Coordinator {
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

    async fn dispatch(&self, retry: &StepRef) -> Result<(), Error> {
        let Some(template) = self.template_of(retry) else {
            return Ok(());
        };
        if let Some(inputs) = self.store.dispatch_retry(retry, &template).await? {
            let attempt = retry.attempt + 1;
            // An event on the retry span: the wait is over.
            info!(task_id = %retry.task_id, step = %template.steps[retry.step].name, attempt, "retrying step");
            let leases = self.leases(&template, retry.task_id, &[retry.step], attempt);
            self.store.bookkeep(&template.namespace, &leases).await?;
            self.publish_steps(&template, retry.task_id, &[retry.step], attempt, &inputs)
                .await?;
        }
        self.store
            .bookkeep(&template.namespace, &[Bookkeeping::EndRetry(retry.clone())])
            .await
    }

    /// An attempt outlived its lease: no result came, and the broker did not
    /// hand the step to another worker. It fails as a retryable `timeout`.
    async fn expire(&self, lease: &StepRef) -> Result<(), Error> {
        let Some(template) = self.template_of(lease) else {
            return Ok(());
        };
        let step = &template.steps[lease.step];
        let lease_secs =
            (step.timeout.unwrap_or(self.config.default_lease) + self.config.lease_margin).as_secs_f64();
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
                error: tasker_protocol::StepFailure {
                    retryable: true,
                    code: tasker_worker::handler::TIMEOUT.to_owned(),
                    message: format!(
                        "no result within the step's lease of {lease_secs} s; its worker may have hung or lost the message"
                    ),
                    retry_after_seconds: None,
                },
            },
        };
        // As a redelivery: if the timeout was applied before, its effects
        // are handed back and carried out again.
        self.apply(&template, lease.step, &result, true).await
    }
}

/// The step-ready message for one attempt of one step.
fn step_ready(
    template: &TaskTemplate,
    task_id: Uuid,
    step: usize,
    attempt: u32,
    inputs: &Inputs,
) -> Result<StepReady, Error> {
    let corrupt = |detail: String| Error::CorruptState { task_id, detail };
    let context =
        RawValue::from_string(inputs.context.clone()).map_err(|e| corrupt(format!("stored context: {e}")))?;
    let mut dependency_results = BTreeMap::new();
    for &a in template.dag.ancestors(step) {
        let name = &template.steps[a].name;
        let raw = inputs
            .results
            .get(&a)
            .ok_or_else(|| corrupt(format!("no stored result for ancestor {name:?}")))?;
        let raw = RawValue::from_string(raw.clone())
            .map_err(|e| corrupt(format!("stored result of {name:?}: {e}")))?;
        dependency_results.insert(name.clone(), raw);
    }
    let t = &template.steps[step];
    Ok(StepReady {
        protocol_version: PROTOCOL_VERSION,
        task_id,
        namespace: template.namespace.clone(),
        task_name: template.name.clone(),
        task_version: template.version.to_string(),
        step: t.name.clone(),
        callable: t.callable.clone(),
        attempt,
        max_attempts: t.retry.max_attempts,
        timeout_seconds: t.timeout.map(|d| d.as_secs_f64()),
        context,
        initialization: t.initialization.clone(),
        dependency_results,
    })
}

/// The id a requester matches replies with: the AMQP correlation id, else
/// the message id, else the request id.
fn correlation_id(delivery: &Delivery, request: &TaskRequest) -> String {
    fallback_correlation(delivery)
        .or_else(|| request.request_id.map(|id| id.to_string()))
        .unwrap_or_default()
}

fn fallback_correlation(delivery: &Delivery) -> Option<String> {
    let p = &delivery.properties;
    p.correlation_id()
        .as_ref()
        .or(p.message_id().as_ref())
        .map(ToString::to_string)
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
