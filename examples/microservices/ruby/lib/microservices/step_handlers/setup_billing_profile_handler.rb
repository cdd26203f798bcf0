# frozen_string_literal: true

module Microservices
  module StepHandlers
    # `setup_billing_profile`: sets up the billing profile in the billing
    # service; paid plans start with a trial. While the billing service is
    # down (`billing_down`), every attempt fails retryably, as during an
    # outage, and the step's retries play out.
    class SetupBillingProfileHandler
      # Days of trial by plan; other plans have none.
      TRIAL_DAYS = { 'pro' => 14, 'enterprise' => 30 }.freeze

      def initialize(latency = Latency.none, billing_down: false)
        @latency = latency
        @billing_down = billing_down
      end

      def call(context)
        account = Account.of(context)
        trial_days = TRIAL_DAYS.fetch(account.plan, 0)
        @latency.wait
        if @billing_down
          raise TaskerWorker::RetryableError.new(
            'the billing service did not answer; the step is retried with backoff',
            error_code: 'BILLING_SERVICE_UNAVAILABLE'
          )
        end

        {
          'billing_id' => "bill_#{account.user_id[4..]}",
          'user_id' => account.user_id,
          'plan' => account.plan,
          'trial_days' => trial_days,
          'billing_status' => trial_days.positive? ? 'trialing' : 'active',
          'created_at' => Microservices.now,
          'language' => LANGUAGE
        }
      end
    end
  end
end
