# frozen_string_literal: true

require 'test_helper'

# `/healthz` and `/readyz`: 200 and the dependencies while the worker runs;
# ready only while it is connected to RabbitMQ.
class HealthTest < Minitest::Test
  include BrokerTest
  include LocalHttp

  ECHO = 'Tests::Echo'

  # [status, body] of a plain HTTP GET.
  def status_and_body(port, path)
    http_get(port, path).values_at(0, 2)
  end

  def test_a_connected_worker_is_ready
    port = free_port
    worker = start_worker({ ECHO => ->(context) { context.input } }, health_addr: "127.0.0.1:#{port}")
    assert_equal [200, "rabbitmq: up\n"], status_and_body(port, '/readyz')
    assert_equal [200, "rabbitmq: up\n"], status_and_body(port, '/healthz')
    assert_equal 404, http_get(port, '/nowhere')[0]
    worker.stop
    assert_raises(Errno::ECONNREFUSED) { status_and_body(port, '/healthz') }
  end

  def test_a_worker_without_its_broker_is_alive_but_not_ready
    port = free_port
    nowhere = "amqp://guest:guest@127.0.0.1:#{free_port}"
    config = TaskerWorker::Config.new(service: BrokerTest::SERVICE, amqp_url: nowhere,
                                      logger: Logger.new(@log), health_addr: ['127.0.0.1', port])
    worker = TaskerWorker::Worker.new(config).namespace(@namespace).handler(ECHO, ->(_) { {} })
    running = Thread.new { worker.run }
    assert eventually { status_and_body(port, '/readyz') == [503, "rabbitmq: down\n"] rescue nil }, # rubocop:disable Style/RescueModifier
           'readyz saying 503 while the broker is away'
    assert_equal [200, "rabbitmq: down\n"], status_and_body(port, '/healthz')
    worker.stop
    assert running.join(10), 'run returns once stopped'
  end
end

# The health address, without a broker.
class HealthAddressTest < Minitest::Test
  def test_the_health_address_reads_from_the_environment
    config = TaskerWorker::Config.from_env({ 'TASKER_HEALTH_ADDR' => '127.0.0.1:9104' })
    assert_equal ['127.0.0.1', 9104], config.health_addr
    assert_equal ['::1', 80], TaskerWorker::Config.parse_address('[::1]:80', 'X')
    assert_raises(TaskerWorker::ConfigError) { TaskerWorker::Config.parse_address('nowhere', 'X') }
    assert_nil TaskerWorker::Config.new.health_addr
  end
end
