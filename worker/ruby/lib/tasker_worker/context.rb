# frozen_string_literal: true

require 'json'
require 'securerandom'

module TaskerWorker
  # What a handler can read about the attempt it runs: the task's input, the
  # results of its ancestors, its template's `initialization`, and who it is.
  #
  # Every reader raises a permanent `invalid_input` PermanentError when what
  # it asks for is missing: a bad input is a bug in the request or the
  # template, which no retry fixes, and the message says where to look.
  class StepContext
    attr_reader :message

    # `start_child` publishes the requests of #complete_with_child, confirmed:
    # called with the request and its task id, it raises BrokerError if the
    # request is not safe with the broker. A worker gives one.
    #
    # Raises PermanentError (`invalid_input`) if the task's context is not a
    # JSON object.
    def initialize(ready, start_child = nil)
      unless ready.context.is_a?(Hash)
        raise PermanentError.new(
          "the task context is not a JSON object: it is #{Messages.describe(ready.context)}",
          error_code: ErrorCode::INVALID_INPUT
        )
      end

      @message = ready
      @start_child = start_child
    end

    def task_id = @message.task_id
    def namespace = @message.namespace
    def task_name = @message.task_name
    def task_version = @message.task_version
    def step_name = @message.step
    def attempt = @message.attempt
    def max_attempts = @message.max_attempts

    # The same for every attempt and delivery of this step of this task,
    # `<task_id>:<step>`: pass it to the services you call, so that a
    # repeated call has no second effect (delivery is at least once).
    def idempotency_key = @message.idempotency_key

    # The step's direct dependencies, by name, as its template lists them.
    def dependencies = @message.dependencies.dup

    # The whole task context, the request's input (frozen copy).
    def inputs = deep_freeze(@message.context)

    # The step's `handler.initialization` settings (frozen copy).
    def initialization = deep_freeze(@message.initialization)

    # The results this step's message carries, by step name (frozen copy).
    def dependency_results = deep_freeze(@message.dependency_results)

    # The input `key` of the task's context. Raises PermanentError
    # (`invalid_input`) if it is missing.
    def get_input(key)
      key = key.to_s
      unless @message.context.key?(key)
        raise PermanentError.new(
          "the task context has no #{quote(key)}; add it to the task request's context",
          error_code: ErrorCode::INVALID_INPUT
        )
      end

      @message.context[key]
    end

    # The input `key`, or `default` when it is missing or null.
    def get_input_or(key, default)
      value = @message.context[key.to_s]
      value.nil? ? default : value
    end

    # The result of `step`, an ancestor of this step. Raises PermanentError
    # (`invalid_input`) if the message does not carry that result.
    def get_dependency_result(step)
      step = step.to_s
      results = @message.dependency_results
      return results[step] if results.key?(step)

      known = results.empty? ? 'none' : results.keys.join(', ')
      raise PermanentError.new(
        "step #{quote(step_name)} has no result from #{quote(step)}; it can read only the " \
        "results its message carries (its ancestors', or those its results_from names): #{known}",
        error_code: ErrorCode::INVALID_INPUT
      )
    end

    # The `handler.initialization` setting `key`, or nil when the template
    # does not set it.
    def get_initialization(key)
      @message.initialization[key.to_s]
    end

    # Starts a task of template `namespace`/`name` (of any namespace), with
    # `context` (a Hash) as its input, and makes its outcome this step's:
    # return what this gives from `call`:
    #
    #   return context.complete_with_child('payments', 'process_refund', refund)
    #
    # The request is confirmed before this returns, and the step holds no
    # worker slot while the child runs. When the child completes, the step
    # completes with an object of the child's `task_id`, `namespace`, `name`,
    # `version` and `results`; when it fails, is cancelled or is refused, the
    # step fails permanently with `child_task_failed`, `child_task_cancelled`
    # or `child_task_rejected`. Every attempt and delivery of this step asks
    # for the same child (its idempotency key is `child-of:<task_id>:<step>`),
    # so none starts a second one. `version` picks the template's version;
    # without it, the highest one loaded.
    #
    # Raises PermanentError (`invalid_input`) if `context` is not a Hash, and
    # (`child_not_started`) outside a worker; RetryableError
    # (`child_not_started`) if the request could not be published.
    def complete_with_child(namespace, name, context, version: nil)
      unless context.is_a?(Hash)
        raise PermanentError.new(
          "the context of child task #{namespace}/#{name} must be a JSON object, not #{Messages.describe(context)}",
          error_code: ErrorCode::INVALID_INPUT
        )
      end

      request = Messages.task_request(namespace, name, context, request_id: SecureRandom.uuid, version:,
                                                                idempotency_key: "child-of:#{task_id}:#{step_name}")
      request['parent'] = {
        'task_id' => task_id,
        'namespace' => self.namespace,
        'name' => task_name,
        'version' => task_version,
        'step' => step_name,
        'attempt' => attempt
      }
      child_task_id = Messages.task_id_of(request)
      if @start_child.nil?
        raise PermanentError.new(
          'this context has no broker to start a child task with; child tasks start only in a Worker',
          error_code: ErrorCode::CHILD_NOT_STARTED
        )
      end

      begin
        @start_child.call(request, child_task_id)
      rescue BrokerError => e
        raise RetryableError.new("the request for child task #{namespace}/#{name} was not published: #{e.message}",
                                 error_code: ErrorCode::CHILD_NOT_STARTED)
      end
      Messages::WaitingForChild.new(child_task_id)
    end

    private

    def quote(text)
      JSON.generate(text)
    end

    def deep_freeze(value)
      case value
      when Hash then value.to_h { |k, v| [k.dup.freeze, deep_freeze(v)] }.freeze
      when Array then value.map { |v| deep_freeze(v) }.freeze
      else value.frozen? ? value : value.dup.freeze
      end
    end
  end
end
