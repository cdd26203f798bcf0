# frozen_string_literal: true

require 'test_helper'

class DeadLettersTest < Minitest::Test
  include BrokerTest

  CALLABLE = 'Tests::EchoHandler'

  # Counts its calls.
  class Counter
    attr_reader :calls

    def initialize
      @calls = 0
    end

    def call(_context)
      @calls += 1
      nil
    end
  end

  def from_queue(queue)
    ->(delivery) { delivery.headers['x-tasker-original-queue'] == queue }
  end

  def test_undecodable_steps_are_dead_lettered_with_their_reason_then_acked
    counter = Counter.new
    worker = start_worker({ CALLABLE => counter }, max_message_bytes: 2048)
    queue = worker.queues.first
    dead = @bus.watch(TaskerWorker::Topology::DEAD_LETTER_EXCHANGE)
    good = step_ready(@namespace, CALLABLE)
    cases = [
      ['not json at all', /\Anot_json: payload is not JSON: /],
      [JSON.generate(good.merge('protocol_version' => 2)),
       /\Awrong_protocol_version: protocol_version is 2, this process speaks only 1; /],
      [JSON.generate(good.except('task_id')),
       /\Ainvalid_message: payload does not match the message schema: missing field task_id\z/],
      [JSON.generate(good.merge('attempt' => 'one')),
       /\Ainvalid_message: .*field attempt is a string, expected a non-negative integer\z/],
      [JSON.generate([1, 2]),
       /\Ainvalid_message: payload does not match the message schema: it is an array, not a JSON object\z/],
      [JSON.generate(step_ready(@namespace, CALLABLE, context: { 'pad' => 'x' * 3000 })),
       /\Atoo_large: payload of \d+ bytes is over the limit of 2048 bytes\z/]
    ]
    cases.each do |body, reason|
      id = @bus.publish_step(body, @namespace, CALLABLE, headers: { 'x-custom' => 'kept' })
      delivery = dead.next_where(&from_queue(queue))
      refute_nil delivery, "a dead letter (#{reason.source})"
      headers = delivery.headers
      assert_match reason, headers['x-tasker-dead-letter-reason']
      assert_equal 'tasker.steps', headers['x-tasker-original-exchange']
      assert_equal "#{@namespace}/#{CALLABLE}", headers['x-tasker-original-routing-key']
      assert_equal 'kept', headers['x-custom'], 'the original headers go with it'
      assert_equal body.b, delivery.body.b
      assert_equal id, delivery.properties.message_id
      assert_equal 2, delivery.properties.delivery_mode
      assert_equal queue, delivery.info.routing_key
    end

    assert_equal 0, counter.calls
    worker.stop
    # Every one was acked once dead-lettered: none comes back.
    assert_equal 0, @bus.message_count(queue)
  end

  def test_a_step_redelivered_too_often_is_dead_lettered
    queue = TaskerWorker::Topology.service_queue(@namespace, BrokerTest::SERVICE)
    channel = @bus.connection.create_channel
    channel.queue_declare(queue, durable: true, arguments: TaskerWorker::Topology::QUORUM.dup)
    ready = step_ready(@namespace, CALLABLE)
    @bus.publish('', queue, ready)
    # Delivered and handed back until RabbitMQ counts more than five
    # deliveries, as when a step crashes every worker that takes it.
    seen = 0
    while seen <= 5
      info, props, = channel.basic_get(queue, manual_ack: true)
      next sleep(0.02) if info.nil?

      seen = (props[:headers] || {}).fetch('x-delivery-count', 0)
      channel.reject(info.delivery_tag, true)
    end
    channel.close

    counter = Counter.new
    dead = @bus.watch(TaskerWorker::Topology::DEAD_LETTER_EXCHANGE)
    start_worker(CALLABLE => counter)
    delivery = dead.next_where(&from_queue(queue))
    refute_nil delivery, 'the dead letter'
    assert_match(/\Aredelivery_limit: redelivered \d+ times, over the limit of 5; the step may crash its worker\z/,
                 delivery.headers['x-tasker-dead-letter-reason'])
    assert_equal ready['task_id'], delivery.json['task_id']
    assert_equal 0, counter.calls
  end
end
