"""Mongo Express on the node: the image built from its npm package, against the node's FerretDB.

The chart hands Mongo Express the MongoDB root URI with its admin view on
(``ME_CONFIG_MONGODB_ENABLE_ADMIN=true``: the database list and the server
status come from ``listDatabases`` and ``serverStatus``). On the node that
URI points at FerretDB, which has no users; these tests prove it serves what
a user opens Mongo Express for: behind the chart's basic-auth login (401
without it or with a wrong password), the platform's databases, and in the
files database's GridFS collection a file just uploaded through the REST API.
Reached through ``kubectl port-forward``, as docs/deploy.md says.
"""

from __future__ import annotations

import html
import re
import uuid
from pathlib import Path

import httpx

from tests.cluster import _api as api
from tests.cluster._datastack import RELEASE, forward, image_of, secret, workload
from tests.cluster.helpers import Platform

SERVICE = f"{RELEASE}-mongo-express"
FILES_DATABASE = "orchestrator_files"  # dtpoc_files.settings: the original's database name
FILES_COLLECTION = "fs.files"  # the GridFS bucket "fs"


def _shown(page: httpx.Response) -> str:
    """A page's text without its markup, for a failure's message."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.text)).split())[:1500]


def test_mongo_express_runs_the_image_built_here_and_opens_only_to_the_charts_login(
    platform: Platform,
) -> None:
    deployment = workload(platform, "deployment", SERVICE)
    assert image_of(deployment) == platform.images["mongo-express"]
    assert deployment["status"].get("readyReplicas") == 1, deployment["status"]
    login = secret(platform, f"{SERVICE}-auth")
    with forward(platform, SERVICE, 8081) as port:
        base = f"http://127.0.0.1:{port}"
        # Its health check answers without a login; every page needs one.
        assert httpx.get(f"{base}/status", timeout=30).status_code == 200
        assert httpx.get(f"{base}/", timeout=30).status_code == 401
        wrong = httpx.get(f"{base}/", auth=(login["username"], "wrong"), timeout=30)
        assert wrong.status_code == 401
        page = httpx.get(f"{base}/", auth=(login["username"], login["password"]), timeout=30)
    assert page.status_code == 200, _shown(page)
    assert "Server Status" in page.text, _shown(page)


def test_mongo_express_shows_a_file_uploaded_through_the_api_in_the_files_database(
    platform: Platform, tmp_path: Path
) -> None:
    name = f"ward-{uuid.uuid4().hex[:12]}.csv"
    upload = tmp_path / name
    upload.write_text("bed,occupied\n1,yes\n")
    with platform.client() as client:
        api.upload(client, upload)
    login = secret(platform, f"{SERVICE}-auth")
    auth = (login["username"], login["password"])
    with forward(platform, SERVICE, 8081) as port:
        base = f"http://127.0.0.1:{port}"
        home = httpx.get(f"{base}/", auth=auth, timeout=30)
        database = httpx.get(f"{base}/db/{FILES_DATABASE}/", auth=auth, timeout=30)
        # The collection's page filtered as its search form does (key, value, type String).
        found = httpx.get(
            f"{base}/db/{FILES_DATABASE}/{FILES_COLLECTION}",
            params={"key": "filename", "value": name, "type": "S"},
            auth=auth,
            timeout=30,
        )
    assert home.status_code == 200, _shown(home)
    assert f"/db/{FILES_DATABASE}/" in home.text, f"the databases list: {_shown(home)}"
    assert database.status_code == 200, (database.headers, _shown(database))
    assert f"/db/{FILES_DATABASE}/{FILES_COLLECTION}" in database.text, _shown(database)
    assert found.status_code == 200, (found.headers, _shown(found))
    assert name in html.unescape(found.text), f"the uploaded file's document: {_shown(found)}"
