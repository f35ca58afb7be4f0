"""Every kind, body field, literal value, plan state, step, error and refusal has a label.

A new field or code without a Chinese and an English label fails here, before it
reaches a person as a raw wire name.
"""

from __future__ import annotations

import re
import string
import typing
from typing import Any

import pytest

from exchange.core import plans
from exchange.core.present import BODY_MODELS
from exchange.storage.activity import SECURITY_CODES
from schemas import labels
from schemas.errors import ErrorCode
from schemas.items import KINDS, RefRel
from schemas.kinds import PlanAction, PlanState


def _models() -> dict[str, type[Any]]:
    """Every body model, nested ones included."""
    seen: dict[str, type[Any]] = {}
    todo = list(BODY_MODELS.values())
    while todo:
        m = todo.pop()
        if m.__name__ in seen:
            continue
        seen[m.__name__] = m
        for fi in m.model_fields.values():
            for t in _flatten(fi.annotation):
                if isinstance(t, type) and hasattr(t, "model_fields"):
                    todo.append(t)
    return seen


def _flatten(t: Any) -> list[Any]:
    out = [t]
    for a in typing.get_args(t):
        out += _flatten(a)
    return out


def _literals(t: Any) -> list[str]:
    out: list[str] = []
    for a in _flatten(t):
        if typing.get_origin(a) is typing.Literal:
            out += [str(v) for v in typing.get_args(a)]
    return out


def _ok(label: Any) -> bool:
    zh, en = label
    return (
        bool(re.search(r"[\u4e00-\u9fff]", zh))
        and bool(en.strip())
        and not re.search(r"[\u4e00-\u9fff]", en)
    )


def test_every_kind_has_a_body_model_and_a_label() -> None:
    assert set(BODY_MODELS) == set(KINDS)
    assert set(labels.KIND_LABELS) == set(KINDS)
    assert all(_ok(v) for v in labels.KIND_LABELS.values())


@pytest.mark.parametrize("name", sorted(_models()))
def test_every_field_and_value_is_labelled(name: str) -> None:
    model = _models()[name]
    have = labels.FIELD_LABELS.get(name, {})
    missing = [f for f in model.model_fields if f not in have]
    assert not missing, f"{name}: no label for {missing} in schemas/labels.py"
    assert set(have) <= set(model.model_fields), f"{name}: labels for unknown fields"
    assert all(_ok(v) for v in have.values()), name
    for field, fi in model.model_fields.items():
        values = labels.VALUE_LABELS.get(field, {})
        for value in _literals(fi.annotation):
            assert value in values, f"{name}.{field}: no label for value {value!r}"
            assert _ok(values[value])


def test_states_steps_rels_refusals() -> None:
    assert set(labels.STATE_LABELS) == set(typing.get_args(PlanState))
    assert set(plans.STATES) == set(labels.STATE_LABELS)
    assert set(typing.get_args(PlanAction)) <= set(labels.STEP_LABELS)
    assert set(plans.STEPS) == set(labels.STEP_LABELS) == set(labels.STEP_VERBS)
    assert set(labels.REL_LABELS) == set(typing.get_args(RefRel))
    assert set(plans.REASONS) == set(labels.REFUSAL_LABELS)
    for table in (labels.STATE_LABELS, labels.STEP_LABELS, labels.REFUSAL_LABELS):
        assert all(_ok(v) for v in table.values())


def test_every_refusal_message_fills_in() -> None:
    """Each template names only placeholders the state machine provides."""
    fmt = string.Formatter()
    for code, (zh, en) in labels.REFUSAL_MESSAGES.items():
        for tpl in (zh, en):
            names = {f for _, f, _, _ in fmt.parse(tpl) if f}
            assert names <= plans.MESSAGE_FIELDS, (code, names - plans.MESSAGE_FIELDS)
    used = set(plans.MESSAGE_CODES)
    assert used == set(labels.REFUSAL_MESSAGES), used ^ set(labels.REFUSAL_MESSAGES)


def test_every_error_and_security_code() -> None:
    codes = {c.value for c in ErrorCode}
    assert set(labels.ERROR_LABELS) == codes
    assert all(_ok(v) for v in labels.ERROR_LABELS.values())
    assert SECURITY_CODES <= set(labels.SECURITY_ADVICE)
    for what, todo in labels.SECURITY_ADVICE.values():
        assert _ok(what) and _ok(todo)
