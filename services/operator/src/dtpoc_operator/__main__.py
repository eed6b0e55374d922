"""``dtpoc-operator [--runtime local|kubernetes]``: run the operator.

Every setting comes from ``DTPOC_OPERATOR_*`` environment variables (see
:mod:`dtpoc_operator.settings`); ``--runtime`` overrides
``DTPOC_OPERATOR_RUNTIME``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from pydantic import ValidationError

from dtpoc_common import kubeconfig
from dtpoc_operator import app
from dtpoc_operator.local.containers import EngineUnavailable
from dtpoc_operator.settings import OperatorSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="dtpoc-operator", description=__doc__)
    parser.add_argument(
        "--runtime",
        choices=["kubernetes", "local"],
        help="where replicas run (default: $DTPOC_OPERATOR_RUNTIME, else kubernetes)",
    )
    args = parser.parse_args(argv)
    try:
        settings = OperatorSettings()
    except ValidationError as error:
        print(f"dtpoc-operator: invalid settings:\n{error}", file=sys.stderr)
        sys.exit(2)
    if args.runtime:
        settings = settings.model_copy(update={"runtime": args.runtime})
    try:
        asyncio.run(app.run(settings))
    except EngineUnavailable as error:
        print(f"dtpoc-operator: no container engine: {error}", file=sys.stderr)
        sys.exit(2)
    except kubeconfig.ConfigurationError as error:
        print(f"dtpoc-operator: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
