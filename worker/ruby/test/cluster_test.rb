# frozen_string_literal: true

require 'test_helper'
require 'socket'

# How a URL setting names a cluster's nodes; no broker needed.
class ClusterUrlsTest < Minitest::Test
  def test_several_urls_name_a_cluster_s_nodes
    assert_equal %w[amqp://n1:5672/%2f amqp://n2:5672/%2f],
                 TaskerWorker::Broker.urls(' amqp://n1:5672/%2f , amqp://n2:5672/%2f,, ')
    assert_equal %w[amqp://host], TaskerWorker::Broker.urls('amqp://host')
    assert_equal %w[amqp://u:a%2Cb@host], TaskerWorker::Broker.urls('amqp://u:a%2Cb@host'), '%2C is no separator'
    assert_empty TaskerWorker::Broker.urls(' , ')
    assert_equal 'amqp://guest:***@h:5672/%2f', TaskerWorker::Broker.redact('amqp://guest:secret@h:5672/%2f')
    assert_equal 'amqp://u:***@n1:5672/%2f,amqp://u:***@n2:5673/%2f',
                 TaskerWorker::Broker.redact('amqp://u:pw@n1:5672/%2f, amqp://u:pw@n2:5673/%2f')
  end
end

# A cluster's nodes in one URL setting, against the real RabbitMQ: nodes
# that cannot be reached are passed over, and when none can be, the error
# names them all without their passwords.
class ClusterTest < Minitest::Test
  include BrokerTest

  # The node that answers: the first of a cluster's, when TASKER_AMQP_URL
  # lists several.
  LIVE = TaskerWorker::Broker.urls(AMQP_URL).first

  PASSWORD = 'n0t-for-logs'

  # Returns its input.
  class Echo
    def call(context)
      { 'echo' => context.get_input('n') }
    end
  end

  # An AMQP URL at a loopback port nothing listens on.
  def dead_url
    server = TCPServer.new('127.0.0.1', 0)
    port = server.addr[1]
    server.close
    "amqp://guest:#{PASSWORD}@127.0.0.1:#{port}/%2f"
  end

  def connect(url)
    TaskerWorker::Broker.connect(url, name: 'test-cluster', heartbeat: 5, logger: Logger.new(@log))
  end

  def test_each_connection_passes_over_the_nodes_that_are_down
    nodes = " #{dead_url} ,#{LIVE}, #{dead_url}"
    3.times do |attempt|
      broker = connect(nodes)
      begin
        assert_equal TaskerWorker::Broker.redact(LIVE), broker.url, "attempt #{attempt}"
        assert broker.open?
      ensure
        broker.close
      end
    end
    TaskerWorker::Client.connect(nodes, logger: Logger.new(@log)).close
  end

  def test_connections_start_at_the_next_node
    # Two spellings of the one real broker, to see which is reached.
    other = "#{LIVE}?heartbeat=7"
    reached = Array.new(2) do
      broker = connect("#{LIVE},#{other}")
      broker.close
      broker.url
    end
    assert_equal [LIVE, other].map { |url| TaskerWorker::Broker.redact(url) }.sort, reached.sort
  end

  def test_when_no_node_answers_the_error_names_each_without_its_password
    first = dead_url
    second = dead_url
    error = assert_raises(TaskerWorker::BrokerError) { connect("#{first},#{second}") }
    assert_predicate error, :retryable?
    assert_includes error.message, TaskerWorker::Broker.redact(first)
    assert_includes error.message, TaskerWorker::Broker.redact(second)
    refute_includes error.message, PASSWORD
  end

  def test_a_refused_login_is_not_tried_on_the_other_nodes
    wrong = LIVE.sub('guest:guest@', "guest:#{PASSWORD}@")
    refute_equal LIVE, wrong
    # One of two connections starts at the refusing node: it fails at once,
    # rather than going on to the node that would accept it.
    outcomes = Array.new(2) do
      connect("#{wrong},#{LIVE}").close
      'connected'
    rescue TaskerWorker::BrokerError => e
      refute_predicate e, :retryable?
      assert_match(/refused the connection/, e.message)
      refute_includes e.message, PASSWORD
      'refused'
    end
    assert_equal %w[connected refused], outcomes.sort
  end

  def test_an_invalid_node_url_is_a_configuration_error
    error = assert_raises(TaskerWorker::ConfigError) { connect("#{LIVE},http://n2/") }
    assert_match(/is not an AMQP URL/, error.message)
    error = assert_raises(TaskerWorker::ConfigError) { connect(' , ') }
    assert_match(/no RabbitMQ URL given/, error.message)
  end

  def test_a_worker_given_a_cluster_runs_a_step
    start_worker({ 'Tests::Echo' => Echo.new }, amqp_url: "#{dead_url},#{LIVE},#{dead_url}")
    results = @bus.results(@namespace)
    @bus.publish_step(step_ready(@namespace, 'Tests::Echo', context: { 'n' => 1 }), @namespace, 'Tests::Echo')

    delivery = results.next
    refute_nil delivery, 'no step result'
    result = delivery.json
    assert_equal 'completed', result['status'], result.inspect
    assert_equal({ 'echo' => 1 }, result['result'])
    assert_includes @log.string, "broker=#{TaskerWorker::Broker.redact(LIVE)}"
  end
end
