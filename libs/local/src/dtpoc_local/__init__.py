"""The platform on one machine, and the harness that starts its servers.

``dtpoc up`` / ``make run`` (:mod:`dtpoc_local.up`) start FerretDB and the four
services as child processes and run the demo; the test suite and the benches
start the same servers with the same code (:mod:`dtpoc_local.servers`,
:mod:`dtpoc_local.ferretdb`, :mod:`dtpoc_local.controlplane`, ...). Production
code may import this package; it never imports pytest or the test suite (the
fixtures that wrap it live in ``tests/realdeps`` and ``tests/platform``).

Modules:

- :mod:`~dtpoc_local.binaries`: the pinned server binaries under
  ``~/.cache/dtpoc`` (built by ``tools/testbin/build`` when missing).
- :mod:`~dtpoc_local.processes`, :mod:`~dtpoc_local.waiting`,
  :mod:`~dtpoc_local.ports`: child servers with logs, deadline waits, free ports.
- :mod:`~dtpoc_local.ferretdb`, :mod:`~dtpoc_local.controlplane`,
  :mod:`~dtpoc_local.pki`, :mod:`~dtpoc_local.kube`: MongoDB and Kubernetes APIs.
- :mod:`~dtpoc_local.credentials`, :mod:`~dtpoc_local.images`: gRPC tokens,
  container images and podman.
- :mod:`~dtpoc_local.servers`: start ``dtpoc-files``, ``-orchestrator``,
  ``-operator``, ``-gateway`` as processes.
- :mod:`~dtpoc_local.platform`, :mod:`~dtpoc_local.demo`,
  :mod:`~dtpoc_local.up`: the local platform and its demo.
"""
