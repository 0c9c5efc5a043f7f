"""The one look every d1bench chart shares.

Charts are drawn on plain :class:`matplotlib.figure.Figure` objects, not
through pyplot's global state: a notebook cell that returns one shows it once
(pyplot would show it a second time), a test can draw hundreds without
leaking memory, and the style applies only inside :func:`styled` functions
instead of changing the user's own plots.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.rcsetup import cycler
from matplotlib.ticker import FuncFormatter

__all__ = [
    "PALETTE",
    "STYLE",
    "color_for",
    "finish",
    "new_figure",
    "no_data",
    "style",
    "styled",
    "thousands",
]

def _show_figures_in_ipython() -> None:
    """Let IPython display a returned Figure as a PNG.

    matplotlib loads the inline backend lazily, so a Figure built without
    pyplot would print as ``<Figure size ...>`` until some pyplot call loads
    it.  Register a PNG formatter unless the user's session already has one.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return
    ip = get_ipython()
    if ip is None:
        return
    formatter = ip.display_formatter.formatters["image/png"]
    try:
        formatter.lookup_by_type(Figure)
    except KeyError:
        def png(fig: Figure) -> bytes:
            import io

            buf = io.BytesIO()
            fig.savefig(buf, format="png", bbox_inches="tight")
            return buf.getvalue()

        formatter.for_type(Figure, png)


_show_figures_in_ipython()

#: Colour-blind-safe categorical palette (Okabe and Ito), in the order series get it.
PALETTE = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # green
    "#CC79A7",  # pink
    "#56B4E9",  # sky
    "#D55E00",  # vermilion
    "#F0E442",  # yellow
    "#000000",  # black
)

#: rcParams applied while a chart is built.
STYLE: dict[str, Any] = {
    "figure.figsize": (8.0, 4.5),
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "axes.edgecolor": "#444444",
    "axes.grid": True,
    "axes.grid.which": "major",
    "grid.color": "#dddddd",
    "grid.linewidth": 0.8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "font.family": "DejaVu Sans",
    "axes.prop_cycle": cycler(color=PALETTE),
    "lines.linewidth": 1.6,
}

F = TypeVar("F", bound=Callable[..., Figure])


@contextmanager
def style() -> Iterator[None]:
    """Apply d1bench's chart style inside a ``with`` block, then restore the user's."""
    with matplotlib.rc_context(STYLE):  # type: ignore[arg-type]  # its keys are rcParams names
        yield


def styled(func: F) -> F:
    """Decorator: build the chart under :func:`style` (text and grids read it at creation)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        with style():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def new_figure(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] | None = None,
               sharex: bool = False, sharey: bool = False) -> tuple[Figure, Any]:
    """A figure outside pyplot with a constrained layout, and its axes."""
    fig = Figure(figsize=figsize or STYLE["figure.figsize"], layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=sharex, sharey=sharey, squeeze=True)
    return fig, axes


def finish(ax: Axes, title: str, xlabel: str, ylabel: str, *, legend: bool | None = None) -> Axes:
    """Title and axis labels (with units) on ``ax``; a legend when it has labelled series."""
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    handles, labels = ax.get_legend_handles_labels()
    if legend is None:
        legend = any(label and not label.startswith("_") for label in labels)
    if legend and handles:
        ax.legend()
    return ax


def color_for(names: Sequence[str]) -> dict[str, str]:
    """A stable colour for each name (templates, index sets), cycling the palette.

    >>> color_for(["b", "a"])["a"] == PALETTE[0]
    True
    """
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(sorted(set(names)))}


def no_data(ax: Axes, message: str = "no data") -> None:
    """Mark an axes as empty instead of drawing a misleading blank plot."""
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center",
            color="#777777", fontsize=11)
    ax.set_xticks([])
    ax.set_yticks([])


def _thousands(value: float, _pos: object = None) -> str:
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:g}{suffix}"
    return f"{value:g}"


#: Tick formatter writing 1,500,000 as 1.5M.
thousands = FuncFormatter(_thousands)
