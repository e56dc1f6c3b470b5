"""Figures (matplotlib, Agg backend): each function writes one PNG and returns its path.

Time axes are in seconds, minutes or hours, and power axes in W, kW or MW, whichever reads best
for the data. Traces longer than a few thousand points are drawn as block means with the
block minimum–maximum shaded, so a 24 h trace at 250 ms stays legible (and peaks stay visible).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dcsim.errors import DcsimInputError  # noqa: E402
from dcsim.io import atomic_file  # noqa: E402

__all__ = ["plot_overlay", "plot_site_rows"]

MAX_POINTS = 4000  # above this, lines are block means with the min–max envelope shaded
MAX_LEGEND_ROWS = 12


def plot_overlay(t_s: np.ndarray, measured_w: np.ndarray | None, generated_w: np.ndarray, active: np.ndarray | None,
                 path: str | Path, title: str, overwrite: bool = True) -> Path:
    """Measured and generated power on one axis, active requests A_t beneath on the same time axis.

    ``measured_w`` or ``active`` may be ``None`` (that curve or panel is left out).
    """
    t = _vector(t_s, "t_s")
    series = {"generated": _vector(generated_w, "generated_w", t.size)}
    if measured_w is not None:
        series = {"measured": _vector(measured_w, "measured_w", t.size), **series}
    scale, unit = _power_unit(max(np.max(np.abs(v)) for v in series.values()))
    t_scale, t_unit = _time_unit(t)
    if active is not None:
        fig, (ax, ax_a) = plt.subplots(2, 1, sharex=True, figsize=(10, 5.5),
                                       gridspec_kw={"height_ratios": [3, 1]}, constrained_layout=True)
    else:
        fig, ax = plt.subplots(figsize=(10, 4), constrained_layout=True)
        ax_a = None
    colours = {"measured": "0.25", "generated": "tab:orange"}
    for label, y in series.items():
        _line(ax, t / t_scale, y / scale, label=label, colour=colours[label], lw=0.9 if label == "measured" else 0.8,
              alpha=0.9 if label == "measured" else 0.85)
    ax.set_ylabel(f"power ({unit})")
    ax.set_title(title)
    ax.legend(loc="upper right", frameon=False, ncol=2)
    ax.grid(alpha=0.3)
    bottom_ax = ax
    if ax_a is not None:
        a = _vector(active, "active", t.size)
        _line(ax_a, t / t_scale, a, label="A_t", colour="tab:blue", lw=0.8, step=True)
        ax_a.set_ylabel("active\nrequests A_t")
        ax_a.set_ylim(bottom=0)
        ax_a.grid(alpha=0.3)
        bottom_ax = ax_a
    bottom_ax.set_xlabel(f"time ({t_unit})")
    bottom_ax.set_xlim(t[0] / t_scale, t[-1] / t_scale)
    return _save(fig, path, overwrite)


def plot_site_rows(traces: Mapping[str, np.ndarray], t_s: np.ndarray, path: str | Path, title: str,
                   rows: list[str] | None = None) -> Path:
    """Site power on top, one line per row beneath, on a shared time axis.

    ``traces`` maps node names to ``(T,)`` watts and must hold ``"site"``. ``rows`` names the row
    traces to draw; by default every key other than ``"site"`` without a ``"/"`` (the row names of
    :func:`dcsim.facility.tree.build_tree`). With more than 12 rows the legend is left out.
    """
    t = _vector(t_s, "t_s")
    if "site" not in traces:
        raise DcsimInputError("traces", sorted(traces)[:5], "a mapping that holds a 'site' trace")
    site = _vector(traces["site"], "traces['site']", t.size)
    if rows is None:
        rows = [k for k in traces if k != "site" and "/" not in k]
    missing = [r for r in rows if r not in traces]
    if missing:
        raise DcsimInputError("rows", missing, f"names in traces: {', '.join(list(traces)[:8])}", problem="no trace")
    row_traces = {r: _vector(traces[r], f"traces[{r!r}]", t.size) for r in rows}
    t_scale, t_unit = _time_unit(t)
    n_panels = 2 if row_traces else 1
    fig, axes = plt.subplots(n_panels, 1, sharex=True, figsize=(10, 3.2 * n_panels + 0.6), squeeze=False,
                             constrained_layout=True)
    ax_site = axes[0, 0]
    scale, unit = _power_unit(np.max(np.abs(site)))
    _line(ax_site, t / t_scale, site / scale, label="site (facility, PUE × IT)", colour="black", lw=0.9)
    ax_site.set_ylabel(f"site power ({unit})")
    ax_site.set_title(title)
    ax_site.grid(alpha=0.3)
    ax_site.legend(loc="upper right", frameon=False)
    bottom = ax_site
    if row_traces:
        ax_rows = axes[1, 0]
        r_scale, r_unit = _power_unit(max(np.max(np.abs(v)) for v in row_traces.values()))
        cmap = plt.get_cmap("tab10" if len(row_traces) <= 10 else "viridis")
        for i, (name, y) in enumerate(row_traces.items()):
            colour = cmap(i if len(row_traces) <= 10 else i / max(1, len(row_traces) - 1))
            _line(ax_rows, t / t_scale, y / r_scale, label=name, colour=colour, lw=0.7, envelope=False)
        ax_rows.set_ylabel(f"row IT power ({r_unit})")
        ax_rows.grid(alpha=0.3)
        if len(row_traces) <= MAX_LEGEND_ROWS:
            ax_rows.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize="small")
        bottom = ax_rows
    bottom.set_xlabel(f"time ({t_unit})")
    bottom.set_xlim(t[0] / t_scale, t[-1] / t_scale)
    return _save(fig, path)


def _line(ax, t: np.ndarray, y: np.ndarray, label: str, colour, lw: float, alpha: float = 1.0,
          step: bool = False, envelope: bool = True) -> None:
    """Draw y(t); above MAX_POINTS, draw block means and (optionally) shade the block min–max."""
    if t.size <= MAX_POINTS:
        if step:
            ax.step(t, y, where="post", color=colour, lw=lw, alpha=alpha, label=label)
        else:
            ax.plot(t, y, color=colour, lw=lw, alpha=alpha, label=label)
        return
    k = int(np.ceil(t.size / MAX_POINTS))
    n = t.size // k
    tb = t[: n * k].reshape(n, k)[:, 0]
    yb = y[: n * k].reshape(n, k)
    if envelope:
        ax.fill_between(tb, yb.min(axis=1), yb.max(axis=1), color=colour, alpha=0.2 * alpha, lw=0)
    ax.plot(tb, yb.mean(axis=1), color=colour, lw=lw, alpha=alpha, label=label)


def _vector(values, where: str, size: int | None = None) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size < 2:
        raise DcsimInputError(where, arr.shape, "a 1-D series of at least 2 samples")
    if size is not None and arr.size != size:
        raise DcsimInputError(where, arr.size, f"{size} samples, as in t_s", problem="wrong length")
    return arr


def _power_unit(peak_w: float) -> tuple[float, str]:
    if peak_w >= 1e6:
        return 1e6, "MW"
    if peak_w >= 1e3:
        return 1e3, "kW"
    return 1.0, "W"


def _time_unit(t_s: np.ndarray) -> tuple[float, str]:
    span = float(t_s[-1] - t_s[0])
    if span > 3 * 3600:
        return 3600.0, "h"
    if span > 20 * 60:
        return 60.0, "min"
    return 1.0, "s"


def _save(fig, path: str | Path, overwrite: bool = True) -> Path:
    path = Path(path)
    try:
        with atomic_file(path, overwrite=overwrite) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)
    return path
