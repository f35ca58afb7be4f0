"""What a new user meets in the first hour with the ``exchange`` command, each finding of
a first try as a test: one-line errors with their exit codes, honest push output,
folders and many files, templates that cannot be pushed unfilled, retractions of items
that exist, and ``doctor`` telling this node from another program on its port.

The commands run in-process (``exchange.cli.main`` in a thread, as the console script
calls it) against a real node on 127.0.0.1 with a real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from exchange.cli import main, progress
from exchange.commands.doctor import FAIL, OK, Doctor
from exchange.config import load_config
from exchange.core.items import sign_item
from exchange.core.signing import PrivateKey, generate_key, save_private_key
from exchange.templates import blank, template
from tests.support import fill_placeholders

SITE = "huaibei-duji"


async def run(capsys: Any, *argv: str) -> tuple[int, str, str]:
    """``exchange ARGV`` → (exit status, stdout, stderr); a usage error is status 2."""
    capsys.readouterr()
    try:
        code = await asyncio.to_thread(main, list(argv))
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return code, out, err


@pytest.fixture
async def site(node: Any, tmp_path: Path) -> tuple[Any, PrivateKey, Path]:
    """A node with one site; the site's key file in tmp_path."""
    key = await node.add_site(SITE, "淮北市杜集区人大常委会", ("huaihai",))
    path = tmp_path / "duji.key"
    save_private_key(key, path)
    return node, key, path


def _write(path: Path, doc: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


def _lesson(key: PrivateKey, n: int) -> dict[str, Any]:
    item = template("lesson", SITE)
    item["title"] = f"代表联络站经验做法 {n}"
    return sign_item(item, key)


async def test_push_reports_a_refusal_as_a_refusal(
    site: Any, tmp_path: Path, capsys: Any
) -> None:
    node, key, key_file = site
    signed = _lesson(key, 1)
    signed["item"]["title"] = "签名后被改动的标题"  # the signature no longer matches
    f = _write(tmp_path / "tampered.json", signed)
    code, out, err = await run(
        capsys, "push", str(f), "--node", node.url, "--key", str(key_file)
    )
    assert code == 1
    assert "\trefused\tbad_signature" in out
    assert "pushed: 1/1" not in err and "1 refused" in err, err


async def test_push_and_verify_take_folders_and_many_files(
    site: Any, tmp_path: Path, capsys: Any
) -> None:
    node, key, key_file = site
    for n in range(3):
        _write(tmp_path / "outbox" / f"{n}.signed.json", _lesson(key, n))
    code, out, err = await run(
        capsys,
        "push",
        str(tmp_path / "outbox"),
        "--node",
        node.url,
        "--key",
        str(key_file),
    )
    assert code == 0, err
    assert out.count("\taccepted\t") == 3 and "3 accepted" in err
    inbox = tmp_path / "inbox"
    code, _, err = await run(
        capsys, "pull", "--node", node.url, "--key", str(key_file), "--out", str(inbox)
    )
    assert code == 0, err
    files = sorted(str(p) for p in inbox.glob("0000000*-*.json"))
    assert len(files) == 3
    code, out, err = await run(
        capsys, "verify", *files
    )  # as the shell expands inbox/*.json
    assert code == 0 and out.count("OK   sha256:") == 3, out + err
    assert "3 item file(s) checked: 3 ok, 0 failed" in err
    code, out, _ = await run(
        capsys, "verify", str(inbox)
    )  # the folder (sites.json skipped)
    assert code == 0 and out.count("OK   sha256:") == 3
    bad = json.loads(Path(files[1]).read_text(encoding="utf-8"))
    bad["item"]["title"] = "改动"
    _write(inbox / "zz-altered.json", bad)
    code, out, err = await run(capsys, "verify", str(inbox))
    assert code == 3 and "1 failed" in err and "FAIL bad_signature" in out


async def test_push_of_a_folder_without_items_is_one_clear_line(
    site: Any, tmp_path: Path, capsys: Any
) -> None:
    node, _, key_file = site
    (tmp_path / "empty").mkdir()
    code, _, err = await run(
        capsys,
        "push",
        str(tmp_path / "empty"),
        "--node",
        node.url,
        "--key",
        str(key_file),
    )
    assert (
        code == 1
        and "holds no .json files" in err
        and len(err.strip().splitlines()) == 1
    )


async def test_node_without_a_scheme_is_a_usage_error(site: Any, capsys: Any) -> None:
    node, _, key_file = site
    bare = node.url.removeprefix("http://")
    code, _, err = await run(
        capsys, "pull", "--node", bare, "--key", str(key_file), "--out", "x"
    )
    assert code == 2 and f"http://{bare}" in err


async def test_unreachable_node_is_reported_as_such(
    site: Any, tmp_path: Path, capsys: Any
) -> None:
    node, key, key_file = site
    f = _write(tmp_path / "a.json", _lesson(key, 1))
    with __import__("socket").socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = await run(
        capsys,
        "push",
        str(f),
        "--node",
        f"http://127.0.0.1:{port}",
        "--key",
        str(key_file),
    )
    assert code == 4
    assert "node_unreachable" in err and "database" not in err, err
    assert "connection refused" in err and len(err.strip().splitlines()) == 1


async def test_an_item_too_large_for_one_request_gets_a_fitting_message(
    node_factory: Any, tmp_path: Path, capsys: Any
) -> None:
    node = await node_factory(http={"max_body_bytes": 64 * 1024})
    key = await node.add_site(SITE, circles=("huaihai",))
    save_private_key(key, tmp_path / "k.key")
    item = template("lesson", SITE)
    item["body"]["practice"] = (
        "很长的正文。" * 30_000
    )  # ~500 KB: over this node's limit
    f = _write(tmp_path / "big.json", sign_item(item, key))
    small = _write(tmp_path / "small.json", _lesson(key, 2))
    code, out, err = await run(
        capsys,
        "push",
        str(f),
        str(small),
        "--node",
        node.url,
        "--key",
        str(tmp_path / "k.key"),
    )
    assert code == 1
    line = next(x for x in out.splitlines() if x.startswith(str(f)))
    assert "refused\ttoo_large" in line and "attachments" in line, line
    assert "fewer items" not in line
    assert f"{small}\taccepted" in out  # the other file still went through


async def test_site_token_names_the_node_url(
    node: Any, tmp_path: Path, capsys: Any
) -> None:
    await node.add_site(SITE, circles=("huaihai",))
    toml = tmp_path / "node.toml"
    toml.write_text(
        f'[node]\nid = "huaihai"\nbase_url = "https://rd.example.gov.cn/exchange"\n'
        f'data_dir = "{node.node.config.data_path}"\n'
        f'[database]\nurl = "{node.node.db.url}"\n',
        encoding="utf-8",
    )
    code, out, err = await run(capsys, "site", "token", SITE, "--config", str(toml))
    assert code == 0 and out.strip()
    assert "https://rd.example.gov.cn/exchange/read" in err and "<node URL>" not in err


def test_progress_is_plain_lines_when_not_a_terminal(capsys: Any) -> None:
    for done in range(0, 1201, 100):
        progress(done, 1200, "sent")
    for done in (1, 2, 500, 501):
        progress(done, None, "pulled")
    err = capsys.readouterr().err
    assert "\r" not in err
    assert err.splitlines() == [
        "  sent: 0/1200",
        "  sent: 500/1200",
        "  sent: 1000/1200",
        "  sent: 1200/1200",
        "  pulled: 500",
    ]


async def test_signing_with_another_sites_key_is_a_refusal(
    tmp_path: Path, capsys: Any
) -> None:
    other = generate_key(key_id="suzhou-wuzhong#k1")
    save_private_key(other, tmp_path / "other.key")
    f = _write(tmp_path / "lesson.json", template("lesson", SITE))
    code, _, err = await run(
        capsys, "item", "sign", str(f), "--key", str(tmp_path / "other.key")
    )
    assert code == 1 and "author_mismatch" in err and SITE in err


async def test_item_new_needs_the_author(capsys: Any) -> None:
    code, out, err = await run(capsys, "item", "new", "--kind", "lesson")
    assert code == 2 and "--author" in err and out == ""


async def test_a_template_cannot_be_signed_or_pushed_unfilled(
    site: Any, tmp_path: Path, capsys: Any
) -> None:
    node, key, key_file = site
    code, out, err = await run(
        capsys, "item", "new", "--kind", "inspection_plan", "--author", SITE
    )
    assert code == 0 and "<填写" in out and "item sign" in err
    assert (
        "0561-" not in out and "张明" not in out
    )  # no invented contact to sign by mistake
    plan = _write(tmp_path / "plan.json", json.loads(out))
    code, _, err = await run(capsys, "item", "sign", str(plan), "--key", str(key_file))
    assert (
        code == 1
        and "item.title, item.tags[0]" in err
        and "still a template placeholder" in err
    )
    # Signed anyway (by a tool that does not check): the node refuses it, naming the field.
    raw = sign_item(blank("lesson", SITE), key)
    async with node.client(SITE) as c:
        res = (await c.push_batch([raw]))["results"][0]
    assert res["status"] == "refused" and res["error"]["code"] == "schema_invalid"
    assert (
        "item.title" in res["error"]["message"] and "<填写" in res["error"]["message"]
    )
    # Filled in, it signs and the node takes it.
    _write(plan, fill_placeholders(json.loads(out)))
    code, _, err = await run(
        capsys,
        "item",
        "sign",
        str(plan),
        "--key",
        str(key_file),
        "--out",
        str(tmp_path / "plan.signed.json"),
    )
    assert code == 0, err


async def test_a_retraction_must_target_an_item_the_node_holds(site: Any) -> None:
    node, key, _ = site
    other = await node.add_site("xuzhou-tongshan", circles=("huaihai",))
    async with node.client(SITE) as c:
        held = (await c.push(_lesson(key, 1)))["id"]
    async with node.client("xuzhou-tongshan") as c:
        theirs = (
            await c.push(
                sign_item(
                    dict(template("lesson", "xuzhou-tongshan"), title="铜山经验"), other
                )
            )
        )["id"]

    def retraction(target: str) -> dict[str, Any]:
        item = template("retraction", SITE)
        item["refs"] = [{"rel": "retracts", "id": target}]
        item["body"]["target"] = target
        return sign_item(item, key)

    async with node.client(SITE) as c:
        nowhere = (await c.push_batch([retraction("sha256:" + "0" * 64)]))["results"][0]
        foreign = (await c.push_batch([retraction(theirs)]))["results"][0]
        own = (await c.push_batch([retraction(held)]))["results"][0]
    assert nowhere["status"] == "refused" and nowhere["error"]["code"] == "not_found"
    assert "not an item this node holds" in nowhere["error"]["message"]
    assert foreign["status"] == "refused" and foreign["error"]["code"] == "forbidden"
    assert own["status"] == "accepted"


async def test_doctor_tells_this_node_from_another_on_its_port(
    node_factory: Any,
) -> None:
    ours = await node_factory("huaihai")
    stranger = await node_factory("yangtze-delta")

    def at(rn: Any) -> Any:
        data = ours.node.config.model_dump()
        data["http"]["listen"] = f"127.0.0.1:{rn.server.port}"
        return load_config(None, overrides=data, environ={})

    async def process_row(cfg: Any) -> Any:
        checks = await Doctor(cfg, timeout=3).run()
        return next(c for c in checks if c.name.startswith("节点进程"))

    row = await process_row(at(ours))
    assert row.status == OK, row
    row = await process_row(at(stranger))
    assert (
        row.status == FAIL
        and "is not this node" in row.detail
        and "yangtze-delta" in row.detail
    )
