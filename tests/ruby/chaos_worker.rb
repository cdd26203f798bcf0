# frozen_string_literal: true

# The chaos suite's Ruby worker: a service of its own that serves some of
# the chaos namespace's callables, beside the Rust chaos workers, so that the
# suite's faults also strike a namespace split into services in several
# languages (tests/python/chaos_worker.py is its Python twin).
#
# Each handler waits 5 to 20 ms and returns {"step" => .., "nonce" => ..}:
# the nonce makes a second run's result differ from the first's, so the
# suite sees any result that changes after it was recorded. Unlike the Rust
# chaos workers it does not count its runs in Redis: the suite checks its
# joins in the tasks' own state.
#
#   ruby tests/ruby/chaos_worker.rb --namespace NS --service S CALLABLE...
#
# The SDK comes from worker/ruby/lib of this repository, found from this
# file, so the script runs from any directory. 64 steps run at once, one
# thread each: the handlers mostly sleep, which Ruby's threads do in
# parallel. SIGTERM or SIGINT drains the worker (5 s of grace).

$LOAD_PATH.unshift(File.expand_path('../../worker/ruby/lib', __dir__))

require 'optparse'
require 'securerandom'
require 'tasker_worker'

# Waits 5 to 20 ms, then answers with the step's name and a fresh nonce.
class Chaos
  def call(context)
    sleep(rand(0.005..0.020))
    { 'step' => context.step_name, 'nonce' => SecureRandom.random_number(2**63) }
  end
end

def arguments(argv)
  options = {}
  parser = OptionParser.new do |o|
    o.banner = 'usage: ruby tests/ruby/chaos_worker.rb --namespace NS --service S CALLABLE...'
    o.on('--namespace NS', 'the namespace to serve') { |v| options[:namespace] = v }
    o.on('--service S', 'the service this worker is part of') { |v| options[:service] = v }
  end
  options[:callables] = parser.parse(argv)
  missing = %i[namespace service].reject { |k| options[k] }
  missing << :callables if options[:callables].empty?
  abort("error: give #{missing.join(' and ')}\n#{parser.banner}") unless missing.empty?
  options
rescue OptionParser::ParseError => e
  abort("error: #{e.message}\n#{parser.banner}")
end

def main(argv)
  options = arguments(argv)
  telemetry = TaskerWorker::Telemetry.init("chaos-#{options[:service]}")
  config = TaskerWorker::Config.from_env(concurrency: 64, shutdown_grace: 5.0)
  config.service = options[:service]
  worker = TaskerWorker::Worker.new(config).namespace(options[:namespace])
  options[:callables].each { |callable| worker.handler(callable, Chaos.new) }
  worker.run
rescue TaskerWorker::TaskerError => e
  abort("error: #{e.message}")
ensure
  telemetry&.shutdown
end

main(ARGV)
