"""Breakers and power caps: the policies on their own, then in closed loop with the engine."""
from __future__ import annotations

import numpy as np
import pytest
from test_engine import hall, tiny_config  # noqa: F401  (shared fixture)

from dcsim.errors import DcsimInputError
from dcsim.facility.control import Action, BreakerPolicy, CapPolicy, PowerCap, per_server_cap_w
from dcsim.facility.engine import independent_streams, simulate_hall as simulate
from dcsim.facility.tree import build_tree, server_indices_under
from dcsim.plugins import load_policy, make_policy
from dcsim.workload.arrivals import Poisson
from dcsim.workload.profiles import RateProfile
from dcsim.workload.tokens import FixedTokens

TOKENS = FixedTokens(200, 300)  # ≈ 9 s in service: A_t ≈ 9 × rate


def small_tree(limit_w=1000.0, p_base_w=100.0, pue=1.5):
    tree = build_tree(1, 2, 2, limits_w={"row": limit_w, "site": 2 * limit_w})
    tree.graph["pue"] = pue
    for n, a in tree.nodes(data=True):
        if a["level"] == "server":
            a["p_base_w"] = p_base_w
    return tree


def kinds(actions):
    return [(a.kind, a.node) for a in actions]


# ---------------------------------------------------------------------------------------- the policies

def test_a_breaker_trips_only_after_trip_time_over_the_limit_and_recloses_after_restart():
    tree = small_tree()
    b = BreakerPolicy(trip_time_s=3.0, restart_s=10.0)
    assert b.step(1.0, {"row0": 1200.0}, tree) == []        # over during [0, 1)
    assert b.step(2.0, {"row0": 900.0}, tree) == []         # back under: the clock resets
    assert b.step(3.0, {"row0": 1200.0}, tree) == []        # over since 2 s
    assert b.step(4.0, {"row0": 1200.0}, tree) == []
    assert kinds(b.step(5.0, {"row0": 1200.0}, tree)) == [("trip", "row0")]  # over for 3 s
    assert b.step(6.0, {"row0": 5000.0}, tree) == []        # a tripped row is not watched
    assert b.state() == {"tripped": ["row0"], "n_trips": 1}
    assert kinds(b.step(15.0, {"row0": 0.0}, tree)) == [("restore", "row0")]
    assert b.state()["tripped"] == []


def test_a_breaker_never_trips_a_node_without_a_limit_or_below_it():
    tree = build_tree(1, 1, 2, limits_w={"row": 1000.0})
    b = BreakerPolicy(trip_time_s=0.0, restart_s=1.0)
    assert b.step(1.0, {"row0": 999.0, "site": 1e9, "row0/rack0": 1e9}, tree) == []


def test_a_power_cap_caps_above_the_limit_and_releases_after_holding_below_it():
    tree = small_tree(limit_w=1000.0, p_base_w=100.0)
    cap = PowerCap(cap_fraction=0.9, release_margin=0.1, release_hold_s=5.0)
    (act,) = cap.step(1.0, {"row0": 1100.0}, tree)
    assert act.kind == "cap" and act.cap_w == pytest.approx((900.0 - 4 * 100.0) / 4)
    assert cap.step(2.0, {"row0": 850.0}, tree) == []        # capped, not yet below 0.8 × limit
    assert cap.step(3.0, {"row0": 700.0}, tree) == []        # below since 2 s
    assert cap.step(6.0, {"row0": 700.0}, tree) == []        # 4 s
    assert kinds(cap.step(7.0, {"row0": 700.0}, tree)) == [("uncap", "row0")]  # 5 s


def test_the_site_cap_budget_is_its_limit_over_pue_less_p_base():
    tree = small_tree(limit_w=1000.0, p_base_w=100.0, pue=1.5)
    assert per_server_cap_w(tree, "site", 1.0) == pytest.approx((2000.0 / 1.5 - 400.0) / 4)
    assert per_server_cap_w(tree, "row0", 0.1) == 0.0  # a budget below Σ P_base leaves the GPUs nothing


def test_policies_are_named_in_scenarios_and_bad_ones_are_refused(tmp_path):
    assert make_policy("none") is None
    assert isinstance(make_policy("breaker", trip_time_s=1.0, restart_s=2.0), BreakerPolicy)
    assert make_policy("cap", cap_fraction=0.8).cap_fraction == 0.8
    with pytest.raises(DcsimInputError, match="control.policy"):
        make_policy("fuse")
    with pytest.raises(DcsimInputError, match="cap_fraction"):
        PowerCap(cap_fraction=1.5)
    with pytest.raises(DcsimInputError, match="Action.kind"):
        Action("explode", "row0")
    plugin = tmp_path / "mine.py"
    plugin.write_text("from dcsim.facility.control import CapPolicy\n"
                      "class Quiet(CapPolicy):\n    def step(self, t_s, node_power_w, tree):\n        return []\n")
    assert isinstance(load_policy(f"{plugin}:Quiet"), CapPolicy)
    with pytest.raises(DcsimInputError, match="control.params"):
        load_policy(f"{plugin}:Quiet", {"unknown": 1})


# ------------------------------------------------------------------------------------- in closed loop

def surge():
    """Quiet (0.3 req/s per server), a surge (4 req/s) from 60 s to 120 s, quiet again."""
    return RateProfile.table([0.0, 60.0, 120.0], [0.3, 4.0, 0.3], TOKENS)


def test_a_breaker_trips_in_a_hall_built_to_trip_it_and_not_otherwise(tiny_config):
    # row of 6: ≈ 6 × (500 + 80) W quiet, ≈ 6 × (500 + 400) W in the surge
    streams = independent_streams(surge(), 6)
    tight = hall(tiny_config, rows=1, racks=2, per_rack=3, limits_w={"row": 4800.0})
    res = simulate(tight, streams, 240.0, seed=0, policy=BreakerPolicy(trip_time_s=3.0, restart_s=20.0))
    events = [(e["event"], e["node"]) for e in res.events]
    assert ("trip", "row0") in events and ("restore", "row0") in events
    first_trip = min(e["t_s"] for e in res.events if e["event"] == "trip")
    assert 60.0 < first_trip < 120.0
    restore = min(e["t_s"] for e in res.events if e["event"] == "restore")
    dark = res.traces["row0"][int(first_trip / 0.25):int(restore / 0.25)]
    assert np.all(dark == 0.0)  # every server off: no GPU power, no P_base
    assert res.requests["lost"].sum() > 0
    lost = res.requests["lost"]
    assert np.all(np.isnan(res.requests["end_s"][lost]))

    loose = hall(tiny_config, rows=1, racks=2, per_rack=3, limits_w={"row": 7000.0})
    calm = simulate(loose, streams, 240.0, seed=0, policy=BreakerPolicy(trip_time_s=3.0, restart_s=20.0))
    assert calm.events == [] and not calm.requests["lost"].any()


def test_capping_lowers_the_row_peak_and_raises_latency(tiny_config):
    fac = hall(tiny_config, rows=1, racks=2, per_rack=3, limits_w={"row": 5000.0})
    streams = independent_streams(Poisson(4.0, TOKENS), 6)
    free = simulate(fac, streams, 180.0, seed=1, path="live")
    capped = simulate(fac, streams, 180.0, seed=1, policy=PowerCap(cap_fraction=0.9))
    assert [e["event"] for e in capped.events][:1] == ["cap_on"]
    assert free.traces["row0"].max() > capped.traces["row0"].max()
    on = int(capped.events[0]["t_s"] / 0.25)
    off = next((int(e["t_s"] / 0.25) for e in capped.events if e["event"] == "cap_off"), None)
    assert capped.traces["row0"][on:off].max() <= 0.9 * 5000.0 + 1e-6  # held at the cap while capped
    assert np.mean(free.traces["row0"][on:] > 5000.0) > 0.2  # uncapped, the row is often over its limit

    def e2e(res):
        r = res.requests
        return np.nanmean(r["end_s"] - r["arrival_s"])

    assert e2e(capped) > 1.2 * e2e(free)
    assert capped.max_active.max() > free.max_active.max()  # slower decode → more requests in flight


def test_a_user_policy_plugs_in_and_trips_one_rack(tiny_config, tmp_path):
    plugin = tmp_path / "trip_once.py"
    plugin.write_text(
        "from dcsim.facility.control import Action, CapPolicy\n"
        "class TripOnce(CapPolicy):\n"
        "    def __init__(self, node, at_s, for_s):\n"
        "        self.node, self.at_s, self.for_s = node, at_s, for_s\n"
        "    def reset(self):\n"
        "        self.done = set()\n"
        "    def step(self, t_s, node_power_w, tree):\n"
        "        for kind, when in (('trip', self.at_s), ('restore', self.at_s + self.for_s)):\n"
        "            if t_s >= when and kind not in self.done:\n"
        "                self.done.add(kind)\n"
        "                return [Action(kind, self.node, detail='scheduled')]\n"
        "        return []\n")
    policy = make_policy(f"{plugin}:TripOnce", params={"node": "row0/rack0", "at_s": 10.0, "for_s": 5.0})
    fac = hall(tiny_config, rows=1, racks=2, per_rack=3, limits_w={"row": 1e6})
    res = simulate(fac, independent_streams(Poisson(1.0, TOKENS), 6), 30.0, seed=0, policy=policy,
                   keep_servers=True)
    assert [(e["t_s"], e["event"]) for e in res.events] == [(10.0, "trip"), (15.0, "restore")]
    off = res.traces["row0/rack0"][40:60]
    assert np.all(off == 0.0) and np.all(res.traces["row0/rack1"][40:60] > 0)
    assert res.traces["row0/rack0"][60:].min() > 0
    idx = server_indices_under(fac.tree, "row0/rack0")
    lost = res.requests["lost"]
    assert lost.any() and np.all(np.isin(res.requests["server"][lost], idx))


def test_a_policy_that_raises_in_step_is_one_input_error_not_a_simpy_type_error(tiny_config):
    class Flaky(CapPolicy):
        def step(self, t_s, node_power_w, tree):
            raise RuntimeError("sensor offline")

    fac = hall(tiny_config, rows=1, racks=1, per_rack=2, limits_w={"row": 1e9})
    with pytest.raises(DcsimInputError, match=r"control.policy step\(\) \(Flaky\).*RuntimeError: sensor offline"):
        simulate(fac, independent_streams(Poisson(2.0, FixedTokens(100, 50)), 2), 10.0, policy=Flaky())


def test_a_policy_that_raises_an_input_error_inside_simpy_keeps_its_message(tiny_config):
    class Strict(CapPolicy):
        def step(self, t_s, node_power_w, tree):
            raise DcsimInputError("control.params.threshold", -1, "a threshold > 0")

    fac = hall(tiny_config, rows=1, racks=1, per_rack=2, limits_w={"row": 1e9})
    with pytest.raises(DcsimInputError, match=r"^control.params.threshold: got -1; allowed: a threshold > 0$"):
        simulate(fac, independent_streams(Poisson(2.0, FixedTokens(100, 50)), 2), 10.0, policy=Strict())
