# frozen_string_literal: true

require 'test_helper'

ECHO = 'Tests::EchoHandler'

# Returns what it read, and counts its calls.
class EchoHandler
  attr_reader :calls

  def initialize
    @calls = 0
    @mutex = Mutex.new
  end

  def call(context)
    @mutex.synchronize { @calls += 1 }
    { 'n' => context.get_input_or('n', nil), 'attempt' => context.attempt }
  end
end

# Reads the seed's shapes: an input, an input with a default, and an
# ancestor's result.
class WelcomeHandler
  def call(context)
    user = context.get_dependency_result('create_user_account')
    {
      'user_id' => user.fetch('user_id'),
      'email' => context.get_input('user_info').fetch('email'),
      'plan' => context.get_input_or('plan', 'free'),
      'idempotency_key' => context.idempotency_key,
      'task_id' => context.task_id,
      'step' => context.step_name,
      'attempt' => context.attempt
    }
  end
end

# Fails as its block says.
class RaisingHandler
  def initialize(&block)
    @block = block
  end

  def call(_context)
    @block.call
  end
end

# Sleeps, then returns.
class SlowHandler
  attr_reader :finished

  def initialize(seconds)
    @seconds = seconds
    @finished = 0
  end

  def call(_context)
    sleep @seconds
    @finished += 1
    'done'
  end
end

class WorkerTest < Minitest::Test
  include BrokerTest

  def test_a_completed_step_echoes_its_message_carries_its_result_and_is_acked
    start_worker(ECHO => WelcomeHandler.new)
    results = @bus.results(@namespace)
    ready = step_ready(@namespace, ECHO, step: 'send_welcome', attempt: 2,
                                         context: { 'user_info' => { 'email' => 'a@example.com' } },
                                         dependency_results: { 'create_user_account' => { 'user_id' => 'usr_1' } })
    @bus.publish_step(ready, @namespace, ECHO)

    delivery = results.next
    refute_nil delivery, 'no step result'
    result = delivery.json
    %w[protocol_version task_id namespace task_name task_version step attempt].each do |field|
      assert_equal ready[field], result[field], field
    end
    assert_equal 'completed', result['status']
    assert_equal({ 'user_id' => 'usr_1', 'email' => 'a@example.com', 'plan' => 'free',
                   'idempotency_key' => "#{ready['task_id']}:send_welcome", 'task_id' => ready['task_id'],
                   'step' => 'send_welcome', 'attempt' => 2 }, result['result'])
    assert_match(/\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\z/, result['started_at'])
    assert_match(/\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\z/, result['finished_at'])
    props = delivery.properties
    assert_equal 'tasker.step_result', props.type
    assert_equal 'application/json', props.content_type
    assert_equal 2, props.delivery_mode
    assert_equal 1, delivery.headers['x-tasker-protocol-version']
    assert_equal ready['task_id'], delivery.headers['x-tasker-task-id']
    assert_kind_of Integer, delivery.headers['x-tasker-published-at-ms']
    assert_equal "step.result.#{@namespace}", delivery.info.routing_key

    @workers.each(&:stop)
    assert_equal 0, @bus.message_count(TaskerWorker::Topology.service_queue(@namespace, 'svc')), 'the step was acked'
  end

  def test_step_errors_carry_their_code_and_retry_after
    permanent = 'Tests::Permanent'
    retryable = 'Tests::Retryable'
    start_worker(
      permanent => RaisingHandler.new do
                     raise TaskerWorker::PermanentError.new('Invalid email format: x', error_code: 'INVALID_EMAIL')
                   end,
      retryable => RaisingHandler.new do
                     raise TaskerWorker::RetryableError.new('billing returned 503', error_code: 'BILLING_UNAVAILABLE',
                                                                                    retry_after: 5)
                   end
    )
    results = @bus.results(@namespace)

    @bus.publish_step(step_ready(@namespace, permanent), @namespace, permanent)
    error = results.next.json.fetch('error')
    assert_equal({ 'retryable' => false, 'code' => 'INVALID_EMAIL', 'message' => 'Invalid email format: x' }, error)

    @bus.publish_step(step_ready(@namespace, retryable), @namespace, retryable)
    result = results.next.json
    assert_equal 'failed', result['status']
    assert_equal({ 'retryable' => true, 'code' => 'BILLING_UNAVAILABLE', 'message' => 'billing returned 503',
                   'retry_after_seconds' => 5.0 }, result['error'])
  end

  def test_a_missing_input_is_a_permanent_invalid_input
    start_worker(ECHO => WelcomeHandler.new)
    results = @bus.results(@namespace)
    ready = step_ready(@namespace, ECHO, dependency_results: { 'create_user_account' => { 'user_id' => 'u' } })
    @bus.publish_step(ready, @namespace, ECHO)
    error = results.next.json.fetch('error')
    assert_equal ['invalid_input', false], [error['code'], error['retryable']]
    assert_equal %(the task context has no "user_info"; add it to the task request's context), error['message']
  end

  def test_a_step_past_its_timeout_fails_retryably_and_its_handler_is_stopped
    slow = SlowHandler.new(3)
    start_worker(ECHO => slow)
    results = @bus.results(@namespace)
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    @bus.publish_step(step_ready(@namespace, ECHO, timeout_seconds: 0.2), @namespace, ECHO)

    error = results.next.json.fetch('error')
    assert_equal({ 'retryable' => true, 'code' => 'timeout',
                   'message' => 'the handler ran past timeout_seconds (0.2 s)' }, error)
    assert_operator Process.clock_gettime(Process::CLOCK_MONOTONIC) - started, :<, 2.5
    sleep 3.2
    assert_equal 0, slow.finished, 'the handler was stopped at the deadline'
    assert_nil results.next(timeout: 0.3), 'one result per delivery'
  end

  def test_an_exception_is_a_handler_panic_and_the_worker_goes_on
    broken = 'Tests::Broken'
    echo = EchoHandler.new
    start_worker(broken => RaisingHandler.new { raise ArgumentError, 'boom' }, ECHO => echo)
    results = @bus.results(@namespace)

    @bus.publish_step(step_ready(@namespace, broken), @namespace, broken)
    error = results.next.json.fetch('error')
    assert_equal({ 'retryable' => false, 'code' => 'handler_panic',
                   'message' => 'the handler raised ArgumentError: boom' }, error)

    @bus.publish_step(step_ready(@namespace, ECHO, context: { 'n' => 7 }), @namespace, ECHO)
    result = results.next.json
    assert_equal 'completed', result['status']
    assert_equal 7, result['result']['n']
  end

  def test_a_callable_without_handler_fails_with_handler_not_found
    start_worker(ECHO => EchoHandler.new)
    results = @bus.results(@namespace)
    # Routed to this service's queue, but naming a callable it has no
    # handler for, as after a binding left behind.
    @bus.publish_step(step_ready(@namespace, 'Tests::Unknown'), @namespace, ECHO)
    error = results.next.json.fetch('error')
    assert_equal ['handler_not_found', false], [error['code'], error['retryable']]
    expected = 'this worker has no handler for callable "Tests::Unknown"; register one with ' \
               ".handler(\"Tests::Unknown\", ..) (known: #{ECHO})"
    assert_equal expected, error['message']
  end

  def test_a_result_that_is_not_json_is_an_invalid_result
    start_worker(ECHO => RaisingHandler.new { Float::NAN })
    results = @bus.results(@namespace)
    @bus.publish_step(step_ready(@namespace, ECHO), @namespace, ECHO)
    error = results.next.json.fetch('error')
    assert_equal ['invalid_result', false], [error['code'], error['retryable']]
    assert error['message'].start_with?("the handler's result is not JSON: "), error['message']
  end

  def test_a_result_over_the_size_limit_becomes_result_too_large
    start_worker({ ECHO => RaisingHandler.new { 'x' * 3000 } }, max_message_bytes: 2048)
    results = @bus.results(@namespace)
    @bus.publish_step(step_ready(@namespace, ECHO), @namespace, ECHO)
    error = results.next.json.fetch('error')
    assert_equal ['result_too_large', false], [error['code'], error['retryable']]
    assert_match(/\Athe result of step s1 makes a step result of \d+ bytes, over the limit of 2048 bytes; /,
                 error['message'])
  end

  def test_a_redelivered_step_is_answered_from_the_recent_results
    echo = EchoHandler.new
    start_worker(ECHO => echo)
    results = @bus.results(@namespace)
    ready = step_ready(@namespace, ECHO, context: { 'n' => 1 })

    @bus.publish_step(ready, @namespace, ECHO)
    first = results.next
    refute_nil first, 'the first result'
    # The same step and attempt again, as after a lost ack.
    @bus.publish_step(ready, @namespace, ECHO)
    second = results.next
    refute_nil second, 'the remembered result'

    assert_equal 1, echo.calls, 'the handler ran once'
    assert_equal first.body, second.body
    assert_equal first.properties.message_id, second.properties.message_id

    # The next attempt of the same step is a new run.
    @bus.publish_step(ready.merge('attempt' => 2), @namespace, ECHO)
    third = results.next
    assert_equal 2, third.json['attempt']
    assert_equal 2, echo.calls
  end

  def test_on_stop_in_flight_steps_finish_and_the_worker_announces_it_leaves
    slow = SlowHandler.new(0.5)
    announcements = @bus.watch(TaskerWorker::Topology::EVENTS_EXCHANGE,
                               TaskerWorker::Topology::WORKER_ANNOUNCE_ROUTING_KEY)
    worker = start_worker(ECHO => slow)
    results = @bus.results(@namespace)
    mine = ->(d) { d.json['worker_id'] == worker.identity.worker_id }

    hello = announcements.next_where(&mine)
    refute_nil hello, 'the first announcement'
    body = hello.json
    assert_equal 'ruby', body['language']
    assert_equal 'svc', body['service']
    assert_equal TaskerWorker::VERSION, body['sdk_version']
    assert_equal Process.pid, body['pid']
    assert_equal 4, body['concurrency']
    assert_equal 10.0, body['every_seconds']
    assert_equal [{ 'namespace' => @namespace, 'queue' => "tasker.steps.#{@namespace}.svc", 'callables' => [ECHO] }],
                 body['serves']
    refute body.key?('leaving')
    assert_equal 'tasker.worker_announcement', hello.properties.type

    @bus.publish_step(step_ready(@namespace, ECHO), @namespace, ECHO)
    sleep 0.05 until worker.in_flight.positive?
    worker.stop

    assert_equal 'completed', results.next.json['status'], 'the step in flight finished'
    assert_equal 1, slow.finished
    leaving = announcements.next_where(&mine)
    assert_equal true, leaving.json['leaving']
    assert_equal 0, @bus.message_count(TaskerWorker::Topology.service_queue(@namespace, 'svc'))
  end
end
