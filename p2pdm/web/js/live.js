// Live locations in the open conversation: a card for each running share
// ("live until HH:MM", the place and a map link), with a Stop button on your
// own, and a line when someone's share stopped. Shares live in the node's
// memory only; location.live and location.stopped events say when to look
// again.
//
// Sharing your own: the composer's 📡 button offers 15 minutes, 1 hour or
// 8 hours; the page then follows the browser's position (watchPosition) and
// sends it to the node, at most one update every LIVE_EVERY_MS (the node
// takes one per contact every 5 s; the latest position waits for its turn),
// until the share ends or is stopped. One share from this page at a time.

import { del, get, has, post, seg } from "./api.js";
import { announce, clear, clock, h, showError } from "./dom.js";
import { nameOf } from "./state.js";

const MAP_URL = "https://www.openstreetmap.org/";
const PATH = "/v1/conversations/{conversation}/live-location";
/** Updates go no faster than this: the node's interval (5 s) and a margin. */
const LIVE_EVERY_MS = 5500;
/** The periods a share may run (the node's LIVE_LOCATION_PERIODS_S). */
const PERIODS = [[900, "15 min"], [3600, "1 hour"], [28800, "8 hours"]];
/** Said when this page's share ends before its time: stopped on another page or
 * the command line, or by a restart of the node (which stops every share). */
const CUT_SHORT = "Your live location stopped (stopped elsewhere, or the node restarted): share it again to go on.";

let shown = null; // { id, el, timer, others: Set of peers seen sharing }
/** This page's own running share: { conversation, watch, until, last, pending, timer }. */
let sharing = null;

/** The area that holds the cards of conversation `id`; fill it with loadLive(). */
export function liveArea(id) {
  const el = h("div.live-locations", { id: "live-locations", "aria-live": "polite" });
  clearTimeout(shown && shown.timer);
  shown = { id, el, timer: null, others: new Set() };
  return el;
}

/** Fetch and draw the running shares of the shown conversation. */
export async function loadLive() {
  if (!shown || !has("GET", PATH)) return;
  const current = shown;
  try {
    const found = await get(`/v1/conversations/${seg(current.id)}/live-location`);
    if (shown === current) draw(found.live_locations || []);
  } catch (error) {
    if (error.status !== 404) showError(error); // no conversation yet: nothing to show
  }
}

/** Events that change what the cards show. */
export function onLiveEvent(event, id, peer) {
  if (!shown || !event.type.startsWith("location.")) return false;
  if (event.conversation_id === id || event.peer === peer) loadLive();
  return true;
}

/** The conversation's id became known (opened by PeerID before its first message). */
export function liveConversation(id) {
  if (shown) shown.id = id;
}

function draw(shares) {
  clearTimeout(shown.timer);
  const others = new Set(shares.filter((s) => !s.mine).map((s) => s.peer));
  const gone = [...shown.others].filter((peer) => !others.has(peer));
  shown.others = others;
  const ended = [...shown.el.querySelectorAll(".live-ended")]
    .filter((el) => !others.has(el.dataset.peer));
  for (const peer of gone) {
    if (!ended.some((el) => el.dataset.peer === peer)) ended.push(endedLine(peer));
  }
  if (sharing && sharing.conversation === shown.id && !shares.some((s) => s.mine)) {
    // Stopped elsewhere (another page, the command line), by a restart of the
    // node (which stops every share), or ran out: say so unless it ran out.
    const cut = sharing.started && Date.now() < sharing.until;
    stopWatching();
    if (cut) showError(CUT_SHORT);
  }
  clear(shown.el, ...shares.map(card), ...ended);
  const next = Math.min(...shares.map((s) => s.until_ms));
  if (Number.isFinite(next)) {
    shown.timer = setTimeout(loadLive, Math.max(0, next - Date.now()) + 500); // it ends
  }
}

function card(share) {
  const lat = Number(share.lat).toFixed(5);
  const lon = Number(share.lon).toFixed(5);
  const href = `${MAP_URL}?mlat=${lat}&mlon=${lon}#map=16/${lat}/${lon}`;
  const who = share.mine ? "You are" : `${nameOf(share.peer)} is`;
  return h(`div.live-location${share.mine ? ".mine" : ""}`, {},
    h("span", { "aria-hidden": "true" }, "📍 "),
    h("strong", {}, `${who} sharing a live location`),
    h("span.coords", {}, ` ${lat}, ${lon}${share.accuracy_m ? ` ±${share.accuracy_m} m` : ""}`),
    h("span.until", {}, ` · live until ${clock(share.until_ms)}`),
    " ",
    h("a", { href, target: "_blank", rel: "noopener noreferrer" }, "Open map"),
    share.mine && has("DELETE", PATH)
      ? h("button.stop-live", { type: "button", onclick: stop }, "Stop")
      : null);
}

function endedLine(peer) {
  const line = h("div.live-location.live-ended", { dataset: { peer } },
    h("span", { "aria-hidden": "true" }, "📍 "),
    `${nameOf(peer)} stopped sharing a live location`);
  announce(line.textContent);
  return line;
}

async function stop() {
  if (!shown) return;
  if (sharing && sharing.conversation === shown.id) stopWatching();
  try {
    await del(`/v1/conversations/${seg(shown.id)}/live-location`);
    await loadLive();
  } catch (error) { showError(error); }
}

// --- sharing your own ------------------------------------------------------------

/** The composer's live-location button and its menu of periods (only if the
 * node and the browser can); `conversation()` gives the open conversation's id. */
export function liveShareControls(conversation) {
  if (!has("POST", PATH) || !navigator.geolocation) return [];
  const menu = h("div.live-menu", { id: "live-menu", hidden: true, role: "group", "aria-label": "Share your live location for" },
    h("span", {}, "Share live location for "),
    ...PERIODS.map(([seconds, label]) => h("button", {
      type: "button", dataset: { period: String(seconds) },
      onclick: () => { menu.hidden = true; start(conversation(), seconds); },
    }, label)),
    h("button", { type: "button", "aria-label": "Cancel", onclick: () => { menu.hidden = true; } }, "✕"));
  const button = h("button.icon", {
    type: "button", id: "live-share", "aria-label": "Share your live location", title: "Live location",
    onclick: () => { menu.hidden = !menu.hidden; },
  }, "📡");
  return [button, menu];
}

function start(conversation, seconds) {
  if (!conversation) return;
  stopWatching();
  const state = { conversation, watch: null, until: 0, last: 0, pending: null, timer: null, started: false, seconds };
  sharing = state;
  state.watch = navigator.geolocation.watchPosition(
    (position) => moved(state, position),
    (error) => refused(state, error),
    { enableHighAccuracy: true, maximumAge: 10000, timeout: 30000 });
}

function moved(state, position) {
  if (sharing !== state) return;
  state.pending = {
    lat: position.coords.latitude, lon: position.coords.longitude,
    accuracy_m: Math.min(1000000, Math.max(0, Math.round(position.coords.accuracy || 0))),
  };
  if (!state.timer) state.timer = setTimeout(() => flush(state), Math.max(0, state.last + LIVE_EVERY_MS - Date.now()));
}

async function flush(state) {
  state.timer = null;
  if (sharing !== state || !state.pending) return;
  const body = { ...state.pending };
  state.pending = null;
  state.last = Date.now();
  if (!state.started) body.duration_s = state.seconds;
  try {
    const path = `/v1/conversations/${seg(state.conversation)}/live-location`;
    const answer = await post(path, body);
    if (sharing !== state) {
      // Stopped (or refused) while the start was on its way: take it back,
      // unless a new share in this conversation replaced it.
      const replaced = sharing && sharing.conversation === state.conversation;
      if (body.duration_s && !replaced) await del(path).then(loadLive);
      return;
    }
    if (!state.started) {
      state.started = true;
      state.until = answer.live_location.until_ms;
      clearTimeout(state.end);
      state.end = setTimeout(() => { if (sharing === state) stopWatching(); }, Math.max(0, state.until - Date.now()));
      announce(`Sharing your live location until ${clock(state.until)}`);
    }
    if (shown && shown.id === state.conversation) await loadLive();
  } catch (error) {
    if (sharing === state) stopWatching();
    // A move the node no longer knows: it restarted, which stops every share
    // (what fed it positions was gone), and told the recipients so.
    const ended = state.started && !body.duration_s && error.status === 400;
    showError(ended ? CUT_SHORT : error);
    if (ended && shown && shown.id === state.conversation) loadLive();
  }
}

function refused(state, error) {
  if (sharing !== state) return;
  stopWatching();
  const why = {
    1: "This page may not know your location: allow location for it in the browser's site settings to share a live location.",
    2: "Your location is not available now (no GPS or network position): the live location was not shared.",
    3: "Finding your location took too long: the live location was not shared.",
  }[error.code] || `Your location is not available: ${error.message}`;
  showError(state.started ? `${why} Your share stops here.` : why);
  if (state.started) del(`/v1/conversations/${seg(state.conversation)}/live-location`).then(loadLive).catch(() => {});
}

function stopWatching() {
  if (!sharing) return;
  if (sharing.watch !== null) navigator.geolocation.clearWatch(sharing.watch);
  clearTimeout(sharing.timer);
  clearTimeout(sharing.end);
  sharing = null;
}
