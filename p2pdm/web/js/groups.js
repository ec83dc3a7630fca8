// Group chats: the groups this node knows (GET /v1/groups), the New group form,
// the group info panel (members, admins, add/remove, rename, photo, leave) and group
// invitations among the requests. Every control shows only when the node has
// its endpoint (has()); a node without groups shows none of this.

import { del, get, has, patch, post, seg } from "./api.js";
import { announce, clear, h, showError } from "./dom.js";
import { changed, loadConversations, nameOf, state } from "./state.js";

/** A group has at most this many members, this node included (the node's limit too). */
export const MAX_GROUP_MEMBERS = 32;

/** group id -> group (GET /v1/groups); empty on a node without groups. */
export const groups = new Map();

export const groupsOffered = () => has("GET", "/v1/groups");

export async function loadGroups() {
  if (!groupsOffered()) return;
  const answer = await get("/v1/groups");
  groups.clear();
  for (const group of answer.groups || []) groups.set(group.id, group);
  changed("groups");
}

/** The group of a conversation (its `group` field), as last loaded; or null. */
export function groupOf(conversation) {
  if (!conversation || !conversation.group) return null;
  return groups.get(conversation.group.id) || null;
}

/** A group's conversation as the list would give it, for a group with no message yet. */
export function groupConversation(group) {
  return {
    id: group.conversation, peer: group.id, name: null, last_message_at_ms: group.created_at * 1000,
    unread: 0, request: group.state === "request", timer_s: group.timer_s || 0, muted: false, archived: false,
    group: { id: group.id, name: group.name },
  };
}

/** Groups you are in with no message yet, as conversations, for the list. */
export function quietGroups(conversations) {
  const listed = new Set(conversations.filter((c) => c.group).map((c) => c.group.id));
  return [...groups.values()].filter((g) => g.state === "active" && !listed.has(g.id)).map(groupConversation);
}

/** A member's name: yours, a contact's, else the end of their PeerID. */
export function memberName(member) {
  if (member.me) return "You";
  return nameOf(member.peer, member.name);
}

/** The author of a group message as shown above its bubble. */
export function authorName(group, peer) {
  const member = group && group.members.find((m) => m.peer === peer);
  return member ? memberName(member) : nameOf(peer);
}

/** "delivered to 4 of 5, read by 2" for an own group message; null otherwise. */
export function deliveryWords(message) {
  const figures = message.delivery;
  if (!figures) return null;
  const read = figures.read ? `, read by ${figures.read}` : "";
  const failed = figures.failed ? `, failed for ${figures.failed}` : "";
  return `delivered to ${figures.delivered} of ${figures.members}${read}${failed}`;
}

export const membersLine = (group) => `${group.members.length} members`;

// --- New group ------------------------------------------------------------------

export function renderNewGroup(main) {
  const name = h("input", { id: "group-name", type: "text", required: true, autocomplete: "off", maxlength: 100 });
  const contacts = [...state.contacts.values()].filter((c) => !c.blocked).sort((a, b) => a.name.localeCompare(b.name));
  const picks = contacts.map((c) => h("li", {},
    h("label", {},
      h("input", { type: "checkbox", name: "member", value: c.peer_id, id: `pick-${c.peer_id}` }),
      ` ${c.name}`)));
  const form = h("form.add", { id: "new-group", onsubmit: (e) => { e.preventDefault(); create(form, name); } },
    h("label", { for: "group-name" }, "Group name"), name,
    h("fieldset", {},
      h("legend", {}, `Members (up to ${MAX_GROUP_MEMBERS - 1} of your contacts)`),
      picks.length ? h("ul.picks", {}, picks) : h("p.hint", {}, "Add contacts first: a group is made of your contacts.")),
    h("button.primary", { type: "submit", id: "create-group" }, "Create group"));
  clear(main, h("section.page", {},
    h("h1", {}, "New group"),
    h("p.hint", {}, "Everyone you pick is invited at once; each message goes to each member end-to-end encrypted."),
    form));
  name.focus();
}

async function create(form, nameField) {
  const members = [...form.querySelectorAll("input[name=member]:checked")].map((box) => box.value);
  if (!nameField.value.trim() || !members.length) { showError(new Error("Give the group a name and pick at least one contact.")); return; }
  try {
    const group = await post("/v1/groups", { name: nameField.value.trim(), members });
    groups.set(group.id, group);
    announce(`Created ${group.name}`);
    await loadConversations();
    location.hash = `#/c/${seg(group.conversation)}`;
  } catch (error) { showError(error); }
}

// --- the group info panel ---------------------------------------------------------

/** The panel's toggle for a conversation's header, or null for a one-to-one one. */
export function groupInfoButton(group) {
  if (!group) return null;
  return h("button", {
    type: "button", id: "group-info-button", "aria-expanded": "false", "aria-controls": "group-info",
    onclick: (e) => {
      const panel = document.getElementById("group-info");
      if (!panel) return;
      panel.hidden = !panel.hidden;
      e.currentTarget.setAttribute("aria-expanded", panel.hidden ? "false" : "true");
      if (!panel.hidden) drawInfo(panel, group.id);
    },
  }, "Group info");
}

/** The panel itself (hidden until its button is pressed). */
export function groupInfoPanel(group) {
  return group ? h("section.group-info", { id: "group-info", hidden: true, "aria-label": "Group info" }) : null;
}

/** Redraw an open panel after the group changed (an event, or our own change). */
export function refreshGroupInfo(groupId) {
  const panel = document.getElementById("group-info");
  if (panel && !panel.hidden && panel.dataset.group === groupId) drawInfo(panel, groupId);
}

function drawInfo(panel, groupId) {
  const group = groups.get(groupId);
  if (!group) return;
  panel.dataset.group = groupId;
  const admin = group.me_admin && group.state === "active";
  const path = `/v1/groups/${seg(group.id)}`;
  const members = [...group.members].sort((a, b) => Number(b.admin) - Number(a.admin));
  const memberItem = (m) => h("li.member", { dataset: { peer: m.peer } },
    h("span", {}, memberName(m)), m.admin ? h("span.tag", {}, "admin") : null,
    admin && !m.me && has("PATCH", "/v1/groups/{group}") ? h("button", {
      type: "button", onclick: () => change(patch(path, { admins: { [m.admin ? "remove" : "add"]: [m.peer] } })),
    }, m.admin ? "Remove admin" : "Make admin") : null,
    admin && !m.me && has("DELETE", "/v1/groups/{group}/members/{peer}") ? h("button.danger", {
      type: "button", "aria-label": `Remove ${memberName(m)}`,
      onclick: () => window.confirm(`Remove ${memberName(m)} from ${group.name}?`) && change(del(`${path}/members/${seg(m.peer)}`)),
    }, "Remove") : null);
  const inGroup = new Set(group.members.map((m) => m.peer));
  const candidates = [...state.contacts.values()].filter((c) => !inGroup.has(c.peer_id) && !c.blocked);
  const addSelect = h("select", { id: "group-add-select", "aria-label": "Contact to add" },
    candidates.map((c) => h("option", { value: c.peer_id }, c.name)));
  const rename = h("input", { id: "group-rename", type: "text", value: group.name, "aria-label": "Group name", maxlength: 100 });
  clear(panel,
    h("div.group-photo-row", {},
      group.photo ? h("img.avatar", { id: "group-photo", src: group.photo.url, alt: `Photo of ${group.name}`, width: 40, height: 40 }) : null,
      h("h2", {}, group.name)),
    admin && has("PATCH", "/v1/groups/{group}") && has("POST", "/v1/media") ? photoControls(group, path) : null,
    h("p.hint", {}, `${membersLine(group)} · ${group.log_length} membership change${group.log_length === 1 ? "" : "s"}`,
      group.state !== "active" ? ` · ${{ request: "invitation", left: "you left", removed: "you were removed" }[group.state] || group.state}` : ""),
    h("ul.members", { id: "group-members", "aria-label": "Members" }, members.map(memberItem)),
    admin && candidates.length && has("POST", "/v1/groups/{group}/members") ? h("form.inline", {
      onsubmit: (e) => { e.preventDefault(); change(post(`${path}/members`, { members: [addSelect.value] })); },
    }, addSelect, h("button", { type: "submit", id: "group-add" }, "Add member")) : null,
    admin && has("PATCH", "/v1/groups/{group}") ? h("form.inline", {
      onsubmit: (e) => { e.preventDefault(); if (rename.value.trim()) change(patch(path, { name: rename.value.trim() })); },
    }, rename, h("button", { type: "submit", id: "group-rename-button" }, "Rename")) : null,
    group.state === "active" && has("POST", "/v1/groups/{group}/leave") ? h("button.danger", {
      type: "button", id: "group-leave",
      onclick: () => window.confirm(`Leave ${group.name}? You will get no more of its messages.`) && change(post(`${path}/leave`)),
    }, "Leave group") : null);
}

/** The image types the node makes a group photo from (it makes a small square WebP). */
const PHOTO_INPUT_TYPES = ["image/jpeg", "image/png", "image/webp", "image/gif"];

/** Set (upload, then name the upload) or remove the group's photo: admins only. */
function photoControls(group, path) {
  const file = h("input", {
    id: "group-photo-file", type: "file", accept: PHOTO_INPUT_TYPES.join(","),
    onchange: async () => {
      const picked = file.files && file.files[0];
      if (!picked) return;
      try {
        const uploaded = await post(`/v1/media?name=${seg(picked.name || "photo")}`, picked);
        await change(patch(path, { photo: uploaded.id }));
        announce(`Set the photo of ${group.name}`);
      } catch (error) { showError(error); }
    },
  });
  return h("div.group-photo-row", {},
    h("label", { for: "group-photo-file" }, group.photo ? "Change photo" : "Set a photo"), file,
    group.photo ? h("button", {
      type: "button", id: "group-photo-remove", onclick: () => change(patch(path, { photo: null })),
    }, "Remove photo") : null);
}

/** A change of the group: the node answers with the group as it is now. */
async function change(request) {
  try {
    const group = await request;
    if (group && group.id) groups.set(group.id, group);
    await loadConversations();
    changed("groups");
    if (group && group.id) refreshGroupInfo(group.id);
  } catch (error) { showError(error); }
}

/** In place of the composer of a group you cannot write to (yet, or any more). */
export function groupClosed(group) {
  const why = {
    request: "You were added to this group: accept the invitation (Requests) to write in it.",
    left: "You left this group.",
    removed: "You were removed from this group.",
  }[group.state] || "You cannot write in this group.";
  return h("p.group-closed", { id: "group-closed", role: "note" }, why);
}

// --- invitations -----------------------------------------------------------------

/** Groups this node was invited to and has not answered, for the Requests page. */
export function groupInvitations() {
  return [...groups.values()].filter((g) => g.state === "request");
}

export function invitationItem(group, redraw) {
  const path = `/v1/groups/${seg(group.id)}`;
  const act = async (action) => {
    try {
      await post(`${path}/${action}`);
      await Promise.all([loadGroups(), loadConversations()]);
      redraw();
    } catch (error) { showError(error); }
  };
  const by = group.members.find((m) => m.peer === group.created_by);
  return h("li.request.group-invite", { dataset: { group: group.id } },
    h("div.who", {}, h("strong", {}, group.name), h("span.tag", {}, "group"), h("span.tag", {}, membersLine(group))),
    h("p.preview", {}, `Started by ${by ? memberName(by) : nameOf(group.created_by)}`),
    h("div.actions", {},
      h("button.primary", { type: "button", onclick: () => act("accept") }, "Join"),
      has("POST", "/v1/groups/{group}/decline") ? h("button", { type: "button", onclick: () => act("decline") }, "Decline") : null,
      has("POST", "/v1/groups/{group}/block") ? h("button.danger", { type: "button", onclick: () => act("block") }, "Block") : null));
}
