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
