// Telling the person about new messages while they look elsewhere: the unread
// count in the tab's title, and (once turned on in this browser) a desktop
// notification for each new message of a conversation that is not muted.

import { h, showError } from "./dom.js";
import { conversationById, nameOf, previewText, state } from "./state.js";
import { groupOf } from "./groups.js";

/** This browser's choices (not secrets: which notifications it shows). */
const CHOICE_KEY = "p2pdm.notifications"; // "on" | "off" (absent: off)
const TEXT_KEY = "p2pdm.notification-text"; // "hide" (absent: show)
/** The tab's title when nothing is unread. */
const TITLE = "p2pdm";
/** Longest message text a notification shows. */
const NOTIFICATION_TEXT_CHARS = 140;

const supported = () => "Notification" in window;

function stored(key) {
  try { return window.localStorage.getItem(key); } catch (_) { return null; } // storage off
}

function store(key, value) {
  try {
    if (value === null) window.localStorage.removeItem(key); else window.localStorage.setItem(key, value);
  } catch (_) { /* storage off: the choice lasts this page */ }
}

/** Whether this browser shows notifications: turned on here and allowed by the browser. */
export function notificationsOn() {
  return supported() && Notification.permission === "granted" && stored(CHOICE_KEY) === "on";
}

/** "(3) p2pdm": unread messages of conversations that notify (not muted, not requests). */
export function showUnreadInTitle() {
  const unread = state.conversations
    .filter((c) => !c.muted && !c.request)
    .reduce((sum, c) => sum + (c.unread || 0), 0);
  document.title = unread ? `(${unread}) ${TITLE}` : TITLE;
}

/** Whether the person is looking at this conversation right now. */
function looking(conversationId) {
  if (document.hidden || !document.hasFocus()) return false;
  const open = decodeURIComponent((location.hash.match(/^#\/c\/(.+)$/) || [])[1] || "");
  const conversation = conversationById(conversationId);
  return open === conversationId || (conversation !== null && open === conversation.peer);
}

/** A desktop notification for a `message.received` event, when it should have one. */
export function notifyMessage(event) {
  const message = event.message;
  if (!message || message.direction !== "in" || event.notify === false) return;
  const conversation = conversationById(event.conversation_id);
  if ((conversation && conversation.muted) || !notificationsOn() || looking(event.conversation_id)) return;
  const group = conversation ? groupOf(conversation) : null;
  const who = nameOf(message.peer);
  const title = group ? `${who} in ${group.name}` : conversation && conversation.request ? `Message request from ${who}` : who;
  const body = stored(TEXT_KEY) === "hide" ? "New message" : previewText(message).slice(0, NOTIFICATION_TEXT_CHARS);
  try {
    // One per conversation (`tag`): a newer message replaces the older one.
    const shown = new Notification(title, { body, tag: event.conversation_id, icon: "/app/icon.svg" });
    shown.onclick = () => {
      window.focus();
      location.hash = conversation && conversation.request ? "#/requests" : `#/c/${encodeURIComponent(event.conversation_id)}`;
      shown.close();
    };
  } catch (error) { showError(error); }
}

/** Ask the browser (once, from the person's click) and remember the answer; true if on. */
async function turnOn() {
  const answer = Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
  store(CHOICE_KEY, answer === "granted" ? "on" : null);
  return answer === "granted";
}

/** The welcome pane's offer, until this browser has chosen (null once it has,
 * or when it cannot show notifications or blocks them). */
export function notificationOffer() {
  if (!supported() || Notification.permission === "denied" || stored(CHOICE_KEY) !== null) return null;
  const card = h("div.card", { id: "notification-offer" },
    h("h2", {}, "Get notified of new messages"),
    h("p", {}, "This browser can tell you when a message arrives while you look elsewhere (never for muted chats). You can change it on the Node page."),
    h("button.primary", {
      type: "button", id: "notification-offer-on",
      onclick: async () => { try { await turnOn(); } catch (error) { showError(error); } card.remove(); },
    }, "Turn on notifications"), " ",
    h("button", {
      type: "button", id: "notification-offer-later",
      onclick: () => { store(CHOICE_KEY, "off"); card.remove(); },
    }, "Not now"));
  return card;
}

/** The Node page's controls: turn notifications on or off in this browser. */
export function notificationControls() {
  const box = h("div.notifications", { id: "notifications" });
  const draw = () => {
    const parts = [];
    if (!supported()) {
      parts.push(h("p", {}, "This browser cannot show notifications."));
    } else if (Notification.permission === "denied") {
      parts.push(h("p", {}, "Notifications are blocked for this page in the browser's site settings; allow them there to turn them on."));
    } else {
      const on = notificationsOn();
      parts.push(h("label.check", {},
        h("input", {
          type: "checkbox", id: "notifications-on", checked: on,
          onchange: async (e) => {
            if (e.target.checked) await turnOn(); // the browser asks once, from this click
            else store(CHOICE_KEY, "off");
            draw();
          },
        }), " Notify me of new messages in this browser (not for muted chats)"));
      if (on) {
        parts.push(h("label.check", {},
          h("input", {
            type: "checkbox", id: "notification-text", checked: stored(TEXT_KEY) !== "hide",
            onchange: (e) => store(TEXT_KEY, e.target.checked ? null : "hide"),
          }), " Show the message's text in notifications (off: only who wrote)"));
      }
    }
    box.replaceChildren(...parts);
  };
  draw();
  return box;
}
