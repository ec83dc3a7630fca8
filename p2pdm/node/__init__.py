"""The node: one person's messenger, its event log and its API tokens.

``Node`` (node.py) holds the store and the identity and is what the API and
the services call; ``Messenger`` turns texts into envelopes and accepted
envelopes into stored messages; ``events`` wakes API listeners; ``tokens``
checks scoped API tokens; ``batching`` groups store commits.
"""
