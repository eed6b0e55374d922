"""Shared code of tests/compat: what its fixtures (conftest.py) and its tests use.

A named module rather than conftest.py, so that tests import it like any other
module (pytest loads conftest files itself; importing them by name is fragile).
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from dtpoc_common.vocabulary import API_PREFIX
from dtpoc_local.kube import KubeCluster

PREFIX = API_PREFIX

ANALYTICS_PATH = "/apis/eng.cam.ac.uk/v1alpha1/namespaces/{ns}/analytics"


@dataclass(frozen=True)
class SharedPlatform:
    """One platform for a test module: the gateway's client and what lies behind it."""

    client: httpx.Client
    files_address: str
    kube: KubeCluster
    namespace: str
