"""Entrypoint of the local InfluxDB image: the 2.x image's setup mode, done on influxd 1.8.

The chart runs the 2.x image with ``DOCKER_INFLUXDB_INIT_MODE=setup`` and the
admin, organisation, bucket and token in ``DOCKER_INFLUXDB_INIT_*``. On an
empty volume this script does the 1.x equivalent before the server serves:
it starts influxd on loopback only, creates the admin as an admin user and
the bucket as a database (with the retention, if any), marks the volume set
up, stops it, and then runs influxd as the container's process on
``INFLUXD_HTTP_BIND_ADDRESS``. The organisation has no 1.x meaning (the
server ignores it). 1.x has no tokens: its ``/api/v2`` endpoints accept
``Token <username>:<password>``, so an admin token of another form is
refused here with that explanation instead of leaving every writer at 401.

Runs on the image's Python (the base image's), standard library only.
"""

from __future__ import annotations

import base64
import json
import os
import string
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

DATA = Path("/var/lib/influxdb2")
MARKER = DATA / ".dtpoc-setup-done"
SETUP_PORT = 18086
SETUP_TIMEOUT = 120.0
# Beside this script in the image and in the repo (the test stack reads it too).
TEMPLATE = Path(__file__).with_name("influxdb.conf.template")


def _config(bind: str, *, path: Path) -> Path:
    """The server's config: data under the volume, auth on, Flux off (see the template)."""
    template = string.Template(TEMPLATE.read_text())
    path.write_text(template.substitute(rpc_bind="127.0.0.1:18088", data=DATA, http_bind=bind))
    return path


def _config_dir() -> Path:
    for candidate in (Path("/etc/influxdb2"), Path("/tmp")):  # noqa: S108 - the pod's emptyDir
        if os.access(candidate, os.W_OK):
            return candidate
    sys.exit("influxdb: neither /etc/influxdb2 nor /tmp is writable")


def _query(statement: str, *, user: str, password: str) -> dict[str, object]:
    login = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{SETUP_PORT}/query",
        data=urllib.parse.urlencode({"q": statement}).encode(),
        headers={"Authorization": f"Basic {login}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            result: dict[str, object] = json.load(answer)
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"{statement.split(' ')[0:2]}: {error.code} {error.read()!r}") from None
    for item in result.get("results", []):  # type: ignore[attr-defined]
        if "error" in item:
            raise RuntimeError(f"{statement.split(' WITH PASSWORD')[0]}: {item['error']}")
    return result


def _wait_healthy() -> None:
    deadline = time.monotonic() + SETUP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{SETUP_PORT}/health", timeout=2
            ) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    sys.exit(f"influxdb: the setup server did not answer /health within {SETUP_TIMEOUT:.0f} s")


def _setup(env: dict[str, str]) -> None:
    user, password = env["DOCKER_INFLUXDB_INIT_USERNAME"], env["DOCKER_INFLUXDB_INIT_PASSWORD"]
    server = subprocess.Popen(
        ["/usr/bin/influxd", "run", "-config", str(_config_dir() / "setup.conf")]
    )
    try:
        _wait_healthy()
        quoted = "'" + password.replace("\\", "\\\\").replace("'", "\\'") + "'"
        try:
            # Allowed without a login while the server has no admin (an empty volume).
            _query(
                f"CREATE USER {json.dumps(user)} WITH PASSWORD {quoted} WITH ALL PRIVILEGES",
                user=user,
                password=password,
            )
        except RuntimeError as error:  # a setup interrupted after this step: go on
            if "user already exists" not in str(error):
                raise
        retention = env.get("DOCKER_INFLUXDB_INIT_RETENTION", "")
        duration = f" WITH DURATION {retention}" if retention else ""
        bucket = json.dumps(env["DOCKER_INFLUXDB_INIT_BUCKET"])
        _query(f"CREATE DATABASE {bucket}{duration}", user=user, password=password)
        MARKER.write_text("set up by the dtpoc InfluxDB image\n")
    finally:
        server.terminate()
        server.wait(timeout=60)


def main() -> None:
    env = dict(os.environ)
    if env.get("DOCKER_INFLUXDB_INIT_MODE") == "setup":
        user = env.get("DOCKER_INFLUXDB_INIT_USERNAME", "")
        password = env.get("DOCKER_INFLUXDB_INIT_PASSWORD", "")
        token = env.get("DOCKER_INFLUXDB_INIT_ADMIN_TOKEN", "")
        if not user or not password or not env.get("DOCKER_INFLUXDB_INIT_BUCKET"):
            sys.exit("influxdb: setup needs DOCKER_INFLUXDB_INIT_USERNAME, _PASSWORD and _BUCKET")
        if token and token != f"{user}:{password}":
            sys.exit(
                "influxdb: this image is InfluxDB 1.8, whose /api/v2 endpoints take the token "
                "'<admin username>:<admin password>'; the admin token is something else, so "
                "every writer would get 401. Give the admin-token key that value."
            )
        if not MARKER.exists():
            _config(f"127.0.0.1:{SETUP_PORT}", path=_config_dir() / "setup.conf")
            try:
                _setup(env)
            except (RuntimeError, urllib.error.URLError) as error:
                sys.exit(f"influxdb: first-start setup failed: {error}")
    bind = env.get("INFLUXD_HTTP_BIND_ADDRESS", ":8086")
    config = _config(bind, path=_config_dir() / "influxdb.conf")
    os.execv("/usr/bin/influxd", ["influxd", "run", "-config", str(config)])  # noqa: S606


if __name__ == "__main__":
    main()
