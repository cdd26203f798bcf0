# frozen_string_literal: true

# The Ruby SDK of Tasker's workers: runs step handlers for the steps a Tasker
# coordinator publishes over RabbitMQ (see docs/protocol.md).
module TaskerWorker
end

require_relative 'tasker_worker/version'
require_relative 'tasker_worker/topology'
require_relative 'tasker_worker/errors'
require_relative 'tasker_worker/messages'
require_relative 'tasker_worker/context'
require_relative 'tasker_worker/handler'
require_relative 'tasker_worker/secrets'
require_relative 'tasker_worker/config'
require_relative 'tasker_worker/broker'
require_relative 'tasker_worker/announce'
require_relative 'tasker_worker/recent_results'
require_relative 'tasker_worker/runner'
require_relative 'tasker_worker/telemetry'
require_relative 'tasker_worker/metrics'
require_relative 'tasker_worker/delivery_span'
require_relative 'tasker_worker/health'
require_relative 'tasker_worker/health_server'
require_relative 'tasker_worker/worker'
require_relative 'tasker_worker/replies'
require_relative 'tasker_worker/client'
