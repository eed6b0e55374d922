"""Settings, logging, errors and gRPC plumbing shared by every dtpoc process.

Only this small package is shared between services; each service keeps its
own domain code. Import the modules, not their names:
``from dtpoc_common import errors`` then ``errors.NotFound(...)``.
"""
