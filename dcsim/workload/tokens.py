"""Token-length sources: how many prompt (``n_in``) and output (``n_out``) tokens each request has.

One small abstract base, :class:`TokenSource`, with one method ``sample(n, rng)``; built-ins draw from
an empirical table of measured pairs, from two lognormals, or return fixed lengths. Users plug in their
own by subclassing :class:`TokenSource`.

>>> rng = np.random.default_rng(0)
>>> n_in, n_out = FixedTokens(512, 128).sample(3, rng)
>>> n_in.tolist(), n_out.tolist()
([512, 512, 512], [128, 128, 128])
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from dcsim.errors import DcsimInputError, check_number
from dcsim.io import read_table

__all__ = ["TokenSource", "EmpiricalTokens", "LognormalTokens", "FixedTokens", "BUILTIN_TOKEN_TABLES"]

BUILTIN_TOKEN_TABLES = ("azure2023_code", "azure2023_conv")
"""Names accepted by :meth:`EmpiricalTokens.builtin` (files ``dcsim/workload/data/<name>_tokens.csv``)."""

_IN_COLUMNS = ("n_in", "ContextTokens", "input_lens", "prompt_tokens", "input_tokens")
_OUT_COLUMNS = ("n_out", "GeneratedTokens", "output_lens", "output_tokens", "completion_tokens")


def _class_spec(obj: object) -> str:
    return f"{type(obj).__module__}:{type(obj).__qualname__}"


def round_stochastic(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Round each value up with probability equal to its fractional part (unbiased), clip to >= 1, int64."""
    x = np.asarray(x, dtype=np.float64)
    low = np.floor(x)
    up = rng.random(x.shape) < (x - low)
    return np.maximum(low + up, 1).astype(np.int64)


class TokenSource(ABC):
    """Where request lengths come from. Subclass it and implement :meth:`sample`."""

    @abstractmethod
    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` requests' lengths: ``(n_in, n_out)``, two int64 arrays of length ``n``, all >= 1."""

    def mean_tokens(self) -> tuple[float, float]:
        """Expected ``(n_in, n_out)`` per request; needed to rescale draws to target means."""
        raise NotImplementedError(f"{type(self).__name__} does not know its mean token lengths")

    def sample_rescaled(
        self, mean_in: np.ndarray, mean_out: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw one request per entry of ``mean_in``/``mean_out``, rescaled to those target means.

        Each draw of this source is multiplied by ``target / self.mean_tokens()`` and rounded
        stochastically (unbiased), so the shape of the distribution is kept and its mean moves to
        the target (up to the clip at 1 token).
        """
        mean_in = np.asarray(mean_in, dtype=np.float64)
        mean_out = np.asarray(mean_out, dtype=np.float64)
        base_in, base_out = self.mean_tokens()
        n_in, n_out = self.sample(len(mean_in), rng)
        return (round_stochastic(n_in * (mean_in / base_in), rng),
                round_stochastic(n_out * (mean_out / base_out), rng))

    def config(self) -> dict[str, Any]:
        """Static self-description for run metadata."""
        return {"class": _class_spec(self)}


def _positive_int(where: str, value: Any) -> int:
    return check_number(where, value, "an integer >= 1 (tokens)", low=1, integer=True)


def _positive_float(where: str, value: Any, allowed: str = "a finite number > 0") -> float:
    return check_number(where, value, allowed, low_open=True)


class FixedTokens(TokenSource):
    """Every request has ``n_in`` prompt and ``n_out`` output tokens."""

    def __init__(self, n_in: int, n_out: int) -> None:
        self.n_in = _positive_int("tokens.n_in", n_in)
        self.n_out = _positive_int("tokens.n_out", n_out)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return np.full(n, self.n_in, dtype=np.int64), np.full(n, self.n_out, dtype=np.int64)

    def mean_tokens(self) -> tuple[float, float]:
        return float(self.n_in), float(self.n_out)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "n_in": self.n_in, "n_out": self.n_out}


class LognormalTokens(TokenSource):
    """Independent lognormal prompt and output lengths, rounded to the nearest integer (>= 1).

    ``log n ~ N(log median, sigma²)`` for each of the two; the mean is ``median·exp(sigma²/2)``.
    """

    def __init__(self, median_in: float, sigma_in: float, median_out: float, sigma_out: float) -> None:
        self.median_in = _positive_float("tokens.median_in", median_in)
        self.median_out = _positive_float("tokens.median_out", median_out)
        for name, s in (("sigma_in", sigma_in), ("sigma_out", sigma_out)):
            v = float(s) if isinstance(s, (int, float, np.floating, np.integer)) else math.nan
            if not math.isfinite(v) or v < 0:
                raise DcsimInputError(f"tokens.{name}", s, "a finite number >= 0 (log-space standard deviation)")
        self.sigma_in = float(sigma_in)
        self.sigma_out = float(sigma_out)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        z = rng.standard_normal((2, n))
        n_in = np.rint(self.median_in * np.exp(self.sigma_in * z[0]))
        n_out = np.rint(self.median_out * np.exp(self.sigma_out * z[1]))
        return np.maximum(n_in, 1).astype(np.int64), np.maximum(n_out, 1).astype(np.int64)

    def mean_tokens(self) -> tuple[float, float]:
        return (self.median_in * math.exp(self.sigma_in**2 / 2),
                self.median_out * math.exp(self.sigma_out**2 / 2))

    def config(self) -> dict[str, Any]:
        return {**super().config(), "median_in": self.median_in, "sigma_in": self.sigma_in,
                "median_out": self.median_out, "sigma_out": self.sigma_out}


def _pick_column(columns: list[str], wanted: str | None, candidates: tuple[str, ...], where: str, what: str) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise DcsimInputError(where, wanted, f"one of the file's columns {columns}", f"no {what} column")
        return wanted
    for c in candidates:
        if c in columns:
            return c
    raise DcsimInputError(where, columns, f"a {what} column named one of {list(candidates)} (or pass its name)",
                          f"no {what} column")


def token_columns(table: Any, where: str, in_col: str | None = None, out_col: str | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Prompt and output token columns of a polars table as int64 arrays (>= 1), errors naming the column."""
    out = []
    for wanted, cands, what in ((in_col, _IN_COLUMNS, "prompt-token"), (out_col, _OUT_COLUMNS, "output-token")):
        col = _pick_column(table.columns, wanted, cands, where, what)
        try:
            v = table[col].cast(float, strict=True).to_numpy()
        except Exception:
            raise DcsimInputError(f"{where}: column {col}", str(table[col].dtype), "integer token counts",
                                  "non-numeric values") from None
        bad = ~np.isfinite(v) | (v < 1) | (v != np.round(v))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DcsimInputError(f"{where}: column {col}, row {i + 1}", float(v[i]), "an integer >= 1",
                                  "bad token count")
        out.append(v.astype(np.int64))
    return out[0], out[1]


class EmpiricalTokens(TokenSource):
    """Resample measured ``(n_in, n_out)`` pairs jointly (keeps their correlation), optionally rescaled.

    ``scale_in``/``scale_out`` multiply each drawn pair (stochastic rounding, >= 1 token), so
    :meth:`rescaled` moves the means while keeping the distribution's shape and the pairing.
    """

    def __init__(self, n_in: np.ndarray, n_out: np.ndarray, scale_in: float = 1.0, scale_out: float = 1.0,
                 name: str | None = None) -> None:
        n_in = np.asarray(n_in)
        n_out = np.asarray(n_out)
        if n_in.ndim != 1 or n_in.shape != n_out.shape or len(n_in) == 0:
            raise DcsimInputError("tokens.table", f"{n_in.shape} and {n_out.shape}",
                                  "two non-empty 1-D arrays of equal length")
        for where, v in (("tokens.n_in", n_in), ("tokens.n_out", n_out)):
            if not np.issubdtype(v.dtype, np.number) or not np.all(np.isfinite(v)) or np.any(v < 1) \
                    or np.any(v != np.round(v)):
                raise DcsimInputError(where, "values < 1, non-integer or NaN", "integer token counts >= 1")
        self.n_in = n_in.astype(np.int64)
        self.n_out = n_out.astype(np.int64)
        self.scale_in = _positive_float("tokens.scale_in", scale_in)
        self.scale_out = _positive_float("tokens.scale_out", scale_out)
        self.name = name

    @classmethod
    def from_csv(cls, path: str | Path, in_col: str | None = None, out_col: str | None = None) -> EmpiricalTokens:
        """Load pairs from a CSV; columns default to the first found of ``n_in``/``ContextTokens``/
        ``input_lens``/... and ``n_out``/``GeneratedTokens``/``output_lens``/..."""
        table = read_table(path)
        n_in, n_out = token_columns(table, str(path), in_col, out_col)
        return cls(n_in, n_out, name=str(path))

    @classmethod
    def builtin(cls, name: str) -> EmpiricalTokens:
        """A shipped table: ``"azure2023_code"`` or ``"azure2023_conv"`` (Azure LLM inference trace 2023,
        CC-BY 4.0, Patel et al., Splitwise, ISCA 2024; see ``dcsim/workload/data/SOURCES.md``)."""
        if name not in BUILTIN_TOKEN_TABLES:
            raise DcsimInputError("tokens.builtin", name, f"one of {list(BUILTIN_TOKEN_TABLES)}")
        ref = resources.files("dcsim.workload.data") / f"{name}_tokens.csv"
        with resources.as_file(ref) as path:
            table = read_table(path)
            n_in, n_out = token_columns(table, str(path), "n_in", "n_out")
        return cls(n_in, n_out, name=name)

    def rescaled(self, mean_in: float, mean_out: float) -> EmpiricalTokens:
        """A copy whose expected lengths are ``mean_in`` and ``mean_out`` (same shape and pairing)."""
        mean_in = _positive_float("tokens.mean_in", mean_in)
        mean_out = _positive_float("tokens.mean_out", mean_out)
        return EmpiricalTokens(self.n_in, self.n_out, mean_in / float(self.n_in.mean()),
                               mean_out / float(self.n_out.mean()), name=self.name)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        idx = rng.integers(0, len(self.n_in), size=n)
        if self.scale_in == 1.0 and self.scale_out == 1.0:
            return self.n_in[idx], self.n_out[idx]
        return round_stochastic(self.n_in[idx] * self.scale_in, rng), round_stochastic(self.n_out[idx] * self.scale_out, rng)

    def sample_rescaled(self, mean_in: np.ndarray, mean_out: np.ndarray, rng: np.random.Generator
                        ) -> tuple[np.ndarray, np.ndarray]:
        mean_in = np.asarray(mean_in, dtype=np.float64)
        mean_out = np.asarray(mean_out, dtype=np.float64)
        idx = rng.integers(0, len(self.n_in), size=len(mean_in))
        return (round_stochastic(self.n_in[idx] * (mean_in / float(self.n_in.mean())), rng),
                round_stochastic(self.n_out[idx] * (mean_out / float(self.n_out.mean())), rng))

    def mean_tokens(self) -> tuple[float, float]:
        return float(self.n_in.mean()) * self.scale_in, float(self.n_out.mean()) * self.scale_out

    def config(self) -> dict[str, Any]:
        m_in, m_out = self.mean_tokens()
        return {**super().config(), "name": self.name, "n_pairs": int(len(self.n_in)),
                "scale_in": self.scale_in, "scale_out": self.scale_out,
                "mean_in": round(m_in, 3), "mean_out": round(m_out, 3)}


@dataclass
class TokenQuantiles(TokenSource):
    """Marginal quantile tables of prompt and output tokens; sampled by inverse CDF (independent marginals).

    Built from the training requests of a configuration, so ``dcsim generate --rate`` draws requests like
    the ones the configuration was measured on.
    """

    n_in_q: np.ndarray
    n_out_q: np.ndarray

    @classmethod
    def from_requests(cls, n_in: np.ndarray, n_out: np.ndarray, n_quantiles: int = 101) -> "TokenQuantiles":
        q = np.linspace(0.0, 1.0, n_quantiles)
        return cls(np.quantile(np.asarray(n_in, float), q), np.quantile(np.asarray(n_out, float), q))

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` (n_in, n_out) pairs, each at least 1 token."""
        grid = np.linspace(0.0, 1.0, len(self.n_in_q))
        n_in = np.interp(rng.random(n), grid, self.n_in_q)
        n_out = np.interp(rng.random(n), grid, self.n_out_q)
        return (np.maximum(1, np.rint(n_in)).astype(np.int64), np.maximum(1, np.rint(n_out)).astype(np.int64))

    def mean_tokens(self) -> tuple[float, float]:
        """Mean prompt and output tokens of the quantile tables (trapezoidal over the CDF)."""
        return float(np.trapezoid(self.n_in_q, dx=1 / (len(self.n_in_q) - 1))), \
            float(np.trapezoid(self.n_out_q, dx=1 / (len(self.n_out_q) - 1)))

    def config(self) -> dict:
        return {**super().config(), "mean_tokens": self.mean_tokens()}

    def to_dict(self) -> dict:
        return {"n_in_quantiles": self.n_in_q.tolist(), "n_out_quantiles": self.n_out_q.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "TokenQuantiles":
        return cls(np.asarray(d["n_in_quantiles"], float), np.asarray(d["n_out_quantiles"], float))
