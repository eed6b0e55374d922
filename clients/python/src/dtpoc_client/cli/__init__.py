"""The `dtpoc` command (Click + Rich); entry point :func:`dtpoc_client.cli.main.main`.

httpx imports its own command-line tool (and with it Pygments and Rich's
syntax highlighter) whenever click and rich are installed, which they are
beside this command; the command never uses it, and loading it was a third
of a second of CPU in every run. A ``None`` entry in ``sys.modules`` makes
that optional import fail as if the extras were absent, which httpx handles.
"""

import sys
from typing import Any

if "httpx" not in sys.modules:
    _modules: dict[str, Any] = sys.modules
    _modules.setdefault("httpx._main", None)
