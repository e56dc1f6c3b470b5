"""The one-server chain, in one place: requests → serving (surrogate + FIFO-64) → occupancy A_t → power.

Paper Stage 3 for one server. ``dcsim generate`` (:func:`generate_server`), calibration and validation
(:func:`replay_occupancy` on a measured run's own requests) and the facility engine (:func:`serve`, then
:func:`power_rows` over a chunk of servers of one configuration) all call these functions, so a server
is built the same way wherever it is simulated.

Seeding contract: a server's generator is split into (serving, power) by :func:`generate_server` and by
the engine alike; a power generator is split again into (states, power draws) by :func:`power_from_probs`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dcsim.constants import SLOTS_PER_SERVER, STEP_S
from dcsim.errors import DcsimInputError
from dcsim.power.generator import sample_power, sample_states
from dcsim.serving.features import active_grid, feature_matrix
from dcsim.serving.kernel import serve_requests
from dcsim.serving.queue import ServedRequests
from dcsim.workload.arrivals import Requests

if TYPE_CHECKING:
    from dcsim.configs import CalibratedConfig
    from dcsim.measured import MeasuredRun
    from dcsim.serving.latency import LatencySurrogate

__all__ = ["ServerTrace", "serve", "served_occupancy", "replay_occupancy", "context_steps", "power_from_probs", "power_from_active", "power_rows",
           "generate_server"]


@dataclass
class ServerTrace:
    """A generated trace of one server: grid times (s from start), active requests A_t, GPU power (W)."""

    t_s: np.ndarray
    active: np.ndarray
    power_w: np.ndarray
    served: ServedRequests | None = None


def serve(config: "CalibratedConfig", requests: Requests, rng: np.random.Generator) -> ServedRequests:
    """One server's requests through the configuration's latency surrogate and FIFO queue (the compiled kernel)."""
    return serve_requests(requests.arrival_s, requests.n_in, requests.n_out, config.surrogate, rng,
                          slots=config.slots)


def served_occupancy(surrogate: "LatencySurrogate", arrival_s: np.ndarray, n_in: np.ndarray, n_out: np.ndarray,
                     n_steps: int, rng: np.random.Generator, slots: int = SLOTS_PER_SERVER,
                     dt_s: float = STEP_S) -> np.ndarray:
    """A_t on a grid of ``n_steps`` from requests in the order given (s from the grid start), served by the
    surrogate and the FIFO kernel exactly as :func:`serve` serves a configuration's requests."""
    served = serve_requests(arrival_s, n_in, n_out, surrogate, rng, slots=slots)
    return active_grid(served.start_s, served.end_s, 0.0, n_steps, dt_s)


def replay_occupancy(run: "MeasuredRun", surrogate: "LatencySurrogate", rng: np.random.Generator,
                     slots: int = SLOTS_PER_SERVER, pad_steps: int = 0) -> np.ndarray:
    """A_t on a measured run's grid from the run's own arrivals and token counts (what calibration trains the
    classifier on, and what validation drives the pipeline with), ``pad_steps`` more on both sides (requests
    still in flight past the end keep counting; before the run there is none)."""
    req = run.requests
    shift = pad_steps * run.dt_s
    return served_occupancy(surrogate, req.arrival_s - run.t0_s + shift, req.n_in, req.n_out,
                            len(run.power_w) + 2 * pad_steps, rng, slots, run.dt_s)


def context_steps(config: "CalibratedConfig") -> int:
    """Steps of A_t the power model needs on each side of a step (the bidirectional GRU's context)."""
    return int(getattr(config.classifier, "context", 0))


def power_from_probs(config: "CalibratedConfig", probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """State probabilities (…, T, K) → sampled node GPU power (W), (…, T): categorical state draws (not argmax),
    per-state power (i.i.d., or AR(1) where the configuration says so), clipped to the observed range."""
    rng_states, rng_power = rng.spawn(2)
    return sample_power(sample_states(probs, rng_states), config.states, rng_power)


def power_from_active(config: "CalibratedConfig", active: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A_t (T,) or (S, T) → sampled node GPU power (W), same shape: BiGRU state probabilities, then
    :func:`power_from_probs`."""
    active = np.asarray(active, dtype=float)
    if not np.all(np.isfinite(active)) or np.any(active < 0):
        raise DcsimInputError("active", "NaN or negative values", "finite counts of active requests >= 0")
    return power_from_probs(config, config.classifier.predict_proba(feature_matrix(active)), rng)


def power_rows(config: "CalibratedConfig", active: np.ndarray, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """GPU power (W) for several servers of one configuration, ``active`` (S, T), one Generator per row.

    The classifier runs on the whole chunk at once; row j equals ``power_from_active(config, active[j], rngs[j])``.
    """
    active = np.asarray(active, dtype=float)
    probs = config.classifier.predict_proba(feature_matrix(active))
    out = np.empty(active.shape)
    for j, rng in enumerate(rngs):
        out[j] = power_from_probs(config, probs[j], rng)
    return out


def generate_server(config: "CalibratedConfig", requests: Requests, duration_s: float, rng: np.random.Generator,
                    dt_s: float = STEP_S) -> ServerTrace:
    """One server's trace over [0, duration_s) from its requests (arrival in s from start).

    Requests may arrive before 0 (a warm-up: the server is then already busy at 0) and after the end. The
    occupancy is built past both ends by the classifier's context and the warm-up, power generated over all
    of it and trimmed to [0, duration_s), so the first and last steps see the same context as the middle."""
    if not (np.isfinite(duration_s) and duration_s >= dt_s):
        raise DcsimInputError("--duration-s", duration_s, f"a number of seconds >= one step ({dt_s} s)")
    rng_serve, rng_power = rng.spawn(2)
    served = serve(config, requests, rng_serve)
    n_steps = int(np.floor(duration_s / dt_s + 1e-9))
    ctx = context_steps(config)
    first = float(requests.arrival_s.min()) if len(requests) else 0.0
    lead = ctx + (int(np.ceil(-first / dt_s - 1e-9)) if first < 0 else 0)
    active = active_grid(served.start_s, served.end_s, -lead * dt_s, lead + n_steps + ctx, dt_s)
    power_w = power_from_active(config, active, rng_power)
    keep = slice(lead, lead + n_steps)
    return ServerTrace(np.arange(n_steps) * dt_s, active[keep], power_w[keep], served)
