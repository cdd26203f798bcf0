# frozen_string_literal: true

require 'securerandom'

module Microservices
  # The step handlers of the user registration, each named as its template
  # `callable`.
  module StepHandlers
    # `create_user_account`: creates the account in the user service.
    # Validates the email: required, well-formed, and not from a disposable
    # domain; each refusal is permanent.
    class CreateUserAccountHandler
      # The UUID namespace of OIDs, from which user ids are derived.
      OID_NAMESPACE = '6ba7b812-9dad-11d1-80b4-00c04fd430c8'

      def initialize(latency = Latency.none)
        @latency = latency
      end

      def call(context)
        user_info = context.get_input_or('user_info', {})
        email, name, plan = %w[email name plan].map { |key| string(user_info, key) }
        email ||= ''
        if email.strip.empty?
          raise TaskerWorker::PermanentError.new('Email address is required', error_code: 'MISSING_EMAIL')
        end
        unless CreateUserAccountHandler.email?(email)
          raise TaskerWorker::PermanentError.new("Invalid email format: #{email}", error_code: 'INVALID_EMAIL')
        end

        domain = email.rpartition('@').last.downcase
        if BLOCKED_DOMAINS.include?(domain)
          raise TaskerWorker::PermanentError.new("Disposable email addresses are not allowed: #{domain}",
                                                 error_code: 'BLOCKED_EMAIL_DOMAIN')
        end

        @latency.wait
        {
          # Derived from the step's idempotency key, so that a repeated run
          # finds the same account instead of creating a second one.
          'user_id' => "usr_#{user_key(context)[0, 24]}",
          'email' => email.downcase,
          'name' => name,
          'plan' => plan || 'free',
          'status' => 'created',
          'email_verified' => false,
          'verification_token' => SecureRandom.uuid.delete('-'),
          'created_at' => Microservices.now,
          'language' => LANGUAGE
        }
      end

      # `local@domain.tld`, with no spaces and one `@`.
      def self.email?(email)
        local, at, domain = email.partition('@')
        host, dot, tld = domain.rpartition('.')
        return false if at.empty? || dot.empty?

        [local, host, tld].all? { |part| !part.empty? && !part.match?(/[[:space:]@]/) }
      end

      private

      def user_key(context)
        TaskerWorker::Messages.uuid_v5(OID_NAMESPACE, context.idempotency_key).delete('-')
      end

      # The text `key` of the `user_info` input, nil when absent or null.
      # Raises TaskerWorker::PermanentError (`invalid_input`) when the input
      # is not an object or the value is not a string.
      def string(user_info, key)
        unless user_info.is_a?(Hash)
          raise TaskerWorker::PermanentError.new(
            "input \"user_info\" is malformed: it is #{TaskerWorker::Messages.describe(user_info)}, not an object",
            error_code: TaskerWorker::ErrorCode::INVALID_INPUT
          )
        end
        value = user_info[key]
        return value if value.nil? || value.is_a?(String)

        raise TaskerWorker::PermanentError.new(
          "input \"user_info\" is malformed: field `#{key}` is #{TaskerWorker::Messages.describe(value)}, not a string",
          error_code: TaskerWorker::ErrorCode::INVALID_INPUT
        )
      end
    end
  end
end
