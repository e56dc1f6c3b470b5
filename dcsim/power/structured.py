"""Structured power model: the work a server does → a non-negative linear power equation → the meter → noise.

Four parts, each fitted from measured runs (the work of a run is its own requests pushed through the
configuration's latency surrogate and the FIFO-64 queue, exactly as generation builds it):

(a) **Work ledger** (:func:`work_terms`): per 250 ms step, the busy fraction (share of the step with at least one
    request in a slot: the knee, since decode is memory-bound and one request already draws most of the busy
    power), prefill tokens per second, decode tokens per second and resident KV tokens
    (:mod:`dcsim.serving.work`). Prefill is compute-bound, so the ledger passes the scheduled prompt tokens
    through a fluid queue that computes at most ``prefill_capacity_tokens_per_s`` (Lindley's recursion, in
    closed form with cumulative sums): tokens are conserved, so prefill energy does not depend on how well the
    surrogate times each prefill, and a burst of long prompts keeps the GPU at prefill power for as long as
    the GPU needs to compute them.
(b) **Power equation**: P_t = idle_w + Σ_j c_j·x_{t,j}, every c_j ≥ 0 (``scipy.optimize.nnls`` on the normal
    equations), so more work never lowers power and one request draws idle_w + c_busy + (its small token terms).
    idle_w is the median measured power over samples with no work within the meter's reach (the intercept of a
    free fit is pulled by whatever the equation cannot explain); runs can be weighted (``sample_weight``).
(c) **Meter**: nvidia-smi reads the work ``lag_s`` late, averaged over ``window_s`` (≈ 1 s on H100, near-instant
    on A100). The reading at t is the mean of P over [t − lag − window, t − lag], widened to one step where the
    window is shorter (the work grid resolves nothing finer). The meter is linear, so it is applied to each
    ledger column and the equation is fitted against measured power directly; lag, window and the prefill
    capacity are chosen on a grid by least squares (give one value each to fix them). On the 250 ms grid two
    (lag, window) pairs with the same kernel are the same meter; the smallest window found wins.
(d) **Residual variability**: residual r_t = y_t − ŷ_t in the measured domain, per state: the power bin of ŷ (a
    "no work" bin, then quantile bins) within one of three classes of work (ordinary, prefill-heavy, long context),
    so one workload's misfit does not widen another's noise. Per state: the residuals' empirical quantiles and an
    AR(1) coefficient φ on their normal scores fitted over consecutive measured samples, so the marginal and the
    autocorrelation are the measured ones. Sampling runs z_t = φ z_{t−1} + √(1 − φ²) ε_t (ε from the Generator
    passed in), maps z_t through the state's residual quantiles, adds ŷ_t and clips to the observed [y_min, y_max].
    Where every step the meter reads is wholly busy the reading stays at least idle_w + ``busy_floor_share``·c_busy:
    training residuals also hold samples whose schedule said busy while the GPU was idle (the schedule is a
    surrogate draw), and generation must not replay those as an idle GPU with work in flight.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy.optimize import nnls
from scipy.special import ndtr, ndtri

from dcsim.constants import STEP_S
from dcsim.errors import DcsimInputError
from dcsim.power.model import PowerModel, check_pairs
from dcsim.serving.work import WorkGrid

TERMS = ("busy_fraction", "prefill_tokens_per_s", "decode_tokens_per_s", "kv_tokens")
"""The default work terms of the power equation (units: fraction, tokens/s, tokens/s, tokens)."""
ALLOWED_TERMS = TERMS + ("prefill_fraction", "occupancy", "waiting")
DEFAULT_LAGS_S = tuple(np.round(np.arange(-0.25, 1.5001, 0.0625), 4))
DEFAULT_WINDOWS_S = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
DEFAULT_CAPACITIES = (5e3, 1e4, 2e4, 4e4, np.inf)  # prefill tokens/s the GPU computes at most
_PHI_MAX = 0.99
_MIN_BIN = 20         # fewest residuals a bin needs; smaller bins merge into their neighbour
_NO_WORK_SHARE = 0.1  # ŷ below idle + this share of the busy term is the "no work" bin


# ----------------------------------------------------------------------------------------------
# (a) the work ledger


def prefill_served_per_s(prefill_tokens_per_s: np.ndarray, capacity_tokens_per_s: float,
                         dt_s: float = STEP_S) -> np.ndarray:
    """Prompt tokens computed per second when the GPU computes at most ``capacity_tokens_per_s``.

    Scheduled tokens queue and are computed first come first served (a fluid queue along the last axis);
    backlog W_k = max(0, W_{k−1} + a_k − c), i.e. W = S − min(0, cummin S) with S = cumsum(a − c).
    Tokens still queued at the end of the window are dropped. Infinite capacity returns the input.
    """
    x = np.asarray(prefill_tokens_per_s, dtype=float)
    if not np.isfinite(capacity_tokens_per_s):
        return x.copy()
    if capacity_tokens_per_s <= 0:
        raise DcsimInputError("prefill_capacity_tokens_per_s", capacity_tokens_per_s, "a positive rate or inf")
    arriving = x * dt_s
    s = np.cumsum(arriving - capacity_tokens_per_s * dt_s, axis=-1)
    backlog = s - np.minimum(0.0, np.minimum.accumulate(s, axis=-1))
    before = np.concatenate([np.zeros(backlog.shape[:-1] + (1,)), backlog[..., :-1]], axis=-1)
    return np.maximum(arriving + before - backlog, 0.0) / dt_s


def work_terms(work: WorkGrid, terms: Sequence[str] = TERMS,
               prefill_capacity_tokens_per_s: float = np.inf) -> np.ndarray:
    """The ledger: the work terms of the power equation, (..., T, F).

    Prompt tokens go through the compute queue (:func:`prefill_served_per_s`); a GPU computing a queued prompt is
    busy, so with a finite capacity the busy fraction is at least the share of the step spent computing prompts.
    """
    if not isinstance(work, WorkGrid):
        raise DcsimInputError("work", type(work).__name__, "a dcsim.serving.work.WorkGrid")
    served = prefill_served_per_s(work.prefill_tokens_per_s, prefill_capacity_tokens_per_s, work.dt_s)
    cols = []
    for name in terms:
        if name not in ALLOWED_TERMS:
            raise DcsimInputError("terms", name, ", ".join(ALLOWED_TERMS))
        if name == "prefill_tokens_per_s":
            x = served
        elif name == "busy_fraction" and np.isfinite(prefill_capacity_tokens_per_s):
            x = np.maximum(work.busy_fraction, np.minimum(served / prefill_capacity_tokens_per_s, 1.0))
        else:
            x = work.feature(name)
        cols.append(np.asarray(x, dtype=float))
    return np.stack(cols, axis=-1)


# ----------------------------------------------------------------------------------------------
# (c) the meter


def meter_kernel(lag_s: float, window_s: float, dt_s: float = STEP_S) -> tuple[np.ndarray, np.ndarray]:
    """(offsets d, weights w): the reading at step k is Σ_d w_d·x_{k−d}, Σ w = 1.

    The reading at t averages the work signal (piecewise constant per step) over a window of width
    max(window_s, dt_s) centred at t − lag_s − window_s/2.
    """
    if not (np.isfinite(lag_s) and np.isfinite(window_s) and window_s >= 0 and dt_s > 0):
        raise DcsimInputError("meter", (lag_s, window_s), "a finite lag_s and a window_s >= 0")
    width = max(window_s, dt_s) / dt_s
    centre = -(lag_s + window_s / 2.0) / dt_s      # in steps, relative to the reading's own step start
    lo, hi = centre - width / 2.0, centre + width / 2.0
    js = np.arange(int(np.floor(lo)), int(np.ceil(hi)) + 1)     # steps [j, j+1) relative to k
    w = np.clip(np.minimum(js + 1, hi) - np.maximum(js, lo), 0.0, None) / width
    keep = w > 1e-12
    return -js[keep], w[keep] / w[keep].sum()


def apply_meter(x: np.ndarray, lag_s: float, window_s: float, dt_s: float = STEP_S, axis: int = -1) -> np.ndarray:
    """The meter along ``axis``: a lagged moving average; the signal is held at its first (last) value beyond
    the window's start (end)."""
    a = np.moveaxis(np.asarray(x, dtype=float), axis, -1)
    offsets, weights = meter_kernel(lag_s, window_s, dt_s)
    n = a.shape[-1]
    if n == 0:
        return np.moveaxis(a.copy(), -1, axis)
    idx = np.arange(n)
    out = np.zeros_like(a)
    for d, w in zip(offsets, weights):
        out += w * a[..., np.clip(idx - d, 0, n - 1)]
    return np.moveaxis(out, -1, axis)


def fully_busy(busy_fraction: np.ndarray, lag_s: float, window_s: float, dt_s: float = STEP_S) -> np.ndarray:
    """True where every step the meter reads at a sample is wholly busy (along the last axis); False at the edges."""
    offsets, _ = meter_kernel(lag_s, window_s, dt_s)
    b = np.asarray(busy_fraction) >= 1.0 - 1e-9
    n = b.shape[-1]
    out = np.ones_like(b)
    idx = np.arange(n)
    for d in offsets:
        src = idx - d
        out &= np.where((src >= 0) & (src < n), b[..., np.clip(src, 0, n - 1)], False)
    return out


# ----------------------------------------------------------------------------------------------
# the model


class StructuredPowerModel(PowerModel):
    """Work ledger → non-negative linear power equation → meter → per-bin AR(1) residuals (module docstring).

    Hyper-parameters: ``terms`` of the equation; candidate ``lags_s``, ``windows_s`` and
    ``prefill_capacities_tokens_per_s`` searched by least squares (give one value each to fix them, e.g. the
    run's measured lag); ``n_bins`` power bins above the no-work bin for the residuals; ``n_quantiles`` per bin.
    Learned: ``idle_w_``, ``coef_`` (W per unit of each term), ``lag_s_``, ``window_s_``,
    ``prefill_capacity_tokens_per_s_``, ``bin_edges_w_``, ``residual_quantiles_w_``, ``phi_``, ``y_min_w_``,
    ``y_max_w_`` and the fit's ``r2_`` and ``rmse_w_`` in the measured domain.
    """

    kind = "structured"

    def __init__(self, terms: Sequence[str] = TERMS, lags_s: Sequence[float] = DEFAULT_LAGS_S,
                 windows_s: Sequence[float] = DEFAULT_WINDOWS_S,
                 prefill_capacities_tokens_per_s: Sequence[float] = DEFAULT_CAPACITIES,
                 n_bins: int = 4, n_quantiles: int = 101, prefill_share_split: float | None = 0.25,
                 long_context_tokens: float | None = 4096.0, idle_from_no_work: bool = True,
                 busy_floor_share: float | None = 0.5) -> None:
        self.terms = tuple(terms)
        for t in self.terms:
            if t not in ALLOWED_TERMS:
                raise DcsimInputError("terms", t, ", ".join(ALLOWED_TERMS))
        if "busy_fraction" not in self.terms:
            raise DcsimInputError("terms", self.terms, "terms including busy_fraction (the knee)")
        self.lags_s = tuple(float(v) for v in np.atleast_1d(lags_s))
        self.windows_s = tuple(float(v) for v in np.atleast_1d(windows_s))
        self.prefill_capacities_tokens_per_s = tuple(float(v) for v in np.atleast_1d(prefill_capacities_tokens_per_s))
        if not (self.lags_s and self.windows_s and self.prefill_capacities_tokens_per_s):
            raise DcsimInputError("lags_s/windows_s/prefill_capacities_tokens_per_s", "empty", "at least one value each")
        if isinstance(n_bins, bool) or int(n_bins) != n_bins or n_bins < 1:
            raise DcsimInputError("n_bins", n_bins, "a whole number >= 1")
        if isinstance(n_quantiles, bool) or int(n_quantiles) != n_quantiles or n_quantiles < 3:
            raise DcsimInputError("n_quantiles", n_quantiles, "a whole number >= 3")
        self.n_bins = int(n_bins)
        self.n_quantiles = int(n_quantiles)
        if prefill_share_split is not None and not 0.0 < prefill_share_split < 1.0:
            raise DcsimInputError("prefill_share_split", prefill_share_split, "a share in (0, 1), or None")
        self.prefill_share_split = None if prefill_share_split is None else float(prefill_share_split)
        if long_context_tokens is not None and not long_context_tokens > 0:
            raise DcsimInputError("long_context_tokens", long_context_tokens, "a positive number of tokens, or None")
        self.long_context_tokens = None if long_context_tokens is None else float(long_context_tokens)
        self.idle_from_no_work = bool(idle_from_no_work)
        if busy_floor_share is not None and not 0.0 <= busy_floor_share <= 1.0:
            raise DcsimInputError("busy_floor_share", busy_floor_share, "a share in [0, 1], or None")
        self.busy_floor_share = None if busy_floor_share is None else float(busy_floor_share)

    # --- fitting -------------------------------------------------------------------------------

    def _design(self, work: WorkGrid, lag_s: float, window_s: float, capacity: float) -> np.ndarray:
        return apply_meter(work_terms(work, self.terms, capacity), lag_s, window_s, work.dt_s, axis=-2)

    def fit(self, works: Sequence[WorkGrid], power_w: Sequence[np.ndarray],
            sample_weight: Sequence[float] | None = None) -> "StructuredPowerModel":
        """Fit the equation and meter by least squares in the measured domain, then the residual model.

        ``works[i]`` is one server's work (T_i,) and ``power_w[i]`` its measured node power (W, NaN where there is
        no sample) on the same grid; pass a run several times with different simulated schedules to average over
        the surrogate's draws. ``sample_weight[i]`` (optional, > 0) weighs every sample of pair i in the least
        squares, e.g. 1 / (samples of its run) so that every run counts the same.
        """
        pairs = check_pairs(works, power_w)
        weights = np.ones(len(pairs)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        if weights.shape != (len(pairs),) or not np.all(np.isfinite(weights) & (weights > 0)):
            raise DcsimInputError("sample_weight", sample_weight, "one positive weight per (work, power) pair")
        dts = {w.dt_s for w, _ in pairs}
        if len(dts) > 1:
            raise DcsimInputError("works", sorted(dts), "one grid step for every run")
        masks = [np.isfinite(y) for _, y in pairs]
        y_all = np.concatenate([y[m] for (_, y), m in zip(pairs, masks)])
        root_w = np.sqrt(np.concatenate([np.full(int(m.sum()), w) for w, m in zip(weights, masks)]))
        if y_all.size < 2 * (len(self.terms) + 1):
            raise DcsimInputError("power_w", y_all.size, f"at least {2 * (len(self.terms) + 1)} measured samples")
        best = None
        for capacity in self.prefill_capacities_tokens_per_s:
            raw = [work_terms(w, self.terms, capacity) for w, _ in pairs]
            for window in self.windows_s:
                for lag in self.lags_s:
                    x = np.concatenate([apply_meter(r, lag, window, w.dt_s, axis=-2)[m]
                                        for r, (w, _), m in zip(raw, pairs, masks)])
                    idle = _no_work_idle_w(x, y_all) if self.idle_from_no_work else None
                    coef, sse = _nnls_with_idle(x, y_all, root_w, idle)
                    if best is None or sse < best[0] - 1e-9 * abs(best[0]):
                        best = (sse, lag, window, capacity, coef)
        sse, self.lag_s_, self.window_s_, self.prefill_capacity_tokens_per_s_, coef = best
        self.idle_w_ = float(coef[0])
        self.coef_ = {t: float(c) for t, c in zip(self.terms, coef[1:])}
        w_all = root_w ** 2
        self.rmse_w_ = float(np.sqrt(sse / w_all.sum()))
        y_mean = float(np.sum(w_all * y_all) / w_all.sum())
        self.r2_ = float(1.0 - sse / np.sum(w_all * (y_all - y_mean) ** 2))
        self.y_min_w_, self.y_max_w_ = float(y_all.min()), float(y_all.max())
        self._fit_residuals(pairs, masks)
        return self

    def _fit_residuals(self, pairs: list[tuple[WorkGrid, np.ndarray]], masks: list[np.ndarray]) -> None:
        parts = [self._predict_parts(w) for w, _ in pairs]
        yhat = np.concatenate([p[m] for (p, _), m in zip(parts, masks)])
        resid = np.concatenate([(y - p)[m] for (_, y), (p, _), m in zip(pairs, parts, masks)])
        no_work = self.idle_w_ + _NO_WORK_SHARE * self.coef_["busy_fraction"]
        above = yhat[yhat > no_work]
        edges = [no_work]
        if above.size:
            edges += list(np.quantile(above, np.arange(1, self.n_bins) / self.n_bins))
        self.bin_edges_w_ = _merge_small_bins(np.asarray(edges), yhat)
        power_bin = np.searchsorted(self.bin_edges_w_, yhat, side="right")
        n_power = self.bin_edges_w_.size + 1
        states = np.concatenate([self._state(p, share)[m] for (p, share), m in zip(parts, masks)])
        n_states = 3 * n_power
        q = np.linspace(0.0, 1.0, self.n_quantiles)
        table = np.zeros((n_states, self.n_quantiles))
        scores = np.zeros_like(resid)
        for k in range(n_states):
            sel = states == k
            pool = sel if sel.sum() >= _MIN_BIN else power_bin == k % n_power  # too few: the power bin's residuals
            if pool.any():
                table[k] = np.quantile(resid[pool], q)
            if sel.any():
                ranks = np.argsort(np.argsort(resid[sel], kind="stable"), kind="stable")
                scores[sel] = ndtri((ranks + 0.5) / sel.sum())
        self.residual_quantiles_w_ = table
        # φ_k: AR(1) regression of z_t on z_{t-1} over consecutive measured pairs whose later sample is in state k
        num, den = np.zeros(n_states), np.zeros(n_states)
        offset = 0
        for m in masks:
            n = int(m.sum())
            z = np.full(m.size, np.nan)
            z[m] = scores[offset:offset + n]
            sz = np.zeros(m.size, dtype=np.int64)
            sz[m] = states[offset:offset + n]
            offset += n
            ok = np.isfinite(z[1:]) & np.isfinite(z[:-1])
            np.add.at(num, sz[1:][ok], z[1:][ok] * z[:-1][ok])
            np.add.at(den, sz[1:][ok], z[:-1][ok] ** 2)
        self.phi_ = np.clip(np.divide(num, den, out=np.zeros(n_states), where=den > 0), 0.0, _PHI_MAX)

    def _state(self, yhat: np.ndarray, parts: np.ndarray) -> np.ndarray:
        """Residual state per step: the power bin of ŷ, within one of three classes of work: ordinary, prefill-heavy
        (prefill makes up ≥ ``prefill_share_split`` of ŷ − idle) and long-context (≥ ``long_context_tokens`` resident
        per request in a slot)."""
        k = np.searchsorted(self.bin_edges_w_, yhat, side="right")
        n_power = self.bin_edges_w_.size + 1
        cls = np.zeros(k.shape, dtype=np.int64)
        if self.long_context_tokens is not None:
            cls = np.where(parts[..., 1] >= self.long_context_tokens, 2, cls)
        if self.prefill_share_split is not None:
            cls = np.where(parts[..., 0] >= self.prefill_share_split, 1, cls)
        return k + n_power * cls

    # --- prediction and sampling --------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise DcsimInputError("StructuredPowerModel", "not fitted", "a model after fit() or load()")

    def power_equation_w(self, work: WorkGrid) -> np.ndarray:
        """What the GPU draws per step before the meter: idle_w + Σ c_j·x_j (W), the work's shape."""
        self._check_fitted()
        x = work_terms(work, self.terms, self.prefill_capacity_tokens_per_s_)
        return self.idle_w_ + x @ np.array([self.coef_[t] for t in self.terms])

    def _predict_parts(self, work: WorkGrid) -> tuple[np.ndarray, np.ndarray]:
        """(ŷ in W, (..., T, 2): the share of ŷ − idle due to prefill, resident tokens per request in a slot)."""
        self._check_fitted()
        x = work_terms(work, self.terms, self.prefill_capacity_tokens_per_s_)
        c = np.array([self.coef_[t] for t in self.terms])
        dynamic = apply_meter(x @ c, self.lag_s_, self.window_s_, work.dt_s)
        if "prefill_tokens_per_s" in self.terms:
            j = self.terms.index("prefill_tokens_per_s")
            prefill = apply_meter(x[..., j] * c[j], self.lag_s_, self.window_s_, work.dt_s)
        else:
            prefill = np.zeros_like(dynamic)
        share = np.divide(prefill, dynamic, out=np.zeros_like(dynamic), where=dynamic > 1e-9)
        context = np.divide(work.kv_tokens, work.occupancy, out=np.zeros(work.shape), where=work.occupancy > 1e-6)
        return self.idle_w_ + dynamic, np.stack([share, context], axis=-1)

    def predict_w(self, work: WorkGrid) -> np.ndarray:
        """The expected meter reading per step (W): the power equation through the meter, no noise."""
        return self._predict_parts(work)[0]

    def sample(self, work: WorkGrid | np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Sampled meter readings (W), (T,) or (S, T): ŷ plus the per-state AR(1) residual, clipped to the
        observed range. Draws: one standard normal per step, time-major over the servers."""
        if not isinstance(work, WorkGrid):
            raise DcsimInputError("work", type(work).__name__,
                                  "a WorkGrid (dcsim.serving.work): the structured model needs more than A_t")
        yhat, parts = self._predict_parts(work)
        states = self._state(yhat, parts)
        eps = rng.standard_normal(yhat.shape[::-1]).T if yhat.ndim > 1 else rng.standard_normal(yhat.shape)
        phi = self.phi_[states]
        innov = np.sqrt(1.0 - phi * phi) * eps
        z = np.empty_like(yhat)
        zt, it, ft = np.moveaxis(z, -1, 0), np.moveaxis(innov, -1, 0), np.moveaxis(phi, -1, 0)
        if zt.shape[0]:
            zt[0] = np.moveaxis(eps, -1, 0)[0]
            for t in range(1, zt.shape[0]):
                zt[t] = ft[t] * zt[t - 1] + it[t]
        pos = ndtr(z) * (self.n_quantiles - 1)
        lo = np.minimum(np.floor(pos).astype(np.int64), self.n_quantiles - 2)
        frac = pos - lo
        table = self.residual_quantiles_w_
        resid = table[states, lo] * (1.0 - frac) + table[states, lo + 1] * frac
        power_w = yhat + resid
        if self.busy_floor_share is not None:
            # a GPU busy through every step the meter reads never reads near idle: the residual table also holds
            # training samples whose schedule said busy while the GPU was not, which generation must not replay
            busy = work_terms(work, ("busy_fraction",), self.prefill_capacity_tokens_per_s_)[..., 0]
            floor = self.idle_w_ + self.busy_floor_share * self.coef_["busy_fraction"]
            power_w = np.where(fully_busy(busy, self.lag_s_, self.window_s_, work.dt_s), np.maximum(power_w, floor),
                               power_w)
        return np.clip(power_w, self.y_min_w_, self.y_max_w_)

    # --- description and storage ------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        out = super().config() | {"terms": list(self.terms), "n_bins": self.n_bins}
        if hasattr(self, "coef_"):
            out |= {"idle_w": self.idle_w_, "coef": dict(self.coef_), "lag_s": self.lag_s_,
                    "window_s": self.window_s_, "prefill_capacity_tokens_per_s": self.prefill_capacity_tokens_per_s_,
                    "r2": self.r2_, "rmse_w": self.rmse_w_}
        return out

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"terms": list(self.terms), "lags_s": list(self.lags_s), "windows_s": list(self.windows_s),
                             "prefill_capacities_tokens_per_s": [_finite_or_str(v) for v in
                                                                 self.prefill_capacities_tokens_per_s],
                             "n_bins": self.n_bins, "n_quantiles": self.n_quantiles,
                             "prefill_share_split": self.prefill_share_split,
                             "long_context_tokens": self.long_context_tokens,
                             "idle_from_no_work": self.idle_from_no_work, "busy_floor_share": self.busy_floor_share}
        if hasattr(self, "coef_"):
            d["fitted"] = {
                "idle_w": self.idle_w_, "coef": dict(self.coef_), "lag_s": self.lag_s_, "window_s": self.window_s_,
                "prefill_capacity_tokens_per_s": _finite_or_str(self.prefill_capacity_tokens_per_s_),
                "bin_edges_w": self.bin_edges_w_.tolist(), "residual_quantiles_w": self.residual_quantiles_w_.tolist(),
                "phi": self.phi_.tolist(), "y_min_w": self.y_min_w_, "y_max_w": self.y_max_w_, "r2": self.r2_,
                "rmse_w": self.rmse_w_}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StructuredPowerModel":
        model = cls(d["terms"], d["lags_s"], d["windows_s"], [float(v) for v in d["prefill_capacities_tokens_per_s"]],
                    d["n_bins"], d["n_quantiles"], d.get("prefill_share_split"), d.get("long_context_tokens"),
                    d.get("idle_from_no_work", True), d.get("busy_floor_share", 0.5))
        f = d.get("fitted")
        if f:
            model.idle_w_, model.coef_ = float(f["idle_w"]), {k: float(v) for k, v in f["coef"].items()}
            model.lag_s_, model.window_s_ = float(f["lag_s"]), float(f["window_s"])
            model.prefill_capacity_tokens_per_s_ = float(f["prefill_capacity_tokens_per_s"])
            model.bin_edges_w_ = np.asarray(f["bin_edges_w"], dtype=float)
            model.residual_quantiles_w_ = np.asarray(f["residual_quantiles_w"], dtype=float)
            model.phi_ = np.asarray(f["phi"], dtype=float)
            model.y_min_w_, model.y_max_w_ = float(f["y_min_w"]), float(f["y_max_w"])
            model.r2_, model.rmse_w_ = float(f["r2"]), float(f["rmse_w"])
        return model


def _finite_or_str(v: float) -> float | str:
    return float(v) if np.isfinite(v) else "inf"


def _no_work_idle_w(x: np.ndarray, y: np.ndarray) -> float | None:
    """Median measured power over the samples with no work within the meter's reach; None if under _MIN_BIN."""
    none = np.all(x <= 1e-9, axis=1)
    return float(np.median(y[none])) if none.sum() >= _MIN_BIN else None


def _nnls_with_idle(x: np.ndarray, y: np.ndarray, root_w: np.ndarray | None = None,
                    idle_w: float | None = None) -> tuple[np.ndarray, float]:
    """min ‖√w·([1 x]·c − y)‖² with c ≥ 0, or with c_0 fixed at ``idle_w``; returns (c, weighted SSE).

    Solved on the normal equations: with G = AᵀA = RᵀR (columns scaled to unit RMS, a 1e-10 ridge for
    conditioning), ‖Ac − y‖² = ‖Rc − R⁻ᵀAᵀy‖² + const, a tiny NNLS problem whatever the number of samples.
    """
    if idle_w is not None:
        c, sse = _nnls_normal(x, y - idle_w, root_w)
        return np.concatenate([[idle_w], c]), sse
    return _nnls_normal(np.column_stack([np.ones(len(y)), x]), y, root_w)


def _nnls_normal(a: np.ndarray, y: np.ndarray, root_w: np.ndarray | None) -> tuple[np.ndarray, float]:
    """min ‖√w·(a·c − y)‖² with c ≥ 0 on the normal equations."""
    if root_w is not None:
        a, y = a * root_w[:, None], y * root_w
    scale = np.sqrt(np.mean(a * a, axis=0))
    scale[scale == 0] = 1.0
    a = a / scale
    gram = a.T @ a
    gram[np.diag_indices_from(gram)] += 1e-10 * np.trace(gram)
    r = np.linalg.cholesky(gram).T
    d = np.linalg.solve(r.T, a.T @ y)
    c, _ = nnls(r, d, maxiter=50 * a.shape[1])
    res = a @ c - y
    return c / scale, float(res @ res)


def _merge_small_bins(edges: np.ndarray, yhat: np.ndarray) -> np.ndarray:
    """Drop edges (from the top) until every bin holds at least _MIN_BIN predictions, and duplicate edges."""
    edges = np.unique(edges)
    while edges.size:
        counts = np.bincount(np.searchsorted(edges, yhat, side="right"), minlength=edges.size + 1)
        small = np.flatnonzero(counts < _MIN_BIN)
        if not small.size:
            break
        b = int(small[-1])
        edges = np.delete(edges, min(b, edges.size - 1) if b > 0 else 0)
    return edges
