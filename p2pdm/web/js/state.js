// What every view shares: this node, the contacts, the conversations, and a tiny
// publish/subscribe so views redraw when an event changes something.

import { get } from "./api.js";

export const state = {
  node: null,        // GET /v1/node
  settings: {},      // GET /v1/settings
  contacts: new Map(), // peer id -> contact
  conversations: [],   // GET /v1/conversations, newest first
  previews: new Map(), // conversation id -> latest message
  typing: new Map(),   // conversation id -> until (ms)
  online: new Set(),   // peers with an open connection (from events)
};

/** Unsent composer text per conversation (keyed by draftKey), kept while the
 * page is open and never stored: a message's words stay off the disk until sent. */
export const drafts = new Map();
/** A conversation's key in `drafts`: its group's id, or the contact's PeerID. */
export const draftKey = (conversation) => (conversation.group ? conversation.group.id : conversation.peer);

const listeners = new Set();
export function subscribe(callback) { listeners.add(callback); return () => listeners.delete(callback); }
export function changed(what) { for (const callback of listeners) callback(what); }

export async function loadNode() {
  state.node = await get("/v1/node");
  state.settings = await get("/v1/settings");
}

export async function loadContacts() {
  const { contacts } = await get("/v1/contacts");
  state.contacts = new Map(contacts.map((c) => [c.peer_id, c]));
  changed("contacts");
}

export async function loadConversations() {
  const { conversations } = await get("/v1/conversations");
  state.conversations = conversations;
  await Promise.all(conversations.slice(0, 100).map(loadPreview));
  changed("conversations");
}

/** After an event about one conversation: the list (one request) and that one's preview. */
export async function refreshConversation(id) {
  const { conversations } = await get("/v1/conversations");
  state.conversations = conversations;
  const conversation = conversations.find((c) => c.id === id);
  if (conversation) await loadPreview(conversation);
  changed("conversations");
}

export async function loadPreview(conversation) {
  try {
    const page = await get(`/v1/conversations/${conversation.id}/messages?limit=1`);
    if (page.messages[0]) state.previews.set(conversation.id, page.messages[0]);
  } catch (_) { /* shown without a preview */ }
}

/** A person's name as this node knows it; the short fingerprint otherwise. */
export function nameOf(peer, fallbackName) {
  const contact = state.contacts.get(peer);
  if (contact) return contact.name;
  if (fallbackName) return fallbackName;
  return `…${String(peer).slice(-8)}`;
}

export function conversationById(id) {
  return state.conversations.find((c) => c.id === id) || null;
}

/** The one-line preview of a message, for the inbox and notifications. */
export function previewText(message) {
  if (!message) return "";
  if (message.unsent) return "Message unsent";
  if (message.notice) return `${message.direction === "out" ? "You" : nameOf(message.peer)} ${message.notice}`;
  if (message.unsupported) return "Unsupported message";
  if (message.location) return `📍 ${message.location.label || "Location"}`;
  if (message.media && message.media.length) {
    const item = message.media[0];
    const kind = (item.mime || "").split("/")[0];
    const icon = { image: "📷 Photo", video: "🎬 Video", audio: "🎤 Voice note" }[kind] || `📎 ${item.name}`;
    return message.text ? `${icon}: ${message.text}` : icon;
  }
  return message.text || "";
}
