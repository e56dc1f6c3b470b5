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
    from dcsim.serving.work import WorkGrid
    from dcsim.measured import MeasuredRun
    from dcsim.serving.latency import LatencySurrogate

__all__ = ["ServerTrace", "serve", "served_occupancy", "replay_occupancy", "context_steps", "replay_power", "Schedule", "power_of_schedules", "work_row", "power_from_probs", "power_from_active", "power_rows",
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


def replay_power(config: "CalibratedConfig", run: "MeasuredRun", rng_serve: np.random.Generator,
                 rng_power: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A measured run's own requests through the configuration (surrogate, FIFO-64, power model): occupancy and
    GPU power (W) on the run's grid, built past both ends by the model's context and trimmed."""
    pad = context_steps(config)
    req = run.requests
    served = serve_requests(req.arrival_s - run.t0_s, req.n_in, req.n_out, config.surrogate, rng_serve,
                            slots=config.slots)
    n = len(run.power_w)
    sched = Schedule(served.start_s, served.first_token_s, served.end_s, req.n_in, req.n_out, served.arrival_s)
    power_w, occupancy = power_of_schedules(config, [sched], -pad * run.dt_s, n + 2 * pad, [rng_power], run.dt_s)
    keep = slice(pad, pad + n)
    return occupancy[0, keep], power_w[0, keep]


def context_steps(config: "CalibratedConfig") -> int:
    """Steps of work the power model needs on each side of a step: the bidirectional GRU's context, or the
    structured model's meter (its lag and averaging window) rounded up, at least the GRU's for safety."""
    gru = int(getattr(config.classifier, "context", 0))
    if config.power_model == "structured":
        m = config.structured
        return max(gru, int(np.ceil((m.lag_s_ + m.window_s_) / STEP_S)) + 4)
    return gru


@dataclass(frozen=True)
class Schedule:
    """One server's served requests: times (s) and token counts, what the power model reads."""

    start_s: np.ndarray
    first_token_s: np.ndarray
    end_s: np.ndarray
    n_in: np.ndarray
    n_out: np.ndarray
    arrival_s: np.ndarray

    @staticmethod
    def of(served: ServedRequests, requests: Requests) -> "Schedule":
        return Schedule(served.start_s, served.first_token_s, served.end_s, requests.n_in, requests.n_out,
                        served.arrival_s)


def power_of_schedules(config: "CalibratedConfig", schedules: Sequence[Schedule], t0_s: float, n_steps: int,
                       rngs: Sequence[np.random.Generator], dt_s: float = STEP_S) -> tuple[np.ndarray, np.ndarray]:
    """GPU power (W) and occupancy A_t, both (S, n_steps), for servers of one configuration from their served
    schedules, with the configuration's power model; row j draws from ``rngs[j]`` alone (so chunking does not
    change it)."""
    cat = (lambda xs, dt=float: np.concatenate(xs) if xs else np.empty(0, dt))
    local = cat([np.full(s.start_s.size, j, dtype=np.int64) for j, s in enumerate(schedules)], np.int64)
    start, end = cat([s.start_s for s in schedules]), cat([s.end_s for s in schedules])
    occupancy = active_grid(start, end, t0_s, n_steps, dt_s, server=local, n_servers=len(schedules))
    if config.power_model != "structured":
        return power_rows(config, occupancy, rngs), occupancy
    from dcsim.serving.work import work_grid

    first = cat([s.first_token_s for s in schedules])
    work = work_grid(start, np.minimum(first, end), end, cat([s.n_in for s in schedules]),
                     cat([s.n_out for s in schedules]), t0_s, n_steps, dt_s,
                     arrival_s=np.minimum(cat([s.arrival_s for s in schedules]), start), server=local,
                     n_servers=len(schedules))
    out = np.empty(occupancy.shape)
    for j, rng in enumerate(rngs):
        out[j] = config.structured.sample(work_row(work, j), rng)
    return out, occupancy


def work_row(work: "WorkGrid", j: int) -> "WorkGrid":
    """Server ``j``'s row of a many-server work grid."""
    from dataclasses import fields, replace

    return replace(work, **{f.name: getattr(work, f.name)[j] for f in fields(work)
                            if isinstance(getattr(work, f.name), np.ndarray)})


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
    work is built past both ends by the power model's context and the warm-up, power generated over all of it
    and trimmed to [0, duration_s), so the first and last steps see the same context as the middle."""
    if not (np.isfinite(duration_s) and duration_s >= dt_s):
        raise DcsimInputError("--duration-s", duration_s, f"a number of seconds >= one step ({dt_s} s)")
    rng_serve, rng_power = rng.spawn(2)
    served = serve(config, requests, rng_serve)
    n_steps = int(np.floor(duration_s / dt_s + 1e-9))
    ctx = context_steps(config)
    first = float(requests.arrival_s.min()) if len(requests) else 0.0
    lead = ctx + (int(np.ceil(-first / dt_s - 1e-9)) if first < 0 else 0)
    power_w, active = power_of_schedules(config, [Schedule.of(served, requests)], -lead * dt_s,
                                         lead + n_steps + ctx, [rng_power], dt_s)
    keep = slice(lead, lead + n_steps)
    return ServerTrace(np.arange(n_steps) * dt_s, active[0, keep], power_w[0, keep], served)
