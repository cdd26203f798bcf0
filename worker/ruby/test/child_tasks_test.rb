# frozen_string_literal: true

require 'test_helper'
require 'time'

# StepContext#complete_with_child and what it sends, against the golden
# messages of docs/protocol.md, "Child tasks"; the conformance kit's
# `child_task` scenario runs it in a worker.
class ChildTasksTest < Minitest::Test
  M = TaskerWorker::Messages

  # The step of the golden child request's parent.
  def parent_ready(**fields)
    golden = JSON.parse(fixture('task_request_child.json'))['parent']
    M::StepReady.new(
      task_id: golden['task_id'], namespace: golden['namespace'], task_name: golden['name'],
      task_version: golden['version'], step: golden['step'], callable: 'Refunds::Delegate',
      attempt: golden['attempt'], max_attempts: 3, timeout_seconds: nil, context: {}, initialization: {},
      dependencies: [], dependency_results: {}, **fields
    )
  end

  # A start_child that keeps what it is given.
  def recorder(sent)
    ->(request, child_task_id) { sent << [request, child_task_id] }
  end

  def test_the_task_id_follows_from_the_idempotency_key
    # RFC 9562's name-based example (the DNS namespace).
    assert_equal '886313e1-3b8a-5372-9b90-0c9aee199e5d',
                 M.uuid_v5('6ba7b810-9dad-11d1-80b4-00c04fd430c8', 'python.org')
    # docs/protocol.md, "The task id".
    assert_equal '1313b797-4991-51f3-b1c9-e05383177de6', M.task_id_of(JSON.parse(fixture('task_request.json')))
    # The golden child request and the golden result that waits for it.
    assert_equal JSON.parse(fixture('step_result_waiting_for_child.json'))['child_task_id'],
                 M.task_id_of(JSON.parse(fixture('task_request_child.json')))
    assert_equal 'r', M.task_id_of({ 'namespace' => 'ns', 'name' => 't', 'request_id' => 'r' })
  end

  def test_the_request_is_the_golden_one_and_every_attempt_asks_for_the_same_child
    golden = JSON.parse(fixture('task_request_child.json'))
    sent = []
    waiting = TaskerWorker::StepContext.new(parent_ready, recorder(sent))
                                       .complete_with_child('payments', 'process_refund', golden['context'])
    request, child_task_id = sent.fetch(0)
    assert_equal golden.except('request_id'), request.except('request_id')
    assert_match M::UUID_PATTERN, request['request_id']
    assert_equal '0203cdea-4a86-5cc4-9a57-7b04284b46ec', child_task_id
    assert_equal TaskerWorker::WaitingForChild.new(child_task_id), waiting

    TaskerWorker::StepContext.new(parent_ready(attempt: 2), recorder(sent))
                             .complete_with_child('payments', 'process_refund', golden['context'], version: '2.1.0')
    again, same_child = sent.fetch(1)
    assert_equal child_task_id, same_child
    assert_equal golden['idempotency_key'], again['idempotency_key']
    assert_equal 2, again['parent']['attempt']
    assert_equal '2.1.0', again['version']
    refute request.key?('version')
    refute_equal request['request_id'], again['request_id']
  end

  def test_a_child_task_starts_only_inside_a_worker_and_with_an_object_as_context
    error = assert_raises(TaskerWorker::PermanentError) do
      TaskerWorker::StepContext.new(parent_ready).complete_with_child('ns', 't', {})
    end
    assert_equal 'child_not_started', error.code
    assert_match(/child tasks start only in a Worker/, error.message)

    sent = []
    error = assert_raises(TaskerWorker::PermanentError) do
      TaskerWorker::StepContext.new(parent_ready, recorder(sent)).complete_with_child('ns', 't', [])
    end
    assert_equal 'invalid_input', error.code
    assert_equal 'the context of child task ns/t must be a JSON object, not an array', error.message
    assert_empty sent
  end

  def test_a_request_the_broker_does_not_take_fails_the_attempt_retryably
    refused = ->(_request, _id) { raise TaskerWorker::BrokerError, 'no confirm' }
    error = assert_raises(TaskerWorker::RetryableError) do
      TaskerWorker::StepContext.new(parent_ready, refused).complete_with_child('payments', 'process_refund', {})
    end
    assert_equal 'child_not_started', error.code
    assert_equal 'the request for child task payments/process_refund was not published: no confirm', error.message
  end

  def test_a_handler_returning_the_child_makes_a_result_of_the_golden_shape
    golden = JSON.parse(fixture('step_result_waiting_for_child.json'))
    handler = ->(context) { context.complete_with_child('payments', 'process_refund', { 'amount' => 1 }) }
    log = StringIO.new
    runner = TaskerWorker::StepRunner.new({ 'Refunds::Delegate' => handler }, Logger.new(log), 1_048_576)
    ready = parent_ready
    outcome = runner.run_handler(ready, recorder([]))
    assert_equal({ 'status' => 'waiting_for_child', 'child_task_id' => golden['child_task_id'] }, outcome)
    payload = runner.encode_result(ready, Time.iso8601(golden['started_at']), Time.iso8601(golden['finished_at']),
                                   outcome)
    assert_equal golden, JSON.parse(payload)
    runner.log_outcome(ready, JSON.parse(payload))
    assert_match(/step waits for its child task .*child_task_id=#{golden['child_task_id']}/, log.string)

    # Without a broker: a permanent failure, not a crash of the handler.
    failed = runner.run_handler(ready)
    assert_equal 'failed', failed['status']
    assert_equal [false, 'child_not_started'], failed['error'].values_at('retryable', 'code')
  end
end
