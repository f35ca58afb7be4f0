"""The ``mail`` adapter against real servers: Dovecot (IMAP) and aiosmtpd (SMTP).

Dovecot comes from the distribution (``apt-get install dovecot-imapd``; ``.ci/run``
installs it). The fixture writes a minimal config in a temporary folder (users from a
static file, plaintext login on 127.0.0.1, a free port, Maildir storage), runs
``dovecot -F`` and stops it by PID. Messages arrive by IMAP APPEND. Without the binary
the IMAP tests fail in CI and skip locally.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import imaplib
import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from adapters.base import AdapterContext, AdapterError
from adapters.extract.mail import imap_utf7
from adapters.imap_smtp import ImapSource, ImapSourceConfig, SmtpSink, SmtpSinkConfig
from exchange.core.items import item_id, sign_item, verify_item
from exchange.core.signing import generate_key
from exchange.templates import template

pytestmark = pytest.mark.asyncio

USER, PASSWORD = "exchange", "imap-secret-1"
MAILBOX = "工作交流"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_DOVECOT_CONF = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:{root}/mail/%u
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


@dataclass
class Dovecot:
    """A running Dovecot with one user."""

    port: int
    root: Path
    proc: subprocess.Popen[bytes] | None = None

    def imap(self) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        conn.login(USER, PASSWORD)
        return conn

    def append(self, msg: bytes | EmailMessage, mailbox: str = MAILBOX) -> None:
        data = msg if isinstance(msg, bytes) else msg.as_bytes(policy=policy.SMTP)
        conn = self.imap()
        try:
            typ, _ = conn.append(f'"{imap_utf7(mailbox)}"', None, None, data)
            assert typ == "OK"
        finally:
            conn.logout()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    """Dovecot on a free 127.0.0.1 port with the dedicated mailbox created."""
    binary = shutil.which("dovecot") or (
        "/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None
    )
    if binary is None:
        msg = "dovecot is not installed; run 'apt-get install -y dovecot-imapd'"
        if _in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    root = Path(tempfile.mkdtemp(prefix="exchange-dovecot-"))
    root.chmod(0o755)  # Dovecot's unprivileged processes must reach the Maildir
    uid = gid = 65534  # nobody: Dovecot refuses mail access as root
    (root / "mail").mkdir()
    os.chown(root / "mail", uid, gid)
    (root / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    port = _free_port()
    conf = root / "dovecot.conf"
    conf.write_text(_DOVECOT_CONF.format(root=root, port=port, uid=uid, gid=gid))
    server = Dovecot(port, root)
    server.proc = subprocess.Popen(
        [binary, "-F", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(200):
            if server.proc.poll() is not None:
                log = (
                    (root / "dovecot.log").read_text()
                    if (root / "dovecot.log").exists()
                    else ""
                )
                err = server.proc.stderr.read().decode() if server.proc.stderr else ""
                pytest.fail(f"dovecot exited: {err} {log}")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            time.sleep(0.05)
        else:
            pytest.fail("dovecot did not start listening")
        conn = server.imap()
        conn.create(f'"{imap_utf7(MAILBOX)}"')
        conn.logout()
        yield server
    finally:
        server.stop()
        if server.proc.stderr is not None:
            server.proc.stderr.close()
        shutil.rmtree(root, ignore_errors=True)


def _ctx(tmp_path: Path, name: str = "mail") -> AdapterContext:
    return AdapterContext(
        "huaibei-duji", tmp_path / name, logging.getLogger("test.mail")
    )


def _source(server: Dovecot, tmp_path: Path, **over: Any) -> ImapSource:
    raw: dict[str, Any] = {
        "type": "mail",
        "name": "inbox",
        "host": "127.0.0.1",
        "port": server.port,
        "security": "plain",
        "username": USER,
        "password": PASSWORD,
        "mailbox": MAILBOX,
        "kind_rules": [{"match": "案例", "kind": "case_study"}],
    }
    raw.update(over)
    return ImapSource(ImapSourceConfig.model_validate(raw), _ctx(tmp_path))


LESSON = (
    "一、基本情况\n杜集区有12个镇街，代表联络站覆盖不均。\n"
    "二、主要做法\n建设“家门口”代表联络站，每月固定接待日。\n"
    "三、取得成效\n两年收集群众意见建议860条，办结率96%。\n"
    "四、推广价值\n适用于乡镇较多、代表分散的县区。"
)
CASE_HTML = (
    "<html><head><style>p{color:red}</style></head><body>"
    "<p><b>一、案例背景</b></p><p>辖区化工企业集中，安全隐患多。</p>"
    "<p>二、主要做法</p><ul><li>联合应急管理局开展执法检查。</li><li>跟踪督办整改。</li></ul>"
    "<p>三、取得成效</p><p>整改隐患&nbsp;37 项。</p></body></html>"
)


def _mail(
    subject: str,
    *,
    text: str | None = None,
    html: str | None = None,
    sender: str = "rdbgs@duji.example.gov.cn",
    charset: str = "utf-8",
    files: tuple[tuple[str, bytes], ...] = (),
    date: str = "Thu, 28 Oct 2021 09:30:00 +0800",
    msgid: str = "",
) -> bytes:
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = "exchange@duji.example.gov.cn"
    msg["Date"] = date
    msg["Message-ID"] = msgid or f"<{abs(hash(subject))}@duji.example.gov.cn>"
    if text is not None:
        msg.set_content(text, charset=charset)
    if html is not None:
        if text is None:
            msg.set_content(html, subtype="html", charset=charset)
        else:
            msg.add_alternative(html, subtype="html", charset=charset)
    if text is None and html is None:
        msg.set_content("")
    for name, data in files:
        msg.add_attachment(
            data,
            maintype="application",
            subtype="vnd.openxmlformats-officedocument.wordprocessingml.document",
            filename=name,
        )
    return msg.as_bytes(policy=policy.SMTP)


async def test_imap_messages_become_items_with_attachments(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    dovecot.append(
        _mail(
            "转发：杜集区代表联络站建设经验",
            text=LESSON,
            charset="gb18030",
            files=(("联络站工作制度.docx", b"PK\x03\x04 fake docx"),),
        )
    )
    dovecot.append(_mail("化工企业安全生产联合执法检查案例", html=CASE_HTML))
    dovecot.append(_mail("只有附件", files=(("附件.docx", b"PK"),)))
    src = _source(dovecot, tmp_path)
    res = await src.poll({})
    assert len(res.drafts) == 2
    lesson, case = res.drafts
    assert lesson.item["title"] == "杜集区代表联络站建设经验"
    assert lesson.item["kind"] == "lesson"
    assert lesson.item["created_at"] == "2021-10-28T09:30:00+08:00"
    assert lesson.item["body"]["outcomes"] == "两年收集群众意见建议860条，办结率96%。"
    assert [(a.name, a.data) for a in lesson.attachments] == [
        ("联络站工作制度.docx", b"PK\x03\x04 fake docx")
    ]
    assert case.item["kind"] == "case_study"
    assert case.item["body"]["actions"] == [
        "联合应急管理局开展执法检查。",
        "跟踪督办整改。",
    ]
    assert case.item["body"]["results"] == "整改隐患 37 项。"
    assert len(res.problems) == 1
    assert "UID 3" in res.problems[0] and "no usable body" in res.problems[0]
    assert res.state["last_uid"] == 3 and res.state["uidvalidity"] > 0
    # The mailbox was only examined: nothing was marked \Seen.
    conn = dovecot.imap()
    conn.select(f'"{imap_utf7(MAILBOX)}"', readonly=True)
    _, flags = conn.uid("FETCH", "1:*", "(FLAGS)")
    conn.logout()
    assert all(b"\\Seen" not in f for f in flags if isinstance(f, bytes))
    # Nothing new → nothing; a new message → only it.
    assert (await src.poll(res.state)).drafts == []
    dovecot.append(_mail("第二份经验材料", text=LESSON))
    nxt = await src.poll(res.state)
    assert [d.item["title"] for d in nxt.drafts] == ["第二份经验材料"]
    assert nxt.state["last_uid"] == 4
    # Reading from scratch gives the same items (the same ids): deterministic.
    again = await src.poll({})
    assert [item_id(d.item) for d in again.drafts[:2]] == [
        item_id(lesson.item),
        item_id(case.item),
    ]


async def test_imap_batches_senders_and_uidvalidity(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    for n in range(3):
        dovecot.append(_mail(f"经验材料{n}", text=LESSON, msgid=f"<m{n}@x>"))
    dovecot.append(
        _mail("外部来信", text=LESSON, sender="someone@elsewhere.example.com")
    )
    src = _source(dovecot, tmp_path, batch=2, allow_from=["@duji.example.gov.cn"])
    first = await src.poll({})
    assert [d.item["title"] for d in first.drafts] == ["经验材料0", "经验材料1"]
    second = await src.poll(first.state)
    assert [d.item["title"] for d in second.drafts] == ["经验材料2"]
    assert len(second.problems) == 1 and "allow_from" in second.problems[0]
    assert second.state["last_uid"] == 4
    # The mailbox is recreated: new UIDVALIDITY, read again from the start.
    conn = dovecot.imap()
    conn.delete(f'"{imap_utf7(MAILBOX)}"')
    conn.create(f'"{imap_utf7(MAILBOX)}"')
    conn.logout()
    dovecot.append(_mail("经验材料0", text=LESSON, msgid="<m0@x>"))
    third = await src.poll(second.state)
    assert third.state["uidvalidity"] != second.state["uidvalidity"]
    assert [d.item for d in third.drafts] == [first.drafts[0].item]
    assert any("UIDVALIDITY changed" in p for p in third.problems)


async def test_imap_failures_are_clear(dovecot: Dovecot, tmp_path: Path) -> None:
    src = _source(dovecot, tmp_path, mailbox="不存在")
    with pytest.raises(AdapterError) as err:
        await src.poll({})
    assert not err.value.retryable and "不存在" in err.value.message
    dovecot.append(_mail("经验材料", text=LESSON))
    src = _source(dovecot, tmp_path)
    ok = await src.poll({})
    # Last login of the test: Dovecot delays logins after a failed one.
    bad = _source(dovecot, tmp_path, password="wrong-pw")
    with pytest.raises(AdapterError) as err:
        await bad.poll({})
    assert not err.value.retryable and "login" in err.value.message
    assert "wrong-pw" not in err.value.message
    dovecot.stop()  # the server goes away
    with pytest.raises(AdapterError) as err:
        await src.poll(ok.state)
    assert err.value.retryable and "will retry" in err.value.message


# -- SMTP ----------------------------------------------------------------------


@dataclass
class Inbox:
    """What the SMTP server received; ``fail`` answers the next DATA commands."""

    messages: list[tuple[list[str], bytes]] = field(default_factory=list)
    fail: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.fail:
            return self.fail.pop(0)
        self.messages.append(
            (list(envelope.rcpt_tos), bytes(envelope.original_content))
        )
        return "250 OK"

    def parsed(self) -> list[EmailMessage]:
        out = []
        for _, raw in self.messages:
            m = email.message_from_bytes(raw, policy=policy.default)
            assert isinstance(m, EmailMessage)
            out.append(m)
        return out


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    """aiosmtpd on a free 127.0.0.1 port (in-process controller thread)."""
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def _sink(port: int, tmp_path: Path, **over: Any) -> SmtpSink:
    raw: dict[str, Any] = {
        "type": "mail",
        "name": "office",
        "host": "127.0.0.1",
        "port": port,
        "security": "plain",
        "from_addr": "exchange@duji.example.gov.cn",
        "to": ["rdbgs@duji.example.gov.cn", "fgw@duji.example.gov.cn"],
    }
    raw.update(over)
    return SmtpSink(SmtpSinkConfig.model_validate(raw), _ctx(tmp_path, "smtp"))


_KEY = generate_key(key_id="suzhou-wuzhong#k1")


def _signed(n: int) -> tuple[dict[str, Any], dict[str, Any]]:
    item = template("lesson", author="suzhou-wuzhong", partner="huaibei-duji")
    item["title"] = f"吴中区人大代表“家站点”建设经验（{n}）"
    signed = sign_item(item, _KEY)
    return signed, {
        "index": n,
        "id": item_id(item),
        "received_at": "2026-11-20T01:30:00+00:00",
    }


async def test_smtp_one_mail_per_item_encoded_and_idempotent(
    smtp: tuple[Inbox, int], tmp_path: Path
) -> None:
    inbox, port = smtp
    sink = _sink(port, tmp_path)
    s1, e1 = _signed(1)
    s2, e2 = _signed(2)
    await sink.deliver(s1, e1)
    await sink.deliver(s1, e1)
    await sink.deliver(s2, e2)
    await sink.close()
    assert len(inbox.messages) == 2
    rcpts, raw = inbox.messages[0]
    assert rcpts == ["rdbgs@duji.example.gov.cn", "fgw@duji.example.gov.cn"]
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()  # Chinese only as RFC 2047 encoded words
    assert b"=?utf-8?" in head.lower()
    msg = inbox.parsed()[0]
    assert msg["Subject"] == "【人大工作交流】经验做法：" + s1["item"]["title"]
    assert msg["From"].addresses[0].display_name == "人大工作交流平台"
    body = msg.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert s1["item"]["title"] in text and "【做法】" in text
    assert e1["id"] in text
    (att,) = list(msg.iter_attachments())
    signed_back = json.loads(att.get_content())
    verify_item(signed_back, _KEY.public_key)
    # A restarted sink remembers what it sent.
    again = _sink(port, tmp_path)
    await again.deliver(s1, e1)
    await again.close()
    assert len(inbox.messages) == 2


async def test_smtp_digest_gathers_items_durably(
    smtp: tuple[Inbox, int], tmp_path: Path
) -> None:
    inbox, port = smtp
    sink = _sink(port, tmp_path, mode="digest", digest_size=3, digest_minutes=600)
    items = [_signed(n) for n in range(1, 5)]
    await sink.deliver(*items[0])
    await sink.deliver(*items[1])
    await sink.deliver(*items[1])
    await sink.close()  # restart with two queued
    assert inbox.messages == []
    sink = _sink(port, tmp_path, mode="digest", digest_size=3, digest_minutes=600)
    await sink.deliver(*items[2])
    assert len(inbox.messages) == 1
    msg = inbox.parsed()[0]
    assert msg["Subject"] == "【人大工作交流】新交流内容摘要（3 条）"
    body = msg.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    for s, _ in items[:3]:
        assert s["item"]["title"] in text
    assert len(list(msg.iter_attachments())) == 3
    await sink.deliver(*items[0])  # already sent
    await sink.close()
    assert len(inbox.messages) == 1


async def test_smtp_digest_timer_sends_a_partial_digest(
    smtp: tuple[Inbox, int], tmp_path: Path
) -> None:
    inbox, port = smtp
    sink = _sink(port, tmp_path, mode="digest", digest_size=50, digest_minutes=0.005)
    await sink.deliver(*_signed(1))
    for _ in range(200):
        if inbox.messages:
            break
        await asyncio.sleep(0.05)
    await sink.close()
    assert len(inbox.messages) == 1
    assert "（1 条）" in inbox.parsed()[0]["Subject"]


async def test_smtp_refusals_and_outage(
    smtp: tuple[Inbox, int], tmp_path: Path
) -> None:
    inbox, port = smtp
    sink = _sink(port, tmp_path)
    s1, e1 = _signed(1)
    inbox.fail.append("451 4.3.0 mailbox busy, try later")
    with pytest.raises(AdapterError) as err:
        await sink.deliver(s1, e1)
    assert err.value.retryable and "451" in err.value.message
    await sink.deliver(s1, e1)  # the retry goes through, once
    assert len(inbox.messages) == 1
    s2, e2 = _signed(2)
    inbox.fail.append("554 5.7.1 message refused")
    with pytest.raises(AdapterError) as err:
        await sink.deliver(s2, e2)
    assert not err.value.retryable
    down = _sink(_free_port(), tmp_path)
    with pytest.raises(AdapterError) as err:
        await down.deliver(s2, e2)
    assert err.value.retryable and "will retry" in err.value.message
    await sink.close()


async def test_the_example_site_toml_is_valid(tmp_path: Path) -> None:
    from adapters.config import load_site_config
    from adapters.registry import load_adapter

    repo = Path(__file__).resolve().parents[2]
    cfg = load_site_config(repo / "deploy" / "examples" / "site-mail.toml")
    ctx = AdapterContext(
        "xuzhou-tongshan", tmp_path / "a", logging.getLogger("t"), cfg.base_dir
    )
    assert isinstance(load_adapter(cfg.source[0], ctx, role="source"), ImapSource)
    assert isinstance(load_adapter(cfg.sink[0], ctx, role="sink"), SmtpSink)
    assert not (tmp_path / "a").exists()


async def test_imap_garbage_and_dateless_mail(dovecot: Dovecot, tmp_path: Path) -> None:
    dovecot.append(b"\x00\xff not a mail at all\r\n")
    raw = _mail("没有日期的经验材料", text=LESSON).replace(
        b"Date: Thu, 28 Oct 2021 09:30:00 +0800\r\n", b""
    )
    dovecot.append(raw)
    res = await _source(dovecot, tmp_path).poll({})
    assert len(res.problems) == 1 and "UID 1" in res.problems[0]
    assert "no title" in res.problems[0]
    (draft,) = res.drafts
    # No Date header: the server's arrival time (INTERNALDATE) is used, in +08:00.
    assert draft.item["created_at"].endswith("+08:00")
    assert res.state["last_uid"] == 2
