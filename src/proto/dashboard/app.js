// SPDX-License-Identifier: BSD-3-Clause
// tally's dashboard: the Counters view (search by prefix, live values over
// the change stream, a sparkline of each counter's recent rate, and the
// change buttons) and the Server view (/metrics, polled).  It uses only
// tally's HTTP API (docs/http.md, docs/events.md); with a password it asks
// once and keeps the token in sessionStorage, so it lasts for the tab only.
"use strict";

const $ = (sel) => document.querySelector(sel);
const TOKEN_KEY = "tally-token";
const PAGE = 50;          // counters per page
const SPARK_SECONDS = 60; // sparkline width, one point a second

// ---- API ----------------------------------------------------------------

function authHeaders() {
  const t = sessionStorage.getItem(TOKEN_KEY);
  return t ? { Authorization: "Bearer " + t } : {};
}

// fetch() with the token; asks for it on a 401 and tries again.
async function api(path, { method = "GET", body } = {}) {
  const headers = authHeaders();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status === 401) {
    await login();
    return api(path, { method, body });
  }
  return r;
}

let loginWait = null;
// Show the password dialog until a token works; one dialog for all callers.
function login() {
  if (loginWait) return loginWait;
  loginWait = new Promise((done) => {
    const dlg = $("#login"), form = $("#login-form"), err = $("#login-error");
    form.onsubmit = async (e) => {
      e.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $("#token").value);
      const r = await fetch("/v1/counters?limit=1", { headers: authHeaders() });
      if (r.status === 401) {
        err.textContent = "That password is not right.";
        return;
      }
      err.textContent = "";
      dlg.close();
      loginWait = null;
      done();
    };
    dlg.showModal();
  });
  return loginWait;
}

const counterPath = (key, action) =>
  "/v1/counters/" + encodeURIComponent(key) + (action ? "/" + action : "");

// ---- Counters view --------------------------------------------------------

const rows = new Map(); // key -> { tr, value, rate: number[SPARK_SECONDS], now }
let prefix = "", cursor = null;

function setStatus(text) { $("#list-status").textContent = text; }

function button(text, label, cls, onclick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.setAttribute("aria-label", label);
  if (cls) b.className = cls;
  b.onclick = onclick;
  return b;
}

async function change(path, method, body) {
  const r = await api(path, { method, body });
  if (!r.ok && r.status !== 404) {
    const p = await r.json().catch(() => ({}));
    setStatus("Refused: " + (p.detail || r.status));
  }
}

function addRow(key, value, atTop) {
  if (rows.has(key)) return rows.get(key);
  const tr = document.createElement("tr");
  const k = tr.insertCell(), v = tr.insertCell(), s = tr.insertCell(), a = tr.insertCell();
  k.className = "key"; k.textContent = key;
  v.className = "value";
  s.innerHTML = '<svg class="spark" viewBox="0 0 120 28" role="img"><polyline points=""/></svg>';
  s.firstChild.setAttribute("aria-label", "rate of " + key);
  const acts = document.createElement("div");
  acts.className = "actions";
  const setIn = document.createElement("input");
  setIn.type = "number"; setIn.placeholder = "value"; setIn.setAttribute("aria-label", "new value for " + key);
  const ttlIn = document.createElement("input");
  ttlIn.type = "number"; ttlIn.min = "1"; ttlIn.placeholder = "TTL s";
  ttlIn.setAttribute("aria-label", "seconds until " + key + " expires");
  acts.append(
    button("+1", "increment " + key, "", () => change(counterPath(key, "increment"), "POST", {})),
    button("−1", "decrement " + key, "plain", () => change(counterPath(key, "decrement"), "POST", {})),
    setIn,
    button("Set", "set " + key, "plain", () => {
      if (setIn.value !== "") change(counterPath(key), "PUT", { value: Number(setIn.value) });
    }),
    ttlIn,
    button("Expire", "set the time to live of " + key, "plain", () => {
      if (ttlIn.value !== "")
        change(counterPath(key, "expire"), "POST", { ttl_ms: Math.round(Number(ttlIn.value) * 1000) });
    }),
    button("Delete", "delete " + key, "danger", () => change(counterPath(key), "DELETE")),
  );
  a.append(acts);
  const tbody = $("#list tbody");
  atTop ? tbody.prepend(tr) : tbody.append(tr);
  const row = { tr, valueCell: v, value, rate: new Array(SPARK_SECONDS).fill(0), now: 0 };
  v.textContent = String(value);
  rows.set(key, row);
  return row;
}

async function loadPage() {
  const q = new URLSearchParams({ prefix, limit: PAGE });
  if (cursor) q.set("cursor", cursor);
  const r = await api("/v1/counters?" + q);
  if (!r.ok) { setStatus("Could not list counters (" + r.status + ")"); return; }
  const page = await r.json();
  page.items.sort((a, b) => (a.key < b.key ? -1 : 1));
  for (const it of page.items) if (it.key !== undefined) addRow(it.key, it.value, false);
  cursor = page.cursor;
  $("#more").hidden = !cursor;
  showCount();
}

function showCount() {
  setStatus(rows.size ? rows.size + " counters shown" + (cursor ? ", more below" : "")
                      : "No counters start with that prefix yet.");
}

async function search(p) {
  prefix = p;
  cursor = null;
  rows.clear();
  $("#list tbody").replaceChildren();
  await loadPage();
  follow(prefix);
}

// One released change (docs/events.md).
function onChange(type, d) {
  if (type === "reset") { search(prefix); return; }
  if (d.key === undefined) return;
  let row = rows.get(d.key);
  if (d.deleted || d.expired) {
    if (row) { row.tr.remove(); rows.delete(d.key); showCount(); }
    return;
  }
  if (!row && rows.size >= 500) return; // a busy prefix: keep the page small
  if (!row) { row = addRow(d.key, d.value, true); showCount(); }
  row.now += Math.abs(d.value - row.value);
  row.value = d.value;
  row.valueCell.textContent = String(d.value);
  row.valueCell.classList.remove("flash");
  void row.valueCell.offsetWidth; // restart the animation
  row.valueCell.classList.add("flash");
}

function drawSparks() {
  for (const row of rows.values()) {
    row.rate.push(row.now);
    row.rate.shift();
    row.now = 0;
    const max = Math.max(1, ...row.rate);
    const pts = row.rate.map((v, i) =>
      (i * 120 / (SPARK_SECONDS - 1)).toFixed(1) + "," + (26 - v * 24 / max).toFixed(1));
    row.tr.querySelector("polyline").setAttribute("points", pts.join(" "));
  }
}

// ---- The change stream ------------------------------------------------------

let streamStop = null;
function setLive(on) {
  const el = $("#live");
  el.textContent = on ? "live" : "reconnecting…";
  el.classList.toggle("on", on);
}

// Follow /v1/events?prefix= with fetch (EventSource cannot send the token),
// reconnecting with Last-Event-ID so that no change is missed.
async function follow(p) {
  if (streamStop) streamStop.abort();
  const ctl = new AbortController();
  streamStop = ctl;
  let last = null;
  while (!ctl.signal.aborted) {
    try {
      const headers = authHeaders();
      if (last) headers["Last-Event-ID"] = last;
      const r = await fetch("/v1/events?" + new URLSearchParams({ prefix: p }),
                            { headers, signal: ctl.signal });
      if (r.status === 401) { await login(); continue; }
      setLive(true);
      const reader = r.body.getReader(), dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const ev = {};
          for (const line of buf.slice(0, i).split("\n")) {
            const c = line.indexOf(": ");
            if (c > 0) ev[line.slice(0, c)] = line.slice(c + 2);
          }
          buf = buf.slice(i + 2);
          if (ev.id) last = ev.id;
          if (ev.data) onChange(ev.event, JSON.parse(ev.data));
        }
      }
    } catch (e) {
      if (ctl.signal.aborted) return;
    }
    setLive(false);
    await new Promise((ok) => setTimeout(ok, 2000));
  }
}

// ---- Server view --------------------------------------------------------------

// Prometheus text -> [{ name, labels: {}, value }].
function parseMetrics(text) {
  const out = [];
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const kv of (m[2] || "").matchAll(/(\w+)="([^"]*)"/g)) labels[kv[1]] = kv[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

const bytes = (n) => n < 1024 ? n + " B" : n < 1048576 ? (n / 1024).toFixed(1) + " KiB"
                   : (n / 1048576).toFixed(1) + " MiB";

// Bars for one histogram: counts per bucket (not cumulative), empty ends cut.
function drawHist(el, samples, name, unit) {
  const b = samples.filter((s) => s.name === name + "_bucket" && s.labels.le !== "+Inf");
  const counts = b.map((s, i) => s.value - (i ? b[i - 1].value : 0));
  let lo = counts.findIndex((c) => c > 0), hi = counts.length - 1;
  while (hi > lo && counts[hi] === 0) hi--;
  if (lo < 0) { el.textContent = "nothing yet"; return; }
  const max = Math.max(...counts.slice(lo, hi + 1));
  el.replaceChildren(...counts.slice(lo, hi + 1).map((c, i) => {
    const d = document.createElement("div");
    d.style.height = (100 * c / max) + "%";
    d.title = "≤ " + unit(Number(b[lo + i].labels.le)) + ": " + c;
    return d;
  }));
  el.setAttribute("role", "img");
  el.setAttribute("aria-label", name + " from " + unit(Number(b[lo].labels.le)) +
                  " to " + unit(Number(b[hi].labels.le)));
  let labels = el.nextElementSibling;
  if (!labels || !labels.classList.contains("hist-labels")) {
    labels = document.createElement("div");
    labels.className = "hist-labels";
    el.after(labels);
  }
  labels.innerHTML = "<span></span><span></span>";
  labels.firstChild.textContent = unit(Number(b[lo].labels.le));
  labels.lastChild.textContent = unit(Number(b[hi].labels.le));
}

const seconds = (s) => s < 1e-3 ? (s * 1e6).toFixed(0) + " µs" : s < 1 ? (s * 1e3).toFixed(1) + " ms" : s + " s";

let lastOps = null;
async function pollServer() {
  if ($("#server").hidden) return;
  const r = await api("/metrics");
  if (!r.ok) return;
  const m = parseMetrics(await r.text());
  const one = (name) => (m.find((s) => s.name === name) || {}).value;
  const healthy = one("tally_healthy") === 1;
  const h = $("#health");
  h.textContent = healthy ? "healthy" : "changes refused";
  h.className = "big " + (healthy ? "good" : "bad");
  const info = m.find((s) => s.name === "tally_build_info");
  $("#policy").textContent = info ? "fsync " + info.labels.sync + " · version " + info.labels.version : "";
  $("#count").textContent = one("tally_counters");
  const log = one("tally_log_bytes") || 0, snap = one("tally_snapshot_bytes") || 0;
  $("#disk").textContent = bytes(log + snap);
  $("#disk-detail").textContent = "log " + bytes(log) + " · snapshot " + bytes(snap);
  const ops = {};
  for (const s of m) if (s.name === "tally_commands_total")
    ops[s.labels.protocol] = (ops[s.labels.protocol] || 0) + s.value;
  const now = performance.now();
  if (lastOps) {
    const dt = (now - lastOps.t) / 1000;
    $("#ops").replaceChildren(...Object.keys(ops).flatMap((p) => {
      const dt_ = document.createElement("dt"), dd = document.createElement("dd");
      dt_.textContent = p;
      dd.textContent = Math.max(0, (ops[p] - lastOps.ops[p]) / dt).toFixed(0);
      return [dt_, dd];
    }));
  }
  lastOps = { t: now, ops };
  drawHist($("#fsync-hist"), m, "tally_sync_duration_seconds", seconds);
  drawHist($("#batch-hist"), m, "tally_group_commit_batch_size", (n) => String(n));
}

// ---- Wiring ---------------------------------------------------------------------

function show(view) {
  for (const name of ["counters", "server"]) {
    $("#" + name).hidden = name !== view;
    $("#tab-" + name).setAttribute("aria-selected", String(name === view));
  }
  if (view === "server") pollServer();
}

document.addEventListener("DOMContentLoaded", () => {
  $("#tab-counters").onclick = () => show("counters");
  $("#tab-server").onclick = () => show("server");
  $("#search").onsubmit = (e) => { e.preventDefault(); search($("#prefix").value); };
  $("#create").onsubmit = (e) => {
    e.preventDefault();
    change(counterPath($("#new-key").value, "increment"), "POST", {});
  };
  $("#more").onclick = loadPage;
  setInterval(drawSparks, 1000);
  setInterval(pollServer, 2000);
  search("");
});
