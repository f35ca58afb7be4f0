"""A joint inspection across two nodes of a federation (real apps, databases, HTTP):
a plan on the huaihai node by a huaihai site, steps by a site homed on the
yangtze-delta node; and a federation under 密评 that signs everything with SM2."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from exchange import verify_checkpoint
from exchange.core.items import sign_item
from exchange.core.roster import sign_document
from exchange.core.signing import (
    CONTEXT_ROSTER,
    PrivateKey,
    generate_key,
    save_private_key,
)
from exchange.errors import Conflict, VerificationError
from exchange.templates import template
from tests.support.federation import CIRCLE_NAMES, FAST, REGIONS, wait_until
from tests.support.plans import LEAD, PARTICIPANTS, Flow

P1, P2 = (
    PARTICIPANTS  # xuzhou-tongshan (huaihai node), suzhou-wuzhong (yangtze-delta node)
)
NODES = ("huaihai", "yangtze-delta")


async def _federation(
    node_factory: Callable[..., Awaitable[Any]],
    tmp_path: Path,
    alg: str = "ed25519",
    **roster_extra: Any,
) -> tuple[dict[str, Any], dict[str, PrivateKey]]:
    """Two nodes, their sites with ``alg`` keys, and a roster signed with an ``alg`` key."""
    roster_key = generate_key(alg, "roster#k1")
    pinned = [f"roster#k1 {alg} {roster_key.public_key.b64()}"]
    nodes: dict[str, Any] = {}
    keys: dict[str, PrivateKey] = {}
    for nid in NODES:
        (tmp_path / nid).mkdir()
        save_private_key(generate_key(alg, f"{nid}#k1"), tmp_path / nid / "node.key")
        rn = await node_factory(
            nid,
            # Peers witness each other's checkpoints every 300 ms (not every 10 s).
            federation={"roster_keys": pinned, **FAST, "witness_interval_ms": 300},
            log={"checkpoint_interval_ms": 100},
        )
        for sid, name, circles in REGIONS[nid]:
            await rn.node.sites.add_site(sid, name, nid, list(circles))
            key = generate_key(alg, f"{sid}#k1")
            await rn.node.sites.add_key(key.key_id, sid, alg, key.public_key.raw)
            rn.keys[sid] = keys[sid] = key
        nodes[nid] = rn
    members: dict[str, list[str]] = {}
    for nid in NODES:
        for sid, _n, circles in REGIONS[nid]:
            for c in circles:
                members.setdefault(c, []).append(sid)
    doc = {
        "federation": "congress-exchange-test",
        "version": 1,
        "issued_at": datetime.now(UTC).isoformat(),
        "nodes": [
            {
                "id": nid,
                "base_url": rn.url,
                "keys": [
                    {
                        "key_id": rn.node.key.key_id,
                        "alg": rn.node.key.alg,
                        "public_key": rn.node.key.public_key.b64(),
                        "valid_from": "2026-01-01T00:00:00+00:00",
                    }
                ],
                "sites": [s[0] for s in REGIONS[nid]],
            }
            for nid, rn in nodes.items()
        ],
        "circles": [
            {"id": c, "name": CIRCLE_NAMES[c], "members": sorted(m)}
            for c, m in sorted(members.items())
        ],
        "monitors": [],
        **roster_extra,
    }
    signed = sign_document(doc, roster_key, CONTEXT_ROSTER)
    for rn in nodes.values():
        await rn.node.federation.install(signed)
    return nodes, keys


def _home(nodes: dict[str, Any], site: str) -> Any:
    return nodes["yangtze-delta"] if site == P2 else nodes["huaihai"]


async def _push(
    nodes: dict[str, Any], flow: Flow, item: dict[str, Any]
) -> dict[str, Any]:
    async with _home(nodes, item["author"]).client(item["author"]) as c:
        return await c.push(flow.signed(item))


async def _state_everywhere(
    nodes: dict[str, Any], plan_id: str, want: str, n_items: int
) -> list[dict[str, Any]]:
    """Wait until both nodes show the plan in ``want`` with ``n_items`` in its history."""
    views: list[dict[str, Any]] = []

    async def both() -> bool:
        views.clear()
        for nid, site in (("huaihai", LEAD), ("yangtze-delta", P2)):
            async with nodes[nid].client(site) as c:
                try:
                    views.append(await c.request("GET", f"/v1/plans/{plan_id}"))
                except Exception:
                    return False
        return all(v["state"] == want and len(v["timeline"]) == n_items for v in views)

    await wait_until(both, 30, f"plan {want} with {n_items} items on both nodes")
    return views


async def test_joint_plan_across_two_nodes(node_factory: Any, tmp_path: Path) -> None:
    nodes, keys = await _federation(node_factory, tmp_path)
    flow = Flow(keys)  # type: ignore[arg-type]
    await _push(nodes, flow, flow.plan_item)
    await _state_everywhere(nodes, flow.plan_id, "draft", 0)
    steps = flow.happy_path()
    # Before the start: a second answer from the yangtze-delta site is refused at its
    # home node, and a step from the wrong site too.
    for n, (item, want) in enumerate(steps, 1):
        await _push(nodes, flow, item)
        views = await _state_everywhere(nodes, flow.plan_id, want, n)
        if item["kind"] == "endorsement" and item["author"] == P2:
            for bad, reason in (
                (flow.endorse(P2, "decline"), "already_counted"),
                (flow.update("start", author=P2), "wrong_site"),
            ):
                with pytest.raises(Conflict) as exc:
                    await _push(nodes, flow, bad)
                assert exc.value.detail["reason"] == reason
    a, b = views
    assert a == b  # the same signed items give the same state, timeline and flags
    assert a["state"] == "closed" and a["round"] == 2 and a["ignored"] == 0
    assert {e["site"] for e in a["endorsements"] if e["done"]} == {P1, P2}


async def test_replicated_steps_the_rules_refuse_are_ignored_and_reported(
    node_factory: Any, tmp_path: Path
) -> None:
    nodes, keys = await _federation(node_factory, tmp_path)
    flow = Flow(keys)  # type: ignore[arg-type]
    await _push(nodes, flow, flow.plan_item)
    await _state_everywhere(nodes, flow.plan_id, "draft", 0)
    # A node that does not check plan steps (an older version) accepts a participant's
    # "approval"; it is a signed fact and replicates, but no node applies it.
    nodes["yangtze-delta"].node.ingestor.guards.clear()
    await _push(nodes, flow, flow.update("approve", author=P2))
    views = await _state_everywhere(nodes, flow.plan_id, "draft", 1)
    for v in views:
        (step,) = v["timeline"]
        assert not step["applied"] and step["reason"] == "wrong_site"
        assert v["ignored"] == 1
    await _push(nodes, flow, flow.update("approve"))
    await _state_everywhere(nodes, flow.plan_id, "approved", 2)


async def test_sm2_federation_items_requests_and_checkpoints(
    node_factory: Any, tmp_path: Path
) -> None:
    nodes, keys = await _federation(
        node_factory,
        tmp_path,
        "sm2-sm3",
        accepted_algs=["sm2-sm3"],
        required_algs=["sm2-sm3"],
    )
    a, b = nodes["huaihai"], nodes["yangtze-delta"]
    assert a.node.key.alg == b.node.key.alg == "sm2-sm3"
    flow = Flow(keys)  # type: ignore[arg-type]
    await _push(
        nodes, flow, flow.plan_item
    )  # an SM2 item in an SM2-signed request, on A
    await _state_everywhere(
        nodes, flow.plan_id, "draft", 0
    )  # replicated to B by SM2 nodes
    await _push(nodes, flow, flow.endorse(P2))  # from a site homed on B
    await _state_everywhere(nodes, flow.plan_id, "draft", 1)
    # An Ed25519 item is refused with a clear error, on either node.
    ed = generate_key("ed25519", f"{LEAD}#k2")
    await a.node.sites.add_key(ed.key_id, LEAD, "ed25519", ed.public_key.raw)
    async with a.client(LEAD) as c:
        with pytest.raises(VerificationError) as exc:
            await c.push(sign_item(template("lesson", LEAD), ed))
    assert exc.value.code.value == "unsupported_algorithm"
    # Each node's checkpoints are SM2 notes; the peer witnessed (cosigned) them with SM2.
    for rn in (a, b):
        async with rn.client() as c:
            cp = await c.request("GET", "/v1/log/checkpoint")
        assert verify_checkpoint(cp["note"], [cp["key"]]).size >= 1

    async def cosigned() -> bool:
        async with a.node.db.pool.acquire() as conn:
            return bool(await conn.fetchval("SELECT count(*) FROM cosignatures"))

    await wait_until(cosigned, 30, "an SM2 cosignature of huaihai's checkpoint")
