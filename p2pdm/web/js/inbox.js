// The inbox (conversations newest first, unread counts, previews, muted and
// archived), the search box, and the Requests folder.

import { del, get, has, post, seg } from "./api.js";
import { clear, h, showError, when } from "./dom.js";
import { draftKey, drafts, loadContacts, loadConversations, nameOf, previewText, state, subscribe } from "./state.js";
import { authorName, groupInvitations, groupOf, invitationItem, membersLine, quietGroups } from "./groups.js";

let sidebarEl = null;
let selected = null;
let query = "";
let showArchived = false;
/** How the list marks a conversation's settings. */
const FLAG_ICONS = { pinned: "📌", muted: "🔕", archived: "🗄" };
let results = null; // search results (messages), or null

subscribe((what) => {
  if (sidebarEl && (what === "conversations" || what === "contacts" || what === "online" || what === "groups" || what === "drafts")) drawList();
});

export function renderInbox(sidebar, current) {
  selected = current;
  if (sidebarEl !== sidebar || !sidebar.firstChild) {
    sidebarEl = sidebar;
    clear(sidebar,
      h("form.search", { role: "search", onsubmit: (e) => { e.preventDefault(); search(); } },
        h("label.sr-only", { for: "search-box" }, "Search messages"),
        h("input", {
          id: "search-box", type: "search", placeholder: "Search", autocomplete: "off",
          oninput: (e) => { query = e.target.value; if (!query) { results = null; } drawList(); },
        })),
      h("ul.conversations", { id: "conversation-list", "aria-label": "Conversations" }),
      h("label.archived-toggle", {},
        h("input", { type: "checkbox", onchange: (e) => { showArchived = e.target.checked; drawList(); } }),
        " Show archived"));
  }
  drawList();
}

async function search() {
  if (!query.trim()) { results = null; drawList(); return; }
  if (!has("GET", "/v1/search")) { drawList(); return; } // names only, below
  try {
    const answer = await get(`/v1/search?q=${seg(query.trim())}&limit=50`);
    results = answer.messages || answer.results || [];
  } catch (error) { showError(error); results = []; }
  drawList();
}

function drawList() {
  const list = document.getElementById("conversation-list");
  if (!list) return;
  if (results) {
    clear(list, results.length ? results.map(resultItem) : h("li.empty", {}, "No messages found."));
    return;
  }
  const needle = query.trim().toLowerCase();
  // Pinned first, in the node's order (the latest pinned on top); then the
  // others by their last message.
  const order = new Map(state.conversations.map((c, i) => [c.id, i]));
  const all = [...state.conversations, ...quietGroups(state.conversations)]
    .sort((a, b) => (Number(Boolean(b.pinned)) - Number(Boolean(a.pinned)))
      || (a.pinned && b.pinned ? order.get(a.id) - order.get(b.id) : b.last_message_at_ms - a.last_message_at_ms));
  const shown = all.filter((c) => !c.request
    && (showArchived || !c.archived)
    && (!needle || titleOf(c).toLowerCase().includes(needle)
        || previewText(state.previews.get(c.id)).toLowerCase().includes(needle)));
  clear(list, shown.length ? shown.map(item) : h("li.empty", {}, needle ? "No match: press Enter to search messages." : "No conversations yet."));
  redrawWhenTypingLapses();
}

let lapseTimer = null;
/** Draw the list again when the next "typing…" preview lapses, so none sticks. */
function redrawWhenTypingLapses() {
  clearTimeout(lapseTimer);
  const now = Date.now();
  const next = Math.min(...[...state.typing.values()].filter((until) => until > now));
  if (Number.isFinite(next)) lapseTimer = setTimeout(drawList, next - now + 50);
}

/** A conversation's title: the group's name, or the contact's. */
export function titleOf(conversation) {
  return conversation.group ? conversation.group.name : nameOf(conversation.peer, conversation.name);
}

function item(conversation) {
  const preview = state.previews.get(conversation.id);
  const name = titleOf(conversation);
  const group = groupOf(conversation);
  const flags = [conversation.pinned ? "pinned" : null, conversation.muted ? "muted" : null, conversation.archived ? "archived" : null].filter(Boolean);
  const typing = (state.typing.get(conversation.id) || 0) > Date.now();
  // Not the open one's: its draft is in its composer.
  const draft = conversation.id === selected ? null : drafts.get(draftKey(conversation));
  return h("li", {},
    h("a.conversation", {
      href: `#/c/${conversation.id}`,
      "aria-current": conversation.id === selected ? "page" : null,
      dataset: conversation.group
        ? { id: conversation.id, peer: conversation.peer, group: conversation.group.id }
        : { id: conversation.id, peer: conversation.peer },
    },
      group && group.photo
        ? h("img.avatar.group-photo", { src: group.photo.url, alt: "", width: 40, height: 40, "aria-hidden": "true" })
        : h("span.avatar", { "aria-hidden": "true" }, initials(name)),
      // The name gives way (…) to the member count and the online dot, never the reverse.
      h("span.who.titled", {}, h("span.name", {}, name),
        group ? h("span.members", {}, ` · ${membersLine(group)}`) : null,
        !conversation.group && state.online.has(conversation.peer) ? h("span.online", { title: "connected" }, " ●") : null),
      h("span.when", {}, when(conversation.last_message_at_ms)),
      h("span.preview", {}, typing ? "typing…" : draft ? [h("em.draft", {}, "Draft: "), draft] : previewLine(preview, group)),
      h("span.flags", {},
        flags.map((f) => h(`span.flag.${f}`, { title: f }, h("span", { "aria-hidden": "true" }, FLAG_ICONS[f]), h("span.sr-only", {}, `, ${f}`))),
        conversation.unread ? h("span.unread", {}, String(conversation.unread), h("span.sr-only", {}, " unread")) : null)));
}

function previewLine(message, group) {
  if (!message) return "";
  const text = previewText(message);
  // A notice already names who set it ("You set disappearing messages…").
  if (message.direction === "out") return message.notice ? text : `You: ${text}`;
  return group && !message.notice ? `${authorName(group, message.peer)}: ${text}` : text;
}

/** A search hit: {message_id, conversation_id, peer, direction, sent_at_ms, snippet}. */
function resultItem(hit) {
  return h("li", {}, h("a.conversation.result", { href: `#/c/${hit.conversation_id}`, dataset: { id: hit.message_id } },
    h("span.who", {}, hit.direction === "out" ? `You → ${nameOf(hit.peer)}` : nameOf(hit.peer)),
    h("span.when", {}, when(hit.sent_at_ms)),
    h("span.preview", {}, hit.snippet !== undefined ? marked(hit.snippet) : previewText(hit))));
}

/** The node marks matches in a snippet with [ ]: shown as <mark>, as text. */
function marked(snippet) {
  return String(snippet).split(/(\[[^\]]*\])/).map((part) =>
    part.startsWith("[") && part.endsWith("]") && part.length > 2 ? h("mark", {}, part.slice(1, -1)) : part);
}

export function initials(name) {
  const letters = String(name).replace(/^…/, "").trim().split(/\s+/).map((w) => Array.from(w)[0] || "");
  return (letters[0] || "?") + (letters[1] || "");
}

// --- requests -------------------------------------------------------------------

export async function renderRequests(main) {
  const list = h("ul.requests", { "aria-label": "Message requests" });
  clear(main, h("section.page", {},
    h("h1", {}, "Message requests"),
    h("p.hint", {}, "People who are not your contacts. They don't know whether you've seen their message until you accept."),
    list));
  let requests = [];
  if (has("GET", "/v1/requests")) {
    try { requests = (await get("/v1/requests")).requests || []; } catch (error) { showError(error); }
  } else {
    requests = state.conversations.filter((c) => c.request && !c.group).map((c) => ({
      peer: c.peer, preview: previewText(state.previews.get(c.id)), count: c.unread, at_ms: c.last_message_at_ms, conversation_id: c.id,
    }));
  }
  const invitations = groupInvitations();
  for (const group of invitations) list.append(invitationItem(group, () => renderRequests(document.getElementById("main"))));
  if (!requests.length && !invitations.length) list.append(h("li.empty", {}, "No message requests."));
  for (const request of requests) list.append(requestItem(request));
  await blockedStrangers(main);
}

/** Strangers you blocked (contacts are unblocked on the Contacts page): each
 * with Unblock, which is nowhere else in the app for someone not a contact. */
async function blockedStrangers(main) {
  if (!has("GET", "/v1/blocked") || !has("DELETE", "/v1/blocked/{peer}")) return;
  let blocked = [];
  try { blocked = (await get("/v1/blocked")).blocked || []; } catch (error) { showError(error); return; }
  const strangers = blocked.filter((b) => !state.contacts.has(b.peer_id));
  if (!strangers.length) return;
  const page = main.querySelector("section.page");
  if (!page) return;
  page.append(h("h2", {}, "Blocked"),
    h("ul.requests.blocked", { "aria-label": "Blocked strangers" }, strangers.map((b) => h("li.request", { dataset: { peer: b.peer_id } },
      h("div.who", {}, `fingerprint …${b.fingerprint}`),
      h("div.actions", {}, h("button", { type: "button", onclick: async () => {
        try { await del(`/v1/blocked/${seg(b.peer_id)}`); renderRequests(document.getElementById("main")); } catch (error) { showError(error); }
      } }, "Unblock"))))));
}

/** {peer_id, name (the one they give; unverified), fingerprint, conversation_id, count, preview (null: not text), first_at_ms, last_at_ms} */
function requestItem(request) {
  const peer = request.peer || request.peer_id;
  const act = async (action) => {
    try {
      if (has("POST", `/v1/requests/{peer}/${action}`)) await post(`/v1/requests/${seg(peer)}/${action}`);
      else if (action === "accept") await post("/v1/contacts", { peer_id: peer });
      await Promise.all([loadContacts(), loadConversations()]);
      renderRequests(document.getElementById("main"));
    } catch (error) { showError(error); }
  };
  const preview = request.preview === null ? "(not a text message)" : request.preview || "";
  const at = request.last_at_ms || request.at_ms;
  return h("li.request", { dataset: { peer } },
    h("div.who", {}, request.name ? `${request.name} · ` : "",
      request.fingerprint ? `fingerprint …${request.fingerprint}` : `…${peer.slice(-8)}`,
      request.count > 1 ? h("span.tag", {}, `${request.count} messages`) : null,
      h("span.when", {}, at ? ` ${when(at)}` : "")),
    h("p.preview", {}, typeof preview === "string" ? preview : previewText(preview)),
    h("div.actions", {},
      h("button.primary", { type: "button", onclick: () => act("accept") }, "Accept"),
      has("POST", "/v1/requests/{peer}/decline") ? h("button", { type: "button", onclick: () => act("decline") }, "Decline") : null,
      has("POST", "/v1/requests/{peer}/block") ? h("button.danger", { type: "button", onclick: () => act("block") }, "Block") : null,
      request.conversation_id ? h("a.button", { href: `#/c/${request.conversation_id}` }, "Read") : null));
}
