"""``sql``: a table or view in the site's own database, in and out.

In (:class:`SqlSource`)
-----------------------
Rows are read in ``(watermark, id)`` order, where the watermark is an increasing
column (``updated_at``, or an auto-increment id). The state keeps the last watermark
and **the ids already read at that watermark**, so rows that share a watermark value
are neither lost when a batch ends between them nor read twice, and a row that commits
later with the same timestamp is still picked up::

    WHERE wm > :last OR (wm = :last AND id NOT IN (:seen)) ORDER BY wm, id LIMIT :batch

Columns map to item fields in the config (title, summary, created_at, tags, a kind
column or kind rules, free text split at headings, body fields one by one, or a JSON
column holding the whole body); see :mod:`adapters.extract.fields`. The same row always
gives the same item, so a re-read after a crash is a harmless duplicate. A row that
cannot become an item is reported as a problem and skipped; the watermark moves past it.
Rows whose watermark is NULL are never read.

If the database goes away mid-poll, :class:`~adapters.base.AdapterError` with
``retryable=True`` is raised, the state is not advanced, and the next poll reconnects
and reads the same rows again.

Out (:class:`SqlSink`)
----------------------
Each received item becomes one row of a configured table, keyed by item id:
``mode = "insert"`` leaves an existing row alone, ``"upsert"`` overwrites it. With
``create_table = true`` the table is created if missing. Column types are honoured on
PostgreSQL (``timestamptz`` or ``timestamp``, ``jsonb`` or ``text``, ``text[]`` tags);
on MySQL/MariaDB times are local ``DATETIME`` in ``timezone`` and JSON is text.

Limitation: a watermark written by a transaction that commits *after* a later
watermark was already read (a long transaction with an early ``now()``) is missed; use
an id or a commit-time column filled by a trigger if the site's system does that.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from adapters.base import AdapterConfig, AdapterContext, AdapterError, Draft, Poll
from adapters.extract.fields import (
    DocumentFields,
    ItemRules,
    ShapeError,
    check_item,
    parse_offset,
    shape_item,
)
from adapters.sql_connection import PgConnection, SqlConnection, open_connection
from exchange.core.canonical import parse_json
from exchange.errors import JsonError

__all__ = [
    "SinkColumns",
    "SqlColumns",
    "SqlSink",
    "SqlSinkConfig",
    "SqlSource",
    "SqlSourceConfig",
]

_KINDS = ("case_study", "inspection_plan", "lesson", "endorsement", "retraction")


class SqlColumns(BaseModel):
    """``[source.columns]``: which column holds which item field ('' = none)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field("id", description="Primary key; breaks watermark ties")
    title: str = "title"
    summary: str = ""
    created_at: str = Field("", description="Default: the watermark, if it is a time")
    tags: str = Field("", description="Text separated by 、,; or an array/JSON array")
    kind: str = Field("", description="A column naming the kind (see kind_values)")
    text: str = Field("", description="Free text split into body fields at headings")
    body_json: str = Field("", description="A JSON column holding the whole body")


class SqlSourceConfig(AdapterConfig, ItemRules):
    """``[[source]] type = "sql"``."""

    url: str = Field(description="postgresql://user@host/db or mysql://user@host/db")
    password_file: str = Field("", description="File holding the password")
    table: str = Field(description="Table or view, optionally schema.table")
    watermark: str = Field("updated_at", description="Increasing column")
    columns: SqlColumns = Field(default_factory=SqlColumns)
    body: dict[str, str] = Field(
        default_factory=dict, description="Body field (dotted path) -> column"
    )
    kind_values: dict[str, str] = Field(
        default_factory=dict,
        description="Values of the kind column -> kind, e.g. 典型案例 = 'case_study'",
    )
    where: str = Field("", description="Extra SQL condition, e.g. status = 'published'")
    batch: int = Field(500, ge=1, le=10_000)


class SinkColumns(BaseModel):
    """``[sink.columns]``: the column for each item field ('' leaves it out)."""

    model_config = ConfigDict(extra="forbid")

    item_id: str = "item_id"
    log_index: str = "log_index"
    kind: str = "kind"
    author: str = "author"
    title: str = "title"
    summary: str = "summary"
    created_at: str = "created_at"
    received_at: str = "received_at"
    tags: str = "tags"
    body: str = "body"
    signed: str = Field("signed", description="The whole signed item as JSON")


class SqlSinkConfig(AdapterConfig):
    """``[[sink]] type = "sql"``."""

    url: str
    password_file: str = ""
    table: str = "exchange_items"
    mode: Literal["insert", "upsert"] = "insert"
    create_table: bool = Field(False, description="Create the table if it is missing")
    columns: SinkColumns = Field(default_factory=SinkColumns)
    timezone: str = Field("+08:00", description="Offset of naive DATETIME columns")


def _load_password(conn: SqlConnection, path: str, ctx: AdapterContext) -> None:
    """Read ``password_file`` (relative to site.toml) into the connection, once."""
    if not path or conn.password is not None:
        return
    file = ctx.path(path)
    try:
        conn.password = file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise AdapterError(
            f"cannot read password_file {file}: {exc.strerror}"
        ) from None


# -- watermark values in JSON state ---------------------------------------------------


def _wm_dump(value: Any) -> dict[str, Any]:
    if isinstance(value, datetime):
        return {"type": "datetime", "value": value.isoformat()}
    if isinstance(value, date):
        return {"type": "date", "value": value.isoformat()}
    if isinstance(value, Decimal):
        return {"type": "decimal", "value": str(value)}
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return {"type": "str", "value": str(value)}
    return {"type": type(value).__name__, "value": value}


def _wm_load(data: dict[str, Any]) -> Any:
    kind, value = data.get("type"), data.get("value")
    if kind == "datetime":
        return datetime.fromisoformat(str(value))
    if kind == "date":
        return date.fromisoformat(str(value))
    if kind == "decimal":
        return Decimal(str(value))
    return value


def _id_json(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return str(value)
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, (bytes, str)):
        text = _text(value).strip()
        if text.startswith(("{", "[")):
            try:
                # The strict parser: a JSON column with duplicate keys or floats is
                # kept as text (and refused by the schema), never read loosely.
                return parse_json(text, allow_floats=False)
            except JsonError:
                return text
        return text
    return value


class SqlSource:
    """Reads new rows of a table or view as item drafts (see the module docstring).

    Args:
        config: The validated ``[[source]]`` section.
        ctx: Site id, data folder and logger from the runner.
    """

    config_model: ClassVar[type[AdapterConfig]] = SqlSourceConfig

    def __init__(self, config: SqlSourceConfig, ctx: AdapterContext) -> None:
        self.config = config
        self.ctx = ctx
        self.conn: SqlConnection = open_connection(
            config.url,
            password=None,
            label=f"congress-exchange sql {config.name or config.table}",
        )
        c = config.columns
        wanted = [
            c.id,
            config.watermark,
            c.title,
            c.summary,
            c.created_at,
            c.tags,
            c.kind,
            c.text,
            c.body_json,
            *config.body.values(),
        ]
        self._columns: list[str] = []
        for col in wanted:
            if col and col not in self._columns:
                self._columns.append(col)
        for col in (*self._columns, config.table):
            self.conn.quote(col)  # refuse odd names before anything runs

    def _query(self, wm: Any, seen: list[Any]) -> tuple[str, list[Any]]:
        q, cfg, conn = self.conn.quote, self.config, self.conn
        wmc, idc = q(cfg.watermark), q(cfg.columns.id)
        args: list[Any] = []
        conds = [f"{wmc} IS NOT NULL"]
        if wm is not None:
            args.append(wm)
            p_wm = conn.param(len(args))
            if isinstance(conn, PgConnection):
                args.append(seen)
                tie = f"NOT ({idc} = ANY({conn.param(len(args))}))"
                conds.append(f"({wmc} > {p_wm} OR ({wmc} = {p_wm} AND {tie}))")
            else:
                args.append(wm)
                p_wm2 = conn.param(len(args))
                tie = "TRUE"
                if seen:
                    marks = []
                    for s in seen:
                        args.append(s)
                        marks.append(conn.param(len(args)))
                    tie = f"{idc} NOT IN ({', '.join(marks)})"
                conds.append(f"({wmc} > {p_wm} OR ({wmc} = {p_wm2} AND {tie}))")
        if cfg.where:
            extra = (
                cfg.where.replace("%", "%%")
                if args and conn.dialect == "mysql"
                else cfg.where
            )
            conds.append(f"({extra})")
        cols = ", ".join(q(c) for c in self._columns)
        sql = (
            f"SELECT {cols} FROM {q(cfg.table)} WHERE {' AND '.join(conds)} "
            f"ORDER BY {wmc}, {idc} LIMIT {cfg.batch}"
        )
        return sql, args

    def _fields(self, row: dict[str, Any]) -> DocumentFields:
        cfg, c = self.config, self.config.columns
        ref = f"{cfg.table} {c.id}={row[c.id]}"
        kind: str | None = None
        if c.kind:
            raw = _text(row.get(c.kind)).strip()
            kind = cfg.kind_values.get(raw, raw) or None
            if kind is not None and kind not in _KINDS:
                raise ShapeError(
                    f"{ref}: column {c.kind} says kind {raw!r}; map it in kind_values "
                    f"to one of {', '.join(_KINDS)}"
                )
        created = row.get(c.created_at) if c.created_at else row.get(cfg.watermark)
        if not c.created_at and not isinstance(created, (datetime, date)):
            created = None
        body: dict[str, Any] = {}
        if c.body_json:
            raw_body = _json_value(row.get(c.body_json))
            if raw_body not in (None, ""):
                if not isinstance(raw_body, dict):
                    raise ShapeError(
                        f"{ref}: column {c.body_json} is not a JSON object"
                    )
                body.update(raw_body)
        for path, col in cfg.body.items():
            value = row.get(col)
            body[path] = (
                value
                if isinstance(value, (datetime, date))
                else (_text(value) if value is not None else None)
            )
        tags = row.get(c.tags) if c.tags else None
        if tags is not None and not isinstance(tags, list):
            tags = _json_value(tags)
            if not isinstance(tags, (list, str)):
                tags = _text(tags)
        return DocumentFields(
            ref=ref,
            title=_text(row.get(c.title)),
            created_at=created
            if isinstance(created, (datetime, date))
            else _text(created),
            text=_text(row.get(c.text)) if c.text else None,
            summary=_text(row.get(c.summary)) if c.summary else None,
            tags=tags,
            kind=kind,
            body=body,
            match={col: _text(v) for col, v in row.items()},
        )

    async def poll(self, state: dict[str, Any]) -> Poll:
        """Read rows after the state's watermark.

        Raises:
            AdapterError: the database cannot be reached (retryable) or the query is
                wrong for this table (not retryable).
        """
        cfg = self.config
        wm_state = state.get("watermark")
        wm = _wm_load(wm_state) if isinstance(wm_state, dict) else None
        seen: list[Any] = list(state.get("seen", [])) if wm is not None else []
        sql, args = self._query(wm, seen)
        _load_password(self.conn, cfg.password_file, self.ctx)
        rows = await self.conn.fetch(sql, args)
        if not rows:
            return Poll([], dict(state))
        drafts: list[Draft] = []
        problems: list[str] = []
        for values in rows:
            row = dict(zip(self._columns, values, strict=True))
            try:
                fields = self._fields(row)
                item = shape_item(fields, cfg, self.ctx.site_id)
                check_item(item, fields.ref)
            except ShapeError as exc:
                problems.append(f"{exc}; row skipped")
                continue
            drafts.append(Draft(item=item, ref=fields.ref))
        wm_i, id_i = (
            self._columns.index(cfg.watermark),
            self._columns.index(cfg.columns.id),
        )
        last = rows[-1][wm_i]
        at_last = [_id_json(r[id_i]) for r in rows if r[wm_i] == last]
        if wm is not None and last == wm:
            at_last = seen + [i for i in at_last if i not in seen]
        return Poll(drafts, {"watermark": _wm_dump(last), "seen": at_last}, problems)

    async def close(self) -> None:
        """Close the connection."""
        await self.conn.close()


class SqlSink:
    """Writes received items into a table, one row per item id.

    Args:
        config: The validated ``[[sink]]`` section.
        ctx: Site id, data folder and logger from the runner.
    """

    config_model: ClassVar[type[AdapterConfig]] = SqlSinkConfig

    def __init__(self, config: SqlSinkConfig, ctx: AdapterContext) -> None:
        self.config = config
        self.ctx = ctx
        self.tz = parse_offset(config.timezone)
        self.conn: SqlConnection = open_connection(
            config.url,
            password=None,
            label=f"congress-exchange sql {config.name or config.table}",
        )
        cols = config.columns.model_dump()
        if not cols["item_id"]:
            raise AdapterError("sink columns.item_id must name the key column")
        self._fields = [f for f, col in cols.items() if col]
        self._names = [cols[f] for f in self._fields]
        for name in (*self._names, config.table):
            self.conn.quote(name)
        self._sql = self._insert_sql()
        self._types: list[str] | None = None
        self._ready = False

    def _insert_sql(self) -> str:
        q, conn = self.conn.quote, self.conn
        cols = ", ".join(q(n) for n in self._names)
        marks = ", ".join(conn.param(i + 1) for i in range(len(self._names)))
        key = q(self.config.columns.item_id)
        others = [q(n) for n in self._names if n != self.config.columns.item_id]
        head = f"INSERT INTO {q(self.config.table)} ({cols}) VALUES ({marks})"
        if conn.dialect == "mysql":
            if self.config.mode == "upsert" and others:
                sets = ", ".join(f"{c} = VALUES({c})" for c in others)
            else:
                sets = f"{key} = {key}"
            return f"{head} ON DUPLICATE KEY UPDATE {sets}"
        if self.config.mode == "upsert" and others:
            sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in others)
            return f"{head} ON CONFLICT ({key}) DO UPDATE SET {sets}"
        return f"{head} ON CONFLICT ({key}) DO NOTHING"

    def _create_sql(self) -> str:
        pg = self.conn.dialect == "postgresql"
        types = {
            "item_id": "text" if pg else "VARCHAR(71)",
            "log_index": "bigint" if pg else "BIGINT",
            "kind": "text" if pg else "VARCHAR(32)",
            "author": "text" if pg else "VARCHAR(64)",
            "title": "text" if pg else "VARCHAR(255)",
            "summary": "text" if pg else "TEXT",
            "created_at": "timestamptz" if pg else "DATETIME",
            "received_at": "timestamptz" if pg else "DATETIME(6)",
            "tags": "text" if pg else "TEXT",
            "body": "jsonb" if pg else "LONGTEXT",
            "signed": "jsonb" if pg else "LONGTEXT",
        }
        q = self.conn.quote
        defs = []
        for field, name in zip(self._fields, self._names, strict=True):
            extra = " PRIMARY KEY" if field == "item_id" else ""
            defs.append(f"{q(name)} {types[field]}{extra}")
        tail = "" if pg else " DEFAULT CHARSET=utf8mb4"
        table = q(self.config.table)
        return f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(defs)}){tail}"

    def _values(self, signed: dict[str, Any], envelope: dict[str, Any]) -> list[Any]:
        item = signed.get("item", {})
        raw: dict[str, Any] = {
            "item_id": envelope["id"],
            "log_index": envelope.get("index"),
            "kind": item.get("kind"),
            "author": item.get("author"),
            "title": item.get("title"),
            "summary": item.get("summary", ""),
            "created_at": datetime.fromisoformat(
                item["created_at"].replace("Z", "+00:00")
            ),
            "received_at": (
                datetime.fromisoformat(envelope["received_at"])
                if envelope.get("received_at")
                else None
            ),
            "tags": list(item.get("tags", [])),
            "body": item.get("body", {}),
            "signed": signed,
        }
        types = self._types or [""] * len(self._fields)
        return [
            self._convert(f, raw[f], t)
            for f, t in zip(self._fields, types, strict=True)
        ]

    def _convert(self, field: str, value: Any, pg_type: str) -> Any:
        if value is None:
            return None
        if isinstance(value, datetime):
            if pg_type == "timestamptz":
                return value
            if pg_type == "date":
                return value.astimezone(self.tz).date()
            if pg_type in ("text", "varchar"):
                return value.isoformat()
            return value.astimezone(self.tz).replace(tzinfo=None)
        if field == "tags":
            if pg_type.startswith("_"):
                return value
            if pg_type in ("json", "jsonb"):
                return json.dumps(value, ensure_ascii=False)
            return "、".join(value)
        if isinstance(value, (dict, list)):
            return json.dumps(value, ensure_ascii=False)
        if pg_type in ("text", "varchar") and not isinstance(value, str):
            return str(value)
        return value

    async def _table_exists(self) -> bool:
        # Checked first because MySQL answers CREATE TABLE IF NOT EXISTS on an
        # existing table with a warning, which aiomysql turns into a Python warning.
        schema, _, table = self.config.table.rpartition(".")
        if self.conn.dialect == "postgresql":
            sql = "SELECT to_regclass($1) IS NOT NULL"
            rows = await self.conn.fetch(sql, [self.conn.quote(self.config.table)])
            return bool(rows[0][0])
        rows = await self.conn.fetch(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_NAME = %s AND "
            + ("TABLE_SCHEMA = %s" if schema else "TABLE_SCHEMA = DATABASE()"),
            [table, schema] if schema else [table],
        )
        return bool(rows[0][0])

    async def _prepare(self) -> None:
        if self._ready:
            return
        _load_password(self.conn, self.config.password_file, self.ctx)
        if self.config.create_table and not await self._table_exists():
            await self.conn.execute(self._create_sql())
        if isinstance(self.conn, PgConnection):
            self._types = await self.conn.param_types(self._sql)
        self._ready = True

    async def deliver(self, signed: dict[str, Any], envelope: dict[str, Any]) -> None:
        """Insert (or upsert) the item's row; a second delivery changes nothing.

        Raises:
            AdapterError: retryable if the database is unreachable; not retryable if
                the table or a column is wrong.
        """
        await self._prepare()
        try:
            values = self._values(signed, envelope)
        except (KeyError, ValueError, TypeError) as exc:
            raise AdapterError(
                f"item {envelope.get('id')} cannot be stored: {exc}"
            ) from None
        try:
            await self.conn.execute(self._sql, values)
        except AdapterError as exc:
            if exc.retryable:
                self._ready = False  # re-check types after reconnecting
            raise

    async def close(self) -> None:
        """Close the connection."""
        await self.conn.close()
