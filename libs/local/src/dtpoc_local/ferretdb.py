"""FerretDB on SQLite: a real MongoDB wire-protocol server built from source.

FerretDB v1 translates the MongoDB protocol to SQL; with the SQLite backend it
needs nothing but a data directory, so it runs anywhere the tests run. Every
database becomes one SQLite file under that directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pymongo
import pymongo.errors

from dtpoc_local import binaries, ports, processes

READY_TIMEOUT = 120.0


@dataclass(frozen=True)
class FerretDB:
    """A running FerretDB process and the URI that reaches it."""

    uri: str
    process: processes.ServerProcess

    def stop(self) -> None:
        self.process.stop()


def ping(uri: str) -> bool:
    """True when a MongoDB-protocol server at ``uri`` answers ``ping``."""
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        uri, serverSelectionTimeoutMS=500, connectTimeoutMS=500
    )
    try:
        client.admin.command("ping")
    except pymongo.errors.PyMongoError:
        return False
    finally:
        client.close()
    return True


def start_ferretdb(*, workdir: Path) -> FerretDB:
    """Start FerretDB (SQLite backend) on a free loopback port; wait until it answers.

    Data, state and the log (``ferretdb.log``) go under ``workdir``. Telemetry
    is disabled and the debug HTTP listener is off, so the process opens one
    loopback port and nothing else.
    """
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    port = ports.free_port()
    address = f"{ports.LOOPBACK}:{port}"
    server = processes.ServerProcess(
        name="ferretdb",
        argv=[
            str(binaries.path("ferretdb")),
            "--handler=sqlite",
            f"--sqlite-url=file:{data_dir}/",
            f"--listen-addr={address}",
            f"--state-dir={workdir}",
            "--debug-addr=-",
            "--telemetry=disable",
            "--log-level=INFO",
        ],
        log_path=workdir / "ferretdb.log",
        cwd=workdir,
    ).start()
    uri = f"mongodb://{address}/"
    server.wait_ready(lambda: ping(uri), timeout=READY_TIMEOUT, what=f"ping at {uri}")
    return FerretDB(uri=uri, process=server)
