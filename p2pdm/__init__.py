"""p2pdm: a peer-to-peer direct-messaging node."""

__version__ = "0.1.0"

__all__ = ["__version__"]
