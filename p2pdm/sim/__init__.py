"""``p2pdm sim``: many whole p2pdm nodes, with faults and measurements.

- :mod:`~p2pdm.sim.network`: :func:`open_sim_network`, N running nodes
  (``serve_node``, as ``p2pdm run``) with contacts, over TCP or memory;
  :mod:`~p2pdm.sim.layout`: who joins through whom, identities, contacts;
  :mod:`~p2pdm.sim.simnode`: one node, its probe, what its store says after;
- :mod:`~p2pdm.sim.nodes`: what a run drives, nodes in this process;
  :mod:`~p2pdm.sim.remote`, :mod:`~p2pdm.sim.worker` and
  :mod:`~p2pdm.sim.pipe`: real-clock nodes spread over worker processes;
- :mod:`~p2pdm.sim.scenario`: :func:`simulate`, traffic, offline recipients,
  churn and partitions, then a drain; :mod:`~p2pdm.sim.options`: the
  scenario's options, its progress and its outcome;
- :mod:`~p2pdm.sim.timeline`: scenario files and the seeded plan of a run;
- :mod:`~p2pdm.sim.metrics`: per-message records and invariants;
- :mod:`~p2pdm.sim.report`: ``report.json``, ``report.md``, plots;
- :mod:`~p2pdm.sim.determinism`: exact replay of virtual-time runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from p2pdm.sim.network import SIM_UPKEEP, SimNetwork, open_sim_network
    from p2pdm.sim.options import Outcome, Progress, SimOptions
    from p2pdm.sim.report import invariants_hold, summarize, write_report
    from p2pdm.sim.scenario import simulate
    from p2pdm.sim.simnode import SimNode
    from p2pdm.sim.timeline import Timeline, load_scenario

# Loaded on first use, so that importing a light module of this package (the
# pytest plugin) does not pull in trio, libp2p and the node.
_WHERE = {
    "SIM_UPKEEP": "network",
    "SimNetwork": "network",
    "SimNode": "simnode",
    "open_sim_network": "network",
    "invariants_hold": "report",
    "summarize": "report",
    "write_report": "report",
    "Outcome": "options",
    "Progress": "options",
    "SimOptions": "options",
    "simulate": "scenario",
    "Timeline": "timeline",
    "load_scenario": "timeline",
}

__all__ = [
    "SIM_UPKEEP",
    "Outcome",
    "Progress",
    "SimNetwork",
    "SimNode",
    "SimOptions",
    "Timeline",
    "invariants_hold",
    "load_scenario",
    "open_sim_network",
    "simulate",
    "summarize",
    "write_report",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
