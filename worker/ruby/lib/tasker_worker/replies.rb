# frozen_string_literal: true

module TaskerWorker
  # How a failed attempt of a finished task's step failed.
  StepFailure = Struct.new(:retryable, :code, :message, :retry_after_seconds, keyword_init: true) do
    def self.from_json(error)
      retry_after = error['retry_after_seconds']
      new(retryable: error.fetch('retryable', false) == true, code: error.fetch('code', '').to_s,
          message: error.fetch('message', '').to_s, retry_after_seconds: retry_after&.to_f)
    end
  end

  # One step of a finished task. `result` is nil also when the step has
  # none (see `has_result`).
  StepReport = Struct.new(:name, :state, :attempts, :started_at, :finished_at, :result, :has_result, :error,
                          :child_task_id, keyword_init: true)

  # A task's final state, once every step has ended (docs/protocol.md,
  # "Task finished"). `status` is `complete`, `failed` or `cancelled`;
  # `request_id` is the requester's in the copy sent to its `reply_to`.
  TaskFinished = Struct.new(:task_id, :namespace, :name, :version, :status, :created_at, :finished_at, :steps,
                            :results_omitted, :request_id, :raw, keyword_init: true) do
    # The report of step `name`; raises KeyError naming the steps there are.
    def step(name)
      steps.find { |s| s.name == name } ||
        raise(KeyError, "task #{task_id} has no step #{name.inspect}; its steps: " \
                        "#{steps.empty? ? 'none' : steps.map(&:name).join(', ')}")
    end

    # Reads a task-finished body; raises Messages::DecodeError
    # (`invalid_message`) when a field is missing.
    def self.from_json(msg)
      steps = msg.fetch('steps').map do |s|
        StepReport.new(name: s.fetch('name').to_s, state: s.fetch('state').to_s, attempts: Integer(s.fetch('attempts')),
                       started_at: s['started_at'], finished_at: s['finished_at'], result: s['result'],
                       has_result: s.key?('result'), error: s['error'] && StepFailure.from_json(s['error']),
                       child_task_id: s['child_task_id'])
      end
      new(task_id: msg.fetch('task_id').to_s, namespace: msg.fetch('namespace').to_s, name: msg.fetch('name').to_s,
          version: msg.fetch('version').to_s, status: msg.fetch('status').to_s,
          created_at: msg.fetch('created_at').to_s,
          finished_at: msg.fetch('finished_at').to_s, steps:, results_omitted: msg['results_omitted'] == true,
          request_id: msg['request_id']&.to_s, raw: msg)
    rescue KeyError, TypeError, ArgumentError, NoMethodError => e
      raise Messages::DecodeError.new(DeadLetterReason::INVALID_MESSAGE, "not a task-finished message: #{e.message}")
    end
  end

  # The coordinator refused a request; `reason` says what to do.
  TaskRejected = Struct.new(:code, :reason, :request_id, :namespace, :name, keyword_init: true) do
    # Reads a task-rejected body; raises Messages::DecodeError
    # (`invalid_message`) without code and reason.
    def self.from_json(msg)
      unless msg['code'].is_a?(String) && msg['reason'].is_a?(String)
        raise Messages::DecodeError.new(DeadLetterReason::INVALID_MESSAGE,
                                        'not a task-rejected message: it needs code and reason')
      end
      new(code: msg['code'], reason: msg['reason'], request_id: msg['request_id'],
          namespace: msg['namespace'], name: msg['name'])
    end
  end
end
