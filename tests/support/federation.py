"""Build a real federation of nodes (separate apps and databases) for tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from exchange.core.roster import sign_document
from exchange.core.signing import CONTEXT_ROSTER, PrivateKey, generate_key
from tests.support import wait_until

__all__ = [
    "CIRCLE_NAMES",
    "FAST",
    "REGIONS",
    "Federation",
    "build",
    "item_ids",
    "wait_until",
]

REGIONS: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {
    "huaihai": [
        ("huaibei-duji", "淮北市杜集区人大常委会", ("huaihai", "yangtze-delta")),
        ("xuzhou-tongshan", "徐州市铜山区人大常委会", ("huaihai",)),
    ],
    "yangtze-delta": [("suzhou-wuzhong", "苏州市吴中区人大常委会", ("yangtze-delta",))],
    "zhejiang": [("jiaxing-nanhu", "嘉兴市南湖区人大常委会", ("yangtze-delta",))],
}
CIRCLE_NAMES = {"huaihai": "淮海经济区", "yangtze-delta": "长三角"}
FAST = {
    "pull_interval_ms": 300,
    "backoff_base_ms": 100,
    "backoff_max_s": 1.0,
    "request_timeout_s": 3,
}


@dataclass
class Federation:
    nodes: dict[str, Any]
    roster_key: PrivateKey
    version: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def roster_doc(self, version: int | None = None) -> dict[str, Any]:
        members: dict[str, list[str]] = {}
        for region, sites in REGIONS.items():
            if region not in self.nodes:
                continue
            for sid, _n, circles in sites:
                for c in circles:
                    members.setdefault(c, []).append(sid)
        now = datetime.now(UTC).isoformat()
        return {
            "federation": "congress-exchange-test",
            "version": version or self.version,
            "issued_at": now,
            "nodes": [
                {
                    "id": nid,
                    "base_url": rn.url,
                    "keys": [
                        {
                            "key_id": rn.node.key.key_id,
                            "alg": "ed25519",
                            "public_key": rn.node.key.public_key.b64(),
                            "valid_from": "2026-01-01T00:00:00+00:00",
                        }
                    ],
                    "sites": [s[0] for s in REGIONS[nid]],
                }
                for nid, rn in self.nodes.items()
            ],
            "circles": [
                {"id": c, "name": CIRCLE_NAMES[c], "members": sorted(m)}
                for c, m in sorted(members.items())
            ],
            "monitors": [],
        }

    def signed_roster(
        self, version: int | None = None, key: PrivateKey | None = None
    ) -> dict[str, Any]:
        return sign_document(
            self.roster_doc(version), key or self.roster_key, CONTEXT_ROSTER
        )


async def build(
    node_factory: Callable[..., Awaitable[Any]],
    regions: tuple[str, ...] = tuple(REGIONS),
    per_node: dict[str, dict[str, Any]] | None = None,
    **fed_cfg: Any,
) -> Federation:
    """Nodes of ``regions`` with their sites and one roster; ``fed_cfg`` is ``[federation]``
    of every node, ``per_node[id]`` further sections of one (its ``federation`` merged)."""
    roster_key = generate_key(key_id="roster#k1")
    pinned = [f"roster#k1 ed25519 {roster_key.public_key.b64()}"]
    nodes = {}
    for nid in regions:
        extra = dict((per_node or {}).get(nid, {}))
        own_fed = extra.pop("federation", {})
        rn = await node_factory(
            nid,
            federation={"roster_keys": pinned, **FAST, **fed_cfg, **own_fed},
            log={"checkpoint_interval_ms": 100},
            **extra,
        )
        for sid, name, circles in REGIONS[nid]:
            await rn.add_site(sid, name, circles)
        nodes[nid] = rn
    fed = Federation(nodes, roster_key)
    signed = fed.signed_roster()
    for rn in nodes.values():
        await rn.node.federation.install(signed)
    return fed


async def item_ids(rn: Any) -> dict[str, str]:
    """id -> origin of every item stored on a node."""
    async with rn.node.db.pool.acquire() as c:
        rows = await c.fetch("SELECT id, origin FROM items")
    return {r["id"]: r["origin"] for r in rows}
