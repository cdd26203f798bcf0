# frozen_string_literal: true

Gem::Specification.new do |spec|
  spec.name = 'tasker_example_microservices'
  spec.version = '0.1.0'
  spec.summary = "The microservices namespace's user registration, in Ruby, for Tasker's workflow engine"
  spec.description = 'The five step handlers of the user-registration diamond (create_user_account, ' \
                     'setup_billing_profile, initialize_preferences, send_welcome_sequence, update_user_status) ' \
                     'and a runner for each service that serves them.'
  spec.authors = ['Tasker']
  spec.license = 'Apache-2.0'
  spec.files = Dir['lib/**/*.rb'] + Dir['bin/*'] + ['README.md']
  spec.bindir = 'bin'
  spec.executables = ['microservices']
  spec.require_paths = ['lib']
  spec.required_ruby_version = '>= 3.1'
  spec.add_dependency 'tasker_worker', '~> 0.1'
  spec.add_development_dependency 'minitest', '~> 5.15'
  spec.add_development_dependency 'rake', '~> 13.0'
  spec.metadata['rubygems_mfa_required'] = 'true'
end
