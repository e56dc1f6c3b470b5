"""The SimPy reference FIFO server: slots, FIFO order, recorded times."""
from __future__ import annotations

import numpy as np
import pytest
import simpy

from dcsim.errors import DcsimInputError
from dcsim.serving.queue import FifoServer, serve_fifo_simpy


def test_requests_start_on_arrival_while_slots_are_free():
    out = serve_fifo_simpy([0.0, 0.5, 1.0], [0.1, 0.2, 0.3], [1.0, 1.0, 1.0], slots=4)
    assert np.array_equal(out.start_s, out.arrival_s)
    assert np.allclose(out.first_token_s, [0.1, 0.7, 1.3])
    assert np.allclose(out.end_s, [1.1, 1.7, 2.3])
    assert np.all(out.wait_s == 0)


def test_a_full_server_queues_in_fifo_order():
    # one slot: each request waits for the previous one; ties go by request index
    out = serve_fifo_simpy([0.0, 0.0, 0.0, 5.0], [0.5, 0.5, 0.5, 0.5], [0.5, 1.5, 0.0, 1.0], slots=1)
    assert np.allclose(out.start_s, [0.0, 1.0, 3.0, 5.0])
    assert np.allclose(out.end_s, [1.0, 3.0, 3.5, 6.5])


def test_results_come_back_in_request_order_for_unsorted_arrivals():
    out = serve_fifo_simpy([2.0, 0.0, 1.0], [0.0, 0.0, 0.0], [10.0, 10.0, 10.0], slots=2)
    assert np.array_equal(out.arrival_s, [2.0, 0.0, 1.0])
    assert np.allclose(out.start_s, [10.0, 0.0, 1.0])


def test_never_more_active_requests_than_slots():
    rng = np.random.default_rng(0)
    out = serve_fifo_simpy(np.sort(rng.uniform(0, 2, 300)), rng.uniform(0, 0.2, 300), rng.uniform(0, 1, 300), slots=8)
    events = np.concatenate([out.start_s, out.end_s])
    steps = np.concatenate([np.ones(300), -np.ones(300)])
    order = np.lexsort((steps, events))  # at equal times, leave before join
    assert np.cumsum(steps[order]).max() == 8


def test_fifo_server_reports_active_and_queued_as_the_story_unfolds():
    env = simpy.Environment()
    server = FifoServer(env, slots=2)
    for arrival in (0.0, 0.0, 0.0, 0.0):
        env.process(server.serve(arrival, ttft_s=1.0, decode_s=1.0))
    seen = []

    def watch():  # look between events, at 0.5, 1.5, … s
        yield env.timeout(0.5)
        for _ in range(5):
            seen.append((env.now, server.active, server.queued))
            yield env.timeout(1.0)

    env.process(watch())
    env.run()
    assert seen == [(0.5, 2, 2), (1.5, 2, 2), (2.5, 2, 0), (3.5, 2, 0), (4.5, 0, 0)]
    served = server.served()
    assert np.array_equal(served.start_s, [0.0, 0.0, 2.0, 2.0])


def test_many_servers_share_one_environment():
    env = simpy.Environment()
    a, b = FifoServer(env, slots=1), FifoServer(env, slots=1)
    for k in range(3):
        env.process(a.serve(float(k), 0.5, 1.5))
        env.process(b.serve(float(k), 0.1, 0.1))
    env.run()
    assert np.allclose(a.served().end_s, [2.0, 4.0, 6.0])
    assert np.allclose(b.served().end_s, [0.2, 1.2, 2.2])


def test_bad_inputs_are_named():
    with pytest.raises(DcsimInputError, match="slots"):
        serve_fifo_simpy([0.0], [0.1], [0.1], slots=0)
    with pytest.raises(DcsimInputError, match="decode_s"):
        serve_fifo_simpy([0.0], [0.1], [-0.1])
    with pytest.raises(DcsimInputError, match="arrival_s/ttft_s/decode_s"):
        serve_fifo_simpy([0.0, 1.0], [0.1], [0.1])


def test_a_trip_loses_every_request_in_hand_and_every_arrival_while_off():
    env = simpy.Environment()
    server = FifoServer(env, slots=1)
    for k in range(3):  # 0: in a slot at the trip, 1: queued, 2: arrives while off
        env.process(server.serve(float(k), ttft_s=0.5, decode_s=10.0))

    def control():
        yield env.timeout(1.5)
        server.trip()
        yield env.timeout(1.0)
        server.restore()

    env.process(control())
    env.process(server.serve(4.0, ttft_s=0.5, decode_s=1.0))  # after the restore: served
    env.run()
    assert server.log.lost.tolist() == [True, True, True, False]
    assert server.served().end_s.tolist() == [5.5]
    assert server.active == 0 and server.queued == 0


def test_a_speed_change_stretches_the_decode_work_left():
    env = simpy.Environment()
    server = FifoServer(env, slots=4)
    env.process(server.serve(0.0, ttft_s=1.0, decode_s=4.0))  # decode 1 → 5 s at full speed

    def cap():
        yield env.timeout(3.0)  # 2 s of decode done, 2 s of work left
        server.set_speed(0.5)   # now takes 4 s

    env.process(cap())
    env.run()
    assert server.served().end_s.tolist() == [7.0]
