# frozen_string_literal: true

require 'test_helper'
require 'open3'
require 'rbconfig'
require 'tmpdir'
require 'microservices/cli'

# The runner's command line, and which handlers each service runs.
class CLITest < Minitest::Test
  CLI = Microservices::CLI
  BIN = File.expand_path('../bin/microservices', __dir__)

  def test_a_service_and_its_options
    options = CLI.parse(%w[billing --namespace ns1 --latency-ms 0..5 --billing-down --shutdown-grace 2], {})
    assert_equal ['billing', 'ns1', [0, 5], true, 2.0],
                 [options.service, options.namespace, options.latency.to_a, options.billing_down,
                  options.shutdown_grace]
    defaults = CLI.parse(['user'], {})
    assert_equal ['microservices', [40, 120], false, 30.0],
                 [defaults.namespace, defaults.latency.to_a, defaults.billing_down, defaults.shutdown_grace]
    assert_equal [false, true], [CLI.parse(%w[billing --billing-down=off], {}).billing_down,
                                 CLI.parse(%w[billing --billing-down yes], {}).billing_down]
  end

  def test_the_environment_gives_the_defaults
    options = CLI.parse(['billing'], { 'TASKER_DEMO_LATENCY_MS' => '1..2', 'TASKER_DEMO_BILLING_DOWN' => 'on' })
    assert_equal [[1, 2], true], [options.latency.to_a, options.billing_down]
  end

  def test_a_command_line_it_cannot_use_says_why
    { [] => /give one service/, %w[bill] => /"bill" is not a service; pass one of user, accounts, status, billing/,
      %w[user billing] => /give one service/, %w[user --latency-ms 40] => /not MIN\.\.MAX/,
      %w[user --billing-down=maybe] => /not true or false/, %w[user --frobnicate] => /invalid option/ }
      .each do |argv, message|
      error = assert_raises(CLI::UsageError, argv.inspect) { CLI.parse(argv, {}) }
      assert_match message, error.message
    end
  end

  def test_each_service_serves_its_callables
    prefix = 'Microservices::StepHandlers::'
    expected = {
      'user' => %w[CreateUserAccountHandler UpdateUserStatusHandler], 'accounts' => %w[CreateUserAccountHandler],
      'status' => %w[UpdateUserStatusHandler], 'billing' => %w[SetupBillingProfileHandler],
      'preferences' => %w[InitializePreferencesHandler], 'notifications' => %w[SendWelcomeSequenceHandler]
    }
    expected.each do |service, names|
      assert_equal names.map { |n| prefix + n }, Microservices::Services.callables(service)
    end
    # The usual four serve each of the template's five callables once.
    template = File.read(File.expand_path('../../../../templates/microservices/user_registration.yaml', __dir__))
    callables = template.scan(/callable: (\S+)/).flatten
    assert_equal callables.sort, %w[user billing preferences notifications]
      .flat_map { |s| Microservices::Services.callables(s) }.sort
  end

  def test_the_worker_serves_the_service_the_command_line_names
    options = CLI.parse(%w[status --namespace ns2], {})
    worker = CLI.worker(options, { 'TASKER_SERVICE' => 'other' })
    assert_equal 'status', worker.config.service
    assert_equal ['tasker.steps.ns2.status'], worker.queues
  end

  def test_the_runner_works_from_any_directory
    Dir.mktmpdir do |dir|
      out, status = Open3.capture2e(RbConfig.ruby, BIN, 'bill', chdir: dir)
      assert_equal 2, status.exitstatus, out
      assert_includes out, 'error: "bill" is not a service'
      out, status = Open3.capture2e(RbConfig.ruby, BIN, '--help', chdir: dir)
      assert status.success?, out
      assert_includes out, 'user, accounts, status, billing, preferences, notifications'
    end
  end
end
