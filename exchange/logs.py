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

import orjson

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
    """Formats records as JSON lines (one per access, so kept cheap: orjson, and the
    timestamp's seconds formatted once per second)."""

    _second: tuple[int, str] = (-1, "")

    def _ts(self, created: float) -> str:
        sec = int(created)
        if self._second[0] != sec:
            self._second = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
        return f"{self._second[1]}.{int((created - sec) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": self._ts(record.created),
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
        try:
            return orjson.dumps(
                doc, default=str, option=orjson.OPT_NON_STR_KEYS
            ).decode()
        except TypeError:  # what orjson cannot hold (an integer beyond 64 bits)
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
