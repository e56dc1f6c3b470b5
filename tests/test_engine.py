"""The facility engine: streams → FIFO-64 queues → A_t → power → node traces.

The shared fixture ``tiny_config`` builds a small but real calibrated configuration (GMM states fitted on
synthetic power, a BiGRU trained for 2 epochs, a latency surrogate, token quantiles); test_control.py and
test_run.py import it from here.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from dcsim.errors import DcsimInputError
from dcsim.facility.engine import (Facility, Stream, choose_path, independent_streams, pooled_streams, shared_stream,
                                   simulate_hall as simulate)
from dcsim.facility.tree import build_tree, server_indices_under
from dcsim.power.classifier import StateClassifier
from dcsim.configs import CalibratedConfig
from dcsim.workload.tokens import TokenQuantiles
from dcsim.power.states import StateDictionary
from dcsim.serving.features import active_grid, feature_matrix
from dcsim.serving.latency import LatencySurrogate
from dcsim.power.chain import power_from_active, power_rows
from dcsim.workload.arrivals import ArrivalProcess, Poisson, Requests
from dcsim.workload.routing import JoinShortestQueue, LeastPower, RandomRouter, RoundRobin, Router
from dcsim.workload.tokens import FixedTokens, LognormalTokens

torch.set_num_threads(1)

IDLE_W, MID_W, BUSY_W = 80.0, 250.0, 400.0


@functools.lru_cache(maxsize=None)
def make_tiny_config(seed: int = 0) -> CalibratedConfig:
    """Three power states (80 / 250 / 400 W) that follow A_t (< 8, 8–23, ≥ 24 requests), learnt by a small BiGRU."""
    rng = np.random.default_rng(seed)
    n_steps = 2000
    level = rng.integers(0, 49, n_steps // 50).repeat(50).astype(float)
    active = np.clip(level + rng.normal(0, 1.0, n_steps).round(), 0, 64)
    means = np.array([IDLE_W, MID_W, BUSY_W])
    power = means[np.digitize(active, [8, 24])] + rng.normal(0, 10, n_steps)
    states = StateDictionary(k=3, seed=seed).fit(power)
    clf = StateClassifier(n_states=3, hidden=8, window=32, context=8, epochs=2, lr=3e-2, batch_size=16, seed=seed)
    clf.fit([(feature_matrix(active), states.label(power))])
    n_in = rng.integers(10, 2000, 200)
    ttft = 0.05 * (n_in + 1) ** 0.3 * np.exp(rng.normal(0, 0.1, 200))
    surrogate = LatencySurrogate().fit(n_in, ttft, np.exp(rng.normal(np.log(0.03), 0.1, 300)))
    tokens = TokenQuantiles.from_requests(n_in, rng.integers(10, 400, 200))
    return CalibratedConfig("tiny", states, clf, surrogate, tokens, {"n_gpus": 1, "slots": 64})


@pytest.fixture
def tiny_config() -> CalibratedConfig:
    return make_tiny_config()


TOKENS = LognormalTokens(300, 0.5, 150, 0.5)


def hall(config, rows=2, racks=2, per_rack=3, limits_w=None, p_base_w=500.0, pue=1.2, names=("tiny",)):
    n = rows * racks * per_rack
    tree = build_tree(rows, racks, per_rack, [names[i % len(names)] for i in range(n)], limits_w=limits_w)
    return Facility(tree, {name: config for name in names}, p_base_w, pue)


class MarkovModulated(ArrivalProcess):
    """Poisson arrivals whose rate switches between ``high`` and ``low`` at random (exponential holding times):
    a bursty process with a random intensity, so sharing one draw of it correlates the servers."""

    def __init__(self, high_per_s: float, low_per_s: float, hold_s: float, tokens) -> None:
        self.high, self.low, self.hold_s, self.tokens = high_per_s, low_per_s, hold_s, tokens

    def sample(self, duration_s: float, rng: np.random.Generator) -> Requests:
        edges = [0.0]
        while edges[-1] < duration_s:
            edges.append(edges[-1] + rng.exponential(self.hold_s))
        times = []
        for k, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
            b = min(b, duration_s)
            rate = self.high if k % 2 == 0 else self.low
            times.append(rng.uniform(a, b, rng.poisson(rate * (b - a))))
        t = np.sort(np.concatenate(times))
        n_in, n_out = self.tokens.sample(t.size, rng)
        return Requests(t, n_in, n_out)


def mean_pairwise_corr(rows: np.ndarray) -> float:
    c = np.corrcoef(rows)
    return float(c[np.triu_indices_from(c, k=1)].mean())


# ------------------------------------------------------------------------------------------------ sums

@pytest.mark.parametrize("path", ["fast", "live"])
def test_site_is_pue_times_the_sum_of_server_it_power_at_every_step(tiny_config, path):
    fac = hall(tiny_config, p_base_w=np.linspace(400, 600, 12))
    res = simulate(fac, independent_streams(Poisson(2.0, TOKENS), 12), 60.0, seed=1, keep_servers=True, path=path)
    names = fac.server_names
    it = np.stack([res.traces[n] for n in names])
    np.testing.assert_allclose(res.traces["site"], 1.2 * it.sum(axis=0), rtol=1e-15)
    for node in ("row0", "row1/rack0"):
        idx = server_indices_under(fac.tree, node)
        np.testing.assert_array_equal(res.traces[node], it[idx].sum(axis=0))  # exact sums
    assert np.all(it >= fac.p_base_w[:, None] + IDLE_W - 60)  # every server draws P_base plus GPU power
    assert res.traces["site"].shape == (240,)


def test_power_rows_equals_power_from_active_server_by_server(tiny_config):
    active = np.random.default_rng(0).integers(0, 64, (3, 200)).astype(float)
    seeds = [np.random.default_rng(s) for s in (5, 6, 7)]
    chunk = power_rows(tiny_config, active, seeds)
    for j, s in enumerate((5, 6, 7)):
        np.testing.assert_array_equal(chunk[j], power_from_active(tiny_config, active[j], np.random.default_rng(s)))


# ------------------------------------------------------------------------------------------- queueing

@pytest.mark.parametrize("path", ["fast", "live"])
def test_active_requests_never_exceed_the_64_slots(tiny_config, path):
    fac = hall(tiny_config, rows=1, racks=1, per_rack=3)
    res = simulate(fac, independent_streams(Poisson(12.0, FixedTokens(200, 400)), 3), 60.0, seed=0,
                   keep_servers=True, path=path)
    assert res.max_active.max() <= 64 + 1e-9
    assert res.max_active.max() > 63  # overloaded: the slots do fill
    assert res.server_active.max() <= 64 + 1e-9
    waited = res.requests["start_s"] - res.requests["arrival_s"]
    assert np.nanmax(waited) > 1.0  # so requests queue instead


def test_the_event_paths_serve_exactly_like_the_kernel(tiny_config):
    fac = hall(tiny_config)
    streams = independent_streams(Poisson(3.0, TOKENS), 12)
    fast = simulate(fac, streams, 90.0, seed=4)
    for path in ("event", "live"):
        other = simulate(fac, streams, 90.0, seed=4, path=path)
        for col, values in fast.requests.items():
            np.testing.assert_array_equal(values, other.requests[col], err_msg=f"{path}: {col}")
    np.testing.assert_array_equal(fast.traces["site"], simulate(fac, streams, 90.0, seed=4, path="event").traces["site"])


def test_a_request_unfinished_at_the_horizon_has_no_end_time(tiny_config):
    fac = hall(tiny_config, rows=1, racks=1, per_rack=2)
    res = simulate(fac, independent_streams(Poisson(3.0, FixedTokens(100, 300)), 2), 30.0, seed=2)
    req = res.requests
    assert np.all(req["end_s"][np.isfinite(req["end_s"])] <= 30.0)
    assert np.isnan(req["end_s"]).sum() > 0 and not req["lost"].any()


def test_join_shortest_queue_runs_on_the_event_path_and_waits_less_than_random(tiny_config):
    fac = hall(tiny_config, rows=1, racks=2, per_rack=3)
    busy = Poisson(3 * 6.3, FixedTokens(200, 300))  # ~6.3 req/s per server: ~90 % of its 64 slots
    waits = {}
    for router in (RandomRouter(), JoinShortestQueue()):
        res = simulate(fac, pooled_streams(fac.tree, "rack", busy, router), 120.0, seed=3)
        assert res.path == ("event" if isinstance(router, JoinShortestQueue) else "fast")
        waits[type(router).__name__] = np.nanmean(res.requests["start_s"] - res.requests["arrival_s"])
    assert 0 < waits["JoinShortestQueue"] < 0.5 * waits["RandomRouter"]


def test_round_robin_pools_take_turns(tiny_config):
    fac = hall(tiny_config, rows=1, racks=1, per_rack=4)
    res = simulate(fac, pooled_streams(fac.tree, "rack", Poisson(8.0, TOKENS), RoundRobin()), 30.0, seed=0)
    server = res.requests["server"]
    counts = np.bincount(server, minlength=4)
    assert counts.max() - counts.min() <= 1


def test_the_path_follows_what_reacts_to_the_servers(tiny_config):
    proc = Poisson(1.0, TOKENS)
    assert choose_path([Stream(proc, [0, 1], RoundRobin())], None) == "fast"
    assert choose_path([Stream(proc, [0, 1], JoinShortestQueue())], None) == "event"
    assert choose_path([Stream(proc, [0, 1], LeastPower())], None) == "live"
    fac = hall(tiny_config, rows=1, racks=1, per_rack=2)
    res = simulate(fac, pooled_streams(fac.tree, "rack", Poisson(4.0, TOKENS), LeastPower()), 20.0, seed=0)
    assert res.path == "live" and res.requests["server"].min() >= 0


# -------------------------------------------------------------------------------------- arrival structure

def test_shared_intensity_correlates_servers_more_than_independent_streams(tiny_config):
    n, duration = 6, 600.0
    fac = hall(tiny_config, rows=1, racks=2, per_rack=3)
    per_server = MarkovModulated(6.0, 0.5, 30.0, TOKENS)
    hall_wide = MarkovModulated(6.0 * n, 0.5 * n, 30.0, TOKENS)
    results = {"independent": simulate(fac, independent_streams(per_server, n), duration, seed=5, keep_servers=True),
               "shared": simulate(fac, shared_stream(hall_wide, n), duration, seed=5, keep_servers=True)}
    corr_counts, corr_power, mean_rate = {}, {}, {}
    for kind, res in results.items():
        req = res.requests
        bins = np.arange(0, duration + 10, 10.0)
        counts = np.stack([np.histogram(req["arrival_s"][req["server"] == i], bins)[0] for i in range(n)])
        corr_counts[kind] = mean_pairwise_corr(counts)
        power = np.stack([res.traces[s].reshape(-1, 40).mean(axis=1) for s in fac.server_names])
        corr_power[kind] = mean_pairwise_corr(power)
        mean_rate[kind] = len(req["arrival_s"]) / duration / n
    assert corr_counts["shared"] > 0.6 > 0.2 > corr_counts["independent"]
    assert corr_power["shared"] > corr_power["independent"] + 0.3
    assert mean_rate["shared"] == pytest.approx(mean_rate["independent"], rel=0.3)


# -------------------------------------------------------------------------------------- reproducibility

def test_same_seed_same_result_whatever_the_chunk_size(tiny_config):
    fac = hall(tiny_config, names=("a", "b"))  # two configuration groups, interleaved
    streams = independent_streams(Poisson(2.0, TOKENS), 12)
    runs = [simulate(fac, streams, 60.0, seed=9, chunk_servers=c, keep_servers=True) for c in (1, 4, 16)]
    for other in runs[1:]:
        for node, trace in runs[0].traces.items():
            np.testing.assert_array_equal(trace, other.traces[node])
        for col, values in runs[0].requests.items():
            np.testing.assert_array_equal(values, other.requests[col])
    again = simulate(fac, streams, 60.0, seed=9)
    np.testing.assert_array_equal(again.traces["site"], runs[0].traces["site"])
    assert not np.array_equal(simulate(fac, streams, 60.0, seed=10).traces["site"], runs[0].traces["site"])


def test_the_live_path_is_reproducible(tiny_config):
    fac = hall(tiny_config)
    streams = pooled_streams(fac.tree, "row", Poisson(12.0, TOKENS), LeastPower())
    a, b = (simulate(fac, streams, 30.0, seed=1) for _ in range(2))
    np.testing.assert_array_equal(a.traces["site"], b.traces["site"])
    np.testing.assert_array_equal(a.requests["server"], b.requests["server"])


def test_live_a_t_matches_the_grid_of_the_served_requests(tiny_config):
    fac = hall(tiny_config, rows=1, racks=1, per_rack=2)
    res = simulate(fac, independent_streams(Poisson(4.0, TOKENS), 2), 40.0, seed=3, keep_servers=True, path="live",
                   interval_s=1.75)
    req = res.requests
    ok = np.isfinite(req["start_s"])
    grid = active_grid(req["start_s"][ok], np.where(np.isfinite(req["end_s"][ok]), req["end_s"][ok], 40.0), 0.0, 160,
                       0.25, server=req["server"][ok], n_servers=2)
    np.testing.assert_allclose(res.server_active, grid, atol=1e-9)


# ----------------------------------------------------------------------------------------- bad input

def test_bad_inputs_are_refused_naming_the_field(tiny_config):
    tree = build_tree(1, 1, 2, "missing")
    with pytest.raises(DcsimInputError, match="facility.configs"):
        Facility(tree, {"tiny": tiny_config})
    fac = hall(tiny_config, rows=1, racks=1, per_rack=2)
    with pytest.raises(DcsimInputError, match="servers"):
        simulate(fac, [Stream(Poisson(1.0, TOKENS), [5])], 10.0)
    with pytest.raises(DcsimInputError, match="duration_s"):
        simulate(fac, independent_streams(Poisson(1.0, TOKENS), 2), -1.0)
    with pytest.raises(DcsimInputError, match="path"):
        simulate(fac, [Stream(Poisson(1.0, TOKENS), [0, 1], JoinShortestQueue())], 10.0, path="fast")
    with pytest.raises(DcsimInputError, match="site.p_base_w"):
        Facility(fac.tree, {"tiny": tiny_config}, p_base_w=[1.0, 2.0, 3.0])


class _QueueOnly(Router):
    """A user's router that declares it reads queue state only."""

    reads = "queues"

    def choose(self, t_s, n_in, n_out, servers, rng):
        idx = servers.online_index()
        load = (np.asarray(servers.active) + np.asarray(servers.queued))[idx]
        return int(idx[np.argmin(load)])


class _Undeclared(Router):
    def choose(self, t_s, n_in, n_out, servers, rng):
        return 0


def test_a_user_router_that_reads_only_queues_runs_on_the_event_path(tiny_config):
    fac = hall(tiny_config, rows=1, racks=1, per_rack=4)
    proc = Poisson(8.0, TOKENS)
    assert choose_path([Stream(proc, [0, 1], _QueueOnly())], None) == "event"
    assert choose_path([Stream(proc, [0, 1], _Undeclared())], None) == "live"  # may read anything
    res = simulate(fac, pooled_streams(fac.tree, "rack", proc, _QueueOnly()), 30.0, seed=0)
    assert res.path == "event"
    assert res.requests["server"].min() >= 0 and np.unique(res.requests["server"]).size == 4


def test_a_router_declaring_something_else_is_refused(tiny_config):
    class Odd(_QueueOnly):
        reads = "everything"

    with pytest.raises(DcsimInputError, match="reads.*nothing, queues, power"):
        Stream(Poisson(1.0, TOKENS), [0, 1], Odd())


class _Raises(Router):
    def __init__(self, reads="queues"):
        self.reads = reads

    def choose(self, t_s, n_in, n_out, servers, rng):
        raise ZeroDivisionError("oops")


class _OutOfRange(Router):
    reads = "queues"

    def choose(self, t_s, n_in, n_out, servers, rng):
        return len(servers) + 3


@pytest.mark.parametrize("reads", ["nothing", "queues", "power"])
def test_a_router_that_raises_is_one_input_error_on_every_path(tiny_config, reads):
    fac = hall(tiny_config, rows=1, racks=1, per_rack=2)
    with pytest.raises(DcsimInputError, match=r"workload.routing choose\(\) \(_Raises\).*ZeroDivisionError: oops"):
        simulate(fac, pooled_streams(fac.tree, "rack", Poisson(4.0, TOKENS), _Raises(reads)), 10.0, seed=0)


def test_a_router_choosing_a_server_out_of_range_is_named(tiny_config):
    fac = hall(tiny_config, rows=1, racks=1, per_rack=2)
    with pytest.raises(DcsimInputError, match=r"_OutOfRange.*got 5; allowed: an index 0..1"):
        simulate(fac, pooled_streams(fac.tree, "rack", Poisson(4.0, TOKENS), _OutOfRange()), 10.0, seed=0)


def test_an_arrival_process_that_raises_or_returns_junk_is_named(tiny_config):
    class Broken(ArrivalProcess):
        def sample(self, duration_s, rng):
            raise KeyError("rate")

    class Junk(ArrivalProcess):
        def sample(self, duration_s, rng):
            return [1, 2, 3]

    fac = hall(tiny_config, rows=1, racks=1, per_rack=2)
    with pytest.raises(DcsimInputError, match=r"workload.arrival sample\(\) \(Broken\).*KeyError"):
        simulate(fac, independent_streams(Broken(), 2), 10.0)
    with pytest.raises(DcsimInputError, match=r"\(Junk\).*got 'list'"):
        simulate(fac, independent_streams(Junk(), 2), 10.0)


@pytest.mark.parametrize("duration_s, rate", [(1e12, 1.0), (3600.0, 1e9)])
def test_a_run_that_cannot_fit_is_refused_with_its_estimate_before_allocating(tiny_config, duration_s, rate):
    fac = hall(tiny_config, rows=1, racks=1, per_rack=2)
    with pytest.raises(DcsimInputError, match=r"simulation: too large to simulate here, got 'about [\d,.e+]+ TiB"):
        simulate(fac, independent_streams(Poisson(rate, TOKENS), 2), duration_s)
