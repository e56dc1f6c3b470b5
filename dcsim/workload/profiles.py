"""Time-varying Poisson arrivals: a piecewise-constant rate table (:class:`RateProfile`, also per-minute count
files and the shipped Azure 2024 code day) and a 24-h cosine (:class:`Diurnal`)."""
from __future__ import annotations

import math
from importlib import resources
from typing import Any

import numpy as np

from dcsim.constants import DAY_S
from dcsim.errors import DcsimInputError
from dcsim.workload.arrivals import (ArrivalProcess, Requests, _as_table, _duration, _float_column, _int_column,
                                     _number, _rate_array, _rate_scale, _tokens)
from dcsim.workload.tokens import EmpiricalTokens, TokenSource

__all__ = ["RateProfile", "Diurnal"]



class RateProfile(ArrivalProcess):
    """Piecewise-constant Poisson arrivals λ(t): ``rates_per_s[i]`` on ``[times_s[i], times_s[i+1])``; the last
    rate holds for ever, or the table repeats every ``period_s`` seconds.

    Build it with one of the constructors:

    - :meth:`table` — the table itself.
    - :meth:`from_minute_counts` — a per-minute count file (columns ``minute_of_day, requests`` and
      either per-minute token sums ``context_tokens, generated_tokens`` as in the Azure 2024 code
      day, or means ``mean_context_tokens, mean_generated_tokens`` as in the shipped copy). The rate
      in minute m is ``requests_m / 60``, so arrivals within each minute are Poisson and the expected
      count per minute equals the file's count (times ``rate_scale``). Each request's lengths are a
      draw of ``tokens`` (an empirical distribution, by default the Azure 2023 code trace) rescaled
      to that minute's mean context and generated tokens: the draw is multiplied by
      ``minute mean / source mean`` and rounded stochastically, so the shape of the distribution is
      kept and its mean follows the minute. The file repeats (a day file repeats daily) unless
      ``wrap=False``, when the rate is 0 after its last minute.
    - :meth:`builtin_azure2024_code_day` — the shipped Azure 2024 code day (3.07 M requests,
      mean 35.6 req/s for the whole service; scale it to one server with ``rate_scale``).

    ``start_s`` is the offset into the profile of scenario time 0 (for a day profile starting at
    midnight, ``start_s = 3600·h`` starts the scenario at h:00). ``rate_scale`` multiplies λ.

    Sampling: per piece a Poisson count and uniform times; where the table carries per-row mean token counts,
    each request's lengths are a draw of ``tokens`` rescaled to its row's means.
    """

    def __init__(self, tokens: TokenSource, *, times_s: Any, rates_per_s: Any, period_s: float | None = None,
                 mean_in_tokens: Any = None, mean_out_tokens: Any = None, start_s: float = 0.0,
                 rate_scale: float = 1.0, source: str | None = None) -> None:
        self.tokens = _tokens(tokens)
        self.start_s = _number("start_s", start_s, "a finite number of seconds >= 0")
        self.rate_scale = _rate_scale(rate_scale)
        self.source = source
        self._init_table(times_s, rates_per_s, period_s, mean_in_tokens, mean_out_tokens)

    def _init_table(self, times_s: Any, rates_per_s: Any, period_s: Any, mean_in: Any, mean_out: Any) -> None:
        t = np.asarray(times_s, dtype=np.float64).reshape(-1)
        r = _rate_array("rates_per_s", rates_per_s)
        if len(t) == 0 or len(t) != len(r):
            raise DcsimInputError("times_s", f"{len(t)} times for {len(r)} rates", "one start time per rate, >= 1")
        if not np.all(np.isfinite(t)) or t[0] != 0 or np.any(np.diff(t) <= 0):
            raise DcsimInputError("times_s", t[:5].tolist(), "finite seconds starting at 0, strictly increasing")
        self.times_s, self.rates_per_s_table = t, r
        self.period_s = None if period_s is None else _number(
            "period_s", period_s, f"a period in seconds > the last start time {t[-1]}", low=float(t[-1]),
            low_open=True)
        self.mean_in_tokens = self.mean_out_tokens = None
        if (mean_in is None) != (mean_out is None):
            raise DcsimInputError("mean_in_tokens", "only one of the two", "both mean_in_tokens and mean_out_tokens, or neither")
        if mean_in is not None:
            self.tokens.mean_tokens()  # fails early when the source cannot be rescaled
            for where, m in (("mean_in_tokens", mean_in), ("mean_out_tokens", mean_out)):
                m = np.asarray(m, dtype=np.float64).reshape(-1)
                if len(m) != len(t):
                    raise DcsimInputError(where, len(m), f"one mean per table row ({len(t)})")
                bad = (r > 0) & ~(np.isfinite(m) & (m >= 1))
                if bad.any():
                    i = int(np.flatnonzero(bad)[0])
                    raise DcsimInputError(f"{where}[{i}]", float(m[i]), "a finite mean >= 1 token where the rate is > 0")
                setattr(self, where, m)

    # -- constructors

    @classmethod
    def table(cls, times_s: Any, rates_per_s: Any, tokens: TokenSource, *, period_s: float | None = None,
              start_s: float = 0.0, rate_scale: float = 1.0) -> RateProfile:
        """Piecewise-constant λ: ``rates_per_s[i]`` from ``times_s[i]`` (first 0) to the next start."""
        return cls(tokens, times_s=times_s, rates_per_s=rates_per_s, period_s=period_s, start_s=start_s,
                   rate_scale=rate_scale)

    @classmethod
    def from_minute_counts(cls, path_or_table: Any, tokens: TokenSource, *, start_s: float = 0.0,
                           rate_scale: float = 1.0, wrap: bool = True) -> RateProfile:
        """A per-minute count file or table (see the class docstring); minutes missing from it have rate 0."""
        table, where = _as_table(path_or_table)
        minute = _int_column(table, where, ("minute_of_day", "minute"), "minute index", low=0)
        if np.any(np.diff(minute) <= 0):
            i = int(np.flatnonzero(np.diff(minute) <= 0)[0]) + 1
            raise DcsimInputError(f"{where}: column minute_of_day, row {i + 1}", int(minute[i]),
                                  "minute indices strictly increasing")
        requests = _int_column(table, where, ("requests",), "request count", low=0)
        n_min = int(minute[-1] - minute[0] + 1)
        row = minute - minute[0]
        rates = np.zeros(n_min)
        rates[row] = requests / 60.0
        mean_in = mean_out = None
        cols = set(table.columns)
        if {"mean_context_tokens", "mean_generated_tokens"} <= cols:
            m_in = _float_column(table, where, "mean_context_tokens")
            m_out = _float_column(table, where, "mean_generated_tokens")
        elif {"context_tokens", "generated_tokens"} <= cols:
            with np.errstate(divide="ignore", invalid="ignore"):
                m_in = _float_column(table, where, "context_tokens") / requests
                m_out = _float_column(table, where, "generated_tokens") / requests
        else:
            m_in = m_out = None
        if m_in is not None:
            mean_in, mean_out = np.full(n_min, np.nan), np.full(n_min, np.nan)
            mean_in[row], mean_out[row] = m_in, m_out
            bad = (rates > 0) & ~(np.isfinite(mean_in) & (mean_in >= 1) & np.isfinite(mean_out) & (mean_out >= 1))
            if bad.any():
                i = int(np.flatnonzero(bad[row])[0])
                raise DcsimInputError(f"{where}: row {i + 1} (minute {int(minute[i])})",
                                      f"mean tokens {mean_in[row][i]}, {mean_out[row][i]}",
                                      "mean context and generated tokens >= 1 in minutes with requests")
        times = 60.0 * np.arange(n_min)
        period = 60.0 * n_min
        if not wrap:  # rate 0 after the last minute
            times, rates = np.append(times, period), np.append(rates, 0.0)
            if mean_in is not None:
                mean_in, mean_out = np.append(mean_in, np.nan), np.append(mean_out, np.nan)
            period = None
        return cls(tokens, times_s=times, rates_per_s=rates, period_s=period, mean_in_tokens=mean_in,
                   mean_out_tokens=mean_out, start_s=start_s, rate_scale=rate_scale, source=where)

    @classmethod
    def builtin_azure2024_code_day(cls, tokens: TokenSource | None = None, *, start_s: float = 0.0,
                                   rate_scale: float = 1.0) -> RateProfile:
        """The Azure LLM inference trace 2024, code service, 2024-05-16 UTC, per minute (CC-BY 4.0;
        Stojkovic et al., DynamoLLM, HPCA 2025). Tokens default to the Azure 2023 code table, rescaled
        per minute. Time 0 is 00:00 UTC unless ``start_s`` says otherwise; repeats daily."""
        tokens = EmpiricalTokens.builtin("azure2023_code") if tokens is None else tokens
        ref = resources.files("dcsim.workload.data") / "azure2024_code_day.csv"
        with resources.as_file(ref) as path:
            prof = cls.from_minute_counts(path, tokens, start_s=start_s, rate_scale=rate_scale)
        prof.source = "builtin:azure2024_code_day"
        return prof

    # -- intensity and sampling

    def _table_row(self, u: np.ndarray) -> np.ndarray:
        if self.period_s is not None:
            u = np.mod(u, self.period_s)
        return np.clip(np.searchsorted(self.times_s, u, side="right") - 1, 0, len(self.times_s) - 1)

    def rate_per_s(self, t_s: np.ndarray) -> np.ndarray:
        u = np.asarray(t_s, dtype=np.float64) + self.start_s
        return self.rate_scale * self.rates_per_s_table[self._table_row(u)]

    def _majorant(self, d: float) -> tuple[np.ndarray, np.ndarray]:
        """Piece edges in scenario time over [0, d] and the rate per piece (requests/s)."""
        u0, u1 = self.start_s, self.start_s + d
        if self.period_s is None:
            bounds = self.times_s
        else:
            k = np.arange(math.floor(u0 / self.period_s), math.floor(u1 / self.period_s) + 1)
            bounds = (self.times_s[None, :] + self.period_s * k[:, None]).ravel()
        edges = np.concatenate([[u0], bounds[(bounds > u0) & (bounds < u1)], [u1]])
        mid = 0.5 * (edges[:-1] + edges[1:])
        return edges - u0, self.rate_scale * self.rates_per_s_table[self._table_row(mid)]

    def sample(self, duration_s: float, rng: np.random.Generator) -> Requests:
        d = _duration(duration_s)
        edges, bound = self._majorant(d)
        width = np.diff(edges)
        counts = rng.poisson(bound * width)
        piece = np.repeat(np.arange(len(width)), counts)
        t = np.sort(edges[piece] + rng.random(len(piece)) * width[piece])
        if self.mean_in_tokens is not None:
            row = self._table_row(t + self.start_s)
            n_in, n_out = self.tokens.sample_rescaled(self.mean_in_tokens[row], self.mean_out_tokens[row], rng)
        else:
            n_in, n_out = self.tokens.sample(len(t), rng)
        return Requests(t, n_in, n_out)

    def config(self) -> dict[str, Any]:
        c: dict[str, Any] = {**super().config(), "start_s": self.start_s, "rate_scale": self.rate_scale,
                             "source": self.source, "tokens": self.tokens.config()}
        r = self.rates_per_s_table
        c.update(n_pieces=len(r), period_s=self.period_s, max_rate_per_s=float(r.max()) * self.rate_scale,
                 rescales_tokens=self.mean_in_tokens is not None)
        if len(r) <= 100:
            c.update(times_s=self.times_s.tolist(), rates_per_s=r.tolist())
        return c


class Diurnal(ArrivalProcess):
    """Poisson arrivals on a 24-h cosine: ``λ(t) = mean_rate_per_s·(1 + amplitude·cos(2π(h − peak_hour)/24))``
    with ``h`` the hour of day (scenario time 0 is hour ``start_s/3600``), ``amplitude`` in [0, 1).

    Sampled by Lewis–Shedler thinning: candidates at the constant majorant λ̄ = mean·(1 + amplitude), each
    kept with probability λ(t)/λ̄.
    """

    def __init__(self, mean_rate_per_s: float, amplitude: float, peak_hour: float, tokens: TokenSource, *,
                 start_s: float = 0.0, rate_scale: float = 1.0) -> None:
        self.tokens = _tokens(tokens)
        self.start_s = _number("start_s", start_s, "a finite number of seconds >= 0")
        self.rate_scale = _rate_scale(rate_scale)
        self.mean_rate_per_s = _number("mean_rate_per_s", mean_rate_per_s, "a finite rate >= 0 requests per second")
        self.amplitude = _number("amplitude", amplitude, "a number in [0, 1)", high=1.0, high_open=True)
        self.peak_hour = _number("peak_hour", peak_hour, "an hour of day in [0, 24)", high=24.0, high_open=True)

    period_s = DAY_S

    def rate_per_s(self, t_s: np.ndarray) -> np.ndarray:
        hour = np.mod((np.asarray(t_s, dtype=np.float64) + self.start_s) / 3600.0, 24.0)
        return self.rate_scale * self.mean_rate_per_s * (
            1.0 + self.amplitude * np.cos(2 * np.pi * (hour - self.peak_hour) / 24.0))

    def sample(self, duration_s: float, rng: np.random.Generator) -> Requests:
        d = _duration(duration_s)
        bound = self.rate_scale * self.mean_rate_per_s * (1 + self.amplitude)
        n = rng.poisson(np.array([bound * d]))
        t = 0.0 + rng.random(int(n.sum())) * d
        keep = rng.random(len(t)) * bound < self.rate_per_s(t)
        t = np.sort(t[keep])
        n_in, n_out = self.tokens.sample(len(t), rng)
        return Requests(t, n_in, n_out)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "mean_rate_per_s": self.mean_rate_per_s, "amplitude": self.amplitude,
                "peak_hour": self.peak_hour, "start_s": self.start_s, "rate_scale": self.rate_scale,
                "tokens": self.tokens.config()}
