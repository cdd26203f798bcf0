# frozen_string_literal: true

require 'minitest/autorun'
require 'json'
require 'logger'
require 'securerandom'
require 'socket'
require 'stringio'
require 'tasker_worker'

# A free loopback port, and a plain HTTP GET of the worker's endpoints.
module LocalHttp
  def free_port
    server = TCPServer.new('127.0.0.1', 0)
    server.addr[1]
  ensure
    server&.close
  end

  # [status, content type, body] of a plain HTTP GET.
  def http_get(port, path)
    socket = TCPSocket.new('127.0.0.1', port)
    socket.write("GET #{path} HTTP/1.1\r\nHost: test\r\n\r\n")
    head, body = socket.read.split("\r\n\r\n", 2)
    [Integer(head.split[1], 10), head[/^Content-Type: ([^\r\n]*)/i, 1], body]
  ensure
    socket&.close
  end
end

# The golden messages of the Rust protocol crate.
FIXTURES = File.expand_path('../../../protocol/tests/fixtures/messages', __dir__)
AMQP_URL = ENV.fetch('TASKER_AMQP_URL', 'amqp://guest:guest@127.0.0.1:5672/%2f')
# For the tests' own connections: Bunny.new takes one URL, so a cluster's first node.
NODE_URL = TaskerWorker::Broker.urls(AMQP_URL).first
# The node deploy/dev runs: only it has the TLS listener and the users of
# deploy/dev.d/security.sh, also when the other tests run against a cluster.
DEV_URL = 'amqp://guest:guest@127.0.0.1:5672/%2f'

def fixture(name)
  File.binread(File.join(FIXTURES, name))
end

# A name no other test uses: `<prefix>_<random>`.
def unique(prefix)
  "#{prefix}_#{SecureRandom.hex(6)}"
end

# A step-ready body, as the coordinator would publish it.
def step_ready(namespace, callable, step: 's1', context: {}, task_id: nil, attempt: 1, max_attempts: 3,
               timeout_seconds: nil, dependency_results: {})
  body = {
    'protocol_version' => 1,
    'task_id' => task_id || SecureRandom.uuid,
    'namespace' => namespace,
    'task_name' => 'task',
    'task_version' => '1.0.0',
    'step' => step,
    'callable' => callable,
    'attempt' => attempt,
    'max_attempts' => max_attempts,
    'context' => context,
    'initialization' => {},
    'dependencies' => dependency_results.keys.sort,
    'dependency_results' => dependency_results
  }
  body['timeout_seconds'] = timeout_seconds unless timeout_seconds.nil?
  body
end

# The messages a private queue receives, in order.
class Watch
  Delivery = Struct.new(:info, :properties, :body) do
    def json
      JSON.parse(body)
    end

    def headers
      properties.headers || {}
    end
  end

  def initialize
    @received = Queue.new
  end

  def push(delivery)
    @received << delivery
  end

  # The next message, or nil at the deadline.
  def next(timeout: 15)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    loop do
      return @received.pop(true)
    rescue ThreadError
      return nil if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.02
    end
  end

  # The next message that the block accepts, skipping others; nil at the deadline.
  def next_where(timeout: 15)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    loop do
      left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
      return nil if left <= 0

      delivery = self.next(timeout: left)
      return nil if delivery.nil?
      return delivery if yield(delivery)
    end
  end
end

# The test's own view of the broker: publishing as the coordinator would,
# watching what workers publish, and deleting the queues a test made.
class Bus
  attr_reader :connection

  def initialize(url = NODE_URL)
    @connection = Bunny.new(url, logger: Logger.new(File::NULL), automatically_recover: false)
    @connection.start
    @channel = @connection.create_channel
    @channel.confirm_select
    @channel.exchange_declare(TaskerWorker::Topology::EVENTS_EXCHANGE, 'topic', durable: true)
    @channel.exchange_declare(TaskerWorker::Topology::STEPS_EXCHANGE, 'direct', durable: true)
    @channel.exchange_declare(TaskerWorker::Topology::DEAD_LETTER_EXCHANGE, 'fanout', durable: true)
    @created = []
    @exchanges = []
  end

  # Publishes `body` (confirmed) and returns its message id.
  def publish(exchange, routing_key, body, headers: {}, type: TaskerWorker::Topology::MessageType::STEP_READY)
    payload = body.is_a?(String) ? body : JSON.generate(body)
    id = SecureRandom.uuid
    @channel.basic_publish(payload, exchange, routing_key,
                           persistent: true, content_type: 'application/json', type:, message_id: id,
                           headers: { 'x-tasker-protocol-version' => 1 }.merge(headers))
    raise 'publish not confirmed' unless @channel.wait_for_confirms

    id
  end

  # Publishes a step-ready message to `tasker.steps`, routed to the service
  # that serves `callable`.
  def publish_step(body, namespace, callable, **options)
    publish(TaskerWorker::Topology::STEPS_EXCHANGE, TaskerWorker::Topology.step_routing_key(namespace, callable),
            body, **options)
  end

  # Publishes `body` to `exchange` as mandatory (confirmed) and says whether
  # the broker returned it: no queue was bound to take it.
  def returned?(exchange, routing_key, body)
    returned = false
    channel = @connection.create_channel
    channel.confirm_select
    Bunny::Exchange.new(channel, :direct, exchange, durable: true, no_declare: true).on_return { returned = true }
    channel.basic_publish(JSON.generate(body), exchange, routing_key, persistent: true, mandatory: true,
                                                                      content_type: 'application/json')
    raise 'publish not confirmed' unless channel.wait_for_confirms

    # A return comes before its confirm, and its handler runs on the
    # channel's own thread: give that a moment.
    sleep 0.1
    returned
  ensure
    channel&.close if channel&.open?
  end

  # Plays the coordinator: declares `namespace`'s steps exchange and binds
  # it to `tasker.steps` with the keys of `callables`, so that their steps
  # reach the queues bound there. It is deleted at #close.
  def route_steps(namespace, callables)
    exchange = TaskerWorker::Topology.namespace_steps_exchange(namespace)
    remember_exchanges(exchange)
    channel = @connection.create_channel
    channel.exchange_declare(exchange, 'direct', durable: true)
    callables.each do |callable|
      channel.exchange_bind(TaskerWorker::Topology::STEPS_EXCHANGE, exchange,
                            routing_key: TaskerWorker::Topology.step_routing_key(namespace, callable))
    end
    channel.close
    exchange
  end

  # Takes `namespace`'s steps exchange off `tasker.steps` for `callable`.
  def unroute_steps(namespace, callable)
    channel = @connection.create_channel
    channel.exchange_unbind(TaskerWorker::Topology::STEPS_EXCHANGE,
                            TaskerWorker::Topology.namespace_steps_exchange(namespace),
                            routing_key: TaskerWorker::Topology.step_routing_key(namespace, callable))
    channel.close
  end

  # A private queue bound to `exchange` with `routing_key`.
  def watch(exchange, routing_key = '')
    watch = Watch.new
    channel = @connection.create_channel
    queue = channel.queue('', exclusive: true, auto_delete: true)
    queue.bind(exchange, routing_key:)
    queue.subscribe(manual_ack: false) { |info, props, body| watch.push(Watch::Delivery.new(info, props, body)) }
    watch
  end

  # The step results of `namespace`.
  def results(namespace)
    watch(TaskerWorker::Topology::EVENTS_EXCHANGE, TaskerWorker::Topology.step_result_routing_key(namespace))
  end

  # [ready, unacked] messages of `queue`, from the management-free way:
  # a passive declare reports the ready count only.
  def message_count(queue)
    declared(queue).message_count
  end

  # How many consumers `queue` has.
  def consumer_count(queue)
    declared(queue).consumer_count
  end

  # What a passive declare of `queue` answers, on a channel of its own.
  def declared(queue)
    channel = @connection.create_channel
    channel.queue_declare(queue, passive: true)
  ensure
    channel&.close if channel&.open?
  end

  def remember(*queues)
    @created.concat(queues)
  end

  def remember_exchanges(*exchanges)
    @exchanges.concat(exchanges)
  end

  # Deletes the queues and exchanges the test made, and closes.
  def close
    channel = @connection.create_channel
    @created.uniq.each do |queue|
      channel.queue_delete(queue)
    rescue Bunny::Exception
      channel = @connection.create_channel
    end
    @exchanges.uniq.each do |exchange|
      channel.exchange_delete(exchange)
    rescue Bunny::Exception
      channel = @connection.create_channel
    end
    @connection.close
  end
end

# A namespace of its own, a bus, and the workers a test starts, stopped and
# cleaned up at the end.
module BrokerTest
  SERVICE = 'svc'

  def setup
    super
    @namespace = unique('rb')
    @bus = Bus.new(bus_url)
    @bus.remember(TaskerWorker::Topology.request_queue(@namespace),
                  TaskerWorker::Topology.result_queue(@namespace),
                  TaskerWorker::Topology.service_queue(@namespace, SERVICE))
    @bus.remember_exchanges(TaskerWorker::Topology.namespace_steps_exchange(@namespace))
    @workers = []
    @log = StringIO.new
  end

  # What the block returns once it is truthy, or nil after `timeout` seconds.
  def eventually(timeout: 15)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
    loop do
      value = yield
      return value if value
      return nil if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.05
    end
  end

  # The node the test's bus talks to.
  def bus_url
    NODE_URL
  end

  def teardown
    @workers&.each(&:stop)
    @bus&.close
    super
  end

  # A started worker of service `svc` in the test's namespace, with `handlers`
  # by callable.
  def start_worker(handlers, settings = {})
    config = TaskerWorker::Config.new(service: SERVICE, amqp_url: AMQP_URL, concurrency: 4,
                                      shutdown_grace: 5.0, logger: Logger.new(@log), **settings)
    worker = TaskerWorker::Worker.new(config).namespace(@namespace)
    handlers.each { |callable, handler| worker.handler(callable, handler) }
    @workers << worker
    worker.start
  end
end

# The certificates and passwords that deploy/dev makes for the security
# tests: a CA (`ca.pem`), a client certificate it signed (`client.pem`,
# `client.key`), a CA that signed nothing of ours (`other-ca.pem`), and a
# file with the password of each RabbitMQ user (`rabbitmq-<user>`). A test
# that needs one that is missing is skipped, naming it.
module DevSecrets
  DEV = File.expand_path('../../../.dev', __dir__)
  TLS_DIR = ENV.fetch('TASKER_TEST_TLS_DIR', File.join(DEV, 'tls'))
  SECRETS_DIR = ENV.fetch('TASKER_TEST_SECRETS_DIR', File.join(DEV, 'secrets'))
  # The broker's TLS listener, which asks for a client certificate.
  AMQPS_URL = ENV.fetch('TASKER_TEST_AMQPS_URL', 'amqps://guest:guest@127.0.0.1:5671/%2f')

  def tls_file(name)
    path = File.join(TLS_DIR, name)
    skip "no #{path}; deploy/dev makes it" unless File.file?(path)
    path
  end

  # The environment of a connection to AMQPS_URL trusting the CA file
  # `trust`, with the client certificate unless `client` is false.
  def tls_env(trust: 'ca.pem', client: true)
    env = { 'TASKER_AMQP_URL' => AMQPS_URL, 'TASKER_TLS_CA_FILE' => tls_file(trust) }
    return env unless client

    env.merge('TASKER_TLS_CERT_FILE' => tls_file('client.pem'), 'TASKER_TLS_KEY_FILE' => tls_file('client.key'))
  end

  # The file holding RabbitMQ user `user`'s password.
  def password_file(user)
    path = File.join(SECRETS_DIR, "rabbitmq-#{user}")
    skip "no #{path}; deploy/dev makes it" unless File.file?(path)
    path
  end
end
