"""The pure tokenizer, query parser and highlighter (no database)."""

from __future__ import annotations

import pytest

from exchange.core.search_text import (
    MAX_QUERY_CHARS,
    MAX_TERMS,
    highlight,
    item_texts,
    normalize,
    parse_query,
    snippet,
    tokens,
    tsvector_literal,
)
from exchange.errors import InputError
from exchange.templates import template


def test_cjk_bigrams_words_and_full_width() -> None:
    assert tokens("安全生产法") == [
        ("安全", 0),
        ("全生", 1),
        ("生产", 2),
        ("产法", 3),
        ("法", 4),
    ]
    assert tokens("ＡＰＰ投诉12345热线") == [
        ("app", 0),
        ("投诉", 1),
        ("诉", 2),
        ("12345", 3),
        ("热线", 4),
        ("线", 5),
    ]
    assert tokens("《安全》、“法”!? <b>x</b>") == [
        ("安全", 0),
        ("全", 1),
        ("法", 2),
        ("b", 3),
        ("x", 4),
        ("b", 5),
    ]


def test_document_covers_title_tags_summary_and_every_body_string() -> None:
    lit = tsvector_literal(template("inspection_plan"))
    assert "'安全':1A" in lit  # title
    assert "'执法':" in lit and "C" in lit  # body, weight C
    assert "sha256" not in lit
    for kind in ("case_study", "lesson", "endorsement", "retraction"):
        assert tsvector_literal(template(kind))


def test_queries_become_and_of_lexemes_phrases_and_prefixes() -> None:
    assert parse_query("安全生产法").tsquery == "('安全' & '全生' & '生产' & '产法')"
    assert parse_query("执法检查 方案").tsquery == "('执法' & '法检' & '检查') & '方案'"
    assert (
        parse_query('"执法检查 方案"').tsquery
        == "('执法' <-> '法检' <-> '检查' <2> '方案')"
    )
    assert parse_query("12345热线").tsquery == "('12345' & '热线')"
    assert parse_query("法").tsquery == "'法':*"
    assert parse_query("APP").tsquery == "'app'"


@pytest.mark.parametrize(
    ("q", "expect"),
    [
        ("'; DROP TABLE items; --", "'drop' & 'table' & 'items'"),
        ('"unbalanced 安全', "'unbalanced' & '安全'"),
        ("a & b | !c <-> d:*", "'a' & 'b' & 'c' & 'd'"),
        (r"^.*(安全)+[a-z]{2,}$", "('安全' & 'a' & 'z' & '2')"),
        ("\\' OR 1=1", "'or' & ('1' & '1')"),
    ],
)
def test_metacharacters_are_never_operators(q: str, expect: str) -> None:
    assert parse_query(q).tsquery == expect


@pytest.mark.parametrize(
    "q", ["", "   ", "!!!", "。，、；：？！“”《》", '"""', "---", "'", "\x00\x01"]
)
def test_nothing_to_search_is_refused(q: str) -> None:
    with pytest.raises(InputError) as e:
        parse_query(q)
    assert e.value.code.value == "query_invalid"


def test_long_and_wide_queries_are_refused() -> None:
    with pytest.raises(InputError, match="200"):
        parse_query("安" * 10_000)
    assert parse_query("安" * MAX_QUERY_CHARS).terms
    with pytest.raises(InputError, match=str(MAX_TERMS)):
        parse_query(" ".join(f"w{i}" for i in range(MAX_TERMS + 1)))


def test_highlight_escapes_html_and_marks_matches() -> None:
    q = parse_query("安全 script")
    out = highlight('<script>alert("安全")</script> & 安全生产', q)
    assert "<script>" not in out and "&lt;" in out and "&amp;" in out
    assert out.count("<mark>") == 4
    assert "<mark>安全</mark>生产" in out


def test_snippet_picks_the_text_with_the_matches() -> None:
    item = template("inspection_plan")
    out = snippet(item_texts(item), parse_query("动员会"))
    assert "<mark>动员会</mark>" in out
    assert len(out.replace("<mark>", "").replace("</mark>", "")) <= 95
    assert snippet(["无关内容" * 50], parse_query("安全")).endswith("…")


def _reference_literal(fields: list[tuple[str, str]]) -> list[str]:
    """The tsvector entries built the plain way, from :func:`tokens`, one at a time."""
    out, base = [], 1
    for weight, text in fields:
        toks = tokens(text)
        out += [f"'{t}':{min(base + p, 16383)}{weight}" for t, p in toks]
        base += (
            toks[-1][1] + 1 if toks else 0
        ) + 8  # the field's positions, then a gap
    return out


@pytest.mark.parametrize("seed", range(40))
def test_document_literal_equals_the_plain_construction(seed: int) -> None:
    """The fast literal (str.join over zip) is entry for entry the plain one."""
    import random

    rnd = random.Random(seed)
    alphabet = "安全生产法执法检查人大常委会ＡＰＰabc12 3,.!？。\U00020bb7"
    title = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 40)))
    summary = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 3000)))
    item = {"title": title, "summary": summary}
    got = tsvector_literal(item).split(" ") if tokens(title) or tokens(summary) else []
    fields = [("A", title)] + ([("B", summary)] if summary else [])
    assert got == _reference_literal(fields)


@pytest.mark.parametrize("seed", range(20))
def test_normalize_is_nfkc_and_casefold(seed: int) -> None:
    """The shortcut for full-width punctuation gives what NFKC itself gives, also next
    to combining marks, compatibility ideographs and full-width letters."""
    import random
    import unicodedata

    rnd = random.Random(seed)
    alphabet = "，；：（）！？　。、ＡＢｃ１Ⅻ①ﬁ\u0301\u0338\u3099か豈e安全法 ,A"
    text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 200)))
    assert normalize(text) == unicodedata.normalize("NFKC", text).casefold()


def test_positions_past_the_last_are_clamped_as_postgresql_does() -> None:
    """A field that runs past position 16383 is written clamped, entry for entry as
    the plain construction (a long CJK run straddling the limit, then words)."""
    summary = "执法检查" * 4100 + "，app 12345 安全生产"
    item = {"title": "标题", "summary": summary}
    got = tsvector_literal(item).split(" ")
    assert got == _reference_literal([("A", "标题"), ("B", summary)])


@pytest.mark.parametrize("seed", range(40))
def test_chinese_prose_literal_equals_the_plain_construction(seed: int) -> None:
    """Fields of CJK runs and punctuation only (written all runs at once) give, entry
    for entry, the plain construction too: runs of one character, empty fields,
    fields of punctuation only, astral ideographs, kana, full-width punctuation."""
    import random

    rnd = random.Random(seed)
    alphabet = "安全生产法执法检查人大常委会，。、；：（）《》 　！？かカ\U00020bb7豈"
    fields = [
        ("A", "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 30)))),
        ("B", "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 4000)))),
    ]
    item = {"title": fields[0][1], "summary": fields[1][1]}
    text = tsvector_literal(item)
    got = text.split(" ") if text else []
    assert got == _reference_literal([f for f in fields if f[0] == "A" or f[1]])


def test_chinese_prose_past_the_last_position_is_clamped() -> None:
    summary = "执法检查，" * 4200
    item = {"title": "标题", "summary": summary}
    got = tsvector_literal(item).split(" ")
    assert got == _reference_literal([("A", "标题"), ("B", summary)])


async def test_head_is_postgresqls_ts_filter_of_the_document(pg_url: str) -> None:
    """The ranking vector cut by the tokenizer equals what PostgreSQL's ``ts_filter``
    keeps of the whole vector (the node stores it instead of computing it per row)."""
    import asyncpg

    from exchange.core.search_text import tsvector_literals

    items = [template(k) for k in ("case_study", "lesson", "inspection_plan")]
    items.append({**template("lesson"), "tags": ["预算", "ＡＰＰ监督"], "summary": ""})
    long = template("case_study")
    long["body"] = {
        **long["body"],
        "background": "执法检查" * 40_000,
    }  # past the budget
    long["attachments"] = [{"name": "方案.pdf", "sha256": "0" * 64, "size": 1}]
    items.append(long)
    conn = await asyncpg.connect(pg_url)
    try:
        for item in items:
            doc, head = tsvector_literals(item)
            assert doc.startswith(head) and head
            assert await conn.fetchval(
                "SELECT ts_filter($1::tsvector, '{a,b}') = $2::tsvector", doc, head
            ), item["kind"]
            assert tsvector_literal(item) == doc
            assert tsvector_literal(item, head=True) == head
    finally:
        await conn.close()
