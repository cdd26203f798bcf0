# frozen_string_literal: true

module TaskerWorker
  # What a step handler is: an object with `call(context)`, which returns the
  # step's result (any JSON value, nil included), or what
  # StepContext#complete_with_child gives, or raises PermanentError or
  # RetryableError. Including this module is optional; it documents the
  # shape.
  #
  # One instance serves every attempt of every task, from several threads at
  # once (up to the worker's concurrency), so it holds only shared,
  # read-mostly state (clients, settings), never an attempt's data. Delivery
  # is at least once: an attempt can run twice after a crash, so pass
  # StepContext#idempotency_key to the services you call.
  module StepHandler
    def call(_context)
      raise NotImplementedError, "#{self.class.name} must define call(context)"
    end
  end
end
