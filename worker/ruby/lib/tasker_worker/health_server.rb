# frozen_string_literal: true

require 'io/wait'
require 'socket'

module TaskerWorker
  # Serves a Health's `/healthz` and `/readyz`, and the process's Metrics on
  # `/metrics`, over HTTP/1.1 on a TCPServer: three fixed routes need no web
  # framework. Each connection gets one answer,
  # then is closed.
  class HealthServer
    REASONS = { 200 => 'OK', 404 => 'Not Found', 405 => 'Method Not Allowed',
                503 => 'Service Unavailable' }.freeze
    TEXT = 'text/plain; charset=utf-8'
    READ_TIMEOUT = 10
    MAX_HEAD_BYTES = 65_536

    attr_reader :host, :port

    # Starts serving `health` on `host:port` (port 0: any free port; see
    # #port). Raises SystemCallError or SocketError if it cannot bind.
    def initialize(host, port, health, logger: nil)
      @health = health
      @server = TCPServer.new(host, port)
      @host = host
      @port = @server.addr[1]
      @logger = logger
      @thread = Thread.new { accept_loop }
      @logger&.info("health endpoints listening (address=#{host}:#{@port})")
    end

    # Stops serving.
    def close
      @server.close unless @server.closed?
      @thread.join(2)
    rescue IOError
      nil
    end

    # [status, content type, body] of a request.
    def self.route(method, path, health)
      return [405, TEXT, "use GET\n"] unless %w[GET HEAD].include?(method)

      case path
      when '/healthz' then [200, TEXT, health.report]
      when '/readyz' then [health.ready? ? 200 : 503, TEXT, health.report]
      when '/metrics' then [200, Metrics::CONTENT_TYPE, Metrics.global.render]
      else [404, TEXT, "not found; try /healthz, /readyz or /metrics\n"]
      end
    end

    private

    def accept_loop
      loop do
        client = @server.accept
        Thread.new(client) { |socket| answer(socket) }
      end
    rescue IOError, SystemCallError
      nil # closed
    end

    def answer(socket)
      head = read_head(socket)
      return if head.nil?

      method, target = head.split(' ', 3)
      path = target.to_s.split('?', 2).first
      status, content_type, body = HealthServer.route(method.to_s, path, @health)
      body = body.b
      response = "HTTP/1.1 #{status} #{REASONS[status]}\r\nContent-Type: #{content_type}\r\n" \
                 "Content-Length: #{body.bytesize}\r\nConnection: close\r\n\r\n".b
      response << body unless method == 'HEAD'
      socket.write(response)
    rescue IOError, SystemCallError
      nil # a probe that hung up gets nothing
    ensure
      socket.close unless socket.closed?
    end

    # The request's head, up to its blank line; nil if the probe sent none
    # in time.
    def read_head(socket)
      head = +''
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + READ_TIMEOUT
      until head.include?("\r\n\r\n")
        left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
        return nil if left <= 0 || head.bytesize > MAX_HEAD_BYTES || socket.wait_readable(left).nil?

        chunk = socket.read_nonblock(4096, exception: false)
        return nil if chunk.nil?

        head << chunk unless chunk == :wait_readable
      end
      head.force_encoding(Encoding::BINARY)
    end
  end
end
