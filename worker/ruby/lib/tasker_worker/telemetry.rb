# frozen_string_literal: true

require 'json'
require 'logger'
require 'net/http'
require 'securerandom'
require 'uri'

module TaskerWorker
  # Spans of a worker, and the W3C trace context that travels in message
  # headers, so that a task is one trace across the coordinator and every
  # worker, whatever their language (the Python SDK's telemetry.py, the
  # reference).
  #
  # - Telemetry.init sets up span export over OTLP/HTTP when
  #   `OTEL_EXPORTER_OTLP_ENDPOINT` is set, configured by the standard
  #   variables: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
  #   `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_EXPORTER_OTLP_HEADERS`,
  #   `OTEL_EXPORTER_OTLP_TIMEOUT`, and the batch's `OTEL_BSP_SCHEDULE_DELAY`
  #   and `OTEL_BSP_MAX_QUEUE_SIZE`. With no endpoint nothing is exported,
  #   and spans cost next to nothing.
  # - Telemetry.extract reads `traceparent` and `tracestate` from AMQP
  #   headers; Telemetry.headers writes the ones a message passes on.
  #
  # The SDK carries its own small exporter rather than OpenTelemetry's gems,
  # which Debian does not package. It speaks OTLP/HTTP with the JSON
  # encoding, which every OTLP/HTTP receiver must accept (the OTLP
  # specification, "OTLP/HTTP"): `http/protobuf`, the protocol many
  # deployments set for every process, is answered with JSON and one log
  # line, since the receiver is the same and the protobuf encoding would
  # need a gem for one message type.
  module Telemetry
    # The instrumentation scope of Tasker's spans.
    SCOPE = 'tasker'
    DEFAULT_SCHEDULE_DELAY_MS = 5000
    DEFAULT_MAX_QUEUE_SIZE = 2048
    DEFAULT_TIMEOUT_MS = 10_000
    PROTOCOLS = %w[http/json http/protobuf].freeze

    # The trace context of one span, as `traceparent` and `tracestate`
    # carry it: 32 and 16 lower-case hex digits, the trace flags, and the
    # vendors' opaque `tracestate`.
    TraceContext = Struct.new(:trace_id, :span_id, :flags, :state) do
      # Whether the trace is sampled (flag 01).
      def sampled?
        flags.anybits?(1)
      end

      # The `traceparent` header of this context (version 00).
      def traceparent
        format('00-%<trace>s-%<span>s-%<flags>02x', trace: trace_id, span: span_id, flags:)
      end
    end

    TRACEPARENT = /\A(?<version>[0-9a-f]{2})-(?<trace>[0-9a-f]{32})-(?<span>[0-9a-f]{16})-
                   (?<flags>[0-9a-f]{2})(?<rest>-.*)?\z/x
    private_constant :TRACEPARENT

    # The trace context of a `traceparent` (and `tracestate`), or nil for
    # a missing or malformed one, as the W3C Trace Context says: version ff
    # and all-zero ids are invalid, and version 00 has nothing after the
    # flags.
    def self.parse(traceparent, tracestate = nil)
      match = TRACEPARENT.match(traceparent.to_s.strip)
      return nil if match.nil? || match[:version] == 'ff'
      return nil if match[:version] == '00' && match[:rest]
      return nil if match[:trace].delete('0').empty? || match[:span].delete('0').empty?

      state = tracestate.is_a?(String) && !tracestate.strip.empty? ? tracestate.strip : nil
      TraceContext.new(match[:trace], match[:span], match[:flags].to_i(16), state)
    end

    # The trace context that AMQP `headers` carry; nil when they carry none.
    def self.extract(headers)
      headers ||= {}
      parse(text(headers[Topology::Header::TRACEPARENT]), text(headers[Topology::Header::TRACESTATE]))
    end

    # The trace headers a message published while handling a delivery
    # carries: the context of `span` when spans are exported, so that the
    # next process's spans are its children; otherwise the delivery's own
    # `incoming` headers, passed on unchanged, so that the task stays one
    # trace past this process.
    def self.headers(span, incoming)
      if span&.exported?
        out = { Topology::Header::TRACEPARENT => span.context.traceparent }
        out[Topology::Header::TRACESTATE] = span.context.state if span.context.state
        return out
      end
      (incoming || {}).slice(Topology::Header::TRACEPARENT, Topology::Header::TRACESTATE)
                      .transform_values { |v| text(v) }.compact
    end

    def self.text(value)
      value = value.to_s if value.is_a?(Symbol)
      value.is_a?(String) ? value.dup.force_encoding(Encoding::UTF_8) : nil
    end
    private_class_method :text

    # A new random id of `bytes` bytes as hex, never all zeros.
    def self.random_id(bytes)
      loop do
        id = SecureRandom.hex(bytes)
        return id unless id.delete('0').empty?
      end
    end

    # A span: one operation of the worker, with its trace context, its
    # parent, attributes and status. Its methods may be called from any
    # thread; #finish hands it to the exporter once.
    class Span
      # OTLP's span kinds, as numbers.
      KINDS = { internal: 1, server: 2, client: 3, producer: 4, consumer: 5 }.freeze
      STATUS_ERROR = 2

      attr_reader :context, :parent_span_id, :kind, :start_ns, :end_ns

      def initialize(name, context:, parent_span_id:, kind:, attributes:, exporter:)
        @name = name
        @context = context
        @parent_span_id = parent_span_id
        @kind = KINDS.fetch(kind)
        @attributes = attributes.dup
        @exporter = exporter
        @status = nil
        @start_ns = Telemetry.now_ns
        @end_ns = nil
        @mutex = Mutex.new
      end

      # Whether this span is exported when it finishes: spans are exported
      # and its trace is sampled.
      def exported?
        !@exporter.nil? && @context.sampled?
      end

      def name
        @mutex.synchronize { @name }
      end

      # Renames the span, once what it does is known.
      def name=(name)
        @mutex.synchronize { @name = name }
      end

      def attributes
        @mutex.synchronize { @attributes.dup }
      end

      def set_attribute(key, value)
        add_attributes(key => value)
      end

      # Sets each of `attributes` (a Hash), keeping the others.
      def add_attributes(attributes)
        @mutex.synchronize { @attributes.merge!(attributes.transform_keys(&:to_s)) }
        self
      end

      # Marks the span failed, `description` saying why (an error code).
      def error!(description)
        @mutex.synchronize { @status = { 'code' => STATUS_ERROR, 'message' => description.to_s } }
        self
      end

      def status
        @mutex.synchronize { @status }
      end

      # Ends the span and hands it to the exporter; later calls do nothing.
      def finish
        exporter = @mutex.synchronize do
          return self unless @end_ns.nil?

          @end_ns = Telemetry.now_ns
          @exporter
        end
        exporter.add(self) if exported?
        self
      end

      # The span in the OTLP JSON mapping: hex ids, the kind as a number,
      # times as strings of nanoseconds.
      def to_otlp
        @mutex.synchronize do
          span = { 'traceId' => @context.trace_id, 'spanId' => @context.span_id, 'name' => @name, 'kind' => @kind,
                   'startTimeUnixNano' => @start_ns.to_s, 'endTimeUnixNano' => (@end_ns || @start_ns).to_s,
                   'attributes' => Telemetry.otlp_attributes(@attributes) }
          span['parentSpanId'] = @parent_span_id if @parent_span_id
          span['traceState'] = @context.state if @context.state
          span['status'] = @status if @status
          span
        end
      end
    end

    # Starts spans; they are exported through `exporter`, or never when it
    # is nil.
    class Tracer
      attr_reader :exporter

      def initialize(exporter = nil)
        @exporter = exporter
      end

      def exporting?
        !@exporter.nil?
      end

      # A started span, child of `parent` (a TraceContext) or, without one,
      # the root of a new, sampled trace. A child keeps its parent's flags,
      # so an unsampled trace stays unexported, and its `tracestate`.
      def start_span(name, kind: :internal, parent: nil, attributes: {})
        context = if parent
                    TraceContext.new(parent.trace_id, Telemetry.random_id(8), parent.flags, parent.state)
                  else
                    TraceContext.new(Telemetry.random_id(16), Telemetry.random_id(8), 1, nil)
                  end
        Span.new(name, context:, parent_span_id: parent&.span_id, kind:, attributes:, exporter: @exporter)
      end
    end

    # Sends finished spans to an OTLP/HTTP receiver in batches, with the
    # JSON encoding: a background thread posts what has gathered every
    # `delay` seconds, and #shutdown posts the rest. The batch is bounded
    # (`max_queue` spans); past it, spans are dropped rather than slowing
    # steps. A failed export is logged once per outage and its spans are
    # dropped: tracing never breaks step handling.
    class OtlpExporter
      attr_reader :url, :resource

      def initialize(url, resource:, delay: DEFAULT_SCHEDULE_DELAY_MS / 1000.0, max_queue: DEFAULT_MAX_QUEUE_SIZE,
                     timeout: DEFAULT_TIMEOUT_MS / 1000.0, headers: {}, logger: nil)
        @url = URI(url)
        @resource = resource
        @delay = [delay, 0.01].max
        @max_queue = [max_queue, 2].max
        @timeout = timeout
        @headers = headers
        @logger = logger
        @mutex = Mutex.new
        @wake = ConditionVariable.new
        @spans = []
        @stopping = false
        @failing = false
        @dropped = 0
        @send = Mutex.new # one post at a time, in order
        @thread = Thread.new { run }
      end

      # Adds a finished span to the batch; drops it when the batch is full.
      def add(span)
        @mutex.synchronize do
          if @spans.size >= @max_queue
            @logger&.warn("dropping spans: #{@max_queue} wait for export (OTEL_BSP_MAX_QUEUE_SIZE)") if @dropped.zero?
            @dropped += 1
            return
          end
          @spans << span
          @wake.signal if @spans.size >= @max_queue / 2
        end
      end

      # Exports every span gathered so far, now; true if none failed.
      def flush
        @send.synchronize do
          spans = @mutex.synchronize { @spans.slice!(0..) }
          spans.empty? || post(spans)
        end
      end

      # Stops the background thread and exports what is left.
      def shutdown
        @mutex.synchronize do
          @stopping = true
          @wake.signal
        end
        @thread.join(@timeout + 1)
        flush
      end

      # The request body of `spans` (ExportTraceServiceRequest, OTLP JSON).
      def payload(spans)
        JSON.generate(
          'resourceSpans' => [{
            'resource' => { 'attributes' => Telemetry.otlp_attributes(@resource) },
            'scopeSpans' => [{ 'scope' => { 'name' => SCOPE, 'version' => VERSION },
                               'spans' => spans.map(&:to_otlp) }]
          }]
        )
      end

      private

      def run
        loop do
          @mutex.synchronize do
            @wake.wait(@mutex, @delay) unless @stopping || @spans.size >= @max_queue / 2
          end
          break if @mutex.synchronize { @stopping }

          flush
        end
      rescue StandardError => e
        @logger&.error("the span exporter stopped: #{e.class}: #{e.message}")
      end

      def post(spans)
        http = Net::HTTP.new(@url.host, @url.port)
        http.use_ssl = @url.scheme == 'https'
        http.open_timeout = http.read_timeout = http.write_timeout = @timeout
        request = Net::HTTP::Post.new(@url.request_uri, @headers.merge('Content-Type' => 'application/json'))
        request.body = payload(spans)
        response = http.request(request)
        unless response.is_a?(Net::HTTPSuccess)
          return failed("#{response.code} #{response.body.to_s[0, 200].strip}", spans.size)
        end

        succeeded
      rescue StandardError => e # any failure of the network or the receiver
        failed("#{e.class}: #{e.message}", spans.size)
      end

      def failed(why, count)
        @logger&.warn("cannot export spans to #{@url}; dropping them until it answers: #{why}") unless @failing
        @failing = true
        @logger&.debug("dropped #{count} spans")
        false
      end

      def succeeded
        @logger&.info("exporting spans to #{@url} again") if @failing
        @failing = false
        true
      end
    end

    # What Telemetry.init returns: keep it for the life of the program and
    # call #shutdown at its end, which exports the spans still buffered.
    class Guard
      attr_reader :tracer

      def initialize(tracer)
        @tracer = tracer
      end

      # Whether spans are exported.
      def exporting?
        @tracer.exporting?
      end

      # Exports the buffered spans and stops the exporter; spans are no
      # longer exported after it.
      def shutdown
        exporter = @tracer.exporter
        Telemetry.uninstall(@tracer)
        exporter&.shutdown
        nil
      end
    end

    @tracer = Tracer.new
    @lock = Mutex.new

    class << self
      # Sets up span export when `OTEL_EXPORTER_OTLP_ENDPOINT` is set in
      # `env`; `service_name` names the process's spans unless
      # `OTEL_SERVICE_NAME` does. Call once, at the start of the program,
      # and keep what it returns to #shutdown at its end.
      #
      # Raises ConfigError for an `OTEL_EXPORTER_OTLP_PROTOCOL` or a number
      # setting it cannot use.
      def init(service_name, env: ENV, logger: nil)
        logger ||= Logger.new($stderr, progname: 'tasker_worker', level: Logger::INFO)
        endpoint = env['OTEL_EXPORTER_OTLP_ENDPOINT'].to_s.strip
        return Guard.new(install(Tracer.new)) if endpoint.empty?

        check_protocol(env, logger)
        exporter = OtlpExporter.new(
          "#{endpoint.chomp('/')}/v1/traces",
          resource: resource(service_name, env),
          delay: milliseconds(env, 'OTEL_BSP_SCHEDULE_DELAY', DEFAULT_SCHEDULE_DELAY_MS),
          max_queue: count(env, 'OTEL_BSP_MAX_QUEUE_SIZE', DEFAULT_MAX_QUEUE_SIZE),
          timeout: milliseconds(env, 'OTEL_EXPORTER_OTLP_TIMEOUT', DEFAULT_TIMEOUT_MS),
          headers: pairs(env['OTEL_EXPORTER_OTLP_HEADERS']), logger:
        )
        Guard.new(install(Tracer.new(exporter)))
      end

      # The tracer of Tasker's spans: the one Telemetry.init installed, else
      # one that exports nothing.
      def tracer
        @lock.synchronize { @tracer }
      end

      # Exports the spans gathered so far, if spans are exported.
      def flush
        tracer.exporter&.flush
      end

      # Makes `tracer` the process's; the one it replaces is shut down.
      def install(tracer)
        previous = @lock.synchronize do
          old = @tracer
          @tracer = tracer
          old
        end
        previous.exporter&.shutdown unless previous.equal?(tracer)
        tracer
      end

      # Puts back a tracer that exports nothing, if `tracer` is installed.
      def uninstall(tracer)
        @lock.synchronize { @tracer = Tracer.new if @tracer.equal?(tracer) }
      end

      # The time now, in nanoseconds since the Unix epoch.
      def now_ns
        Process.clock_gettime(Process::CLOCK_REALTIME, :nanosecond)
      end

      # Attributes in the OTLP JSON mapping: integers as strings, as int64.
      def otlp_attributes(attributes)
        attributes.map { |key, value| { 'key' => key.to_s, 'value' => otlp_value(value) } }
      end

      # The resource of the process's spans: `OTEL_RESOURCE_ATTRIBUTES`, then
      # `service.name` from `OTEL_SERVICE_NAME` or else `service_name`.
      def resource(service_name, env)
        attributes = pairs(env['OTEL_RESOURCE_ATTRIBUTES'])
        named = env['OTEL_SERVICE_NAME'].to_s.strip
        attributes['service.name'] = named.empty? ? service_name.to_s : named
        attributes.merge('telemetry.sdk.language' => 'ruby', 'telemetry.sdk.name' => 'tasker_worker',
                         'telemetry.sdk.version' => VERSION)
      end

      private

      def otlp_value(value)
        case value
        when true, false then { 'boolValue' => value }
        when Integer then { 'intValue' => value.to_s }
        when Float then { 'doubleValue' => value }
        when Array then { 'arrayValue' => { 'values' => value.map { |v| otlp_value(v) } } }
        else { 'stringValue' => value.to_s }
        end
      end

      def check_protocol(env, logger)
        protocol = env['OTEL_EXPORTER_OTLP_PROTOCOL'].to_s.strip
        return if protocol.empty? || protocol == 'http/json'

        unless PROTOCOLS.include?(protocol)
          raise ConfigError, "OTEL_EXPORTER_OTLP_PROTOCOL=#{protocol.inspect} is not supported by the Ruby SDK; " \
                             'set http/json (or http/protobuf) and point OTEL_EXPORTER_OTLP_ENDPOINT at the ' \
                             "receiver's OTLP/HTTP port (4318)"
        end
        logger.info('OTEL_EXPORTER_OTLP_PROTOCOL is http/protobuf; the Ruby SDK exports spans over OTLP/HTTP ' \
                    'with the JSON encoding, which OTLP/HTTP receivers accept as well')
      end

      # `key=value,key=value` (values percent-encoded), as the OTEL_*
      # variables write them.
      def pairs(text)
        text.to_s.split(',').each_with_object({}) do |pair, out|
          key, sep, value = pair.partition('=')
          out[key.strip] = URI.decode_www_form_component(value.strip) unless sep.empty? || key.strip.empty?
        end
      end

      def milliseconds(env, name, default)
        count(env, name, default) / 1000.0
      end

      def count(env, name, default)
        value = env[name].to_s.strip
        return default if value.empty?

        number = Integer(value, 10)
        raise ArgumentError if number.negative?

        number
      rescue ArgumentError
        raise ConfigError, "#{name}=#{value.inspect} is not a whole number >= 0; unset it or fix it"
      end
    end
  end
end
