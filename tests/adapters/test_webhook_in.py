"""The ``webhook`` source: a real HTTP endpoint on 127.0.0.1 for the site's system."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.base import AdapterContext, AdapterError
from adapters.webhook import WebhookSource, WebhookSourceConfig
from exchange.core.items import item_id, sign_item

pytestmark = pytest.mark.asyncio

TOKEN = "tok-3f9a1c"
HMAC_KEY = "hmac-key-77"

LESSON_TEXT = (
    "【背景】区人大常委会推行民生实事项目人大代表票决制。\n"
    "【做法】政府提出候选项目，代表大会无记名投票确定。\n"
    "【成效】三年票决项目32个，完成率100%。\n"
    "【推广】适用于各县区人代会。"
)


def _ctx(tmp_path: Path) -> AdapterContext:
    return AdapterContext(
        "huaibei-duji", tmp_path / "webhook", logging.getLogger("test.webhook")
    )


def _config(**over: Any) -> WebhookSourceConfig:
    raw: dict[str, Any] = {
        "type": "webhook",
        "name": "oa-push",
        "listen": "127.0.0.1:0",
        "path": "/exchange/documents",
        "token": TOKEN,
        "hmac_secret": HMAC_KEY,
        "circles": ["huaihai"],
        "max_bytes": 64 * 1024,
    }
    raw.update(over)
    return WebhookSourceConfig.model_validate(raw)


@pytest.fixture
async def source(tmp_path: Path) -> AsyncIterator[WebhookSource]:
    src = WebhookSource(_config(), _ctx(tmp_path))
    await src.start()
    try:
        yield src
    finally:
        await src.close()


def _headers(body: bytes, *, token: str = TOKEN, key: str = HMAC_KEY) -> dict[str, str]:
    sig = "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Authorization": f"Bearer {token}",
        "X-Signature-256": sig,
        "Content-Type": "application/json",
    }


Poster = Callable[..., Any]


async def _post(
    src: WebhookSource, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    url = f"http://127.0.0.1:{src.port}/exchange/documents"
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            url, data=body, headers=headers if headers is not None else _headers(body)
        ) as r,
    ):
        return r.status, await r.json()


def _draft_doc() -> dict[str, Any]:
    return {
        "kind": "lesson",
        "title": "民生实事项目代表票决制",
        "created_at": "2021-10-28T09:30:00+08:00",
        "tags": ["票决制"],
        "body": {
            "practice": "政府提出候选项目，代表大会票决。",
            "conditions": "县区人代会。",
            "outcomes": "三年票决项目32个。",
            "applicability": ["各县区"],
        },
    }


async def test_posted_documents_are_queued_durably_and_polled(
    source: WebhookSource, tmp_path: Path
) -> None:
    d1 = json.dumps(_draft_doc(), ensure_ascii=False).encode()
    status, out = await _post(source, d1)
    assert status == 202 and out["seq"] == 1 and out["status"] == "queued"
    simple = {
        "title": "代表票决制经验",
        "text": LESSON_TEXT,
        "created_at": "2021年10月29日",
        "files": [
            {
                "name": "票决办法.docx",
                "media_type": "application/msword",
                "content_base64": base64.b64encode(b"doc bytes").decode(),
            }
        ],
    }
    d2 = json.dumps(simple, ensure_ascii=False).encode()
    status, out2 = await _post(source, d2)
    assert status == 202 and out2["seq"] == 2
    res = await source.poll({})
    assert [d.ref for d in res.drafts] == ["webhook #1", "webhook #2"]
    first, second = (d.item for d in res.drafts)
    assert item_id(first) == out["id"] and item_id(second) == out2["id"]
    assert first["author"] == "huaibei-duji" and first["audience"]["circles"] == [
        "huaihai"
    ]
    assert second["body"]["outcomes"] == "三年票决项目32个，完成率100%。"
    assert second["created_at"] == "2021-10-29T00:00:00+08:00"
    assert [(a.name, a.data) for a in res.drafts[1].attachments] == [
        ("票决办法.docx", b"doc bytes")
    ]
    assert res.state == {"after": 2}
    # Polling the old state again (the runner crashed before saving): the same items.
    again = await source.poll({})
    assert [d.item for d in again.drafts] == [first, second]
    # A restarted adapter forgets acknowledged files and keeps numbering.
    await source.close()
    src2 = WebhookSource(_config(), _ctx(tmp_path))
    try:
        assert (await src2.poll(res.state)).drafts == []
        assert list((tmp_path / "webhook" / "inbox").glob("0*.json")) == []
        status, out3 = await _post(src2, d1)
        assert status == 202 and out3["seq"] == 3 and out3["id"] == out["id"]
        nxt = await src2.poll(res.state)
        assert [d.item for d in nxt.drafts] == [first]
    finally:
        await src2.close()


@pytest.mark.parametrize(
    ("case", "status", "code", "words"),
    [
        ("no token", 401, "unauthenticated", "token"),
        ("wrong hmac", 401, "bad_signature", "X-Signature-256"),
        ("tampered body", 401, "bad_signature", "does not match"),
        ("not json", 400, "bad_json", "JSON"),
        ("a list", 400, "bad_json", "object"),
        ("unknown field", 400, "schema_invalid", "colour"),
        ("no text", 400, "schema_invalid", "text"),
        ("missing body field", 422, "schema_invalid", "outcomes"),
        ("other author", 400, "schema_invalid", "author"),
        ("text without sections", 422, "schema_invalid", "conditions"),
        ("bad file", 400, "schema_invalid", "base64"),
        ("too large", 413, "too_large", "larger"),
    ],
)
async def test_bad_posts_are_refused_and_nothing_is_queued(
    source: WebhookSource, case: str, status: int, code: str, words: str
) -> None:
    doc: Any = _draft_doc()
    headers: dict[str, str] | None = None
    if case == "unknown field":
        doc = {"title": "x", "text": LESSON_TEXT, "colour": "red"}
    elif case == "no text":
        doc = {"title": "x"}
    elif case == "missing body field":
        del doc["body"]["outcomes"]
    elif case == "other author":
        doc["author"] = "suzhou-wuzhong"
    elif case == "text without sections":
        doc = {"title": "一段话", "text": "只有一段话。"}
    elif case == "bad file":
        doc["files"] = [
            {
                "name": "a.pdf",
                "media_type": "application/pdf",
                "content_base64": "not base64!",
            }
        ]
    elif case == "a list":
        doc = [doc]
    body = json.dumps(doc, ensure_ascii=False).encode()
    if case == "not json":
        body = b"{title: oops"
    if case == "too large":
        body = b"{" + b" " * (100 * 1024) + b"}"
    if case == "no token":
        headers = _headers(body)
        del headers["Authorization"]
    elif case == "wrong hmac":
        headers = _headers(body, key="other-key")
    elif case == "tampered body":
        headers = _headers(body)
        body = body.replace(b"32", b"99").replace(b"lesson", b"lessom")
    status_got, out = await _post(source, body, headers)
    assert status_got == status, out
    assert out["error"]["code"] == code
    assert words in out["error"]["message"]
    assert (await source.poll({})).drafts == []


async def test_config_needs_a_secret(tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match="token or an hmac_secret"):
        WebhookSource(_config(token="", hmac_secret=""), _ctx(tmp_path))
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    src = WebhookSource(
        _config(token="", token_file=str(token_file), hmac_secret=""), _ctx(tmp_path)
    )
    try:
        await src.start()
        body = json.dumps(_draft_doc()).encode()
        status, _ = await _post(src, body, {"Authorization": "Bearer from-file"})
        assert status == 202
    finally:
        await src.close()


async def test_posted_items_are_accepted_by_a_real_node(
    source: WebhookSource, node_factory: Any
) -> None:
    node = await node_factory()
    key = await node.add_site("huaibei-duji", "淮北市杜集区人大常委会", ("huaihai",))
    body = json.dumps(
        {"title": "代表票决制经验", "text": LESSON_TEXT}, ensure_ascii=False
    ).encode()
    status, out = await _post(source, body)
    assert status == 202
    (draft,) = (await source.poll({})).drafts
    async with node.client("huaibei-duji") as client:
        pushed = await client.push(sign_item(draft.item, key))
    assert pushed["status"] == "accepted" and pushed["id"] == out["id"]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b'{"title": "a", "title": "b", "text": "x"}', "duplicate"),
        (b'{"title": "a", "text": "x", "n": 1.5}', "float|fraction"),
        (b'{"title": "a", "text": "x", "n": 123456789012345678901234567890}', "range"),
        (b'{"title": "\xff"}', "UTF-8|utf-8"),
    ],
)
async def test_body_is_parsed_with_the_strict_parser(
    source: WebhookSource, body: bytes, why: str
) -> None:
    status, doc = await _post(source, body)
    assert status == 400
    assert doc["error"]["code"] == "bad_json"
    assert re.search(why, doc["error"]["message"]), doc["error"]["message"]
