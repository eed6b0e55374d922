"""The Files service's rules as plain objects: no server, no database."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json

import pytest

from dtpoc_common import errors
from dtpoc_files import domain
from dtpoc_files.settings import FilesSettings


def header(**overrides: object) -> domain.UploadHeader:
    fields: dict[str, object] = {
        "filename": "a.bin",
        "content_type": "",
        "metadata": {},
        "expected_sha256": "",
        "expected_length": None,
        "max_bytes": 100,
    }
    fields.update(overrides)
    return domain.parse_upload_header(**fields)  # type: ignore[arg-type]


def test_header_defaults_and_normalisation() -> None:
    parsed = header(metadata={"replica_index": 3.0, "weight": 0.5, "nested": {"n": 2.0}})
    assert parsed.content_type == "application/octet-stream"
    assert parsed.metadata == {"replica_index": 3, "weight": 0.5, "nested": {"n": 2}}
    assert isinstance(parsed.metadata["replica_index"], int)
    assert header(expected_sha256="AB" * 32).expected_sha256 == "ab" * 32


@pytest.mark.parametrize(
    ("overrides", "kind"),
    [
        ({"filename": ""}, errors.InvalidArgument),
        ({"filename": "dir/a.bin"}, errors.InvalidArgument),
        ({"filename": "a\nb"}, errors.InvalidArgument),
        ({"filename": "x" * 256}, errors.InvalidArgument),
        ({"metadata": {"hash": "x"}}, errors.InvalidArgument),
        ({"metadata": {"$where": 1}}, errors.InvalidArgument),
        ({"expected_sha256": "abc"}, errors.InvalidArgument),
        ({"expected_length": -1}, errors.InvalidArgument),
        ({"expected_length": 101}, errors.TooLarge),
    ],
)
def test_bad_headers_are_refused(overrides: dict[str, object], kind: type[Exception]) -> None:
    with pytest.raises(kind):
        header(**overrides)


def test_digest_enforces_the_limit_before_counting_the_piece() -> None:
    digest = domain.ContentDigest(max_bytes=10)
    digest.update(b"12345")
    with pytest.raises(errors.TooLarge):
        digest.update(b"123456")
    digest.update(b"12345")
    final = digest.finish(header(expected_length=10))
    assert final.length == 10
    assert final.sha256 == hashlib.sha256(b"1234512345").hexdigest()
    assert final.md5 == hashlib.md5(b"1234512345", usedforsecurity=False).hexdigest()


def test_digest_checks_what_the_header_promised() -> None:
    digest = domain.ContentDigest(max_bytes=10)
    digest.update(b"abc")
    with pytest.raises(errors.InvalidArgument, match="expected 4 bytes"):
        digest.finish(header(expected_length=4))
    with pytest.raises(errors.InvalidArgument, match="SHA-256"):
        digest.finish(header(expected_sha256="0" * 64))


def test_byte_ranges() -> None:
    assert domain.byte_range(size=10, offset=0, length=0) == domain.ByteRange(0, 10)
    assert domain.byte_range(size=10, offset=4, length=3) == domain.ByteRange(4, 3)
    assert domain.byte_range(size=10, offset=8, length=5) == domain.ByteRange(8, 2)
    assert domain.byte_range(size=10, offset=10, length=0) == domain.ByteRange(10, 0)
    for offset, length in [(11, 0), (-1, 0), (0, -1)]:
        with pytest.raises(errors.InvalidArgument):
            domain.byte_range(size=10, offset=offset, length=length)


def test_page_tokens_round_trip_and_are_tied_to_their_filter() -> None:
    moment = datetime.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=datetime.UTC)
    file_id = "669a4eee364a1b751c550b02"
    position = domain.PagePosition(upload_date=moment, file_id=file_id, row=41)
    mine = domain.FileFilter(service_id="svc", replica_index=0)
    token = domain.encode_page_token(position, mine)
    assert domain.decode_page_token(token, mine) == position
    with pytest.raises(errors.InvalidArgument, match="other filters"):
        domain.decode_page_token(token, domain.FileFilter(service_id="svc"))
    for garbage in ["", "!!!", "e30", "WzFd", token[:-3]]:
        with pytest.raises(errors.InvalidArgument):
            domain.decode_page_token(garbage, mine)

    by_name = domain.FileFilter(filename="a.json")
    per_file = domain.PagePosition(upload_date=moment, file_id=file_id)
    assert domain.decode_page_token(domain.encode_page_token(per_file, by_name), by_name) == (
        per_file
    )


def _token(payload: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def test_a_token_cannot_be_made_to_continue_another_kind_of_listing() -> None:
    """A listing by output continues after a row number, one row per file after a
    (date, file id): a token with the other kind of key, or no row number, is refused."""
    file_id = "669a4eee364a1b751c550b02"
    by_output = domain.FileFilter(service_id="svc")
    per_file = domain.FileFilter()
    good = {"d": 1, "i": file_id, "n": 12, "f": by_output.fingerprint()}
    assert domain.decode_page_token(_token(good), by_output).row == 12
    refused = {
        "row number on a per-file listing": ({**good, "f": per_file.fingerprint()}, per_file),
        "no row number on a listing by output": (
            {"d": 1, "i": file_id, "f": good["f"]},
            by_output,
        ),
        "row 0": ({**good, "n": 0}, by_output),
        "a row number that is text": ({**good, "n": "12"}, by_output),
        "a row number that is true": ({**good, "n": True}, by_output),
    }
    for payload, wanted in refused.values():
        with pytest.raises(errors.InvalidArgument, match="page_token"):
            domain.decode_page_token(_token(payload), wanted)


def test_list_query_defaults_and_limits() -> None:
    def query(**fields: object) -> domain.ListQuery:
        base: dict[str, object] = {
            "skip": 0,
            "limit": None,
            "page_token": "",
            "service_id": "",
            "replica_index": None,
            "filename": "",
        }
        base.update(fields)
        return domain.parse_list_query(**base)  # type: ignore[arg-type]

    assert query().limit == 10
    assert query(limit=1000).limit == 1000
    with pytest.raises(errors.InvalidArgument):
        query(limit=1001)
    with pytest.raises(errors.InvalidArgument):
        query(limit=0)
    with pytest.raises(errors.InvalidArgument):
        query(skip=-1)


def test_settings_defaults_and_shared_mongodb_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [
        "DTPOC_FILES_USAGE_CHECK",
        "DTPOC_FILES_ORCHESTRATOR_ADDRESS",
        "DTPOC_FILES_DATABASE",
        "DTPOC_FILES_MONGODB_URI",
    ]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DTPOC_MONGODB_URI", "mongodb://db.example:27017/")
    settings = FilesSettings()
    assert settings.mongodb_uri == "mongodb://db.example:27017/"
    assert settings.usage_check is True, "only an explicit false switches the check off"
    assert settings.database == "orchestrator_files"
    assert settings.bucket == "fs"
    assert settings.max_upload_bytes == 512 * 1024 * 1024
