"""`run(scenario)`: a scenario in, a complete output folder out (or none at all)."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from test_engine import tiny_config  # noqa: F401  (shared fixture)

import dcsim.plots
from dcsim.workload.tokens import TokenQuantiles
from dcsim.runner import run
from dcsim.scenario import Scenario
from dcsim.scenario.build import build_inputs, component_configs


def scenario(**sections):
    d = {"simulation": {"duration_s": 120.0, "seed": 3},
         "facility": {"rows": 2, "racks_per_row": 2, "servers_per_rack": 2, "config": "tiny"},
         "site": {"p_base_w": 500.0, "pue": 1.2},
         "workload": {"arrival": "poisson", "rate_per_s": 2.0},
         "outputs": {"levels": ["site", "row", "rack"], "resolutions_s": [0.25, 1.0, 60.0]}}
    for key, value in sections.items():
        d[key] = {**d.get(key, {}), **value}
    return Scenario.from_dict(d, check_configs=False)


def go(sc, tmp_path, cfg, name="out", overwrite=False):
    return run(sc, out_dir=tmp_path / name, progress=False, configs={"tiny": cfg}, overwrite=overwrite)


def test_a_run_writes_every_output_and_they_agree(tiny_config, tmp_path):
    res = go(scenario(), tmp_path, tiny_config)
    out = tmp_path / "out"
    names = {p.name for p in out.iterdir()}
    assert names == {"site.parquet", "rows.parquet", "racks.parquet", "events.parquet", "requests.parquet",
                     "summary.json", "power.png", ".dcsim-output"}
    site = pl.read_parquet(out / "site.parquet")
    assert site.columns == ["t_s", "node", "resolution_s", "power_w"]
    assert sorted(site["resolution_s"].unique().to_list()) == [0.25, 1.0, 60.0]
    assert site.filter(pl.col("resolution_s") == 0.25).height == 480
    assert site.filter(pl.col("resolution_s") == 60.0).height == 2
    rows = pl.read_parquet(out / "rows.parquet").filter(pl.col("resolution_s") == 1.0)
    row_sum = rows.group_by("t_s").agg(pl.col("power_w").sum()).sort("t_s")["power_w"].to_numpy()
    np.testing.assert_allclose(res.trace("site", 1.0), 1.2 * row_sum, rtol=1e-12)
    racks = pl.read_parquet(out / "racks.parquet")
    assert set(racks["node"].unique()) == {"row0/rack0", "row0/rack1", "row1/rack0", "row1/rack1"}
    req = pl.read_parquet(out / "requests.parquet")
    assert req.columns == ["arrival_s", "start_s", "first_token_s", "end_s", "server", "lost"]
    assert req.height == res.summary["requests"]["total"] > 0
    events = pl.read_parquet(out / "events.parquet")
    assert events.columns == ["t_s", "node", "event", "detail"] and events.height == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["levels"]) == {"site", "row", "rack"}
    s = summary["levels"]["site"]["site"]
    assert s["peak_w"] >= s["average_w"] > 0 and s["energy_kwh"] > 0
    for key in ("peak_to_average", "max_ramp_w_per_15min", "load_factor", "cv"):
        assert key in s
    assert summary["latency_s"]["ttft"]["p99"] >= summary["latency_s"]["ttft"]["p50"] > 0
    assert summary["requests"]["lost"] == 0 and summary["wall_time_s"] > 0
    assert summary["scenario_config"]["facility"]["rows"] == 2
    assert not list(tmp_path.glob("*.tmp-*"))


def test_a_failed_run_leaves_no_partial_folder_and_keeps_the_old_one(tiny_config, tmp_path, monkeypatch):
    sc = scenario()
    go(sc, tmp_path, tiny_config)
    before = (tmp_path / "out" / "summary.json").read_text()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(dcsim.plots, "plot_site_rows", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        go(scenario(simulation={"seed": 4}), tmp_path, tiny_config, overwrite=True)
    assert (tmp_path / "out" / "summary.json").read_text() == before
    with pytest.raises(RuntimeError, match="disk full"):
        go(sc, tmp_path, tiny_config, name="fresh")
    assert not (tmp_path / "fresh").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_servers_and_csv_are_written_when_asked(tiny_config, tmp_path):
    sc = scenario(outputs={"levels": ["site", "server"], "resolutions_s": [1.0], "formats": ["csv"], "plot": False,
                           "requests": False})
    res = go(sc, tmp_path, tiny_config)
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert names == {"site.csv", "servers.csv", "events.csv", "summary.json", ".dcsim-output"}
    servers = pl.read_csv(tmp_path / "out" / "servers.csv")
    assert servers["node"].n_unique() == 8 and servers.height == 8 * 120
    assert len(res.summary["levels"]["server"]) == 8


def test_the_same_scenario_gives_the_same_outputs(tiny_config, tmp_path):
    a = go(scenario(), tmp_path, tiny_config, "a")
    b = go(scenario(), tmp_path, tiny_config, "b")
    assert a.traces["rack"].equals(b.traces["rack"]) and a.requests.equals(b.requests)
    c = go(scenario(simulation={"seed": 99}), tmp_path, tiny_config, "c")
    assert not a.traces["site"].equals(c.traces["site"])


def test_streams_follow_the_workload_section(tiny_config):
    configs = {"tiny": tiny_config}
    _, streams, policy = build_inputs(scenario(), configs)
    assert len(streams) == 8 and policy is None
    assert isinstance(streams[0].process.tokens, TokenQuantiles)  # tokens = "config"
    _, streams, _ = build_inputs(scenario(workload={"stream": "shared_intensity"}), configs)
    (hall,) = streams
    assert hall.servers.size == 8 and hall.process.rate_scale == pytest.approx(8.0)
    _, streams, _ = build_inputs(scenario(workload={"stream": "pooled", "pool": "row",
                                                     "routing": "join_shortest_queue"}), configs)
    assert [s.servers.size for s in streams] == [4, 4] and streams[0].router is not streams[1].router


def test_every_component_describes_itself(tiny_config):
    sc = scenario(workload={"stream": "pooled", "pool": "row", "routing": "round_robin"},
                  site={"limits_w": {"row": 2800.0}}, control={"policy": "breaker", "trip_time_s": 3.0})
    c = component_configs(*build_inputs(sc, {"tiny": tiny_config})[1:])
    (pools,) = c["streams"]  # both rows: the same process, tokens and router
    assert pools["streams"] == ["row0", "row1"] and pools["router"]["class"] == "dcsim.workload.routing:RoundRobin"
    assert pools["arrivals"]["rate_per_s"] == 2.0 and pools["tokens"] == tiny_config.tokens.config()
    assert c["policy"]["trip_time_s"] == 3.0
    json.dumps(c)


def test_a_breaker_scenario_writes_its_events(tiny_config, tmp_path):
    sc = scenario(site={"limits_w": {"row": 2800.0}},
                  control={"policy": "breaker", "trip_time_s": 3.0, "restart_s": 20.0})
    res = go(sc, tmp_path, tiny_config)
    events = pl.read_parquet(tmp_path / "out" / "events.parquet")
    assert "trip" in events["event"].to_list()
    assert res.summary["events"]["trip"] >= 1 and res.summary["requests"]["lost"] > 0
    assert res.summary["policy"]["config"]["trip_time_s"] == 3.0
    assert res.summary["engine_path"] == "live"


def test_dcsim_run_can_be_called_again_in_the_same_process(tiny_config, tmp_path):
    import dcsim

    sc = scenario()
    first = dcsim.run(sc, out_dir=tmp_path / "a", progress=False, configs={"tiny": tiny_config})
    second = dcsim.run(sc, out_dir=tmp_path / "b", progress=False, configs={"tiny": tiny_config})
    assert callable(dcsim.run)
    np.testing.assert_array_equal(first.trace("site", 1.0), second.trace("site", 1.0))
