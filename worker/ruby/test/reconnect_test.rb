# frozen_string_literal: true

require 'test_helper'
require 'socket'
require 'uri'

# A TCP proxy in front of RabbitMQ whose connections the test can cut, as a
# network failure would.
class CuttableProxy
  def initialize(upstream_host, upstream_port)
    @upstream = [upstream_host, upstream_port]
    @server = TCPServer.new('127.0.0.1', 0)
    @sockets = []
    @mutex = Mutex.new
    @acceptor = Thread.new { accept_loop }
  end

  def port
    @server.addr[1]
  end

  # Closes every connection through the proxy.
  def cut!
    @mutex.synchronize do
      @sockets.each { |s| s.close unless s.closed? }
      @sockets.clear
    end
  end

  def close
    @acceptor.kill
    @server.close
    cut!
  end

  private

  def accept_loop
    loop do
      client = @server.accept
      upstream = TCPSocket.new(*@upstream)
      @mutex.synchronize { @sockets.push(client, upstream) }
      [[client, upstream], [upstream, client]].each { |from, to| Thread.new { pipe(from, to) } }
    end
  rescue IOError, SystemCallError
    nil
  end

  def pipe(from, to)
    loop { to.write(from.readpartial(65_536)) }
  rescue IOError, SystemCallError
    [from, to].each { |s| s.close unless s.closed? }
  end
end

class ReconnectTest < Minitest::Test
  include BrokerTest

  CALLABLE = 'Tests::EchoHandler'

  # Returns the input `n`, and counts its calls by `n`.
  class Echo
    attr_reader :calls

    def initialize
      @calls = Hash.new(0)
    end

    def call(context)
      @calls[context.get_input('n')] += 1
      context.get_input('n')
    end
  end

  def test_a_lost_connection_is_replaced_and_the_worker_goes_on
    uri = URI(NODE_URL)
    proxy = CuttableProxy.new(uri.host, uri.port || 5672)
    proxied = NODE_URL.sub("#{uri.host}:#{uri.port}", "127.0.0.1:#{proxy.port}")
    echo = Echo.new
    worker = start_worker({ CALLABLE => echo }, amqp_url: proxied)
    results = @bus.results(@namespace)
    worker_id = worker.identity.worker_id

    @bus.publish_step(step_ready(@namespace, CALLABLE, context: { 'n' => 1 }), @namespace, CALLABLE)
    assert_equal 1, results.next&.json&.dig('result')

    proxy.cut!
    @bus.publish_step(step_ready(@namespace, CALLABLE, context: { 'n' => 2 }), @namespace, CALLABLE)
    # The first step may come back too, if its ack was lost with the
    # connection: it is then answered from the remembered results.
    second = results.next_where(timeout: 5) { |d| d.json['result'] != 1 }
    assert_equal 2, second&.json&.dig('result'), 'a step after the loss is run'
    assert_equal({ 1 => 1, 2 => 1 }, echo.calls, 'each step ran once')
    assert_match(/lost the connection to rabbitmq/, @log.string)
    assert_equal worker_id, worker.identity.worker_id, 'the same worker after a reconnect'
    worker.stop
  ensure
    proxy&.close
  end

  def test_a_worker_stops_at_once_while_the_broker_is_unreachable
    uri = URI(NODE_URL)
    proxy = CuttableProxy.new(uri.host, uri.port || 5672)
    proxied = NODE_URL.sub("#{uri.host}:#{uri.port}", "127.0.0.1:#{proxy.port}")
    worker = start_worker({ CALLABLE => Echo.new }, amqp_url: proxied)
    proxy.close # cuts the connection, and refuses new ones
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 10
    sleep 0.05 until @log.string.include?('lost the connection') ||
                     Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
    assert_includes @log.string, 'lost the connection'

    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    worker.stop
    assert_operator Process.clock_gettime(Process::CLOCK_MONOTONIC) - started, :<, 2
  ensure
    proxy&.close
  end
end
