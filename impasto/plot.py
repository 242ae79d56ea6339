"""A picture of how a run went: the loss terms over the steps (matplotlib, imported only when used)."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

from .errors import ImageError
from .imageio import write_atomic

PLOT_FORMATS = (".png", ".svg", ".pdf")
_STYLE = {"content": "tab:blue", "style": "tab:orange", "tv": "tab:green"}


def loss_kinds(terms: dict[str, float]) -> dict[str, float]:
    """Sum per-layer terms ("content/relu4_2", "style/relu1_1", ..., "tv") into content, style and tv."""
    totals: dict[str, float] = {}
    for name, value in terms.items():
        kind = name.split("/")[0]
        totals[kind] = totals.get(kind, 0.0) + value
    return totals


def lower_limit(curves: dict[str, list[float]]) -> float | None:
    """The bottom of the log scale, when a curve's start would squash the rest: a run from the photo
    starts with a content term near 0, orders of magnitude below what the terms settle at. None: the
    curves' own range is fine."""
    def positive(values: Sequence[float]) -> list[float]:
        return [v for v in values if v > 0 and math.isfinite(v)]

    settled = positive([v for values in curves.values() for v in values[len(values) // 2:]])
    lowest = positive([v for values in curves.values() for v in values])
    if not settled or min(lowest) >= min(settled) / 30:
        return None
    return min(settled) / 3


def plot_losses(history: Sequence[dict[str, float]], path: str | os.PathLike,
                sizes: Sequence[int] | None = None, title: str = "") -> Path:
    """Draw the content, style and TV losses per step (log scale) into ``path`` (.png, .svg or .pdf),
    atomically. ``sizes`` (long edges, by scale index) labels the coarse-to-fine size changes."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state (Agg draws)
    from matplotlib.ticker import MaxNLocator

    path = Path(path)
    if path.suffix.lower() not in PLOT_FORMATS:
        raise ImageError(f"{path}: a plot must be one of {', '.join(PLOT_FORMATS)}")
    steps = [row["step"] for row in history]
    curves: dict[str, list[float]] = {}
    for row in history:
        kinds = loss_kinds({k: v for k, v in row.items() if k not in ("step", "scale", "loss")})
        for kind in _STYLE:
            if kind in kinds:
                curves.setdefault(kind, []).append(kinds[kind])
    figure = Figure(figsize=(7, 4), dpi=120, layout="constrained")
    axes = figure.add_subplot()
    for kind, values in curves.items():
        positive = [v if v > 0 and math.isfinite(v) else math.nan for v in values]  # log scale
        if len(values) == len(steps) and any(v == v for v in positive):
            axes.plot(steps, positive, color=_STYLE[kind], linewidth=1.6, label=kind)
    totals = [row["loss"] if row["loss"] > 0 else math.nan for row in history]
    if any(v == v for v in totals):
        axes.plot(steps, totals, color="0.35", linewidth=1, linestyle=":", label="total")
    axes.set_yscale("log")
    bottom = lower_limit(curves)
    if bottom is not None:
        axes.set_ylim(bottom=bottom)
    for before, row in zip(history, history[1:]):
        if row["scale"] != before["scale"]:  # coarse-to-fine: a new, larger size starts here
            axes.axvline(row["step"] - 0.5, color="0.6", linewidth=1, linestyle="--")
    if sizes is not None and len({row["scale"] for row in history}) > 1:  # label each size at its start
        for before, row in zip([None, *history], history):
            if (before is None or row["scale"] != before["scale"]) and int(row["scale"]) < len(sizes):
                x = max(row["step"] - 0.5, steps[0])
                axes.annotate(f"{sizes[int(row['scale'])]} px", (x, 0), xycoords=("data", "axes fraction"),
                              xytext=(4, 4), textcoords="offset points", fontsize=8, color="0.4")
    if steps:
        axes.set_xlim(steps[0], max(steps[-1], steps[0] + 1))
    axes.set_xlabel("step")
    axes.set_ylabel("weighted loss (log scale)")
    axes.set_title(title or "Loss per step", fontsize=10, loc="left")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(True, which="major", color="0.9", linewidth=0.8)
    axes.spines[["top", "right"]].set_visible(False)
    if any(line.get_label()[:1] != "_" for line in axes.lines):
        axes.legend(loc="lower right", bbox_to_anchor=(1, 1), ncols=4, frameon=False, fontsize=9,
                    borderaxespad=0.2, handlelength=1.6, columnspacing=1.2)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=path.suffix.lower()[1:])
    write_atomic((path, lambda f: f.write(buffer.getvalue())))
    return path
