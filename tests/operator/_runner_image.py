"""A small image for the container runner tests, built once from the project's base image.

``localhost/dtpoc-test-runner:<hash>``: the Debian base (``tools/images``,
cached by content) as uid 10001, whose entry point runs the Python program
in its ``PROGRAM`` variable, so each test says what the container does
without an image of its own. Built with buildah in seconds once the base
exists; no network at test time beyond the cached base build.
"""

from __future__ import annotations

import hashlib
import json
import subprocess

from dtpoc_local import images

USER = "10001:10001"
ENTRYPOINT = ["python3.11", "-c", "import os; exec(os.environ['PROGRAM'])"]


def _run(*argv: str) -> str:
    answer = subprocess.run(
        argv, env=images.podman_env(), capture_output=True, text=True, check=False, timeout=300
    )
    if answer.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {answer.stderr[-2000:]}")
    return answer.stdout.strip()


def runner_image() -> str:
    """The image's reference (built when missing)."""
    base = images.ensure_image("base")
    base_id = _run("podman", "image", "inspect", "--format", "{{.Id}}", base)
    recipe = json.dumps([base_id, USER, ENTRYPOINT])
    ref = f"localhost/dtpoc-test-runner:{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"
    exists = subprocess.run(
        ["podman", "image", "exists", ref], env=images.podman_env(), check=False, timeout=60
    )
    if exists.returncode == 0:
        return ref
    container = _run("buildah", "from", "--pull=never", base)
    try:
        _run(
            "buildah",
            "config",
            "--user",
            USER,
            "--workingdir",
            "/tmp",
            "--entrypoint",
            json.dumps(ENTRYPOINT),
            "--cmd",
            "",
            container,
        )
        _run("buildah", "commit", "--quiet", container, ref)
    finally:
        subprocess.run(
            ["buildah", "rm", container], env=images.podman_env(), capture_output=True, check=False
        )
    return ref
