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
TYPESCRIPT_EXAMPLE=examples/microservices/typescript # depends on the SDK's dist/ (file:../../../worker/typescript)
RUBY_SDK=worker/ruby
RUBY_EXAMPLE=examples/microservices/ruby
NODE_MIN=20  # the packages' "engines"; node --test --test-concurrency needs 20

# ensure_node: node and npm (from apt when missing), then the TypeScript
# SDK's packages in its node_modules, installed with `npm ci` from its lock
# file when missing or older than the lock file, and its build (dist/);
# then the microservices example's packages and build, the same way.
ensure_node() {
  have node || install_packages nodejs
  have npm || install_packages npm
  node -e "process.exit(Number(process.versions.node.split('.')[0]) < $NODE_MIN ? 1 : 0)" \
    || die "the TypeScript SDK needs node $NODE_MIN or later, and node is $(node --version). Debian 12's apt has 18: install 20 from https://nodejs.org (or NodeSource's apt repository), then run this again"
  local package dir
  for package in "$TYPESCRIPT_SDK" "$TYPESCRIPT_EXAMPLE"; do
    dir=$ROOT/$package
    if [[ -d $dir/node_modules && $dir/node_modules/.package-lock.json -nt $dir/package-lock.json ]]; then
      info "npm packages are up to date ($package/node_modules)"
    else
      say "npm ci in $package (its packages, from the npm registry)"
      (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) \
        || die "npm could not install the packages of $package (see the npm output above)"
    fi
    # The example links the SDK (file:) and imports its dist/, so the SDK
    # builds first; the example's own dist/ is what the Rust tests and
    # `up --polyglot` run, and the chaos suite's TypeScript worker imports
    # the SDK's.
    say "building $package (npm run build)"
    (cd "$dir" && npm run --silent build) \
      || die "$package does not build (see the tsc output above)"
  done
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
  say "typescript ($TYPESCRIPT_SDK): tsc --noEmit (strict), eslint, prettier --check, then npm test"
  (cd "$ROOT/$TYPESCRIPT_SDK" && npm run --silent lint && TASKER_BIN=$TARGET_DIR/debug/tasker npm test --silent) \
    || { warn "$TYPESCRIPT_SDK: lint or tests failed (see above)"; return 1; }
  # After the SDK's tests, which rebuild the dist/ the example imports.
  say "typescript ($TYPESCRIPT_EXAMPLE): tsc --noEmit (strict), eslint, prettier --check, then npm test"
  (cd "$ROOT/$TYPESCRIPT_EXAMPLE" && npm run --silent lint && TASKER_BIN=$TARGET_DIR/debug/tasker npm test --silent) \
    || { warn "$TYPESCRIPT_EXAMPLE: lint or tests failed (see above)"; return 1; }
  # The README's handler, built so that it cannot rot; it imports the SDK's
  # dist/ too.
  local readme=examples/readme/typescript dir
  dir=$ROOT/$readme
  say "typescript ($readme): tsc (strict)"
  # Its packages as ensure_node installs the others: from its lock file, when
  # missing or older than it.
  if [[ ! -d $dir/node_modules || ! $dir/node_modules/.package-lock.json -nt $dir/package-lock.json ]]; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) \
      || { warn "npm could not install the packages of $readme (see the npm output above)"; return 1; }
  fi
  (cd "$dir" && npm run --silent build) \
    || { warn "$readme: does not build (see the tsc output above)"; return 1; }
}

# run_ruby_checks: rubocop, then rake test, in the SDK and in the Ruby
# microservices example (its tests run the diamond through the coordinator);
# each is checked even when the other fails.
run_ruby_checks() {
  local dir failed=0
  for dir in "$RUBY_SDK" "$RUBY_EXAMPLE"; do
    say "ruby ($dir): rubocop, then rake test"
    (cd "$ROOT/$dir" && rubocop --format quiet && TASKER_BIN=$TARGET_DIR/debug/tasker rake test) \
      || { warn "$dir: rubocop or tests failed (see above)"; failed=1; }
  done
  # The README's Ruby service, with the SDK's rules.
  say "ruby (examples/readme/risk_service.rb): rubocop"
  (cd "$ROOT" && rubocop --format quiet -c "$RUBY_SDK/.rubocop.yml" examples/readme/risk_service.rb) \
    || { warn "examples/readme/risk_service.rb: rubocop failed (see above)"; failed=1; }
  return "$failed"
}
