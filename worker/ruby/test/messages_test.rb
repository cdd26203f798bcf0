# frozen_string_literal: true

require 'test_helper'
require 'time'

class MessagesTest < Minitest::Test
  LIMIT = 1_048_576

  def decode(body, limit = LIMIT)
    TaskerWorker::Messages.decode_step_ready(body, limit)
  end

  def reason_of(body, limit = LIMIT)
    decode(body, limit)
    flunk 'decoded'
  rescue TaskerWorker::Messages::DecodeError => e
    e.header
  end

  def test_the_golden_step_ready_decodes
    ready = decode(fixture('step_ready.json'))
    assert_equal '1313b797-4991-51f3-b1c9-e05383177de6', ready.task_id
    assert_equal 'send_welcome_sequence', ready.step
    assert_equal 'Microservices::StepHandlers::SendWelcomeSequenceHandler', ready.callable
    assert_equal [1, 2], [ready.attempt, ready.max_attempts]
    assert_nil ready.timeout_seconds
    assert_equal %w[setup_billing_profile initialize_preferences], ready.dependencies
    assert_equal 'usr_5f2b9c1e7a3d4f60b8e2c9a1', ready.dependency_results['create_user_account']['user_id']
    assert_equal '1313b797-4991-51f3-b1c9-e05383177de6:send_welcome_sequence', ready.idempotency_key
  end

  def test_a_missing_dependencies_field_reads_as_none_and_a_timeout_as_seconds
    body = JSON.parse(fixture('step_ready.json'))
    body.delete('dependencies')
    body['timeout_seconds'] = 30
    ready = decode(JSON.generate(body))
    assert_equal [], ready.dependencies
    assert_equal 30.0, ready.timeout_seconds
  end

  def test_results_have_the_shape_of_the_golden_ones
    %w[step_result_completed step_result_failed_retryable step_result_failed_permanent].each do |name|
      golden = JSON.parse(fixture("#{name}.json"))
      ready = TaskerWorker::Messages::StepReady.new(
        **golden.slice('task_id', 'namespace', 'task_name', 'task_version', 'step', 'attempt').transform_keys(&:to_sym)
      )
      outcome =
        if golden['status'] == 'completed'
          TaskerWorker::Messages.completed(golden['result'])
        else
          e = golden['error']
          error = if e['retryable']
                    TaskerWorker::RetryableError.new(e['message'], error_code: e['code'],
                                                                   retry_after: e['retry_after_seconds'])
                  else
                    TaskerWorker::PermanentError.new(e['message'], error_code: e['code'])
                  end
          TaskerWorker::Messages.failed(error)
        end
      started = Time.iso8601(golden['started_at'])
      finished = Time.iso8601(golden['finished_at'])
      assert_equal golden, JSON.parse(TaskerWorker::Messages.encode(ready.result(started, finished, outcome))), name
    end
  end

  def test_unusable_bodies_get_the_protocols_reasons
    good = JSON.parse(fixture('step_ready.json'))
    assert_match(/\Anot_json: payload is not JSON: /, reason_of('{'))
    assert_match(/\Anot_json: /, reason_of("\xff\xfe".b))
    assert_match(/\Anot_json: /, reason_of('{"protocol_version": NaN}'))
    assert_match(/\Awrong_protocol_version: protocol_version is 2, this process speaks only 1; /,
                 reason_of(JSON.generate(good.merge('protocol_version' => 2))))
    assert_match(/\Awrong_protocol_version: protocol_version is not a number, /,
                 reason_of(JSON.generate(good.merge('protocol_version' => '1'))))
    assert_equal 'invalid_message: payload does not match the message schema: missing field protocol_version',
                 reason_of(JSON.generate(good.except('protocol_version')))
    assert_equal 'invalid_message: payload does not match the message schema: field task_id is "t1", not a UUID',
                 reason_of(JSON.generate(good.merge('task_id' => 't1')))
    assert_equal 'invalid_message: payload does not match the message schema: missing field context',
                 reason_of(JSON.generate(good.except('context')))
    assert_equal 'invalid_message: payload does not match the message schema: field attempt is -1, ' \
                 'expected a non-negative integer',
                 reason_of(JSON.generate(good.merge('attempt' => -1)))
    assert_equal 'invalid_message: payload does not match the message schema: field initialization is an array, ' \
                 'expected an object',
                 reason_of(JSON.generate(good.merge('initialization' => [])))
    assert_equal 'too_large: payload of 20 bytes is over the limit of 10 bytes', reason_of('x' * 20, 10)
  end

  def test_timestamps_are_utc_with_milliseconds
    time = Time.new(2025, 3, 14, 10, 26, 54.318r, '+01:00')
    assert_equal '2025-03-14T09:26:54.318Z', TaskerWorker::Messages.timestamp(time)
  end
end

class ContextTest < Minitest::Test
  def context(context: { 'user_info' => { 'email' => 'a@example.com' } }, results: { 'a' => nil })
    body = JSON.parse(fixture('step_ready.json')).merge('context' => context, 'dependency_results' => results)
    TaskerWorker::StepContext.new(TaskerWorker::Messages.decode_step_ready(JSON.generate(body), 1 << 20))
  end

  def test_readers
    ctx = context
    assert_equal({ 'email' => 'a@example.com' }, ctx.get_input('user_info'))
    assert_equal({ 'email' => 'a@example.com' }, ctx.get_input(:user_info))
    assert_equal({}, ctx.get_input_or('missing', {}))
    assert_nil ctx.get_dependency_result('a'), 'a null result is a result'
    assert_equal '1313b797-4991-51f3-b1c9-e05383177de6:send_welcome_sequence', ctx.idempotency_key
    assert_equal 'send_welcome_sequence', ctx.step_name
    assert_equal 1, ctx.attempt
    assert ctx.inputs.frozen?
  end

  def test_missing_inputs_are_permanent_invalid_input
    ctx = context
    error = assert_raises(TaskerWorker::PermanentError) { ctx.get_input('plan') }
    assert_equal 'invalid_input', error.code
    error = assert_raises(TaskerWorker::PermanentError) { ctx.get_dependency_result('b') }
    assert_equal 'invalid_input', error.code
    assert_match(/has no result from "b"; .*: a\z/, error.message)
    error = assert_raises(TaskerWorker::PermanentError) { context(context: [1]) }
    assert_equal 'the task context is not a JSON object: it is an array', error.message
  end
end

class ErrorsAndConfigTest < Minitest::Test
  def test_step_errors
    permanent = TaskerWorker::PermanentError.new('Invalid email', error_code: 'INVALID_EMAIL')
    refute permanent.retryable?
    assert_nil permanent.retry_after
    retryable = TaskerWorker::RetryableError.new('503', error_code: :BILLING, retry_after: 5)
    assert retryable.retryable?
    assert_equal ['BILLING', 5], [retryable.code, retryable.retry_after]
    assert_raises(ArgumentError) { TaskerWorker::RetryableError.new('x', error_code: 'X', retry_after: -1) }
  end

  def test_config_checks
    assert_raises(TaskerWorker::ConfigError) { TaskerWorker::Config.new.check! }
    assert_raises(TaskerWorker::ConfigError) { TaskerWorker::Config.new(service: 'a.b').check! }
    assert_raises(TaskerWorker::ConfigError) { TaskerWorker::Config.new(service: 'a', max_redeliveries: 100).check! }
    assert_nil TaskerWorker::Config.new(service: 'billing').check!
    config = TaskerWorker::Config.from_env({ 'TASKER_SERVICE' => 'user', 'TASKER_CONCURRENCY' => '8' })
    assert_equal ['user', 8], [config.service, config.concurrency]
  end

  def test_recent_results_forget_the_oldest
    recent = TaskerWorker::RecentResults.new(2)
    recent.insert(1, :a)
    recent.insert(2, :b)
    recent.insert(3, :c)
    assert_nil recent.get(1)
    assert_equal %i[b c], [recent.get(2), recent.get(3)]
  end

  def test_a_worker_needs_a_namespace_and_handlers_with_call
    assert_raises(TaskerWorker::ConfigError) do
      TaskerWorker::Worker.new(TaskerWorker::Config.new(service: 's')).namespace('a.b')
    end
    assert_raises(TaskerWorker::ConfigError) do
      TaskerWorker::Worker.new(TaskerWorker::Config.new(service: 's')).handler('X', Object.new)
    end
    assert_raises(TaskerWorker::ConfigError) { TaskerWorker::Worker.new(TaskerWorker::Config.new(service: 's')).start }
  end
end
