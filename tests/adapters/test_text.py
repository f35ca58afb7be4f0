"""Chinese text normalisation and date parsing (pure), with property-based checks."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.text import (
    CHINA_TZ,
    DateError,
    find_date,
    normalize_line,
    normalize_text,
    paragraphs,
    parse_date,
    to_rfc3339,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # the sample article's meta line, as a CMS export gives it
        (
            "阅读次数:2919 作者: 淮北市人大常委会研究室 发布时间:2021-10-28",
            "阅读次数：2919 作者：淮北市人大常委会研究室 发布时间：2021-10-28",
        ),
        (
            "党有所指、我有所向,民有所呼、我有所应",
            "党有所指、我有所向，民有所呼、我有所应",
        ),
        ("(段飞)", "（段飞）"),
        ("　　习近平总书记在中央人大工作会议上", "习近平总书记在中央人大工作会议上"),
        ("２０２１年１０月２８日，ＡＢＣ％", "2021年10月28日，ABC%"),
        ("全过程\u200b人民\ufeff民主\u00ad", "全过程人民民主"),
        ("人大\u00a0\u00a0代表", "人大 代表"),
        (
            "县（市、区）人大",
            "县（市、区）人大",
        ),  # Chinese punctuation in prose is kept
        (
            "“全过程人民民主”《安全生产法》；是吗？是！",
            "“全过程人民民主”《安全生产法》；是吗？是！",
        ),
        ("阅读 2,919 次 09:30 http://x.cn", "阅读 2,919 次 09:30 http://x.cn"),
        ("①依法监督", "①依法监督"),
        ("作者： 淮北市", "作者：淮北市"),
    ],
)
def test_normalize_line(raw: str, expected: str) -> None:
    assert normalize_line(raw) == expected


def test_normalize_text_lines_and_paragraphs() -> None:
    raw = "\ufeff标题\r\n\r\n\r\n　　第一段,内容。\r第二段\u2029\n\n\n第三段 \n\n"
    assert normalize_text(raw) == "标题\n\n第一段，内容。\n第二段\n\n第三段"
    assert paragraphs(raw) == ["标题", "第一段，内容。", "第二段", "第三段"]


_CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x4E80)
_MIXED = st.text(
    st.one_of(
        _CJK,
        st.sampled_from(
            list(" ,.;:?!()，。、；：？！（）“”\u3000\u00a0\u200b\r\n\t０１Ａａ％")
        ),
        st.characters(min_codepoint=0x20, max_codepoint=0x7E),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(_MIXED)
def test_normalize_is_idempotent_and_clean(text: str) -> None:
    once = normalize_text(text)
    assert normalize_text(once) == once
    assert "\r" not in once and "\u200b" not in once and "\u3000" not in once
    assert "\u00a0" not in once and "\n\n\n" not in once
    assert once == once.strip() or once == ""
    for line in once.split("\n"):
        assert line == line.strip()
    line = normalize_line(text)
    assert "\n" not in line and normalize_line(line) == line


@settings(max_examples=200, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(list("，。、；：？！“”‘’《》（）【】…")), max_size=20
    )
)
def test_chinese_punctuation_survives(text: str) -> None:
    assert normalize_line("中" + text + "文") == ("中" + text + "文").replace(" ", "")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-10-28", "2021-10-28T00:00:00+08:00"),
        ("2021/10/28", "2021-10-28T00:00:00+08:00"),
        ("2021.10.28", "2021-10-28T00:00:00+08:00"),
        ("2021年10月28日", "2021-10-28T00:00:00+08:00"),
        ("2021年10月28日 09:30", "2021-10-28T09:30:00+08:00"),
        ("2021年10月28日9时30分", "2021-10-28T09:30:00+08:00"),
        ("2021-10-28 09:30:15", "2021-10-28T09:30:15+08:00"),
        ("２０２１年１０月２８日", "2021-10-28T00:00:00+08:00"),
        ("二〇二一年十月二十八日", "2021-10-28T00:00:00+08:00"),
        ("二〇二二年一月十日", "2022-01-10T00:00:00+08:00"),
        ("Thu, 28 Oct 2021 09:30:00 +0800", "2021-10-28T09:30:00+08:00"),
        ("Thu, 28 Oct 2021 01:30:00 GMT", "2021-10-28T01:30:00+00:00"),
        ("2021-10-28T09:30:00Z", "2021-10-28T09:30:00+00:00"),
        ("2021-10-28T09:30:00+0800", "2021-10-28T09:30:00+08:00"),
        (" 2021-1-5 ", "2021-01-05T00:00:00+08:00"),
    ],
)
def test_dates_to_rfc3339(text: str, expected: str) -> None:
    assert to_rfc3339(text) == expected


@pytest.mark.parametrize(
    "bad", ["", "昨天", "2021-02-30", "2021年13月1日", "28/10/2021x", "2021-10"]
)
def test_bad_dates_are_refused_with_the_text(bad: str) -> None:
    with pytest.raises(DateError):
        parse_date(bad)


def test_find_date_in_running_text() -> None:
    assert find_date("阅读次数:2919 作者: 研究室 发布时间:2021-10-28").date() == date(
        2021, 10, 28
    )
    assert find_date("印发日期：二〇二一年十月二十八日").date() == date(2021, 10, 28)
    with pytest.raises(DateError, match="no date"):
        find_date("阅读次数:2919")


_DATES = st.dates(min_value=date(1990, 1, 1), max_value=date(2099, 12, 31))
_FORMATS = [
    "{y}-{m:02d}-{d:02d}",
    "{y}/{m}/{d}",
    "{y}年{m}月{d}日",
    "{y}.{m:02d}.{d:02d}",
    "{y}年{m:02d}月{d:02d}日 {H:02d}:{M:02d}",
]


@settings(max_examples=300, deadline=None)
@given(
    _DATES,
    st.sampled_from(_FORMATS),
    st.integers(0, 23),
    st.integers(0, 59),
    st.booleans(),
)
def test_every_format_round_trips(
    d: date, fmt: str, hh: int, mm: int, fullwidth: bool
) -> None:
    text = fmt.format(y=d.year, m=d.month, d=d.day, H=hh, M=mm)
    if fullwidth:
        text = text.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789"})
    dt = parse_date(text)
    has_time = "{H" in fmt
    assert dt == datetime(
        d.year,
        d.month,
        d.day,
        hh if has_time else 0,
        mm if has_time else 0,
        tzinfo=CHINA_TZ,
    )
    stamp = to_rfc3339(text)
    assert datetime.fromisoformat(stamp) == dt and stamp.endswith("+08:00")


@settings(max_examples=100, deadline=None)
@given(
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2099, 1, 1)),
    st.integers(-12, 14),
)
def test_rfc3339_of_an_aware_datetime_is_the_same_moment(
    dt: datetime, hours: int
) -> None:
    tz = timezone(timedelta(hours=hours))
    aware = dt.replace(microsecond=0, tzinfo=tz)
    assert parse_date(to_rfc3339(aware)) == aware
