# frozen_string_literal: true

module Microservices
  # The simulated latency of a service call: a number of milliseconds picked
  # at random from `low` (included) to `high` (excluded), as the Rust
  # example's `Latency`. Zero for tests and benchmarks; a little for demos,
  # so that the parallel branches show. An empty range waits not at all.
  Latency = Struct.new(:low, :high) do
    # No latency.
    def self.none
      new(0, 0)
    end

    # From `MIN..MAX` milliseconds, as `TASKER_DEMO_LATENCY_MS` writes it.
    # Raises ArgumentError saying how to write it.
    def self.parse(text)
      low, sep, high = text.to_s.partition('..')
      raise ArgumentError, "#{text.inspect} is not MIN..MAX, for example 40..120" if sep.empty?

      bounds = [low, high].map do |part|
        unless /\A\d+\z/.match?(part.strip)
          raise ArgumentError, "#{part.inspect} in #{text.inspect} is not a number of milliseconds"
        end

        Integer(part.strip, 10)
      end
      new(*bounds)
    end

    # Sleeps as long as one call to the service takes.
    def wait
      return if high <= low

      sleep(rand(low...high) / 1000.0)
    end

    def to_s
      "#{low}..#{high}"
    end
  end
end
