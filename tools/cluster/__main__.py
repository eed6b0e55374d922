"""``python -m tools.cluster up|down``: ``make cluster`` and ``make cluster-down``."""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import threading
import time
from types import FrameType

from dtpoc_common.vocabulary import API_PREFIX
from tools.cluster import cluster, layout, release


def _wait_for_interrupt() -> None:
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    stop.wait()


def up(args: argparse.Namespace) -> int:
    lay = layout.Layout.default()
    started = time.monotonic()
    prepared = {} if args.node_only else release.prepare_images()
    running = cluster.start(lay, archives=[image.archive for image in prepared.values()])
    try:
        if not args.node_only:
            mark = time.monotonic()
            release.install(lay)
            running.servers.append(release.port_forward(lay, port=args.port))
            cluster.log(f"chart installed and gateway forwarded: {time.monotonic() - mark:.1f}s")
            url = f"http://127.0.0.1:{args.port}{API_PREFIX}"
            print(f"REST API:   {url}", flush=True)
            print(f"API token:  {release.api_token(lay)}  (also in {lay.token})", flush=True)
        print(f"kubeconfig: {lay.kubeconfig}", flush=True)
        print(f"serving (started in {time.monotonic() - started:.0f}s); Ctrl-C stops", flush=True)
        if args.exit_after_start:
            return 0
        _wait_for_interrupt()
    finally:
        cluster.log("stopping")
        running.stop()
    return 0


def down(_: argparse.Namespace) -> int:
    lay = layout.Layout.default()
    cluster.clear_leftovers(lay)
    shutil.rmtree(lay.state, ignore_errors=True)
    cluster.log(f"removed {lay.state} and the node's network namespace")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.cluster", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start the node and the chart, serve until Ctrl-C")
    start.add_argument("--exit-after-start", action="store_true", help="stop once everything is up")
    start.add_argument("--node-only", action="store_true", help="the node without images or chart")
    start.add_argument("--port", type=int, default=layout.GATEWAY_PORT, help="gateway's local port")
    start.set_defaults(run=up)
    stop = commands.add_parser("down", help="remove the node and its data")
    stop.set_defaults(run=down)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
