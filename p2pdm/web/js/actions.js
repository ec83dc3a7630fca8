// What you can do to one message: reply, react, edit or unsend your own, delete
// for yourself. Each control shows only when the node has its endpoint.

import { accepts, api, has, patch, post } from "./api.js";
import { announce, h, showError } from "./dom.js";
import { groups } from "./groups.js";
import { isHere } from "./media.js";
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
    items.push(["＋", () => {
      const emoji = window.prompt("React with an emoji");
      if (emoji && emoji.trim()) react(message, emoji.trim(), refresh); // the node says if it is none
    }, "React with another emoji"]);
  }
  if (forwardable(message) && has("POST", "/v1/messages/{message_id}/forward")) {
    items.push(["Forward", () => forward(message, refresh)]);
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
      if (menu.hidden) return;
      // Above the button, unless that runs past the top of the conversation.
      menu.classList.remove("below");
      const scroller = menu.closest(".scroller");
      if (scroller && menu.getBoundingClientRect().top < scroller.getBoundingClientRect().top) menu.classList.add("below");
      menu.querySelector("button").focus();
    },
  }, "⋯");
  menu.addEventListener("keydown", (e) => {
    if (e.key === "Escape") { menu.hidden = true; opener.focus(); }
  });
  return h("div.actions", {}, opener, menu);
}

/** A text, files here whole, or a place: what the node can send a copy of. */
function forwardable(message) {
  if (message.unsent || message.notice || message.unsupported) return false;
  if (message.media && message.media.length) return message.media.every(isHere);
  return Boolean(message.text || message.location);
}

/** Whom a message can be forwarded to: contacts (not blocked) and active groups, by name. */
function forwardTargets() {
  const people = [...state.contacts.values()].filter((c) => !c.blocked).map((c) => ({ to: c.peer_id, name: c.name, group: false }));
  const joined = [...groups.values()].filter((g) => g.state === "active").map((g) => ({ to: g.id, name: g.name, group: true }));
  return [...people, ...joined].sort((a, b) => a.name.localeCompare(b.name));
}

/** "Forward to…": a dialog with a Send button per chat (each turns into "Sent"). */
function forward(message, refresh) {
  const rows = h("ul.forward-list", { id: "forward-list" });
  const filter = h("input", {
    type: "search", placeholder: "Search", "aria-label": "Search chats", autocomplete: "off",
    oninput: () => draw(filter.value.trim().toLowerCase()),
  });
  const dialog = h("dialog.forward", { "aria-label": "Forward to" },
    h("h2", {}, "Forward to…"), filter, rows,
    h("div.row", {}, h("button", { type: "button", onclick: () => dialog.close() }, "Done")));
  const draw = (words) => {
    const targets = forwardTargets().filter((t) => !words || t.name.toLowerCase().includes(words));
    rows.replaceChildren(...(targets.length ? targets.map((target) => h("li", {},
      h("span.name", {}, target.name, target.group ? h("span.sub", {}, " · group") : null),
      h("button.primary", {
        type: "button", "aria-label": `Send to ${target.name}`,
        onclick: async (e) => {
          const button = e.currentTarget;
          button.disabled = true;
          try {
            const copy = await post(`/v1/messages/${message.id}/forward`, { to: target.to });
            button.textContent = "Sent";
            announce(`Forwarded to ${target.name}`);
            // No event tells this page of its own message: the list's preview, and
            // the bubble if that chat is the one open.
            await refreshConversation(copy.conversation_id);
            await refresh(copy.id);
          } catch (error) { button.disabled = false; showError(error); }
        },
      }, "Send"))) : [h("li.empty", {}, "No contact or group by that name.")]));
  };
  draw("");
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  filter.focus();
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
