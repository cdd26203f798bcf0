# shellcheck shell=bash
#
# deploy/dev part: bench. `deploy/dev bench` (cmd_bench): builds the
# benchmark while the servers start and Celery's venv is made
# (tests/bench/celery/setup.sh), then runs target/release/bench.
#
# Relies on deploy/dev for ROOT and STATE; on common.sh for say, die and
# show_log_tail; on apps.sh for cmd_servers and ensure_cargo.

# bench [ARGS...]: the benchmark (target/release/bench --help). The servers
# start (BENCH_SERVERS, by default cmd_servers; `cluster bench` starts the
# cluster's), and Celery's venv is made, in the background while the build
# runs in the foreground: on a fresh machine that saves their install time.
cmd_bench() {
  ensure_cargo
  mkdir -p "$STATE"
  local setup_log=$STATE/bench-setup.log celery=1 arg
  for arg in "$@"; do [[ $arg == --no-celery ]] && celery=0; done
  say "starting RabbitMQ and Redis$( ((celery)) && printf ' and making the Celery venv') in the background (log: $setup_log)"
  (
    "${BENCH_SERVERS:-cmd_servers}"
    if ((celery)); then "$ROOT/tests/bench/celery/setup.sh" >/dev/null; fi
  ) >"$setup_log" 2>&1 &
  local setup=$!
  say "building the benchmark"
  if ! (cd "$ROOT" && cargo build --release -p tasker-e2e --bin bench --bin chaos-node); then
    wait "$setup" || true
    die "the build failed (see the cargo output above)"
  fi
  if ! wait "$setup"; then
    show_log_tail "$setup_log" 30
    die "the servers or the Celery venv could not be set up (log: $setup_log)"
  fi
  sed 's/^/    /' "$setup_log"
  (cd "$ROOT" && "$ROOT/target/release/bench" "$@")
}
