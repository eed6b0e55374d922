"""dtpoc Files service: GridFS behind the streaming gRPC API ``dtpoc.files.v1alpha1``.

Modules: :mod:`~dtpoc_files.settings` (``DTPOC_FILES_*``),
:mod:`~dtpoc_files.domain` (rules, no I/O), :mod:`~dtpoc_files.gridfs_store`
(the MongoDB adapter and its crash-safety design),
:mod:`~dtpoc_files.usage` (asks the orchestrator who mounts a file),
:mod:`~dtpoc_files.service` (use cases), :mod:`~dtpoc_files.servicer` (the
gRPC edge) and :mod:`~dtpoc_files.server` (assembly).
"""
