/**
 * The names of Tasker's exchanges, queues, routing keys, message types and
 * headers (docs/protocol.md, "Topology"): the same strings as the Rust
 * `tasker_protocol::topology` and the Python SDK's `topology.py`, with no I/O.
 */

export const PROTOCOL_VERSION = 1;

export const REQUESTS_EXCHANGE = "tasker.requests";
export const UNROUTED_REQUESTS_EXCHANGE = "tasker.requests.unrouted";
export const UNROUTED_REQUESTS_QUEUE = "tasker.requests.unrouted";
export const ALTERNATE_EXCHANGE_ARGUMENT = "alternate-exchange";
export const STEPS_EXCHANGE = "tasker.steps";
export const EVENTS_EXCHANGE = "tasker.events";
export const DEAD_LETTER_EXCHANGE = "tasker.dead_letter";
export const DEAD_LETTER_QUEUE = "tasker.dead_letters";
export const WORKER_ANNOUNCE_ROUTING_KEY = "worker.announce";
export const CONTENT_TYPE = "application/json";

/**
 * The broker's delivery limit every Tasker queue is declared with. A worker
 * dead-letters a message once it was delivered more than its
 * `maxRedeliveries` times, which must stay below this, so the broker never
 * drops a message before Tasker has dead-lettered it.
 */
export const DELIVERY_LIMIT = 100;

/** The arguments of every Tasker queue: a durable quorum queue with a delivery limit. */
export const QUORUM: Readonly<Record<string, string | number>> = Object.freeze({
  "x-queue-type": "quorum",
  "x-delivery-limit": DELIVERY_LIMIT,
});

/** The queue of `namespace`'s task requests. */
export function requestQueue(namespace: string): string {
  return `tasker.requests.${namespace}`;
}

/** The queue of `namespace`'s step results, which coordinators read. */
export function resultQueue(namespace: string): string {
  return `tasker.results.${namespace}`;
}

/**
 * The direct exchange of `namespace`'s steps, bound to {@link STEPS_EXCHANGE}
 * by the coordinators with {@link stepRoutingKey} for every callable of the
 * namespace's templates. Services bind their queues here, not to
 * {@link STEPS_EXCHANGE}, so a worker's user needs `read` on its own
 * namespace's exchange only, and cannot bind to another namespace's steps.
 * Names have no dots, so it cannot be a service's queue or exchange.
 */
export function namespaceStepsExchange(namespace: string): string {
  return `tasker.steps.${namespace}`;
}

/** The queue of `namespace`'s steps that `service` runs. */
export function serviceQueue(namespace: string, service: string): string {
  return `tasker.steps.${namespace}.${service}`;
}

/**
 * How many queues a service's steps of one namespace can be split over, at
 * most. One, the default, is the service's queue, {@link serviceQueue}.
 */
export const MAX_PARTITIONS = 64;

/**
 * The exchange of a service whose steps of `namespace` are split over
 * several queues: a consistent-hash exchange bound to the namespace's
 * {@link namespaceStepsExchange} with the routing key of each callable the
 * service serves, which spreads the steps over the {@link partitionQueue}s
 * by their task id. Same name as the service's single queue; AMQP keeps
 * exchanges and queues apart.
 */
export function serviceExchange(namespace: string, service: string): string {
  return serviceQueue(namespace, service);
}

/**
 * Queue `index` (from 0) of a service whose steps are split over several
 * queues. Names have no dots, so it cannot be another service's queue.
 */
export function partitionQueue(namespace: string, service: string, index: number): string {
  return `tasker.steps.${namespace}.${service}.${index}`;
}

/**
 * The type of a {@link serviceExchange}: RabbitMQ's consistent-hash exchange,
 * from the `rabbitmq_consistent_hash_exchange` plugin that ships with RabbitMQ.
 */
export const PARTITIONED_EXCHANGE_TYPE = "x-consistent-hash";

/**
 * The argument that makes a {@link serviceExchange} hash a header, the task
 * id, rather than the routing key: every step of a task lands in the same
 * queue, and tasks spread over the queues.
 */
export const HASH_HEADER_ARGUMENT = "hash-header";

/**
 * The routing key each {@link partitionQueue} is bound to its
 * {@link serviceExchange} with: for a consistent-hash exchange, the queue's
 * weight. Every queue weighs the same.
 */
export const PARTITION_WEIGHT = "1";

/** The routing key of the steps of `callable` in `namespace`. */
export function stepRoutingKey(namespace: string, callable: string): string {
  return `${namespace}/${callable}`;
}

/** The routing key of `namespace`'s step results. */
export function stepResultRoutingKey(namespace: string): string {
  return `step.result.${namespace}`;
}

/** The `type` property of each kind of message. */
export const MessageType = {
  TASK_REQUEST: "tasker.task_request",
  STEP_READY: "tasker.step_ready",
  STEP_RESULT: "tasker.step_result",
  TASK_FINISHED: "tasker.task_finished",
  TASK_REJECTED: "tasker.task_rejected",
  TASK_COMMAND: "tasker.task_command",
  COMMAND_REPLY: "tasker.command_reply",
  WORKER_ANNOUNCEMENT: "tasker.worker_announcement",
} as const;

/** The headers Tasker reads and writes. */
export const Header = {
  PROTOCOL_VERSION: "x-tasker-protocol-version",
  TASK_ID: "x-tasker-task-id",
  PUBLISHED_AT_MS: "x-tasker-published-at-ms",
  DEAD_LETTER_REASON: "x-tasker-dead-letter-reason",
  DEAD_LETTER_QUEUE: "x-tasker-original-queue",
  DEAD_LETTER_EXCHANGE: "x-tasker-original-exchange",
  DEAD_LETTER_ROUTING_KEY: "x-tasker-original-routing-key",
  TRACEPARENT: "traceparent",
  TRACESTATE: "tracestate",
  DELIVERY_COUNT: "x-delivery-count",
} as const;
