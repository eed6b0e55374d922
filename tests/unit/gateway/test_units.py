"""Small pure rules of the gateway, checked without servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from dtpoc_gateway import auth, download, settings


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("input.xlsx", 'attachment; filename="input.xlsx"'),
        (
            "Résumé.json",
            "attachment; filename=\"R_sum_.json\"; filename*=UTF-8''R%C3%A9sum%C3%A9.json",
        ),
        (
            'a"b\\c.txt',
            "attachment; filename=\"a_b_c.txt\"; filename*=UTF-8''a%22b_c.txt",
        ),
        ("evil\r\nSet-Cookie: x=1", 'attachment; filename="evilSet-Cookie: x=1"'),
        ("../../etc/passwd", 'attachment; filename=".._.._etc_passwd"'),
        ("", 'attachment; filename="download"'),
        ("100%.csv", "attachment; filename=\"100_.csv\"; filename*=UTF-8''100%25.csv"),
    ],
)
def test_content_disposition_is_safe(name: str, expected: str) -> None:
    value = download.content_disposition(name)
    assert value == expected
    assert value.isascii() and "\r" not in value and "\n" not in value


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        (None, None),
        ("bytes=0-9", (0, 9)),
        ("bytes=5-", (5, None)),
        ("bytes=-3", (None, 3)),
        ("BYTES = 1 - 2", (1, 2)),
        ("bytes=9-1", None),
        ("bytes=0-1,3-4", None),
        ("items=0-1", None),
        ("bytes=-", None),
        ("bytes=a-b", None),
    ],
)
def test_parse_range(header: str | None, parsed: tuple[int | None, int | None] | None) -> None:
    assert download.parse_range(header) == parsed


@pytest.mark.parametrize(
    ("wanted", "size", "resolved"),
    [
        ((0, 9), 100, (0, 9)),
        ((90, 200), 100, (90, 99)),
        ((100, None), 100, None),
        ((None, 10), 100, (90, 99)),
        ((None, 500), 100, (0, 99)),
        ((None, 0), 100, None),
        ((0, None), 0, None),
    ],
)
def test_resolve_range(
    wanted: tuple[int | None, int | None], size: int, resolved: tuple[int, int] | None
) -> None:
    assert download.resolve_range(wanted, size) == resolved


def test_token_hashes_from_a_file_with_comments(tmp_path: Path) -> None:
    first, second = auth.hash_token("one"), auth.hash_token("two")
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# clients\n{first}   # lab\n\n  {second.upper()}\n")
    config = settings.GatewaySettings(auth_tokens_file=tokens, auth_token_hashes=[first])
    assert auth.load_hashes(config) == [bytes.fromhex(first), bytes.fromhex(second)]


def test_a_bad_line_is_named(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{auth.hash_token('one')}\nplain-token\n")
    with pytest.raises(settings.SettingsError, match="line 2"):
        auth.load_hashes(settings.GatewaySettings(auth_tokens_file=tokens))


def test_bearer_check_accepts_only_listed_tokens() -> None:
    checker = auth.BearerAuth(
        app=None,  # type: ignore[arg-type]
        hashes=[bytes.fromhex(auth.hash_token("right"))],
        open_paths=auth.OpenPaths([], prefix=""),
    )
    assert checker.accepts(b"Bearer right")
    assert checker.accepts(b"bearer   right ")
    assert not checker.accepts(b"Bearer wrong")
    assert not checker.accepts(b"Basic right")
    assert not checker.accepts(None)


def test_open_paths_match_exactly_or_below_a_star() -> None:
    paths = auth.OpenPaths(["/healthz", "/docs/*"], prefix="/api/v1")
    assert "/healthz" in paths and "/api/v1/healthz" in paths
    assert "/api/v1/docs/static/x.js" in paths
    assert "/healthz/x" not in paths and "/api/v1/service/" not in paths


def test_list_settings_accept_json_or_commas() -> None:
    config = settings.GatewaySettings(cors_origins="https://a.org, https://b.org")  # type: ignore[arg-type]
    assert config.cors_origins == ["https://a.org", "https://b.org"]
    config = settings.GatewaySettings(cors_origins='["https://c.org"]')  # type: ignore[arg-type]
    assert config.cors_origins == ["https://c.org"]


def test_backend_map_prefers_the_named_settings() -> None:
    config = settings.GatewaySettings(
        backends={settings.FILES_SERVICE: "127.0.0.1:1", "x.Y": "127.0.0.1:3"},
        files_address="127.0.0.1:2",
    )
    assert config.backend_map() == {settings.FILES_SERVICE: "127.0.0.1:2", "x.Y": "127.0.0.1:3"}
