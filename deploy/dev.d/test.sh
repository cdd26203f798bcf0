# shellcheck shell=bash
#
# deploy/dev part: test. `deploy/dev test`: the servers, the rotel receiver
# the tracing tests need, the Python venv the services tests run the Python
# services from (TASKER_PYTHON), Node's and Ruby's packages, cargo test
# --workspace, and then, only if the Rust tests pass, the Python SDK's and
# the Python example's checks, then the TypeScript and Ruby SDKs' (cmd_test;
# run_tests, for servers that run already).
#
# Relies on deploy/dev for ROOT and TARGET_DIR; on common.sh for say; on
# apps.sh for cmd_servers and ensure_cargo; on traces.sh for ensure_rotel;
# on python.sh for ensure_python_venv and run_python_checks; on sdks.sh for
# ensure_node, ensure_ruby, run_typescript_checks and run_ruby_checks.

cmd_test() {
  cmd_servers
  run_tests "$@"
}

# run_tests [ARGS...]: every suite, against the servers that TASKER_AMQP_URL
# and TASKER_REDIS_URL name, which run already.
run_tests() {
  ensure_rotel
  ensure_python_venv
  export TASKER_PYTHON=$PYTHON_VENV/bin/python
  ensure_node
  ensure_ruby
  ensure_cargo
  local start=$SECONDS rc=0 what=rust
  say "running: cargo test --workspace $*"
  (cd "$ROOT" && cargo test --workspace "$@") || rc=$?
  if ((rc == 0)); then
    echo
    say "rust tests passed; now the python packages"
    # The Python client's tests run this coordinator. cargo test builds it
    # (coordinator/tests/cli.rs runs it); a filtered run may not have.
    if [[ ! -x $TARGET_DIR/debug/tasker ]]; then
      say "building the coordinator for the python tests: cargo build -p tasker-coordinator --bin tasker"
      (cd "$ROOT" && cargo build -p tasker-coordinator --bin tasker) || rc=$?
    fi
    what=python
    ((rc == 0)) && { run_python_checks || rc=$?; }
    ((rc == 0)) && { what=typescript; run_typescript_checks || rc=$?; }
    ((rc == 0)) && { what=ruby; run_ruby_checks || rc=$?; }
  fi
  local elapsed=$((SECONDS - start))
  echo
  if ((rc == 0)); then
    say "tests passed (rust, python, typescript and ruby) in $((elapsed / 60))m$(printf '%02d' $((elapsed % 60)))s"
  else
    say "$what tests FAILED (exit code $rc) after $((elapsed / 60))m$(printf '%02d' $((elapsed % 60)))s"
  fi
  return $rc
}
