# frozen_string_literal: true

require 'test_helper'

class TopologyTest < Minitest::Test
  include BrokerTest

  CALLABLE = 'Tests::EchoHandler'
  OTHER = 'Tests::OtherHandler'

  # Returns the step's name.
  class StepName
    def call(context)
      context.step_name
    end
  end

  # Whether `queue` exists with exactly `arguments`: a declaration with other
  # arguments is refused with PRECONDITION_FAILED.
  def declared_with?(queue, arguments)
    channel = @bus.connection.create_channel
    channel.queue_declare(queue, durable: true, arguments:)
    channel.close
    true
  rescue Bunny::PreconditionFailed
    false
  end

  def test_every_queue_is_a_quorum_queue_with_the_delivery_limit_and_the_service_queue_is_bound_per_callable
    worker = start_worker(CALLABLE => StepName.new, OTHER => StepName.new)
    queues = [TaskerWorker::Topology.request_queue(@namespace), TaskerWorker::Topology.result_queue(@namespace),
              worker.queues.first, 'tasker.dead_letters', 'tasker.requests.unrouted']
    queues.each do |queue|
      assert declared_with?(queue, { 'x-queue-type' => 'quorum', 'x-delivery-limit' => 100 }), queue
    end
    assert_equal ["tasker.steps.#{@namespace}.svc"], worker.queues

    results = @bus.results(@namespace)
    [CALLABLE, OTHER].each do |callable|
      @bus.publish_step(step_ready(@namespace, callable, step: callable.split('::').last), @namespace, callable)
      assert_equal callable.split('::').last, results.next.json['result']
    end
  end

  def test_the_service_queue_gets_its_steps_through_the_namespace_steps_exchange_only
    start_worker(CALLABLE => StepName.new)
    results = @bus.results(@namespace)
    steps = TaskerWorker::Topology::STEPS_EXCHANGE
    key = TaskerWorker::Topology.step_routing_key(@namespace, CALLABLE)
    refute @bus.returned?(steps, key, step_ready(@namespace, CALLABLE, step: 'routed')), 'routed while bound'
    assert_equal 'routed', results.next.json['result']

    # Without the namespace's exchange bound to tasker.steps, nothing the
    # worker bound takes the step.
    @bus.unroute_steps(@namespace, CALLABLE)
    assert @bus.returned?(steps, key, step_ready(@namespace, CALLABLE, step: 'unrouted')),
           'the worker bound its queue to tasker.steps'
    assert_nil results.next(timeout: 1), 'no step ran'

    # The coordinator binds it again.
    @bus.route_steps(@namespace, [CALLABLE])
    refute @bus.returned?(steps, key, step_ready(@namespace, CALLABLE, step: 'again'))
    assert_equal 'again', results.next.json['result']
  end

  def test_a_queue_declared_without_the_delivery_limit_is_used_as_it_is
    queue = TaskerWorker::Topology.service_queue(@namespace, BrokerTest::SERVICE)
    channel = @bus.connection.create_channel
    channel.queue_declare(queue, durable: true, arguments: { 'x-queue-type' => 'quorum' })
    channel.close

    start_worker(CALLABLE => StepName.new)
    results = @bus.results(@namespace)
    @bus.publish_step(step_ready(@namespace, CALLABLE), @namespace, CALLABLE)
    assert_equal 's1', results.next.json['result']
    assert_match(/the queue #{Regexp.escape(queue)} exists with other arguments/, @log.string)
  end
end
