"""Physical sanity of every shipped configuration's default power model, on loads it was never fitted at:
power follows the work (one running request already draws most of the busy power; more offered load never means
less power). The measured values at one running request are the campaign's (engine running == 1; issue #10)."""
from __future__ import annotations

import numpy as np
import pytest

from dcsim.configs import load_config, shipped_names
from dcsim.power.chain import generate_server
from dcsim.workload.arrivals import Poisson, Requests

MEASURED_AT_ONE_RUNNING_W = {"qwen3-8b_a100_tp1": 288.0, "qwen3-8b_h100_tp1": 300.2,
                             "llama-3.1-70b_h100_tp4": 1480.4, "gemma-4-26b-a4b_a100_tp2": 364.3}


def trace(config, rate_per_s: float, seed: int, duration_s: float = 600.0):
    rng = np.random.default_rng(seed)
    proc = Poisson(rate_per_s, config.tokens)
    main, warm = proc.sample(duration_s + 10.0, rng), proc.sample(120.0, rng)
    reqs = Requests.concat([Requests(warm.arrival_s - 120.0, warm.n_in, warm.n_out), main])
    return generate_server(config, reqs, duration_s, np.random.default_rng(1000 + seed))


@pytest.mark.parametrize("name", sorted(MEASURED_AT_ONE_RUNNING_W))
def test_one_running_request_draws_what_the_gpu_measured(name):
    config = load_config(name)
    assert config.power_model == "structured" and name in shipped_names()
    t = trace(config, 0.3, seed=1)
    one = (t.active >= 0.5) & (t.active < 1.5)
    assert one.sum() >= 20
    assert t.power_w[one].mean() == pytest.approx(MEASURED_AT_ONE_RUNNING_W[name], rel=0.15)


@pytest.mark.parametrize("name", sorted(MEASURED_AT_ONE_RUNNING_W))
def test_mean_power_never_falls_as_offered_load_rises(name):
    config = load_config(name)
    means = [np.mean([trace(config, r, seed=s, duration_s=300.0).power_w.mean() for s in range(2)])
             for r in (0.05, 0.3, 1.0, 3.0)]
    assert all(b >= a - 0.005 * a for a, b in zip(means, means[1:])), means
    assert means[0] > float(config.structured.idle_w_)  # any work at all lifts it off idle
