"""Outputs: Parquet / CSV tables, run folders, OpenDSS loadshapes and PyPSA load series.

Every output is written atomically: a file goes to a temporary name in its own folder and is
moved into place with ``os.replace``; a folder is filled as ``OUT.tmp-XXXX`` and renamed to
``OUT`` when complete. A reader never sees a half-written output, and a failed run leaves the
previous output untouched.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl

from dcsim.errors import DcsimInputError, check_number
from dcsim.io import atomic_file, resample_mean

__all__ = ["long_frame", "to_opendss_loadshape", "to_pypsa_series"]



def long_frame(traces: Mapping[str, np.ndarray], dt_s: float, resolution_s: float) -> pl.DataFrame:
    """One long table of node traces: columns ``t_s``, ``node``, ``resolution_s``, ``power_w``.

    Each ``(T,)`` trace at step ``dt_s`` is averaged into blocks of ``resolution_s`` (see
    :func:`dcsim.facility.tree.resample_mean`; a trailing partial block is dropped); ``t_s`` is the
    start of each block, in seconds from scenario start. Rows are grouped by node in the order given.
    """
    if not traces:
        raise DcsimInputError("traces", "{}", "at least one node trace")
    frames = []
    for node, trace in traces.items():
        arr = np.asarray(trace, dtype=np.float64)
        if arr.ndim != 1:
            raise DcsimInputError(f"traces[{node!r}]", arr.shape, "a 1-D power trace")
        power = resample_mean(arr, dt_s, resolution_s)
        frame = pl.DataFrame({"t_s": np.arange(power.size, dtype=np.float64) * float(resolution_s), "power_w": power})
        frames.append(frame.select(
            "t_s", node=pl.lit(str(node), dtype=pl.String), resolution_s=pl.lit(float(resolution_s)), power_w="power_w"))
    return pl.concat(frames, how="vertical")


def to_opendss_loadshape(power_w: np.ndarray, dt_s: float, path: str | Path, name: str) -> Path:
    """Write an OpenDSS loadshape: per-unit multipliers (of the peak) in a CSV, and a .dss line using them.

    ``path`` is the .dss file; the multipliers go beside it as ``<stem>.csv``, one value per line,
    no header. The .dss file holds ``New Loadshape.<name> npts=N sinterval=<dt_s> mult=(file=<stem>.csv)``
    and a comment with the peak in kW: give a Load ``kW=<peak>`` and ``duty=<name>`` (or
    ``daily=``) to replay the trace in watts. ``Redirect`` or ``Compile`` the .dss file from its own
    folder (OpenDSS resolves the CSV name against the current directory). Returns the .dss path.
    """
    power = _trace_1d(power_w, "power_w")
    _check_dt(dt_s)
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
        raise DcsimInputError("name", name, "letters, digits, '_' and '-' (an OpenDSS element name)")
    peak_w = float(power.max())
    if peak_w <= 0:
        raise DcsimInputError("power_w", peak_w, "a trace with a positive peak", problem="peak is not positive")
    path = Path(path)
    if path.suffix.lower() != ".dss":
        path = path.with_name(path.name + ".dss")
    csv_path = path.with_suffix(".csv")
    with atomic_file(csv_path) as tmp:
        np.savetxt(tmp, power / peak_w, fmt="%.9g")
    text = (
        f"! dcsim power trace '{name}': {power.size} points every {dt_s:.10g} s, per unit of the peak\n"
        f"! peak {peak_w / 1e3:.6g} kW, mean {power.mean() / 1e3:.6g} kW; e.g. New Load.{name} ... "
        f"kW={peak_w / 1e3:.6g} duty={name}\n"
        f"New Loadshape.{name} npts={power.size} sinterval={dt_s:.10g} mult=(file={csv_path.name})\n"
    )
    with atomic_file(path) as tmp:
        tmp.write_text(text)
    return path


def to_pypsa_series(power_w: np.ndarray | Mapping[str, np.ndarray], dt_s: float, start: datetime | str,
                    path: str | Path, name: str = "dcsim") -> Path:
    """Write load power as PyPSA expects for ``loads_t.p_set`` (``loads-p_set.csv``): MW per snapshot.

    Columns: ``snapshot`` (ISO timestamps ``start + i·dt_s``), then one column per load: ``name``
    for a single trace, or the keys of a mapping of load name → trace (all the same length).
    A time-zone-aware ``start`` is written as naive UTC. Read back with
    ``pandas.read_csv(path, index_col="snapshot", parse_dates=True)``.
    """
    _check_dt(dt_s)
    if isinstance(start, str):
        try:
            start = datetime.fromisoformat(start)
        except ValueError:
            raise DcsimInputError("start", start, "an ISO date-time such as 2024-05-01T00:00:00") from None
    if not isinstance(start, datetime):
        raise DcsimInputError("start", start, "a datetime or an ISO date-time string")
    loads = dict(power_w) if isinstance(power_w, Mapping) else {name: power_w}
    columns = {str(k): _trace_1d(v, f"power_w[{k!r}]") / 1e6 for k, v in loads.items()}
    lengths = {v.size for v in columns.values()}
    if len(lengths) != 1:
        raise DcsimInputError("power_w", sorted(lengths), "traces of one length", problem="unequal lengths")
    if "snapshot" in columns:
        raise DcsimInputError("name", "snapshot", "any load name but 'snapshot'")
    n = lengths.pop()
    if start.tzinfo is not None:
        start = start.astimezone(timezone.utc).replace(tzinfo=None)
    offsets_us = np.round(np.arange(n) * float(dt_s) * 1e6).astype("timedelta64[us]")
    snapshots = np.datetime64(start, "us") + offsets_us
    frame = pl.DataFrame({"snapshot": snapshots, **columns})
    path = Path(path)
    with atomic_file(path) as tmp:
        frame.write_csv(tmp, datetime_format="%Y-%m-%dT%H:%M:%S%.3f")
    return path


def _trace_1d(power_w: np.ndarray, where: str) -> np.ndarray:
    arr = np.asarray(power_w, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise DcsimInputError(where, arr.shape, "a non-empty 1-D power trace in watts")
    if not np.all(np.isfinite(arr)):
        raise DcsimInputError(where, "NaN or inf", "finite watts")
    return arr


def _check_dt(dt_s: float) -> None:
    check_number("dt_s", dt_s, "a positive step in seconds", low_open=True)
