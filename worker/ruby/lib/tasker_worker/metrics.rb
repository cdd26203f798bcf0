# frozen_string_literal: true

module TaskerWorker
  # Prometheus metrics of a worker, served on `/metrics` beside the health
  # endpoints in the Prometheus text format (0.0.4): the same families and
  # labels as the Rust and Python workers record, so one dashboard shows
  # every service. Labels are namespaces, template names, step names and
  # fixed codes, bounded by the templates, never a task id.
  #
  # - `tasker_step_duration_seconds` (histogram; namespace, template, step):
  #   how long step handlers ran;
  # - `tasker_queue_wait_seconds` (histogram; namespace, template, step):
  #   from a step's publish (its `x-tasker-published-at-ms` header) to its
  #   handler's start;
  # - `tasker_dead_letters_total` (counter; queue, reason): messages moved
  #   to the dead-letter queue, by the queue they came from.
  #
  # A few lines of its own rather than a client library: three families
  # need no more, and Debian packages none.
  class Metrics
    CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'
    # 0.5 ms to about 35 min, as the Rust worker's buckets.
    BUCKETS = Array.new(22) { |i| 0.0005 * (2**i) }.freeze
    STEP_LABELS = %i[namespace template step].freeze

    # A counter per set of label values.
    class Counter
      attr_reader :name, :help, :labels

      def initialize(name, help, labels)
        @name = name
        @help = help
        @labels = labels
        @values = Hash.new(0)
        @mutex = Mutex.new
      end

      # Adds `by` to the counter of `labels` (a Hash of every label).
      def inc(by = 1, **labels)
        key = Metrics.key(@labels, labels)
        @mutex.synchronize { @values[key] += by }
      end

      # The count of `labels`, 0 if never counted.
      def value(**labels)
        @mutex.synchronize { @values[Metrics.key(@labels, labels)] }
      end

      def render
        samples = @mutex.synchronize { @values.dup }
        lines = ["# HELP #{@name}_total #{@help}", "# TYPE #{@name}_total counter"]
        samples.sort.each do |key, value|
          lines << "#{@name}_total#{Metrics.label_text(@labels, key)} #{Metrics.number(value)}"
        end
        lines
      end
    end

    # A histogram per set of label values, with fixed buckets.
    class Histogram
      attr_reader :name, :help, :labels

      def initialize(name, help, labels, buckets: BUCKETS)
        @name = name
        @help = help
        @labels = labels
        @buckets = buckets
        @series = {}
        @mutex = Mutex.new
      end

      # Records one observation of `value` (seconds) for `labels`.
      def observe(value, **labels)
        key = Metrics.key(@labels, labels)
        @mutex.synchronize do
          series = (@series[key] ||= { counts: Array.new(@buckets.size, 0), sum: 0.0, count: 0 })
          index = @buckets.index { |bound| value <= bound }
          series[:counts][index] += 1 unless index.nil?
          series[:sum] += value
          series[:count] += 1
        end
      end

      # How many observations `labels` has.
      def count(**labels)
        @mutex.synchronize { @series[Metrics.key(@labels, labels)]&.fetch(:count) || 0 }
      end

      def render
        series = @mutex.synchronize { @series.transform_values { |s| s.merge(counts: s[:counts].dup) } }
        lines = ["# HELP #{@name} #{@help}", "# TYPE #{@name} histogram"]
        series.sort.each { |key, s| lines.concat(render_series(key, s)) }
        lines
      end

      private

      def render_series(key, series)
        cumulative = 0
        lines = @buckets.each_with_index.map do |bound, i|
          cumulative += series[:counts][i]
          "#{@name}_bucket#{Metrics.label_text(@labels, key, le: Metrics.number(bound))} #{cumulative}"
        end
        lines << "#{@name}_bucket#{Metrics.label_text(@labels, key, le: '+Inf')} #{series[:count]}"
        lines << "#{@name}_sum#{Metrics.label_text(@labels, key)} #{Metrics.number(series[:sum])}"
        lines << "#{@name}_count#{Metrics.label_text(@labels, key)} #{series[:count]}"
      end
    end

    attr_reader :step_duration, :queue_wait, :dead_letters

    def initialize
      @step_duration = Histogram.new('tasker_step_duration_seconds', 'How long step handlers ran', STEP_LABELS)
      @queue_wait = Histogram.new('tasker_queue_wait_seconds', "From a step's publish to its handler's start",
                                  STEP_LABELS)
      @dead_letters = Counter.new('tasker_dead_letters', 'Messages moved to the dead-letter queue',
                                  %i[queue reason])
    end

    # The Prometheus text of every metric.
    def render
      "#{[@step_duration, @queue_wait, @dead_letters].flat_map(&:render).join("\n")}\n"
    end

    @global = new

    class << self
      # The process's metrics, like Prometheus's default registry: one per
      # process, whatever the number of workers in it.
      attr_reader :global

      # The label values of `given`, in the order of `names`. Raises
      # ArgumentError when a label is missing or unknown.
      def key(names, given)
        unless given.keys.sort == names.sort
          raise ArgumentError, "labels #{given.keys.inspect} given; this metric takes #{names.inspect}"
        end

        names.map { |name| given[name].to_s }
      end

      # `{name="value",...}` of `names` and `values`, escaped, with `extra`.
      def label_text(names, values, **extra)
        pairs = names.zip(values).to_h.merge(extra)
        "{#{pairs.map { |name, value| "#{name}=\"#{escape(value.to_s)}\"" }.join(',')}}"
      end

      # A sample value as Prometheus writes it (1.0, 0.0005, +Inf).
      def number(value)
        return '+Inf' if value == Float::INFINITY

        value.to_s
      end

      private

      def escape(text)
        text.gsub('\\', '\\\\\\\\').gsub('"', '\\"').gsub("\n", '\\n')
      end
    end
  end
end
