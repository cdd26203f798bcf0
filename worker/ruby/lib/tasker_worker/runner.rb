# frozen_string_literal: true

require 'json'

module TaskerWorker
  # Runs one attempt's handler and turns its outcome into a step result:
  # a handler that runs past `timeout_seconds` fails the attempt retryably
  # with `timeout`, one that raises anything but a StepError fails it
  # permanently with `handler_panic`, an unknown callable is a permanent
  # `handler_not_found`, and a result that cannot be sent becomes a permanent
  # `invalid_result` or `result_too_large`.
  class StepRunner
    # Raised when a handler runs past its step's `timeout_seconds`.
    class HandlerTimeout < StandardError
    end

    def initialize(handlers, logger, max_message_bytes)
      @handlers = handlers
      @logger = logger
      @max_message_bytes = max_message_bytes
    end

    # Runs the step's handler: a timeout or an unexpected exception becomes
    # the step's failure instead of taking the worker down. `start_child`
    # publishes the child task requests of StepContext#complete_with_child;
    # a handler that returns what that gives waits for its child.
    def run_handler(ready, start_child = nil)
      handler = @handlers[ready.callable]
      return Messages.failed(not_found(ready)) if handler.nil?

      context = StepContext.new(ready, start_child)
      limit = ready.timeout_seconds
      value = limit.nil? ? handler.call(context) : call_with_timeout(handler, context, limit)
      return Messages.waiting_for_child(value.child_task_id) if value.is_a?(Messages::WaitingForChild)

      Messages.completed(value)
    rescue StepError => e
      Messages.failed(e)
    rescue HandlerTimeout
      Messages.failed(RetryableError.new("the handler ran past timeout_seconds (#{format('%g', limit)} s)",
                                         error_code: ErrorCode::TIMEOUT))
    rescue Exception => e # rubocop:disable Lint/RescueException -- any failure of a handler is its step's
      raise if e.is_a?(SignalException) || e.is_a?(SystemExit) || e.is_a?(NoMemoryError)

      panicked(ready, e)
    end

    # Runs the handler on a thread of its own for at most `limit` seconds.
    # Past it, the thread is killed (its `ensure` blocks run) and its late
    # outcome, if any, is thrown away: one result per delivery.
    def call_with_timeout(handler, context, limit)
      thread = Thread.new do
        Thread.current.report_on_exception = false
        handler.call(context)
      end
      return thread.value if thread.join(limit)

      thread.kill
      raise HandlerTimeout
    end

    def not_found(ready)
      known = @handlers.keys.sort.join(', ')
      quoted = JSON.generate(ready.callable)
      PermanentError.new("this worker has no handler for callable #{quoted}; register one with " \
                         ".handler(#{quoted}, ..) (known: #{known.empty? ? 'none' : known})",
                         error_code: ErrorCode::HANDLER_NOT_FOUND)
    end

    def panicked(ready, error)
      @logger.error("step handler raised (task_id=#{ready.task_id} step=#{ready.step}): " \
                    "#{error.class}: #{error.message}\n#{Array(error.backtrace).first(10).join("\n")}")
      Messages.failed(PermanentError.new("the handler raised #{error.class.name}: #{error.message}",
                                         error_code: ErrorCode::HANDLER_PANIC))
    end

    # The step result's JSON; a result that is not JSON becomes a permanent
    # `invalid_result`, one over the size limit a permanent `result_too_large`.
    def encode_result(ready, started_at, finished_at, outcome)
      payload = begin
        Messages.encode(ready.result(started_at, finished_at, outcome))
      rescue JSON::GeneratorError, EncodingError, TypeError, ArgumentError => e
        error = PermanentError.new("the handler's result is not JSON: #{e.message}",
                                   error_code: ErrorCode::INVALID_RESULT)
        Messages.encode(ready.result(started_at, finished_at, Messages.failed(error)))
      end
      limit = @max_message_bytes
      return payload if payload.bytesize <= limit

      error = PermanentError.new(
        "the result of step #{ready.step} makes a step result of #{payload.bytesize} bytes, over the limit " \
        "of #{limit} bytes; return less (store large data elsewhere and return a reference to it), or " \
        'raise the limit (TASKER_MAX_MESSAGE_BYTES) on every coordinator and worker',
        error_code: ErrorCode::RESULT_TOO_LARGE
      )
      Messages.encode(ready.result(started_at, finished_at, Messages.failed(error)))
    end

    def log_outcome(ready, result)
      ids = "task_id=#{ready.task_id} step=#{ready.step} attempt=#{ready.attempt}"
      case result['status']
      when 'completed'
        @logger.info("step completed (#{ids})")
      when 'waiting_for_child'
        @logger.info("step waits for its child task (#{ids} child_task_id=#{result['child_task_id']})")
      else
        error = result['error']
        @logger.warn("step failed (#{ids} code=#{error['code']} retryable=#{error['retryable']}): #{error['message']}")
      end
    end

    private :call_with_timeout, :not_found, :panicked
  end
end
