"""``exchange roster new|add-node|add-circle|sign|publish|show``: the federation roster.

The roster is the federation's trust root (:mod:`exchange.core.roster`). Its operator
keeps an unsigned **draft** (plain JSON, reviewable in version control), signs it with
the roster key, and every node installs the signed file::

    exchange keys new --key-id roster#k1 --out roster.key
    exchange roster new --federation congress-exchange --out roster.json
    exchange roster add-node roster.json --id huaihai --url http://10.0.0.5:8700 \\
        --node-key huaihai/data/node.key --site huaibei-duji --site xuzhou-tongshan
    exchange roster add-node roster.json --id yangtze-delta \\
        --url http://10.0.0.6:8700 --public-key=<B64> --site suzhou-wuzhong
    exchange roster add-circle roster.json --id huaihai --name 淮海经济区 \\
        --member huaibei-duji --member xuzhou-tongshan
    exchange roster sign roster.json --key roster.key --out roster.signed.json
    exchange roster publish roster.signed.json --config node.toml   # on every node

Every edit validates the whole draft with :class:`schemas.roster.Roster`, so a mistake
(unknown circle member, a site with two homes, a bad URL) is reported at once, naming
the field. ``sign`` stamps ``issued_at`` and the version, then moves the draft's version
one up so the next signature is always newer than the last.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from exchange.commands._common import (
    EXIT_FAIL,
    EXIT_OK,
    common_node_args,
    say,
    with_node,
)
from exchange.errors import ConfigError, SchemaError, VerificationError
from schemas.errors import ErrorCode

from ._table import render

__all__ = ["pin_line", "register", "write_pin"]


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def pin_line(key_id: str, alg: str, public_key_b64: str) -> str:
    """The ``node.toml`` line that pins a roster key (under ``[federation]``).

    Args:
        key_id: The roster key's id, e.g. ``roster#k1``.
        alg: Its suite, e.g. ``ed25519``.
        public_key_b64: The raw public key, base64url.
    """
    return f'roster_keys = ["{key_id} {alg} {public_key_b64}"]'


def _split_comment(line: str) -> tuple[str, str]:
    """A TOML line's value part and its comment (a ``#`` outside quoted strings)."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote and line[i - 1] != "\\":
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i], line[i + 1 :]
    return line, ""


def write_pin(cfg_path: Path, entry: str) -> bool:
    """Pin a roster key in ``node.toml``: add ``entry`` (``"KEY_ID ALG PUBLIC_KEY"``) to
    ``[federation] roster_keys``, keeping the rest of the file as it is.

    Returns:
        False if the key was already pinned.

    Raises:
        ConfigError: the entry is malformed, or ``roster_keys`` spans several lines.
    """
    import re
    import tomllib

    from exchange.federation.service import parse_pinned_keys

    entry = " ".join(entry.split())
    parse_pinned_keys([entry])
    text = cfg_path.read_text(encoding="utf-8") if cfg_path.exists() else ""
    pins = list(tomllib.loads(text).get("federation", {}).get("roster_keys", []))
    if entry in pins:
        return False
    pins.append(entry)
    value = (
        "roster_keys = ["
        + ", ".join(json.dumps(x, ensure_ascii=False) for x in pins)
        + "]"
    )
    lines = text.splitlines()
    section = ""
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped
            continue
        if section == "[federation]" and re.match(r"roster_keys\s*=", stripped):
            head, comment = _split_comment(line)
            if head.count("[") != head.count("]"):
                raise ConfigError(
                    f"{cfg_path}: roster_keys spans several lines; add "
                    f"{json.dumps(entry)} to it by hand"
                )
            lines[i] = value + (f"  #{comment}" if comment else "")
            break
    else:
        if "[federation]" in (x.strip() for x in lines):
            lines.insert([x.strip() for x in lines].index("[federation]") + 1, value)
        else:
            lines += ["", "[federation]", value]
    cfg_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return True


def _pin(args: argparse.Namespace) -> int:
    from exchange.commands._common import node_config_path

    path = node_config_path(args)
    entry = f"{args.key_id} {args.alg} {args.public_key}"
    if write_pin(path, entry):
        say(f"已固定名册密钥 / pinned roster key {args.key_id} in {path}")
    else:
        say(f"roster key {args.key_id} was already pinned in {path}")
    return EXIT_OK


# -- files -----------------------------------------------------------------------------
def _load(path: str) -> dict[str, Any]:
    from exchange.core.canonical import parse_json
    from exchange.errors import InputError

    data = Path(path).read_bytes()
    try:
        obj = parse_json(data, allow_floats=False)
    except InputError as exc:
        raise SchemaError(f"{path}: not valid JSON: {exc.message}") from None
    if not isinstance(obj, dict):
        raise SchemaError(f"{path}: a roster is a JSON object")
    return obj


def _is_signed(obj: dict[str, Any]) -> bool:
    return set(obj) == {"document", "sig"}


def _load_draft(path: str) -> dict[str, Any]:
    obj = _load(path)
    if _is_signed(obj):
        raise SchemaError(
            f"{path} is a signed roster; edit the unsigned draft it was signed from "
            "(exchange roster new makes one)"
        )
    return obj


def _save(path: str, doc: dict[str, Any]) -> None:
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(
        json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    os.replace(tmp, target)


def _field_error(exc: ValidationError, where: str) -> SchemaError:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = str(first["msg"]).removeprefix("Value error, ")
    return SchemaError(f"{where}: {loc + ': ' if loc else ''}{msg}")


def _validate(doc: dict[str, Any], where: str) -> Any:
    from schemas.roster import Roster

    try:
        return Roster.model_validate(doc)
    except ValidationError as exc:
        raise _field_error(exc, where) from None


# -- new / add-node / add-circle -------------------------------------------------------
def _new(args: argparse.Namespace) -> int:
    from pydantic import TypeAdapter

    from schemas import FederationId

    out = Path(args.out)
    if out.exists() and not args.force:
        raise ConfigError(
            f"{out} already exists; use --force to start a new draft over it"
        )
    doc: dict[str, Any] = {
        "federation": args.federation,
        "version": 1,
        "issued_at": _now(),
        "nodes": [],
        "circles": [],
        "monitors": [],
    }
    try:
        TypeAdapter(FederationId).validate_python(args.federation)
    except ValidationError as exc:
        raise _field_error(exc, "--federation") from None
    _save(args.out, doc)
    say(
        f"wrote draft roster {args.out} (federation {args.federation}, version 1); "
        f"next: exchange roster add-node {args.out} --id NODE --url URL --node-key "
        "FILE --site SITE"
    )
    return EXIT_OK


def _public_key(args: argparse.Namespace) -> tuple[str, str, str]:
    """(key_id, alg, base64url public key) from --public-key or --node-key."""
    from exchange.core.signing import b64u_decode, suite

    alg, key_id, pub = args.alg, args.key_id, args.public_key
    if args.node_key:
        try:
            body = json.loads(Path(args.node_key).read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("public_key"), str):
            raise ConfigError(
                f"{args.node_key} is not a key file (one written by "
                "'exchange node init' or 'exchange keys new')"
            )
        pub, alg = body["public_key"], str(body.get("alg") or alg)
        key_id = key_id or str(body.get("key_id") or "")
    key_id = key_id or f"{args.id}#k1"
    if key_id.partition("#")[0] != args.id:
        raise ConfigError(
            f"key id {key_id} does not belong to node {args.id}; "
            f"a node key id is '{args.id}#kN' (use --key-id)"
        )
    try:
        raw = b64u_decode(pub)
        size = suite(alg).public_key_size
    except ValueError as exc:
        raise ConfigError(f"node {args.id}: public key: {exc}") from None
    if len(raw) != size:
        raise ConfigError(
            f"node {args.id}: the public key is {len(raw)} bytes; "
            f"an {alg} public key has {size}"
        )
    return key_id, alg, pub


def _add_node(args: argparse.Namespace) -> int:
    from schemas.roster import NodeEntry

    doc = _load_draft(args.file)
    nodes = [n for n in doc.get("nodes", []) if isinstance(n, dict)]
    if any(n.get("id") == args.id for n in nodes) and not args.replace:
        raise SchemaError(
            f"node {args.id} is already in {args.file}; "
            "use --replace to replace its entry"
        )
    key_id, alg, pub = _public_key(args)
    entry = {
        "id": args.id,
        "base_url": args.url.rstrip("/"),
        "keys": [
            {
                "key_id": key_id,
                "alg": alg,
                "public_key": pub,
                "valid_from": args.valid_from or _now(),
            }
        ],
        "sites": list(args.site or []),
        "circles": list(args.circle or []),
    }
    try:
        NodeEntry.model_validate(entry)
    except ValidationError as exc:
        raise _field_error(exc, f"node {args.id}") from None
    for n in nodes:
        taken = set(n.get("sites", [])) & set(entry["sites"])
        if taken and n.get("id") != args.id:
            raise SchemaError(
                f"site {sorted(taken)[0]} already has home node {n.get('id')} in "
                f"{args.file}; a site has one home node"
            )
    i = next((i for i, n in enumerate(nodes) if n.get("id") == args.id), None)
    if i is None:
        nodes.append(entry)
    else:
        nodes[i] = entry
    doc["nodes"] = nodes
    _validate(doc, args.file)
    _save(args.file, doc)
    say(
        f"node {args.id} ({entry['base_url']}, key {key_id}) "
        f"{'replaced' if i is not None else 'added'}; home to: "
        f"{', '.join(entry['sites']) or '-'}"
    )
    return EXIT_OK


def _add_circle(args: argparse.Namespace) -> int:
    from schemas.roster import Circle

    doc = _load_draft(args.file)
    circle = {"id": args.id, "name": args.name, "members": list(args.member or [])}
    try:
        Circle.model_validate(circle)
    except ValidationError as exc:
        raise _field_error(exc, f"circle {args.id}") from None
    homes = {
        s
        for n in doc.get("nodes", [])
        if isinstance(n, dict)
        for s in n.get("sites", [])
    }
    for site in circle["members"]:
        if site not in homes:
            raise SchemaError(
                f"circle {args.id}: member {site} has no home node in {args.file}; "
                f"add it first: exchange roster add-node {args.file} --id NODE ... "
                f"--site {site}"
            )
    circles = [c for c in doc.get("circles", []) if isinstance(c, dict)]
    i = next((i for i, c in enumerate(circles) if c.get("id") == args.id), None)
    if i is not None and not args.replace:
        raise SchemaError(
            f"circle {args.id} is already in {args.file}; use --replace to replace it"
        )
    if i is None:
        circles.append(circle)
    else:
        circles[i] = circle
    doc["circles"] = circles
    _validate(doc, args.file)
    _save(args.file, doc)
    say(
        f"circle {args.id} ({args.name}) {'replaced' if i is not None else 'added'}: "
        f"{', '.join(circle['members']) or '-'}"
    )
    return EXIT_OK


# -- sign / publish / show -------------------------------------------------------------
def _sign(args: argparse.Namespace) -> int:
    from exchange.core.roster import sign_document, verify_roster
    from exchange.core.signing import CONTEXT_ROSTER, load_private_key

    obj = _load(args.file)
    signed_input = _is_signed(obj)
    doc = dict(obj["document"]) if signed_input else dict(obj)
    if not isinstance(doc.get("version", 1), int):
        raise SchemaError(f"{args.file}: version: must be an integer")
    current = int(doc.get("version", 1))
    if args.version is not None:
        version = args.version
    else:
        version = current + 1 if signed_input else current
    if version < 1:
        raise SchemaError("--version must be 1 or more")
    doc["version"] = version
    doc["issued_at"] = _now()
    roster = _validate(doc, args.file)
    key = load_private_key(Path(args.key))
    if not key.key_id:
        raise ConfigError(
            f"{args.key} has no key id; make one with "
            "'exchange keys new --key-id roster#k1 --out roster.key'"
        )
    signed = sign_document(doc, key, CONTEXT_ROSTER)
    verify_roster(signed, {key.key_id: key.public_key}, 0)  # self-check before writing
    _save(args.out, signed)
    following = max(current, version + 1)
    if not signed_input:
        _save(args.file, {**obj, "version": following})
    say(
        f"wrote {args.out}: roster of {roster.federation} version {version}, "
        f"{len(roster.nodes)} node(s), {len(roster.circles)} circle(s), signed by "
        f"{key.key_id}"
    )
    say(
        "every node pins the roster key: put this line under [federation] in its "
        "node.toml:"
    )
    print(pin_line(key.key_id, key.alg, key.public_key.b64()), flush=True)
    say(
        f"then install it on each node: exchange roster publish {args.out} --config "
        "node.toml"
    )
    if not signed_input:
        say(
            f"(the draft {args.file} is now at version {following}, for the next "
            "change)"
        )
    return EXIT_OK


def _explain(exc: VerificationError, path: str, pinned: list[str]) -> VerificationError:
    msg = f"{path}: {exc.message}"
    if exc.code == ErrorCode.ROSTER_STALE:
        msg += (
            "; sign a newer version: exchange roster sign DRAFT --key KEY --out FILE "
            "(or pass --version N)"
        )
    elif exc.code == ErrorCode.ROSTER_INVALID and "not a key trusted" in exc.message:
        msg += (
            f"; this node pins {', '.join(pinned)} in federation.roster_keys — sign "
            "with "
            "a pinned key, or pin the new key in node.toml"
        )
    elif exc.code == ErrorCode.BAD_SIGNATURE:
        msg += (
            "; the file was changed after signing, or signed by a key other than the "
            "pinned one"
        )
    return VerificationError(msg, code=exc.code)


def _publish(args: argparse.Namespace) -> int:
    signed = _load(args.file)
    if not _is_signed(signed):
        raise SchemaError(
            f"{args.file} is not a signed roster; sign it first: "
            f"exchange roster sign {args.file} --key roster.key --out "
            "roster.signed.json"
        )

    async def fn(node: Any) -> int:
        fed = node.federation
        if not fed.pinned:
            key_id = signed["sig"].get("key", "roster#k1")
            raise ConfigError(
                f"no roster keys are pinned on node {node.id}: add "
                f'roster_keys = ["{key_id} ed25519 PUBLIC_KEY"] '
                "under [federation] in node.toml ('exchange roster sign' prints the "
                "exact line)"
            )
        try:
            view = await fed.install(signed)
        except VerificationError as exc:
            raise _explain(exc, args.file, sorted(fed.pinned)) from None
        roster = view.roster
        say(
            f"名册已安装 / roster installed on node {node.id}: {roster.federation} "
            f"version {roster.version}, signed by {signed['sig']['key']}"
        )
        for peer in view.peers(node.id):
            say(
                f"  对端 / peer {peer.id}: {peer.base_url} (sites: "
                f"{', '.join(peer.sites) or '-'})"
            )
        me = view.node(node.id)
        if me is None:
            say(
                f"warning: this node ({node.id}) is not in the roster: peers will "
                "refuse its "
                "requests; add it with 'exchange roster add-node' and sign again"
            )
        elif node.key.public_key.b64() not in {k.public_key for k in me.keys}:
            say(
                "warning: the roster lists keys "
                f"{', '.join(k.key_id for k in me.keys)} for "
                f"{node.id}, but this node's key file {node.config.key_path} holds "
                "another key: "
                "peers will refuse its requests"
            )
        elif node.config.node.base_url and node.config.node.base_url.rstrip("/") != str(
            me.base_url
        ).rstrip("/"):
            say(
                f"warning: the roster gives {me.base_url} for {node.id}, node.toml has "
                f"base_url {node.config.node.base_url}"
            )
        say(
            "a running node loads the installed roster when it starts: restart it to "
            "apply "
            "this version (or set federation.roster_file to the signed file)"
        )
        return EXIT_OK

    return with_node(args, fn)


def _print_roster(obj: dict[str, Any], source: str) -> None:
    signed = _is_signed(obj)
    doc = obj["document"] if signed else obj
    by = f"signed by {obj['sig'].get('key')}" if signed else "unsigned draft"
    print(
        f"名册 / roster {doc.get('federation')} version {doc.get('version')}, "
        f"issued {doc.get('issued_at')}, {by} ({source})"
    )
    nodes = [n for n in doc.get("nodes", []) if isinstance(n, dict)]
    print()
    print(
        render(
            ["节点 node", "地址 URL", "密钥 keys", "站点 sites", "服务圈 circles"],
            [
                [
                    str(n.get("id")),
                    str(n.get("base_url")),
                    ", ".join(
                        str(k.get("key_id"))
                        for k in n.get("keys", [])
                        if isinstance(k, dict)
                    ),
                    ", ".join(n.get("sites", [])) or "-",
                    ", ".join(n.get("circles", [])) or "-",
                ]
                for n in nodes
            ],
        )
    )
    circles = [c for c in doc.get("circles", []) if isinstance(c, dict)]
    if circles:
        print()
        print(
            render(
                ["圈 circle", "名称 name", "成员 members"],
                [
                    [
                        str(c.get("id")),
                        str(c.get("name")),
                        ", ".join(c.get("members", [])),
                    ]
                    for c in circles
                ],
            )
        )


def _show(args: argparse.Namespace) -> int:
    if args.file:
        obj = _load(args.file)
        if args.json:
            print(json.dumps(obj, ensure_ascii=False, indent=2))
        else:
            _print_roster(obj, f"file {args.file}")
        return EXIT_OK

    async def fn(node: Any) -> int:
        row = await node.federation.store.roster()
        if row is None:
            say(
                f"no roster is installed on node {node.id}; install one with: "
                "exchange roster publish roster.signed.json"
            )
            return EXIT_FAIL
        if args.json:
            print(json.dumps(row[1], ensure_ascii=False, indent=2))
        else:
            _print_roster(row[1], f"installed on node {node.id}")
        return EXIT_OK

    return with_node(args, fn)


def register(sub: Any) -> None:
    """Add ``roster``."""
    roster = sub.add_parser(
        "roster",
        help="the federation roster: nodes, their keys and sites, circles",
        description="Build, sign and install the federation roster, the trust root "
        "every node pins. Typical order: new, add-node (each node), add-circle, sign, "
        "publish.",
    )
    rsub = roster.add_subparsers(dest="sub", required=True)

    p = rsub.add_parser(
        "pin", help="pin a roster key in node.toml ([federation] roster_keys)"
    )
    p.add_argument("key_id", help="the roster key's id, e.g. roster#k1")
    p.add_argument("alg", help="its suite, e.g. ed25519")
    p.add_argument(
        "public_key",
        help="its public key, base64url ('exchange roster sign' prints it)",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="node.toml to change (default: $EXCHANGE_CONFIG or ./node.toml)",
    )
    p.set_defaults(func=_pin)

    p = rsub.add_parser("new", help="start an unsigned draft roster (version 1)")
    p.add_argument(
        "--federation", required=True, help="federation id, e.g. congress-exchange"
    )
    p.add_argument("--out", required=True, metavar="FILE", help="draft file to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing draft")
    p.set_defaults(func=_new)

    p = rsub.add_parser(
        "add-node", help="add a node: its URL, public key and home sites"
    )
    p.add_argument("file", metavar="DRAFT", help="the draft roster (from 'roster new')")
    p.add_argument("--id", required=True, help="node id, e.g. huaihai")
    p.add_argument(
        "--url", required=True, help="base URL peers use, e.g. http://10.0.0.5:8700"
    )
    key = p.add_mutually_exclusive_group(required=True)
    key.add_argument(
        "--public-key",
        metavar="B64",
        help="the node's public key, base64url (write --public-key=KEY: a key may "
        "start with '-')",
    )
    key.add_argument(
        "--node-key",
        metavar="FILE",
        help="read the public part of a node key file (data/node.key)",
    )
    p.add_argument("--key-id", help="key id (default: from the key file, or NODE#k1)")
    p.add_argument("--alg", default="ed25519", help="signature suite (default ed25519)")
    p.add_argument(
        "--valid-from", help="RFC 3339 time the key is valid from (default: now)"
    )
    p.add_argument(
        "--site",
        action="append",
        metavar="SITE",
        help="a site this node is home to (repeatable)",
    )
    p.add_argument(
        "--circle",
        action="append",
        metavar="CIRCLE",
        help="a circle the node serves besides its sites' circles (repeatable)",
    )
    p.add_argument(
        "--replace", action="store_true", help="replace an existing entry for this node"
    )
    p.set_defaults(func=_add_node)

    p = rsub.add_parser(
        "add-circle", help="add a circle (collaboration group) of sites"
    )
    p.add_argument("file", metavar="DRAFT")
    p.add_argument("--id", required=True, help="circle id, e.g. huaihai")
    p.add_argument("--name", required=True, help="display name, e.g. 淮海经济区")
    p.add_argument(
        "--member", action="append", metavar="SITE", help="member site (repeatable)"
    )
    p.add_argument("--replace", action="store_true", help="replace an existing circle")
    p.set_defaults(func=_add_circle)

    p = rsub.add_parser(
        "sign", help="validate the draft and sign it with the roster key"
    )
    p.add_argument(
        "file", metavar="DRAFT", help="the draft (or a signed roster to re-sign)"
    )
    p.add_argument(
        "--key",
        required=True,
        metavar="FILE",
        help="roster key (exchange keys new --key-id roster#k1)",
    )
    p.add_argument(
        "--out", required=True, metavar="FILE", help="signed roster to write"
    )
    p.add_argument("--version", type=int, help="version to sign (default: the draft's)")
    p.set_defaults(func=_sign)

    p = rsub.add_parser(
        "publish", help="install a signed roster on this node (if newer)"
    )
    p.add_argument("file", metavar="SIGNED", help="signed roster from 'roster sign'")
    common_node_args(p)
    p.set_defaults(func=_publish)

    p = rsub.add_parser("show", help="print the installed roster (or a roster file)")
    p.add_argument(
        "file", nargs="?", metavar="FILE", help="a draft or signed roster file instead"
    )
    p.add_argument("--json", action="store_true", help="print the JSON document")
    common_node_args(p)
    p.set_defaults(func=_show)
