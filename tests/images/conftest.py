"""Fixtures of the image tests: a container engine and the project's images.

``container_engine`` (session) skips the tests, with the reason, only where
podman/runc cannot run at all (never on the project's machines, where they
are installed). ``platform_image`` and ``histolab_image`` (session) build the
images through ``tools/images/build`` — cached by content, so seconds when
nothing changed; a first build (about 4 minutes on two cores: the Debian
base, then the images) prints its progress. ``containers`` starts detached
containers and removes them after the test, showing their logs if it failed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

import pytest

from dtpoc_local import images
from tests.images import _containers


@pytest.fixture(scope="session")
def container_engine() -> str:
    available, reason = images.engine_available()
    if not available:
        pytest.skip(f"no container runtime: {reason}")
    return reason


def _image(name: str) -> str:
    start = time.monotonic()
    print(f"\n[images] ensuring the {name} image (cached by content)...", file=sys.stderr)
    ref = images.ensure_image(name)
    print(f"[images] {ref} ready in {time.monotonic() - start:.1f}s", file=sys.stderr)
    return ref


@pytest.fixture(scope="session")
def platform_image(container_engine: str) -> str:
    """Reference of the dtpoc platform image (services/Dockerfile)."""
    return _image("dtpoc")


@pytest.fixture(scope="session")
def histolab_image(container_engine: str) -> str:
    """Reference of the histolab example image (examples/histolab/Dockerfile)."""
    return _image("histolab")


@pytest.fixture
def containers(container_engine: str) -> Iterator[Callable[..., _containers.Container]]:
    """``start(image, command=..., env=..., extra=..., publish=...)`` -> a running container."""
    started: list[_containers.Container] = []

    def start(
        image: str,
        *,
        command: Sequence[str],
        env: Mapping[str, str],
        extra: Sequence[str] = (),
        publish: Mapping[int, int] | None = None,
    ) -> _containers.Container:
        container = _containers.start(image, command=command, env=env, extra=extra, publish=publish)
        started.append(container)
        return container

    yield start
    for container in started:
        # Captured output: pytest shows it only when the test failed.
        print(container.logs(), file=sys.stderr)
        container.remove()
