# shellcheck shell=bash
#
# deploy/dev part: traces. The OTLP receiver (rotel, from PyPI) that `up`
# starts when no OTEL_EXPORTER_OTLP_ENDPOINT is set (setup_traces,
# ensure_rotel), and the demo, which shows the spans the receiver got for its
# task (cmd_demo, span_summary, show_trace). ensure_rotel exports
# TASKER_ROTEL_AGENT, which app_command (apps.sh) and the tracing test run.
#
# Relies on deploy/dev for ROOT, STATE and BIN_DIR; on common.sh for the
# output helpers, have, port_open and install_packages; on apps.sh for
# app_pid and start_app (the receiver runs as the process `traces`) and cmd_up
# (the demo starts the stack first).

# --------------------------------------------------------------- settings ---
# The OTLP trace receiver `up` starts when no OTEL_EXPORTER_OTLP_ENDPOINT is
# set: rotel (from PyPI), printing every span it receives to $STATE/traces.log.
TRACES_HTTP_PORT=4318
TRACES_GRPC_PORT=4317

# setup_traces: where the coordinator and workers `up` starts send their
# spans. An OTEL_EXPORTER_OTLP_ENDPOINT from the caller wins; otherwise a
# receiver already listening on 127.0.0.1:$TRACES_HTTP_PORT (a Jaeger, say) is used as
# is; otherwise we start rotel, which prints every span to $STATE/traces.log.
setup_traces() {
  if [[ -n ${OTEL_EXPORTER_OTLP_ENDPOINT:-} ]]; then
    info "spans go to OTEL_EXPORTER_OTLP_ENDPOINT=$OTEL_EXPORTER_OTLP_ENDPOINT"
    return 0
  fi
  if [[ ${TASKER_DEV_TRACES:-1} == 0 ]]; then
    info "TASKER_DEV_TRACES=0: no trace receiver, no spans exported"
    return 0
  fi
  if ! app_pid traces >/dev/null && port_open 127.0.0.1 "$TRACES_HTTP_PORT"; then
    info "an OTLP receiver not started by deploy/dev listens on 127.0.0.1:$TRACES_HTTP_PORT; spans go there"
  else
    ensure_rotel
    start_app traces
  fi
  export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$TRACES_HTTP_PORT
  export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf
  # flush spans each second rather than every five, so the demo's trace
  # is complete moments after its task ends
  export OTEL_BSP_SCHEDULE_DELAY=${OTEL_BSP_SCHEDULE_DELAY:-1000}
}

# ensure_rotel: the OTLP receiver the tracing test sends spans to, from
# PyPI's `rotel` package, installed once under the state directory.
ensure_rotel() {
  local dir=$STATE/rotel agent
  agent=$dir/rotel/rotel-agent
  if [[ ! -x $agent ]]; then
    if ! python3 -m pip --version >/dev/null 2>&1; then
      have apt-get || die "python3 with pip is needed to install the rotel OTLP receiver; install it, then run this again"
      install_packages python3-pip
    fi
    local flags=(--quiet --disable-pip-version-check --target "$dir")
    # Debian's pip refuses to install outside a virtualenv unless told;
    # --target touches nothing of the system's.
    python3 -m pip install --help 2>/dev/null | grep -q -- --break-system-packages && flags+=(--break-system-packages)
    say "installing the rotel OTLP receiver (pip install --target $dir rotel)"
    python3 -m pip install "${flags[@]}" rotel \
      || die "pip could not install rotel; the trace receiver and the tracing test need it (see the pip output above)"
  fi
  export TASKER_ROTEL_AGENT=$agent
}

# cmd_demo [--polyglot] [ARGS...]: `up` (with --polyglot, the namespace in
# four languages), then `tasker demo ARGS...`, then the spans of its trace.
# The last line printed is the task's report as JSON, as tasker demo's is.
cmd_demo() {
  local up_args=() demo_args=()
  while (($#)); do
    case $1 in
      --polyglot) up_args+=(--polyglot) ;;
      *) demo_args+=("$1") ;;
    esac
    shift
  done
  cmd_up "${up_args[@]}"
  echo
  say "running the demo: tasker demo ${demo_args[*]}"
  local rc=0 out=$STATE/demo.out trace report
  # Everything but the report, which comes last, after the spans.
  (cd "$ROOT" && "$BIN_DIR/tasker" demo "${demo_args[@]}") | tee "$out" | sed '/^Final report (JSON):$/,$d' || rc=$?
  trace=$(sed -n 's/^trace \([0-9a-f]\{32\}\):.*/\1/p' "$out" | head -n 1)
  if [[ -n $trace ]] && app_pid traces >/dev/null; then
    show_trace "$trace"
  fi
  echo
  echo "The stack is still running ($LAYOUT layout). Stop it with: deploy/dev down"
  # tasker demo's last line, when it is the report
  report=$(tail -n 1 "$out")
  if [[ $report == '{'* ]]; then
    echo
    echo "Final report (JSON):"
    printf '%s\n' "$report"
  fi
  return $rc
}

# span_summary TRACE: "<count> <service> <language> <span name>" for each
# kind of span of TRACE in the receiver's log, from rotel's detailed debug
# output; the language is the resource's telemetry.sdk.language.
span_summary() {
  awk -v trace="$1" '
    function attribute(line) { sub(/.*: */, "", line); gsub(/^Str\(|\)$/, "", line); return line }
    /^ResourceSpans/ { emit(); in_span = 0; service = "?"; language = "?" }
    /-> service.name:/ { service = attribute($0) }
    /-> telemetry.sdk.language:/ { language = attribute($0) }
    /^ *Span #/ { emit(); in_span = 1; id = ""; name = "" }
    in_span && /^ *Trace ID *:/ { id = $NF }
    in_span && /^ *Name *:/ { name = $0; sub(/^ *Name *: */, "", name) }
    function emit() { if (in_span && id == trace) count[service "\t" language "\t" name]++ }
    END {
      emit()
      for (k in count) { split(k, f, "\t"); printf "%5d  %-36s %-11s %s\n", count[k], f[1], f[2], f[3] }
    }' "$STATE/traces.log" | sort -k2,2 -k4
}

# show_trace TRACE: wait until the receiver holds TRACE's spans (they are
# flushed each second), then say what it received.
show_trace() {
  local trace=$1 summary='' previous='' deadline=$((SECONDS + 15))
  echo
  say "spans of trace $trace received by the trace receiver ($STATE/traces.log)"
  while ((SECONDS < deadline)); do
    summary=$(span_summary "$trace")
    # done once two looks, a flush interval and a half apart, agree
    [[ -n $summary && $summary == "$previous" ]] && break
    previous=$summary
    sleep 1.5
  done
  if [[ -z $summary ]]; then
    warn "the trace receiver has no span of trace $trace yet; look again with: grep -c $trace $STATE/traces.log"
    return 0
  fi
  printf '    spans  %-36s %-11s span\n' service language
  printf '%s\n' "$summary" | sed 's/^/    /'
  local languages
  languages=$(awk '$3 != "?" {print $3}' <<<"$summary" | sort -u | paste -sd, - | sed 's/,/, /g')
  info "every span of the task is in one trace: $(awk '{n += $1} END {print n}' <<<"$summary") spans from $(awk '{print $2}' <<<"$summary" | sort -u | wc -l) services, in ${languages:-no language the spans name}"
  info "see them all: grep -n -A40 'Trace ID *: $trace' $STATE/traces.log | less"
}
