# shellcheck shell=bash
#
# deploy/dev part: the TypeScript and Ruby SDKs. What their checks need,
# Node with npm and the SDK's npm packages (ensure_node), Ruby with Bunny and
# RuboCop from apt (ensure_ruby), and the checks themselves, which
# `deploy/dev test` runs after the Python ones (run_typescript_checks,
# run_ruby_checks): the strict type check and node's test runner; RuboCop
# and minitest. Both suites run against RabbitMQ, including the conformance
# kit of tests/conformance.
#
# The client tests of both run the coordinator binary of the cargo test run
# (TASKER_BIN).
#
# Relies on deploy/dev for ROOT and TARGET_DIR; on common.sh for say, info, warn, die, have
# and install_packages.

# --------------------------------------------------------------- settings ---
TYPESCRIPT_SDK=worker/typescript
RUBY_SDK=worker/ruby
NODE_MIN=18

# ensure_node: node and npm (from apt when missing), then the TypeScript
# SDK's packages in its node_modules, installed with `npm ci` from its lock
# file when missing or older than the lock file.
ensure_node() {
  have node || install_packages nodejs
  have npm || install_packages npm
  node -e "process.exit(Number(process.versions.node.split('.')[0]) < $NODE_MIN ? 1 : 0)" \
    || die "the TypeScript SDK needs node $NODE_MIN or later, and node is $(node --version); install a newer one"
  local dir=$ROOT/$TYPESCRIPT_SDK
  if [[ -d $dir/node_modules && $dir/node_modules/.package-lock.json -nt $dir/package-lock.json ]]; then
    info "npm packages are up to date ($TYPESCRIPT_SDK/node_modules)"
    return 0
  fi
  say "npm ci in $TYPESCRIPT_SDK (its packages, from the npm registry)"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) \
    || die "npm could not install the TypeScript SDK's packages (see the npm output above)"
}

# ensure_ruby: ruby, Bunny and RuboCop, from apt when missing.
ensure_ruby() {
  local missing=()
  have ruby || missing+=(ruby)
  { have ruby && ruby -e 'require "bunny"' 2>/dev/null; } || missing+=(ruby-bunny)
  have rubocop || missing+=(rubocop)
  have rake || missing+=(rake)
  ((${#missing[@]} == 0)) || install_packages "${missing[@]}"
}

run_typescript_checks() {
  say "typescript ($TYPESCRIPT_SDK): tsc --noEmit (strict), then npm test"
  (cd "$ROOT/$TYPESCRIPT_SDK" && npm run --silent lint && TASKER_BIN=$TARGET_DIR/debug/tasker npm test --silent) \
    || { warn "$TYPESCRIPT_SDK: type check or tests failed (see above)"; return 1; }
}

run_ruby_checks() {
  say "ruby ($RUBY_SDK): rubocop, then rake test"
  (cd "$ROOT/$RUBY_SDK" && rubocop --format quiet && TASKER_BIN=$TARGET_DIR/debug/tasker rake test) \
    || { warn "$RUBY_SDK: rubocop or tests failed (see above)"; return 1; }
}
