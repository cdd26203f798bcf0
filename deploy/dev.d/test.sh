# shellcheck shell=bash
#
# deploy/dev part: test. `deploy/dev test`: the servers, the rotel receiver
# the tracing test needs, then cargo test --workspace (cmd_test).
#
# Relies on deploy/dev for ROOT; on common.sh for say; on apps.sh for
# cmd_servers and ensure_cargo; on traces.sh for ensure_rotel.

cmd_test() {
  cmd_servers
  ensure_rotel
  ensure_cargo
  local start=$SECONDS rc=0 elapsed
  say "running: cargo test --workspace $*"
  (cd "$ROOT" && cargo test --workspace "$@") || rc=$?
  elapsed=$((SECONDS - start))
  echo
  if ((rc == 0)); then
    say "tests passed in $((elapsed / 60))m$(printf '%02d' $((elapsed % 60)))s"
  else
    say "tests FAILED (exit code $rc) after $((elapsed / 60))m$(printf '%02d' $((elapsed % 60)))s"
  fi
  return $rc
}
