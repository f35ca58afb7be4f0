"""``folder``: a shared folder of Word, Excel, JSON and YAML files, in and out.

In (:class:`FolderSource`)
--------------------------
Every poll walks the folder (``patterns``, recursively) and turns each new or changed
file (by SHA-256 of its bytes) into one item:

* ``.docx`` — a case study or a lesson (kind by ``kind_rules``: on ``title``, ``text``
  or ``path``, e.g. files under ``典型案例/``; else ``kind``); headings map to body
  fields (背景 / 主要做法 / 成效 / 经验启示 for a case study, 做法 / 适用条件 / 成效 /
  推广价值 for a lesson), the 联系人 section to contacts, the closing date line or the
  document's creation time to ``created_at`` (:mod:`adapters.extract.office`).
* ``.xlsx`` — an inspection plan from its phase table (阶段 / 开始日期 / 结束日期 /
  工作内容 / 责任单位) and plan sheet; units become site ids through ``site_names``.
* ``.json`` / ``.yaml`` — an unsigned item object as it is (``author`` may be left
  out; ``created_at`` must be there, so the same file always gives the same item).

A file that cannot be read — a corrupt ``.docx``, a sheet with missing columns, an
invalid item — is a problem naming the file and what is wrong: nothing is pushed for
it, the other files go ahead, and it is read again once it changes. Files changed in
the last ``settle_seconds`` are left for the next poll (a copy may be in progress),
as are Office lock files (``~$…``) and hidden files.

State: ``{relative path: sha256}`` of the files turned into items.

Out (:class:`FolderSink`)
-------------------------
Each received item is written as ``<hex id>.md`` (or ``.docx``), readable with Chinese
labels, plus ``<hex id>.json``, the signed original (verifiable offline with
``exchange verify``). Files are named by item id and written atomically, the ``.json``
last: an item whose ``.json`` exists is complete, and delivering it again changes
nothing.

The sink does not trust the node with its file names: it accepts only an ``id`` of the
form ``sha256:<64 hex>`` that is the hash of the item it came with, and (with
``by_kind``) only a kind of the schema; every path it writes is checked to be inside
its folder. Anything else is refused (:class:`RefusedDelivery`) and nothing is written.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from exchange.core.canonical import parse_json
from exchange.errors import JsonError

from .base import (
    AdapterConfig,
    AdapterContext,
    AdapterError,
    Draft,
    Poll,
    RefusedDelivery,
    check_delivery,
)
from .extract.fields import (
    DocumentFields,
    ItemRules,
    ShapeError,
    check_item,
    choose_kind,
    shape_item,
)
from .extract.office import OfficeError, read_docx, read_plan_xlsx
from .extract.prose import rules_for
from .extract.render import to_docx, to_markdown
from .spool import atomic_write
from .text import to_rfc3339

__all__ = [
    "FolderSink",
    "FolderSinkConfig",
    "FolderSource",
    "FolderSourceConfig",
]


class FolderSourceConfig(AdapterConfig, ItemRules):
    """``[[source]] type = "folder"``."""

    path: Path = Field(description="The shared folder (relative to site.toml)")
    patterns: list[str] = Field(
        default_factory=lambda: ["*.docx", "*.xlsx", "*.json", "*.yaml", "*.yml"]
    )
    recursive: bool = True
    settle_seconds: float = Field(
        5.0, ge=0, description="Skip files changed this recently"
    )
    site_names: dict[str, str] = Field(
        default_factory=dict, description="Unit name in Excel → site id"
    )
    max_bytes: int = Field(50_000_000, gt=0, description="Largest file read")


class FolderSinkConfig(AdapterConfig):
    """``[[sink]] type = "folder"``."""

    path: Path = Field(description="Folder to write received items into")
    format: Literal["md", "docx"] = Field("md", description="Readable copy format")
    by_kind: bool = Field(False, description="One subfolder per kind")


def _plain(value: Any) -> Any:
    """YAML dates and times → strings, as they would be written in JSON."""
    if isinstance(value, datetime):
        return to_rfc3339(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that refuses a mapping with the same key twice (PyYAML keeps
    the last one silently).

    Raises:
        ValueError: a duplicate key (naming it and its line).
        yaml.YAMLError: not YAML.
    """
    import yaml

    class _Strict(yaml.SafeLoader):  # type: ignore[misc]
        pass

    def mapping(loader: Any, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise ValueError(
                    f"duplicate key {key!r} at line {key_node.start_mark.line + 1}; "
                    "each key may appear once"
                )
            seen.add(key)
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    _Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return yaml.load(text, Loader=_Strict)  # noqa: S506 - a SafeLoader subclass


class FolderSource:
    """Reads new and changed files of a shared folder.

    Args:
        config: The validated ``[[source]]`` table.
        ctx: Site id, data folder and logger from the runner.
    """

    config_model: ClassVar[type[AdapterConfig]] = FolderSourceConfig

    def __init__(self, config: FolderSourceConfig, ctx: AdapterContext) -> None:
        self.config = config
        self.ctx = ctx
        self.root = ctx.path(config.path)

    def _files(self) -> list[Path]:
        walk = self.root.rglob("*") if self.config.recursive else self.root.glob("*")
        out = []
        for p in walk:
            rel = p.relative_to(self.root)
            if (
                any(part.startswith((".", "~$")) for part in rel.parts)
                or not p.is_file()
            ):
                continue
            if any(
                fnmatch.fnmatch(p.name.lower(), pat.lower())
                for pat in self.config.patterns
            ):
                out.append(p)
        return sorted(out)

    def _docx(self, data: bytes, rel: str, mtime: float) -> dict[str, Any]:
        doc = read_docx(data, rel)
        created = doc.created_at or datetime.fromtimestamp(mtime, self.config.tz)
        title, text = doc.title or Path(rel).stem, "\n".join(doc.lines)
        kind = choose_kind(
            self.config,
            {
                "title": title,
                "text": text,
                "tags": "、".join(self.config.tags),
                "path": rel,
            },
        )
        fields = DocumentFields(
            rel,
            title,
            created,
            text=text,
            kind=kind,
            body={"contacts": doc.contacts} if doc.contacts else {},
            match={"path": rel},
        )
        return shape_item(fields, rules_for(kind, self.config), self.ctx.site_id)

    def _xlsx(self, data: bytes, rel: str, mtime: float) -> dict[str, Any]:
        plan = read_plan_xlsx(data, rel, self.config.site_names, self.ctx.site_id)
        created = plan["created_at"] or datetime.fromtimestamp(mtime, self.config.tz)
        fields = DocumentFields(
            rel,
            plan["title"] or Path(rel).stem,
            created,
            tags=plan["tags"],
            kind="inspection_plan",
            body=plan["body"],
            match={"path": rel},
        )
        return shape_item(fields, self.config, self.ctx.site_id)

    def _structured(self, data: bytes, rel: str) -> dict[str, Any]:
        try:
            if rel.lower().endswith(".json"):
                # The strict parser, as for a push: no duplicate keys, floats or
                # huge integers (a BOM, as Notepad writes one, is allowed).
                obj = parse_json(data.removeprefix(b"\xef\xbb\xbf"), allow_floats=False)
            else:
                # YAML as strictly: duplicate keys refused by the loader, then the
                # value goes through the strict JSON parser (no floats, no huge
                # integers), so a .yaml file gives exactly what a .json file would.
                plain = _plain(_load_yaml(data.decode("utf-8-sig")))
                obj = parse_json(
                    json.dumps(plain, ensure_ascii=False), allow_floats=False
                )
        except JsonError as exc:
            raise ShapeError(f"{rel}: cannot be parsed: {exc.message}") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ShapeError(f"{rel}: cannot be parsed: {exc}") from None
        except Exception as exc:  # yaml.YAMLError
            raise ShapeError(f"{rel}: not valid YAML: {exc}") from None
        if not isinstance(obj, dict):
            raise ShapeError(f"{rel}: must hold one item object")
        if set(obj) == {"item", "sig"}:
            raise ShapeError(f"{rel}: is already signed; push it with 'exchange push'")
        obj.setdefault("v", 1)
        obj.setdefault("author", self.ctx.site_id)
        if "created_at" not in obj:
            raise ShapeError(
                f"{rel}: no created_at (write e.g. created_at: "
                "'2021-10-28T09:30:00+08:00')"
            )
        return obj

    async def poll(self, state: dict[str, Any]) -> Poll:
        """New and changed files as drafts.

        Raises:
            AdapterError: the folder itself cannot be read (retryable: a share that is
                not mounted yet).
        """
        if not self.root.is_dir():
            raise AdapterError(
                f"{self.root}: 文件夹不存在 / the folder does not exist "
                "or is not mounted",
                retryable=True,
            )
        done: dict[str, str] = dict(state.get("files", {}))
        drafts: list[Draft] = []
        problems: list[str] = []
        now = time.time()
        for path in self._files():
            rel = path.relative_to(self.root).as_posix()
            try:
                st = path.stat()
                if now - st.st_mtime < self.config.settle_seconds:
                    continue
                if st.st_size > self.config.max_bytes:
                    problems.append(f"{rel}: larger than {self.config.max_bytes} bytes")
                    continue
                data = path.read_bytes()
            except OSError as exc:
                problems.append(f"{rel}: cannot be read: {exc}")
                continue
            sha = hashlib.sha256(data).hexdigest()
            if done.get(rel) == sha:
                continue
            low = rel.lower()
            try:
                if low.endswith(".docx"):
                    item = self._docx(data, rel, st.st_mtime)
                elif low.endswith(".xlsx"):
                    item = self._xlsx(data, rel, st.st_mtime)
                else:
                    item = self._structured(data, rel)
                check_item(item, rel)
            except (OfficeError, ShapeError) as exc:
                problems.append(str(exc))
                continue
            drafts.append(Draft(item, rel))
            done[rel] = sha
        return Poll(drafts, {"files": done}, problems)

    async def close(self) -> None:
        """Nothing to release."""


class FolderSink:
    """Writes partners' items into a folder, readable and signed.

    Args:
        config: The validated ``[[sink]]`` table.
        ctx: Site id, data folder and logger from the runner.
    """

    config_model: ClassVar[type[AdapterConfig]] = FolderSinkConfig

    def __init__(self, config: FolderSinkConfig, ctx: AdapterContext) -> None:
        self.config = config
        self.ctx = ctx
        self.root = ctx.path(config.path)

    async def deliver(self, signed: dict[str, Any], envelope: dict[str, Any]) -> None:
        """Write ``<hex id>.md``/``.docx`` and ``<hex id>.json`` (idempotent).

        Raises:
            RefusedDelivery: the id or kind cannot be trusted, or a path would leave
                the folder (nothing is written).
            AdapterError: the folder cannot be written (retryable).
        """
        hexid, kind = check_delivery(signed, envelope)
        item = signed["item"]
        folder = self.root / kind if self.config.by_kind else self.root
        root = self.root.resolve()
        for name in (f"{hexid}.json", f"{hexid}.{self.config.format}"):
            where = (folder / name).resolve()
            if not where.is_relative_to(root) or where.parent != folder.resolve():
                raise RefusedDelivery(
                    f"拒收 / refused: {name} would be written outside {self.root}"
                )
        target = folder / f"{hexid}.json"
        if target.exists():
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if self.config.format == "docx":
                atomic_write(
                    folder / f"{hexid}.docx", to_docx(item, envelope, self.ctx.names)
                )
            else:
                atomic_write(
                    folder / f"{hexid}.md",
                    to_markdown(item, envelope, self.ctx.names).encode("utf-8"),
                )
            atomic_write(
                target, json.dumps(signed, ensure_ascii=False, indent=2).encode("utf-8")
            )
        except OSError as exc:
            raise AdapterError(
                f"{folder}: cannot write: {exc}", retryable=True
            ) from None

    async def close(self) -> None:
        """Nothing to release."""
