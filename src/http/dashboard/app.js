// The dashboard: asks for a read-scoped key, reads GET /v1/analytics, draws SVG charts.
// No external scripts, fonts or requests: everything is served by edgeship itself.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
let report = null;

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function element(name, attributes, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Draws bars (or a line) of `points` ([label, value, class]) into `svg`; records how many
// points it drew in data-points.
function chart(svg, points, { line = false, max = null, format = String } = {}) {
  svg.replaceChildren();
  svg.dataset.points = String(points.length);
  const [w, h, left, bottom] = [640, 220, 76, 24];
  if (points.length === 0) {
    svg.append(element("text", { x: w / 2, y: h / 2, "text-anchor": "middle", class: "empty" }, "no data in this range"));
    return;
  }
  const top = max ?? Math.max(...points.map((p) => p[1]), 1);
  const step = (w - left) / points.length;
  const y = (v) => h - bottom - (v / top) * (h - bottom - 10);
  svg.append(element("line", { x1: left, y1: h - bottom, x2: w, y2: h - bottom, class: "axis" }));
  svg.append(element("text", { x: left - 6, y: 14, "text-anchor": "end" }, format(top)));
  svg.append(element("text", { x: left - 6, y: h - bottom, "text-anchor": "end" }, format(0)));
  if (line) {
    const path = points.map((p, i) => `${i ? "L" : "M"}${left + step * (i + 0.5)},${y(p[1])}`).join(" ");
    svg.append(element("path", { d: path, class: "line" }));
  }
  points.forEach(([label, value, cls], i) => {
    const x = left + step * i;
    if (!line) {
      svg.append(element("rect", { x: x + step * 0.15, y: y(value), width: step * 0.7, height: h - bottom - y(value), class: `bar ${cls || ""}` }));
    } else {
      svg.append(element("circle", { cx: x + step * 0.5, cy: y(value), r: 3, class: "bar cdn" }));
    }
    const every = Math.ceil(points.length / 8);
    if (i % every === 0) svg.append(element("text", { x: x + step / 2, y: h - 6, "text-anchor": "middle" }, label));
  });
}

function label(start) {
  return start.slice(5, 16).replace("T", " ");
}

function draw() {
  const site = report.sites.find((s) => s.site === $("site").value) || report.sites[0];
  if (!site) return;
  const saved = new Map();
  for (const b of site.origin?.series ?? []) saved.set(b.start, (saved.get(b.start) ?? 0) + b.saved_bytes);
  for (const b of site.cdn?.series ?? []) saved.set(b.start, (saved.get(b.start) ?? 0) + b.saved_bytes);
  const savedPoints = [...saved.entries()].sort().map(([start, v]) => [label(start), v]);
  chart($("chart-saved"), savedPoints, { format: bytes });
  const hits = (site.cdn?.series ?? []).filter((b) => b.hit_ratio !== null).map((b) => [label(b.start), b.hit_ratio]);
  chart($("chart-hits"), hits, { line: true, max: 1, format: (v) => `${Math.round(v * 100)}%` });
  const types = Object.entries(site.deploys.current.by_content_type).map(([t, s]) => [t.split("/").pop().slice(0, 12), s.saved_bytes]);
  chart($("chart-types"), types, { format: bytes });
  const body = $("top-paths").tBodies[0];
  body.replaceChildren();
  for (const p of site.cdn?.top_paths_by_bytes ?? []) {
    const row = body.insertRow();
    for (const v of [p.path, p.requests, p.misses, bytes(p.bytes)]) row.insertCell().textContent = v;
  }
  const cdn = site.cdn?.in_range;
  const origin = site.origin?.in_range;
  const totals = [
    ["saved by minify + variants (site now)", bytes(site.deploys.current.total.saved_bytes)],
    ["origin bytes saved", origin ? bytes(origin.saved_bytes) : "–"],
    ["CDN hit ratio", cdn && cdn.hit_ratio !== null ? `${(cdn.hit_ratio * 100).toFixed(1)}%` : "–"],
    ["CDN bytes saved", cdn ? bytes(cdn.saved_bytes) : "–"],
  ];
  $("totals").replaceChildren(...totals.map(([name, value]) => {
    const box = document.createElement("div");
    const b = document.createElement("b");
    b.textContent = value;
    const span = document.createElement("span");
    span.textContent = name;
    box.append(b, span);
    return box;
  }));
  document.body.dataset.ready = "true";
}

async function load() {
  const key = sessionStorage.getItem("edgeship-key");
  if (!key) return;
  const to = Math.floor(Date.now() / 1000);
  const from = to - Number($("range").value);
  const response = await fetch(`/v1/analytics?from=${from}&to=${to}`, {
    headers: { Authorization: `Bearer ${key}` },
    cache: "no-store",
  });
  const body = await response.json();
  if (!response.ok) {
    $("error").textContent = body.error ? `${body.error.code}: ${body.error.message}` : `HTTP ${response.status}`;
    if (response.status === 401 || response.status === 403) sessionStorage.removeItem("edgeship-key");
    $("login").hidden = false;
    $("report").hidden = true;
    return;
  }
  report = body;
  const select = $("site");
  const chosen = select.value;
  select.replaceChildren(...report.sites.map((s) => new Option(s.site, s.site)));
  if (chosen) select.value = chosen;
  $("error").textContent = "";
  $("login").hidden = true;
  $("report").hidden = false;
  $("forget").hidden = false;
  draw();
}

document.addEventListener("DOMContentLoaded", () => {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("edgeship-key", $("key").value.trim());
    $("key").value = "";
    load().catch((err) => { $("error").textContent = String(err); });
  });
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem("edgeship-key");
    location.reload();
  });
  $("site").addEventListener("change", draw);
  $("range").addEventListener("change", () => load().catch((err) => { $("error").textContent = String(err); }));
  load().catch((err) => { $("error").textContent = String(err); });
});
