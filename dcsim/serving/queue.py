"""The SimPy reference: one LLM server as a FIFO queue in front of continuous-batching slots.

A request waits in FIFO order for one of `slots` batch slots (64 by default), holds it through
prefill (TTFT) and decode (n_out × TBT), then frees it:

    start_i = max(arrival_i, the time a slot frees for it in FIFO order)
    first_token_i = start_i + ttft_i
    end_i = first_token_i + decode_i

`FifoServer` is the building block a facility simulation puts many of into one environment;
`serve_fifo_simpy` runs one server over a whole request list. `dcsim.serving.kernel` computes the
same numbers without SimPy when nothing else interacts with the queue.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generator

import numpy as np
import simpy

from dcsim.errors import DcsimInputError

DEFAULT_SLOTS = 64


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


def check_requests(arrival_s: Any, *durations: tuple[str, Any]) -> tuple[np.ndarray, ...]:
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


class FifoServer:
    """One server: `slots` continuous-batching slots (a simpy.Resource) behind a FIFO queue.

    Start `env.process(server.serve(arrival_s, ttft_s, decode_s))` once per request, at or before
    its arrival; requests arriving at the same instant queue in the order their processes started.
    Times are recorded per request id (0, 1, … in call order unless given).
    """

    def __init__(self, env: simpy.Environment, slots: int = DEFAULT_SLOTS) -> None:
        self.env = env
        self.slots = check_slots(slots)
        self.batch = simpy.Resource(env, capacity=self.slots)
        self.records: dict[int, tuple[float, float, float, float]] = {}
        self._next_id = 0

    @property
    def active(self) -> int:
        """Requests holding a slot now (in prefill or decode)."""
        return self.batch.count

    @property
    def queued(self) -> int:
        """Requests waiting for a slot now."""
        return len(self.batch.queue)

    def serve(
        self, arrival_s: float, ttft_s: float, decode_s: float, request_id: int | None = None
    ) -> Generator[simpy.Event, Any, None]:
        """Process generator: arrive, wait for a slot, prefill, decode, leave."""
        if request_id is None:
            request_id = self._next_id
        self._next_id = max(self._next_id, request_id + 1)
        if arrival_s > self.env.now:
            yield self.env.timeout(arrival_s - self.env.now)
        with self.batch.request() as slot:
            yield slot
            start_s = self.env.now
            yield self.env.timeout(ttft_s)
            first_token_s = self.env.now
            yield self.env.timeout(decode_s)
            self.records[request_id] = (arrival_s, start_s, first_token_s, self.env.now)

    def served(self) -> ServedRequests:
        """Finished requests' times, ordered by request id."""
        ids = sorted(self.records)
        times = np.array([self.records[i] for i in ids], dtype=float).reshape(-1, 4)
        return ServedRequests(*(times[:, k].copy() for k in range(4)))


def serve_fifo_simpy(
    arrival_s: Any, ttft_s: Any, decode_s: Any, slots: int = DEFAULT_SLOTS
) -> ServedRequests:
    """Run one FIFO server over all requests (decode_s = n_out × tbt_s); times in request order.

    FIFO order is arrival order, ties broken by request index.
    """
    arrival, ttft, decode = check_requests(arrival_s, ("ttft_s", ttft_s), ("decode_s", decode_s))
    env = simpy.Environment(initial_time=min(0.0, float(arrival.min())) if arrival.size else 0.0)
    server = FifoServer(env, slots)
    for i in np.argsort(arrival, kind="stable"):
        env.process(server.serve(float(arrival[i]), float(ttft[i]), float(decode[i]), request_id=int(i)))
    env.run()
    return server.served()
