"""Runs a facility: request streams → every server's FIFO-64 queue → A_t → power → the tree's node traces.

Inputs are explicit objects (no scenario file needed): a :class:`Facility` (tree, calibrated
configurations by name, P_base, PUE), a list of :class:`Stream` (an arrival process feeding a set of
servers, split uniformly at random or dispatched by a router), a duration, a seed and optionally a
:class:`~dcsim.facility.control.CapPolicy`. :func:`simulate_hall` runs them in two separate steps, serving
then power, along one of three paths, each an assembly of the same parts (the serving stage's FIFO
server and kernel, the one-server chain of :mod:`dcsim.power.chain`, the tree's streaming sums):

``fast`` — nothing reacts to the servers (no policy; streams split at random or routed by a router
that reads nothing, ``Router.reads == "nothing"``). Each server's requests go through the compiled
FIFO kernel; power is generated in chunks of at most ``chunk_servers`` servers of one configuration
(the BiGRU sees each server's whole A_t, both directions) and streamed into the tree's sums, so a long
run never holds ``(S, T, K)`` state probabilities.

``event`` — a router reads queue state (``reads == "queues"``) but nothing reads power: one SimPy
environment (:class:`~dcsim.facility.hall.Hall`) holds every server's FIFO queue; power is then generated
from the served schedule as above.

``live`` — a control policy, or a router that may read power (``reads == "power"``, the default for a
router that does not say): the SimPy environment also runs a control process every ``interval_s``
(rounded to whole steps). At each control instant it turns the interval's requests into A_t, generates
that interval's power, applies the policy's effects (offline servers draw nothing; capped servers are
held at their cap), sums the tree, hands the node powers to the policy and applies its actions. The
BiGRU is bidirectional but the future is unknown here, so each interval's states come from a window of
the classifier's ``context`` steps of past A_t followed by the interval itself (past context only): an
approximation of the offline paths, whose windows see ``context`` steps on both sides. Power draws are
made per configuration group and interval (AR(1) power restarts at each interval).

Exact sums: server power (GPU and P_base) is rounded to a multiple of 2⁻²⁰ W (about a microwatt), so
every node sum is exact in float64 (for nodes below 8 GW) and does not depend on the order or the
chunks servers are added in.

Reproducibility: the random streams are named in :mod:`dcsim.seeds`: one ``arrivals`` child per stream,
one ``servers`` child per server (its serving and power draws), ``control`` for the live loop; so on the
fast and event paths the result does not depend on chunking or the order servers are processed in. On
every path the same seed gives the same result.

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

from dcsim import seeds
from dcsim.configs import CalibratedConfig
from dcsim.constants import STEP_S
from dcsim.errors import DcsimInputError, check_number, plugin_error
from dcsim.io import exceeds_memory, gib
from dcsim.facility.control import CapPolicy
from dcsim.facility.hall import Hall, call_router, checked_choice, quantize_w
from dcsim.facility.tree import aggregate_chunk, finish_sums, new_sums, nodes_at, server_indices_under, servers
from dcsim.power.chain import Schedule, context_steps, power_of_schedules, serve
from dcsim.workload.arrivals import ArrivalProcess, Requests, split_uniform
from dcsim.workload.routing import READS, Router, ServerView

__all__ = ["Facility", "Stream", "EngineResult", "simulate_hall", "independent_streams", "shared_stream",
           "pooled_streams", "choose_path", "quantize_w", "EVENT_COLUMNS", "REQUEST_COLUMNS"]

DEFAULT_CHUNK_SERVERS = 16
REQUEST_COLUMNS = ("arrival_s", "start_s", "first_token_s", "end_s", "server", "lost")
EVENT_COLUMNS = ("t_s", "node", "event", "detail")
PATHS = ("fast", "event", "live")


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

    def idle_floor_w(self, node: str) -> float:
        """The least power ``node`` draws with every server under it idle (W): idle GPU power (the lowest power
        state's mean) + P_base per server, × PUE at the site (the site is facility power)."""
        idx = server_indices_under(self.tree, node)
        names = self.config_of()
        idle = sum(float(self.configs[names[i]].states.means_[0]) + float(self.p_base_w[i]) for i in idx)
        return idle * (self.pue if self.tree.nodes[node].get("level") == "site" else 1.0)

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
        if self.router is not None and getattr(self.router, "reads", None) not in READS:
            raise DcsimInputError(f"stream {self.name}.router ({type(self.router).__name__}).reads".strip(),
                                  getattr(self.router, "reads", None), f"one of {', '.join(READS)}")


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


# ------------------------------------------------------------------------------------------- paths

def choose_path(streams: Sequence[Stream], policy: CapPolicy | None) -> str:
    """``fast``, ``event`` or ``live`` (see the module docstring), from what each stream's router reads."""
    reads = {"nothing" if s.router is None else s.router.reads for s in streams}
    if policy is not None or "power" in reads:
        return "live"
    return "event" if "queues" in reads else "fast"


# ------------------------------------------------------------------------------------------ drawing

@dataclass
class _Drawn:
    """Streams drawn: fixed-assignment requests per server, and routed streams still to dispatch."""

    per_server: list[list[Requests]]
    routed: list[tuple[Requests, Stream, np.random.Generator]]

    def server_requests(self) -> list[Requests | None]:
        """Each server's fixed requests merged (None for a server that has none)."""
        return [None if not parts else parts[0] if len(parts) == 1 else Requests.concat(parts)
                for parts in self.per_server]


def _static_assign(reqs: Requests, stream: Stream, rng: np.random.Generator) -> np.ndarray:
    """Server (index into stream.servers) per request for a router that reads nothing of the servers."""
    n = stream.servers.size
    view = ServerView(np.zeros(n), np.zeros(n), np.full(n, np.nan), np.ones(n, bool))
    stream.router.reset()
    out = np.empty(len(reqs), dtype=np.int64)
    for j in range(len(reqs)):
        out[j] = checked_choice(stream, call_router(stream, float(reqs.arrival_s[j]), int(reqs.n_in[j]),
                                                    int(reqs.n_out[j]), view, rng), view)
    return out


def _sample(stream: Stream, duration_s: float, rng: np.random.Generator) -> Requests:
    """One draw of the stream's process over [0, duration_s); a plug-in's failure is one input error."""
    try:
        reqs = stream.process.sample(duration_s, rng)
    except Exception as e:
        raise plugin_error("workload.arrival sample()", stream.process, e,
                           "an arrival process whose sample() returns dcsim Requests") from None
    if not isinstance(reqs, Requests):
        raise DcsimInputError(f"workload.arrival sample() ({type(stream.process).__name__})", type(reqs).__name__,
                              "a dcsim.workload.arrivals.Requests")
    return reqs


def _shifted(reqs: Requests, by_s: float) -> Requests:
    return Requests(reqs.arrival_s + by_s, reqs.n_in, reqs.n_out) if by_s else reqs


def _draw(streams: Sequence[Stream], n_servers: int, edges: "_Edges", rngs: Sequence[np.random.Generator],
          warm_rngs: Sequence[np.random.Generator], dispatch_later: bool) -> _Drawn:
    """Every stream's requests on the extended clock (see :class:`_Edges`): a warm-up draw before scenario time 0,
    the scenario's own draw from 0 past its end, then split or routed to servers."""
    per_server: list[list[Requests]] = [[] for _ in range(n_servers)]
    routed = []
    for stream, rng, rng_warm in zip(streams, rngs, warm_rngs):
        if stream.servers.max() >= n_servers or stream.servers.min() < 0:
            raise DcsimInputError(f"stream {stream.name}.servers".strip(), int(stream.servers.max()),
                                  f"server indices 0..{n_servers - 1}")
        rng_draw, rng_route = rng.spawn(2)
        reqs = _shifted(_sample(stream, edges.sample_s, rng_draw), edges.lead_s)
        if edges.warm_up_s > 0:
            warm = _sample(stream, edges.warm_up_s, rng_warm)
            reqs = Requests.concat([_shifted(warm, edges.lead_s - edges.warm_up_s), reqs])
        if stream.router is None:
            if stream.servers.size == 1:
                parts = [reqs]
            else:  # each request to one of the servers uniformly at random (a 1/N thinning of one intensity)
                parts = split_uniform(reqs, int(stream.servers.size), rng_draw)
            for i, part in zip(stream.servers, parts):
                per_server[i].append(part)
            continue
        if dispatch_later and stream.router.reads != "nothing":
            routed.append((reqs, stream, rng_route))
            continue
        assign = _static_assign(reqs, stream, rng_route)
        for k, i in enumerate(stream.servers):
            per_server[i].append(reqs.slice(assign == k))
    return _Drawn(per_server, routed)


@dataclass(frozen=True)
class _Edges:
    """The extended clock a run is simulated on, so its first and last minutes are as right as its middle.

    ``lead`` steps before scenario time 0: the classifier's context (the bidirectional GRU needs past steps),
    preceded by ``warm_up_s`` of arrivals so queues and occupancy start in steady state; ``tail`` steps after
    the end: the classifier's context again (it needs future steps). Both are simulated and trimmed off.
    """

    n_steps: int
    dt_s: float
    context_steps: int
    warm_steps: int

    @property
    def lead(self) -> int:
        return self.warm_steps + self.context_steps

    @property
    def tail(self) -> int:
        return self.context_steps

    @property
    def total(self) -> int:
        return self.lead + self.n_steps + self.tail

    @property
    def lead_s(self) -> float:
        return self.lead * self.dt_s

    @property
    def warm_up_s(self) -> float:
        return self.warm_steps * self.dt_s

    @property
    def sample_s(self) -> float:
        """The scenario's own draw: from time 0 to the end of the tail."""
        return (self.n_steps + self.tail) * self.dt_s

    @property
    def end_s(self) -> float:
        return self.n_steps * self.dt_s

    def keep(self) -> slice:
        return slice(self.lead, self.lead + self.n_steps)


def _trim_requests(requests: dict[str, np.ndarray], edges: _Edges) -> dict[str, np.ndarray]:
    """The scenario's own requests (arrived in [0, end)) on the scenario clock; times after the end are NaN."""
    arrival = requests["arrival_s"] - edges.lead_s
    keep = (arrival >= -1e-9) & (arrival < edges.end_s)
    out = {}
    for c, v in requests.items():
        v = v[keep]
        if c.endswith("_s"):
            v = v - edges.lead_s
            if c != "arrival_s":
                v = np.where(v <= edges.end_s, v, np.nan)
        out[c] = v
    out["arrival_s"] = np.maximum(out["arrival_s"], 0.0)
    return out


# ------------------------------------------------------------------------------------------ serving

def _mask_after(x: np.ndarray, horizon_s: float) -> np.ndarray:
    return np.where(x <= horizon_s, x, np.nan)


def _serve_fixed(facility: Facility, requests: list[Requests | None], server_rngs: list, horizon_s: float
                 ) -> tuple[list[Schedule], dict[str, np.ndarray]]:
    """Fast path serving: every server's requests through the kernel; each server's schedule and the request
    table (times after the horizon NaN)."""
    schedules, parts = [], []
    for i, (cfg_name, reqs) in enumerate(zip(facility.config_of(), requests)):
        reqs = reqs if reqs is not None else Requests.empty()
        s = serve(facility.configs[cfg_name], reqs, server_rngs[i][0])
        parts.append({"arrival_s": s.arrival_s, "start_s": _mask_after(s.start_s, horizon_s),
                      "first_token_s": _mask_after(s.first_token_s, horizon_s),
                      "end_s": _mask_after(s.end_s, horizon_s),
                      "server": np.full(len(s), i, dtype=np.int64), "lost": np.zeros(len(s), bool)})
        schedules.append(Schedule.of(s, reqs))
    return schedules, _concat_requests(parts)


def _event_schedules(served: list[Schedule], horizon_s: float) -> list[Schedule]:
    """Event path: the requests each server started, those in flight (or in prefill) ending at the horizon."""
    out = []
    for s in served:
        ok = np.isfinite(s.start_s)
        end = np.where(np.isfinite(s.end_s[ok]), s.end_s[ok], horizon_s)
        first = np.where(np.isfinite(s.first_token_s[ok]), s.first_token_s[ok], end)
        out.append(Schedule(s.start_s[ok], np.minimum(first, end), end, s.n_in[ok], s.n_out[ok], s.arrival_s[ok]))
    return out


def _concat_requests(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if not parts:
        return {c: np.empty(0, dtype=np.int64 if c == "server" else bool if c == "lost" else float)
                for c in REQUEST_COLUMNS}
    out = {c: np.concatenate([p[c] for p in parts]) for c in REQUEST_COLUMNS}
    order = np.lexsort((out["server"], out["arrival_s"]))
    return {c: v[order] for c, v in out.items()}


# -------------------------------------------------------------------------------------------- power

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


def _power(facility: Facility, schedules: list[Schedule], server_rngs: list, n_steps: int,
           dt_s: float, chunk_servers: int, keep_servers: bool, progress, keep: slice) -> tuple:
    """Power from served schedules: A_t per chunk of servers on the extended grid, the chain's power, the
    ``keep`` steps streamed into the tree's sums."""
    tree = facility.tree
    names = facility.server_names
    n_servers = len(names)
    n_kept = keep.stop - keep.start
    sums = new_sums(tree, n_kept)
    max_active = np.zeros(n_servers)
    server_traces: dict[str, np.ndarray] = {}
    server_active = np.zeros((n_servers, n_kept)) if keep_servers else None
    done = 0
    for cfg_name, idx in _chunks(facility, chunk_servers):
        cfg = facility.configs[cfg_name]
        gpu, grid = power_of_schedules(cfg, [schedules[i] for i in idx], 0.0, n_steps,
                                       [server_rngs[i][1] for i in idx], dt_s)
        gpu = quantize_w(gpu)[:, keep]
        grid = grid[:, keep]
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
    return traces, max_active, server_active


# ------------------------------------------------------------------------------------------- memory

BYTES_PER_REQUEST = 200        # drawn (24 B), served (32 B), latencies, the request table (~50 B), their copies
BYTES_PER_NODE_STEP = 8 * 3    # each node's float64 sum, its resampled outputs and the written tables
BYTES_PER_CHUNK_STEP = 8 * 6   # A_t, features (2), power draws and the GRU's float32 work, per server in a chunk


def expected_requests(streams: Sequence[Stream], duration_s: float) -> float | None:
    """Requests the streams will draw over ``duration_s`` (∫ λ dt on a coarse grid), None when a process has
    no intensity to integrate (a plug-in that does not define ``rate_per_s``)."""
    t = np.linspace(0.0, float(duration_s), 2049)
    total = 0.0
    for s in streams:
        try:
            rate = np.asarray(s.process.rate_per_s(t), dtype=float)
        except NotImplementedError:
            return None
        except Exception:
            return None
        total += float(np.mean(rate)) * float(duration_s)
    return total


def estimate_memory_bytes(facility: Facility, streams: Sequence[Stream], n_steps: int, chunk_servers: int,
                          keep_servers: bool) -> float:
    """Peak memory a run will need (bytes), estimated before anything is allocated."""
    n_servers = len(facility.server_names)
    n_nodes = facility.tree.number_of_nodes() - n_servers
    per_step = n_nodes * BYTES_PER_NODE_STEP + min(chunk_servers, n_servers) * BYTES_PER_CHUNK_STEP
    if keep_servers:
        per_step += n_servers * 8 * 3
    requests = expected_requests(streams, n_steps * STEP_S) or 0.0
    return float(n_steps) * per_step + requests * BYTES_PER_REQUEST


def check_fits(facility: Facility, streams: Sequence[Stream], n_steps: int, chunk_servers: int,
               keep_servers: bool) -> float:
    """Refuse, before allocating, a run whose estimated memory exceeds what the machine has available."""
    need = estimate_memory_bytes(facility, streams, n_steps, chunk_servers, keep_servers)
    have = exceeds_memory(need)
    if have is not None:
        raise DcsimInputError("simulation", f"about {gib(need)} of memory",
                              f"a run that fits in the {gib(have)} this machine has available now "
                              "(shorten simulation.duration_s, lower the rate or the number of servers, or drop the "
                              "server level from outputs.levels)", problem="too large to simulate here")
    return need


# --------------------------------------------------------------------------------------- simulation

def simulate_hall(facility: Facility, streams: Sequence[Stream], duration_s: float, seed: int = 0,
                  dt_s: float = STEP_S, policy: CapPolicy | None = None, interval_s: float = 1.0,
                  chunk_servers: int = DEFAULT_CHUNK_SERVERS, keep_servers: bool = False,
                  progress: Callable[[float, float, str], None] | None = None,
                  path: str | None = None, warm_up_s: float = 0.0) -> EngineResult:
    """Simulate the hall over ``[0, duration_s)`` on the ``dt_s`` grid; see the module docstring.

    The run is simulated past both ends and trimmed (see :class:`_Edges`): ``warm_up_s`` of arrivals before
    time 0 (so the hall starts in steady state rather than empty; 0 starts it empty), plus the classifier's
    context on both sides. ``progress(done, total, phase)`` is called now and then. ``path`` forces a path
    (``"event"`` or ``"live"`` where ``"fast"`` would do: same queueing, for checks); by default
    :func:`choose_path`.
    """
    if not (isinstance(duration_s, (int, float, np.integer, np.floating)) and np.isfinite(duration_s)
            and duration_s > 0):
        raise DcsimInputError("simulation.duration_s", duration_s, "a positive number of seconds")
    if not (np.isfinite(dt_s) and dt_s > 0):
        raise DcsimInputError("simulation.step_s", dt_s, "a positive number of seconds")
    n_steps = int(np.floor(duration_s / dt_s + 1e-9)) if duration_s / dt_s < 2**62 else 2**62
    if n_steps < 1:
        raise DcsimInputError("simulation.duration_s", duration_s, f"at least one step of {dt_s} s")
    if isinstance(chunk_servers, bool) or not isinstance(chunk_servers, (int, np.integer)) or chunk_servers < 1:
        raise DcsimInputError("chunk_servers", chunk_servers, "a whole number >= 1")
    if not (np.isfinite(interval_s) and interval_s > 0):
        raise DcsimInputError("control.interval_s", interval_s, "a positive number of seconds")
    if policy is not None and not isinstance(policy, CapPolicy):
        raise DcsimInputError("control.policy", type(policy).__name__, "a dcsim.facility.control.CapPolicy or None")
    warm_up_s = check_number("simulation.warm_up_s", warm_up_s, "a number of seconds >= 0", high=duration_s * 1e6 + 1e7)
    streams = list(streams)
    auto = choose_path(streams, policy)
    if path is None:
        path = auto
    elif path not in PATHS or PATHS.index(path) < PATHS.index(auto):
        raise DcsimInputError("path", path, f"one of {list(PATHS[PATHS.index(auto):])} for these inputs")

    context = max(context_steps(c) for c in facility.configs.values())
    edges = _Edges(n_steps, float(dt_s), context, int(round(warm_up_s / dt_s)))
    check_fits(facility, streams, edges.total, chunk_servers, keep_servers)
    n_servers = len(facility.server_names)
    stream_rngs = seeds.children(seed, "arrivals", len(streams))
    warm_rngs = seeds.children(seed, "warm_up", len(streams))
    server_rngs = [g.spawn(2) for g in seeds.children(seed, "servers", n_servers)]  # (serving, power)
    for s in streams:
        if s.router is not None:
            s.router.reset()
    if policy is not None:
        policy.reset()
    drawn = _draw(streams, n_servers, edges, stream_rngs, warm_rngs, dispatch_later=path != "fast")
    t_s = np.arange(n_steps) * float(dt_s)
    horizon = edges.total * float(dt_s)
    keep = edges.keep()

    if path == "fast":
        schedules, requests = _serve_fixed(facility, drawn.server_requests(), server_rngs, horizon)
    else:
        hall = Hall(facility, drawn.server_requests(), drawn.routed, server_rngs, edges.total, float(dt_s), policy,
                    interval_s, live=path == "live", keep_servers=keep_servers,
                    live_rng=seeds.named_generator(seed, "control"), progress=progress, keep=(keep.start, keep.stop))
        served = hall.run()
        requests = hall.request_table()
        if path == "live":
            traces = {n: v[keep] for n, v in hall.traces.items()}
            active = None if hall.server_active is None else hall.server_active[:, keep]
            return EngineResult(t_s, float(dt_s), traces, _trim_requests(requests, edges), hall.events, path,
                                hall.max_active, active, policy,
                                {"interval_s": hall.interval_steps * dt_s, "warm_up_s": edges.warm_up_s})
        schedules = _event_schedules(served, horizon)
    traces, max_active, server_active = _power(facility, schedules, server_rngs, edges.total, float(dt_s),
                                               chunk_servers, keep_servers, progress, keep)
    return EngineResult(t_s, float(dt_s), traces, _trim_requests(requests, edges), [], path, max_active,
                        server_active, policy, {"warm_up_s": edges.warm_up_s})
