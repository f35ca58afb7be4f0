"""The ``exchange`` command line.

Exit codes scripts can rely on:

====  ==========================================================
0     success
1     the operation failed or was refused (message says why)
2     usage error (bad arguments)
3     verification failed (``verify``: signature, schema or proof)
4     the node or database could not be reached
====  ==========================================================

Further subcommands arrive through the ``congress_exchange.cli`` entry-point group
(for example ``exchange adapter`` from the adapters package): each entry point is a
callable ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from datetime import datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

# The helpers every command uses live in exchange.commands._common (so that command
# modules never import this module, which imports them); re-exported here.
from exchange.commands._common import (
    EXIT_FAIL,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    EXIT_VERIFY,
    common_node_args,
    node_config,
    node_config_path,
    progress,
    say,
    with_node,
)
from exchange.config import load_config
from exchange.errors import (
    AuthError,
    ConfigError,
    ExchangeError,
    InputError,
    OperationalError,
    ProofError,
    SchemaError,
    VerificationError,
    diagnostics,
)
from schemas.errors import ErrorCode

__all__ = [
    "EXIT_FAIL",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "EXIT_VERIFY",
    "common_node_args",
    "item_files",
    "main",
    "node_config",
    "node_config_path",
    "progress",
    "say",
    "with_node",
]

_log = logging.getLogger("exchange.cli")


GC_YOUNG_THRESHOLD = 7000
"""Allocations between young-generation collections in a serving node (Python's
default is 700): requests allocate many short-lived containers."""


def _parse_json_bytes(data: bytes) -> Any:
    from exchange.core.canonical import parse_json

    return parse_json(data, allow_floats=False)


def _read_json_file(path: str) -> Any:
    if path != "-" and Path(path).is_dir():
        raise InputError(f"{path} is a folder; name a file", code=ErrorCode.BAD_REQUEST)
    return _parse_json_bytes(
        sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    )


def item_files(names: Sequence[str]) -> list[Path]:
    """Files named on the command line, with folders replaced by the ``*.json`` files in
    them (recursively, in name order; hidden files and ``sites.json`` are skipped).

    Raises:
        FileNotFoundError: a name that does not exist.
        InputError: a folder without any ``.json`` file.
    """
    out: list[Path] = []
    for name in names:
        path = Path(name)
        if path.is_dir():
            found = sorted(
                f
                for f in path.rglob("*.json")
                if f.is_file()
                and f.name != "sites.json"
                and not any(part.startswith(".") for part in f.relative_to(path).parts)
            )
            if not found:
                raise InputError(
                    f"{name}: the folder holds no .json files",
                    code=ErrorCode.BAD_REQUEST,
                )
            out.extend(found)
        elif name == "-" or path.is_file():
            out.append(path)
        else:
            raise FileNotFoundError(2, "No such file or directory", name)
    return out


def _write_json(obj: Any, out: str | None) -> None:
    text = json.dumps(obj, ensure_ascii=False, indent=2) + "\n"
    if out:
        Path(out).write_text(text, encoding="utf-8")
        say(f"wrote {out}")
    else:
        sys.stdout.write(text)


# -- keys ------------------------------------------------------------------------------
def cmd_keys_new(args: argparse.Namespace) -> int:
    from exchange.core.signing import generate_key, save_private_key

    key = generate_key(args.alg, args.key_id)
    save_private_key(key, Path(args.out))
    print(
        json.dumps(
            {"key_id": key.key_id, "alg": key.alg, "public_key": key.public_key.b64()}
        )
    )
    if key.key_id.partition("#")[0] == "roster":
        say(
            f"roster key written to {args.out} (mode 0600) — keep it offline with the roster operator"
        )
        say("pin it on every node, under [federation] in node.toml:")
        say(f'  roster_keys = ["{key.key_id} {key.alg} {key.public_key.b64()}"]')
        return EXIT_OK
    say(
        f"private key written to {args.out} (mode 0600) — keep it at the site, never share it"
    )
    alg = "" if key.alg == "ed25519" else f" --alg {key.alg}"
    say(
        f"register it on the node: exchange site key add {key.key_id.split('#')[0]} "
        f"--key-id {key.key_id}{alg} --public-key={key.public_key.b64()}"
    )
    return EXIT_OK


# -- node ------------------------------------------------------------------------------
_NODE_TOML = """\
# Congress Exchange node configuration ({region}).
# Every key can be overridden by an environment variable EXCHANGE_<SECTION>_<KEY>;
# EXCHANGE_DATABASE_URL, EXCHANGE_DATABASE_READ_URL, EXCHANGE_LISTEN and
# EXCHANGE_DATA_DIR are the usual ones.

[node]
id = "{region}"                  # lowercase slug, unique in the federation
name = "{name}"
base_url = "{base_url}"  # the URL peers and sites use to reach this node
data_dir = "{data_dir}"                # relative to this file; holds the node key and the
                                 # embedded PostgreSQL when database.url is empty
key_file = "node.key"            # relative to data_dir; mode 0600

[http]
listen = "{listen}"
max_body_bytes = 4194304         # largest request body (a batch of items)
max_batch = 500                  # most items per push
max_blob_bytes = 67108864        # largest attachment
signature_max_age = 300          # seconds a signed request stays valid
signature_max_skew = 30          # seconds of clock difference tolerated (keep clocks on NTP)

[database]
url = ""                         # empty: embedded PostgreSQL in data_dir/pg; with a
                                 # password, set EXCHANGE_DATABASE_URL instead of this line
read_url = ""                    # optional read replica for pulls
pool_min = 2
pool_max = 10

[limits]
max_depth = 32                   # JSON nesting bound
future_skew_seconds = 600        # how far created_at may be ahead of this node's clock

[log]
writer = true                    # compete for the log-writer lock (one writer per database)
checkpoint_interval_ms = 1000    # sign a checkpoint at most this often while the log grows

[federation]
roster_keys = []                 # pinned roster keys, "KEY_ID ALG PUBLIC_KEY" ('exchange roster sign' prints the line)
roster_file = ""                 # a signed roster installed at start if newer (or: exchange roster publish)

[ingest]
verify_processes = 2             # helper processes that check large pushes (about one per core; shared by --workers)
offload_min_bytes = 32768        # bodies this large are checked in a helper, smaller ones inline

[search]
indexer = true                   # build the search index behind the log (one process per database does)
indexer_process = true           # tokenize in a helper process, not on the event loop
fresh_wait_s = 3.0               # a search waits this long at most for the index to reach the log head
"""


def _default_base_url(listen: str) -> str:
    host, _, port = listen.rpartition(":")
    if host.strip("[]") in ("0.0.0.0", "::", ""):
        import socket

        host = socket.getfqdn()
    return f"http://{host}:{port}"


def cmd_node_init(args: argparse.Namespace) -> int:
    from exchange.core.signing import generate_key, load_private_key, save_private_key

    folder = Path(args.dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    cfg_path = folder / "node.toml"
    if cfg_path.exists() and not args.force:
        raise ConfigError(f"{cfg_path} already exists; use --force to overwrite it")
    cfg_path.write_text(
        _NODE_TOML.format(
            region=args.region,
            name=args.name or args.region,
            listen=args.listen,
            base_url=args.base_url or _default_base_url(args.listen),
            data_dir=args.data_dir or "data",
        ),
        encoding="utf-8",
    )
    if args.roster_key:
        from exchange.commands.roster import write_pin

        for entry in args.roster_key:
            write_pin(cfg_path, entry)
    cfg = load_config(cfg_path)
    cfg.data_path.mkdir(parents=True, exist_ok=True)
    if not cfg.key_path.exists():
        save_private_key(generate_key(key_id=f"{args.region}#k1"), cfg.key_path)
    key = load_private_key(cfg.key_path)
    say(f"wrote {cfg_path} and node key {cfg.key_path} (mode 0600; back it up offline)")
    say(
        f"node key {key.key_id} {key.alg} {key.public_key.b64()} (for the roster: "
        f"exchange roster add-node ... --node-key {cfg.key_path})"
    )
    say(f"check it: exchange doctor --config {cfg_path}")
    say(f"start it: exchange node up --config {cfg_path}")
    return EXIT_OK


def cmd_node_up(args: argparse.Namespace) -> int:
    from aiohttp import web

    from exchange.http.app import make_app
    from exchange.http.guard import (
        ConnectionLimits,
        GuardedSite,
        raise_fd_limit,
        runner_options,
    )
    from exchange.logs import configure_logging
    from exchange.node import Node

    # A running node logs JSON lines (request ids, no secrets); the CLI stays plain text.
    configure_logging(
        json_lines=True, level=logging.DEBUG if args.verbose else logging.INFO
    )
    cfg = node_config(args)
    raise_fd_limit()  # connections are capped below it (exchange/http/guard.py)
    if getattr(args, "workers", 1) > 1:  # supervisor of N workers (exchange/workers.py)
        from exchange.workers import Supervisor

        given = (
            ("--config", args.config),
            ("--listen", args.listen),
            (
                "--data-dir",
                str(Path(args.data_dir).resolve()) if args.data_dir else None,
            ),
        )
        argv = [x for flag, value in given if value for x in (flag, value)]
        return Supervisor(cfg, args.workers, argv).run()
    worker = getattr(args, "worker", None)

    async def run() -> int:
        # One exit stack: whatever was started (embedded PostgreSQL, pools, loops, the
        # listener) is stopped again when anything later fails (a bad roster, a port in use).
        async with contextlib.AsyncExitStack() as stack:
            node = await stack.enter_async_context(
                Node(cfg, workers=getattr(args, "worker_count", 1) or 1)
            )
            runner = web.AppRunner(
                make_app(node),
                access_log=None,
                shutdown_timeout=5,
                **runner_options(cfg.http),
            )
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            host, port = cfg.listen_host_port
            site = GuardedSite(
                runner,
                host,
                port,
                reuse_address=True,
                reuse_port=worker is not None,
                limits=ConnectionLimits.from_config(cfg.http),
            )
            try:
                await site.start()
            except OSError as exc:
                raise ConfigError(
                    f"无法监听 {host}:{port} / cannot listen on {host}:{port}: {exc.strerror or exc}; "
                    "stop the program using it or change http.listen"
                ) from None
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            settle_garbage_collector()
            say(
                f"节点 {node.id} 已启动 / node {node.id}{f' worker {worker}' if worker else ''} listening on http://{host}:{port} "
                f"(database: {'embedded PostgreSQL in ' + str(cfg.data_path / 'pg') if node.embedded else 'external'})"
            )
            await stop.wait()
            say("stopping…")
        return EXIT_OK

    return _run_loop(run())


def settle_garbage_collector() -> None:
    """Once the node serves: move everything built while starting (modules, schemas,
    compiled patterns, the app) out of the collector's sight and collect the young
    generation less often. A full collection then scans only what requests left
    behind: under load the default settings cost a few percent of the CPU and stalled
    every request for tens of milliseconds at each full collection (a p99 cost)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


def _run_loop(coro: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def cmd_migrate(args: argparse.Namespace) -> int:
    async def fn(node: Any) -> int:
        say("database schema is up to date")
        return EXIT_OK

    return with_node(args, fn)


# -- sites and monitors ---------------------------------------------------------------
def cmd_site_add(args: argparse.Namespace) -> int:
    async def fn(node: Any) -> int:
        home = args.home or node.id
        # The installed roster is the single source of circles (refused if contradicted).
        circles = node.federation.check_site(args.site, home, args.circle or [])
        await node.sites.add_site(args.site, args.name, home, circles)
        say(
            f"site {args.site} ({args.name}) registered, circles: {', '.join(circles) or '-'}"
        )
        return EXIT_OK

    return with_node(args, fn)


def cmd_site_key_add(args: argparse.Namespace) -> int:
    from exchange.core.signing import (
        b64u_decode,
        normalize_public_key,
        parse_key_id,
        suite,
    )

    owner, _ = parse_key_id(args.key_id)
    if owner != args.site:
        raise ConfigError(f"key id {args.key_id} does not belong to site {args.site}")
    try:
        raw = b64u_decode(args.public_key)
    except ValueError:
        raise ConfigError(
            "--public-key must be base64url (as printed by 'exchange keys new')"
        ) from None
    try:  # accepts other encodings where the suite has them (SM2: 04||x||y, DER SPKI)
        raw = normalize_public_key(args.alg, raw)
    except ValueError as exc:
        raise ConfigError(
            f"--public-key is not an {args.alg} public key "
            f"({suite(args.alg).public_key_size} bytes): {exc}"
        ) from None
    valid_from = datetime.fromisoformat(args.valid_from) if args.valid_from else None

    async def fn(node: Any) -> int:
        await node.sites.add_key(args.key_id, args.site, args.alg, raw, valid_from)
        say(f"key {args.key_id} added to {args.site}")
        return EXIT_OK

    return with_node(args, fn)


def cmd_site_key_revoke(args: argparse.Namespace) -> int:
    at = datetime.fromisoformat(args.at) if args.at else None

    async def fn(node: Any) -> int:
        when = await node.sites.revoke_key(args.key_id, at)
        say(
            f"key {args.key_id} revoked from {when.isoformat()}; items it signed before stay valid"
        )
        return EXIT_OK

    return with_node(args, fn)


def cmd_site_list(args: argparse.Namespace) -> int:
    from exchange.wire import site_json

    async def fn(node: Any) -> int:
        sites = await node.sites.list_sites()
        _write_json({"sites": [site_json(s) for s in sites]}, None)
        return EXIT_OK

    return with_node(args, fn)


def cmd_monitor_add(args: argparse.Namespace) -> int:
    import secrets

    token = secrets.token_urlsafe(32)

    async def fn(node: Any) -> int:
        await node.sites.add_monitor(
            args.monitor, args.name, token, args.circle or [], args.site or []
        )
        print(token)
        say(
            f"monitor {args.monitor} registered; the token above is shown once — hand it over "
            "securely (an earlier token of this monitor and its dashboard sessions no longer work)"
        )
        return EXIT_OK

    return with_node(args, fn)


def cmd_monitor_list(args: argparse.Namespace) -> int:
    from exchange.commands._table import render

    async def fn(node: Any) -> int:
        rows = [
            [
                m["id"],
                m["name"],
                ",".join(m["circles"]) or "-",
                ",".join(m["sites"]) or "-",
                m["created_at"].date().isoformat(),
                f"吊销 revoked {m['revoked_at'].date().isoformat()}"
                if m["revoked_at"]
                else "有效 active",
                str(m["sessions"]),
            ]
            for m in await node.sites.list_monitors()
        ]
        print(
            render(
                [
                    "监督方 monitor",
                    "名称 name",
                    "圈 circles",
                    "站点 sites",
                    "登记 added",
                    "状态 state",
                    "会话 sessions",
                ],
                rows,
                right=[6],
            )
        )
        return EXIT_OK

    return with_node(args, fn)


def cmd_monitor_revoke(args: argparse.Namespace) -> int:
    async def fn(node: Any) -> int:
        if not await node.sites.revoke_monitor(args.monitor):
            say(f"error: no active monitor {args.monitor}; see: exchange monitor list")
            return EXIT_FAIL
        say(
            f"监督令牌已吊销 / monitor {args.monitor} revoked: its token and every dashboard "
            "session made with it no longer work"
        )
        return EXIT_OK

    return with_node(args, fn)


# -- items -----------------------------------------------------------------------------
def cmd_item_new(args: argparse.Namespace) -> int:
    from exchange.templates import blank

    plan = _read_json_file(args.plan) if args.plan else None
    try:
        doc = blank(args.kind, args.author, args.partner, plan=plan, action=args.action)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    _write_json(doc, args.out)
    target = args.out or "FILE"
    say(
        f"模板已生成：请替换所有 <填写…> / replace every <填写…> with your content, then: "
        f"exchange item sign {target} --key KEYFILE --out {Path(target).stem}.signed.json"
    )
    return EXIT_OK


def cmd_item_sign(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from exchange.core.items import schema_error, sign_item
    from exchange.core.placeholders import refuse_placeholders
    from exchange.core.signing import load_private_key
    from schemas.items import ITEM_ADAPTER

    key = load_private_key(Path(args.key))
    item = _read_json_file(args.file)
    if isinstance(item, dict) and set(item) == {"item", "sig"}:
        item = item["item"]
    refuse_placeholders(item)
    try:
        ITEM_ADAPTER.validate_python(item)
    except ValidationError as exc:
        raise schema_error(exc, "item") from None
    try:
        signed = sign_item(item, key)
    except (
        VerificationError
    ) as err:  # a key of another site: a refusal, not a bad signature
        say(f"{diagnostics(err)}; sign with a key of {item.get('author')!r}")
        return EXIT_FAIL
    _write_json(signed, args.out)
    return EXIT_OK


# A push request stays under the node's default body limit (http.max_body_bytes, 4 MB).
_PUSH_BATCH_ITEMS, _PUSH_BATCH_BYTES = 500, 3 * 1024 * 1024


def _push_chunks(docs: list[tuple[str, Any, int]]) -> list[list[tuple[str, Any, int]]]:
    chunks: list[list[tuple[str, Any, int]]] = [[]]
    size = 0
    for entry in docs:
        if chunks[-1] and (
            len(chunks[-1]) >= _PUSH_BATCH_ITEMS or size + entry[2] > _PUSH_BATCH_BYTES
        ):
            chunks.append([])
            size = 0
        chunks[-1].append(entry)
        size += entry[2]
    return [c for c in chunks if c]


def cmd_push(args: argparse.Namespace) -> int:
    from exchange.client import ExchangeClient
    from exchange.core.signing import load_private_key
    from exchange.errors import TooLarge

    key = load_private_key(Path(args.key))
    docs: list[tuple[str, Any, int]] = []
    for path in item_files(args.files):
        name = str(path)
        raw = sys.stdin.buffer.read() if name == "-" else path.read_bytes()
        doc = _parse_json_bytes(raw)
        if not (isinstance(doc, dict) and set(doc) == {"item", "sig"}):
            raise SchemaError(
                f"{name} is not a signed item; sign it first: exchange item sign {name} --key KEY"
            )
        docs.append((name, doc, len(raw)))
    counts = {"accepted": 0, "duplicate": 0, "refused": 0}

    def refused(name: str, code: str, message: str) -> None:
        counts["refused"] += 1
        print(f"{name}\trefused\t{code}: {message}")

    async def send(client: ExchangeClient, chunk: list[tuple[str, Any, int]]) -> None:
        try:
            results = (await client.push_batch([d for _, d, _ in chunk]))["results"]
        except TooLarge as err:
            if len(chunk) > 1:  # the node's limit is lower than ours: halve and retry
                await send(client, chunk[: len(chunk) // 2])
                await send(client, chunk[len(chunk) // 2 :])
                return
            name, _, size = chunk[0]
            refused(
                name,
                err.code.value,
                f"this one item is {size / 1e6:.1f} MB, more than the node accepts in a "
                "request; move large content (documents, scans) into attachments "
                "(blobs, PUT /v1/blobs/{sha256}) and keep the item's text short",
            )
            return
        for (name, _, _), res in zip(chunk, results, strict=True):
            if res["status"] == "refused":
                refused(name, res["error"]["code"], res["error"]["message"])
            else:
                counts[res["status"]] = counts.get(res["status"], 0) + 1
                print(f"{name}\t{res['status']}\t{res['id']}\tindex {res['index']}")

    async def run() -> int:
        done = 0
        async with ExchangeClient(args.node, key=key) as client:
            for chunk in _push_chunks(docs):
                await send(client, chunk)
                done += len(chunk)
                progress(done, len(docs), "sent")
        summary = ", ".join(f"{n} {what}" for what, n in counts.items() if n)
        say(f"{len(docs)} item(s): {summary}")
        return EXIT_FAIL if counts["refused"] else EXIT_OK

    return asyncio.run(run())


def cmd_pull(args: argparse.Namespace) -> int:
    import orjson

    from exchange.client import ExchangeClient
    from exchange.core.signing import load_private_key

    key = load_private_key(Path(args.key))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / ".cursor.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    cursor = int(state.get(args.node, -1)) if not args.from_start else -1
    filters = {
        k: v
        for k, v in (("kind", args.kind), ("author", args.author), ("tag", args.tag))
        if v
    }

    def save_cursor(c: int) -> None:
        state[args.node] = c
        tmp = state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, state_path)

    async def run() -> int:
        n = 0
        async with ExchangeClient(args.node, key=key) as client:
            sites = await client.sites()
            (out / "sites.json").write_text(
                json.dumps({"sites": sites}, ensure_ascii=False, indent=2),
                encoding="utf-8",
            )
            nonlocal cursor
            while True:
                page = await client.list_items(cursor, limit=200, **filters)
                for env in page["items"]:
                    name = f"{env['index']:08d}-{env['id'][7:19]}.json"
                    data = orjson.dumps(env["signed"])
                    tmp = out / (name + ".tmp")
                    tmp.write_bytes(data)
                    os.replace(tmp, out / name)
                    n += 1
                    cursor = env["index"]
                if page["items"]:
                    save_cursor(cursor)
                    progress(n, None, "pulled")
                if page.get("next_cursor") is None:
                    break
        say(f"pulled {n} new item(s) into {out} (cursor {cursor})")
        return EXIT_OK

    return asyncio.run(run())


def cmd_verify(args: argparse.Namespace) -> int:
    from exchange.verify import verify_bundle, verify_path

    ok, checked = True, 0
    files: list[str] = []
    for name in args.files:
        if Path(name).is_dir() and (Path(name) / "manifest.json").is_file():  # a bundle
            report = verify_bundle(
                Path(name), progress=lambda d, t: progress(d, t, "verified")
            )
            for line in report.lines:
                print(line)
            ok, checked = ok and report.ok, checked + 1
        else:
            files.append(name)
    paths = [
        p
        for name in files
        for p in (item_files([name]) if Path(name).is_dir() else [Path(name)])
    ]
    failed = 0
    for path in paths:
        report = verify_path(
            path,
            sites_file=Path(args.sites) if args.sites else None,
            public_key=args.public_key,
        )
        if len(paths) > 1:
            print(f"== {path}")
        for line in report.lines:
            print(line)
        failed += 0 if report.ok else 1
    if len(paths) > 1:
        say(
            f"{len(paths)} item file(s) checked: {len(paths) - failed} ok, {failed} failed"
        )
    return EXIT_OK if ok and not failed else EXIT_VERIFY


# -- parser ----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (plugins included)."""
    from exchange.core.signing import suites
    from exchange.templates import KIND_NAMES, PLAN_ACTIONS

    parser = argparse.ArgumentParser(
        prog="exchange",
        description="Congress Exchange — 人大常委会工作交流平台: signed case studies, joint "
        "inspection plans and lessons between county people's congresses.",
        epilog="Exit codes: 0 ok, 1 failed/refused, 2 usage, 3 verification failed, "
        "4 node or database unreachable. 'exchange COMMAND --help' explains each command.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    keys = sub.add_parser("keys", help="make signing keys").add_subparsers(
        dest="sub", required=True
    )
    p = keys.add_parser(
        "new", help="generate a private key file (mode 0600) and print the public key"
    )
    p.add_argument("--key-id", required=True, help="key id, e.g. huaibei-duji#k1")
    p.add_argument(
        "--out", required=True, metavar="FILE", help="where to write the private key"
    )
    p.add_argument("--alg", default="ed25519", choices=suites(), help="signature suite")
    p.set_defaults(func=cmd_keys_new)

    node = sub.add_parser("node", help="set up and run a node").add_subparsers(
        dest="sub", required=True
    )
    p = node.add_parser("init", help="write a commented node.toml and a node key")
    p.add_argument(
        "--region", required=True, help="node id, e.g. huaihai or yangtze-delta"
    )
    p.add_argument("--name", default="", help="display name, e.g. 淮海经济区节点")
    p.add_argument("--dir", default=".", help="folder for node.toml (default: current)")
    p.add_argument("--listen", default="127.0.0.1:8700", help="HOST:PORT to listen on")
    p.add_argument(
        "--base-url", help="URL peers and sites use (default: from --listen)"
    )
    p.add_argument(
        "--data-dir",
        help="data folder (default: data/ beside node.toml), "
        "e.g. /var/lib/congress-exchange",
    )
    p.add_argument(
        "--force", action="store_true", help="overwrite an existing node.toml"
    )
    p.add_argument(
        "--roster-key",
        action="append",
        metavar="'KEY_ID ALG PUBLIC_KEY'",
        help="pin this roster key (repeatable; as 'exchange roster sign' prints it)",
    )
    p.set_defaults(func=cmd_node_init)
    p = node.add_parser(
        "up",
        help="run the node (embedded PostgreSQL unless EXCHANGE_DATABASE_URL is set)",
    )
    common_node_args(p)
    p.add_argument("--listen", metavar="HOST:PORT", help="override http.listen")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        choices=range(1, 65),
        metavar="N",
        help="run N worker processes sharing HOST:PORT (SO_REUSEPORT) and the "
        "database; one of them writes the log (default 1)",
    )
    p.add_argument(
        "--worker", type=int, help=argparse.SUPPRESS
    )  # set by the supervisor
    p.add_argument("--worker-count", type=int, default=1, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_node_up)

    p = sub.add_parser(
        "demo",
        help="run a two-node demo federation (huaihai + yangtze-delta) with "
        "demo sites and items on one embedded PostgreSQL",
    )
    p.add_argument(
        "--data-dir",
        default="demo-data",
        help="folder for the demo (default: demo-data)",
    )
    p.add_argument(
        "--listen",
        default="127.0.0.1:8700",
        help="HOST:PORT of the huaihai node; yangtze-delta uses PORT+1 (default 127.0.0.1:8700)",
    )
    p.set_defaults(
        func=lambda a: __import__("exchange.demo", fromlist=["run_demo"]).run_demo(
            Path(a.data_dir), a.listen
        )
    )

    p = sub.add_parser("migrate", help="apply database migrations and exit")
    common_node_args(p)
    p.set_defaults(func=cmd_migrate)

    site = sub.add_parser(
        "site", help="register sites and their keys (operator, on the node host)"
    )
    ssub = site.add_subparsers(dest="sub", required=True)
    p = ssub.add_parser("add", help="register or update a site")
    p.add_argument("site", help="site id, e.g. huaibei-duji")
    p.add_argument(
        "--name", required=True, help="display name, e.g. 淮北市杜集区人大常委会"
    )
    p.add_argument("--circle", action="append", help="circle membership (repeatable)")
    p.add_argument("--home", help="home node id (default: this node)")
    common_node_args(p)
    p.set_defaults(func=cmd_site_add)
    p = ssub.add_parser("list", help="print the sites and keys as JSON")
    common_node_args(p)
    p.set_defaults(func=cmd_site_list)
    key = ssub.add_parser("key", help="add or revoke a site key").add_subparsers(
        dest="subsub", required=True
    )
    p = key.add_parser("add", help="add a public key to a site")
    p.add_argument("site")
    p.add_argument("--key-id", required=True, help="e.g. huaibei-duji#k2")
    p.add_argument(
        "--public-key",
        required=True,
        help="base64url public key from 'exchange keys new'; write --public-key=KEY "
        "(a key may start with '-')",
    )
    p.add_argument("--alg", default="ed25519", choices=suites())
    p.add_argument(
        "--valid-from", help="ISO 8601 time the key becomes valid (default: now)"
    )
    common_node_args(p)
    p.set_defaults(func=cmd_site_key_add)
    p = key.add_parser(
        "revoke", help="revoke a key: new items signed with it are refused"
    )
    p.add_argument("key_id")
    p.add_argument("--at", help="ISO 8601 revocation time (default: now)")
    common_node_args(p)
    p.set_defaults(func=cmd_site_key_revoke)

    mon = sub.add_parser("monitor", help="read-only monitor tokens").add_subparsers(
        dest="sub", required=True
    )
    p = mon.add_parser("add", help="register a monitor and print its bearer token once")
    p.add_argument("monitor", help="monitor id, e.g. huaibei-municipal")
    p.add_argument("--name", required=True)
    p.add_argument("--circle", action="append", help="circles in scope (repeatable)")
    p.add_argument("--site", action="append", help="sites in scope (repeatable)")
    common_node_args(p)
    p.set_defaults(func=cmd_monitor_add)
    p = mon.add_parser(
        "list", help="list monitors, their scope and live sessions (never tokens)"
    )
    common_node_args(p)
    p.set_defaults(func=cmd_monitor_list)
    p = mon.add_parser(
        "revoke", help="revoke a monitor's token and end its dashboard sessions"
    )
    p.add_argument("monitor")
    common_node_args(p)
    p.set_defaults(func=cmd_monitor_revoke)

    item = sub.add_parser("item", help="write and sign items").add_subparsers(
        dest="sub", required=True
    )
    p = item.add_parser(
        "new",
        help="print an item template to fill in (every <填写…>)",
        description="Kinds: " + "; ".join(f"{k} = {v}" for k, v in KIND_NAMES.items()),
    )
    p.add_argument("--kind", required=True, choices=list(KIND_NAMES))
    p.add_argument("--author", required=True, help="authoring site id (your site)")
    p.add_argument(
        "--partner",
        help="partner site id where the kind names participants "
        "(default: a placeholder to fill in)",
    )
    p.add_argument(
        "--plan",
        metavar="FILE",
        help="for a plan step: the plan (signed or not); "
        "the step names it and copies its audience",
    )
    p.add_argument(
        "--action",
        choices=PLAN_ACTIONS,
        help="for --kind plan_update: the step (default approve); see "
        "docs/joint-inspections.md",
    )
    p.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    p.set_defaults(func=cmd_item_new)
    p = item.add_parser("sign", help="check an item against the schema and sign it")
    p.add_argument("file", help="item JSON file ('-' for stdin)")
    p.add_argument(
        "--key", required=True, metavar="FILE", help="the site's private key file"
    )
    p.add_argument(
        "--out", metavar="FILE", help="write the signed item here (default: stdout)"
    )
    p.set_defaults(func=cmd_item_sign)

    p = sub.add_parser(
        "push", help="push signed item files (or folders of them) to a node"
    )
    p.add_argument(
        "files", nargs="+", metavar="PATH", help="signed item files or folders"
    )
    p.add_argument("--node", required=True, help="node URL, e.g. http://127.0.0.1:8700")
    p.add_argument(
        "--key",
        required=True,
        metavar="FILE",
        help="the site's private key file (signs the requests)",
    )
    p.set_defaults(func=cmd_push)

    p = sub.add_parser(
        "pull", help="pull new items as files, resuming from the saved cursor"
    )
    p.add_argument("--node", required=True)
    p.add_argument("--key", required=True, metavar="FILE")
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="folder for item files, sites.json and the cursor",
    )
    p.add_argument("--kind")
    p.add_argument("--author")
    p.add_argument("--tag")
    p.add_argument("--from-start", action="store_true", help="ignore the saved cursor")
    p.set_defaults(func=cmd_pull)

    p = sub.add_parser(
        "verify",
        help="check a signed item file, or an export bundle, offline",
        description="For an item file: checks the schema and the signature; the public "
        "key comes from --public-key, --sites, or sites.json beside the file (written by "
        "'exchange pull'). For a bundle folder (from 'exchange export'): checks every "
        "signature, leaf and inclusion proof and the checkpoint signature.",
    )
    p.add_argument(
        "files",
        nargs="+",
        metavar="PATH",
        help="item files, folders of item files, or export bundle folders",
    )
    p.add_argument(
        "--sites", metavar="FILE", help="a site directory (GET /v1/sites output)"
    )
    p.add_argument(
        "--public-key", metavar="B64", help="the signer's public key, base64url"
    )
    p.set_defaults(func=cmd_verify)

    from exchange.commands import command_modules

    for module in command_modules():
        module.register(sub)
    for ep in entry_points(group="congress_exchange.cli"):
        try:
            ep.load()(sub)
        except Exception as exc:  # a broken plugin must not break the CLI
            _log.warning("CLI plugin %s failed to load: %s", ep.name, exc)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``exchange`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    node_url = getattr(args, "node", None)
    if isinstance(node_url, str) and "://" not in node_url:
        parser.error(
            f"--node {node_url}: give the node's URL with its scheme, "
            f"e.g. --node http://{node_url}"
        )
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        code: int = args.func(args)
        return code
    except (VerificationError, ProofError) as err:
        say(diagnostics(err))
        return EXIT_VERIFY
    except (OperationalError, AuthError) as err:
        say(diagnostics(err))
        return EXIT_UNREACHABLE if isinstance(err, OperationalError) else EXIT_FAIL
    except ExchangeError as err:
        say(diagnostics(err))
        return EXIT_FAIL
    except FileNotFoundError as err:
        say(f"error: no such file: {err.filename}")
        return EXIT_FAIL
    except IsADirectoryError as err:
        say(f"error: {err.filename} is a folder; name a file")
        return EXIT_FAIL
    except PermissionError as err:
        say(f"error: permission denied: {err.filename}")
        return EXIT_FAIL
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # a bug: one line for the user, the traceback with -v
        if args.verbose:
            raise
        say(
            f"error[internal]: {type(err).__name__}: {err} (run with -v for the details)"
        )
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
