"""Runs a facility: request streams → every server's FIFO-64 queue → A_t → power → the tree's node traces.

Inputs are explicit objects (no scenario file needed): a :class:`Facility` (tree, calibrated
configurations by name, P_base, PUE), a list of :class:`Stream` (an arrival process feeding a set of
servers, split uniformly at random or dispatched by a router), a duration, a seed and optionally a
:class:`~dcsim.facility.control.CapPolicy`. :func:`simulate` picks one of three paths:

``fast`` — nothing reacts to the servers (no policy; streams split at random or routed by a router
that does not look at the servers: round robin, random). Each server's requests go through the
compiled FIFO kernel; power is generated in chunks of at most ``chunk_servers`` servers of one
configuration (the BiGRU sees each server's whole A_t, both directions) and streamed into the tree's
sums, so a long run never holds ``(S, T, K)`` state probabilities.

``event`` — a router reads queue state (join shortest queue) but nothing reads power: one SimPy
environment holds every server's FIFO queue; power is then generated from the simulated A_t as above.

``live`` — a control policy, or a router that may read power (least power, a user's router): the
SimPy environment also runs a control process every ``interval_s`` (rounded to whole steps). At each
control instant it turns the interval's requests into A_t, generates that interval's power, applies
the policy's effects (offline servers draw nothing; capped servers are held at their cap), sums the
tree, hands the node powers to the policy and applies its actions. The BiGRU is bidirectional but the
future is unknown here, so each interval's states come from a window of the classifier's ``context``
steps of past A_t followed by the interval itself (past context only): an approximation of the
offline paths, whose windows see ``context`` steps on both sides. Power draws are made per
configuration group and interval (AR(1) power restarts at each interval).

Exact sums: server power (GPU and P_base) is rounded to a multiple of 2⁻²⁰ W (about a microwatt), so
every node sum is exact in float64 (for nodes below 8 GW) and does not depend on the order or the
chunks servers are added in.

Reproducibility: ``np.random.SeedSequence(seed)`` is spawned into one child per stream and one per
server (each server's latency draws and power draws come from its own child), so on the fast and event
paths the result does not depend on chunking or the order servers are processed in. On every path the
same seed gives the same result.

Requests: ``arrival_s, start_s, first_token_s, end_s, server, lost``; a time after the horizon is NaN
(a request still queued or in flight at the end has NaN end_s and lost False); lost requests (their
server tripped, or no server of their pool online) have ``lost`` True and NaN for the times they did
not reach; a request no server could take has server −1.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import simpy

from dcsim.errors import DcsimInputError
from dcsim.facility.control import ACTION_EVENTS, Action, CapPolicy
from dcsim.facility.tree import aggregate_chunk, finish_sums, new_sums, nodes_at, server_indices_under, servers
from dcsim.power.configs import CalibratedConfig
from dcsim.serving.features import GRID_DT_S, active_grid, feature_matrix
from dcsim.server import power_from_probs
from dcsim.serving.kernel import simulate_requests
from dcsim.workload.arrivals import ArrivalProcess, Requests, split_shared
from dcsim.workload.routing import (JoinShortestQueue, NoServerOnline, RandomRouter, RoundRobin, Router,
                                    ServerView)

__all__ = ["Facility", "Stream", "EngineResult", "simulate", "independent_streams", "shared_stream",
           "pooled_streams", "power_rows", "choose_path", "quantize_w", "QUANTUM_W", "MIN_SPEED"]

DEFAULT_CHUNK_SERVERS = 16
MIN_SPEED = 0.05          # slowest decode speed of a capped server (fraction of uncapped)
SPEED_STEP = 0.02         # a capped server's speed is updated when it moves by more than this
REQUEST_COLUMNS = ("arrival_s", "start_s", "first_token_s", "end_s", "server", "lost")
EVENT_COLUMNS = ("t_s", "node", "event", "detail")
QUANTUM_W = 2.0 ** -20    # server power grid: sums of multiples of it are exact in float64


def quantize_w(power_w: np.ndarray) -> np.ndarray:
    """Power rounded to a multiple of :data:`QUANTUM_W` (exact: scaling by a power of two)."""
    return np.round(np.asarray(power_w, dtype=np.float64) / QUANTUM_W) * QUANTUM_W


# ------------------------------------------------------------------------------------------- inputs

@dataclass
class Facility:
    """The hall: the power tree, the calibrated configuration of every name its servers use,
    the non-GPU IT power per server ``p_base_w`` (one value or one per server, W) and the ``pue``."""

    tree: nx.DiGraph
    configs: Mapping[str, CalibratedConfig]
    p_base_w: float | np.ndarray = 1000.0
    pue: float = 1.3

    def __post_init__(self) -> None:
        names = servers(self.tree)
        if not names:
            raise DcsimInputError("facility", "no servers", "a tree with at least one server")
        missing = sorted({self.tree.nodes[n]["config"] for n in names} - set(self.configs))
        if missing:
            raise DcsimInputError("facility.configs", missing, f"configurations given: {sorted(self.configs)}",
                                  problem="no calibrated configuration for")
        base = np.asarray(self.p_base_w, dtype=np.float64)
        base = np.full(len(names), float(base)) if base.ndim == 0 else base
        if base.shape != (len(names),) or not np.all(np.isfinite(base)) or np.any(base < 0):
            raise DcsimInputError("site.p_base_w", self.p_base_w, f"one power >= 0 W, or one per server ({len(names)})")
        self.p_base_w = quantize_w(base)
        if isinstance(self.pue, bool) or not np.isfinite(self.pue) or self.pue < 1:
            raise DcsimInputError("site.pue", self.pue, "a finite number >= 1")
        self.pue = float(self.pue)

    @property
    def server_names(self) -> list[str]:
        return servers(self.tree)

    def config_of(self) -> list[str]:
        """Configuration name of every server, index order."""
        return [self.tree.nodes[n]["config"] for n in servers(self.tree)]


@dataclass
class Stream:
    """One request stream: ``process`` is drawn once and feeds ``servers`` (indices).

    ``router`` None: each request goes to one of the servers uniformly at random (shared intensity;
    a one-server stream is that server's own draw). Otherwise the router picks the server per request.
    ``process`` describes the whole stream's traffic (size it for all of ``servers``).
    """

    process: ArrivalProcess
    servers: np.ndarray
    router: Router | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.process, ArrivalProcess):
            raise DcsimInputError(f"stream {self.name}".strip(), type(self.process).__name__,
                                  "a dcsim.workload.arrivals.ArrivalProcess")
        idx = np.atleast_1d(np.asarray(self.servers))
        if idx.size == 0 or idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise DcsimInputError(f"stream {self.name}.servers".strip(), self.servers, "a non-empty list of server indices")
        self.servers = idx.astype(np.int64)
        if self.router is not None and not isinstance(self.router, Router):
            raise DcsimInputError(f"stream {self.name}.router".strip(), type(self.router).__name__,
                                  "a dcsim.workload.routing.Router or None")


def independent_streams(process_of: ArrivalProcess | Callable[[int], ArrivalProcess], n_servers: int,
                        names: Sequence[str] | None = None) -> list[Stream]:
    """One stream per server: each server its own draw of ``process_of`` (or of ``process_of(i)``), stream ``i``
    named ``names[i]`` (default ``server{i}``)."""
    one = isinstance(process_of, ArrivalProcess)
    return [Stream(process_of if one else process_of(i), np.array([i]),
                   name=f"server{i}" if names is None else names[i]) for i in range(n_servers)]


def shared_stream(hall_process: ArrivalProcess, n_servers: int) -> list[Stream]:
    """One hall-wide draw, each request sent to a server uniformly at random (each server a 1/N thinning
    of one intensity: correlated streams, as in the paper). ``hall_process`` is the whole hall's traffic."""
    return [Stream(hall_process, np.arange(n_servers), None, name="hall")]


def pooled_streams(tree: nx.DiGraph, level: str,
                   process_of: ArrivalProcess | Callable[[np.ndarray], ArrivalProcess], router: Router) -> list[Stream]:
    """One stream per node at ``level`` (``"site"``, ``"row"``, ``"rack"``), dispatched by a copy of ``router``.

    ``process_of`` is the pool's whole traffic, or a function of the pool's server indices giving it."""
    one = isinstance(process_of, ArrivalProcess)
    out = []
    for node in nodes_at(tree, level):
        idx = server_indices_under(tree, node)
        out.append(Stream(process_of if one else process_of(idx), idx, copy.deepcopy(router), name=node))
    return out


# ------------------------------------------------------------------------------------------ results

@dataclass
class EngineResult:
    """Node traces (W, step ``dt_s``, ``t_s`` the step starts) for every non-server node — the site is
    facility power (PUE × IT), rows and racks IT power — plus every server's IT power when kept."""

    t_s: np.ndarray
    dt_s: float
    traces: dict[str, np.ndarray]
    requests: dict[str, np.ndarray]
    events: list[dict[str, Any]]
    path: str
    max_active: np.ndarray
    server_active: np.ndarray | None = None
    policy: CapPolicy | None = None
    info: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- power

def power_rows(config: CalibratedConfig, active: np.ndarray, rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """GPU power (W) for several servers of one configuration, ``active`` (s, T), one Generator per row.

    The classifier runs on the whole chunk at once; row j equals
    ``dcsim.server.power_from_active(config, active[j], rngs[j])`` (the same draws, row by row).
    """
    active = np.asarray(active, dtype=float)
    probs = config.classifier.predict_proba(feature_matrix(active))
    out = np.empty(active.shape)
    for j, rng in enumerate(rngs):
        out[j] = power_from_probs(config, probs[j], rng)
    return out


def _router_kind(router: Router | None) -> str:
    """split (uniform), static (ignores the servers), queue (reads queue state) or live (may read power).

    Only the built-ins are known; a user's router counts as live (it may read anything)."""
    if router is None:
        return "split"
    if type(router) in (RoundRobin, RandomRouter):
        return "static"
    if type(router) is JoinShortestQueue:
        return "queue"
    return "live"


def choose_path(streams: Sequence[Stream], policy: CapPolicy | None) -> str:
    """``fast``, ``event`` or ``live`` (see the module docstring)."""
    kinds = {_router_kind(s.router) for s in streams}
    if policy is not None or "live" in kinds:
        return "live"
    return "event" if "queue" in kinds else "fast"


# ------------------------------------------------------------------------------------------ drawing

@dataclass
class _Drawn:
    """Streams drawn: fixed-assignment requests per server, and routed streams still to dispatch."""

    per_server: list[list[Requests]]
    routed: list[tuple[Requests, Stream, np.random.Generator]]


def _static_assign(reqs: Requests, stream: Stream, rng: np.random.Generator) -> np.ndarray:
    """Server (index into stream.servers) per request for a router that ignores the servers."""
    n = stream.servers.size
    view = ServerView(np.zeros(n), np.zeros(n), np.full(n, np.nan), np.ones(n, bool))
    stream.router.reset()
    out = np.empty(len(reqs), dtype=np.int64)
    for j in range(len(reqs)):
        out[j] = _checked_choice(stream, stream.router.choose(float(reqs.arrival_s[j]), int(reqs.n_in[j]),
                                                              int(reqs.n_out[j]), view, rng), view)
    return out


def _checked_choice(stream: Stream, k: Any, view: ServerView) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k < len(view):
        raise DcsimInputError(f"routing.router ({type(stream.router).__name__})", k,
                              f"an index 0..{len(view) - 1} into the servers of the pool")
    if not view.online[k]:
        raise DcsimInputError(f"routing.router ({type(stream.router).__name__})", int(k), "an online server",
                              problem="chose an offline server")
    return int(k)


def _draw(streams: Sequence[Stream], n_servers: int, duration_s: float, rngs: Sequence[np.random.Generator],
          dispatch_later: bool) -> _Drawn:
    per_server: list[list[Requests]] = [[] for _ in range(n_servers)]
    routed = []
    for stream, rng in zip(streams, rngs):
        if stream.servers.max() >= n_servers or stream.servers.min() < 0:
            raise DcsimInputError(f"stream {stream.name}.servers".strip(), int(stream.servers.max()),
                                  f"server indices 0..{n_servers - 1}")
        rng_draw, rng_route = rng.spawn(2)
        if stream.router is None:
            if stream.servers.size == 1:
                parts = [stream.process.sample(duration_s, rng_draw)]
            else:
                parts = split_shared(stream.process, int(stream.servers.size), duration_s, rng_draw)
            for i, part in zip(stream.servers, parts):
                per_server[i].append(part)
            continue
        reqs = stream.process.sample(duration_s, rng_draw)
        if dispatch_later and _router_kind(stream.router) != "static":
            routed.append((reqs, stream, rng_route))
            continue
        assign = _static_assign(reqs, stream, rng_route)
        for k, i in enumerate(stream.servers):
            per_server[i].append(reqs.slice(assign == k))
    return _Drawn(per_server, routed)


def _merged(parts: list[Requests]) -> Requests:
    return parts[0] if len(parts) == 1 else Requests.concat(parts)


# --------------------------------------------------------------------------------------- simulation

def simulate(facility: Facility, streams: Sequence[Stream], duration_s: float, seed: int = 0,
             dt_s: float = GRID_DT_S, policy: CapPolicy | None = None, interval_s: float = 1.0,
             chunk_servers: int = DEFAULT_CHUNK_SERVERS, keep_servers: bool = False,
             progress: Callable[[float, float, str], None] | None = None, path: str | None = None) -> EngineResult:
    """Simulate the hall over ``[0, duration_s)`` on the ``dt_s`` grid; see the module docstring.

    ``progress(done, total, phase)`` is called now and then. ``path`` forces a path (``"event"`` or
    ``"live"`` where ``"fast"`` would do: same queueing, for checks); by default :func:`choose_path`.
    """
    if not (isinstance(duration_s, (int, float, np.integer, np.floating)) and np.isfinite(duration_s)
            and duration_s > 0):
        raise DcsimInputError("simulation.duration_s", duration_s, "a positive number of seconds")
    if not (np.isfinite(dt_s) and dt_s > 0):
        raise DcsimInputError("simulation.step_s", dt_s, "a positive number of seconds")
    n_steps = int(np.floor(duration_s / dt_s + 1e-9))
    if n_steps < 1:
        raise DcsimInputError("simulation.duration_s", duration_s, f"at least one step of {dt_s} s")
    if isinstance(chunk_servers, bool) or not isinstance(chunk_servers, (int, np.integer)) or chunk_servers < 1:
        raise DcsimInputError("chunk_servers", chunk_servers, "a whole number >= 1")
    if not (np.isfinite(interval_s) and interval_s > 0):
        raise DcsimInputError("control.interval_s", interval_s, "a positive number of seconds")
    if policy is not None and not isinstance(policy, CapPolicy):
        raise DcsimInputError("control.policy", type(policy).__name__, "a dcsim.facility.control.CapPolicy or None")
    streams = list(streams)
    auto = choose_path(streams, policy)
    order = {"fast": 0, "event": 1, "live": 2}
    if path is None:
        path = auto
    elif path not in order or order[path] < order[auto]:
        raise DcsimInputError("path", path, f"one of {[p for p in order if order[p] >= order[auto]]} for these inputs")

    n_servers = len(facility.server_names)
    root = np.random.SeedSequence(int(seed))
    ss_streams, ss_servers, ss_live = root.spawn(3)
    stream_rngs = [np.random.default_rng(s) for s in ss_streams.spawn(len(streams))]
    server_rngs = [np.random.default_rng(s).spawn(2) for s in ss_servers.spawn(n_servers)]  # (serve, power)
    for s in streams:
        if s.router is not None:
            s.router.reset()
    if policy is not None:
        policy.reset()
    drawn = _draw(streams, n_servers, float(duration_s), stream_rngs, dispatch_later=path != "fast")
    t_s = np.arange(n_steps) * float(dt_s)

    if path == "fast":
        served = None
    else:
        hall = _Hall(facility, drawn, server_rngs, n_steps, float(dt_s), policy, interval_s,
                     live=path == "live", keep_servers=keep_servers, live_rng=np.random.default_rng(ss_live),
                     progress=progress)
        served = hall.run()
        if path == "live":
            return EngineResult(t_s, float(dt_s), hall.traces, hall.request_table(), hall.events, path,
                                hall.max_active, hall.server_active, policy, {"interval_s": hall.interval_steps * dt_s})
    traces, requests, max_active, server_active = _offline_power(facility, drawn, served, server_rngs, n_steps,
                                                                 float(dt_s), chunk_servers, keep_servers, progress)
    if served is not None:
        requests = hall.request_table()
    return EngineResult(t_s, float(dt_s), traces, requests, [], path, max_active, server_active, policy)


def _chunks(facility: Facility, chunk_servers: int) -> list[tuple[str, np.ndarray]]:
    """Servers grouped by configuration (first-appearance order), cut into chunks of at most chunk_servers."""
    by_config: dict[str, list[int]] = {}
    for i, name in enumerate(facility.config_of()):
        by_config.setdefault(name, []).append(i)
    out = []
    for name, idx in by_config.items():
        for a in range(0, len(idx), chunk_servers):
            out.append((name, np.array(idx[a:a + chunk_servers], dtype=np.int64)))
    return out


def _mask_after(x: np.ndarray, horizon_s: float) -> np.ndarray:
    return np.where(x <= horizon_s, x, np.nan)


def _offline_power(facility: Facility, drawn: _Drawn, served: list | None, server_rngs: list, n_steps: int,
                   dt_s: float, chunk_servers: int, keep_servers: bool, progress) -> tuple:
    """Fast and event paths: A_t per server from served requests, power per chunk, streamed into the sums."""
    tree = facility.tree
    names = facility.server_names
    n_servers = len(names)
    horizon = n_steps * dt_s
    sums = new_sums(tree, n_steps)
    max_active = np.zeros(n_servers)
    server_traces: dict[str, np.ndarray] = {}
    server_active = np.zeros((n_servers, n_steps)) if keep_servers else None
    req_parts: list[dict[str, np.ndarray]] = []
    done = 0
    for cfg_name, idx in _chunks(facility, chunk_servers):
        cfg = facility.configs[cfg_name]
        starts, ends, local = [], [], []
        for j, i in enumerate(idx):
            if served is None:
                reqs = _merged(drawn.per_server[i]) if drawn.per_server[i] else Requests.empty()
                s = simulate_requests(reqs.arrival_s, reqs.n_in, reqs.n_out, cfg.surrogate, server_rngs[i][0],
                                      slots=cfg.slots)
                rec = {"arrival_s": s.arrival_s, "start_s": _mask_after(s.start_s, horizon),
                       "first_token_s": _mask_after(s.first_token_s, horizon), "end_s": _mask_after(s.end_s, horizon),
                       "server": np.full(len(s), i, dtype=np.int64), "lost": np.zeros(len(s), bool)}
                req_parts.append(rec)
                st, en = s.start_s, s.end_s
            else:
                st, en = served[i]
                ok = np.isfinite(st)
                st, en = st[ok], np.where(np.isfinite(en[ok]), en[ok], horizon)
            starts.append(st)
            ends.append(en)
            local.append(np.full(st.size, j, dtype=np.int64))
        grid = active_grid(np.concatenate(starts), np.concatenate(ends), 0.0, n_steps, dt_s,
                           server=np.concatenate(local), n_servers=idx.size)
        gpu = quantize_w(power_rows(cfg, grid, [server_rngs[i][1] for i in idx]))
        aggregate_chunk(tree, sums, gpu, idx, facility.p_base_w)
        max_active[idx] = grid.max(axis=1)
        if keep_servers:
            server_active[idx] = grid
            for j, i in enumerate(idx):
                server_traces[names[i]] = gpu[j] + facility.p_base_w[i]
        done += idx.size
        if progress:
            progress(done, n_servers, "power")
    finish_sums(tree, sums, facility.pue)
    traces = dict(sums)
    traces.update({n: server_traces[n] for n in names if n in server_traces})
    requests = _concat_requests(req_parts) if served is None else None
    return traces, requests, max_active, server_active


def _concat_requests(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if not parts:
        return {c: np.empty(0, dtype=np.int64 if c == "server" else bool if c == "lost" else float)
                for c in REQUEST_COLUMNS}
    out = {c: np.concatenate([p[c] for p in parts]) for c in REQUEST_COLUMNS}
    order = np.lexsort((out["server"], out["arrival_s"]))
    return {c: v[order] for c, v in out.items()}


# ------------------------------------------------------------------------------------ the event hall

class _Hall:
    """Every server's FIFO queue in one SimPy environment, with routing, breakers and caps.

    A request is one process: it arrives, waits for one of its server's slots, prefills (TTFT), decodes
    (n_out × TBT of work at the server's current speed; a speed change interrupts it and it carries on
    with what is left), and leaves. A trip interrupts every request in hand: they are lost.
    """

    def __init__(self, facility: Facility, drawn: _Drawn, server_rngs: list, n_steps: int, dt_s: float,
                 policy: CapPolicy | None, interval_s: float, live: bool, keep_servers: bool,
                 live_rng: np.random.Generator, progress) -> None:
        self.fac = facility
        self.tree = facility.tree
        self.names = facility.server_names
        self.n = len(self.names)
        self.dt = dt_s
        self.n_steps = n_steps
        self.horizon = n_steps * dt_s
        self.policy = policy
        self.live = live
        self.keep_servers = keep_servers
        self.progress = progress
        self.env = simpy.Environment()
        cfg_names = facility.config_of()
        self.cfgs = [facility.configs[c] for c in cfg_names]
        self.slots = [simpy.Resource(self.env, capacity=c.slots) for c in self.cfgs]
        self.rng_serve = [r[0] for r in server_rngs]
        self.active = np.zeros(self.n, dtype=np.int64)
        self.queued = np.zeros(self.n, dtype=np.int64)
        self.online = np.ones(self.n, dtype=bool)
        self.speed = np.ones(self.n)
        self.cap_w = np.full(self.n, np.inf)
        self.power_w = np.full(self.n, np.nan)
        self.in_hand: list[set] = [set() for _ in range(self.n)]
        self.decoding: list[set] = [set() for _ in range(self.n)]
        self.events: list[dict[str, Any]] = []
        self.tripped: set[str] = set()
        self.caps: dict[str, float] = {}
        self._under: dict[str, np.ndarray] = {}

        # requests: fixed-assignment ones with latencies drawn per server as the kernel does
        arr, n_in, n_out, srv, ttft, decode = [], [], [], [], [], []
        for i, parts in enumerate(drawn.per_server):
            if not parts:
                continue
            reqs = _merged(parts)
            sur, rng = self.cfgs[i].surrogate, self.rng_serve[i]
            t1 = sur.sample_ttft_s(reqs.n_in, rng)
            tbt = sur.sample_tbt_s(len(reqs), rng)
            arr.append(reqs.arrival_s), n_in.append(reqs.n_in), n_out.append(reqs.n_out)
            srv.append(np.full(len(reqs), i, dtype=np.int64)), ttft.append(t1), decode.append(reqs.n_out * tbt)
        self.n_fixed = int(sum(a.size for a in arr))
        self.routed = drawn.routed
        n_total = self.n_fixed + sum(len(r) for r, _, _ in self.routed)
        cat = (lambda xs, dt: np.concatenate(xs) if xs else np.empty(0, dt))
        self.fixed = (cat(arr, float), cat(srv, np.int64), cat(ttft, float), cat(decode, float))
        self.arrival = np.empty(n_total)
        self.arrival[:self.n_fixed] = self.fixed[0]
        pos = self.n_fixed
        self.routed_offset = []
        for reqs, _, _ in self.routed:
            self.routed_offset.append(pos)
            self.arrival[pos:pos + len(reqs)] = reqs.arrival_s
            pos += len(reqs)
        self.start = np.full(n_total, np.nan)
        self.first = np.full(n_total, np.nan)
        self.end = np.full(n_total, np.nan)
        self.server = np.full(n_total, -1, dtype=np.int64)
        self.server[:self.n_fixed] = self.fixed[1]
        self.lost = np.zeros(n_total, dtype=bool)

        if live:
            self.interval_steps = max(1, int(round(interval_s / dt_s)))
            self.context = max(int(getattr(c.classifier, "context", 0)) for c in self.cfgs)
            self.hist = np.zeros((self.n, self.context))
            self.grid = np.zeros((self.n, self.interval_steps))
            self.t_last = np.zeros(self.n)
            self.t0 = 0.0
            self.sums = new_sums(self.tree, n_steps)
            self.traces: dict[str, np.ndarray] = {}
            self.max_active = np.zeros(self.n)
            self.server_active = np.zeros((self.n, n_steps)) if keep_servers else None
            self.server_it = np.zeros((self.n, n_steps)) if keep_servers else None
            self.groups: list[tuple[CalibratedConfig, np.ndarray, np.random.Generator]] = []
            by_cfg: dict[str, list[int]] = {}
            for i, c in enumerate(cfg_names):
                by_cfg.setdefault(c, []).append(i)
            for (c, idx), rng in zip(by_cfg.items(), live_rng.spawn(len(by_cfg))):
                self.groups.append((facility.configs[c], np.array(idx, dtype=np.int64), rng))
            self.ptree = self.tree.copy()
            self.ptree.graph["pue"] = facility.pue
            for i, name in enumerate(self.names):
                self.ptree.nodes[name]["p_base_w"] = float(facility.p_base_w[i])
        else:
            self.max_active = None
            self.server_active = None

    # -- running

    def run(self) -> list[tuple[np.ndarray, np.ndarray]] | None:
        env = self.env
        env.process(self._feed_fixed())
        for (reqs, stream, rng), offset in zip(self.routed, self.routed_offset):
            env.process(self._feed_routed(reqs, stream, rng, offset))
        if self.live:
            env.run(until=env.process(self._control()))  # its last step is at the horizon
        else:
            env.process(self._ticker())
            env.run(until=self.horizon)
        self.end[self.end > self.horizon] = np.nan
        if self.live:
            return None
        order = np.argsort(self.server, kind="stable")
        bounds = np.searchsorted(self.server[order], np.arange(self.n + 1))
        return [(self.start[order[a:b]], self.end[order[a:b]]) for a, b in zip(bounds[:-1], bounds[1:])]

    def _ticker(self):
        """Progress reports for the queue-only event path (every 1 % of the horizon)."""
        step = self.horizon / 100
        while self.env.now + step <= self.horizon:
            yield self.env.timeout(step)
            if self.progress:
                self.progress(self.env.now, self.horizon, "serving")

    def _feed_fixed(self):
        env = self.env
        arrival, srv, ttft, decode = self.fixed
        for rid in np.argsort(arrival, kind="stable"):
            t = arrival[rid]
            if t > env.now:
                yield env.timeout(t - env.now)
            env.process(self._request(int(rid), int(srv[rid]), float(ttft[rid]), float(decode[rid])))

    def _feed_routed(self, reqs: Requests, stream: Stream, rng: np.random.Generator, offset: int):
        env = self.env
        pool = stream.servers
        for j in range(len(reqs)):
            t = reqs.arrival_s[j]
            if t > env.now:
                yield env.timeout(t - env.now)
            rid = offset + j
            view = ServerView(self.active[pool].copy(), self.queued[pool].copy(), self.power_w[pool].copy(),
                              self.online[pool].copy())
            try:
                k = _checked_choice(stream, stream.router.choose(float(t), int(reqs.n_in[j]), int(reqs.n_out[j]),
                                                                  view, rng), view)
            except NoServerOnline:
                self.lost[rid] = True
                continue
            i = int(pool[k])
            self.server[rid] = i
            sur, r = self.cfgs[i].surrogate, self.rng_serve[i]
            ttft = float(sur.sample_ttft_s(reqs.n_in[j:j + 1], r)[0])
            decode = float(reqs.n_out[j] * sur.sample_tbt_s(1, r)[0])
            env.process(self._request(rid, i, ttft, decode))

    def _request(self, rid: int, i: int, ttft_s: float, decode_s: float):
        env = self.env
        if not self.online[i]:
            self.lost[rid] = True
            return
        proc = env.active_process
        self.in_hand[i].add(proc)
        self.queued[i] += 1
        holding = False
        try:
            with self.slots[i].request() as slot:
                try:
                    yield slot
                finally:
                    self.queued[i] -= 1
                holding = True
                self._change(i, +1)
                self.start[rid] = env.now
                yield env.timeout(ttft_s)
                self.first[rid] = env.now
                work = decode_s
                while True:
                    speed, t0 = self.speed[i], env.now
                    self.decoding[i].add(proc)
                    try:
                        yield env.timeout(work / speed)
                        break
                    except simpy.Interrupt as irq:
                        if irq.cause != "speed":
                            raise
                        work = max(work - (env.now - t0) * speed, 0.0)
                    finally:
                        self.decoding[i].discard(proc)
                self.end[rid] = env.now
        except simpy.Interrupt:  # a trip: the request is lost wherever it was
            self.lost[rid] = True
        finally:
            if holding:
                self._change(i, -1)
            self.in_hand[i].discard(proc)

    # -- A_t accounting (live path): integrate the active count over the current interval's steps

    def _change(self, i: int, delta: int) -> None:
        if self.live:
            self._accrue(i, self.env.now)
        self.active[i] += delta

    def _accrue(self, i: int, t: float) -> None:
        c = self.active[i]
        t_prev = self.t_last[i]
        self.t_last[i] = t
        if c == 0 or t <= t_prev:
            return
        n = self.grid.shape[1]
        a = (t_prev - self.t0) / self.dt
        b = min((t - self.t0) / self.dt, n)
        ka, kb = int(a), int(b)
        if ka == kb or (kb == ka + 1 and b == kb):
            self.grid[i, min(ka, n - 1)] += c * (b - a)
            return
        self.grid[i, ka] += c * (ka + 1 - a)
        self.grid[i, ka + 1:kb] += c
        if kb < n:
            self.grid[i, kb] += c * (b - kb)

    def _flush(self, t1: float, n: int) -> np.ndarray:
        """The interval's A_t (S, n): the accrued grid plus every server's count since its last change."""
        a = (self.t_last - self.t0) / self.dt
        k = np.arange(n)
        overlap = np.clip(np.minimum(k + 1, n)[None, :] - np.maximum(k[None, :], a[:, None]), 0.0, 1.0)
        grid = self.grid[:, :n] + self.active[:, None] * overlap
        self.t_last[:] = t1
        self.t0 = t1
        self.grid[:] = 0.0
        return grid

    # -- the control loop (live path)

    def _control(self):
        env = self.env
        L = self.interval_steps
        s0 = 0
        while s0 < self.n_steps:
            s1 = min(s0 + L, self.n_steps)
            t1 = s1 * self.dt
            if t1 > env.now:
                yield env.timeout(t1 - env.now)
            grid = self._flush(t1, s1 - s0)
            it, uncapped = self._interval_power(grid)
            sums = new_sums(self.tree, s1 - s0)
            aggregate_chunk(self.tree, sums, it, np.arange(self.n), 0.0)
            finish_sums(self.tree, sums, self.fac.pue)
            for node, trace in sums.items():
                self.sums[node][s0:s1] = trace
            self.max_active = np.maximum(self.max_active, grid.max(axis=1))
            if self.keep_servers:
                self.server_active[:, s0:s1] = grid
                self.server_it[:, s0:s1] = it
            if self.policy is not None:
                node_power = {node: float(trace.mean()) for node, trace in sums.items()}
                node_power.update(zip(self.names, it.mean(axis=1).tolist()))
                actions = self.policy.step(t1, node_power, self.ptree)
                self._apply(t1, actions)
            self._update_speed(uncapped)
            if self.progress:
                self.progress(t1, self.horizon, "simulating")
            s0 = s1
        self.traces = dict(self.sums)
        if self.keep_servers:
            self.traces.update({name: self.server_it[i] for i, name in enumerate(self.names)})

    def _interval_power(self, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """IT power (S, n) after policy effects, and the uncapped GPU power (S, n)."""
        n = grid.shape[1]
        window = np.concatenate([self.hist, grid], axis=1)
        self.hist = window[:, n:]
        gpu = np.empty(grid.shape)
        for cfg, idx, rng in self.groups:
            ctx = int(getattr(cfg.classifier, "context", 0))
            w = window[idx, window.shape[1] - n - ctx:]
            probs = cfg.classifier.predict_proba(feature_matrix(w))[:, -n:]
            gpu[idx] = quantize_w(power_from_probs(cfg, probs, rng))
        self.power_w = np.where(self.online, np.minimum(gpu[:, -1], self.cap_w), 0.0)
        held = np.minimum(gpu, self.cap_w[:, None])
        it = np.where(self.online[:, None], held + self.fac.p_base_w[:, None], 0.0)
        return it, gpu

    def _under_node(self, node: str) -> np.ndarray:
        if node not in self._under:
            self._under[node] = server_indices_under(self.tree, node)
        return self._under[node]

    def _apply(self, t_s: float, actions: list[Action]) -> None:
        if actions is None:
            return
        if not isinstance(actions, (list, tuple)):
            raise DcsimInputError(f"control.policy ({type(self.policy).__name__}).step", type(actions).__name__,
                                  "a list of dcsim.facility.control.Action")
        for act in actions:
            if not isinstance(act, Action) or act.node not in self.tree:
                raise DcsimInputError(f"control.policy ({type(self.policy).__name__}).step", act,
                                      "Actions naming nodes of the tree")
            if act.kind == "trip":
                self.tripped.add(act.node)
                for i in self._under_node(act.node):
                    for proc in list(self.in_hand[i]):
                        if proc.is_alive:
                            proc.interrupt("trip")
            elif act.kind == "restore":
                self.tripped.discard(act.node)
            elif act.kind == "cap":
                self.caps[act.node] = float(quantize_w(act.cap_w))
            else:
                self.caps.pop(act.node, None)
            self.events.append({"t_s": float(t_s), "node": act.node, "event": ACTION_EVENTS[act.kind],
                                "detail": act.detail})
        self.online[:] = True
        for node in self.tripped:
            self.online[self._under_node(node)] = False
        self.cap_w[:] = np.inf
        for node, cap in self.caps.items():
            idx = self._under_node(node)
            self.cap_w[idx] = np.minimum(self.cap_w[idx], cap)

    def _update_speed(self, uncapped: np.ndarray) -> None:
        """Capped servers decode at cap / uncapped power (clipped to [MIN_SPEED, 1]); others at full speed."""
        mean = uncapped.mean(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            target = np.where(np.isfinite(self.cap_w), np.clip(self.cap_w / mean, MIN_SPEED, 1.0), 1.0)
        target = np.where(np.isfinite(target), target, 1.0)
        change = np.flatnonzero((np.abs(target - self.speed) > SPEED_STEP) | ((target == 1.0) & (self.speed != 1.0)))
        for i in change:
            self.speed[i] = target[i]
            if not self.online[i]:
                continue  # its requests are being dropped
            for proc in list(self.decoding[i]):
                if proc.is_alive:
                    proc.interrupt("speed")

    # -- results

    def request_table(self) -> dict[str, np.ndarray]:
        cols = {"arrival_s": self.arrival, "start_s": self.start, "first_token_s": self.first, "end_s": self.end,
                "server": self.server, "lost": self.lost}
        order = np.lexsort((self.server, self.arrival))
        return {c: np.asarray(v)[order] for c, v in cols.items()}

