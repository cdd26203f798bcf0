# shellcheck shell=bash
#
# deploy/dev part: the coordinator and workers, and the commands about the
# whole stack. Building them (ensure_cargo, build), starting and stopping the
# processes in APPS (app_command, app_pid, start_app, wait_ready, stop_apps),
# and the commands servers, up, down, status and logs (cmd_servers, cmd_up,
# cmd_down, print_status, cmd_status, cmd_logs), and the microservices
# namespace's two layouts (use_layout, switch_layout, build_polyglot).
#
# Relies on deploy/dev for ROOT, STATE and BIN_DIR; on common.sh for the
# output helpers, have, port_open, proc_alive, pid_from, stop_process,
# show_log_tail, rotate_log, lock, unlock, install_packages and AMQP_HOST,
# AMQP_PORT, REDIS_HOST, REDIS_PORT (parse_urls); on rabbitmq.sh for
# ensure_rabbitmq, stop_rabbitmq, stop_epmd, rabbit_pid, RABBIT_LOG and
# RABBIT_BEAM_PIDFILE; on redis.sh for ensure_redis, stop_redis, redis_pid,
# redis_ping and REDIS_LOG; on traces.sh for setup_traces, TRACES_HTTP_PORT,
# TRACES_GRPC_PORT and TASKER_ROTEL_AGENT (exported by ensure_rotel), since
# the trace receiver runs as the process `traces`; on python.sh for
# ensure_python_venv and PYTHON_VENV; on sdks.sh for ensure_node,
# ensure_ruby, TYPESCRIPT_EXAMPLE and RUBY_EXAMPLE (the polyglot layout's
# services).

# --------------------------------------------------------------- settings ---
# The microservices namespace runs as one process per service, in one of two
# layouts, each a list of SERVICE:LANGUAGE:
# - usual: its seed's four services, user and preferences in Rust, billing
#   and notifications in Python;
# - polyglot (`up --polyglot`): the five handlers in four languages, each in
#   its own process: create_user_account in Ruby (service accounts),
#   setup_billing_profile in Python, initialize_preferences in TypeScript,
#   send_welcome_sequence (notifications) and update_user_status (status)
#   in Rust.
# Every other example namespace is one Rust worker.
USUAL_LAYOUT=(user:rust billing:python preferences:rust notifications:python)
POLYGLOT_LAYOUT=(accounts:ruby billing:python preferences:typescript notifications:rust status:rust)
LAYOUT_FILE=$STATE/layout  # the layout the running stack was started with
OTHER_WORKERS=(worker-payments worker-customer-success worker-ecommerce worker-analytics)
BUILD_PACKAGES=(-p tasker-coordinator -p tasker-example-microservices -p tasker-example-payments
  -p tasker-example-customer-success -p tasker-example-ecommerce -p tasker-example-analytics)
APP_READY_TIMEOUT=30     # seconds until a coordinator/worker logs "ready"
# Each process serves /healthz, /readyz and /metrics on its own loopback
# port: the first on HEALTH_PORT_BASE, the next on the port after, in the
# order of APPS.
HEALTH_PORT_BASE=${TASKER_DEV_HEALTH_PORT:-9400}
# Step queues of earlier layouts of the dev stack: each namespace's one queue
# from before steps were routed by handler, and the one microservices service
# that served every handler in one process. Still bound, they would keep a
# copy of every step that no one consumes; `up` deletes them when no one
# consumes them.
STALE_QUEUES=(tasker.steps.microservices tasker.steps.microservices.microservices
  tasker.steps.payments tasker.steps.customer_success tasker.steps.ecommerce tasker.steps.analytics)

# use_layout NAME: sets LAYOUT (usual or polyglot), SERVICES (its
# SERVICE:LANGUAGE list) and APPS, the processes `up` starts, in start order.
use_layout() {
  LAYOUT=$1
  case $LAYOUT in
    usual) SERVICES=("${USUAL_LAYOUT[@]}") ;;
    polyglot) SERVICES=("${POLYGLOT_LAYOUT[@]}") ;;
    *) die "unknown layout '$LAYOUT' in $LAYOUT_FILE; delete that file, then run deploy/dev up again" ;;
  esac
  APPS=(coordinator)
  local entry
  for entry in "${SERVICES[@]}"; do APPS+=("microservices-${entry%%:*}"); done
  APPS+=("${OTHER_WORKERS[@]}")
}

# The layout of the stack that runs, or the usual one.
if [[ -f $LAYOUT_FILE ]]; then use_layout "$(<"$LAYOUT_FILE")"; else use_layout usual; fi

# ------------------------------------------------ coordinator and workers ---

health_port() {  # health_port NAME: the loopback port NAME serves /healthz on
  local i
  for i in "${!APPS[@]}"; do
    [[ ${APPS[$i]} == "$1" ]] && { echo $((HEALTH_PORT_BASE + i)); return 0; }
  done
  return 1
}

# service_language NAME: the language of microservices-NAME in the layout
service_language() {
  local entry
  for entry in "${SERVICES[@]}"; do
    [[ ${entry%%:*} == "${1#microservices-}" ]] && { echo "${entry#*:}"; return 0; }
  done
  return 1
}

# app_command NAME: sets, for an entry of APPS or traces, APP_CMD (the command
# line), APP_ENV (NAME=VALUE settings it runs with), APP_FILE (the file it
# runs, which must exist) and APP_MATCH (what its command line holds, which
# tells our process from another that got its PID).
app_command() {
  local addr service
  addr=127.0.0.1:$(health_port "$1" || true)
  APP_ENV=()
  case $1 in
    traces)
      APP_CMD=("${TASKER_ROTEL_AGENT:-rotel-agent}" start --exporter blackhole
        --debug-log traces --debug-log-verbosity detailed
        --otlp-http-endpoint "127.0.0.1:$TRACES_HTTP_PORT"
        --otlp-grpc-endpoint "127.0.0.1:$TRACES_GRPC_PORT")
      APP_FILE=${TASKER_ROTEL_AGENT:-} APP_MATCH=rotel-agent
      ;;
    coordinator | coordinator-*)
      APP_CMD=("$BIN_DIR/tasker" coordinator --templates "$ROOT/templates" --health-addr "$addr")
      APP_FILE=$BIN_DIR/tasker APP_MATCH="$BIN_DIR/tasker coordinator"
      ;;
    microservices-*)
      service=${1#microservices-}
      # Every language's runner takes the service as its argument and
      # TASKER_HEALTH_ADDR from the environment.
      APP_ENV=("TASKER_HEALTH_ADDR=$addr")
      case $(service_language "$1") in
        rust)
          APP_FILE=$BIN_DIR/microservices-worker
          APP_CMD=("$APP_FILE" --service "$service")
          ;;
        python)
          APP_FILE=$PYTHON_VENV/bin/python
          APP_CMD=("$APP_FILE" -m tasker_example_microservices "$service")
          ;;
        typescript)
          APP_FILE=$ROOT/$TYPESCRIPT_EXAMPLE/dist/src/main.js
          APP_CMD=(node "$APP_FILE" "$service")
          ;;
        ruby)
          APP_FILE=$ROOT/$RUBY_EXAMPLE/bin/microservices
          APP_CMD=(ruby "$APP_FILE" "$service")
          ;;
        *) die "microservices service '$service' is not in the $LAYOUT layout" ;;
      esac
      APP_MATCH="${APP_CMD[*]:1}"
      ;;
    worker-*)
      APP_FILE=$BIN_DIR/${1#worker-}-worker
      APP_CMD=("$APP_FILE" --health-addr "$addr")
      APP_MATCH=$APP_FILE
      ;;
    *) die "unknown process '$1'" ;;
  esac
  app_identity "$1"
}

app_pid() {  # app_pid NAME: running PID of a coordinator/worker we started
  local name=$1
  if [[ $name == microservices-* ]] && ! service_language "$name" >/dev/null; then
    # not in this layout: any process of ours by that name
    pid_from "$STATE/$name.pid" "${name#microservices-}"
    return
  fi
  app_command "$name"
  pid_from "$STATE/$name.pid" "$APP_MATCH"
}

start_app() {
  local name=$1 pid log=$STATE/$1.log pidfile=$STATE/$1.pid
  app_command "$name"
  if pid=$(app_pid "$name"); then
    info "$name already running (pid $pid, log: $log)"
    if [[ $APP_FILE -nt $pidfile ]]; then
      warn "$name runs an older build than $APP_FILE; restart it with: deploy/dev down && deploy/dev up"
    fi
    wait_ready "$name" "$pid" quiet
    return 0
  fi
  [[ -e $APP_FILE ]] || die "$APP_FILE does not exist; did the build succeed?"
  rm -f "$pidfile"
  rotate_log "$log"
  say "starting $name (log: $log)"
  (
    cd "$ROOT"
    exec 9>&-
    exec setsid env "${APP_ENV[@]}" "${APP_CMD[@]}"
  ) </dev/null >>"$log" 2>&1 &
  pid=$!
  echo "$pid" >"$pidfile"
  wait_ready "$name" "$pid"
}

is_ready() {  # is_ready NAME: has the process come up?
  if [[ $1 == traces ]]; then
    port_open 127.0.0.1 "$TRACES_HTTP_PORT"
  else
    # strip colour codes, then look for the word "ready" (not "already")
    sed 's/\x1b\[[0-9;]*m//g' "$STATE/$1.log" 2>/dev/null | grep -qiw ready
  fi
}

wait_ready() {  # wait_ready NAME PID [quiet]: until is_ready NAME
  local name=$1 pid=$2 quiet=${3:-} log=$STATE/$1.log start=$SECONDS
  until is_ready "$name"; do
    if ! proc_alive "$pid"; then
      show_log_tail "$log"
      rm -f "$STATE/$name.pid"
      die "$name exited before it was ready. The log above says why; the full log is $log"
    fi
    if ((SECONDS - start >= APP_READY_TIMEOUT)); then
      show_log_tail "$log"
      die "$name (pid $pid) was not ready within ${APP_READY_TIMEOUT}s. It is still running; check $log, or stop everything with 'deploy/dev down'."
    fi
    sleep 0.3
  done
  [[ -n $quiet ]] || info "$name is ready (pid $pid)"
}

stop_apps() {  # every <name>.pid in the state dir except the servers'
  local f name pid stopped=1
  for f in "$STATE"/*.pid; do
    [[ -f $f ]] || continue
    name=$(basename "$f" .pid)
    [[ $name == redis || $name == rabbitmq ]] && continue
    if pid=$(app_pid "$name"); then
      say "stopping $name (pid $pid)"
      stop_process "$name" "$pid"
      stopped=0
    else
      info "removing stale PID file $f"
    fi
    rm -f "$f"
  done
  return $stopped
}

ensure_cargo() {
  # The linker, and jemalloc's build (the binaries' allocator), need a C
  # compiler and make.
  if ! have cc || ! have make; then
    install_packages build-essential
  fi
  have cargo && return 0
  # shellcheck disable=SC1091
  [[ -f ${HOME:-}/.cargo/env ]] && source "$HOME/.cargo/env"
  have cargo || die "cargo not found. Install Rust from https://rustup.rs (curl https://sh.rustup.rs -sSf | sh), then run: source ~/.cargo/env"
}

build() {
  ensure_cargo
  say "building (first build takes a few minutes)"
  (cd "$ROOT" && cargo build --release "${BUILD_PACKAGES[@]}") \
    || die "the build failed (see the cargo output above); nothing was started besides the servers"
}

# --------------------------------------------------------------- commands ---

# cmd_servers [--tls]: RabbitMQ and Redis, listening for plain connections
# and TLS, or, with --tls, TLS only (security.sh).
cmd_servers() {
  local mode=plain
  while (($#)); do
    case $1 in
      --tls) mode=tls ;;
      *) die "deploy/dev servers takes no argument but --tls, and got '$1'" ;;
    esac
    shift
  done
  lock
  set_tls_mode "$mode"
  ensure_rabbitmq
  ensure_redis
  unlock
}

# retire_stale_queues [QUEUE...]: deletes the queues of STALE_QUEUES, and
# the QUEUEs, that exist and have no consumer, on a RabbitMQ that deploy/dev
# started.
retire_stale_queues() {
  rabbit_pid >/dev/null || return 0
  local stale=("${STALE_QUEUES[@]}" "$@") name consumers
  while read -r name consumers; do
    [[ " ${stale[*]} " == *" $name "* && $consumers == 0 ]] || continue
    info "deleting $name: a step queue of an earlier layout, which no worker consumes"
    rabbitmqctl_run delete_queue "$name" >/dev/null || warn "could not delete $name; delete it with: deploy/dev rabbitmqctl delete_queue $name"
  done < <(rabbitmqctl_run list_queues --quiet --no-table-headers name consumers 2>/dev/null || true)
}

# switch_layout NAME: when the stack runs in another layout, stops that
# layout's microservices processes, and deletes the queues of its services
# that NAME has not, lest they keep a copy of every step that no one
# consumes. Then records NAME as the stack's layout.
switch_layout() {
  local wanted=$1 entry name pid old_queues=()
  if [[ $wanted != "$LAYOUT" ]]; then
    [[ -f $LAYOUT_FILE ]] && say "switching the microservices namespace from the $LAYOUT layout to the $wanted one"
    for entry in "${SERVICES[@]}"; do
      name=microservices-${entry%%:*}
      if pid=$(app_pid "$name"); then
        say "stopping $name (pid $pid): not in the $wanted layout, or in another language there"
        stop_process "$name" "$pid"
      fi
      rm -f "$STATE/$name.pid"
      old_queues+=("tasker.steps.microservices.${entry%%:*}")
    done
    use_layout "$wanted"
    local keep=()
    for entry in "${SERVICES[@]}"; do keep+=("tasker.steps.microservices.${entry%%:*}"); done
    local retire=() queue
    for queue in "${old_queues[@]}"; do
      [[ " ${keep[*]} " == *" $queue "* ]] || retire+=("$queue")
    done
    RETIRED_QUEUES=("${retire[@]}")
  fi
  mkdir -p "$STATE"
  printf '%s\n' "$LAYOUT" >"$LAYOUT_FILE"
}

# build_polyglot: what the polyglot layout's TypeScript and Ruby services
# need: node and ruby with their packages, and the TypeScript SDK and
# example built (ensure_node builds them).
build_polyglot() {
  ensure_node
  ensure_ruby
}

# cmd_up [--polyglot]: the microservices namespace in the usual layout, or
# with --polyglot in four languages.
cmd_up() {
  local layout=usual servers=()
  while (($#)); do
    case $1 in
      --polyglot) layout=polyglot ;;
      --tls) servers=(--tls) ;;
      *) die "deploy/dev up takes no argument but --polyglot and --tls, and got '$1'" ;;
    esac
    shift
  done
  cmd_servers "${servers[@]}"
  RETIRED_QUEUES=()
  lock
  switch_layout "$layout"
  unlock
  retire_stale_queues "${RETIRED_QUEUES[@]}"
  build
  [[ $LAYOUT == polyglot ]] && build_polyglot
  [[ -d $ROOT/templates ]] || warn "$ROOT/templates does not exist; the coordinator may not find any workflow templates"
  # The microservices namespace's Python services run from this venv.
  ensure_python_venv
  export RUST_BACKTRACE=${RUST_BACKTRACE:-1}
  lock
  setup_traces
  local name
  for name in "${APPS[@]}"; do start_app "$name"; done
  unlock
  echo
  say "Tasker is up"
  print_status || true
  echo
  info "follow the logs:  deploy/dev logs [coordinator|microservices|worker|traces|rabbitmq|redis]"
  info "the live workers: $BIN_DIR/tasker workers"
  info "stop everything:  deploy/dev down"
  print_client_env
}

cmd_down() {
  lock
  local stopped=0
  stop_apps && stopped=1
  stop_redis && stopped=1
  stop_rabbitmq && stopped=1
  stop_epmd && stopped=1
  unlock
  if ((stopped)); then
    say "stopped (data is kept in $STATE)"
  else
    say "nothing to stop: nothing deploy/dev started is running"
  fi
}

row() { printf '    %-28s %s\n' "$1" "$2"; }

# print_status: one line per component; returns 0 if anything we started runs
print_status() {
  local pid ours=1 name limit
  if pid=$(rabbit_pid); then
    ours=0
    limit=$(awk '/Max open files/ {print $4}' "/proc/$(pid_from "$RABBIT_BEAM_PIDFILE" beam || echo "$pid")/limits" 2>/dev/null || true)
    if port_open "$AMQP_HOST" "$AMQP_PORT"; then
      row RabbitMQ "${TASKER_AMQP_URL%%://*}://$AMQP_HOST:$AMQP_PORT  running, started by deploy/dev (pid $pid, open-files limit ${limit:-?}, log: $RABBIT_LOG)"
    else
      row RabbitMQ "${TASKER_AMQP_URL%%://*}://$AMQP_HOST:$AMQP_PORT  started by deploy/dev (pid $pid) but NOT accepting connections (log: $RABBIT_LOG)"
    fi
  elif port_open "$AMQP_HOST" "$AMQP_PORT"; then
    row RabbitMQ "${TASKER_AMQP_URL%%://*}://$AMQP_HOST:$AMQP_PORT  answering (not started by deploy/dev)"
  else
    row RabbitMQ "${TASKER_AMQP_URL%%://*}://$AMQP_HOST:$AMQP_PORT  not running"
  fi

  if pid=$(redis_pid); then
    ours=0
    if redis_ping; then
      row Redis "${TASKER_REDIS_URL%%://*}://$REDIS_HOST:$REDIS_PORT  running, started by deploy/dev (pid $pid, log: $REDIS_LOG)"
    else
      row Redis "${TASKER_REDIS_URL%%://*}://$REDIS_HOST:$REDIS_PORT  started by deploy/dev (pid $pid) but NOT answering PING (log: $REDIS_LOG)"
    fi
  elif redis_ping; then
    row Redis "${TASKER_REDIS_URL%%://*}://$REDIS_HOST:$REDIS_PORT  answering (not started by deploy/dev)"
  else
    row Redis "${TASKER_REDIS_URL%%://*}://$REDIS_HOST:$REDIS_PORT  not running"
  fi

  for name in traces "${APPS[@]}"; do
    if pid=$(app_pid "$name"); then
      ours=0
      if [[ $name == traces ]]; then
        row "$name" "OTLP on http://127.0.0.1:$TRACES_HTTP_PORT and grpc :$TRACES_GRPC_PORT (rotel, pid $pid, spans in $STATE/traces.log)"
      else
        row "$name" "running (pid $pid, http://127.0.0.1:$(health_port "$name")/readyz /metrics, log: $STATE/$name.log)"
      fi
    elif [[ -f $STATE/$name.pid ]]; then
      row "$name" "not running (stale PID file; last log: $STATE/$name.log)"
    else
      row "$name" "not running"
    fi
  done
  return $ours
}

cmd_status() {
  say "Tasker dev stack (state: $STATE)"
  print_status
}

cmd_logs() {
  local name=${1:-} files=() f
  shopt -s nullglob
  if [[ -z $name ]]; then
    files=("$STATE"/*.log)
  else
    for f in "$STATE/$name.log" "$STATE/$name"*.log; do
      [[ " ${files[*]} " == *" $f "* ]] || files+=("$f")
    done
  fi
  shopt -u nullglob
  local existing=()
  for f in "${files[@]}"; do [[ -f $f ]] && existing+=("$f"); done
  if ((${#existing[@]} == 0)); then
    [[ -z $name ]] && die "no logs in $STATE yet; start something with: deploy/dev up"
    die "no log called '$name' in $STATE. Try one of: coordinator, microservices, microservices-billing, worker, traces, rabbitmq, redis"
  fi
  say "following ${existing[*]} (Ctrl-C to stop)"
  exec tail -n 50 -F "${existing[@]}"
}
