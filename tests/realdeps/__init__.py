"""Real dependencies for tests: the pytest fixtures around :mod:`dtpoc_local`.

The harness itself (binaries, processes, waiting, FerretDB, the control
plane, credentials, images) is the ``dtpoc_local`` package, which ``make
run``, the benches and ``make cluster`` use too; this folder keeps only what
is pytest's: fixtures, hooks and the kubelet test double.

Loaded as pytest plugins by ``tests/conftest.py`` (see :data:`PLUGIN_MODULES`);
the fixtures they provide:

- ``mongodb_uri`` (session), ``mongo_client`` (session), ``mongo_db_name``:
  a MongoDB-protocol server (yours via ``DTPOC_TEST_MONGODB_URI``, a
  testcontainers MongoDB, or FerretDB) and a fresh database name per test.
- ``kube`` (session, a :class:`~dtpoc_local.kube.KubeCluster`) and
  ``kube_namespace``: a Kubernetes API (yours via ``DTPOC_TEST_KUBECONFIG`` or
  ``KUBECONFIG``, else etcd + kube-apiserver + kube-controller-manager) and a
  fresh namespace per test.
- ``kubelet_double``: a :class:`~tests.realdeps.kubelet_double.KubeletDouble`,
  the named test double that reports pods running and finished.
- ``helm_bin``, ``buf_bin`` (session): paths of the pinned tools.

Utilities to import: :func:`dtpoc_local.waiting.wait_for`,
:func:`dtpoc_local.binaries.path`, :func:`dtpoc_local.ports.free_port`.
"""

PLUGIN_MODULES = (
    "tests.realdeps.servers",
    "tests.realdeps.mongodb",
    "tests.realdeps.kube",
    "tests.realdeps.kubelet_double",
    "tests.realdeps.parallel",
)
"""Modules whose fixtures and hooks pytest must load (see ``tests/conftest.py``)."""
