"""Bad input everywhere (issue #9), through the real entry point (``dcsim.cli.main``): every class of mistake a
user can make ends in exit code 2 and ONE line on stderr, ``dcsim: error: ...``, naming the file, option or key
and the bad value, with no traceback, and nothing written: not an output, not a hidden temporary folder.

One row per class below (``CASES``); each row builds its inputs in a fresh folder (the working folder of the
call), which is listed before and after. Measured runs and artifact folders have their own table in
``test_measured_bad_input.py``. Limits a hall cannot meet are not refused: the run warns loudly and records it
(the last tests here).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, NamedTuple

import pytest

from cli_helpers import CONFIG, dcsim, everything_under, small_scenario

INTERNALS = ("Traceback", "Requests.", "routing.router", "<dict>", "Error:\n")
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
UNCREATABLE = Path("/proc/dcsim-no-such-folder/out")  # /proc takes no new folders, not even from root


# ------------------------------------------------------------------------------------------------ inputs

PLUGINS = '''
from dcsim.facility.control import CapPolicy
from dcsim.workload.routing import Router


class RaisesInInit(CapPolicy):
    def __init__(self):
        raise RuntimeError("init exploded")

    def step(self, t_s, node_power_w, tree):
        return []


class RaisesInStep(CapPolicy):
    def step(self, t_s, node_power_w, tree):
        raise ValueError("step exploded")


class OutOfRange(Router):
    reads = "queues"

    def choose(self, t_s, n_in, n_out, servers, rng):
        return 99


class RaisesInChoose(Router):
    reads = "nothing"

    def choose(self, t_s, n_in, n_out, servers, rng):
        raise KeyError("choose exploded")
'''


def with_policy(cls: str) -> Callable[[Path], list[str]]:
    def make(tmp: Path) -> list[str]:
        (tmp / "plugins").mkdir()
        (tmp / "plugins" / "mine.py").write_text(PLUGINS)
        s = small_scenario(tmp, control=f'policy = "plugins/mine.py:{cls}"', site="limits_w = { row = 1e6 }")
        return ["run", str(s), "--out", str(tmp / "out"), "--quiet"]
    return make


def with_router(cls: str) -> Callable[[Path], list[str]]:
    def make(tmp: Path) -> list[str]:
        (tmp / "plugins").mkdir()
        (tmp / "plugins" / "mine.py").write_text(PLUGINS)
        s = small_scenario(tmp, workload=f'stream = "pooled"\nrouting = "plugins/mine.py:{cls}"')
        return ["run", str(s), "--out", str(tmp / "out"), "--quiet"]
    return make


def run_set(*sets: str) -> Callable[[Path], list[str]]:
    def make(tmp: Path) -> list[str]:
        s = small_scenario(tmp)
        return ["run", str(s), *[a for kv in sets for a in ("--set", kv)], "--out", str(tmp / "out"), "--quiet"]
    return make


def run_edited(edit: Callable[[str], str]) -> Callable[[Path], list[str]]:
    def make(tmp: Path) -> list[str]:
        return ["run", str(small_scenario(tmp, edit=edit)), "--out", str(tmp / "out"), "--quiet"]
    return make


def run_file(write: Callable[[Path], None]) -> Callable[[Path], list[str]]:
    def make(tmp: Path) -> list[str]:
        write(tmp / "hall.toml")
        return ["run", str(tmp / "hall.toml"), "--out", str(tmp / "out"), "--quiet"]
    return make


def run_out(out: str | Callable[[Path], str]) -> Callable[[Path], list[str]]:
    def make(tmp: Path) -> list[str]:
        s = small_scenario(tmp)
        (tmp / "thesis.tex").write_text("\\section{mine}\n")
        return ["run", str(s), "--out", out(tmp) if callable(out) else out, "--quiet"]
    return make


def generate(*args: str, out: str | Callable[[Path], str] = "trace.parquet") -> Callable[[Path], list[str]]:
    def make(tmp: Path) -> list[str]:
        (tmp / "a_file").write_text("mine\n")
        return ["generate", "--config", CONFIG, *args, "--out", out(tmp) if callable(out) else out]
    return make


def requests_file(content: bytes) -> Callable[[Path], list[str]]:
    def make(tmp: Path) -> list[str]:
        (tmp / "requests.csv").write_bytes(content)
        return ["generate", "--config", CONFIG, "--requests", "requests.csv", "--duration-s", "10",
                "--out", "trace.parquet"]
    return make


def validate(*args: str) -> Callable[[Path], list[str]]:
    def make(tmp: Path) -> list[str]:
        (tmp / "a_file").write_text("mine\n")
        (tmp / "run").mkdir()
        return ["validate", "--config", CONFIG, "--measured", "run", *[a.replace("TMP", str(tmp)) for a in args]]
    return make


def calibrate(*args: str) -> Callable[[Path], list[str]]:
    def make(tmp: Path) -> list[str]:
        (tmp / "a_file").write_text("mine\n")
        (tmp / "run").mkdir()
        return ["calibrate", *[a.replace("TMP", str(tmp)) for a in args], "run"]
    return make


def _set(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new)


class Case(NamedTuple):
    make: Callable[[Path], list[str]]
    says: tuple[str, ...]  # each in the one line: the file, option or key, the bad value


CASES: dict[str, Case] = {
    # sizes that cannot fit: refused with an estimate before anything is allocated
    "1e9 servers": Case(run_set("facility.rows=250000000"),
                        ("hall.toml", "facility", "1,000,000,000 servers", "too large")),
    "1e20 rows (a float)": Case(run_set("facility.rows=1e20"), ("hall.toml (--set facility.rows)", "1e+20")),
    "1e20 rows (an integer)": Case(run_set("facility.rows=100000000000000000000"),
                                   ("hall.toml", "facility", "400,000,000,000,000,000,000 servers", "too large")),
    "duration 1e12 s": Case(run_set("simulation.duration_s=1e12"),
                            ("hall.toml", "simulation", "duration_s = 1e+12 s", "too large")),
    "rate 1e9 per s": Case(run_set("workload.rate_per_s=1e9"),
                           ("hall.toml", "simulation", "4e+09 requests/s", "too large")),
    "generate 1e12 s": Case(generate("--rate", "1", "--duration-s", "1e12"), ("--duration-s", "1e+12 s", "too large")),
    "generate rate 1e9": Case(generate("--rate", "1e9", "--duration-s", "10"), ("--rate", "1e+09", "too large")),
    # paths that cannot be written, checked before the work
    "--out under a file": Case(run_out(lambda t: str(t / "thesis.tex" / "sub")),
                               ("--out", "thesis.tex/sub", "is a file")),
    "--out a file": Case(run_out("thesis.tex"), ("--out", "'thesis.tex'", "a file is in the way")),
    "--out cannot be created": Case(run_out(str(UNCREATABLE)), ("--out", str(UNCREATABLE), "not writable")),
    "--out .": Case(run_out("."), ("--out", "got '.'")),
    "--out ''": Case(run_out(""), ("--out", "empty path", "got ''")),
    "generate --out trace.txt": Case(generate("--rate", "2", "--duration-s", "10", out="trace.txt"),
                                     ("--out", "'trace.txt'", ".parquet or .csv")),
    "generate --out under a file": Case(generate("--rate", "2", "--duration-s", "10",
                                                 out=lambda t: str(t / "a_file" / "t.parquet")),
                                        ("--out", "a_file/t.parquet", "is a file")),
    "generate --out cannot be created": Case(generate("--rate", "2", "--duration-s", "10",
                                                      out=str(UNCREATABLE / "t.parquet")),
                                             ("--out", str(UNCREATABLE / "t.parquet"), "not writable")),
    "generate --out ''": Case(generate("--rate", "2", "--duration-s", "10", out=""), ("--out", "empty path")),
    "validate --plot under a file": Case(validate("--plot", "TMP/a_file/p.png"), ("--plot", "a_file/p.png", "is a file")),
    "validate --plot cannot be created": Case(validate("--plot", str(UNCREATABLE / "p.png")),
                                              ("--plot", str(UNCREATABLE / "p.png"), "not writable")),
    "validate --plot not a PNG": Case(validate("--plot", "p.jpg"), ("--plot", "'p.jpg'", ".png")),
    "calibrate --out under a file": Case(calibrate("--name", "mine", "--out", "TMP/a_file/x"),
                                         ("--out", "a_file/x", "is a file")),
    # plug-ins named in a scenario as "path/file.py:Class"
    "policy raises in __init__": Case(with_policy("RaisesInInit"),
                                      ("hall.toml", "control.policy", "RaisesInInit", "init exploded")),
    "policy raises in step()": Case(with_policy("RaisesInStep"),
                                    ("hall.toml", "control.policy step()", "RaisesInStep", "step exploded")),
    "router index out of range": Case(with_router("OutOfRange"),
                                      ("hall.toml", "workload.routing", "OutOfRange", "got 99", "0..1")),
    "router raises in choose()": Case(with_router("RaisesInChoose"),
                                      ("hall.toml", "workload.routing choose()", "RaisesInChoose", "choose exploded")),
    # numbers on the command line
    "--seed -1": Case(generate("--rate", "2", "--duration-s", "10", "--seed", "-1"), ("'--seed'", "got '-1'")),
    "--rate abc": Case(generate("--rate", "abc", "--duration-s", "10"), ("'--rate'", "got 'abc'")),
    "--rate nan": Case(generate("--rate", "nan", "--duration-s", "10"), ("--rate", "nan")),
    "--seeds zz": Case(validate("--seeds", "zz"), ("'--seeds'", "got 'zz'")),
    "--seeds 0": Case(validate("--seeds", "0"), ("'--seeds'", "got '0'")),
    "--k 0": Case(calibrate("--name", "mine", "--k", "0"), ("--k", "got 0")),
    # scenarios
    "unknown key": Case(run_edited(lambda t: _set(t, "seed = 0", "seed = 0\nseeds = 3")),
                        ("hall.toml", "simulation.seeds", "unknown key", "got 3")),
    "wrong type": Case(run_edited(lambda t: _set(t, "rows = 1", 'rows = "one"')),
                       ("hall.toml", "facility.rows", "wrong type", "'one'")),
    "negative rate": Case(run_edited(lambda t: _set(t, "rate_per_s = 2.0", "rate_per_s = -2.0")),
                          ("hall.toml", "workload.rate_per_s", "-2.0")),
    "NaN": Case(run_edited(lambda t: _set(t, "p_base_w = 1000.0", "p_base_w = nan")),
                ("hall.toml", "site.p_base_w", "nan")),
    "negative rate by --set": Case(run_set("workload.rate_per_s=-1"), ("--set workload.rate_per_s", "-1")),
    "--set without '='": Case(run_set("workload.rate_per_s"), ("--set", "'workload.rate_per_s'", "no '='")),
    "--set unknown key": Case(run_set("workload.rate=3"), ("--set workload.rate", "unknown key", "rate_per_s")),
    "bad TOML": Case(run_edited(lambda t: _set(t, "rows = 1", "rows = = 1")),
                     ("hall.toml, line", "malformed TOML", "rows = = 1")),
    "empty file": Case(run_file(lambda p: p.write_text("")), ("hall.toml", "empty scenario", "empty file")),
    "only comments": Case(run_file(lambda p: p.write_text("# nothing yet\n")), ("hall.toml", "empty scenario", "no keys")),
    "not UTF-8": Case(run_file(lambda p: p.write_bytes(b"[simulation]\nduration_s = 20 # \xff\n")),
                      ("hall.toml", "not UTF-8", "byte")),
    "a folder as the scenario": Case(run_file(lambda p: p.mkdir()), ("hall.toml", "not a file")),
    "a missing scenario": Case(run_file(lambda p: None), ("hall.toml", "file not found")),
    # configuration names
    "--name ''": Case(calibrate("--name", ""), ("--name", "got ''")),
    "--name ../../x": Case(calibrate("--name", "../../x"), ("--name", "'../../x'")),
    "--name a/b": Case(calibrate("--name", "a/b"), ("--name", "'a/b'")),
    # request files
    "100.7 tokens": Case(requests_file(b"arrival_s,n_in,n_out\n1.0,100.7,20\n2.0,50,10\n"),
                         ("requests.csv: n_in", "100.7", "row 1", "whole numbers")),
    "negative time": Case(requests_file(b"arrival_s,n_in,n_out\n1.0,100,20\n-2.0,50,10\n"),
                          ("requests.csv: arrival_s", "-2.0", "row 2")),
    "missing column": Case(requests_file(b"arrival_s,n_in\n1.0,100\n"),
                           ("requests.csv", "missing columns", "['n_out']")),
    "non-UTF-8 bytes": Case(requests_file(b"arrival_s,n_in,n_out\n1.0,100,20\n2.0,5\xff\xfe0,10\n"),
                            ("requests.csv", "not UTF-8", "byte 37 (line 3)", r"\xff\xfe")),
    "text in a number column": Case(requests_file(b"arrival_s,n_in,n_out\n1.0,100,20\n2.0,many,10\n"),
                                    ("requests.csv: n_in", "'many'", "row 2")),
    "true/false as tokens": Case(requests_file(b"arrival_s,n_in,n_out\n1.0,true,20\n"),
                                 ("requests.csv: n_in", "True", "not a number")),
    "1e30 tokens": Case(requests_file(b"arrival_s,n_in,n_out\n1.0,1e30,20\n"), ("requests.csv: n_in", "1e+30")),
    "empty requests file": Case(requests_file(b""), ("requests.csv", "empty")),
}

NEEDS = {
    "--out cannot be created": UNCREATABLE.parent.parent,
    "generate --out cannot be created": UNCREATABLE.parent.parent,
    "validate --plot cannot be created": UNCREATABLE.parent.parent,
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(name, tmp_path, monkeypatch, capsys):
    case = CASES[name]
    if name in NEEDS and not NEEDS[name].is_dir():
        pytest.skip(f"{NEEDS[name]} is not here")
    monkeypatch.chdir(tmp_path)
    argv = case.make(tmp_path)
    before = everything_under(tmp_path)
    code, stdout, stderr = dcsim(monkeypatch, capsys, *argv)
    lines = stderr.splitlines()
    assert code == 2, (code, stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("dcsim: error: "), stderr
    for internal in INTERNALS:
        assert internal not in stderr + stdout, stderr
    for part in case.says:
        assert part in lines[0], f"{part!r} not in {lines[0]!r}"
    assert everything_under(tmp_path) == before, "something was written"


@pytest.mark.skipif(IS_ROOT, reason="root writes into a 0o500 folder anyway (os.access and the kernel agree); "
                                    "the folder-under-a-file cases cover a place that cannot be written")
def test_out_inside_a_read_only_folder_is_refused_before_the_work(tmp_path, monkeypatch, capsys):
    scenario = small_scenario(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        for argv, option in ((["run", str(scenario), "--out", str(locked / "out"), "--quiet"], "--out"),
                             (["generate", "--config", CONFIG, "--rate", "2", "--duration-s", "10",
                               "--out", str(locked / "t.csv")], "--out"),
                             (["validate", "--config", CONFIG, "--measured", str(tmp_path),
                               "--plot", str(locked / "p.png")], "--plot")):
            code, _, stderr = dcsim(monkeypatch, capsys, *argv)
            assert code == 2 and stderr.count("\n") == 1, stderr
            assert stderr.startswith(f"dcsim: error: {option}: {locked} is not writable"), stderr
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


# --------------------------------------------------------------------------- limits a hall cannot meet: warned


def _run_ok(monkeypatch, capsys, tmp_path: Path, scenario: Path) -> tuple[str, dict]:
    out = tmp_path / "out"
    code, _, stderr = dcsim(monkeypatch, capsys, "run", str(scenario), "--out", str(out), "--quiet")
    assert code == 0, stderr
    return stderr, json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize("policy", ["breaker", "cap"])
def test_a_limit_below_the_idle_floor_runs_but_warns_loudly(policy, tmp_path, monkeypatch, capsys):
    scenario = small_scenario(tmp_path, control=f'policy = "{policy}"', site="limits_w = { row = 100 }")
    stderr, summary = _run_ok(monkeypatch, capsys, tmp_path, scenario)
    warning = [line for line in stderr.splitlines() if line.startswith("dcsim: warning: ")]
    assert len(warning) == 1, stderr
    assert "limit of row0 (0.1 kW)" in warning[0] and "below its idle floor" in warning[0], warning
    assert warning[0].removeprefix("dcsim: warning: ") in summary["warnings"]
    row = summary["limits"]["row0"]
    assert row["limit_w"] == 100.0 and row["idle_floor_w"] > 4000.0  # 4 idle A100s + 4 kW of P_base
    assert summary["events"], "the policy acted on the limit"


def test_limits_exceeded_with_no_policy_are_warned_and_reported(tmp_path, monkeypatch, capsys):
    scenario = small_scenario(tmp_path, site="limits_w = { row = 5000 }")  # above idle, below busy
    stderr, summary = _run_ok(monkeypatch, capsys, tmp_path, scenario)
    warning = [line for line in stderr.splitlines() if line.startswith("dcsim: warning: ")]
    assert len(warning) == 1 and "row0 was over its limit" in warning[0] and "'none'" in warning[0], stderr
    assert warning[0].removeprefix("dcsim: warning: ") in summary["warnings"]
    assert summary["limits"]["row0"]["time_over_limit_s"] > 0
    assert summary["limits"]["row0"]["limit_w"] == 5000.0
