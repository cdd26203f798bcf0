#!/usr/bin/env bash
#
# tests/bench/celery/setup.sh - make the Python venv the Celery benchmark runs in.
#
# Creates $TASKER_STATE_DIR/celery-venv (default <repo>/.dev/celery-venv) with
# `python3 -m venv` and installs requirements.txt into it. A stamp file in the
# venv records the hash of requirements.txt and the Python version; when it
# matches, nothing is done. Progress and errors go to stderr; the last line on
# stdout is the venv's python, e.g.
#
#     PY=$(tests/bench/celery/setup.sh)
#     "$PY" tests/bench/celery/bench_celery.py --quick

set -euo pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd -- "$HERE/../../.." && pwd)
STATE=${TASKER_STATE_DIR:-$ROOT/.dev}
[[ $STATE == /* ]] || STATE=$PWD/$STATE
VENV=$STATE/celery-venv
REQUIREMENTS=$HERE/requirements.txt
STAMP=$VENV/.requirements-stamp
PYTHON=${PYTHON:-python3}

say() { printf 'celery setup: %s\n' "$*" >&2; }

fail() {
  printf 'celery setup: error: %s\n' "$1" >&2
  shift
  local line
  for line in "$@"; do printf '  %s\n' "$line" >&2; done
  exit 1
}

command -v "$PYTHON" >/dev/null 2>&1 ||
  fail "$PYTHON was not found." \
    "Install Python 3 with venv and pip (e.g. apt-get install python3 python3-venv)," \
    "or set PYTHON to a Python 3 interpreter."

[[ -f $REQUIREMENTS ]] || fail "$REQUIREMENTS is missing."

py_version=$("$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])') ||
  fail "$PYTHON does not run."
want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1) python-$py_version"

if [[ -x $VENV/bin/python && -f $STAMP && "$(cat "$STAMP")" == "$want" ]] &&
  "$VENV/bin/python" -c 'import celery, redis' >/dev/null 2>&1; then
  say "venv $VENV is up to date"
  printf '%s\n' "$VENV/bin/python"
  exit 0
fi

if [[ -e $VENV ]]; then
  say "removing the stale venv $VENV"
  rm -rf -- "$VENV"
fi

say "creating the venv $VENV with $PYTHON ($py_version)"
mkdir -p -- "$STATE"
"$PYTHON" -m venv "$VENV" >&2 ||
  fail "'$PYTHON -m venv $VENV' failed." \
    "On Debian and Ubuntu the venv module is a package of its own: apt-get install python3-venv," \
    "then run this script again."

say "installing $(grep -cv '^\s*\(#\|$\)' "$REQUIREMENTS") pinned packages from $REQUIREMENTS"
if ! "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input \
  --quiet -r "$REQUIREMENTS" >&2; then
  rm -rf -- "$VENV"
  fail "pip could not install $REQUIREMENTS into $VENV (see pip's output above)." \
    "Check that PyPI is reachable (or that pip's index/proxy settings are right)," \
    "then run this script again; it starts over from a new venv."
fi

"$VENV/bin/python" -c 'import celery, redis, kombu' >&2 ||
  fail "the packages installed but do not import in $VENV." \
    "Remove $VENV and run this script again."

printf '%s\n' "$want" >"$STAMP"
say "ready: celery $("$VENV/bin/python" -c 'import celery; print(celery.__version__)')"
printf '%s\n' "$VENV/bin/python"
