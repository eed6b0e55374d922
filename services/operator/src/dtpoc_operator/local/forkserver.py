"""The operator's side of the supervisor fork server (:mod:`.spawner`).

One ``python -m dtpoc_operator.local.spawner`` child, started on the first
replica start and again after it died; each start writes one request line
and waits for the pid it answers; each exit it reports calls the start's
``on_exit`` (the runtime queues the service, as when it reaped a supervisor
it had started itself). A fork server that cannot be started or dies is
:class:`ForkServerUnavailable`: the runtime then starts that supervisor as a
process of its own, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

from dtpoc_common import logging as dlog

log = dlog.get_logger(__name__)

#: Seconds a start waits for the fork server's answer.
ANSWER_TIMEOUT = 20.0


class ForkServerUnavailable(Exception):
    """The fork server could not be started, died, or did not answer in time."""


class ForkServer:
    """Starts supervisors through one long-lived :mod:`.spawner` process."""

    def __init__(self) -> None:
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self._starting: dict[str, tuple[asyncio.Future[int], Callable[[], None]]] = {}
        self._exits: dict[int, Callable[[], None]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def start(self, attempt: Path, *, on_exit: Callable[[], None]) -> int:
        """Fork the supervisor of ``attempt``; ``on_exit`` runs when it ends. Answers its pid."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        async with self._lock:
            process = await self._running()
            self._starting[str(attempt)] = (future, on_exit)
            assert process.stdin is not None
            try:
                process.stdin.write(json.dumps({"attempt": str(attempt)}).encode() + b"\n")
                await process.stdin.drain()
            except (BrokenPipeError, ConnectionResetError) as error:
                self._starting.pop(str(attempt), None)
                raise ForkServerUnavailable(f"the fork server went away: {error}") from None
        try:
            return await asyncio.wait_for(future, ANSWER_TIMEOUT)
        except TimeoutError:
            self._starting.pop(str(attempt), None)
            raise ForkServerUnavailable("the fork server did not answer in time") from None

    async def _running(self) -> asyncio.subprocess.Process:
        if self._process is not None and self._process.returncode is None:
            return self._process
        try:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "dtpoc_operator.local.spawner",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
        except OSError as error:
            raise ForkServerUnavailable(f"cannot start the fork server: {error}") from None
        self._reader = asyncio.create_task(self._read(self._process))
        log.info("supervisor fork server started", pid=self._process.pid)
        return self._process

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            try:
                message = json.loads(line)
            except ValueError:
                log.warning("fork server said something unreadable", line=line[:200].decode())
                continue
            self._handle(message)
        await process.wait()
        log.warning("supervisor fork server ended", code=process.returncode)
        for future, _on_exit in self._starting.values():
            if not future.done():
                future.set_exception(ForkServerUnavailable("the fork server ended"))
        self._starting.clear()
        # Supervisors it forked live on; their exits are found by the next resync.
        self._exits.clear()

    def _handle(self, message: dict[str, object]) -> None:
        if "exited" in message:
            on_exit = self._exits.pop(int(str(message["exited"])), None)
            if on_exit is not None:
                on_exit()
            return
        started = self._starting.pop(str(message.get("attempt")), None)
        if started is None:
            log.warning("fork server answer without a request", answer=message)
            return
        future, on_exit = started
        if "pid" in message:
            pid = int(str(message["pid"]))
            self._exits[pid] = on_exit  # before anyone awaits: its exit may be next
            future.set_result(pid)
        else:
            future.set_exception(ForkServerUnavailable(str(message.get("error"))))

    async def close(self) -> None:
        """End the fork server (supervisors live on); idempotent."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        if process.stdin is not None:
            process.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 5.0)
