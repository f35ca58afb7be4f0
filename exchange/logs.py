"""Structured logs: one JSON object per line, with the request id when there is one.

``configure_logging(json_lines=True)`` is called by ``exchange node up``. Log messages
never carry key material, tokens or item bodies: handlers log ids, codes and sizes only,
and :class:`JsonFormatter` additionally masks anything that looks like a bearer token or
a private key field, as a last line of defence.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time

__all__ = ["REQUEST_ID", "JsonFormatter", "configure_logging"]

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar(
    "request_id", default=""
)

_SECRET = re.compile(
    r"(Bearer\s+)[A-Za-z0-9._~+/=-]+|(\"?private_key\"?\s*[:=]\s*\"?)[A-Za-z0-9_=+/-]+",
    re.IGNORECASE,
)


def _mask(text: str) -> str:
    return _SECRET.sub(lambda m: (m.group(1) or m.group(2)) + "***", text)


class JsonFormatter(logging.Formatter):
    """Formats records as JSON lines."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _mask(record.getMessage()),
        }
        rid = REQUEST_ID.get()
        if rid:
            doc["request_id"] = rid
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            doc.update({k: v for k, v in extra.items() if k not in doc})
        if record.exc_info:
            doc["exc"] = _mask(self.formatException(record.exc_info))
        return json.dumps(doc, ensure_ascii=False, default=str)


def configure_logging(*, json_lines: bool = True, level: int = logging.INFO) -> None:
    """Send logs to stderr, as JSON lines (default) or plain text."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if json_lines
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
