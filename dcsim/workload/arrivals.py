"""Request arrivals: when each request comes and how long its prompt and output are (paper step 1).

One small abstract base, :class:`ArrivalProcess`, with one method ``sample(duration_s, rng)`` that
returns a :class:`Requests` schedule {(t_i, n_in_i, n_out_i)}. Built-ins:

- :class:`Poisson` — constant rate λ;
- :class:`RateProfile` — time-varying λ(t) (a piecewise-constant table, a diurnal cosine, or a
  per-minute count file such as the shipped Azure 2024 code day), sampled by thinning;
- :class:`TraceReplay` — replay of a request-level trace with a random time offset and wrap-around.

Across servers: give each server its own draw (independent), or draw once for the hall and split it
with :func:`split_shared` (shared intensity: each server is a 1/N thinning of one λ(t)).
A user's own process, named ``"module:Class"`` in a scenario, is loaded by :func:`dcsim.plugins.load_plugin`.

>>> from dcsim.workload.tokens import FixedTokens
>>> reqs = Poisson(2.0, FixedTokens(100, 20)).sample(60.0, np.random.default_rng(1))
>>> bool(np.all(np.diff(reqs.arrival_s) >= 0)), int(reqs.n_out[0])
(True, 20)
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dcsim.errors import DcsimInputError, check_number
from dcsim.io import read_table
from dcsim.workload.tokens import TokenSource, token_columns

__all__ = ["Requests", "ArrivalProcess", "Poisson", "TraceReplay", "thin", "split_shared", "split_uniform"]


MAX_TOKENS = 2**31 - 1
"""The most prompt or output tokens one request may have (far above any model's context; kept exact in int64)."""

# --------------------------------------------------------------------------------------------- schedule

@dataclass(frozen=True, eq=False)
class Requests:
    """An arrival schedule: one entry per request, sorted by arrival time.

    ``arrival_s`` are seconds from scenario start (float64, non-decreasing); ``n_in`` and ``n_out``
    are prompt and output tokens (int64, >= 1).
    """

    arrival_s: np.ndarray
    n_in: np.ndarray
    n_out: np.ndarray

    def __post_init__(self) -> None:
        t = np.asarray(self.arrival_s, dtype=np.float64).reshape(-1)
        n_in = np.asarray(self.n_in).reshape(-1)
        n_out = np.asarray(self.n_out).reshape(-1)
        if not (len(t) == len(n_in) == len(n_out)):
            raise DcsimInputError("requests", f"lengths {len(t)}, {len(n_in)}, {len(n_out)}",
                                  "arrival_s, n_in and n_out of equal length")
        if len(t) and (not np.all(np.isfinite(t)) or np.any(np.diff(t) < 0)):
            raise DcsimInputError("requests: arrival_s", "unsorted or non-finite times",
                                  "finite seconds, sorted ascending")
        for name, v in (("n_in", n_in), ("n_out", n_out)):
            if len(v) and (not np.issubdtype(v.dtype, np.number) or np.any(v < 1) or np.any(v != np.round(v))):
                raise DcsimInputError(f"requests: {name}", "values < 1 or non-integer", "integer token counts >= 1")
        object.__setattr__(self, "arrival_s", t)
        object.__setattr__(self, "n_in", n_in.astype(np.int64, copy=False))
        object.__setattr__(self, "n_out", n_out.astype(np.int64, copy=False))

    def __len__(self) -> int:
        return len(self.arrival_s)

    @classmethod
    def from_arrays(cls, arrival_s: Any, n_in: Any, n_out: Any, where: str = "requests") -> Requests:
        """A user's request arrays (any order) as a schedule sorted by arrival (stable), or one
        :class:`DcsimInputError` naming ``where`` and the column: unequal lengths, non-finite or negative times,
        token counts that are not whole numbers ≥ 1."""
        cols = {"arrival_s": arrival_s, "n_in": n_in, "n_out": n_out}
        arrays = {}
        for key, values in cols.items():
            try:
                arrays[key] = np.asarray(values, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                raise DcsimInputError(f"{where}: {key}", "non-numeric values", "numbers") from None
        lengths = {k: v.size for k, v in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise DcsimInputError(where, lengths, "columns of equal length", problem="columns of unequal length")
        tokens = f"whole numbers of tokens from 1 to {MAX_TOKENS:,}"
        for key, low, high, what in (("arrival_s", 0.0, np.inf, "finite seconds >= 0 from the start"),
                                     ("n_in", 1, MAX_TOKENS, tokens), ("n_out", 1, MAX_TOKENS, tokens)):
            arr = arrays[key]
            bad = ~np.isfinite(arr) | (arr < low) | (arr > high)
            if key != "arrival_s":
                bad |= np.isfinite(arr) & (arr != np.round(arr))
            if bad.any():
                i = int(np.argmax(bad))
                raise DcsimInputError(f"{where}: {key}", float(arr[i]), what,
                                      problem=f"{int(bad.sum())} bad value(s), first in row {i + 1}")
        order = np.argsort(arrays["arrival_s"], kind="stable")
        return cls(arrays["arrival_s"][order], arrays["n_in"][order].astype(np.int64),
                   arrays["n_out"][order].astype(np.int64))

    def slice(self, mask_or_index: np.ndarray | slice) -> Requests:
        """The requests selected by a boolean mask, an ascending index array or a slice."""
        return Requests(self.arrival_s[mask_or_index], self.n_in[mask_or_index], self.n_out[mask_or_index])

    @staticmethod
    def empty() -> Requests:
        return Requests(np.empty(0), np.empty(0, np.int64), np.empty(0, np.int64))

    @staticmethod
    def concat(parts: Sequence[Requests]) -> Requests:
        """Merge schedules into one, sorted by arrival time (stable: ties keep the order of ``parts``)."""
        if not parts:
            return Requests.empty()
        t = np.concatenate([p.arrival_s for p in parts])
        order = np.argsort(t, kind="stable")
        return Requests(t[order], np.concatenate([p.n_in for p in parts])[order],
                        np.concatenate([p.n_out for p in parts])[order])


# ------------------------------------------------------------------------------------------ validators

def _class_spec(obj: object) -> str:
    return f"{type(obj).__module__}:{type(obj).__qualname__}"


def _number(where: str, value: Any, allowed: str, low: float = 0.0, low_open: bool = False,
            high: float = math.inf, high_open: bool = True) -> float:
    return check_number(where, value, allowed, low=low, low_open=low_open, high=high, high_open=high_open)


def _duration(duration_s: Any) -> float:
    return _number("duration_s", duration_s, "a finite number of seconds >= 0")


def _rate_scale(rate_scale: Any) -> float:
    return _number("rate_scale", rate_scale, "a finite factor > 0", low_open=True)


def _tokens(tokens: Any) -> TokenSource:
    if not isinstance(tokens, TokenSource):
        raise DcsimInputError("tokens", type(tokens).__name__, "a dcsim.workload.tokens.TokenSource")
    return tokens


def _rate_array(where: str, rates: Any) -> np.ndarray:
    r = np.asarray(rates, dtype=np.float64).reshape(-1)
    bad = ~np.isfinite(r) | (r < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DcsimInputError(f"{where}[{i}]", float(r[i]), "a finite rate >= 0 requests per second",
                              "negative or NaN rate")
    return r


# ----------------------------------------------------------------------------------------- the base

class ArrivalProcess(ABC):
    """Where requests come from. Subclass it and implement :meth:`sample`.

    Built-ins take ``rate_scale``: a factor on the intensity (for a replay, it compresses time).
    """

    @abstractmethod
    def sample(self, duration_s: float, rng: np.random.Generator) -> Requests:
        """Draw the requests arriving in ``[0, duration_s)`` seconds, every draw from ``rng``."""

    def rate_per_s(self, t_s: np.ndarray) -> np.ndarray:
        """The intensity λ(t) in requests per second at scenario times ``t_s``, when the process has one."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form intensity")

    def config(self) -> dict[str, Any]:
        """Static self-description for run metadata."""
        return {"class": _class_spec(self)}


class Poisson(ArrivalProcess):
    """Homogeneous Poisson arrivals at ``rate_per_s × rate_scale`` requests per second.

    The count in ``[0, T)`` is Poisson(λT) and the times are its sorted uniform order statistics
    (the same law as cumulated exponential gaps of mean 1/λ).
    """

    def __init__(self, rate_per_s: float, tokens: TokenSource, rate_scale: float = 1.0) -> None:
        self.base_rate_per_s = _number("rate_per_s", rate_per_s, "a finite rate >= 0 requests per second")
        self.tokens = _tokens(tokens)
        self.rate_scale = _rate_scale(rate_scale)

    def sample(self, duration_s: float, rng: np.random.Generator) -> Requests:
        d = _duration(duration_s)
        n = int(rng.poisson(self.base_rate_per_s * self.rate_scale * d))
        t = np.sort(rng.uniform(0.0, d, size=n))
        n_in, n_out = self.tokens.sample(n, rng)
        return Requests(t, n_in, n_out)

    def rate_per_s(self, t_s: np.ndarray) -> np.ndarray:
        return np.full(np.shape(t_s), self.base_rate_per_s * self.rate_scale)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "rate_per_s": self.base_rate_per_s, "rate_scale": self.rate_scale,
                "tokens": self.tokens.config()}


# ---------------------------------------------------------------------------------------- trace replay

_TIME_COLUMNS = ("TIMESTAMP", "timestamp", "arrival_s", "time_s", "t_s", "request_timestamps")


class TraceReplay(ArrivalProcess):
    """Replay a request-level trace (times and token counts) from a random offset, wrapping around.

    ``path_or_table``: a CSV path, a polars DataFrame or a dict of columns. The time column holds
    seconds (numbers) or ISO datetimes (``2023-11-16 18:17:03.9799600``, ``...+00:00``); token columns
    default as in :func:`~dcsim.workload.tokens.token_columns` (``ContextTokens``/``GeneratedTokens``
    for the Azure 2023 traces). The trace is sorted and its clock starts at its first request; it
    lasts ``period_s`` = span + one mean inter-arrival gap, so wrapping leaves no seam.

    Each :meth:`sample` call replays ``[offset, offset + duration)`` of the trace (repeated end to
    end when ``wrap``). ``offset_s`` (trace seconds) fixed, or, when None, drawn uniformly from the
    rng on every call — one call per server gives each server its own offset. Without ``wrap``, a
    drawn offset keeps the window inside the trace where it fits, and arrivals stop at its end.
    ``rate_scale`` compresses time (2 replays twice as fast: twice the rate).
    """

    def __init__(self, path_or_table: Any, offset_s: float | None = None, wrap: bool = True,
                 rate_scale: float = 1.0, time_col: str | None = None, in_col: str | None = None,
                 out_col: str | None = None) -> None:
        table, where = _as_table(path_or_table)
        self.source = where
        self.wrap = bool(wrap)
        self.rate_scale = _rate_scale(rate_scale)
        t = _time_column(table, where, time_col)
        n_in, n_out = token_columns(table, where, in_col, out_col)
        if len(t) < 2:
            raise DcsimInputError(where, len(t), "a trace with at least 2 requests", "too few rows")
        order = np.argsort(t, kind="stable")
        t = t[order] - t[order[0]]
        if t[-1] <= 0:
            raise DcsimInputError(where, "all timestamps equal", "a trace spanning some time")
        self.times_s, self.n_in, self.n_out = t, n_in[order], n_out[order]
        self.period_s = float(t[-1] * len(t) / (len(t) - 1))
        self.offset_s = None if offset_s is None else _number(
            "offset_s", offset_s, "a finite number of trace seconds >= 0")
        if self.offset_s is not None and not self.wrap and self.offset_s >= self.period_s:
            raise DcsimInputError("offset_s", offset_s, f"< the trace length {self.period_s:.3f} s when wrap is off")

    def sample(self, duration_s: float, rng: np.random.Generator) -> Requests:
        d = _duration(duration_s)
        p = self.period_s / self.rate_scale
        times = self.times_s / self.rate_scale
        if self.offset_s is not None:
            off = self.offset_s / self.rate_scale
        else:
            off = rng.uniform(0.0, p if self.wrap else max(p - d, 0.0))
        if self.wrap:
            off = math.fmod(off, p)
        n = len(times)
        k0, k1 = 0, (math.floor((off + d) / p) if self.wrap else 0)
        idx, shift = [], []
        for k in range(k0, k1 + 1):  # one block per pass through the trace
            lo = np.searchsorted(times, off - k * p, side="left") if k == k0 else 0
            hi = np.searchsorted(times, off + d - k * p, side="left") if k == k1 else n
            idx.append(np.arange(lo, hi))
            shift.append(np.full(max(hi - lo, 0), k * p - off))
        ix = np.concatenate(idx)
        t = times[ix] + np.concatenate(shift)
        t = np.clip(t, 0.0, None)  # rounding at the window start
        return Requests(t, self.n_in[ix], self.n_out[ix])

    def config(self) -> dict[str, Any]:
        return {**super().config(), "source": self.source, "n_requests": int(len(self.times_s)),
                "period_s": self.period_s, "offset_s": self.offset_s, "wrap": self.wrap,
                "rate_scale": self.rate_scale,
                "mean_rate_per_s": len(self.times_s) / self.period_s * self.rate_scale}


# ----------------------------------------------------------------------------------- table helpers

def _as_table(path_or_table: Any) -> tuple[Any, str]:
    import polars as pl

    if isinstance(path_or_table, pl.DataFrame):
        table, where = path_or_table, "table"
    elif isinstance(path_or_table, dict):
        try:
            table, where = pl.DataFrame(path_or_table), "table"
        except Exception as e:
            raise DcsimInputError("table", type(e).__name__, "a dict of equal-length columns") from None
    elif isinstance(path_or_table, (str, Path)):
        table, where = read_table(path_or_table), str(path_or_table)
    else:
        raise DcsimInputError("path_or_table", type(path_or_table).__name__, "a CSV path, a polars DataFrame or a dict")
    if table.height == 0:
        raise DcsimInputError(where, 0, "at least one row", "no rows")
    return table, where


def _find(table: Any, where: str, names: tuple[str, ...], what: str) -> str:
    for c in names:
        if c in table.columns:
            return c
    raise DcsimInputError(where, table.columns, f"a {what} column named one of {list(names)}", f"no {what} column")


def _float_column(table: Any, where: str, col: str) -> np.ndarray:
    try:
        return table[col].cast(float, strict=True).to_numpy().astype(np.float64)
    except Exception:
        raise DcsimInputError(f"{where}: column {col}", str(table[col].dtype), "numbers", "non-numeric values") from None


def _int_column(table: Any, where: str, names: tuple[str, ...], what: str, low: int) -> np.ndarray:
    col = _find(table, where, names, what)
    v = _float_column(table, where, col)
    bad = ~np.isfinite(v) | (v < low) | (v != np.round(v))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DcsimInputError(f"{where}: column {col}, row {i + 1}", float(v[i]), f"an integer >= {low}",
                              f"bad {what}")
    return v.astype(np.int64)


def _time_column(table: Any, where: str, time_col: str | None) -> np.ndarray:
    """Timestamps in seconds: numbers as they are, ISO datetime strings parsed (errors name the column)."""
    import polars as pl

    if time_col is None:
        col = _find(table, where, _TIME_COLUMNS, "timestamp")
    elif time_col not in table.columns:
        raise DcsimInputError(where, time_col, f"one of the file's columns {table.columns}", "no timestamp column")
    else:
        col = time_col
    s = table[col]
    if s.dtype == pl.Utf8:
        try:
            s = s.str.strip_chars().str.to_datetime(time_unit="ns", strict=True)
        except Exception:
            raise DcsimInputError(f"{where}: column {col}", s[0], "seconds or ISO datetimes like "
                                  "'2023-11-16 18:17:03.9799600'", "unparseable timestamps") from None
    if isinstance(s.dtype, pl.Datetime):
        if s.null_count():
            raise DcsimInputError(f"{where}: column {col}", "empty timestamp", "a timestamp on every row")
        ns = s.dt.epoch("ns").to_numpy()
        return (ns - ns.min()).astype(np.float64) / 1e9
    try:
        v = s.cast(float, strict=True).to_numpy().astype(np.float64)
    except Exception:
        raise DcsimInputError(f"{where}: column {col}", str(s.dtype), "seconds or ISO datetimes",
                              "unreadable timestamps") from None
    bad = ~np.isfinite(v)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DcsimInputError(f"{where}: column {col}, row {i + 1}", float(v[i]), "finite seconds", "bad timestamp")
    return v


# --------------------------------------------------------------------------------- shared intensity

def thin(requests: Requests, probability: float | np.ndarray, rng: np.random.Generator) -> Requests:
    """Keep each request independently with ``probability`` (a number or one per request)."""
    p = np.asarray(probability, dtype=np.float64)
    if p.ndim > 0 and p.shape != (len(requests),):
        raise DcsimInputError("probability", f"shape {p.shape}", f"a number or one per request ({len(requests)})")
    bad = np.ravel(~(np.isfinite(p) & (p >= 0) & (p <= 1)))
    if bad.any():
        raise DcsimInputError("probability", float(np.ravel(p)[bad][0]), "probabilities in [0, 1]")
    return requests.slice(rng.random(len(requests)) < p)


def split_shared(process: ArrivalProcess, n_servers: int, duration_s: float,
                 rng: np.random.Generator) -> list[Requests]:
    """One hall-wide draw of ``process``, each request sent to one of ``n_servers`` uniformly at random.

    Each server's stream is then a 1/N thinning of the shared intensity: the streams share λ(t)
    (its daily cycle, its bursts), so they are correlated, and their union is exactly the hall draw.
    ``process`` describes the whole hall's traffic (use ``rate_scale`` to size it).
    """
    if isinstance(n_servers, bool) or not isinstance(n_servers, (int, np.integer)) or n_servers < 1:
        raise DcsimInputError("n_servers", n_servers, "an integer >= 1")
    return split_uniform(process.sample(duration_s, rng), n_servers, rng)


def split_uniform(requests: Requests, n_servers: int, rng: np.random.Generator) -> list[Requests]:
    """Each request to one of ``n_servers`` uniformly at random; each server's requests stay in time order."""
    server = rng.integers(0, n_servers, size=len(requests))
    order = np.argsort(server, kind="stable")
    bounds = np.cumsum(np.bincount(server, minlength=n_servers))[:-1]
    return [requests.slice(ix) for ix in np.split(order, bounds)]
