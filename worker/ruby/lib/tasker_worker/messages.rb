# frozen_string_literal: true

require 'digest'
require 'json'

module TaskerWorker
  # The JSON bodies of Tasker's messages (docs/protocol.md, "Messages"):
  # decoding a step-ready message with the same checks and dead-letter
  # reasons as the Rust and Python SDKs, and encoding what a worker sends.
  module Messages
    UUID_PATTERN = /\A\h{8}-\h{4}-\h{4}-\h{4}-\h{12}\z/
    MAX_COUNT = 0xFFFF_FFFF
    # The namespace UUID of task ids derived from an idempotency key.
    TASK_ID_NAMESPACE = '6b1f0c52-3e0a-4c8e-9d43-7a521f0eb7c1'

    # Why a message cannot be used: its dead-letter `reason` and a detail for
    # people. The header it gets is `<reason>: <detail>`.
    class DecodeError < StandardError
      attr_reader :reason, :detail

      def initialize(reason, detail)
        super(detail)
        @reason = reason
        @detail = detail
      end

      # The `x-tasker-dead-letter-reason` header of the message.
      def header
        "#{reason}: #{detail}"
      end
    end

    # The coordinator asks a worker to run one attempt of one step.
    StepReady = Struct.new(
      :task_id, :namespace, :task_name, :task_version, :step, :callable, :attempt,
      :max_attempts, :timeout_seconds, :context, :initialization, :dependencies,
      :dependency_results,
      keyword_init: true
    ) do
      # `<task_id>:<step>`: the same for every attempt and delivery.
      def idempotency_key
        "#{task_id}:#{step}"
      end

      # The step result of this attempt; `outcome` is Messages.completed or
      # Messages.failed. It echoes the task, the template, the step and the
      # attempt, as the protocol requires.
      def result(started_at, finished_at, outcome)
        {
          'protocol_version' => Topology::PROTOCOL_VERSION,
          'task_id' => task_id,
          'namespace' => namespace,
          'task_name' => task_name,
          'task_version' => task_version,
          'step' => step,
          'attempt' => attempt,
          'started_at' => Messages.timestamp(started_at),
          'finished_at' => Messages.timestamp(finished_at)
        }.merge(outcome)
      end
    end

    # What StepContext#complete_with_child gives, for the handler to return:
    # the step's outcome will be its child task's.
    WaitingForChild = Struct.new(:child_task_id) do
      def initialize(child_task_id)
        super
        freeze
      end
    end

    module_function

    # An RFC 3339 timestamp in UTC with milliseconds: `2025-03-14T09:26:54.318Z`.
    def timestamp(time)
      time.utc.strftime('%Y-%m-%dT%H:%M:%S.%LZ')
    end

    # A message as compact UTF-8 JSON.
    # Raises JSON::GeneratorError for NaN, infinities or invalid UTF-8.
    def encode(message)
      JSON.generate(message).b
    end

    # The outcome of an attempt that returned `value`.
    def completed(value)
      { 'status' => 'completed', 'result' => value }
    end

    # The outcome of an attempt that started a child task.
    def waiting_for_child(child_task_id)
      { 'status' => 'waiting_for_child', 'child_task_id' => child_task_id }
    end

    # A task request; optional fields are left out when they have no value.
    def task_request(namespace, name, context, request_id:, version: nil, idempotency_key: nil)
      request = {
        'protocol_version' => Topology::PROTOCOL_VERSION,
        'request_id' => request_id,
        'namespace' => namespace,
        'name' => name,
        'context' => context.to_h.dup
      }
      request['version'] = version unless version.nil?
      request['idempotency_key'] = idempotency_key unless idempotency_key.nil?
      request
    end

    # The id of the task a request asks for, known before any coordinator
    # sees it: derived from the idempotency key when there is one, else the
    # request id (docs/protocol.md, "The task id").
    def task_id_of(request)
      key = request['idempotency_key']
      return request.fetch('request_id').to_s if key.nil?

      uuid_v5(TASK_ID_NAMESPACE, "#{request.fetch('namespace')}/#{request.fetch('name')}/#{key}")
    end

    # The UUID version 5 (RFC 9562: SHA-1, name-based) of `name`, UTF-8,
    # under the UUID `namespace`, in its canonical lower-case form.
    def uuid_v5(namespace, name)
      raise ArgumentError, "#{namespace.inspect} is not a UUID" unless UUID_PATTERN.match?(namespace)

      bytes = Digest::SHA1.digest([namespace.delete('-')].pack('H*') + name.encode(Encoding::UTF_8).b).bytes[0, 16]
      bytes[6] = (bytes[6] & 0x0F) | 0x50
      bytes[8] = (bytes[8] & 0x3F) | 0x80
      hex = bytes.pack('C*').unpack1('H*')
      [hex[0, 8], hex[8, 4], hex[12, 4], hex[16, 4], hex[20, 12]].join('-')
    end

    # The outcome of an attempt that failed with `error`, a StepError.
    def failed(error)
      failure = { 'retryable' => error.retryable?, 'code' => error.code, 'message' => error.message }
      failure['retry_after_seconds'] = error.retry_after.to_f if error.retryable? && !error.retry_after.nil?
      { 'status' => 'failed', 'error' => failure }
    end

    # What kind of JSON value `value` is, for messages: "a string".
    def describe(value)
      case value
      when nil then 'null'
      when true, false then 'a boolean'
      when Integer then 'an integer'
      when Float then 'a number'
      when String then 'a string'
      when Array then 'an array'
      when Hash then 'an object'
      else "a #{value.class.name}"
      end
    end

    # A message's JSON object, once its size, its syntax and its protocol
    # version are checked. Raises DecodeError.
    def decode_object(body, max_bytes)
      if body.bytesize > max_bytes
        raise DecodeError.new(DeadLetterReason::TOO_LARGE,
                              "payload of #{body.bytesize} bytes is over the limit of #{max_bytes} bytes")
      end

      message = parse(body)
      raise invalid("it is #{describe(message)}, not a JSON object") unless message.is_a?(Hash)

      check_version(message)
      message
    end

    # A step-ready message, checked as the Rust and Python workers check it.
    # Raises DecodeError when it cannot be used.
    def decode_step_ready(body, max_bytes)
      m = decode_object(body, max_bytes)
      task_id = field(m, 'task_id', String, 'a UUID string')
      raise invalid("field task_id is #{task_id.inspect}, not a UUID") unless UUID_PATTERN.match?(task_id)

      StepReady.new(
        task_id: task_id.downcase,
        namespace: field(m, 'namespace', String, 'a string'),
        task_name: field(m, 'task_name', String, 'a string'),
        task_version: field(m, 'task_version', String, 'a string'),
        step: field(m, 'step', String, 'a string'),
        callable: field(m, 'callable', String, 'a string'),
        attempt: count(m, 'attempt'),
        max_attempts: count(m, 'max_attempts'),
        timeout_seconds: timeout_of(m),
        context: context_of(m),
        initialization: field(m, 'initialization', Hash, 'an object'),
        dependencies: dependencies_of(m),
        dependency_results: field(m, 'dependency_results', Hash, 'an object')
      )
    end

    def parse(body)
      text = body.dup.force_encoding(Encoding::UTF_8)
      raise JSON::ParserError, 'it is not valid UTF-8' unless text.valid_encoding?

      JSON.parse(text, allow_nan: false, create_additions: false)
    rescue JSON::ParserError => e
      raise DecodeError.new(DeadLetterReason::NOT_JSON, "payload is not JSON: #{e.message.lines.first&.strip}")
    end

    def check_version(message)
      version = message['protocol_version']
      raise invalid('missing field protocol_version') if version.nil?
      return if version.is_a?(Integer) && version == Topology::PROTOCOL_VERSION

      found = version.is_a?(Integer) && version >= 0 ? version.to_s : 'not a number'
      raise DecodeError.new(
        DeadLetterReason::WRONG_PROTOCOL_VERSION,
        "protocol_version is #{found}, this process speaks only #{Topology::PROTOCOL_VERSION}; " \
        "resend the message as version #{Topology::PROTOCOL_VERSION} or upgrade the consumer"
      )
    end

    def timeout_of(message)
      timeout = message['timeout_seconds']
      return nil if timeout.nil?
      unless timeout.is_a?(Numeric) && timeout.finite? && timeout >= 0
        raise invalid("field timeout_seconds is #{describe(timeout)}, not a number of seconds")
      end

      timeout.to_f
    end

    def context_of(message)
      raise invalid('missing field context') unless message.key?('context')

      message['context']
    end

    def dependencies_of(message)
      dependencies = message['dependencies'] || []
      unless dependencies.is_a?(Array) && dependencies.all?(String)
        raise invalid('field dependencies must be an array of step names')
      end

      dependencies
    end

    def field(message, name, kind, what)
      value = message[name]
      raise invalid("missing field #{name}") if value.nil?
      raise invalid("field #{name} is #{describe(value)}, expected #{what}") unless value.is_a?(kind)

      value
    end

    def count(message, name)
      value = message[name]
      raise invalid("missing field #{name}") if value.nil?

      unless value.is_a?(Integer) && value.between?(0, MAX_COUNT)
        raise invalid("field #{name} is #{value.is_a?(Integer) ? value : describe(value)}, " \
                      'expected a non-negative integer')
      end

      value
    end

    def invalid(detail)
      DecodeError.new(DeadLetterReason::INVALID_MESSAGE, "payload does not match the message schema: #{detail}")
    end
    private_class_method :parse, :check_version, :timeout_of, :context_of, :dependencies_of,
                         :field, :count, :invalid
  end

  # What StepContext#complete_with_child gives (Messages::WaitingForChild).
  WaitingForChild = Messages::WaitingForChild
end
