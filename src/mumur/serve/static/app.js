// mumur web UI: no build step. Talks to /api/search, shows thumbnails, plays videos from the
// best-matching timestamp. An API key given as ?key=... in the page URL is forwarded.
"use strict";

const params = new URLSearchParams(window.location.search);
const apiKey = params.get("key");
const $ = (id) => document.getElementById(id);

function withKey(url) {
  if (!apiKey) return url;
  return url + (url.includes("?") ? "&" : "?") + "key=" + encodeURIComponent(apiKey);
}

function formatTime(seconds) {
  const m = Math.floor(seconds / 60);
  const s = (seconds - 60 * m).toFixed(1).padStart(4, "0");
  return `${m}:${s}`;
}

async function search(event) {
  if (event) event.preventDefault();
  const q = $("query").value.trim();
  const type = $("type").value;
  if (!q) { $("status").textContent = "Type a query."; return; }
  const url = new URLSearchParams({ q, k: "24" });
  if (type) url.set("type", type);
  $("status").textContent = "Searching…";
  let body;
  try {
    const reply = await fetch(withKey("/api/search?" + url), {
      headers: apiKey ? { "X-API-Key": apiKey } : {},
    });
    body = await reply.json();
    if (!reply.ok) { $("status").textContent = "Error: " + body.error; render([]); return; }
  } catch (err) {
    $("status").textContent = "Error: " + err; render([]); return;
  }
  const n = body.results.length;
  $("status").textContent = body.relevant
    ? `${n} results in ${body.took_ms.toFixed(0)} ms`
    : `No relevant results (closest ${n} shown, ${body.took_ms.toFixed(0)} ms)`;
  render(body.results);
}

function render(results) {
  const grid = $("results");
  grid.replaceChildren();
  for (const hit of results) {
    const card = document.createElement("figure");
    card.className = "card" + (hit.relevant ? "" : " weak");
    card.dataset.id = hit.id;
    card.dataset.mediaType = hit.media_type;
    card.tabIndex = 0;
    const img = document.createElement("img");
    img.src = withKey(`/api/thumb/${hit.id}`);
    img.alt = hit.path;
    img.loading = "lazy";
    const caption = document.createElement("figcaption");
    const when = hit.timestamp === null ? "" : ` · ▶ ${formatTime(hit.timestamp)}`;
    // A sigmoid-trained model (SigLIP) states its own match probability; others give null.
    const chance = hit.probability == null ? "" : ` · ${Math.round(hit.probability * 100)}% match`;
    // An audio-aware index (CLIP4VLA) says when the sound lifted the hit above its picture.
    const sound = hit.sound_match ? " · ♪ matched on sound" : "";
    caption.textContent = `${hit.score.toFixed(3)}${chance}${when}${sound}`;
    if (hit.sound_match) card.classList.add("sound");
    caption.title = hit.path;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = hit.path.split("/").pop();
    card.append(img, caption, name);
    if (hit.media_type === "video") card.classList.add("video");
    card.addEventListener("click", () => open(hit));
    card.addEventListener("keydown", (e) => { if (e.key === "Enter") open(hit); });
    grid.append(card);
  }
}

function open(hit) {
  const video = $("video");
  const image = $("image");
  $("player-caption").textContent = hit.path +
    (hit.timestamp === null ? "" : ` (from ${formatTime(hit.timestamp)})`);
  if (hit.media_type === "video") {
    image.hidden = true;
    video.hidden = false;
    video.dataset.start = String(hit.timestamp || 0);
    video.onloadedmetadata = () => {
      video.currentTime = Math.min(hit.timestamp || 0, video.duration || 0);
      video.play().catch(() => {});
    };
    video.src = withKey(`/api/media/${hit.id}`);
  } else {
    video.pause();
    video.hidden = true;
    image.hidden = false;
    image.src = withKey(`/api/media/${hit.id}`);
  }
  $("player").hidden = false;
}

function close() {
  $("video").pause();
  $("video").removeAttribute("src");
  $("player").hidden = true;
}

$("search-form").addEventListener("submit", search);
$("close-player").addEventListener("click", close);
$("player").addEventListener("click", (e) => { if (e.target === $("player")) close(); });
document.addEventListener("keydown", (e) => { if (e.key === "Escape") close(); });
if (params.get("q")) { $("query").value = params.get("q"); search(); }
