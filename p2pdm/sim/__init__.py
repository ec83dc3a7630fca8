"""``p2pdm sim``: many whole p2pdm nodes, with faults and measurements.

- :mod:`~p2pdm.sim.network`: :func:`open_sim_network`, N running nodes
  (``serve_node``, as ``p2pdm run``) with contacts, over TCP or memory;
- :mod:`~p2pdm.sim.nodes`: what a run drives, nodes in this process;
  :mod:`~p2pdm.sim.remote`, :mod:`~p2pdm.sim.worker` and
  :mod:`~p2pdm.sim.pipe`: real-clock nodes spread over worker processes;
- :mod:`~p2pdm.sim.scenario`: :func:`simulate`, traffic, offline recipients,
  churn and partitions, then a drain;
- :mod:`~p2pdm.sim.timeline`: scenario files and the seeded plan of a run;
- :mod:`~p2pdm.sim.metrics`: per-message records and invariants;
- :mod:`~p2pdm.sim.report`: ``report.json``, ``report.md``, plots;
- :mod:`~p2pdm.sim.determinism`: exact replay of virtual-time runs.
"""

from p2pdm.sim.network import SIM_UPKEEP, SimNetwork, SimNode, open_sim_network
from p2pdm.sim.report import invariants_hold, summarize, write_report
from p2pdm.sim.scenario import Outcome, Progress, SimOptions, simulate
from p2pdm.sim.timeline import Timeline, load_scenario

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
