#!/usr/bin/env python3
"""Celery's version of Tasker's diamond benchmark.

The workflow is the same 4-step diamond Tasker's bench runs, as a Celery
canvas:

    chain(create_user_account.s(),
          chord(group(setup_billing_profile.s(), initialize_preferences.s()),
                send_welcome_sequence.s()),
          update_user_status.s())

with no-op tasks, on the same RabbitMQ (broker) and Redis (result backend and
chord counter) that Tasker uses. The script starts the Celery workers itself,
one configuration at a time, measures the latency of one diamond at 1 in
flight and the throughput at several windows of diamonds in flight, and prints
one JSON object as the last line of stdout. Progress goes to stderr.

This file is also the Celery app the workers load (`celery -A bench_celery`),
so everything at module level only defines the app and its tasks.

Run it with the venv that setup.sh makes:

    PY=$(tests/bench/celery/setup.sh)
    "$PY" tests/bench/celery/bench_celery.py --quick
"""

import argparse
import ctypes
import importlib.util
import json
import math
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

from celery import Celery, chain, chord, group
from celery.exceptions import TimeoutError as ResultTimeout
import kombu.exceptions as kombu_errors
import redis.exceptions as redis_errors
from kombu import Exchange, Queue

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"
DEFAULT_REDIS_DB = 15

# Everything this benchmark creates in RabbitMQ and Redis is named celery_bench*,
# so it never meets Tasker's tasker.* queues or its keys (which are in db 0).
QUEUE_NAME = "celery_bench"
KEY_PREFIX = "celery_bench:"

HERE = os.path.dirname(os.path.abspath(__file__))


def with_db(url, db):
    """`url` with its database number replaced by `db`."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{db}"))


# --------------------------------------------------------------------- app ---

# The parent passes its settings to the workers and client processes it starts
# through these variables; main() sets them from the command line.
AMQP_URL = os.environ.get("CELERY_BENCH_AMQP_URL", DEFAULT_AMQP_URL)
RESULT_URL = os.environ.get(
    "CELERY_BENCH_RESULT_URL", with_db(DEFAULT_REDIS_URL, DEFAULT_REDIS_DB)
)

bench_exchange = Exchange(QUEUE_NAME, type="direct", durable=True)
bench_queue = Queue(QUEUE_NAME, bench_exchange, routing_key=QUEUE_NAME, durable=True)

app = Celery("celery_bench", broker=AMQP_URL, backend=RESULT_URL)
app.conf.update(
    task_queues=[bench_queue],
    task_default_queue=QUEUE_NAME,
    task_default_exchange=QUEUE_NAME,
    task_default_routing_key=QUEUE_NAME,
    task_create_missing_queues=False,
    # Persistent messages (Celery's default, spelled out) and late acks: a
    # task's message is acked only after the task has run, as Tasker does.
    task_default_delivery_mode="persistent",
    task_acks_late=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=3600,
    result_backend_transport_options={"global_keyprefix": KEY_PREFIX},
    # No remote control, events, gossip or mingle: they would declare
    # celery.pidbox / celeryev queues and add broker traffic Tasker does not have.
    worker_enable_remote_control=False,
    worker_send_task_events=False,
    task_send_sent_event=False,
    broker_connection_retry_on_startup=True,
    # One result backend (and Redis connection pool) for all of a worker's
    # threads or greenlets instead of one each; a tuning knob for the threads
    # and gevent pools, set per configuration by the parent.
    result_backend_thread_safe=os.environ.get("CELERY_BENCH_SHARED_BACKEND") == "1",
)


@app.task(name="celery_bench.ping")
def ping():
    return "pong"


@app.task(name="celery_bench.create_user_account")
def create_user_account():
    return {"step": "create_user_account", "user_id": 42}


@app.task(name="celery_bench.setup_billing_profile")
def setup_billing_profile(account):
    return {"step": "setup_billing_profile", "user_id": account["user_id"]}


@app.task(name="celery_bench.initialize_preferences")
def initialize_preferences(account):
    return {"step": "initialize_preferences", "user_id": account["user_id"]}


@app.task(name="celery_bench.send_welcome_sequence")
def send_welcome_sequence(results):
    return {"step": "send_welcome_sequence", "joined": len(results)}


@app.task(name="celery_bench.update_user_status")
def update_user_status(welcome):
    return {"step": "update_user_status", "status": "active", "joined": welcome["joined"]}


def diamond():
    """One 4-step diamond as a Celery canvas."""
    return chain(
        create_user_account.s(),
        chord(
            group(setup_billing_profile.s(), initialize_preferences.s()),
            send_welcome_sequence.s(),
        ),
        update_user_status.s(),
    )


# -------------------------------------------------------------- reporting ---


def log(msg):
    print(f"[celery-bench] {msg}", file=sys.stderr, flush=True)


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


# The latency probe of each configuration (the full --samples run is on one).
PROBE_SAMPLES = 50
PROBE_SECONDS = 3.0
# How long the clients wait for the diamonds still in flight after the last
# window; whatever is left is purged with the queue.
DRAIN_SECONDS = 0.5
# Settle times before a throughput window is measured (see _client_run).
FIRST_SETTLE = 1.0
MIN_SETTLE = 0.5
MAX_SETTLE = 3.0


class BenchError(Exception):
    """A failure with a message that says what to do."""


# ------------------------------------------------------------ configurations ---


class Config:
    def __init__(self, pool, concurrency, prefetch, shared_backend=False):
        self.pool = pool
        self.concurrency = concurrency
        self.prefetch = prefetch
        self.shared_backend = shared_backend

    @property
    def text(self):
        text = "solo" if self.pool == "solo" else f"{self.pool} x{self.concurrency}"
        text += f", prefetch_multiplier={self.prefetch}"
        if self.shared_backend:
            text += ", result_backend_thread_safe"
        return text


def configurations(quick):
    """The worker configurations to try, in order."""
    have_gevent = importlib.util.find_spec("gevent") is not None
    if quick:
        configs = [
            Config("prefork", 2, 4),
            Config("threads", 16, 4, shared_backend=True),
        ]
        if have_gevent:
            configs.append(Config("gevent", 64, 4, shared_backend=True))
        return configs
    configs = [
        Config("prefork", 2, 1),
        Config("prefork", 2, 4),
        Config("prefork", 4, 4),
        Config("solo", 1, 4),
        Config("threads", 8, 4),
        Config("threads", 16, 4, shared_backend=True),
    ]
    if have_gevent:
        configs.append(Config("gevent", 64, 4, shared_backend=True))
    return configs


# ----------------------------------------------------------------- workers ---


def _term_with_parent():
    """Ask Linux for SIGTERM when the parent process dies (best effort)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _die_with_parent():
    """In the worker's child before exec: own session, and SIGTERM if we die."""
    os.setsid()
    _term_with_parent()


class Worker:
    """One `celery worker` process group, started and always stopped by us."""

    def __init__(self, config, index, log_dir):
        self.config = config
        self.log_path = os.path.join(log_dir, f"worker-{index}-{config.pool}.log")
        self.name = f"celery_bench_{index}@{socket.gethostname()}"
        self.proc = None

    def start(self):
        c = self.config
        cmd = [
            sys.executable, "-m", "celery", "-A", "bench_celery", "worker",
            "--pool", c.pool,
            "--concurrency", str(c.concurrency),
            "--prefetch-multiplier", str(c.prefetch),
            "--queues", QUEUE_NAME,
            "--hostname", self.name,
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "--loglevel", "WARNING",
        ]
        env = dict(os.environ)
        env["PYTHONPATH"] = HERE + os.pathsep + env.get("PYTHONPATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        env["CELERY_BENCH_SHARED_BACKEND"] = "1" if c.shared_backend else "0"
        self.logfile = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            cmd, cwd=HERE, env=env, stdin=subprocess.DEVNULL,
            stdout=self.logfile, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        _live_workers.append(self)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines=20):
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout=8.0):
        if self.proc is None:
            return
        pgid = self.proc.pid  # the worker leads its own session and group
        if self.proc.poll() is None:
            _signal_group(pgid, signal.SIGTERM)  # warm shutdown
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left of the group (prefork children) goes too.
        _signal_group(pgid, signal.SIGKILL)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None
        self.logfile.close()
        if self in _live_workers:
            _live_workers.remove(self)


def _signal_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


_live_workers = []


def release_results():
    """Stop listening for results nobody is going to wait for.

    Applying a chord makes a GroupResult, and that subscribes to each header
    task's result on the Redis backend's pub/sub connection, keeping the
    AsyncResult in the backend until a get() drains its message. A client that
    only waits for the final result (through its own subscription, below)
    would keep every one of them for ever while Redis buffers their messages,
    so the client drops them once a diamond is submitted, and the latency loop
    once a diamond is read.
    """
    backend = app.backend
    for mapping in getattr(backend, "_pending_results", ()):
        for waiters in list(mapping.values()):
            for result in list(waiters.values()):
                backend.remove_pending_result(result)


def wait_ready(worker, timeout=60.0):
    """Wait until the worker runs a task: one ping task round trip."""
    started = time.monotonic()
    result = ping.apply_async()
    while True:
        if not worker.alive():
            raise BenchError(
                f"the Celery worker ({worker.config.text}) exited with code "
                f"{worker.proc.returncode} before it was ready; its log "
                f"({worker.log_path}) ends with:\n{worker.log_tail()}"
            )
        try:
            result.get(timeout=0.5)
            release_results()
            return time.monotonic() - started
        except ResultTimeout:
            pass
        if time.monotonic() - started > timeout:
            raise BenchError(
                f"the Celery worker ({worker.config.text}) ran no task within "
                f"{timeout:.0f} s; its log ({worker.log_path}) ends with:\n"
                f"{worker.log_tail()}"
            )


# ----------------------------------------------------------------- clients ---
#
# Throughput is driven by client processes of their own (so the client is not
# one GIL), each keeping its share of the window in flight. A client submits
# diamonds with apply_async and learns that one finished from the Redis
# pub/sub channel Celery's Redis backend publishes every result on (the same
# channel AsyncResult.get listens to), on one subscriber connection per client.


def _client_main(conn, index):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    _term_with_parent()
    import redis

    client = redis.Redis.from_url(RESULT_URL)
    backend = app.backend
    try:
        while True:
            try:
                cmd = conn.recv()
            except EOFError:
                return
            if cmd[0] == "stop":
                return
            if cmd[0] == "run":
                try:
                    conn.send(("ok", _client_run(client, backend, index, **cmd[1])))
                except Exception as exc:  # reported by the parent
                    conn.send(("error", f"{exc.__class__.__name__}: {exc}"))
    finally:
        try:
            release_results()
        except Exception:
            pass
        client.close()


def _client_run(client, backend, index, windows, seconds, t0, first_settle,
                min_settle, max_settle, drain_timeout):
    """Keep each of `windows` diamonds in flight in turn, starting at t0.

    Each window is measured for `seconds` after it has settled: after a jump
    to more diamonds in flight, the new diamonds' first tasks queue ahead of
    the later tasks of the ones already running, and completions lag until
    the pipeline is full again, which takes about one diamond's latency at the
    new window, in_flight / rate. So the settle time is 1.5 times that, taken
    from the rate of the window before, between min_settle and max_settle
    (first_settle for the first window, which is also the warm-up).
    Completions while settling are not counted.
    """
    n = len(windows)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(f"{KEY_PREFIX}client-{index}")  # opens the connection
    inflight = {}
    counts = [0] * n
    cpu = [0.0] * n
    settles = [0.0] * n
    failures = 0
    submitted = 0
    done = []
    window = {"start": t0 + first_settle, "end": t0 + first_settle + seconds, "i": 0}
    settles[0] = first_settle

    def finish(key, value):
        nonlocal failures
        if inflight.pop(key, None) is None:
            return  # seen both by MGET and by a message
        if window["start"] <= time.monotonic() < window["end"]:
            counts[window["i"]] += 1
        try:
            status = json.loads(value).get("status")
        except ValueError:
            status = None
        if status != "SUCCESS":
            failures += 1
        done.append(key)

    def pump(timeout):
        msg = pubsub.get_message(timeout=timeout)
        while msg is not None:
            if msg["type"] == "message":
                finish(msg["channel"], msg["data"])
            msg = pubsub.get_message(timeout=0.0)
        if done:
            pubsub.unsubscribe(*done)
            done.clear()

    now = time.monotonic()
    if now < t0:
        time.sleep(t0 - now)
    cpu_mark = None
    while True:
        now = time.monotonic()
        i = window["i"]
        if now >= window["end"]:
            cpu[i] = time.process_time() - cpu_mark if cpu_mark is not None else 0.0
            cpu_mark = None
            if i + 1 == n:
                break
            rate = counts[i] / seconds
            settle = 1.5 * windows[i + 1] / rate if rate > 0 else max_settle
            settle = min(max_settle, max(min_settle, settle))
            settles[i + 1] = settle
            window.update(i=i + 1, start=now + settle, end=now + settle + seconds)
            continue
        if cpu_mark is None and now >= window["start"]:
            cpu_mark = time.process_time()
        target = windows[i]
        if len(inflight) < target:
            new = []
            while len(inflight) < target:
                result = diamond().apply_async()
                key = backend.get_key_for_task(result.id)
                inflight[key] = now
                new.append(key)
                submitted += 1
            release_results()
            pubsub.subscribe(*new)
            # A result published before the subscription is in its key already.
            for key, value in zip(new, client.mget(new)):
                if value is not None:
                    finish(key, value)
        pump(min(0.01, max(0.0, window["end"] - now)))

    drain_until = time.monotonic() + drain_timeout
    while inflight and time.monotonic() < drain_until:
        pump(0.05)
    unfinished = len(inflight)
    pubsub.close()
    return {"counts": counts, "cpu": cpu, "settles": settles, "failures": failures,
            "unfinished": unfinished, "submitted": submitted}


class Clients:
    def __init__(self, count):
        ctx = multiprocessing.get_context("spawn")
        self.procs = []
        for i in range(count):
            parent_end, child_end = ctx.Pipe()
            proc = ctx.Process(target=_client_main, args=(child_end, i), daemon=True)
            proc.start()
            child_end.close()
            self.procs.append((proc, parent_end))

    def run(self, windows, seconds, drain_timeout):
        """Keep each window in flight for `seconds`; the clients' replies."""
        n = len(self.procs)
        t0 = time.monotonic() + 0.2
        for i, (_, pipe) in enumerate(self.procs):
            # Split each window over the clients, the remainder to the first ones.
            share = [w // n + (1 if i < w % n else 0) for w in windows]
            pipe.send(("run", dict(windows=share, seconds=seconds, t0=t0,
                                   first_settle=FIRST_SETTLE, min_settle=MIN_SETTLE,
                                   max_settle=MAX_SETTLE, drain_timeout=drain_timeout)))
        replies = []
        deadline = (t0 + FIRST_SETTLE + len(windows) * (MAX_SETTLE + seconds)
                    + drain_timeout + 30)
        for proc, pipe in self.procs:
            while not pipe.poll(0.5):
                if not proc.is_alive():
                    raise BenchError(f"a client process exited with code {proc.exitcode}")
                if time.monotonic() > deadline:
                    raise BenchError("a client process did not report back in time")
            status, reply = pipe.recv()
            if status != "ok":
                raise BenchError(f"a client process failed: {reply} (are RabbitMQ "
                                 "and Redis still up?)")
            replies.append(reply)
        return replies

    def close(self):
        for proc, pipe in self.procs:
            try:
                pipe.send(("stop",))
            except (OSError, ValueError):
                pass
        for proc, pipe in self.procs:
            proc.join(3)
            if proc.is_alive():
                proc.terminate()
                proc.join(3)
            if proc.is_alive():
                proc.kill()
                proc.join(3)
            pipe.close()
        self.procs = []


# ------------------------------------------------------------ measurements ---


def measure_latency(samples, time_cap):
    """Diamonds one at a time, each waited for with AsyncResult.get."""
    latencies = []
    deadline = time.monotonic() + time_cap
    for _ in range(samples):
        t = time.perf_counter()
        result = diamond().apply_async()
        try:
            result.get(timeout=30)
        except ResultTimeout:
            raise BenchError("a diamond did not finish within 30 s at 1 in flight; "
                             "is the worker still running and RabbitMQ and Redis up?")
        latencies.append((time.perf_counter() - t) * 1000.0)
        release_results()
        if time.monotonic() > deadline:
            break
    latencies.sort()
    return latencies


def reset_state(redis_client):
    """Empty the bench queue and the bench's Redis db."""
    with app.connection_for_write() as conn:
        queue = bench_queue(conn.default_channel)
        queue.declare()
        queue.purge()
    redis_client.flushdb()


def pubsub_subscriptions(redis_client):
    """Channel subscriptions held by connections on the bench's Redis db."""
    db = str(redis_client.connection_pool.connection_kwargs.get("db", 0))
    return sum(int(c.get("sub", 0)) for c in redis_client.client_list()
               if str(c.get("db")) == db)


def check_servers(redis_client):
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=2, interval_start=0.5, timeout=5)
    except Exception as exc:
        raise BenchError(
            f"cannot connect to RabbitMQ at {app.conf.broker_url} ({exc}); start it "
            "with `deploy/dev servers` or pass --amqp-url"
        )
    try:
        redis_client.ping()
    except Exception as exc:
        raise BenchError(
            f"cannot connect to Redis at {RESULT_URL} ({exc}); start it with "
            "`deploy/dev servers` or pass --redis-url"
        )


def start_worker(config, index, log_dir):
    log(f"{config.text}: starting the worker")
    worker = Worker(config, index, log_dir)
    worker.start()
    try:
        ready = wait_ready(worker)
        log(f"{config.text}: ready in {ready:.1f} s")
        # Warm-up: connections, pools and code paths, one diamond at a time.
        measure_latency(20, 5.0)
    except BaseException:
        worker.stop()
        raise
    return worker


def run(args, log_dir):
    import celery
    import redis

    redis_client = redis.Redis.from_url(RESULT_URL)
    check_servers(redis_client)
    reset_state(redis_client)

    configs = configurations(args.quick)
    if args.only:
        configs = [c for c in configs if args.only in c.text]
        if not configs:
            raise BenchError(f"no configuration matches --only {args.only!r}")
    windows = args.windows
    log(f"Celery {celery.__version__}; {len(configs)} configurations, windows "
        f"{', '.join(map(str, windows))} for {args.seconds:g} s each, "
        f"{args.samples} latency samples; {args.clients} client processes")

    throughput, tried = [], []
    probe_p50 = {}   # config -> p50 of the short latency probe, ms
    client_cpu = {}  # (config, window) -> CPU cores the clients used
    unread = []      # (worker pub/sub subscriptions, diamonds run)
    failures = 0

    # Throughput, and a short latency probe, for every configuration.
    clients = Clients(args.clients)
    try:
        for index, config in enumerate(configs):
            worker = start_worker(config, index, log_dir)
            try:
                probe = measure_latency(min(args.samples, PROBE_SAMPLES), PROBE_SECONDS)
                probe_p50[config.text] = percentile(probe, 50)
                log(f"{config.text}: 1 in flight: p50 {probe_p50[config.text]:.1f} ms "
                    f"over {len(probe)} diamonds")
                replies = clients.run(windows, args.seconds, drain_timeout=DRAIN_SECONDS)
                for i, w in enumerate(windows):
                    per_second = sum(r["counts"][i] for r in replies) / args.seconds
                    cpu = sum(r["cpu"][i] for r in replies) / args.seconds
                    client_cpu[(config.text, w)] = cpu
                    throughput.append({"config": config.text, "in_flight": w,
                                       "per_second": round(per_second, 1)})
                    settle = max(r["settles"][i] for r in replies)
                    log(f"{config.text}: {w} in flight: {per_second:.1f} diamonds/s "
                        f"(settled for {settle:.1f} s; the clients used {cpu:.2f} "
                        "CPU cores)")
                f = sum(r["failures"] for r in replies)
                if f:
                    log(f"{config.text}: {f} diamonds failed")
                failures += f
                # The clients have closed their subscriptions by now, so what
                # is left on the bench's db is the worker's (see release_results).
                subs = pubsub_subscriptions(redis_client)
                runs = sum(r["submitted"] for r in replies)
                unread.append((subs, runs))
                log(f"{config.text}: the worker holds {subs} Redis pub/sub "
                    f"subscriptions after {runs} diamonds")
                tried.append(config.text)
            finally:
                worker.stop()
            reset_state(redis_client)
    finally:
        clients.close()

    # Latency, on a new worker of the configuration with the lowest probe p50.
    lat_config_text = min(probe_p50, key=probe_p50.get)
    lat_config = next(c for c in configs if c.text == lat_config_text)
    worker = start_worker(lat_config, len(configs), log_dir)
    try:
        lat = measure_latency(args.samples, args.latency_cap)
    finally:
        worker.stop()
    reset_state(redis_client)
    log(f"{lat_config_text}: 1 in flight: p50 {percentile(lat, 50):.1f} ms, p99 "
        f"{percentile(lat, 99):.1f} ms, p99.9 {percentile(lat, 99.9):.1f} ms over "
        f"{len(lat)} diamonds")

    best = max(throughput, key=lambda t: t["per_second"])
    best_cpu = client_cpu[(best["config"], best["in_flight"])]
    notes = [
        "Celery publishes without publisher confirms (the broker's receipt of a "
        "task message is not awaited)",
        "task_acks_late=True, persistent messages (delivery_mode 2) on a durable "
        "classic queue, JSON serialization",
        "the chord counter and every task result live in the Redis result backend "
        f"(db {args.redis_db}, keys prefixed {KEY_PREFIX}), not in RabbitMQ; each "
        "step writes its result and publishes it on Redis pub/sub",
        "worker remote control, events, gossip, mingle and heartbeats off; "
        "readiness is a ping task round trip",
        f"throughput: {args.clients} client processes split each window; a client "
        "learns that a diamond finished from its final result's Redis pub/sub "
        f"channel; at the best figure the clients used {best_cpu:.2f} CPU cores",
        f"each window is measured for {args.seconds:g} s once it has settled: "
        "1.5 x in_flight / the previous window's rate, between "
        f"{MIN_SETTLE:g} and {MAX_SETTLE:g} s ({FIRST_SETTLE:g} s for the first, "
        "which is also the warm-up)",
        f"latency: {len(lat)} diamonds one at a time with AsyncResult.get, on a new "
        "worker of the configuration with the lowest p50 in a "
        f"{min(args.samples, PROBE_SAMPLES)}-diamond probe of each",
        "probe p50 at 1 in flight: " + "; ".join(
            f"{c}: {v:.1f} ms" for c, v in probe_p50.items()),
    ]
    if unread and max(unread)[0]:
        subs, runs = max(unread)
        notes.append(
            "a worker that applies a chord subscribes to the header tasks' results "
            "on its Redis pub/sub connection and does not read them back: up to "
            f"{subs} subscriptions after {runs} diamonds; each worker runs for "
            "seconds here, far from Redis' output buffer limit")
    stalled = [f"{t['config']} at {t['in_flight']}" for t in throughput
               if t["per_second"] == 0]
    if stalled:
        notes.append("completed no diamond in a measured window (the worker ran them "
                     "one at a time in the latency probe): " + "; ".join(stalled))
    if importlib.util.find_spec("gevent") is None:
        notes.append("gevent is not installed; the gevent pool was not tried")
    if failures:
        notes.append(f"{failures} diamonds failed")
    notes.append(f"the worker, the clients, RabbitMQ and Redis share {os.cpu_count()} "
                 "CPU cores")

    return {
        "version": celery.__version__,
        "best": {"config": best["config"], "per_second": best["per_second"],
                 "in_flight": best["in_flight"]},
        "latency": {
            "config": lat_config_text,
            "p50_ms": round(percentile(lat, 50), 2),
            "p99_ms": round(percentile(lat, 99), 2),
            "p999_ms": round(percentile(lat, 99.9), 2),
            "samples": len(lat),
        },
        "throughput": throughput,
        "tried": tried,
        "notes": notes,
    }


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--amqp-url", default=DEFAULT_AMQP_URL,
                   help=f"RabbitMQ (default {DEFAULT_AMQP_URL})")
    p.add_argument("--redis-url", default=DEFAULT_REDIS_URL,
                   help=f"Redis (default {DEFAULT_REDIS_URL}); its db number is "
                        "replaced by --redis-db")
    p.add_argument("--redis-db", type=int, default=DEFAULT_REDIS_DB,
                   help=f"Redis db for results and chords, flushed at start "
                        f"(default {DEFAULT_REDIS_DB}; 0 is refused, Tasker uses it)")
    p.add_argument("--samples", type=int, default=200,
                   help="latency samples at 1 in flight, on the configuration with "
                        "the lowest p50 in a short probe of each (default 200)")
    p.add_argument("--seconds", type=float, default=4.0,
                   help="length of each throughput window in seconds (default 4)")
    p.add_argument("--windows", default=None,
                   help="diamonds in flight, comma-separated (default 32,128,256; "
                        "32,256 with --quick)")
    p.add_argument("--clients", type=int, default=2,
                   help="client processes that drive throughput (default 2)")
    p.add_argument("--quick", action="store_true",
                   help="fewer configurations and windows, for a fast run")
    p.add_argument("--only", default=None,
                   help="only configurations whose text contains this")
    args = p.parse_args(argv)
    if args.redis_db == 0:
        p.error("--redis-db 0 is Tasker's; pick another")
    default_windows = "32,256" if args.quick else "32,128,256"
    args.windows = [int(w) for w in (args.windows or default_windows).split(",")]
    if args.samples < 1 or args.seconds <= 0 or args.clients < 1 or min(args.windows) < 1:
        p.error("--samples, --seconds, --clients and the windows must be positive")
    # The latency run stops after this many seconds, whatever --samples says.
    args.latency_cap = 20.0
    return args


def _on_signal(signum, frame):
    raise SystemExit(128 + signum)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # Ctrl-C must reach the cleanup even when started with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    global AMQP_URL, RESULT_URL
    AMQP_URL = args.amqp_url
    RESULT_URL = with_db(args.redis_url, args.redis_db)
    # The workers and the client processes read these when they load this module.
    os.environ["CELERY_BENCH_AMQP_URL"] = AMQP_URL
    os.environ["CELERY_BENCH_RESULT_URL"] = RESULT_URL
    app.conf.update(broker_url=AMQP_URL, result_backend=RESULT_URL)

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    started = time.monotonic()
    log_dir = tempfile.mkdtemp(prefix="celery_bench_")
    ok = False
    try:
        report = run(args, log_dir)
        ok = True
    except BenchError as exc:
        log(f"error: {exc}")
        return 1
    except (ConnectionError, redis_errors.ConnectionError,
            kombu_errors.OperationalError) as exc:
        log(f"error: lost a connection to RabbitMQ or Redis: {exc.__class__.__name__}: "
            f"{exc}; were they stopped or restarted during the run? Start them with "
            "`deploy/dev servers` and run again")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except SystemExit as exc:
        log(f"stopped by a signal (exit {exc.code})")
        raise
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for worker in list(_live_workers):
            worker.stop(timeout=3.0)
        try:
            release_results()  # or their __del__ unsubscribes at shutdown, noisily
        except Exception:
            pass
        if ok:
            shutil.rmtree(log_dir, ignore_errors=True)
        else:
            log(f"the workers' logs are in {log_dir}")
    log(f"done in {time.monotonic() - started:.0f} s; best "
        f"{report['best']['per_second']} diamonds/s ({report['best']['config']}, "
        f"{report['best']['in_flight']} in flight), latency p50 "
        f"{report['latency']['p50_ms']} ms ({report['latency']['config']})")
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
