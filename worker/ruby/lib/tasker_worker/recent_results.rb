# frozen_string_literal: true

module TaskerWorker
  # The results this worker published last, by [task_id, step, attempt]:
  # when a step comes back after its result was confirmed but before its ack
  # was (a lost connection, a coordinator that republished after a crash),
  # the worker sends the result again instead of running the handler twice.
  # Safe to use from several threads.
  class RecentResults
    attr_reader :capacity

    def initialize(capacity)
      @capacity = capacity
      @results = {} # insertion-ordered: the first key is the oldest
      @mutex = Mutex.new
    end

    # The result published for `key`, if remembered.
    def get(key)
      @mutex.synchronize { @results[key] }
    end

    # Remembers `result`, forgetting the oldest beyond the capacity.
    def insert(key, result)
      return if capacity <= 0

      @mutex.synchronize do
        @results.delete(key)
        @results[key] = result
        @results.shift while @results.size > capacity
      end
    end

    def size
      @mutex.synchronize { @results.size }
    end
  end
end
