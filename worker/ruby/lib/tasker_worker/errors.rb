# frozen_string_literal: true

module TaskerWorker
  # The codes Tasker's processes fail a step with (docs/protocol.md, "The
  # codes Tasker writes"); every SDK spells them alike.
  module ErrorCode
    TIMEOUT = 'timeout'
    HANDLER_NOT_FOUND = 'handler_not_found'
    HANDLER_PANIC = 'handler_panic'
    INVALID_INPUT = 'invalid_input'
    INVALID_RESULT = 'invalid_result'
    RESULT_TOO_LARGE = 'result_too_large'
    NO_CHILD_TASK = 'no_child_task'
    CHILD_NOT_STARTED = 'child_not_started'
    CHILD_TASK_FAILED = 'child_task_failed'
    CHILD_TASK_CANCELLED = 'child_task_cancelled'
    CHILD_TASK_REJECTED = 'child_task_rejected'
  end

  # Why a message went to the dead-letter queue: the start of its
  # `x-tasker-dead-letter-reason` header.
  module DeadLetterReason
    TOO_LARGE = 'too_large'
    NOT_JSON = 'not_json'
    WRONG_PROTOCOL_VERSION = 'wrong_protocol_version'
    INVALID_MESSAGE = 'invalid_message'
    REDELIVERY_LIMIT = 'redelivery_limit'
  end

  # Why an attempt failed: a short stable `code` and a sentence for people.
  # Raise one of its two kinds, PermanentError or RetryableError, never this
  # class itself.
  class StepError < StandardError
    attr_reader :code

    def initialize(message, error_code:)
      super(message)
      @code = error_code.to_s
    end

    def retryable?
      false
    end

    # Seconds to wait before the next attempt; only retryable errors carry it.
    def retry_after
      nil
    end
  end

  # Trying again cannot help: bad input, or a business rule says no.
  #
  #   raise TaskerWorker::PermanentError.new('Invalid email format', error_code: 'INVALID_EMAIL')
  class PermanentError < StepError
  end

  # Trying again may help: a timeout, a 503, a lock held elsewhere.
  # `retry_after` (seconds) asks the coordinator to wait that long (at most a
  # day) before the next attempt, instead of the step's backoff.
  class RetryableError < StepError
    def initialize(message, error_code:, retry_after: nil)
      super(message, error_code:)
      if !retry_after.nil? && !(retry_after.is_a?(Numeric) && retry_after >= 0)
        raise ArgumentError, "retry_after is #{retry_after.inspect}; give a number of seconds >= 0"
      end

      @retry_after = retry_after
    end

    def retryable?
      true
    end

    attr_reader :retry_after
  end

  # Something went wrong in the SDK itself, not in a step.
  class TaskerError < StandardError
  end

  # A configuration value cannot work; the message says how to fix it.
  class ConfigError < TaskerError
  end

  # RabbitMQ could not be used: the connection, a channel or a publish
  # failed. The delivery that caused it stays unacked and comes back.
  # `retryable?` says whether connecting again may help.
  class BrokerError < TaskerError
    def initialize(message = nil, retryable: true)
      super(message)
      @retryable = retryable
    end

    def retryable?
      @retryable
    end
  end

  # No task finished or task rejected came for a request in time.
  class ReplyTimeoutError < TaskerError
  end
end
