"""The gateway serves the web console at ``/``: caching, CSP, auth, and an absent build.

These use the gateway application in-process (no backend is called: the
page and its assets are the gateway's own files). The browser tests in
``test_console.py`` drive the real build against the real platform.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from dtpoc_gateway import app as gateway_app
from dtpoc_gateway import auth, console, settings

TOKEN = "console-serving-test-token-0123456789"


def built_console(folder: Path) -> Path:
    (folder / "assets").mkdir(parents=True)
    (folder / "index.html").write_text(
        '<!doctype html><html lang="en"><head><title>dtpoc console</title>'
        '<script type="module" src="/assets/index-abc123.js"></script></head>'
        '<body><div id="app"></div></body></html>'
    )
    (folder / "assets" / "index-abc123.js").write_text("console.log('hi')\n")
    return folder


def client_for(config: settings.GatewaySettings) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=gateway_app.build(config))
    return httpx.AsyncClient(transport=transport, base_url="http://gateway")


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    return built_console(tmp_path / "dist")


async def test_page_is_revalidated_and_allows_only_this_origin(dist: Path) -> None:
    config = settings.GatewaySettings(auth_disabled=True, console_dir=dist)
    async with client_for(config) as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert '<div id="app">' in page.text
        assert page.headers["cache-control"] == "no-cache"
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert "connect-src 'self'" in csp and "http" not in csp and "*" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        again = await client.get("/", headers={"If-None-Match": page.headers["etag"]})
        assert again.status_code == 304


async def test_hashed_assets_are_cached_for_a_year(dist: Path) -> None:
    config = settings.GatewaySettings(auth_disabled=True, console_dir=dist)
    async with client_for(config) as client:
        asset = await client.get("/assets/index-abc123.js")
        assert asset.status_code == 200
        assert asset.text == "console.log('hi')\n"
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert asset.headers["content-security-policy"] == console.CSP
        missing = await client.get("/assets/nothing.js")
        assert missing.status_code == 404
        assert missing.json()["code"] == 404


async def test_console_opens_without_a_token_but_the_api_does_not(dist: Path) -> None:
    config = settings.GatewaySettings(auth_token_hashes=[auth.hash_token(TOKEN)], console_dir=dist)
    async with client_for(config) as client:
        assert (await client.get("/")).status_code == 200
        assert (await client.get("/assets/index-abc123.js")).status_code == 200
        refused = await client.get("/api/orchestrator/v1alpha1/files")
        assert refused.status_code == 401
        assert (await client.get("/api/orchestrator/v1alpha1/assets/x")).status_code == 404


async def test_absent_build_starts_and_says_how_to_build(tmp_path: Path) -> None:
    config = settings.GatewaySettings(auth_disabled=True, console_dir=tmp_path / "none")
    async with client_for(config) as client:
        page = await client.get("/")
        assert page.status_code == 503
        assert "make console" in page.text
        assert page.headers["content-security-policy"] == console.CSP
        asset = await client.get("/assets/index.js")
        assert asset.status_code == 404
        assert "make console" in asset.json()["message"]


async def test_api_docs_stay_where_they_were(dist: Path) -> None:
    config = settings.GatewaySettings(auth_disabled=True, console_dir=dist)
    async with client_for(config) as client:
        for path in ("/docs", "/api/orchestrator/v1alpha1/docs", "/openapi.json"):
            answer = await client.get(path)
            assert answer.status_code == 200, path
        assert "swagger-ui" in (await client.get("/docs")).text
