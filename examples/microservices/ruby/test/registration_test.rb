# frozen_string_literal: true

require 'test_helper'
require 'fileutils'
require 'rbconfig'
require 'tmpdir'

# The user registration end to end, in Ruby only: the Rust coordinator
# (TASKER_BIN, with Redis) loads the template on a namespace of its own, and
# the runner's four usual services, as processes, serve the diamond's five
# steps; a client asks for registrations and reads their outcome.
class RegistrationTest < Minitest::Test
  REPO = File.expand_path('../../../..', __dir__)
  BIN = File.expand_path('../bin/microservices', __dir__)
  TEMPLATE = File.join(REPO, 'templates/microservices/user_registration.yaml')
  TASKER_BIN = ENV.fetch('TASKER_BIN', File.join(REPO, 'target/debug/tasker'))
  AMQP_URL = ENV.fetch('TASKER_AMQP_URL', 'amqp://guest:guest@127.0.0.1:5672/%2f')
  # For the test's own connection: Bunny.new takes one URL, so a cluster's first node.
  NODE_URL = TaskerWorker::Broker.urls(AMQP_URL).first
  REDIS_URL = ENV.fetch('TASKER_REDIS_URL', 'redis://127.0.0.1:6379')
  SERVICES = %w[user billing preferences notifications].freeze
  STEPS = %w[create_user_account setup_billing_profile initialize_preferences send_welcome_sequence
             update_user_status].freeze

  def setup
    skip "no coordinator binary at #{TASKER_BIN}; build it or set TASKER_BIN" unless File.executable?(TASKER_BIN)
    @namespace = "rbms_#{SecureRandom.hex(6)}"
    @dir = Dir.mktmpdir('tasker-registration')
    @pids = {}
    @connection = Bunny.new(NODE_URL, logger: Logger.new(File::NULL), automatically_recover: false).tap(&:start)
  end

  def teardown
    @client&.close
    @pids&.each_key { |pid| stop(pid) }
    delete_queues if @connection
    @connection&.close
    FileUtils.rm_rf(@dir) if @dir
  end

  def delete_queues
    channel = @connection.create_channel
    queues = [TaskerWorker::Topology.request_queue(@namespace), TaskerWorker::Topology.result_queue(@namespace)] +
             SERVICES.map { |s| TaskerWorker::Topology.service_queue(@namespace, s) }
    queues.each { |queue| channel.queue_delete(queue) }
    channel.exchange_delete(TaskerWorker::Topology.namespace_steps_exchange(@namespace))
  rescue Bunny::Exception => e
    warn "queues of #{@namespace} not deleted: #{e.message}"
  end

  def spawn_process(name, env, *command)
    log = File.join(@dir, "#{name}.log")
    pid = Process.spawn(env, *command, %i[out err] => log, unsetenv_others: true)
    @pids[pid] = log
    pid
  end

  # The environment of the processes: this one's, without the settings of
  # Tasker and OpenTelemetry that would point them elsewhere.
  def environment(extra = {})
    ENV.to_h.reject { |k, _| k.start_with?('TASKER_', 'OTEL_') }
       .merge('TASKER_AMQP_URL' => AMQP_URL, 'TASKER_REDIS_URL' => REDIS_URL, 'RUST_LOG' => 'info').merge(extra)
  end

  def start_coordinator
    templates = File.join(@dir, 'templates')
    FileUtils.mkdir_p(templates)
    yaml = File.read(TEMPLATE).sub(/^namespace_name: microservices$/, "namespace_name: #{@namespace}")
    File.write(File.join(templates, 'user_registration.yaml'), yaml)
    pid = spawn_process('coordinator', environment, TASKER_BIN, 'coordinator', '--templates', templates)
    wait_for(pid, 'the coordinator consuming its requests') do
      consumers(TaskerWorker::Topology.request_queue(@namespace)).positive?
    end
  end

  # Starts the four services; each is ready once it logs that it is.
  def start_services(*flags)
    SERVICES.each do |service|
      pid = spawn_process(service, environment, RbConfig.ruby, BIN, service, '--namespace', @namespace,
                          '--latency-ms', '0..5', '--shutdown-grace', '5', *flags)
      wait_for(pid, "the #{service} service ready") { File.read(@pids[pid]).include?('ready') }
    end
  end

  def consumers(queue)
    channel = @connection.create_channel
    channel.queue_declare(queue, passive: true).consumer_count
  rescue Bunny::NotFound
    0
  ensure
    channel.close if channel&.open?
  end

  def wait_for(pid, what, timeout: 30)
    deadline = monotonic + timeout
    until yield
      flunk "#{what}: the process exited: #{File.read(@pids[pid])}" if Process.wait(pid, Process::WNOHANG)
      flunk "timed out waiting for #{what}: #{File.read(@pids[pid])}" if monotonic > deadline
      sleep 0.1
    end
  end

  def stop(pid, timeout: 20)
    Process.kill('TERM', pid)
    deadline = monotonic + timeout
    until (status = Process.wait2(pid, Process::WNOHANG)&.last)
      if monotonic > deadline
        Process.kill('KILL', pid)
        Process.wait(pid)
        return nil
      end
      sleep 0.1
    end
    status
  rescue Errno::ESRCH, Errno::ECHILD
    nil
  end

  def monotonic
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end

  def register(user_info)
    @client ||= TaskerWorker::Client.connect(AMQP_URL, logger: Logger.new(File::NULL))
    @client.run_task(@namespace, 'user_registration', { 'user_info' => user_info }, timeout: 60)
  end

  def test_a_registration_runs_through_the_diamond_in_ruby
    start_coordinator
    start_services
    finished = register({ 'email' => 'New.User@Example.com', 'name' => 'Jane Developer', 'plan' => 'pro',
                          'source' => 'signup_form' })
    assert_instance_of TaskerWorker::TaskFinished, finished
    assert_equal 'complete', finished.status, finished.raw.inspect
    STEPS.each do |step|
      report = finished.step(step)
      assert_equal ['completed', 1], [report.state, report.attempts], step
      assert_equal 'ruby', report.result['language'], step
    end
    account = finished.step('create_user_account').result
    assert_equal ['new.user@example.com', 'pro', 'created'], account.values_at('email', 'plan', 'status')
    user_id = account['user_id']
    assert_equal [user_id, 14, 'trialing'],
                 finished.step('setup_billing_profile').result.values_at('user_id', 'trial_days', 'billing_status')
    assert finished.step('initialize_preferences').result['preferences']['notifications']['push']
    welcome = finished.step('send_welcome_sequence').result
    assert_equal [user_id, %w[email push], 3, 'sent'],
                 welcome.values_at('user_id', 'channels_used', 'messages_sent', 'status')
    assert_equal [user_id, 'active', true],
                 finished.step('update_user_status').result.values_at('user_id', 'status', 'welcome_sent')

    refused = register({ 'email' => 'x@mailinator.com' })
    assert_equal 'failed', refused.status
    failure = refused.step('create_user_account')
    assert_equal ['failed', 1, 'BLOCKED_EMAIL_DOMAIN', false],
                 [failure.state, failure.attempts, failure.error.code, failure.error.retryable]

    # A graceful stop: each service drains and exits 0.
    @pids.keys.each_with_index do |pid, i|
      next if i.zero? # the coordinator, stopped at teardown

      status = stop(pid)
      assert status&.success?, "#{@pids[pid]}: #{File.read(@pids[pid])}"
      @pids.delete(pid)
    end
  end

  def test_billing_down_fails_the_registration_after_its_retries
    start_coordinator
    start_services('--billing-down')
    finished = register({ 'email' => 'a@example.com', 'plan' => 'free' })
    assert_equal 'failed', finished.status, finished.raw.inspect
    billing = finished.step('setup_billing_profile')
    assert_equal ['failed', 3, 'BILLING_SERVICE_UNAVAILABLE', true],
                 [billing.state, billing.attempts, billing.error.code, billing.error.retryable]
    # Preferences ran on its own; what depends on billing never did.
    assert_equal 'completed', finished.step('initialize_preferences').state
    refute_equal 'completed', finished.step('send_welcome_sequence').state
  end
end
