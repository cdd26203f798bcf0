# frozen_string_literal: true

require 'test_helper'

# The worker conformance kit (tests/conformance/), run against this SDK: each
# scenario's messages go to a Ruby worker's service queue, and what it
# publishes or dead-letters is checked as tests/conformance/README.md says.
# Every scenario is a test of its own, `test_<scenario name>`.
class ConformanceTest < Minitest::Test
  KIT_FILE = File.expand_path('../../../tests/conformance/scenarios.json', __dir__)
  KIT = JSON.parse(File.read(KIT_FILE))
  SERVICE = 'conformance'
  # The settings a scenario's `worker` object may override.
  WORKER_SETTINGS = %w[max_message_bytes].freeze
  T = TaskerWorker::Topology

  # The kit's one handler, driven by the step's `initialization`.
  class Conformance
    def initialize
      @runs = 0
      @mutex = Mutex.new
    end

    def runs
      @mutex.synchronize { @runs }
    end

    def call(context)
      @mutex.synchronize { @runs += 1 }
      init = context.initialization
      case init.fetch('do', 'echo')
      when 'echo' then echo(context, init)
      when 'permanent' then raise TaskerWorker::PermanentError.new(init['message'], error_code: init['code'])
      when 'retryable'
        raise TaskerWorker::RetryableError.new(init['message'], error_code: init['code'],
                                                                retry_after: init['retry_after'])
      when 'sleep'
        sleep Float(init['seconds'])
        {}
      when 'crash' then raise init.fetch('message', 'crash') # a RuntimeError, not a Tasker error
      when 'child' then context.complete_with_child(init['namespace'], init['name'], init['context'])
      else raise ArgumentError, "the kit names no action #{init['do'].inspect}"
      end
    end

    def echo(context, init)
      input, dependency = init.values_at('input', 'dependency')
      {
        'input' => input.nil? ? nil : context.get_input_or(input, nil),
        'dependency' => dependency.nil? ? nil : context.get_dependency_result(dependency),
        'dependencies' => context.dependencies,
        'attempt' => context.attempt,
        'idempotency_key' => context.idempotency_key
      }
    end
  end

  # The kit's substitutions: `{task_id}`, `{namespace}` and `{service_queue}`
  # in strings, and `{"$repeat": s, "times": n}` objects.
  def self.substitute(value, names)
    case value
    when String then names.reduce(value) { |text, (name, to)| text.gsub("{#{name}}", to) }
    when Array then value.map { |v| substitute(v, names) }
    when Hash
      return value.fetch('$repeat').to_s * Integer(value.fetch('times')) if value.key?('$repeat')

      value.transform_values { |v| substitute(v, names) }
    else value
    end
  end

  # Objects match field by field (a subset), other values exactly.
  def self.subset?(expected, actual)
    return expected == actual unless expected.is_a?(Hash)

    actual.is_a?(Hash) && expected.all? { |k, v| actual.key?(k) && subset?(v, actual[k]) }
  end

  def self.base(namespace, task_id)
    {
      'protocol_version' => 1,
      'task_id' => task_id,
      'namespace' => namespace,
      'task_name' => 'conformance',
      'task_version' => '1.0.0',
      'step' => 's',
      'callable' => KIT.fetch('callable'),
      'attempt' => 1,
      'max_attempts' => 3,
      'context' => {},
      'initialization' => {},
      'dependencies' => [],
      'dependency_results' => {}
    }
  end

  def setup
    super
    @namespace = unique('conf')
    @task_id = SecureRandom.uuid
    @queue = T.service_queue(@namespace, SERVICE)
    @bus = Bus.new
    @bus.remember(@queue, T.request_queue(@namespace), T.result_queue(@namespace))
    @bus.remember_exchanges(T.namespace_steps_exchange(@namespace))
    @log = StringIO.new
  end

  def teardown
    @worker&.stop
    @bus&.close
    super
  end

  # Runs one scenario of the kit, as its README says.
  def run_scenario(scenario)
    @name = scenario.fetch('name')
    scenario = self.class.substitute(scenario, 'task_id' => @task_id, 'namespace' => @namespace,
                                               'service_queue' => @queue)
    deliveries = scenario.fetch('deliveries')
    expectations = scenario.fetch('expect')
    assert_equal deliveries.size, expectations.size, "#{@name}: one expectation per delivery"

    @handler = Conformance.new
    @results = @bus.results(@namespace)
    @dead = @bus.watch(T::DEAD_LETTER_EXCHANGE)
    start_worker(scenario.fetch('worker', {}))
    # After the worker, which declares the requests exchange.
    @children = @bus.watch(T::REQUESTS_EXCHANGE, "#{@namespace}_child")

    @seen = []
    body = nil
    deliveries.zip(expectations).each_with_index do |(delivery, expected), index|
      body = body_of(delivery, body)
      # Straight to the service queue, through the default exchange.
      @bus.publish('', @queue, body)
      check(expected, index)
    end

    if scenario['no_results']
      stray = @results.next(timeout: 0.5)
      assert_nil stray, "#{@name}: a step result was published: #{stray&.body}"
    end
    return unless scenario.key?('handler_runs')

    assert_equal scenario['handler_runs'], @handler.runs, "#{@name}: how many times the handler ran"
  end

  # A worker of the SDK serving the namespace as service `conformance`, with
  # the conformance handler and no other; returns once its service queue
  # has a consumer.
  def start_worker(overrides)
    unknown = overrides.keys - WORKER_SETTINGS
    flunk "#{@name}: the runner knows no worker setting #{unknown.join(', ')}" unless unknown.empty?

    config = TaskerWorker::Config.new(service: SERVICE, amqp_url: AMQP_URL, concurrency: 4, shutdown_grace: 5.0,
                                      logger: Logger.new(@log), **overrides.transform_keys(&:to_sym))
    @worker = TaskerWorker::Worker.new(config).namespace(@namespace).handler(KIT.fetch('callable'), @handler)
    @worker.start
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 15
    until consumers(@queue).positive?
      late = Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
      flunk "#{@name}: the worker never consumed #{@queue}" if late
      sleep 0.05
    end
  end

  def consumers(queue)
    channel = @bus.connection.create_channel
    channel.queue_declare(queue, passive: true).consumer_count
  rescue Bunny::NotFound
    0
  ensure
    channel&.close if channel&.open?
  end

  # The bytes of `delivery`; `before` is the body of the delivery before.
  def body_of(delivery, before)
    if delivery.key?('raw_body')
      delivery['raw_body'].encode(Encoding::UTF_8).b
    elsif delivery.key?('step_ready')
      message = self.class.base(@namespace, @task_id).merge(delivery['step_ready'])
      delivery.fetch('remove', []).each { |field| message.delete(field) }
      JSON.generate(message)
    else
      assert_equal true, delivery['again'], "#{@name}: a delivery the runner cannot read: #{delivery}"
      refute_nil before, "#{@name}: `again` needs a delivery before it"
      before
    end
  end

  # Checks the expectation of delivery `index`: a child task request, then a step result;
  # or a dead letter.
  def check(expected, index)
    known = %w[child_request result same_as dead_letter]
    assert_empty expected.keys - known, "#{@name}: an expectation the runner cannot read: #{expected}"
    child_task_id = check_child_request(expected['child_request'], index) if expected.key?('child_request')
    if expected.key?('result')
      check_result(expected, child_task_id, index)
    elsif expected.key?('dead_letter')
      check_dead_letter(expected['dead_letter'], index)
    else
      flunk "#{@name}: expectation #{index} has neither a result nor a dead letter: #{expected}"
    end
  end

  # The child task request of delivery `index`; returns its task id header.
  def check_child_request(want, index)
    request = @children.next
    refute_nil request, "#{@name}: no child task request for delivery #{index}"
    got = JSON.parse(request.body)
    assert self.class.subset?(want, got), "#{@name}: child request: expected #{want}, got #{got}"
    child_task_id = request.headers[T::Header::TASK_ID]
    refute_nil child_task_id, "#{@name}: the child task request has no #{T::Header::TASK_ID} header"
    child_task_id
  end

  def check_result(expected, child_task_id, index)
    delivery = @results.next
    refute_nil delivery, "#{@name}: no step result for delivery #{index}"
    got = delivery.json
    want = expected['result']
    assert self.class.subset?(want, got), "#{@name}: result #{index}: expected #{want}, got #{got}"
    assert_equal child_task_id, got['child_task_id'], "#{@name}: the child task id" unless child_task_id.nil?
    if expected.key?('same_as')
      k = Integer(expected['same_as'])
      assert_operator k, :<, @seen.size, "#{@name}: same_as #{k} names no earlier result"
      assert_equal @seen[k], got, "#{@name}: result #{index} is not the same as result #{k}"
    end
    @seen << got
  end

  def check_dead_letter(want, index)
    letter = @dead.next_where { |d| d.headers[T::Header::DEAD_LETTER_QUEUE] == @queue }
    refute_nil letter, "#{@name}: no dead letter from #{@queue} for delivery #{index}"
    reason = letter.headers[T::Header::DEAD_LETTER_REASON].to_s
    assert reason.start_with?("#{want.fetch('reason_prefix')}:"),
           "#{@name}: dead-letter reason #{reason.inspect} does not start with #{want['reason_prefix']}:"
    assert_equal want.fetch('original_queue'), letter.headers[T::Header::DEAD_LETTER_QUEUE], "#{@name}: original queue"
    assert_equal want['body'].b, letter.body.b, "#{@name}: dead-letter body" if want.key?('body')
  end

  names = KIT.fetch('scenarios').map { |s| s.fetch('name') }
  raise "#{KIT_FILE}: scenario names repeat: #{names.tally.select { |_, c| c > 1 }.keys}" if names.uniq != names

  KIT.fetch('scenarios').each do |scenario|
    name = scenario.fetch('name')
    raise "#{KIT_FILE}: #{name.inspect} cannot name a test method" unless /\A\w+\z/.match?(name)

    define_method("test_#{name}") { run_scenario(scenario) }
  end
end
