# frozen_string_literal: true

require 'json'
require 'logger'
require 'securerandom'

module TaskerWorker
  # The worker: consumes the step-ready messages of its service, runs their
  # handlers, publishes each result, and acks a step only once its result is
  # safe with the broker (docs/protocol.md, "What a worker does with a
  # step-ready message"). It behaves as the Rust and Python SDKs' workers do:
  #
  # - concurrency is the consumer's prefetch: at most that many unacked steps,
  #   run on as many threads; a service split over several queues
  #   (`partitions`) consumes them all, each with a prefetch of
  #   ceil(concurrency / partitions), and the threads, shared by every
  #   queue, still bound the steps running at once;
  # - a step's result is published `mandatory` and confirmed, then the step
  #   is acked; if the worker dies in between, the step is delivered again;
  # - a step that runs past its `timeout_seconds` fails retryably with
  #   `timeout`; a handler that raises anything but a StepError fails it with
  #   `handler_panic`, and the worker goes on;
  # - what cannot be decoded, or was delivered too often, is dead-lettered;
  # - a handler that returns StepContext#complete_with_child's marker has
  #   its child task request published, confirmed, and the step reported as
  #   `waiting_for_child`;
  # - a step redelivered after its result was published is answered with the
  #   remembered result rather than run twice;
  # - each delivery is a CONSUMER span `process <step>`, child of the
  #   context in the message's `traceparent`, exported when Telemetry.init
  #   set up export; the result and child task requests carry its context on
  #   (without export, the incoming context passes on unchanged);
  # - the process's Metrics record each handler's duration, each step's wait
  #   in its queue, and each dead letter;
  # - on SIGTERM or SIGINT (or #stop) the worker stops consuming, lets
  #   in-flight steps finish within a grace period, announces it is leaving,
  #   closes, which hands every unacked step back to its queue, and exports
  #   the spans it has gathered.
  #
  #   TaskerWorker::Worker.new(TaskerWorker::Config.from_env(service: 'user'))
  #     .namespace('microservices')
  #     .handler('Microservices::StepHandlers::CreateUserAccountHandler', CreateUserAccountHandler.new)
  #     .run
  class Worker
    attr_reader :config, :identity, :recent, :health, :health_server

    def initialize(config = nil)
      @config = config || Config.from_env
      @logger = @config.logger || Logger.new($stderr, progname: 'tasker_worker', level: Logger::INFO)
      @namespaces = []
      @handlers = {}
      @state = Mutex.new
      @idle = ConditionVariable.new
      @in_flight = 0
      @accepting = false
      @started = false
      @stopping = false
      @stopped = Queue.new
      @lifecycle = Mutex.new # held while connecting and while draining
      @losses = Broker::Losses.new
      @recent = RecentResults.new(@config.remembered_results)
      @health = Health.new(Health::RABBITMQ, logger: @logger)
      @running = false
      @cancelled = false
    end

    # Serves `namespace`'s steps too.
    def namespace(namespace)
      problem = Config.name_problem(namespace)
      raise ConfigError, "the namespace #{namespace.inspect} #{problem}" if problem

      @namespaces << namespace unless @namespaces.include?(namespace)
      self
    end

    # Runs `handler` for the steps whose template names `callable`. Raises
    # ConfigError if `handler` has no `call(context)`.
    def handler(callable, handler)
      unless handler.respond_to?(:call)
        raise ConfigError, "the handler for #{callable.inspect} (#{handler.class.name}) needs a method call(context)"
      end

      @handlers[callable.to_s] = handler
      self
    end

    # The service queues this worker consumes: one per namespace, or each
    # namespace's partition queues when its steps are split (and then, while
    # it lasts, the service's former single queue, which #start finds).
    def queues
      @namespaces.flat_map { |ns| Topology.step_queues(ns, config.service, config.partitions) }
    end

    # Connects, declares the topology, consumes and announces the worker;
    # returns once it consumes. From then on a lost connection is replaced,
    # with backoff, until #stop. Raises ConfigError or BrokerError.
    def start
      check!
      @state.synchronize do
        raise TaskerError, 'this worker has started already' if @started

        @started = true
      end
      @identity = new_identity
      @runner = StepRunner.new(@handlers.dup.freeze, @logger, config.max_message_bytes)
      serve_health
      begin
        @lifecycle.synchronize { connect_and_consume }
      rescue StandardError
        @broker&.close
        @state.synchronize { @started = false }
        close_health unless @running
        raise
      end
      @announcer = Thread.new { keep_announcing }
      @supervisor = Thread.new { supervise }
      self
    end

    # Starts, then consumes until SIGTERM or SIGINT or #stop, and drains.
    # While the broker cannot be reached at start, it tries again with
    # backoff (the health endpoints say it is alive but not ready).
    def run
      previous = %w[TERM INT].to_h do |signal|
        [signal, Signal.trap(signal) { Thread.new { stop } }]
      end
      @running = true
      @cancelled = false
      return self unless start_until_connected

      @stopped.pop
      self
    ensure
      @running = false
      close_health
      previous&.each { |signal, handler| Signal.trap(signal, handler || 'DEFAULT') }
    end

    # Stops taking steps, lets in-flight ones finish within
    # `config.shutdown_grace`, announces the worker as leaving, and closes the
    # connection, which hands every unacked step back to its queue.
    def stop
      @state.synchronize do
        @cancelled = true unless @started
        return self if @stopping || !@started

        @stopping = true
        @accepting = false
      end
      @lifecycle.synchronize { drain }
      @supervisor&.join(1)
      close_health
      Telemetry.flush
      self
    ensure
      @stopped.push(true)
    end

    # How many steps run now.
    def in_flight
      @state.synchronize { @in_flight }
    end

    private

    # #start, again with backoff while the broker cannot be reached yet;
    # false if #stop came first.
    def start_until_connected
      attempts = 0
      begin
        start
        true
      rescue BrokerError => e
        raise unless e.retryable?

        @logger.warn("cannot connect to rabbitmq yet; retrying: #{e.message}") if attempts.zero?
        deadline = monotonic + backoff(attempts)
        attempts += 1
        sleep([0.05, deadline - monotonic].min) while !cancelled? && monotonic < deadline
        retry unless cancelled?
        false
      end
    end

    def cancelled?
      @state.synchronize { @cancelled }
    end

    # Starts serving the health endpoints if an address is configured and
    # they are not served yet; an address that cannot be bound is logged.
    def serve_health
      return if config.health_addr.nil? || @health_server

      host, port = config.health_addr
      @health_server = HealthServer.new(host, port, @health, logger: @logger)
    rescue SystemCallError, SocketError => e
      @logger.error("cannot serve the health endpoints; pass another address (address=#{host}:#{port} " \
                    "error=#{e.message})")
    end

    def close_health
      server = @health_server
      @health_server = nil
      server&.close
    end

    def check!
      config.check!
      raise ConfigError, 'a worker needs at least one namespace; call .namespace(..)' if @namespaces.empty?
      return unless @handlers.empty?

      raise ConfigError, 'a worker needs at least one handler; call .handler(callable, handler)'
    end

    # One connection's life begins: connect, declare, consume, announce.
    def connect_and_consume
      @losses.clear
      @broker = Broker.connect(config.amqp_url, logger: @logger, losses: @losses, **config.connection)
      @publisher = @broker.publisher
      @channel = @broker.channel(pool_size: config.concurrency, shutdown_timeout: config.shutdown_grace)
      @broker.declare_common
      # Per consumer; the channel's `concurrency` delivery threads, shared by
      # every queue, bound the steps that run at once.
      @channel.prefetch(config.prefetch)
      @state.synchronize { @accepting = !@stopping }
      callables = @handlers.keys.sort
      @consumers = []
      @serves = @namespaces.map { |ns| consume(ns, callables, @publisher) }
      @connected = true
      @logger.info("worker ready: service=#{config.service} namespaces=#{@namespaces.join(',')} " \
                   "callables=#{callables.size} concurrency=#{config.concurrency} broker=#{@broker.url}")
      # Announced once it consumes: a coordinator may then release the steps
      # that waited for these callables.
      announce(leaving: false)
      @health.up(Health::RABBITMQ)
    rescue *Broker::CONNECTION_ERRORS => e
      @health.down(Health::RABBITMQ, e.message)
      raise BrokerError, "rabbitmq: #{e.class}: #{e.message}"
    rescue BrokerError => e
      @health.down(Health::RABBITMQ, e.message)
      raise
    end

    # Who this worker process is, new at every start.
    def new_identity
      Identity.new(worker_id: SecureRandom.uuid, service: config.service, concurrency: config.concurrency,
                   started_at: Time.now, every: config.announce_every)
    end

    # Declares what the worker needs in `namespace` and consumes its service
    # queues, whose deliveries publish on `publisher`, of the same connection;
    # returns what it serves there, for the announcements.
    def consume(namespace, callables, publisher)
      @broker.declare_namespace(namespace)
      queues = @broker.declare_service(@channel, namespace, config.service, callables, config.partitions)
      queues.each_with_index do |queue, index|
        # The broker cancels a consumer whose queue is deleted: consume again
        # on a new connection.
        cancelled = proc { @losses.raise(BrokerError.new("the consumer of #{queue.name} was cancelled")) }
        @consumers << queue.subscribe(manual_ack: true, block: false, on_cancellation: cancelled,
                                      consumer_tag: "#{config.name}-#{namespace}-#{index}") do |info, props, body|
          on_delivery(Delivery.new(queue.channel, publisher, queue.name, info, props, body))
        end
      end
      Identity::ServedNamespace.new(namespace, Topology.service_queue(namespace, config.service), callables,
                                    config.partitions)
    end

    # Watches the connection and replaces it when it is lost, with a capped,
    # jittered backoff, until the worker stops. Steps unacked on the lost
    # connection come back to the queue, and their remembered results answer
    # them.
    def supervise
      attempts = 0
      until stopping?
        loss = attempts.zero? ? (@losses.next(0.25) || lost_channel) : :reconnecting
        # A connection closed by #stop is no loss.
        break if stopping?
        next if loss.nil?

        @connected = false
        @health.down(Health::RABBITMQ, describe_loss(loss))
        if attempts.zero?
          @logger.warn("lost the connection to rabbitmq at #{@broker.url} (#{describe_loss(loss)}); reconnecting")
        end
        sleep_unless_stopping(backoff(attempts))
        attempts = reconnect ? 0 : attempts + 1
      end
    end

    # Connects again; true once it consumes, false to try again later.
    def reconnect
      @lifecycle.synchronize do
        return true if stopping?

        @broker&.abandon
        connect_and_consume
        @logger.info('reconnected to rabbitmq')
        true
      end
    rescue BrokerError, ConfigError => e
      if e.is_a?(BrokerError) && e.retryable?
        @logger.warn("cannot reconnect to rabbitmq yet: #{e.message}")
        return false
      end
      # The same settings cannot succeed later (a refused login, a TLS file
      # gone): the worker stops.
      @logger.error("stopping: #{e.message}")
      Thread.new { stop }
      true
    end

    # A channel the broker closed although the connection lives: the worker
    # starts over on a new connection.
    def lost_channel
      return nil if @lifecycle.locked?
      return nil if [@channel, @publisher&.channel].compact.all?(&:open?) && @broker.open?

      'a channel or the connection closed'
    end

    def describe_loss(loss)
      loss.is_a?(Exception) ? "#{loss.class}: #{loss.message}" : loss.to_s
    end

    # Seconds to wait before reconnect attempt `attempt` (from 0): doubling
    # from 0.1 s, at most 30 s, with up to 20% jitter.
    def backoff(attempt)
      base = [0.1 * (2**[attempt, 10].min), 30.0].min
      base + (base * 0.2 * rand)
    end

    def sleep_unless_stopping(seconds)
      deadline = monotonic + seconds
      sleep([0.05, deadline - monotonic].min) while !stopping? && monotonic < deadline
    end

    def stopping?
      @state.synchronize { @stopping }
    end

    def announce(leaving:)
      @identity.announce(@publisher, @serves, leaving:)
    rescue BrokerError => e
      @logger.warn("the worker's announcement was not sent; the next one will be: #{e.message}")
    end

    def keep_announcing
      loop do
        sleep(config.announce_every)
        break if stopping?
        # Sent on the current connection; none while reconnecting.
        next unless @lifecycle.try_lock

        begin
          announce(leaving: false) if @broker&.open?
        ensure
          @lifecycle.unlock
        end
      end
    end

    def drain
      return drain_lost if !@connected || @losses.next(0)

      @consumers.each do |consumer|
        # Waits, for the last consumer of the channel, until the delivery
        # threads are done, at most the grace period.
        consumer.cancel
      rescue *Broker::CONNECTION_ERRORS => e
        @logger.debug("consumer not cancelled: #{e.message}")
      end
      @logger.info("stopping: finishing in-flight steps (in_flight=#{in_flight}, grace=#{config.shutdown_grace})")
      deadline = monotonic + config.shutdown_grace
      @state.synchronize do
        while @in_flight.positive? && (left = deadline - monotonic).positive?
          @idle.wait(@state, left)
        end
        @logger.warn("grace period over; #{@in_flight} unfinished steps go back to the queue") if @in_flight.positive?
      end
      @announcer&.kill
      announce(leaving: true)
    ensure
      @broker&.close
    end

    # Stopping while the connection is lost: nothing can be cancelled, acked
    # or announced; the unacked steps are back in their queue already.
    def drain_lost
      @announcer&.kill
      @logger.info('stopping while disconnected from rabbitmq')
      @broker&.abandon
      @broker = nil
    end

    # One step-ready delivery, with the channel it came on and the publisher
    # of the same connection: its result goes out, and it is acked, on the
    # connection it came from, never on a newer one.
    Delivery = Struct.new(:channel, :publisher, :queue, :info, :properties, :body)

    def on_delivery(delivery)
      @state.synchronize do
        # Delivered as the consumer was being cancelled: left unacked, it
        # goes back to the queue when the connection closes.
        return unless @accepting

        @in_flight += 1
      end
      begin
        span = DeliverySpan.start(delivery.queue, delivery.info, delivery.properties)
        handle(delivery, span)
      rescue BrokerError => e
        @logger.warn("step not acknowledged; it comes back when the connection is replaced: #{e.message}")
      rescue StandardError => e
        @logger.error("a delivery failed unexpectedly; it stays unacknowledged: #{e.class}: #{e.message}")
      ensure
        span&.finish
        @state.synchronize do
          @in_flight -= 1
          @idle.broadcast
        end
      end
    end

    # One delivery to its end: the result published and confirmed, then the
    # step acked; or the message dead-lettered, then acked. Raises
    # BrokerError when a publish fails: the step then stays unacked.
    def handle(delivery, span)
      ready = usable_step(delivery, span)
      return if ready.nil?

      key = [ready.task_id, ready.step, ready.attempt]
      remembered = @recent.get(key)
      return answer_again(delivery, ready, remembered) if remembered

      payload = run_step(delivery, ready, span)
      properties = Broker.properties(Topology::MessageType::STEP_RESULT, ready.task_id,
                                     extra_headers: Telemetry.headers(span, delivery.properties.headers))
      # Remembered before it is published: a redelivery that overtakes the
      # confirm, or follows a failed publish, sends this result rather than
      # running the handler a second time.
      @recent.insert(key, { body: payload, properties: })
      delivery.publisher.publish(Topology::EVENTS_EXCHANGE, Topology.step_result_routing_key(ready.namespace),
                                 payload, properties, mandatory: true)
      ack(delivery)
    end

    # Runs the handler, timed, and returns the step result's JSON; its
    # outcome is logged and recorded on `span`.
    def run_step(delivery, ready, span)
      labels = { namespace: ready.namespace, template: ready.task_name, step: ready.step }
      published_ms = delivery.properties.headers&.dig(Topology::Header::PUBLISHED_AT_MS)
      if published_ms.is_a?(Integer)
        waited = ((Time.now.to_r * 1000) - published_ms) / 1000
        Metrics.global.queue_wait.observe([waited.to_f, 0.0].max, **labels)
      end
      started_at = Time.now
      started = monotonic
      outcome = @runner.run_handler(ready, child_starter(delivery, ready, span))
      Metrics.global.step_duration.observe(monotonic - started, **labels)
      payload = @runner.encode_result(ready, started_at, Time.now, outcome)
      result = JSON.parse(payload)
      @runner.log_outcome(ready, result)
      DeliverySpan.record_outcome(span, result)
      payload
    end

    # The delivery's step-ready message; nil once a message it cannot use,
    # or one delivered too often, is dead-lettered and acked.
    def usable_step(delivery, span)
      begin
        ready = Messages.decode_step_ready(delivery.body, config.max_message_bytes)
      rescue Messages::DecodeError => e
        @logger.warn("dead-lettering an unusable step: #{e.header}")
        dead_letter(delivery, e.reason, e.detail)
        return nil
      end
      DeliverySpan.describe(span, ready)
      redeliveries = Broker.delivery_count(delivery.properties.headers)
      return ready if redeliveries <= config.max_redeliveries

      dead_letter(delivery, DeadLetterReason::REDELIVERY_LIMIT,
                  "redelivered #{redeliveries} times, over the limit of #{config.max_redeliveries}; " \
                  'the step may crash its worker')
      nil
    end

    def dead_letter(delivery, reason, detail)
      delivery.publisher.dead_letter(delivery.info, delivery.properties, delivery.body, delivery.queue,
                                     reason, detail)
      ack(delivery)
    end

    # Publishes again the result this worker published for the same attempt,
    # and acks: the step came back because an ack was lost, or a coordinator
    # published it again after a crash.
    def answer_again(delivery, ready, remembered)
      @logger.info('step already finished here; sending its result again instead of running it twice ' \
                   "(task_id=#{ready.task_id} step=#{ready.step} attempt=#{ready.attempt})")
      delivery.publisher.publish(Topology::EVENTS_EXCHANGE, Topology.step_result_routing_key(ready.namespace),
                                 remembered[:body], remembered[:properties], mandatory: true)
      ack(delivery)
    end

    # What publishes the child task requests of `ready`'s handler: to
    # `tasker.requests` with the child's namespace as routing key, typed
    # `tasker.task_request`, with the child's task id in a header,
    # `mandatory` and confirmed, on the connection the step came from. It
    # raises BrokerError when the request is not safe with the broker.
    def child_starter(delivery, ready, span)
      lambda do |request, child_task_id|
        properties = Broker.properties(Topology::MessageType::TASK_REQUEST, child_task_id,
                                       extra_headers: Telemetry.headers(span, delivery.properties.headers))
        delivery.publisher.publish(Topology::REQUESTS_EXCHANGE, request['namespace'].to_s,
                                   Messages.encode(request), properties, mandatory: true)
        @logger.info("child task requested (task_id=#{ready.task_id} step=#{ready.step} " \
                     "child_task_id=#{child_task_id} child=#{request['namespace']}/#{request['name']})")
      end
    end

    def ack(delivery)
      delivery.channel.ack(delivery.info.delivery_tag)
    rescue *Broker::CONNECTION_ERRORS => e
      # The connection is gone: the step comes back, and its remembered
      # result answers it.
      @logger.debug("ack not sent: #{e.message}")
    end

    def monotonic
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end
  end
end
