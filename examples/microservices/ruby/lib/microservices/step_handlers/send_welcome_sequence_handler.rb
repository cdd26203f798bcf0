# frozen_string_literal: true

module Microservices
  module StepHandlers
    # `send_welcome_sequence`: the convergence of the diamond. Sends the
    # welcome messages, composed from all three upstream results: a welcome
    # email always, a trial email when billing started a trial, and a push
    # notification when the user accepts them.
    class SendWelcomeSequenceHandler
      def initialize(latency = Latency.none)
        @latency = latency
      end

      def call(context)
        account = Account.of(context)
        billing = context.get_dependency_result('setup_billing_profile')
        preferences = context.get_dependency_result('initialize_preferences')
        messages = welcome_messages(account, billing, preferences)
        @latency.wait
        {
          'user_id' => account.user_id,
          'channels_used' => messages.map { |m| m['channel'] }.uniq,
          'messages_sent' => messages.size,
          'messages' => messages,
          'status' => 'sent',
          'sent_at' => Microservices.now,
          'language' => LANGUAGE
        }
      end

      private

      def welcome_messages(account, billing, preferences)
        name = account.name || account.email
        messages = [{ 'channel' => 'email', 'type' => 'welcome', 'recipient' => account.email,
                      'subject' => "Welcome to Tasker, #{name}!" }]
        trial_days = field(billing, 'trial_days')
        if trial_days.is_a?(Integer) && trial_days.positive?
          messages << { 'channel' => 'email', 'type' => 'trial_started', 'recipient' => account.email,
                        'subject' => "Your #{capitalize(account.plan)} trial has started" }
        end
        if field(field(field(preferences, 'preferences'), 'notifications'), 'push') == true
          messages << { 'channel' => 'push', 'type' => 'welcome',
                        'body' => "Your #{account.plan} account is ready. Let's get started!" }
        end
        messages
      end

      # `value[key]` of an object; nil for anything else, as JSON indexing.
      def field(value, key)
        value.is_a?(Hash) ? value[key] : nil
      end

      # The first letter upper-cased, the rest as it is (not String#capitalize,
      # which lower-cases the rest).
      def capitalize(text)
        text.empty? ? text : text[0].upcase + text[1..]
      end
    end
  end
end
