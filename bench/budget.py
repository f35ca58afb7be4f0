"""The performance budget of a node, checked against one benchmark run.

    python bench/budget.py [bench/results/latest.json] [RESULTS_WITH_MORE_WORKERS.json]

Prints a Markdown table: each budgeted figure of ``bench/run.py``'s results, its value,
the budget and whether the run meets it (ratios are to limits measured in the same run;
see docs/performance.md). Budgets are for one worker on a 2-core host; a run on a busy
host (``machine.other_programs_cpu_cores``) is said to be one. Given a second run with
``--workers N``, it adds the cost per item of N workers against one (budget: within
10 %). Not a test: it reads results files and asserts nothing.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Budget:
    figure: str
    value: Callable[[dict[str, Any]], float]
    shown: str  # format of the value
    limit: float
    at_most: bool  # True: the value must not exceed the limit
    unit: str


def _n(r: dict[str, Any], key: str) -> float:
    return float(r["node"][key])


def _ratio(r: dict[str, Any], key: str, limit: str) -> float:
    return float(r["node"][key]) / float(r["limits"][limit])


BUDGETS = [
    Budget(
        "single push c32: node CPU per item",
        lambda r: _n(r, "single_push_c32_cpu_ms_per_item_node"),
        "{:.2f} ms",
        0.5,
        True,
        "ms",
    ),
    Budget(
        "single push c32: × trivial aiohttp handler",
        lambda r: _ratio(r, "single_push_c32_items_per_s", "aiohttp_trivial_req_per_s"),
        "{:.2f} ×",
        0.15,
        False,
        "×",
    ),
    Budget(
        "single push c32: p99 latency",
        lambda r: _n(r, "single_push_c32_p99_ms"),
        "{:.1f} ms",
        50,
        True,
        "ms",
    ),
    Budget(
        "batch push ×100: × pipeline limit",
        lambda r: _ratio(
            r, "batch100_push_items_per_s", "pipeline_x_cores_used_items_per_s"
        ),
        "{:.2f} ×",
        0.8,
        False,
        "×",
    ),
    Budget(
        "batch push ×500: × pipeline limit",
        lambda r: _ratio(
            r, "batch500_push_items_per_s", "pipeline_x_cores_used_items_per_s"
        ),
        "{:.2f} ×",
        0.8,
        False,
        "×",
    ),
    Budget(
        "pull: × PostgreSQL batched insert",
        lambda r: _ratio(r, "pull_items_per_s", "pg_batched_insert_2kb_rows_per_s"),
        "{:.2f} ×",
        0.5,
        False,
        "×",
    ),
    Budget(
        "backlog drain (peer answers → all in): × pipeline limit",
        lambda r: _ratio(r, "backlog_drain_items_per_s", "pipeline_items_per_s"),
        "{:.2f} ×",
        0.6,
        False,
        "×",
    ),
    Budget(
        "backlog drain (first → last arrival): × pipeline limit",
        lambda r: _ratio(
            r, "backlog_drain_items_per_s_first_to_last", "pipeline_items_per_s"
        ),
        "{:.2f} ×",
        0.6,
        False,
        "×",
    ),
    Budget(
        "replication lag p99, 3 nodes at 500 items/s",
        lambda r: _n(r, "replication_lag_p99_ms"),
        "{:.0f} ms",
        500,
        True,
        "ms",
    ),
    Budget(
        "items sent per item replicated (3 nodes)",
        lambda r: _n(r, "crossings_3n_items_per_item"),
        "{:.2f}",
        1.05,
        True,
        "",
    ),
    Budget(
        "bytes sent per item replicated, × the item (3 nodes)",
        lambda r: _n(r, "crossings_3n_bytes_per_item_bytes"),
        "{:.3f} ×",
        1.05,
        True,
        "×",
    ),
]


def table(results: dict[str, Any]) -> str:
    """The budget table of one run, in Markdown."""
    rows = [
        "| figure | this run | budget | met |",
        "|---|---|---|---|",
    ]
    for b in BUDGETS:
        try:
            value = b.value(results)
        except (KeyError, TypeError, ZeroDivisionError):
            rows.append(f"| {b.figure} | not measured | | no |")
            continue
        met = value <= b.limit if b.at_most else value >= b.limit
        bound = (
            ("≤ " if b.at_most else "≥ ")
            + f"{b.limit:g}"
            + (f" {b.unit}" if b.unit else "")
        )
        rows.append(
            f"| {b.figure} | {b.shown.format(value)} | {bound} | {'yes' if met else 'no'} |"
        )
    m = results.get("machine", {})
    busy = m.get("other_programs_cpu_cores")
    rows.append("")
    rows.append(
        f"{m.get('cores', '?')} cores, `--workers {m.get('workers', 1)}`"
        + (f"; other programs used {busy} cores during the run" if busy else "")
    )
    return "\n".join(rows)


_PER_ITEM = [
    ("single push c32: node CPU per item", "single_push_c32_cpu_ms_per_item_node"),
    ("single push c32: PostgreSQL CPU per item", "single_push_c32_cpu_ms_per_item_pg"),
    ("batch push ×500: node CPU per item", "batch500_cpu_ms_per_item_node"),
    ("batch push ×500: PostgreSQL CPU per item", "batch500_cpu_ms_per_item_pg"),
    (
        "single push c32, index caught up: node CPU per item",
        "single_push_c32_cpu_ms_per_item_node_indexed",
    ),
    (
        "single push c32, index caught up: PostgreSQL CPU per item",
        "single_push_c32_cpu_ms_per_item_pg_indexed",
    ),
    (
        "batch push ×500, index caught up: node CPU per item",
        "batch500_cpu_ms_per_item_node_indexed",
    ),
    (
        "batch push ×500, index caught up: PostgreSQL CPU per item",
        "batch500_cpu_ms_per_item_pg_indexed",
    ),
]


def workers_table(one: dict[str, Any], more: dict[str, Any]) -> str:
    """Cost per item of a run with more workers against one with one worker."""
    n = more.get("machine", {}).get("workers", "N")
    rows = [
        f"| figure | 1 worker | {n} workers | ratio | within 10 % |",
        "|---|---|---|---|---|",
    ]
    for label, key in _PER_ITEM:
        try:
            a, b = float(one["node"][key]), float(more["node"][key])
        except (KeyError, TypeError, ValueError):
            rows.append(f"| {label} | not measured | | | no |")
            continue
        ratio = b / a if a else float("inf")
        rows.append(
            f"| {label} | {a:.3f} ms | {b:.3f} ms | {ratio:.2f} | "
            f"{'yes' if ratio <= 1.10 else 'no'} |"
        )
    return "\n".join(rows)


def main() -> int:
    path = Path(
        sys.argv[1] if len(sys.argv) > 1 else ROOT / "bench/results/latest.json"
    )
    if not path.exists():
        print(f"no results at {path}: run python bench/run.py first", file=sys.stderr)
        return 2
    one = json.loads(path.read_text())
    print(table(one))
    if len(sys.argv) > 2:
        print()
        print(workers_table(one, json.loads(Path(sys.argv[2]).read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
