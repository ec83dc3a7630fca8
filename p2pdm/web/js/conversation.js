// One conversation: bubbles with time and delivery state, day separators,
// scrolling back through history, live updates, and the composer.

import { accepts, del, get, has, patch, post, seg } from "./api.js";
import { announce, clear, clock, day, dayKey, h, showError } from "./dom.js";
import { messageActions, reactionsOf, REPLY_FIELD } from "./actions.js";
import { liveArea, liveConversation, liveShareControls, loadLive, onLiveEvent } from "./live.js";
import { attachmentsOf, composerMediaControls, locationOf, mediaIdOf, sendFiles } from "./media.js";
import {
  authorName, deliveryWords, groupClosed, groupConversation, groupInfoButton, groupInfoPanel, groupOf, groups, loadGroups, membersLine,
} from "./groups.js";
import {
  changed, conversationById, drafts, loadConversations, nameOf, previewText, refreshConversation, state,
} from "./state.js";

const PAGE = 50;
/** Send a typing signal at most this often while typing. */
const TYPING_EVERY_MS = 3000;
/** A peer's typing signal lapses after this long. */
const TYPING_SHOWN_MS = 6000;
/** Disappearing-message timers the node offers (seconds; 0 = off). */
const TIMERS = [[0, "Off"], [300, "5 minutes"], [3600, "1 hour"], [86400, "1 day"], [604800, "7 days"]];

let view = null; // the open conversation

/** Leaving the conversation for another page: nothing more is marked read
 * (no read receipt for a message the person never saw). */
export function closeConversation() {
  view = null;
  clearTimeout(readTimer);
}

export async function openConversation(main, id) {
  // A PeerID opens the one-to-one conversation with that peer, never a group
  // (a group's conversation also names a member in its `peer`).
  const find = () => conversationById(id) || state.conversations.find((c) => c.peer === id && !c.group) || null;
  let conversation = find();
  if (!conversation) {
    await loadConversations().catch(() => {});
    conversation = find();
  }
  if (conversation) id = conversation.id; // a contact's PeerID opens its conversation
  if ((!conversation || conversation.group) && !groups.has(conversation ? conversation.group.id : id)) {
    await loadGroups().catch(() => {});
  }
  // A group with no message yet has no conversation in the list: it is the group's.
  if (!conversation && groups.has(id)) conversation = groupConversation(groups.get(id));
  const group = groupOf(conversation);
  // A group's messages go "to" the group's id; a one-to-one conversation's to the peer.
  const peer = group ? group.id : conversation ? conversation.peer : id;
  view = {
    id, peer, conversation, group,
    messages: new Map(), order: [], next: undefined, loading: false,
    replyTo: null, lastTyping: 0, main,
    pinned: true, lastTop: 0, // kept at the newest message until the reader scrolls up
  };
  const title = group ? group.name : nameOf(peer, conversation && conversation.name);
  const list = h("ol.messages", { id: "messages", "aria-label": `Messages with ${title}` });
  const scroller = h("div.scroller", { id: "scroller", tabindex: "0", onscroll: onScroll }, h("div.older", { id: "older" }), list);
  // A photo or preview that loads after its bubble was drawn, or a banner that
  // takes room above, must not leave a reader at the newest message short of it.
  const keepPinned = () => { if (view && view.pinned) scroller.scrollTop = scroller.scrollHeight; };
  scroller.addEventListener("load", keepPinned, true); // load does not bubble: capture it
  new ResizeObserver(keepPinned).observe(scroller);
  clear(main,
    h("section.chat", { "aria-label": `Conversation with ${title}`, ondragover: dragOver, ondrop: drop },
      header(title, conversation),
      groupInfoPanel(group),
      h("div.notice", { id: "timer-notice", hidden: true }),
      liveArea(id),
      scroller,
      h("div.typing", { id: "typing", "aria-live": "polite" }),
      group && group.state !== "active" ? groupClosed(group) : composer()));
  const opened = view;
  await loadOlder();
  if (view !== opened) return; // another page was opened meanwhile
  loadLive();
  scroller.scrollTop = scroller.scrollHeight;
  showTimer();
  markRead();
  const input = document.getElementById("composer-text");
  if (input) input.focus();
}

function header(title, conversation) {
  const contact = state.contacts.get(view.peer);
  const controls = [];
  if (has("PATCH", "/v1/conversations/{conversation}")) {
    controls.push(
      accepts("ConversationPatch", "pinned") ? toggle("Pin", "pinned", conversation, "pin") : null,
      toggle("Mute", "muted", conversation, "mute"),
      toggle("Archive", "archived", conversation, "archive"),
      h("label.timer", {}, "Disappearing ",
        h("select", { id: "timer-select", onchange: (e) => setTimer(Number(e.target.value)) },
          TIMERS.map(([s, label]) => h("option", { value: String(s), selected: Number((view.group ? view.group.timer_s : conversation && conversation.timer_s) || 0) === s }, label)))));
  }
  if (has("DELETE", "/v1/conversations/{conversation}")) {
    controls.push(h("button.danger", { type: "button", id: "delete-conversation", onclick: deleteConversation }, "Delete chat"));
  }
  return h("header.conv-head", {},
    h("a.back", { href: "#/", "aria-label": "Back to chats" }, "←"),
    h("div.title", {},
      h("h1", {}, title),
      h("span.sub", {}, view.group ? membersLine(view.group)
        : contact ? `safety number …${contact.fingerprint}` : `not a contact · …${view.peer.slice(-8)}`)),
    groupInfoButton(view.group), // in sight on a phone too: a group's members and admins
    controls.length ? moreButton() : null,
    h("div.conv-controls", { id: "conv-controls" }, controls));
}

/** On a phone the header's controls fold behind "⋯", so the messages keep the screen. */
function moreButton() {
  return h("button.icon.conv-more", {
    type: "button", "aria-label": "Chat settings", "aria-expanded": "false", "aria-controls": "conv-controls",
    onclick: (e) => {
      const button = e.currentTarget;
      const open = button.closest(".conv-head").toggleAttribute("data-open");
      button.setAttribute("aria-expanded", open ? "true" : "false");
    },
  }, "⋯");
}

function toggle(label, field, conversation, id = null) {
  const on = Boolean(conversation && conversation[field]);
  return h("button", {
    type: "button", "aria-pressed": on ? "true" : "false", id: id ? `${id}-toggle` : null,
    onclick: async (e) => {
      const button = e.currentTarget; // null once the handler awaits
      try {
        const now = button.getAttribute("aria-pressed") !== "true";
        await patch(`/v1/conversations/${view.id}`, { [field]: now });
        button.setAttribute("aria-pressed", now ? "true" : "false");
        await loadConversations();
      } catch (error) { showError(error); }
    },
  }, label);
}

/** Deletes the conversation from this node only (nothing is sent). */
async function deleteConversation() {
  if (!view || !window.confirm("Delete this whole conversation from this device? The other side keeps theirs.")) return;
  try {
    await del(`/v1/conversations/${seg(view.id)}`);
    state.previews.delete(view.id);
    await loadConversations();
    location.hash = "#/";
  } catch (error) { showError(error); }
}

async function setTimer(seconds) {
  try {
    if (view.group) {
      // A group's timer is a change of the group, told to every member.
      view.group = await patch(`/v1/groups/${seg(view.group.id)}`, { timer_s: seconds });
      groups.set(view.group.id, view.group);
    } else await patch(`/v1/conversations/${view.id}`, { timer_s: seconds });
    await loadConversations();
    view.conversation = conversationById(view.id);
    showTimer();
  } catch (error) { showError(error); }
}

function showTimer() {
  const notice = document.getElementById("timer-notice");
  const seconds = view && (view.group ? view.group.timer_s : view.conversation && view.conversation.timer_s);
  if (!notice) return;
  const select = document.getElementById("timer-select");
  if (select) select.value = String(seconds || 0); // set by either side
  notice.hidden = !seconds;
  if (seconds) {
    const label = (TIMERS.find(([s]) => s === seconds) || [0, `${seconds} s`])[1];
    notice.textContent = `Disappearing messages: new messages disappear ${label} after they are read.`;
  }
}

// --- the message list ------------------------------------------------------------

async function loadOlder() {
  if (!view || view.loading || view.next === null) return;
  view.loading = true;
  const id = view.id;
  try {
    const before = view.next === undefined ? "" : `&before=${view.next}`;
    const page = await get(`/v1/conversations/${seg(id)}/messages?limit=${PAGE}${before}`);
    if (!view || view.id !== id) return;
    view.next = page.next_before;
    const older = page.messages.slice().reverse().filter((m) => !view.messages.has(m.id));
    for (const m of older) view.messages.set(m.id, m);
    view.order = [...older.map((m) => m.id), ...view.order];
    const scroller = document.getElementById("scroller");
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    draw();
    scroller.scrollTop = scroller.scrollHeight - fromBottom;
    const olderEl = document.getElementById("older");
    clear(olderEl, view.next === null
      ? h("p.start", {}, `This is the start of the ${view.group ? "group" : "conversation"}.`)
      : h("button", { type: "button", onclick: loadOlder }, "Load older messages"));
  } catch (error) {
    showError(error);
  } finally {
    if (view) view.loading = false;
  }
}

function onScroll(event) {
  const scroller = event.target;
  if (view) {
    // Only the reader scrolling up unpins: a scroll event comes a frame late,
    // when a photo may have grown the list below where the page put it.
    if (scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80) view.pinned = true;
    else if (scroller.scrollTop < view.lastTop) view.pinned = false;
    view.lastTop = scroller.scrollTop;
  }
  if (scroller.scrollTop < 80) loadOlder();
}

function draw() {
  const list = document.getElementById("messages");
  if (!list) return;
  const items = [];
  let lastDay = null;
  for (const id of view.order) {
    const message = view.messages.get(id);
    if (!message || message.deleted) continue;
    const key = dayKey(message.sent_at_ms);
    if (key !== lastDay) {
      items.push(h("li.day", { role: "separator" }, h("span", {}, day(message.sent_at_ms))));
      lastDay = key;
    }
    items.push(bubble(message));
  }
  clear(list, items);
}

function statusLine(message) {
  const figures = deliveryWords(message); // a group message: "delivered to 4 of 5, read by 2"
  if (figures) {
    // Why it waits or failed, member by member (the message's note first).
    const why = [message.status_detail, ...(message.recipients || [])
      .filter((r) => r.status_detail && r.status_detail !== message.status_detail)
      .map((r) => `${nameOf(r.peer)}: ${r.status_detail}`)].filter(Boolean).join("\n");
    return h("span.status.group-delivery", { title: why || figures, dataset: { status: message.status } }, figures,
      message.status_detail ? h("span.detail", {}, ` · ${message.status_detail}`) : null);
  }
  if (message.unsent && (message.status === "queued" || message.status === "deposited")) {
    // Its envelope left the outbox and its deposits are taken back: not "held".
    return h("span.status.unsent-first", { dataset: { status: message.status } }, "Unsent before it was delivered");
  }
  const labels = {
    queued: "🕓 Queued", sent: "✓ Sent", deposited: "✓ Held by mailboxes",
    delivered: "✓✓ Delivered", read: "✓✓ Read", failed: "⚠ Failed", expired: "⚠ Expired",
  };
  return h(`span.status.${message.status}`, {
    title: message.status_detail || message.status, dataset: { status: message.status },
  }, labels[message.status] || message.status,
  message.status === "deposited" && message.status_detail ? h("span.detail", {}, ` · ${message.status_detail}`) : null,
  (message.status === "failed" || message.status === "queued") && message.status_detail ? h("span.detail", {}, ` · ${message.status_detail}`) : null);
}

/** A notice in the conversation (a disappearing-messages timer set): a centred line. */
function noticeLine(message) {
  const who = message.direction === "out" ? "You" : nameOf(message.peer);
  return h("li.notice-line", { id: `m-${message.id}`, role: "note", dataset: { id: message.id } },
    h("span", {}, `— ${who} ${message.notice} —`));
}

function bubble(message) {
  if (message.notice) return noticeLine(message);
  const mine = message.direction === "out";
  const body = [];
  const author = !mine && message.group ? authorName(groups.get(message.group) || view.group, message.peer) : null;
  if (author) body.push(h("span.author", {}, author));
  if (message.reply_to) body.push(quote(message.reply_to));
  if (message.unsent) {
    body.push(h("p.unsent", {}, mine ? "You unsent a message" : `${nameOf(message.peer)} unsent a message`));
  } else if (message.unsupported) {
    body.push(h("p.unsupported", {}, `A message of a kind this version cannot show (${message.kind}).`));
  } else {
    body.push(...attachmentsOf(message));
    const location = locationOf(message);
    if (location) body.push(location);
    if (message.text) body.push(h("p.text", { dir: "auto" }, linked(message.text)));
  }
  const meta = h("div.meta", {},
    h("time", { datetime: new Date(message.sent_at_ms).toISOString() }, clock(message.sent_at_ms)),
    message.edited && !message.unsent ? h("span.edited", {}, " · edited") : null,
    message.expires_at_ms ? h("span.expires", { title: "disappears" }, " · ⏱") : null,
    mine ? [" · ", statusLine(message)] : null);
  return h(`li.message.${mine ? "out" : "in"}`, {
    id: `m-${message.id}`, dataset: { id: message.id, status: message.status },
  },
  h("div.bubble", { tabindex: "0" },
    author ? null : h("span.sr-only", {}, mine ? "You: " : `${nameOf(message.peer)}: `),
    body, reactionsOf(message, refreshMessage), meta),
  message.unsent ? null : messageActions(message, { reply: startReply, refresh: refreshMessage }));
}

/** Web addresses in a message: http(s) only, written out in full. */
const LINK = /\bhttps?:\/\/[^\s<>"]+/gi;
/** What ends a sentence rather than an address: left out of the link. */
const TRAILING = ".,;:!?'\")]";

/** An address without the punctuation after it (a ")" it opened stays). */
function trimmed(address) {
  let end = address.length;
  const count = (c) => address.slice(0, end).split(c).length - 1;
  while (end > 0 && TRAILING.includes(address[end - 1])) {
    if (address[end - 1] === ")" && count("(") >= count(")")) break;
    end -= 1;
  }
  return address.slice(0, end);
}

/** A message's text with its web addresses as links (text stays text). */
export function linked(text) {
  const parts = [];
  let at = 0;
  for (const match of text.matchAll(LINK)) {
    const href = trimmed(match[0]);
    if (!URL.canParse(href)) continue;
    parts.push(text.slice(at, match.index));
    parts.push(h("a.link", { href, target: "_blank", rel: "noopener noreferrer nofollow" }, href));
    at = match.index + href.length;
  }
  parts.push(text.slice(at));
  return parts;
}

function quote(replyTo) {
  // {id, text, available}: the node sends the quoted snippet along, text null
  // and available false when the original is gone (unsent, deleted, never arrived).
  const id = replyTo.id;
  const original = view.messages.get(id);
  const gone = replyTo.available === false || (original && (original.unsent || original.deleted));
  const text = gone ? "Original message unavailable" : original ? previewText(original) : replyTo.text || "…";
  const who = original ? (original.direction === "out" ? "You" : nameOf(original.peer)) : "";
  return h("a.quote", { href: `#m-${id}`, onclick: (e) => { e.preventDefault(); jumpTo(id); } },
    who ? h("strong", {}, who) : null, h("span", {}, text.slice(0, 140)));
}

function jumpTo(id) {
  const el = document.getElementById(`m-${id}`);
  if (el) { el.scrollIntoView({ block: "center" }); el.querySelector(".bubble").focus(); }
}

function putMessage(message) {
  if (view && view.id === view.peer && message.peer === view.peer && !groups.has(message.conversation_id)) {
    view.id = message.conversation_id;
  }
  if (!view || message.conversation_id !== view.id) return;
  const scroller = document.getElementById("scroller");
  const mineNew = message.direction === "out" && !view.messages.has(message.id);
  const atBottom = scroller && (view.pinned || mineNew); // what you send, you see
  if (!view.messages.has(message.id)) view.order.push(message.id);
  view.messages.set(message.id, message);
  const old = document.getElementById(`m-${message.id}`);
  const quoted = [...view.messages.values()].some((m) => m.reply_to && m.reply_to.id === message.id);
  if (old && !quoted) old.replaceWith(bubble(message));
  else draw(); // new, or quoted by others whose snippet follows it
  if (atBottom && scroller) scroller.scrollTop = scroller.scrollHeight;
}

async function refreshMessage(id) {
  try {
    const message = await get(`/v1/messages/${id}`);
    putMessage(message);
  } catch (error) {
    if (error.status === 404 && view && view.messages.has(id)) {
      view.messages.get(id).deleted = true;
      draw();
    } else showError(error);
  }
}

// --- live events -------------------------------------------------------------------

export function onConversationEvent(event) {
  if (!view) return;
  // A live location names a conversation that may not exist yet (no message
  // in it): the node knows it by the PeerID until then.
  const adopt = !event.type.startsWith("location.");
  if (adopt && view.id === view.peer && event.peer === view.peer && event.conversation_id && !groups.has(event.conversation_id)) {
    view.id = event.conversation_id; // opened by PeerID before its first message
    liveConversation(view.id);
  }
  if (onLiveEvent(event, view.id, view.peer)) return;
  // Typing in a group names the group; a contact's own conversation, the contact.
  const typingHere = event.conversation_id === view.id || (event.peer === view.peer && !groups.has(event.conversation_id));
  if (event.type === "typing" && typingHere) {
    state.typing.set(view.id, Date.now() + TYPING_SHOWN_MS);
    view.typist = event.peer;
    showTyping();
    return;
  }
  if (event.type.startsWith("media.") && (event.peer === view.peer || view.group)) {
    const file = mediaIdOf(event);
    for (const m of view.messages.values()) {
      if ((m.media || []).some((item) => item.id === file)) refreshMessage(m.id);
    }
    return;
  }
  if (event.conversation_id !== view.id) return;
  if (event.type.startsWith("group.") && view.group) {
    view.group = groups.get(view.group.id) || event.group || view.group; // main.js reloaded them
    const title = document.querySelector(".conv-head h1");
    if (title) title.textContent = view.group.name; // renamed
    const sub = document.querySelector(".conv-head .sub");
    if (sub) sub.textContent = membersLine(view.group);
    showTimer();
    return;
  }
  if (event.type === "message.received" && event.message) {
    state.typing.delete(view.id);
    showTyping();
    putMessage(event.message);
    markRead();
  } else if (event.type === "message.status" && view.group && view.messages.has(event.message_id)) {
    refreshMessage(event.message_id); // its figures per member ("delivered to 4 of 5") moved
  } else if (event.type === "message.status" && view.messages.has(event.message_id)) {
    const message = view.messages.get(event.message_id);
    message.status = event.status;
    message.status_detail = event.detail || "";
    putMessage(message);
    if (event.status === "read" || event.status === "delivered") announce(`Message ${event.status}`);
  } else if (event.type === "conversation.changed") {
    // Muted, archived or pinned elsewhere (another page, the command line, a bot):
    // main.js reloaded the list; the header's switches follow it.
    const now = conversationById(view.id);
    for (const [field, id] of [["muted", "mute"], ["archived", "archive"], ["pinned", "pin"]]) {
      const button = document.getElementById(`${id}-toggle`);
      if (button && now) button.setAttribute("aria-pressed", now[field] ? "true" : "false");
    }
  } else if (event.type === "conversation.timer") {
    loadConversations().then(() => { view.conversation = conversationById(view.id); showTimer(); });
    if (event.message_id) refreshMessage(event.message_id); // its notice
  } else if (event.message && event.message.id === event.message_id) {
    putMessage(event.message); // message.reaction/edited/unsent carry it as stored now
  } else if (event.message_id) {
    refreshMessage(event.message_id);
  }
}

function showTyping() {
  const el = document.getElementById("typing");
  if (!el || !view) return;
  const until = state.typing.get(view.id) || 0;
  const who = view.group ? authorName(view.group, view.typist) : nameOf(view.peer);
  el.textContent = until > Date.now() ? `${who} is typing…` : "";
  if (until > Date.now()) setTimeout(showTyping, until - Date.now() + 50);
}

let readTimer = null;
function markRead() {
  clearTimeout(readTimer);
  readTimer = setTimeout(async () => {
    if (!view || document.hidden || !view.main.contains(document.getElementById("messages"))) return;
    const unread = [...view.messages.values()].some((m) => m.direction === "in" && m.status !== "read");
    const conversation = conversationById(view.id);
    if (!unread && !(conversation && conversation.unread)) return;
    if (conversation && conversation.request) return; // no read receipts before accepting
    try {
      await post(`/v1/conversations/${seg(view.id)}/read`);
      for (const m of view.messages.values()) if (m.direction === "in") m.status = "read";
      await refreshConversation(view.id);
    } catch (error) { showError(error); }
  }, 300);
}
document.addEventListener("visibilitychange", () => { if (!document.hidden) markRead(); });

// --- the composer ------------------------------------------------------------------

function composer() {
  const text = h("textarea", {
    id: "composer-text", rows: 1, placeholder: "Message", "aria-label": "Message",
    onkeydown: (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
      if (e.key === "Escape") cancelReply();
    },
    oninput: () => { keepDraft(); typing(); },
    onpaste: paste,
  });
  text.value = drafts.get(view.peer) || ""; // what was being written when the chat was left
  return h("form.composer", { onsubmit: (e) => { e.preventDefault(); send(); } },
    h("div.replying", { id: "replying", hidden: true }),
    h("div.row", {},
      composerMediaControls({ send: sendAttachment }),
      liveShareControls(() => view && view.id),
      text,
      h("button.primary.send", { type: "submit", "aria-label": "Send" }, "Send")));
}

async function send() {
  const input = document.getElementById("composer-text");
  const text = input.value.trim();
  if (!text || !view) return;
  const body = { to: view.peer, text };
  if (view.replyTo && accepts("SendMessage", REPLY_FIELD)) body.reply_to = view.replyTo;
  input.value = "";
  keepDraft();
  cancelReply();
  try {
    const message = await post("/v1/messages", body);
    putMessage(message);
    refreshConversation(message.conversation_id).catch(() => {});
  } catch (error) {
    input.value = text;
    keepDraft();
    showError(error);
  }
}

/** Send what media.js uploaded (ids) or a location, with the text as caption. */
async function sendAttachment(fields) {
  const input = document.getElementById("composer-text");
  const caption = input.value.trim();
  const body = { to: view.peer, ...fields };
  if (caption) body.text = caption;
  if (view.replyTo && accepts("SendMessage", REPLY_FIELD)) body.reply_to = view.replyTo;
  try {
    const message = await post("/v1/messages", body);
    input.value = "";
    keepDraft();
    cancelReply();
    putMessage(message);
    refreshConversation(message.conversation_id).catch(() => {});
  } catch (error) { showError(error); }
}

/** Remember the composer's text for this conversation (the inbox shows "Draft:"). */
function keepDraft() {
  const input = document.getElementById("composer-text");
  if (!view || !input) return;
  const had = drafts.has(view.peer);
  if (input.value.trim()) drafts.set(view.peer, input.value); else drafts.delete(view.peer);
  if (had !== drafts.has(view.peer)) changed("drafts");
}

function typing() {
  // In a group it goes to the members online now (docs/api.md, Groups).
  if (!view || !has("POST", "/v1/conversations/{conversation}/typing")) return;
  const now = Date.now();
  if (now - view.lastTyping < TYPING_EVERY_MS) return;
  view.lastTyping = now;
  post(`/v1/conversations/${seg(view.id)}/typing`).catch(() => {});
}

function startReply(message) {
  if (!document.getElementById("composer-text")) return; // a group you cannot write to
  view.replyTo = message.id;
  const bar = document.getElementById("replying");
  clear(bar,
    h("span", {}, "Replying to ", h("strong", {}, message.direction === "out" ? "yourself" : nameOf(message.peer)), `: ${previewText(message).slice(0, 80)}`),
    h("button", { type: "button", "aria-label": "Cancel reply", onclick: cancelReply }, "✕"));
  bar.hidden = false;
  document.getElementById("composer-text").focus();
}

function cancelReply() {
  if (view) view.replyTo = null;
  const bar = document.getElementById("replying");
  if (bar) { bar.hidden = true; bar.replaceChildren(); }
}

function dragOver(event) {
  if (has("POST", "/v1/media") && event.dataTransfer && [...event.dataTransfer.types].includes("Files")) {
    event.preventDefault();
  }
}

function drop(event) {
  if (!has("POST", "/v1/media")) return;
  const files = event.dataTransfer && event.dataTransfer.files;
  if (files && files.length) { event.preventDefault(); sendFiles([...files], sendAttachment); }
}

function paste(event) {
  if (!has("POST", "/v1/media")) return;
  const files = [...((event.clipboardData && event.clipboardData.files) || [])];
  if (files.length) { event.preventDefault(); sendFiles(files, sendAttachment); }
}
