// Photos, videos, voice notes, files and locations: shown inline (thumbnail
// first), sent by picking, dropping, pasting or recording. The node serves
// media from /v1/media (same origin, as attachments with nosniff); nothing here
// ever inserts a peer's file as markup.

import { accepts, has, post, seg } from "./api.js";
import { bytes, h, showError } from "./dom.js";

const MAP_URL = "https://www.openstreetmap.org/";
/** Longest voice note recorded from the microphone. */
const MAX_RECORDING_MS = 5 * 60 * 1000;

export function attachmentsOf(message) {
  return (message.media || []).map((item) => {
    const url = `/v1/media/${seg(item.id)}`;
    const kind = (item.mime || "").split("/")[0];
    const ready = !item.state || item.state === "ready" || item.state === "complete";
    const label = `${item.name || "file"}, ${bytes(item.size || 0)}`;
    if (kind === "image") {
      // The thumbnail the sender made shows at once; the full image once fetched.
      const img = h("img.photo", {
        src: `${url}/thumbnail`, alt: item.name || "photo", loading: "lazy",
        width: item.width || null, height: item.height || null,
      });
      if (ready) {
        const full = new Image();
        full.onload = () => { img.src = full.src; };
        full.src = url;
      }
      return h("a.media.image", { href: url, target: "_blank", rel: "noopener", "aria-label": `Open photo ${label}` }, img);
    }
    if (kind === "video") {
      return h("video.media", { controls: true, preload: "none", poster: `${url}/thumbnail`, src: ready ? url : null, "aria-label": `Video ${label}` });
    }
    if (kind === "audio") {
      return h("div.media.voice", {}, h("audio", { controls: true, preload: "metadata", src: ready ? url : null, "aria-label": `Voice note ${label}` }),
        item.duration_ms ? h("span.duration", {}, `${Math.round(item.duration_ms / 1000)} s`) : null);
    }
    return h("a.media.file", { href: url, download: item.name || "file", "aria-label": `Download ${label}` },
      h("span.icon", { "aria-hidden": "true" }, "📎"),
      h("span.name", {}, item.name || "file"),
      h("span.size", {}, ` ${bytes(item.size || 0)} · ${item.mime || "file"}${ready ? "" : ` · ${item.state}`}`));
  });
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
