"""Example bots on the local API (``scripts/echo-bot``, ``scripts/support-bot``)."""
