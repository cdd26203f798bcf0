# frozen_string_literal: true

require 'optparse'
require_relative '../tasker_example_microservices'

module Microservices
  # `bin/microservices <service>`: runs that service's worker for the
  # `microservices` namespace (or `--namespace`), configured from the
  # environment (`TASKER_AMQP_URL`, `TASKER_CONCURRENCY`,
  # `TASKER_HEALTH_ADDR`, `OTEL_*`...), until SIGTERM or SIGINT. Its spans'
  # service is `worker-microservices-<service>`.
  module CLI
    TRUTHY = %w[y yes t true on 1].freeze
    FALSY = ['n', 'no', 'f', 'false', 'off', '0', ''].freeze

    # What the command line asks for.
    Options = Struct.new(:service, :namespace, :latency, :billing_down, :shutdown_grace, keyword_init: true)

    # A command line that cannot be used; the message says why.
    class UsageError < StandardError
    end

    module_function

    # `true`/`false` as flags and variables write them (yes, on, 1...).
    # Raises UsageError for anything else.
    def boolish(text)
      value = text.to_s.strip.downcase
      return true if TRUTHY.include?(value)
      return false if FALSY.include?(value)

      raise UsageError, "#{text.inspect} is not true or false; write true or false"
    end

    # The options of `argv`, with defaults from `env`. Raises UsageError.
    def parse(argv, env = ENV)
      options = Options.new(namespace: NAMESPACE, shutdown_grace: 30.0,
                            billing_down: boolish(env.fetch('TASKER_DEMO_BILLING_DOWN', 'false')))
      options.latency = latency(env.fetch('TASKER_DEMO_LATENCY_MS', '40..120'))
      rest = parser(options).parse(argv)
      raise UsageError, "give one service: #{Services::NAMES.join(', ')}" unless rest.size == 1
      unless Services::NAMES.include?(rest.first)
        raise UsageError, "#{rest.first.inspect} is not a service; pass one of #{Services::NAMES.join(', ')}"
      end

      options.service = rest.first
      options
    rescue OptionParser::ParseError => e
      raise UsageError, e.message
    end

    def parser(options)
      OptionParser.new do |o|
        o.banner = "usage: microservices SERVICE [options]\n\nRuns a service of the #{NAMESPACE} namespace's " \
                   "user registration; SERVICE is one of #{Services::NAMES.join(', ')}.\n\n"
        o.on('--namespace NS', "the namespace to serve (default #{NAMESPACE})") { |v| options.namespace = v }
        o.on('--latency-ms MIN..MAX', 'simulated service latency in milliseconds ' \
                                      '(TASKER_DEMO_LATENCY_MS, default 40..120)') { |v| options.latency = latency(v) }
        o.on('--billing-down [BOOL]', 'every billing attempt fails retryably with BILLING_SERVICE_UNAVAILABLE ' \
                                      '(TASKER_DEMO_BILLING_DOWN)') do |v|
          options.billing_down = v.nil? || boolish(v)
        end
        o.on('--shutdown-grace SECONDS', Float, 'seconds in-flight steps get to finish on shutdown (default 30)') do |v|
          options.shutdown_grace = v
        end
        o.on('-h', '--help', 'this help') do
          puts o
          exit
        end
      end
    end

    def latency(text)
      Latency.parse(text)
    rescue ArgumentError => e
      raise UsageError, e.message
    end

    # The worker `options` describe, configured from `env`.
    def worker(options, env = ENV)
      config = TaskerWorker::Config.from_env(env, shutdown_grace: options.shutdown_grace,
                                                  name: "#{NAMESPACE}-#{options.service}-ruby-#{Process.pid}")
      # The command line names the service, whatever TASKER_SERVICE says.
      config.service = options.service
      worker = TaskerWorker::Worker.new(config).namespace(options.namespace)
      Services.register(worker, options.service, latency: options.latency, billing_down: options.billing_down)
    end

    # Runs the command line `argv`; returns the exit status.
    def main(argv, env = ENV)
      options = parse(argv, env)
      telemetry = TaskerWorker::Telemetry.init("worker-#{NAMESPACE}-#{options.service}", env:)
      begin
        worker(options, env).run
      ensure
        telemetry.shutdown
      end
      0
    rescue UsageError, TaskerWorker::TaskerError => e
      warn "error: #{e.message}"
      2
    end
  end
end
