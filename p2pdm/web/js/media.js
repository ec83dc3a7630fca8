// Photos, videos, voice notes, files and locations: shown inline (thumbnail
// first), sent by picking, dropping, pasting or recording. The node serves
// media from /v1/media (same origin, as attachments with nosniff); nothing here
// ever inserts a peer's file as markup.

import { accepts, has, post, seg } from "./api.js";
import { bytes, h, showError } from "./dom.js";

const MAP_URL = "https://www.openstreetmap.org/";
/** Longest voice note recorded from the microphone. */
const MAX_RECORDING_MS = 5 * 60 * 1000;

/** A file's states (GET /v1/media answers): `local` (yours) and `ready` can be shown. */
const SHOWABLE = ["local", "ready"];

/** The file id a media.* event is about (`detail`: "<id>", "<id> 3/8" or "<id>: why"). */
export function mediaIdOf(event) {
  return String(event.detail || "").split(/[ :]/)[0];
}

export function attachmentsOf(message) {
  return (message.media || []).map((item) => {
    const url = `/v1/media/${seg(item.id)}`;
    const kind = (item.mime || "").split("/")[0];
    const ready = !item.state || SHOWABLE.includes(item.state);
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
    if (kind === "audio") {
      return h("div.media.voice", {}, h("audio", { controls: true, preload: "metadata", src: ready ? url : null, "aria-label": `Voice note ${label}` }),
        item.duration_ms ? h("span.duration", {}, `${Math.round(item.duration_ms / 1000)} s`) : null);
    }
    return h("div.media", {}, h("a.media.file", { href: ready ? url : null, download: item.name || "file", "aria-label": `Download ${label}`, dataset: { state: item.state || "" } },
      h("span.icon", { "aria-hidden": "true" }, "📎"),
      h("span.name", {}, item.name || "file"),
      h("span.size", {}, ` ${bytes(item.size || 0)} · ${item.mime || "file"}`)), waiting);
  });
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
  const button = h("button.icon", { type: "button", "aria-label": "Record a voice note", "aria-pressed": "false", title: "Voice note" }, "🎤");
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
        for (const track of stream.getTracks()) track.stop();
        recorder = null;
        button.setAttribute("aria-pressed", "false");
        button.textContent = "🎤";
        const base = type.split(";")[0];
        const blob = new Blob(chunks, { type: base });
        await sendFiles([new File([blob], `voice.${base === "audio/ogg" ? "ogg" : "webm"}`, { type: base })], send);
      };
      recorder.start();
      stopTimer = setTimeout(() => recorder && recorder.stop(), MAX_RECORDING_MS);
      button.setAttribute("aria-pressed", "true");
      button.textContent = "⏹";
    } catch (error) { showError(error.message || error); }
  });
  return button;
}
