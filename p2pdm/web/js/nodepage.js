// The node: PeerID, addresses, counts, DHT, mailboxes, settings, signed-in browsers.

import { del, get, has, patch } from "./api.js";
import { bytes, clear, h, showError, when } from "./dom.js";
import { loadNode, state } from "./state.js";
import { profileSection } from "./profile.js";
import { notificationControls } from "./notify.js";

const SETTING_LABELS = {
  read_receipts: "Send read receipts (and typing indicators)",
  demo_offer: "Offer the demo contact to newcomers",
};

export async function renderNodePage(main) {
  try { await loadNode(); } catch (error) { showError(error); return; }
  const node = state.node;
  const counts = node.counts || {};
  const dht = node.dht;
  clear(main, h("section.page.node", {},
    h("h1", {}, node.name || "This node"),
    h("dl.facts", {},
      fact("PeerID", h("code.wrap", { id: "peer-id" }, node.peer_id)),
      fact("Addresses", node.addrs.length ? h("ul.plain", {}, node.addrs.map((a) => h("li", {}, h("code.wrap", {}, a)))) : "not on the network"),
      fact("Contacts", counts.contacts),
      fact("Messages", counts.messages),
      fact("Unread", counts.unread),
      fact("Message requests", counts.requests),
      fact("Outbox (waiting to be delivered)", counts.outbox),
      counts.waiting_for_keys ? fact("Waiting for a contact's keys", counts.waiting_for_keys) : null,
      fact("Connected peers", dht && dht.connected_peers !== undefined ? String(dht.connected_peers) : `${state.online.size} contacts online`),
      fact("DHT routing table", dht && dht.routing_table !== undefined ? `${dht.routing_table} peers` : "not on the network"),
      fact("DHT records held", dht ? `${dht.records} records, ${dht.providers} providers` : "not on the network"),
      fact("Reachable from outside", h("span", { id: "reachability" }, reachability(node.reachability))),
      node.reachability && node.reachability.relayed_addrs.length
        ? fact("Addresses through relays", h("ul.plain", {}, node.reachability.relayed_addrs.map((a) => h("li", {}, h("code.wrap", {}, a)))))
        : null,
      fact("Version", node.version),
      fact("Running since", when(node.started_at_ms))),
    profileSection(),
    h("h2", {}, "Mailboxes"),
    h("div", { id: "mailboxes" }, "…"),
    h("h2", {}, "Settings"),
    h("form.settings", { id: "settings", onsubmit: (e) => e.preventDefault() }, settingsControls()),
    h("h2", {}, "Notifications"),
    notificationControls(),
    h("h2", {}, "Signed-in browsers"),
    h("ul.sessions", { id: "sessions" }),
    h("button", { type: "button", id: "sign-out", onclick: signOut }, "Sign out of this browser")));
  drawMailboxes();
  drawSessions();
}

const REACH = {
  public: "yes: other nodes can dial this one",
  private: "no: behind a router or firewall (reached through relays and hole punching)",
  unknown: "not known yet (too few peers have checked)",
  local: "local only: it listens on loopback, so only nodes on this computer can dial it",
};

/** GET /v1/node's `reachability` (null off the network), in words. */
function reachability(r) {
  if (!r) return "not on the network";
  const parts = [REACH[r.status] || r.status, `DHT ${r.dht_mode}`];
  if (r.lan_peers) parts.push(`${r.lan_peers} on this network`);
  const punch = r.hole_punch || {};
  if (punch.successes || punch.failures) parts.push(`hole punching ${punch.successes} ok, ${punch.failures} failed`);
  if (r.relay) parts.push(`relaying for ${r.relay.reservations} nodes`);
  return parts.join(" · ");
}

function fact(term, value) {
  return [h("dt", {}, term), h("dd", {}, value === undefined ? "—" : value)];
}

function settingsControls() {
  const controls = [];
  for (const [key, value] of Object.entries(state.settings)) {
    if (typeof value === "boolean") {
      controls.push(h("label.check", {},
        h("input", {
          type: "checkbox", checked: value, name: key,
          onchange: async (e) => {
            try { state.settings = await patch("/v1/settings", { [key]: e.target.checked }); } catch (error) { e.target.checked = !e.target.checked; showError(error); }
          },
        }), " ", SETTING_LABELS[key] || key.replaceAll("_", " ")));
    } else if (key === "name") {
      const input = h("input", { type: "text", value, id: "setting-name", autocomplete: "off" });
      controls.push(h("label", { for: "setting-name" }, "Your name (in new invites)"), input,
        h("button", {
          type: "button",
          onclick: async () => { try { state.settings = await patch("/v1/settings", { name: input.value.trim() }); } catch (error) { showError(error); } },
        }, "Save name"));
    }
  }
  return controls;
}

async function drawMailboxes() {
  const el = document.getElementById("mailboxes");
  if (!el) return;
  const outbox = `${state.node.counts.outbox || 0} messages wait in the outbox.`;
  if (!has("GET", "/v1/mailboxes")) { el.textContent = outbox; return; }
  try {
    const answer = await get("/v1/mailboxes");
    clear(el, h("dl.facts", {},
      fact("Used (where this node's mail waits)", mailboxesUsed(answer)),
      fact("Offered (held for others)", h("span", { id: "mailbox-offered" }, mailboxOffered(answer))),
      fact("Outbox", outbox),
      fact("Taken back (unsent)", h("span", { id: "mailbox-withdrawals" }, withdrawals(answer)))));
  } catch (error) { el.textContent = error.message; }
}

/** GET /v1/mailboxes' `used`: each mailbox's PeerID and address, and whether our record names it. */
function mailboxesUsed(answer) {
  if (!answer.networked) return "not on the network";
  if (!answer.used.length) return "none known yet";
  return h("ul.plain", { id: "mailboxes-used" }, answer.used.map((m) => h("li", {},
    h("code.wrap", {}, m.addrs[0] || m.peer_id),
    m.named ? " (named in this node's record)" : " (a nearby mailbox found in the DHT)")));
}

/** GET /v1/mailboxes' `offered` (null: this node runs no mailbox), in words. */
function mailboxOffered(answer) {
  const o = answer.offered;
  if (!o) return answer.networked ? "none (run the node with --mailbox to offer one)" : "not on the network";
  return `${o.envelopes} of ${o.max_envelopes} envelopes, ${bytes(o.bytes)} of ${bytes(o.max_bytes)}, `
    + `for ${o.recipients} recipient${o.recipients === 1 ? "" : "s"}; `
    + `at most ${o.max_envelopes_per_recipient} envelopes (${bytes(o.max_bytes_per_recipient)}) per recipient, `
    + `kept ${Math.round(o.retention_s / 86400)} days`
    + (o.withdrawn ? `; ${o.withdrawn} taken back by their senders` : "");
}

/** GET /v1/mailboxes' `withdrawals`: deposits of unsent messages taken back, or still to. */
function withdrawals(answer) {
  const w = answer.withdrawals || { pending: 0, withdrawn: 0 };
  const given = `${w.withdrawn} given back by mailboxes since the node started`;
  return w.pending ? `${w.pending} still to take back; ${given}` : given;
}

async function drawSessions() {
  const list = document.getElementById("sessions");
  if (!list) return;
  try {
    const { sessions } = await get("/v1/sessions");
    const mine = state.node.token && state.node.token.name;
    clear(list, sessions.map((s) => h("li", {},
      `Signed in ${when(s.created_at_ms)}${s.id === mine ? " (this browser)" : ""} `,
      s.id === mine ? null : h("button", {
        type: "button", onclick: async () => { await del(`/v1/sessions/${s.id}`); drawSessions(); },
      }, "Sign out"))));
  } catch (error) { showError(error); }
}

async function signOut() {
  const name = state.node.token && state.node.token.name;
  try { if (name && name.startsWith("web-session-")) await del(`/v1/sessions/${name}`); } catch (error) { showError(error); }
  location.hash = "#/";
  location.reload();
}
