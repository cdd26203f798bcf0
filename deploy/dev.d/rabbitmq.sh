# shellcheck shell=bash
#
# deploy/dev part: RabbitMQ. The node deploy/dev runs under the state dir:
# its layout, starting it (installing rabbitmq-server if needed), waiting for
# it, creating the user and vhost TASKER_AMQP_URL names, stopping it and the
# epmd it started, and running rabbitmqctl against it. The other parts use
# ensure_rabbitmq, stop_rabbitmq, stop_epmd, rabbit_pid and cmd_rabbitmqctl;
# print_status (apps.sh) also reads RABBIT_LOG and RABBIT_BEAM_PIDFILE.
#
# Relies on deploy/dev for STATE; on common.sh for AMQP_HOST, AMQP_PORT,
# AMQP_USER, AMQP_PASS and AMQP_VHOST (parse_urls), the output helpers, have,
# is_local, port_open, proc_alive, pid_from, stop_process, show_log_tail,
# rotate_log and install_packages.

# --------------------------------------------------------------- settings ---
RABBIT_READY_TIMEOUT=60  # seconds until RabbitMQ accepts AMQP connections
RABBIT_STOP_TIMEOUT=30
NOFILE_WANTED=65536      # open-file limit for RabbitMQ

# RabbitMQ layout under the state dir.
RABBIT_DIR=$STATE/rabbitmq            # data, owned by the rabbitmq user
RABBIT_LOG=$STATE/rabbitmq.log        # everything the node prints
RABBIT_PIDFILE=$STATE/rabbitmq.pid    # the rabbitmq-server launcher we started
RABBIT_BEAM_PIDFILE=$RABBIT_DIR/beam.pid  # the Erlang VM (written by RabbitMQ)
EPMD_MARKER=$STATE/epmd.started       # exists if our RabbitMQ started epmd

# --------------------------------------------------------------- RabbitMQ ---

rabbit_pid() {  # the PID of a RabbitMQ deploy/dev started, if it is running
  pid_from "$RABBIT_PIDFILE" rabbitmq-server || pid_from "$RABBIT_BEAM_PIDFILE" beam
}

find_rabbit_tools() {  # sets RABBIT_SBIN, the directory with rabbitmq-server & co.
  local p
  for p in /usr/lib/rabbitmq/bin "$(dirname -- "$(command -v rabbitmq-server 2>/dev/null || echo /nonexistent/x)")"; do
    if [[ -x $p/rabbitmq-server ]]; then RABBIT_SBIN=$p; return 0; fi
  done
  return 1
}

# Sets RABBIT_NODE and RABBIT_RUN (the command prefix that runs a RabbitMQ
# program as the right user with our environment; the CLI tools need exactly
# the same HOME, for the Erlang cookie, and node name as the server).
rabbit_env() {
  local home user=
  # The node's name and distribution port follow its plain AMQP port, which
  # stays 5672 for the node deploy/dev runs while it listens for TLS only.
  local base=${RABBIT_BASE_PORT:-$AMQP_PORT}
  if [[ -f $RABBIT_DIR/nodename ]]; then
    RABBIT_NODE=$(<"$RABBIT_DIR/nodename")
  elif ((base == 5672)); then
    RABBIT_NODE=tasker@localhost
  else
    RABBIT_NODE=tasker-$base@localhost
  fi
  if ((EUID == 0)) && id rabbitmq >/dev/null 2>&1 && [[ ! -f $RABBIT_DIR/run-as-root ]]; then
    user=rabbitmq
    home=$(getent passwd rabbitmq | cut -d: -f6)
    [[ -d $home ]] || home=$RABBIT_DIR/home
  else
    home=$RABBIT_DIR/home
  fi
  RABBIT_RUN=()
  [[ -z $user ]] || RABBIT_RUN=(setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups)
  RABBIT_RUN+=(env
    HOME="$home" ${user:+USER=$user LOGNAME=$user}
    RABBITMQ_NODENAME="$RABBIT_NODE"
    RABBITMQ_DIST_PORT=$((base + 20000))
    RABBITMQ_MNESIA_BASE="$RABBIT_DIR/mnesia"
    RABBITMQ_LOG_BASE="$RABBIT_DIR/log"
    RABBITMQ_LOGS=-
    RABBITMQ_PID_FILE="$RABBIT_BEAM_PIDFILE"
    RABBITMQ_CONFIG_FILE="$RABBIT_DIR/rabbitmq.conf"
    RABBITMQ_ADVANCED_CONFIG_FILE="$RABBIT_DIR/advanced.config"
    RABBITMQ_CONF_ENV_FILE="$RABBIT_DIR/rabbitmq-env.conf"
    RABBITMQ_ENABLED_PLUGINS_FILE="$RABBIT_DIR/enabled_plugins"
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
    ERL_EPMD_ADDRESS=127.0.0.1)
  # The plain listener, unless the node listens for TLS only (rabbitmq.conf
  # then says `listeners.tcp = none`, which these would override).
  if ! grep -qs '^listeners.tcp = none' "$RABBIT_DIR/rabbitmq.conf"; then
    RABBIT_RUN+=(RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$base")
  fi
  RABBIT_USER=$user
}

rabbitmqctl_run() {  # rabbitmqctl_run ARGS...: rabbitmqctl against our node
  find_rabbit_tools || die "RabbitMQ is not installed (run: deploy/dev servers)"
  rabbit_env
  (cd "$RABBIT_DIR" 2>/dev/null || cd /; "${RABBIT_RUN[@]}" "$RABBIT_SBIN/rabbitmqctl" "$@")
}

epmd_running() { have epmd && epmd -names >/dev/null 2>&1; }

raise_fd_limit() {  # as high as allowed, up to NOFILE_WANTED
  local hard
  hard=$(ulimit -Hn)
  if [[ $hard != unlimited ]] && ((hard < NOFILE_WANTED)); then
    ulimit -Hn "$NOFILE_WANTED" 2>/dev/null || true
  fi
  ulimit -n "$NOFILE_WANTED" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
}

ensure_rabbitmq() {
  local where="$AMQP_HOST:$AMQP_PORT" pid started_port
  if is_local "$AMQP_HOST" && pid=$(rabbit_pid); then
    started_port=$(cat "$RABBIT_DIR/port" 2>/dev/null || echo "$AMQP_PORT")
    [[ $started_port == "$AMQP_PORT" ]] \
      || die "the RabbitMQ deploy/dev started (pid $pid) listens on port $started_port, but TASKER_AMQP_URL says $AMQP_PORT. Run 'deploy/dev down' first."
    if port_open "$AMQP_HOST" "$AMQP_PORT"; then
      say "RabbitMQ already running at $where (started by deploy/dev, pid $pid)"
    else
      say "RabbitMQ started by deploy/dev (pid $pid) is still starting; waiting"
      wait_for_rabbitmq
    fi
    [[ $RABBIT_DIR == "$STATE/rabbitmq" ]] && rabbit_ensure_identities
    return 0
  fi
  if port_open "$AMQP_HOST" "$AMQP_PORT"; then
    say "using RabbitMQ already running at $where"
    return 0
  fi
  is_local "$AMQP_HOST" \
    || die "nothing accepts connections at $where (TASKER_AMQP_URL). That host is not local, so deploy/dev will not start RabbitMQ there: start it, or unset TASKER_AMQP_URL to get a local one."
  start_rabbitmq
}

start_rabbitmq() {
  find_rabbit_tools || install_packages rabbitmq-server
  find_rabbit_tools || die "rabbitmq-server is still not found after installing it"
  rm -f "$RABBIT_PIDFILE" "$RABBIT_BEAM_PIDFILE" "$RABBIT_DIR/nodename" "$RABBIT_DIR/run-as-root"
  mkdir -p "$RABBIT_DIR/mnesia" "$RABBIT_DIR/log"
  rabbit_env
  # The consistent-hash exchange splits a service's steps over several
  # queues (TASKER_PARTITIONS); it ships with RabbitMQ, off by default.
  echo '[rabbitmq_consistent_hash_exchange].' >"$RABBIT_DIR/enabled_plugins"
  [[ -f $RABBIT_DIR/rabbitmq.conf ]] \
    || echo '# RabbitMQ settings for deploy/dev; see https://www.rabbitmq.com/configure.html' >"$RABBIT_DIR/rabbitmq.conf"
  # The node deploy/dev runs (not a cluster's) listens for TLS too, or only.
  sed -i '/^# tasker-dev tls/,$d' "$RABBIT_DIR/rabbitmq.conf"
  if [[ $RABBIT_DIR == "$STATE/rabbitmq" ]]; then
    ensure_tls_certs
    rabbit_tls_config >>"$RABBIT_DIR/rabbitmq.conf"
  fi
  rabbit_env
  echo "$RABBIT_NODE" >"$RABBIT_DIR/nodename"
  echo "$AMQP_PORT" >"$RABBIT_DIR/port"
  if [[ -n $RABBIT_USER ]]; then
    chown -R rabbitmq:rabbitmq "$RABBIT_DIR"
    if ! (cd / && "${RABBIT_RUN[@]}" test -w "$RABBIT_DIR/mnesia"); then
      # e.g. the checkout lives under /root (mode 700): the rabbitmq user
      # cannot reach the state dir, so run the node as root instead.
      warn "the rabbitmq user cannot reach $RABBIT_DIR (a parent directory is not searchable by other users); running RabbitMQ as root instead"
      touch "$RABBIT_DIR/run-as-root"
      rabbit_env
    fi
  fi
  [[ -n $RABBIT_USER ]] || mkdir -p "$RABBIT_DIR/home"

  local epmd_before=1
  epmd_running || epmd_before=0
  rotate_log "$RABBIT_LOG"
  say "starting RabbitMQ on $AMQP_HOST:$AMQP_PORT (node $RABBIT_NODE, log: $RABBIT_LOG)"
  (
    cd "$RABBIT_DIR"
    raise_fd_limit
    exec 9>&-
    exec setsid "${RABBIT_RUN[@]}" "$RABBIT_SBIN/rabbitmq-server"
  ) </dev/null >>"$RABBIT_LOG" 2>&1 &
  echo $! >"$RABBIT_PIDFILE"
  wait_for_rabbitmq
  if ((epmd_before == 0)) && epmd_running; then touch "$EPMD_MARKER"; fi
  rabbit_ensure_account
  [[ $RABBIT_DIR == "$STATE/rabbitmq" ]] && rabbit_ensure_identities
  return 0
}

wait_for_rabbitmq() {
  local start=$SECONDS pid launcher
  launcher=$(tr -dc '0-9' <"$RABBIT_PIDFILE" 2>/dev/null || true)
  until port_open "$AMQP_HOST" "$AMQP_PORT"; do
    # Until it has exec'd, the launcher's command line is still this
    # script's, which rabbit_pid does not recognise: a live launcher PID
    # counts as starting.
    if ! pid=$(rabbit_pid) && ! { [[ -n $launcher ]] && proc_alive "$launcher" && pid=$launcher; }; then
      show_log_tail "$RABBIT_LOG"
      rm -f "$RABBIT_PIDFILE" "$RABBIT_BEAM_PIDFILE"
      die "RabbitMQ exited while starting. The log above says why; the full log is $RABBIT_LOG"
    fi
    if ((SECONDS - start >= RABBIT_READY_TIMEOUT)); then
      show_log_tail "$RABBIT_LOG"
      die "RabbitMQ (pid $pid) did not accept connections on $AMQP_HOST:$AMQP_PORT within ${RABBIT_READY_TIMEOUT}s. It is still running; check $RABBIT_LOG, then run 'deploy/dev servers' again to keep waiting or 'deploy/dev down' to stop it."
    fi
    sleep 0.5
  done
  info "RabbitMQ accepts connections on $AMQP_HOST:$AMQP_PORT ($((SECONDS - start))s)"
}

# A fresh node only has guest/guest and vhost "/": create what the URL asks for.
rabbit_ensure_account() {
  [[ $AMQP_USER == guest && $AMQP_VHOST == / ]] && return 0
  say "creating RabbitMQ user '$AMQP_USER' and vhost '$AMQP_VHOST' from TASKER_AMQP_URL"
  rabbitmqctl_run -q add_vhost "$AMQP_VHOST" >/dev/null 2>&1 || true
  if [[ $AMQP_USER != guest ]]; then
    rabbitmqctl_run -q add_user "$AMQP_USER" "$AMQP_PASS" >/dev/null 2>&1 \
      || rabbitmqctl_run -q change_password "$AMQP_USER" "$AMQP_PASS" >/dev/null
  fi
  rabbitmqctl_run -q set_permissions -p "$AMQP_VHOST" "$AMQP_USER" '.*' '.*' '.*' >/dev/null \
    || die "could not grant '$AMQP_USER' access to vhost '$AMQP_VHOST' (see $RABBIT_LOG)"
}

stop_rabbitmq() {
  local pid beam wrapper
  pid=$(rabbit_pid) || { rm -f "$RABBIT_PIDFILE" "$RABBIT_BEAM_PIDFILE"; return 1; }
  beam=$(pid_from "$RABBIT_BEAM_PIDFILE" beam || true)
  wrapper=$(pid_from "$RABBIT_PIDFILE" rabbitmq-server || true)
  say "stopping RabbitMQ (pid ${beam:-$wrapper})"
  # SIGTERM makes the Erlang VM shut RabbitMQ down cleanly; the launcher
  # script exits when the VM does.
  [[ -z $beam ]] || stop_process RabbitMQ "$beam" "$RABBIT_STOP_TIMEOUT"
  [[ -z $wrapper ]] || stop_process "RabbitMQ launcher" "$wrapper" 5
  rm -f "$RABBIT_PIDFILE" "$RABBIT_BEAM_PIDFILE" "$RABBIT_DIR/port" "$RABBIT_DIR/nodename"
}

# epmd (the Erlang port mapper) is started by the first Erlang node and
# outlives it. Stop it only if our RabbitMQ started it and no node uses it.
stop_epmd() {
  [[ -f $EPMD_MARKER ]] || return 1
  rm -f "$EPMD_MARKER"
  epmd_running || return 1
  if epmd -names 2>/dev/null | grep -q '^name '; then
    info "leaving epmd running: other Erlang nodes still use it"
    return 1
  fi
  say "stopping epmd (started by our RabbitMQ)"
  epmd -kill >/dev/null 2>&1 || warn "epmd -kill failed; epmd is still running"
}

cmd_rabbitmqctl() {
  rabbitmqctl_run "$@"
}
