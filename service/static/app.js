// LexVLA search page: plain JS, no build step. Talks to POST /search and GET /images/{id}/...
"use strict";

const state = { boost: {}, exclude: [], heat: {}, last: null };
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

async function runSearch() {
  const query = $("q").value.trim();
  if (!query && !Object.keys(state.boost).length) return;
  setStatus("searching…");
  const body = { query, k: Number($("k").value), boost: state.boost, exclude: state.exclude };
  let res;
  try {
    res = await fetch("/search", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  } catch (err) {
    return setStatus(`network error: ${err}`, true);
  }
  const data = await res.json();
  if (!res.ok) return setStatus(`${res.status}: ${data.detail || JSON.stringify(data)}`, true);
  state.last = data;
  state.heat = {};
  render(data);
}

function render(data) {
  renderQuery(data.query);
  renderEdits();
  const results = $("results");
  results.replaceChildren(...data.hits.map(card));
  const t = data.timings_ms;
  const stages = ["encode", "search", "explain"].filter((s) => s in t).map((s) => `${s} ${t[s].toFixed(1)}`).join(" · ");
  setStatus(`${data.hits.length} hits · ${stages} · total ${t.total.toFixed(1)} ms · cache ${data.cache.results} · index ${data.versions.index}`);
}

function renderQuery(q) {
  const max = Math.max(...q.words.map((w) => w.weight), 1e-9);
  const words = q.words.slice(0, 24).map((w) =>
    el("span", { class: "qword", style: `--w:${(0.1 + 0.5 * w.weight / max).toFixed(2)}`, title: w.weight.toFixed(3) }, w.word));
  const ignored = q.ignored.map((w) => el("span", { class: "qword ignored", title: "not in the vocabulary" }, `${w}?`));
  $("query-words").replaceChildren(...words, ...ignored);
}

function renderEdits() {
  const tags = [
    ...Object.entries(state.boost).map(([w, f]) =>
      el("span", { class: "tag boost", title: "click to remove", onclick: () => { delete state.boost[w]; runSearch(); } }, `▲ ${w} ×${f}`)),
    ...state.exclude.map((w) =>
      el("span", { class: "tag exclude", title: "click to remove", onclick: () => { state.exclude = state.exclude.filter((x) => x !== w); runSearch(); } }, w)),
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
  const node = el("article", { class: "card", "data-id": hit.id },
    el("a", { class: "thumb", href: hit.image_url, target: "_blank" }, img),
    el("div", { class: "meta" }, el("span", { class: "id", title: hit.id }, hit.id), el("span", {}, hit.score.toFixed(3))),
    el("div", { class: "chips" }, ...hit.matches.slice(0, 10).map((m) => chip(hit, m))));
  return node;
}

function chip(hit, m) {
  const size = 11 + Math.round(14 * Math.sqrt(m.share));
  const active = heatmapWord(hit) === m.word;
  return el("span", {
      class: `chip${active ? " active" : ""}`, "data-word": m.word,
      style: `--w:${(0.08 + 0.7 * m.share).toFixed(2)}; font-size:${size}px`,
      title: `${m.word}: ${(100 * m.share).toFixed(1)}% of the score (query ${m.query_weight.toFixed(3)} × image ${m.image_weight.toFixed(3)})`,
    },
    el("span", { class: "word", onclick: () => toggleHeat(hit, m.word) }, m.word),
    el("button", { class: "boost", title: `boost ${m.word}`, onclick: () => boost(m.word) }, "▲"),
    el("button", { class: "exclude", title: `exclude ${m.word}`, onclick: () => exclude(m.word) }, "✕"));
}

function toggleHeat(hit, word) {
  state.heat[hit.id] = heatmapWord(hit) === word ? "" : word;
  const old = document.querySelector(`.card[data-id="${CSS.escape(hit.id)}"]`);
  old.replaceWith(card(hit));
}

function boost(word) { state.boost[word] = (state.boost[word] || 1) * 2; runSearch(); }
function exclude(word) {
  if (!state.exclude.includes(word)) state.exclude.push(word);
  delete state.boost[word];
  runSearch();
}

$("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); state.boost = {}; state.exclude = []; runSearch(); });
$("heat-toggle").addEventListener("change", () => { if (state.last) { state.heat = {}; render(state.last); } });
