# frozen_string_literal: true

require 'openssl'
require 'uri'

module TaskerWorker
  # Credentials given beside a URL rather than in it, as containers mount
  # secrets: `TASKER_AMQP_PASSWORD`, or the file `TASKER_AMQP_PASSWORD_FILE`
  # names. The same names and rules as the Rust worker's. Nothing here puts
  # a secret in an error: errors name the variable and the file.
  module Secrets
    AMQP_PASSWORD = 'TASKER_AMQP_PASSWORD'

    # What a password is percent-encoded of in a URL: every byte but RFC
    # 3986's unreserved characters.
    ENCODED = /[^A-Za-z0-9\-._~]/n

    module_function

    # The secret in variable `name` of `env`, or in the file that
    # `<name>_FILE` names, without its trailing line breaks; nil if neither
    # is set. Raises ConfigError if both are, or the file cannot be read.
    def secret(env, name)
      file_var = "#{name}_FILE"
      value = env[name]
      path = env[file_var]
      if value && path
        raise ConfigError, "both #{name} and #{file_var} are set; set one: the secret itself, or the file that holds it"
      end
      return value unless path

      begin
        File.read(path).sub(/[\r\n]+\z/, '')
      rescue SystemCallError, IOError => e
        raise ConfigError, "#{file_var}=#{path}: cannot read the file: #{reason(e)}"
      end
    end

    # `urls` (one URL, or several separated by commas) with the password of
    # TASKER_AMQP_PASSWORD or TASKER_AMQP_PASSWORD_FILE in each, in place of
    # any they had; `urls` as they are when neither is set.
    def amqp_url_from_env(env, urls)
      password = secret(env, AMQP_PASSWORD)
      password.nil? ? urls : with_password(urls, password, AMQP_PASSWORD)
    end

    # `urls` with `password`, percent-encoded, as every URL's password.
    # Raises ConfigError naming `variable` for a URL without a user name,
    # which cannot hold a password.
    def with_password(urls, password, variable)
      encoded = password.b.gsub(ENCODED) { |byte| format('%%%02X', byte.ord) }
      Broker.urls(urls).map do |url|
        uri = parse(url, variable)
        if uri.user.to_s.empty?
          raise ConfigError, "#{Broker.redact(url)} has no user name, so #{variable} cannot be added to it; " \
                             'write it like amqp://tasker@host:5672/%2f'
        end
        uri.password = encoded
        uri.to_s
      end.join(',')
    end

    # Why a file could not be read, without the path Ruby appends.
    def reason(error)
      error.message.split(' @ ').first
    end

    def parse(url, variable)
      URI.parse(url)
    rescue URI::Error
      raise ConfigError, "#{Broker.redact(url)} is not a URL, so #{variable} cannot be added to it"
    end
    private_class_method :parse
  end

  # The files of TLS connections to `amqps://` URLs: a PEM file of CA
  # certificates trusted besides the system's (`TASKER_TLS_CA_FILE`), and a
  # client certificate and its key for mutual TLS (`TASKER_TLS_CERT_FILE`,
  # `TASKER_TLS_KEY_FILE`). `amqp://` URLs ignore them.
  class TlsFiles
    CA = 'TASKER_TLS_CA_FILE'
    CERT = 'TASKER_TLS_CERT_FILE'
    KEY = 'TASKER_TLS_KEY_FILE'

    # What to check when a TLS handshake fails, for error messages.
    HINT = "check that #{CA} holds the CA that signed the broker's certificate, and #{CERT}/#{KEY} if it asks " \
           'for a client certificate'.freeze

    attr_reader :ca_file, :cert_file, :key_file

    def initialize(ca_file: nil, cert_file: nil, key_file: nil)
      @ca_file = ca_file
      @cert_file = cert_file
      @key_file = key_file
    end

    # The files `env` names. Raises ConfigError if only one of the
    # certificate and the key is set.
    def self.from_env(env)
      new(ca_file: env[CA], cert_file: env[CERT], key_file: env[KEY]).check!
    end

    # Raises ConfigError unless the certificate and the key come together.
    def check!
      return self if cert_file.nil? == key_file.nil?

      raise ConfigError, "set both #{CERT} and #{KEY} for a client certificate, or neither " \
                         "(#{CERT}=#{cert_file.inspect}, #{KEY}=#{key_file.inspect})"
    end

    # Bunny's options for an `amqps://` connection: the broker's certificate
    # verified, its host name too, against the system's trusted roots
    # (OpenSSL's default CA file and directory, or SSL_CERT_FILE and
    # SSL_CERT_DIR) and the CA file; with the client certificate if given.
    # The files are read at every connection, so renewed ones are picked up
    # by the next. Raises ConfigError naming the variable and the file that
    # cannot be read or is not PEM.
    def bunny_options
      check!
      options = { tls: true, verify_peer: true, tls_certificate_store: store, tls_silence_warnings: true }
      return options if cert_file.nil?

      read(CERT, cert_file) { |pem| OpenSSL::X509::Certificate.new(pem) }
      read(KEY, key_file) { |pem| OpenSSL::PKey.read(pem) }
      options.merge(tls_cert: cert_file, tls_key: key_file)
    end

    private

    def store
      store = OpenSSL::X509::Store.new
      store.set_default_paths
      return store if ca_file.nil?

      read(CA, ca_file) { |_pem| store.add_file(ca_file) }
      store
    end

    # Reads `path` and checks it with the block; raises ConfigError naming
    # `variable` and `path`, never the content.
    def read(variable, path)
      pem = begin
        File.read(path)
      rescue SystemCallError, IOError => e
        raise ConfigError, "#{variable}=#{path}: cannot read the file: #{Secrets.reason(e)}"
      end
      begin
        raise ArgumentError, 'no PEM data' unless pem.include?('-----BEGIN ')

        yield pem
      rescue OpenSSL::OpenSSLError, ArgumentError
        raise ConfigError, "#{variable}=#{path}: the file is not PEM of what #{variable} needs"
      end
    end
  end
end
