"""A simulation report's plots: the latency CDF and messages over time, as PNG files.

How this works: :func:`draw_plots` imports matplotlib only when it is
called (so ``import p2pdm`` and the CLI never load it) and draws two
figures from an :class:`~p2pdm.sim.options.Outcome`. It returns the files
it wrote with a caption each, or why it wrote none, for ``report.md``.
``scripts/simulate`` installs matplotlib (the ``sim`` extra); without it the
report says how to get the plots.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from p2pdm.sim.options import Outcome

__all__ = ["NO_MATPLOTLIB", "Plot", "draw_plots"]

#: What report.md and the command say when matplotlib is missing.
NO_MATPLOTLIB: Final = (
    "no plots: matplotlib is not installed in this Python; `scripts/simulate` installs it,"
    " or run `pip install 'p2pdm[sim]'` (in .venv: `.venv/bin/pip install -e '.[sim]'`)"
    " and simulate again"
)
#: Latencies spanning more than this factor (fast direct deliveries and
#: minutes-long mailbox ones) get a logarithmic axis, so both are readable.
LOG_SCALE_SPAN: Final = 100.0
#: Figure size in inches (at matplotlib's default 100 dpi: 800 x 500 pixels).
FIGURE_INCHES: Final = (8.0, 5.0)
#: Path, colour, line style and width: "all" wide and pale underneath, so
#: the paths drawn over it stay visible where they coincide with it.
_CDF_STYLES: Final = (
    ("all", "#b0b0b0", "-", 5.0),
    ("direct", "#1f77b4", "--", 1.8),
    ("mailbox", "#d62728", "-.", 1.8),
)


@dataclass(frozen=True, slots=True)
class Plot:
    """A PNG written into the report directory."""

    file: str
    caption: str


def draw_plots(outcome: Outcome, out: Path) -> tuple[list[Plot], list[str]]:
    """Write the plots into ``out``; returns them, and notes on what was not drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [], [NO_MATPLOTLIB]
    plots: list[Plot] = []
    notes: list[str] = []
    if _latency_cdf(plt, outcome, out / "latency_cdf.png"):
        plots.append(Plot("latency_cdf.png", "Delivery latency, send to the recipient's commit"))
    else:
        notes.append("no latency plot: no message was delivered")
    _deliveries(plt, outcome, out / "deliveries.png")
    plots.append(Plot("deliveries.png", "Messages sent and delivered over time"))
    return plots, notes


def _latency_cdf(plt: Any, outcome: Outcome, file: Path) -> bool:
    records = list(outcome.recorder.messages.values())
    series: dict[str, list[float]] = {}
    for name, _, _, _ in _CDF_STYLES:
        values = sorted(
            r.latency_s
            for r in records
            if r.latency_s is not None and (name == "all" or r.path == name)
        )
        if values:
            series[name] = values
    if not series:
        return False
    fig, ax = plt.subplots(figsize=FIGURE_INCHES)
    for name, colour, style, width in _CDF_STYLES:
        xs = series.get(name)
        if not xs:
            continue
        ys = [(i + 1) / len(xs) for i in range(len(xs))]
        ax.step(
            xs,
            ys,
            where="post",
            color=colour,
            linestyle=style,
            linewidth=width,
            marker="o" if name != "all" and len(xs) <= 50 else None,
            markersize=3,
            label=f"{name} ({len(xs)} messages)",
        )
    every = series["all"]
    low, high = every[0], every[-1]
    log = low > 0 and high / low > LOG_SCALE_SPAN
    if log:
        ax.set_xscale("log")
    ax.set_xlabel("latency, send to the recipient's commit (s" + (", log scale)" if log else ")"))
    ax.set_ylabel("fraction of the delivered messages")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Delivery latency CDF ({_links_text(outcome)})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(file)
    plt.close(fig)
    return True


def _deliveries(plt: Any, outcome: Outcome, file: Path) -> None:
    """Cumulative sent and delivered above, messages in flight below, phases marked."""
    records = list(outcome.recorder.messages.values())
    sent = sorted(r.sent_s for r in records)
    delivered = sorted(t for t, _ in outcome.recorder.deliveries)
    fig, (top, bottom) = plt.subplots(
        2, 1, sharex=True, figsize=FIGURE_INCHES, gridspec_kw={"height_ratios": [2, 1]}
    )
    # Sent wide and pale underneath, delivered thin and dashed on top: where
    # every message arrives within a second the lines coincide, and both show.
    top.step(
        [0.0, *sent],
        range(len(sent) + 1),
        where="post",
        color="#9ecae1",
        linewidth=5.0,
        label=f"sent ({len(sent)})",
    )
    top.step(
        [0.0, *delivered],
        range(len(delivered) + 1),
        where="post",
        color="#08306b",
        linestyle="--",
        linewidth=1.5,
        label=f"delivered ({len(delivered)})",
    )
    top.set_ylabel("messages (cumulative)")
    top.set_title("Messages sent and delivered over time")
    events = sorted([(t, 1) for t in sent] + [(t, -1) for t in delivered])
    times, waiting, count = [0.0], [0], 0
    for t, step in events:
        count += step
        times.append(t)
        waiting.append(count)
    bottom.step(times, waiting, where="post", color="#d62728", linewidth=1.5)
    bottom.set_ylabel("not yet delivered")
    bottom.set_xlabel("simulation time since the run started (s)")
    start = 0.0
    for name, seconds in outcome.phase_s.items():
        end = start + seconds
        if name != "forming":
            for ax in (top, bottom):
                ax.axvline(start, color="#888888", linestyle=":", linewidth=1)
            top.text(start, 0, f" {name}", rotation=90, va="bottom", fontsize=8, color="#555555")
        start = end
    for ax in (top, bottom):
        ax.grid(True, alpha=0.3)
    top.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(file)
    plt.close(fig)


def _links_text(outcome: Outcome) -> str:
    faults = outcome.options.link_faults()
    text = f"links {faults.latency * 1000:g} ms"
    if faults.jitter:
        text += f" + 0-{faults.jitter * 1000:g} ms jitter"
    if faults.loss:
        text += f", loss {faults.loss:g}"
    return text + " one way"
