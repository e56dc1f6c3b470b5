"""The SimPy assembly of a hall: every server's :class:`~dcsim.serving.queue.FifoServer` in one environment,
a feeding process per request stream (routing each request as it arrives) and, on the live path, a control
process every interval that turns the interval's occupancy into power, sums the tree and applies the policy.

The event path (a router reads queue state, nothing reads power) runs the feeders alone; the engine then
generates power from the served schedule, as on the fast path. The live path (a policy, or a router that
reads power) also runs :meth:`Hall._control`. See :mod:`dcsim.facility.engine` for the three paths.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from dcsim.errors import DcsimInputError, plugin_error
from dcsim.facility.control import ACTION_EVENTS, Action, CapPolicy
from dcsim.facility.tree import aggregate_chunk, finish_sums, new_sums, server_indices_under
from dcsim.power.chain import Schedule, context_steps, power_from_probs, power_of_schedules
from dcsim.serving.features import feature_matrix
from dcsim.serving.queue import FifoServer, RequestLog, ServerCounts
from dcsim.workload.arrivals import Requests
from dcsim.workload.routing import NoServerOnline, ServerView

if TYPE_CHECKING:
    from dcsim.configs import CalibratedConfig
    from dcsim.facility.engine import Facility, Stream

MIN_SPEED = 0.05          # slowest decode speed of a capped server (fraction of uncapped)
SPEED_STEP = 0.02         # a capped server's speed is updated when it moves by more than this
QUANTUM_W = 2.0 ** -20    # server power grid: sums of multiples of it are exact in float64


def quantize_w(power_w: np.ndarray) -> np.ndarray:
    """Power rounded to a multiple of :data:`QUANTUM_W` (exact: scaling by a power of two)."""
    return np.round(np.asarray(power_w, dtype=np.float64) / QUANTUM_W) * QUANTUM_W


def checked_choice(stream: "Stream", k: Any, view: ServerView) -> int:
    """The router's answer as a server index of the pool, or a DcsimInputError naming the router."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k < len(view):
        raise DcsimInputError(f"workload.routing ({type(stream.router).__name__})", k,
                              f"an index 0..{len(view) - 1} into the servers of the pool")
    if not view.online[k]:
        raise DcsimInputError(f"workload.routing ({type(stream.router).__name__})", int(k), "an online server",
                              problem="chose an offline server")
    return int(k)


def call_router(stream: "Stream", t_s: float, n_in: int, n_out: int, view: ServerView,
                rng: np.random.Generator) -> Any:
    """``stream.router.choose(...)``; anything but :class:`NoServerOnline` it raises becomes one input error."""
    try:
        return stream.router.choose(t_s, n_in, n_out, view, rng)
    except NoServerOnline:
        raise
    except Exception as e:
        raise plugin_error("workload.routing choose()", stream.router, e,
                           "a router whose choose() returns the index of an online server") from None


class Hall:
    """Every server's FIFO queue in one SimPy environment, with routing, breakers and caps.

    ``fixed``: each server's requests whose server is known in advance (split or statically routed);
    ``routed``: (requests, stream, generator) of streams whose router reads the servers as requests arrive.
    A request's latencies come from its server's serving generator: all fixed requests' TTFTs then TBTs per
    server up front (as the kernel draws them), routed requests' one by one as they are dispatched.
    """

    def __init__(self, facility: "Facility", fixed: list[Requests | None], routed: list[tuple], server_rngs: list,
                 n_steps: int, dt_s: float, policy: CapPolicy | None, interval_s: float, live: bool,
                 keep_servers: bool, live_rng: np.random.Generator,
                 progress: Callable[[float, float, str], None] | None, keep: tuple[int, int] | None = None) -> None:
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
        self.keep = (0, n_steps) if keep is None else keep  # the scenario's steps: the policy acts from the first
        self.env = simpy.Environment()
        cfg_names = facility.config_of()
        self.cfgs = [facility.configs[c] for c in cfg_names]
        self.rng_serve = [r[0] for r in server_rngs]
        self.power_w = np.full(self.n, np.nan)
        self.cap_w = np.full(self.n, np.inf)
        self.idle_w = np.array([float(c.states.means_[0]) for c in self.cfgs])
        self.events: list[dict[str, Any]] = []
        self.tripped: set[str] = set()
        self.caps: dict[str, float] = {}
        self._under: dict[str, np.ndarray] = {}

        arr, srv, ttft, decode, n_in, n_out = [], [], [], [], [], []
        for i, reqs in enumerate(fixed):
            if reqs is None:
                continue
            sur, rng = self.cfgs[i].surrogate, self.rng_serve[i]
            t1 = sur.sample_ttft_s(reqs.n_in, rng)
            tbt = sur.sample_tbt_s(len(reqs), rng)
            arr.append(reqs.arrival_s), srv.append(np.full(len(reqs), i, dtype=np.int64))
            ttft.append(t1), decode.append(reqs.n_out * tbt), n_in.append(reqs.n_in), n_out.append(reqs.n_out)
        cat = (lambda xs, dt: np.concatenate(xs) if xs else np.empty(0, dt))
        self.fixed = (cat(arr, float), cat(srv, np.int64), cat(ttft, float), cat(decode, float))
        self.n_fixed = self.fixed[0].size
        self.routed = routed
        n_total = self.n_fixed + sum(len(r) for r, _, _ in routed)
        self.log = RequestLog(n_total)
        self.log.arrival[:self.n_fixed] = self.fixed[0]
        self.n_in = np.zeros(n_total, dtype=np.int64)      # token counts, and the planned prefill and decode
        self.n_out = np.zeros(n_total, dtype=np.int64)     # times (s), per request id: what the structured
        self.ttft_plan = np.full(n_total, np.nan)          # power model reads on the live path
        self.decode_plan = np.full(n_total, np.nan)
        self.n_in[:self.n_fixed], self.n_out[:self.n_fixed] = cat(n_in, np.int64), cat(n_out, np.int64)
        self.ttft_plan[:self.n_fixed], self.decode_plan[:self.n_fixed] = self.fixed[2], self.fixed[3]
        self.routed_offset = []
        pos = self.n_fixed
        for reqs, _, _ in routed:
            self.routed_offset.append(pos)
            self.log.arrival[pos:pos + len(reqs)] = reqs.arrival_s
            self.n_in[pos:pos + len(reqs)], self.n_out[pos:pos + len(reqs)] = reqs.n_in, reqs.n_out
            pos += len(reqs)
        self.server = np.full(n_total, -1, dtype=np.int64)
        self.server[:self.n_fixed] = self.fixed[1]
        on_change = self._accrue_before_change if live else None
        self.counts = ServerCounts(self.n)
        self.servers = [FifoServer(self.env, c.slots, self.log, on_change, self.counts, i)
                        for i, c in enumerate(self.cfgs)]
        self.index = {id(s): i for i, s in enumerate(self.servers)}

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

    # -- running

    def run(self) -> list[Schedule] | None:
        """Run to the horizon. Event path: each server's schedule (NaN where a request did not get there); live:
        None."""
        env = self.env
        env.process(self._feed_fixed())
        for (reqs, stream, rng), offset in zip(self.routed, self.routed_offset):
            env.process(self._feed_routed(reqs, stream, rng, offset))
        if self.live:
            env.run(until=env.process(self._control()))  # its last step is at the horizon
        else:
            env.process(self._ticker())
            env.run(until=self.horizon)
        end = self.log.end
        end[end > self.horizon] = np.nan
        if self.live:
            return None
        order = np.argsort(self.server, kind="stable")
        bounds = np.searchsorted(self.server[order], np.arange(self.n + 1))
        log = self.log
        return [Schedule(log.start[ix], log.first[ix], end[ix], self.n_in[ix], self.n_out[ix], log.arrival[ix])
                for ix in (order[a:b] for a, b in zip(bounds[:-1], bounds[1:]))]

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
            env.process(self.servers[int(srv[rid])].handle(int(rid), float(ttft[rid]), float(decode[rid])))

    def _view(self, pool: np.ndarray) -> ServerView:
        c = self.counts
        return ServerView(c.active[pool].copy(), c.queued[pool].copy(), self.power_w[pool].copy(),
                          c.online[pool].copy())

    def _feed_routed(self, reqs: Requests, stream: "Stream", rng: np.random.Generator, offset: int):
        env = self.env
        pool = stream.servers
        for j in range(len(reqs)):
            t = reqs.arrival_s[j]
            if t > env.now:
                yield env.timeout(t - env.now)
            rid = offset + j
            view = self._view(pool)
            try:
                k = checked_choice(stream, call_router(stream, float(t), int(reqs.n_in[j]), int(reqs.n_out[j]),
                                                       view, rng), view)
            except NoServerOnline:
                self.log.lost[rid] = True
                continue
            i = int(pool[k])
            self.server[rid] = i
            sur, r = self.cfgs[i].surrogate, self.rng_serve[i]
            ttft = float(sur.sample_ttft_s(reqs.n_in[j:j + 1], r)[0])
            decode = float(reqs.n_out[j] * sur.sample_tbt_s(1, r)[0])
            self.ttft_plan[rid], self.decode_plan[rid] = ttft, decode
            env.process(self.servers[i].handle(rid, ttft, decode))

    # -- occupancy accounting (live path): integrate each server's active count over the interval's steps

    def _accrue_before_change(self, server: FifoServer) -> None:
        self._accrue(self.index[id(server)], self.env.now)

    def _accrue(self, i: int, t: float) -> None:
        c = self.servers[i].active
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
        grid = self.grid[:, :n] + self.counts.active[:, None] * overlap
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
            lo, hi = max(s0, self.keep[0]), min(s1, self.keep[1])
            if lo < hi:
                self.max_active = np.maximum(self.max_active, grid[:, lo - s0:hi - s0].max(axis=1))
            if self.keep_servers:
                self.server_active[:, s0:s1] = grid
                self.server_it[:, s0:s1] = it
            if self.policy is not None and s1 > self.keep[0]:  # no control during the warm-up
                node_power = {node: float(trace.mean()) for node, trace in sums.items()}
                node_power.update(zip(self.names, it.mean(axis=1).tolist()))
                t_scenario = t1 - self.keep[0] * self.dt  # policies and events run on the scenario's clock
                try:
                    actions = self.policy.step(t_scenario, node_power, self.ptree)
                except Exception as e:
                    raise plugin_error("control.policy step()", self.policy, e,
                                       "a policy whose step() returns a list of Actions") from None
                self._apply(t_scenario, actions)
            self._update_speed(uncapped)
            if self.progress:
                self.progress(t1, self.horizon, "simulating")
            s0 = s1
        self.traces = dict(self.sums)
        if self.keep_servers:
            self.traces.update({name: self.server_it[i] for i, name in enumerate(self.names)})

    def _online(self) -> np.ndarray:
        return self.counts.online.copy()

    def _interval_power(self, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """IT power (S, n) after policy effects, and the uncapped GPU power (S, n)."""
        n = grid.shape[1]
        window = np.concatenate([self.hist, grid], axis=1)
        self.hist = window[:, n:]
        gpu = np.empty(grid.shape)
        for cfg, idx, rng in self.groups:
            if cfg.power_model == "structured":
                gpu[idx] = quantize_w(self._structured_power(cfg, idx, n, rng))
                continue
            ctx = int(getattr(cfg.classifier, "context", 0))
            w = window[idx, window.shape[1] - n - ctx:]
            probs = cfg.classifier.predict_proba(feature_matrix(w))[:, -n:]
            gpu[idx] = quantize_w(power_from_probs(cfg, probs, rng))
        online = self._online()
        cap = np.maximum(self.cap_w, self.idle_w)  # a GPU cannot be held below its idle power
        self.power_w = np.where(online, np.minimum(gpu[:, -1], cap), 0.0)
        held = np.minimum(gpu, cap[:, None])
        it = np.where(online[:, None], held + self.fac.p_base_w[:, None], 0.0)
        return it, gpu

    def _structured_power(self, cfg: "CalibratedConfig", idx: np.ndarray, n: int,
                          rng: np.random.Generator) -> np.ndarray:
        """The interval's GPU power (len(idx), n) from the work of the requests seen so far: actual times where
        they are known, planned ones (prefill ends at start + TTFT, decode at the server's speed) for requests
        still in flight; the meter's context of past steps before the interval."""
        ctx = context_steps(cfg)
        t1 = self.env.now
        t0 = t1 - (n + ctx) * self.dt
        log = self.log
        mine = np.zeros(self.n, dtype=bool)
        mine[idx] = True
        local = np.full(self.n, -1, dtype=np.int64)
        local[idx] = np.arange(idx.size)
        srv = np.clip(self.server, 0, None)
        sel = np.flatnonzero((self.server >= 0) & mine[srv] & np.isfinite(log.start) & (log.start < t1)
                             & ~(log.end < t0) & ~log.lost)
        start = log.start[sel]
        first = np.where(np.isfinite(log.first[sel]), log.first[sel], start + self.ttft_plan[sel])
        speed = np.array([self.servers[i].speed for i in self.server[sel]], dtype=float)
        end = np.where(np.isfinite(log.end[sel]), log.end[sel], np.maximum(first + self.decode_plan[sel] / speed, t1))
        first = np.minimum(first, end)
        sched = [Schedule(start[r], first[r], end[r], self.n_in[sel][r], self.n_out[sel][r], log.arrival[sel][r])
                 for r in (local[self.server[sel]] == j for j in range(idx.size))]
        power, _ = power_of_schedules(cfg, sched, t0, n + ctx, list(rng.spawn(idx.size)),
                                      self.dt)
        return power[:, -n:]

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
                    self.servers[i].trip()
            elif act.kind == "restore":
                self.tripped.discard(act.node)
            elif act.kind == "cap":
                self.caps[act.node] = float(quantize_w(act.cap_w))
            else:
                self.caps.pop(act.node, None)
            self.events.append({"t_s": float(t_s), "node": act.node, "event": ACTION_EVENTS[act.kind],
                                "detail": act.detail})
        online = np.ones(self.n, dtype=bool)
        for node in self.tripped:
            online[self._under_node(node)] = False
        for server, on in zip(self.servers, online):
            server.online = bool(on)
        self.cap_w[:] = np.inf
        for node, cap in self.caps.items():
            idx = self._under_node(node)
            self.cap_w[idx] = np.minimum(self.cap_w[idx], cap)

    def _update_speed(self, uncapped: np.ndarray) -> None:
        """Capped servers decode at cap / uncapped power (clipped to [MIN_SPEED, 1]); others at full speed."""
        mean = uncapped.mean(axis=1)
        speed = np.array([s.speed for s in self.servers])
        with np.errstate(divide="ignore", invalid="ignore"):
            target = np.where(np.isfinite(self.cap_w), np.clip(self.cap_w / mean, MIN_SPEED, 1.0), 1.0)
        target = np.where(np.isfinite(target), target, 1.0)
        change = np.flatnonzero((np.abs(target - speed) > SPEED_STEP) | ((target == 1.0) & (speed != 1.0)))
        for i in change:
            self.servers[i].set_speed(target[i])

    # -- results

    def request_table(self) -> dict[str, np.ndarray]:
        log = self.log
        cols = {"arrival_s": log.arrival, "start_s": log.start, "first_token_s": log.first, "end_s": log.end,
                "server": self.server, "lost": log.lost}
        order = np.lexsort((self.server, log.arrival))
        return {c: np.asarray(v)[order] for c, v in cols.items()}
