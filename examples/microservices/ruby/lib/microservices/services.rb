# frozen_string_literal: true

module Microservices
  # The services of the `microservices` namespace, each owned by its own
  # team, as the Rust example's `Service`: each serves some of the five
  # callables, and several processes, in several languages, serve the
  # namespace together. `accounts` and `status` split `user`'s two handlers.
  module Services
    CREATE_USER_ACCOUNT = StepHandlers::CreateUserAccountHandler
    UPDATE_USER_STATUS = StepHandlers::UpdateUserStatusHandler

    # The handler classes of each service, by service name.
    HANDLERS = {
      'user' => [CREATE_USER_ACCOUNT, UPDATE_USER_STATUS],
      'accounts' => [CREATE_USER_ACCOUNT],
      'status' => [UPDATE_USER_STATUS],
      'billing' => [StepHandlers::SetupBillingProfileHandler],
      'preferences' => [StepHandlers::InitializePreferencesHandler],
      'notifications' => [StepHandlers::SendWelcomeSequenceHandler]
    }.freeze

    # Every service's name.
    NAMES = HANDLERS.keys.freeze

    module_function

    # The template `callable`s `service` serves: its handlers' class names.
    def callables(service)
      handlers(service).map(&:name)
    end

    # Registers `service`'s handlers on `worker`, each under its template
    # `callable`. Raises ArgumentError for a service that is not one of
    # NAMES.
    def register(worker, service, latency: Latency.none, billing_down: false)
      handlers(service).each do |handler|
        instance = if handler == StepHandlers::SetupBillingProfileHandler
                     handler.new(latency, billing_down:)
                   else
                     handler.new(latency)
                   end
        worker.handler(handler.name, instance)
      end
      worker
    end

    def handlers(service)
      HANDLERS.fetch(service) do
        raise ArgumentError, "#{service.inspect} is not a service; pass one of #{NAMES.join(', ')}"
      end
    end
  end
end
