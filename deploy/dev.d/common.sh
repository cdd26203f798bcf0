# shellcheck shell=bash
#
# deploy/dev part: output and processes. The helpers every other part uses:
# messages (say, info, warn, die), have, logs (show_log_tail, rotate_log), URL
# parsing (parse_urls sets AMQP_HOST/PORT/USER/PASS/VHOST and
# REDIS_HOST/PORT/USER/PASS and REDIS_CLI), is_local and port_open, PID
# handling (proc_alive, pid_from, stop_process), the lock that serialises
# commands (lock, unlock) and installing packages (install_packages).
#
# Relies on deploy/dev for STATE, TASKER_AMQP_URL and TASKER_REDIS_URL.
# Sourcing it sets the EXIT trap (on_exit) that removes the policy-rc.d
# install_packages writes, should it exit before removing it itself.

# --------------------------------------------------------------- settings ---
STOP_TIMEOUT=10          # seconds between SIGTERM and SIGKILL

# ----------------------------------------------------------------- output ---

say()  { printf '==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die()  { printf 'error: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

show_log_tail() {  # show_log_tail FILE [LINES]
  local file=$1 lines=${2:-20}
  [[ -s $file ]] || { printf '    (%s is empty)\n' "$file" >&2; return 0; }
  printf -- '---- last %s lines of %s ----\n' "$lines" "$file" >&2
  tail -n "$lines" "$file" >&2
  printf -- '----\n' >&2
}

rotate_log() {  # keep the previous run's log as FILE.1
  [[ -s $1 ]] && mv -f "$1" "$1.1"
  return 0
}

# ------------------------------------------------------------ URL parsing ---

url_decode() { local s=$1; printf '%b' "${s//%/\\x}"; }

# parse_url URL DEFAULT_PORT: sets URL_HOST URL_PORT URL_USER URL_PASS URL_PATH
parse_url() {
  local url=$1 default_port=$2 rest userinfo=
  rest=${url#*://}
  [[ $rest != "$url" ]] || die "'$url' is not a URL (expected scheme://host:port/...)"
  URL_PATH=
  if [[ $rest == */* ]]; then URL_PATH=${rest#*/}; rest=${rest%%/*}; fi
  rest=${rest%%\?*}
  URL_PATH=${URL_PATH%%\?*}
  if [[ $rest == *@* ]]; then userinfo=${rest%@*}; rest=${rest##*@}; fi
  URL_USER=$(url_decode "${userinfo%%:*}")
  URL_PASS=
  [[ $userinfo == *:* ]] && URL_PASS=$(url_decode "${userinfo#*:}")
  URL_HOST=${rest%%:*}
  URL_PORT=
  [[ $rest == *:* ]] && URL_PORT=${rest#*:}
  URL_HOST=${URL_HOST:-127.0.0.1}
  URL_PORT=${URL_PORT:-$default_port}
  [[ $URL_PORT =~ ^[0-9]+$ ]] || die "bad port '$URL_PORT' in '$url'"
}

parse_urls() {
  # A cluster's URLs are separated by commas; the servers deploy/dev starts
  # and checks are the first one's.
  local amqp_url=${TASKER_AMQP_URL%%,*}
  case $amqp_url in amqps://*) parse_url "$amqp_url" 5671 ;; *) parse_url "$amqp_url" 5672 ;; esac
  AMQP_HOST=$URL_HOST AMQP_PORT=$URL_PORT AMQP_USER=${URL_USER:-guest} AMQP_PASS=${URL_PASS:-guest}
  AMQP_VHOST=$(url_decode "$URL_PATH")
  AMQP_VHOST=${AMQP_VHOST:-/}

  parse_url "${TASKER_REDIS_URL%%,*}" 6379
  REDIS_HOST=$URL_HOST REDIS_PORT=$URL_PORT REDIS_USER=$URL_USER REDIS_PASS=$URL_PASS
  REDIS_CLI=(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT")
  [[ -n $REDIS_USER ]] && REDIS_CLI+=(--user "$REDIS_USER")
  [[ -n $REDIS_PASS ]] && REDIS_CLI+=(-a "$REDIS_PASS" --no-auth-warning)
  return 0
}

is_local() { [[ $1 == localhost || $1 == 127.* ]]; }

port_open() {  # port_open HOST PORT: does something accept TCP connections?
  # shellcheck disable=SC2016
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# -------------------------------------------------------------- processes ---

proc_alive() {  # running and not a zombie (nothing reaps orphans here)
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != [ZX] ]]
}

# pid_from FILE PATTERN: print the PID in FILE if that process is alive and its
# command line contains PATTERN (so a reused PID is never mistaken for ours).
pid_from() {
  local file=$1 pattern=$2 pid cmdline
  [[ -f $file ]] || return 1
  pid=$(tr -dc '0-9' <"$file")
  [[ -n $pid ]] && proc_alive "$pid" || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"$pattern"* ]] || return 1
  echo "$pid"
}

# stop_process NAME PID [TIMEOUT]: SIGTERM, wait, then SIGKILL. A process
# that leads its own process group (we start everything with setsid) is
# signalled together with its group, so no children are left behind.
stop_process() {
  local name=$1 pid=$2 timeout=${3:-$STOP_TIMEOUT} deadline target stat
  target=$pid
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) && stat=${stat##*) } \
    && [[ $(cut -d' ' -f3 <<<"$stat") == "$pid" ]] && target=-$pid
  kill -TERM -- "$target" 2>/dev/null || true
  deadline=$((SECONDS + timeout))
  while proc_alive "$pid"; do
    if ((SECONDS >= deadline)); then
      warn "$name (pid $pid) did not stop within ${timeout}s; sending SIGKILL"
      kill -KILL -- "$target" 2>/dev/null || true
      sleep 0.5
      return 0
    fi
    sleep 0.2
  done
}

# Serialise commands that start or stop things, so two concurrent runs never
# start a server twice. Started processes must not inherit fd 9 (9>&-).
lock() {
  mkdir -p "$STATE"
  have flock || return 0
  exec 9>"$STATE/.lock"
  if ! flock -n 9; then
    info "waiting for another deploy/dev command to finish (lock: $STATE/.lock)"
    flock -w 300 9 || die "another deploy/dev command has held $STATE/.lock for 5 minutes; is one stuck?"
  fi
}
unlock() { exec 9>&-; }

# ------------------------------------------------------------- installing ---

POLICY_RC=/usr/sbin/policy-rc.d
REMOVE_POLICY_RC=
on_exit() { [[ -z $REMOVE_POLICY_RC ]] || rm -f "$POLICY_RC"; }
trap on_exit EXIT

install_packages() {  # install_packages PKG...
  if [[ ! -f /etc/debian_version ]] || ! have apt-get; then
    cat >&2 <<EOF
error: deploy/dev needs the package(s): $*
  This is not a Debian/Ubuntu machine, so deploy/dev cannot install them itself.
  Install RabbitMQ (3.9+) and Redis (6+) with your package manager, e.g.
    brew install rabbitmq redis        # macOS
    dnf install rabbitmq-server redis  # Fedora
  or point TASKER_AMQP_URL / TASKER_REDIS_URL at servers that are already running.
EOF
    exit 1
  fi
  ((EUID == 0)) || die "installing $* needs root. Run: sudo apt-get update && sudo apt-get install -y $*"
  say "installing $* with apt-get (one time only)"
  # Keep the packages from starting their own system-wide servers on our
  # ports; deploy/dev runs them itself under $STATE.
  if [[ ! -e $POLICY_RC ]]; then
    REMOVE_POLICY_RC=1
    printf '#!/bin/sh\n# temporary, from deploy/dev: do not start services during apt-get install\nexit 101\n' >"$POLICY_RC"
    chmod 755 "$POLICY_RC"
  fi
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"; }; then
    die "apt-get could not install $* (see the output above)"
  fi
  if [[ -n $REMOVE_POLICY_RC ]]; then rm -f "$POLICY_RC"; REMOVE_POLICY_RC=; fi
}
