# frozen_string_literal: true

require 'test_helper'

# A service's steps split over several queues (TASKER_PARTITIONS): the
# consistent-hash exchange and its queues, the workers that consume them,
# and the move from a single queue.
class PartitionsTest < Minitest::Test
  include BrokerTest

  CALLABLE = 'Tests::TaskIdHandler'
  T = TaskerWorker::Topology

  # Returns the step's task id; counts the steps running at once.
  class TaskIdHandler
    attr_reader :most

    def initialize(seconds = 0)
      @seconds = seconds
      @running = 0
      @most = 0
      @mutex = Mutex.new
    end

    def call(context)
      @mutex.synchronize do
        @running += 1
        @most = [@most, @running].max
      end
      sleep @seconds
      context.task_id
    ensure
      @mutex.synchronize { @running -= 1 }
    end
  end

  def setup
    super
    @bus.remember(*Array.new(4) { |index| T.partition_queue(@namespace, SERVICE, index) })
    @bus.remember_exchanges(T.service_exchange(@namespace, SERVICE))
    @broker = TaskerWorker::Broker.connect(AMQP_URL, name: 'partitions-test', heartbeat: 5, logger: Logger.new(@log))
    @channel = @broker.channel
  end

  def teardown
    @broker&.close
    super
  end

  def service_queue
    T.service_queue(@namespace, SERVICE)
  end

  def partition_queues(partitions)
    Array.new(partitions) { |index| T.partition_queue(@namespace, SERVICE, index) }
  end

  def declare(partitions)
    @broker.declare_service(@channel, @namespace, SERVICE, [CALLABLE], partitions)
  end

  # Publishes a step of task `task_id`, as the coordinator does: routed by
  # its callable, with the task id in a header.
  def publish(task_id, step: 's1')
    @bus.publish_step(step_ready(@namespace, CALLABLE, task_id:, step:), @namespace, CALLABLE,
                      headers: { T::Header::TASK_ID => task_id })
  end

  # The ready messages of `queues`, once they add up to `total` (or at the
  # deadline, whatever they are then).
  def counts(queues, total)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 5
    loop do
      counts = queues.map { |queue| @bus.message_count(queue) }
      return counts if counts.sum >= total || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.05
    end
  end

  def test_four_partitions_spread_the_steps_by_task_id_over_four_queues
    queues = declare(4)
    assert_equal partition_queues(4), queues.map(&:name)

    40.times { publish(SecureRandom.uuid) }
    counts = counts(partition_queues(4), 40)
    assert_equal 40, counts.sum, "each step in one queue: #{counts}"
    assert_operator counts.count(&:positive?), :>=, 2, "spread over the queues: #{counts}"
    refute @bus.connection.queue_exists?(service_queue), 'no single queue'
  end

  def test_a_worker_with_four_partitions_consumes_every_queue_and_runs_the_steps_of_many_tasks
    announcements = @bus.watch(T::EVENTS_EXCHANGE, T::WORKER_ANNOUNCE_ROUTING_KEY)
    worker = start_worker({ CALLABLE => TaskIdHandler.new }, partitions: 4)
    assert_equal partition_queues(4), worker.queues
    partition_queues(4).each { |queue| assert_equal 1, @bus.consumer_count(queue), queue }

    hello = announcements.next_where { |d| d.json['worker_id'] == worker.identity.worker_id }
    refute_nil hello, 'the first announcement'
    assert_equal [{ 'namespace' => @namespace, 'queue' => service_queue, 'callables' => [CALLABLE],
                    'partitions' => 4 }], hello.json['serves']

    results = @bus.results(@namespace)
    task_ids = Array.new(24) { SecureRandom.uuid }
    task_ids.each { |task_id| publish(task_id) }
    received = Array.new(24) { results.next&.json }.compact
    assert_equal task_ids.sort, received.map { |result| result['result'] }.sort
    assert_equal ['completed'], received.map { |result| result['status'] }.uniq
  end

  def test_the_queues_of_a_split_service_share_the_concurrency
    # One task's steps all wait in one queue, whose consumer's prefetch is
    # ceil(4 / 4) = 1: they run one at a time.
    one_task = TaskIdHandler.new(0.2)
    start_worker({ CALLABLE => one_task }, partitions: 4, concurrency: 4)
    results = @bus.results(@namespace)
    task_id = SecureRandom.uuid
    4.times { |index| publish(task_id, step: "s#{index}") }
    assert_equal 4, Array.new(4) { results.next }.compact.size
    assert_equal 1, one_task.most
  end

  def test_the_delivery_threads_bound_the_steps_running_at_once_over_every_queue
    # Four queues with a prefetch of ceil(2 / 4) = 1 each: four steps may be
    # delivered at once, but two threads run them.
    slow = TaskIdHandler.new(0.2)
    start_worker({ CALLABLE => slow }, partitions: 4, concurrency: 2)
    results = @bus.results(@namespace)
    16.times { publish(SecureRandom.uuid) }
    assert_equal 16, Array.new(16) { results.next }.compact.size
    assert_operator slow.most, :<=, 2
  end

  def test_a_single_queue_worker_is_refused_once_the_service_is_split
    declare(2)
    error = assert_raises(TaskerWorker::BrokerError) do
      @broker.declare_service(@channel, @namespace, SERVICE, [CALLABLE])
    end
    assert_equal "the steps of service 'svc' in namespace '#{@namespace}' are split over several queues (the " \
                 "exchange tasker.steps.#{@namespace}.svc exists): start this worker with TASKER_PARTITIONS set " \
                 "to the number the service's other workers use", error.message
    refute error.retryable?, 'the same settings cannot succeed later'
    assert @channel.open?, 'the check ran on a channel of its own'
    refute @bus.connection.queue_exists?(service_queue), 'no single queue'

    error = assert_raises(TaskerWorker::BrokerError) { start_worker(CALLABLE => TaskIdHandler.new) }
    assert_includes error.message, 'TASKER_PARTITIONS'
  end

  def test_a_service_split_after_it_had_one_queue_drains_that_queue
    assert_equal [service_queue], @broker.declare_service(@channel, @namespace, SERVICE, [CALLABLE]).map(&:name)
    # Bound to tasker.steps too, as earlier versions bound it.
    channel = @bus.connection.create_channel
    channel.queue_bind(service_queue, T::STEPS_EXCHANGE, routing_key: T.step_routing_key(@namespace, CALLABLE))
    channel.close
    leftover = SecureRandom.uuid
    publish(leftover)
    assert_equal [1], counts([service_queue], 1)

    assert_equal partition_queues(2) + [service_queue], declare(2).map(&:name)
    assert_match(/draining the service's former single queue #{Regexp.escape(service_queue)}/, @log.string)
    fresh = SecureRandom.uuid
    publish(fresh)
    assert_equal 1, counts(partition_queues(2), 1).sum, 'the new step is in a partition queue'
    assert_equal 1, @bus.message_count(service_queue), 'and not in the former queue'

    results = @bus.results(@namespace)
    start_worker({ CALLABLE => TaskIdHandler.new }, partitions: 2)
    assert_equal 1, @bus.consumer_count(service_queue), 'the worker consumes the former queue'
    assert_equal [leftover, fresh].sort, Array.new(2) { results.next&.json&.fetch('result') }.compact.sort
  end
end

class PartitionsConfigTest < Minitest::Test
  def test_settings_take_their_defaults_and_an_unknown_one_is_refused
    config = TaskerWorker::Config.new(service: 'billing', partitions: 2)
    assert_equal ['billing', 2, 32, "tasker-worker-#{Process.pid}"],
                 [config.service, config.partitions, config.concurrency, config.name]
    error = assert_raises(ArgumentError) { TaskerWorker::Config.new(service: 'billing', partition: 2) }
    assert_includes error.message, 'unknown setting partition; the settings are service, amqp_url'
  end

  def test_tasker_partitions_is_a_whole_number_within_the_maximum
    assert_equal 1, TaskerWorker::Config.from_env({}).partitions
    assert_equal 4, TaskerWorker::Config.from_env({ 'TASKER_PARTITIONS' => '4' }).partitions
    assert_equal 64, TaskerWorker::Config.from_env({ 'TASKER_PARTITIONS' => '64' }).partitions
    %w[0 65 x -2 1.5].each do |value|
      error = assert_raises(TaskerWorker::ConfigError) do
        TaskerWorker::Config.from_env({ 'TASKER_PARTITIONS' => value })
      end
      assert_includes error.message, %(TASKER_PARTITIONS="#{value}" is not a whole number from 1 to 64)
    end
    assert_raises(TaskerWorker::ConfigError) { TaskerWorker::Config.new(service: 'a', partitions: 65).check! }
    assert_nil TaskerWorker::Config.new(service: 'a', partitions: 64).check!
  end

  def test_each_consumer_of_a_split_service_takes_a_share_of_the_concurrency
    assert_equal 32, TaskerWorker::Config.new.prefetch
    assert_equal 8, TaskerWorker::Config.new(concurrency: 32, partitions: 4).prefetch
    assert_equal 11, TaskerWorker::Config.new(concurrency: 32, partitions: 3).prefetch
    assert_equal 1, TaskerWorker::Config.new(concurrency: 2, partitions: 4).prefetch
  end

  def test_the_announcement_names_the_partitions_only_when_the_steps_are_split
    identity = TaskerWorker::Identity.new(worker_id: 'w', service: 's', concurrency: 1, started_at: Time.now, every: 10)
    one = TaskerWorker::Identity::ServedNamespace.new('ns', 'tasker.steps.ns.s', ['C'], 1)
    four = TaskerWorker::Identity::ServedNamespace.new('ns', 'tasker.steps.ns.s', ['C'], 4)
    refute identity.announcement([one], leaving: false)['serves'].first.key?('partitions')
    assert_equal 4, identity.announcement([four], leaving: false)['serves'].first['partitions']
  end
end
