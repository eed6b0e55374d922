"""Fixtures of the command tests (see :mod:`tests.client._platform`)."""

from tests.client._platform import client_platform

__all__ = ["client_platform"]
