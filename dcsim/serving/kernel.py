"""The fast path: the FIFO continuous-batching queue of `queue.py` without SimPy.

With FIFO order and identical slots, request i starts at max(arrival_i, earliest slot free time)
(the Kiefer–Wolfowitz recursion): a heap of slot free times, O(n log n). The results equal
`serve_fifo_simpy` bit for bit, because the same floating-point sums are formed in the same order.
Use this whenever nothing outside the server (routing on queue state, power caps) reacts to it.
"""
from __future__ import annotations

import heapq
from typing import Any

import numpy as np

from dcsim.serving.latency import LatencySurrogate
from dcsim.constants import SLOTS_PER_SERVER
from dcsim.serving.queue import ServedRequests, check_durations, check_slots


def _start_times(arrival: np.ndarray, first_part: np.ndarray, second_part: np.ndarray, slots: int) -> np.ndarray:
    """start_i for FIFO (arrival order, ties by index); a slot frees at (start + first) + second."""
    order = np.argsort(arrival, kind="stable")
    start = arrival.copy()
    if arrival.size <= slots:
        return start  # never more requests than slots: nobody waits
    a, f, s = arrival[order].tolist(), first_part[order].tolist(), second_part[order].tolist()
    out = [0.0] * len(a)
    free = [(ai + fi) + si for ai, fi, si in zip(a[:slots], f[:slots], s[:slots])]
    out[:slots] = a[:slots]
    heapq.heapify(free)
    for k in range(slots, len(a)):
        begin = a[k] if a[k] > free[0] else free[0]
        out[k] = begin
        heapq.heapreplace(free, (begin + f[k]) + s[k])
    start[order] = out
    return start


def fifo_schedule(arrival_s: Any, service_s: Any, slots: int = SLOTS_PER_SERVER) -> np.ndarray:
    """Start time (s) of each request in a FIFO queue with `slots` servers; request order."""
    arrival, service = check_durations(arrival_s, ("service_s", service_s))
    return _start_times(arrival, service, np.zeros_like(service), check_slots(slots))


def serve_fifo(arrival_s: Any, ttft_s: Any, decode_s: Any, slots: int = SLOTS_PER_SERVER) -> ServedRequests:
    """Same as `queue.serve_fifo_simpy` (decode_s = n_out × tbt_s), without SimPy."""
    arrival, ttft, decode = check_durations(arrival_s, ("ttft_s", ttft_s), ("decode_s", decode_s))
    start = _start_times(arrival, ttft, decode, check_slots(slots))
    first_token = start + ttft
    return ServedRequests(arrival, start, first_token, first_token + decode)


def serve_requests(
    arrival_s: Any,
    n_in: Any,
    n_out: Any,
    surrogate: LatencySurrogate,
    rng: np.random.Generator,
    slots: int = SLOTS_PER_SERVER,
) -> ServedRequests:
    """Draw TTFT per request (Eq. 4), then one TBT per request (Eq. 5), and schedule FIFO.

    decode_i = n_out_i × tbt_i. Draw order (all TTFTs, then all TBTs) is part of the seeding contract.
    """
    arrival, n_in_, n_out_ = check_durations(arrival_s, ("n_in", n_in), ("n_out", n_out))
    ttft = surrogate.sample_ttft_s(n_in_, rng)
    tbt = surrogate.sample_tbt_s(n_out_.size, rng)
    return serve_fifo(arrival, ttft, n_out_ * tbt, slots)
