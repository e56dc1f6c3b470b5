"""Scenarios: TOML → validated models, --set overrides, one clear line per user error, engine helpers."""
from __future__ import annotations

import copy
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

import dcsim.scenario as sc
from dcsim.errors import DcsimInputError
from dcsim.scenario import Scenario, load_scenario, mix_assignment, parse_override
from dcsim.facility.control import BreakerPolicy, PowerCap
from dcsim.workload.arrivals import Poisson, TraceReplay
from dcsim.workload.profiles import RateProfile
from dcsim.workload.routing import JoinShortestQueue, RandomRouter
from dcsim.workload.tokens import EmpiricalTokens, FixedTokens, LognormalTokens

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
SHIPPED = ("default.toml", "paper_case_study.toml", "mixed_hall.toml", "row_breakers.toml")
KNOWN = {"qwen3-8b_a100_tp1", "qwen3-8b_h100_tp1", "llama-3.1-70b_h100_tp4", "gemma-4-26b-a4b_a100_tp2"}


@pytest.fixture(autouse=True)
def known_configs(monkeypatch):
    """Stand-in for the artifact check: the four calibrated names (or any artifact folder) exist."""
    def check(name: str) -> None:
        if name not in KNOWN and not (Path(name) / "meta.json").is_file():
            raise DcsimInputError("--config", name, f"a shipped configuration ({', '.join(sorted(KNOWN))})",
                                  problem="unknown configuration")
    monkeypatch.setattr(sc.schema, "_check_config", check)


def base() -> dict:
    return {"simulation": {"duration_s": 60.0, "seed": 3},
            "facility": {"rows": 2, "racks_per_row": 3, "servers_per_rack": 4, "config": "qwen3-8b_a100_tp1"},
            "workload": {"arrival": "poisson", "rate_per_s": 2.0}}


def with_(d: dict, **sections) -> dict:
    d = copy.deepcopy(d)
    for name, values in sections.items():
        d.setdefault(name, {}).update(values)
    return d


def refused(d: dict, *needles: str, base_dir: Path | None = None) -> str:
    with pytest.raises(DcsimInputError) as e:
        Scenario.from_dict(d, source="hall.toml", base_dir=base_dir)
    msg = str(e.value)
    assert "\n" not in msg
    for n in needles:
        assert n in msg, msg
    return msg


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


# ------------------------------------------------------------------------------------ shipped files

@pytest.mark.parametrize("name", SHIPPED + ("paper_case_study_replay.toml",))
def test_every_shipped_scenario_loads_and_round_trips(name):
    s = load_scenario(SCENARIOS / name)
    from dcsim.facility.tree import servers as server_names
    tree = s.build_tree()
    assert len(s.server_configs()) == s.n_servers == len(server_names(tree))
    assert [tree.nodes[n]["config"] for n in server_names(tree)] == s.server_configs()
    d = s.to_dict()
    json.dumps(d)
    assert Scenario.from_dict(d).to_dict() == d


def test_shipped_scenarios_pass_the_real_configuration_check(monkeypatch):
    monkeypatch.undo()
    configs = pytest.importorskip("dcsim.configs", reason="dcsim.configs not importable yet")
    try:
        shipped = set(configs.shipped_names())
    except Exception as e:  # no artifacts package yet
        pytest.skip(f"no shipped artifacts: {e}")
    needed = {c for n in SHIPPED for c in load_scenario(SCENARIOS / n, check_configs=False).server_configs()}
    if not needed <= shipped:
        pytest.skip(f"artifacts not calibrated yet: {sorted(needed - shipped)}")
    for n in SHIPPED:
        load_scenario(SCENARIOS / n)


def test_default_is_a_small_poisson_hall():
    s = load_scenario(SCENARIOS / "default.toml")
    assert s.server_configs() == ["qwen3-8b_a100_tp1"] * 4
    assert s.simulation.duration_s == 600 and s.workload.rate_per_s == 2.0
    assert s.outputs.levels == ["site", "row", "rack"] and s.outputs.resolutions_s == [0.25, 1.0, 60.0]
    assert isinstance(s.arrival_process(FixedTokens(10, 5)), Poisson)


def test_paper_case_study_gives_each_server_one_to_three_requests_per_second_at_the_peak():
    s = load_scenario(SCENARIOS / "paper_case_study.toml")
    assert (s.facility.rows, s.facility.racks_per_row, s.facility.servers_per_rack) == (10, 6, 4)
    assert (s.site.p_base_w, s.site.pue, s.simulation.duration_s) == (1000.0, 1.3, 86400.0)
    assert s.workload.stream == "shared_intensity" and s.outputs.resolutions_s == [1.0, 60.0, 900.0]
    hall = s.arrival_process(s.token_source(), n_servers=s.n_servers)
    hourly_per_server = hall.rate_per_s(np.arange(0, 86400, 60.0)).reshape(24, 60).mean(axis=1) / s.n_servers
    assert 1.0 <= hourly_per_server.max() <= 3.0
    assert hourly_per_server.min() < 0.5  # the night is quiet


def test_replay_variant_draws_each_server_its_own_start_of_the_day():
    s = load_scenario(SCENARIOS / "paper_case_study_replay.toml")
    a = s.arrival_process(s.token_source(), rng=np.random.default_rng(1))
    b = s.arrival_process(s.token_source(), rng=np.random.default_rng(2))
    assert a.start_s != b.start_s and 0 <= a.start_s < 86400
    day = np.arange(0, 86400, 60.0)
    hall_mean = load_scenario(SCENARIOS / "paper_case_study.toml").arrival_process(
        s.token_source(), n_servers=240).rate_per_s(day).mean()
    assert a.rate_per_s(day).mean() == pytest.approx(hall_mean / 240)


def test_mixed_hall_puts_every_configuration_in_every_rack():
    s = load_scenario(SCENARIOS / "mixed_hall.toml")
    configs = np.array(s.server_configs())
    assert len(set(configs)) == 3
    for rack in configs.reshape(-1, 4):
        assert sorted(rack.tolist()) == sorted(["qwen3-8b_a100_tp1"] * 2 + ["qwen3-8b_h100_tp1",
                                                                             "llama-3.1-70b_h100_tp4"])
    assert isinstance(s.router(), JoinShortestQueue) and len(s.pools()) == 8


def test_row_breakers_limit_both_rows_and_trip_after_a_while():
    s = load_scenario(SCENARIOS / "row_breakers.toml")
    tree = s.build_tree()
    assert [tree.nodes[r]["limit_w"] for r in ("row0", "row1")] == [20000.0, 20000.0]
    assert tree.nodes["row0/rack0"]["limit_w"] is None
    assert s.control.policy == "breaker" and s.control.trip_time_s > 0 and s.control.restart_s > 0
    assert type(s.policy()).__name__ == "BreakerPolicy"
    assert s.arrival_process(FixedTokens(10, 5)).rate_per_s(np.array([60.0, 900.0])).tolist() == [0.5, 4.0]


# ----------------------------------------------------------------------------------------- overrides

def test_overrides_read_toml_values_or_bare_strings():
    assert parse_override("workload.rate_per_s=3") == (["workload", "rate_per_s"], 3)
    assert parse_override("outputs.plot=false") == (["outputs", "plot"], False)
    assert parse_override("workload.arrival=poisson") == (["workload", "arrival"], "poisson")
    assert parse_override('workload.tokens="azure2023_code"') == (["workload", "tokens"], "azure2023_code")
    assert parse_override("outputs.resolutions_s=[1, 60]") == (["outputs", "resolutions_s"], [1, 60])
    assert parse_override('site.limits_w."row0/rack1" = 3e4') == (["site", "limits_w", "row0/rack1"], 30000.0)


def test_overrides_change_the_loaded_scenario_and_the_last_one_wins():
    s = load_scenario(SCENARIOS / "default.toml", ["workload.rate_per_s=3", "workload.rate_per_s=4.5",
                                                   "simulation.seed=7", "workload.stream=shared_intensity",
                                                   'site.limits_w."row0/rack1"=5000', "control.policy=cap",
                                                   "workload.tokens.fixed.n_in=100", "workload.tokens.fixed.n_out=9"])
    assert (s.workload.rate_per_s, s.simulation.seed, s.workload.stream) == (4.5, 7, "shared_intensity")
    assert s.build_tree().nodes["row0/rack1"]["limit_w"] == 5000.0
    assert s.control.cap_fraction == 0.9 and s.policy().cap_fraction == 0.9
    assert s.token_source().sample(2, np.random.default_rng(0))[0].tolist() == [100, 100]


@pytest.mark.parametrize("text, where", [("simulation.sed=3", "--set simulation.sed"),
                                         ("simulaton.seed=3", "--set simulaton.seed"),
                                         ("simulation.seed.x=1", "--set simulation.seed.x"),
                                         ("workload.rate_per_sec=2", "--set workload.rate_per_sec"),
                                         ("noequals", "--set")])
def test_overrides_of_unknown_key_paths_are_refused(text, where):
    with pytest.raises(DcsimInputError, match="unknown key|not a table|no '='") as e:
        load_scenario(SCENARIOS / "default.toml", [text])
    assert str(e.value).startswith(where)


def test_a_bad_override_value_is_blamed_on_the_override():
    with pytest.raises(DcsimInputError, match=r"\(--set workload.rate_per_s\): workload.rate_per_s: out of range"):
        load_scenario(SCENARIOS / "default.toml", ["workload.rate_per_s=-1"])


# -------------------------------------------------------------------------------------------- errors

def test_an_unknown_key_is_refused_with_the_allowed_keys():
    msg = refused(with_(base(), workload={"rate_per_ss": 2}), "hall.toml: workload.rate_per_ss: unknown key",
                  "rate_per_s, times_s")
    assert "arrival" in msg
    refused({**base(), "simulaton": {}}, "simulaton: unknown key", "the sections simulation, facility")
    refused(with_(base(), facility={"config": None, "mix": [{"config": "qwen3-8b_a100_tp1", "fraction": 1.0,
                                                               "weight": 2}]}),
            "facility.mix[0].weight: unknown key", "[[facility.mix]]: config, fraction")


@pytest.mark.parametrize("section, key, value, allowed", [
    ("facility", "rows", "two", "a whole number of rows"),
    ("facility", "rows", 2.5, "a whole number of rows"),
    ("simulation", "seed", True, "a whole number"),
    ("simulation", "duration_s", "60", "seconds"),
    ("workload", "stream", "shared", "independent, shared_intensity, pooled"),
    ("outputs", "plot", "yes", "true or false"),
])
def test_a_wrong_type_is_refused_with_its_key_path_value_and_what_is_allowed(section, key, value, allowed):
    refused(with_(base(), **{section: {key: value}}), f"hall.toml: {section}.{key}", repr(value) if isinstance(
        value, str) else str(value), allowed)


def test_negative_rates_are_refused():
    refused(with_(base(), workload={"rate_per_s": -2.0}), "workload.rate_per_s: out of range, got -2.0", "≥ 0")
    refused(with_(base(), workload={"arrival": "rate_profile", "rate_per_s": None, "times_s": [0.0, 10.0],
                                    "rates_per_s": [1.0, -1.0]}), "workload.rates_per_s[1]", "got -1.0")
    refused(with_(base(), workload={"rate_scale": 0.0}), "workload.rate_scale", "> 0")


def test_a_limit_on_a_node_that_does_not_exist_is_refused():
    refused(with_(base(), site={"limits_w": {"row7": 1e4}}), "site.limits_w.row7", "no node named 'row7'", "row0")
    refused(with_(base(), site={"limits_w": {"row0/rack3": 1e4}}), 'site.limits_w."row0/rack3"')
    s = Scenario.from_dict(with_(base(), site={"limits_w": {"row0/rack2/srv3": 900.0, "rack": 5e3}}))
    tree = s.build_tree()
    assert tree.nodes["row0/rack2/srv3"]["limit_w"] == 900.0 and tree.nodes["row1/rack0"]["limit_w"] == 5e3


def test_an_unknown_configuration_is_refused_where_it_is_named():
    refused(with_(base(), facility={"config": "llama-9000b_tpu"}), "facility.config", "llama-9000b_tpu",
            "unknown configuration")
    mix = [{"config": "qwen3-8b_a100_tp1", "fraction": 0.5}, {"config": "nope", "fraction": 0.5}]
    refused(with_(base(), facility={"config": None, "mix": mix}), "facility.mix[1].config", "'nope'")
    assert Scenario.from_dict(with_(base(), facility={"config": "nope"}), check_configs=False).n_servers == 24


def test_the_real_configuration_check_uses_resolve_config_dir(monkeypatch, tmp_path):
    monkeypatch.undo()
    pytest.importorskip("dcsim.configs", reason="dcsim.configs not importable yet")
    art = tmp_path / "artifacts" / "my_cfg"
    art.mkdir(parents=True)
    (art / "meta.json").write_text("{}")
    p = write(tmp_path, """
        [simulation]
        duration_s = 10.0
        [facility]
        rows = 1
        racks_per_row = 1
        servers_per_rack = 2
        config = "artifacts/my_cfg"
        [workload]
        rate_per_s = 1.0
        """)
    assert load_scenario(p).server_configs() == [str(art.resolve())] * 2  # relative to the scenario file
    with pytest.raises(DcsimInputError, match="facility.config: unknown configuration"):
        load_scenario(p, ["facility.config=no-such-config_x100_tp9"])


def test_malformed_toml_names_the_file_line_and_column(tmp_path):
    p = write(tmp_path, """\
        [simulation]
        duration_s = 60.0
        seed = = 3
        """)
    with pytest.raises(DcsimInputError, match=r"s\.toml, line 3, column \d+: malformed TOML.*'seed = = 3'"):
        load_scenario(p)


def test_an_empty_or_missing_file_is_one_clear_line(tmp_path):
    with pytest.raises(DcsimInputError, match="empty scenario"):
        load_scenario(write(tmp_path, "# only a comment\n"))
    with pytest.raises(DcsimInputError, match="file not found"):
        load_scenario(tmp_path / "nope.toml")


def test_step_other_than_250_ms_is_refused_and_says_why():
    refused(with_(base(), simulation={"step_s": 1.0}), "simulation.step_s", "calibrated at 250 ms", "0.25")


def test_mix_fractions_must_sum_to_one():
    mix = [{"config": "qwen3-8b_a100_tp1", "fraction": 0.5}, {"config": "qwen3-8b_h100_tp1", "fraction": 0.4}]
    refused(with_(base(), facility={"config": None, "mix": mix}), "facility.mix", "do not sum to 1", "0.9")
    refused(with_(base(), facility={"mix": [{"config": "qwen3-8b_a100_tp1", "fraction": 1.0}]}),
            "facility.config: not used with [[facility.mix]]")


def test_arrival_parameters_must_belong_to_the_arrival():
    diurnal = {"arrival": "diurnal", "mean_rate_per_s": 1.0, "amplitude": 0.5, "peak_hour": 15.0}
    refused(with_(base(), workload=diurnal), "workload.rate_per_s: not used by this arrival", "mean_rate_per_s")
    assert Scenario.from_dict(with_(base(), workload={**diurnal, "rate_per_s": None})).workload.amplitude == 0.5
    refused(with_(base(), workload={"arrival": "diurnal", "rate_per_s": None, "mean_rate_per_s": 1.0}),
            "workload.amplitude: missing key")
    refused(with_(base(), workload={"arrival": "nope"}), "workload.arrival: unknown arrival", "azure2024_code_day")


def test_a_policy_needs_limits_and_its_options_are_checked_on_load():
    refused(with_(base(), control={"policy": "cap"}), "control.policy", "no limit to act on")
    limited = with_(base(), site={"limits_w": {"row": 3e4}})
    refused(with_(limited, control={"policy": "cap", "cap_fraction": 1.5}), "control.cap_fraction", "(0, 1]")
    refused(with_(limited, control={"policy": "breaker", "params": {"fuse": 1}}), "control.params")
    refused(with_(limited, control={"policy": "nosuch.module:Policy"}), "control.policy", "not found")
    s = Scenario.from_dict(with_(limited, control={"policy": "none", "trip_time_s": 1.0}))  # switch policies freely
    assert s.control.policy == "none" and s.policy() is None
    breaker = Scenario.from_dict(with_(limited, control={"policy": "breaker", "trip_time_s": 2.0})).policy()
    assert (breaker.trip_time_s, breaker.restart_s) == (2.0, 300.0)


def test_output_resolutions_are_multiples_of_the_step_within_the_duration():
    refused(with_(base(), outputs={"resolutions_s": [1.0, 0.3]}), "outputs.resolutions_s[1]", "0.25")
    refused(with_(base(), outputs={"resolutions_s": [120.0]}), "outputs.resolutions_s", "duration")
    assert Scenario.from_dict(base()).outputs.resolutions_s == [0.25, 1.0, 60.0]  # defaults up to the 60 s duration


def test_a_shortened_scenario_drops_resolutions_longer_than_the_run_with_a_warning():
    sc = Scenario.from_dict(with_(base(), outputs={"resolutions_s": [1.0, 60.0, 900.0]}))
    assert sc.outputs.resolutions_s == [1.0, 60.0]
    assert sc.warnings == ["outputs.resolutions_s: 900 s dropped: longer than the duration (60 s)"]


def test_a_shared_stream_with_config_tokens_over_mixed_configurations_is_refused():
    mix = {"config": None, "mix": [{"config": "qwen3-8b_a100_tp1", "fraction": 0.5},
                                   {"config": "qwen3-8b_h100_tp1", "fraction": 0.5}]}
    refused(with_(base(), facility=mix, workload={"stream": "pooled"}), "workload.tokens", "2 configurations")
    ok = Scenario.from_dict(with_(base(), facility=mix, workload={"stream": "pooled", "tokens": "azure2023_conv"}))
    assert isinstance(ok.token_source(), EmpiricalTokens)


# ------------------------------------------------------------------------------------ facility helpers

@pytest.mark.parametrize("rows, racks, per_rack", [(1, 1, 1), (2, 3, 4), (10, 6, 4)])
def test_server_configs_has_one_entry_per_server(rows, racks, per_rack):
    d = with_(base(), facility={"rows": rows, "racks_per_row": racks, "servers_per_rack": per_rack})
    s = Scenario.from_dict(d)
    assert len(s.server_configs()) == rows * racks * per_rack
    assert len(s.build_tree()) == 1 + rows + rows * racks + rows * racks * per_rack


@pytest.mark.parametrize("fractions, n, per_rack", [([0.5, 0.25, 0.25], 240, 4), ([0.7, 0.3], 30, 5),
                                                    ([0.1, 0.2, 0.3, 0.4], 96, 8), ([1 / 3] * 3, 20, 4)])
def test_mix_proportions_hold_in_the_hall_and_in_every_rack(fractions, n, per_rack):
    pick = mix_assignment(fractions, n)
    counts = np.bincount(pick, minlength=len(fractions))
    assert counts.sum() == n and np.all(np.abs(counts - np.array(fractions) * n) < 1)
    for rack in pick.reshape(-1, per_rack):
        assert np.all(np.abs(np.bincount(rack, minlength=len(fractions)) - np.array(fractions) * per_rack) < 2)


def test_an_explicit_server_list_sets_the_layout_row_by_row():
    servers = [{"row": 1, "rack": 0, "config": "qwen3-8b_h100_tp1"},
               {"row": 0, "rack": 1, "count": 2},
               {"row": 0, "rack": 0, "config": "llama-3.1-70b_h100_tp4"}]
    s = Scenario.from_dict({**base(), "facility": {"config": "qwen3-8b_a100_tp1", "servers": servers}})
    assert s.server_configs() == ["llama-3.1-70b_h100_tp4", "qwen3-8b_a100_tp1", "qwen3-8b_a100_tp1",
                                  "qwen3-8b_h100_tp1"]
    from dcsim.facility.tree import servers as server_names
    assert server_names(s.build_tree()) == ["row0/rack0/srv0", "row0/rack1/srv0", "row0/rack1/srv1", "row1/rack0/srv0"]
    refused({**base(), "facility": {"servers": [{"row": 0, "rack": 0}]}}, "facility.servers[0].config: missing")
    refused({**base(), "facility": {**base()["facility"], "servers": servers}}, "facility.rows: not used")


def test_pools_follow_the_chosen_level():
    s = Scenario.from_dict(with_(base(), workload={"stream": "pooled", "pool": "row", "routing": "random"}))
    assert [p.tolist() for p in s.pools()] == [list(range(12)), list(range(12, 24))]
    assert isinstance(s.router(), RandomRouter)


# ------------------------------------------------------------------------------------ workload helpers

def test_rates_are_per_server_per_pool_or_for_the_whole_hall():
    n = 24
    indep = Scenario.from_dict(base())
    shared = Scenario.from_dict(with_(base(), workload={"stream": "shared_intensity"}))
    pooled = Scenario.from_dict(with_(base(), workload={"stream": "pooled"}))
    azure = Scenario.from_dict(with_(base(), workload={"arrival": "azure2024_code_day", "rate_per_s": None,
                                                       "tokens": "azure2023_code", "rate_scale": 2.0}))
    t = np.array([0.0])
    tok = FixedTokens(10, 5)
    assert indep.arrival_process(tok).rate_per_s(t)[0] == 2.0
    assert shared.arrival_process(tok, n_servers=n).rate_per_s(t)[0] == 2.0 * n
    assert pooled.arrival_process(tok, n_servers=4).rate_per_s(t)[0] == 2.0
    hall = RateProfile.builtin_azure2024_code_day(tok, rate_scale=2.0).rate_per_s(t)[0]
    assert azure.arrival_process(tok, n_servers=n).rate_per_s(t)[0] == pytest.approx(hall)
    assert azure.arrival_process(tok, n_servers=1).rate_per_s(t)[0] == pytest.approx(hall / n)


def test_token_sources_cover_config_builtins_tables_and_csv_files(tmp_path):
    assert Scenario.from_dict(base()).token_source("qwen3-8b_a100_tp1") is None
    ln = Scenario.from_dict(with_(base(), workload={"tokens": {"lognormal": {
        "median_in": 500.0, "sigma_in": 0.5, "median_out": 100.0, "sigma_out": 0.3}}}))
    assert isinstance(ln.token_source(), LognormalTokens)
    (tmp_path / "lens.csv").write_text("n_in,n_out\n10,2\n20,4\n")
    csv = Scenario.from_dict(with_(base(), workload={"tokens": "lens.csv"}), base_dir=tmp_path)
    assert sorted(csv.token_source().n_in.tolist()) == [10, 20]
    refused(with_(base(), workload={"tokens": "missing.csv"}), "workload.tokens", "file not found")
    refused(with_(base(), workload={"tokens": {"fixed": {"n_in": 10}}}), "workload.tokens.fixed.n_out: missing")


def test_a_trace_replay_path_is_relative_to_the_scenario_file(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "trace.csv").write_text("arrival_s,n_in,n_out\n0.0,10,2\n0.5,20,3\n1.5,30,4\n")
    p = write(tmp_path, """
        [simulation]
        duration_s = 30.0
        [facility]
        rows = 1
        racks_per_row = 1
        servers_per_rack = 1
        config = "qwen3-8b_a100_tp1"
        [workload]
        arrival = "trace_replay"
        path = "data/trace.csv"
        offset_s = 0.0
        """)
    s = load_scenario(p)
    proc = s.arrival_process(None)
    assert isinstance(proc, TraceReplay) and len(proc.sample(4.5, np.random.default_rng(0))) == 6  # wraps
    with pytest.raises(DcsimInputError, match="workload.tokens: not used by arrival 'trace_replay'"):
        load_scenario(p, ["workload.tokens=azure2023_code"])
    with pytest.raises(DcsimInputError, match="workload.path → .*nope.csv"):
        load_scenario(p, ["workload.path=nope.csv"])


PLUGIN = '''
import numpy as np
from dcsim.workload.arrivals import ArrivalProcess, Requests

class Every(ArrivalProcess):
    """One request every gap_s seconds."""
    def __init__(self, gap_s, tokens, rate_scale=1.0):
        self.gap_s = gap_s / rate_scale
        self.tokens = tokens

    def sample(self, duration_s, rng):
        t = np.arange(0.0, duration_s, self.gap_s)
        n_in, n_out = self.tokens.sample(len(t), rng)
        return Requests(t, n_in, n_out)
'''


def test_a_plugin_arrival_gets_its_params_tokens_and_rate_scale(tmp_path):
    (tmp_path / "my_arrivals.py").write_text(PLUGIN)
    d = with_(base(), workload={"arrival": "my_arrivals.py:Every", "rate_per_s": None, "params": {"gap_s": 2.0},
                                "stream": "shared_intensity"})
    s = Scenario.from_dict(d, base_dir=tmp_path)
    proc = s.arrival_process(FixedTokens(10, 5), n_servers=24)
    assert proc.gap_s == pytest.approx(2.0 / 24)
    refused({**d, "workload": {**d["workload"], "params": {"gap": 2.0}}}, "workload.params", base_dir=tmp_path)
    refused({**d, "workload": {**d["workload"], "arrival": "my_arrivals.py:Nope"}}, "workload.arrival", "Nope",
            base_dir=tmp_path)


def test_python_callers_may_give_classes_and_instances_for_arrival_routing_and_policy():
    tok = FixedTokens(10, 5)
    proc = Poisson(1.0, tok)
    s = Scenario.from_dict(with_(base(), workload={"arrival": proc, "rate_per_s": None, "stream": "pooled",
                                                   "routing": JoinShortestQueue()},
                                 site={"limits_w": {"row": 3e4}}, control={"policy": BreakerPolicy(trip_time_s=1.0)}))
    assert s.arrival_process(tok, n_servers=4) is proc and isinstance(s.router(), JoinShortestQueue)
    assert s.policy().trip_time_s == 1.0
    assert json.loads(json.dumps(s.to_dict()))["workload"]["arrival"] == "dcsim.workload.arrivals:Poisson"
    s.control.policy = PowerCap(cap_fraction=0.5)  # or set on the scenario
    assert s.policy().cap_fraction == 0.5
    by_class = Scenario.from_dict(with_(base(), workload={"arrival": Poisson, "rate_per_s": None, "params": {
        "rate_per_s": 2.0}, "routing": RandomRouter, "stream": "shared_intensity"}))
    assert by_class.arrival_process(tok, n_servers=24).rate_per_s(np.array([0.0]))[0] == 48.0
    refused(with_(base(), workload={"arrival": proc, "rate_per_s": None, "stream": "shared_intensity"}),
            "workload.arrival", "cannot be scaled by 24")
    refused(with_(base(), workload={"routing": dict}), "workload.routing", "not a subclass of Router")
    refused(with_(base(), site={"limits_w": {"row": 3e4}}, control={"policy": dict}), "control.policy",
            "not a subclass of CapPolicy")


def test_from_dict_takes_numpy_values_and_loading_writes_nothing(tmp_path):
    d = with_(base(), workload={"arrival": "rate_profile", "rate_per_s": None, "times_s": np.array([0.0, 30.0]),
                                "rates_per_s": (np.float64(1.0), 2)}, simulation={"seed": np.int64(5)})
    s = Scenario.from_dict(d)
    assert s.simulation.seed == 5 and s.workload.rates_per_s == [1.0, 2.0]
    p = write(tmp_path, (SCENARIOS / "default.toml").read_text())
    before = sorted(tmp_path.rglob("*"))
    load_scenario(p)
    assert sorted(tmp_path.rglob("*")) == before
