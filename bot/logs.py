"""Logging for every command and for the running bot: plain text or JSON lines, secrets redacted.

`setup(format, level)` installs one handler on the root logger (calling it again replaces it).
With `format="json"` each record is one JSON object a line: `ts`, `level`, `logger`, `message`,
then whatever the call site passed in `extra=` — `poll_id`, `alert_id`/`alert_ids`,
`delivery_id` (an outbox batch), `source`, `channel`, `status` — and `exc` for a traceback.

Secrets are redacted from every record twice over: when the record is made (the message and a
traceback's text, so handlers installed by others — uvicorn's, pytest's — see them masked too)
and again by this handler's filter (extras included). Which values are secret: see
`bot.secrets`; `setup` remembers those the environment holds.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from bot import secrets

FORMATS = ("text", "json")
#: Loggers that say a line per request or job at INFO; quiet unless debugging.
CHATTY = ("httpx", "httpcore", "apscheduler", "uvicorn.access")
#: Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_base_factory = logging.getLogRecordFactory()


def _redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    _redact_record(record)
    return record


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a bad format string is the handler's to report, not the caller's to crash on
        return
    masked = secrets.redact(message)
    if masked != message:
        record.msg, record.args = masked, None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = secrets.redact(record.exc_text)
    if record.stack_info:
        record.stack_info = secrets.redact(record.stack_info)


class RedactingFilter(logging.Filter):
    """Masks remembered secrets in a record's message, traceback and extra fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, secrets.redact(value))
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({key: value for key, value in vars(record).items() if key not in _STANDARD and not key.startswith("_")})
        if record.exc_info or record.exc_text:
            line["exc"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return secrets.redact(json.dumps(line, default=str, ensure_ascii=False))


class _Handler(logging.StreamHandler):
    """Writes to the given stream, or to whatever `sys.stderr` is at the time of each record
    (a test runner swaps it per test)."""

    def __init__(self, stream: TextIO | None):
        super().__init__(stream or sys.stderr)
        self._fixed = stream

    def emit(self, record: logging.LogRecord) -> None:
        if self._fixed is None:
            self.stream = sys.stderr
        super().emit(record)


def install_redaction() -> None:
    """Mask secrets in every record from now on, whichever handler writes it."""
    if logging.getLogRecordFactory() is not _redacting_factory:
        logging.setLogRecordFactory(_redacting_factory)


def setup(format: str = "text", level: str | int = "info", *, stream: TextIO | None = None) -> logging.Handler:
    """Send the process's logs to stderr (or `stream`) as `format` at `level` and above."""
    if format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {format!r}")
    numeric = level if isinstance(level, int) else logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    secrets.register_environment()
    install_redaction()
    handler = _Handler(stream)
    handler.setFormatter(JsonFormatter() if format == "json" else logging.Formatter(_TEXT_FORMAT))
    handler.addFilter(RedactingFilter())
    handler.setLevel(numeric)
    handler.set_name("deflation-watch")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "deflation-watch"]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    if root.getEffectiveLevel() > numeric:
        root.setLevel(numeric)
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.DEBUG if numeric <= logging.DEBUG else logging.WARNING)
    return handler
