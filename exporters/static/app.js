// lcore status page: polls the JSON API once a second and draws the tables and SVG charts.
// No framework, no build step, nothing fetched from elsewhere. Every URL is relative, so the
// page works under --web-base-path too.
"use strict";

const POLL_MS = 1000;
const CHART_POINTS = 600; // the last ten minutes at one sample a second
const SVG = "http://www.w3.org/2000/svg";
const ACTIVE = new Set(["spawning", "running", "stopping"]);

const LOG_ROWS = 500;

const state = {
  readonly: false,
  running: false,
  epoch: null,
  history: [],
  formTouched: false,
  form: null, // /api/start-form: run time, the locustfile's options, the class picker
  logs: [],
  logSeq: 0,
};

function $(id) {
  return document.getElementById(id);
}

function fmt(value, digits = 0) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return Number(value).toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

function ms(value) {
  // sub-millisecond targets are common on loopback: keep a decimal where it matters
  return fmt(value, value < 10 ? 2 : value < 100 ? 1 : 0);
}

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    const message = body && body.message ? body.message : `${response.status} ${response.statusText}`;
    throw new Error(message);
  }
  return body;
}

function say(text, isError = false) {
  const el = $("message");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

// -- tables ----------------------------------------------------------------------------------

function fillTable(id, rows, cells, empty) {
  const body = $(id).tBodies[0];
  const fresh = document.createDocumentFragment();
  if (!rows.length) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = $(id).tHead.rows[0].cells.length;
    td.className = "empty";
    td.textContent = empty;
    tr.appendChild(td);
    fresh.appendChild(tr);
  }
  for (const row of rows) {
    const tr = document.createElement("tr");
    for (const [value, cls] of cells(row)) {
      const td = document.createElement("td");
      td.textContent = value; // text only: names and errors come from the target
      if (cls) td.className = cls;
      tr.appendChild(td);
    }
    if (row.name === "Aggregated" && row.method === "") tr.className = "total";
    fresh.appendChild(tr);
  }
  body.replaceChildren(fresh);
}

function renderStats(doc) {
  fillTable(
    "stats-table",
    doc.stats.filter((r) => r.num_requests > 0 || r.name !== "Aggregated"),
    (r) => [
      [r.method],
      [r.name, "name"],
      [fmt(r.num_requests), "num requests"],
      [fmt(r.num_failures), r.num_failures ? "num bad" : "num"],
      [ms(r.median_response_time), "num"],
      [ms(r["response_time_percentile_0.95"]), "num"],
      [ms(r["response_time_percentile_0.99"]), "num"],
      [ms(r.avg_response_time), "num"],
      [ms(r.min_response_time), "num"],
      [ms(r.max_response_time), "num"],
      [fmt(r.avg_content_length), "num"],
      [fmt(r.current_rps, 1), "num"],
      [fmt(r.current_fail_per_sec, 1), "num"],
      [ms(r["corrected_response_time_percentile_0.95"]), "num corrected"],
      [ms(r["corrected_response_time_percentile_0.99"]), "num corrected"],
    ],
    "No requests yet.",
  );
  // from the intended start: shown once a scheduled task started late
  $("stats-table").classList.toggle("show-corrected", Boolean(doc.fell_behind));
  fillTable(
    "errors-table",
    doc.errors,
    (e) => [[fmt(e.occurrences), "num"], [e.method], [e.name, "name"], [e.error, "name mono"]],
    "No failures.",
  );
  fillTable(
    "exceptions-table",
    doc.exceptions,
    (e) => [[fmt(e.count), "num"], [e.msg, "name"], [e.traceback, "name mono pre"], [e.nodes.join(", ")]],
    "No exceptions.",
  );
  fillTable(
    "workers-table",
    doc.workers,
    (w) => [
      [w.id, "name mono"],
      [w.host, "name"],
      [String(w.pid), "num"],
      [w.state, `state-cell ${w.state}`],
      [fmt(w.user_count), "num"],
      [`${fmt(w.cpu_usage)}%${w.cpu_warning ? " ⚠" : ""}`, w.cpu_warning ? "num bad" : "num"],
      [fmt(w.num_requests), "num"],
    ],
    "No workers connected.",
  );
}

function renderFigures(doc) {
  const total = doc.stats[doc.stats.length - 1];
  $("version").textContent = ` ${doc.version}`;
  $("fig-host").textContent = doc.host || "–";
  const badge = $("fig-state");
  badge.textContent = doc.state;
  badge.className = `state ${doc.state}`;
  $("fig-users").textContent = fmt(doc.user_count);
  $("fig-workers").textContent = fmt(doc.worker_count) + (doc.lost_workers ? ` (+${doc.lost_workers} lost)` : "");
  $("fig-rps").textContent = fmt(doc.total_rps, 1);
  $("fig-fail").textContent = `${fmt(100 * doc.fail_ratio)}%`;
  $("fig-fail").classList.toggle("bad", doc.fail_ratio > 0);
  const classes = Object.values(doc.schedules || {});
  const maxLag = Math.max(0, ...classes.map((c) => c.max_lag));
  $("fig-behind-box").hidden = !(doc.fell_behind || doc.dropped_arrivals);
  $("fig-behind").textContent =
    `up to ${ms(maxLag)} ms` + (doc.dropped_arrivals ? `, ${fmt(doc.dropped_arrivals)} dropped` : "");
  document.title = `lcore · ${doc.state} · ${fmt(total.current_rps, 1)} RPS`;
}

function renderControls(doc) {
  state.readonly = doc.readonly;
  state.running = ACTIVE.has(doc.state);
  $("readonly-note").hidden = !doc.readonly;
  $("logout").hidden = !doc.logout;
  for (const id of ["btn-start", "btn-stop", "btn-reset", "in-users", "in-rate", "in-host", "in-runtime", "in-shape"]) {
    $(id).disabled = doc.readonly;
  }
  for (const input of document.querySelectorAll("#picker-classes input, #extra-fields input, #extra-fields select")) {
    input.disabled = doc.readonly;
  }
  if (!doc.readonly) $("btn-stop").disabled = !state.running;
  $("btn-start").textContent = state.running ? "Update users" : "Start";
  $("in-host").disabled = doc.readonly || state.running;
  if (!state.formTouched) {
    if (doc.host) $("in-host").value = doc.host;
    if (doc.target_user_count) $("in-users").value = doc.target_user_count;
    if (doc.spawn_rate) $("in-rate").value = doc.spawn_rate;
  }
}

// -- the start form: run time, the locustfile's options, the class picker ---------------------

function labelled(text, input, cls) {
  const label = document.createElement("label");
  if (cls) label.className = cls;
  const span = document.createElement("span");
  span.textContent = text;
  if (cls === "check") {
    label.append(input, span);
  } else {
    label.append(span, input);
  }
  return label;
}

function optionInput(dest, opt) {
  let input;
  if (opt.is_bool) {
    input = document.createElement("input");
    input.type = "checkbox";
    input.checked = Boolean(opt.default_value);
  } else if (opt.choices && !opt.is_multiple) {
    input = document.createElement("select");
    for (const choice of opt.choices) input.add(new Option(choice, choice, false, choice === String(opt.default_value)));
  } else {
    input = document.createElement("input");
    input.type = opt.is_secret ? "password" : "text";
    if (opt.is_secret) {
      input.autocomplete = "new-password";
      input.placeholder = opt.has_value ? "(unchanged)" : "";
    } else if (opt.default_value !== null && opt.default_value !== undefined) {
      input.value = String(opt.default_value);
    }
    if (opt.is_multiple) input.placeholder = "a,b,c";
    input.required = opt.is_required && !(opt.is_secret && opt.has_value);
  }
  input.id = `opt-${dest}`;
  input.name = dest;
  input.dataset.option = dest;
  input.dataset.kind = opt.is_bool ? "bool" : opt.is_secret ? "secret" : "text";
  if (opt.help_text) input.title = opt.help_text;
  return input;
}

function renderForm(form) {
  state.form = form;
  if (form.run_time && !$("in-runtime").value) $("in-runtime").value = `${form.run_time}s`;
  const extras = Object.entries(form.extra_options || {});
  $("extra-options").hidden = extras.length === 0;
  $("extra-fields").replaceChildren(
    ...extras.map(([dest, opt]) => labelled(opt.flag || dest, optionInput(dest, opt), opt.is_bool ? "check" : "")),
  );
  $("picker").hidden = !form.class_picker;
  if (form.class_picker) {
    const selected = new Set(form.selected_user_classes);
    $("picker-classes").replaceChildren(
      ...form.available_user_classes.map((name) => {
        const box = document.createElement("input");
        box.type = "checkbox";
        box.name = "user_classes";
        box.value = name;
        box.id = `class-${name}`;
        box.checked = selected.has(name);
        return labelled(name, box, "check");
      }),
    );
    const shapes = $("in-shape");
    shapes.replaceChildren(...form.available_shape_classes.map((n) => new Option(n, n, false, n === form.shape_class)));
  }
  showCommonOptions();
}

function showCommonOptions() {
  // a shape sets users and spawn rate (unless it asks for them, or the picker may turn it off)
  const form = state.form;
  let hide = Boolean(form && form.hide_common_options);
  if (form && form.class_picker) hide = $("in-shape").value !== "Default";
  for (const id of ["in-users", "in-rate", "in-runtime"]) $(id).closest("label").hidden = hide;
}

function formData() {
  const data = new URLSearchParams();
  data.set("user_count", $("in-users").value);
  data.set("spawn_rate", $("in-rate").value);
  if ($("in-host").value && !state.running) data.set("host", $("in-host").value);
  if ($("in-runtime").value.trim()) data.set("run_time", $("in-runtime").value.trim());
  if (state.form && state.form.class_picker) {
    for (const box of document.querySelectorAll("#picker-classes input:checked")) data.append("user_classes", box.value);
    data.set("shape_class", $("in-shape").value);
  }
  for (const input of document.querySelectorAll("#extra-fields [data-option]")) {
    const kind = input.dataset.kind;
    if (kind === "bool") data.set(input.name, input.checked ? "true" : "false");
    else if (kind !== "secret" || input.value) data.set(input.name, input.value); // an empty secret: unchanged
  }
  return data;
}

async function refreshForm() {
  try {
    renderForm(await api("api/start-form"));
  } catch (_) {
    // the next poll says the master is unreachable
  }
}

// -- logs ------------------------------------------------------------------------------------

async function refreshLogs() {
  const doc = await api(`api/logs?since=${state.logSeq}`);
  if (doc.last_seq < state.logSeq) state.logs = []; // a new master
  state.logSeq = doc.last_seq;
  if (!doc.entries.length && state.logs.length) return;
  state.logs = state.logs.concat(doc.entries).slice(-LOG_ROWS);
  fillTable(
    "logs-table",
    state.logs.slice().reverse(),
    (e) => [
      [clock(e.time)],
      [e.source, "name mono"],
      [e.level, `level-${e.level}`],
      [e.name, "name mono"],
      [e.message, "name mono pre"],
    ],
    "No log lines yet.",
  );
  const dropped = Object.entries(doc.dropped || {}).filter(([, n]) => n > 0);
  $("logs-dropped").textContent = dropped.length
    ? `(dropped by the rate limit: ${dropped.map(([w, n]) => `${w} ${fmt(n)}`).join(", ")})`
    : "";
}

// -- charts ----------------------------------------------------------------------------------

function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function niceStep(max) {
  // a round grid step (1, 2, 2.5 or 5 times a power of ten) so that four steps cover max
  const raw = max > 0 ? max / 4 : 0.25;
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 2.5, 5, 10].map((m) => m * power).find((step) => step >= raw * (1 - 1e-9));
}

function decimals(step) {
  let digits = 0;
  while (digits < 6 && Math.abs(step * 10 ** digits - Math.round(step * 10 ** digits)) > 1e-9) digits++;
  return digits;
}

function clock(t) {
  return new Date(t * 1000).toLocaleTimeString("en-GB", { hour12: false });
}

function drawChart(svg, samples, series) {
  const W = 560;
  const H = 240;
  const pad = { left: 56, right: 14, top: 30, bottom: 30 };
  const plotW = W - pad.left - pad.right;
  const plotH = H - pad.top - pad.bottom;
  const nodes = [];
  const points = samples.slice(-CHART_POINTS);
  let highest = 0;
  for (const s of series) for (const p of points) highest = Math.max(highest, Number(p[s.key]) || 0);
  const step = niceStep(highest);
  const top = 4 * step;
  for (let i = 0; i <= 4; i++) {
    const y = pad.top + plotH - (plotH * i) / 4;
    nodes.push(el("line", { x1: pad.left, x2: W - pad.right, y1: y, y2: y, class: "grid" }));
    nodes.push(el("text", { x: pad.left - 6, y: y + 4, class: "tick", "text-anchor": "end" }, fmt(step * i, decimals(step))));
  }
  if (points.length) {
    const t0 = points[0].time;
    const t1 = Math.max(points[points.length - 1].time, t0 + 1);
    const x = (t) => pad.left + (plotW * (t - t0)) / (t1 - t0);
    const y = (v) => pad.top + plotH - (plotH * (Number(v) || 0)) / top;
    for (let i = 0; i <= 3; i++) {
      const t = t0 + ((t1 - t0) * i) / 3;
      const anchor = i === 0 ? "start" : i === 3 ? "end" : "middle";
      nodes.push(el("text", { x: x(t), y: H - 8, class: "tick", "text-anchor": anchor }, clock(t)));
    }
    for (const s of series) {
      const d = points.map((p, i) => `${i ? "L" : "M"}${x(p.time).toFixed(1)},${y(p[s.key]).toFixed(1)}`).join("");
      nodes.push(el("path", { d, class: "line", stroke: s.color }));
    }
  } else {
    nodes.push(el("text", { x: W / 2, y: H / 2, class: "placeholder", "text-anchor": "middle" }, "Waiting for a test…"));
  }
  let lx = pad.left;
  for (const s of series) {
    nodes.push(el("rect", { x: lx, y: 7, width: 12, height: 12, rx: 2, fill: s.color }));
    nodes.push(el("text", { x: lx + 17, y: 18, class: "legend" }, s.label));
    lx += 26 + s.label.length * 8;
  }
  nodes.push(el("line", { x1: pad.left, x2: pad.left, y1: pad.top, y2: pad.top + plotH, class: "axis" }));
  svg.replaceChildren(...nodes);
}

function renderCharts() {
  const h = state.history;
  drawChart($("chart-rps"), h, [
    { key: "current_rps", label: "RPS", color: "#2f7de1" },
    { key: "current_fail_per_sec", label: "Failures/s", color: "#d9453d" },
  ]);
  drawChart($("chart-times"), h, [
    { key: "response_time_percentile_0.5", label: "Median", color: "#2e9e5b" },
    { key: "response_time_percentile_0.95", label: "95th percentile", color: "#e8a33d" },
    { key: "response_time_percentile_0.99", label: "99th percentile", color: "#8b5cf6" },
    ...(h.some((p) => "corrected_response_time_percentile_0.99" in p)
      ? [{ key: "corrected_response_time_percentile_0.99", label: "99th, corrected", color: "#d9453d" }]
      : []),
  ]);
  drawChart($("chart-users"), h, [{ key: "user_count", label: "Users", color: "#0f9fb4" }]);
}

// -- history: the stored runs (api/runs, web_history.py) -------------------------------------

const HISTORY_MS = 10000;
const runs = { a: null, b: null, list: [], metric: "p95", lastState: null };

function historyQuery() {
  const params = new URLSearchParams();
  const label = $("history-label").value.trim();
  if (label) params.append("label", label);
  params.set("last", $("history-last").value || "20");
  return params;
}

async function refreshRuns() {
  let doc;
  try {
    doc = await api(`api/runs?${historyQuery()}`);
  } catch (err) {
    // 404: this master saves no runs; other errors: say so in the view
    if (String(err.message).includes("saves no runs")) $("history").hidden = true;
    return;
  }
  $("history").hidden = false;
  $("history-store").textContent = `(${doc.store})`;
  const select = $("history-metric");
  if (!select.options.length) {
    for (const m of doc.metrics) select.appendChild(new Option(m, m, m === runs.metric, m === runs.metric));
  }
  runs.list = doc.runs.slice().reverse(); // newest first in the table
  if (!runs.b && runs.list.length) runs.b = runs.list[0].id;
  if (!runs.a && runs.list.length > 1) runs.a = runs.list[1].id;
  renderRuns();
  await refreshTrend();
  await refreshCompare();
}

function pick(which, id) {
  const input = document.createElement("input");
  input.type = "radio";
  input.name = `run-${which}`;
  input.checked = runs[which] === id;
  input.addEventListener("change", () => {
    runs[which] = id;
    refreshCompare();
  });
  return input;
}

function renderRuns() {
  fillTable("runs-table", runs.list, (r) => {
    const s = r.summary || {};
    const labels = Object.entries(r.labels || {}).map(([k, v]) => `${k}=${v}`).join(" ");
    return [["", ""], ["", ""], [r.id, "name"], [new Date(r.started * 1000).toLocaleString("en-GB"), "name"],
      [r.status + (r.exit_code === null ? "" : ` (${r.exit_code})`)], [fmt(r.users)], [fmt(s.requests)],
      [fmt(100 * (s.fail_ratio || 0), 2)], [fmt(s.rps, 1)], [ms(s.p50)], [ms(s.p95)], [labels, "name"]];
  }, "No runs saved yet.");
  const body = $("runs-table").tBodies[0];
  runs.list.forEach((r, i) => {
    const row = body.rows[i];
    if (!row || row.cells.length < 2) return;
    row.cells[0].appendChild(pick("a", r.id));
    row.cells[1].appendChild(pick("b", r.id));
  });
}

async function refreshTrend() {
  runs.metric = $("history-metric").value || runs.metric;
  const params = historyQuery();
  params.set("metric", runs.metric);
  const doc = await api(`api/runs/trend?${params}`);
  drawChart($("chart-trend"), doc.points, [{ key: "value", label: `${doc.metric} over runs`, color: "#e8a33d" }]);
}

function arrow(a, b, digits) {
  const show = (v) => (v === null || v === undefined ? "–" : fmt(v, digits));
  const change = a && b !== null && b !== undefined ? ` (${b >= a ? "+" : ""}${fmt((b / a - 1) * 100, 1)}%)` : "";
  return `${show(a)} → ${show(b)}${change}`;
}

async function refreshCompare() {
  renderRuns();
  if (!runs.a || !runs.b) return;
  const doc = await api(`api/runs/compare?a=${encodeURIComponent(runs.a)}&b=${encodeURIComponent(runs.b)}`);
  $("compare-title").textContent = `Run B ${doc.b} against run A ${doc.a}` +
    (doc.regression ? ": regression beyond the tolerance" : "");
  const index = (q) => doc.percentiles.indexOf(q);
  const at = (side, q) => (index(q) < 0 ? null : side.percentiles[index(q)]);
  fillTable("compare-table", doc.rows, (r) => [
    [r.method], [r.name, "name"], [arrow(r.a.rps, r.b.rps, 1)], [`${fmt(r.a.failures)} → ${fmt(r.b.failures)}`],
    [arrow(at(r.a, 0.5), at(r.b, 0.5), 2)], [arrow(at(r.a, 0.95), at(r.b, 0.95), 2)], [arrow(at(r.a, 0.99), at(r.b, 0.99), 2)],
    [r.response_times ? r.response_times.p_value.toPrecision(2) : "–"],
    [r.verdict + (r.regressions.length ? ` — regression: ${r.regressions.join("; ")}` : ""), "name"],
  ], "Nothing to compare.");
}

async function pollRuns() {
  // a run that just ended is in the store: refresh at once, else every HISTORY_MS
  await refreshRuns().catch(() => {});
  setTimeout(pollRuns, HISTORY_MS);
}

// -- polling and controls --------------------------------------------------------------------

async function refreshHistory() {
  const last = state.history.length ? state.history[state.history.length - 1].time : 0;
  const doc = await api(`api/history?since=${last}`);
  if (doc.epoch !== state.epoch) {
    // the stats were reset: the server started a new history
    state.epoch = doc.epoch;
    state.history = last ? (await api("api/history")).samples : doc.samples;
  } else {
    state.history.push(...doc.samples);
  }
  if (state.history.length > CHART_POINTS * 2) state.history = state.history.slice(-CHART_POINTS);
}

async function refresh() {
  try {
    const doc = await api("api/stats");
    renderFigures(doc);
    renderControls(doc);
    renderStats(doc);
    await refreshHistory();
    renderCharts();
    await refreshLogs();
    document.body.classList.remove("offline");
  } catch (err) {
    document.body.classList.add("offline");
    say(`Cannot reach the master: ${err.message}`, true);
  }
}

async function control(path, body) {
  try {
    const doc = await api(path, { method: "POST", body });
    say(doc.message || "Done");
    await refreshForm();
    await refresh();
  } catch (err) {
    say(err.message, true);
  }
}

function setup() {
  const form = $("swarm-form");
  form.addEventListener("input", () => {
    state.formTouched = true;
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = formData();
    state.formTouched = false;
    control("api/swarm", data);
  });
  $("in-shape").addEventListener("change", showCommonOptions);
  $("btn-stop").addEventListener("click", () => control("api/stop"));
  $("btn-reset").addEventListener("click", () => control("api/reset"));
  $("history-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    runs.a = runs.b = null;
    refreshRuns();
  });
  $("history-metric").addEventListener("change", () => refreshTrend());
  refreshForm().then(poll);
  pollRuns();
}

async function poll() {
  // one request at a time: a slow answer delays the next poll instead of piling them up
  await refresh();
  setTimeout(poll, POLL_MS);
}

document.addEventListener("DOMContentLoaded", setup);
