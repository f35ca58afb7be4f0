// Congress Exchange dashboard: Chinese first, English on request. No framework, no CDN.
// All data is inserted with textContent, never innerHTML.
(function () {
  "use strict";
  const T = {
    zh: {
      title: "人大工作交流平台 · 监督看板", live_on: "实时", live_off: "未连接", logout: "退出",
      login_title: "监督登录", token_label: "监督令牌", login: "登录", chart_title: "每日推送（近30天）",
      week_title: "本周按圈子和类型", circle: "圈子", kind: "类型", count: "条数",
      sites_title: "各单位交流情况", filter: "筛选单位…", site: "单位", circles: "圈子",
      items_shared: "共享条目", last_push: "最近推送", last_pull: "最近拉取", refused_7d: "7日拒收",
      adapter: "适配器", status: "状态", fed_title: "联邦节点状态", plans_title: "联合执法检查",
      security_title: "安全事件", c_sites: "单位数", c_items: "共享条目",
      c_refused: "7日拒收", c_inactive: "不活跃单位", active: "活跃", inactive: "不活跃",
      none: "暂无", no_peers: "暂无对等节点数据", no_events: "暂无安全事件", no_plans: "暂无联合检查方案",
      scope: "监督范围", endorsed: "已会签", of: "/", backlog: "积压", last_ok: "最近成功", error: "错误", peer_col: "对等节点", problem: "状况",
      peer_unreachable: "无法连接对方节点", peer_timeout: "对方节点响应超时", peer_busy: "对方暂时无法保存，正在重试", peer_refused: "对方拒收部分条目（见节点日志）", peer_records: "正在同步单位信息", peer_signature: "签名或密钥未被对方接受", peer_other: "同步出错，正在重试（见节点日志）", peer_ok: "正常",
      all: "全部成员单位", never: "从未", bad_token: "令牌无效",
      adapter_none: "未报告", n_sites: "{n} 个单位", c_week: "本周新增条目", c_open: "进行中的联合检查",
      counts_note: "共享条目：各单位累计发布的条目数。本周新增：近7天新收到的条目，同一条目重复推送不重复计算；"
        + "按协作圈统计时，一条发给多个协作圈的条目在每个圈各计一次。",
      state_unknown: "状态未知", overdue: "有逾期事项", round: "第{n}轮", this_node: "本节点", peer_node: "对等节点 {n}",
      todo: "处理建议：", detail: "技术细节",
    },
    en: {
      title: "Congress Exchange · Monitoring", live_on: "live", live_off: "offline", logout: "Log out",
      login_title: "Monitor login", token_label: "Monitor token", login: "Log in", chart_title: "Items pushed per day (30 days)",
      week_title: "This week by circle and kind", circle: "Circle", kind: "Kind", count: "Items",
      sites_title: "Sites", filter: "Filter sites…", site: "Site", circles: "Circles",
      items_shared: "Items shared", last_push: "Last push", last_pull: "Last pull", refused_7d: "Refused (7d)",
      adapter: "Adapter", status: "Status", fed_title: "Federation", plans_title: "Joint inspections",
      security_title: "Security events", c_sites: "Sites", c_items: "Items shared",
      c_refused: "Refused (7d)", c_inactive: "Inactive sites", active: "active", inactive: "inactive",
      none: "none", no_peers: "No peer data yet", no_events: "No security events", no_plans: "No joint plans",
      scope: "Scope", endorsed: "endorsed", of: "/", backlog: "backlog", last_ok: "last success", error: "error", peer_col: "Peer node", problem: "Status",
      peer_unreachable: "cannot reach the peer", peer_timeout: "the peer is not answering in time", peer_busy: "the peer cannot store items just now; retrying", peer_refused: "the peer refused some items (see the node log)", peer_records: "sending site records", peer_signature: "the peer does not accept our signature or key", peer_other: "delivery failed; retrying (see the node log)", peer_ok: "OK",
      all: "all partners", never: "never", bad_token: "Invalid token",
      adapter_none: "not reported", n_sites: "{n} sites", c_week: "New items this week", c_open: "Open joint inspections",
      counts_note: "Items shared: all items each congress has published. New this week: items first received in the "
        + "last 7 days; pushing the same item again does not count. By circle, an item addressed to several circles "
        + "counts once in each.",
      state_unknown: "state unknown", overdue: "something overdue", round: "round {n}", this_node: "this node", peer_node: "peer node {n}",
      todo: "What to do: ", detail: "Technical detail",
    },
  };
  let lang = localStorage.getItem("exchange.lang") || "zh";
  let data = null;
  let labels = { zh: {}, en: {} };
  // Names of kinds, plan states and codes come from the node (schemas/labels.py).
  const L = (table, code) => ((labels[lang] || {})[table] || {})[code] || null;
  const siteName = (id) => (data && data.names && data.names.sites[id]) || id;
  const circleName = (id) => (data && data.names && data.names.circles[id]) || id;
  let sortKey = "site", sortDir = 1;
  const $ = (s) => document.querySelector(s);
  const t = (k) => (T[lang][k] !== undefined ? T[lang][k] : k);
  const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined && text !== null) e.textContent = String(text); if (cls) e.className = cls; return e; };
  // Times are shown in China Standard Time, whatever the viewer's machine is set to.
  const fmtTime = (v) => {
    if (!v) return t("never");
    const d = new Date(v);
    if (isNaN(d.getTime())) return String(v);
    return new Date(d.getTime() + 8 * 3600e3).toISOString().replace("T", " ").slice(0, 16);
  };

  function applyLang() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.querySelectorAll("[data-i18n]").forEach((n) => { n.textContent = t(n.dataset.i18n); });
    document.querySelectorAll("[data-i18n-placeholder]").forEach((n) => { n.placeholder = t(n.dataset.i18nPlaceholder); });
    $("#lang").textContent = lang === "zh" ? "English" : "中文";
    $("#live").textContent = t($("#live").classList.contains("on") ? "live_on" : "live_off");
    document.title = t("title");
    if (data) render();
  }

  async function load() {
    if (!labels.zh.kinds) {
      const lr = await fetch("/dashboard/labels.json");
      if (lr.ok) labels = await lr.json();
    }
    const r = await fetch("/v1/activity", { credentials: "same-origin" });
    if (r.status === 401 || r.status === 403) { showLogin(); return; }
    data = await r.json();
    $("#login-view").hidden = true; $("#app-view").hidden = false; $("#logout").hidden = false;
    render();
  }

  function showLogin() {
    $("#login-view").hidden = false; $("#app-view").hidden = true; $("#logout").hidden = true;
  }

  function card(label, value, id) {
    const c = el("div", null, "stat"); c.id = id;
    c.append(el("div", value, "v"), el("div", label, "l")); return c;
  }

  function render() {
    const d = data;
    const monitor = (d.names && d.names.monitor) || d.scope.monitor;
    $("#scope").textContent = `${t("scope")}: ${monitor} · ${d.scope.circles.map(circleName).join("、") || "—"} · ${t("n_sites").replace("{n}", d.scope.sites.length)}`;
    const cards = $("#cards"); cards.replaceChildren(
      card(t("c_sites"), d.totals.sites, "c-sites"), card(t("c_items"), d.totals.items, "c-items"),
      card(t("c_week"), d.totals.pushed_7d, "c-week"), card(t("c_refused"), d.totals.refused_7d, "c-refused"),
      card(t("c_inactive"), d.totals.inactive_sites, "c-inactive"),
      card(t("c_open"), d.totals.open_plans ?? 0, "c-open"));
    $("#counts-note").textContent = t("counts_note");
    const wb = $("#week tbody"); wb.replaceChildren();
    if (!d.week_by_circle_kind.length) { const tr = el("tr"); tr.append(el("td", t("none"), "muted")); wb.append(tr); }
    d.week_by_circle_kind.forEach((r) => { const tr = el("tr"); tr.append(el("td", r.circle === "(all)" ? t("all") : circleName(r.circle)), el("td", L("kinds", r.kind) || r.kind), el("td", r.n)); wb.append(tr); });
    chart(); sites(); federation(); plans(); security();
  }

  function chart() {
    const days = {}; const n = data.days;
    const today = new Date(data.generated_at);
    for (let i = n - 1; i >= 0; i--) { const x = new Date(today.getTime() + 8 * 3600e3 - i * 86400e3); days[x.toISOString().slice(0, 10)] = 0; }
    data.daily_pushed.forEach((r) => { if (r.day in days) days[r.day] += r.n; });
    const keys = Object.keys(days), vals = keys.map((k) => days[k]);
    // Drawn at the box's own width, so labels keep their size on a phone.
    const max = Math.max(1, ...vals), W = Math.max(280, $("#chart").clientWidth || 600), H = 180, bw = W / keys.length;
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg"); svg.setAttribute("viewBox", `0 0 ${W} ${H + 20}`); svg.setAttribute("role", "img");
    vals.forEach((v, i) => {
      const h = (v / max) * (H - 10); const r = document.createElementNS(ns, "rect");
      r.setAttribute("x", String(i * bw + 1)); r.setAttribute("y", String(H - h)); r.setAttribute("width", String(Math.max(1, bw - 2)));
      r.setAttribute("height", String(h)); r.setAttribute("fill", "#b3261e"); r.setAttribute("data-day", keys[i]); r.setAttribute("data-n", String(v));
      const tt = document.createElementNS(ns, "title"); tt.textContent = `${keys[i]}: ${v}`; r.append(tt); svg.append(r);
    });
    // Labels under the first, middle and last bar, anchored so none runs off the chart.
    [[0, "start"], [Math.floor(keys.length / 2), "middle"], [keys.length - 1, "end"]].forEach(([i, anchor]) => {
      const x = anchor === "start" ? i * bw : anchor === "end" ? (i + 1) * bw : (i + 0.5) * bw;
      const tx = document.createElementNS(ns, "text"); tx.setAttribute("x", String(x)); tx.setAttribute("y", String(H + 15));
      tx.setAttribute("text-anchor", anchor);
      tx.setAttribute("font-size", "11"); tx.setAttribute("fill", "#5b6b7c"); tx.textContent = keys[i].slice(5); svg.append(tx);
    });
    $("#chart").replaceChildren(svg);
  }

  function adapterText(s) {
    const a = (data.adapters && data.adapters[s.site]) || null;
    if (!a) return [t("adapter_none"), "warn"];
    return [a.last_error ? `${t("error")}: ${a.last_error}` : `${a.backlog ?? 0} · ${fmtTime(a.last_run)}`, a.last_error ? "bad" : "ok"];
  }

  function sites() {
    const q = ($("#filter").value || "").trim().toLowerCase();
    const rows = data.sites.filter((s) => !q || s.site.includes(q) || (s.name || "").toLowerCase().includes(q) || s.circles.join(",").includes(q));
    rows.sort((a, b) => { const x = a[sortKey] ?? "", y = b[sortKey] ?? ""; return (x > y ? 1 : x < y ? -1 : 0) * sortDir; });
    const tb = $("#sites tbody"); tb.replaceChildren();
    rows.forEach((s) => {
      const tr = el("tr"); tr.dataset.site = s.site;
      const name = el("td"); name.append(el("div", s.name, "nm"));
      const [atext, acls] = adapterText(s);
      const st = el("td"); st.append(el("span", s.inactive ? t("inactive") : t("active"), "badge " + (s.inactive ? "warn" : "ok")));
      const ad = el("td"); ad.append(el("span", atext, "badge " + acls));
      tr.append(name, el("td", s.circles.map(circleName).join("、")), el("td", s.items_shared), el("td", fmtTime(s.last_push)),
        el("td", s.last_pull_day || t("never")), el("td", s.refused_7d), ad, st);
      tb.append(tr);
    });
    document.querySelectorAll("#sites th[data-sort]").forEach((th) => { th.classList.toggle("asc", th.dataset.sort === sortKey && sortDir > 0); th.classList.toggle("desc", th.dataset.sort === sortKey && sortDir < 0); });
  }

  function federation() {
    const box = $("#federation"); const peers = (data.federation && data.federation.peers) || [];
    if (!peers.length) { box.replaceChildren(el("p", t("no_peers"), "muted")); return; }
    const table = el("table"); const head = el("tr");
    [t("peer_col"), t("backlog"), t("last_ok"), t("problem")].forEach((h) => head.append(el("th", h))); table.append(head);
    peers.forEach((p) => { const tr = el("tr"); tr.append(el("td", p.peer || p.id), el("td", p.backlog ?? "—"), el("td", fmtTime(p.last_success)), el("td", t(p.problem ? "peer_" + p.problem : "peer_ok"))); table.append(tr); });
    box.replaceChildren(table);
  }

  function plans() {
    const box = $("#plans");
    if (!data.plans.length) { box.replaceChildren(el("p", t("no_plans"), "muted")); return; }
    const ul = el("ul", null, "events");
    data.plans.forEach((p) => {
      const parts = (p.participants || []); const ok = (p.endorsements || []).filter((e) => e.decision === "endorse").length;
      const li = el("li", null, p.open ? "plan open" : "plan done"); li.dataset.state = p.state || "";
      li.append(el("strong", p.title));
      li.append(el("div", `${p.law || ""} · ${siteName(p.author)} → ${parts.map(siteName).join("、")}`, "muted"));
      const badges = el("div", null, "badges");
      const state = p.state ? L("states", p.state) || p.state : t("state_unknown");
      badges.append(el("span", state + (p.round > 1 ? ` · ${t("round").replace("{n}", p.round)}` : ""), "badge state " + (p.open ? "now" : "ok")));
      if (p.state === "draft" || p.state === "approved") {
        badges.append(el("span", `${t("endorsed")} ${ok}${t("of")}${parts.length}`, "badge " + (ok >= parts.length ? "ok" : "warn")));
      }
      if (p.overdue) badges.append(el("span", t("overdue"), "badge bad"));
      li.append(badges);
      ul.append(li);
    });
    box.replaceChildren(ul);
  }

  function who(e) {
    if (e.site) return siteName(e.site);
    const peer = e.detail && e.detail.node;
    return peer ? t("peer_node").replace("{n}", peer) : t("this_node");
  }

  function security() {
    const box = $("#security");
    if (!data.security_events.length) { box.replaceChildren(el("p", t("no_events"), "muted")); return; }
    const ul = el("ul", null, "events");
    data.security_events.forEach((e) => {
      const advice = L("security", e.code);
      const raw = advice ? advice[0] : L("errors", e.code) || e.code;
      const what = raw.charAt(0).toUpperCase() + raw.slice(1);  // a sentence in English
      const li = el("li", null, "security-event"); li.dataset.code = e.code;
      const head = el("div");
      head.append(el("span", fmtTime(e.at) + " ", "muted when"), el("span", who(e), "badge bad"), el("span", " " + what));
      li.append(head);
      if (advice) li.append(el("div", t("todo") + advice[1], "todo"));
      if (e.message) {
        const det = el("details"); det.append(el("summary", t("detail")), el("code", e.message));
        li.append(det);
      }
      ul.append(li);
    });
    box.replaceChildren(ul);
  }

  function connect() {
    const es = new EventSource("/dashboard/events");
    es.addEventListener("hello", () => { $("#live").classList.add("on"); $("#live").textContent = t("live_on"); });
    es.addEventListener("changed", () => { load(); });
    es.onerror = () => { $("#live").classList.remove("on"); $("#live").textContent = t("live_off"); };
  }

  $("#lang").addEventListener("click", () => { lang = lang === "zh" ? "en" : "zh"; localStorage.setItem("exchange.lang", lang); applyLang(); });
  $("#filter").addEventListener("input", () => sites());
  window.addEventListener("resize", () => { if (data) chart(); });
  document.querySelectorAll("#sites th[data-sort]").forEach((th) => th.addEventListener("click", () => {
    if (sortKey === th.dataset.sort) sortDir = -sortDir; else { sortKey = th.dataset.sort; sortDir = 1; } sites();
  }));
  $("#login").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const r = await fetch("/dashboard/login", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token: $("#token").value }) });
    if (!r.ok) { $("#login-error").textContent = t("bad_token"); return; }
    $("#token").value = ""; $("#login-error").textContent = ""; await load(); connect();
  });
  $("#logout").addEventListener("click", async () => { await fetch("/dashboard/logout", { method: "POST" }); data = null; showLogin(); });
  applyLang();
  load().then(() => { if (data) connect(); });
})();
