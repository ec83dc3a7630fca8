// What you can do to one message: reply, react, edit or unsend your own, delete
// for yourself. Each control shows only when the node has its endpoint.

import { accepts, api, has, patch, post } from "./api.js";
import { h, showError } from "./dom.js";
import { refreshConversation, state } from "./state.js";

export const REPLY_FIELD = "reply_to";
/** The author may edit a message for this long (the node enforces it too). */
export const EDIT_WINDOW_MS = 15 * 60 * 1000;
const QUICK_REACTIONS = ["👍", "❤️", "😂", "😮", "😢", "🙏"];

/** The reactions under a bubble: emoji, count, and whether one is yours. */
export function reactionsOf(message, refresh) {
  const reactions = message.reactions || {};
  const me = state.node && state.node.peer_id;
  const chips = Object.entries(reactions).filter(([, who]) => who.length).map(([emoji, who]) =>
    h("button.reaction", {
      type: "button", "aria-pressed": who.includes(me) ? "true" : "false",
      "aria-label": `${emoji} ${who.length}`, title: `${who.length}`,
      onclick: () => react(message, who.includes(me) ? "" : emoji, refresh),
    }, emoji, who.length > 1 ? ` ${who.length}` : ""));
  return chips.length ? h("div.reactions", {}, chips) : null;
}

/** Your reaction ("" takes it back); no event tells this page of its own, so it redraws. */
async function react(message, emoji, refresh) {
  try { await post(`/v1/messages/${message.id}/reactions`, { emoji }); await refresh(message.id); } catch (error) { showError(error); }
}

/** The "⋯" menu beside a bubble (a button, so it works with the keyboard). */
export function messageActions(message, { reply, refresh }) {
  const mine = message.direction === "out";
  const items = [];
  if (accepts("SendMessage", REPLY_FIELD)) items.push(["Reply", () => reply(message)]);
  if (has("POST", "/v1/messages/{message_id}/reactions")) {
    for (const emoji of QUICK_REACTIONS) items.push([emoji, () => react(message, emoji, refresh), `React ${emoji}`]);
  }
  const editable = mine && message.text && Date.now() - message.sent_at_ms < EDIT_WINDOW_MS;
  if (editable && has("PATCH", "/v1/messages/{message_id}")) items.push(["Edit", () => edit(message, refresh)]);
  if (has("DELETE", "/v1/messages/{message_id}")) {
    if (mine) items.push(["Unsend", () => unsend(message, refresh, "")]);
    items.push(["Delete for me", () => unsend(message, refresh, "?for=me")]);
  }
  if (!items.length) return null;
  const menu = h("div.menu", { role: "menu", hidden: true });
  for (const [label, act, aria] of items) {
    menu.append(h("button", {
      type: "button", role: "menuitem", "aria-label": aria || label,
      class: label.length <= 2 ? "emoji" : null,
      onclick: () => { menu.hidden = true; act(); },
    }, label));
  }
  const opener = h("button.more", {
    type: "button", "aria-haspopup": "menu", "aria-label": "Message actions",
    onclick: () => {
      for (const other of document.querySelectorAll(".menu")) if (other !== menu) other.hidden = true;
      menu.hidden = !menu.hidden;
      if (!menu.hidden) menu.querySelector("button").focus();
    },
  }, "⋯");
  menu.addEventListener("keydown", (e) => {
    if (e.key === "Escape") { menu.hidden = true; opener.focus(); }
  });
  return h("div.actions", {}, opener, menu);
}

async function edit(message, refresh) {
  const text = window.prompt("Edit message", message.text);
  if (text === null || !text.trim() || text === message.text) return;
  try { await patch(`/v1/messages/${message.id}`, { text: text.trim() }); await afterChange(message, refresh); } catch (error) { showError(error); }
}

async function unsend(message, refresh, query) {
  const question = query ? "Delete this message from this device?" : "Unsend this message for everyone?";
  if (!window.confirm(question)) return;
  try { await api("DELETE", `/v1/messages/${message.id}${query}`); await afterChange(message, refresh); } catch (error) { showError(error); }
}

/** No event tells this page of its own changes: redraw the bubble and the inbox preview. */
async function afterChange(message, refresh) {
  await refresh(message.id);
  await refreshConversation(message.conversation_id);
}

// A click anywhere else closes an open menu.
document.addEventListener("click", (event) => {
  if (event.target.closest && event.target.closest(".actions")) return;
  for (const menu of document.querySelectorAll(".menu")) menu.hidden = true;
});
