"""Write the JSON Schema files partners validate against (``schemas/json/``).

Run ``python -m schemas.export`` after changing a model and commit the result;
``python -m schemas.export --check`` (and ``tests/schemas/test_export.py``) fails when
the committed files differ from what the models generate. Output is deterministic:
sorted keys, two-space indent, UTF-8 (Chinese descriptions stay readable), one
trailing newline.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from . import api, items, kinds, log, plans, roster, search

__all__ = [
    "DEFAULT_DEST",
    "JSON_SCHEMA_DIALECT",
    "all_models",
    "check",
    "export",
    "main",
]

DEFAULT_DEST = Path(__file__).resolve().parent / "json"
"""Where the committed schema files live."""

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
"""The ``$schema`` every generated file declares."""

_SUFFIX = ".schema.json"


def all_models() -> dict[str, type[BaseModel] | TypeAdapter[Any]]:
    """Return every public wire model, keyed by its schema file's stem.

    The keys are stable file names: renaming a class does not rename its file.

    Returns:
        ``{"item": ITEM_ADAPTER, "signed_item": SignedItem, ...}`` in a fixed order.
    """
    return {
        # items
        "item": items.ITEM_ADAPTER,
        "signed_item": items.SignedItem,
        "case_study_item": items.CaseStudyItem,
        "inspection_plan_item": items.InspectionPlanItem,
        "lesson_item": items.LessonItem,
        "endorsement_item": items.EndorsementItem,
        "retraction_item": items.RetractionItem,
        "agreement_item": items.AgreementItem,
        "inspection_report_item": items.InspectionReportItem,
        "deliberation_opinion_item": items.DeliberationOpinionItem,
        "rectification_reply_item": items.RectificationReplyItem,
        "research_report_item": items.ResearchReportItem,
        "minutes_item": items.MinutesItem,
        "plan_update_item": items.PlanUpdateItem,
        "audience": items.Audience,
        "ref": items.Ref,
        "attachment": items.Attachment,
        "signature": items.Signature,
        # kinds
        "case_study": kinds.CaseStudy,
        "inspection_plan": kinds.InspectionPlan,
        "lesson": kinds.Lesson,
        "endorsement": kinds.Endorsement,
        "retraction": kinds.Retraction,
        "contact": kinds.Contact,
        "period": kinds.Period,
        "phase": kinds.Phase,
        "responsibility": kinds.Responsibility,
        "finding": kinds.Finding,
        "rectification": kinds.Rectification,
        "agreement": kinds.Agreement,
        "inspection_report": kinds.InspectionReport,
        "deliberation_opinion": kinds.DeliberationOpinion,
        "measure_taken": kinds.MeasureTaken,
        "rectification_reply": kinds.RectificationReply,
        "research_report": kinds.ResearchReport,
        "minutes": kinds.Minutes,
        "satisfaction_vote": kinds.SatisfactionVote,
        "plan_update": kinds.PlanUpdate,
        # computed plan views (GET /v1/plans)
        "plan_view": plans.PlanView,
        "plan_list": plans.PlanList,
        "plan_summary": plans.PlanSummary,
        "plan_site_status": plans.PlanSiteStatus,
        "plan_deadline": plans.PlanDeadline,
        "plan_phase_status": plans.PlanPhaseStatus,
        "plan_step": plans.PlanStep,
        "plan_vote": plans.PlanVote,
        # roster
        "roster": roster.Roster,
        "node_entry": roster.NodeEntry,
        "circle": roster.Circle,
        "monitor_entry": roster.MonitorEntry,
        "site_record": roster.SiteRecord,
        "key_entry": roster.KeyEntry,
        "signed_document": roster.SignedDocument,
        # log
        "checkpoint": log.Checkpoint,
        "inclusion_proof": log.InclusionProof,
        "consistency_proof": log.ConsistencyProof,
        "receipt": log.Receipt,
        "log_entry": log.LogEntry,
        "log_entry_page": log.LogEntryPage,
        # api
        "error_body": api.ErrorBody,
        "error_detail": api.ErrorDetail,
        "push_batch": api.PushBatch,
        "push_result": api.PushResult,
        "push_response": api.PushResponse,
        "federation_batch": api.FederationBatch,
        "federation_batch_response": api.FederationBatchResponse,
        "federation_refusal": api.FederationRefusal,
        "log_range": api.LogRange,
        "item_envelope": api.ItemEnvelope,
        "item_page": api.ItemPage,
        "site_info": api.SiteInfo,
        "site_list": api.SiteList,
        "health": api.Health,
        "blob_info": api.BlobInfo,
        # search
        "search_hit": search.SearchHit,
        "search_page": search.SearchPage,
        "subscription_request": search.SubscriptionRequest,
        "subscription": search.Subscription,
        "subscription_list": search.SubscriptionList,
        "match_page": search.MatchPage,
        "adapter_status": api.AdapterStatus,
        "adapter_health": api.AdapterHealth,
        "adapter_health_report": api.AdapterHealthReport,
        "adapter_health_list": api.AdapterHealthList,
    }


def _schema(model: type[BaseModel] | TypeAdapter[Any], name: str) -> dict[str, Any]:
    if isinstance(model, TypeAdapter):
        schema = model.json_schema(mode="validation")
        schema.setdefault("title", "".join(p.title() for p in name.split("_")))
    else:
        schema = model.model_json_schema(mode="validation")
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


def render() -> dict[str, str]:
    """Return ``{file name: file text}`` for every schema, as :func:`export` writes."""
    return {
        name + _SUFFIX: json.dumps(
            _schema(model, name), indent=2, ensure_ascii=False, sort_keys=True
        )
        + "\n"
        for name, model in all_models().items()
    }


def export(dest: Path = DEFAULT_DEST) -> list[Path]:
    """Write every schema file into ``dest`` and delete stale ``*.schema.json`` there.

    Args:
        dest: Target directory; created if missing.

    Returns:
        The written paths, sorted.

    Raises:
        OSError: ``dest`` cannot be created or written.
    """
    dest.mkdir(parents=True, exist_ok=True)
    files = render()
    for stale in dest.glob("*" + _SUFFIX):
        if stale.name not in files:
            stale.unlink()
    written = []
    for file_name, text in files.items():
        path = dest / file_name
        path.write_text(text, encoding="utf-8", newline="\n")
        written.append(path)
    return sorted(written)


def check(dest: Path = DEFAULT_DEST) -> list[str]:
    """Compare ``dest`` with a fresh export without writing anything.

    Args:
        dest: The directory holding the committed files.

    Returns:
        Sorted names of files that are missing, different or stale; empty if none.
    """
    files = render()
    drifted = {
        name
        for name, text in files.items()
        if not (dest / name).is_file()
        or (dest / name).read_text(encoding="utf-8") != text
    }
    if dest.is_dir():
        drifted.update(p.name for p in dest.glob("*" + _SUFFIX) if p.name not in files)
    return sorted(drifted)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m schemas.export [--check] [--dest DIR]``.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` if ``None``.

    Returns:
        0 on success; 1 with ``--check`` when files drifted.
    """
    parser = argparse.ArgumentParser(
        prog="python -m schemas.export", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 and list the files that differ",
    )
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    args = parser.parse_args(argv)
    if args.check:
        drifted = check(args.dest)
        if drifted:
            print(
                f"JSON Schema files in {args.dest} are out of date; "
                "run `python -m schemas.export`:",
                file=sys.stderr,
            )
            for name in drifted:
                print(f"  {name}", file=sys.stderr)
            return 1
        print(f"{len(all_models())} schema files in {args.dest} are up to date")
        return 0
    written = export(args.dest)
    print(f"wrote {len(written)} schema files to {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
