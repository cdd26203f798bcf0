# frozen_string_literal: true

module Microservices
  module StepHandlers
    # `initialize_preferences`: creates the user's preferences in the
    # preferences service, with notification channels by plan; the request
    # may override them, and the language, under `preferences`.
    class InitializePreferencesHandler
      def initialize(latency = Latency.none)
        @latency = latency
      end

      def call(context)
        account = Account.of(context)
        notifications = { 'email' => true, 'push' => account.plan != 'free', 'sms' => false }
        overrides = context.get_input_or('preferences', nil)
        overrides = {} unless overrides.is_a?(Hash)
        notifications.merge!(overrides['notifications']) if overrides['notifications'].is_a?(Hash)
        @latency.wait
        {
          'user_id' => account.user_id,
          'preferences' => {
            'notifications' => notifications,
            'language' => overrides.fetch('language', 'en'),
            'theme' => 'light'
          },
          'created_at' => Microservices.now,
          'language' => LANGUAGE
        }
      end
    end
  end
end
