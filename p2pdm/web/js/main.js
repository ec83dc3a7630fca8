// The app's shell: sign-in check, layout, routing (#/…), live events.

import { ApiError, loadFeatures, whenSignedOut } from "./api.js";
import { announce, clear, h, hideError, showError } from "./dom.js";
import { followEvents } from "./events.js";
import { renderInbox, renderRequests } from "./inbox.js";
import { closeConversation, openConversation, onConversationEvent } from "./conversation.js";
import { renderContacts } from "./contacts.js";
import { renderNodePage } from "./nodepage.js";
import { notifyMessage, showUnreadInTitle } from "./notify.js";
import { groupInvitations, groupsOffered, loadGroups, refreshGroupInfo, renderNewGroup } from "./groups.js";
import {
  changed, loadContacts, loadConversations, loadNode, nameOf, refreshConversation, state, subscribe,
} from "./state.js";

const app = document.getElementById("app");
let live = null;

function shell() {
  const nav = [
    ["#/", "Chats", "nav-chats"],
    ["#/requests", "Requests", "nav-requests"],
    ["#/new", "New chat", "nav-new"],
    ...(groupsOffered() ? [["#/newgroup", "New group", "nav-new-group"]] : []),
    ["#/node", "Node", "nav-node"],
  ];
  clear(
    app,
    h("header.top", {},
      h("a.brand", { href: "#/", "aria-label": "p2pdm, chats" }, "p2pdm"),
      h("nav.tabs", { "aria-label": "Sections" },
        nav.map(([href, label, id]) => h("a.tab", { href, id }, label, id === "nav-requests" ? h("span.badge", { id: "requests-badge", hidden: true }) : null))),
      h("span.conn", { id: "connection", role: "status", title: "Live updates" }, "connecting…")),
    h("div.panes", {},
      h("aside.sidebar", { id: "sidebar", "aria-label": "Conversations" }),
      h("main.main", { id: "main", tabindex: "-1" })),
    h("div.status-bar", { id: "status-bar", role: "alert", hidden: true, onclick: hideError }),
    h("div.sr-only", { id: "announce", "aria-live": "polite" }),
  );
}

/** How to get a sign-in link for this node (the page is served with it). */
function uiCommand() {
  const meta = document.querySelector("meta[name='p2pdm-ui-command']");
  const command = meta ? meta.getAttribute("content") : "";
  return command && !command.includes("{{") ? command : "p2pdm ui";
}

function signedOutPage(message) {
  if (live) { live.stop(); live = null; }
  clear(app, h("main.signin", { id: "main" },
    h("h1", {}, "p2pdm"),
    h("p", {}, message || "You are not signed in."),
    h("p", {}, "Run ", h("code", {}, uiCommand()), " on this computer and open the link it prints (or click the link the node printed when it started)."),
  ));
}

function route() {
  const hash = location.hash || "#/";
  const [, section, arg] = hash.match(/^#\/([^/]*)\/?(.*)$/) || [null, "", ""];
  app.dataset.route = section || "inbox";
  for (const tab of document.querySelectorAll(".tab")) {
    const here = tab.getAttribute("href") === `#/${section === "c" ? "" : section}`;
    if (here) tab.setAttribute("aria-current", "page"); else tab.removeAttribute("aria-current");
  }
  const main = document.getElementById("main");
  const sidebar = document.getElementById("sidebar");
  if (!main || !sidebar) return;
  renderInbox(sidebar, section === "c" ? decodeURIComponent(arg) : null);
  if (section !== "c") closeConversation();
  if (section === "c") openConversation(main, decodeURIComponent(arg));
  else if (section === "requests") renderRequests(main);
  else if (section === "new") renderContacts(main);
  else if (section === "newgroup") renderNewGroup(main);
  else if (section === "node") renderNodePage(main);
  else renderWelcome(main);
}

function renderWelcome(main) {
  import("./welcome.js").then((m) => m.renderWelcome(main));
}

function connection(text) {
  const el = document.getElementById("connection");
  if (!el) return;
  el.textContent = text === "live" ? "live" : "reconnecting…";
  el.dataset.state = text;
  if (text === "live") refreshAll();
}

let refreshing = null;
function refreshAll() {
  // After a reconnect: anything missed while away (the stream resumes, but a
  // node that restarted may have answered requests meanwhile).
  if (refreshing) return;
  refreshing = Promise.all([loadContacts(), loadConversations(), loadGroups()]).catch(() => {}).finally(() => { refreshing = null; });
}

async function onEvent(event) {
  switch (event.type) {
    case "gap":
    case "requests_gap":
      await Promise.all([loadContacts(), loadConversations(), loadGroups()]);
      break;
    case "group.created":
    case "group.changed":
    case "group.removed":
      await Promise.all([loadGroups(), loadConversations()]);
      // The group is the event's conversation (docs/api.md, Events).
      if (event.conversation_id) refreshGroupInfo(event.conversation_id);
      break;
    case "contact.added":
    case "contact.blocked":
    case "contact.unblocked":
      await loadContacts();
      await loadConversations();
      break;
    case "peer.online":
      state.online.add(event.peer); changed("online"); break;
    case "peer.offline":
      state.online.delete(event.peer); changed("online"); break;
    case "message.status": {
      // Only the status moved: no list to reload, maybe a preview to update.
      const preview = state.previews.get(event.conversation_id);
      if (preview && preview.id === event.message_id) {
        preview.status = event.status;
        changed("conversations");
      }
      break;
    }
    case "location.live":
    case "location.stopped":
      break; // the open conversation's cards follow them (live.js)
    default:
      if (event.conversation_id) await refreshConversation(event.conversation_id);
      else if (event.type === "contact.request") await loadConversations();
  }
  onConversationEvent(event);
  if (event.type === "message.received" && event.message && event.message.direction === "in") {
    const conversation = state.conversations.find((c) => c.id === event.conversation_id);
    // `notify` is false in a muted conversation (older nodes: look at the conversation).
    if (event.notify !== false && !(conversation && conversation.muted)) announce(`New message from ${nameOf(event.message.peer)}`);
    notifyMessage(event);
  }
}

async function start() {
  whenSignedOut(() => signedOutPage("Your session ended: sign in again."));
  try {
    await loadFeatures();
    await loadNode();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) signedOutPage();
    else signedOutPage(`The node does not answer (${error.message}).`);
    return;
  }
  shell();
  subscribe((what) => {
    if (what === "conversations") {
      app.toggleAttribute("data-empty", state.conversations.length === 0);
      showUnreadInTitle();
    }
    const badge = document.getElementById("requests-badge");
    if (badge && (what === "conversations" || what === "groups")) {
      const invited = new Set(groupInvitations().map((g) => g.id));
      const count = state.conversations.filter((c) => c.request && !(c.group && invited.has(c.group.id))).length + invited.size;
      badge.textContent = String(count);
      badge.hidden = count === 0;
    }
  });
  await Promise.all([loadContacts(), loadConversations(), loadGroups().catch(showError)]);
  // One event at a time, in order: a media.ready must not overtake the
  // message.received of the message it completes.
  let queue = Promise.resolve();
  live = followEvents(state.node.event_cursor, (e) => { queue = queue.then(() => onEvent(e)).catch(showError); }, connection);
  window.addEventListener("hashchange", route);
  route();
}

start();
