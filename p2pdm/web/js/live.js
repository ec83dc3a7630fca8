// Live locations in the open conversation: a card for each running share
// ("live until HH:MM", the place and a map link), with a Stop button on your
// own. Shares live in the node's memory only; location.live and
// location.stopped events say when to look again.

import { del, get, has, seg } from "./api.js";
import { clear, clock, h, showError } from "./dom.js";
import { nameOf } from "./state.js";

const MAP_URL = "https://www.openstreetmap.org/";
const PATH = "/v1/conversations/{conversation}/live-location";

let shown = null; // { id, el, timer }

/** The area that holds the cards of conversation `id`; fill it with loadLive(). */
export function liveArea(id) {
  const el = h("div.live-locations", { id: "live-locations", "aria-live": "polite" });
  clearTimeout(shown && shown.timer);
  shown = { id, el, timer: null };
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
  clear(shown.el, ...shares.map(card));
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

async function stop() {
  if (!shown) return;
  try {
    await del(`/v1/conversations/${seg(shown.id)}/live-location`);
    await loadLive();
  } catch (error) { showError(error); }
}
