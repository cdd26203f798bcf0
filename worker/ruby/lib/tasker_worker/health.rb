# frozen_string_literal: true

require 'socket'

module TaskerWorker
  # Whether the worker is connected to what it needs, logged once per change,
  # and served over HTTP for probes, as the other SDKs serve it:
  #
  # - `GET /healthz`: 200 while the process runs (liveness);
  # - `GET /readyz`: 200 when every dependency is connected, 503 otherwise
  #   (readiness; a worker is not ready while it has no broker connection);
  # - `GET /metrics`: the process's Metrics, in the Prometheus text format.
  #
  # Both health bodies are plain text, one `name: up|down` line per dependency.
  class Health
    RABBITMQ = 'rabbitmq'

    # `dependencies` start unknown (reported down) until the first attempt
    # to connect, so that an outage at start is logged like any other.
    def initialize(*dependencies, logger: nil)
      @state = dependencies.to_h { |name| [name, nil] }
      @logger = logger
      @mutex = Mutex.new
    end

    # Records that `dependency` works; logs only when it was down.
    def up(dependency)
      was = swap(dependency, true)
      @logger&.info("connected (dependency=#{dependency})") if was == false
    end

    # Records that `dependency` failed; logs once per outage.
    def down(dependency, error)
      was = swap(dependency, false)
      return if was == false

      @logger&.warn("lost connection; retrying until it is back (dependency=#{dependency} error=#{error})")
    end

    # Whether every dependency is up.
    def ready?
      @mutex.synchronize { @state.values.all?(true) }
    end

    # One `name: up|down` line per dependency, sorted by name.
    def report
      @mutex.synchronize do
        @state.sort.map { |name, up| "#{name}: #{up ? 'up' : 'down'}\n" }.join
      end
    end

    private

    def swap(dependency, value)
      @mutex.synchronize do
        was = @state[dependency]
        @state[dependency] = value
        was
      end
    end
  end
end
