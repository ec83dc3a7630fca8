// New chat and contacts: your invite (text and QR code), adding someone by
// invite or PeerID, renaming, blocking, removing, and the safety numbers side by side.

import { del, get, has, post, seg } from "./api.js";
import { announce, clear, h, showError } from "./dom.js";
import { loadContacts, loadConversations, state } from "./state.js";
import { findByHandle } from "./profile.js";

export async function renderContacts(main) {
  const invite = h("div.invite", { id: "invite" }, "Making your invite…");
  const list = h("ul.contacts", { id: "contact-list", "aria-label": "Contacts" });
  const field = h("textarea", { id: "add-invite", rows: 3, required: true, placeholder: "p2pdm:… or 12D3KooW…", autocomplete: "off" });
  const name = h("input", { id: "add-name", type: "text", placeholder: "optional", autocomplete: "off" });
  clear(main, h("section.page", {},
    h("h1", {}, "New chat"),
    h("form.add", { onsubmit: (e) => { e.preventDefault(); add(field, name); } },
      h("h2", {}, "Add a contact"),
      h("label", { for: "add-invite" }, "Their invite or PeerID"), field,
      h("label", { for: "add-name" }, "Name"), name,
      h("button.primary", { type: "submit", id: "add-button" }, "Add and start chatting")),
    findByHandle(),
    h("h2", {}, "Your invite"),
    h("p.hint", {}, "Send this to a friend (or let them scan it); it works for a week."),
    invite,
    h("h2", {}, "Contacts"),
    list));
  drawContacts();
  try {
    const answer = has("GET", "/v1/invite") ? await get("/v1/invite") : { invite: (await get("/v1/node")).invite };
    clear(invite,
      answer.svg ? h("img.qr", { src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(answer.svg)}`, alt: "QR code of your invite" }) : null,
      h("textarea.invite-text", { id: "my-invite", readonly: true, rows: 4, "aria-label": "Your invite" }, answer.invite),
      h("button", { type: "button", onclick: () => copy(answer.invite) }, "Copy invite"));
  } catch (error) { showError(error); }
}

async function copy(text) {
  try { await navigator.clipboard.writeText(text); announce("Invite copied"); } catch (_) {
    const area = document.getElementById("my-invite");
    area.select();
  }
}

async function add(field, nameField) {
  const value = field.value.trim();
  if (!value) return;
  const body = value.toLowerCase().startsWith("p2pdm:") ? { invite: value } : { peer_id: value };
  if (nameField.value.trim()) body.name = nameField.value.trim();
  try {
    const contact = await post("/v1/contacts", body);
    field.value = "";
    nameField.value = "";
    announce(`Added ${contact.name}`);
    await loadContacts();
    await loadConversations();
    const conversation = state.conversations.find((c) => c.peer === contact.peer_id && !c.group);
    location.hash = conversation ? `#/c/${conversation.id}` : `#/c/${seg(contact.peer_id)}`;
  } catch (error) { showError(error); }
}

function drawContacts() {
  const list = document.getElementById("contact-list");
  if (!list) return;
  const mine = state.node ? state.node.peer_id.slice(-8) : "";
  const contacts = [...state.contacts.values()].sort((a, b) => a.name.localeCompare(b.name));
  clear(list, contacts.length ? contacts.map((c) => contactItem(c, mine)) : h("li.empty", {}, "No contacts yet."));
}

function contactItem(contact, mine) {
  const rename = async () => {
    const name = window.prompt(`New name for ${contact.name}`, contact.name);
    if (!name || !name.trim()) return;
    try { await post("/v1/contacts", { peer_id: contact.peer_id, name: name.trim() }); await loadContacts(); drawContacts(); } catch (error) { showError(error); }
  };
  const remove = async () => {
    if (!window.confirm(`Remove ${contact.name} from your contacts? The conversation stays.`)) return;
    try { await del(`/v1/contacts/${seg(contact.peer_id)}`); await loadContacts(); drawContacts(); } catch (error) { showError(error); }
  };
  const block = async () => {
    if (!window.confirm(`Block ${contact.name}? They are not told.`)) return;
    try { await post("/v1/blocked", { peer_id: contact.peer_id }); await loadContacts(); drawContacts(); } catch (error) { showError(error); }
  };
  const unblock = async () => {
    try { await del(`/v1/blocked/${seg(contact.peer_id)}`); await loadContacts(); drawContacts(); } catch (error) { showError(error); }
  };
  const demo = contact.demo || contact.name.startsWith("Demo bot");
  return h("li.contact", {},
    h("div.who", {}, h("strong", {}, contact.name), demo ? h("span.tag", {}, "local demo bot") : null,
      contact.blocked ? h("span.tag.danger", {}, "blocked") : null),
    h("div.safety", { role: "group", "aria-label": "Safety numbers: compare on both devices" },
      h("span", {}, "Theirs ", h("code", {}, contact.fingerprint)),
      h("span", {}, "Yours ", h("code", {}, mine))),
    h("div.actions", {},
      h("a.button", { href: `#/c/${seg(contact.peer_id)}` }, "Chat"),
      h("button", { type: "button", onclick: rename }, "Rename"),
      has("POST", "/v1/blocked") ? (contact.blocked
        ? h("button", { type: "button", onclick: unblock }, "Unblock")
        : h("button", { type: "button", onclick: block }, "Block")) : null,
      h("button.danger", { type: "button", onclick: remove }, "Remove")));
}
