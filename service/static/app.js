// LexVLA search page: plain JS, no build step. Talks to POST /search, POST /search/image and GET /images/{id}/...
//
// The search is in the URL (q, k, boost, exclude, heat; or like=<id> for "more like this"), so a
// search can be bookmarked or shared and the browser's back and forward buttons replay it. An
// uploaded image cannot travel in a URL: its search is shown but not put into the history.
"use strict";

const state = { boost: {}, exclude: [], heat: {}, last: null, mode: "text", image: null };
const $ = (id) => document.getElementById(id);
const enc = (id) => encodeURIComponent(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "style") node.style.cssText = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

// ---- the URL: what a search is --------------------------------------------------------------
function toURL() {
  const p = new URLSearchParams();
  if (state.mode === "like") p.set("like", state.image.id);
  else p.set("q", $("q").value.trim());
  if ($("k").value !== "12") p.set("k", $("k").value);
  const boosts = Object.entries(state.boost).map(([w, f]) => `${w}:${f}`);
  if (boosts.length && state.mode === "text") p.set("boost", boosts.join(","));
  if (state.exclude.length) p.set("exclude", state.exclude.join(","));
  if ($("heat-toggle").checked) p.set("heat", "1");
  return `${location.pathname}?${p}`;
}

function fromURL() {
  const p = new URLSearchParams(location.search);
  const list = (name) => (p.get(name) || "").split(",").filter(Boolean);
  state.boost = {};
  for (const item of list("boost")) {
    const at = item.lastIndexOf(":");
    const factor = Number(item.slice(at + 1));
    if (at > 0 && factor > 0) state.boost[item.slice(0, at)] = factor;
  }
  state.exclude = list("exclude");
  if (p.has("k")) $("k").value = p.get("k");
  $("heat-toggle").checked = p.get("heat") === "1";
  $("q").value = p.get("q") || "";
  if (p.get("like")) return searchLike(p.get("like"), false);
  if ($("q").value || Object.keys(state.boost).length) return runSearch(false);
}

function remember(push) {
  const url = toURL();
  if (push && url !== location.pathname + location.search) history.pushState(null, "", url);
}

window.addEventListener("popstate", () => { state.heat = {}; fromURL(); });

// ---- text search ----------------------------------------------------------------------------
async function runSearch(push = true) {
  const query = $("q").value.trim();
  if (!query && !Object.keys(state.boost).length) return;
  state.mode = "text";
  state.image = null;
  remember(push);
  setStatus("searching…");
  const body = { query, k: Number($("k").value), boost: state.boost, exclude: state.exclude };
  const data = await call("/search", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  if (!data) return;
  state.last = data;
  state.heat = {};
  render(data);
}

async function call(url, init) {
  let res;
  try {
    res = await fetch(url, init);
  } catch (err) {
    setStatus(`network error: ${err}`, true);
    return null;
  }
  const data = await res.json();
  if (!res.ok) {
    setStatus(`${res.status}: ${data.detail || JSON.stringify(data)}`, true);
    return null;
  }
  return data;
}

// ---- image search: an upload, or "more like this" on a hit -----------------------------------
async function searchImage(blob, name, excludeId = null) {
  setStatus("searching by image…");
  const form = new FormData();
  form.append("file", blob, name);
  form.append("k", $("k").value);
  if (state.exclude.length) form.append("exclude", state.exclude.join(","));
  if (excludeId) form.append("exclude_id", excludeId);
  const data = await call("/search/image", { method: "POST", body: form });
  if (!data) return;
  data.query = { words: data.words, ignored: [] };
  state.last = data;
  state.heat = {};
  render(data);
}

async function searchUpload(file, push = true) {
  state.mode = "upload";
  state.image = { blob: file, name: file.name || "upload" };
  state.boost = {};
  if (push) state.exclude = [];
  $("q").value = "";
  await searchImage(state.image.blob, state.image.name);
}

async function searchLike(id, push = true) {
  if (push) { state.boost = {}; state.exclude = []; }
  state.mode = "like";
  setStatus("searching by image…");
  let res;
  try {
    res = await fetch(`/images/${enc(id)}`);
  } catch (err) {
    return setStatus(`network error: ${err}`, true);
  }
  if (!res.ok) return setStatus(`${res.status}: no indexed image ${id}`, true);
  state.image = { id, blob: await res.blob(), name: id.split("/").pop() };
  $("q").value = "";
  remember(push);
  await searchImage(state.image.blob, state.image.name, id);
}

function rerun() {
  if (state.mode === "text") return runSearch();
  remember(true);
  return searchImage(state.image.blob, state.image.name, state.image.id || null);
}

// ---- rendering ------------------------------------------------------------------------------
function render(data) {
  renderQuery(data.query);
  renderEdits();
  $("results").replaceChildren(...data.hits.map(card));
  const t = data.timings_ms;
  const stages = ["encode", "search", "explain"].filter((s) => s in t).map((s) => `${s} ${t[s].toFixed(1)}`).join(" · ");
  const source = state.mode === "like" ? `like ${state.image.id} · ` : state.mode === "upload" ? `image ${state.image.name} · ` : "";
  const cache = data.cache ? ` · cache ${data.cache.results}` : "";
  setStatus(`${source}${data.hits.length} hits · ${stages} · total ${t.total.toFixed(1)} ms${cache} · index ${data.versions.index}`);
}

function renderQuery(q) {
  const max = Math.max(...q.words.map((w) => w.weight), 1e-9);
  const words = q.words.slice(0, 24).map((w) =>
    el("span", { class: "qword", style: `--w:${(0.1 + 0.5 * w.weight / max).toFixed(2)}`, title: w.weight.toFixed(3) }, w.word));
  const ignored = q.ignored.map((w) => el("span", { class: "qword ignored", title: "not in the vocabulary" }, `${w}?`));
  const unread = (q.not_encoded || []).map((w) =>
    el("span", { class: "qword unread", title: "past the text encoder's token budget: not encoded, not searched" }, w));
  $("query-words").replaceChildren(...words, ...ignored, ...unread);
}

function renderEdits() {
  const tags = [
    ...Object.entries(state.boost).map(([w, f]) =>
      el("span", { class: "tag boost", title: "click to remove", onclick: () => { delete state.boost[w]; rerun(); } }, `▲ ${w} ×${f}`)),
    ...state.exclude.map((w) =>
      el("span", { class: "tag exclude", title: "click to remove", onclick: () => { state.exclude = state.exclude.filter((x) => x !== w); rerun(); } }, w)),
  ];
  $("edits").replaceChildren(...(tags.length ? tags : [el("em", {}, "click a word: ▲ boost, ✕ exclude")]));
}

function heatmapWord(hit) {
  if (hit.id in state.heat) return state.heat[hit.id];
  return $("heat-toggle").checked && hit.matches.length ? hit.matches[0].word : null;
}

function thumbSrc(hit) {
  const word = heatmapWord(hit);
  return word ? `/images/${enc(hit.id)}/heatmap?word=${enc(word)}` : hit.thumb_url;
}

function card(hit) {
  const img = el("img", { src: thumbSrc(hit), alt: hit.id, loading: "lazy" });
  return el("article", { class: "card", "data-id": hit.id },
    el("a", { class: "thumb", href: hit.image_url, target: "_blank" }, img),
    el("div", { class: "meta" },
      el("span", { class: "id", title: hit.id }, hit.id),
      el("button", { class: "like", title: "search with this image", onclick: () => searchLike(hit.id) }, "more like this"),
      el("span", {}, hit.score.toFixed(3))),
    el("div", { class: "chips" }, ...hit.matches.slice(0, 10).map((m) => chip(hit, m))));
}

function chip(hit, m) {
  const size = 11 + Math.round(14 * Math.sqrt(m.share));
  const active = heatmapWord(hit) === m.word;
  const buttons = [el("button", { class: "exclude", title: `exclude ${m.word}`, onclick: () => exclude(m.word) }, "✕")];
  if (state.mode === "text") buttons.unshift(el("button", { class: "boost", title: `boost ${m.word}`, onclick: () => boost(m.word) }, "▲"));
  return el("span", {
      class: `chip${active ? " active" : ""}`, "data-word": m.word,
      style: `--w:${(0.08 + 0.7 * m.share).toFixed(2)}; font-size:${size}px`,
      title: `${m.word}: ${(100 * m.share).toFixed(1)}% of the score (query ${m.query_weight.toFixed(3)} × image ${m.image_weight.toFixed(3)})`,
    },
    el("span", { class: "word", onclick: () => toggleHeat(hit, m.word) }, m.word), ...buttons);
}

function toggleHeat(hit, word) {
  state.heat[hit.id] = heatmapWord(hit) === word ? "" : word;
  const old = document.querySelector(`.card[data-id="${CSS.escape(hit.id)}"]`);
  old.replaceWith(card(hit));
}

function boost(word) { state.boost[word] = (state.boost[word] || 1) * 2; rerun(); }
function exclude(word) {
  if (!state.exclude.includes(word)) state.exclude.push(word);
  delete state.boost[word];
  rerun();
}

// ---- wiring ---------------------------------------------------------------------------------
$("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); state.boost = {}; state.exclude = []; runSearch(); });
$("heat-toggle").addEventListener("change", () => {
  if (!state.last) return;
  state.heat = {};
  if (state.mode !== "upload") history.replaceState(null, "", toURL());
  render(state.last);
});
$("image-file").addEventListener("change", (ev) => { if (ev.target.files.length) searchUpload(ev.target.files[0]); });
const drop = $("drop");
for (const type of ["dragenter", "dragover"]) drop.addEventListener(type, (ev) => { ev.preventDefault(); drop.classList.add("over"); });
for (const type of ["dragleave", "drop"]) drop.addEventListener(type, () => drop.classList.remove("over"));
drop.addEventListener("drop", (ev) => {
  ev.preventDefault();
  const file = [...ev.dataTransfer.files].find((f) => f.type.startsWith("image/"));
  if (file) searchUpload(file);
  else setStatus("drop an image file", true);
});
fromURL();
