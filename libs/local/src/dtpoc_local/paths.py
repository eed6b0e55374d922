"""Where the checkout is: the harness reads the repository's own files.

The package is a uv workspace member installed editable, so the checkout
(scripts under ``tools/``, the CRD and RBAC under ``infra/``, the example's
sample workbook) sits at a fixed place above this file.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[4]
"""The repository root (``libs/local/src/dtpoc_local`` is four levels below)."""
