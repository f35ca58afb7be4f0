"""Render the figures of the last reliability run into ``docs/reliability.md``.

The tests in ``tests/reliability/`` leave JSON files in ``test-artifacts/reliability/``;
this script turns them into the "Figures from the last run" section of the report,
between the ``<!-- figures:start -->`` and ``<!-- figures:end -->`` markers (the prose
around them is kept). Run it after the suite::

    .venv/bin/python -m pytest -q tests/reliability
    .venv/bin/python bench/reliability_report.py          # rewrites docs/reliability.md
    .venv/bin/python bench/reliability_report.py --print  # only prints the section
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "reliability"
REPORT = REPO / "docs" / "reliability.md"
START, END = "<!-- figures:start -->", "<!-- figures:end -->"


def _load(name: str) -> dict[str, Any] | None:
    path = ARTIFACTS / f"{name}.json"
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def _missing(name: str) -> str:
    return f"_No figures: `test-artifacts/reliability/{name}.json` is missing (run the suite)._\n"


def _crash(d: dict[str, Any] | None) -> str:
    if d is None:
        return _missing("crash")
    pg = d.get("postgres_kill_events", [])
    lines = [
        "| figure | value |",
        "|---|---:|",
        f"| node SIGKILLs survived | {d['node_kills']} |",
        f"| PostgreSQL postmaster SIGKILLs survived | {d['postgres_kills']} |",
        f"| items acknowledged (2xx, accepted or duplicate) | {d['items_acknowledged']} |",
        f"| items found in the log | {d['items_found']} |",
        f"| acknowledged but missing | {d['acknowledged_missing']} |",
        f"| stored twice | {d['stored_twice']} |",
        f"| stored but never acknowledged (the answer was lost in a kill) | {d['items_stored_but_unacknowledged']} |",
        f"| push requests (incl. retries) | {d['push_requests']} |",
        f"| HTTP 500 answers during the run | {d.get('http_500_answers', 0)} |",
        f"| node restart to ready, median / max | {d['restart_to_ready_s_median']} s / {d['restart_to_ready_s_max']} s |",
        f"| log audit | {'ok' if d['audit']['ok'] else 'PROBLEMS'}, {d['audit']['items']} entries, "
        f"{d['audit']['checkpoints_checked']} checkpoints re-verified |",
        f"| seed, clients × batch | {d['seed']}, {d['clients']} × {d['batch']} |",
        f"| duration | {d['duration_s']} s |",
    ]
    out = "\n".join(lines) + "\n"
    if pg:
        rec = ", ".join(f"{e['recovered_after_s']} s" for e in pg)
        out += (
            f"\nPostgreSQL kills: {d['postgres_recovery']}. `/readyz` while down: "
            f"{sorted({e['readyz_while_down'] for e in pg})}; pushes acknowledged again after {rec}.\n"
        )
    fails = d.get("failed_requests_by_kind") or {}
    if fails:
        out += (
            "\nFailed requests by kind (retried by the clients): "
            + ", ".join(f"`{k}` × {v}" for k, v in sorted(fails.items()))
            + ".\n"
        )
    return out


def _peers(d: dict[str, Any] | None) -> str:
    if d is None:
        return _missing("peers")
    lines = ["| peer | attempts | last error |", "|---|---:|---|"]
    for name, attempts in sorted(d["bad_peer_attempts"].items()):
        lines.append(
            f"| {name} | {attempts} | `{(d['bad_peer_last_error'][name] or '')[:90]}` |"
        )
    lat = d["healthy_peer_round_latency_s"]
    return (
        "\n".join(lines) + "\n\n"
        f"Healthy peer: {d['items']} items in {len(lat)} rounds, each round delivered after "
        f"{min(lat)}–{max(lat)} s (request timeout {d['request_timeout_s']} s). "
        f"Recovered peer caught up in {d['recovered_peer_catch_up_s']} s with "
        f"{int(d['recovered_peer_duplicates'])} duplicates.\n"
    )


def _limits(d: dict[str, Any] | None) -> str:
    if d is None:
        return _missing("limits")
    out = ["| figure | value |", "|---|---:|"]
    if b := d.get("blob_stream"):
        out += [
            f"| node RSS growth, {b['blob_mib']:.0f} MiB blob upload | {b['upload_rss_growth_mib']} MiB (bound {b['bound_mib']:.0f}) |",
            f"| node RSS growth, {b['blob_mib']:.0f} MiB blob download | {b['download_rss_growth_mib']} MiB (bound {b['bound_mib']:.0f}) |",
        ]
    if q := d.get("backlog"):
        out.append(
            f"| sender RSS growth, {q['items_queued']} items queued for a down peer | "
            f"{q['rss_growth_mib']} MiB (bound {q['bound_mib']:.0f}) |"
        )
    if s := d.get("slow_loris"):
        out.append(
            f"| slow-loris connections held open / normal requests served meanwhile | "
            f"{s['connections']} / {s['normal_requests_ok']} |"
        )
    return "\n".join(out) + "\n"


def _hostile(d: dict[str, Any] | None) -> str:
    if d is None:
        return _missing("hostile")
    out = []
    if f := d.get("fuzz"):
        out.append(
            f"OpenAPI fuzz (schemathesis): **{f['cases']} cases** over {f['operations']} operations "
            f"({f['examples_per_operation']['positive']} positive examples each, "
            f"{f['examples_per_operation']['negative']} negative for those with a JSON body); "
            f"statuses {f['statuses']}; failures: {f['failures']}."
        )
    if c := d.get("cases"):
        out.append(
            "Other hostile-input cases: "
            + ", ".join(f"{k} {v}" for k, v in sorted(c.items()))
            + "."
        )
    if u := d.get("unicode"):
        out.append(
            "Titles stored verbatim: "
            + ", ".join(u["stored_verbatim"])
            + "; refused with 422: "
            + ", ".join(u["refused_422"])
            + "."
        )
    return "\n\n".join(out) + "\n"


def _authz(d: dict[str, Any] | None) -> str:
    if d is None:
        return _missing("authz")
    return (
        f"**{d['cells']} cells** checked: {d['routes']} routes × {len(d['roles'])} callers "
        f"({d['cells_exact']} against an exact expected status, {d['cells_by_auth_rule']} by the "
        f"operation's auth rule, the rest for no 5xx and no leak); {d['allowed']} allowed, "
        f"{d['refused']} refused; problems: {d['problems']}.\n"
    )


def _secrets(d: dict[str, Any] | None) -> str:
    if d is None:
        return _missing("secrets")
    return (
        f"{d['secrets_checked']} secret values (private keys, tokens, session cookies, request "
        f"signatures) searched in {d['log_records_checked']} in-process log records, "
        f"{d['subprocess_log_bytes']} bytes of a DEBUG subprocess log, every response body and "
        f"`/metrics`: {d['leaks']} found.\n"
    )


def render() -> str:
    """The figures section (markdown)."""
    stamps = [
        d.get("recorded_at", "")
        for n in ("crash", "peers", "limits", "hostile", "authz", "secrets")
        if (d := _load(n))
    ]
    head = f"_Recorded {min(stamps)} – {max(stamps)} (UTC)._\n\n" if stamps else ""
    return (
        head
        + "### Crash under load\n\n"
        + _crash(_load("crash"))
        + "\n### Partitions and slow peers\n\n"
        + _peers(_load("peers"))
        + "\n### Resource limits\n\n"
        + _limits(_load("limits"))
        + "\n### Hostile input\n\n"
        + _hostile(_load("hostile"))
        + "\n### Authorization matrix\n\n"
        + _authz(_load("authz"))
        + "\n### Secrets\n\n"
        + _secrets(_load("secrets"))
    )


def main(argv: list[str] | None = None) -> int:
    """Rewrite the figures section of docs/reliability.md (or print it)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--print", action="store_true", help="print the section instead of writing"
    )
    args = ap.parse_args(argv)
    section = render()
    if args.print:
        sys.stdout.write(section)
        return 0
    text = REPORT.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"{REPORT} has no {START} … {END} markers", file=sys.stderr)
        return 1
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    REPORT.write_text(before + START + "\n" + section + END + after, encoding="utf-8")
    print(f"wrote the figures into {REPORT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
