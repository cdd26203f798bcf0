# frozen_string_literal: true

require 'test_helper'

# `/metrics`: the Prometheus text of the process's metrics, with the names,
# labels and meanings of the Python and Rust workers'.
class MetricsTest < Minitest::Test
  include BrokerTest
  include LocalHttp

  ECHO = 'Tests::Echo'

  def metrics_showing(port, *needles)
    deadline = Time.now + 5
    loop do
      response = http_get(port, '/metrics')
      return response if needles.all? { |n| response[2].include?(n) } || Time.now > deadline

      sleep 0.05
    end
  end

  def test_steps_and_dead_letters_are_counted_on_metrics
    port = free_port
    start_worker({ ECHO => ->(context) { context.inputs } }, health_addr: "127.0.0.1:#{port}")
    results = @bus.results(@namespace)
    published_ms = (Time.now.to_r * 1000).to_i - 250
    @bus.publish_step(step_ready(@namespace, ECHO, step: 'greet'), @namespace, ECHO,
                      headers: { 'x-tasker-published-at-ms' => published_ms })
    refute_nil results.next, 'the step result'
    queue = TaskerWorker::Topology.service_queue(@namespace, BrokerTest::SERVICE)
    dead = @bus.watch(TaskerWorker::Topology::DEAD_LETTER_EXCHANGE)
    @bus.publish_step('not json', @namespace, ECHO)
    refute_nil dead.next_where { |d| d.headers['x-tasker-original-queue'] == queue }, 'the dead letter'

    labels = %(namespace="#{@namespace}",template="task",step="greet")
    # The worker counts each after the broker's confirm, which the bus can
    # see first: read until both counts show, for at most 5 s.
    status, content_type, text = metrics_showing(port, "tasker_step_duration_seconds_count{#{labels}}",
                                                 %(tasker_dead_letters_total{queue="#{queue}"))
    assert_equal 200, status
    assert_equal 'text/plain; version=0.0.4; charset=utf-8', content_type
    assert_includes text, "# TYPE tasker_step_duration_seconds histogram\n"
    assert_includes text, "tasker_step_duration_seconds_count{#{labels}} 1\n"
    assert_includes text, "tasker_step_duration_seconds_bucket{#{labels},le=\"+Inf\"} 1\n"
    assert_includes text, "tasker_queue_wait_seconds_count{#{labels}} 1\n"
    # Published 250 ms before it was sent: it waited at least that long.
    assert_includes text, "tasker_queue_wait_seconds_bucket{#{labels},le=\"0.128\"} 0\n"
    assert_includes text, "# TYPE tasker_dead_letters_total counter\n"
    assert_includes text, %(tasker_dead_letters_total{queue="#{queue}",reason="not_json"} 1\n)
  end
end

# The text format, without a broker.
class MetricsFormatTest < Minitest::Test
  def test_histograms_are_cumulative_and_labels_escaped
    metrics = TaskerWorker::Metrics.new
    labels = { namespace: 'n', template: "a\"b\\c\nd", step: 's' }
    metrics.step_duration.observe(0.0004, **labels)
    metrics.step_duration.observe(0.003, **labels)
    metrics.step_duration.observe(5000.0, **labels)
    text = metrics.render
    escaped = 'namespace="n",template="a\\"b\\\\c\\nd",step="s"'
    assert_includes text, "tasker_step_duration_seconds_bucket{#{escaped},le=\"0.0005\"} 1\n"
    assert_includes text, "tasker_step_duration_seconds_bucket{#{escaped},le=\"0.004\"} 2\n"
    assert_includes text, "tasker_step_duration_seconds_bucket{#{escaped},le=\"1048.576\"} 2\n"
    assert_includes text, "tasker_step_duration_seconds_bucket{#{escaped},le=\"+Inf\"} 3\n"
    assert_includes text, "tasker_step_duration_seconds_count{#{escaped}} 3\n"
    assert_includes text, "tasker_step_duration_seconds_sum{#{escaped}} 5000.0034\n"
    assert_equal 22, TaskerWorker::Metrics::BUCKETS.size
    assert_raises(ArgumentError) { metrics.queue_wait.observe(1.0, namespace: 'n') }
  end

  def test_a_counter_counts_by_labels
    metrics = TaskerWorker::Metrics.new
    2.times { metrics.dead_letters.inc(queue: 'q', reason: 'not_json') }
    assert_equal 2, metrics.dead_letters.value(queue: 'q', reason: 'not_json')
    assert_includes metrics.render, %(tasker_dead_letters_total{queue="q",reason="not_json"} 2\n)
  end
end
