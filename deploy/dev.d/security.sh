# shellcheck shell=bash
#
# deploy/dev part: TLS and identities. The certificates deploy/dev makes with
# openssl under $STATE/tls (a CA, the servers' certificate, a client
# certificate, and a second CA that signed none of them, for tests), the
# passwords it makes under $STATE/secrets, the RabbitMQ users it gives each
# service and the coordinators (rabbit_ensure_identities), and the Redis ACL
# users (redis_acl_file). The servers listen for TLS beside plain
# connections, or, after `up --tls` or `servers --tls`, for TLS only
# (tls_mode); docs/security.md says why each permission is what it is.
#
# Relies on deploy/dev for STATE; on common.sh for the output helpers and
# have; on rabbitmq.sh for rabbitmqctl_run and RABBIT_DIR.

# --------------------------------------------------------------- settings ---
TLS_DIR=$STATE/tls
SECRETS_DIR=$STATE/secrets
AMQPS_PORT=${TASKER_DEV_AMQPS_PORT:-5671}    # RabbitMQ's TLS listener
REDISS_PORT=${TASKER_DEV_REDISS_PORT:-6380}  # Redis's TLS port
TLS_MODE_FILE=$STATE/tls-mode  # `tls` while the servers listen for TLS only
CERT_DAYS=825

# The example namespaces' services, NAMESPACE:SERVICE, each of which gets a
# RabbitMQ user of its own, tasker-SERVICE; the polyglot layout's accounts
# and status included.
DEV_SERVICES=(microservices:user microservices:billing microservices:preferences
  microservices:notifications microservices:accounts microservices:status
  payments:payments customer_success:customer_success ecommerce:ecommerce analytics:analytics)
# For the tests: users like the services', for the namespaces the tests
# make up (lp_…): tasker-test-SERVICE for each of these services.
TEST_NAMESPACES='lp_[a-z0-9_]+'
TEST_SERVICES=(probe user accounts billing preferences notifications status)
COORDINATOR_USER=tasker-coordinator
CLIENT_USER=tasker-client
REDIS_COORDINATOR_USER=tasker-coordinator
REDIS_OPERATOR_USER=tasker-operator

# ---------------------------------------------------------------- TLS mode ---

# tls_mode: `tls` when the servers are to listen for TLS only, else `plain`
# (plain and TLS listeners side by side).
tls_mode() {
  if [[ -f $TLS_MODE_FILE ]]; then cat "$TLS_MODE_FILE"; else echo plain; fi
}

# set_tls_mode MODE: the servers deploy/dev runs listen as MODE says (`tls`
# for TLS only, `plain` for both); running ones that listen otherwise are
# stopped, to be started again. Processes connected over TLS reconnect: both
# modes have the TLS listeners.
set_tls_mode() {
  local wanted=$1
  if [[ $(tls_mode) != "$wanted" ]] && { rabbit_pid >/dev/null || redis_pid >/dev/null; }; then
    say "restarting RabbitMQ and Redis to listen for $([[ $wanted == tls ]] && echo "TLS only" || echo "plain connections and TLS")"
    stop_rabbitmq || true
    stop_redis || true
  fi
  echo "$wanted" >"$TLS_MODE_FILE"
  tls_urls
}

# tls_urls: in TLS-only mode, points TASKER_AMQP_URL and TASKER_REDIS_URL at
# the TLS ports, as the admin users, and re-reads them (parse_urls).
tls_urls() {
  [[ $(tls_mode) == tls ]] || return 0
  TASKER_AMQP_URL=amqps://guest:guest@127.0.0.1:$AMQPS_PORT/%2f
  TASKER_REDIS_URL=rediss://default:$(password redis-admin)@127.0.0.1:$REDISS_PORT
  export TASKER_AMQP_URL TASKER_REDIS_URL
  parse_urls
  REDIS_CLI+=(--tls --cacert "$TLS_DIR/ca.pem" --cert "$TLS_DIR/client.pem" --key "$TLS_DIR/client.key")
  RABBIT_BASE_PORT=5672 REDIS_BASE_PORT=6379
}

# ------------------------------------------------------------ certificates ---

# ensure_tls_certs: the CA, and the certificates it signed, under TLS_DIR.
# Made once; delete the directory to make new ones.
ensure_tls_certs() {
  [[ -s $TLS_DIR/client.key && -s $TLS_DIR/other-ca.pem ]] && return 0
  have openssl || install_packages openssl
  say "making a CA and certificates for TLS under $TLS_DIR (openssl)"
  mkdir -p "$TLS_DIR"
  (
    cd "$TLS_DIR"
    umask 077
    cat >extensions.cnf <<'EOF'
[server]
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
[client]
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
EOF
    local key=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
    openssl req -x509 "${key[@]}" -keyout ca.key -out ca.pem -days "$CERT_DAYS" -subj "/CN=Tasker dev CA"
    openssl req -x509 "${key[@]}" -keyout other-ca.key -out other-ca.pem -days "$CERT_DAYS" \
      -subj "/CN=Another CA, trusted by nothing of Tasker's"
    local who
    for who in server client; do
      openssl req "${key[@]}" -keyout "$who.key" -out "$who.csr" -subj "/CN=tasker-dev-$who"
      openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$who.pem" \
        -days "$CERT_DAYS" -extfile extensions.cnf -extensions "$who"
      rm -f "$who.csr"
    done
    # Only the CA's key stays private: the servers run as other users.
    chmod 644 ./*.pem server.key client.key
  ) >/dev/null 2>"$TLS_DIR/openssl.log" || { cat "$TLS_DIR/openssl.log" >&2; die "openssl could not make the certificates (see above)"; }
}

# ---------------------------------------------------------------- secrets ---

# password NAME: the password kept in SECRETS_DIR/NAME, made at random the
# first time. Readable by its owner only.
password() {
  local file=$SECRETS_DIR/$1
  if [[ ! -s $file ]]; then
    mkdir -p "$SECRETS_DIR"
    chmod 700 "$SECRETS_DIR"
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$file")
  fi
  cat "$file"
}

# -------------------------------------------------------------- RabbitMQ ---

# rabbit_tls_config: the lines of rabbitmq.conf for the TLS listener, with
# client certificates required, and, in TLS-only mode, no plain one.
rabbit_tls_config() {
  local dir=$RABBIT_DIR/tls
  mkdir -p "$dir"
  cp "$TLS_DIR/ca.pem" "$TLS_DIR/server.pem" "$TLS_DIR/server.key" "$dir/"
  echo "# tasker-dev tls: made by deploy/dev at each start"
  [[ $(tls_mode) == tls ]] && echo "listeners.tcp = none"
  echo "listeners.ssl.default = 127.0.0.1:$AMQPS_PORT"
  echo "ssl_options.cacertfile = $dir/ca.pem"
  echo "ssl_options.certfile = $dir/server.pem"
  echo "ssl_options.keyfile = $dir/server.key"
  echo "ssl_options.verify = verify_peer"
  echo "ssl_options.fail_if_no_peer_cert = true"
}

# json_user NAME PASSWORD: a user of a definitions file.
json_user() {
  printf '{"name":"%s","password":"%s","tags":[]}' "$1" "$2"
}

# json_permissions USER CONFIGURE WRITE READ: a user's permissions on "/".
json_permissions() {
  printf '{"user":"%s","vhost":"/","configure":"%s","write":"%s","read":"%s"}' "$1" "$2" "$3" "$4"
}

# json_topic USER WRITE READ: what routing keys USER may publish to, and
# bind from, tasker.events.
json_topic() {
  printf '{"user":"%s","vhost":"/","exchange":"tasker.events","write":"%s","read":"%s"}' "$1" "$2" "$3"
}

# rabbit_definitions: the users and permissions of rabbit_ensure_identities,
# as a RabbitMQ definitions file (JSON). In regular expressions in JSON, a
# backslash is written twice.
rabbit_definitions() {
  local users=() permissions=() topics=() entry namespace service user own
  users+=("$(json_user "$COORDINATOR_USER" "$(password "rabbitmq-$COORDINATOR_USER")")")
  permissions+=("$(json_permissions "$COORDINATOR_USER" '^(tasker\\..*|amq\\.gen-.*)$' '^(tasker\\..*|amq\\.gen-.*|amq\\.default)$' '^(tasker\\..*|amq\\.gen-.*)$')")
  topics+=("$(json_topic "$COORDINATOR_USER" '.*' '.*')")
  # A client submits tasks and hears of them on a private reply queue.
  users+=("$(json_user "$CLIENT_USER" "$(password "rabbitmq-$CLIENT_USER")")")
  permissions+=("$(json_permissions "$CLIENT_USER" '^amq\\.gen-.*$' '^(tasker\\.requests|amq\\.gen-.*)$' '^amq\\.gen-.*$')")
  topics+=("$(json_topic "$CLIENT_USER" '^$' '^$')")
  local tests=("${TEST_SERVICES[@]/#/$TEST_NAMESPACES:}")
  for entry in "${DEV_SERVICES[@]/%/:}" "${tests[@]/%/:tasker-test-}"; do
    # NAMESPACE:SERVICE:USER, the user tasker-SERVICE when left out (and
    # tasker-test-SERVICE for the tests'); the namespace may be a regular
    # expression.
    IFS=: read -r namespace service user <<<"$entry"
    [[ $user == tasker-test- ]] && user=tasker-test-$service
    user=${user:-tasker-$service}
    # Its queue, or its exchange and queues when split (TASKER_PARTITIONS);
    # it binds them to its namespace's steps exchange, which it may read.
    own="tasker\\\\.steps\\\\.$namespace\\\\.$service(\\\\.[0-9]+)?"
    users+=("$(json_user "$user" "$(password "rabbitmq-$user")")")
    permissions+=("$(json_permissions "$user" "^($own|amq\\\\.gen-.*)\$" \
      "^($own|tasker\\\\.events|tasker\\\\.dead_letter|tasker\\\\.requests|amq\\\\.gen-.*)\$" \
      "^($own|tasker\\\\.steps\\\\.$namespace|amq\\\\.gen-.*)\$")")
    topics+=("$(json_topic "$user" "^(step\\\\.result\\\\.$namespace|worker\\\\.announce)\$" '^$')")
  done
  local IFS=,
  printf '{"users":[%s],"permissions":[%s],"topic_permissions":[%s]}\n' "${users[*]}" "${permissions[*]}" "${topics[*]}"
}

# rabbit_ensure_identities: imports rabbit_definitions into the node
# deploy/dev started, when they changed since the last import.
rabbit_ensure_identities() {
  local file=$RABBIT_DIR/identities.json stamp=$RABBIT_DIR/identities.imported
  rabbit_definitions >"$file.new"
  if [[ -f $stamp ]] && cmp -s "$file.new" "$file"; then
    rm -f "$file.new"
    return 0
  fi
  mv -f "$file.new" "$file"
  chmod 644 "$file"
  say "giving the coordinators, the client and each example service a RabbitMQ user (passwords in $SECRETS_DIR)"
  rabbitmqctl_run -q import_definitions "$file" >/dev/null \
    || die "RabbitMQ did not take the users in $file (see $RABBIT_LOG)"
  touch "$stamp"
}

# ------------------------------------------------------------------ Redis ---

# redis_acl_file FILE: Redis's users. The coordinators' may run Tasker's
# commands on Tasker's keys only; the operator's may read them, with
# Tasker's read-only scripts (a script's commands are checked against the
# user's rights, so it writes nothing either); the default user has every
# right, with a password in TLS-only mode and none otherwise.
redis_acl_file() {
  local hash default
  hash() { printf '%s' "$(password "$1")" | sha256sum | cut -d' ' -f1; }
  if [[ $(tls_mode) == tls ]]; then default="#$(hash redis-admin)"; else default=nopass; fi
  {
    echo "user default on $default ~* &* +@all"
    echo "user $REDIS_COORDINATOR_USER on #$(hash "redis-$REDIS_COORDINATOR_USER") ~tasker:* resetchannels -@all" \
      "+@read +@write +@scripting +@connection +@transaction -@dangerous +info +wait" \
      "+cluster|info +cluster|nodes +cluster|slots +cluster|shards +cluster|myid"
    echo "user $REDIS_OPERATOR_USER on #$(hash "redis-$REDIS_OPERATOR_USER") ~tasker:* resetchannels -@all" \
      "+@read +@connection -@dangerous +info +cluster|info +cluster|nodes +cluster|slots +cluster|shards" \
      "+evalsha +eval +script|load"
  } >"$1"
  chmod 600 "$1"
}

# redis_tls_args: redis-server's TLS port, with client certificates
# required, and, in TLS-only mode, no plain one.
redis_tls_args() {
  REDIS_TLS_ARGS=(--tls-port "$REDISS_PORT" --tls-cert-file "$TLS_DIR/server.pem"
    --tls-key-file "$TLS_DIR/server.key" --tls-ca-cert-file "$TLS_DIR/ca.pem" --tls-auth-clients yes)
  [[ $(tls_mode) == tls ]] && REDIS_TLS_ARGS+=(--port 0)
  return 0
}

# ------------------------------------------------------ the processes' ids ---

# app_identity NAME: adds to APP_ENV (apps.sh) the identity process NAME runs
# as, when deploy/dev runs the servers that know it: the coordinators' user,
# or its service's own, its password from its file; Redis for the
# coordinator only; over TLS in TLS-only mode.
app_identity() {
  rabbit_pid >/dev/null || return 0
  [[ $AMQP_VHOST == / ]] || return 0
  local name=$1 user amqp redis tls=()
  case $name in
    coordinator*) user=$COORDINATOR_USER ;;
    microservices-*) user=tasker-${name#microservices-} ;;
    worker-*) user=tasker-${name#worker-} user=${user//-/_} user=tasker-${user#tasker_} ;;
    *) return 0 ;;
  esac
  if [[ $(tls_mode) == tls ]]; then
    amqp=amqps://$user@127.0.0.1:$AMQPS_PORT/%2f
    redis=rediss://$REDIS_COORDINATOR_USER@127.0.0.1:$REDISS_PORT
    tls=("TASKER_TLS_CA_FILE=$TLS_DIR/ca.pem" "TASKER_TLS_CERT_FILE=$TLS_DIR/client.pem"
      "TASKER_TLS_KEY_FILE=$TLS_DIR/client.key")
  else
    amqp=amqp://$user@$AMQP_HOST:$AMQP_PORT/%2f
    redis=redis://$REDIS_COORDINATOR_USER@$REDIS_HOST:$REDIS_PORT
  fi
  APP_ENV+=("TASKER_AMQP_URL=$amqp" "TASKER_AMQP_PASSWORD_FILE=$SECRETS_DIR/rabbitmq-$user" "${tls[@]}")
  if [[ $name == coordinator* ]]; then
    redis_pid >/dev/null && APP_ENV+=("TASKER_REDIS_URL=$redis" "TASKER_REDIS_PASSWORD_FILE=$SECRETS_DIR/redis-$REDIS_COORDINATOR_USER")
  else
    # Workers have no business with Redis.
    APP_ENV=(-u TASKER_REDIS_URL "${APP_ENV[@]}")
  fi
  return 0
}

# print_client_env: in TLS-only mode, what a client needs to reach the
# servers, one export line each: the client's user for RabbitMQ, the
# operator's for Redis (`tasker status`), and the TLS files.
print_client_env() {
  [[ $(tls_mode) == tls ]] || return 0
  echo
  say "the servers listen for TLS only; a client needs:"
  echo "export TASKER_AMQP_URL='amqps://$CLIENT_USER@127.0.0.1:$AMQPS_PORT/%2f'"
  echo "export TASKER_AMQP_PASSWORD_FILE='$SECRETS_DIR/rabbitmq-$CLIENT_USER'"
  echo "export TASKER_REDIS_URL='rediss://$REDIS_OPERATOR_USER@127.0.0.1:$REDISS_PORT'"
  echo "export TASKER_REDIS_PASSWORD_FILE='$SECRETS_DIR/redis-$REDIS_OPERATOR_USER'"
  echo "export TASKER_TLS_CA_FILE='$TLS_DIR/ca.pem'"
  echo "export TASKER_TLS_CERT_FILE='$TLS_DIR/client.pem'"
  echo "export TASKER_TLS_KEY_FILE='$TLS_DIR/client.key'"
}
