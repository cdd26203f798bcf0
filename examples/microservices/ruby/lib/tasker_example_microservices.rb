# frozen_string_literal: true

require 'tasker_worker'

# The `microservices` namespace's user registration in Ruby: the five
# handlers of the seed's diamond, with the validation, error codes and
# results of the Rust handlers (examples/microservices/src/lib.rs), each
# result also naming its `language`. Each simulates its service (no external
# calls) with a short, configurable latency.
#
#   create_user_account ─┬─▶ setup_billing_profile ──┬─▶ send_welcome_sequence ─▶ update_user_status
#                        └─▶ initialize_preferences ─┘
#
# The layout: microservices/account.rb reads the account the first step
# made; microservices/latency.rb is the simulated latency;
# microservices/step_handlers/ holds one handler per file, each named as its
# template `callable`; microservices/services.rb says which service runs
# which handlers; microservices/cli.rb is the runner behind bin/microservices.
module Microservices
  # The namespace these handlers serve.
  NAMESPACE = 'microservices'

  # The language these handlers are written in, which each result names, as
  # the other languages' versions of them do, so that a task served by
  # several languages shows which ran each step.
  LANGUAGE = 'ruby'

  # Domains of disposable mailboxes, which cannot register.
  BLOCKED_DOMAINS = %w[tempmail.com throwaway.email mailinator.com].freeze

  # The current time as the Rust handlers write it (RFC 3339, UTC).
  def self.now
    Time.now.utc.strftime('%Y-%m-%dT%H:%M:%S.%6N+00:00')
  end
end

require_relative 'microservices/latency'
require_relative 'microservices/account'
require_relative 'microservices/step_handlers/create_user_account_handler'
require_relative 'microservices/step_handlers/setup_billing_profile_handler'
require_relative 'microservices/step_handlers/initialize_preferences_handler'
require_relative 'microservices/step_handlers/send_welcome_sequence_handler'
require_relative 'microservices/step_handlers/update_user_status_handler'
require_relative 'microservices/services'
