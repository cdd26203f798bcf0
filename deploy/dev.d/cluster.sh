# shellcheck shell=bash
#
# deploy/dev part: cluster. On loopback, without Docker:
# - a RabbitMQ cluster of three nodes: each node is the single node of
#   rabbitmq.sh with a state directory, a port and a node name of its own
#   (cluster_node), and the second and third join the first (cluster_join);
# - a Redis Cluster of three masters with a replica each, six redis-server
#   processes in cluster mode (start_redis_node, redis_cluster_create);
# - two coordinators and the microservices workers pointed at both
#   (cluster_apps_up), with a state directory of their own.
# `deploy/dev cluster up|down|status|test` (cmd_cluster). The exports `up`
# prints name every node in TASKER_AMQP_URL and TASKER_REDIS_URL, which
# every Tasker process reads as a list.
#
# Relies on deploy/dev for STATE; on common.sh for the output helpers,
# lock, unlock, port_open, pid_from and stop_process; on rabbitmq.sh for
# ensure_rabbitmq, stop_rabbitmq, stop_epmd, rabbit_pid, rabbitmqctl_run and
# the RABBIT_*, EPMD_MARKER and AMQP_* settings that cluster_node points at
# one node; on redis.sh for install_packages' redis-server; on apps.sh for
# build, use_layout, start_app, stop_apps and the APPS it starts; on
# python.sh for ensure_python_venv; on test.sh for run_tests.

# --------------------------------------------------------------- settings ---
CLUSTER_STATE=$STATE/cluster
# The nodes' AMQP ports; each node's Erlang distribution port is its AMQP
# port + 20000 (rabbit_env), and its name tasker-<port>@localhost.
CLUSTER_PORT_BASE=${TASKER_DEV_CLUSTER_PORT:-5681}
CLUSTER_NODES=3
# The Redis Cluster's ports: three masters, then a replica each (which
# master a replica gets, redis-cli --cluster create decides).
REDIS_CLUSTER_PORT_BASE=${TASKER_DEV_REDIS_CLUSTER_PORT:-7001}
REDIS_CLUSTER_NODES=6
REDIS_CLUSTER_TIMEOUT=30  # seconds until every node says cluster_state:ok
# The cluster's coordinators and workers serve /healthz from this port up.
CLUSTER_HEALTH_PORT_BASE=${TASKER_DEV_CLUSTER_HEALTH_PORT:-9500}

# cluster_node I: points the RabbitMQ settings of rabbitmq.sh at node I
# (0-based). Call it in a subshell: it changes globals.
cluster_node() {
  AMQP_HOST=127.0.0.1
  AMQP_PORT=$((CLUSTER_PORT_BASE + $1))
  AMQP_USER=guest AMQP_PASS=guest AMQP_VHOST=/
  RABBIT_DIR=$CLUSTER_STATE/rabbit-$AMQP_PORT
  RABBIT_LOG=$CLUSTER_STATE/rabbit-$AMQP_PORT.log
  RABBIT_PIDFILE=$CLUSTER_STATE/rabbit-$AMQP_PORT.pid
  RABBIT_BEAM_PIDFILE=$RABBIT_DIR/beam.pid
  EPMD_MARKER=$CLUSTER_STATE/epmd.started
}

# cluster_node_config: the settings of a cluster node (after cluster_node):
# a new queue's leader goes to the node that leads the fewest queues, so
# that the queues' leaders, and their work, spread over the nodes.
cluster_node_config() {
  mkdir -p "$RABBIT_DIR"
  grep -qs '^queue_leader_locator' "$RABBIT_DIR/rabbitmq.conf" && return 0
  {
    echo '# RabbitMQ settings for deploy/dev cluster; see https://www.rabbitmq.com/configure.html'
    echo 'queue_leader_locator = balanced'
  } >>"$RABBIT_DIR/rabbitmq.conf"
}

# node_urls PREFIX FIRST_PORT COUNT [SUFFIX]: PREFIX<port>SUFFIX for COUNT
# consecutive ports, separated by commas.
node_urls() {
  local i urls=()
  for ((i = 0; i < $3; i++)); do urls+=("$1$(($2 + i))${4:-}"); done
  (IFS=,; echo "${urls[*]}")
}

# cluster_urls: the AMQP URLs of every node, separated by commas.
cluster_urls() { node_urls amqp://guest:guest@127.0.0.1: "$CLUSTER_PORT_BASE" "$CLUSTER_NODES" /%2f; }

# redis_cluster_urls: every Redis node's URL, separated by commas.
redis_cluster_urls() { node_urls redis://127.0.0.1: "$REDIS_CLUSTER_PORT_BASE" "$REDIS_CLUSTER_NODES"; }

redis_node_cli() {  # redis_node_cli PORT ARGS...: redis-cli on one node
  local port=$1
  shift
  timeout 5 redis-cli -h 127.0.0.1 -p "$port" "$@" 2>/dev/null
}

redis_node_pid() { pid_from "$CLUSTER_STATE/redis-$1.pid" redis-server; }

# start_redis_node PORT: one redis-server in cluster mode; its cluster
# config (nodes.conf) and its AOF stay in its directory, so a restart
# rejoins the cluster with its data.
start_redis_node() {
  local port=$1 dir=$CLUSTER_STATE/redis-$1 log=$CLUSTER_STATE/redis-$1.log pid start=$SECONDS
  if pid=$(redis_node_pid "$port"); then
    info "Redis node 127.0.0.1:$port already running (pid $pid)"
    return 0
  fi
  port_open 127.0.0.1 "$port" && die "something else listens on 127.0.0.1:$port; free it, or set TASKER_DEV_REDIS_CLUSTER_PORT"
  mkdir -p "$dir"
  rotate_log "$log"
  (cd "$dir" && redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 3000 \
    --appendonly yes --appendfsync everysec \
    --daemonize yes --pidfile "$CLUSTER_STATE/redis-$port.pid" --logfile "$log" </dev/null 9>&-) \
    || { show_log_tail "$log"; die "redis-server on port $port failed to start; see $log"; }
  until [[ $(redis_node_cli "$port" ping) == PONG ]]; do
    ((SECONDS - start < REDIS_READY_TIMEOUT)) || { show_log_tail "$log"; die "the Redis node on port $port did not answer PING within ${REDIS_READY_TIMEOUT}s; see $log"; }
    sleep 0.2
  done
}

redis_cluster_ok() {  # redis_cluster_ok PORT: does the node see a whole cluster?
  local info
  info=$(redis_node_cli "$1" cluster info) || return 1
  [[ $info == *cluster_state:ok* && $info == *"cluster_known_nodes:$REDIS_CLUSTER_NODES"* ]]
}

# redis_node_synced PORT: a master, or a replica whose link to its master
# is up and not in a full sync: one that could take over.
redis_node_synced() {
  local info
  info=$(redis_node_cli "$1" info replication) || return 1
  [[ $info == *role:master* ]] && return 0
  [[ $info == *master_link_status:up* && $info == *master_sync_in_progress:0* ]]
}

# redis_cluster_up: every node, then the cluster, unless it is formed; then
# until every node sees the whole cluster and every replica is in sync.
redis_cluster_up() {
  if ! have redis-server || ! have redis-cli; then install_packages redis-server; fi
  local i nodes=() start=$SECONDS
  for ((i = 0; i < REDIS_CLUSTER_NODES; i++)); do
    start_redis_node $((REDIS_CLUSTER_PORT_BASE + i))
    nodes+=("127.0.0.1:$((REDIS_CLUSTER_PORT_BASE + i))")
  done
  if ! redis_cluster_ok "$REDIS_CLUSTER_PORT_BASE"; then
    if [[ $(redis_node_cli "$REDIS_CLUSTER_PORT_BASE" cluster info) == *cluster_known_nodes:1* ]]; then
      say "forming a Redis Cluster of $((REDIS_CLUSTER_NODES / 2)) masters with a replica each"
      redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes \
        >>"$CLUSTER_STATE/redis-create.log" 2>&1 \
        || die "redis-cli --cluster create failed; see $CLUSTER_STATE/redis-create.log"
    fi
  fi
  for ((i = 0; i < REDIS_CLUSTER_NODES; i++)); do
    until redis_cluster_ok $((REDIS_CLUSTER_PORT_BASE + i)) && redis_node_synced $((REDIS_CLUSTER_PORT_BASE + i)); do
      ((SECONDS - start < REDIS_CLUSTER_TIMEOUT)) \
        || die "the Redis node on port $((REDIS_CLUSTER_PORT_BASE + i)) does not see a whole cluster, or is a replica out of sync, after ${REDIS_CLUSTER_TIMEOUT}s: $(redis_node_cli $((REDIS_CLUSTER_PORT_BASE + i)) cluster info | head -1). Its log: $CLUSTER_STATE/redis-$((REDIS_CLUSTER_PORT_BASE + i)).log; to start over, deploy/dev cluster down --wipe"
      sleep 0.3
    done
  done
}

redis_cluster_down() {
  local i port pid stopped=1
  for ((i = REDIS_CLUSTER_NODES - 1; i >= 0; i--)); do
    port=$((REDIS_CLUSTER_PORT_BASE + i))
    pid=$(redis_node_pid "$port") || continue
    stop_process "Redis node $port" "$pid"
    rm -f "$CLUSTER_STATE/redis-$port.pid"
    stopped=0
  done
  return $stopped
}

# cluster_apps CMD...: runs CMD with apps.sh pointed at the cluster: its
# own state directory and health ports, two coordinators, and the
# microservices workers of the usual layout.
cluster_apps() {
  (
    STATE=$CLUSTER_STATE/apps
    HEALTH_PORT_BASE=$CLUSTER_HEALTH_PORT_BASE
    mkdir -p "$STATE"
    use_layout usual
    APPS=(coordinator-1 coordinator-2 "${APPS[@]:1:${#SERVICES[@]}}")
    TASKER_AMQP_URL=$(cluster_urls) TASKER_REDIS_URL=$(redis_cluster_urls)
    export TASKER_AMQP_URL TASKER_REDIS_URL
    "$@"
  )
}

start_cluster_apps() {
  local name
  for name in "${APPS[@]}"; do start_app "$name"; done
}

# cluster_members I: the running nodes that node I sees in its cluster, one
# per line.
cluster_members() {
  (cluster_node "$1" && rabbitmqctl_run -q cluster_status --formatter json 2>/dev/null) \
    | python3 -c 'import json, sys; print("\n".join(json.load(sys.stdin).get("running_nodes", [])))' 2>/dev/null
}

# cluster_join I: node I joins node 0's cluster, once: a node that joined
# (its marker file says so) rejoins by itself when it restarts, and must not
# be reset, which would drop its replicas of the queues.
cluster_join() {
  local first="tasker-$CLUSTER_PORT_BASE@localhost" node=$1
  local marker=$CLUSTER_STATE/joined-$((CLUSTER_PORT_BASE + node))
  if [[ -f $marker ]] || cluster_members "$node" | grep -qx "$first"; then
    info "node tasker-$((CLUSTER_PORT_BASE + node))@localhost is in the cluster"
    touch "$marker"
    return 0
  fi
  say "node tasker-$((CLUSTER_PORT_BASE + node))@localhost joins $first"
  (
    cluster_node "$node"
    {
      rabbitmqctl_run -q stop_app
      rabbitmqctl_run -q reset
      rabbitmqctl_run -q join_cluster "$first"
      rabbitmqctl_run -q start_app
    } >>"$CLUSTER_STATE/join.log" 2>&1
  ) || die "node tasker-$((CLUSTER_PORT_BASE + node))@localhost could not join $first; see $CLUSTER_STATE/join.log and its log, $CLUSTER_STATE/rabbit-$((CLUSTER_PORT_BASE + node)).log"
  touch "$marker"
}

# cluster_servers: the RabbitMQ cluster and the Redis Cluster.
cluster_servers() {
  mkdir -p "$CLUSTER_STATE"
  local i
  lock
  for ((i = 0; i < CLUSTER_NODES; i++)); do
    (cluster_node "$i" && cluster_node_config && ensure_rabbitmq)
  done
  for ((i = 1; i < CLUSTER_NODES; i++)); do cluster_join "$i"; done
  redis_cluster_up
  unlock
}

cluster_up() {
  cluster_servers
  build
  ensure_python_venv
  lock
  cluster_apps start_cluster_apps
  unlock
  echo
  say "a RabbitMQ cluster of $CLUSTER_NODES nodes and a Redis Cluster of $((REDIS_CLUSTER_NODES / 2)) masters with a replica each run on loopback"
  cluster_status
  echo
  echo "# Point a Tasker process or the CLI at it:"
  echo "export TASKER_AMQP_URL='$(cluster_urls)'"
  echo "export TASKER_REDIS_URL='$(redis_cluster_urls)'"
}

# cluster_down [--wipe]: stops everything the cluster runs; --wipe then
# deletes its state, for a cluster formed anew.
cluster_down() {
  local i stopped=1
  [[ ${1:-} == --wipe || -z ${1:-} ]] || die "deploy/dev cluster down takes only --wipe"
  lock
  cluster_apps stop_apps && stopped=0
  for ((i = CLUSTER_NODES - 1; i >= 0; i--)); do
    (cluster_node "$i" && stop_rabbitmq) && stopped=0
  done
  (cluster_node 0 && stop_epmd) || true
  redis_cluster_down && stopped=0
  if [[ ${1:-} == --wipe ]]; then
    rm -rf "$CLUSTER_STATE"
    say "deleted the cluster's state ($CLUSTER_STATE)"
  fi
  unlock
  if ((stopped == 0)); then
    say "stopped the cluster's nodes and processes"
  else
    say "no node of the cluster is running"
  fi
}

cluster_status() {
  local i port pid members
  for ((i = 0; i < CLUSTER_NODES; i++)); do
    port=$((CLUSTER_PORT_BASE + i))
    if pid=$(cluster_node "$i" && rabbit_pid); then
      members=$(cluster_members "$i" | paste -sd' ' -)
      printf '    %-28s %s\n' "tasker-$port@localhost" "amqp://127.0.0.1:$port  running (pid $pid); sees: ${members:-no cluster yet}"
    else
      printf '    %-28s %s\n' "tasker-$port@localhost" "amqp://127.0.0.1:$port  not running"
    fi
  done
  local role
  for ((i = 0; i < REDIS_CLUSTER_NODES; i++)); do
    port=$((REDIS_CLUSTER_PORT_BASE + i))
    if pid=$(redis_node_pid "$port"); then
      role=$(redis_node_cli "$port" role | head -1)
      printf '    %-28s %s\n' "redis 127.0.0.1:$port" "running (pid $pid), ${role:-not answering}"
    else
      printf '    %-28s %s\n' "redis 127.0.0.1:$port" "not running"
    fi
  done
  cluster_apps print_cluster_apps
}

print_cluster_apps() {
  local name pid
  for name in "${APPS[@]}"; do
    if pid=$(app_pid "$name"); then
      printf '    %-28s %s\n' "$name" "running (pid $pid, http://127.0.0.1:$(health_port "$name")/readyz, log: $STATE/$name.log)"
    else
      printf '    %-28s %s\n' "$name" "not running"
    fi
  done
}

# cluster_test [ARGS...]: the test suite, every process pointed at the
# cluster's three nodes, with the tests that need a cluster (cluster.rs,
# ignored elsewhere). The small chaos run is left out: it restarts and
# freezes the single RabbitMQ that `deploy/dev servers` starts. The
# security tests (tests/tests/security.rs and each SDK's) run against that
# single node too, since only it has TLS listeners and the users of
# security.sh: it is started as well.
cluster_test() {
  cluster_servers
  cmd_servers
  # The tests run coordinators and workers of their own; the cluster's
  # would take requests off the shared queues (the unrouted one) first.
  lock
  if cluster_apps stop_apps; then info "stopped the cluster's coordinators and workers; deploy/dev cluster up starts them again"; fi
  unlock
  TASKER_AMQP_URL=$(cluster_urls) TASKER_REDIS_URL=$(redis_cluster_urls)
  export TASKER_AMQP_URL TASKER_REDIS_URL
  parse_urls
  echo
  say "the test suite against the cluster, without the small chaos run (it restarts the single servers)"
  run_tests "$@" -- --include-ignored --skip nothing_is_lost_under_kills_pauses_restarts_and_duplicates
}

# cluster_chaos [ARGS...]: the cluster's fault-injection suite
# (target/release/chaos --cluster --help), on the servers of cluster_servers.
cluster_chaos() {
  cluster_servers
  ensure_cargo
  ensure_python_venv
  ensure_node
  ensure_ruby
  export TASKER_PYTHON=$PYTHON_VENV/bin/python
  say "building the chaos suite"
  (cd "$ROOT" && cargo build --release -p tasker-e2e --bins) || die "the build failed (see the cargo output above)"
  TASKER_AMQP_URL=$(cluster_urls) TASKER_REDIS_URL=$(redis_cluster_urls)
  export TASKER_AMQP_URL TASKER_REDIS_URL
  (cd "$ROOT" && "$ROOT/target/release/chaos" --cluster "$@")
}

# cluster_bench [ARGS...]: the benchmark (target/release/bench --help) on
# the cluster's servers, with every process pointed at all of their nodes.
cluster_bench() {
  TASKER_AMQP_URL=$(cluster_urls) TASKER_REDIS_URL=$(redis_cluster_urls)
  export TASKER_AMQP_URL TASKER_REDIS_URL
  BENCH_SERVERS=cluster_servers cmd_bench "$@"
}

# cluster_leader QUEUE: the AMQP port of the node that leads QUEUE, as the
# first node that answers says.
cluster_leader() {
  local i leader
  for ((i = 0; i < CLUSTER_NODES; i++)); do
    leader=$( (cluster_node "$i" && rabbitmqctl_run -q list_queues name leader 2>/dev/null) \
      | awk -v q="$1" '$1 == q { print $2 }')
    if [[ $leader =~ ^tasker-([0-9]+)@localhost$ ]]; then
      echo "${BASH_REMATCH[1]}"
      return 0
    fi
  done
  die "no node of the cluster names a leader for queue '$1'"
}

# cluster_node_of PORT: the index of the RabbitMQ node on PORT.
cluster_node_of() {
  local i=$(($1 - CLUSTER_PORT_BASE))
  ((i >= 0 && i < CLUSTER_NODES)) || die "no RabbitMQ node of the cluster listens on port $1"
  echo "$i"
}

# cluster up|down|status|test|chaos, and for the chaos suite: servers,
# pid, leader, stop-node.
cmd_cluster() {
  local what=${1:-} node
  [[ $# -gt 0 ]] && shift
  case $what in
    up) cluster_up ;;
    down) cluster_down "$@" ;;
    status) cluster_status ;;
    test) cluster_test "$@" ;;
    chaos) cluster_chaos "$@" ;;
    bench) cluster_bench "$@" ;;
    # Starts every server of the cluster that is not running: after a
    # fault, a node rejoins with its data.
    servers) cluster_servers ;;
    leader) cluster_leader "${1:?usage: deploy/dev cluster leader QUEUE}" ;;
    pid)
      case ${1:-}:${2:-} in
        rabbitmq:[0-9]*) node=$(cluster_node_of "$2") && (cluster_node "$node" && pid_from "$RABBIT_BEAM_PIDFILE" beam) \
          || die "the RabbitMQ node on port $2 is not running" ;;
        redis:[0-9]*) redis_node_pid "$2" || die "the Redis node on port $2 is not running" ;;
        *) die "usage: deploy/dev cluster pid rabbitmq|redis PORT" ;;
      esac
      ;;
    stop-node)
      node=$(cluster_node_of "${1:?usage: deploy/dev cluster stop-node PORT}")
      lock
      (cluster_node "$node" && stop_rabbitmq) || die "the RabbitMQ node on port $1 is not running"
      unlock
      ;;
    *) die "usage: deploy/dev cluster up|down [--wipe]|status|test [ARGS...]|chaos [ARGS...]|bench [ARGS...]" ;;
  esac
}
