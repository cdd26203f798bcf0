# frozen_string_literal: true

require 'logger'
require 'securerandom'

module TaskerWorker
  # Asks for tasks and waits for their outcome. A client publishes task
  # requests (`mandatory`, confirmed) with `reply_to` naming a private queue
  # of its own: server-named, exclusive, deleted with the connection. The
  # coordinator answers there with the task's task-finished message, or
  # task-rejected if it refuses the request:
  #
  #   client = TaskerWorker::Client.connect(ENV.fetch('TASKER_AMQP_URL'))
  #   outcome = client.create_task('microservices', 'user_registration', context).wait(60)
  #   client.close
  #
  # Replies are matched by `correlation_id` (the request id, which the
  # coordinator copies onto its replies), failing that by their body's
  # `request_id`, and for a coordinator that predates it, by the `task_id`
  # of a task finished (docs/protocol.md, "Requests and their replies").
  #
  # When its connection dies (its broker node died, say), the next request
  # connects again, to the next node of the URL's list, and goes out on the
  # new connection. A request waiting for its reply when the connection
  # died may not get it: the reply goes to the private queue that died with
  # the connection, and Submitted#wait times out.
  class Client
    # A request that was published and confirmed, to wait on.
    class Submitted
      # The request's id, which replies carry as their correlation id; and
      # the task's id, as derived from the request.
      attr_reader :request_id, :task_id

      def initialize(client, request_id, task_id)
        @client = client
        @request_id = request_id
        @task_id = task_id
      end

      # The task's outcome: TaskFinished once it has ended, or TaskRejected
      # if the coordinator refused the request. Raises ReplyTimeoutError if
      # no reply comes within `timeout` seconds.
      def wait(timeout = 300.0)
        reply = @client.send(:waiter, @request_id).wait(timeout)
        return reply unless reply.nil?

        raise ReplyTimeoutError, "no reply for task request #{@request_id} (task #{@task_id}) within " \
                                 "#{timeout} s; is a coordinator serving that namespace running?"
      ensure
        @client.send(:forget, @request_id)
      end
    end

    # One reply, set once by the consumer thread and waited for by others.
    class Waiter
      def initialize
        @mutex = Mutex.new
        @set = ConditionVariable.new
        @reply = nil
      end

      def fulfil(reply)
        @mutex.synchronize do
          @reply ||= reply
          @set.broadcast
        end
      end

      # The reply, or nil at the deadline.
      def wait(timeout)
        deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
        @mutex.synchronize do
          while @reply.nil? && (left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)).positive?
            @set.wait(@mutex, left)
          end
          @reply
        end
      end
    end

    # The name of the private queue replies come to.
    attr_reader :reply_queue

    # Connects to the broker, declares the requests exchange (with its
    # alternate exchange and the unrouted queue; a user that may not is
    # left to the coordinators, as Broker#declare_shared says) and opens a
    # private reply queue. `amqp_url` may list a cluster's nodes, separated
    # by commas, as Broker.connect says; `amqps://` ones use the TLS files,
    # as Config's settings of the same names. Raises ConfigError if it is
    # not an AMQP URL or a TLS file cannot be used, and BrokerError if the
    # broker cannot be reached, refuses us, or fails the TLS handshake.
    def self.connect(amqp_url = Config::DEFAULT_AMQP_URL, name: 'tasker-client', heartbeat: 5, logger: nil,
                     tls_ca_file: nil, tls_cert_file: nil, tls_key_file: nil)
      logger ||= Logger.new($stderr, progname: 'tasker_client', level: Logger::INFO)
      tls = TlsFiles.new(ca_file: tls_ca_file, cert_file: tls_cert_file, key_file: tls_key_file).check!
      new({ amqp_url:, name:, heartbeat:, logger:, tls: }, logger)
    end

    # #connect with the settings of the environment, as Config.from_env
    # reads them: TASKER_AMQP_URL (the default URL without it),
    # TASKER_AMQP_PASSWORD or TASKER_AMQP_PASSWORD_FILE, and
    # TASKER_TLS_CA_FILE, TASKER_TLS_CERT_FILE and TASKER_TLS_KEY_FILE.
    def self.from_env(env = ENV, name: 'tasker-client', heartbeat: 5, logger: nil)
      url = Secrets.amqp_url_from_env(env, env['TASKER_AMQP_URL'] || Config::DEFAULT_AMQP_URL)
      tls = TlsFiles.from_env(env)
      connect(url, name:, heartbeat:, logger:, tls_ca_file: tls.ca_file, tls_cert_file: tls.cert_file,
                   tls_key_file: tls.key_file)
    end

    def initialize(connect_args, logger)
      @connect_args = connect_args
      @logger = logger
      @mutex = Mutex.new
      @reconnecting = Mutex.new
      @waiters = {}
      @tasks = {}
      @broker, @publisher, @reply_queue = open_session
    end

    # Asks for a task of template `namespace/name` (its highest version
    # unless `version` names one) with `context` as its input; a second
    # request with the same `idempotency_key` gets the same task. Returns a
    # Submitted; raises BrokerError if the broker did not confirm the request.
    def create_task(namespace, name, context, version: nil, idempotency_key: nil, request_id: nil)
      request_id ||= SecureRandom.uuid
      request = Messages.task_request(namespace, name, context, request_id:, version:, idempotency_key:)
      task_id = Messages.task_id_of(request)
      # The waiter is registered before the publish, so that no reply can
      # come before it.
      waiter(request_id)
      @mutex.synchronize { @tasks[task_id] = request_id }
      begin
        publish_request(namespace, Messages.encode(request), task_id, request_id)
      rescue StandardError
        forget(request_id)
        raise
      end
      Submitted.new(self, request_id, task_id)
    end

    # #create_task, then Submitted#wait.
    def run_task(namespace, name, context, timeout: 300.0, version: nil, idempotency_key: nil)
      create_task(namespace, name, context, version:, idempotency_key:).wait(timeout)
    end

    # Closes the connection; the reply queue goes with it.
    def close
      @broker.close
    end

    private

    # A connection, its publisher, and a private reply queue consumed by
    # #on_reply, with the requests exchange declared.
    def open_session
      broker = Broker.connect(@connect_args[:amqp_url], name: @connect_args[:name],
                                                        heartbeat: @connect_args[:heartbeat], logger: @logger,
                                                        tls: @connect_args[:tls])
      begin
        publisher = broker.publisher
        broker.declare_requests_exchange
        channel = broker.channel
        queue = channel.queue('', exclusive: true, auto_delete: true, durable: false)
        queue.subscribe(manual_ack: false) { |_info, props, body| on_reply(props, body) }
        [broker, publisher, queue.name]
      rescue *Broker::CONNECTION_ERRORS => e
        broker.close
        raise broker.error(e)
      rescue StandardError
        broker.close
        raise
      end
    end

    # Publishes a request with this client's reply queue; on a connection
    # that died, connects again and publishes it once more: the coordinator
    # knows a request by its id.
    def publish_request(namespace, body, task_id, request_id)
      [1, 2].each do |attempt|
        broker = @broker
        reconnect(broker) unless broker.open?
        properties = Broker.properties(Topology::MessageType::TASK_REQUEST, task_id, message_id: request_id,
                                                                                     correlation_id: request_id,
                                                                                     reply_to: @reply_queue)
        begin
          return @publisher.publish(Topology::REQUESTS_EXCHANGE, namespace, body, properties, mandatory: true)
        rescue BrokerError
          raise if attempt == 2 || @broker.open?
        end
      end
    end

    # Replaces the connection `dead` with a new one, unless another request
    # did so already.
    def reconnect(dead)
      @reconnecting.synchronize do
        next unless @broker.equal?(dead)

        @broker, @publisher, @reply_queue = open_session
        @logger.info("client connected again (broker=#{@broker.url})")
        dead.abandon
      end
    end

    def waiter(request_id)
      @mutex.synchronize { @waiters[request_id] ||= Waiter.new }
    end

    def forget(request_id)
      @mutex.synchronize do
        @waiters.delete(request_id)
        @tasks.delete_if { |_, r| r == request_id }
      end
    end

    # Hands a reply to its waiter. Replies are notifications on a private
    # queue: one that cannot be read is logged, not dead-lettered.
    def on_reply(props, body)
      reply, by_body = read_reply(props, body)
      return if reply.nil?

      @mutex.synchronize do
        waiter = @waiters[props.correlation_id || by_body]
        waiter = @waiters[by_body] if waiter.nil? && !by_body.nil?
        waiter&.fulfil(reply)
      end
    end

    # [reply, the request id its body names] or nil for another kind.
    def read_reply(props, body)
      case props.type
      when Topology::MessageType::TASK_FINISHED
        reply = TaskFinished.from_json(Messages.decode_object(body, Config::DEFAULT_MAX_MESSAGE_BYTES))
        [reply, reply.request_id || @mutex.synchronize { @tasks[reply.task_id] }]
      when Topology::MessageType::TASK_REJECTED
        reply = TaskRejected.from_json(Messages.decode_object(body, Config::DEFAULT_MAX_MESSAGE_BYTES))
        [reply, reply.request_id]
      end
    rescue Messages::DecodeError => e
      @logger.warn("unreadable reply from the coordinator; ignoring it (type=#{props.type} error=#{e.message})")
      nil
    end
  end
end
