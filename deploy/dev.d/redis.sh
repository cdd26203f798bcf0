# shellcheck shell=bash
#
# deploy/dev part: Redis. The server deploy/dev runs under the state dir:
# starting it (installing redis-server if needed), waiting until it answers
# PING, and stopping it. The other parts use ensure_redis, stop_redis,
# redis_pid and redis_ping; print_status (apps.sh) also reads REDIS_LOG.
#
# Relies on deploy/dev for STATE; on common.sh for REDIS_HOST, REDIS_PORT,
# REDIS_USER, REDIS_PASS and REDIS_CLI (parse_urls), the output helpers, have,
# is_local, port_open, pid_from, stop_process, show_log_tail, rotate_log and
# install_packages.

# --------------------------------------------------------------- settings ---
REDIS_READY_TIMEOUT=15   # seconds until Redis answers PING

REDIS_DIR=$STATE/redis
REDIS_LOG=$STATE/redis.log
REDIS_PIDFILE=$STATE/redis.pid

# ------------------------------------------------------------------ Redis ---

redis_pid() { pid_from "$REDIS_PIDFILE" redis-server; }

redis_ping() {
  if have redis-cli; then
    [[ $(timeout 3 "${REDIS_CLI[@]}" ping 2>/dev/null) == PONG ]]
  else
    port_open "$REDIS_HOST" "$REDIS_PORT"
  fi
}

ensure_redis() {
  local where="$REDIS_HOST:$REDIS_PORT" pid
  if is_local "$REDIS_HOST" && pid=$(redis_pid); then
    if redis_ping; then
      say "Redis already running at $where (started by deploy/dev, pid $pid)"
    else
      say "Redis started by deploy/dev (pid $pid) does not answer at $where yet; waiting"
      wait_for_redis
    fi
    return 0
  fi
  if redis_ping; then
    say "using Redis already running at $where"
    return 0
  fi
  if port_open "$REDIS_HOST" "$REDIS_PORT"; then
    die "something accepts connections at $where but does not answer Redis PING (not Redis? wrong password in TASKER_REDIS_URL?). Free the port or change TASKER_REDIS_URL."
  fi
  is_local "$REDIS_HOST" \
    || die "nothing accepts connections at $where (TASKER_REDIS_URL). That host is not local, so deploy/dev will not start Redis there: start it, or unset TASKER_REDIS_URL to get a local one."
  start_redis
}

start_redis() {
  if ! have redis-server || ! have redis-cli; then install_packages redis-server; fi
  have redis-server || die "redis-server is still not found after installing it"
  mkdir -p "$REDIS_DIR"
  rm -f "$REDIS_PIDFILE"
  rotate_log "$REDIS_LOG"
  local auth=()
  if [[ -n $REDIS_PASS && -z $REDIS_USER ]]; then
    auth=(--requirepass "$REDIS_PASS")
  else
    # The ACL users of security.sh: the coordinators', the operator's.
    redis_acl_file "$REDIS_DIR/users.acl"
    auth=(--aclfile "$REDIS_DIR/users.acl")
  fi
  ensure_tls_certs
  redis_tls_args
  say "starting Redis on $REDIS_HOST:$REDIS_PORT (log: $REDIS_LOG)"
  (cd "$REDIS_DIR" && redis-server \
    --port "${REDIS_BASE_PORT:-$REDIS_PORT}" --bind 127.0.0.1 --dir "$REDIS_DIR" \
    --appendonly yes --appendfsync everysec \
    --daemonize yes --pidfile "$REDIS_PIDFILE" --logfile "$REDIS_LOG" \
    "${auth[@]}" "${REDIS_TLS_ARGS[@]}" </dev/null 9>&-) \
    || { show_log_tail "$REDIS_LOG"; die "redis-server failed to start; see $REDIS_LOG"; }
  wait_for_redis
}

wait_for_redis() {
  local start=$SECONDS
  until redis_ping; do
    # the daemon writes its PID file right after forking
    if ((SECONDS - start >= 2)) && ! redis_pid >/dev/null; then
      show_log_tail "$REDIS_LOG"
      rm -f "$REDIS_PIDFILE"
      die "Redis exited while starting. The log above says why; the full log is $REDIS_LOG"
    fi
    if ((SECONDS - start >= REDIS_READY_TIMEOUT)); then
      show_log_tail "$REDIS_LOG"
      die "Redis did not answer PING on $REDIS_HOST:$REDIS_PORT within ${REDIS_READY_TIMEOUT}s; check $REDIS_LOG, or stop it with 'deploy/dev down'."
    fi
    sleep 0.2
  done
  info "Redis answers PING on $REDIS_HOST:$REDIS_PORT ($((SECONDS - start))s)"
}

stop_redis() {
  local pid
  pid=$(redis_pid) || { rm -f "$REDIS_PIDFILE"; return 1; }
  say "stopping Redis (pid $pid)"
  stop_process Redis "$pid"   # SIGTERM: Redis flushes the AOF and exits
  rm -f "$REDIS_PIDFILE"
}
