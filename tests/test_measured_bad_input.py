"""Never pass off a wrong trace (issue #9): every malformed measured run or artifact folder is refused with one
DcsimInputError, one line naming the file (and row, column or key), the bad value and what is allowed.

Each case starts from a small valid synthetic run (``synthetic_runs.write_synthetic_run``) or a copy of a shipped
configuration, breaks one thing and checks the message; the inputs that are fine (interleaved GPU rows, an exact
repeated row, a byte-order mark, a request log in completion order) load exactly like the clean run.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcsim import cli
from dcsim.errors import DcsimInputError
from dcsim.measured import MeasuredRun, check_distinct_runs, load_run
from dcsim.configs import load_config, shipped_dir
from synthetic_runs import write_synthetic_run
from cli_helpers import one_line

DURATION_S = 40.0
INTERNALS = ("Requests.", "arrival_s", "states:", "latency.", "features", "shape (", "Traceback")


def _run(root: Path, n_gpus: int = 1) -> Path:
    return write_synthetic_run(root, duration_s=DURATION_S, n_gpus=n_gpus)


def _one_line(exc: DcsimInputError) -> str:
    return one_line(exc, INTERNALS, limit=500)


# ---------------------------------------------------------------------------------- file editors


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n")


def _power(edit: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    """Edit power.csv as a list of lines (lines[0] is the header, lines[k] is row k + 1)."""
    return lambda run: _write(run / "power.csv", edit(_lines(run / "power.csv")))


def _field(row: int, col: int, value: str) -> Callable[[Path], None]:
    """Set one field of power.csv; rows are numbered as in the messages (the header is row 1)."""
    def edit(lines):
        fields = lines[row - 1].split(",")
        fields[col] = value
        lines[row - 1] = ",".join(fields)
        return lines
    return _power(edit)


def _json(name: str, edit: Callable[[dict], object]) -> Callable[[Path], None]:
    def apply(run):
        data = json.loads((run / name).read_text())
        (run / name).write_text(json.dumps(edit(data)))
    return apply


def _clock_minus(text: str, seconds: float) -> str:
    h, m, s = text.split(":")
    total = int(h) * 3600 + int(m) * 60 + float(s) - seconds
    return f"{int(total // 3600):02d}:{int(total % 3600 // 60):02d}:{total % 60:06.3f}"


def _step_back_30s(lines):
    half = len(lines) // 2
    for k in range(half, len(lines)):
        t, rest = lines[k].split(",", 1)
        lines[k] = f"{_clock_minus(t, 30.0)},{rest}"
    return lines


def _swap_rows(lines):
    lines[10], lines[11] = lines[11], lines[10]
    return lines


def _conflicting_duplicate(lines):
    t, g, p = lines[10].split(",")
    return lines[:11] + [f"{t},{g},{float(p) + 50:.2f}"] + lines[11:]


def _gpu1_vanishes(lines):
    half = len(lines) // 2
    return lines[:half] + [ln for ln in lines[half:] if ln.split(",")[1] != "1"]


def _sparse(lines):
    return lines[:1] + lines[1::8]           # one reading every 2 s: never 3 grid steps apart


def _replace(name: str, make: Callable[[Path], None]) -> Callable[[Path], None]:
    def apply(run):
        (run / name).unlink()
        make(run / name)
    return apply


def _requests(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(data):
        edit(data)
        return data
    return _json("requests.json", apply)


def _manifest_clock(key: str, value) -> Callable[[Path], None]:
    def apply(data):
        data["clock"][key] = value
        return data
    return _json("manifest.json", apply)


class Case(NamedTuple):
    mutate: Callable[[Path], None]
    where: str          # the message starts with '<run dir>/<where>'
    value: str          # ... and shows this value
    n_gpus: int = 1


CASES = {
    # power.csv
    "power not UTF-8": Case(lambda r: (r / "power.csv").write_bytes((r / "power.csv").read_bytes()[:60] + b"\xff\xfe,0,80\n"),
                            "power.csv: not UTF-8 text at byte 60", r"b'\xff\xfe,0'"),
    "power header field over 128 KB": Case(_power(lambda ls: ["time_local,gpu," + "w" * 200_000] + ls[1:]),
                                           "power.csv (row 1): unreadable CSV", "field larger than field limit (131072)"),
    "time 25:61:99": Case(_field(5, 0, "25:61:99.000"), "power.csv: time_local (row 5)", "'25:61:99.000'"),
    "time not a time": Case(_field(5, 0, "16h00"), "power.csv: time_local (row 5)", "'16h00'"),
    "same GPU, same time, other power": Case(_power(_conflicting_duplicate), "power.csv: power_w (row 12)",
                                             "a second reading for GPU 0 at 16:00:02.260"),
    "clock steps back 30 s": Case(_power(_step_back_30s), "power.csv: time_local (row 81)",
                                  "GPU 0's clock steps back 29.750 s"),
    "two rows swapped": Case(_power(_swap_rows), "power.csv: time_local (row 12)", "GPU 0's clock steps back 0.250 s"),
    "a GPU vanishes half-way": Case(_power(_gpu1_vanishes), "power.csv: gpu 1", "GPU 1 stops 20.", n_gpus=2),
    "fractional GPU index": Case(_field(4, 1, "0.5"), "power.csv: gpu (row 4)", "'0.5'"),
    "power 1e300 W": Case(_field(6, 2, "1e300"), "power.csv: power_w (row 6)", "got 1e+300"),
    "negative power": Case(_field(6, 2, "-5"), "power.csv: power_w (row 6)", "got -5.0"),
    "5 kW on one GPU": Case(_field(6, 2, "5000"), "power.csv: power_w (row 6)", "got 5000.0"),
    "power NaN": Case(_field(6, 2, "nan"), "power.csv: power_w (row 6)", "got nan"),
    "power sampled every 2 s": Case(_power(_sparse), "power.csv: no valid power on the grid", "readings 2 s apart"),
    "power.csv is a directory": Case(_replace("power.csv", Path.mkdir), "power.csv: not a file", "'a directory'"),
    "power.csv missing": Case(lambda r: (r / "power.csv").unlink(), "power.csv: file not found", "'no such file'"),
    # manifest.json
    "NaN clock offset": Case(_manifest_clock("local_utc_offset_s", float("nan")), "manifest.json: clock.local_utc_offset_s",
                             "got nan"),
    "clock offset in hours": Case(_manifest_clock("local_utc_offset_s", "-7"), "manifest.json: clock.local_utc_offset_s",
                                  "'\"-7\"'"),
    "clock offset of 3 days": Case(_manifest_clock("local_utc_offset_s", 259200), "manifest.json: clock.local_utc_offset_s",
                                   "got 259200"),
    "first timestamp not a string": Case(_manifest_clock("power_first_timestamp", 20260718),
                                         "manifest.json: clock.power_first_timestamp", "'20260718'"),
    "bad date": Case(_manifest_clock("power_first_timestamp", "2026/13/45 16:00:00"),
                     "manifest.json: clock.power_first_timestamp", "'2026/13/45 16:00:00'"),
    "tp not a number": Case(_json("manifest.json", lambda d: {**d, "tp": "1"}), "manifest.json: tp", "'\"1\"'"),
    "tp 2 for 1 GPU": Case(_json("manifest.json", lambda d: {**d, "tp": 2}), "power.csv: gpu", "got [0]"),
    "manifest a list": Case(_json("manifest.json", lambda d: [d]), "manifest.json: got 'a JSON list'", "a JSON object"),
    "manifest.json is a directory": Case(_replace("manifest.json", Path.mkdir), "manifest.json: not a file", "'a directory'"),
    # requests.json
    "request times in ms": Case(_requests(lambda d: d.update(request_timestamps=[t * 1000 for t in d["request_timestamps"]])),
                                "requests.json: request_timestamps[0]: looks like milliseconds", "got 1784415"),
    "request times a day late": Case(_requests(lambda d: d.update(request_timestamps=[t + 86400 for t in d["request_timestamps"]])),
                                     "requests.json: request_timestamps", "arrivals outside the engine log, got 1784"),
    "zero requests": Case(_requests(lambda d: d.update({k: [] for k in d})), "requests.json: request_timestamps",
                          "'0 requests'"),
    "fractional input length": Case(_requests(lambda d: d["input_lens"].__setitem__(3, 12.5)), "requests.json: input_lens[3]",
                                    "got 12.5"),
    "negative TTFT": Case(_requests(lambda d: d["ttfts"].__setitem__(2, -0.1)), "requests.json: ttfts[2]", "got -0.1"),
    "boolean output length": Case(_requests(lambda d: d["output_lens"].__setitem__(1, True)), "requests.json: output_lens[1]",
                                  "'true'"),
    "nested request time": Case(_requests(lambda d: d["request_timestamps"].__setitem__(0, [1, 2])),
                                "requests.json: request_timestamps[0]", "'[1, 2]'"),
    "requests not JSON": Case(lambda r: (r / "requests.json").write_text("{'request_timestamps': [1]}"),
                              "requests.json: not JSON", "Expecting property name"),
    "requests nested 100000 deep": Case(lambda r: (r / "requests.json").write_text("[" * 100_000), "requests.json: not JSON",
                                        "got '"),
    "requests not UTF-8": Case(lambda r: (r / "requests.json").write_bytes(b'{"a": "\xe9"}'),
                               "requests.json: not UTF-8 text at byte 7", r"b'\xe9"),
    "requests.json is a directory": Case(_replace("requests.json", Path.mkdir), "requests.json: not a file", "'a directory'"),
    # engine.csv
    "engine time steps back": Case(lambda r: _write(r / "engine.csv", (lambda ls: ls[:5] + [ls[6], ls[5]] + ls[7:])(_lines(r / "engine.csv"))),
                                   "engine.csv: t_epoch_s (row 7): time steps back", "got 1784415601"),
    "engine times in ms": Case(lambda r: _write(r / "engine.csv", [_lines(r / "engine.csv")[0]] + [
        f"{float(ln.split(',')[0]) * 1000:.0f}," + ln.split(",", 1)[1] for ln in _lines(r / "engine.csv")[1:]]),
        "engine.csv: t_epoch_s (row 2): looks like milliseconds", "got 1784415600050.0"),
    "negative running count": Case(lambda r: _write(r / "engine.csv", (lambda ls: ls[:3] + [ls[3].replace(",0.0,", ",-1.0,", 1)]
                                                                      + ls[4:])(_lines(r / "engine.csv"))),
                                   "engine.csv: running (row 4)", "got -1.0"),
    "engine.csv is a directory": Case(_replace("engine.csv", Path.mkdir), "engine.csv: not a file", "'a directory'"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_malformed_run_is_refused_in_one_line_naming_file_and_value(tmp_path, case):
    run = _run(tmp_path, case.n_gpus)
    load_run(run)                                  # the clean run loads
    case.mutate(run)
    with pytest.raises(DcsimInputError) as info:
        load_run(run)
    msg = _one_line(info.value)
    assert msg.startswith(f"{run}/{case.where}"), msg
    assert case.value in msg, msg
    assert "allowed: " in msg


def test_a_file_given_as_the_run_directory_is_not_called_missing(tmp_path):
    run = _run(tmp_path)
    with pytest.raises(DcsimInputError) as info:
        load_run(run / "power.csv")
    msg = _one_line(info.value)
    assert msg.startswith(f"{run / 'power.csv'}: not a directory, got 'a file'") and "not found" not in msg


def test_the_cli_prints_a_bad_run_as_one_line_and_exits_2(tmp_path, monkeypatch, capsys):
    run = _run(tmp_path)
    CASES["time 25:61:99"].mutate(run)
    monkeypatch.setattr(sys, "argv", ["dcsim", "calibrate", str(run), "--name", "x", "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2
    assert len(err.splitlines()) == 1 and "power.csv: time_local (row 5)" in err and "25:61:99" in err


# ---------------------------------------------------------------------------------- handled, not refused


def _same(a: MeasuredRun, b: MeasuredRun) -> None:
    assert a.t0_s == b.t0_s and a.segments == b.segments and a.power_lag_s == b.power_lag_s
    np.testing.assert_array_equal(a.power_w, b.power_w)
    for f in ("arrival_s", "n_in", "n_out", "ttft_s"):
        np.testing.assert_array_equal(getattr(a.requests, f), getattr(b.requests, f))


def _gpu1_first(lines):
    body = lines[1:]
    return lines[:1] + [row for pair in zip(body[1::2], body[0::2]) for row in pair]


def _blank_lines(lines):
    return lines[:1] + [""] + [x for ln in lines[1:] for x in (ln, "  ")]


FINE = {
    "GPU 1's row before GPU 0's at each time": (_power(_gpu1_first), 2),
    "an exact repeat of a row": (_power(lambda ls: ls[:11] + [ls[10]] + ls[11:]), 1),
    "a UTF-8 byte-order mark": (lambda r: (r / "power.csv").write_bytes(b"\xef\xbb\xbf" + (r / "power.csv").read_bytes()), 1),
    "blank lines": (_power(_blank_lines), 1),
    "requests in completion order": (_requests(lambda d: [d[k].reverse() for k in d]), 1),
    "TTFT unknown (null)": (_requests(lambda d: d["ttfts"].__setitem__(0, None)), 1),
}


@pytest.mark.parametrize("mutate, n_gpus", FINE.values(), ids=FINE.keys())
def test_harmless_variations_load_like_the_clean_run(tmp_path, mutate, n_gpus):
    clean = load_run(_run(tmp_path / "a", n_gpus))
    run = _run(tmp_path / "b", n_gpus)
    mutate(run)
    loaded = load_run(run)
    if mutate is FINE["TTFT unknown (null)"][0]:
        assert np.isnan(loaded.requests.ttft_s[0])
        loaded.requests.ttft_s[0] = clean.requests.ttft_s[0]
    _same(clean, loaded)


# ---------------------------------------------------------------------------------- the same run twice


def test_the_same_run_given_twice_is_refused(tmp_path):
    a = _run(tmp_path / "a")
    copy = tmp_path / "copy" / "run0"
    shutil.copytree(a, copy)
    b = write_synthetic_run(tmp_path / "b", duration_s=DURATION_S, seed=1)
    runs = {p: load_run(p) for p in (a, copy, b)}
    check_distinct_runs([runs[a], runs[b]])
    for twice, why in (([runs[a], runs[b], load_run(a)], "same directory"),
                       ([runs[a], runs[copy]], "identical power and request data")):
        with pytest.raises(DcsimInputError) as info:
            check_distinct_runs(twice)
        msg = _one_line(info.value)
        assert why in msg and str(a) in msg and msg.startswith("RUN_DIR: the same run given twice")


# ---------------------------------------------------------------------------------- random power.csv


_GOOD_ROW = st.builds(lambda s, g, p: f"16:00:{s:06.3f},{g},{p:.2f}",
                      st.floats(0, 59.999, allow_nan=False), st.integers(0, 2), st.floats(-10, 4000, allow_nan=False))
_FIELD = st.one_of(st.text(max_size=12), st.sampled_from(["16:00:01.000", "0", "1", "0.5", "nan", "inf", "-1", "1e300",
                                                          "25:61:99", "", '"', "\x00", "80.0 W", "[N/A]"]))
_ROW = st.one_of(_GOOD_ROW, st.lists(_FIELD, max_size=5).map(",".join))
_HEADER = st.sampled_from(["time_local,gpu,power_w", "timestamp, index, power.draw [W]", "time_local,gpu", "a,b,c"])


@st.composite
def _power_csv(draw) -> bytes:
    kind = draw(st.sampled_from(["bytes", "rows", "mutated"]))
    if kind == "bytes":
        return draw(st.binary(max_size=400))
    if kind == "rows":
        return ("\n".join([draw(_HEADER)] + draw(st.lists(_ROW, max_size=30))) + "\n").encode("utf-8", "surrogatepass")
    return b""                                      # 'mutated': edit the valid file (below)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=_power_csv(), edits=st.lists(st.tuples(st.integers(1, 160), st.integers(0, 2), _FIELD), max_size=4),
       drop=st.lists(st.integers(1, 160), max_size=20))
def test_any_power_csv_gives_a_run_or_one_input_error(tmp_path, content, edits, drop):
    run = tmp_path / "synthetic" / "run0"
    if not run.is_dir():
        _run(tmp_path)
        (tmp_path / "valid.csv").write_bytes((run / "power.csv").read_bytes())
    if content:
        (run / "power.csv").write_bytes(content)
    else:
        lines = (tmp_path / "valid.csv").read_text().splitlines()
        for row, col, value in edits:
            if row < len(lines):
                fields = lines[row].split(",")
                fields[col] = value
                lines[row] = ",".join(fields)
        lines = [ln for k, ln in enumerate(lines) if k not in set(drop)]
        (run / "power.csv").write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    try:
        loaded = load_run(run)
    except DcsimInputError as exc:
        _one_line(exc)
    else:
        assert isinstance(loaded, MeasuredRun) and np.isfinite(loaded.power_w).any()


# ---------------------------------------------------------------------------------- artifact folders


@pytest.fixture
def config_dir(tmp_path) -> Path:
    """A copy of a shipped configuration, its checksums dropped (as in a hand-assembled folder)."""
    folder = tmp_path / "cfg"
    shutil.copytree(shipped_dir() / "qwen3-8b_a100_tp1", folder)
    meta = json.loads((folder / "meta.json").read_text())
    del meta["checksums_sha256"]
    (folder / "meta.json").write_text(json.dumps(meta))
    load_config(folder)
    return folder


def _edit_json(name: str, edit: Callable[[dict], object]) -> Callable[[Path], None]:
    def apply(folder):
        (folder / name).write_text(json.dumps(edit(json.loads((folder / name).read_text()))))
    return apply


def _without(key: str) -> Callable[[dict], dict]:
    return lambda d: {k: v for k, v in d.items() if k != key}


ARTIFACT_CASES = {
    "meta.json a list": (_edit_json("meta.json", lambda d: [d]), "meta.json: got 'a JSON list'"),
    "meta.json not JSON": (lambda f: (f / "meta.json").write_text("{"), "meta.json: not JSON"),
    "meta.json not UTF-8": (lambda f: (f / "meta.json").write_bytes(b"\xff{}"), "meta.json: not UTF-8 text at byte 0"),
    "meta n_gpus a word": (_edit_json("meta.json", lambda d: {**d, "n_gpus": "two"}), "meta.json: n_gpus: got '\"two\"'"),
    "meta checksums a list": (_edit_json("meta.json", lambda d: {**d, "checksums_sha256": []}),
                              "meta.json: checksums_sha256: got '[]'"),
    "surrogate.json not JSON": (lambda f: (f / "surrogate.json").write_text("alpha0 = 1"), "surrogate.json: not JSON"),
    "surrogate.json missing key": (_edit_json("surrogate.json", _without("alpha1")), "surrogate.json: alpha1"),
    "surrogate.json wrong type": (_edit_json("surrogate.json", lambda d: {**d, "alpha0": "fast"}),
                                  "surrogate.json: alpha0: got 'fast'"),
    "surrogate.json a list": (_edit_json("surrogate.json", lambda d: list(d)), "surrogate.json: got 'a JSON list'"),
    "states.json not JSON": (lambda f: (f / "states.json").write_text(""), "states.json: not JSON"),
    "states.json missing key": (_edit_json("states.json", _without("means_w")), "states.json: got ["),
    "states.json wrong type": (_edit_json("states.json", lambda d: {**d, "weights": "equal"}),
                               "states.json: unusable contents, got \"could not convert string to float: 'equal'\""),
    "states.json bad phi": (_edit_json("states.json", lambda d: {**d, "phi": [2.0] * len(d["means_w"])}),
                            "states.json: phi: got [2.0"),
    "tokens.json not JSON": (lambda f: (f / "tokens.json").write_text("[1, 2"), "tokens.json: not JSON"),
    "tokens.json missing key": (_edit_json("tokens.json", _without("n_out_quantiles")),
                                "tokens.json: n_out_quantiles: got 'missing'"),
    "tokens.json wrong type": (_edit_json("tokens.json", lambda d: {**d, "n_in_quantiles": "many"}),
                               "tokens.json: n_in_quantiles: got '\"many\"'"),
    "tokens.json unequal lengths": (_edit_json("tokens.json", lambda d: {**d, "n_in_quantiles": d["n_in_quantiles"][:5]}),
                                    "tokens.json: got {'n_in_quantiles': 5, 'n_out_quantiles': 101}"),
    "classifier.pt text": (lambda f: (f / "classifier.pt").write_text("not a model"),
                           "classifier.pt: unreadable classifier"),
    "classifier.pt a tensor": (lambda f: torch.save(torch.zeros(3), f / "classifier.pt"),
                               "classifier.pt: unreadable classifier"),
    "classifier.pt without feature scaling": (
        lambda f: torch.save({k: v for k, v in torch.load(f / "classifier.pt", weights_only=True).items()
                              if k != "feature_mean"}, f / "classifier.pt"), "classifier.pt: unreadable classifier"),
    "classifier.pt a directory": (lambda f: ((f / "classifier.pt").unlink(), (f / "classifier.pt").mkdir()),
                                  "classifier.pt: not a file"),
    "tokens.json missing": (lambda f: (f / "tokens.json").unlink(), "tokens.json: artifact file missing"),
}


@pytest.mark.filterwarnings("ignore:Using a non-tuple sequence")   # torch, indexing a tensor saved as classifier.pt
@pytest.mark.parametrize("corrupt, start", ARTIFACT_CASES.values(), ids=ARTIFACT_CASES.keys())
def test_a_corrupt_artifact_is_refused_in_one_line_naming_the_file(config_dir, corrupt, start):
    corrupt(config_dir)
    with pytest.raises(DcsimInputError) as info:
        load_config(config_dir)
    msg = _one_line(info.value)
    assert msg.startswith(f"{config_dir}/{start}"), msg
    assert "allowed: " in msg


def test_a_changed_artifact_with_checksums_is_refused_as_changed(tmp_path):
    folder = tmp_path / "cfg"
    shutil.copytree(shipped_dir() / "qwen3-8b_a100_tp1", folder)
    (folder / "surrogate.json").write_text("{")
    with pytest.raises(DcsimInputError) as info:
        load_config(folder)
    assert _one_line(info.value).startswith(f"{folder}/surrogate.json: artifact changed after calibration")


def test_a_file_given_as_config_is_not_called_unknown(tmp_path):
    path = tmp_path / "meta.json"
    path.write_text("{}")
    with pytest.raises(DcsimInputError) as info:
        load_config(path)
    assert "a file, not a configuration folder" in _one_line(info.value)
