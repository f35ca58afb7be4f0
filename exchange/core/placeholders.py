"""Template placeholders: text only the author can write, marked so it is never signed.

``exchange item new`` prints templates whose free text is ``<填写：…>`` (Chinese for
"fill in"), each with a hint of what belongs there. ``exchange item sign`` and a node
receiving a site's push refuse any item that still holds one, naming the fields, so a
template cannot be signed and pushed unchanged by accident.

The format is deliberately simple so that other tools can check it: a placeholder is
``<填写`` followed by anything but angle brackets, then ``>``, anywhere in a string.
"""

from __future__ import annotations

import re
from typing import Any

from exchange.errors import SchemaError
from schemas.errors import ErrorCode

__all__ = [
    "PLACEHOLDER",
    "PLACEHOLDER_MARK",
    "find_placeholders",
    "placeholder",
    "refuse_placeholders",
    "templatize",
]

PLACEHOLDER = re.compile(r"<填写[^<>]*>")
PLACEHOLDER_MARK = "<填写".encode()
"""What every placeholder starts with, as it appears in canonical JSON bytes (RFC 8785
escapes neither ``<`` nor non-ASCII): bytes without it hold no placeholder."""
# Values a template may keep as they are: site ids, item ids, dates and times, enum
# values, language tags (plain ASCII without spaces); everything else is prose.
_STRUCTURAL = re.compile(r"^[\x21-\x7e]*$")
_HINT_CHARS = 24


def placeholder(hint: str) -> str:
    """A placeholder telling the author what to write (``hint`` without ``<`` ``>``)."""
    clean = hint.replace("<", "‹").replace(">", "›").strip()
    return f"<填写：{clean}>"


def _example(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _HINT_CHARS else text[:_HINT_CHARS] + "…"


def templatize(value: Any, *, keep: frozenset[str] = frozenset()) -> Any:
    """Turn the prose of an example document into placeholders quoting the example.

    Structural strings (ids, dates, enum values) stay; a contact keeps only a name and
    role to fill in (no invented phone number or address). Keys in ``keep`` are copied.
    """
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k in keep:
                out[k] = v
            elif k == "contacts" and isinstance(v, list):
                out[k] = (
                    [{"name": placeholder("联系人姓名"), "role": placeholder("职务")}]
                    if v
                    else []
                )
            else:
                out[k] = templatize(v, keep=keep)
        return out
    if isinstance(value, list):
        return [templatize(v, keep=keep) for v in value]
    if isinstance(value, str) and value and not PLACEHOLDER.search(value):
        if _STRUCTURAL.match(value):
            return value
        return placeholder("例：" + _example(value))
    return value


def find_placeholders(value: Any, path: str = "") -> list[str]:
    """Paths (``body.phases[0].name``) of every string that still holds a placeholder."""
    found: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            found += find_placeholders(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += find_placeholders(v, f"{path}[{i}]")
    elif isinstance(value, str) and PLACEHOLDER.search(value):
        found.append(path or "(value)")
    return found


def refuse_placeholders(item: Any, prefix: str = "item") -> None:
    """Raise if ``item`` still holds template placeholders.

    Raises:
        SchemaError: ``schema_invalid``, naming up to five fields to fill in.
    """
    found = find_placeholders(item, prefix)
    if not found:
        return
    named = ", ".join(found[:5]) + (
        f" and {len(found) - 5} more" if len(found) > 5 else ""
    )
    raise SchemaError(
        f"{named}: still a template placeholder <填写…>; write the real content "
        f"(未填写模板内容，请替换所有 <填写…> 后再签名)",
        code=ErrorCode.SCHEMA_INVALID,
        detail={"fields": found},
    )
