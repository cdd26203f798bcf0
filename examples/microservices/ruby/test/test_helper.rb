# frozen_string_literal: true

require 'minitest/autorun'
require 'json'
require 'logger'
require 'securerandom'
require 'tasker_example_microservices'

# A step context as a worker would give the handler of `step`, with the
# task's `context` and the `dependency_results` its message carries.
def step_context(step, context: {}, dependency_results: {}, task_id: SecureRandom.uuid)
  ready = TaskerWorker::Messages::StepReady.new(
    task_id:, namespace: Microservices::NAMESPACE, task_name: 'user_registration', task_version: '1.0.0',
    step:, callable: "Microservices::StepHandlers::#{step}", attempt: 1, max_attempts: 3, timeout_seconds: nil,
    context:, initialization: {}, dependencies: dependency_results.keys.sort, dependency_results:
  )
  TaskerWorker::StepContext.new(ready)
end

# The result of `create_user_account` as the handlers after it read it.
def account(plan: 'pro', name: 'Jane Developer', email: 'new.user@example.com')
  { 'user_id' => 'usr_0123456789abcdef01234567', 'email' => email, 'name' => name, 'plan' => plan,
    'status' => 'created', 'language' => 'ruby' }
end
