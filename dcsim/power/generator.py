"""Sampling (paper Stage 3, steps 4–5): state draws from the classifier's probabilities, then power per state.

4. z_t ~ Categorical(p_t), independently per step (not the argmax).
5. Dense models: y_t ~ N(μ_z, σ_z²) i.i.d. Where ``StateDictionary.ar1`` (mixture-of-experts models, averaging meters), AR(1) per state:
       y_t = μ_z + φ_z (y_{t−1} − μ_z) + σ_z·sqrt(1 − φ_z²)·ε_t,   ε_t ~ N(0, 1),
   started from y_0 ~ N(μ_z0, σ_z0²). Power is clipped to the observed range [y_min, y_max] (W); in the
   AR(1) recursion the clipped value is the y_{t−1} of the next step.

Every draw comes from the numpy Generator passed in; leading axes (servers) are vectorised.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from dcsim.errors import DcsimInputError
from dcsim.power.states import StateDictionary


def sample_states(probs: Any, rng: np.random.Generator) -> np.ndarray:
    """One categorical draw per step: probs (..., T, K) → states (..., T) int64 in 0..K-1.

    Rows need not sum exactly to 1 (float32 softmax); each is normalised by its own total.
    """
    p = np.asarray(probs)
    if p.ndim < 1 or p.shape[-1] < 1:
        raise DcsimInputError("probs", f"array of shape {p.shape}", "probabilities of shape (..., T, K), K >= 1")
    cdf = np.cumsum(p, axis=-1)
    total = cdf[..., -1]
    if not (np.all(np.isfinite(cdf)) and np.all(total > 0)) or (p.size and p.min() < 0):
        raise DcsimInputError("probs", "negative, non-finite or all-zero rows", "non-negative finite probabilities")
    u = rng.random(p.shape[:-1]) * total
    states = (cdf <= u[..., None]).sum(axis=-1)
    return np.minimum(states, p.shape[-1] - 1).astype(np.int64)


def sample_power(states: Any, states_dict: StateDictionary, rng: np.random.Generator) -> np.ndarray:
    """Node GPU power (W) for state sequences (..., T): i.i.d. Gaussian per state, AR(1) when ``ar1``; clipped."""
    z = np.asarray(states)
    k = states_dict.k_
    if z.ndim < 1 or (z.size and not np.issubdtype(z.dtype, np.integer)):
        raise DcsimInputError("states", f"{z.dtype} array of shape {z.shape}", "integer states of shape (..., T)")
    if z.size and (z.min() < 0 or z.max() >= k):
        raise DcsimInputError("states", int(z.min() if z.min() < 0 else z.max()), f"states 0..{k - 1}")
    mu, sigma = states_dict.means_, states_dict.sigmas_
    eps = rng.standard_normal(z.shape)
    lo, hi = states_dict.y_min_, states_dict.y_max_
    if not states_dict.ar1:
        return np.clip(mu[z] + sigma[z] * eps, lo, hi)
    return _ar1(z, mu, sigma, states_dict.phi_, eps, lo, hi)


def _ar1(z: np.ndarray, mu: np.ndarray, sigma: np.ndarray, phi: np.ndarray, eps: np.ndarray,
         lo: float, hi: float) -> np.ndarray:
    """The AR(1) recursion along the last axis, vectorised over the leading ones; clipped at every step."""
    if z.shape[-1] == 0:
        return np.empty(z.shape)
    zt = np.moveaxis(z, -1, 0)          # (T, ...): each step a contiguous slice
    et = np.moveaxis(eps, -1, 0)
    m, s, f = mu[zt], sigma[zt], phi[zt]
    innov = s * np.sqrt(1.0 - f * f) * et
    y = np.empty(zt.shape)
    y[0] = np.clip(m[0] + s[0] * et[0], lo, hi)
    for t in range(1, zt.shape[0]):
        y[t] = np.clip(m[t] + f[t] * (y[t - 1] - m[t]) + innov[t], lo, hi)
    return np.ascontiguousarray(np.moveaxis(y, 0, -1))
