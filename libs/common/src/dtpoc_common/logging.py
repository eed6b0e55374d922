"""Structured logs: one JSON line per event, with context as fields.

Call :func:`configure` once at process start, then use
``log = get_logger(__name__)`` and ``log.info("replica finished",
service_id=..., replica_index=...)``.
"""

from __future__ import annotations

import json
import logging as _logging
import sys
import time
from typing import Any


class JsonFormatter(_logging.Formatter):
    """Formats a record as one JSON object on one line."""

    def format(self, record: _logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            payload.update(fields)
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, separators=(",", ":"))


class StructuredLogger:
    """A thin wrapper whose methods take the event and its fields."""

    def __init__(self, logger: _logging.Logger) -> None:
        self._logger = logger

    def _log(self, level: int, event: str, exc_info: bool, fields: dict[str, Any]) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, event, extra={"fields": fields}, exc_info=exc_info)

    def debug(self, event: str, **fields: Any) -> None:
        self._log(_logging.DEBUG, event, False, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log(_logging.INFO, event, False, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log(_logging.WARNING, event, False, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log(_logging.ERROR, event, False, fields)

    def exception(self, event: str, **fields: Any) -> None:
        """Logs at error level with the current exception's traceback (logs only)."""
        self._log(_logging.ERROR, event, True, fields)


def configure(level: str = "INFO") -> None:
    """Send every log record to stderr as JSON lines."""
    handler = _logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = _logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def get_logger(name: str) -> StructuredLogger:
    return StructuredLogger(_logging.getLogger(name))
