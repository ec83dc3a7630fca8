"""GET /v1/mailboxes: the mailboxes a node uses, and what the one it offers holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from p2pdm.errors import StreamRefused
from p2pdm.services.mailbox_client import MailboxClient
from p2pdm.services.mailbox_server import (
    MAILBOX_MAX_BYTES,
    MAILBOX_MAX_ENVELOPES,
    MAILBOX_MAX_ENVELOPES_PER_RECIPIENT,
)
from tests.api.conftest import check_documented
from tests.conftest import Api, Peer, node, serving
from tests.conftest import make_node as api_node


def api_of(peer: Peer) -> Api:
    return Api(peer.running.node, peer.running.api[1], peer.http)


async def test_off_the_network_no_mailbox_is_known() -> None:
    async with serving(api_node("alice")) as alice:
        response = await alice.call("GET", "/v1/mailboxes")
        await check_documented(alice, response, "GET", "/v1/mailboxes")
        assert response.json() == {
            "used": [],
            "offered": None,
            "withdrawals": {"pending": 0, "withdrawn": 0},
            "networked": False,
        }


@pytest.mark.net
async def test_a_mailbox_and_the_node_that_names_it(tmp_path: Path) -> None:
    async with node(tmp_path, "bob", mailbox=True) as bob:
        bob_addr = bob.running.node.addrs[0]
        async with node(tmp_path, "ann", bob.running, mailbox_peers=(bob_addr,)) as ann:
            response = await ann.http.get("/v1/mailboxes")
            await check_documented(api_of(ann), response, "GET", "/v1/mailboxes")
            used = response.json()
            assert used["networked"] and used["offered"] is None
            assert used["used"][0] == {"peer_id": bob.id, "addrs": [bob_addr], "named": True}

            empty = await bob.call("GET", "/v1/mailboxes")
            assert empty["offered"]["envelopes"] == empty["offered"]["bytes"] == 0
            assert empty["offered"]["recipients"] == 0
            assert empty["offered"]["max_envelopes"] == MAILBOX_MAX_ENVELOPES
            assert empty["offered"]["max_bytes"] == MAILBOX_MAX_BYTES
            per_recipient = empty["offered"]["max_envelopes_per_recipient"]
            assert per_recipient == MAILBOX_MAX_ENVELOPES_PER_RECIPIENT

            # ann leaves a message for carol, who is away, at bob's mailbox.
            carol = api_node("carol")
            a = ann.running.node
            a.add_contact_from_invite(carol.invite(), "carol")
            a.send_text(carol.peer_id, "see you at 8")
            envelope = a.store.outbox_for(carol.peer_id)[0].envelope
            client = MailboxClient(a.identity, ann.running.host)
            [result] = await client.deposit(bob.running.node.peer_id, [bob_addr], [envelope])
            assert result.ok, result

            response = await bob.http.get("/v1/mailboxes")
            await check_documented(api_of(bob), response, "GET", "/v1/mailboxes")
            held = response.json()["offered"]
            assert (held["envelopes"], held["bytes"], held["recipients"]) == (1, len(envelope), 1)

            # A second message for carol: one more envelope, still one recipient.
            a.send_text(carol.peer_id, "or at 9")
            second = a.store.outbox_for(carol.peer_id)[1].envelope
            [result] = await client.deposit(bob.running.node.peer_id, [bob_addr], [second])
            assert result.ok, result
            held = (await bob.call("GET", "/v1/mailboxes"))["offered"]
            assert (held["envelopes"], held["recipients"]) == (2, 1)

            # Over libp2p: the deposits went on 1.1.0, so they can be taken back;
            # a protocol the mailbox does not speak is a StreamRefused.
            mailbox = bob.running.node.peer_id
            first_id = a.store.outbox_for(carol.peer_id)[0].envelope_id
            assert await client.withdraw(mailbox, [bob_addr], [first_id]) == 1
            offered = (await bob.call("GET", "/v1/mailboxes"))["offered"]
            assert (offered["envelopes"], offered["withdrawn"]) == (1, 1)
            with pytest.raises(StreamRefused):
                await ann.running.host.open_stream(mailbox, "/p2pdm/none/1.0.0", [bob_addr])
