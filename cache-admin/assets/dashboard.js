// The cache dashboard: polls the admin API and draws what it answers. No library, no inline
// code (the page runs under a strict Content-Security-Policy), and key names from the API are
// only ever set as text, never parsed as HTML.
"use strict";

(function () {
  const POLL_MS = 2000;
  const HISTORY_MS = 10 * 60 * 1000;
  const TOKEN_KEY = "cache-admin-token";
  // Relative to the page, like the assets: works under a nested router too.
  const API = "api/v1/cache/";
  const SVG_NS = "http://www.w3.org/2000/svg";

  const $ = (sel) => document.querySelector(sel);
  const history = []; // {t, hits, misses, rate: per-poll hit rate or null, total}
  let timer = null;
  let polling = false;
  let enabled = true;

  // ---- formatting -------------------------------------------------------------------------

  const int = (n) => (n == null ? "–" : String(Math.round(n)));
  const pct = (r) => (r == null ? "–" : (r * 100).toFixed(1) + "%");
  const fixed = (n, d) => (n == null ? "–" : Number(n).toFixed(d));
  function bytes(n) {
    if (n == null) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let v = n;
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i += 1;
    }
    return i === 0 ? v + " B" : v.toFixed(1) + " " + units[i];
  }
  function ms(n) {
    if (n == null) return "–";
    if (n >= 60000) return (n / 60000).toFixed(1) + " min";
    if (n >= 1000) return (n / 1000).toFixed(2) + " s";
    return n.toFixed(2) + " ms";
  }
  function until(iso) {
    const t = Date.parse(iso);
    if (Number.isNaN(t)) return "";
    const s = Math.round((t - Date.now()) / 1000);
    if (s <= 0) return "due";
    if (s < 90) return "in " + s + " s";
    if (s < 5400) return "in " + Math.round(s / 60) + " min";
    return "in " + (s / 3600).toFixed(1) + " h";
  }

  // ---- DOM helpers --------------------------------------------------------------------------

  /** Sets a figure's text and its raw value (`data-value`), which the tests read. */
  function metric(name, value, text) {
    document.querySelectorAll('[data-metric="' + name + '"]').forEach((el) => {
      el.textContent = text === undefined ? int(value) : text;
      el.dataset.value = value == null ? "" : String(value);
    });
  }

  function cell(row, text, opts) {
    const td = document.createElement("td");
    td.textContent = text;
    if (opts && opts.metric) {
      td.dataset.metric = opts.metric;
      td.dataset.value = opts.value == null ? "" : String(opts.value);
    }
    if (opts && opts.num) td.className = "r";
    if (opts && opts.title) td.title = opts.title;
    row.appendChild(td);
    return td;
  }

  /** A cell holding a horizontal bar `share` (0..1) wide; width set through CSSOM (CSP-safe). */
  function barCell(row, share, cls) {
    const td = document.createElement("td");
    td.className = "spark";
    const track = document.createElement("span");
    track.className = "track";
    const fill = document.createElement("span");
    fill.className = "fill " + cls;
    fill.style.width = Math.max(0, Math.min(1, share || 0)) * 100 + "%";
    track.appendChild(fill);
    td.appendChild(track);
    row.appendChild(td);
  }

  function rows(tableId, items, build) {
    const body = document.querySelector("#" + tableId + " tbody");
    const out = document.createDocumentFragment();
    items.forEach((item, i) => {
      const tr = document.createElement("tr");
      build(tr, item, i);
      out.appendChild(tr);
    });
    if (items.length === 0) {
      const tr = document.createElement("tr");
      const td = cell(tr, "nothing yet");
      td.colSpan = document.querySelectorAll("#" + tableId + " thead th").length;
      td.className = "empty";
      out.appendChild(tr);
    }
    body.replaceChildren(out);
  }

  function svg(tag, attrs, text) {
    const el = document.createElementNS(SVG_NS, tag);
    Object.entries(attrs).forEach(([k, v]) => el.setAttribute(k, String(v)));
    if (text !== undefined) el.textContent = text;
    return el;
  }

  // ---- API ----------------------------------------------------------------------------------

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  /** Calls the API; resolves to {ok, status, body}; `body.error` is the API's message. */
  async function call(method, path, payload) {
    const headers = { Accept: "application/json" };
    const t = token();
    if (t) headers.Authorization = "Bearer " + t;
    if (payload !== undefined) headers["Content-Type"] = "application/json";
    let res;
    try {
      res = await fetch(API + path, {
        method,
        headers,
        body: payload === undefined ? undefined : JSON.stringify(payload),
        cache: "no-store",
        credentials: "omit",
      });
    } catch (e) {
      return { ok: false, status: 0, body: { error: "the server did not answer: " + e.message } };
    }
    let body = null;
    try {
      body = await res.json();
    } catch (_) {
      body = { error: "HTTP " + res.status + " without a JSON body" };
    }
    if (!res.ok && !(body && body.error)) body = { error: "HTTP " + res.status };
    return { ok: res.ok, status: res.status, body };
  }

  // ---- rendering ----------------------------------------------------------------------------

  function renderStats(s, warmup) {
    // `enabled` is newer than the rest of `Stats`: a server without it is always on.
    enabled = s.enabled !== false;
    const on = $("#cache-enabled");
    on.textContent = "cache: " + (enabled ? "on" : "off");
    on.dataset.value = String(enabled);
    on.dataset.state = enabled ? "ok" : "warn";
    $("#enabled-btn").textContent = enabled ? "Turn cache off" : "Turn cache on";

    metric("hit_rate", s.hit_rate, pct(s.hit_rate));
    metric("hits", s.hits);
    metric("reads", s.hits + s.misses);
    metric("l1_hits", s.l1_hits);
    metric("l2_hits", s.l2_hits);
    metric("l3_hits", s.l3_hits);
    metric("misses", s.misses);
    metric("coalesced", s.coalesced);
    metric("stale_served", s.stale_served);
    const most = Math.max(1, s.l1_hits, s.l2_hits, s.l3_hits, s.misses);
    [["#bar-l1", s.l1_hits], ["#bar-l2", s.l2_hits], ["#bar-l3", s.l3_hits], ["#bar-miss", s.misses]].forEach(
      ([id, v]) => {
        $(id).style.width = (v / most) * 100 + "%";
      },
    );

    metric("entries", s.local_cache_size);
    metric("l1_bytes", s.local_cache_bytes, bytes(s.local_cache_bytes));
    metric("sets", s.sets);
    metric("loader_calls", s.loader_calls);
    const used = s.redis_info ? s.redis_info.used_memory : null;
    metric("redis_used_memory", used, s.redis_info ? bytes(used) : "no Redis");

    const breaker = s.breaker || "no Redis";
    metric("breaker", s.breaker, breaker.replace("_", "-"));
    document.querySelector('[data-metric="breaker"]').dataset.state =
      s.breaker === "closed" ? "ok" : s.breaker ? "bad" : "idle";
    metric("errors", s.errors);
    metric("l2_skipped", s.l2_skipped);
    metric("too_large", s.too_large);
    metric("values_refused", s.values_refused);

    const w = warmup || { running: false, jobs: [], warmup_tasks: 0 };
    metric("warmup_running", w.running, w.running ? "yes" : "no");
    metric("warmup_tasks", w.warmup_tasks);
    rows("jobs-table", w.jobs, (tr, j) => {
      const name = j.tags.join(", ");
      cell(tr, name, { metric: "job." + name + ".name", value: name });
      cell(tr, j.interval, { metric: "job." + name + ".interval", value: j.interval });
      const next = cell(tr, j.next_run.replace("T", " ").replace("Z", " UTC") + "  (" + until(j.next_run) + ")", {
        metric: "job." + name + ".next_run",
        value: j.next_run,
      });
      if (j.in_progress) next.textContent += " · running";
      cell(tr, int(j.runs), { metric: "job." + name + ".runs", value: j.runs, num: true });
      cell(tr, int(j.failures), { metric: "job." + name + ".failures", value: j.failures, num: true });
    });
  }

  function renderPerformance(p) {
    metric("compression_ratio", p.compression.ratio, fixed(p.compression.ratio, 3));
    const ops = p.operations.filter((o) => o.count > 0);
    const slowest = Math.max(1, ...ops.map((o) => o.p99_us));
    rows("latency-table", ops, (tr, o) => {
      const m = "latency." + o.op + "." + o.level + ".";
      cell(tr, o.op);
      cell(tr, o.level.toUpperCase());
      cell(tr, int(o.count), { metric: m + "count", value: o.count, num: true });
      cell(tr, fixed(o.p50_us, 1), { metric: m + "p50_us", value: o.p50_us, num: true });
      cell(tr, fixed(o.p95_us, 1), { metric: m + "p95_us", value: o.p95_us, num: true });
      cell(tr, fixed(o.p99_us, 1), { metric: m + "p99_us", value: o.p99_us, num: true });
      cell(tr, fixed(o.max_us, 1), { metric: m + "max_us", value: o.max_us, num: true });
      latencySpark(tr, o, slowest);
    });
    const saved = p.functions.reduce((a, f) => a + f.time_saved_ms, 0) || 1;
    rows("functions-table", p.functions, (tr, f) => {
      const m = "fn." + f.name + ".";
      cell(tr, f.name, { title: f.name });
      cell(tr, int(f.calls), { metric: m + "calls", value: f.calls, num: true });
      cell(tr, int(f.hits), { metric: m + "hits", value: f.hits, num: true });
      cell(tr, int(f.loads), { metric: m + "loads", value: f.loads, num: true });
      cell(tr, pct(f.hit_rate), { metric: m + "hit_rate", value: f.hit_rate, num: true });
      cell(tr, ms(f.mean_load_ms), { metric: m + "mean_load_ms", value: f.mean_load_ms, num: true });
      cell(tr, ms(f.time_saved_ms), { metric: m + "time_saved_ms", value: f.time_saved_ms, num: true });
      barCell(tr, f.time_saved_ms / saved, "t-l1");
    });
  }

  /** p50, p95 and p99 as three stacked ticks on one scale (the slowest p99 of the table). */
  function latencySpark(tr, o, slowest) {
    const td = document.createElement("td");
    td.className = "spark";
    const chart = svg("svg", { viewBox: "0 0 200 14", class: "spark-svg", "aria-hidden": "true" });
    chart.appendChild(svg("rect", { x: 0, y: 6, width: 200, height: 2, class: "axis" }));
    chart.appendChild(svg("rect", { x: 0, y: 3, width: (o.p99_us / slowest) * 200, height: 8, class: "p99" }));
    chart.appendChild(svg("rect", { x: 0, y: 3, width: (o.p95_us / slowest) * 200, height: 8, class: "p95" }));
    chart.appendChild(svg("rect", { x: 0, y: 3, width: (o.p50_us / slowest) * 200, height: 8, class: "p50" }));
    td.appendChild(chart);
    tr.appendChild(td);
  }

  function renderTopKeys(a) {
    // Reads are recorded one in `sample_rate`: the figures are estimates, and say so.
    const note = document.getElementById("top-keys-note");
    if (note) {
      note.textContent = a.sampled
        ? "estimated: one read in " + a.sample_rate + " is recorded, counts are samples × " + a.sample_rate + " (exact totals are in the hit-rate card)"
        : "every read recorded";
    }
    // By position, not by key: redacted keys all read "<redacted>".
    rows("top-keys-table", a.keys, (tr, k, i) => {
      cell(tr, k.key, { metric: "top." + i + ".key", value: k.key, title: k.key }).className = "key";
      cell(tr, int(k.count), { metric: "top." + i + ".count", value: k.count, num: true });
      cell(tr, int(k.hits), { metric: "top." + i + ".hits", value: k.hits, num: true });
      cell(tr, pct(k.hit_ratio), { metric: "top." + i + ".hit_ratio", value: k.hit_ratio, num: true });
      cell(tr, ms(k.last_access_ms_ago) + " ago", { num: true });
    });
  }

  function renderMemory(m) {
    const total = m.prefixes.reduce((a, p) => a + p.l1_bytes, 0) || 1;
    rows("memory-table", m.prefixes, (tr, p, i) => {
      const n = "mem." + i + ".";
      tr.title = bytes(p.l1_bytes) + " of " + bytes(total) + " in L1";
      cell(tr, p.prefix, { metric: n + "prefix", value: p.prefix }).className = "key";
      cell(tr, int(p.l1_entries), { metric: n + "l1_entries", value: p.l1_entries, num: true });
      cell(tr, bytes(p.l1_bytes), { metric: n + "l1_bytes", value: p.l1_bytes, num: true });
      cell(tr, int(p.redis_sampled_keys), { metric: n + "redis_sampled_keys", value: p.redis_sampled_keys, num: true });
      cell(tr, bytes(p.redis_sampled_bytes), { metric: n + "redis_sampled_bytes", value: p.redis_sampled_bytes, num: true });
    });
  }

  function renderHealth(h, status) {
    const el = $("#health");
    const word = (h && h.status) || (status === 0 ? "unreachable" : "unknown");
    el.textContent = "health: " + word;
    el.dataset.value = word;
    el.dataset.state = word === "healthy" ? "ok" : "bad";
    metric("health_reason", word, (h && h.reason) || (word === "healthy" ? "Redis reachable" : word));
  }

  // ---- hit-rate history ---------------------------------------------------------------------

  function record(s) {
    const now = Date.now();
    const prev = history[history.length - 1];
    let rate = null;
    if (prev && s.hits >= prev.hits && s.misses >= prev.misses) {
      const dh = s.hits - prev.hits;
      const dr = dh + (s.misses - prev.misses);
      rate = dr > 0 ? dh / dr : null;
    } else if (prev) {
      history.length = 0; // counters went back: another process answers now
    }
    history.push({ t: now, hits: s.hits, misses: s.misses, rate, total: s.hit_rate });
    while (history.length && history[0].t < now - HISTORY_MS) history.shift();
    // The last minute's rate from the counters' growth over it (null without reads in it).
    const base = history.find((h) => h.t >= now - 60000) || history[0];
    const dh = s.hits - base.hits;
    const dr = dh + s.misses - base.misses;
    metric("hit_rate_1m", dr > 0 ? dh / dr : null, dr > 0 ? pct(dh / dr) : "no reads");
    drawHistory(now);
  }

  function drawHistory(now) {
    const chart = $("#hit-rate-chart");
    const [L, R, T, B] = [40, 612, 10, 150];
    // The axis spans the history kept, between 1 and 10 minutes: a young tab's few points are
    // not squeezed into the last pixels of a 10-minute axis.
    const span = Math.min(HISTORY_MS, Math.max(60000, history.length ? now - history[0].t : 0));
    const x = (t) => L + ((t - (now - span)) / span) * (R - L);
    const y = (r) => B - r * (B - T);
    const parts = [];
    [0, 0.25, 0.5, 0.75, 1].forEach((r) => {
      parts.push(svg("line", { x1: L, x2: R, y1: y(r), y2: y(r), class: r === 0 ? "axis" : "gridline" }));
      parts.push(svg("text", { x: L - 6, y: y(r) + 4, class: "tick", "text-anchor": "end" }, r * 100 + "%"));
    });
    [1, 0.75, 0.5, 0.25, 0].forEach((f) => {
      const ago = Math.round((span * f) / 1000);
      const label = ago === 0 ? "now" : ago >= 120 ? "−" + Math.round(ago / 60) + " min" : "−" + ago + " s";
      parts.push(svg("text", { x: x(now - span * f), y: B + 16, class: "tick", "text-anchor": "middle" }, label));
    });
    const line = (key, cls) => {
      // A gap where a poll saw no reads, rather than a line through nothing.
      let d = "";
      let pen = false;
      history.forEach((h) => {
        const v = h[key];
        if (v == null) {
          pen = false;
          return;
        }
        d += (pen ? "L" : "M") + x(h.t).toFixed(1) + " " + y(v).toFixed(1);
        pen = true;
      });
      if (d) parts.push(svg("path", { d, class: cls }));
    };
    line("total", "line-total");
    line("rate", "line-interval");
    const last = history[history.length - 1];
    if (last && last.rate != null) parts.push(svg("circle", { cx: x(last.t), cy: y(last.rate), r: 3.5, class: "dot" }));
    chart.replaceChildren(...parts);
  }

  // ---- polling ------------------------------------------------------------------------------

  async function poll() {
    if (polling) return;
    polling = true;
    clearTimeout(timer);
    const body = document.body;
    try {
      const [stats, perf, top, mem, health] = await Promise.all([
        call("GET", "stats"),
        call("GET", "performance"),
        call("GET", "access-patterns?limit=10"),
        call("GET", "memory?samples=20"),
        call("GET", "health"),
      ]);
      renderHealth(health.body, health.status);
      const failed = [stats, perf, top, mem].find((r) => !r.ok);
      const status = $("#poll-status");
      if (failed) {
        // Keep the last figures; say why they stopped moving.
        status.textContent = "refused: " + failed.body.error + " (HTTP " + failed.status + ")";
        status.dataset.state = "error";
        body.dataset.pollError = failed.body.error;
      } else {
        renderStats(stats.body.cache, stats.body.warmup);
        renderPerformance(perf.body);
        renderTopKeys(top.body);
        renderMemory(mem.body);
        record(stats.body.cache);
        const at = new Date();
        $("#updated-at").textContent = at.toLocaleTimeString();
        status.textContent = "live · updated " + at.toLocaleTimeString();
        status.dataset.state = "ok";
        delete body.dataset.pollError;
        // Last: a test that sees this number change may read every figure above.
        body.dataset.updated = String(Number(body.dataset.updated) + 1);
      }
    } catch (e) {
      $("#poll-status").textContent = "page error: " + e.message;
      $("#poll-status").dataset.state = "error";
    } finally {
      body.dataset.polls = String(Number(body.dataset.polls) + 1);
      polling = false;
      timer = setTimeout(poll, POLL_MS);
    }
  }

  // ---- actions ------------------------------------------------------------------------------

  function showAction(action, r, okText) {
    const el = $("#action-status");
    el.dataset.action = action;
    el.dataset.httpStatus = String(r.status);
    el.dataset.state = r.ok ? "ok" : "error";
    el.textContent = r.ok ? okText(r.body) : action + " refused (HTTP " + r.status + "): " + r.body.error;
    el.dataset.seq = String(Number(el.dataset.seq) + 1);
  }

  async function clear(ev) {
    ev.preventDefault();
    const pattern = $("#clear-pattern").value.trim();
    const tags = $("#clear-tags")
      .value.split(",")
      .map((t) => t.trim())
      .filter((t) => t);
    const req = {};
    // Nothing filled in is still sent: the API's own message says what it needs.
    if (pattern) req.pattern = pattern;
    if (tags.length) req.tags = tags;
    if ($("#clear-confirm").checked) req.confirm = true;
    const r = await call("POST", "clear", req);
    showAction("clear", r, (b) => {
      const parts = [];
      if (b.removed != null) parts.push("removed: " + b.removed);
      if (b.tags) parts.push("tags invalidated: " + b.tags.join(", "));
      return parts.join(" · ") || "done";
    });
    poll();
  }

  async function warmup() {
    $("#warmup-btn").disabled = true;
    const r = await call("POST", "warmup");
    $("#warmup-btn").disabled = false;
    showAction("warmup", r, (b) =>
      "warmup: " + b.ok + " ok, " + b.failed + " failed, " + b.skipped + " skipped in " + ms(b.duration_ms),
    );
    poll();
  }

  async function toggle() {
    const want = !enabled;
    const r = await call("POST", "enabled", { enabled: want });
    if (r.status === 404) r.body = { error: "this server has no cache on/off switch (" + r.body.error + ")" };
    showAction("enabled", r, () => "cache turned " + (want ? "on" : "off"));
    poll();
  }

  // Anything the Content-Security-Policy blocked is a bug of this page: count it where a test
  // (or a person in the inspector) can see it.
  document.addEventListener("securitypolicyviolation", (e) => {
    const b = document.body;
    b.dataset.cspViolations = (b.dataset.cspViolations ? b.dataset.cspViolations + "; " : "") + e.violatedDirective;
  });

  document.addEventListener("DOMContentLoaded", () => {
    $("#token").value = token();
    $("#token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      // sessionStorage only: the token goes with the tab, never to disk for other sessions.
      sessionStorage.setItem(TOKEN_KEY, $("#token").value.trim());
      poll();
    });
    $("#clear-form").addEventListener("submit", clear);
    $("#warmup-btn").addEventListener("click", warmup);
    $("#enabled-btn").addEventListener("click", toggle);
    poll();
  });
})();
