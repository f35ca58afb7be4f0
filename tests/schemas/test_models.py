"""The wire models accept what a congress writes and refuse everything else clearly."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from schemas import (
    ITEM_ADAPTER,
    KINDS,
    Checkpoint,
    ConsistencyProof,
    EndorsementItem,
    ErrorBody,
    ErrorCode,
    ErrorDetail,
    Health,
    InclusionProof,
    InspectionPlanItem,
    ItemEnvelope,
    KeyEntry,
    LessonItem,
    NodeEntry,
    PushBatch,
    PushResponse,
    PushResult,
    Receipt,
    Roster,
    SignedDocument,
    SignedItem,
    SiteRecord,
    Text,
    Title,
    parse_timestamp,
)

Json = dict[str, Any]
Factory = Callable[[], Json]
KeyFactory = Callable[..., Json]


def item_id(seed: str) -> str:
    """A well-formed item id derived from ``seed``."""
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


AN_ID = item_id("某个条目")


def refused(validate: Callable[[], object], *needles: str) -> str:
    """Assert ``validate`` raises ValidationError whose text has every needle."""
    with pytest.raises(ValidationError) as info:
        validate()
    text = str(info.value)
    for needle in needles:
        assert needle in text, f"{needle!r} not in:\n{text}"
    return text


def item_refused(data: Json, *needles: str) -> str:
    """Refused from a dict and, identically in kind, from JSON text."""
    text = refused(lambda: ITEM_ADAPTER.validate_python(data), *needles)
    refused(lambda: ITEM_ADAPTER.validate_json(json.dumps(data)), *needles)
    return text


# ------------------------------------------------------------------- valid items


def test_every_kind_has_a_fixture(every_item: dict[str, Factory]) -> None:
    assert sorted(every_item) == sorted(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_realistic_item_of_every_kind_validates(
    kind: str, every_item: dict[str, Factory], sig: Json
) -> None:
    data = every_item[kind]()
    from_dict = ITEM_ADAPTER.validate_python(data)
    from_json = ITEM_ADAPTER.validate_json(json.dumps(data, ensure_ascii=False))
    assert from_dict == from_json
    assert from_dict.kind == kind
    signed = SignedItem.model_validate({"item": data, "sig": sig})
    assert signed.item == from_dict
    # The view adds only defaults: dumping what was set gives back what was sent.
    assert ITEM_ADAPTER.dump_python(from_dict, mode="json", exclude_unset=True) == data


def test_plan_fields_are_read_as_sent(plan_item: Factory) -> None:
    plan = ITEM_ADAPTER.validate_python(plan_item())
    assert isinstance(plan, InspectionPlanItem)
    assert plan.body.law == "《中华人民共和国安全生产法》"
    assert plan.body.sites() == ["huaibei-duji", "suzhou-wuzhong"]
    assert plan.created_at == "2026-11-20T09:30:00+08:00"  # kept as text
    assert plan.body.phases[0].start == "2026-12-01"


def test_defaults_make_a_minimal_item(case_item: Factory) -> None:
    data = case_item()
    item = ITEM_ADAPTER.validate_python(data)
    assert item.audience.is_everyone
    assert item.lang == "zh-CN"
    assert item.summary == ""
    assert item.refs == [] and item.attachments == []


def test_models_are_frozen(case_item: Factory) -> None:
    item = ITEM_ADAPTER.validate_python(case_item())
    with pytest.raises(ValidationError, match="frozen"):
        item.title = "改过的标题"  # type: ignore[misc]


def test_long_text_keeps_newlines_and_tabs(lesson_item: Factory) -> None:
    data = lesson_item()
    data["body"]["practice"] = "一、每月集中征求意见；\n二、\t每季度专题调研。"
    item = ITEM_ADAPTER.validate_python(data)
    assert isinstance(item, LessonItem)
    assert item.body.practice.count("\n") == 1


# --------------------------------------------------------------- refusals: shape


def test_unknown_top_level_field(case_item: Factory) -> None:
    data = case_item()
    data["priority"] = "high"
    item_refused(data, "priority", "Extra inputs are not permitted")


def test_unknown_body_field(plan_item: Factory) -> None:
    data = plan_item()
    data["body"]["budget"] = "十万元"
    item_refused(data, "body.budget", "Extra inputs are not permitted")


def test_unknown_field_in_nested_model(plan_item: Factory) -> None:
    data = plan_item()
    data["body"]["phases"][0]["owner"] = "huaibei-duji"
    item_refused(data, "phases.0.owner", "Extra inputs are not permitted")


def test_unknown_kind(case_item: Factory) -> None:
    data = case_item()
    data["kind"] = "news"
    item_refused(data, "union_tag_invalid", "'news'", "case_study")


def test_missing_kind(case_item: Factory) -> None:
    data = case_item()
    del data["kind"]
    item_refused(data, "union_tag_not_found", "kind")


def test_missing_required_body_field(plan_item: Factory) -> None:
    data = plan_item()
    del data["body"]["law"]
    item_refused(data, "body.law", "Field required")


@pytest.mark.parametrize(
    ("path", "value", "needle"),
    [
        (["title"], 123, "Input should be a valid string"),
        (["author"], 42, "Input should be a valid string"),
        (["tags"], "安全生产法", "type=list_type"),
        (["body", "law"], 2021, "Input should be a valid string"),
        (["body", "phases", 0, "start"], 20261201, "Input should be a valid string"),
        (["attachments", 0, "size"], "48211", "Input should be a valid integer"),
        (["v"], "1", "Input should be an integer, not str"),
        (["audience"], ["huaihai"], "type=model_type"),
    ],
)
def test_wrong_types_are_not_coerced(
    plan_item: Factory, path: list[str | int], value: Any, needle: str
) -> None:
    data = plan_item()
    target: Any = data
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    item_refused(data, needle)


@pytest.mark.parametrize(
    ("path", "value", "needle"),
    [
        (["attachments", 0, "size"], 48211.0, "valid integer"),
        (["attachments", 0, "size"], 1.5, "valid integer"),
        (["v"], 1.0, "should be an integer"),
        (["title"], 3.14, "valid string"),
        (["tags", 0], 2.5, "valid string"),
        (["body", "findings", 0, "severity"], 0.9, "'low', 'medium' or 'high'"),
    ],
)
def test_floats_are_refused_anywhere(
    plan_item: Factory, path: list[str | int], value: float, needle: str
) -> None:
    data = plan_item()
    target: Any = data
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    item_refused(data, needle)


def test_booleans_are_not_integers(plan_item: Factory) -> None:
    data = plan_item()
    data["v"] = True
    item_refused(data, "should be an integer")
    data = plan_item()
    data["attachments"][0]["size"] = True
    refused(lambda: ITEM_ADAPTER.validate_python(data), "valid integer")


@pytest.mark.parametrize(
    "document", [{"version": 1.5}, {"nodes": [{"weight": 0.5}]}, {"a": [[1, 2.0]]}]
)
def test_floats_are_refused_inside_signed_documents(document: Json, sig: Json) -> None:
    data = {"document": document, "sig": sig}
    refused(lambda: SignedDocument.model_validate(data), "floats are not allowed")


def test_floats_are_refused_inside_error_detail() -> None:
    data = {"code": "bad_json", "message": "x", "detail": {"at": 1.0}}
    refused(lambda: ErrorDetail.model_validate(data), "detail", "floats are not")


def test_opaque_documents_keep_integers_safe(sig: Json) -> None:
    data = {"document": {"n": 2**53}, "sig": sig}
    refused(lambda: SignedDocument.model_validate(data), "2**53-1")
    fine = SignedDocument.model_validate({"document": {"n": 2**53 - 1}, "sig": sig})
    assert fine.document == {"n": 2**53 - 1}


# ------------------------------------------------------------ refusals: ids


@pytest.mark.parametrize(
    "slug",
    [
        "Huaibei-Duji",
        "huaibei_duji",
        "-duji",
        "duji-",
        "huaibei duji",
        "淮北杜集",
        "",
        "a" * 65,
        "duji\n",
    ],
)
def test_bad_site_slug(case_item: Factory, slug: str) -> None:
    data = case_item()
    data["author"] = slug
    item_refused(data, "author", "must be a site id, a lowercase slug")


@pytest.mark.parametrize("slug", ["a", "a1", "huaibei-duji", "x" * 64])
def test_good_site_slug(case_item: Factory, slug: str) -> None:
    data = case_item()
    data["author"] = slug
    assert ITEM_ADAPTER.validate_python(data).author == slug


@pytest.mark.parametrize(
    "value",
    [
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "a" * 64,
        "sha512:" + "a" * 64,
        "sha256: " + "a" * 63,
    ],
)
def test_bad_item_id(retraction_item: Factory, value: str) -> None:
    data = retraction_item()
    data["body"]["target"] = value
    item_refused(data, "body.target", "must be an item id 'sha256:'")


@pytest.mark.parametrize(
    "value", ["huaibei-duji", "huaibei-duji#k0", "huaibei-duji#1", "Duji#k1", "#k1"]
)
def test_bad_key_id(value: str, sig: Json) -> None:
    refused(
        lambda: SignedItem.model_validate({"item": {}, "sig": {**sig, "key": value}}),
        "sig.key",
        "must be a key id",
    )


@pytest.mark.parametrize("value", ["AAA=", "AA+/", "A", "AAAAA", "AA AA", ""])
def test_bad_signature_value(value: str, sig: Json) -> None:
    refused(
        lambda: SignedItem.model_validate({"item": {}, "sig": {**sig, "value": value}}),
        "sig.value",
    )


# ----------------------------------------------------- refusals: time and dates


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("2026-11-20T09:30:00", "explicit offset"),
        ("2026-11-20 09:30:00+08:00", "explicit offset"),
        ("2026-11-20t09:30:00z", "explicit offset"),
        ("yesterday", "explicit offset"),
        ("", "explicit offset"),
        ("2026-11-20", "explicit offset"),
        ("2026-11-20T09:30+08:00", "explicit offset"),
        ("2026-02-30T09:30:00+08:00", "no such date or time"),
        ("2026-11-20T25:30:00+08:00", "no such date or time"),
        ("2026-11-20T09:30:00+24:00", "no such date or time"),
        ("2026-11-20T09:30:00-00:00", "unknown"),
        ("2026-11-20T09:30:00.1234567+08:00", "explicit offset"),
    ],
)
def test_bad_timestamp(case_item: Factory, value: str, needle: str) -> None:
    data = case_item()
    data["created_at"] = value
    item_refused(data, "created_at", needle)


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-20T09:30:00Z",
        "2026-11-20T01:30:00.5-05:00",
        "2026-02-28T23:59:59+14:00",
    ],
)
def test_good_timestamp(case_item: Factory, value: str) -> None:
    data = case_item()
    data["created_at"] = value
    assert ITEM_ADAPTER.validate_python(data).created_at == value


def test_parse_timestamp_keeps_the_offset() -> None:
    moment = parse_timestamp("2026-11-20T09:30:00+08:00")
    assert moment.utcoffset() == timedelta(hours=8)
    assert moment == parse_timestamp("2026-11-20T01:30:00Z")
    with pytest.raises(ValueError, match="offset"):
        parse_timestamp("2026-11-20T09:30:00")


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("2026-02-30", "no such date"),
        ("2026-13-01", "no such date"),
        ("2026/12/01", "YYYY-MM-DD"),
        ("20261201", "YYYY-MM-DD"),
        ("2026-12-1", "YYYY-MM-DD"),
        ("2026-12-01T00:00:00+08:00", "YYYY-MM-DD"),
    ],
)
def test_bad_date(plan_item: Factory, value: str, needle: str) -> None:
    data = plan_item()
    data["body"]["phases"][0]["start"] = value
    item_refused(data, "phases.0.start", needle)


def test_phase_ending_before_it_starts(plan_item: Factory) -> None:
    data = plan_item()
    data["body"]["phases"][1]["end"] = "2026-12-10"
    item_refused(data, "phase '实地检查' ends 2026-12-10, before it starts 2026-12-16")


def test_period_ending_before_it_starts(case_item: Factory) -> None:
    data = case_item()
    data["body"]["period"] = {"start": "2024-03-01", "end": "2023-12-31"}
    item_refused(data, "period end 2023-12-31 is before its start 2024-03-01")


def test_phases_out_of_date_order(plan_item: Factory) -> None:
    data = plan_item()
    phases = data["body"]["phases"]
    phases[0], phases[1] = phases[1], phases[0]
    item_refused(data, "phases must be in date order", "'动员部署和自查'")


# ---------------------------------------------------- refusals: plan consistency


def test_lead_site_among_participants(plan_item: Factory) -> None:
    data = plan_item()
    data["body"]["participating_sites"].append("huaibei-duji")
    item_refused(data, "lead_site 'huaibei-duji' must not also be listed")


def test_plan_needs_a_participant(plan_item: Factory) -> None:
    data = plan_item()
    data["body"]["participating_sites"] = []
    item_refused(data, "participating_sites", "at least 1 item")


def test_duplicate_participants(plan_item: Factory) -> None:
    data = plan_item()
    data["body"]["participating_sites"] = ["suzhou-wuzhong", "suzhou-wuzhong"]
    item_refused(data, "participating_sites", "must not repeat 'suzhou-wuzhong'")


@pytest.mark.parametrize(
    ("where", "needle"),
    [
        ("phase", "phase '实地检查' names 'nanjing-gulou'"),
        ("responsibility", "responsibilities name 'nanjing-gulou'"),
        ("finding", "a finding names 'nanjing-gulou'"),
    ],
)
def test_plan_names_an_outside_site(
    plan_item: Factory, where: str, needle: str
) -> None:
    data = plan_item()
    body = data["body"]
    if where == "phase":
        body["phases"][1]["responsible_sites"] = ["nanjing-gulou"]
    elif where == "responsibility":
        body["responsibilities"][1]["site"] = "nanjing-gulou"
    else:
        body["findings"][0]["site"] = "nanjing-gulou"
    item_refused(data, needle)


def test_responsibility_listed_twice(plan_item: Factory) -> None:
    data = plan_item()
    data["body"]["responsibilities"].append(
        {"site": "huaibei-duji", "duties": ["另一项职责"]}
    )
    item_refused(data, "responsibilities list 'huaibei-duji' twice")


def test_plan_author_must_take_part(plan_item: Factory) -> None:
    data = plan_item()
    data["author"] = "nanjing-gulou"
    item_refused(data, "author 'nanjing-gulou' is neither the plan's lead_site")
    data["author"] = "suzhou-wuzhong"
    assert ITEM_ADAPTER.validate_python(data).author == "suzhou-wuzhong"


def test_bad_enums_in_plan(plan_item: Factory) -> None:
    data = plan_item()
    data["body"]["findings"][0]["severity"] = "critical"
    item_refused(data, "severity", "'low', 'medium' or 'high'")
    data = plan_item()
    data["body"]["rectification"][0]["status"] = "closed"
    item_refused(data, "status", "'open', 'in_progress' or 'done'")


@pytest.mark.parametrize(
    ("field", "value"),
    [("phone", "call me"), ("phone", "12"), ("email", "wang@"), ("email", "王@例子")],
)
def test_bad_contact(plan_item: Factory, field: str, value: str) -> None:
    data = plan_item()
    data["body"]["contacts"][0][field] = value
    item_refused(data, f"contacts.0.{field}")


# ------------------------------------------------ refusals: endorsement, refs


def test_decline_with_commitments(endorsement_item: Factory) -> None:
    data = endorsement_item()
    data["body"]["decision"] = "decline"
    item_refused(data, "a declining endorsement must not list commitments")
    data["body"]["commitments"] = []
    item = ITEM_ADAPTER.validate_python(data)
    assert isinstance(item, EndorsementItem)
    assert item.body.decision == "decline"


def test_endorses_ref_must_match_the_plan(
    endorsement_item: Factory, plan_id: str
) -> None:
    data = endorsement_item()
    data["refs"] = [{"rel": "endorses", "id": item_id("另一个方案")}]
    item_refused(data, f"must point at the body's item {plan_id}")


def test_endorses_ref_only_in_endorsements(case_item: Factory) -> None:
    data = case_item()
    data["refs"] = [{"rel": "endorses", "id": AN_ID}]
    item_refused(data, "'endorses' refs are only allowed in endorsement items")
    data["refs"] = [{"rel": "retracts", "id": AN_ID}]
    item_refused(data, "'retracts' refs are only allowed in retraction items")


def test_exclusive_ref_is_optional(endorsement_item: Factory) -> None:
    data = endorsement_item()
    data["refs"] = []
    assert ITEM_ADAPTER.validate_python(data).refs == []


def test_unknown_ref_rel(case_item: Factory) -> None:
    data = case_item()
    data["refs"] = [{"rel": "likes", "id": AN_ID}]
    item_refused(data, "refs.0.rel")


def test_repeated_ref(case_item: Factory) -> None:
    data = case_item()
    data["refs"] = [{"rel": "cites", "id": AN_ID}] * 2
    item_refused(data, f"ref cites {AN_ID} is listed twice")


def test_too_many_refs(case_item: Factory) -> None:
    data = case_item()
    data["refs"] = [{"rel": "cites", "id": item_id(str(n))} for n in range(51)]
    item_refused(data, "refs", "at most 50 items")


# ------------------------------------------------------- refusals: audience


@pytest.mark.parametrize(
    ("circles", "sites", "needle"),
    [
        (["huaihai", "huaihai"], [], "audience.circles"),
        ([], ["huaibei-duji", "huaibei-duji"], "audience.sites"),
    ],
)
def test_duplicate_audience_entries(
    lesson_item: Factory, circles: list[str], sites: list[str], needle: str
) -> None:
    data = lesson_item()
    data["audience"] = {"circles": circles, "sites": sites}
    item_refused(data, needle, "must not repeat")


def test_bad_audience_entry(lesson_item: Factory) -> None:
    data = lesson_item()
    data["audience"] = {"circles": ["Huaihai"], "sites": []}
    item_refused(data, "audience.circles.0", "circle id")


# ------------------------------------------------- refusals: text and tags


def test_too_many_tags(case_item: Factory) -> None:
    data = case_item()
    data["tags"] = [f"标签{n}" for n in range(21)]
    item_refused(data, "tags", "at most 20 items")


def test_tag_too_long_or_repeated(case_item: Factory) -> None:
    data = case_item()
    data["tags"] = ["预" * 41]
    item_refused(data, "tags.0", "at most 40 characters")
    data["tags"] = ["预算", "预算"]
    item_refused(data, "tags", "must not repeat '预算'")


@pytest.mark.parametrize(
    ("title", "needle"),
    [
        ("", "at least 1 character"),
        ("   ", "must not be empty or only whitespace"),
        ("\u3000\u3000", "must not be empty or only whitespace"),
        ("方案\x00", "control character U+0000 (found at position 2)"),
        ("第一行\n第二行", "control character U+000A"),
        ("标题\t", "control character U+0009"),
        ("标题\x7f", "control character U+007F"),
        ("标" * 201, "at most 200 characters"),
    ],
)
def test_bad_title(case_item: Factory, title: str, needle: str) -> None:
    data = case_item()
    data["title"] = title
    item_refused(data, "title", needle)


def test_lone_surrogate_is_refused(case_item: Factory) -> None:
    data = case_item()
    data["title"] = "标题\ud800"
    refused(lambda: ITEM_ADAPTER.validate_python(data), "title", "unicode")


@pytest.mark.parametrize("bad", ["\x00", "\r", "\x1b"])
def test_long_text_refuses_other_controls(lesson_item: Factory, bad: str) -> None:
    data = lesson_item()
    data["body"]["outcomes"] = f"成效{bad}显著"
    item_refused(data, "body.outcomes", f"U+{ord(bad):04X}")


def test_long_text_limit(lesson_item: Factory) -> None:
    data = lesson_item()
    data["body"]["practice"] = "做" * 20_000
    ITEM_ADAPTER.validate_python(data)
    data["body"]["practice"] = "做" * 20_001
    item_refused(data, "body.practice", "at most 20000 characters")


def test_summary_limit_and_blank(case_item: Factory) -> None:
    data = case_item()
    data["summary"] = "摘" * 2001
    item_refused(data, "summary", "at most 2000 characters")


def test_required_body_list_must_not_be_empty(case_item: Factory) -> None:
    data = case_item()
    data["body"]["actions"] = []
    item_refused(data, "body.actions", "at least 1 item")
    data["body"]["actions"] = [" "]
    item_refused(data, "body.actions.0", "only whitespace")


@pytest.mark.parametrize("lang", ["", "zh_CN", "chinese", "ZH", "zh-", "z"])
def test_bad_lang(case_item: Factory, lang: str) -> None:
    data = case_item()
    data["lang"] = lang
    item_refused(data, "lang", "BCP 47")


# ----------------------------------------------------- refusals: attachments


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("name", "../方案.docx", "without '/'"),
        ("name", "方案\\附件.docx", "without '/'"),
        ("name", "..", "not '.' or '..'"),
        ("name", ".", "not '.' or '..'"),
        ("name", "方案\x00.docx", "U+0000"),
        ("name", "", "at least 1 character"),
        ("name", "长" * 256, "at most 255 characters"),
        ("size", 256 * 1024 * 1024 + 1, "less than or equal to 268435456"),
        ("size", -1, "greater than or equal to 0"),
        ("media_type", "application/pdf; charset=x", "media type"),
        ("media_type", "Application/PDF", "media type"),
        ("media_type", "pdf", "media type"),
        ("sha256", "F" * 64, "SHA-256"),
    ],
)
def test_bad_attachment(
    plan_item: Factory, field: str, value: Any, needle: str
) -> None:
    data = plan_item()
    data["attachments"][0][field] = value
    item_refused(data, f"attachments.0.{field}", needle)


def test_attachment_names_are_unique(plan_item: Factory) -> None:
    data = plan_item()
    data["attachments"].append(dict(data["attachments"][0]))
    item_refused(data, "two attachments are named '联合执法检查方案.docx'")


def test_dotted_names_that_are_fine(plan_item: Factory) -> None:
    data = plan_item()
    for name in [".hidden", "...", "..方案", "v1.2.docx"]:
        data["attachments"][0]["name"] = name
        assert ITEM_ADAPTER.validate_python(data).attachments[0].name == name


# ------------------------------------------------------------- the roster


def test_roster_validates(roster_doc: Factory) -> None:
    roster = Roster.model_validate(roster_doc())
    home = roster.home_of("huaibei-duji")
    assert home is not None and home.id == "huaihai-node"
    assert roster.home_of("nanjing-gulou") is None


def test_roster_defaults(roster_doc: Factory) -> None:
    data = roster_doc()
    for field in ("accepted_algs", "required_algs", "monitors"):
        del data[field]
    roster = Roster.model_validate(data)
    assert roster.accepted_algs == ["ed25519"]
    assert roster.required_algs == [] and roster.monitors == []


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (
            lambda d: d["nodes"][1]["sites"].append("huaibei-duji"),
            "site 'huaibei-duji' is listed under nodes 'huaihai-node' and 'yrd-node'",
        ),
        (
            lambda d: d["circles"][0]["members"].append("nanjing-gulou"),
            "circle 'huaihai' lists 'nanjing-gulou', which no node is home to",
        ),
        (
            lambda d: d["nodes"][0]["circles"].append("pearl-delta"),
            "node 'huaihai-node' names unknown circle 'pearl-delta'",
        ),
        (
            lambda d: d["monitors"][0]["sites"].append("nanjing-gulou"),
            "monitor 'huaibei-rd' names unknown site 'nanjing-gulou'",
        ),
        (
            lambda d: d.update(required_algs=["sm2-sm3"]),
            "required alg 'sm2-sm3' is not in accepted_algs",
        ),
        (lambda d: d.update(accepted_algs=[]), "at least 1 item"),
        (lambda d: d["nodes"].append(d["nodes"][0]), "node 'huaihai-node' is listed"),
        (
            lambda d: d["nodes"][0]["keys"].append(d["nodes"][1]["keys"][0]),
            "key yrd-node#k2 does not belong to 'huaihai-node'",
        ),
        (lambda d: d.update(version=0), "greater than or equal to 1"),
        (lambda d: d.update(nodes=[]), "at least 1 item"),
    ],
)
def test_inconsistent_roster(
    roster_doc: Factory, change: Callable[[Json], object], needle: str
) -> None:
    data = roster_doc()
    change(data)
    refused(lambda: Roster.model_validate(data), needle)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://huaihai.example.cn",
        "https://user:pw@huaihai.example.cn",
        "https://huaihai.example.cn/?a=1",
        "https://huaihai.example.cn/#top",
        "https://huaihai.example.cn:99999",
        "https://",
        "huaihai.example.cn",
    ],
)
def test_bad_node_url(roster_doc: Factory, url: str) -> None:
    node = roster_doc()["nodes"][0]
    node["base_url"] = url
    refused(lambda: NodeEntry.model_validate(node), "base_url", "http(s) URL")


def test_key_revoked_before_it_was_valid(make_key: KeyFactory) -> None:
    data = make_key("huaibei-duji", revoked_at="2025-12-31T23:00:00+08:00")
    refused(lambda: KeyEntry.model_validate(data), "is before valid_from")
    # Offsets are compared as instants: 16:30Z is 00:30 the next day in +08:00.
    data["revoked_at"] = "2025-12-31T16:30:00Z"
    assert KeyEntry.model_validate(data).revoked_at == "2025-12-31T16:30:00Z"


def test_site_record(make_key: KeyFactory) -> None:
    record = {
        "id": "huaibei-duji",
        "name": "淮北市杜集区人大常委会",
        "home_node": "huaihai-node",
        "circles": ["huaihai", "yangtze-delta"],
        "keys": [
            make_key("huaibei-duji", 1, revoked_at="2026-06-01T00:00:00+08:00"),
            make_key("huaibei-duji", 2),
        ],
        "version": 2,
        "issued_at": "2026-06-01T00:00:00+08:00",
    }
    assert SiteRecord.model_validate(record).keys[0].owner == "huaibei-duji"
    record["keys"] = [make_key("suzhou-wuzhong")]
    refused(lambda: SiteRecord.model_validate(record), "does not belong")
    record["keys"] = [make_key("huaibei-duji"), make_key("huaibei-duji")]
    refused(lambda: SiteRecord.model_validate(record), "is listed twice")
    record["keys"] = []
    refused(lambda: SiteRecord.model_validate(record), "at least 1 item")


def test_signed_document_wraps_a_roster(roster_doc: Factory, sig: Json) -> None:
    signed = SignedDocument.model_validate({"document": roster_doc(), "sig": sig})
    assert Roster.model_validate(signed.document).version == 3


# ----------------------------------------------------------------- the log

HASH = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


def test_log_models() -> None:
    proof = {"index": 3, "size": 8, "hashes": [HASH] * 3}
    receipt = Receipt.model_validate(
        {
            "item_id": AN_ID,
            "index": 3,
            "checkpoint": f"huaihai.example.cn/log\n8\n{HASH}\n\n— huaihai-node sig\n",
            "inclusion": proof,
        }
    )
    assert receipt.inclusion.size == 8
    checkpoint = Checkpoint.model_validate(
        {"origin": "huaihai.example.cn/log", "size": 8, "root_hash": HASH, "note": "x"}
    )
    assert checkpoint.root_hash == HASH
    growth = ConsistencyProof.model_validate({"size1": 4, "size2": 8, "hashes": [HASH]})
    assert growth.size2 == 8


@pytest.mark.parametrize(
    ("model", "data", "needle"),
    [
        (InclusionProof, {"index": 8, "size": 8, "hashes": []}, "outside a tree"),
        (InclusionProof, {"index": 0, "size": 1, "hashes": ["AAAA"]}, "32-byte hash"),
        (
            InclusionProof,
            {"index": 0, "size": 1, "hashes": [HASH[:-2] + "B="]},
            "32-byte hash",
        ),
        (InclusionProof, {"index": -1, "size": 1, "hashes": []}, "greater than"),
        (InclusionProof, {"index": 0, "size": 2**53, "hashes": []}, "less than"),
        (ConsistencyProof, {"size1": 9, "size2": 8, "hashes": []}, "larger than"),
        (
            Receipt,
            {
                "item_id": AN_ID,
                "index": 2,
                "checkpoint": "note",
                "inclusion": {"index": 3, "size": 8, "hashes": []},
            },
            "inclusion proof is for index 3, receipt for 2",
        ),
    ],
)
def test_bad_log_documents(model: type[BaseModel], data: Json, needle: str) -> None:
    refused(lambda: model.model_validate(data), needle)


# ------------------------------------------------------------------ the API


def test_error_body_reads_codes_from_json() -> None:
    body = ErrorBody.model_validate_json(
        '{"error": {"code": "revoked_key", "message": "密钥已撤销"}}'
    )
    assert body.error.code is ErrorCode.REVOKED_KEY
    from_dict = ErrorBody.model_validate(
        {"error": {"code": "bad_signature", "message": "签名无效", "detail": None}}
    )
    assert from_dict.error.code is ErrorCode.BAD_SIGNATURE
    refused(
        lambda: ErrorDetail.model_validate({"code": "oops", "message": "x"}), "code"
    )


def test_push_models() -> None:
    refused(lambda: PushBatch.model_validate({"items": []}), "at least 1 item")
    refused(lambda: PushBatch.model_validate({"items": [{}] * 501}), "at most 500")
    accepted = {"id": AN_ID, "status": "accepted", "index": 7}
    refusal = {
        "status": "refused",
        "error": {"code": "bad_signature", "message": "签名无效"},
    }
    response = PushResponse.model_validate(
        {"results": [accepted, refusal], "accepted": 1, "duplicates": 0, "refused": 1}
    )
    assert response.results[1].error is not None
    refused(
        lambda: PushResponse.model_validate(
            {"results": [accepted], "accepted": 0, "duplicates": 1, "refused": 0}
        ),
        "do not match the results",
    )


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"status": "refused"}, "must carry an error"),
        ({"status": "accepted", "id": AN_ID}, "must carry id and index"),
        (
            {
                "status": "duplicate",
                "id": AN_ID,
                "index": 1,
                "error": {"code": "conflict", "message": "x"},
            },
            "carries no error",
        ),
        ({"status": "pending", "id": AN_ID, "index": 1}, "status"),
    ],
)
def test_bad_push_result(data: Json, needle: str) -> None:
    refused(lambda: PushResult.model_validate(data), needle)


def test_item_envelope_and_health(plan_item: Factory, sig: Json) -> None:
    envelope = ItemEnvelope.model_validate(
        {
            "index": 0,
            "id": AN_ID,
            "received_at": "2026-11-20T09:30:02+08:00",
            "signed": {"item": plan_item(), "sig": sig},
        }
    )
    assert SignedItem.model_validate(envelope.signed).sig.key == "huaibei-duji#k1"
    health = Health.model_validate({"status": "ok", "checks": {"database": "ok"}})
    assert health.checks == {"database": "ok"}
    refused(lambda: Health.model_validate({"status": "fine"}), "status")


# ------------------------------- the JSON Schema patterns agree with Python

SAMPLES = [
    "标题",
    " 前后空格 ",
    "",
    " ",
    "\u3000",
    "a\nb",
    "a\tb",
    "a\rb",
    "\x00",
    "x\x1f",
    "x\x7f",
    "\n",
    "中文\u00a0混排",
]


@pytest.mark.parametrize("annotation", [Title, Text], ids=["one-line", "multiline"])
def test_text_pattern_matches_python_rules(annotation: Any) -> None:
    adapter: TypeAdapter[str] = TypeAdapter(annotation)
    pattern = adapter.json_schema()["pattern"]
    for sample in SAMPLES:
        try:
            adapter.validate_python(sample)
            python_ok = True
        except ValidationError:
            python_ok = False
        schema_ok = re.search(pattern, sample) is not None and len(sample) >= 1
        assert python_ok == schema_ok, (annotation, sample)
