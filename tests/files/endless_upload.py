"""A client that uploads without end, to be killed mid-stream by a test.

Run as ``python -m tests.files.endless_upload <address>``: sends the header,
then 1 MiB pieces of random bytes until the process is killed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

from dtpoc.files.v1alpha1 import files_pb2
from tests.files import helpers


def endless(head: files_pb2.UploadFileHeader) -> Iterator[files_pb2.UploadFileRequest]:
    yield files_pb2.UploadFileRequest(header=head)
    while True:
        yield files_pb2.UploadFileRequest(chunk=os.urandom(helpers.MIB))


def main() -> None:
    address = sys.argv[1]
    client = helpers.stub(address)
    client.UploadFile(endless(helpers.header("never-finished.bin")), timeout=3600)


if __name__ == "__main__":
    main()
