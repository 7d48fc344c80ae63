// gridshift operator console: polls /console/api/live and draws the fleet with plain DOM and SVG (no library, no
// build step). Readable without a token; posting or clearing a DR event sends the token typed into the page as a
// Bearer header, and the token lives in this page's memory only.
"use strict";

const COLORS = ["#58a6ff", "#f0883e", "#a371f7", "#3fb950", "#ff7b72", "#e3b341", "#79c0ff", "#d2a8ff"];
const LEVER_COLORS = { shift_away: "#58a6ff", defer: "#a371f7", reduce: "#e3b341", battery: "#3fb950" };
const SVG_NS = "http://www.w3.org/2000/svg";

const model = { fleet: null, samples: [], lastWall: 0, live: null, token: "", colors: {}, failures: 0, updated: 0 };

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (key === "class") node.className = value;
    else if (key === "style") node.setAttribute("style", value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  return node;
}

const kw = (value) => (value === null || value === undefined ? "-" : Math.round(value).toLocaleString("en-US"));
const pct = (value) => (value === null || value === undefined ? "-" : `${Math.round(value * 100)}%`);
const traceTime = (seconds) => new Date(seconds * 1000).toISOString().slice(0, 16).replace("T", " ") + "Z";

async function getJson(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

// Samples ------------------------------------------------------------------------------------------------------------

function addSamples(samples) {
  for (const sample of samples || []) {
    if (sample.wall_s <= model.lastWall) continue;
    const previous = model.samples[model.samples.length - 1];
    // A replay restarted on the trace (control clock went back): the timeline starts again.
    if (previous && sample.at_s < previous.at_s) model.samples = [];
    model.samples.push(sample);
    model.lastWall = sample.wall_s;
  }
  const horizon = model.lastWall - model.fleet.history_span_s;
  while (model.samples.length && model.samples[0].wall_s < horizon) model.samples.shift();
}

const latest = () => model.samples[model.samples.length - 1] || null;

// Region cards -------------------------------------------------------------------------------------------------------

function buildRegions() {
  const root = document.getElementById("regions");
  root.replaceChildren();
  for (const region of model.fleet.regions) {
    root.append(
      h("article", { class: "card", "data-region": region.name, "data-testid": `region-${region.name}` },
        h("h3", {}, h("span", {}, region.name, " ", h("span", { class: "zone" }, region.zone)),
          h("span", { class: "badge stress-0", "data-field": "stress" }, "-")),
        h("div", { "data-field": "body" }, h("span", { class: "dim" }, "waiting for the first sample ..."))));
  }
}

function row(key, ...value) {
  return h("div", { class: "row" }, h("span", { class: "k" }, key), h("span", {}, ...value));
}

function leverBar(flexible, capacityKw) {
  const total = Object.values(flexible).reduce((a, b) => a + b, 0);
  const scale = Math.max(capacityKw, total, 1);
  const parts = Object.entries(flexible).map(([lever, value]) =>
    h("span", { title: `${lever} ${kw(value)} kW`, style: `width:${(100 * value) / scale}%;background:${LEVER_COLORS[lever] || "#888"}` }));
  return h("div", { class: "bar", "data-field": "flexible" }, parts);
}

function renderRegions(sample, live) {
  const staleness = (live && live.staleness) || {};
  for (const config of model.fleet.regions) {
    const card = document.querySelector(`[data-region="${config.name}"]`);
    const r = sample.regions[config.name];
    if (!card || !r) continue;
    const badge = card.querySelector('[data-field="stress"]');
    badge.className = `badge stress-${r.stress_level}`;
    badge.textContent = `${r.stress_level} ${model.fleet.stress_names[r.stress_level]}`;
    badge.setAttribute("data-level", String(r.stress_level));
    const stale = staleness[config.name] || {};
    const flexible = r.flexible_kw || {};
    const flexibleText = Object.entries(flexible).map(([lever, value]) => `${lever} ${kw(value)}`).join(", ") || "-";
    const body = [
      r.event_level !== null ? h("div", { class: "event", "data-field": "event" }, `DR event: level ${r.event_level}`) : null,
      row("headroom", r.headroom.toFixed(3)),
      h("div", { class: "bar" }, h("span", { style: `width:${100 * r.headroom}%;background:${model.colors[config.name]}` })),
      row("rung", r.rung === null ? "- (no fresh policy)" : `${r.rung} (batch jobs ${r.batch_may_run === false ? "paused" : "run"})`),
      row(`knobs (${r.knob_source})`, `tolerant ${r.precision.tolerant}, realtime ${r.precision.realtime}`),
      row("", `batch<=${r.max_batch_size}, concurrency<=${r.max_concurrency}`),
      row("grid / baseline", `${kw(r.grid_kw)} / ${kw(r.baseline_kw)} kW`),
      row("flexible kW", flexibleText),
      leverBar(flexible, config.capacity_kw),
      config.battery_kwh === null ? row("battery", "none") : row("battery", `${pct(r.battery_soc)} of ${kw(config.battery_kwh)} kWh, ${kw(r.battery_kw)} kW`),
      config.battery_kwh === null ? null : h("div", { class: "bar" }, h("span", { style: `width:${100 * (r.battery_soc || 0)}%;background:#3fb950` })),
      row("load", `${r.requests_per_s.toFixed(1)} req/s, utilisation ${pct(r.utilization)}`),
      row("health", r.healthy ? "up" : "DOWN", stale.stale ? `, signals stale (oldest ${Math.round(stale.oldest_signal_age_s / 60)} min)` : ", signals fresh"),
    ];
    card.querySelector('[data-field="body"]').replaceChildren(...body.filter((x) => x !== null));
  }
}

// Traffic split ------------------------------------------------------------------------------------------------------

function renderSplit(sample) {
  const root = document.getElementById("split");
  const rows = [];
  for (const origin of model.fleet.regions.map((r) => r.name)) {
    const pairs = sample.split[origin] || [];
    const shifted = sample.shifted_items_per_s[origin];
    rows.push(h("div", { class: "origin", "data-origin": origin, "data-targets": pairs.map(([r, s]) => `${r}:${s}`).join(",") },
      h("span", {}, `from ${origin}`),
      h("div", { class: "bar" }, pairs.map(([region, share]) =>
        h("span", { title: `${region} ${pct(share)}`, style: `width:${100 * share}%;background:${model.colors[region]}` }))),
      h("span", { "data-field": "targets" }, pairs.map(([region, share]) => `${region} ${pct(share)}`).join(", "),
        shifted ? h("span", { class: "dim" }, `  (${shifted.toFixed(1)} items/s moved)`) : null)));
  }
  root.replaceChildren(...rows);
}

// Charts ---------------------------------------------------------------------------------------------------------------

const PAD = { left: 44, right: 8, top: 8, bottom: 20 };

function drawChart(id, series, yMin, yMax, options) {
  const node = document.getElementById(id);
  const width = 640, height = 180;
  const samples = model.samples;
  node.replaceChildren();
  if (samples.length === 0) return;
  const x0 = samples[0].at_s, x1 = Math.max(samples[samples.length - 1].at_s, x0 + 1);
  const sx = (x) => PAD.left + ((x - x0) / (x1 - x0)) * (width - PAD.left - PAD.right);
  const sy = (y) => height - PAD.bottom - ((y - yMin) / (yMax - yMin || 1)) * (height - PAD.top - PAD.bottom);
  const ticks = options.ticks || [yMin, (yMin + yMax) / 2, yMax];
  for (const tick of ticks) {
    node.append(svg("line", { class: "grid", x1: PAD.left, x2: width - PAD.right, y1: sy(tick), y2: sy(tick) }));
    const label = svg("text", { x: PAD.left - 4, y: sy(tick) + 3, "text-anchor": "end" });
    label.textContent = options.format ? options.format(tick) : String(tick);
    node.append(label);
  }
  for (const [at, anchor] of [[x0, "start"], [x1, "end"]]) {
    const label = svg("text", { x: sx(at), y: height - 5, "text-anchor": anchor });
    label.textContent = traceTime(at);
    node.append(label);
  }
  for (const line of series) {
    let path = "";
    let previous = null;
    for (const sample of samples) {
      const y = line.value(sample);
      if (y === null || y === undefined) { previous = null; continue; }
      const px = sx(sample.at_s), py = sy(y);
      if (previous === null) path += `M${px.toFixed(1)},${py.toFixed(1)}`;
      else if (options.step) path += `H${px.toFixed(1)}V${py.toFixed(1)}`;
      else path += `L${px.toFixed(1)},${py.toFixed(1)}`;
      previous = py;
    }
    if (path) {
      node.append(svg("path", { d: path, fill: "none", stroke: line.color, "stroke-width": 1.6,
        "stroke-dasharray": line.dashed ? "4 3" : "none", "data-series": line.name }));
    }
  }
}

function renderCharts() {
  const names = model.fleet.regions.map((r) => r.name);
  const per = (field) => names.map((name) => ({ name, color: model.colors[name], value: (s) => (s.regions[name] || {})[field] }));
  drawChart("chart-headroom", per("headroom"), 0, 1, { ticks: [0, 0.5, 1] });
  // Regions at the same level would hide each other: each line is nudged a little apart.
  const stress = names.map((name, i) => ({
    name, color: model.colors[name],
    value: (s) => (s.regions[name] ? s.regions[name].stress_level + (i - (names.length - 1) / 2) * 0.06 : null),
  }));
  drawChart("chart-stress", stress, -0.2, 3.2, { ticks: [0, 1, 2, 3], step: true });
  let top = 1;
  for (const sample of model.samples) {
    for (const r of Object.values(sample.regions)) top = Math.max(top, r.grid_kw || 0, r.baseline_kw || 0);
  }
  const power = names.flatMap((name) => [
    { name: `${name} grid`, color: model.colors[name], value: (s) => (s.regions[name] || {}).grid_kw },
    { name: `${name} baseline`, color: model.colors[name], dashed: true, value: (s) => (s.regions[name] || {}).baseline_kw },
  ]);
  drawChart("chart-power", power, 0, top * 1.05, { ticks: [0, top / 2, top], format: (v) => kw(v) });
  drawChart("chart-battery", per("battery_soc"), 0, 1, { ticks: [0, 0.5, 1] });
}

function buildLegend() {
  const items = model.fleet.regions.map((r) => h("span", {}, h("i", { style: `background:${model.colors[r.name]}` }), r.name));
  const levers = Object.entries(LEVER_COLORS).map(([lever, color]) => h("span", {}, h("i", { style: `background:${color}` }), `flexible: ${lever}`));
  document.getElementById("legend").replaceChildren(...items, ...levers);
}

// Events, sources, jobs --------------------------------------------------------------------------------------------

function renderEvents(live) {
  const root = document.getElementById("events");
  const events = (live && live.events) || [];
  if (events.length === 0) {
    root.replaceChildren(h("p", { class: "dim" }, "no DR events"));
  } else {
    const rows = events.map((e) => h("tr", { "data-event": e.event_id },
      h("td", {}, e.region), h("td", {}, e.level === null ? "-" : String(e.level)),
      h("td", {}, e.power_limit_kw === null ? "-" : `${kw(e.power_limit_kw)} kW`),
      h("td", {}, e.start), h("td", {}, e.end || "until cleared"), h("td", {}, e.source), h("td", {}, e.event_id),
      h("td", {}, h("button", { type: "button", "data-clear": e.event_id }, "Clear"))));
    root.replaceChildren(h("table", {}, h("tr", {}, ["region", "level", "limit", "start", "end", "source", "id", ""].map((t) => h("th", {}, t))), rows));
  }
  const openadr = live && live.openadr;
  const target = document.getElementById("openadr");
  if (!openadr) {
    target.replaceChildren(h("p", { class: "dim" }, "OpenADR VEN: not configured for this fleet"));
  } else {
    target.replaceChildren(h("p", {}, "OpenADR VEN: ", JSON.stringify(openadr).slice(0, 400)));
  }
}

function renderSources(live) {
  const root = document.getElementById("sources");
  const parts = [];
  const sources = live && live.signal_sources;
  if (sources === null || sources === undefined) {
    parts.push(h("p", { class: "dim" }, "trace replay: no live signal sources"));
  } else {
    parts.push(h("table", {}, h("tr", {}, ["source", "provider", "state", "failures in a row", "last success", "last error"].map((t) => h("th", {}, t))),
      sources.map((s) => h("tr", { "data-source": s.name }, h("td", {}, s.name), h("td", {}, s.provider), h("td", {}, s.state),
        h("td", {}, String(s.consecutive_failures)), h("td", {}, s.last_success || "-"), h("td", {}, s.last_error || "")))));
  }
  const staleness = (live && live.staleness) || {};
  parts.push(h("table", {}, h("tr", {}, ["region", "stale", "oldest signal", "least trust", "decaying terms"].map((t) => h("th", {}, t))),
    Object.entries(staleness).map(([region, s]) => h("tr", {}, h("td", {}, region), h("td", {}, s.stale ? "yes" : "no"),
      h("td", {}, s.oldest_signal_age_s === null ? "-" : `${Math.round(s.oldest_signal_age_s / 60)} min`),
      h("td", {}, String(s.min_trust)), h("td", {}, (s.stale_components || []).join(", ") || "-")))));
  root.replaceChildren(...parts);
}

function renderJobs(live) {
  const root = document.getElementById("jobs");
  const jobs = live && live.jobs;
  if (!jobs || jobs.length === 0) {
    root.replaceChildren(h("p", { class: "dim" }, jobs ? "no batch or training jobs" : "jobs unavailable"));
    return;
  }
  const headings = ["job", "kind", "region", "state", "progress", "done", "rate", "deadline", "why"];
  root.replaceChildren(h("table", {}, h("tr", {}, headings.map((t) => h("th", {}, t))),
    jobs.map((j) => {
      const share = j.total ? j.done / j.total : 0;
      const deadline = j.deadline ? `${j.deadline} (${j.on_track ? "on track" : "AT RISK"})` : "-";
      return h("tr", { "data-job": j.job_id }, h("td", {}, j.job_id), h("td", {}, j.kind), h("td", {}, j.region), h("td", {}, j.state),
        h("td", {}, h("div", { class: "bar", style: "width:120px" }, h("span", { style: `width:${100 * share}%;background:#58a6ff` }))),
        h("td", {}, `${j.done.toLocaleString("en-US")} / ${j.total.toLocaleString("en-US")} ${j.unit}`),
        h("td", {}, `${j.per_second.toFixed(1)} ${j.unit}/s`), h("td", {}, deadline), h("td", {}, j.reason));
    })));
}

function renderStatus() {
  const status = document.getElementById("status");
  const sample = latest();
  if (model.failures > 0) {
    status.className = "status error";
    status.textContent = `gateway not answering (${model.failures} polls failed); showing the last figures`;
    return;
  }
  status.className = "status";
  status.textContent = sample ? `trace time ${traceTime(sample.at_s)} | control state v${sample.version} | ${model.samples.length} samples` : "no samples yet";
}

function render() {
  const sample = latest();
  if (sample) {
    renderRegions(sample, model.live);
    renderSplit(sample);
    renderCharts();
  }
  renderEvents(model.live);
  renderSources(model.live);
  renderJobs(model.live);
  renderStatus();
}

// Admin: post and clear DR events -------------------------------------------------------------------------------------

function say(text, isError) {
  const node = document.getElementById("event-message");
  node.textContent = text;
  node.className = isError ? "message error" : "message";
}

async function admin(method, path, body) {
  const token = document.getElementById("token").value.trim();
  if (!token) { say("type the admin token first", true); return null; }
  const response = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) { say(`${method} refused: ${(answer.error && answer.error.message) || response.status}`, true); return null; }
  return answer;
}

async function postEvent(submitted) {
  submitted.preventDefault();
  const region = document.getElementById("event-region").value;
  const level = Number(document.getElementById("event-level").value);
  const minutes = Number(document.getElementById("event-minutes").value);
  const body = { region, level };
  if (minutes > 0) {
    const sample = latest();
    const start = sample ? sample.at_s : Math.floor(Date.now() / 1000);
    body.start = new Date(start * 1000).toISOString();
    body.end = new Date((start + minutes * 60) * 1000).toISOString();
  }
  const answer = await admin("POST", "/v1/admin/events", body);
  if (answer) { say(`posted ${answer.event.event_id}: level ${level} on ${region}`, false); poll(); }
}

async function clearEvent(clicked) {
  const id = clicked.target.getAttribute("data-clear");
  if (!id) return;
  const answer = await admin("DELETE", `/v1/admin/events/${encodeURIComponent(id)}`);
  if (answer) { say(`cleared ${id}`, false); poll(); }
}

// Polling --------------------------------------------------------------------------------------------------------------

let inFlight = false;

async function poll() {
  if (inFlight) return;
  inFlight = true;
  try {
    // The first poll fetches the last hour, thinned; later ones only what is newer than the newest sample held.
    const query = model.samples.length === 0 ? `every=${model.fleet.history_every_s}` : `after=${model.lastWall}`;
    const live = await getJson(`/console/api/live?${query}`);
    addSamples(live.samples);
    model.live = live;
    model.failures = 0;
    model.updated = Date.now();
  } catch (error) {
    model.failures += 1;
  } finally {
    inFlight = false;
  }
  render();
}

async function start() {
  try {
    model.fleet = await getJson("/console/api/fleet");
  } catch (error) {
    document.getElementById("status").textContent = "the gateway is not answering; retrying ...";
    setTimeout(start, 2000);
    return;
  }
  document.getElementById("fleet-name").textContent = model.fleet.name;
  model.fleet.regions.forEach((r, i) => { model.colors[r.name] = COLORS[i % COLORS.length]; });
  const select = document.getElementById("event-region");
  select.replaceChildren(...model.fleet.regions.map((r) => h("option", { value: r.name }, r.name)));
  buildRegions();
  buildLegend();
  document.getElementById("event-form").addEventListener("submit", postEvent);
  document.getElementById("events").addEventListener("click", clearEvent);
  await poll();
  setInterval(poll, model.fleet.poll_ms);
}

document.addEventListener("DOMContentLoaded", start);
