# shellcheck shell=bash
#
# deploy/dev part: cluster. A RabbitMQ cluster of three nodes on loopback,
# without Docker: each node is the single node of rabbitmq.sh with a state
# directory, a port and a node name of its own (cluster_node), and the
# second and third join the first (cluster_join). `deploy/dev cluster
# up|down|status|test` (cmd_cluster). The exports `up` prints name all three
# nodes in TASKER_AMQP_URL, which every Tasker process reads as a list.
#
# Relies on deploy/dev for STATE; on common.sh for the output helpers,
# lock, unlock and port_open; on rabbitmq.sh for ensure_rabbitmq,
# stop_rabbitmq, stop_epmd, rabbit_pid, rabbitmqctl_run and the RABBIT_*,
# EPMD_MARKER and AMQP_*
# settings that cluster_node points at one node; on redis.sh for
# ensure_redis (the cluster's coordinators share the one Redis); on test.sh
# for run_tests.

# --------------------------------------------------------------- settings ---
CLUSTER_STATE=$STATE/cluster
# The nodes' AMQP ports; each node's Erlang distribution port is its AMQP
# port + 20000 (rabbit_env), and its name tasker-<port>@localhost.
CLUSTER_PORT_BASE=${TASKER_DEV_CLUSTER_PORT:-5681}
CLUSTER_NODES=3

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

# cluster_urls: the AMQP URLs of every node, separated by commas.
cluster_urls() {
  local i urls=()
  for ((i = 0; i < CLUSTER_NODES; i++)); do
    urls+=("amqp://guest:guest@127.0.0.1:$((CLUSTER_PORT_BASE + i))/%2f")
  done
  (IFS=,; echo "${urls[*]}")
}

# cluster_members I: the running nodes that node I sees in its cluster, one
# per line.
cluster_members() {
  (cluster_node "$1" && rabbitmqctl_run -q cluster_status --formatter json 2>/dev/null) \
    | python3 -c 'import json, sys; print("\n".join(json.load(sys.stdin).get("running_nodes", [])))' 2>/dev/null
}

# cluster_join I: node I joins node 0's cluster, unless it is in it.
cluster_join() {
  local first="tasker-$CLUSTER_PORT_BASE@localhost" node=$1
  if cluster_members "$node" | grep -qx "$first"; then
    info "node tasker-$((CLUSTER_PORT_BASE + node))@localhost is in the cluster"
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
}

cluster_up() {
  mkdir -p "$CLUSTER_STATE"
  local i
  lock
  for ((i = 0; i < CLUSTER_NODES; i++)); do
    (cluster_node "$i" && ensure_rabbitmq)
  done
  for ((i = 1; i < CLUSTER_NODES; i++)); do cluster_join "$i"; done
  ensure_redis
  unlock
  echo
  say "a RabbitMQ cluster of $CLUSTER_NODES nodes runs on 127.0.0.1:$CLUSTER_PORT_BASE-$((CLUSTER_PORT_BASE + CLUSTER_NODES - 1))"
  cluster_status
  echo
  echo "# Point a Tasker process or the CLI at it:"
  echo "export TASKER_AMQP_URL='$(cluster_urls)'"
  echo "export TASKER_REDIS_URL='$TASKER_REDIS_URL'"
}

cluster_down() {
  local i stopped=1
  lock
  for ((i = CLUSTER_NODES - 1; i >= 0; i--)); do
    (cluster_node "$i" && stop_rabbitmq) && stopped=0
  done
  (cluster_node 0 && stop_epmd) || true
  unlock
  if ((stopped == 0)); then
    say "stopped the cluster's nodes (data is kept in $CLUSTER_STATE)"
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
}

# cluster_test [ARGS...]: the test suite, every process pointed at the
# cluster's three nodes, with the tests that need a cluster (cluster.rs,
# ignored elsewhere). The small chaos run is left out: it restarts and
# freezes the single RabbitMQ that `deploy/dev servers` starts.
cluster_test() {
  cluster_up
  TASKER_AMQP_URL=$(cluster_urls)
  export TASKER_AMQP_URL
  parse_urls
  echo
  say "the test suite against the cluster, without the small chaos run (it restarts the single servers)"
  run_tests "$@" -- --include-ignored --skip nothing_is_lost_under_kills_pauses_restarts_and_duplicates
}

# cluster up|down|status|test
cmd_cluster() {
  local what=${1:-}
  [[ $# -gt 0 ]] && shift
  case $what in
    up) cluster_up ;;
    down) cluster_down ;;
    status) cluster_status ;;
    test) cluster_test "$@" ;;
    *) die "usage: deploy/dev cluster up|down|status|test" ;;
  esac
}
