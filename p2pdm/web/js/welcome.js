// The main pane when no conversation is open; for a newcomer with no contacts,
// the offer to try p2pdm with a local demo contact.

import { del, get, has, post } from "./api.js";
import { clear, h, showError } from "./dom.js";
import { loadContacts, loadConversations, state } from "./state.js";
import { notificationOffer } from "./notify.js";

export async function renderWelcome(main) {
  const active = state.conversations.filter((c) => !c.request && !c.archived);
  const box = active.length ? returning(active) : h("section.page.welcome", {},
    h("h1", {}, "Welcome to p2pdm"),
    h("p", {}, "Messages go straight from this computer to your friends' — end-to-end encrypted, no server in between."));
  clear(main, box);
  let demo = null;
  if (has("GET", "/v1/demo")) {
    try { demo = await get("/v1/demo"); } catch (error) { showError(error); }
  }
  if (demo && demo.running) {
    box.append(h("div.card", {},
      h("p", {}, "A local demo bot is running on this computer. It answers like a friend would, so you can see every delivery state."),
      h("a.button.primary", { href: `#/c/${demo.peer_id}` }, "Chat with the demo bot"), " ",
      h("button", { type: "button", id: "demo-remove", onclick: removeDemo }, "Remove the demo bot")));
  } else if (demo && demo.offered && state.contacts.size === 0) {
    box.append(h("div.card", {},
      h("h2", {}, "Try p2pdm with a demo contact"),
      h("p", {}, "Start a local demo bot on this computer (it is not a person, and you can remove it any time). Send it a message and watch it go from queued to sent, delivered and read, then get an answer."),
      h("button.primary", { type: "button", id: "demo-start", onclick: startDemo }, "Try p2pdm with a demo contact")));
  }
  if (!active.length) {
    box.append(h("div.card", {},
      h("h2", {}, "Chat with a friend"),
      h("p", {}, "Share your invite, or paste theirs."),
      h("a.button", { href: "#/new" }, "New chat")));
  }
  const offer = notificationOffer(); // until this browser has chosen
  if (offer) box.append(offer);
}

/** Someone with conversations: what is waiting, and where to go. */
function returning(active) {
  const unread = active.filter((c) => c.unread > 0);
  const total = unread.reduce((sum, c) => sum + c.unread, 0);
  return h("section.page.welcome", {},
    h("h1", {}, "Pick a conversation"),
    h("p", {}, total
      ? `${total} unread message${total === 1 ? "" : "s"} in ${unread.length} conversation${unread.length === 1 ? "" : "s"}. Choose one from the list, or start a new chat.`
      : "Choose a conversation from the list, or start a new chat."),
    h("p", {},
      h("a.button", { href: "#/new" }, "New chat"), " ",
      h("a.button", { href: "#/newgroup" }, "New group")));
}

async function startDemo(event) {
  event.currentTarget.disabled = true;
  event.currentTarget.textContent = "Starting the demo bot…";
  try {
    const demo = await post("/v1/demo");
    await loadContacts();
    await loadConversations();
    location.hash = `#/c/${demo.peer_id}`;
  } catch (error) { showError(error); renderWelcome(document.getElementById("main")); }
}

async function removeDemo() {
  if (!window.confirm("Remove the demo bot and its conversation?")) return;
  try { await del("/v1/demo"); await loadContacts(); await loadConversations(); renderWelcome(document.getElementById("main")); } catch (error) { showError(error); }
}
