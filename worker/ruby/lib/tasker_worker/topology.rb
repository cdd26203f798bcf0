# frozen_string_literal: true

module TaskerWorker
  # The names of Tasker's exchanges, queues, routing keys, message types and
  # headers (docs/protocol.md, "Topology"): the same strings as the Rust
  # `tasker_protocol::topology`, in one place, with no I/O.
  module Topology
    PROTOCOL_VERSION = 1

    REQUESTS_EXCHANGE = 'tasker.requests'
    UNROUTED_REQUESTS_EXCHANGE = 'tasker.requests.unrouted'
    UNROUTED_REQUESTS_QUEUE = 'tasker.requests.unrouted'
    ALTERNATE_EXCHANGE_ARGUMENT = 'alternate-exchange'
    STEPS_EXCHANGE = 'tasker.steps'
    EVENTS_EXCHANGE = 'tasker.events'
    DEAD_LETTER_EXCHANGE = 'tasker.dead_letter'
    DEAD_LETTER_QUEUE = 'tasker.dead_letters'
    WORKER_ANNOUNCE_ROUTING_KEY = 'worker.announce'
    CONTENT_TYPE = 'application/json'

    # The broker's delivery limit every Tasker queue is declared with. A
    # worker dead-letters a message once it is delivered more than its
    # `max_redeliveries` times, which must stay below this, so the broker
    # never drops a message first.
    DELIVERY_LIMIT = 100

    # The arguments of every Tasker queue: a durable quorum queue with a
    # delivery limit.
    QUORUM = { 'x-queue-type' => 'quorum', 'x-delivery-limit' => DELIVERY_LIMIT }.freeze

    # How many queues a service's steps of one namespace are split over, at
    # most. One, the default, is the service's queue (#service_queue).
    MAX_PARTITIONS = 64

    # The type of a #service_exchange: RabbitMQ's consistent-hash exchange,
    # from the `rabbitmq_consistent_hash_exchange` plugin that ships with
    # RabbitMQ. Only a service split over several queues needs it.
    PARTITIONED_EXCHANGE_TYPE = 'x-consistent-hash'

    # The argument of a #service_exchange that makes it hash a header, the
    # task id (Header::TASK_ID), rather than the routing key: every step of a
    # task lands in the same queue, and tasks spread over the queues.
    HASH_HEADER_ARGUMENT = 'hash-header'

    # The routing key each #partition_queue is bound to its #service_exchange
    # with: for a consistent-hash exchange, the queue's weight. Every queue
    # weighs the same.
    PARTITION_WEIGHT = '1'

    # The `type` property of each kind of message.
    module MessageType
      TASK_REQUEST = 'tasker.task_request'
      STEP_READY = 'tasker.step_ready'
      STEP_RESULT = 'tasker.step_result'
      TASK_FINISHED = 'tasker.task_finished'
      TASK_REJECTED = 'tasker.task_rejected'
      WORKER_ANNOUNCEMENT = 'tasker.worker_announcement'
    end

    # The headers Tasker reads and writes.
    module Header
      PROTOCOL_VERSION = 'x-tasker-protocol-version'
      TASK_ID = 'x-tasker-task-id'
      PUBLISHED_AT_MS = 'x-tasker-published-at-ms'
      DEAD_LETTER_REASON = 'x-tasker-dead-letter-reason'
      DEAD_LETTER_QUEUE = 'x-tasker-original-queue'
      DEAD_LETTER_EXCHANGE = 'x-tasker-original-exchange'
      DEAD_LETTER_ROUTING_KEY = 'x-tasker-original-routing-key'
      TRACEPARENT = 'traceparent'
      TRACESTATE = 'tracestate'
      DELIVERY_COUNT = 'x-delivery-count'
    end

    module_function

    # The queue of `namespace`'s task requests.
    def request_queue(namespace)
      "tasker.requests.#{namespace}"
    end

    # The queue of `namespace`'s step results, which coordinators read.
    def result_queue(namespace)
      "tasker.results.#{namespace}"
    end

    # The queue of `namespace`'s steps that `service` runs.
    def service_queue(namespace, service)
      "tasker.steps.#{namespace}.#{service}"
    end

    # The direct exchange of `namespace`'s steps, which the coordinators bind
    # to STEPS_EXCHANGE with `<namespace>/<callable>` for every callable of
    # the namespace's templates. Services bind their queues (or exchanges)
    # here, not to STEPS_EXCHANGE, so a worker's user needs `read` on its own
    # namespace's exchange only, and cannot bind to another namespace's
    # steps. Names have no dots, so it cannot be a service's exchange.
    def namespace_steps_exchange(namespace)
      "tasker.steps.#{namespace}"
    end

    # The exchange of a service whose steps of `namespace` are split over
    # several queues: a consistent-hash exchange bound to the namespace's
    # steps exchange (#namespace_steps_exchange) with the routing key of each
    # callable the service serves, which spreads the steps by their task id
    # over its queues (#partition_queue). Same name as the service's single
    # queue; AMQP keeps exchanges and queues apart.
    def service_exchange(namespace, service)
      service_queue(namespace, service)
    end

    # Queue `index` (from 0) of a service whose steps are split over several
    # queues. Names have no dots, so it cannot be another service's queue.
    def partition_queue(namespace, service, index)
      "tasker.steps.#{namespace}.#{service}.#{index}"
    end

    # The queues `service`'s steps of `namespace` wait in: its queue, or its
    # partition queues when they are split over `partitions`.
    def step_queues(namespace, service, partitions)
      return [service_queue(namespace, service)] if partitions <= 1

      Array.new(partitions) { |index| partition_queue(namespace, service, index) }
    end

    # The routing key of the steps of `callable` in `namespace`.
    def step_routing_key(namespace, callable)
      "#{namespace}/#{callable}"
    end

    # The routing key of `namespace`'s step results.
    def step_result_routing_key(namespace)
      "step.result.#{namespace}"
    end
  end
end
