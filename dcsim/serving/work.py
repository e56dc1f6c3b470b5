"""A served schedule → the work a server does in every 250 ms step (the work ledger's inputs).

Per request i the schedule gives arrival_i ≤ start_i ≤ first_token_i ≤ end_i (s) and its n_in prompt and
n_out output tokens. Per step k = [t0 + k·dt, t0 + (k+1)·dt) this module returns time averages:

- ``occupancy``: requests in slots, Σ_i |[start_i, end_i) ∩ step_k| / dt, identical to
  :func:`dcsim.serving.features.active_grid` (the paper's A_t);
- ``busy_fraction``: the fraction of the step with at least one request in a slot, in [0, min(1, A_t)]. Decode is
  memory-bound, so one request already draws most of the busy power: this is the knee feature;
- ``prefill_fraction``: the fraction of the step with at least one request in prefill [start_i, first_token_i);
- ``prefill_tokens_per_s``: each request's n_in spread uniformly over [start_i, first_token_i);
- ``decode_tokens_per_s``: each request's n_out spread uniformly over [first_token_i, end_i);
- ``kv_tokens``: resident context of the requests in slots, n_in from start_i plus the tokens decoded so far
  (rising linearly from 0 at first_token_i to n_out at end_i);
- ``waiting``: requests arrived but not started, Σ_i |[arrival_i, start_i) ∩ step_k| / dt.

Token spreads conserve tokens: Σ_k prefill_tokens_per_s_k·dt = Σ n_in over requests whose prefill lies inside the
window (a zero-length prefill puts its tokens into the step holding the instant). Everything is one vectorised
pass of difference arrays and cumulative sums; with ``server`` (one integer per request) the arrays are (S, T),
one row per server.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from dcsim.constants import SLOTS_PER_SERVER, STEP_S
from dcsim.errors import DcsimInputError
from dcsim.serving.features import active_grid, delta_active
from dcsim.serving.kernel import serve_requests
from dcsim.serving.latency import LatencySurrogate

FEATURE_SETS = {
    "paper": ("occupancy", "delta_occupancy"),
    "work": ("busy_fraction", "prefill_fraction", "prefill_tokens_per_s", "decode_tokens_per_s", "kv_tokens",
             "occupancy", "waiting"),
}


@dataclass(frozen=True)
class WorkGrid:
    """Per-step work of one server (T,) or many (S, T); time-averaged over each step of ``dt_s`` from ``t0_s``."""

    t0_s: float
    dt_s: float
    occupancy: np.ndarray
    busy_fraction: np.ndarray
    prefill_fraction: np.ndarray
    prefill_tokens_per_s: np.ndarray
    decode_tokens_per_s: np.ndarray
    kv_tokens: np.ndarray
    waiting: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return self.occupancy.shape

    @property
    def n_steps(self) -> int:
        return int(self.occupancy.shape[-1])

    @property
    def delta_occupancy(self) -> np.ndarray:
        """ΔA_t along time, ΔA_0 = 0 (as :func:`dcsim.serving.features.delta_active`)."""
        return delta_active(self.occupancy)

    def feature(self, name: str) -> np.ndarray:
        """One named feature array, (T,) or (S, T)."""
        allowed = sorted({n for names in FEATURE_SETS.values() for n in names})
        if name not in allowed:
            raise DcsimInputError("feature", name, ", ".join(allowed))
        return getattr(self, name)

    def matrix(self, feature_set: str | tuple[str, ...] = "work") -> np.ndarray:
        """Features stacked on a new last axis: (..., T, F). ``"paper"`` is exactly
        :func:`dcsim.serving.features.feature_matrix` of the occupancy; ``"work"`` the richer set
        (:data:`FEATURE_SETS`); or a tuple of feature names."""
        names = feature_names(feature_set)
        return np.stack([np.asarray(self.feature(n), dtype=float) for n in names], axis=-1)

    def window(self, start: int, stop: int) -> "WorkGrid":
        """Steps [start, stop) along time, as a new grid."""
        arrays = {f.name: getattr(self, f.name)[..., start:stop] for f in fields(self) if f.name not in ("t0_s", "dt_s")}
        return WorkGrid(self.t0_s + start * self.dt_s, self.dt_s, **arrays)


def feature_names(feature_set: str | tuple[str, ...]) -> tuple[str, ...]:
    """The feature names of a set given by name (:data:`FEATURE_SETS`) or as a tuple of names."""
    if isinstance(feature_set, str):
        if feature_set not in FEATURE_SETS:
            raise DcsimInputError("feature_set", feature_set, ", ".join(FEATURE_SETS))
        return FEATURE_SETS[feature_set]
    return tuple(feature_set)


# ----------------------------------------------------------------------------------------------
# grids of intervals


def _rows(server: Any, n_servers: int | None, n: int) -> tuple[int, np.ndarray | None]:
    if server is None:
        return 1, None
    row = np.asarray(server)
    if n_servers is None or row.shape != (n,) or (row.size and not np.issubdtype(row.dtype, np.integer)):
        raise DcsimInputError("server", "bad index", "one integer per request, with n_servers given")
    rows = int(n_servers)
    if row.size and (row.min() < 0 or row.max() >= rows):
        raise DcsimInputError("server", int(row.max() if row.max() >= rows else row.min()), f"0 … {rows - 1}")
    return rows, row.astype(np.int64)


def spread_grid(a_s: np.ndarray, b_s: np.ndarray, mass: np.ndarray, t0_s: float, n_steps: int, dt_s: float,
                row: np.ndarray | None, rows: int) -> np.ndarray:
    """Each interval's ``mass`` spread uniformly over [a, b) → mass per step, (rows, n_steps).

    A zero-length interval puts its whole mass into the step holding the instant; mass outside the window is
    dropped. Exact up to rounding: the per-step share of the first and last step directly, whole steps between
    through a weighted difference array.
    """
    n = int(n_steps)
    row = np.zeros(a_s.size, dtype=np.int64) if row is None else row
    u = np.clip((a_s - t0_s) / dt_s, 0.0, n)
    v = np.clip((b_s - t0_s) / dt_s, 0.0, n)
    length = (b_s - a_s) / dt_s
    point = length <= 0
    rate = np.where(point, 0.0, mass / np.where(point, 1.0, length))  # mass per step
    ku = np.minimum(np.floor(u).astype(np.int64), n)
    kv = np.minimum(np.floor(v).astype(np.int64), n)
    width = n + 1
    base = row * width
    same = ku == kv
    head = np.where(point, mass, rate * np.where(same, v - u, ku + 1 - u))
    inside = (a_s - t0_s >= 0) & (a_s - t0_s < n * dt_s)
    head = np.where(point & ~inside, 0.0, head)
    tail = np.where(same | point, 0.0, rate * (v - kv))
    inner = kv > ku + 1
    size = rows * width
    partial = np.bincount(base + ku, head, size) + np.bincount(base + kv, tail, size)
    steps = (np.bincount(base[inner] + ku[inner] + 1, rate[inner], size)
             - np.bincount(base[inner] + kv[inner], rate[inner], size))
    grid = partial.reshape(rows, width) + np.cumsum(steps.reshape(rows, width), axis=1)
    return grid[:, :n]


def ramp_grid(a_s: np.ndarray, b_s: np.ndarray, top: np.ndarray, t0_s: float, n_steps: int, dt_s: float,
              row: np.ndarray | None, rows: int) -> np.ndarray:
    """Time average per step of a value rising linearly from 0 at a to ``top`` at b (0 outside [a, b)).

    With f(x) = s·(x − u) on [u, v) (x in steps), the step integral is s·((y − u)² − (x − u)²)/2 over the overlap
    [x, y); whole steps in between take s·(k + ½ − u), i.e. two weighted difference arrays (s and s·u).
    """
    n = int(n_steps)
    row = np.zeros(a_s.size, dtype=np.int64) if row is None else row
    u_raw = (a_s - t0_s) / dt_s
    length = (b_s - a_s) / dt_s
    keep = length > 0
    s = np.where(keep, top / np.where(keep, length, 1.0), 0.0)
    u = np.clip(u_raw, 0.0, n)
    v = np.clip(u_raw + length, 0.0, n)
    ku = np.minimum(np.floor(u).astype(np.int64), n)
    kv = np.minimum(np.floor(v).astype(np.int64), n)
    width = n + 1
    base = row * width
    same = ku == kv

    def integral(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return s * ((y - u_raw) ** 2 - (x - u_raw) ** 2) / 2.0

    head = np.where(same, integral(u, v), integral(u, ku + 1.0))
    tail = np.where(same, 0.0, integral(kv.astype(float), v))
    inner = kv > ku + 1
    size = rows * width
    partial = np.bincount(base + ku, head, size) + np.bincount(base + kv, tail, size)
    i0, i1 = base[inner] + ku[inner] + 1, base[inner] + kv[inner]
    slope = np.bincount(i0, s[inner], size) - np.bincount(i1, s[inner], size)
    offset = np.bincount(i0, s[inner] * u_raw[inner], size) - np.bincount(i1, s[inner] * u_raw[inner], size)
    k_mid = np.arange(width) + 0.5
    whole = (np.cumsum(slope.reshape(rows, width), axis=1) * k_mid
             - np.cumsum(offset.reshape(rows, width), axis=1))
    grid = partial.reshape(rows, width) + whole
    return grid[:, :n]


def union_intervals(a_s: np.ndarray, b_s: np.ndarray, row: np.ndarray | None) -> tuple[np.ndarray, np.ndarray,
                                                                                     np.ndarray | None]:
    """Merge overlapping [a, b) intervals per row → disjoint intervals (a, b, row): the union's time covered."""
    if a_s.size == 0:
        return a_s, b_s, row
    r = np.zeros(a_s.size, dtype=np.int64) if row is None else row
    order = np.lexsort((a_s, r))
    a, b, r = a_s[order], b_s[order], r[order]
    # running max of the end within each row, exactly: on integer ranks of the ends, rows lifted apart
    ends = np.sort(b)
    rank = np.searchsorted(ends, b).astype(np.int64)
    lifted = rank + (r - r[0]) * np.int64(b.size)
    reach = ends[np.maximum.accumulate(lifted) - (r - r[0]) * np.int64(b.size)]
    new = np.ones(a.size, dtype=bool)
    new[1:] = (r[1:] != r[:-1]) | (a[1:] > reach[:-1])
    first = np.flatnonzero(new)
    last = np.concatenate([first[1:], [a.size]]) - 1
    return a[first], reach[last], (None if row is None else r[first])


# ----------------------------------------------------------------------------------------------
# the work grid


def _check_times(**arrays: Any) -> dict[str, np.ndarray]:
    out = {}
    size = None
    for name, values in arrays.items():
        arr = np.asarray(values, dtype=float)
        if arr.ndim != 1 or (size is not None and arr.size != size):
            raise DcsimInputError(name, f"array of shape {arr.shape}", "1-D arrays, one entry per request")
        if not np.all(np.isfinite(arr)):
            raise DcsimInputError(name, "non-finite values", "finite numbers")
        size = arr.size
        out[name] = arr
    return out


def work_grid(start_s: Any, first_token_s: Any, end_s: Any, n_in: Any, n_out: Any, t0_s: float, n_steps: int,
              dt_s: float = STEP_S, arrival_s: Any = None, server: Any = None,
              n_servers: int | None = None) -> WorkGrid:
    """The per-step work of a served schedule (times in s, token counts per request); see the module docstring.

    ``arrival_s`` (optional) gives the waiting queue; without it ``waiting`` is zero. With ``server`` (one integer
    0 ≤ server < n_servers per request) every array is (n_servers, n_steps), else (n_steps,).
    """
    a = _check_times(start_s=start_s, first_token_s=first_token_s, end_s=end_s, n_in=n_in, n_out=n_out,
                     **({} if arrival_s is None else {"arrival_s": arrival_s}))
    start, first, end = a["start_s"], a["first_token_s"], a["end_s"]
    if start.size and (np.min(first - start) < 0 or np.min(end - first) < 0):
        raise DcsimInputError("start_s/first_token_s/end_s", "decreasing times",
                              "start_s ≤ first_token_s ≤ end_s per request")
    if start.size and (a["n_in"].min() < 0 or a["n_out"].min() < 0):
        raise DcsimInputError("n_in/n_out", "negative token counts", "token counts ≥ 0")
    if arrival_s is not None and start.size and np.min(start - a["arrival_s"]) < 0:
        raise DcsimInputError("arrival_s", "a request starting before it arrives", "arrival_s ≤ start_s")
    if isinstance(n_steps, bool) or int(n_steps) != n_steps or n_steps < 0:
        raise DcsimInputError("n_steps", n_steps, "a whole number ≥ 0")
    if not (np.isfinite(dt_s) and dt_s > 0):
        raise DcsimInputError("dt_s", dt_s, "a positive number of seconds")
    n = int(n_steps)
    rows, row = _rows(server, n_servers, start.size)
    kw = {"server": row, "n_servers": rows} if row is not None else {}

    def grid(x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
        return np.atleast_2d(active_grid(x0, x1, t0_s, n, dt_s, **kw))

    occupancy = grid(start, end)

    def covered(x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
        """Fraction of each step with at least one interval open: the union of the intervals, time-averaged."""
        if not x0.size:
            return np.zeros((rows, n))
        ua, ub, ur = union_intervals(x0, x1, row)
        extra = {"server": ur, "n_servers": rows} if row is not None else {}
        return np.minimum(np.atleast_2d(active_grid(ua, ub, t0_s, n, dt_s, **extra)), 1.0)

    prefill = spread_grid(start, first, a["n_in"], t0_s, n, dt_s, row, rows) / dt_s
    decode = spread_grid(first, end, a["n_out"], t0_s, n, dt_s, row, rows) / dt_s
    kv = grid_weighted(start, end, a["n_in"], t0_s, n, dt_s, row, rows) + ramp_grid(first, end, a["n_out"], t0_s, n,
                                                                                    dt_s, row, rows)
    waiting = grid(a["arrival_s"], start) if arrival_s is not None else np.zeros((rows, n))
    arrays = {"occupancy": occupancy, "busy_fraction": covered(start, end),
              "prefill_fraction": covered(start, first), "prefill_tokens_per_s": prefill,
              "decode_tokens_per_s": decode, "kv_tokens": kv, "waiting": waiting}
    if row is None:
        arrays = {k: v[0] for k, v in arrays.items()}
    return WorkGrid(float(t0_s), float(dt_s), **arrays)


def grid_weighted(a_s: np.ndarray, b_s: np.ndarray, weight: np.ndarray, t0_s: float, n_steps: int, dt_s: float,
                  row: np.ndarray | None, rows: int) -> np.ndarray:
    """Σ_i weight_i · |[a_i, b_i) ∩ step_k| / dt: a constant value held over each interval, time-averaged."""
    return spread_grid(a_s, b_s, weight * (b_s - a_s) / dt_s, t0_s, n_steps, dt_s, row, rows)


def work_from_served(served: Any, n_in: Any, n_out: Any, t0_s: float, n_steps: int, dt_s: float = STEP_S,
                     server: Any = None, n_servers: int | None = None) -> WorkGrid:
    """:func:`work_grid` of a :class:`dcsim.serving.queue.ServedRequests` (its arrivals give the waiting queue)."""
    return work_grid(served.start_s, served.first_token_s, served.end_s, n_in, n_out, t0_s, n_steps, dt_s,
                     arrival_s=served.arrival_s, server=server, n_servers=n_servers)


def simulated_work(arrival_s: Any, n_in: Any, n_out: Any, surrogate: LatencySurrogate, rng: np.random.Generator, n_steps: int,
                   t0_s: float = 0.0, dt_s: float = STEP_S, slots: int = SLOTS_PER_SERVER) -> WorkGrid:
    """Requests → latency surrogate + FIFO queue (:func:`dcsim.serving.kernel.serve_requests`) → work grid.

    The same path generation takes, so a power model fitted on it sees the work it will be driven by (times in s,
    the grid from ``t0_s``)."""
    served = serve_requests(np.asarray(arrival_s, dtype=float) - t0_s, n_in, n_out, surrogate, rng, slots=slots)
    return replace(work_from_served(served, n_in, n_out, 0.0, n_steps, dt_s), t0_s=float(t0_s))


def logged_work(run: Any, slots: int = SLOTS_PER_SERVER) -> WorkGrid:
    """A measured run's own schedule as work on its grid: the request log's arrivals through the FIFO queue with
    its measured TTFTs (unknown ones: the median) and the run's effective TBT from its token counter. What the
    structured power model is fitted on (it measured better on held-out workloads than surrogate draws)."""
    from dcsim.serving.kernel import serve_fifo
    from dcsim.serving.latency import tbt_from_token_counter

    q, e = run.requests, run.engine
    ttft = np.where(np.isfinite(q.ttft_s), q.ttft_s, np.nanmedian(q.ttft_s))
    tbt_s = tbt_from_token_counter(q.arrival_s, ttft, q.n_out, e.t_s, e.generation_tokens_total)
    served = serve_fifo(q.arrival_s - run.t0_s, ttft, q.n_out * tbt_s, slots=slots)
    return work_from_served(served, q.n_in, q.n_out, 0.0, len(run.power_w), run.dt_s)
