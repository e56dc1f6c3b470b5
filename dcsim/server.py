"""One server end to end: requests → serving (surrogate + FIFO-64) → A_t grid → states → power (paper Stage 3)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dcsim.errors import DcsimInputError
from dcsim.power.configs import CalibratedConfig
from dcsim.power.generator import sample_power, sample_states
from dcsim.serving.features import active_grid, feature_matrix
from dcsim.serving.kernel import simulate_requests
from dcsim.serving.queue import ServedRequests


@dataclass
class ServerTrace:
    """A generated 250 ms trace of one server: grid times (s from start), active requests A_t, GPU power (W)."""

    t_s: np.ndarray
    active: np.ndarray
    power_w: np.ndarray
    served: ServedRequests | None = None


def power_from_probs(config: CalibratedConfig, probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """State probabilities (…, T, K) → sampled node GPU power (W), (…, T): categorical state draws (not argmax),
    per-state power (i.i.d. for dense, AR(1) for MoE), clipped to the observed range."""
    rng_states, rng_power = rng.spawn(2)
    return sample_power(sample_states(probs, rng_states), config.states, rng_power)


def power_from_active(config: CalibratedConfig, active: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A_t (T,) or (S, T) → sampled node GPU power (W), same shape: BiGRU state probabilities, then
    :func:`power_from_probs`."""
    active = np.asarray(active, dtype=float)
    if not np.all(np.isfinite(active)) or np.any(active < 0):
        raise DcsimInputError("active", "NaN or negative values", "finite counts of active requests >= 0")
    return power_from_probs(config, config.classifier.predict_proba(feature_matrix(active)), rng)


def check_requests(arrival_s: np.ndarray, n_in: np.ndarray, n_out: np.ndarray, where: str = "requests") -> None:
    """Refuse request arrays a user could get wrong: unequal lengths, NaN, negative times, token counts < 1."""
    lengths = {"arrival_s": len(arrival_s), "n_in": len(n_in), "n_out": len(n_out)}
    if len(set(lengths.values())) != 1:
        raise DcsimInputError(where, lengths, "arrays of equal length", problem="arrays of unequal length")
    for key, arr, low in (("arrival_s", arrival_s, 0.0), ("n_in", n_in, 1), ("n_out", n_out, 1)):
        arr = np.asarray(arr, dtype=float)
        bad = ~np.isfinite(arr) | (arr < low)
        if bad.any():
            raise DcsimInputError(f"{where}.{key}", arr[bad][0], f"finite values >= {low}",
                                  problem=f"{int(bad.sum())} bad value(s), first")


def simulate_server(config: CalibratedConfig, arrival_s: np.ndarray, n_in: np.ndarray, n_out: np.ndarray,
                    duration_s: float, rng: np.random.Generator, dt_s: float = 0.25) -> ServerTrace:
    """Generate one server's trace over [0, duration_s) from its requests (arrival in s from start)."""
    arrival_s, n_in, n_out = (np.asarray(a) for a in (arrival_s, n_in, n_out))
    check_requests(arrival_s, n_in, n_out)
    if not (np.isfinite(duration_s) and duration_s > 0):
        raise DcsimInputError("duration_s", duration_s, "a positive number of seconds")
    order = np.argsort(arrival_s, kind="stable")
    rng_serve, rng_power = rng.spawn(2)
    served = simulate_requests(arrival_s[order], n_in[order], n_out[order], config.surrogate, rng_serve,
                               slots=config.slots)
    n_steps = int(np.floor(duration_s / dt_s + 1e-9))
    active = active_grid(served.start_s, served.end_s, 0.0, n_steps, dt_s)
    power_w = power_from_active(config, active, rng_power)
    return ServerTrace(np.arange(n_steps) * dt_s, active, power_w, served)
