"""The ``p2pdm`` command: ``main`` parses and dispatches; one module per
group of subcommands (archive, chat, run, settings, sim, token).
"""

from p2pdm.cli.main import main

__all__ = ["main"]
