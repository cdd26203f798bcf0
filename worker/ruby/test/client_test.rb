# frozen_string_literal: true

require 'test_helper'
require 'fileutils'
require 'tmpdir'

# The client against a real coordinator (the Rust `tasker` binary, with
# Redis): tasks asked for from Ruby, run by a Ruby worker, and their outcome
# on the client's private reply queue.
class ClientTest < Minitest::Test
  include BrokerTest
  include DevSecrets

  TASKER_BIN = ENV.fetch('TASKER_BIN', File.expand_path('../../../target/debug/tasker', __dir__))
  REDIS_URL = ENV.fetch('TASKER_REDIS_URL', 'redis://127.0.0.1:6379')

  # Fails its first attempt retryably, asking for a short wait.
  HELLO = lambda do |context|
    if context.attempt == 1
      raise TaskerWorker::RetryableError.new('warming up', error_code: 'WARMING_UP',
                                                           retry_after: 0.1)
    end

    { 'greeting' => "hello #{context.get_input('name')}" }
  end

  SHOUT = lambda do |context|
    hello = context.get_dependency_result('hello')
    times = context.get_initialization('times') || 1
    { 'shout' => ([hello['greeting'].upcase] * times).join('!'), 'dependencies' => context.dependencies,
      'key' => context.idempotency_key }
  end

  HANDLERS = { 'Tests::Hello' => HELLO, 'Tests::Shout' => SHOUT }.freeze

  def template(namespace, name = 'greet')
    <<~YAML
      name: #{name}
      namespace_name: #{namespace}
      version: 1.0.0
      steps:
        - name: hello
          handler:
            callable: Tests::Hello
          retry:
            max_attempts: 3
            backoff: fixed
            initial_delay: 30
        - name: shout
          handler:
            callable: Tests::Shout
            initialization:
              times: 2
          dependencies: [hello]
    YAML
  end

  def setup
    super
    skip "no coordinator binary at #{TASKER_BIN}; build it or set TASKER_BIN" unless File.executable?(TASKER_BIN)
    @dir = Dir.mktmpdir('tasker-templates')
    @coordinators = []
    @clients = []
  end

  def teardown
    @clients&.each(&:close)
    @coordinators&.each { |pid| stop_coordinator(pid) }
    FileUtils.rm_rf(@dir) if @dir
    super
  end

  # The test over TLS runs on the dev node, the only one with a TLS
  # listener, also when the others run against a cluster.
  def on_dev_node?
    name.include?('mutual_tls')
  end

  def bus_url
    on_dev_node? ? DEV_URL : super
  end

  # Starts a coordinator loading `templates` (file name to YAML), ready once
  # it consumes the test namespace's requests.
  def start_coordinator(templates)
    templates.each { |file, yaml| File.write(File.join(@dir, file), yaml) }
    env = ENV.to_h.reject { |k, _| k.start_with?('TASKER_', 'OTEL_') }
             .merge('TASKER_AMQP_URL' => on_dev_node? ? DEV_URL : AMQP_URL, 'TASKER_REDIS_URL' => REDIS_URL,
                    'RUST_LOG' => 'info')
    @coordinator_log = File.join(@dir, "coordinator-#{@coordinators.size}.log")
    pid = Process.spawn(env, TASKER_BIN, 'coordinator', '--templates', @dir, %i[out err] => @coordinator_log,
                                                                             unsetenv_others: true)
    @coordinators << pid
    queue = TaskerWorker::Topology.request_queue(@namespace)
    deadline = monotonic + 30
    until consumers(queue).positive?
      flunk "the coordinator exited: #{File.read(@coordinator_log)}" if Process.wait(pid, Process::WNOHANG)
      flunk "the coordinator does not consume #{queue}: #{File.read(@coordinator_log)}" if monotonic > deadline
      sleep 0.1
    end
  end

  def consumers(queue)
    channel = @bus.connection.create_channel
    channel.queue_declare(queue, passive: true).consumer_count
  rescue Bunny::NotFound
    0
  ensure
    channel.close if channel&.open?
  end

  def stop_coordinator(pid)
    Process.kill('TERM', pid)
    Process.wait(pid) if wait_exit(pid, 20).nil? && Process.kill('KILL', pid)
  rescue Errno::ESRCH, Errno::ECHILD
    nil
  end

  def wait_exit(pid, timeout)
    deadline = monotonic + timeout
    loop do
      return pid if Process.wait(pid, Process::WNOHANG)
      return nil if monotonic > deadline

      sleep 0.1
    end
  end

  def monotonic
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end

  def connect
    client = TaskerWorker::Client.connect(AMQP_URL, logger: Logger.new(@log))
    @clients << client
    client
  end

  def test_a_task_runs_end_to_end_through_the_coordinator
    start_coordinator('greet.yaml' => template(@namespace))
    start_worker(HANDLERS)
    submitted = connect.create_task(@namespace, 'greet', { 'name' => 'ada' })
    finished = submitted.wait(60)

    assert_instance_of TaskerWorker::TaskFinished, finished
    assert_equal submitted.task_id, finished.task_id
    assert_equal submitted.request_id, finished.request_id
    assert_equal [@namespace, 'greet', '1.0.0'], [finished.namespace, finished.name, finished.version]
    assert_equal 'complete', finished.status
    hello = finished.step('hello')
    shout = finished.step('shout')
    assert_equal ['completed', 2], [hello.state, hello.attempts]
    # The first attempt's retryable error, with the wait it asked for.
    assert_equal 'WARMING_UP', hello.error.code
    assert_in_delta 0.1, hello.error.retry_after_seconds
    assert_equal({ 'greeting' => 'hello ada' }, hello.result)
    assert_equal ['completed', 1], [shout.state, shout.attempts]
    assert_equal({ 'shout' => 'HELLO ADA!HELLO ADA', 'dependencies' => ['hello'],
                   'key' => "#{finished.task_id}:shout" }, shout.result)
  end

  # The client and the worker reach the broker's TLS listener with the
  # client certificate; the coordinator keeps its plain URL.
  def test_a_task_runs_end_to_end_with_the_client_and_the_worker_over_mutual_tls
    env = tls_env
    start_coordinator('greet.yaml' => template(@namespace))
    config = TaskerWorker::Config.from_env(env.merge('TASKER_SERVICE' => SERVICE), concurrency: 4, shutdown_grace: 5.0,
                                                                                   logger: Logger.new(@log))
    worker = TaskerWorker::Worker.new(config).namespace(@namespace)
    HANDLERS.each { |callable, handler| worker.handler(callable, handler) }
    @workers << worker
    worker.start
    client = TaskerWorker::Client.from_env(env, logger: Logger.new(@log))
    @clients << client

    finished = client.run_task(@namespace, 'greet', { 'name' => 'tls' }, timeout: 60)

    assert_instance_of TaskerWorker::TaskFinished, finished
    assert_equal 'complete', finished.status
    assert_equal 'HELLO TLS!HELLO TLS', finished.step('shout').result['shout']
    [worker.instance_variable_get(:@broker), client.instance_variable_get(:@broker)].each do |broker|
      assert broker.connection.transport.tls?, 'connected over TLS'
      assert_equal DevSecrets::AMQPS_URL.sub(':guest@', ':***@'), broker.url
    end
  end

  def test_tasks_run_end_to_end_with_the_service_split_over_four_queues
    queues = Array.new(4) { |index| TaskerWorker::Topology.partition_queue(@namespace, SERVICE, index) }
    @bus.remember(*queues)
    @bus.remember_exchanges(TaskerWorker::Topology.service_exchange(@namespace, SERVICE))
    start_coordinator('greet.yaml' => template(@namespace))
    start_worker(HANDLERS, partitions: 4)
    assert_equal([1] * 4, queues.map { |queue| @bus.consumer_count(queue) })
    client = connect
    submitted = Array.new(8) { |index| client.create_task(@namespace, 'greet', { 'name' => "n#{index}" }) }

    submitted.each_with_index do |task, index|
      finished = task.wait(60)
      assert_instance_of TaskerWorker::TaskFinished, finished
      assert_equal [task.task_id, 'complete'], [finished.task_id, finished.status]
      assert_equal "HELLO N#{index}!HELLO N#{index}", finished.step('shout').result['shout']
    end
  end

  def test_a_client_whose_connection_died_connects_again_for_its_next_request
    start_coordinator('greet.yaml' => template(@namespace))
    start_worker(HANDLERS)
    client = connect
    assert_instance_of TaskerWorker::TaskFinished, client.create_task(@namespace, 'greet', { 'name' => 'ada' }).wait(60)
    old_queue = client.reply_queue
    # Its connection dies, as it does when its broker node dies.
    client.instance_variable_get(:@broker).connection.close

    submitted = client.create_task(@namespace, 'greet', { 'name' => 'bob' })
    finished = submitted.wait(60)

    assert_instance_of TaskerWorker::TaskFinished, finished
    assert_equal [submitted.task_id, 'complete'], [finished.task_id, finished.status]
    refute_equal old_queue, client.reply_queue
  end

  def test_an_idempotency_key_names_one_task
    start_coordinator('greet.yaml' => template(@namespace))
    start_worker(HANDLERS)
    client = connect
    first = client.create_task(@namespace, 'greet', { 'name' => 'a' }, idempotency_key: 'k1')
    second = client.create_task(@namespace, 'greet', { 'name' => 'a' }, idempotency_key: 'k1')
    assert_equal first.task_id, second.task_id
    refute_equal first.request_id, second.request_id
    one = first.wait(60)
    two = second.wait(60)
    assert_instance_of TaskerWorker::TaskFinished, one
    assert_instance_of TaskerWorker::TaskFinished, two
    assert_equal [first.task_id] * 2, [one.task_id, two.task_id]
    assert_equal [first.request_id, second.request_id], [one.request_id, two.request_id]
    assert_equal({ 'greeting' => 'hello a' }, two.step('hello').result)
    # The same key with another context names the same task: refused.
    other = client.create_task(@namespace, 'greet', { 'name' => 'b' }, idempotency_key: 'k1')
    refused = other.wait(60)
    assert_instance_of TaskerWorker::TaskRejected, refused
    assert_equal 'idempotency_conflict', refused.code
    assert_equal other.request_id, refused.request_id
    assert_includes refused.reason, first.task_id
  end

  def test_a_request_for_an_unknown_template_is_rejected
    start_coordinator('greet.yaml' => template(@namespace))
    outcome = connect.run_task(@namespace, 'greeet', {}, timeout: 30)
    assert_instance_of TaskerWorker::TaskRejected, outcome
    assert_equal 'unknown_template', outcome.code
    assert_equal [@namespace, 'greeet'], [outcome.namespace, outcome.name]
    assert_includes outcome.reason, 'did you mean'
    assert_includes outcome.reason, 'greet'
  end

  def test_waiting_gives_up_at_its_deadline
    # No worker serves the template's callables: its first step waits.
    start_coordinator('greet.yaml' => template(@namespace))
    submitted = connect.create_task(@namespace, 'greet', { 'name' => 'x' })
    error = assert_raises(TaskerWorker::ReplyTimeoutError) { submitted.wait(0.5) }
    assert_includes error.message, submitted.request_id
  end
end
