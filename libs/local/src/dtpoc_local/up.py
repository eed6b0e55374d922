"""``dtpoc up`` / ``make run``: the whole platform on this machine, then the demo.

No cluster and no Docker daemon needed: MongoDB is FerretDB (built from
source once, data kept under the data directory), the orchestrator keeps
Analytics documents in MongoDB and the operator runs each replica under a
supervisor: the launch's command as a process, or, when a container engine
works here (podman, docker, nerdctl), the launch's image in a container
(:mod:`dtpoc_local.platform`). The demo (:mod:`dtpoc_local.demo`) does what a
user would over REST, then the platform keeps serving until Ctrl-C.

Settings: ``DTPOC_DATA_DIR`` (default ``<repo>/var``; a second run reuses
it), ``DTPOC_MONGODB_URI`` (use that server instead of FerretDB). Flags:
``--port`` (REST API, default 8000), ``--no-demo``, ``--exit-after-demo``,
``--sim-hours``, ``--reps``, ``--demo-form``. ``DTPOC_OPERATOR_LOCAL_CONTAINER_ENGINE``
(``auto`` by default here, ``none`` for processes only) picks the engine. See
docs/local-run.md.

Entry points: :func:`main` (``dtpoc up`` calls it with its arguments) and
``python -m dtpoc_local.up``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType

from dtpoc_local import processes, waiting
from dtpoc_local.demo import DEMO_REPS, DEMO_SIM_HOURS, DEMO_TIMEOUT, run_demo
from dtpoc_local.platform import (
    DEFAULT_PORT,
    LaunchFailed,
    Platform,
    data_dir_from_env,
    exclusive,
    say,
)

PROG = "dtpoc up"
"""The command's name in usage and error lines (``make run`` runs this module)."""


class StopRequested(BaseException):
    """SIGTERM or SIGINT: leave whatever is running and shut down cleanly."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise StopRequested(signal.Signals(signum).name)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Start dtpoc on this machine (no cluster, no Docker) and run the demo.",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="REST API port (8000)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--no-demo", action="store_true", help="only start and serve")
    mode.add_argument(
        "--exit-after-demo", action="store_true", help="stop after the demo (tests, CI)"
    )
    parser.add_argument("--reps", type=int, default=DEMO_REPS, help="demo replicas (2)")
    parser.add_argument(
        "--sim-hours", default=DEMO_SIM_HOURS, help="demo simulated hours (1176, seven weeks)"
    )
    parser.add_argument(
        "--demo-timeout", type=float, default=DEMO_TIMEOUT, help="seconds the demo may take"
    )
    parser.add_argument(
        "--demo-form",
        choices=["auto", "container", "process"],
        default="auto",
        help="container: the original's body (image, no command); process: a command; "
        "auto: container when an engine and the image are available",
    )
    return parser


def serve(platform: Platform) -> None:
    """Wait for Ctrl-C (StopRequested); a dead child ends the wait with its log tail."""
    say("")
    say("serving; press Ctrl-C to stop")
    while True:
        platform.check_alive()
        time.sleep(0.5)


def _run(platform: Platform, args: argparse.Namespace) -> int:
    """Start, demo, serve; the exit status. Stopping is the caller's job."""
    try:
        say(f"dtpoc local run, data in {platform.data_dir}")
        platform.start()
        say("")
        say(platform.describe())
        if not args.no_demo:
            run_demo(
                platform,
                reps=args.reps,
                sim_hours=str(args.sim_hours),
                timeout=args.demo_timeout,
                form=args.demo_form,
            )
        if not args.exit_after_demo:
            serve(platform)
    except StopRequested as stop:
        say(f"{stop}: stopping")
    except (LaunchFailed, processes.ServerExited, waiting.WaitTimeout) as exc:
        say("")
        say(f"{PROG}: error: {exc}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the local platform with ``argv`` (``sys.argv[1:]`` when None); the exit status.

    0 after Ctrl-C/SIGTERM or a finished ``--exit-after-demo``, 1 when the
    platform or the demo failed (the reason on stdout); a usage error exits 2
    through argparse. Children are stopped before it returns, whatever happened.
    """
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    platform = Platform(data_dir=data_dir_from_env(), port=args.port)
    try:
        with exclusive(platform.data_dir):
            try:
                code = _run(platform, args)
            finally:
                say("")
                # A second Ctrl-C must not leave children behind mid-shutdown.
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                platform.report_running_services()
                platform.stop()
    except LaunchFailed as exc:
        say(f"{PROG}: error: {exc}")
        return 1
    except StopRequested:
        # Ctrl-C before the lock was taken: nothing was started.
        return 0
    say("stopped" if code == 0 else f"stopped (exit {code})")
    return code


if __name__ == "__main__":
    sys.exit(main())
