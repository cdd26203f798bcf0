//! The coordinator: task requests in, step results in, due retries out.
//!
//! Each delivery is acked only after the Redis transition it caused and
//! every message that transition asks for are confirmed, so a crash at any
//! point leaves the delivery to be redelivered, and the store's scripts
//! recognise a redelivery and hand back the effects to carry out again.
//!
//! - [`config`]: every setting and its default;
//! - `session`: one connection to the broker: declare, consume, drain;
//! - `request`: what happens to a task request;
//! - `result`: what happens to a step result: recorded, then its ready
//!   steps or the task's report published, then acked;
//! - `command`: an operator's retry, resolve or cancel;
//! - `publish`: step-ready messages;
//! - `finished`: a finished task's report, to everyone who hears of it;
//! - `sweeper`: retries that are due, attempts whose lease ran out, and
//!   steps that wait for a worker;
//! - `workers`: workers' announcements, kept for `tasker workers`;
//! - `span`: the spans of deliveries and publishes.

pub mod config;

mod command;
mod finished;
mod publish;
mod request;
mod result;
mod session;
mod span;
mod sweeper;
mod workers;

use std::sync::Arc;
use std::time::Duration;

use lapin::message::Delivery;
use tasker_protocol::{DeadLetterReason, TaskTemplate, TemplateRegistry};
use tasker_runtime::Reconnect;
use tasker_runtime::acks::Acks;
use tasker_runtime::broker::{self, Broker};
use tasker_runtime::health::{self, Health};
use tasker_runtime::publisher::Publisher;
use tokio_util::sync::CancellationToken;
use tracing::error;

use crate::Error;
use crate::batch::Batcher;
use crate::store::{ResultToRecord, Store, TaskToCreate};

pub use config::{CoordinatorConfig, DEFAULT_REDIS_URL};

/// How many calls creating tasks, and how many recording step results, are
/// out to Redis at once; requests and results that arrive meanwhile share
/// the next call of their kind.
const CALLS_IN_FLIGHT: usize = 2;

/// Runs a coordinator until `shutdown` is cancelled, reconnecting to the
/// broker and to Redis whenever they go away.
///
/// # Errors
///
/// Returns an error that retrying cannot fix: a malformed URL, or a broker
/// or Redis that refuses the credentials.
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
        match Store::connect_with(&config.redis_url, config.retention, &config.store_options()).await {
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
    tracing::info!(
        kind = if store.is_cluster() { "cluster" } else { "single" },
        shards = store.keys().shard_count(),
        replicas_per_write = store.replicas_per_write(),
        "connected to the store"
    );
    let mut backoff = Reconnect::default();
    let templates = Arc::new(templates);
    loop {
        match session::run(&config, &templates, &store, &health, &shutdown, &mut backoff).await {
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

/// Which kind of message a queue holds.
#[derive(Debug, Clone, Copy)]
enum Input {
    /// Task requests, and operators' task commands.
    Request,
    /// Step results.
    Result,
    /// Workers' announcements.
    Announcement,
}

/// What every delivery handler of one session needs.
struct Coordinator {
    config: CoordinatorConfig,
    templates: Arc<TemplateRegistry>,
    store: Store,
    /// Creates tasks in `store`, batched.
    creator: Batcher<TaskToCreate>,
    /// Records step results in `store`, batched.
    recorder: Batcher<ResultToRecord>,
    publisher: Publisher,
    /// The session's connection, to ask how many workers consume a queue.
    broker: Arc<Broker>,
    /// Acks the deliveries of the consuming channel.
    acks: Acks,
    health: Health,
    /// Cancelled when the session ends, to stop retries in place.
    stop: CancellationToken,
}

impl Coordinator {
    /// Handles one delivery. A failure that may pass (Redis or the broker
    /// away) is retried here, with the delivery held, rather than handed
    /// back: a requeue would count as a redelivery, and an outage would
    /// turn good messages into poison.
    async fn handle(&self, input: Input, queue: &str, delivery: Delivery) {
        let deliveries = broker::delivery_count(&delivery);
        if deliveries > self.config.max_redeliveries {
            let reason = format!(
                "redelivered {deliveries} times, over the limit of {}; it may crash its coordinator",
                self.config.max_redeliveries
            );
            // If this fails the channel is gone, and the delivery comes back.
            let _ = self
                .dead_letter(&delivery, queue, DeadLetterReason::RedeliveryLimit, &reason)
                .await;
            return;
        }
        let mut backoff = Reconnect::default();
        let mut retried = false;
        loop {
            // After a failed try, the transition may have been applied
            // already: treat the next try as a redelivery, so that the
            // scripts hand back the effects still to carry out.
            let redelivered = delivery.redelivered || retried;
            let outcome = match input {
                Input::Request => self.handle_request(queue, &delivery, redelivered).await,
                Input::Result => self.handle_result(queue, &delivery, redelivered).await,
                Input::Announcement => self.handle_announcement(queue, &delivery).await,
            };
            match outcome {
                Ok(()) => {
                    self.health.up(health::REDIS);
                    return;
                }
                Err(e) if e.is_retryable() => {
                    match e {
                        Error::Redis { .. } | Error::NotReplicated { .. } => {
                            self.health.down(health::REDIS, &e)
                        }
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
                        .dead_letter(&delivery, queue, DeadLetterReason::Unprocessable, &e.to_string())
                        .await;
                    return;
                }
            }
        }
    }

    /// Moves `delivery` to the dead-letter queue, then acks it.
    async fn dead_letter(
        &self,
        delivery: &Delivery,
        queue: &str,
        reason: DeadLetterReason,
        detail: &str,
    ) -> Result<(), Error> {
        Ok(self
            .publisher
            .dead_letter(delivery, &self.acks, queue, reason, detail)
            .await?)
    }

    /// How long an attempt of `step` may run before it is treated as lost.
    fn lease(&self, template: &TaskTemplate, step: usize) -> Duration {
        self.config.lease(template, step)
    }
}
