# frozen_string_literal: true

module TaskerWorker
  # How a worker runs. Every setting has a default except `service`.
  class Config
    DEFAULT_AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672/%2f'
    DEFAULT_MAX_MESSAGE_BYTES = 1_048_576
    MAX_NAME_LEN = 100
    NAME = /\A[A-Za-z0-9_-]+\z/

    # service: the service this worker is part of, such as `billing`; the
    #   workers of one service share its queue of each namespace's steps.
    # amqp_url: the RabbitMQ URL, or the URLs of a cluster's nodes separated
    #   by commas.
    # concurrency: how many steps run at once: the delivery threads, and the
    #   consumer's prefetch. With several queues (`partitions`), each queue's
    #   consumer gets a prefetch of ceil(concurrency / partitions), since
    #   RabbitMQ applies it per consumer; the threads still bound the steps
    #   running at once.
    # partitions: how many queues the service's steps of each namespace are
    #   split over, from 1 to 64, the same on every worker of the service.
    #   One, the default, is the service's single queue; more spread its
    #   steps by task id over that many queues, through a consistent-hash
    #   exchange (the broker's `rabbitmq_consistent_hash_exchange` plugin), so
    #   that a busy service is not held to the one node that leads its queue.
    # heartbeat: seconds between AMQP heartbeats.
    # shutdown_grace: seconds in-flight steps get to finish on shutdown.
    # max_message_bytes: the size limit of a message, received or sent.
    # max_redeliveries: a step delivered more often is dead-lettered (< 100).
    # remembered_results: how many published results are kept to answer a
    #   redelivered step without running its handler again.
    # announce_every: seconds between the worker's announcements.
    # health_addr: where to serve `/healthz` and `/readyz`, as `host:port`
    #   or [host, port]; nil (the default) serves nothing.
    # tls_ca_file: a PEM file of CA certificates trusted for `amqps://`
    #   URLs besides the system's, such as a private CA's.
    # tls_cert_file, tls_key_file: the client certificate and its key (PEM)
    #   for brokers that ask for one (mutual TLS); both or neither.
    DEFAULTS = {
      service: '', amqp_url: DEFAULT_AMQP_URL, concurrency: 32, partitions: 1, heartbeat: 5,
      shutdown_grace: 30.0, max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES, max_redeliveries: 5,
      remembered_results: 10_000, announce_every: 10.0, name: nil, logger: nil, health_addr: nil,
      tls_ca_file: nil, tls_cert_file: nil, tls_key_file: nil
    }.freeze

    attr_accessor(*DEFAULTS.keys)

    # The TLS settings, by the variable from_env reads each from.
    TLS_VARIABLES = { tls_ca_file: TlsFiles::CA, tls_cert_file: TlsFiles::CERT, tls_key_file: TlsFiles::KEY }.freeze

    # Every setting above, by name; a name that is not one is an error.
    def initialize(**settings)
      unknown = settings.keys - DEFAULTS.keys
      raise ArgumentError, "unknown setting #{unknown.join(', ')}; the settings are #{DEFAULTS.keys.join(', ')}" \
        unless unknown.empty?

      DEFAULTS.merge(settings).each { |setting, value| public_send(:"#{setting}=", value) }
      @name ||= "tasker-worker-#{Process.pid}"
      @health_addr = Config.parse_address(health_addr, 'health_addr') if health_addr.is_a?(String)
    end

    # A configuration from the environment, as the other SDKs read it:
    # TASKER_AMQP_URL, TASKER_AMQP_PASSWORD or TASKER_AMQP_PASSWORD_FILE
    # (the password of every URL, in place of any there), TASKER_SERVICE,
    # TASKER_AMQP_HEARTBEAT, TASKER_MAX_MESSAGE_BYTES, TASKER_CONCURRENCY,
    # TASKER_PARTITIONS, TASKER_HEALTH_ADDR, and TASKER_TLS_CA_FILE,
    # TASKER_TLS_CERT_FILE and TASKER_TLS_KEY_FILE (TlsFiles).
    def self.from_env(env = ENV, **overrides)
      config = new(**overrides)
      config.amqp_url = Secrets.amqp_url_from_env(env, env['TASKER_AMQP_URL'] || config.amqp_url)
      TLS_VARIABLES.each { |setting, variable| config.public_send(:"#{setting}=", env[variable]) if env[variable] }
      config.tls.check!
      config.service = env['TASKER_SERVICE'] if env['TASKER_SERVICE']
      config.heartbeat = Float(env['TASKER_AMQP_HEARTBEAT']) if env['TASKER_AMQP_HEARTBEAT']
      config.max_message_bytes = Integer(env['TASKER_MAX_MESSAGE_BYTES'], 10) if env['TASKER_MAX_MESSAGE_BYTES']
      config.concurrency = Integer(env['TASKER_CONCURRENCY'], 10) if env['TASKER_CONCURRENCY']
      config.partitions = parse_partitions(env['TASKER_PARTITIONS'], 'TASKER_PARTITIONS') if env['TASKER_PARTITIONS']
      config.health_addr = parse_address(env['TASKER_HEALTH_ADDR'], 'TASKER_HEALTH_ADDR') if env['TASKER_HEALTH_ADDR']
      config
    rescue ArgumentError => e
      raise ConfigError, "an environment setting is not a number: #{e.message}"
    end

    # The TLS files of `amqps://` connections.
    def tls
      TlsFiles.new(ca_file: tls_ca_file, cert_file: tls_cert_file, key_file: tls_key_file)
    end

    # Broker.connect's settings besides the URL.
    def connection
      { name:, heartbeat:, tls: }
    end

    # Raises ConfigError for a configuration that cannot work.
    def check!
      tls.check!
      problem = Config.name_problem(service)
      if problem
        raise ConfigError, "the worker's service name #{service.inspect} #{problem}; set Config#service " \
                           '(or TASKER_SERVICE) to the service it is part of, such as "billing"'
      end
      unless concurrency.is_a?(Integer) && concurrency.between?(1, 65_535)
        raise ConfigError, "concurrency is #{concurrency.inspect}; give a number of steps from 1 to 65535"
      end
      unless partitions.is_a?(Integer) && partitions.between?(1, Topology::MAX_PARTITIONS)
        raise ConfigError, "partitions is #{partitions.inspect}; give a number of queues from 1 to 64"
      end
      unless max_message_bytes.is_a?(Integer) && max_message_bytes.positive?
        raise ConfigError, "max_message_bytes is #{max_message_bytes.inspect}; give a positive number of bytes"
      end
      return if max_redeliveries.is_a?(Integer) && max_redeliveries.between?(0, Topology::DELIVERY_LIMIT - 1)

      raise ConfigError, "max_redeliveries is #{max_redeliveries.inspect}; keep it from 0 to " \
                         "#{Topology::DELIVERY_LIMIT - 1}, below the queues' delivery limit"
    end

    # The prefetch of each of the worker's consumers: RabbitMQ applies it per
    # consumer, so the queues of a service split over several share the
    # concurrency.
    def prefetch
      (concurrency.to_f / partitions).ceil
    end

    # [host, port] from `host:port` (`[::1]:9104` for IPv6). Raises
    # ConfigError naming `what` and an example.
    def self.parse_address(text, what)
      host, sep, port = text.to_s.strip.rpartition(':')
      host = host.delete_prefix('[').delete_suffix(']')
      if sep.empty? || host.empty? || !/\A\d+\z/.match?(port) || port.to_i > 65_535
        raise ConfigError, "#{what}=#{text.inspect} is not an address like 0.0.0.0:8080"
      end

      [host, port.to_i]
    end

    # How many queues a service's steps are split over, from 1 to
    # Topology::MAX_PARTITIONS. Raises ConfigError naming `what`, the value
    # and what is allowed.
    def self.parse_partitions(text, what)
      value = /\A\d+\z/.match?(text.to_s.strip) ? text.to_s.strip.to_i : 0
      return value if value.between?(1, Topology::MAX_PARTITIONS)

      raise ConfigError, "#{what}=#{text.inspect} is not a whole number from 1 to #{Topology::MAX_PARTITIONS}; " \
                         "give the number of queues the service's steps are split over (1, the default, is one " \
                         'queue), the same on every worker of the service'
    end

    # Why `name` cannot be part of a queue name or a routing key, if it cannot.
    def self.name_problem(name)
      return 'is empty; give it a name' if name.nil? || name.empty?
      if name.bytesize > MAX_NAME_LEN
        return "is #{name.bytesize} bytes long; shorten it to #{MAX_NAME_LEN} bytes or fewer"
      end
      return 'may contain only ASCII letters, digits, _ and -' unless NAME.match?(name)

      nil
    end
  end
end
