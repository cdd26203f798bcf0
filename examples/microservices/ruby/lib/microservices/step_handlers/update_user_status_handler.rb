# frozen_string_literal: true

module Microservices
  module StepHandlers
    # `update_user_status`: marks the user active in the user service.
    class UpdateUserStatusHandler
      def initialize(latency = Latency.none)
        @latency = latency
      end

      def call(context)
        account = Account.of(context)
        welcome = context.get_dependency_result('send_welcome_sequence')
        @latency.wait
        {
          'user_id' => account.user_id,
          'status' => 'active',
          'welcome_sent' => welcome.is_a?(Hash) && welcome['status'] == 'sent',
          'activated_at' => Microservices.now,
          'language' => LANGUAGE
        }
      end
    end
  end
end
