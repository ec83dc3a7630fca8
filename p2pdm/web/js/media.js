// Photos, videos, voice notes, files and locations: shown inline (thumbnail
// first), sent by picking, dropping, pasting or recording. The node serves
// media from /v1/media (same origin, as attachments with nosniff); nothing here
// ever inserts a peer's file as markup.

import { accepts, has, post, seg } from "./api.js";
import { bytes, h, showError } from "./dom.js";

const MAP_URL = "https://www.openstreetmap.org/";
/** Longest voice note recorded from the microphone. */
const MAX_RECORDING_MS = 5 * 60 * 1000;
/** How often the record button shows how long it has recorded. */
const RECORDING_TICK_MS = 500;

/** A file's states (GET /v1/media answers): `local` (yours) and `ready` are whole here. */
const SHOWABLE = ["local", "ready"];

/** Whether a message's file is whole on this node: shown, and sendable on. */
export const isHere = (item) => !item.state || SHOWABLE.includes(item.state);

/** The file id a media.* event is about (`detail`: "<id>", "<id> 3/8" or "<id>: why"). */
export function mediaIdOf(event) {
  return String(event.detail || "").split(/[ :]/)[0];
}

export function attachmentsOf(message) {
  return (message.media || []).map((item) => {
    const url = `/v1/media/${seg(item.id)}`;
    const kind = (item.mime || "").split("/")[0];
    const ready = isHere(item);
    const label = `${item.name || "file"}, ${bytes(item.size || 0)}`;
    const waiting = ready ? null : fileState(item);
    if (kind === "image" && (ready || item.thumbnail)) {
      // The thumbnail the sender made shows at once; the full image once fetched.
      const img = h("img.photo", {
        src: item.thumbnail ? `${url}/thumbnail` : url, alt: item.name || "photo", loading: "lazy",
        width: item.width || null, height: item.height || null,
      });
      if (ready && item.thumbnail) {
        const full = new Image();
        full.onload = () => { img.src = full.src; };
        full.src = url;
      }
      return h("div.media", {}, h("a.media.image", { href: url, target: "_blank", rel: "noopener", "aria-label": `Open photo ${label}`, dataset: { state: item.state || "" } }, img), waiting);
    }
    if (kind === "video") {
      return h("div.media", {}, h("video.media", { controls: true, preload: "none", poster: item.thumbnail ? `${url}/thumbnail` : null, src: ready ? url : null, "aria-label": `Video ${label}` }), waiting);
    }
    if (kind === "audio") return voiceNote(item, url, ready, waiting);
    return h("div.media", {}, h("a.media.file", { href: ready ? url : null, download: item.name || "file", "aria-label": `Download ${label}`, dataset: { state: item.state || "" } },
      h("span.icon", { "aria-hidden": "true" }, "📎"),
      h("span.name", {}, item.name || "file"),
      h("span.size", {}, ` ${bytes(item.size || 0)} · ${item.mime || "file"}`)), waiting);
  });
}

// --- voice notes ---------------------------------------------------------------

/** Bars a voice note's waveform is drawn with (the node sends up to 64 levels). */
const VOICE_BARS = 32;
/** How far the arrow keys move in a voice note, in seconds. */
const SEEK_STEP_S = 5;
/** The one voice note playing. Starting another stops it, as in other
 * messengers; it lives outside the page's lists, so a redraw (a message
 * arriving) does not stop it, and it stops when its conversation closes. */
const playing = { audio: null, id: null };

/** "0:07" */
export function playTime(seconds) {
  const s = Math.max(0, Math.round(seconds || 0));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** `count` levels (0–100) from the node's waveform (0–255 each), or a flat line without one. */
export function waveLevels(waveform, count = VOICE_BARS) {
  if (!Array.isArray(waveform) || !waveform.length) return new Array(count).fill(30);
  return Array.from({ length: count }, (_, i) => {
    const from = Math.floor((i * waveform.length) / count);
    const to = Math.max(from + 1, Math.floor(((i + 1) * waveform.length) / count));
    const part = waveform.slice(from, to);
    const mean = part.reduce((sum, v) => sum + v, 0) / part.length;
    return Math.max(8, Math.round((mean * 100) / 255));
  });
}

function voiceNote(item, url, ready, waiting) {
  const bars = waveLevels(item.waveform).map((level) => {
    const bar = h("span.bar");
    bar.style.setProperty("--level", `${level}%`);
    return bar;
  });
  const seek = (fraction) => playVoice(item, url, fraction);
  const wave = h("div.waveform", {
    role: "slider", tabindex: ready ? "0" : "-1", "aria-label": "Position in the voice note",
    "aria-valuemin": "0", "aria-disabled": ready ? null : "true",
    onclick: (e) => {
      if (!ready) return;
      const box = wave.getBoundingClientRect();
      seek(Math.min(1, Math.max(0, (e.clientX - box.left) / box.width)));
    },
    onkeydown: (e) => {
      if (!ready) return;
      const total = voiceSeconds(item);
      const now = playing.id === item.id ? playing.audio.currentTime : 0;
      const to = { ArrowRight: now + SEEK_STEP_S, ArrowUp: now + SEEK_STEP_S, ArrowLeft: now - SEEK_STEP_S, ArrowDown: now - SEEK_STEP_S, Home: 0, End: total }[e.key];
      if (to === undefined || !total) return;
      e.preventDefault();
      seek(Math.min(1, Math.max(0, to / total)));
    },
  }, bars);
  const button = h("button.icon.play", {
    type: "button", disabled: !ready, onclick: () => toggleVoice(item, url),
  });
  const note = h("div.media.voice", { dataset: { mediaId: item.id, state: item.state || "" } },
    h("div.player", {}, button, wave, h("span.duration")), waiting);
  showVoice(note, item);
  return note;
}

/** How long a voice note plays: what the browser found, else what the node measured. */
function voiceSeconds(item) {
  const audio = playing.id === item.id ? playing.audio : null;
  if (audio && Number.isFinite(audio.duration) && audio.duration > 0) return audio.duration;
  return item.duration_ms ? item.duration_ms / 1000 : 0;
}

/** Draw a voice note's button, played bars and time from the one playing. */
function showVoice(note, item) {
  const audio = playing.id === item.id ? playing.audio : null;
  const on = Boolean(audio && !audio.paused);
  const total = voiceSeconds(item);
  const at = audio ? audio.currentTime : 0;
  const button = note.querySelector("button.play");
  button.textContent = on ? "❚❚" : "▶\uFE0E"; // text, not emoji
  button.setAttribute("aria-label", `${on ? "Pause" : "Play"} voice note, ${playTime(total)}`);
  note.dataset.playing = on ? "true" : "false";
  const wave = note.querySelector(".waveform");
  const bars = wave.children;
  const played = total ? Math.round((at / total) * bars.length) : 0;
  for (let i = 0; i < bars.length; i += 1) bars[i].classList.toggle("played", i < played);
  wave.setAttribute("aria-valuemax", String(Math.round(total)));
  wave.setAttribute("aria-valuenow", String(Math.round(at)));
  wave.setAttribute("aria-valuetext", `${playTime(at)} of ${playTime(total)}`);
  note.querySelector(".duration").textContent = audio && (on || at > 0) ? playTime(at) : total ? playTime(total) : "";
}

function voiceElement(id) {
  return document.querySelector(`.voice[data-media-id="${CSS.escape(id)}"]`);
}

function stopVoice() {
  const { audio, id } = playing;
  playing.audio = null;
  playing.id = null;
  if (audio) audio.pause();
  const note = id && voiceElement(id);
  if (note) note.dataset.playing = "false";
}

/** Play a voice note (from `fraction` of it, if given), stopping any other. */
function playVoice(item, url, fraction = null) {
  if (playing.id !== item.id) {
    stopVoice();
    const audio = new Audio(url);
    playing.audio = audio;
    playing.id = item.id;
    const redraw = () => {
      if (playing.audio !== audio) return;
      const note = voiceElement(item.id);
      if (!note) { stopVoice(); return; } // its conversation closed
      showVoice(note, item);
    };
    for (const type of ["play", "pause", "timeupdate", "durationchange", "ended"]) audio.addEventListener(type, redraw);
    audio.addEventListener("error", () => { if (playing.audio === audio) { stopVoice(); showError("This voice note cannot be played here"); } });
  }
  const audio = playing.audio;
  if (fraction !== null) {
    const total = voiceSeconds(item);
    if (total) audio.currentTime = fraction * total;
  }
  audio.play().catch((error) => { if (error.name !== "AbortError") showError(error); });
}

function toggleVoice(item, url) {
  if (playing.id === item.id && !playing.audio.paused) playing.audio.pause();
  else playVoice(item, url, playing.id === item.id && playing.audio.ended ? 0 : null);
}

/** The node counts a transfer in chunks of this size (`progress`). */
const CHUNK_BYTES = 256 * 1024;
const percent = (item) => Math.min(100, Math.round((item.progress * CHUNK_BYTES * 100) / item.size));

/** A file not here yet: how far it is, why it waits, and a way to ask for it. */
function fileState(item) {
  const words = { pending: "not downloaded", fetching: "downloading", failed: "could not be fetched" };
  const askable = (item.state === "pending" || item.state === "failed")
    && has("POST", "/v1/media/{id}/download");
  return h("div.file-state", { dataset: { state: item.state } },
    h("span", {}, words[item.state] || item.state,
      item.state === "fetching" && item.progress && item.size ? ` ${percent(item)}%` : "",
      item.detail ? ` · ${item.detail}` : ""),
    askable ? h("button", {
      type: "button", onclick: () => post(`/v1/media/${seg(item.id)}/download`).catch(showError),
    }, "Download") : null);
}

export function locationOf(message) {
  const at = message.location;
  if (!at) return null;
  const lat = Number(at.lat).toFixed(5);
  const lon = Number(at.lon).toFixed(5);
  const href = `${MAP_URL}?mlat=${lat}&mlon=${lon}#map=16/${lat}/${lon}`;
  return h("div.location", {},
    h("span", { "aria-hidden": "true" }, "📍 "),
    h("strong", {}, at.label || "Location"),
    h("span.coords", {}, ` ${lat}, ${lon}${at.accuracy_m ? ` ±${Math.round(at.accuracy_m)} m` : ""}`),
    " ",
    h("a", { href, target: "_blank", rel: "noopener noreferrer" }, "Open map"));
}

/** Upload files one by one, then send each as a message through `send`. */
export async function sendFiles(files, send) {
  for (const file of files) {
    try {
      const uploaded = await post(`/v1/media?name=${seg(file.name || "file")}`, file);
      await send({ media: [uploaded.id] });
    } catch (error) { showError(error); }
  }
}

/** The composer's attach, record and location buttons (each only if the node has it). */
export function composerMediaControls({ send }) {
  const controls = [];
  if (has("POST", "/v1/media")) {
    const picker = h("input", {
      type: "file", multiple: true, hidden: true, id: "file-picker",
      onchange: (e) => { sendFiles([...e.target.files], send); e.target.value = ""; },
    });
    controls.push(picker, h("button.icon", {
      type: "button", "aria-label": "Attach photos or files", title: "Attach",
      onclick: () => picker.click(),
    }, "📎"));
    if (window.MediaRecorder && navigator.mediaDevices) controls.push(recordButton(send));
  }
  if (accepts("SendMessage", "location") && navigator.geolocation) {
    controls.push(h("button.icon", {
      type: "button", "aria-label": "Send your location", title: "Location",
      onclick: () => navigator.geolocation.getCurrentPosition(
        (p) => send({ location: { lat: p.coords.latitude, lon: p.coords.longitude, accuracy_m: p.coords.accuracy } }),
        (error) => showError(error.message)),
    }, "📍"));
  }
  return controls;
}

function recordButton(send) {
  let recorder = null;
  let stopTimer = null;
  let ticker = null;
  const button = h("button.icon", { type: "button", id: "record-voice", "aria-label": "Record a voice note", "aria-pressed": "false", title: "Voice note" }, "🎤");
  button.addEventListener("click", async () => {
    if (recorder) { recorder.stop(); return; }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const type = MediaRecorder.isTypeSupported("audio/ogg;codecs=opus") ? "audio/ogg;codecs=opus" : "audio/webm;codecs=opus";
      const chunks = [];
      recorder = new MediaRecorder(stream, { mimeType: type });
      recorder.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
      recorder.onstop = async () => {
        clearTimeout(stopTimer);
        clearInterval(ticker);
        for (const track of stream.getTracks()) track.stop();
        recorder = null;
        button.setAttribute("aria-pressed", "false");
        button.setAttribute("aria-label", "Record a voice note");
        button.textContent = "🎤";
        const base = type.split(";")[0];
        const blob = new Blob(chunks, { type: base });
        await sendFiles([new File([blob], `voice.${base === "audio/ogg" ? "ogg" : "webm"}`, { type: base })], send);
      };
      recorder.start();
      stopTimer = setTimeout(() => recorder && recorder.stop(), MAX_RECORDING_MS);
      button.setAttribute("aria-pressed", "true");
      // How long it has recorded, on the button that stops it.
      const started = Date.now();
      const tick = () => {
        const took = playTime(Math.floor((Date.now() - started) / 1000)); // a stopwatch: whole seconds
        button.textContent = `⏹ ${took}`;
        button.setAttribute("aria-label", `Stop recording (${took})`);
      };
      tick();
      ticker = setInterval(tick, RECORDING_TICK_MS);
    } catch (error) { showError(error.message || error); }
  });
  return button;
}
