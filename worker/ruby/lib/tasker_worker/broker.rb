# frozen_string_literal: true

require 'bunny'
require 'logger'
require 'openssl'
require 'securerandom'
require 'set'
require 'uri'

# The part of the Ruby SDK that talks to RabbitMQ.
module TaskerWorker
  # Reads the unsigned 32-bit header values (`i`) that RabbitMQ passes on
  # from other AMQP clients, such as the coordinator's replies, which
  # amq-protocol does not know: they decode as its `I`, the same four bytes.
  module UnsignedHeaderValues
    def decode_value_type(data, offset)
      type, offset = super
      [type == 'i' ? AMQ::Protocol::TypeConstants::TYPE_INTEGER : type, offset]
    end
  end
  AMQ::Protocol::TableValueDecoder.singleton_class.prepend(UnsignedHeaderValues)

  # Keeps what the broker said when it closed the connection: Bunny only
  # logs it as it recovers, and a declaration waiting for its reply then
  # times out without it.
  module BrokerCloseReason
    attr_reader :broker_close_reason

    def instantiate_connection_level_exception(frame)
      @broker_close_reason = super
    end
  end
  Bunny::Session.prepend(BrokerCloseReason)

  # Ends a wait for publisher confirms when the broker closes the channel,
  # as it does for a publish it refuses (ACCESS_REFUSED for an exchange or a
  # routing key the user may not publish to): Bunny would wait out its
  # continuation timeout and raise Timeout::Error, saying nothing of why.
  # The messages still unconfirmed count as nacked, and #close_reason keeps
  # what the broker said.
  module ConfirmsEndWithTheChannel
    attr_reader :close_reason

    def handle_method(method)
      super
      return unless method.is_a?(AMQ::Protocol::Channel::Close)

      @close_reason = method.reply_text
      @unconfirmed_set_mutex.synchronize do
        next if @unconfirmed_set.nil? || @unconfirmed_set.empty?

        @nacked_set.merge(@unconfirmed_set)
        @unconfirmed_set.clear
        @only_acks_received = false
        @confirms_continuations.push(true)
      end
    end
  end
  Bunny::Channel.prepend(ConfirmsEndWithTheChannel)

  # What a Tasker process does with RabbitMQ: connect with a short heartbeat,
  # declare the topology, build the properties every message carries,
  # publish with confirms, and dead-letter what a consumer cannot use.
  #
  # Publishing and consuming use separate channels, so a publish refused by
  # the broker never closes the channel steps are consumed on.
  class Broker
    # What a lost or refused connection raises in Bunny and the socket layer.
    CONNECTION_ERRORS = [Bunny::Exception, Timeout::Error, IOError, SystemCallError, OpenSSL::SSL::SSLError].freeze

    attr_reader :connection, :url

    # Where Bunny reports a lost connection, in place of raising it in the
    # thread that opened it: the worker watches it and reconnects.
    class Losses
      def initialize
        @losses = Queue.new
      end

      # Called by Bunny's threads with what closed the connection.
      def raise(error)
        @losses.push(error)
      end

      # The next loss, waiting at most `timeout` seconds; nil if none came.
      def next(timeout)
        deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
        loop do
          return @losses.pop(true)
        rescue ThreadError
          return nil if Process.clock_gettime(Process::CLOCK_MONOTONIC) >= deadline

          sleep 0.05
        end
      end

      def clear
        @losses.clear
      end
    end

    # A refused login or vhost: the same settings cannot succeed later.
    REFUSED = [Bunny::PossibleAuthenticationFailureError, Bunny::NotAllowedError].freeze

    # Connects to `url`; `name` shows in the broker's connection list, and
    # `losses` hears of a lost connection.
    #
    # `url` may name several nodes of a cluster, separated by commas
    # (Broker.urls). Each connection tries them in turn, starting one further
    # along the list than the process's previous connection did, so that
    # connections spread over the nodes and a reconnection after a node died
    # starts with another one; #url is then the node reached. The list is
    # walked here rather than handed to Bunny's `addresses:`, which shuffles
    # the nodes, shares one user and vhost between them, and names none of
    # them when all fail.
    #
    # `amqps://` URLs connect over TLS with `tls`'s files (TlsFiles): the
    # broker's certificate and host name verified, against the system's
    # roots and the CA file, with the client certificate if given.
    #
    # Raises ConfigError if no URL is given, one is not an AMQP URL, or a
    # TLS file cannot be read, and BrokerError: not retryable if a broker
    # refuses the login or the vhost (the others would too: a cluster shares
    # its users), retryable if no broker can be reached or a TLS handshake
    # fails, naming every URL tried and the last error.
    def self.connect(url, name:, heartbeat:, logger:, losses: Losses.new, tls: TlsFiles.new)
      nodes = urls(url)
      if nodes.empty?
        raise ConfigError, 'no RabbitMQ URL given: set TASKER_AMQP_URL, e.g. amqp://guest:guest@127.0.0.1:5672/%2f'
      end

      # Every URL is checked before any is tried, so that a mistyped node
      # fails the start rather than a reconnection days later.
      nodes.each { |node| check_url(node) }
      tls_options = nodes.any? { |node| secure?(node) } ? tls.bunny_options : {}
      unreachable = []
      last = nil
      nodes.rotate(next_start(nodes.size)).each do |node|
        return connect_one(node, name:, heartbeat:, logger:, losses:, tls: secure?(node) ? tls_options : {})
      rescue *CONNECTION_ERRORS => e
        unreachable << redact(node)
        last = e
      end
      raise BrokerError, failure(unreachable, last)
    end

    # Why no node could be used: the TLS advice when the last one failed its
    # handshake.
    def self.failure(unreachable, last)
      return "rabbitmq at #{unreachable.join(', ')} cannot be used: #{last.class}: #{last.message}" \
        unless last.is_a?(OpenSSL::SSL::SSLError)

      tls = "the TLS handshake with rabbitmq at #{unreachable.last} failed: #{last.message}; #{TlsFiles::HINT}"
      unreachable.size == 1 ? tls : "rabbitmq at #{unreachable.join(', ')} cannot be used: #{tls}"
    end

    def self.secure?(url)
      url.strip.downcase.start_with?('amqps:')
    end

    # The URLs of the nodes that `urls` names: one URL, or several separated
    # by commas (`amqp://n1:5672/%2f,amqp://n2:5672/%2f`), each the URL of a
    # node of one cluster. Spaces around them and empty entries are ignored.
    # A comma in a password must be written `%2C`.
    def self.urls(urls)
      urls.to_s.split(',').map(&:strip).reject(&:empty?)
    end

    # Connection attempts so far in this process: where in a list of nodes
    # the next one starts.
    @connections = 0
    @connections_mutex = Mutex.new

    def self.next_start(size)
      @connections_mutex.synchronize do
        @connections += 1
        (@connections - 1) % size
      end
    end

    # Raises ConfigError unless `url` is an AMQP URL with a host.
    def self.check_url(url)
      parsed = begin
        URI.parse(url)
      rescue URI::Error
        nil
      end
      return if parsed && %w[amqp amqps].include?(parsed.scheme) && !parsed.host.to_s.empty?

      raise ConfigError, "#{redact(url)} is not an AMQP URL; write it like amqp://user:password@host:5672/%2f " \
                         '(TASKER_AMQP_URL)'
    end

    # Connects to one node, with Bunny's `tls` options; raises what Bunny
    # raises, except a refusal.
    def self.connect_one(url, name:, heartbeat:, logger:, losses:, tls:)
      connection = Bunny.new(url, heartbeat: heartbeat.positive? ? heartbeat.ceil : 0,
                                  connection_name: name, automatically_recover: false,
                                  session_error_handler: losses, logger: quiet(logger), connection_timeout: 30, **tls)
      connection.start
      new(connection, url, logger)
    rescue *REFUSED => e
      raise BrokerError.new("rabbitmq at #{redact(url)} refused the connection: #{e.message}; check the user " \
                            'name and password (TASKER_AMQP_URL, or TASKER_AMQP_PASSWORD or ' \
                            'TASKER_AMQP_PASSWORD_FILE) and that the user may use the vhost', retryable: false)
    end
    private_class_method :next_start, :check_url, :connect_one, :failure, :secure?

    # `logger` for Bunny, which logs every frame at debug level: warnings
    # and errors only.
    def self.quiet(logger)
      quiet = logger.dup
      quiet.level = [logger.level, Logger::WARN].max
      quiet
    end

    # `url` with its password masked, for logs and messages; each of them,
    # for several URLs separated by commas.
    def self.redact(url)
      return urls(url).map { |one| redact(one) }.join(',') if url.to_s.include?(',')

      url.to_s.sub(%r{//([^:/@]*):[^@/]*@}, '//\1:***@')
    end

    def initialize(connection, url, logger)
      @connection = connection
      @url = Broker.redact(url)
      @logger = logger
    end

    # A channel to consume and declare on, whose deliveries run on `pool_size`
    # threads; cancelling its last consumer waits up to `shutdown_timeout`
    # seconds for them.
    def channel(pool_size: 1, shutdown_timeout: 60)
      @connection.create_channel(nil, pool_size, false, shutdown_timeout)
    rescue *CONNECTION_ERRORS => e
      raise error(e)
    end

    # A channel in confirm mode, to publish on.
    def publisher
      Publisher.new(@connection.create_channel, @url)
    rescue *CONNECTION_ERRORS => e
      raise error(e)
    end

    # Closes the connection; unacked deliveries go back to their queues.
    def close
      @connection.close if @connection.open?
    rescue *CONNECTION_ERRORS
      nil # already gone: nothing to hand back
    end

    # Closes a connection found lost, in the background: Bunny waits for
    # replies that will never come before it lets go of it.
    def abandon
      Thread.new { close }
    end

    def open?
      @connection.open?
    end

    def error(exception)
      BrokerError.new("rabbitmq at #{@url}: #{exception.class}: #{exception.message}")
    end

    # Declares what every process uses: the events exchange, and the
    # dead-letter exchange and queue. They are shared: a user that may not
    # declare them (least privilege) skips them, as #declare_shared says.
    def declare_common
      declare_shared_exchange(Topology::EVENTS_EXCHANGE, 'topic')
      declare_shared_exchange(Topology::DEAD_LETTER_EXCHANGE, 'fanout')
      declare_queue(Topology::DEAD_LETTER_QUEUE, shared: true)
      bind_shared(Topology::DEAD_LETTER_QUEUE, Topology::DEAD_LETTER_EXCHANGE, '')
    rescue *CONNECTION_ERRORS => e
      raise error(e)
    end

    # Declares the queues every process touching `namespace` shares, its
    # task requests and its step results, and the exchanges they are bound
    # to, so that no request or result of it is ever unroutable. All shared,
    # as #declare_common's.
    def declare_namespace(namespace)
      declare_requests_exchange
      requests = Topology.request_queue(namespace)
      declare_queue(requests, shared: true)
      bind_shared(requests, Topology::REQUESTS_EXCHANGE, namespace)
      declare_shared_exchange(Topology::STEPS_EXCHANGE, 'direct')
      results = Topology.result_queue(namespace)
      declare_queue(results, shared: true)
      bind_shared(results, Topology::EVENTS_EXCHANGE, Topology.step_result_routing_key(namespace))
    rescue *CONNECTION_ERRORS => e
      raise error(e)
    end

    # Declares the requests exchange with its alternate exchange, and the
    # queue of unrouted requests bound to that, so that a request for a
    # namespace no coordinator serves is kept rather than lost. All shared,
    # as #declare_common's.
    def declare_requests_exchange
      declare_shared_exchange(Topology::UNROUTED_REQUESTS_EXCHANGE, 'fanout')
      declare_queue(Topology::UNROUTED_REQUESTS_QUEUE, shared: true)
      bind_shared(Topology::UNROUTED_REQUESTS_QUEUE, Topology::UNROUTED_REQUESTS_EXCHANGE, '')
      declare_shared_exchange(Topology::REQUESTS_EXCHANGE, 'direct',
                              { Topology::ALTERNATE_EXCHANGE_ARGUMENT => Topology::UNROUTED_REQUESTS_EXCHANGE })
    rescue *CONNECTION_ERRORS => e
      raise error(e)
    end

    # Runs the declaration of the shared object `what` (an exchange, queue
    # or binding of Tasker's that every process uses) on a channel of its
    # own, since a refusal closes the channel it came on. A user kept to
    # least privilege may not declare them: the refusal (ACCESS_REFUSED) is
    # logged at debug level and skipped, for the coordinators declare them.
    # Any other error is raised.
    def declare_shared(what)
      own = @connection.create_channel
      yield own
    rescue Bunny::AccessRefused => e
      not_allowed(what, e)
    ensure
      close_quietly(own)
    end

    def declare_shared_exchange(name, type, arguments = {})
      declare_shared(name) { |own| own.exchange_declare(name, type, durable: true, arguments:) }
    end

    def bind_shared(queue, exchange, routing_key)
      declare_shared("the binding of #{queue} to #{exchange}") do |own|
        own.queue_bind(queue, exchange, routing_key:)
      end
    end

    # Unbinds `queue` from the shared `exchange` on a channel of its own, as
    # #declare_shared declares: the refusal of a user without `read` on the
    # exchange is logged at debug level and skipped. A binding left there
    # does no harm: the queue still gets each step once.
    def unbind_shared(queue, exchange, routing_key)
      own = @connection.create_channel
      own.queue_unbind(queue, exchange, routing_key:)
    rescue Bunny::AccessRefused => e
      @logger.debug("not allowed to unbind #{queue} from #{exchange} with #{routing_key}, where earlier versions " \
                    "bound it (#{e.message})")
    ensure
      close_quietly(own)
    end

    def not_allowed(what, refusal)
      @logger.debug("not allowed to declare #{what}; the coordinators declare it (#{refusal.message})")
    end

    def close_quietly(channel)
      channel.close if channel&.open?
    rescue *CONNECTION_ERRORS
      nil # closed by a refusal already
    end

    # Declares where `service`'s steps of `namespace` wait, bound once per
    # callable: from then on those steps reach it, whether or not a worker of
    # the service runs. Returns the queues to consume on `channel`.
    #
    # Steps reach them through the namespace's steps exchange
    # (Topology.namespace_steps_exchange), which #route_namespace_steps
    # declares and binds to `tasker.steps` with the callables' keys, as
    # shared objects: a least-privilege user, with `read` on its own
    # namespace's exchange but not on `tasker.steps`, leaves that to the
    # coordinators, and may bind nothing to another namespace's steps. The
    # service's own queues and exchange are bound to the namespace's
    # exchange, not to `tasker.steps`; those bindings must succeed.
    #
    # With one partition, that is the service's queue. With more, the
    # service's consistent-hash exchange spreads the steps by task id over
    # `partitions` queues; the service's former single queue, if any, no
    # longer receives steps and comes last, for the worker to empty it.
    #
    # Raises BrokerError, not retryable, with one partition if the service's
    # steps are split over several queues already (its other workers' steps
    # would never reach this one), or if the broker lacks the consistent-hash
    # exchange.
    def declare_service(channel, namespace, service, callables, partitions = 1)
      return declare_partitions(channel, namespace, service, callables, partitions) if partitions > 1

      exchange = Topology.service_exchange(namespace, service)
      if @connection.exchange_exists?(exchange)
        raise BrokerError.new("the steps of service '#{service}' in namespace '#{namespace}' are split over " \
                              "several queues (the exchange #{exchange} exists): start this worker with " \
                              "TASKER_PARTITIONS set to the number the service's other workers use",
                              retryable: false)
      end
      steps = route_namespace_steps(namespace, callables)
      name = Topology.service_queue(namespace, service)
      declare_queue(name)
      callables.each do |callable|
        channel.queue_bind(name, steps, routing_key: Topology.step_routing_key(namespace, callable))
      end
      [consumable(channel, name)]
    rescue *CONNECTION_ERRORS => e
      raise error(e)
    end

    # Declares `namespace`'s steps exchange and binds it to `tasker.steps`
    # with the key of each of `callables`, so that their steps reach it; both
    # shared (#declare_shared), since the coordinators do the same for every
    # callable of their templates. Returns the exchange's name.
    def route_namespace_steps(namespace, callables)
      declare_shared_exchange(Topology::STEPS_EXCHANGE, 'direct')
      steps = Topology.namespace_steps_exchange(namespace)
      declare_shared_exchange(steps, 'direct')
      callables.each do |callable|
        key = Topology.step_routing_key(namespace, callable)
        declare_shared("the binding of #{steps} to #{Topology::STEPS_EXCHANGE} with #{key}") do |own|
          own.exchange_bind(Topology::STEPS_EXCHANGE, steps, routing_key: key)
        end
      end
      steps
    end

    # #declare_service for a service split over `partitions` queues. The
    # queues are bound before the exchange is, so that no step reaches an
    # exchange with nowhere to send it.
    def declare_partitions(channel, namespace, service, callables, partitions)
      steps = route_namespace_steps(namespace, callables)
      exchange = Topology.service_exchange(namespace, service)
      declare_hash_exchange(channel, exchange, partitions)
      queues = (0...partitions).map do |index|
        name = Topology.partition_queue(namespace, service, index)
        declare_queue(name)
        channel.queue_bind(name, exchange, routing_key: Topology::PARTITION_WEIGHT)
        consumable(channel, name)
      end
      keys = callables.map { |callable| Topology.step_routing_key(namespace, callable) }
      keys.each { |key| channel.exchange_bind(steps, exchange, routing_key: key) }
      former = Topology.service_queue(namespace, service)
      return queues unless @connection.queue_exists?(former)

      drain(channel, former, steps, keys, partitions)
      queues << consumable(channel, former)
    rescue *CONNECTION_ERRORS => e
      raise error(e)
    end

    # Takes the service's former single queue off `keys`, so that new steps
    # stop reaching it; those in it still need a worker. It was bound to the
    # namespace's exchange `steps`, or, by earlier versions, to
    # `tasker.steps` (#unbind_shared).
    def drain(channel, former, steps, keys, partitions)
      keys.each do |key|
        channel.queue_unbind(former, steps, routing_key: key)
        unbind_shared(former, Topology::STEPS_EXCHANGE, key)
      end
      @logger.info("draining the service's former single queue #{former}, now that its steps are split over " \
                   "#{partitions} queues; delete it once it is empty")
    end

    # Declares the consistent-hash exchange `name`. A broker without the
    # plugin closes the connection; Bunny then waits out its timeout, and the
    # reason it kept says why.
    def declare_hash_exchange(channel, name, partitions)
      arguments = { Topology::HASH_HEADER_ARGUMENT => Topology::Header::TASK_ID }
      channel.exchange_declare(name, Topology::PARTITIONED_EXCHANGE_TYPE, durable: true, arguments:)
    rescue *CONNECTION_ERRORS => e
      reason = @connection.broker_close_reason
      raise e unless reason.is_a?(Bunny::CommandInvalid) && reason.message.include?('exchange type')

      raise BrokerError.new("rabbitmq at #{@url} has no consistent-hash exchange, which splitting a service's " \
                            "steps over several queues (TASKER_PARTITIONS=#{partitions}) needs: enable it on every " \
                            "node with `rabbitmq-plugins enable rabbitmq_consistent_hash_exchange` (#{reason.message})",
                            retryable: false)
    end

    # `name`, declared already, to consume on `channel`.
    def consumable(channel, name)
      Bunny::Queue.new(channel, name, no_declare: true, durable: true)
    end

    # Declares a Tasker queue with Topology::QUORUM's arguments, on a channel
    # of its own, since a refusal closes the channel it came on. A queue that
    # an older Tasker declared without the delivery limit refuses them with
    # PRECONDITION_FAILED: it is used as it is, with a warning. A `shared`
    # queue the user may not declare is skipped (#declare_shared); the
    # service's own must be declared.
    def declare_queue(name, shared: false)
      own = @connection.create_channel
      own.queue_declare(name, durable: true, exclusive: false, auto_delete: false, arguments: Topology::QUORUM.dup)
    rescue Bunny::PreconditionFailed => e
      @logger.warn(
        "the queue #{name} exists with other arguments, likely declared by an older Tasker without " \
        'x-delivery-limit; using it as it is. Give it a delivery-limit policy so RabbitMQ 4 never ' \
        "drops a message before Tasker dead-letters it (#{e.message})"
      )
    rescue Bunny::AccessRefused => e
      raise unless shared

      not_allowed(name, e)
    ensure
      close_quietly(own)
    end

    # The properties of a Tasker message: persistent, JSON, typed, with a
    # fresh message id, the protocol version, the task id and the publish
    # time in headers. `extra_headers` (trace context) and `properties` are
    # added.
    def self.properties(message_type, task_id = nil, extra_headers: {}, **properties)
      headers = {
        Topology::Header::PROTOCOL_VERSION => Topology::PROTOCOL_VERSION,
        Topology::Header::PUBLISHED_AT_MS => (Time.now.to_r * 1000).to_i
      }
      headers[Topology::Header::TASK_ID] = task_id unless task_id.nil?
      headers.merge!(extra_headers)
      {
        persistent: true,
        content_type: Topology::CONTENT_TYPE,
        type: message_type,
        message_id: SecureRandom.uuid,
        timestamp: Time.now.to_i,
        headers:
      }.merge(properties)
    end

    # How many times RabbitMQ says a message was delivered before
    # (`x-delivery-count`, set on quorum queues; any integer type).
    def self.delivery_count(headers)
      value = (headers || {})[Topology::Header::DELIVERY_COUNT]
      value.is_a?(Integer) && value.positive? ? value : 0
    end

    # A channel in confirm mode: every publish returns only once the broker
    # has stored the message. Publishes are one at a time, so that a confirm
    # or a return is always the current message's.
    class Publisher
      attr_reader :channel

      def initialize(channel, url)
        @channel = channel
        @url = url
        @mutex = Mutex.new
        @returned = Set.new
        @returned_mutex = Mutex.new
        @channel.confirm_select
        [[:topic, Topology::EVENTS_EXCHANGE], [:fanout, Topology::DEAD_LETTER_EXCHANGE],
         [:direct, Topology::REQUESTS_EXCHANGE]].each do |type, name|
          exchange = Bunny::Exchange.new(@channel, type, name, durable: true, no_declare: true)
          exchange.on_return { |_info, props, _body| note_return(props.message_id) }
        end
      end

      # Publishes `body` with `properties` (see Broker.properties) and waits
      # for its confirm. Raises BrokerError if the broker refused it (a
      # nack), a mandatory message reached no queue, or the channel is gone:
      # the caller leaves its delivery unacked.
      def publish(exchange, routing_key, body, properties, mandatory:)
        @mutex.synchronize do
          id = properties[:message_id]
          @returned_mutex.synchronize { @returned.delete(id) }
          @channel.basic_publish(body, exchange, routing_key, properties.merge(mandatory:))
          raise BrokerError, refused(exchange, routing_key) unless @channel.wait_for_confirms

          if @returned_mutex.synchronize { @returned.delete?(id) }
            raise BrokerError, "no queue is bound to exchange #{exchange.inspect} with routing key " \
                               "#{routing_key.inspect}; declare the namespace's queues"
          end
        end
      rescue *CONNECTION_ERRORS => e
        raise BrokerError, "rabbitmq at #{@url}: #{e.class}: #{e.message}"
      end

      # Moves a delivery to the dead-letter queue with `<reason>: <detail>`
      # in a header, and waits for the confirm. The caller acks it then; if
      # this raises BrokerError, the delivery stays unacked and comes back.
      def dead_letter(delivery_info, props, body, queue, reason, detail)
        headers = (props.headers || {}).merge(
          Topology::Header::DEAD_LETTER_REASON => "#{reason}: #{detail}",
          Topology::Header::DEAD_LETTER_QUEUE => queue,
          Topology::Header::DEAD_LETTER_EXCHANGE => delivery_info.exchange.to_s,
          Topology::Header::DEAD_LETTER_ROUTING_KEY => delivery_info.routing_key.to_s
        )
        # The original properties, persistent; not its expiration, which
        # would let the dead letter vanish, nor its user_id, which RabbitMQ
        # refuses from any other user.
        copy = {
          persistent: true,
          headers:,
          content_type: props.content_type,
          content_encoding: props.content_encoding,
          priority: props.priority,
          correlation_id: props.correlation_id,
          reply_to: props.reply_to,
          message_id: props.message_id || SecureRandom.uuid,
          timestamp: props.timestamp&.to_i,
          type: props.type,
          app_id: props.app_id
        }.compact
        publish(Topology::DEAD_LETTER_EXCHANGE, queue, body, copy, mandatory: true)
        Metrics.global.dead_letters.inc(queue:, reason: reason.to_s)
      end

      private

      # Why the broker did not confirm a message: it closed the channel
      # (ACCESS_REFUSED: the user may not publish there), or nacked it.
      def refused(exchange, routing_key)
        where = "exchange #{exchange.inspect}, routing key #{routing_key.inspect}"
        reason = @channel.close_reason
        if reason
          return "rabbitmq at #{@url} refused a message for #{where} and closed the channel: #{reason}; check " \
                 "the user's permissions (write on the exchange, and its topic permissions)"
        end

        "rabbitmq refused to store a message for #{where}; check the broker's log (disk or memory alarm, " \
          'queue limits)'
      end

      def note_return(message_id)
        @returned_mutex.synchronize { @returned << message_id }
      end
    end
  end
end
