//! The names of Tasker's exchanges, queues, routing keys and headers.
//!
//! ```text
//! client ──task request──▶ [tasker.requests] ──(routing key = namespace)──▶ queue tasker.requests.<namespace> ──▶ coordinator
//!                              └─(no such namespace: alternate exchange)──▶ queue tasker.requests.unrouted ──▶ coordinator
//! coordinator ──step ready──▶ [tasker.steps] ──(<namespace>/<callable>)──▶ [tasker.steps.<namespace>] ──▶ queue tasker.steps.<namespace>.<service> ──▶ worker
//!                              ├─(a service split over N queues)──▶ [tasker.steps.<namespace>] ──▶ [tasker.steps.<namespace>.<service>] ──(hash of the task id)──▶ queue tasker.steps.<namespace>.<service>.<0..N-1>
//!                              └─(no service serves the callable: returned)──▶ the step waits for a worker
//! worker ──step result──▶ [tasker.events] ──(step.result.<namespace>)──▶ queue tasker.results.<namespace> ──▶ coordinator
//! worker ──announcement──▶ [tasker.events] ──(worker.announce)──▶ queue tasker.workers ──▶ coordinator
//! coordinator ──task finished / rejected──▶ [tasker.events] and the request's reply_to queue
//! anyone ──unusable message──▶ [tasker.dead_letter] ──▶ queue tasker.dead_letters
//! ```
//!
//! Every namespace has its own request and result queues, so the
//! coordinators that load a namespace's templates are the only ones that see
//! its traffic: teams can run their own coordinators, and a request never
//! reaches a coordinator that does not know its template. Requests for a
//! namespace nobody serves fall through to `tasker.requests.unrouted`, which
//! every coordinator consumes, to be rejected.
//!
//! Steps are routed by handler: a step-ready message's routing key is its
//! namespace and its step's `callable`, and every service (the workers of
//! one deployment, in any language) has its own queue of a namespace's
//! steps, bound to the keys of the callables it serves, on the namespace's
//! own steps exchange, which the coordinators bind to `tasker.steps` with
//! the keys of the namespace's callables. A service receives
//! only its own steps, several services serve one namespace, and a step for
//! a service whose workers are all down waits in that service's queue. A
//! step whose callable no service has declared reaches no queue: the broker
//! returns it, and the coordinator keeps the step waiting, without spending
//! an attempt, until a worker declares the callable.
//!
//! A service whose steps are too many for one queue (whose leader sits on
//! one broker node) can split them over several: its workers then declare
//! a consistent-hash exchange of its own in place of its queue, bound with
//! the same keys, and N queues behind it, and consume them all. The
//! coordinator publishes exactly as before.
//!
//! Every queue is a durable quorum queue, and every message is published
//! persistent and waits for its publisher confirm.

/// Direct exchange that clients publish task requests to, with the
/// namespace as the routing key.
pub const REQUESTS_EXCHANGE: &str = "tasker.requests";
/// Fanout exchange set as [`REQUESTS_EXCHANGE`]'s `alternate-exchange`: it
/// receives requests for namespaces that no coordinator serves.
pub const UNROUTED_REQUESTS_EXCHANGE: &str = "tasker.requests.unrouted";
/// Queue of requests for unknown namespaces; every coordinator consumes it
/// and rejects what it finds there.
pub const UNROUTED_REQUESTS_QUEUE: &str = "tasker.requests.unrouted";

/// The queue of task requests for `namespace`.
#[must_use]
pub fn request_queue(namespace: &str) -> String {
    format!("tasker.requests.{namespace}")
}

/// Direct exchange that step-ready messages are published to, with
/// [`step_routing_key`].
pub const STEPS_EXCHANGE: &str = "tasker.steps";

/// The longest routing key AMQP allows, in bytes.
pub const MAX_ROUTING_KEY_BYTES: usize = 255;

/// Routing key of a step-ready message on [`STEPS_EXCHANGE`]: the step's
/// namespace and its handler's `callable`, as `<namespace>/<callable>`. A
/// service's queue is bound with one such key per callable it serves. At most
/// [`MAX_ROUTING_KEY_BYTES`]; templates are checked for it.
#[must_use]
pub fn step_routing_key(namespace: &str, callable: &str) -> String {
    format!("{namespace}/{callable}")
}

/// Direct exchange of `namespace`'s steps, bound to [`STEPS_EXCHANGE`] by
/// the coordinators with `<namespace>/<callable>` for every callable of the
/// namespace's templates. Services bind their queues here, not to
/// [`STEPS_EXCHANGE`], so a worker's user needs `read` on its own
/// namespace's exchange only, and cannot bind to another namespace's steps.
#[must_use]
pub fn namespace_steps_exchange(namespace: &str) -> String {
    format!("tasker.steps.{namespace}")
}

/// The durable queue of the steps of `namespace` that `service` serves.
#[must_use]
pub fn service_queue(namespace: &str, service: &str) -> String {
    format!("tasker.steps.{namespace}.{service}")
}

/// How many queues a service's steps of one namespace are split over, at
/// most. One, the default, is the service's queue, [`service_queue`].
pub const MAX_PARTITIONS: u32 = 64;

/// The exchange of a service whose steps of `namespace` are split over
/// several queues: a consistent-hash exchange (see
/// [`PARTITIONED_EXCHANGE_TYPE`]) bound to [`STEPS_EXCHANGE`] with the
/// routing key of each callable the service serves, which spreads the steps
/// over [`partition_queue`]s by their task id. Same name as the service's
/// single queue; AMQP keeps exchanges and queues apart.
#[must_use]
pub fn service_exchange(namespace: &str, service: &str) -> String {
    service_queue(namespace, service)
}

/// Queue `index` (from 0) of a service whose steps are split over several
/// queues: `tasker.steps.<namespace>.<service>.<index>`. Names have no dots,
/// so it cannot be another service's queue.
#[must_use]
pub fn partition_queue(namespace: &str, service: &str, index: u32) -> String {
    format!("tasker.steps.{namespace}.{service}.{index}")
}

/// Type of a [`service_exchange`]: RabbitMQ's consistent-hash exchange,
/// from the `rabbitmq_consistent_hash_exchange` plugin that ships with
/// RabbitMQ. Only a service split over several queues needs it.
pub const PARTITIONED_EXCHANGE_TYPE: &str = "x-consistent-hash";

/// The argument of a [`service_exchange`] that makes it hash a header, the
/// task id ([`headers::TASK_ID`]), rather than the routing key: every step of
/// a task lands in the same queue, and tasks spread over the queues.
pub const HASH_HEADER_ARGUMENT: &str = "hash-header";

/// The routing key each [`partition_queue`] is bound to its
/// [`service_exchange`] with: for a consistent-hash exchange, the queue's
/// weight. Every queue weighs the same.
pub const PARTITION_WEIGHT: &str = "1";

/// Topic exchange for everything that happened: step results, finished tasks
/// and rejected requests.
pub const EVENTS_EXCHANGE: &str = "tasker.events";

/// The queue of step results from `namespace`, bound to [`EVENTS_EXCHANGE`]
/// with [`step_result_routing_key`].
#[must_use]
pub fn result_queue(namespace: &str) -> String {
    format!("tasker.results.{namespace}")
}

/// Fanout exchange for messages that could not be used.
pub const DEAD_LETTER_EXCHANGE: &str = "tasker.dead_letter";
/// Queue that holds dead-lettered messages until an operator looks at them.
pub const DEAD_LETTER_QUEUE: &str = "tasker.dead_letters";

/// Routing key of a step result from `namespace` on [`EVENTS_EXCHANGE`].
#[must_use]
pub fn step_result_routing_key(namespace: &str) -> String {
    format!("step.result.{namespace}")
}

/// The argument that names [`REQUESTS_EXCHANGE`]'s alternate exchange; it
/// must be given identically by everyone who declares the exchange.
pub const ALTERNATE_EXCHANGE_ARGUMENT: &str = "alternate-exchange";

/// Routing key of a task-finished event on [`EVENTS_EXCHANGE`].
#[must_use]
pub fn task_finished_routing_key(namespace: &str, name: &str) -> String {
    format!("task.finished.{namespace}.{name}")
}

/// Routing key of a task-rejected event on [`EVENTS_EXCHANGE`].
pub const TASK_REJECTED_ROUTING_KEY: &str = "task.rejected";

/// Routing key of a worker's announcement on [`EVENTS_EXCHANGE`].
pub const WORKER_ANNOUNCE_ROUTING_KEY: &str = "worker.announce";

/// The queue of workers' announcements, bound to [`EVENTS_EXCHANGE`] with
/// [`WORKER_ANNOUNCE_ROUTING_KEY`]; every coordinator consumes it and keeps
/// the list of live workers that `tasker workers` shows.
pub const WORKERS_QUEUE: &str = "tasker.workers";

/// The queue argument that makes a queue a quorum queue: every Tasker
/// queue is one, `x-queue-type` = `quorum` (a string).
pub const QUEUE_TYPE_ARGUMENT: &str = "x-queue-type";

/// The queue argument that bounds how often a quorum queue delivers one
/// message before the broker drops it: `x-delivery-limit` (an integer).
/// RabbitMQ 4 drops a message after 20 deliveries unless told otherwise.
pub const DELIVERY_LIMIT_ARGUMENT: &str = "x-delivery-limit";

/// The broker's limit Tasker declares its queues with. Tasker's own
/// processes dead-letter a message, with its reason, once it has been
/// delivered more than their `max_redeliveries` (5 by default), which must
/// stay below this, so the broker never drops one first.
pub const DELIVERY_LIMIT: u32 = 100;

/// AMQP `content_type` of every Tasker message.
pub const CONTENT_TYPE: &str = "application/json";

/// Values of the AMQP `type` property, one per message kind.
pub mod message_type {
    /// A client asks for a task.
    pub const TASK_REQUEST: &str = "tasker.task_request";
    /// The coordinator asks a worker to run one attempt of a step.
    pub const STEP_READY: &str = "tasker.step_ready";
    /// A worker reports how an attempt ended.
    pub const STEP_RESULT: &str = "tasker.step_result";
    /// The coordinator reports a task's final state.
    pub const TASK_FINISHED: &str = "tasker.task_finished";
    /// The coordinator refused a task request.
    pub const TASK_REJECTED: &str = "tasker.task_rejected";
    /// An operator's command for a task, on a namespace's request queue.
    pub const TASK_COMMAND: &str = "tasker.task_command";
    /// A coordinator's answer to a task command.
    pub const COMMAND_REPLY: &str = "tasker.command_reply";
    /// A worker says it is alive, and what it serves.
    pub const WORKER_ANNOUNCEMENT: &str = "tasker.worker_announcement";
}

/// AMQP header names.
pub mod headers {
    /// The protocol version of the body, as a number. Mirrors the body's
    /// `protocol_version` so a consumer can route on it without decoding.
    pub const PROTOCOL_VERSION: &str = "x-tasker-protocol-version";
    /// The task id, on every message that belongs to a task.
    pub const TASK_ID: &str = "x-tasker-task-id";
    /// Why a message was dead-lettered (on [`super::DEAD_LETTER_QUEUE`]).
    pub const DEAD_LETTER_REASON: &str = "x-tasker-dead-letter-reason";
    /// The queue a dead-lettered message was taken from.
    pub const DEAD_LETTER_QUEUE: &str = "x-tasker-original-queue";
    /// The exchange a dead-lettered message was first published to.
    pub const DEAD_LETTER_EXCHANGE: &str = "x-tasker-original-exchange";
    /// The routing key a dead-lettered message was first published with.
    pub const DEAD_LETTER_ROUTING_KEY: &str = "x-tasker-original-routing-key";
    /// When the message was published, in Unix milliseconds; a worker
    /// measures the queue wait from it.
    pub const PUBLISHED_AT_MS: &str = "x-tasker-published-at-ms";
    /// W3C trace context, propagated on every message.
    pub const TRACEPARENT: &str = "traceparent";
    /// W3C trace state, propagated with [`TRACEPARENT`].
    pub const TRACESTATE: &str = "tracestate";
    /// Set by RabbitMQ on quorum queues: how many times the message was
    /// delivered before this delivery.
    pub const DELIVERY_COUNT: &str = "x-delivery-count";
}
