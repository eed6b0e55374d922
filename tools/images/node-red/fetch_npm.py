"""Fetch npm from the npm registry, check its sha512, unpack it under /opt/package.

Run inside the Node-RED image build (tools/images/node-red/Dockerfile):
Debian's npm package pulls in some 300 others, npm's own tarball is one
file. Usage: python3 fetch_npm.py VERSION SHA512_BASE64
"""

import base64
import hashlib
import io
import sys
import tarfile
import urllib.request

version, expected = sys.argv[1], sys.argv[2]
url = f"https://registry.npmjs.org/npm/-/npm-{version}.tgz"
with urllib.request.urlopen(url, timeout=300) as response:
    data = response.read()
if base64.b64encode(hashlib.sha512(data).digest()).decode() != expected:
    sys.exit(f"fetch_npm: {url} does not match its published sha512")
with tarfile.open(fileobj=io.BytesIO(data)) as archive:
    # Debian's Python 3.11.2 predates extraction filters: check the members instead.
    for member in archive.getmembers():
        if not member.name.startswith("package/") or ".." in member.name.split("/"):
            sys.exit(f"fetch_npm: unexpected member {member.name!r}")
        if not (member.isfile() or member.isdir()):
            sys.exit(f"fetch_npm: {member.name!r} is not a plain file or folder")
    archive.extractall("/opt")  # noqa: S202 (every member checked above)
print(f"fetch_npm: npm {version} in /opt/package")
