"""The portal and feed adapters on a corpus of county-congress pages, table-driven.

``fixtures/corpus/`` holds pages written for this project in the shapes of the CMS
products county congresses use — TRS WCM (``trs/``), Hanweb/大汉 JCMS (``hanweb/``),
万户 ezEIP (``wanhu/``), 开普云 (``kpy/``) and a hand-made table-layout site
(``static/``) — plus feeds (``feeds/``). The contents (counties, people, figures) are
invented. Each page is stored in the bytes a server would send: UTF-8, GBK or
GB18030, and served here with the ``Content-Type`` its row gives — honest, without a
charset, or lying (``ISO-8859-1``/``windows-1252``/``utf-8`` over GBK, ``gbk`` over a
UTF-8 page) — while its ``<meta>`` is honest, missing or lying as the row says.

Every expected value below was written by hand from the page's text: titles, dates
(RFC 3339, ``+08:00``), authors and sources, read counts, attachment names, paragraphs
and the item bodies they give (by headings, by positions, and the source's defaults).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.base import AdapterContext, AdapterError
from adapters.extract.page import Selectors, article_links, next_page
from adapters.fetch import decode_html
from adapters.portal_html import PortalSource
from adapters.registry import load_adapter
from adapters.rss import FeedSource, parse_feed

CORPUS = Path(__file__).parent / "fixtures" / "corpus"
APPLICABLE = ["县（市、区）人大常委会"]
# Where each site's files are served (TRS sites live under a column folder).
PREFIX = {"trs": "/gzdt/", "hanweb": "/", "wanhu": "/", "kpy": "/", "static": "/"}
FIRST_LIST = {
    "trs": "/gzdt/index.html",
    "hanweb": "/col/col1229/index.html",
    "wanhu": "/list/7.html",
    "kpy": "/xwzx/rdyw/index.html",
    "static": "/news/index.html",
}
HTML_UTF8 = "text/html; charset=utf-8"
HTML_BARE = "text/html"


@dataclass(frozen=True)
class Page:
    """One fixture and what it must give."""

    file: str  # under fixtures/corpus/, first folder = CMS shape
    encoding: str  # what the bytes are
    header: str  # Content-Type served
    meta: str  # what its <meta> says: honest | missing | lying
    kind: str  # list | article | feed
    expect: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> str:
        return self.file.split("/", 1)[0]

    @property
    def path(self) -> str:
        return PREFIX.get(self.shape, "/") + self.file.split("/", 1)[1]


# -- paragraphs, as a reader copies them from each page --------------------------------

TRS_1028 = [
    "10月27日，清溪县第十八届人大常委会第三十六次会议召开。县人大常委会主任主持会议，"
    "副主任、委员共23人出席会议，县人民政府、县监察委员会、县人民法院、县人民检察院有关"
    "负责同志列席会议。",
    "会议听取和审议了县人民政府关于2021年上半年国民经济和社会发展计划执行情况的报告、"
    "关于2020年度县级决算和2021年上半年预算执行情况的报告，审查批准了2020年度县级决算。",
    "会议还听取和审议了县人民政府关于《中华人民共和国安全生产法》贯彻实施情况的报告，"
    "对全县安全生产工作开展了专题询问，6名常委会组成人员现场提问，县应急管理局等4个部门"
    "负责同志到会应询。",
    "会议表决通过了人事任免事项，向新任命的国家工作人员颁发了任命书，被任命人员进行了"
    "宪法宣誓。",
]
TRS_1102 = [
    "11月1日至2日，县人大常委会副主任带领部分常委会组成人员和县人大代表，对全县农村"
    "人居环境整治工作进行视察。",
    "视察组先后来到白沙镇、青石乡、柳林镇等地，实地查看农村改厕、生活垃圾分类收运和"
    "生活污水治理情况，听取了县农业农村局、县住房城乡建设局等部门的工作汇报。",
    "视察组认为，全县农村人居环境整治三年行动任务基本完成，农村卫生厕所普及率达到92%，"
    "村庄环境明显改善。同时指出，部分设施重建轻管、运行维护经费不足的问题仍然存在。",
    "视察组建议，县人民政府要建立长效管护机制，落实管护经费，引导村民参与，把农村人居"
    "环境整治成果巩固好、维护好。",
]
TRS_0915 = [
    "为推动土地管理法律法规全面有效实施，9月13日至14日，县人大常委会执法检查组对全县"
    "贯彻实施《中华人民共和国土地管理法》情况进行检查。",
    "检查组深入䶮山乡、白沙镇等地，随机抽查了12宗建设用地审批和耕地占补平衡项目，并召开"
    "座谈会听取县自然资源局和相关乡镇的汇报。",
    "检查组指出，全县耕地保护目标责任制落实较好，但仍存在闲置土地处置进度慢、农村宅基地"
    "管理不够规范等问题，要求有关部门限期整改，并于12月底前向县人大常委会书面报告整改"
    "情况。",
]
HANWEB_1103 = [
    "11月2日，县人大常委会调研组对全县义务教育优质均衡发展工作开展专题调研。",
    "调研组先后走访了县实验小学、城东中学和两所乡镇中心学校，查看学校办学条件、师资配备"
    "和课后服务开展情况，与校长、教师代表和家长代表座谈交流。",
    "调研组认为，近年来全县教育投入持续加大，新改扩建学校9所，城区大班额问题基本消除。"
    "但乡村学校音体美教师短缺、城乡师资配置不均衡的问题依然突出。",
    "调研组要求，县人民政府要完善教师交流轮岗制度，加大乡村教师补充力度，推动城乡义务"
    "教育从基本均衡向优质均衡迈进。",
]
HANWEB_1118 = [
    "11月17日，县人大常委会召开县十八届人大一次会议代表建议办理工作推进会，听取县人民"
    "政府及20个承办单位的办理情况汇报。",
    "县十八届人大一次会议期间，代表共提出建议126件，目前已办结113件，办结率89.7%，代表"
    "满意和基本满意率达96%。㘵口村等地代表反映的农村道路安全隐患问题已整改到位。",
    "会议要求，各承办单位要对未办结的13件建议逐件明确时限，加强与代表的沟通，确保年底前"
    "全部办结答复，切实做到件件有落实、事事有回音。",
]
WANHU_70011 = [
    "12月2日，县人大常委会召开专题询问会，就全县落实食品安全属地管理责任和企业主体责任"
    "情况进行专题询问。",
    "会前，常委会组成人员分三组深入12个乡镇，随机抽查农贸市场、学校食堂和小餐饮店38家，"
    "广泛收集群众意见建议。",
    "询问会上，8名常委会组成人员和县人大代表围绕包保责任落实、校园食品安全、农村集体聚餐"
    "管理等问题提问，县市场监督管理局、县教育局等部门负责同志现场回答。",
    "检查组共发现问题27个，已交县人民政府研究处理，县人大常委会将跟踪督办整改落实情况。",
]
WANHU_70023 = [
    "一、基本情况",
    "临河县共有各级人大代表1,086名，建成代表联络站24个。过去代表联系群众多靠定期接待，"
    "群众反映问题渠道不够畅通。",
    "二、主要做法",
    "（一）划片联系。将全县划分为312个网格，每名代表联系1至2个网格，代表信息在网格公示栏"
    "公开。",
    "（二）闭环办理。代表收集的意见经联络站梳理后分级交办，办理结果在30日内向群众反馈。",
    "三、取得成效",
    "机制运行以来，代表共收集群众意见建议1,530条，已办结1,412条，群众满意率达95%以上。",
    "四、推广价值",
    "适用于已建成代表联络站、网格化管理基础较好的县（市、区）。",
]
WANHU_69987 = [
    "11月以来，河西镇人大组织辖区内县、镇两级人大代表开展“人大代表在身边”主题活动。",
    "代表们走进村（社区）代表联络站接待选民，面对面听取群众对农村饮水安全、村道维护等"
    "方面的意见，现场能解答的当场解答。",
    "活动期间共接待选民210人次，收集意见建议43条，已转交镇人民政府及有关部门办理。",
]
KPY_1206 = [
    "为提升预算审查监督的专业化水平，12月3日，县人大常委会举办预算联网监督系统应用培训班，"
    "常委会预算工作委员会、财政经济工作委员会全体人员和部分县人大代表参加培训。",
    "培训围绕预算执行数据查询、预警规则设置和问题线索核实等内容，结合县级预算执行中的实际"
    "案例进行了演示和讲解。",
    "通过培训，参训人员熟悉了系统的主要功能和操作流程，为常委会开展全口径预算审查监督打下"
    "了基础。",
]
KPY_1215 = [
    "12月14日，县十八届人大常委会第四十次会议听取和审议了县人民政府关于2021年度环境状况"
    "和环境保护目标完成情况的报告。",
    "常委会组成人员认为，全县空气质量优良天数比例达到91.5%，地表水国控断面水质全部达标。"
    "同时指出，部分乡镇畜禽养殖污染治理不到位，㘵溪流域支流水质波动较大。",
    "会议要求，县人民政府要压实生态环境保护责任，加快补齐环境基础设施短板，并在六个月内"
    "将审议意见研究处理情况向县人大常委会报告。",
]
KPY_1129 = [
    "11月26日，县人大常委会召开第六十二次主任会议，研究部署2022年度县人大代表履职培训"
    "工作。",
    "会议确定，2022年分四期对全县县人大代表进行全覆盖培训，重点学习代表法、预算法和"
    "监督法等法律，提高代表依法履职能力。",
    "会议还研究了县十八届人大常委会第四十次会议的建议议程，决定于12月中旬召开。",
]
STATIC_1208 = [
    "12月7日，县人大常委会组织部分常委会组成人员和县人大代表视察城区老旧小区改造工作。",
    "视察组实地查看了东门社区、南湖社区等5个改造项目，详细了解雨污分流、管网更新、加装"
    "电梯和停车位建设等情况。",
    "视察组建议，县人民政府要充分听取居民意见，统筹推进改造与物业管理，让老旧小区改造"
    "真正改到群众心坎上。",
]
STATIC_1222 = [
    "12月20日至21日，县人大常委会组织评估组，对全县“七五”普法规划实施情况进行总结评估。",
    "评估组采取听取汇报、查阅资料、问卷调查和随机走访相结合的方式，共发放问卷600份，走访"
    "机关、学校、企业和村（社区）18个。",
    "评估组认为，全县“七五”普法规划确定的目标任务全面完成，“谁执法谁普法”责任制普遍"
    "落实，建议在“八五”普法中更加注重普法的针对性和实效性。",
]


def _lesson(p: list[str]) -> dict[str, Any]:
    """The body a headingless article gives by positions (docs/adapters.md)."""
    return {
        "conditions": p[0],
        "practice": "\n".join(p[1:-1]),
        "outcomes": p[-1],
        "applicability": APPLICABLE,
    }


def _art(
    title: str,
    created_at: str,
    paragraphs: list[str],
    body: dict[str, Any],
    *,
    author: str = "",
    source: str = "",
    reads: int | None = None,
    attachments: tuple[str, ...] = (),
    kind: str = "lesson",
) -> dict[str, Any]:
    return {
        "title": title,
        "created_at": created_at,
        "author": author or source,
        "source": source,
        "reads": reads,
        "paragraphs": paragraphs,
        "attachments": list(attachments),
        "kind": kind,
        "body": body,
    }


PAGES: list[Page] = [
    # -- TRS WCM ---------------------------------------------------------------------
    Page(
        "trs/index.html",
        "utf-8",
        HTML_UTF8,
        "honest",
        "list",
        {
            "links": [
                (
                    "/gzdt/202111/t20211102_3315870.html",
                    "县人大常委会组织部分组成人员视察农村人居环境整治工作",
                ),
                (
                    "/gzdt/202110/t20211028_3312456.html",
                    "县十八届人大常委会第三十六次会议召开",
                ),
            ],
            "next": "/gzdt/index_1.html",
        },
    ),
    Page(
        "trs/index_1.html",
        "utf-8",
        HTML_BARE,
        "honest",
        "list",
        {
            "links": [
                (
                    "/gzdt/202109/t20210915_3301122.html",
                    "县人大常委会开展《中华人民共和国土地管理法》执法检查",
                ),
            ],
            "next": None,
        },
    ),
    Page(
        "trs/202110/t20211028_3312456.html",
        "utf-8",
        HTML_UTF8,
        "honest",
        "article",
        _art(
            "县十八届人大常委会第三十六次会议召开",
            "2021-10-28T09:30:00+08:00",
            TRS_1028,
            _lesson(TRS_1028),
            author="李文",
            source="清溪县人大常委会办公室",
            reads=1204,
            attachments=("清溪县人大常委会2022年度监督工作计划（征求意见稿）.docx",),
        ),
    ),
    Page(
        "trs/202111/t20211102_3315870.html",
        "gbk",
        HTML_UTF8,
        "honest",
        "article",
        _art(
            "县人大常委会组织部分组成人员视察农村人居环境整治工作",
            "2021-11-02T16:05:00+08:00",
            TRS_1102,
            _lesson(TRS_1102),
            source="县人大常委会农业与农村工作委员会",
            reads=386,
            attachments=(
                "清溪县农村人居环境整治工作视察方案.pdf",
                "视察点位安排表.xls",
            ),
        ),
    ),
    Page(
        "trs/202109/t20210915_3301122.html",
        "gb18030",
        HTML_BARE,
        "lying",
        "article",
        _art(
            "县人大常委会开展《中华人民共和国土地管理法》执法检查",
            "2021-09-15T00:00:00+08:00",
            TRS_0915,
            {
                "background": TRS_0915[0],
                "actions": [TRS_0915[1]],
                "results": TRS_0915[2],
                "period": {"start": "2021-09-15"},
            },
            author="刘䶮",
            source="县人大常委会城乡建设环境保护工作委员会",
            kind="case_study",
        ),
    ),
    # -- Hanweb JCMS -----------------------------------------------------------------
    Page(
        "hanweb/col/col1229/index.html",
        "utf-8",
        "text/html;charset=UTF-8",
        "honest",
        "list",
        {
            "links": [
                (
                    "/art/2021/11/18/art_1229_457012.html",
                    "石门县人大常委会召开代表建议办理工作推进会",
                ),
                (
                    "/art/2021/11/3/art_1229_456789.html",
                    "县人大常委会专题调研全县义务教育优质均衡发展工作",
                ),
            ],
            "next": None,
        },
    ),
    Page(
        "hanweb/art/2021/11/3/art_1229_456789.html",
        "utf-8",
        "text/html; charset=ISO-8859-1",
        "honest",
        "article",
        _art(
            "县人大常委会专题调研全县义务教育优质均衡发展工作",
            "2021-11-03T10:12:00+08:00",
            HANWEB_1103,
            _lesson(HANWEB_1103),
            source="县人大常委会教育科学文化卫生工作委员会",
            reads=2061,
            attachments=(
                "石门县义务教育优质均衡发展专题调研提纲.pdf",
                "调研座谈会发言提纲.docx",
            ),
        ),
    ),
    Page(
        "hanweb/art/2021/11/18/art_1229_457012.html",
        "gb18030",
        HTML_BARE,
        "lying",
        "article",
        _art(
            "石门县人大常委会召开代表建议办理工作推进会",
            "2021-11-18T00:00:00+08:00",
            HANWEB_1118,
            _lesson(HANWEB_1118),
            author="周喆",
            source="县人大常委会代表联络工委",
        ),
    ),
    # -- 万户 ezEIP --------------------------------------------------------------------
    Page(
        "wanhu/list/7.html",
        "utf-8",
        HTML_UTF8,
        "honest",
        "list",
        {
            "links": [
                ("/content/detail/70023.html", "临河县推行“代表联络站+网格”工作机制"),
                (
                    "/content/detail/70011.html",
                    "县人大常委会召开食品安全“两个责任”落实情况专题询问会",
                ),
            ],
            "next": "/list/7_2.html",
        },
    ),
    Page(
        "wanhu/list/7_2.html",
        "utf-8",
        HTML_BARE,
        "honest",
        "list",
        {
            "links": [
                ("/content/detail/69987.html", "河西镇人大开展“人大代表在身边”主题活动")
            ],
            "next": None,
        },
    ),
    Page(
        "wanhu/content/detail/70011.html",
        "gbk",
        "text/html; charset=ISO-8859-1",
        "missing",
        "article",
        _art(
            "县人大常委会召开食品安全“两个责任”落实情况专题询问会",
            "2021-12-03T00:00:00+08:00",
            WANHU_70011,
            _lesson(WANHU_70011),
            author="临河县人大常委会研究室",
            reads=1204,
            attachments=("临河县食品安全专题询问问题清单.docx",),
        ),
    ),
    Page(
        "wanhu/content/detail/70023.html",
        "utf-8",
        HTML_BARE,
        "honest",
        "article",
        _art(
            "临河县推行“代表联络站+网格”工作机制",
            "2021-12-10T00:00:00+08:00",
            WANHU_70023,
            {
                "conditions": WANHU_70023[1],
                "practice": WANHU_70023[3] + "\n" + WANHU_70023[4],
                "outcomes": WANHU_70023[6],
                "applicability": [WANHU_70023[8]],
            },
            author="河东镇人大主席团",
            reads=573,
        ),
    ),
    Page(
        "wanhu/content/detail/69987.html",
        "gbk",
        "text/html; charset=GBK",
        "honest",
        "article",
        _art(
            "河西镇人大开展“人大代表在身边”主题活动",
            "2021-11-26T15:40:00+08:00",
            WANHU_69987,
            _lesson(WANHU_69987),
            author="河西镇人大",
            reads=96,
        ),
    ),
    # -- 开普云 ------------------------------------------------------------------------
    Page(
        "kpy/xwzx/rdyw/index.html",
        "utf-8",
        HTML_UTF8,
        "honest",
        "list",
        {
            "links": [
                (
                    "/art/2021/12/art_91b2c3d4e5f60718.html",
                    "南川县人大常委会审议县人民政府关于生态环境保护工作情况的报告",
                ),
                (
                    "/art/2021/12/art_8f3a2b1c0d9e8f70.html",
                    "县人大常委会开展预算联网监督系统应用培训",
                ),
            ],
            "next": "/xwzx/rdyw/index_2.html",
        },
    ),
    Page(
        "kpy/xwzx/rdyw/index_2.html",
        "utf-8",
        HTML_UTF8,
        "honest",
        "list",
        {
            "links": [
                (
                    "/art/2021/11/art_7a6b5c4d3e2f1a0b.html",
                    "县人大常委会召开主任会议研究部署年度代表履职培训工作",
                )
            ],
            "next": None,
        },
    ),
    Page(
        "kpy/art/2021/12/art_8f3a2b1c0d9e8f70.html",
        "utf-8",
        HTML_UTF8,
        "honest",
        "article",
        _art(
            "县人大常委会开展预算联网监督系统应用培训",
            "2021-12-06T10:20:00+08:00",
            KPY_1206,
            _lesson(KPY_1206),
            source="县人大常委会预算工作委员会",
            reads=86,
            attachments=("预算联网监督系统操作手册.pdf",),
        ),
    ),
    Page(
        "kpy/art/2021/12/art_91b2c3d4e5f60718.html",
        "gb18030",
        "text/html; charset=gbk",
        "honest",
        "article",
        _art(
            "南川县人大常委会审议县人民政府关于生态环境保护工作情况的报告",
            "2021-12-15T00:00:00+08:00",
            KPY_1215,
            _lesson(KPY_1215),
            author="陈䶮",
        ),
    ),
    Page(
        "kpy/art/2021/11/art_7a6b5c4d3e2f1a0b.html",
        "utf-8",
        HTML_UTF8,
        "lying",
        "article",
        _art(
            "县人大常委会召开主任会议研究部署年度代表履职培训工作",
            "2021-11-29T00:00:00+08:00",
            KPY_1129,
            _lesson(KPY_1129),
            source="县人大常委会办公室",
            reads=1530,
        ),
    ),
    # -- a hand-made static site --------------------------------------------------------
    Page(
        "static/news/index.html",
        "gbk",
        HTML_BARE,
        "honest",
        "list",
        {
            "links": [
                ("/news/2021/1222.html", "东湖县人大常委会组织开展“七五”普法总结评估"),
                ("/news/2021/1208.html", "县人大常委会视察城区老旧小区改造工作"),
            ],
            "next": None,
        },
    ),
    Page(
        "static/news/2021/1208.html",
        "gbk",
        "text/html; charset=windows-1252",
        "honest",
        "article",
        _art(
            "县人大常委会视察城区老旧小区改造工作",
            "2021-12-08T00:00:00+08:00",
            STATIC_1208,
            _lesson(STATIC_1208),
            author="王丽",
            reads=38,
        ),
    ),
    Page(
        "static/news/2021/1222.html",
        "utf-8",
        "text/html; charset=gbk",
        "lying",
        "article",
        _art(
            "东湖县人大常委会组织开展“七五”普法总结评估",
            "2021-12-22T00:00:00+08:00",
            STATIC_1222,
            _lesson(STATIC_1222),
            source="县人大常委会法制工作委员会",
        ),
    ),
]

FEED_1203 = {
    "conditions": "过去民生实事项目由政府部门确定，群众参与不够，项目与群众期盼存在差距。",
    "practice": "县人民政府面向社会征集候选项目，提请县人民代表大会会议审议，代表无记名投票"
    "确定年度民生实事项目，人大常委会全程监督实施。",
    "outcomes": "三年来共票决项目32个，完成率100%，群众满意度明显提升。",
    "applicability": ["适用于各县（市、区）人民代表大会。"],
}
FEED_1125 = [
    "11月22日至24日，县人大常委会执法检查组对全县贯彻实施安全生产法情况进行检查。",
    "检查组抽查了危险化学品、建筑施工、道路运输等领域企业15家，召开座谈会2场。",
    "检查组发现安全隐患41处，已交县人民政府督促整改。",
]
ATOM_1222 = [
    "12月20日至21日，县人大常委会组织评估组，对全县“七五”普法规划实施情况进行总结评估。",
    "评估组采取听取汇报、查阅资料、问卷调查和随机走访相结合的方式，共发放问卷600份。",
    "评估组认为，全县“七五”普法规划确定的目标任务全面完成。",
]
ENTITIES_1201 = [
    "11月，县人大代表深入选区开展“履职&为民”活动，走访选民210户。",
    "代表们围绕农村饮水、村道维护等问题收集意见建议36条，现场解答群众疑问。",
    "收集的意见已全部转交有关部门办理，办理结果将在30日内反馈选民。",
]
GBK_1126 = [
    "11月以来，河西镇人大组织辖区内县、镇两级人大代表开展“人大代表在身边”主题活动。",
    "代表们走进村（社区）代表联络站接待选民，面对面听取群众意见。",
    "活动期间共接待选民210人次，收集意见建议43条。",
]


def _entry(
    title: str,
    created_at: str,
    kind: str,
    body: dict[str, Any],
    tags: list[str],
    summary: str | None = None,
) -> dict[str, Any]:
    return {
        "title": title,
        "created_at": created_at,
        "kind": kind,
        "body": body,
        "tags": tags,
        "summary": summary,
    }


PAGES += [
    Page(
        "feeds/rss-utf8.xml",
        "utf-8",
        "application/rss+xml; charset=utf-8",
        "honest",
        "feed",
        {
            "entries": {
                "qxrd-3320001": _entry(
                    "清溪县推行民生实事项目人大代表票决制",
                    "2021-12-03T17:30:00+08:00",
                    "lesson",
                    FEED_1203,
                    ["代表工作", "票决制"],
                    "清溪县推行民生实事项目代表票决制，三年票决项目32个。",
                ),
                "qxrd-3318877": _entry(
                    "县人大常委会开展安全生产法执法检查",
                    "2021-11-25T16:00:00+08:00",
                    "case_study",
                    {
                        "background": FEED_1125[0],
                        "actions": [FEED_1125[1]],
                        "results": FEED_1125[2],
                        "period": {"start": "2021-11-25"},
                    },
                    ["执法检查"],
                ),
            }
        },
    ),
    Page(
        "feeds/atom.xml",
        "utf-8",
        "application/atom+xml",
        "honest",
        "feed",
        {
            "entries": {
                "tag:dhrd.example.gov.cn,2021:news/1222": _entry(
                    "东湖县人大常委会组织开展“七五”普法总结评估",
                    "2021-12-22T10:00:00+08:00",
                    "lesson",
                    _lesson(ATOM_1222),
                    ["普法"],
                    "县人大常委会对全县“七五”普法规划实施情况进行总结评估。",
                ),
            }
        },
    ),
    Page(
        "feeds/rss-entities.xml",
        "utf-8",
        "text/xml",
        "honest",
        "feed",
        {
            "entries": {
                "http://www.smrd.example.gov.cn/art/2021/12/1/art_1231_460001.html?from=rss&id=460001": _entry(
                    "县人大代表开展“履职&为民”活动",
                    "2021-12-01T09:00:00+08:00",
                    "lesson",
                    _lesson(ENTITIES_1201),
                    [],
                ),
            }
        },
    ),
    Page(
        "feeds/rss-gbk.xml",
        "gbk",
        "application/xml",
        "honest",
        "feed",
        {
            "entries": {
                "http://www.lhrd.example.gov.cn/content/detail/69987.html": _entry(
                    "河西镇人大开展“人大代表在身边”主题活动",
                    "2021-11-26T15:40:00+08:00",
                    "lesson",
                    _lesson(GBK_1126),
                    ["基层人大"],
                ),
            }
        },
    ),
    Page(
        "feeds/rss-malformed.xml",
        "utf-8",
        "application/rss+xml",
        "honest",
        "feed",
        {"error": "line 8"},
    ),
]

ARTICLES = [p for p in PAGES if p.kind == "article"]
LISTS = [p for p in PAGES if p.kind == "list"]
FEEDS = [p for p in PAGES if p.kind == "feed"]
FILE_BYTES = b"%PDF-1.4\n% corpus attachment\n"


@pytest.fixture
async def sites() -> AsyncIterator[dict[str, str]]:
    """One server per CMS shape (and one for the feeds): shape → base URL."""
    servers: dict[str, TestServer] = {}
    by_path: dict[str, dict[str, Page]] = {}
    for p in PAGES:
        by_path.setdefault(p.shape, {})[p.path] = p

    def handler_for(shape: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            page = by_path[shape].get(request.path)
            if page is not None:
                body = (CORPUS / page.file).read_bytes()
                return web.Response(body=body, headers={"Content-Type": page.header})
            if request.path.endswith(
                (".pdf", ".doc", ".docx", ".xls", ".xlsx", "downfile.jsp")
            ):
                return web.Response(
                    body=FILE_BYTES, content_type="application/octet-stream"
                )
            return web.Response(status=404, text="not found")

        return handler

    try:
        for shape in by_path:
            app = web.Application()
            app.router.add_get("/{tail:.*}", handler_for(shape))
            servers[shape] = TestServer(app, host="127.0.0.1", port=0)
            await servers[shape].start_server()
        yield {s: str(srv.make_url("")).rstrip("/") for s, srv in servers.items()}
    finally:
        for srv in servers.values():
            await srv.close()


def _ctx(tmp_path: Path) -> AdapterContext:
    return AdapterContext(
        "huaibei-duji", tmp_path / "a", logging.getLogger("t"), tmp_path
    )


def _portal(base: str, shape: str, tmp_path: Path) -> PortalSource:
    src = load_adapter(
        {
            "type": "portal",
            "name": "corpus",
            "list_url": base + FIRST_LIST[shape],
            "pages": 3,
            "kind_rules": [
                {"field": "title", "match": "执法检查", "kind": "case_study"}
            ],
            "defaults": {"applicability": APPLICABLE},
        },
        _ctx(tmp_path),
    )
    assert isinstance(src, PortalSource)
    return src


def _bytes_are(p: Page) -> None:
    """The fixture really is in its encoding (and not in a narrower one)."""
    data = (CORPUS / p.file).read_bytes()
    if p.encoding == "utf-8":
        data.decode("utf-8")
    else:
        with pytest.raises(UnicodeDecodeError):
            data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
        text = data.decode(p.encoding)
        if p.encoding == "gb18030":
            with pytest.raises(UnicodeEncodeError):
                text.encode("gbk")  # it holds characters GBK lacks


@pytest.mark.parametrize("page", LISTS, ids=lambda p: p.file)
async def test_list_pages(page: Page, sites: dict[str, str]) -> None:
    import aiohttp

    from adapters.fetch import fetch

    _bytes_are(page)
    base = sites[page.shape]
    async with aiohttp.ClientSession() as session:
        got = await fetch(session, base + page.path, max_bytes=1_000_000)
    html, enc = decode_html(got.data, got.charset)
    assert enc == ("gb18030" if page.encoding != "utf-8" else "utf-8")
    links = article_links(html, base + page.path, Selectors())
    assert [(u.removeprefix(base), t) for u, t in links] == page.expect["links"]
    nxt = next_page(html, base + page.path)
    assert (nxt.removeprefix(base) if nxt else None) == page.expect["next"]


@pytest.mark.parametrize("shape", list(FIRST_LIST))
async def test_articles_of_each_site(
    shape: str, sites: dict[str, str], tmp_path: Path
) -> None:
    base = sites[shape]
    src = _portal(base, shape, tmp_path)
    try:
        poll = await src.poll({})
    finally:
        await src.close()
    assert poll.problems == []
    expected = [p for p in ARTICLES if p.shape == shape]
    drafts = {d.ref.removeprefix(base): d for d in poll.drafts}
    assert set(drafts) == {p.path for p in expected}
    arts = {a.url.removeprefix(base): a for a in src.last_articles}
    for p in expected:
        _bytes_are(p)
        want = p.expect
        art, draft = arts[p.path], drafts[p.path]
        assert art.title == want["title"], p.file
        assert art.date == want["created_at"], p.file
        assert art.author == want["author"], p.file
        assert art.source == want["source"], p.file
        assert art.read_count == want["reads"], p.file
        assert art.paragraphs == want["paragraphs"], p.file
        assert [a.name for a in draft.attachments] == want["attachments"], p.file
        item = draft.item
        assert item["kind"] == want["kind"], p.file
        assert item["title"] == want["title"]
        assert item["created_at"] == want["created_at"]
        assert item["body"] == want["body"], p.file
        who = [f"作者：{want['author']}"] if want["author"] != want["source"] else []
        who += [f"来源：{want['source']}"] if want["source"] else []
        assert item["summary"] == "；".join([*who, f"原文：{base}{p.path}"])
        reads = want["reads"]
        assert draft.notes == (() if reads is None else (f"阅读次数={reads}",))
        assert "阅读" not in str(item)  # the read count is never signed


@pytest.mark.parametrize("page", FEEDS, ids=lambda p: p.file)
async def test_feeds(page: Page, sites: dict[str, str], tmp_path: Path) -> None:
    _bytes_are(page)
    src = load_adapter(
        {
            "type": "feed",
            "name": "corpus-feed",
            "url": sites["feeds"] + page.path,
            "kind_rules": [
                {"field": "category", "match": "执法检查", "kind": "case_study"}
            ],
            "defaults": {"applicability": APPLICABLE},
        },
        _ctx(tmp_path),
    )
    assert isinstance(src, FeedSource)
    try:
        if "error" in page.expect:
            with pytest.raises(AdapterError, match=page.expect["error"]):
                await src.poll({})
            return
        poll = await src.poll({})
    finally:
        await src.close()
    assert poll.problems == []
    entries = {e.id: e for e in parse_feed((CORPUS / page.file).read_bytes())}
    assert list(entries) == list(page.expect["entries"])
    assert len(poll.drafts) == len(entries)
    for draft, (eid, want) in zip(
        poll.drafts, page.expect["entries"].items(), strict=True
    ):
        item = draft.item
        assert item["title"] == want["title"], eid
        assert item["created_at"] == want["created_at"], eid
        assert item["kind"] == want["kind"], eid
        assert item["body"] == want["body"], eid
        assert item.get("tags", []) == want["tags"], eid
        assert item.get("summary") == want["summary"], eid


def test_corpus_covers_every_shape_encoding_and_header() -> None:
    """The corpus the issue asks for, counted (the counts are in the closing note)."""
    on_disk = {
        p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*") if p.is_file()
    }
    assert on_disk == {p.file for p in PAGES}  # every fixture has an expected item
    shapes = Counter(p.shape for p in PAGES if p.kind != "feed")
    assert set(shapes) == {"trs", "hanweb", "wanhu", "kpy", "static"}
    for shape in shapes:
        kinds = {p.kind for p in PAGES if p.shape == shape}
        assert kinds == {"list", "article"}, shape
    encodings = Counter(p.encoding for p in PAGES)
    assert set(encodings) == {"utf-8", "gbk", "gb18030"}

    def header_says(p: Page) -> str:
        if "charset" not in p.header.lower():
            return "missing"
        declared = p.header.lower().split("charset=")[1]
        family = "gb" if declared in ("gbk", "gb2312", "gb18030") else declared
        actual = "gb" if p.encoding != "utf-8" else "utf-8"
        return "honest" if family == actual else "lying"

    headers = Counter(header_says(p) for p in PAGES if p.kind != "feed")
    assert set(headers) == {"honest", "missing", "lying"}
    metas = Counter(p.meta for p in PAGES if p.kind != "feed")
    assert set(metas) == {"honest", "missing", "lying"}
    assert {p.file.rsplit("/", 1)[1] for p in FEEDS} == {
        "rss-utf8.xml",
        "atom.xml",
        "rss-gbk.xml",
        "rss-entities.xml",
        "rss-malformed.xml",
    }
