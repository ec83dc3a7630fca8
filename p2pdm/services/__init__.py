"""The protocol services a running node offers over the network.

``dm`` delivers envelopes directly (``/p2pdm/dm/1.0.0``);
``mailbox_server`` holds envelopes for offline recipients and
``mailbox_client`` deposits and fetches them (``/p2pdm/mailbox/1.0.0``).
They reach the network only through the ``Network`` port.
"""
