// Your profile (name, handle, bio, avatar: published in your signed record for
// anyone to read) and finding people by handle, with every claimant shown.
// A handle proves nothing: anyone can claim any handle, name and avatar, so
// the app shows who claims it, how long this node has seen the claim, and the
// fingerprint to compare, and never marks a claimant as the real one.

import { del, get, has, patch, post, seg } from "./api.js";
import { announce, clear, h, showError } from "./dom.js";
import { loadContacts, loadConversations, state } from "./state.js";

/** The node takes pictures up to this size (MAX_AVATAR_INPUT_BYTES); larger ones are shrunk here first. */
const MAX_AVATAR_INPUT_BYTES = 160 * 1024;
/** A shrunk avatar's longest side (the node makes a small WebP from it anyway). */
const AVATAR_SIDE_PX = 512;
const AVATAR_TYPES = ["image/jpeg", "image/png", "image/webp", "image/gif"];

const avatarSrc = (p) => (p.avatar ? `data:${p.avatar_type || "image/webp"};base64,${p.avatar}` : null);

function avatar(p, label) {
  const src = avatarSrc(p);
  return src
    ? h("img.avatar", { src, alt: label, width: 48, height: 48 })
    : h("span.avatar.none", { "aria-hidden": "true" }, (p.name || p.handle || "?").slice(0, 1).toUpperCase());
}

// --- your profile (on the Node page) ---------------------------------------------

/** The "Your profile" section, or nothing when the node has no profile endpoint. */
export function profileSection() {
  if (!has("GET", "/v1/profile") || !has("PATCH", "/v1/profile")) return null;
  const box = h("div", { id: "profile" }, "…");
  drawProfile(box);
  return [h("h2", {}, "Your profile"), box];
}

async function drawProfile(box) {
  let profile;
  try { profile = await get("/v1/profile"); } catch (error) { showError(error); return; }
  let picked = null; // base64 of a newly chosen picture; "" removes the avatar
  const preview = h("div.avatar-preview", { id: "profile-avatar" }, avatar(profile, "Your avatar"));
  const name = h("input", { id: "profile-name", type: "text", value: profile.name || "", autocomplete: "off", maxlength: 128 });
  const handle = h("input", { id: "profile-handle", type: "text", value: profile.handle || "", autocomplete: "off", placeholder: "e.g. alice.k", spellcheck: "false", maxlength: 64 });
  const bio = h("textarea", { id: "profile-bio", rows: 2, maxlength: 160 }, profile.bio || "");
  const file = h("input", {
    id: "profile-avatar-file", type: "file", accept: AVATAR_TYPES.join(","),
    onchange: async (e) => {
      const chosen = e.target.files && e.target.files[0];
      if (!chosen) return;
      try {
        const blob = await fitAvatar(chosen);
        picked = await base64Of(blob);
        clear(preview, h("img.avatar", { src: URL.createObjectURL(blob), alt: "Your new avatar", width: 48, height: 48 }));
      } catch (error) { showError(error); }
    },
  });
  const save = async () => {
    const body = { name: name.value.trim(), handle: handle.value.trim(), bio: bio.value.trim() };
    if (picked !== null) body.avatar = picked;
    try {
      await patch("/v1/profile", body);
      announce("Profile published");
      drawProfile(box);
    } catch (error) { showError(error); }
  };
  const unpublish = async () => {
    if (!window.confirm("Stop publishing your profile? Nobody will find you by your handle.")) return;
    try { await del("/v1/profile"); announce("Profile no longer published"); drawProfile(box); } catch (error) { showError(error); }
  };
  clear(box,
    h("p.hint", { id: "profile-state" }, profile.published
      ? "Published: anyone who looks up your handle or PeerID can read this."
      : "Not published: nobody can find you by a handle until you save one."),
    h("p", {}, "Your fingerprint ", h("code", { id: "profile-fingerprint" }, profile.fingerprint),
      h("span.hint", {}, " (people who look you up see it beside your handle; read it to them to tell you apart)")),
    h("form.profile", { onsubmit: (e) => { e.preventDefault(); save(); } },
      preview,
      h("label", { for: "profile-avatar-file" }, "Avatar (a picture; shrunk and stripped of metadata)"), file,
      profile.avatar ? h("button", { type: "button", id: "profile-avatar-remove", onclick: () => { picked = ""; clear(preview, avatar({ name: name.value }, "")); } }, "Remove avatar") : null,
      h("label", { for: "profile-name" }, "Name"), name,
      h("label", { for: "profile-handle" }, "Handle (letters a–z, digits, . and _)"), handle,
      h("label", { for: "profile-bio" }, "Bio"), bio,
      h("div.row", {},
        h("button.primary", { type: "submit", id: "profile-save" }, "Save and publish"),
        profile.published && has("DELETE", "/v1/profile") ? h("button.danger", { type: "button", id: "profile-unpublish", onclick: unpublish }, "Stop publishing") : null)));
}

/** A picture the node accepts: as it is when small enough, else shrunk to a JPEG. */
async function fitAvatar(file) {
  if (AVATAR_TYPES.includes(file.type) && file.size <= MAX_AVATAR_INPUT_BYTES) return file;
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, AVATAR_SIDE_PX / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
  if (!blob || blob.size > MAX_AVATAR_INPUT_BYTES) throw new Error("That picture cannot be made small enough");
  return blob;
}

async function base64Of(blob) {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

// --- find by handle (on the New chat page) ---------------------------------------

/** The "Find by handle" box, or nothing when the node has no directory. */
export function findByHandle() {
  if (!has("GET", "/v1/directory")) return null;
  const input = h("input", { id: "find-handle", type: "text", placeholder: "alice.k", autocomplete: "off", spellcheck: "false", required: true });
  const results = h("div", { id: "find-results", "aria-live": "polite" });
  return h("form.find", { onsubmit: (e) => { e.preventDefault(); lookUp(input.value, results); } },
    h("h2", {}, "Find by handle"),
    h("label", { for: "find-handle" }, "Their handle"),
    h("div.row", {}, input, h("button", { type: "submit", id: "find-button" }, "Look up")),
    results);
}

async function lookUp(value, results) {
  const wanted = value.trim().replace(/^@/, "");
  if (!wanted) return;
  clear(results, h("p.hint", {}, `Asking the network who claims @${wanted}… (up to 20 seconds)`));
  let answer;
  try {
    answer = await get(`/v1/directory?handle=${seg(wanted)}`);
  } catch (error) {
    clear(results, h("p.hint.error", {}, error.message));
    return;
  }
  const claimants = answer.claimants || [];
  clear(results,
    claimants.length
      ? h("p.hint", { id: "find-warning" },
        claimants.length === 1 ? `1 node claims @${answer.handle}. ` : `${claimants.length} nodes claim @${answer.handle}. `,
        "Anyone can claim any handle, name and picture: a claim proves nothing. Before trusting someone, compare the safety number with them.")
      : h("p.hint", { id: "find-none" }, `Nobody on the network claims @${answer.handle} right now.`),
    claimants.length ? h("ul.claimants", { "aria-label": `Claimants of @${answer.handle}` }, claimants.map((c) => claimantItem(c, answer.handle))) : null);
}

const RELATION = { self: "you", contact: "your contact", stranger: "not a contact" };

function claimantItem(claimant, handle) {
  const label = claimant.name || "no name given";
  return h("li.claimant", { dataset: { peer: claimant.peer_id, relation: claimant.relation } },
    avatar(claimant, `Picture ${label} chose`),
    h("div.who", {},
      h("strong", {}, label),
      h("span.tag", {}, RELATION[claimant.relation] || claimant.relation),
      claimant.bio ? h("p.bio", { dir: "auto" }, claimant.bio) : null,
      h("span.sub", {}, "fingerprint ", h("code", {}, claimant.fingerprint), ` · claim seen ${seenFor(claimant.seen_for_s)}`),
      h("span.sub.mono", {}, `…${claimant.peer_id.slice(-12)}`)),
    claimant.relation === "self" ? null : h("div.actions", {},
      h("button", { type: "button", onclick: () => startChat(claimant, handle) }, "Chat")));
}

/** "for 3 days", "just now": how long this node has seen the claim (not how long it is true). */
export function seenFor(seconds) {
  const units = [[86400, "day"], [3600, "hour"], [60, "minute"]];
  for (const [size, unit] of units) {
    const n = Math.floor(seconds / size);
    if (n >= 1) return `for ${n} ${unit}${n > 1 ? "s" : ""}`;
  }
  return "for the first time just now";
}

async function startChat(claimant, handle) {
  const contact = state.contacts.get(claimant.peer_id);
  if (contact) { location.hash = `#/c/${seg(claimant.peer_id)}`; return; }
  const name = window.prompt(
    `Chat with this claimant of @${handle} (fingerprint ${claimant.fingerprint})? `
    + "Your first message is a request they may accept. Name them on this device:",
    claimant.name || handle);
  if (name === null) return;
  try {
    const body = { peer_id: claimant.peer_id };
    if (name.trim()) body.name = name.trim();
    await post("/v1/contacts", body);
    await loadContacts();
    await loadConversations();
    location.hash = `#/c/${seg(claimant.peer_id)}`;
  } catch (error) { showError(error); }
}
