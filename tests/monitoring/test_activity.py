"""Activity API, Prometheus metrics (checked by promtool) and structured logs."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from exchange.core.items import sign_item
from exchange.errors import AuthError, Forbidden
from exchange.logs import JsonFormatter
from exchange.templates import template
from tests.support import need_tool

REPO = Path(__file__).resolve().parents[2]


async def _populate(node: Any) -> dict[str, str]:
    await node.add_site(
        "huaibei-duji", "淮北市杜集区人大常委会", ("huaihai", "yangtze-delta")
    )
    await node.add_site("xuzhou-tongshan", "徐州市铜山区人大常委会", ("huaihai",))
    await node.add_site("suzhou-wuzhong", "苏州市吴中区人大常委会", ("yangtze-delta",))
    plan = template("inspection_plan", "huaibei-duji", "xuzhou-tongshan")
    plan["audience"] = {"circles": ["huaihai"], "sites": []}
    ids = {}
    async with node.client("huaibei-duji") as c:
        ids["plan"] = (await c.push(sign_item(plan, node.keys["huaibei-duji"])))["id"]
        await c.push(
            sign_item(template("lesson", "huaibei-duji"), node.keys["huaibei-duji"])
        )
        bad = sign_item(template("lesson", "huaibei-duji"), node.keys["huaibei-duji"])
        bad["item"]["title"] = "篡改"
        res = await c.push_batch([bad])
        assert res["refused"] == 1
    endorse = template(
        "endorsement", "xuzhou-tongshan", plan=plan
    )  # the plan's audience
    assert endorse["body"]["plan"] == ids["plan"]
    async with node.client("xuzhou-tongshan") as c:
        await c.push(sign_item(endorse, node.keys["xuzhou-tongshan"]))
        await c.list_items()
    async with node.client("suzhou-wuzhong") as c:
        await c.push(
            sign_item(
                template("case_study", "suzhou-wuzhong"), node.keys["suzhou-wuzhong"]
            )
        )
    return ids


async def test_activity_is_scoped_to_the_monitor(node: Any) -> None:
    ids = await _populate(node)
    token = await node.add_monitor("huaibei-municipal", circles=("huaihai",))
    async with node.client(token=token) as c:
        act = await c.request("GET", "/v1/activity")
    assert act["scope"]["sites"] == ["huaibei-duji", "xuzhou-tongshan"]
    sites = {s["site"]: s for s in act["sites"]}
    assert set(sites) == {
        "huaibei-duji",
        "xuzhou-tongshan",
    }  # no suzhou-wuzhong, not even counts
    assert "suzhou-wuzhong" not in json.dumps(act, ensure_ascii=False)
    assert sites["huaibei-duji"]["items_shared"] == 2
    assert sites["xuzhou-tongshan"]["items_shared"] == 1
    assert sites["xuzhou-tongshan"]["last_pull_day"] is not None
    assert sites["huaibei-duji"]["refused_7d"] == 1
    assert act["totals"]["items"] == 3 and act["totals"]["pushed_7d"] == 3
    (plan,) = act["plans"]
    assert plan["id"] == ids["plan"]
    assert plan["endorsements"] == [{"site": "xuzhou-tongshan", "decision": "endorse"}]
    codes = [e["code"] for e in act["security_events"]]
    assert "bad_signature" in codes
    kinds = {(r["circle"], r["kind"]) for r in act["week_by_circle_kind"]}
    assert ("huaihai", "inspection_plan") in kinds


async def test_activity_needs_a_monitor(node: Any) -> None:
    await _populate(node)
    async with node.client("huaibei-duji") as c:
        with pytest.raises(Forbidden):
            await c.request("GET", "/v1/activity")
    async with node.client() as c:
        with pytest.raises(AuthError):
            await c.request("GET", "/v1/activity")
    token = await node.add_monitor("yangtze", circles=("yangtze-delta",))
    async with node.client(token=token) as c:
        act = await c.request("GET", "/v1/activity")
    assert sorted(s["site"] for s in act["sites"]) == ["huaibei-duji", "suzhou-wuzhong"]


async def test_metrics_pass_promtool(node: Any, tmp_path: Path) -> None:
    promtool = need_tool("promtool", "prometheus")
    await _populate(node)
    async with aiohttp.ClientSession() as s, s.get(node.url + "/metrics") as r:
        assert r.status == 200
        text = await r.text()
    assert 'exchange_items_accepted_total{origin="local"} 4.0' in text
    assert 'exchange_items_refused_total{reason="bad_signature"} 1.0' in text
    assert "exchange_log_entries 4.0" in text
    assert (
        'exchange_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/v1/items"}'
        in text
    )
    done = subprocess.run(
        [promtool, "check", "metrics"],
        input=text.encode(),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


def test_alert_rules_and_grafana_dashboard(tmp_path: Path) -> None:
    promtool = need_tool("promtool", "prometheus")
    rules = REPO / "deploy" / "prometheus" / "alerts.yml"
    done = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    done = subprocess.run(  # the alerts fire on the series they are meant for
        [promtool, "test", "rules", str(rules.with_name("alerts_test.yml"))],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    cfg = (REPO / "deploy" / "prometheus" / "prometheus.yml").read_text()
    (tmp_path / "alerts.yml").write_bytes(rules.read_bytes())
    (tmp_path / "prometheus.yml").write_text(
        cfg.replace("/etc/prometheus/alerts.yml", str(tmp_path / "alerts.yml"))
    )
    done = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    dash = json.loads(
        (REPO / "deploy" / "grafana" / "congress-exchange.json").read_text()
    )
    metric_names = {
        "exchange_items_accepted_total",
        "exchange_items_refused_total",
        "exchange_log_entries",
        "exchange_peer_backlog_items",
        "exchange_security_events_total",
        "exchange_http_request_duration_seconds_bucket",
    }
    exprs = " ".join(t["expr"] for p in dash["panels"] for t in p["targets"])
    for m in metric_names:
        assert m in exprs, f"dashboard has no panel for {m}"


def test_json_log_lines_mask_secrets() -> None:
    fmt = JsonFormatter()
    rec = logging.LogRecord(
        "exchange.test",
        logging.INFO,
        __file__,
        1,
        'auth header Bearer abc.DEF-123 and "private_key": "c2VjcmV0"',
        None,
        None,
    )
    line = json.loads(fmt.format(rec))
    assert line["level"] == "info" and line["logger"] == "exchange.test"
    assert "abc.DEF-123" not in line["msg"] and "c2VjcmV0" not in line["msg"]
    assert "Bearer ***" in line["msg"]


async def test_access_log_has_request_id_and_no_token(
    node: Any, caplog: pytest.LogCaptureFixture
) -> None:
    token = await node.add_monitor("m", circles=("huaihai",))
    caplog.set_level(logging.INFO, logger="exchange.access")
    async with (
        aiohttp.ClientSession() as s,
        s.get(
            node.url + "/v1/activity",
            headers={"Authorization": f"Bearer {token}", "X-Request-Id": "req-abc123"},
        ) as r,
    ):
        assert r.status == 200 and r.headers["X-Request-Id"] == "req-abc123"
    recs = [r for r in caplog.records if r.name == "exchange.access"]
    assert recs, "no access log line"
    line = json.loads(JsonFormatter().format(recs[-1]))
    assert line["request_id"] == "req-abc123" and line["status"] == 200
    assert line["principal"] == "monitor:m" and line["route"] == "/v1/activity"
    assert token not in json.dumps(line)


async def test_activity_shows_adapter_health_and_peers(node: Any) -> None:
    await _populate(node)
    report = {
        "started_at": "2026-11-27T08:00:00+08:00",
        "last_run": "2026-11-27T09:00:00+08:00",
        "backlog": 2,
        "rejected": 0,
        "last_error": None,
        "adapters": [
            {
                "name": "门户",
                "type": "portal",
                "role": "source",
                "items": 5,
                "last_error": "列表页无法访问 / list page unreachable",
                "problems": [],
            },
            {
                "name": "共享目录",
                "type": "folder",
                "role": "sink",
                "items": 7,
                "problems": [],
            },
        ],
    }
    async with node.client("xuzhou-tongshan") as c:
        await c.request("POST", "/v1/adapters/health", body=json.dumps(report).encode())
    token = await node.add_monitor("huaibei-municipal", circles=("huaihai",))
    async with node.client(token=token) as c:
        act = await c.request("GET", "/v1/activity")
    a = act["adapters"]["xuzhou-tongshan"]
    assert (
        a["backlog"] == 2
        and a["delivered"] == 7
        and "list page unreachable" in a["last_error"]
    )
    assert "huaibei-duji" not in act["adapters"]  # no report from it yet
    assert act["federation"] == {"peers": []}
    # A peer that cannot be reached: the dashboard gets what it means, not the text.
    async with node.node.db.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO peers (node_id, base_url, last_error, attempts) VALUES "
            "('yangtze-delta', 'http://127.0.0.1:1', $1, 3)",
            "ClientConnectorError: Cannot connect to host 127.0.0.1:1 ssl:default "
            "[Connection refused]",
        )
    async with node.client(token=token) as c:
        act = await c.request("GET", "/v1/activity")
    (peer,) = act["federation"]["peers"]
    assert peer["peer"] == "yangtze-delta" and peer["problem"] == "unreachable"


@pytest.mark.parametrize(
    ("error", "problem"),
    [
        (None, None),
        ("", None),
        (
            "ClientConnectorError: Cannot connect to host x:1 [Connection refused]",
            "unreachable",
        ),
        ("ServerDisconnectedError: Server disconnected", "unreachable"),
        ("TimeoutError: ", "timeout"),
        ("database_unavailable: the database is unavailable; retry shortly", "busy"),
        ("peer could not store 3 item(s); retrying", "busy"),
        ("refused 2 item(s): not_home_node", "refused"),
        ("peer wants site records ['a'] again", "records"),
        ("bad_request_signature: the request is signed for 'x'", "signature"),
        ("something new", "other"),
    ],
)
def test_peer_errors_are_told_by_what_they_mean(
    error: str | None, problem: str | None
) -> None:
    from exchange.federation.service import peer_problem

    assert peer_problem(error) == problem
