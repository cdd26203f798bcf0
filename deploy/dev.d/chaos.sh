# shellcheck shell=bash
#
# deploy/dev part: chaos. The fault-injection suite (cmd_chaos), the
# server restarts it injects (cmd_restart: `deploy/dev restart rabbitmq|redis`,
# which tests/src/chaos.rs runs), and the PIDs it pauses (cmd_pid).
#
# Relies on deploy/dev for ROOT; on common.sh for say, die, lock and unlock;
# on rabbitmq.sh for rabbit_pid, stop_rabbitmq and ensure_rabbitmq; on
# redis.sh for redis_pid, stop_redis and ensure_redis; on apps.sh for
# cmd_servers and ensure_cargo; on python.sh for ensure_python_venv; on
# sdks.sh for ensure_node and ensure_ruby.

# restart rabbitmq|redis: stop and start a server that deploy/dev started,
# keeping its data. The chaos suite uses it to inject faults.
cmd_restart() {
  local what=${1:-}
  lock
  case $what in
    rabbitmq)
      rabbit_pid >/dev/null || die "RabbitMQ was not started by deploy/dev, so it cannot restart it; restart it yourself"
      stop_rabbitmq
      ensure_rabbitmq
      ;;
    redis)
      redis_pid >/dev/null || die "Redis was not started by deploy/dev, so it cannot restart it; restart it yourself"
      stop_redis
      ensure_redis
      ;;
    *) die "usage: deploy/dev restart rabbitmq|redis" ;;
  esac
  unlock
}

# pid rabbitmq|redis: the PID of the server process deploy/dev started (for
# RabbitMQ, the Erlang VM, not its launcher). The chaos suite pauses it with
# SIGSTOP and SIGCONT.
cmd_pid() {
  case ${1:-} in
    rabbitmq) pid_from "$RABBIT_BEAM_PIDFILE" beam || die "RabbitMQ was not started by deploy/dev (or is not running)" ;;
    redis) redis_pid || die "Redis was not started by deploy/dev (or is not running)" ;;
    *) die "usage: deploy/dev pid rabbitmq|redis" ;;
  esac
}

# chaos [ARGS...]: the fault-injection suite (target/release/chaos --help).
cmd_chaos() {
  cmd_servers
  ensure_cargo
  ensure_python_venv
  export TASKER_PYTHON=$PYTHON_VENV/bin/python
  # Its TypeScript and Ruby workers: node with the SDK built, ruby with Bunny.
  ensure_node
  ensure_ruby
  say "building the chaos suite"
  (cd "$ROOT" && cargo build --release -p tasker-e2e --bins) || die "the build failed (see the cargo output above)"
  (cd "$ROOT" && "$ROOT/target/release/chaos" "$@")
}
