"""Routers for pooled streams: round-robin, random, join-shortest-queue, least-power; offline skipped."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

from dcsim.errors import DcsimInputError
from dcsim.plugins import load_router
from dcsim.workload.routing import (JoinShortestQueue, LeastPower, NoServerOnline, RandomRouter, RoundRobin, Router,
                                    ServerView)


def view(active=(0, 0, 0, 0), queued=(0, 0, 0, 0), power_w=(100.0, 100.0, 100.0, 100.0),
         online=(True, True, True, True)) -> ServerView:
    return ServerView(np.array(active), np.array(queued), np.array(power_w, dtype=float), np.array(online))


def picks(router: Router, servers: ServerView, n: int, seed: int = 0) -> list[int]:
    g = np.random.default_rng(seed)
    return [router.choose(float(i), 100, 10, servers, g) for i in range(n)]


def test_round_robin_visits_servers_in_order():
    assert picks(RoundRobin(), view(), 6) == [0, 1, 2, 3, 0, 1]


def test_round_robin_passes_over_offline_servers_and_reset_restarts_it():
    rr = RoundRobin()
    assert picks(rr, view(online=(True, False, True, False)), 4) == [0, 2, 0, 2]
    rr.reset()
    assert picks(rr, view(online=(False, True, True, True)), 4) == [1, 2, 3, 1]


def test_join_shortest_queue_picks_the_least_loaded_server():
    servers = view(active=(5, 2, 1, 3), queued=(0, 0, 4, 0))  # in hand: 5, 2, 5, 3
    assert set(picks(JoinShortestQueue(), servers, 20)) == {1}


def test_join_shortest_queue_breaks_ties_at_random():
    servers = view(active=(1, 0, 3, 0))
    chosen = picks(JoinShortestQueue(), servers, 200)
    assert set(chosen) == {1, 3} and 60 < chosen.count(1) < 140


def test_join_shortest_queue_skips_an_offline_idle_server():
    servers = view(active=(4, 0, 2, 3), online=(True, False, True, True))
    assert set(picks(JoinShortestQueue(), servers, 10)) == {2}


def test_least_power_picks_the_coolest_online_server_and_counts_no_reading_as_idle():
    assert set(picks(LeastPower(), view(power_w=(300, 120, 90, 200), online=(True, True, False, True)), 10)) == {1}
    assert set(picks(LeastPower(), view(power_w=(300, np.nan, 90, 200)), 10)) == {1}


def test_random_router_spreads_over_online_servers_only():
    chosen = np.array(picks(RandomRouter(), view(online=(True, True, False, True)), 3000))
    counts = np.bincount(chosen, minlength=4)
    assert counts[2] == 0 and np.all(np.abs(counts[[0, 1, 3]] - 1000) < 4 * np.sqrt(1000))


@pytest.mark.parametrize("router", [RoundRobin(), RandomRouter(), JoinShortestQueue(), LeastPower()])
def test_every_router_refuses_when_all_servers_are_offline(router):
    with pytest.raises(NoServerOnline):
        router.choose(0.0, 1, 1, view(online=(False,) * 4), np.random.default_rng())


def test_routers_are_reproducible_from_the_seed():
    servers = view(active=(0, 0, 1, 0))
    assert picks(JoinShortestQueue(), servers, 50, seed=3) == picks(JoinShortestQueue(), servers, 50, seed=3)
    assert picks(RandomRouter(), servers, 50, seed=3) != picks(RandomRouter(), servers, 50, seed=4)


def test_a_user_router_plugs_in_and_a_wrong_base_is_refused(tmp_path, monkeypatch):
    (tmp_path / "my_router.py").write_text(textwrap.dedent('''
        from dcsim.workload.routing import Router

        class AlwaysLast(Router):
            def choose(self, t_s, n_in, n_out, servers, rng):
                return int(servers.online_index()[-1])

        class NotARouter:
            pass
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert picks(load_router("my_router:AlwaysLast")(), view(online=(True, True, True, False)), 3) == [2, 2, 2]
    with pytest.raises(DcsimInputError, match="workload.routing: .*not a subclass of Router"):
        load_router("my_router:NotARouter")
    with pytest.raises(DcsimInputError, match="not a subclass of Router"):
        load_router("dcsim.workload.arrivals:Poisson")
