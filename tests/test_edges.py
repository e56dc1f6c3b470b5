"""A run's first and last minutes are as right as its middle: the hall is simulated past both ends (a warm-up of
arrivals before time 0, the classifier's context after the end) and trimmed, so peaks do not come from the edges.
Uses a shipped configuration (no measured data needed)."""
from __future__ import annotations

import numpy as np
import pytest

from dcsim.configs import load_config
from dcsim.metrics import ks_statistic
from dcsim.power.chain import generate_server
from dcsim.runner import run
from dcsim.scenario import Scenario
from dcsim.workload.arrivals import Poisson, Requests

CONFIG = "qwen3-8b_a100_tp1"


def stationary_hall(warm_up_s: float) -> Scenario:
    return Scenario.from_dict({
        "simulation": {"duration_s": 600.0, "seed": 3, "warm_up_s": warm_up_s},
        "facility": {"rows": 1, "racks_per_row": 2, "servers_per_rack": 4, "config": CONFIG},
        "workload": {"arrival": "poisson", "rate_per_s": 4.0},
        "outputs": {"levels": ["site"], "resolutions_s": [1.0], "plot": False, "requests": False}})


def test_the_first_and_last_minute_of_a_stationary_run_look_like_its_middle():
    site = run(stationary_hall(120.0), write=False, progress=False).trace("site", 1.0)
    middle = site[150:450]
    for edge in (site[:60], site[-60:]):
        assert ks_statistic(middle, edge) < 0.25
        assert edge.mean() == pytest.approx(middle.mean(), rel=0.015)
    assert 60 <= int(np.argmax(site)) < 540 or site.max() < 1.01 * middle.max()  # the peak is not an edge artefact


def test_without_a_warm_up_the_hall_starts_empty_and_says_so():
    site = run(stationary_hall(0.0), write=False, progress=False).trace("site", 1.0)
    assert site[:3].mean() < site[150:450].mean()  # queues fill from empty


def test_one_server_at_steady_load_draws_its_busy_power_from_the_first_step():
    cfg = load_config(CONFIG)
    first, later = [], []
    for seed in range(12):
        rng = np.random.default_rng(seed)
        process = Poisson(4.0, cfg.tokens)
        main, warm = process.sample(70.0, rng), process.sample(120.0, rng)
        reqs = Requests.concat([Requests(warm.arrival_s - 120.0, warm.n_in, warm.n_out), main])
        trace = generate_server(cfg, reqs, 60.0, np.random.default_rng(100 + seed))
        first.append(trace.power_w[:8].mean())
        later.append(trace.power_w[40:].mean())
    assert np.mean(first) == pytest.approx(np.mean(later), rel=0.1)
