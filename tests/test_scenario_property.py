"""Any scenario a user can write is either a valid scenario or ONE input error (issue #9), never another exception.

Hypothesis starts from a shipped scenario (shortened to 20 s) and sets a few keys (the keys of every shipped scenario, the
keys of the other arrival kinds, unknown ones, whole sections) to anything: numbers with NaN, infinities, negative
and huge ones, strings, lists, nested tables, booleans, the wrong type. ``Scenario.from_dict`` must give a
Scenario or raise DcsimInputError with one short line; ``dcsim run`` on the same values written as TOML must write
its folder (exit 0) or print one ``dcsim: error:`` line (exit 2) and write nothing.
"""
from __future__ import annotations

import copy
import json
import math
import tempfile
import tomllib
from pathlib import Path
from typing import Any


from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from cli_helpers import DEFAULT, REPO, dcsim, everything_under, one_line
from dcsim.errors import DcsimInputError
from dcsim.scenario import Scenario



def _short(path: Path, **facility: int) -> dict[str, Any]:
    d = tomllib.loads(path.read_text())
    d["simulation"].update({"duration_s": 20.0, "warm_up_s": 0.0})
    d["outputs"] = {**d.get("outputs", {}), "resolutions_s": [0.25, 1.0], "plot": False}
    d["facility"].update(facility)
    return d


SHIPPED = [_short(f) for f in sorted((REPO / "scenarios").glob("*.toml"))]  # every shipped scenario, 20 s
SMALL = [_short(DEFAULT), _short(REPO / "scenarios" / "row_breakers.toml", rows=1, racks_per_row=1,
                                 servers_per_rack=2)]  # 4 Qwen servers; 2 Llama servers behind row breakers
INTERNALS = ("Traceback", "Requests.", "routing.router", "ValidationError", "pydantic", "Error in")


def _leaf_paths(d: dict, prefix: tuple = ()) -> list[tuple]:
    out = []
    for k, v in d.items():
        out.append(prefix + (k,))
        if isinstance(v, dict):
            out += _leaf_paths(v, prefix + (k,))
    return out


KEY_PATHS = sorted({p for f in (REPO / "scenarios").glob("*.toml") for p in _leaf_paths(tomllib.loads(f.read_text()))}
                   | {tuple(k.split(".")) for k in (
                       "workload.times_s", "workload.rates_per_s", "workload.period_s", "workload.start_s",
                       "workload.mean_rate_per_s", "workload.amplitude", "workload.peak_hour", "workload.path",
                       "workload.wrap", "workload.offset_s", "workload.rate_scale", "workload.routing",
                       "workload.pool", "workload.params", "workload.tokens.median_in", "workload.tokens.n_out",
                       "facility.mix", "facility.servers", "site.limits_w.row", "site.limits_w.site",
                       "site.limits_w.rack", "control.params", "control.cap_fraction", "control.trip_time_s",
                       "control.interval_s", "simulation.warm_up_s", "simulation.bogus", "bogus")}
                   | {("site", "limits_w", "row0/rack1")})

WORDS = ["poisson", "rate_profile", "diurnal", "trace_replay", "azure2024_code_day", "minute_counts", "breaker",
         "cap", "none", "pooled", "shared_intensity", "independent", "random", "round_robin", "config", "site", "row",
         "rack", "server", "parquet", "csv", "qwen3-8b_a100_tp1", "llama-3.1-70b_h100_tp4", "missing.py:C",
         "dcsim.workload.routing:RoundRobin", "dcsim.facility.control:CapPolicy", "", "random", "../../etc/passwd"]
NUMBERS = st.one_of(st.integers(min_value=-2**63, max_value=2**63 - 1), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0, 1, 2, -1, 0.25, 0.5, 1.0, 60.0, 1e9, 1e20, -0.0, 1e308, 5e-324]))
SCALARS = st.one_of(NUMBERS, st.booleans(), st.sampled_from(WORDS),
                    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12))
NESTED = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.sampled_from(["config", "fraction", "row", "rack", "count", "n_in", "n_out",
                                                         "median_in", "x"]) | st.text(max_size=6), inner, max_size=3),
                      max_leaves=8)
VALUES = st.one_of(NUMBERS, NUMBERS, st.lists(NUMBERS, min_size=1, max_size=4), NESTED)  # numbers half the time


@st.composite
def scenarios(draw, bases: list[dict[str, Any]]) -> dict[str, Any]:
    """One of ``bases`` with one to three keys set to anything, or removed."""
    d = copy.deepcopy(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(KEY_PATHS))
        node = d
        for k in path[:-1]:
            if not isinstance(node.get(k), dict):
                node[k] = {}
            node = node[k]
        if draw(st.integers(0, 9)) == 0:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = draw(VALUES)
    return d


def _check_one_line(e: DcsimInputError) -> str:
    return one_line(e, INTERNALS)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(d=scenarios(SHIPPED))
def test_any_scenario_values_give_a_scenario_or_one_input_error(d):
    try:
        s = Scenario.from_dict(d, source="fuzz.toml")
    except DcsimInputError as e:
        assert _check_one_line(e).startswith("fuzz.toml")
        return
    assert isinstance(s, Scenario)
    assert Scenario.from_dict(s.to_dict()).to_dict() == s.to_dict()  # what validated is what is kept


# ----------------------------------------------------------------------------- the same values through dcsim run

def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{_string(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"


def _string(text: str) -> str:
    """A TOML basic string: JSON's escapes of control characters, DEL escaped, other characters as they are."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def to_toml(d: dict[str, Any]) -> str:
    """``d`` as TOML text (top-level tables as sections, deeper ones inline)."""
    lines = [f"{_string(k)} = {_toml_value(v)}" for k, v in d.items() if not isinstance(v, dict)]
    for k, v in d.items():
        if isinstance(v, dict):
            lines.append(f"[{_string(k)}]")
            lines += [f"{_string(kk)} = {_toml_value(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"


_CONFIGS: dict[str, Any] = {}


def _small(s: Scenario) -> bool:
    """Whether a valid scenario is a tiny run (a few servers, a minute, a few thousand requests)."""
    from dcsim.configs import load_config
    from dcsim.facility.engine import expected_requests
    from dcsim.scenario.build import build_inputs

    sim = s.simulation
    if s.n_servers > 8 or sim.duration_s > 60 or sim.warm_up_s > 60:
        return False
    for name in dict.fromkeys(s.server_configs()):
        _CONFIGS.setdefault(name, load_config(name))
    _, streams, _ = build_inputs(s, _CONFIGS)
    total = expected_requests(streams, sim.duration_s + sim.warm_up_s)
    return total is not None and total < 3000


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.filter_too_much])
@given(d=scenarios(SMALL))
def test_any_scenario_file_runs_or_is_one_error_line_and_writes_nothing(d, monkeypatch, capsys):
    text = to_toml(d)
    assert tomllib.loads(text) == d or any(isinstance(v, float) and math.isnan(v) for v in _leaf_values(d))
    try:
        s = Scenario.from_dict(tomllib.loads(text))
        assume(_small(s))
    except DcsimInputError:
        pass
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "hall.toml").write_text(text)
        before = everything_under(folder)
        code, _, stderr = dcsim(monkeypatch, capsys, "run", str(folder / "hall.toml"), "--out", str(folder / "out"),
                                "--quiet")
        event(f"exit {code}")
        if code == 0:
            assert (folder / "out" / "summary.json").is_file()
            return
        errors = [line for line in stderr.splitlines() if not line.startswith("dcsim: warning: ")]
        assert code == 2 and len(errors) == 1 and errors[0].startswith("dcsim: error: "), (code, stderr)
        for internal in INTERNALS:
            assert internal not in stderr, stderr
        assert everything_under(folder) == before


def _leaf_values(d: Any) -> list[Any]:
    if isinstance(d, dict):
        return [x for v in d.values() for x in _leaf_values(v)]
    if isinstance(d, list):
        return [x for v in d for x in _leaf_values(v)]
    return [d]
