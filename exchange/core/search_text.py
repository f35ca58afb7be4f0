"""Search text without a segmentation dictionary: CJK bigrams, Latin words, snippets.

Pure code (no I/O). The node indexes every item as a PostgreSQL ``tsvector`` built here,
so the same index works on the embedded PostgreSQL and on any managed one: no Chinese
word-segmentation extension is needed.

Tokens
------
Text is NFKC-normalised and case-folded (full-width ``ＡＰＰ１２３`` → ``app123``), then split
into *runs*:

* a **CJK run** (Han ideographs, kana) of characters ``c0 … cn-1`` gives the unigram
  ``ci`` and the bigram ``ci ci+1`` at position ``p + i``: ``安全生产法`` → 安 安全 全 全生 生
  生产 产 产法 法. A query of one character finds its unigram; longer ones find bigrams.
* a **word run** (letters and digits of any other script) is one lexeme: ``12345``,
  ``app``. ``12345热线`` is the word ``12345`` followed by the run ``热线``.
* everything else (punctuation, symbols, spaces) separates runs and is never indexed,
  so no query can carry a ``tsquery`` operator, a quote or a regex metacharacter.

Fields carry weights for ``ts_rank_cd``: title and tags ``A``, summary ``B``, the body's
text (walked generically, whatever the kind) ``C``, attachment names ``D``. Fields are
separated by a gap of positions so that no cover spans two fields.

Queries
-------
Whitespace separates *terms*; every term must match (AND). Inside a term all lexemes
must occur (``执法检查`` → 执法 & 法检 & 检查); cover-density ranking then rewards the
documents where they stand together. A term in double quotes is a strict phrase
(lexemes adjacent, ``<->``). An unbalanced quote is ignored. Queries are capped
(:data:`MAX_QUERY_CHARS`, :data:`MAX_TERMS`) so that no request turns into a slow scan.
"""

from __future__ import annotations

import functools
import html
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any, NamedTuple

from exchange.errors import InputError
from schemas.errors import ErrorCode

from .present import BODY_MODELS, body_blocks

__all__ = [
    "MAX_QUERY_CHARS",
    "MAX_TERMS",
    "TOKENIZER_VERSION",
    "Lexeme",
    "SearchQuery",
    "Term",
    "highlight",
    "item_texts",
    "normalize",
    "parse_query",
    "snippet",
    "tokens",
    "tsvector_literal",
    "tsvector_literals",
]

TOKENIZER_VERSION = 1
"""Bumped whenever tokens change; rows indexed by an older version are rebuilt."""

MAX_QUERY_CHARS = 200
"""Longest query accepted (characters, after trimming)."""

MAX_TERMS = 12
"""Most whitespace-separated terms in one query."""

_MAX_POS = 16383  # PostgreSQL's largest tsvector position
_MAX_INDEXED_CHARS = 60_000  # per item; longer bodies are indexed up to here
_FIELD_GAP = 8
_MAX_WALK = 5_000  # JSON nodes visited per item body

_CJK = (
    "\u3040-\u30ff"  # hiragana, katakana
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uf900-\ufaff"  # compatibility ideographs
    "\U00020000-\U0003134f"  # extensions B–G
)
_RUN = re.compile(f"(?P<cjk>[{_CJK}]+)|(?P<word>[^\\W_{_CJK}]+)")
_SKIP_VALUE = re.compile(
    r"^(?:sha256:[0-9a-f]{64}|[0-9a-f]{64}|\d{4}-\d{2}-\d{2}(?:[T ][0-9:.+\-Z]*)?)$"
)
_CJK_CHAR = re.compile(f"[{_CJK}]")
_CJK_RUN = re.compile(f"[{_CJK}]+")
_WORD_CHAR = re.compile(f"[^\\W_{_CJK}]")  # a character of a word run
_MAX_WORD = 40  # longer "words" (hashes, base64) are cut


# Full-width punctuation common in Chinese prose, with its NFKC mapping (each maps to
# one ASCII character that maps to nothing further, so replacing them first does not
# change what NFKC gives). ``str.replace`` is far cheaper than a full NFKC pass, which
# most Chinese text would otherwise need for its commas alone.
_WIDE_PUNCTUATION = tuple(
    (c, unicodedata.normalize("NFKC", c)) for c in "，；：（）！？　"
)


def normalize(text: str) -> str:
    """NFKC and case folding, as both documents and queries are normalised."""
    if not unicodedata.is_normalized("NFKC", text):  # a quick check, most text is
        for wide, narrow in _WIDE_PUNCTUATION:
            text = text.replace(wide, narrow)
        if not unicodedata.is_normalized("NFKC", text):
            text = unicodedata.normalize("NFKC", text)
    return text.casefold()


@dataclass(frozen=True)
class _Run:
    cjk: bool
    text: str


def _runs(text: str) -> Iterator[_Run]:
    for m in _RUN.finditer(normalize(text)):
        cjk = m.group("cjk")
        if cjk is not None:
            yield _Run(True, cjk)
        else:
            yield _Run(False, m.group("word")[:_MAX_WORD])


def tokens(text: str) -> list[tuple[str, int]]:
    """Lexemes of ``text`` with their positions (from 0), in order.

    A CJK run gives its bigrams and its last character (so that a one-character query,
    searched as a prefix, finds every occurrence); a word run gives itself.

    >>> tokens("APP投诉热线")
    [('app', 0), ('投诉', 1), ('诉热', 2), ('热线', 3), ('线', 4)]
    """
    out: list[tuple[str, int]] = []
    pos = 0
    for run in _runs(text):
        t = run.text
        if run.cjk:
            out.extend(
                zip(
                    map(str.__add__, t, t[1:]),
                    range(pos, pos + len(t) - 1),
                    strict=True,
                )
            )
            out.append((t[-1], pos + len(t) - 1))
            pos += len(t)
        else:
            out.append((t, pos))
            pos += 1
    return out


# -------------------------------------------------------------------- documents


def _walk_strings(value: Any) -> Iterator[str]:
    """Every string value in a JSON tree (keys excluded), depth-first, bounded."""
    stack: list[Any] = [value]
    seen = 0
    while stack and seen < _MAX_WALK:
        v = stack.pop()
        seen += 1
        if isinstance(v, str):
            if not _SKIP_VALUE.match(v):
                yield v
        elif isinstance(v, Mapping):
            stack.extend(reversed(list(v.values())))
        elif isinstance(v, list | tuple):
            stack.extend(reversed(v))


def _fields(item: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(weight, text) of every searchable field of an item, heaviest first."""
    yield ("A", str(item.get("title", "")))
    tags = item.get("tags") or []
    if isinstance(tags, list):
        for t in tags:
            yield ("A", str(t))
    summary = item.get("summary")
    if isinstance(summary, str) and summary:
        yield ("B", summary)
    for s in _walk_strings(item.get("body")):
        yield ("C", s)
    for att in item.get("attachments") or []:
        if isinstance(att, Mapping) and isinstance(att.get("name"), str):
            yield ("D", att["name"])


def item_texts(item: Mapping[str, Any]) -> list[str]:
    """The texts a snippet may be cut from: summary first, then the body's prose.

    Codes (``approve``, ``endorse``), dates, ids and site ids are not prose and never
    make a snippet; a person reads them labelled, on the item's page.
    """
    texts: list[str] = []
    summary = item.get("summary")
    if isinstance(summary, str) and summary.strip():
        texts.append(summary)
    body = item.get("body")
    kind = str(item.get("kind", ""))
    try:
        blocks = (
            body_blocks(kind, body)
            if kind in BODY_MODELS and isinstance(body, Mapping)
            else None
        )
    except (AttributeError, KeyError, TypeError, ValueError):  # not schema-shaped
        blocks = None
    if blocks is None:
        texts.extend(s for s in _walk_strings(body) if s.strip())
    lines: list[str] = []  # one-line facts (a meeting, a body) only after the prose
    for b in blocks or []:
        if b.shape in ("text", "list"):
            texts.extend(s for s in b.value if s.strip())
        elif b.shape == "line":
            lines.append(b.value)
        elif b.shape == "phases":
            for ph in b.value:
                texts.extend([ph["name"], *ph["activities"]])
        elif b.shape == "table":
            texts.extend(
                line
                for row in b.value.rows
                for c in row
                if not (c.code or c.names)
                for line in c.lines
            )
    texts.extend(lines)
    for att in item.get("attachments") or []:
        if isinstance(att, Mapping) and isinstance(att.get("name"), str):
            texts.append(att["name"])
    return texts


def _quote(lexeme: str) -> str:
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


@functools.cache
def _pos_suffixes(weight: str) -> tuple[str, ...]:
    """``"':<pos><weight> "`` for every position PostgreSQL keeps (built once per weight)."""
    return tuple(f"':{p}{weight} " for p in range(_MAX_POS + 1))


def _lay_out(
    out: list[str], chars: str, second: list[str], suffixes: Sequence[str]
) -> None:
    """Append the four pieces of each character's entry (see :func:`_field_literal`)
    by extended-slice assignment: no Python-level loop, no object per entry."""
    k = len(out)
    out.extend(repeat("'", 4 * len(chars)))
    out[k + 1 :: 4] = chars
    out[k + 2 :: 4] = second
    out[k + 3 :: 4] = suffixes


def _field_literal(text: str, base: int, weight: str, out: list[str]) -> int:
    """Append the pieces of one field's ``'lexeme':posW `` entries to ``out``; return
    the next base (the caller joins the pieces once).

    Lexemes come from :data:`_RUN`, so they never hold a quote or a backslash and need
    no escaping; PostgreSQL merges repeated lexemes, sorts them, keeps the first 256
    positions of each and clamps positions above 16383.

    An entry is four pieces: ``'``, its first character (or word), the bigram's second
    character (empty for a run's last character and for words) and the precomputed
    ``':<pos><weight> `` suffix. A CJK run's pieces are laid out by extended-slice
    assignment, with no Python-level loop and no object per bigram: indexing is on the
    write path, and a 2 KB Chinese item holds hundreds of bigrams.
    """
    pos = base
    suffixes = _pos_suffixes(weight)
    text = normalize(text)
    if _WORD_CHAR.search(text) is None:  # only CJK runs (Chinese prose): all at once
        runs = _CJK_RUN.findall(text)
        chars = "".join(runs)
        n = len(chars)
        if not n:
            return pos
        if pos + n - 1 <= _MAX_POS:
            # The runs' characters side by side take consecutive positions, as run
            # after run would; a run's last character has no bigram partner.
            second = list(chars[1:])
            second.append("")
            end = 0
            for run in runs:
                end += len(run)
                second[end - 1] = ""
            _lay_out(out, chars, second, suffixes[pos : pos + n])
            return pos + n
    for m in _RUN.finditer(text):
        t = m.group()
        if m.lastgroup == "cjk":
            n = len(t)
            last = pos + n - 1
            if last <= _MAX_POS:
                second = list(t[1:])
                second.append("")
                _lay_out(out, t, second, suffixes[pos : last + 1])
            else:  # past PostgreSQL's last position: write it clamped, as it would
                for i in range(n):
                    out += ("'", t[i : i + 2], "", suffixes[min(pos + i, _MAX_POS)])
            pos += n
        else:
            out += ("'", t[:_MAX_WORD], "", suffixes[min(pos, _MAX_POS)])
            pos += 1
    return pos


def tsvector_literal(item: Mapping[str, Any], *, head: bool = False) -> str:
    """The item's ``tsvector`` in PostgreSQL's input syntax (cast with ``::tsvector``).

    Positions start at 1. Text beyond :data:`_MAX_INDEXED_CHARS` is not indexed.

    Args:
        item: The item object.
        head: Only the title, tags and summary (the small vector ranking reads).
    """
    doc, head_text = tsvector_literals(item)
    return head_text if head else doc


def tsvector_literals(item: Mapping[str, Any]) -> tuple[str, str]:
    """``(doc, head)``: the item's whole ``tsvector`` literal and its title, tags and
    summary part, built in one pass.

    The ``A`` and ``B`` fields come first, so ``head`` is the leading part of ``doc``'s
    entries and equals PostgreSQL's ``ts_filter(doc, '{a,b}')`` (which the node no
    longer has to compute per row).
    """
    out: list[str] = []
    base = 1
    budget = _MAX_INDEXED_CHARS
    head_end = -1
    for weight, text in _fields(item):
        if head_end < 0 and weight not in ("A", "B"):
            head_end = len(out)
        if budget <= 0 or base > _MAX_POS:
            break
        text = text[:budget]
        budget -= len(text)
        base = (
            _field_literal(text, base, "" if weight == "D" else weight, out)
            + _FIELD_GAP
        )
    doc = "".join(out)[:-1]  # every entry ends with a space
    if head_end < 0:
        return doc, doc
    return doc, "".join(out[:head_end])[:-1]


# ---------------------------------------------------------------------- queries


class Lexeme(NamedTuple):
    """A lexeme a query term needs, at its position relative to the term's start."""

    text: str
    pos: int
    prefix: bool = False  # a lone CJK character: matches every bigram it starts

    def tsquery(self) -> str:
        """As a ``tsquery`` operand."""
        return _quote(self.text) + (":*" if self.prefix else "")


@dataclass(frozen=True)
class Term:
    """One query term: its lexemes in order, and whether they must be adjacent."""

    text: str
    lexemes: tuple[Lexeme, ...]
    phrase: bool = False
    runs: tuple[str, ...] = ()  # normalised runs, for highlighting

    def tsquery(self) -> str:
        """This term as ``tsquery`` text."""
        lex = self.lexemes
        if len(lex) == 1:
            return lex[0].tsquery()
        if not self.phrase:
            return "(" + " & ".join(x.tsquery() for x in lex) + ")"
        parts = [lex[0].tsquery()]
        for a, b in zip(lex, lex[1:], strict=False):
            gap = b.pos - a.pos
            parts.append(f"<{gap}>" if gap != 1 else "<->")
            parts.append(b.tsquery())
        return "(" + " ".join(parts) + ")"


@dataclass(frozen=True)
class SearchQuery:
    """A parsed query: its terms and the ``tsquery`` text that ANDs them."""

    text: str
    terms: tuple[Term, ...] = field(default_factory=tuple)

    @property
    def tsquery(self) -> str:
        """``tsquery`` input text (pass as a parameter, cast with ``::tsquery``)."""
        return " & ".join(t.tsquery() for t in self.terms)

    @property
    def tsquery_any(self) -> str:
        """``tsquery`` text matching any of the lexemes (for partial-match ranking)."""
        seen = dict.fromkeys(x.tsquery() for t in self.terms for x in t.lexemes)
        return " | ".join(seen)

    @property
    def runs(self) -> tuple[str, ...]:
        """Normalised runs of every term (for highlighting)."""
        return tuple(r for t in self.terms for r in t.runs)


def _query_lexemes(text: str) -> tuple[tuple[Lexeme, ...], tuple[str, ...]]:
    """What a term must match: bigrams of CJK runs (a prefix if one char), words."""
    lex: list[Lexeme] = []
    runs: list[str] = []
    pos = 0
    for run in _runs(text):
        t = run.text
        runs.append(t)
        if run.cjk:
            if len(t) == 1:
                lex.append(Lexeme(t, pos, prefix=True))
            else:
                lex.extend(Lexeme(t[i : i + 2], pos + i) for i in range(len(t) - 1))
            pos += len(t)
        else:
            lex.append(Lexeme(t, pos))
            pos += 1
    return tuple(lex), tuple(runs)


def _split_terms(q: str) -> list[tuple[str, bool]]:
    """Whitespace-separated chunks; balanced ``"..."`` groups are phrases."""
    out: list[tuple[str, bool]] = []
    quotes = q.count('"')
    if quotes % 2:  # unbalanced: quotes mean nothing
        q = q.replace('"', " ")
        quotes = 0
    if quotes:
        for i, part in enumerate(q.split('"')):
            if i % 2 and part.strip():
                out.append((part.strip(), True))
            else:
                out.extend((w, False) for w in part.split())
    else:
        out = [(w, False) for w in q.split()]
    return out


def parse_query(q: str) -> SearchQuery:
    """Parse a user's query.

    Args:
        q: The query as typed.

    Returns:
        The parsed query (at least one term).

    Raises:
        InputError: (``query_invalid``) empty, too long, too many terms, or nothing
            searchable in it (only punctuation or symbols).
    """
    text = q.strip()
    if not text:
        raise InputError(
            "搜索词为空 / the query is empty: type a word, e.g. 安全生产法",
            code=ErrorCode.QUERY_INVALID,
        )
    if len(text) > MAX_QUERY_CHARS:
        raise InputError(
            f"搜索词过长 / the query has {len(text)} characters; at most "
            f"{MAX_QUERY_CHARS} are searched — shorten it to its key words",
            code=ErrorCode.QUERY_INVALID,
            detail={"max_chars": MAX_QUERY_CHARS},
        )
    chunks = _split_terms(text)
    terms: list[Term] = []
    for chunk, phrase in chunks:
        lex, runs = _query_lexemes(chunk)
        if lex:
            terms.append(Term(chunk, lex, phrase and len(lex) > 1, runs))
    if not terms:
        raise InputError(
            "搜索词中没有可检索的文字 / the query has no letters, digits or Chinese "
            "characters to search for (punctuation and symbols are ignored)",
            code=ErrorCode.QUERY_INVALID,
        )
    if len(terms) > MAX_TERMS:
        raise InputError(
            f"搜索词过多 / the query has {len(terms)} terms; at most {MAX_TERMS} are "
            "allowed — drop the least important ones",
            code=ErrorCode.QUERY_INVALID,
            detail={"max_terms": MAX_TERMS},
        )
    return SearchQuery(text, tuple(terms))


# --------------------------------------------------------------- highlighting


def _normalized_with_map(text: str) -> tuple[str, list[int]]:
    """``normalize(text)`` char by char, with the source index of each output char."""
    whole = normalize(text)
    if len(whole) == len(text):  # the usual case: one char for one (CJK, plain Latin)
        return whole, range(len(text))  # type: ignore[return-value]
    out: list[str] = []
    src: list[int] = []
    for i, ch in enumerate(text):
        n = normalize(ch) if ord(ch) > 0x7F else ch.lower()
        out.append(n)
        src.extend([i] * len(n))
    return "".join(out), src


def _needles(runs: Iterable[str]) -> list[str]:
    """What to mark: each run, and for CJK runs also their bigrams (partial hits)."""
    found: set[str] = set()
    for r in runs:
        if not r:
            continue
        found.add(r)
        if len(r) > 2 and _is_cjk(r[0]):
            found.update(r[i : i + 2] for i in range(len(r) - 1))
    return sorted(found, key=len, reverse=True)


def _matches(text: str, needles: list[str]) -> tuple[list[tuple[int, int]], set[str]]:
    """Merged [start, end) spans (in ``text``) of every needle, and which matched."""
    if not needles or not text:
        return [], set()
    norm, src = _normalized_with_map(text)
    spans: list[tuple[int, int]] = []
    hit: set[str] = set()
    for n in needles:
        is_word = not _is_cjk(n[0])
        start = norm.find(n)
        while start != -1:
            end = start + len(n)
            ok = True
            if is_word:  # whole words only for Latin/digits
                before = norm[start - 1] if start else " "
                after = norm[end] if end < len(norm) else " "
                ok = not (before.isalnum() and not _is_cjk(before)) and not (
                    after.isalnum() and not _is_cjk(after)
                )
            if ok:
                spans.append((src[start], src[end - 1] + 1))
                hit.add(n)
            start = norm.find(n, start + 1)
    spans.sort()
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        if merged and s < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged, hit


def _is_cjk(ch: str) -> bool:
    return _CJK_CHAR.match(ch) is not None


def _render(text: str, spans: list[tuple[int, int]], lo: int, hi: int) -> str:
    parts: list[str] = []
    at = lo
    for s, e in spans:
        if e <= lo or s >= hi:
            continue
        s, e = max(s, lo), min(e, hi)
        parts.append(html.escape(text[at:s]))
        parts.append("<mark>" + html.escape(text[s:e]) + "</mark>")
        at = e
    parts.append(html.escape(text[at:hi]))
    return "".join(parts)


def highlight(text: str, query: SearchQuery) -> str:
    """``text`` as HTML-escaped text with the query's matches in ``<mark>``."""
    spans, _ = _matches(text, _needles(query.runs))
    return _render(text, spans, 0, len(text))


def snippet(texts: Iterable[str], query: SearchQuery, width: int = 90) -> str:
    """An HTML-escaped excerpt of about ``width`` characters around the best match.

    The text with the most distinct query runs matched wins (ties: the earliest); the
    window starts a little before its densest cluster of matches. Without any match,
    the start of the first text.
    """
    needles = _needles(query.runs)
    full = set(query.runs)
    best: tuple[int, int, str, list[tuple[int, int]]] | None = None
    first = ""
    for n, text in enumerate(texts):
        if n >= 400:
            break
        if not first:
            first = text
        spans, hit = _matches(text, needles)
        if not spans:
            continue
        score = 2 * len(hit & full) + len(hit)
        if best is None or score > best[0]:
            best = (score, n, text, spans)
    if best is None:
        cut = first[:width]
        return html.escape(cut) + ("…" if len(first) > width else "")
    _, _, text, spans = best
    # The window around the span that has the most other spans within ``width``.
    anchor = max(
        range(len(spans)),
        key=lambda i: (
            sum(1 for s, _ in spans if spans[i][0] <= s < spans[i][0] + width),
            -i,
        ),
    )
    lo = max(0, spans[anchor][0] - width // 6)
    hi = min(len(text), lo + width)
    lo = max(0, min(lo, hi - width))
    return (
        ("…" if lo > 0 else "")
        + _render(text, spans, lo, hi)
        + ("…" if hi < len(text) else "")
    )
