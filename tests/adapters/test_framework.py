"""The framework's own parts: durable spool, state files, registry and entry points."""

from __future__ import annotations

import hashlib
import importlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.base import AdapterContext, AdapterError, Attachment, Draft, Sink, Source
from adapters.registry import SINKS, SOURCES, available, load_adapter
from adapters.runner import prepare_draft
from adapters.spool import Spool, StateFiles, atomic_write
from exchange.core.items import sign_item
from exchange.core.signing import generate_key
from exchange.errors import ConfigError
from exchange.templates import template

KEY = generate_key(key_id="huaibei-duji#k1")


def _signed(title: str, sha: str | None = None) -> dict[str, Any]:
    it = template("lesson", author="huaibei-duji", partner="xuzhou-tongshan")
    it["title"] = title
    if sha:
        it["attachments"] = [
            {"name": "a.pdf", "media_type": "application/pdf", "size": 3, "sha256": sha}
        ]
    return sign_item(it, KEY)


def test_spool_keeps_one_copy_order_and_blobs_until_acknowledged(
    tmp_path: Path,
) -> None:
    data = b"pdf"
    sha = hashlib.sha256(data).hexdigest()
    sp = Spool(tmp_path / "spool")
    a, b, c = _signed("一", sha), _signed("二", sha), _signed("三")
    assert sp.add(a, {sha: data}) and sp.add(b, {sha: data}) and sp.add(c)
    assert not sp.add(a, {sha: data})  # the same item again: one copy
    assert sp.backlog == 3
    (tmp_path / "spool" / "items" / ".tmp-abc-x.json").write_bytes(
        b"half"
    )  # crash leftover
    sp = Spool(tmp_path / "spool")  # reopened after a restart
    assert [e.signed["item"]["title"] for e in sp.pending()] == ["一", "二", "三"]
    assert not any(
        p.name.startswith(".tmp-") for p in (tmp_path / "spool" / "items").iterdir()
    )
    first = sp.pending(1)
    sp.done(first)
    assert sp.blob(sha) == data  # item 二 still needs it
    entries = sp.pending()
    sp.reject(entries[1], "schema_invalid: bad\n")
    sp.done(entries[:1])
    assert sp.blob(sha) is None and sp.backlog == 0 and sp.rejected == 1
    why = next((tmp_path / "spool" / "rejected").glob("*.why.txt")).read_text()
    assert why.startswith("schema_invalid")
    with pytest.raises(ValueError, match="do not match"):
        sp.add(_signed("四", sha), {sha: b"other bytes"})


def test_state_files_are_atomic_and_a_damaged_one_is_named(tmp_path: Path) -> None:
    st = StateFiles(tmp_path / "state")
    assert st.load("source-news") == {}
    st.save("source-news", {"seen": ["a", "b"]})
    assert st.load("source-news") == {"seen": ["a", "b"]}
    assert st.names() == ["source-news"]
    atomic_write(tmp_path / "state" / "pull-cursor.json", b"{not json")
    with pytest.raises(ConfigError, match=r"pull-cursor\.json is damaged"):
        st.load("pull-cursor")
    assert not StateFiles(tmp_path / "absent", create=False).names()
    assert not (tmp_path / "absent").exists()


def test_prepare_draft_fills_in_attachments_and_author() -> None:
    it = template("lesson", author="huaibei-duji", partner="xuzhou-tongshan")
    del it["author"]
    d = Draft(it, "ref", (Attachment("方案.docx", "application/msword", b"doc bytes"),))
    p = prepare_draft(d, "huaibei-duji")
    assert p.item["author"] == "huaibei-duji"
    (att,) = p.item["attachments"]
    sha = hashlib.sha256(b"doc bytes").hexdigest()
    assert att == {
        "name": "方案.docx",
        "media_type": "application/msword",
        "size": 9,
        "sha256": sha,
    }
    assert p.blobs == {sha: b"doc bytes"}
    with pytest.raises(AdapterError, match="author 'xuzhou-tongshan' is not this site"):
        prepare_draft(Draft({**it, "author": "xuzhou-tongshan"}, "r"), "huaibei-duji")
    with pytest.raises(AdapterError, match=r"ref: .*title"):
        prepare_draft(Draft({**it, "title": ""}, "ref"), "huaibei-duji")


def test_builtin_maps_are_sorted_and_name_real_modules() -> None:
    assert list(SOURCES) == sorted(SOURCES) and list(SINKS) == sorted(SINKS)
    for target in (
        "adapters.rss:FeedSource",
        "adapters.portal_html:PortalSource",
        "adapters.shared_folder:FolderSource",
        "adapters.shared_folder:FolderSink",
    ):
        mod, _, cls = target.partition(":")
        assert hasattr(importlib.import_module(mod), cls)


_PLUGIN = """
from typing import Any, ClassVar
from adapters.base import AdapterConfig, Poll

class EchoConfig(AdapterConfig):
    word: str

class EchoSource:
    config_model: ClassVar[type[AdapterConfig]] = EchoConfig
    def __init__(self, config: EchoConfig, ctx: Any) -> None:
        self.config = config
    async def poll(self, state: dict[str, Any]) -> Poll:
        return Poll([], {"word": self.config.word})
    async def close(self) -> None:
        pass
"""


@pytest.fixture
def plugin_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real installed distribution (dist-info on sys.path) with entry points."""
    site = tmp_path / "site-packages"
    dist = site / "oa_echo-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: oa-echo\nVersion: 0.1\n"
    )
    (dist / "entry_points.txt").write_text(
        "[congress_exchange.adapters]\n"
        "echo = oa_echo:EchoSource\n"
        "needs-pkg.source = oa_echo_broken:Source\n"
        "folder = oa_echo:EchoSource\n"
    )
    (site / "oa_echo.py").write_text(_PLUGIN)
    (site / "oa_echo_broken.py").write_text("import surely_not_installed_pkg\n")
    monkeypatch.syspath_prepend(str(site))
    yield site
    for m in ("oa_echo", "oa_echo_broken"):
        sys.modules.pop(m, None)


async def test_third_party_adapter_from_entry_points(
    plugin_dist: Path, tmp_path: Path
) -> None:
    ctx = AdapterContext("huaibei-duji", tmp_path, logging.getLogger("t"), tmp_path)
    src = load_adapter({"type": "echo", "name": "e", "word": "你好"}, ctx)
    assert isinstance(src, Source)
    assert (await src.poll({})).state == {"word": "你好"}
    infos = {(i.type, i.role, i.origin) for i in available()}
    assert ("echo", "source", "oa-echo") in infos and (
        "folder",
        "sink",
        "built-in",
    ) in infos
    # Built-in names win over a plugin of the same name.
    sink = load_adapter({"type": "folder", "name": "f", "path": "x"}, ctx, role="sink")
    assert isinstance(sink, Sink) and type(sink).__module__ == "adapters.shared_folder"
    with pytest.raises(ConfigError, match=r"source\[4\]\.word: Field required"):
        load_adapter({"type": "echo", "name": "e"}, ctx, index=4)
    with pytest.raises(
        ConfigError,
        match=r"needs the Python package 'surely_not_installed_pkg'"
        r".*pip install surely_not_installed_pkg",
    ):
        load_adapter({"type": "needs-pkg", "name": "n"}, ctx)
    with pytest.raises(
        ConfigError, match=r"no sink adapter of type 'echo-x'; known: .*folder, mail"
    ):
        load_adapter({"type": "echo-x", "name": "n"}, ctx, role="sink", index=1)
    with pytest.raises(ConfigError, match="is not a sink"):
        load_adapter({"type": "echo", "name": "e", "word": "w"}, ctx, role="sink")


@pytest.mark.parametrize(
    "name", ["site-feed.toml", "site-portal.toml", "site-folder.toml"]
)
def test_deploy_examples_are_valid(name: str, tmp_path: Path) -> None:
    from adapters.config import load_site_config

    path = Path(__file__).resolve().parents[2] / "deploy" / "examples" / name
    cfg = load_site_config(path)
    ctx = AdapterContext(cfg.site.id, tmp_path, logging.getLogger("t"), tmp_path)
    for role, tables in (("source", cfg.source), ("sink", cfg.sink)):
        for i, table in enumerate(tables):
            load_adapter(table, ctx, role=role, index=i)  # type: ignore[arg-type]
