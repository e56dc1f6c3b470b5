"""The state dictionary (paper Stage 1): a 1-D Gaussian mixture over node GPU power, K chosen by BIC.

Components are ordered by mean power, so state 0 is the idle state and state K-1 the saturated one.
The dictionary keeps, per state k, the mean μ_k (W), standard deviation σ_k (W), mixture weight and an
AR(1) coefficient φ_k (used for mixture-of-experts models only), and the observed power range
[y_min, y_max] (W) that generated power is clipped to.

Choosing K. BIC over a range of K often keeps falling slowly long after the structure is captured (on
250 ms power traces it rarely has a clear minimum), so K is the start of the plateau, not the minimum:
the smallest K whose BIC is within ``plateau_tol`` (default 5 %) of the total BIC drop from the first K
of the range to the best one::

    K = min{K : BIC(K) - BIC_best <= plateau_tol * (BIC(K_first) - BIC_best)}

With plateau_tol = 0 this is the BIC minimum. The whole curve is kept in ``bic_curve_``.

AR(1) φ_k: lag-1 autocorrelation of power inside runs of consecutive samples labelled k, pooled over
the runs of length >= 3 of every contiguous segment (each run's own mean removed), clamped to
[0, 0.99]; 0 when fewer than ``_MIN_PAIRS`` lag-1 pairs exist.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy.special import logsumexp
from sklearn.mixture import GaussianMixture

from dcsim.errors import DcsimInputError, as_1d_array

_MIN_RUN = 3      # shortest run of one state used for φ
_MIN_PAIRS = 10   # fewer pooled lag-1 pairs than this → φ = 0
_PHI_MAX = 0.99
_REG_COVAR_W2 = 1e-3  # variance floor added by the mixture fit (W²)


def _as_segments(power_w: Any) -> list[np.ndarray]:
    """One 1-D float array, or a list of them (contiguous segments) → list of 1-D float arrays."""
    is_list = isinstance(power_w, (list, tuple)) and len(power_w) > 0 and all(np.ndim(i) == 1 for i in power_w)
    items = list(power_w) if is_list else [power_w]
    segments = []
    for i, item in enumerate(items):
        where = "power_w" if len(items) == 1 else f"power_w[{i}]"
        segments.append(as_1d_array(where, item, "power values in W", finite=False))
    return segments


def _check_k_range(k_range: Sequence[int]) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in k_range)
    except (TypeError, ValueError):
        raise DcsimInputError("k_range", k_range, "a pair (k_min, k_max) of integers, 1 <= k_min <= k_max") from None
    if not 1 <= lo <= hi:
        raise DcsimInputError("k_range", k_range, "a pair (k_min, k_max) of integers, 1 <= k_min <= k_max")
    return lo, hi


def plateau_k(bic_curve: dict[int, float], tol: float) -> int:
    """Smallest K whose BIC is within ``tol`` of the total drop from the first K to the best K."""
    ks = sorted(bic_curve)
    bic = np.array([bic_curve[k] for k in ks])
    best = bic.min()
    drop = bic[0] - best
    return int(ks[int(np.flatnonzero(bic - best <= tol * drop)[0])])


def lag1_phi(segments: list[np.ndarray], labels: list[np.ndarray], k: int) -> np.ndarray:
    """Per-state pooled lag-1 autocorrelation inside runs of one state (run means removed), in [0, 0.99].

    NaN samples (label -1) break runs.
    """
    num = np.zeros(k)
    den = np.zeros(k)
    pairs = np.zeros(k, dtype=np.int64)
    for y, z in zip(segments, labels):
        if y.size < _MIN_RUN:
            continue
        edges = np.flatnonzero(np.diff(z)) + 1
        starts = np.concatenate([[0], edges])
        stops = np.concatenate([edges, [z.size]])
        for a, b in zip(starts, stops):
            state = z[a]
            if b - a < _MIN_RUN or state < 0:
                continue
            x = y[a:b] - y[a:b].mean()
            num[state] += float(x[1:] @ x[:-1])
            den[state] += float(x @ x)
            pairs[state] += b - a - 1
    phi = np.zeros(k)
    ok = (pairs >= _MIN_PAIRS) & (den > 0)
    phi[ok] = num[ok] / den[ok]
    return np.clip(phi, 0.0, _PHI_MAX)


class StateDictionary:
    """Gaussian-mixture operating states of one configuration's node GPU power (W).

    k: fixed number of states, or None to choose it by BIC over ``k_range`` (see the module docstring).
    ar1: sample power per state as AR(1) (φ per state) instead of i.i.d.: for mixture-of-experts models and for
    meters that average over about a second (the H100's reading).
    max_fit_samples: more finite samples than this are subsampled (seeded) for the mixture fit; the range
    and φ always use every sample. n_init: mixture initialisations per K (best kept). plateau_tol: the
    BIC plateau rule's tolerance.
    Missing samples (NaN) in the input are ignored by the fit and break the runs used for φ.
    """

    def __init__(self, k: int | None = None, k_range: tuple[int, int] = (2, 16), ar1: bool = False, seed: int = 0,
                 max_fit_samples: int = 20000, n_init: int = 3, plateau_tol: float = 0.05) -> None:
        self.k = k
        self.k_range = k_range
        self.ar1 = ar1
        self.seed = seed
        self.max_fit_samples = max_fit_samples
        self.n_init = n_init
        self.plateau_tol = plateau_tol

    # ----------------------------------------------------------------------------------------- fit
    def fit(self, power_w: np.ndarray | list[np.ndarray]) -> "StateDictionary":
        """Fit the mixture to node power (W): one array, or a list of contiguous segments (for AR(1) φ)."""
        segments = _as_segments(power_w)
        finite = np.concatenate([s[np.isfinite(s)] for s in segments]) if segments else np.empty(0)
        if finite.size < 2:
            raise DcsimInputError("power_w", f"{finite.size} finite samples", "at least 2 finite power samples")
        if self.k is not None:
            if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)) or self.k < 1:
                raise DcsimInputError("k", self.k, "a positive integer or None (choose by BIC)")
            candidates = [int(self.k)]
        else:
            lo, hi = _check_k_range(self.k_range)
            candidates = list(range(lo, hi + 1))
        if not 0.0 <= self.plateau_tol < 1.0:
            raise DcsimInputError("plateau_tol", self.plateau_tol, "a fraction in [0, 1)")
        n_distinct = np.unique(finite).size
        if candidates[0] > n_distinct:
            raise DcsimInputError("power_w", f"{n_distinct} distinct values",
                                  f"at least {candidates[0]} distinct power values for K={candidates[0]}")
        candidates = [c for c in candidates if c <= n_distinct]

        rng = np.random.default_rng(self.seed)
        x = finite
        if x.size > self.max_fit_samples:
            x = rng.choice(finite, size=self.max_fit_samples, replace=False)
        x = x.reshape(-1, 1)

        fits: dict[int, GaussianMixture] = {}
        bic: dict[int, float] = {}
        for kk in candidates:
            gm = GaussianMixture(n_components=kk, covariance_type="full", n_init=self.n_init,
                                 reg_covar=_REG_COVAR_W2, random_state=self.seed).fit(x)
            fits[kk] = gm
            bic[kk] = float(gm.bic(x))
        chosen = candidates[0] if len(candidates) == 1 else plateau_k(bic, self.plateau_tol)
        gm = fits[chosen]

        order = np.argsort(gm.means_.ravel(), kind="stable")
        self.k_ = chosen
        self.means_ = gm.means_.ravel()[order].astype(float)
        self.sigmas_ = np.sqrt(gm.covariances_.reshape(-1)[order]).astype(float)
        self.weights_ = gm.weights_[order].astype(float)
        self.y_min_ = float(finite.min())
        self.y_max_ = float(finite.max())
        self.bic_curve_ = {} if self.k is not None else bic
        self.phi_ = lag1_phi(segments, [self._label_with_missing(s) for s in segments], self.k_)
        return self

    # ------------------------------------------------------------------------------------ inference
    def _check_fitted(self) -> None:
        if not hasattr(self, "means_"):
            raise RuntimeError("StateDictionary is not fitted: call fit() or from_dict() first")

    def _log_joint(self, y: np.ndarray) -> np.ndarray:
        """log(w_k N(y | μ_k, σ_k²)), shape (..., K)."""
        z = (y[..., None] - self.means_) / self.sigmas_
        return np.log(self.weights_) - np.log(self.sigmas_) - 0.5 * np.log(2 * np.pi) - 0.5 * z * z

    def _finite_power(self, power_w: Any) -> np.ndarray:
        try:
            y = np.asarray(power_w, dtype=float)
        except (TypeError, ValueError):
            raise DcsimInputError("power_w", power_w, "an array of power values in W") from None
        if not np.all(np.isfinite(y)):
            raise DcsimInputError("power_w", "non-finite values", "finite power values in W")
        return y

    def predict_proba(self, power_w: Any) -> np.ndarray:
        """Posterior state probabilities, shape (..., K), states ordered by mean."""
        self._check_fitted()
        lj = self._log_joint(self._finite_power(power_w))
        return np.exp(lj - logsumexp(lj, axis=-1, keepdims=True))

    def label(self, power_w: Any) -> np.ndarray:
        """Most probable state of every sample (0 = lowest mean), same shape as the input."""
        self._check_fitted()
        return np.argmax(self._log_joint(self._finite_power(power_w)), axis=-1).astype(np.int64)

    def _label_with_missing(self, y: np.ndarray) -> np.ndarray:
        z = np.full(y.shape, -1, dtype=np.int64)
        ok = np.isfinite(y)
        z[ok] = np.argmax(self._log_joint(y[ok]), axis=-1)
        return z

    # ---------------------------------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        """JSON-ready parameters (W), enough to rebuild the dictionary with `from_dict`."""
        self._check_fitted()
        return {
            "k": int(self.k_),
            "means_w": self.means_.tolist(),
            "sigmas_w": self.sigmas_.tolist(),
            "weights": self.weights_.tolist(),
            "phi": self.phi_.tolist(),
            "y_min_w": self.y_min_,
            "y_max_w": self.y_max_,
            "ar1": bool(self.ar1),
            "bic_curve": {str(kk): float(v) for kk, v in self.bic_curve_.items()},
            "params": {"k": self.k, "k_range": list(self.k_range), "seed": self.seed,
                       "max_fit_samples": self.max_fit_samples, "n_init": self.n_init,
                       "plateau_tol": self.plateau_tol},
        }

    @classmethod
    def from_dict(cls, d: dict) -> "StateDictionary":
        """Rebuild from `to_dict` output, or from hand-written means_w / sigmas_w (W) and optional weights, phi,
        y_min_w, y_max_w (default: ±4σ around the extreme states) and ar1 (written as ``moe`` by dcsim 0.1)."""
        try:
            means = np.asarray(d["means_w"], dtype=float).ravel()
            sigmas = np.asarray(d["sigmas_w"], dtype=float).ravel()
        except (KeyError, TypeError, ValueError):
            raise DcsimInputError("states", sorted(d) if isinstance(d, dict) else d,
                                  "a dict with means_w and sigmas_w lists (W)") from None
        k = means.size
        weights = np.asarray(d.get("weights", np.full(k, 1.0 / max(k, 1))), dtype=float).ravel()
        phi = np.asarray(d.get("phi", np.zeros(k)), dtype=float).ravel()
        if k == 0 or sigmas.size != k or weights.size != k or phi.size != k:
            raise DcsimInputError("states", {"means_w": k, "sigmas_w": sigmas.size, "weights": weights.size,
                                             "phi": phi.size}, "equal, non-zero numbers of per-state values")
        if not (np.all(np.isfinite(means)) and np.all(sigmas > 0) and np.all(weights > 0)):
            raise DcsimInputError("states", "bad per-state values", "finite means_w, sigmas_w > 0, weights > 0")
        if not np.all((phi >= 0) & (phi < 1)):
            raise DcsimInputError("states.phi", phi.tolist(), "AR(1) coefficients in [0, 1)")
        order = np.argsort(means, kind="stable")
        params = dict(d.get("params", {}))
        obj = cls(k=params.get("k"), k_range=tuple(params.get("k_range", (2, 16))), ar1=bool(d.get("ar1", d.get("moe", False))),
                  seed=params.get("seed", 0), max_fit_samples=params.get("max_fit_samples", 20000),
                  n_init=params.get("n_init", 3), plateau_tol=params.get("plateau_tol", 0.05))
        obj.k_ = int(k)
        obj.means_ = means[order]
        obj.sigmas_ = sigmas[order]
        obj.weights_ = weights[order] / weights.sum()
        obj.phi_ = phi[order]
        obj.y_min_ = float(d.get("y_min_w", obj.means_[0] - 4 * obj.sigmas_[0]))
        obj.y_max_ = float(d.get("y_max_w", obj.means_[-1] + 4 * obj.sigmas_[-1]))
        if not obj.y_min_ <= obj.y_max_:
            raise DcsimInputError("states.y_min_w", obj.y_min_, f"a value <= y_max_w ({obj.y_max_})")
        obj.bic_curve_ = {int(kk): float(v) for kk, v in d.get("bic_curve", {}).items()}
        return obj

    def __repr__(self) -> str:
        if not hasattr(self, "means_"):
            return f"StateDictionary(k={self.k}, k_range={self.k_range}, ar1={self.ar1})"
        return (f"StateDictionary(K={self.k_}, means_w={np.round(self.means_, 1).tolist()}, "
                f"range_w=[{self.y_min_:.1f}, {self.y_max_:.1f}], ar1={self.ar1})")
