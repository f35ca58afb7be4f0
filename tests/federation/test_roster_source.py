"""The roster is the single source of circles, and a running node follows it live.

``exchange site add`` refuses a roster site moved out of its roster circles (or to
another home) and a site absent from the roster joining a roster circle; a running node
uses a roster published meanwhile (``exchange roster publish`` from another process)
without a restart; ``roster pin`` and ``node init --roster-key`` write the pin;
``peer status`` counts what peers refused.
"""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path
from typing import Any

import orjson
import pytest

from exchange.cli import EXIT_OK, main
from exchange.core.signing import generate_key
from tests.support.federation import build, wait_until


def _node_toml(rn: Any, path: Path) -> Path:
    """A node.toml for CLI commands on ``rn``'s database, data folder and pins."""
    cfg = rn.node.config
    pins = ", ".join(f'"{p}"' for p in cfg.federation.roster_keys)
    path.write_text(
        f'[node]\nid = "{cfg.node.id}"\ndata_dir = "{cfg.data_path}"\n'
        f'[database]\nurl = "{cfg.database.url}"\npool_min = 1\npool_max = 2\n'
        f"[federation]\nroster_keys = [{pins}]\n"
    )
    return path


async def _cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def _circles(rn: Any, site: str) -> list[str] | None:
    s = await rn.node.sites.get_site(site)
    return sorted(s.circles) if s is not None else None


async def test_site_add_refuses_what_contradicts_the_roster(
    node_factory: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fed = await build(
        node_factory, regions=("huaihai", "yangtze-delta"), replicate=False
    )
    hh = fed.nodes["huaihai"]
    cfg = str(_node_toml(hh, tmp_path / "node.toml"))
    before = await _circles(hh, "huaibei-duji")
    assert before == ["huaihai", "yangtze-delta"]
    # A roster member moved out of one of its roster circles on its home node.
    code = await _cli(
        "site",
        "add",
        "huaibei-duji",
        "--name",
        "杜集",
        "--circle",
        "yangtze-delta",
        "--config",
        cfg,
    )
    assert code != EXIT_OK
    assert "contradicts the roster" in capsys.readouterr().err
    assert await _circles(hh, "huaibei-duji") == before
    # A site absent from the roster joining a roster circle.
    code = await _cli(
        "site",
        "add",
        "rogue-site",
        "--name",
        "不在名册",
        "--circle",
        "huaihai",
        "--config",
        cfg,
    )
    assert code != EXIT_OK and await _circles(hh, "rogue-site") is None
    # A roster site on another home.
    code = await _cli(
        "site", "add", "suzhou-wuzhong", "--name", "吴中", "--config", cfg
    )
    assert code != EXIT_OK
    # What agrees with the roster is fine: a rename keeps the roster's circles, and a
    # site outside the roster may have circles the roster does not define.
    assert (
        await _cli("site", "add", "huaibei-duji", "--name", "杜集区", "--config", cfg)
        == 0
    )
    assert await _circles(hh, "huaibei-duji") == before
    assert (
        await _cli(
            "site",
            "add",
            "local-site",
            "--name",
            "本地",
            "--circle",
            "local",
            "--config",
            cfg,
        )
        == 0
    )


async def test_a_running_node_picks_up_a_published_roster(
    node_factory: Any, tmp_path: Path
) -> None:
    fed = await build(
        node_factory, regions=("huaihai", "yangtze-delta"), replicate=False
    )
    hh = fed.nodes["huaihai"]
    assert hh.node.federation.view.version == 1
    signed = tmp_path / "roster.v2.json"
    signed.write_bytes(orjson.dumps(fed.signed_roster(version=2)))
    assert (
        await _cli(
            "roster",
            "publish",
            str(signed),
            "--config",
            str(_node_toml(hh, tmp_path / "node.toml")),
        )
        == 0
    )

    async def live() -> bool:
        return hh.node.federation.view.version == 2

    await wait_until(live, 15, "the running node to use roster version 2")


async def test_roster_pin_and_node_init_write_the_pin(tmp_path: Path) -> None:
    key = generate_key(key_id="roster#k1")
    entry = f"roster#k1 ed25519 {key.public_key.b64()}"
    folder = tmp_path / "n"
    assert (
        await _cli(
            "node",
            "init",
            "--region",
            "huaihai",
            "--dir",
            str(folder),
            "--roster-key",
            entry,
        )
        == 0
    )
    cfg = folder / "node.toml"
    assert tomllib.loads(cfg.read_text())["federation"]["roster_keys"] == [entry]
    other = generate_key(key_id="roster#k2")
    entry2 = f"roster#k2 ed25519 {other.public_key.b64()}"
    assert (
        await _cli(
            "roster",
            "pin",
            "roster#k2",
            "ed25519",
            other.public_key.b64(),
            "--config",
            str(cfg),
        )
        == 0
    )
    assert (
        await _cli(
            "roster",
            "pin",
            "roster#k2",
            "ed25519",
            other.public_key.b64(),
            "--config",
            str(cfg),
        )
        == 0
    )  # twice: pinned once
    doc = tomllib.loads(cfg.read_text())
    assert doc["federation"]["roster_keys"] == [entry, entry2]
    assert doc["node"]["id"] == "huaihai"  # the rest of the file is kept
    assert (
        await _cli(
            "roster", "pin", "roster#k3", "ed25519", "not base64!", "--config", str(cfg)
        )
        != 0
    )


async def test_a_running_node_picks_up_a_newer_roster_file(
    node_factory: Any, tmp_path: Path
) -> None:
    from exchange.core.signing import save_private_key
    from tests.support.reliability import node_entry, roster

    roster_key = generate_key(key_id="roster#k1")
    node_key = generate_key(key_id="huaihai#k1")
    peer_key = generate_key(key_id="yangtze-delta#k1")
    (tmp_path / "huaihai").mkdir()
    save_private_key(node_key, tmp_path / "huaihai" / "node.key")

    def signed(version: int) -> bytes:
        nodes = [
            node_entry("huaihai", "http://127.0.0.1:9", node_key, ["huaibei-duji"]),
            node_entry(
                "yangtze-delta", "http://127.0.0.1:9", peer_key, ["suzhou-wuzhong"]
            ),
        ]
        circles = {"c": ["huaibei-duji", "suzhou-wuzhong"]}
        return orjson.dumps(roster(nodes, circles, roster_key, version=version))

    path = tmp_path / "roster.signed.json"
    path.write_bytes(signed(1))
    rn = await node_factory(
        "huaihai",
        federation={
            "roster_keys": [f"roster#k1 ed25519 {roster_key.public_key.b64()}"],
            "roster_file": str(path),
            "replicate": False,
        },
    )
    assert rn.node.federation.view.version == 1
    path.write_bytes(signed(2))  # the operator drops the newly signed roster in place

    async def live() -> bool:
        return rn.node.federation.view.version == 2

    await wait_until(live, 15, "the running node to use the roster file's version 2")
