"""``python -m tasker_example_microservices SERVICE``, where ``SERVICE`` is
``user``, ``accounts``, ``status``, ``billing``, ``preferences`` or
``notifications``: runs that service's worker for the ``microservices``
namespace, configured from the environment (``TASKER_AMQP_URL``,
``TASKER_CONCURRENCY``, ``TASKER_HEALTH_ADDR``...), until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from tasker_worker import TaskerError, Worker, WorkerConfig, telemetry

from tasker_example_microservices import NAMESPACE, SERVICES, register
from tasker_example_microservices.latency import Latency

_TRUE = {"y", "yes", "t", "true", "on", "1"}
_FALSE = {"n", "no", "f", "false", "off", "0", ""}


def boolish(text: str) -> bool:
    """``true``/``false`` as flags and variables write them (yes, on, 1...)."""
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not true or false; write true or false")


def latency(text: str) -> Latency:
    try:
        return Latency.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tasker_example_microservices",
        description=f"Runs a service of the {NAMESPACE} namespace's user registration.",
    )
    parser.add_argument("service", choices=SERVICES, help="the service to run")
    parser.add_argument(
        "--namespace", default=NAMESPACE, help=f"the namespace to serve (default {NAMESPACE})"
    )
    parser.add_argument(
        "--latency-ms",
        type=latency,
        default=latency(os.environ.get("TASKER_DEMO_LATENCY_MS", "40..120")),
        help="simulated service latency in milliseconds, MIN..MAX "
        "(TASKER_DEMO_LATENCY_MS, default 40..120)",
    )
    parser.add_argument(
        "--billing-down",
        type=boolish,
        nargs="?",
        const=True,
        default=boolish(os.environ.get("TASKER_DEMO_BILLING_DOWN", "false")),
        help="simulate an outage of the billing service: every billing attempt fails "
        "retryably with BILLING_SERVICE_UNAVAILABLE (TASKER_DEMO_BILLING_DOWN)",
    )
    parser.add_argument(
        "--shutdown-grace",
        type=float,
        default=30.0,
        help="seconds in-flight steps get to finish on shutdown (default 30)",
    )
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    config = WorkerConfig.from_env(
        service=args.service,
        shutdown_grace=args.shutdown_grace,
        name=f"{NAMESPACE}-{args.service}-python-{os.getpid()}",
    )
    worker = Worker(config).namespace(args.namespace)
    register(worker, args.service, args.latency_ms, billing_down=args.billing_down)
    await worker.run()


def main(argv: list[str] | None = None) -> None:
    try:
        args = arguments(argv)
    except argparse.ArgumentTypeError as e:  # a bad default from the environment
        sys.exit(f"error: {e}")
    with telemetry.init(f"worker-{NAMESPACE}-{args.service}"):
        try:
            asyncio.run(run(args))
        except TaskerError as e:
            sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
