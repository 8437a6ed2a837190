// imqtt operators' dashboard: plain JavaScript over /v1/admin/. Every value
// from the server reaches the page through textContent, never as HTML.
"use strict";

const TOKEN_KEY = "imqtt-admin-token";
const KEEP = 600; // chart points: ten minutes at one per second
const $ = (id) => document.getElementById(id);

let token = sessionStorage.getItem(TOKEN_KEY) || "";
let view = "";
let timer = 0;
let generation = 0; // one refresh loop at a time
let series = []; // stats points, oldest first
let lastT = 0;
let seriesScope = ""; // whose the points are: "cluster" or "this node"
let clustered = null; // the last cluster view had other nodes
let clientsCursor = "";

// ---- the admin API ----

class Refused extends Error {}

async function api(method, path, body) {
  const opts = { method, headers: { Authorization: "Bearer " + token } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch("/v1/admin/" + path, opts);
  const text = await resp.text();
  const data = text ? JSON.parse(text) : null;
  if (resp.status === 401 || resp.status === 403) { // only the token check answers these
    signOut((data && data.message) || "signed out");
    throw new Refused(data && data.message);
  }
  if (!resp.ok) throw new Error((data && data.message) || resp.status + " " + resp.statusText);
  return data;
}

// ---- small DOM helpers ----

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = c instanceof Node ? el("td") : el("td", c);
    if (c instanceof Node) td.append(c);
    tr.append(td);
  }
  return tr;
}

// fill draws a table's rows in place: a row that was there already (the
// same data-* key) is kept and only its changed cells are swapped. The
// refresh loop redraws every few seconds, and a button replaced between
// the press and the release would swallow the operator's click.
function fill(tbody, rows, empty, cols) {
  if (!rows.length) {
    const td = el("td", empty, "muted");
    td.colSpan = cols;
    const tr = el("tr");
    tr.append(td);
    rows = [tr];
  }
  const key = (tr) => (Object.keys(tr.dataset).length ? JSON.stringify(tr.dataset) : "");
  const old = new Map();
  for (const tr of tbody.rows) if (key(tr)) old.set(key(tr), tr);
  const next = rows.map((tr) => {
    const was = old.get(key(tr));
    if (!was || was.cells.length !== tr.cells.length) return tr;
    old.delete(key(tr));
    [...tr.cells].forEach((td, i) => { if (was.cells[i].outerHTML !== td.outerHTML) was.cells[i].replaceWith(td); });
    return was;
  });
  if (next.length === tbody.rows.length && next.every((tr, i) => tbody.rows[i] === tr)) return;
  tbody.replaceChildren(...next);
}

// confirmAction asks the operator in a dialog (not window.confirm, which
// blocks the page and cannot be styled) and resolves true on Confirm.
function confirmAction(text, yes) {
  const dlg = $("confirm");
  $("confirm-text").textContent = text;
  $("confirm-yes").textContent = yes || "Confirm";
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => resolve(dlg.returnValue === "yes"), { once: true });
    dlg.returnValue = "";
    dlg.showModal();
  });
}

const fmt = (v, d = 1) => (v === null || v === undefined || Number.isNaN(v) ? "–" : String(+Number(v).toFixed(d)));
const count = (v) => (v === null || v === undefined ? "–" : Math.round(v).toLocaleString("en"));
const clock = (ms) => new Date(ms).toLocaleTimeString("en-GB");
const when = (ms) => (ms ? new Date(ms).toLocaleString("en-GB") : "–");

function ago(ms) {
  if (!ms) return "–";
  let s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 90) return s + " s ago";
  if ((s = Math.round(s / 60)) < 90) return s + " min ago";
  return Math.round(s / 60) + " h ago";
}

function uptime(s) {
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m " + (s % 60) + "s";
}

// ---- charts: a few lines on a canvas ----

function drawChart(canvas, lines, opts = {}) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const css = getComputedStyle(document.documentElement);
  const pad = { l: 44, r: 8, t: 8, b: 20 };
  const pw = w - pad.l - pad.r, ph = h - pad.t - pad.b;
  const n = series.length;
  let top = opts.min || 1;
  for (const ln of lines) for (const p of series) { const v = ln.get(p); if (v !== null && v > top) top = v; }
  top = niceCeil(top);
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = css.getPropertyValue("--muted");
  g.strokeStyle = css.getPropertyValue("--line");
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) { // grid and y labels
    const y = pad.t + ph - (ph * i) / 4;
    g.beginPath(); g.moveTo(pad.l, y + 0.5); g.lineTo(pad.l + pw, y + 0.5); g.stroke();
    g.textAlign = "right"; g.textBaseline = "middle";
    g.fillText(fmt((top * i) / 4, top < 0.4 ? 3 : top < 4 ? 2 : top < 40 ? 1 : 0), pad.l - 6, y);
  }
  if (n < 2) {
    g.textAlign = "center";
    g.fillText("collecting…", pad.l + pw / 2, pad.t + ph / 2);
    return;
  }
  const t0 = series[0].t, t1 = series[n - 1].t, span = Math.max(t1 - t0, 1);
  const x = (t) => pad.l + ((t - t0) / span) * pw;
  g.textAlign = "left"; g.textBaseline = "top";
  g.fillText(clock(t0), pad.l, pad.t + ph + 4);
  g.textAlign = "right";
  g.fillText(clock(t1), pad.l + pw, pad.t + ph + 4);
  lines.forEach((ln) => {
    g.strokeStyle = css.getPropertyValue(ln.color);
    g.lineWidth = 1.6;
    g.fillStyle = g.strokeStyle;
    g.beginPath();
    const val = (i) => (i < 0 || i >= n ? null : ln.get(series[i]) ?? null);
    for (let i = 0; i < n; i++) {
      const v = val(i);
      if (v === null) continue; // a gap: nothing observed in that second
      const px = x(series[i].t), py = pad.t + ph - (Math.min(v, top) / top) * ph;
      if (val(i - 1) === null) {
        g.moveTo(px, py);
        if (val(i + 1) === null) g.fillRect(px - 1.5, py - 1.5, 3, 3); // a lone point
      } else g.lineTo(px, py);
    }
    g.stroke();
  });
}

// niceCeil is the top of the y axis: four grid steps of a round size.
function niceCeil(v) {
  const step = v / 4, e = Math.pow(10, Math.floor(Math.log10(step)));
  for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (step <= m * e) return 4 * m * e;
  return 40 * e;
}

function drawCharts() {
  drawChart($("c-conns"), [{ get: (p) => p.conns, color: "--c0" }]);
  drawChart($("c-msgs"), [{ get: (p) => p.in, color: "--c0" }, { get: (p) => p.out, color: "--c1" }]);
  drawChart($("c-ack"), [{ get: (p) => p.ack_p50, color: "--c0" }, { get: (p) => p.ack_p99, color: "--c1" }], { min: 0.1 });
  drawChart($("c-commit"), [{ get: (p) => p.commit_p50, color: "--c0" }, { get: (p) => p.commit_p99, color: "--c1" }], { min: 0.1 });
  drawChart($("c-batch"), [{ get: (p) => p.batch, color: "--c0" }]);
  drawChart($("c-errors"), [{ get: (p) => p.errors, color: "--c2" }, { get: (p) => p.denials, color: "--c1" }]);
}

// ---- views ----

async function clusterLine(since = "") {
  const c = await api("GET", "cluster/stats?window=10" + since);
  $("cl-up").textContent = c.total.up;
  $("cl-nodes").textContent = c.total.nodes;
  $("cl-conns").textContent = count(c.total.connections);
  $("cl-in").textContent = fmt(c.total.in_per_sec);
  $("cl-out").textContent = fmt(c.total.out_per_sec);
  $("cl-down").textContent = c.nodes.filter((n) => !n.up).map((n) => n.node + " down: " + n.error).join(" · ");
  return c;
}

// The overview's tiles are the cluster's, from GET cluster/stats, asked
// on its own loop with one request in flight at a time: a slow or down
// node delays the tiles, never a pile of requests. So are the charts,
// from its series, when there are other nodes; on one node they are this
// node's, from GET stats.
let clusterBusy = false;

function refreshCluster() {
  if (clusterBusy) return;
  clusterBusy = true;
  clusterLine(clustered ? "&since=" + (seriesScope === "cluster" ? lastT : 0) : "")
    .then((c) => {
      clustered = c.total.nodes > 1;
      const self = c.nodes.find((n) => n.self);
      if (self) $("node-name").textContent = "node " + self.node;
      if (view !== "overview") return;
      clusterTiles(c);
      if (clustered) addPoints("cluster", c.series || []);
    })
    .catch(() => {})
    .finally(() => { clusterBusy = false; });
}

const sum = (stats, get) => stats.reduce((a, s) => a + (get(s) || 0), 0);

// worst is the stats of the node with the highest p99 of a latency.
function worst(up, get) {
  let w = null;
  for (const n of up) {
    const l = get(n.stats);
    if (l && l.p99 !== null && l.p99 !== undefined && (!w || l.p99 > get(w.stats).p99)) w = n;
  }
  return w;
}

// perNode is a tile's tooltip: each node's part, down nodes named so.
function perNode(c, part) {
  return c.nodes.map((n) => n.node + ": " + (n.up ? part(n.stats) : "down")).join("\n");
}

function tile(id, text, tip) {
  $(id).textContent = text;
  $(id).closest(".tile").title = tip;
}

function clusterTiles(c) {
  const up = c.nodes.filter((n) => n.up), st = up.map((n) => n.stats);
  $("tiles-scope").textContent = "Cluster: " + c.total.up + " of " + c.total.nodes + " nodes up";
  const bd = $("cl-breakdown");
  bd.replaceChildren(...c.nodes.map((n) => {
    const e = el("span", n.node + (n.self ? " (this node)" : "") + " ", "node-part");
    if (n.up) e.append(count(n.stats.connections) + " conns · " + fmt(n.stats.messages.in_per_sec) + " in/s");
    else e.append(el("span", "down", "pill bad"));
    e.dataset.node = n.node;
    return e;
  }));
  tile("t-conns", count(c.total.connections), perNode(c, (s) => count(s.connections)));
  $("t-conns-sub").textContent = "on " + c.total.up + " of " + c.total.nodes + " nodes";
  tile("t-in", fmt(c.total.in_per_sec), perNode(c, (s) => fmt(s.messages.in_per_sec) + " /s"));
  $("t-in-total").textContent = count(sum(st, (s) => s.messages.in_total)) + " total";
  tile("t-out", fmt(c.total.out_per_sec), perNode(c, (s) => fmt(s.messages.out_per_sec) + " /s"));
  $("t-out-total").textContent = count(sum(st, (s) => s.messages.out_total)) + " total";
  const ack = worst(up, (s) => s.ack_ms);
  tile("t-ack", ack ? fmt(ack.stats.ack_ms.p50, 2) + " / " + fmt(ack.stats.ack_ms.p99, 2) : "– / –",
    perNode(c, (s) => fmt(s.ack_ms.p50, 2) + " / " + fmt(s.ack_ms.p99, 2) + " ms"));
  $("t-ack-sub").textContent = "ms, last 10 s · worst node" + (ack ? ": " + ack.node : "");
  // The cluster's mean batch: each node's mean weighted by its commits.
  const commits = sum(st, (s) => s.store.commits_per_sec);
  const batch = commits ? sum(st, (s) => (s.store.batch.mean || 0) * s.store.commits_per_sec) / commits : null;
  tile("t-batch", fmt(batch, 1), perNode(c, (s) => fmt(s.store.batch.mean, 1) + " per commit"));
  $("t-batch-sub").textContent = "messages per commit, " + fmt(commits) + " commits/s";
  const commit = worst(up, (s) => s.store.commit_ms);
  tile("t-commit", commit ? fmt(commit.stats.store.commit_ms.p50, 2) + " / " + fmt(commit.stats.store.commit_ms.p99, 2) : "– / –",
    perNode(c, (s) => fmt(s.store.commit_ms.p50, 2) + " / " + fmt(s.store.commit_ms.p99, 2) + " ms"));
  $("t-commit-sub").textContent = "ms, last 10 s · worst node" + (commit ? ": " + commit.node : "");
  tile("t-errors", fmt(c.total.errors_per_sec), perNode(c, (s) => fmt(s.per_sec.errors) + " /s"));
  $("t-errors-total").textContent = count(sum(st, (s) => s.totals.errors)) + " total";
  tile("t-denials", [(s) => s.totals.acl_denials, (s) => s.totals.auth_failures, (s) => s.totals.drops].map((f) => count(sum(st, f))).join(" · "),
    perNode(c, (s) => [s.totals.acl_denials, s.totals.auth_failures, s.totals.drops].map(count).join(" · ")));
  const push = { sent: 0, retry: 0, failed: 0, dropped: 0 };
  let pending = 0, p99 = null;
  for (const s of st) {
    for (const byResult of Object.values((s.push && s.push.results) || {})) {
      push.sent += byResult.sent || 0;
      push.retry += byResult.retry || 0;
      push.failed += (byResult.failed || 0) + (byResult.invalid_token || 0);
      push.dropped += byResult.expired || 0;
    }
    // The outbox is the store's, which nodes may share: its largest depth, not a sum.
    pending = Math.max(pending, (s.push && s.push.outbox && s.push.outbox.items) || 0);
    const l = s.push && s.push.latency_ms && s.push.latency_ms.p99;
    if (l !== null && l !== undefined && (p99 === null || l > p99)) p99 = l;
  }
  tile("t-push", [push.sent, push.retry, push.failed].map(count).join(" · "),
    perNode(c, (s) => Object.values((s.push && s.push.results) || {}).reduce((a, r) => a + (r.sent || 0), 0) + " sent"));
  $("t-push-sub").textContent = "outbox " + count(pending) + " pending · " + count(push.dropped) + " expired · worst p99 " + fmt(p99 || 0) + " ms";
}

async function overview() {
  refreshCluster();
  if (clustered) return; // the cluster's answer has it all, this node's name too
  const s = await api("GET", "stats?window=10&since=" + (seriesScope === "this node" ? lastT : 0));
  $("node-name").textContent = "node " + s.node;
  addPoints("this node", s.series);
}

// addPoints adds the points after the last to the charts, starting them
// afresh when they change from this node's to the cluster's or back.
function addPoints(scope, points) {
  if (scope !== seriesScope) {
    series = []; lastT = 0; seriesScope = scope;
    for (const e of document.querySelectorAll("figcaption .scope")) e.textContent = "· " + scope;
  }
  for (const p of points) if (p.t > lastT) series.push(p);
  if (series.length > KEEP) series = series.slice(series.length - KEEP);
  if (series.length) lastT = series[series.length - 1].t;
  drawCharts();
}

async function nodes() {
  const c = await clusterLine();
  const rows = c.nodes.map((n) => {
    const i = n.info, st = n.stats;
    const status = n.up ? i.status : "down";
    const pill = el("span", status, "pill " + (status === "serving" ? "ok" : status === "down" ? "bad" : "warn"));
    const name = n.node + (n.self ? " (this node)" : "");
    if (!n.up) {
      const tr = row([name, pill]);
      const why = el("td", n.error, "detail error");
      why.colSpan = 6;
      tr.append(why);
      tr.dataset.node = n.node;
      return tr;
    }
    const addrs = Object.entries(i.addresses).map(([k, v]) => k + " " + v).join("\n");
    const a = el("td", addrs, "detail");
    a.style.whiteSpace = "pre-line";
    const tr = row([name, pill, count(st.connections), fmt(st.messages.in_per_sec), fmt(st.messages.out_per_sec), uptime(i.uptime_seconds)]);
    tr.append(a, el("td", i.version + " · " + i.go));
    tr.dataset.node = n.node;
    return tr;
  });
  fill($("nodes-table").tBodies[0], rows, "no nodes", 8);
  const self = c.nodes.find((n) => n.self);
  const d = self && self.info && self.info.drain;
  $("drain-progress").textContent = d
    ? `Drain ${d.done ? "finished" : "in progress"}: ${d.disconnected} of ${d.total} clients disconnected in ${d.waves} waves, ${d.remaining} remaining.`
    : "";
  $("drain").disabled = !!d;
}

async function clients() {
  const q = new URLSearchParams();
  for (const k of ["user", "device", "ip"]) { const v = $("q-" + k).value.trim(); if (v) q.set(k, v); }
  q.set("limit", "50");
  if (clientsCursor) q.set("cursor", clientsCursor);
  const r = await api("GET", "cluster/clients?" + q);
  const rows = r.clients.map((c) => {
    const link = el("a", c.id, "client");
    link.addEventListener("click", () => clientDetail(c.id));
    const kick = el("button", "Kick", "danger small kick");
    kick.addEventListener("click", () => kickClient(c.id, kick));
    const actions = el("td", null, "actions");
    actions.append(kick);
    const tr = row([link, c.node, c.remote + " (" + c.listener + ")", c.mqtt, c.keepalive + " s", ago(c.since), c.subscription_count, c.inflight]);
    tr.append(actions);
    tr.dataset.client = c.id;
    return tr;
  });
  fill($("clients-table").tBodies[0], rows, "no client matches", 9);
  const down = r.nodes.filter((n) => !n.up).map((n) => n.node + " down: " + n.error);
  $("clients-summary").textContent = r.total + " client" + (r.total === 1 ? "" : "s") + " match on " + r.nodes.length +
    " node" + (r.nodes.length === 1 ? "" : "s") + (clientsCursor ? " (later page)" : "") + (down.length ? " · " + down.join(" · ") : "");
  $("clients-next").hidden = !r.next_cursor;
  $("clients-next").onclick = () => { clientsCursor = r.next_cursor; clients(); };
  $("clients-first").hidden = !clientsCursor;
}

async function kickClient(id, button) {
  if (!(await confirmAction("Disconnect " + id + "? The device may reconnect; ban the user to keep it out.", "Kick"))) return;
  button.disabled = true;
  try {
    await api("POST", "clients/" + id + "/kick");
  } catch (e) {
    if (!(e instanceof Refused)) $("clients-summary").textContent = "kick " + id + ": " + e.message;
  }
  await clients();
}

async function clientDetail(id) {
  const box = $("client-detail");
  box.hidden = false;
  box.replaceChildren(el("h2", id));
  let d;
  try { d = await api("GET", "clients/" + id); } catch (e) { box.append(el("p", e.message, "error")); return; }
  const dl = el("dl");
  const add = (k, v) => dl.append(el("dt", k), el("dd", v));
  add("Node", d.node);
  add("Remote", d.remote + " over " + d.listener);
  add("MQTT", d.mqtt + (d.clean ? ", clean session" : ", persistent session"));
  add("Keepalive", d.keepalive + " s");
  add("Connected", when(d.since) + " (" + ago(d.since) + ")");
  add("Inflight", d.inflight);
  add("User's latest version", d.head_ver === undefined ? "–" : d.head_ver);
  add("Subscriptions", d.subscriptions.map((s) => s.filter + " (QoS " + s.qos + ")").join(", ") || "none");
  box.append(dl);
}

// ---- users and groups ----

// searchTable makes the search of a table of users or groups by ID prefix
// (the ID's own order, a page at a time). More goes on with the prefix
// shown, whatever the box says now; an answer that comes back after a
// later search was asked is dropped, so results never go back to an
// earlier prefix.
function searchTable(kind, input, empty, cols, toRow) {
  const shown = { asked: 0, prefix: "", after: "" };
  return async function (next) {
    const prefix = next ? shown.prefix : $(input).value.trim();
    const q = new URLSearchParams({ prefix, limit: "50" });
    if (next && shown.after) q.set("after", shown.after);
    const asked = ++shown.asked;
    const r = await api("GET", kind + "?" + q);
    if (asked !== shown.asked) return;
    const rows = r[kind].map(toRow);
    const body = $(kind + "-table").tBodies[0];
    if (next) body.append(...rows); else fill(body, rows, empty, cols);
    shown.prefix = prefix;
    shown.after = r.next_after || "";
    $(kind + "-more").hidden = !shown.after;
  };
}

const users = searchTable("users", "q-prefix", "no user ID starts so", 3, (u) => {
  const link = el("a", u.id, "client");
  link.addEventListener("click", () => userDetail(u.id));
  const tr = row([link, u.display || "", when(u.created)]);
  tr.dataset.user = u.id;
  return tr;
});

// act asks for confirmation, calls the admin API and shows the outcome
// in box, after running after (which may redraw box).
async function act(box, question, yes, method, path, body, done, after) {
  if (!(await confirmAction(question, yes))) return;
  let r;
  try {
    r = await api(method, path, body);
  } catch (e) {
    if (!(e instanceof Refused)) box.append(el("p", e.message, "error result"));
    return;
  }
  if (after) await after(); // may draw box anew: the outcome goes after it
  box.append(el("p", done(r || {}), "muted result"));
}

async function userDetail(id) {
  const box = $("user-detail");
  box.hidden = false;
  box.replaceChildren(el("h2", id));
  let u;
  try { u = await api("GET", "users/" + encodeURIComponent(id)); } catch (e) { box.append(el("p", e.message, "error")); return; }
  box.dataset.user = u.id;
  const dl = el("dl");
  const add = (k, v) => dl.append(el("dt", k), el("dd", v));
  add("Name", u.display || "–");
  add("Registered", when(u.created));
  add("Online", u.online ? u.devices.map((d) => d.device + " on " + d.node + " since " + ago(d.since)).join(", ") : "no");
  add("Groups", u.groups.map((g) => g.group + " (" + g.role + ")").join(", ") + (u.groups_more ? ", …" : "") || "none");
  add("Bans", u.bans.map((b) => (b.reason || "no reason") + ", until " + (b.expires ? when(b.expires) : "removed")).join("; ") || "none");
  box.append(dl);
  const bar = el("div", null, "buttons");
  const button = (label, cls, onClick) => { const b = el("button", label, cls); b.addEventListener("click", onClick); bar.append(b); return b; };
  const again = () => userDetail(u.id);
  if (u.bans.length) {
    button("Unban", "ghost unban", async () => {
      if (!(await confirmAction("Lift every ban of " + u.id + "?", "Unban"))) return;
      try { for (const b of u.bans) await api("DELETE", "bans/" + encodeURIComponent(b.id)); } catch (e) { box.append(el("p", e.message, "error")); }
      again();
    });
  } else {
    button("Ban for a day", "danger ban", () => act(box, "Ban " + u.id + " for a day? Its devices are disconnected and cannot log in.", "Ban",
      "POST", "bans", { user: u.id, seconds: 86400, reason: "banned from the dashboard" }, (b) => "Banned; " + b.kicked + " connection(s) closed.", again));
  }
  button("Revoke tokens", "danger revoke", () => act(box, "Revoke every token of " + u.id + "? Its devices are disconnected and must log in again.",
    "Revoke", "POST", "users/" + encodeURIComponent(u.id) + "/revoke", undefined, (r) => r.revoked + " token(s) revoked.", again));
  button("Delete user", "danger delete", () => act(box, "Delete " + u.id + " for good? Its messages are anonymised, its inbox and groups left. This cannot be undone.",
    "Delete", "DELETE", "users/" + encodeURIComponent(u.id), undefined, (r) => "Deletion " + r.status + ".", () => users(false)));
  box.append(bar);
}

const groups = searchTable("groups", "q-gprefix", "no group ID starts so", 5, (g) => {
  const link = el("a", g.id, "client");
  link.addEventListener("click", () => groupDetail(g.id));
  const st = el("span", g.disbanded ? "disbanded" : "active", "pill " + (g.disbanded ? "bad" : "ok"));
  const tr = row([link, g.name, g.owner, count(g.members), st]);
  tr.dataset.group = g.id;
  return tr;
});

async function groupDetail(id) {
  const box = $("group-detail");
  box.hidden = false;
  box.replaceChildren(el("h2", id));
  let g;
  try { g = await api("GET", "groups/" + encodeURIComponent(id) + "?limit=200"); } catch (e) { box.append(el("p", e.message, "error")); return; }
  box.dataset.group = g.id;
  const dl = el("dl");
  const add = (k, v) => dl.append(el("dt", k), el("dd", v));
  add("Name", g.name);
  add("Owner", g.owner);
  add("Created", when(g.created));
  add("Status", g.disbanded ? "disbanded " + when(g.disbanded) : g.muted ? "muted" : "active");
  box.append(dl);
  const again = () => { groupDetail(g.id); groups(false).catch(() => {}); };
  const table = el("table");
  table.id = "members-table";
  const head = el("thead");
  head.append(row(["Member", "Role", "Joined", ""]));
  const body = el("tbody");
  for (const m of g.member_list) {
    const tr = row([m.user, m.role, when(m.joined)]);
    const td = el("td", null, "actions");
    if (m.role !== "owner" && !g.disbanded) {
      const rm = el("button", "Remove", "ghost small remove");
      rm.addEventListener("click", () => act(box, "Remove " + m.user + " from " + g.id + "?", "Remove", "DELETE",
        "groups/" + encodeURIComponent(g.id) + "/members/" + encodeURIComponent(m.user), undefined, () => m.user + " removed.", again));
      td.append(rm);
    }
    tr.append(td);
    tr.dataset.member = m.user;
    body.append(tr);
  }
  table.append(head, body);
  box.append(table);
  if (g.next_after) box.append(el("p", "Only the first 200 members are listed.", "muted small"));
  if (!g.disbanded) {
    const bar = el("div", null, "buttons");
    const d = el("button", "Disband group", "danger disband");
    d.addEventListener("click", () => act(box, "Disband " + g.id + "? Nothing more can be sent to it; its members are told.", "Disband",
      "DELETE", "groups/" + encodeURIComponent(g.id), undefined, () => "Disbanded.", again));
    bar.append(d);
    box.append(bar);
  }
}

async function bans() {
  const r = await api("GET", "bans");
  const rows = r.bans.map((b) => {
    const rm = el("button", "Remove", "ghost small");
    rm.addEventListener("click", async () => {
      rm.disabled = true;
      try { await api("DELETE", "bans/" + encodeURIComponent(b.id)); } catch (e) { $("ban-result").textContent = e.message; }
      bans();
    });
    const actions = el("td", null, "actions");
    actions.append(rm);
    const tr = row([b.user ? "user " + b.user : "IP " + b.ip, b.reason || "", when(b.created), b.expires ? when(b.expires) : "until removed"]);
    tr.append(actions);
    tr.dataset.ban = b.id;
    return tr;
  });
  fill($("bans-table").tBodies[0], rows, "nobody is banned", 5);
}

async function events() {
  const kind = $("events-kind").value;
  const r = await api("GET", "events?limit=200" + (kind ? "&kind=" + kind : ""));
  const labels = { auth_failure: "auth failure", acl_denial: "ACL denial", error: "error", banned: "banned" };
  const rows = r.events.map((e) => {
    const k = el("span", labels[e.kind] || e.kind, "pill " + (e.kind === "error" ? "warn" : "bad"));
    const tr = row([clock(e.ts), k, e.code, e.user || e.client || "", e.remote || ""]);
    tr.append(el("td", e.detail || "", "detail"));
    return tr;
  });
  fill($("events-table").tBodies[0], rows, "nothing recorded", 6);
}

const views = {
  overview: [overview, 1000], nodes: [nodes, 2000], clients: [clients, 2000], bans: [bans, 5000], events: [events, 2000],
  users: [() => (usersLoaded ? null : ((usersLoaded = true), users(false))), 60000],
  groups: [() => (groupsLoaded ? null : ((groupsLoaded = true), groups(false))), 60000],
};
let usersLoaded = false, groupsLoaded = false; // searched on demand, not refreshed under the operator's hands

// ---- navigation and the refresh loop ----

function show(name) {
  if (!token) name = "login";
  else if (!views[name]) name = "overview";
  view = name;
  for (const s of document.querySelectorAll("section.view")) s.hidden = s.id !== "view-" + name;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.view === name);
  $("nav").hidden = $("logout").hidden = $("live").hidden = !token;
  clearTimeout(timer);
  generation++;
  if (token) tick(generation);
}

async function tick(gen) {
  const [load, every] = views[view];
  try {
    await load();
    $("live").classList.remove("stale");
  } catch (e) {
    if (e instanceof Refused) return;
    $("live").classList.add("stale"); // the node may be down: keep trying
  }
  if (gen === generation && token) timer = setTimeout(() => tick(gen), every);
}

function signOut(message) {
  token = "";
  sessionStorage.removeItem(TOKEN_KEY);
  series = []; lastT = 0; seriesScope = ""; clustered = null;
  $("login-error").textContent = message || "";
  $("node-name").textContent = "";
  location.hash = "";
  show("login");
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    token = $("login-token").value.trim();
    $("login-token").value = "";
    try {
      await api("GET", "nodes");
    } catch (e) {
      if (!(e instanceof Refused)) { token = ""; $("login-error").textContent = e.message; }
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    $("login-error").textContent = "";
    if (location.hash.slice(1) === "overview") show("overview"); else location.hash = "overview";
  });
  $("logout").addEventListener("click", () => signOut("signed out"));
  window.addEventListener("hashchange", () => show(location.hash.slice(1)));
  window.addEventListener("resize", () => view === "overview" && drawCharts());

  $("clients-search").addEventListener("submit", (ev) => { ev.preventDefault(); clientsCursor = ""; clients().catch(() => {}); });
  $("clients-first").addEventListener("click", () => { clientsCursor = ""; clients().catch(() => {}); });
  $("events-kind").addEventListener("change", () => events().catch(() => {}));
  $("users-search").addEventListener("submit", (ev) => { ev.preventDefault(); users(false).catch(() => {}); });
  $("users-more").addEventListener("click", () => users(true).catch(() => {}));
  $("groups-search").addEventListener("submit", (ev) => { ev.preventDefault(); groups(false).catch(() => {}); });
  $("groups-more").addEventListener("click", () => groups(true).catch(() => {}));

  $("ban-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { seconds: Number($("ban-seconds").value), reason: $("ban-reason").value };
    body[$("ban-kind").value] = $("ban-target").value.trim();
    const span = $("ban-seconds").selectedOptions[0].textContent;
    if (!(await confirmAction("Ban " + $("ban-kind").value + " " + body[$("ban-kind").value] + " for " + span + "? Its connections are closed.", "Ban"))) return;
    try {
      const b = await api("POST", "bans", body);
      $("ban-result").textContent = "Banned " + (b.user || b.ip) + "; " + b.kicked + " connection(s) closed.";
      $("ban-target").value = $("ban-reason").value = "";
    } catch (e) { $("ban-result").textContent = e.message; }
    bans().catch(() => {});
  });

  $("notice-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { text: $("notice-text").value };
    if ($("notice-user").value.trim()) body.user = $("notice-user").value.trim();
    try {
      const r = await api("POST", "notice", body);
      $("notice-result").textContent = "Sent to " + r.users + " user(s) on node " + r.node + ".";
      $("notice-text").value = "";
    } catch (e) { $("notice-result").textContent = e.message; }
  });

  $("drain").addEventListener("click", () => { $("drain-confirm").hidden = false; });
  $("drain-confirm").addEventListener("click", async () => {
    $("drain-confirm").hidden = true;
    try {
      const r = await api("POST", "drain", {});
      $("drain-result").textContent = "Draining " + r.drain.total + " client(s).";
    } catch (e) { $("drain-result").textContent = e.message; }
    nodes().catch(() => {});
  });

  show(location.hash.slice(1));
});
