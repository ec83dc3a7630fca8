"""The protocol services a running node offers over the network.

``dm`` delivers envelopes directly (``/p2pdm/dm/1.0.0``): its scheduler,
sender, receiver and mailbox deposits and fetches, one module each;
``mailbox_server`` holds envelopes for offline recipients and
``mailbox_client`` deposits and fetches them (``/p2pdm/mailbox/1.0.0``).
``inbound`` admits inbound streams for both (streams per peer, rate,
disconnect on a breach); ``limits`` holds every limit of this layer. They
reach the network only through the ports in ``ports``.
"""
