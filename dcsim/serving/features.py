"""Request start/end times → the classifier's features on the 250 ms grid: A_t and ΔA_t.

A_t is the time-averaged number of active requests over step [t0 + k·dt, t0 + (k+1)·dt):
Σ_i |[start_i, end_i) ∩ step_k| / dt. A request shorter than a step counts fractionally, the sum
Σ_k A_k·dt equals the total active time inside the window, and A_t never exceeds the number of
requests a server can hold at once.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from dcsim.constants import STEP_S
from dcsim.errors import DcsimInputError



def active_grid(
    start_s: Any,
    end_s: Any,
    t0_s: float,
    n_steps: int,
    dt_s: float = STEP_S,
    server: Any = None,
    n_servers: int | None = None,
) -> np.ndarray:
    """Time-averaged active-request count per grid step, shape (n_steps,).

    With `server` (one integer index per request, 0 ≤ server < n_servers) the result is
    (n_servers, n_steps), one row per server, in one vectorised pass. Exact up to rounding:
    each request adds its partial overlap to its first and last step and 1 to every step
    between (a difference array, then a cumulative sum).
    """
    start = np.asarray(start_s, dtype=float)
    end = np.asarray(end_s, dtype=float)
    if start.ndim != 1 or start.shape != end.shape:
        raise DcsimInputError("start_s/end_s", (start.shape, end.shape), "1-D arrays of equal length")
    if not (np.all(np.isfinite(start)) and np.all(np.isfinite(end))):
        raise DcsimInputError("start_s/end_s", "non-finite values", "finite times in seconds")
    if start.size and np.min(end - start) < 0:
        raise DcsimInputError("end_s", float(np.min(end - start)), "end_s ≥ start_s", "a request ends before it starts")
    if isinstance(n_steps, bool) or int(n_steps) != n_steps or n_steps < 0:
        raise DcsimInputError("n_steps", n_steps, "a whole number ≥ 0")
    if not (np.isfinite(dt_s) and dt_s > 0):
        raise DcsimInputError("dt_s", dt_s, "a positive number of seconds")
    n = int(n_steps)
    if server is None:
        rows, row = 1, np.zeros(start.size, dtype=np.int64)
    else:
        row = np.asarray(server)
        if n_servers is None or row.shape != start.shape or not np.issubdtype(row.dtype, np.integer):
            raise DcsimInputError("server", "bad index", "one integer per request, with n_servers given")
        rows = int(n_servers)
        if row.size and (row.min() < 0 or row.max() >= rows):
            raise DcsimInputError("server", int(row.max() if row.max() >= rows else row.min()), f"0 … {rows - 1}")
        row = row.astype(np.int64)

    u = np.clip((start - t0_s) / dt_s, 0.0, n)  # positions in steps, clipped to the window
    v = np.clip((end - t0_s) / dt_s, 0.0, n)
    ku = np.minimum(np.floor(u).astype(np.int64), n)
    kv = np.minimum(np.floor(v).astype(np.int64), n)
    width = n + 1  # one spare column takes the (zero-weight) overflow at the window's end
    base = row * width
    same = ku == kv
    head = np.where(same, v - u, ku + 1 - u)  # overlap with the first step
    tail = np.where(same, 0.0, v - kv)  # overlap with the last step
    inner = kv > ku + 1  # whole steps ku+1 … kv−1 in between
    size = rows * width
    partial = np.bincount(base + ku, head, size) + np.bincount(base + kv, tail, size)
    steps = np.bincount(base[inner] + ku[inner] + 1, minlength=size) - np.bincount(base[inner] + kv[inner], minlength=size)
    grid = partial.reshape(rows, width) + np.cumsum(steps.reshape(rows, width), axis=1)
    grid = grid[:, :n]
    return grid[0] if server is None else grid


def delta_active(active: Any) -> np.ndarray:
    """ΔA_t = A_t − A_{t−1} along the last axis, ΔA_0 = 0; works for (T,) and (S, T)."""
    a = np.asarray(active, dtype=float)
    if a.ndim == 0:
        raise DcsimInputError("active", a, "an array with a time axis")
    out = np.zeros_like(a)
    out[..., 1:] = np.diff(a, axis=-1)
    return out


def feature_matrix(active: Any) -> np.ndarray:
    """The classifier input (..., T, 2): A_t and ΔA_t stacked on a new last axis."""
    a = np.asarray(active, dtype=float)
    return np.stack([a, delta_active(a)], axis=-1)
