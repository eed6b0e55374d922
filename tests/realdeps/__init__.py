"""Real dependencies for tests: servers built from source, started by pytest fixtures.

Loaded as pytest plugins by ``tests/conftest.py`` (see :data:`PLUGIN_MODULES`);
the fixtures they provide:

- ``mongodb_uri`` (session), ``mongo_client`` (session), ``mongo_db_name``:
  a MongoDB-protocol server (yours via ``DTPOC_TEST_MONGODB_URI``, a
  testcontainers MongoDB, or FerretDB) and a fresh database name per test.
- ``kube`` (session, a :class:`~tests.realdeps.kube.KubeCluster`) and
  ``kube_namespace``: a Kubernetes API (yours via ``DTPOC_TEST_KUBECONFIG`` or
  ``KUBECONFIG``, else etcd + kube-apiserver + kube-controller-manager) and a
  fresh namespace per test.
- ``kubelet_double``: a :class:`~tests.realdeps.kubelet_double.KubeletDouble`,
  the named test double that reports pods running and finished.
- ``helm_bin``, ``buf_bin`` (session): paths of the pinned tools.

Utilities to import: :func:`tests.realdeps.waiting.wait_for`,
:func:`tests.realdeps.binaries.path`, :func:`tests.realdeps.ports.free_port`.
"""

PLUGIN_MODULES = (
    "tests.realdeps.processes",
    "tests.realdeps.binaries",
    "tests.realdeps.mongodb",
    "tests.realdeps.kube",
    "tests.realdeps.kubelet_double",
)
"""Modules whose fixtures and hooks pytest must load (see ``tests/conftest.py``)."""
