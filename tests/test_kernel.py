"""The fast FIFO kernel equals the SimPy reference exactly; serve_requests draws and schedules."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dcsim.serving.features import active_grid
from dcsim.serving.kernel import fifo_schedule, serve_fifo, serve_requests
from dcsim.serving.latency import LatencySurrogate, tbt_samples_from_run
from dcsim.serving.queue import serve_fifo_simpy


def random_case(rng, kind):
    n = int(rng.integers(1, 500))
    if kind == "poisson":
        arrival = np.cumsum(rng.exponential(0.05, n))
    elif kind == "ties":  # arrivals and durations on a coarse grid: many exact ties
        arrival = np.round(rng.uniform(0, 5, n), 1)
    else:  # bursts far bigger than the slot count
        arrival = np.repeat(rng.uniform(0, 20, n // 100 + 1), 100)[:n]
    ttft, decode = rng.exponential(0.2, n), rng.exponential(2.0, n)
    if kind == "ties":
        ttft, decode = np.round(ttft, 1), np.round(decode, 1)
    return arrival, ttft, decode


@pytest.mark.parametrize("kind", ["poisson", "ties", "bursts"])
def test_kernel_equals_simpy_exactly(kind):
    rng = np.random.default_rng(["poisson", "ties", "bursts"].index(kind))
    for _ in range(6):
        arrival, ttft, decode = random_case(rng, kind)
        slots = int(rng.choice([1, 3, 16, 64]))
        ref = serve_fifo_simpy(arrival, ttft, decode, slots)
        fast = serve_fifo(arrival, ttft, decode, slots)
        for field in ("arrival_s", "start_s", "first_token_s", "end_s"):
            assert np.array_equal(getattr(fast, field), getattr(ref, field)), field


def test_fifo_schedule_equals_simpy_with_one_service_time():
    rng = np.random.default_rng(1)
    arrival, service = np.repeat(np.arange(5.0), 100), rng.exponential(1.0, 500)
    ref = serve_fifo_simpy(arrival, service, np.zeros(500), slots=64)
    assert np.array_equal(fifo_schedule(arrival, service, slots=64), ref.start_s)


def test_a_burst_larger_than_the_slots_waits_for_the_first_to_leave():
    start = fifo_schedule(np.zeros(65), np.arange(1.0, 66.0), slots=64)
    assert np.all(start[:64] == 0.0) and start[64] == 1.0


def surrogate():
    return LatencySurrogate.from_dict(
        {"alpha0": -4.4, "alpha1": 0.25, "sigma_ttft": 0.35, "mu_log_tbt": np.log(0.013), "sigma_log_tbt": 0.1}
    )


def test_serve_requests_is_reproducible_and_consistent():
    arrival = np.cumsum(np.random.default_rng(0).exponential(0.25, 200))
    n_in, n_out = np.full(200, 300.0), np.full(200, 100.0)
    a = serve_requests(arrival, n_in, n_out, surrogate(), np.random.default_rng(42))
    b = serve_requests(arrival, n_in, n_out, surrogate(), np.random.default_rng(42))
    assert np.array_equal(a.end_s, b.end_s)
    assert np.all(a.start_s >= a.arrival_s) and np.all(a.first_token_s > a.start_s)
    tbt = (a.end_s - a.first_token_s) / n_out
    assert np.exp(np.mean(np.log(tbt))) == pytest.approx(0.013, rel=0.05)


def test_measured_running_count_is_rebuilt_from_its_own_request_log(run_dir):
    path = run_dir("validate_qwen3-8b_a100")
    e = np.genfromtxt(path / "engine.csv", delimiter=",", names=True)
    r = {k: np.asarray(v, dtype=float) for k, v in json.loads((path / "requests.json").read_text()).items()}
    t = e["t_epoch_s"]
    tbt = tbt_samples_from_run(t, e["running"], e["prompt_tokens_total"], e["generation_tokens_total"],
                               r["request_timestamps"], r["ttfts"], r["output_lens"])
    model = LatencySurrogate().fit(r["input_lens"], r["ttfts"], tbt)
    n = int((t[-1] - t[0]) / 0.25)
    centres = t[0] + 0.25 * np.arange(n) + 0.125
    engine = e["running"][np.clip(np.searchsorted(t, centres) - 1, 0, t.size - 1)]
    sim = serve_requests(r["request_timestamps"] - t[0], r["input_lens"], r["output_lens"], model,
                            np.random.default_rng(0))
    active = active_grid(sim.start_s, sim.end_s, 0.0, n)
    assert np.corrcoef(active, engine)[0, 1] > 0.9
    assert active.mean() / engine.mean() == pytest.approx(1.0, abs=0.06)
