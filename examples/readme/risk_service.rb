# frozen_string_literal: true

require 'tasker_worker'

DISPOSABLE_DOMAINS = %w[mailinator.com guerrillamail.com].freeze

# Scores a signup from 0 (fine) to 100 (surely fraud).
class ScoreSignupHandler
  def call(context)
    email = context.get_input('email') # the task's input; a missing one fails the step
    country = context.get_input_or('country', 'unknown')
    user, _, domain = email.to_s.rpartition('@')
    if user.empty? || domain.empty?
      # No retry can fix this: the step fails and its descendants are blocked.
      raise TaskerWorker::PermanentError.new("#{email.inspect} is not an email address", error_code: 'INVALID_EMAIL')
    end

    score = DISPOSABLE_DOMAINS.include?(domain.downcase) ? 90 : 10
    { 'email' => email, 'country' => country, 'score' => score, 'review' => score >= 50 }
  end
end

telemetry = TaskerWorker::Telemetry.init('worker-risk') # spans only when OTEL_EXPORTER_OTLP_ENDPOINT is set
begin
  TaskerWorker::Worker.new(TaskerWorker::Config.from_env) # TASKER_SERVICE names the service
                      .namespace('risk')
                      .handler('Risk::ScoreSignupHandler', ScoreSignupHandler.new)
                      .run # until SIGTERM or SIGINT
ensure
  telemetry.shutdown
end
