"""Export bundles verified offline: a round trip, each kind of tampering, and a bundle from
a federated node carrying its roster, site records and a witness's cosignature."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from exchange.cli import EXIT_OK, EXIT_VERIFY, main
from exchange.core.note import NoteSigner, parse_checkpoint_body, sign_checkpoint
from exchange.core.signing import generate_key
from exchange.errors import ConfigError
from exchange.service.export import export_bundle
from exchange.verify import verify_bundle
from tests.support import wait_checkpoint

from .helpers import FAST_LOG, add_site, items


def _body(note: str) -> str:
    return note.split("\n\n", 1)[0] + "\n"


def _edit(path: Path, fn: Any) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    fn(doc)
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")


def _flip_last(line: str) -> str:
    """A signature line with the last byte of its signature flipped."""
    head, _, value = line.rstrip("\n").rpartition(" ")
    raw = bytearray(base64.b64decode(value))
    raw[-1] ^= 1
    return f"{head} {base64.b64encode(bytes(raw)).decode()}\n"


def _fails(folder: Path, *needles: str) -> list[str]:
    report = verify_bundle(folder)
    assert not report.ok, report.lines
    fails = [line for line in report.lines if line.startswith("FAIL")]
    for needle in needles:
        assert any(needle in line for line in fails), (needle, report.lines)
    return fails


async def test_export_verify_round_trip_and_tampering(
    node_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = await node_factory(**FAST_LOG)
    key = await add_site(node)
    other = await node.add_site(
        "xuzhou-tongshan", "徐州市铜山区人大常委会", ("huaihai",)
    )
    async with node.client("huaibei-duji") as c:
        await c.push_batch(items(key, 12))
    async with node.client("xuzhou-tongshan") as c:
        await c.push_batch(items(other, 3, site="xuzhou-tongshan"))
    await wait_checkpoint(node, 15)
    seen: list[int] = []
    out = tmp_path / "bundle"
    manifest = await export_bundle(
        node.node, out, author="huaibei-duji", progress=lambda d, _t: seen.append(d)
    )
    assert manifest["items"] == 12 and manifest["size"] == 15 and seen[-1] == 12
    assert manifest["federation"] == {"roster": None, "site_records": None}
    report = verify_bundle(out)
    assert report.ok, report.lines
    assert any("12 of 12 items" in line for line in report.lines)
    assert any(line.startswith("NOTE no roster") for line in report.lines)
    with pytest.raises(ConfigError):  # never writes into a folder that holds something
        await export_bundle(node.node, out)
    assert main(["verify", str(out)]) == EXIT_OK
    assert (
        "OK   checkpoint congress-exchange/huaihai size 15" in capsys.readouterr().out
    )

    def fresh(name: str) -> Path:
        copy = tmp_path / name
        shutil.copytree(out, copy)
        return copy

    files = sorted((out / "items").glob("*.json"))
    # An item's content changed: its id no longer matches, named by file.
    b = fresh("title")
    _edit(
        b / "items" / files[3].name, lambda d: d["signed"]["item"].update(title="改过")
    )
    _fails(b, files[3].name)
    assert main(["verify", str(b)]) == EXIT_VERIFY
    assert files[3].name in capsys.readouterr().out
    # A proof hash flipped, or the item moved to another index: the proof fails.
    b = fresh("proof")
    _edit(
        b / "items" / files[5].name,
        lambda d: d.update(inclusion=["A" * 43 + "=", *d["inclusion"][1:]]),
    )
    _fails(b, f"{files[5].name}: proof_invalid")
    b = fresh("index")
    _edit(b / "items" / files[6].name, lambda d: d.update(index=d["index"] + 1))
    _fails(b, f"{files[6].name}: proof_invalid")
    # An item removed: the count no longer matches the manifest.
    b = fresh("missing")
    (b / "items" / files[0].name).unlink()
    _fails(b, "manifest lists 12 items, folder holds 11")
    # The checkpoint signed by an unknown key (the bundled log key is the node's).
    b = fresh("foreign")
    stranger = NoteSigner("congress-exchange/huaihai", generate_key(key_id="x#k1"))
    _edit(
        b / "manifest.json",
        lambda d: d.update(
            checkpoint=sign_checkpoint(
                parse_checkpoint_body(_body(d["checkpoint"])), stranger
            )
        ),
    )
    _fails(b, "checkpoint: checkpoint_invalid")
    # A checkpoint of another size than the proofs were made for.
    b = fresh("size")
    _edit(b / "manifest.json", lambda d: d.update(size=14))
    _fails(b, "manifest size 14 differs from its checkpoint (15)")
    # Not a bundle at all.
    _fails(tmp_path / "nothing", "is not a bundle")


async def test_bundle_from_a_federated_node_checks_roster_records_and_cosignatures(
    node_factory: Any, tmp_path: Path
) -> None:
    from tests.support.federation import build

    fed = await build(
        node_factory, regions=("huaihai", "yangtze-delta"), replicate=False
    )
    hh, yd = fed.nodes["huaihai"], fed.nodes["yangtze-delta"]
    key = hh.keys["huaibei-duji"]
    async with hh.client("huaibei-duji") as c:
        await c.push_batch(items(key, 8))
    await wait_checkpoint(hh, 8)
    assert (await yd.node.witness.round())["huaihai"] == "cosigned 8"
    out = tmp_path / "bundle"
    manifest = await export_bundle(hh.node, out)
    assert len(manifest["cosignatures"]) == 1 and manifest["roster_keys"]
    assert (out / "federation" / "roster.json").exists()
    report = verify_bundle(out)
    assert report.ok, report.lines
    text = "\n".join(report.lines)
    for expected in (
        "OK   roster version 1 verifies with pinned key(s) roster#k1",
        "OK   the log key is node huaihai's key in the roster",
        "OK   cosigned by witness yangtze-delta at ",
        "site records signed by their home nodes",
        "OK   8 of 8 items",
    ):
        assert expected in text, report.lines
    assert "NOTE" not in text  # every item key came from its site's signed record

    def fresh(name: str) -> Path:
        copy = tmp_path / name
        shutil.copytree(out, copy)
        return copy

    # A bundle re-signed by someone else's log key does not match the roster.
    b = fresh("relogged")
    forger = generate_key(key_id="huaihai#k9")
    signer = NoteSigner("congress-exchange/huaihai", forger)
    _edit(
        b / "manifest.json",
        lambda d: d.update(
            checkpoint=sign_checkpoint(
                parse_checkpoint_body(_body(d["checkpoint"])), signer
            ),
            log_key=signer.vkey,
            cosignatures=[],
        ),
    )
    _fails(b, "the bundle's log key is not a key of node huaihai in the roster")
    # A forged cosignature line.
    b = fresh("cosig")
    _edit(
        b / "manifest.json",
        lambda d: d.update(cosignatures=[_flip_last(d["cosignatures"][0])]),
    )
    _fails(b, "cosignature by congress-exchange/yangtze-delta: ", "does not verify")
    # A site key swapped in the signed record: the record no longer verifies, and the
    # items' key is then not vouched for by the site's home node.
    b = fresh("record")
    _edit(
        b / "federation" / "site-records.json",
        lambda d: d["records"][0]["document"]["keys"][0].update(
            public_key=generate_key(key_id="huaibei-duji#k1").public_key.b64()
        ),
    )
    _fails(b, "site record:")
    # A roster not signed by the pinned key.
    b = fresh("roster")
    _edit(
        b / "manifest.json",
        lambda d: d.update(
            roster_keys=[
                f"roster#k1 ed25519 {generate_key(key_id='roster#k1').public_key.b64()}"
            ]
        ),
    )
    _fails(b, "roster: ", "signature by roster#k1 does not verify")
