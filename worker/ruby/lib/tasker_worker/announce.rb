# frozen_string_literal: true

require 'socket'

module TaskerWorker
  # The worker's announcements (docs/protocol.md, "Worker announcement"):
  # once it has declared its queues and consumes, every `every` seconds
  # after, and once more with `leaving` when it stops on purpose.
  # Announcements are not mandatory: a coordinator that is not there yet
  # hears the next one.
  class Identity
    LANGUAGE = 'ruby'

    # One namespace a worker serves: its service queue (the name of its
    # exchange when its steps are split), its callables, and how many queues
    # its steps are split over (nil or 1: the queue itself).
    ServedNamespace = Struct.new(:namespace, :queue, :callables, :partitions)

    attr_reader :worker_id, :service, :concurrency, :started_at, :every

    def initialize(worker_id:, service:, concurrency:, started_at:, every:)
      @worker_id = worker_id
      @service = service
      @concurrency = concurrency
      @started_at = started_at
      @every = every
    end

    # The announcement body of a worker serving `serves`.
    def announcement(serves, leaving:)
      body = {
        'protocol_version' => Topology::PROTOCOL_VERSION,
        'worker_id' => worker_id,
        'service' => service,
        'serves' => serves.map { |s| served(s) },
        'language' => LANGUAGE,
        'sdk_version' => VERSION,
        'host' => host,
        'pid' => Process.pid,
        'concurrency' => concurrency,
        'started_at' => Messages.timestamp(started_at),
        'sent_at' => Messages.timestamp(Time.now),
        'every_seconds' => every.to_f
      }
      body['leaving'] = true if leaving
      body
    end

    # Publishes one announcement and waits for its confirm. Raises
    # BrokerError if it was not sent.
    def announce(publisher, serves, leaving:)
      body = Messages.encode(announcement(serves, leaving:))
      publisher.publish(Topology::EVENTS_EXCHANGE, Topology::WORKER_ANNOUNCE_ROUTING_KEY, body,
                        Broker.properties(Topology::MessageType::WORKER_ANNOUNCEMENT), mandatory: false)
    end

    private

    # One entry of `serves`; `partitions` only when the steps are split.
    def served(namespace)
      entry = { 'namespace' => namespace.namespace, 'queue' => namespace.queue, 'callables' => namespace.callables.dup }
      entry['partitions'] = namespace.partitions if namespace.partitions.to_i > 1
      entry
    end

    def host
      name = Socket.gethostname
      name.nil? || name.empty? ? 'unknown' : name
    rescue SystemCallError
      'unknown'
    end
  end
end
