//! What happens to a task request: read it, find its template, create the
//! task (or find it, for a repeated request) and publish its roots; or
//! reject it, with a reason, to the requester and the dead-letter queue.

use std::time::Duration;

use chrono::Utc;
use lapin::message::Delivery;
use tasker_protocol::registry::LookupError;
use tasker_protocol::topology::{self, message_type};
use tasker_protocol::{
    DeadLetterReason, PROTOCOL_VERSION, RejectCode, TaskRejected, TaskRequest, TaskStatus, message,
};
use tasker_runtime::broker;
use tasker_runtime::publisher::Outgoing;
use tasker_runtime::{metrics, telemetry};
use tracing::info;
use uuid::Uuid;

use super::Coordinator;
use super::finished::{Audience, to_parent};
use super::publish::ReadySteps;
use crate::Error;
use crate::store::{Created, Inputs, NewTask, Reply};

/// How often a request on the unrouted queue looks again for its
/// namespace's queue, while RabbitMQ may still be recovering it.
const UNROUTED_RETRY: Duration = Duration::from_secs(1);

impl Coordinator {
    /// A task request, or an operator's task command, which shares the
    /// requests' queues.
    pub(super) async fn handle_request(
        &self,
        queue: &str,
        delivery: &Delivery,
        redelivered: bool,
    ) -> Result<(), Error> {
        if delivery.properties.kind().as_ref().map(|k| k.as_str()) == Some(message_type::TASK_COMMAND) {
            return self.handle_command(queue, delivery).await;
        }
        if let Some(found) = broker::protocol_version_header(delivery)
            && found != Some(i64::from(PROTOCOL_VERSION))
        {
            let found = found.map_or_else(|| "not an integer".to_owned(), |v| v.to_string());
            let reason = format!(
                "the task request's {} header is {found}; this coordinator speaks version {PROTOCOL_VERSION}",
                topology::headers::PROTOCOL_VERSION
            );
            // Named in the rejection if its body can be read.
            let request = message::decode::<TaskRequest>(&delivery.data, self.config.max_message_bytes).ok();
            return self
                .reject(
                    queue,
                    delivery,
                    request.as_ref(),
                    RejectCode::UnsupportedVersion,
                    reason,
                )
                .await;
        }
        let request: TaskRequest = match message::decode(&delivery.data, self.config.max_message_bytes) {
            Ok(r) => r,
            Err(e) => {
                let reason = format!("the task request cannot be read ({}): {e}", e.reason());
                let code = match e {
                    message::DecodeError::WrongVersion { .. } => RejectCode::UnsupportedVersion,
                    _ => RejectCode::Undecodable,
                };
                return self.reject(queue, delivery, None, code, reason).await;
            }
        };
        if let Some((code, reason)) = malformed(&request, delivery) {
            return self.reject(queue, delivery, Some(&request), code, reason).await;
        }
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
        let traceparent = telemetry::traceparent(&tracing::Span::current());
        let task = NewTask {
            task_id,
            template: &template,
            context: &context,
            reply,
            request_id: request.request_id,
            // A key names the task its context describes; a child's key
            // names its parent step, whose later attempts may ask anew.
            same_context: request.idempotency_key.is_some() && request.parent.is_none(),
            traceparent: traceparent.as_deref(),
            parent: request.parent.as_ref(),
            redelivered,
        };
        let prepared = self.store.prepare_task(task, |step| self.lease(&template, step));
        let created = self.creator.apply(prepared).await?;
        let inputs = Inputs {
            context,
            results: Default::default(),
        };
        // The store has leased the roots and indexed the task.
        let roots = |steps| ReadySteps {
            template: &template,
            task_id,
            steps,
            attempt: 1,
            inputs: &inputs,
            joins: &[],
        };
        match created {
            Created::New { roots: new } => {
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
                self.publish_steps(roots(&new)).await?;
            }
            Created::Existing { status, republish } => {
                info!(task_id = %task_id, status = status.as_str(), "request for an existing task; nothing runs again");
                // The first delivery may have died before it published the
                // roots; the store has leased them again.
                self.publish_steps(roots(&republish)).await?;
                // A late requester, or a later attempt of a parent step,
                // hears at once of a task that has finished.
                if status != TaskStatus::Running && (reply_to.is_some() || request.parent.is_some()) {
                    let late = Audience::Late {
                        reply: reply.map(|(queue, correlation)| Reply {
                            queue: queue.to_owned(),
                            correlation: correlation.to_owned(),
                            request_id: request.request_id,
                        }),
                        parent: request.parent.is_some(),
                    };
                    self.publish_finished(task_id, late).await?;
                }
            }
            Created::Conflict { status } => {
                let reason = format!(
                    "task {task_id} has the idempotency key {:?} of this request, but another context; \
                     it is left as it is ({}). Send the same context to hear of that task, or another key \
                     for a new task",
                    request.idempotency_key.as_deref().unwrap_or_default(),
                    status.as_str()
                );
                return self
                    .reject(
                        queue,
                        delivery,
                        Some(&request),
                        RejectCode::IdempotencyConflict,
                        reason,
                    )
                    .await;
            }
        }
        self.acks.ack(delivery);
        Ok(())
    }

    /// A request reached the unrouted queue: no queue of its namespace was
    /// bound to take it. That is final for a namespace no coordinator has
    /// ever served, and `false` is returned at once. For one that is
    /// served, bindings can be missing for a moment while RabbitMQ
    /// recovers: until the request is `unrouted_grace` old, it goes
    /// straight to its namespace's request queue as soon as that exists,
    /// and `true` is returned; a coordinator that serves the namespace
    /// takes it from there.
    async fn forward_unrouted(&self, request: &TaskRequest, delivery: &Delivery) -> Result<bool, Error> {
        let queue = topology::request_queue(&request.namespace);
        let deadline = broker::published_at(delivery)
            .and_then(|at| {
                chrono::Duration::from_std(self.config.unrouted_grace)
                    .ok()
                    .map(|g| at + g)
            })
            .unwrap_or_else(Utc::now);
        loop {
            // Through the default exchange, which routes by queue name and
            // needs no binding. Mandatory: a queue that does not exist
            // hands the message back, rather than closing a channel.
            let forward = Outgoing {
                exchange: String::new(),
                routing_key: queue.clone(),
                payload: delivery.data.clone(),
                properties: delivery.properties.clone(),
                mandatory: true,
            };
            match self.publisher.publish(forward).await {
                Ok(()) => {
                    info!(namespace = %request.namespace,
                        "request reached the unrouted queue while its namespace's queue exists; forwarded it there");
                    return Ok(true);
                }
                Err(tasker_runtime::Error::Unroutable { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            if Utc::now() >= deadline || !self.store.is_served(&request.namespace).await? {
                return Ok(false);
            }
            // Stopping: leave the request unacked, for another coordinator.
            tokio::select! {
                () = self.stop.cancelled() => return Err(tasker_runtime::Error::ConsumerCancelled.into()),
                () = tokio::time::sleep(UNROUTED_RETRY) => {}
            }
        }
    }

    /// Answers a request that cannot become a task: a task-rejected event to
    /// the events exchange and the requester, then the request itself to the
    /// dead-letter queue, whose log line says why, so it can be replayed
    /// once the cause is fixed.
    async fn reject(
        &self,
        queue: &str,
        delivery: &Delivery,
        request: Option<&TaskRequest>,
        code: RejectCode,
        reason: String,
    ) -> Result<(), Error> {
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
        self.dead_letter(delivery, queue, DeadLetterReason::Rejected(code), &reason)
            .await
    }
}

/// The id a requester matches replies with: the AMQP correlation id, else
/// the message id, else the request id.
/// What makes `request` one no template could take, if anything: what
/// [`TaskRequest::problem`] finds, or, for a request published to the
/// requests exchange, a routing key other than its namespace.
fn malformed(request: &TaskRequest, delivery: &Delivery) -> Option<(RejectCode, String)> {
    if let Some(problem) = request.problem() {
        return Some(problem);
    }
    let key = delivery.routing_key.as_str();
    if delivery.exchange.as_str() == topology::REQUESTS_EXCHANGE && key != request.namespace {
        return Some((
            RejectCode::NamespaceMismatch,
            format!(
                "the request for namespace {:?} was published with routing key {key:?}; \
                 publish it with its namespace as the routing key",
                request.namespace
            ),
        ));
    }
    None
}

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
