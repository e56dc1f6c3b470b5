"""The SimPy reference: one LLM server as a FIFO queue in front of continuous-batching slots.

A request waits in FIFO order for one of `slots` batch slots (64 by default), holds it through
prefill (TTFT) and decode (n_out × TBT), then frees it:

    start_i = max(arrival_i, the time a slot frees for it in FIFO order)
    first_token_i = start_i + ttft_i
    end_i = first_token_i + decode_i

:class:`FifoServer` is the building block a facility puts many of into one environment. It also takes
what a facility does to a server: a speed change (a power cap slows decode; the request in decode
carries on with the work it has left) and a trip (every request in hand is lost; requests that arrive
while it is off are lost). :func:`serve_fifo_simpy` runs one server over a whole request list;
`dcsim.serving.kernel` computes the same numbers without SimPy when nothing else interacts with the queue.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generator

import numpy as np
import simpy

from dcsim.constants import SLOTS_PER_SERVER
from dcsim.errors import DcsimInputError



@dataclass(frozen=True)
class ServedRequests:
    """Per-request times (s from scenario start), in request order."""

    arrival_s: np.ndarray
    start_s: np.ndarray
    first_token_s: np.ndarray
    end_s: np.ndarray

    def __len__(self) -> int:
        return int(self.arrival_s.size)

    @property
    def wait_s(self) -> np.ndarray:
        """Time spent queued before a slot was free."""
        return self.start_s - self.arrival_s


def check_slots(slots: Any) -> int:
    if isinstance(slots, bool) or int(slots) != slots or slots < 1:
        raise DcsimInputError("slots", slots, "a whole number ≥ 1")
    return int(slots)


def check_durations(arrival_s: Any, *durations: tuple[str, Any]) -> tuple[np.ndarray, ...]:
    """arrival_s and per-request durations as equal-length 1-D float arrays (durations ≥ 0)."""
    out = []
    for name, values in (("arrival_s", arrival_s), *durations):
        arr = np.asarray(values, dtype=float)
        if arr.ndim != 1:
            raise DcsimInputError(name, f"array of shape {arr.shape}", "a 1-D array")
        if not np.all(np.isfinite(arr)):
            raise DcsimInputError(name, "non-finite values", "finite numbers of seconds")
        if name != "arrival_s" and arr.size and arr.min() < 0:
            raise DcsimInputError(name, float(arr.min()), "durations ≥ 0 s")
        out.append(arr)
    if len({a.size for a in out}) > 1:
        names = ["arrival_s"] + [name for name, _ in durations]
        raise DcsimInputError("/".join(names), [a.size for a in out], "arrays of equal length")
    return tuple(out)


class RequestLog:
    """Times of requests by id (s): ``arrival``, ``start``, ``first`` token, ``end`` (NaN until reached) and
    ``lost``. One log may be shared by every server of an environment (ids are then global)."""

    def __init__(self, n: int = 0) -> None:
        self.arrival = np.full(n, np.nan)
        self.start = np.full(n, np.nan)
        self.first = np.full(n, np.nan)
        self.end = np.full(n, np.nan)
        self.lost = np.zeros(n, dtype=bool)

    def __len__(self) -> int:
        return int(self.arrival.size)

    def ensure(self, n: int) -> None:
        """Room for ids 0 … n − 1 (grows by doubling)."""
        if n <= len(self):
            return
        size = max(n, 2 * len(self))
        for name in ("arrival", "start", "first", "end"):
            old = getattr(self, name)
            new = np.full(size, np.nan)
            new[:old.size] = old
            setattr(self, name, new)
        lost = np.zeros(size, dtype=bool)
        lost[:self.lost.size] = self.lost
        self.lost = lost


class ServerCounts:
    """The live state of many servers as arrays (one entry per server): requests in a slot, requests waiting,
    online. Servers of one facility share one, so a router's view of a pool is an array slice."""

    def __init__(self, n: int) -> None:
        self.active = np.zeros(n, dtype=np.int64)
        self.queued = np.zeros(n, dtype=np.int64)
        self.online = np.ones(n, dtype=bool)


class FifoServer:
    """One server: ``slots`` continuous-batching slots (a simpy.Resource) behind a FIFO queue.

    Start ``env.process(server.serve(arrival_s, ttft_s, decode_s))`` once per request, at or before its
    arrival, or ``env.process(server.handle(request_id, ttft_s, decode_s))`` when it arrives now; requests
    arriving at the same instant queue in the order their processes started. ``active`` counts requests
    in a slot, ``queued`` those waiting (kept in ``counts[index]``, which many servers may share). ``on_change(server)`` (optional) is called just before ``active``
    changes, so a caller can integrate the occupancy over time. :meth:`set_speed` and :meth:`trip` are
    what a facility's control does to the server.
    """

    def __init__(self, env: simpy.Environment, slots: int = SLOTS_PER_SERVER, log: RequestLog | None = None,
                 on_change: Callable[["FifoServer"], None] | None = None, counts: "ServerCounts | None" = None,
                 index: int = 0) -> None:
        self.env = env
        self.slots = check_slots(slots)
        self.batch = simpy.Resource(env, capacity=self.slots)
        self.log = log if log is not None else RequestLog()
        self.on_change = on_change
        self.counts = counts if counts is not None else ServerCounts(1)
        self.index = index
        self.speed = 1.0
        self._in_hand: set = set()
        self._decoding: set = set()
        self._ids: list[int] = []
        self._next_id = 0

    @property
    def active(self) -> int:
        """Requests in a slot now (counted when the request resumes in its slot)."""
        return int(self.counts.active[self.index])

    @active.setter
    def active(self, value: int) -> None:
        self.counts.active[self.index] = value

    @property
    def queued(self) -> int:
        """Requests waiting for a slot now."""
        return int(self.counts.queued[self.index])

    @queued.setter
    def queued(self, value: int) -> None:
        self.counts.queued[self.index] = value

    @property
    def online(self) -> bool:
        return bool(self.counts.online[self.index])

    @online.setter
    def online(self, value: bool) -> None:
        self.counts.online[self.index] = value

    def serve(self, arrival_s: float, ttft_s: float, decode_s: float,
              request_id: int | None = None) -> Generator[simpy.Event, Any, None]:
        """Process generator: wait until ``arrival_s``, then :meth:`handle` the request."""
        if request_id is None:
            request_id = self._next_id
        self._next_id = max(self._next_id, request_id + 1)
        self.log.ensure(request_id + 1)
        self.log.arrival[request_id] = arrival_s
        if arrival_s > self.env.now:
            yield self.env.timeout(arrival_s - self.env.now)
        yield from self.handle(request_id, ttft_s, decode_s)

    def handle(self, request_id: int, ttft_s: float, decode_s: float) -> Generator[simpy.Event, Any, None]:
        """Process generator for a request arriving now: queue, prefill, decode at the server's speed, leave.

        Lost (``log.lost``) when the server is off on arrival or trips while the request is in hand."""
        env, log = self.env, self.log
        self._ids.append(request_id)
        if not self.online:
            log.lost[request_id] = True
            return
        proc = env.active_process
        self._in_hand.add(proc)
        self.queued += 1
        holding = False
        try:
            with self.batch.request() as slot:
                try:
                    yield slot
                finally:
                    self.queued -= 1
                holding = True
                self._change(+1)
                log.start[request_id] = env.now
                yield env.timeout(ttft_s)
                log.first[request_id] = env.now
                work = decode_s
                while True:
                    speed, t0 = self.speed, env.now
                    self._decoding.add(proc)
                    try:
                        yield env.timeout(work / speed)
                        break
                    except simpy.Interrupt as irq:
                        if irq.cause != "speed":
                            raise
                        work = max(work - (env.now - t0) * speed, 0.0)
                    finally:
                        self._decoding.discard(proc)
                log.end[request_id] = env.now
        except simpy.Interrupt:  # a trip: the request is lost wherever it was
            log.lost[request_id] = True
        finally:
            if holding:
                self._change(-1)
            self._in_hand.discard(proc)

    def _change(self, delta: int) -> None:
        if self.on_change is not None:
            self.on_change(self)
        self.active += delta

    def set_speed(self, speed: float) -> None:
        """Decode at ``speed`` × the uncapped rate from now on; requests in decode carry on with the work left."""
        self.speed = float(speed)
        if not self.online:
            return  # its requests are being dropped
        for proc in list(self._decoding):
            if proc.is_alive:
                proc.interrupt("speed")

    def trip(self) -> None:
        """The server goes off: every request in hand is lost, and so is every arrival until :meth:`restore`."""
        self.online = False
        for proc in list(self._in_hand):
            if proc.is_alive:
                proc.interrupt("trip")

    def restore(self) -> None:
        self.online = True

    def served(self) -> ServedRequests:
        """Finished requests' times, ordered by request id."""
        ids = np.array(sorted(i for i in self._ids if np.isfinite(self.log.end[i])), dtype=np.int64)
        log = self.log
        return ServedRequests(log.arrival[ids].copy(), log.start[ids].copy(), log.first[ids].copy(),
                              log.end[ids].copy())


def serve_fifo_simpy(
    arrival_s: Any, ttft_s: Any, decode_s: Any, slots: int = SLOTS_PER_SERVER
) -> ServedRequests:
    """Run one FIFO server over all requests (decode_s = n_out × tbt_s); times in request order.

    FIFO order is arrival order, ties broken by request index.
    """
    arrival, ttft, decode = check_durations(arrival_s, ("ttft_s", ttft_s), ("decode_s", decode_s))
    env = simpy.Environment(initial_time=min(0.0, float(arrival.min())) if arrival.size else 0.0)
    server = FifoServer(env, slots, RequestLog(arrival.size))
    for i in np.argsort(arrival, kind="stable"):
        env.process(server.serve(float(arrival[i]), float(ttft[i]), float(decode[i]), request_id=int(i)))
    env.run()
    return server.served()
