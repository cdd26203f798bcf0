# frozen_string_literal: true

require_relative 'lib/tasker_worker/version'

Gem::Specification.new do |spec|
  spec.name = 'tasker_worker'
  spec.version = TaskerWorker::VERSION
  spec.summary = "Workers for Tasker's workflow engine: run step handlers over RabbitMQ"
  spec.description = 'Consumes the step-ready messages of a Tasker service, runs their handlers, ' \
                     'and publishes their results, as docs/protocol.md describes.'
  spec.authors = ['Tasker']
  spec.license = 'Apache-2.0'
  spec.files = Dir['lib/**/*.rb'] + ['README.md']
  spec.require_paths = ['lib']
  spec.required_ruby_version = '>= 3.1'
  spec.add_dependency 'bunny', '~> 2.19'
  spec.add_development_dependency 'minitest', '~> 5.15'
  spec.add_development_dependency 'rake', '~> 13.0'
  spec.metadata['rubygems_mfa_required'] = 'true'
end
