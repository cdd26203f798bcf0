# frozen_string_literal: true

require 'test_helper'
require 'fileutils'
require 'tmpdir'

# The settings of TLS and of passwords kept out of URLs, without a broker.
class SecurityConfigTest < Minitest::Test
  def setup
    super
    @dir = Dir.mktmpdir('tasker-secrets')
  end

  def teardown
    FileUtils.rm_rf(@dir)
    super
  end

  def write(name, content)
    path = File.join(@dir, name)
    File.write(path, content)
    path
  end

  def test_the_tls_variables_are_read_from_the_environment_and_settable_in_code
    env = { 'TASKER_TLS_CA_FILE' => '/etc/tasker/ca.pem', 'TASKER_TLS_CERT_FILE' => '/etc/tasker/client.pem',
            'TASKER_TLS_KEY_FILE' => '/etc/tasker/client.key' }
    config = TaskerWorker::Config.from_env(env, service: 'billing')
    assert_equal %w[/etc/tasker/ca.pem /etc/tasker/client.pem /etc/tasker/client.key],
                 [config.tls_ca_file, config.tls_cert_file, config.tls_key_file]
    assert_equal ['/etc/tasker/ca.pem', '/etc/tasker/client.pem', '/etc/tasker/client.key'],
                 [config.tls.ca_file, config.tls.cert_file, config.tls.key_file]
    assert_equal config.tls.ca_file, config.connection[:tls].ca_file

    only_ca = TaskerWorker::Config.from_env({ 'TASKER_TLS_CA_FILE' => '/ca.pem' })
    assert_equal ['/ca.pem', nil, nil], [only_ca.tls_ca_file, only_ca.tls_cert_file, only_ca.tls_key_file]
    none = TaskerWorker::Config.from_env({})
    assert_equal [nil, nil, nil], [none.tls_ca_file, none.tls_cert_file, none.tls_key_file]
    in_code = TaskerWorker::Config.new(service: 'billing', tls_ca_file: '/ca.pem')
    assert_equal '/ca.pem', in_code.tls.ca_file
  end

  def test_a_client_certificate_needs_both_its_files
    [{ 'TASKER_TLS_CERT_FILE' => '/client.pem' }, { 'TASKER_TLS_KEY_FILE' => '/client.key' }].each do |env|
      error = assert_raises(TaskerWorker::ConfigError) { TaskerWorker::Config.from_env(env) }
      assert_includes error.message, 'TASKER_TLS_CERT_FILE'
      assert_includes error.message, 'TASKER_TLS_KEY_FILE'
    end
    config = TaskerWorker::Config.new(service: 'billing', tls_cert_file: '/client.pem')
    assert_raises(TaskerWorker::ConfigError) { config.check! }
    # The client refuses before it connects.
    error = assert_raises(TaskerWorker::ConfigError) do
      TaskerWorker::Client.connect('amqps://127.0.0.1:1/%2f', tls_key_file: '/client.key')
    end
    assert_includes error.message, 'TASKER_TLS_CERT_FILE'
  end

  def test_a_password_from_its_variable_or_its_file_goes_into_every_url_percent_encoded
    urls = 'amqp://tasker@n1:5672/%2f, amqp://tasker:old@n2:5672/%2f'
    config = TaskerWorker::Config.from_env({ 'TASKER_AMQP_URL' => urls, 'TASKER_AMQP_PASSWORD' => 'p@ss:w/rd+ %,x' })
    nodes = TaskerWorker::Broker.urls(config.amqp_url)
    assert_equal 2, nodes.size, 'an encoded comma splits no URL'
    nodes.each do |node|
      parsed = AMQ::Settings.parse_amqp_url(node)
      assert_equal ['tasker', 'p@ss:w/rd+ %,x'], [parsed[:user], parsed[:pass]], node
      assert_equal 'amqp://tasker:***@', TaskerWorker::Broker.redact(node)[/\A[^@]*@/]
    end
    refute_includes config.amqp_url, 'old'

    file = write('password', "from-a-file\n\n")
    from_file = TaskerWorker::Config.from_env({ 'TASKER_AMQP_PASSWORD_FILE' => file })
    assert_equal 'amqp://guest:from-a-file@127.0.0.1:5672/%2f', from_file.amqp_url, 'the default URL, without newlines'
  end

  def test_a_password_and_a_password_file_together_are_refused
    file = write('password', 'in-the-file')
    error = assert_raises(TaskerWorker::ConfigError) do
      TaskerWorker::Config.from_env({ 'TASKER_AMQP_PASSWORD' => 'inline-secret', 'TASKER_AMQP_PASSWORD_FILE' => file })
    end
    assert_includes error.message, 'TASKER_AMQP_PASSWORD and TASKER_AMQP_PASSWORD_FILE'
    refute_includes error.message, 'inline-secret'
    refute_includes error.message, 'in-the-file'
  end

  def test_an_unreadable_password_file_or_a_url_without_a_user_is_a_config_error
    missing = File.join(@dir, 'missing')
    error = assert_raises(TaskerWorker::ConfigError) do
      TaskerWorker::Config.from_env({ 'TASKER_AMQP_PASSWORD_FILE' => missing })
    end
    assert_includes error.message, "TASKER_AMQP_PASSWORD_FILE=#{missing}"
    error = assert_raises(TaskerWorker::ConfigError) do
      TaskerWorker::Config.from_env({ 'TASKER_AMQP_URL' => 'amqp://host/%2f', 'TASKER_AMQP_PASSWORD' => 'secret-x' })
    end
    assert_includes error.message, 'TASKER_AMQP_PASSWORD'
    refute_includes error.message, 'secret-x'
  end

  def test_a_tls_file_that_cannot_be_read_or_is_not_pem_is_a_config_error_naming_it
    missing = File.join(@dir, 'missing.pem')
    not_pem = write('not.pem', 'hello')
    {
      { ca_file: missing } => ['TASKER_TLS_CA_FILE', missing],
      { ca_file: not_pem } => ['TASKER_TLS_CA_FILE', not_pem],
      { cert_file: missing, key_file: not_pem } => ['TASKER_TLS_CERT_FILE', missing],
      { cert_file: not_pem, key_file: not_pem } => ['TASKER_TLS_CERT_FILE', not_pem]
    }.each do |files, (variable, path)|
      error = assert_raises(TaskerWorker::ConfigError, files.inspect) do
        TaskerWorker::TlsFiles.new(**files).bunny_options
      end
      assert_includes error.message, "#{variable}=#{path}", files.inspect
    end
    options = TaskerWorker::TlsFiles.new.bunny_options
    assert_equal [true, true], options.values_at(:tls, :verify_peer), 'the broker is verified, with system roots'
  end
end

# TLS, passwords from files and least privilege against the dev broker:
# its TLS listener asks for a client certificate, and its user
# `tasker-test-probe` may use only its own queues, those of service `probe`
# in namespaces `lp_*`.
class SecurityTest < Minitest::Test
  include BrokerTest
  include DevSecrets

  ECHO = 'Tests::Echo'
  HANDLER = ->(context) { { 'echo' => context.get_input_or('n', nil) } }
  PROBE = 'tasker-test-probe'
  PROBE_URL = ENV.fetch('TASKER_TEST_PROBE_URL', "amqp://#{PROBE}@127.0.0.1:5672/%2f")

  def teardown
    @clients&.each(&:close)
    @brokers&.each(&:close)
    super
  end

  # These tests need the dev node's TLS listener and users.
  def bus_url
    DEV_URL
  end

  def client_from(env)
    client = TaskerWorker::Client.from_env(env, logger: Logger.new(@log))
    (@clients ||= []) << client
    client
  end

  # A worker of `service` in `namespace` with the settings of `env`,
  # unstarted.
  def worker_from(env, namespace: @namespace, service: SERVICE)
    config = TaskerWorker::Config.from_env(env.merge('TASKER_SERVICE' => service), concurrency: 2, shutdown_grace: 5.0,
                                                                                   logger: Logger.new(@log))
    worker = TaskerWorker::Worker.new(config).namespace(namespace).handler(ECHO, HANDLER)
    @workers << worker
    worker
  end

  def test_a_worker_runs_a_step_over_mutual_tls
    worker = worker_from(tls_env).start
    results = @bus.results(@namespace)
    @bus.publish_step(step_ready(@namespace, ECHO, context: { 'n' => 7 }), @namespace, ECHO)

    delivery = results.next
    refute_nil delivery, 'no step result over TLS'
    assert_equal({ 'echo' => 7 }, delivery.json['result'])
    assert worker.instance_variable_get(:@broker).connection.transport.tls?, 'the connection uses TLS'
    assert_includes @log.string, 'broker=amqps://guest:***@127.0.0.1:5671/%2f'
  end

  def test_a_client_connects_over_mutual_tls
    client = client_from(tls_env)
    assert_match(/\Aamq\.gen-/, client.reply_queue)
    assert client.instance_variable_get(:@broker).connection.transport.tls?
  end

  def test_a_broker_certificate_signed_by_another_ca_is_refused_naming_the_ca_variable
    error = assert_raises(TaskerWorker::BrokerError) { client_from(tls_env(trust: 'other-ca.pem')) }
    assert_includes error.message, 'the TLS handshake with rabbitmq at amqps://guest:***@127.0.0.1:5671/%2f failed'
    assert_includes error.message, 'certificate verify failed'
    assert_includes error.message, 'TASKER_TLS_CA_FILE'
    refute_includes error.message, 'guest:guest'
    assert error.retryable?

    # A worker keeps trying, and logs why.
    worker = worker_from(tls_env(trust: 'other-ca.pem'))
    running = Thread.new { worker.run }
    assert eventually { @log.string.include?('TASKER_TLS_CA_FILE') }, "the worker's log names TASKER_TLS_CA_FILE"
    assert_includes @log.string, 'the TLS handshake with rabbitmq at amqps://guest:***@127.0.0.1:5671/%2f failed'
    worker.stop
    assert running.join(10), 'run returns once stopped'
  end

  def test_without_a_client_certificate_the_broker_refuses
    error = assert_raises(TaskerWorker::BrokerError) { client_from(tls_env(client: false)) }
    assert_includes error.message, 'the TLS handshake with rabbitmq at amqps://guest:***@127.0.0.1:5671/%2f failed'
    assert_includes error.message, 'TASKER_TLS_CERT_FILE'
    error = assert_raises(TaskerWorker::BrokerError) { worker_from(tls_env(client: false)).start }
    assert_includes error.message, 'TASKER_TLS_CERT_FILE'
  end

  def test_the_tls_files_apply_to_amqps_urls_only
    env = { 'TASKER_AMQP_URL' => DEV_URL, 'TASKER_TLS_CA_FILE' => File.join(Dir.tmpdir, "missing-#{unique('ca')}") }
    client = client_from(env)
    refute client.instance_variable_get(:@broker).connection.transport.tls?
  end

  def test_a_password_from_a_file_connects_and_a_wrong_one_is_refused_without_showing_it
    # Any password in the URL is replaced.
    env = { 'TASKER_AMQP_URL' => PROBE_URL.sub("#{PROBE}@", "#{PROBE}:stale@"),
            'TASKER_AMQP_PASSWORD_FILE' => password_file(PROBE) }
    client = client_from(env)
    assert_equal PROBE, client.instance_variable_get(:@broker).connection.user
    # The client's shared declarations were refused, and skipped.
    assert_includes @log.string, 'not allowed to declare tasker.requests; the coordinators declare it'

    wrong = "wrong-#{SecureRandom.hex(8)}"
    error = assert_raises(TaskerWorker::BrokerError) do
      client_from({ 'TASKER_AMQP_URL' => PROBE_URL, 'TASKER_AMQP_PASSWORD' => wrong })
    end
    refute error.retryable?
    assert_includes error.message, "rabbitmq at amqp://#{PROBE}:***@127.0.0.1:5672/%2f refused the connection"
    refute_includes error.message, wrong
    refute_includes @log.string, wrong
  end

  def probe_env
    { 'TASKER_AMQP_URL' => PROBE_URL, 'TASKER_AMQP_PASSWORD_FILE' => password_file(PROBE) }
  end

  # The test plays the coordinator, which declares what is shared, and
  # routes `namespace`'s steps of `callables` to its steps exchange.
  def play_the_coordinator(namespace, callables)
    @bus.remember(TaskerWorker::Topology.request_queue(namespace), TaskerWorker::Topology.result_queue(namespace))
    coordinator = TaskerWorker::Broker.connect(DEV_URL, name: 'lp-coordinator', heartbeat: 5, logger: Logger.new(@log))
    coordinator.declare_common
    coordinator.declare_namespace(namespace)
    coordinator.close
    @bus.route_steps(namespace, callables)
  end

  # A connection of the probe's own, for what its worker never does.
  def probe_connection
    config = TaskerWorker::Config.from_env(probe_env)
    broker = TaskerWorker::Broker.connect(config.amqp_url, name: 'lp-probe', heartbeat: 5, logger: Logger.new(@log))
    (@brokers ||= []) << broker
    broker.connection
  end

  def test_a_least_privilege_worker_serves_its_queue_and_may_not_touch_what_is_not_its_own
    namespace = unique('lp')
    queue = TaskerWorker::Topology.service_queue(namespace, 'probe')
    results_queue = TaskerWorker::Topology.result_queue(namespace)
    @bus.remember(queue)
    steps = play_the_coordinator(namespace, [ECHO])

    worker = worker_from(probe_env, namespace:, service: 'probe').start
    assert_equal 1, @bus.consumer_count(queue), 'the worker consumes its queue'
    %w[tasker.events tasker.dead_letter tasker.dead_letters tasker.requests tasker.requests.unrouted tasker.steps]
      .push(TaskerWorker::Topology.request_queue(namespace), results_queue, steps).each do |shared|
      assert_includes @log.string, "not allowed to declare #{shared}; the coordinators declare it"
    end
    assert_includes @log.string, "not allowed to declare the binding of #{steps} to tasker.steps with " \
                                 "#{namespace}/#{ECHO}; the coordinators declare it"

    ready = step_ready(namespace, ECHO, context: { 'n' => 3 })
    @bus.publish_step(ready, namespace, ECHO)
    channel = @bus.connection.create_channel
    body = eventually { channel.basic_get(results_queue, manual_ack: false)[2] }
    refute_nil body, "no step result in #{results_queue}"
    assert_equal [ready['task_id'], { 'echo' => 3 }], JSON.parse(body).values_at('task_id', 'result')

    broker = worker.instance_variable_get(:@broker)
    # It may not consume another queue...
    refused = assert_raises(Bunny::AccessRefused) do
      Bunny::Queue.new(broker.connection.create_channel, results_queue, no_declare: true).subscribe { nil }
    end
    assert_includes refused.message, 'ACCESS_REFUSED'
    # ...nor publish events other than its results and announcements.
    %w[task.finished.x.y step.result.other_ns].each do |routing_key|
      properties = TaskerWorker::Broker.properties(TaskerWorker::Topology::MessageType::TASK_FINISHED)
      error = assert_raises(TaskerWorker::BrokerError, routing_key) do
        broker.publisher.publish(TaskerWorker::Topology::EVENTS_EXCHANGE, routing_key, '{}', properties,
                                 mandatory: false)
      end
      assert_includes error.message, 'ACCESS_REFUSED', routing_key
    end
  end

  def test_a_least_privilege_user_may_bind_its_queue_to_its_own_namespace_steps_only
    namespace = unique('lp')
    other = unique('other')
    queue = TaskerWorker::Topology.service_queue(namespace, 'probe')
    @bus.remember(queue)
    own_steps = @bus.route_steps(namespace, [ECHO])
    other_steps = @bus.route_steps(other, [ECHO])
    # What the other namespace's service would get: the step is routed.
    watched = @bus.watch(other_steps, TaskerWorker::Topology.step_routing_key(other, ECHO))

    connection = probe_connection
    connection.create_channel.queue_declare(queue, durable: true, arguments: TaskerWorker::Topology::QUORUM.dup)
    [[TaskerWorker::Topology::STEPS_EXCHANGE, "#{other}/#{ECHO}"], [TaskerWorker::Topology::STEPS_EXCHANGE, ''],
     [TaskerWorker::Topology::STEPS_EXCHANGE, "#{namespace}/#{ECHO}"], [other_steps, "#{other}/#{ECHO}"]]
      .each do |exchange, key|
      refused = assert_raises(Bunny::AccessRefused, "#{exchange} #{key}") do
        connection.create_channel.queue_bind(queue, exchange, routing_key: key)
      end
      assert_includes refused.message, 'ACCESS_REFUSED'
      assert_includes refused.message, exchange
    end
    # Its own namespace's exchange it may bind to.
    connection.create_channel.queue_bind(queue, own_steps, routing_key: "#{namespace}/#{ECHO}")

    @bus.publish_step(step_ready(other, ECHO), other, ECHO)
    refute_nil watched.next, "the other namespace's step was routed"
    @bus.publish_step(step_ready(namespace, ECHO), namespace, ECHO)
    assert_equal 1, eventually { @bus.message_count(queue).nonzero? }, "its own namespace's step reached it"
    sleep 0.2
    assert_equal 1, @bus.message_count(queue), "the other namespace's step never reached the probe's queue"
  end

  def test_a_least_privilege_service_split_after_it_had_one_queue_drains_that_queue
    namespace = unique('lp')
    single = TaskerWorker::Topology.service_queue(namespace, 'probe')
    queues = Array.new(2) { |index| TaskerWorker::Topology.partition_queue(namespace, 'probe', index) }
    @bus.remember(single, *queues)
    @bus.remember_exchanges(TaskerWorker::Topology.service_exchange(namespace, 'probe'))
    play_the_coordinator(namespace, [ECHO])
    worker_from(probe_env, namespace:, service: 'probe').start.stop
    leftover = step_ready(namespace, ECHO, context: { 'n' => 1 })
    @bus.publish_step(leftover, namespace, ECHO)
    assert_equal(1, eventually { @bus.message_count(single).nonzero? })

    results = @bus.results(namespace)
    worker_from(probe_env.merge('TASKER_PARTITIONS' => '2'), namespace:, service: 'probe').start
    assert_equal([1, 1, 1], (queues + [single]).map { |queue| @bus.consumer_count(queue) })
    fresh = step_ready(namespace, ECHO, context: { 'n' => 2 })
    @bus.publish_step(fresh, namespace, ECHO)
    received = Array.new(2) { results.next&.json }.compact
    assert_equal [leftover, fresh].map { |step| step['task_id'] }.sort, received.map { |r| r['task_id'] }.sort
    assert_equal 0, @bus.message_count(single)
    # Earlier versions bound it to tasker.steps, which this user may not read.
    assert_includes @log.string, "not allowed to unbind #{single} from tasker.steps with #{namespace}/#{ECHO}"
  end

  def test_a_least_privilege_worker_fails_loudly_when_its_own_queue_is_refused
    namespace = unique('lp')
    error = assert_raises(TaskerWorker::BrokerError) { worker_from(probe_env, namespace:, service: 'notprobe').start }
    assert_includes error.message, 'ACCESS_REFUSED'
    assert_includes error.message, TaskerWorker::Topology.service_queue(namespace, 'notprobe')
  end
end
