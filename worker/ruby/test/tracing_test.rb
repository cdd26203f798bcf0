# frozen_string_literal: true

require 'test_helper'
require 'socket'
require 'tmpdir'
require 'fileutils'

# A Ruby step joins the task's trace: the worker continues the step-ready
# message's `traceparent` as the parent of a CONSUMER span `process <step>`,
# exported over OTLP/HTTP to a real receiver (rotel, as the Rust and Python
# tracing tests run it), and passes its own context on in the step result's
# headers.
class TracingTest < Minitest::Test
  include BrokerTest
  include LocalHttp

  REPO = File.expand_path('../../..', __dir__)
  ECHO = 'Tests::Echo'
  REFUSE = 'Tests::Refuse'
  HANDLERS = {
    ECHO => ->(context) { context.inputs },
    REFUSE => ->(_) { raise TaskerWorker::PermanentError.new('no', error_code: 'REFUSED') }
  }.freeze

  # One span as rotel prints it with `--debug-log-verbosity detailed`.
  Span = Struct.new(:service, :trace, :parent, :id, :name, :kind, :status, :attributes)

  # The span fields rotel prints one a line, by the start of the line.
  FIELDS = { 'Trace ID' => :trace, 'Parent ID' => :parent, 'ID ' => :id, 'Name ' => :name, 'Kind ' => :kind,
             'Status code' => :status }.freeze

  def self.parse(log)
    spans = []
    service = ''
    in_attributes = false
    log.each_line do |line|
      text = line.strip
      value = text.partition(':')[2].strip
      field = FIELDS.find { |prefix, _| text.start_with?(prefix) }&.last
      if text.start_with?('-> service.name:')
        service = value.sub(/\AStr\((.*)\)\z/, '\1')
      elsif text.start_with?('Span #')
        spans << Span.new(service, '', '', '', '', '', '', {})
        in_attributes = false
      elsif spans.empty? then next
      elsif field then spans.last[field] = value
      elsif text.start_with?('Attributes:', 'Events:', 'Links:', 'ResourceSpans')
        in_attributes = text.start_with?('Attributes:')
      elsif in_attributes && text.start_with?('-> ')
        key, _, raw = text[3..].partition(': ')
        spans.last.attributes[key] = raw.sub(/\A\w+\((.*)\)\z/, '\1')
      end
    end
    spans
  end

  # rotel's agent: TASKER_ROTEL_AGENT (deploy/dev test installs it and names
  # it), else the install under the repository's .dev/.
  def rotel_agent
    agent = ENV.fetch('TASKER_ROTEL_AGENT', nil) || File.join(REPO, '.dev/rotel/rotel/rotel-agent')
    return agent if File.executable?(agent)

    flunk "no rotel-agent at #{agent}: run deploy/dev test, which installs it, or set TASKER_ROTEL_AGENT"
  end

  def setup
    super
    @dir = Dir.mktmpdir('tasker-rotel')
    @guard = nil
  end

  def teardown
    @guard&.shutdown
    if @receiver
      Process.kill('TERM', @receiver)
      Process.wait(@receiver)
    end
    super
  ensure
    FileUtils.rm_rf(@dir)
  end

  # Starts rotel, printing the spans it receives; returns its OTLP/HTTP port.
  def start_receiver
    http = free_port
    @rotel_log = File.join(@dir, 'rotel.log')
    @receiver = Process.spawn(rotel_agent, 'start', '--exporter', 'blackhole', '--debug-log', 'traces',
                              '--debug-log-verbosity', 'detailed', '--otlp-grpc-endpoint', "127.0.0.1:#{free_port}",
                              '--otlp-http-endpoint', "127.0.0.1:#{http}",
                              out: @rotel_log, err: File.join(@dir, 'rotel.stderr'))
    eventually('rotel listening') do
      TCPSocket.new('127.0.0.1', http).close
      true
    rescue SystemCallError
      false
    end
    http
  end

  def eventually(what, timeout: 20)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    loop do
      value = yield
      return value if value

      flunk "timed out waiting for #{what}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
      sleep 0.05
    end
  end

  def traced_step(results, callable, step)
    trace_id = SecureRandom.hex(16)
    publish_span = SecureRandom.hex(8)
    ready = step_ready(@namespace, callable, step:)
    @bus.publish_step(ready, @namespace, callable,
                      headers: { 'traceparent' => "00-#{trace_id}-#{publish_span}-01", 'tracestate' => 'k=v' })
    result = results.next_where { |d| d.json['task_id'] == ready['task_id'] }
    refute_nil result, "a result for #{step}"
    [ready, trace_id, publish_span, result]
  end

  def test_a_step_continues_its_messages_trace
    http = start_receiver
    @guard = TaskerWorker::Telemetry.init(
      'fallback-name',
      env: { 'OTEL_EXPORTER_OTLP_ENDPOINT' => "http://127.0.0.1:#{http}",
             'OTEL_EXPORTER_OTLP_PROTOCOL' => 'http/protobuf', 'OTEL_SERVICE_NAME' => 'ruby-worker',
             'OTEL_BSP_SCHEDULE_DELAY' => '200' },
      logger: Logger.new(@log)
    )
    assert @guard.exporting?
    results = @bus.results(@namespace)
    worker = start_worker(HANDLERS)

    ready, trace_id, publish_span, result = traced_step(results, ECHO, 'send_welcome_sequence')
    _, result_trace, process_span, flags = result.headers['traceparent'].split('-')
    assert_equal trace_id, result_trace, 'the result carries the task trace on'
    refute_equal publish_span, process_span
    assert_equal '01', flags
    assert_equal 'k=v', result.headers['tracestate']
    refused_ready, refused_trace, = traced_step(results, REFUSE, 'refuse')

    # Stopping flushes the spans.
    worker.stop
    completed, refused = eventually('rotel receiving the steps spans') do
      all = TracingTest.parse(File.read(@rotel_log))
      found = [trace_id, refused_trace].map { |id| all.select { |s| s.trace == id } }
      found if found.all?(&:any?)
    end
    assert_equal 1, completed.size, completed.inspect
    assert_completed_span(completed.first, ready, publish_span, process_span)
    assert_refused_span(refused.first, refused_ready)
    # http/protobuf is answered with JSON, said once.
    assert_equal 1, @log.string.scan('exports spans over OTLP/HTTP with the JSON encoding').size
  end

  def assert_completed_span(span, ready, publish_span, process_span)
    assert_equal 'process send_welcome_sequence', span.name
    assert_equal 'SPAN_KIND_CONSUMER', span.kind
    assert_equal publish_span, span.parent, 'a child of the span that published the step'
    assert_equal process_span, span.id, 'the result traceparent names this span'
    assert_equal 'ruby-worker', span.service
    refute_equal 'STATUS_CODE_ERROR', span.status
    expected = {
      'messaging.system' => 'rabbitmq', 'messaging.operation.type' => 'process',
      'messaging.destination.name' => TaskerWorker::Topology.service_queue(@namespace, BrokerTest::SERVICE),
      'messaging.rabbitmq.destination.routing_key' => TaskerWorker::Topology.step_routing_key(@namespace, ECHO),
      'tasker.task.id' => ready['task_id'], 'tasker.namespace' => @namespace, 'tasker.task.name' => 'task',
      'tasker.task.version' => '1.0.0', 'tasker.step.name' => 'send_welcome_sequence', 'tasker.step.attempt' => '1',
      'tasker.step.outcome' => 'completed'
    }
    assert_equal expected, span.attributes.slice(*expected.keys)
    assert span.attributes.key?('messaging.message.id'), span.attributes.inspect
  end

  def assert_refused_span(span, ready)
    assert_equal 'process refuse', span.name
    assert_equal 'STATUS_CODE_ERROR', span.status
    assert_equal 'failed_permanent', span.attributes['tasker.step.outcome']
    assert_equal ready['task_id'], span.attributes['tasker.task.id']
    assert_includes File.read(@rotel_log), 'Status message : REFUSED'
  end

  def test_a_receiver_that_is_down_never_breaks_a_step
    @guard = TaskerWorker::Telemetry.init(
      'ruby-worker', env: { 'OTEL_EXPORTER_OTLP_ENDPOINT' => "http://127.0.0.1:#{free_port}",
                            'OTEL_BSP_SCHEDULE_DELAY' => '50', 'OTEL_EXPORTER_OTLP_TIMEOUT' => '500' },
                     logger: Logger.new(@log)
    )
    results = @bus.results(@namespace)
    worker = start_worker(HANDLERS)
    2.times do
      _, trace_id, _, result = traced_step(results, ECHO, 'step')
      assert_equal 'completed', result.json['status']
      assert_equal trace_id, result.headers['traceparent'].split('-')[1]
      sleep 0.2 # an export attempt in between
    end
    worker.stop
    assert_equal 1, @log.string.scan('cannot export spans').size, @log.string
  end

  def test_without_export_the_incoming_context_passes_on_unchanged
    TaskerWorker::Telemetry.init('ruby-worker', env: {}, logger: Logger.new(@log))
    results = @bus.results(@namespace)
    start_worker(HANDLERS)
    _, trace_id, publish_span, result = traced_step(results, ECHO, 'step')
    assert_equal "00-#{trace_id}-#{publish_span}-01", result.headers['traceparent']
    assert_equal 'k=v', result.headers['tracestate']
  end
end

# Trace context, spans and their OTLP form, without a receiver.
class TelemetryUnitTest < Minitest::Test
  T = TaskerWorker::Telemetry
  PARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'

  def test_traceparent_parses_and_formats_as_the_w3c_says
    context = T.parse(PARENT, ' k=v ')
    assert_equal ['4bf92f3577b34da6a3ce929d0e0e4736', '00f067aa0ba902b7', 1, 'k=v'], context.to_a
    assert context.sampled?
    assert_equal PARENT, context.traceparent
    refute T.parse(PARENT.sub(/01\z/, '00')).sampled?
    [nil, '', 'garbage', PARENT.upcase, PARENT.sub('00-', 'ff-'), "#{PARENT}-extra",
     '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
     '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01'].each do |bad|
      assert_nil T.parse(bad), bad.inspect
    end
    # A later version may add fields after the flags.
    refute_nil T.parse("#{PARENT.sub('00-', '01-')}-more")
  end

  def test_a_span_is_a_child_of_its_parent_and_keeps_its_flags
    tracer = T::Tracer.new
    child = tracer.start_span('process x', kind: :consumer, parent: T.parse(PARENT, 'k=v'))
    assert_equal '4bf92f3577b34da6a3ce929d0e0e4736', child.context.trace_id
    assert_match(/\A[0-9a-f]{16}\z/, child.context.span_id)
    refute_equal '00f067aa0ba902b7', child.context.span_id
    assert_equal '00f067aa0ba902b7', child.parent_span_id
    root = tracer.start_span('root')
    assert_match(/\A[0-9a-f]{32}\z/, root.context.trace_id)
    assert_nil root.parent_span_id
    refute root.exported?, 'a tracer without an exporter exports nothing'
  end

  def test_the_headers_passed_on
    incoming = { 'traceparent' => PARENT, 'tracestate' => 'k=v', 'x-other' => 1 }
    quiet = T::Tracer.new.start_span('x', parent: T.extract(incoming))
    assert_equal({ 'traceparent' => PARENT, 'tracestate' => 'k=v' }, T.headers(quiet, incoming))
    assert_equal({}, T.headers(quiet, nil))
    exporter = Object.new
    exported = T::Tracer.new(exporter).start_span('x', parent: T.extract(incoming))
    assert_equal({ 'traceparent' => "00-4bf92f3577b34da6a3ce929d0e0e4736-#{exported.context.span_id}-01",
                   'tracestate' => 'k=v' }, T.headers(exported, incoming))
  end

  def test_the_otlp_json_of_a_span
    span = T::Tracer.new.start_span('process s', kind: :consumer, parent: T.parse(PARENT, 'k=v'),
                                                 attributes: { 'a' => 'b', 'n' => 3, 'ok' => true })
    span.error!('REFUSED')
    span.finish
    otlp = span.to_otlp
    assert_equal 5, otlp['kind']
    assert_equal '00f067aa0ba902b7', otlp['parentSpanId']
    assert_equal 'k=v', otlp['traceState']
    assert_match(/\A\d{19}\z/, otlp['startTimeUnixNano'])
    assert_operator otlp['endTimeUnixNano'].to_i, :>=, otlp['startTimeUnixNano'].to_i
    assert_equal({ 'code' => 2, 'message' => 'REFUSED' }, otlp['status'])
    assert_equal [{ 'key' => 'a', 'value' => { 'stringValue' => 'b' } },
                  { 'key' => 'n', 'value' => { 'intValue' => '3' } },
                  { 'key' => 'ok', 'value' => { 'boolValue' => true } }], otlp['attributes']
  end

  def test_the_resource_names_the_service
    env = { 'OTEL_RESOURCE_ATTRIBUTES' => 'deployment.environment=dev,team=a%20b' }
    resource = T.resource('given', env)
    assert_equal 'given', resource['service.name']
    assert_equal 'a b', resource['team']
    assert_equal 'named', T.resource('given', env.merge('OTEL_SERVICE_NAME' => 'named'))['service.name']
  end

  def test_settings_it_cannot_use_are_refused
    endpoint = { 'OTEL_EXPORTER_OTLP_ENDPOINT' => 'http://127.0.0.1:4318' }
    error = assert_raises(TaskerWorker::ConfigError) do
      T.init('x', env: endpoint.merge('OTEL_EXPORTER_OTLP_PROTOCOL' => 'grpc'), logger: Logger.new(File::NULL))
    end
    assert_includes error.message, 'set http/json'
    error = assert_raises(TaskerWorker::ConfigError) do
      T.init('x', env: endpoint.merge('OTEL_BSP_SCHEDULE_DELAY' => 'soon'), logger: Logger.new(File::NULL))
    end
    assert_includes error.message, 'OTEL_BSP_SCHEDULE_DELAY'
    guard = T.init('x', env: {}, logger: Logger.new(File::NULL))
    refute guard.exporting?, 'no endpoint, no export'
  end
end
