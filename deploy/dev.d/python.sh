# shellcheck shell=bash
#
# deploy/dev part: python. The virtualenv that the Python SDK (worker/python)
# and the Python services of the microservices example
# (examples/microservices/python) run and are tested in, $STATE/python-venv
# (ensure_python_venv), and their checks, which `deploy/dev test` runs after
# the Rust tests (run_python_checks): ruff, mypy --strict and pytest.
#
# Relies on deploy/dev for ROOT, STATE and TARGET_DIR; on common.sh for say,
# info, die, have and install_packages.

# --------------------------------------------------------------- settings ---
PYTHON_VENV=$STATE/python-venv
# The packages installed (editable) into the venv, with their dev extras.
PYTHON_PACKAGES=(worker/python examples/microservices/python)
PYTHON_MIN=3.11

# python_stamp: what the venv was set up from, the interpreter and the
# packages' pyproject.toml files. Editable installs follow code changes by
# themselves; a changed dependency list means installing again.
python_stamp() {
  local p
  {
    python3 --version
    for p in "${PYTHON_PACKAGES[@]}"; do cat "$ROOT/$p/pyproject.toml"; done
  } | sha256sum | cut -d' ' -f1
}

# ensure_python_venv: $STATE/python-venv with the packages of
# PYTHON_PACKAGES installed, made when missing, installed again when
# outdated.
ensure_python_venv() {
  have python3 || install_packages python3 python3-venv
  python3 -c "import sys; sys.exit(sys.version_info < tuple(map(int, '$PYTHON_MIN'.split('.'))))" \
    || die "the Python SDK needs python $PYTHON_MIN or later, and python3 is $(python3 --version 2>&1); install a newer one"
  local want have_stamp=''
  want=$(python_stamp)
  [[ -f $PYTHON_VENV/.tasker-stamp ]] && have_stamp=$(<"$PYTHON_VENV/.tasker-stamp")
  if [[ -x $PYTHON_VENV/bin/python && $have_stamp == "$want" ]]; then
    info "python venv is up to date ($PYTHON_VENV)"
    return 0
  fi
  if [[ ! -x $PYTHON_VENV/bin/python ]]; then
    say "creating the python venv ($PYTHON_VENV)"
    rm -rf "$PYTHON_VENV"
    if ! python3 -m venv "$PYTHON_VENV" 2>/dev/null; then
      # Debian ships the venv module apart from python3.
      rm -rf "$PYTHON_VENV"
      install_packages python3-venv
      python3 -m venv "$PYTHON_VENV" || die "python3 -m venv $PYTHON_VENV failed (see above)"
    fi
  else
    say "updating the python venv ($PYTHON_VENV): a pyproject.toml changed"
  fi
  local args=() p
  for p in "${PYTHON_PACKAGES[@]}"; do args+=(-e "$ROOT/${p}[dev]"); done
  info "pip install ${PYTHON_PACKAGES[*]} (editable, with their dev tools)"
  "$PYTHON_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${args[@]}" \
    || die "pip could not install ${PYTHON_PACKAGES[*]} into $PYTHON_VENV (see the pip output above)"
  printf '%s\n' "$want" >"$PYTHON_VENV/.tasker-stamp"
  info "python venv ready"
}

# run_python_checks: for each package, the linter, the formatter's check and
# the type checker, then its tests. The tests use RabbitMQ, Redis and the
# coordinator binary of the cargo test run (TASKER_BIN); the SDK's tracing
# test the rotel receiver too (TASKER_ROTEL_AGENT, from ensure_rotel).
run_python_checks() {
  local bin=$PYTHON_VENV/bin p
  for p in "${PYTHON_PACKAGES[@]}"; do
    say "python ($p): ruff check, ruff format --check, mypy --strict"
    (cd "$ROOT/$p" && "$bin/ruff" check . && "$bin/ruff" format --check . && "$bin/mypy" --strict src tests) \
      || { warn "$p: lint, format or type check failed (see above)"; return 1; }
  done
  for p in "${PYTHON_PACKAGES[@]}"; do
    say "python ($p): pytest"
    (cd "$ROOT/$p" && TASKER_BIN=$TARGET_DIR/debug/tasker "$bin/pytest" -q) \
      || { warn "$p: tests failed (see above)"; return 1; }
  done
}
