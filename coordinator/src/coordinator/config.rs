//! How a coordinator runs: every setting, with its default. The `tasker
//! coordinator` command sets each one from a flag or the environment.

use std::net::SocketAddr;
use std::time::Duration;

use tasker_protocol::TaskTemplate;
use tasker_protocol::message::DEFAULT_MAX_MESSAGE_BYTES;

use crate::store::{Durability, StoreOptions};

/// Where Redis is when `TASKER_REDIS_URL` is not set.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// How a coordinator runs.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// The RabbitMQ URL (`amqp://` or `amqps://`).
    pub amqp_url: String,
    /// The Redis URL (`redis://` or `rediss://`), or a Redis Cluster's
    /// nodes separated by commas.
    pub redis_url: String,
    /// How many shards a new store gets (see [`StoreOptions::shards`]).
    pub redis_shards: Option<u16>,
    /// How many replicas must hold a write before the message that caused
    /// it is acked.
    pub redis_durability: Durability,
    /// How long a write waits for its replicas.
    pub redis_wait_timeout: Duration,
    /// How often the coordinator and RabbitMQ tell each other they are
    /// alive, unless the URL says (`?heartbeat=`). It bounds how long a
    /// frozen coordinator holds its deliveries: RabbitMQ hands them to
    /// another coordinator after about two and a half heartbeats.
    pub heartbeat: Duration,
    /// How many deliveries are processed at once, per input queue.
    pub prefetch: u16,
    /// The size limit of a message, the same on every coordinator and
    /// worker: larger messages are dead-lettered, a step whose step-ready
    /// message would be larger fails with `input_too_large`, and a task
    /// report that would be larger goes without its results.
    pub max_message_bytes: usize,
    /// How long a finished task stays in Redis.
    pub retention: Duration,
    /// How often the retry schedule and the leases are checked.
    pub retry_poll: Duration,
    /// How long a claimed retry or expired lease stays with its claimant
    /// before another coordinator may take it over: how long a frozen
    /// coordinator holds the retries it claimed.
    pub claim_hold: Duration,
    /// How long a step without `timeout_seconds` may run before it is
    /// treated as stuck: retried as a retryable `timeout`.
    pub default_lease: Duration,
    /// Added to every step's lease, for the trip through the broker.
    pub lease_margin: Duration,
    /// Shown in the broker's connection list and in logs.
    pub name: String,
    /// Where to serve `/healthz`, `/readyz` and `/metrics`, if anywhere.
    pub health_addr: Option<SocketAddr>,
    /// A message delivered more often than this is dead-lettered: it is
    /// probably what crashes coordinators.
    pub max_redeliveries: u64,
    /// How long a request on `tasker.requests.unrouted` for a namespace
    /// that a coordinator has served waits for that namespace's queue
    /// before it is rejected. A RabbitMQ that is starting routes requests
    /// there until it has recovered the queues, and the coordinator that
    /// sees them may be another team's. A request for a namespace that no
    /// coordinator has ever served is rejected at once.
    pub unrouted_grace: Duration,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            amqp_url: tasker_runtime::defaults::AMQP_URL.to_owned(),
            redis_url: DEFAULT_REDIS_URL.to_owned(),
            redis_shards: None,
            redis_durability: Durability::Auto,
            redis_wait_timeout: StoreOptions::default().wait_timeout,
            heartbeat: tasker_runtime::broker::DEFAULT_HEARTBEAT,
            prefetch: 256,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            retention: Duration::from_secs(7 * 24 * 3600),
            retry_poll: Duration::from_millis(50),
            claim_hold: Duration::from_secs(15),
            default_lease: Duration::from_secs(600),
            lease_margin: Duration::from_secs(30),
            name: format!("tasker-coordinator-{}", std::process::id()),
            health_addr: None,
            max_redeliveries: 5,
            unrouted_grace: Duration::from_secs(30),
        }
    }
}

impl CoordinatorConfig {
    /// How the coordinator's store is set up.
    #[must_use]
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            shards: self.redis_shards,
            durability: self.redis_durability,
            wait_timeout: self.redis_wait_timeout,
            fix_shards: true,
        }
    }

    /// How long an attempt of `step` may run before it is treated as lost:
    /// its `timeout_seconds` (or the default lease) plus the margin.
    #[must_use]
    pub fn lease(&self, template: &TaskTemplate, step: usize) -> Duration {
        template.steps[step].timeout.unwrap_or(self.default_lease) + self.lease_margin
    }
}
