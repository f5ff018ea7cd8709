// trackprint's page: vanilla JS over the JSON API (schema trackprint.api/1). No build step.
// Routes (the URL's hash): #/ the library; #/find/QUERY the search results; #/track/PATH one track.
"use strict";

const REFRESH_MS = 3000;
const SVG_MAX_POINTS = 5000; // above this the map is drawn on a canvas
const PALETTE = ["#2f6fb3", "#d1495b", "#edae49", "#00798c", "#66a182", "#8d6cab", "#e07a5f", "#3d405b",
                 "#81b29a", "#b5838d", "#6d597a", "#f2cc8f"];
const $ = (sel) => document.querySelector(sel);
let mapData = null;
let mapStamp = null;
let currentPath = null;

async function api(url) {
  const response = await fetch(url, { cache: "no-store" });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ? `${body.error.code}: ${body.error.message}` : response.statusText);
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function trackLink(path) {
  return el("a", { href: "#/track/" + encodeURIComponent(path), class: "track-link", title: path, text: path });
}

function tagLine(title) {
  return el("span", { class: "title", text: title ? ` ${title}` : "" });
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

// -- live progress ---------------------------------------------------------------------------------------------
async function refreshStatus() {
  let report;
  try {
    report = await api("/api/status");
  } catch (e) {
    $("#progress-text").textContent = `status unavailable: ${e.message}`;
    return;
  }
  const p = report.progress || {};
  const db = report.database || {};
  const set = (id, v) => { $(id).textContent = v; };
  if (!p.readable) {
    set("#progress-text", db.error ? `database: ${db.error}` : "waiting for the database");
  } else {
    set("#count-discovered", p.discovered);
    set("#count-analysed", p.analysed);
    set("#count-persisted", p.persisted);
    set("#count-failed", p.failed);
    set("#count-fallback", p.fallback_share === null ? "–" : `${Math.round(100 * p.fallback_share)}%`);
    set("#count-rate", p.rate_files_per_min === null ? "…" : p.rate_files_per_min.toFixed(1));
    set("#count-eta", p.eta_s === 0 ? "done" : p.eta_s === null ? "measuring" : duration(p.eta_s));
    $("#progress-bar").style.width = `${p.percent}%`;
    const engines = Object.entries(p.engines).map(([k, v]) => `${k} ${v}`).join(", ") || "none yet";
    set("#progress-text", `${p.percent}% of ${p.discovered} files done; ${(p.audio_done_s / 3600).toFixed(2)} h of ` +
        `audio; engines: ${engines}` + (p.queued ? `; ${p.queued} waiting for an analyzer` : "") +
        (p.settling ? `; ${p.settling} settling` : "") + (db.stale ? `; ${db.stale} stale` : ""));
    const byCode = Object.entries(p.failed_by_code).map(([k, v]) => `${k} ${v}`).join(", ");
    set("#failed-by", byCode || "none");
  }
  const warnings = $("#warnings");
  warnings.replaceChildren(...(report.warnings || []).filter((w) => !w.startsWith("NATS not reachable"))
    .map((w) => el("li", { text: w })));
  const body = $("#failures tbody");
  const items = (report.failures || {}).items || [];
  body.replaceChildren(...items.map((f) => el("tr", { class: "failure" },
    el("td", { text: f.code }), el("td", { class: "path", text: f.path }), el("td", { text: f.message || "" }))));
  $("#updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  const stamp = `${p.persisted}/${db.stale}`;
  if (stamp !== mapStamp) { mapStamp = stamp; loadMap(); }
}

// -- the map ---------------------------------------------------------------------------------------------------
async function loadMap() {
  try {
    mapData = await api("/api/map");
  } catch (e) {
    $("#map-caption").textContent = e.message;
    return;
  }
  drawMap();
}

function colours(groups) {
  const out = new Map();
  groups.forEach((g, i) => out.set(g.name, PALETTE[i % PALETTE.length]));
  return out;
}

function drawMap() {
  const box = $("#map");
  const data = mapData;
  if (!data) return;
  const colour = colours(data.groups);
  const W = 900, H = 420, pad = 16;
  let x0 = 0, x1 = 0, y0 = 0, y1 = 0; // a loop, not Math.min(...xs): that overflows the stack on large libraries
  for (const p of data.points) { x0 = Math.min(x0, p.x); x1 = Math.max(x1, p.x); y0 = Math.min(y0, p.y); y1 = Math.max(y1, p.y); }
  const sx = (x) => pad + (W - 2 * pad) * (x1 > x0 ? (x - x0) / (x1 - x0) : 0.5);
  const sy = (y) => H - pad - (H - 2 * pad) * (y1 > y0 ? (y - y0) / (y1 - y0) : 0.5);
  const ev = data.explained_variance.map((v) => `${Math.round(100 * v)}%`).join(" + ");
  $("#map-caption").textContent = `${data.count} tracks${data.sampled ? ` (${data.shown} shown)` : ""}, ${data.projection} (${ev} of the variance), coloured by ${data.group_by}`;
  box.dataset.count = String(data.points.length);
  if (data.points.length > SVG_MAX_POINTS) {
    const canvas = el("canvas", { width: W, height: H, id: "map-canvas" });
    const ctx = canvas.getContext("2d");
    for (const p of data.points) {
      ctx.fillStyle = colour.get(p.group);
      ctx.fillRect(sx(p.x) - 1, sy(p.y) - 1, 2, 2);
    }
    box.replaceChildren(canvas);
  } else {
    const NS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("role", "img");
    for (const p of data.points) {
      const c = document.createElementNS(NS, "circle");
      c.setAttribute("cx", sx(p.x).toFixed(1));
      c.setAttribute("cy", sy(p.y).toFixed(1));
      c.setAttribute("r", data.points.length > 1000 ? "2.5" : "5");
      c.setAttribute("fill", colour.get(p.group));
      c.setAttribute("class", p.path === currentPath ? "point current" : "point");
      c.dataset.path = p.path;
      c.dataset.group = p.group;
      const title = document.createElementNS(NS, "title");
      title.textContent = `${p.title ? p.title + "\n" : ""}${p.path} (${p.group})`;
      c.append(title);
      c.addEventListener("click", () => { location.hash = "#/track/" + encodeURIComponent(p.path); });
      svg.append(c);
    }
    box.replaceChildren(svg);
  }
  $("#legend").replaceChildren(...data.groups.map((g) =>
    el("li", {}, el("span", { class: "sw", style: `background:${colour.get(g.name)}` }), `${g.name} (${g.count})`)));
}

// -- search ----------------------------------------------------------------------------------------------------
async function showResults(q) {
  $("#results-box").hidden = false;
  $("#track").hidden = true;
  $("#q").value = q;
  const error = $("#results-error");
  error.hidden = true;
  const body = $("#results tbody");
  body.replaceChildren();
  try {
    const data = await api(`/api/tracks?limit=200&q=${encodeURIComponent(q)}`);
    $("#results-count").textContent = `${data.count} track${data.count === 1 ? "" : "s"} (${data.query_language})`;
    body.replaceChildren(...data.items.map((t) => {
      const info = Object.entries(t.info).filter(([k]) => !["fingerprint_version", "duration_s"].includes(k))
        .map(([k, v]) => `${k}: ${v}`).join(", ");
      const cell = el("td", { class: "path" }, t.features ? trackLink(t.path) : t.path);
      return el("tr", { class: "result" }, cell, el("td", { text: t.state || "" }), el("td", { text: info }));
    }));
  } catch (e) {
    error.textContent = e.message;
    error.hidden = false;
  }
}

// -- one track -------------------------------------------------------------------------------------------------
async function showTrack(path) {
  currentPath = path;
  $("#results-box").hidden = true;
  $("#track").hidden = false;
  $("#track-title").textContent = path;
  $("#playlist").hidden = true;
  const error = $("#track-error");
  error.hidden = true;
  $("#bars").replaceChildren();
  $("#similar").replaceChildren();
  drawMap();
  try {
    const [one, similar] = await Promise.all([
      api(`/api/tracks/one?path=${encodeURIComponent(path)}`),
      api(`/api/tracks/similar?k=10&path=${encodeURIComponent(path)}`),
    ]);
    $("#track-meta").textContent = `${one.engine} engine, ${duration(one.duration_s)}, ` +
      (one.genre ? `genre ${one.genre}, ` : "") + `folder ${one.folder}; compared with ${one.library_size} tracks`;
    $("#bars").replaceChildren(...one.features.map((f) => {
      const fill = el("div", { class: "fill", style: `width:${f.percentile}%` });
      return el("div", { class: "bar", "data-name": f.name, "data-percentile": String(f.percentile),
                          title: `${f.name} = ${f.value} (library median ${f.library_median.toPrecision(4)}; percentile ${f.percentile})` },
        el("span", { text: f.name }), el("div", { class: "track" }, fill, el("div", { class: "median" })),
        el("span", { class: "v", text: `${Number(f.value.toPrecision(4))} · p${Math.round(f.percentile)}` }));
    }));
    $("#similar").replaceChildren(...similar.items.map((m) =>
      el("li", { class: "similar" }, trackLink(m.path), tagLine(m.title), el("span", { class: "d", text: m.distance.toFixed(3) }))));
  } catch (e) {
    error.textContent = e.message;
    error.hidden = false;
  }
}

async function showPlaylist(event) {
  event.preventDefault();
  if (!currentPath) return;
  const list = $("#playlist");
  try {
    const data = await api(`/api/playlist?length=15&seed=${encodeURIComponent(currentPath)}`);
    list.replaceChildren(...data.items.map((m) =>
      el("li", {}, trackLink(m.path), tagLine(m.title), el("span", { class: "d", text: m.distance_to_previous.toFixed(3) }))));
  } catch (e) {
    list.replaceChildren(el("li", { class: "error", text: e.message }));
  }
  list.hidden = false;
}

// -- routing ---------------------------------------------------------------------------------------------------
function route() {
  const hash = location.hash || "#/";
  if (hash.startsWith("#/track/")) return showTrack(decodeURIComponent(hash.slice(8)));
  if (hash.startsWith("#/find/")) return showResults(decodeURIComponent(hash.slice(7)));
  currentPath = null;
  $("#results-box").hidden = true;
  $("#track").hidden = true;
  drawMap();
}

$("#search").addEventListener("submit", (event) => {
  event.preventDefault();
  location.hash = "#/find/" + encodeURIComponent($("#q").value.trim());
});
$("#playlist-link").addEventListener("click", showPlaylist);
window.addEventListener("hashchange", route);
refreshStatus();
setInterval(refreshStatus, REFRESH_MS);
route();
