"""Never lose a user's file (issue #9): a folder holding a user's thesis and the scenario itself goes through every
command and option that writes, and every byte of the user's files is still there afterwards.

What may be replaced, decided here:

- a folder output (``run --out``, ``calibrate --out``) must be new or empty; ``--overwrite`` replaces only a folder
  dcsim wrote (its ``.dcsim-output`` lists the files it wrote) holding nothing else: a file a user added to it,
  or any folder of theirs, is never deleted;
- a file output (``generate --out``, ``validate --plot``) that exists is refused; with ``--overwrite`` it is
  replaced, because the user named that very file and asked for it to be replaced (an output of the wrong kind,
  a ``.tex`` or a folder, is refused whatever the options).
"""
from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from cli_helpers import CONFIG, dcsim, everything_under, small_scenario
from dcsim.io import OUTPUT_MARKER
from synthetic_runs import write_synthetic_run

THESIS = "\\chapter{Results}\nPeak 537.9 kW \u2014 do not lose this.\n".encode()
FIGURE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # a user's own PNG (not one dcsim drew)
NOTES = b"arrival_s,n_in,n_out\n1.0,100,20\n"            # a user's CSV that looks like a table


@pytest.fixture
def desk(tmp_path: Path) -> Path:
    """A user's folder: thesis.tex, figure.png, notes.csv and the scenario file itself (hall.toml)."""
    folder = tmp_path / "desk"
    folder.mkdir()
    (folder / "thesis.tex").write_bytes(THESIS)
    (folder / "figure.png").write_bytes(FIGURE)
    (folder / "notes.csv").write_bytes(NOTES)
    small_scenario(folder)
    return folder


@pytest.fixture
def measured(tmp_path: Path) -> Path:
    return write_synthetic_run(tmp_path / "runs", duration_s=60.0)


def refused(monkeypatch, capsys, *args: str, says: str = "") -> str:
    code, _, stderr = dcsim(monkeypatch, capsys, *args)
    assert code == 2 and stderr.count("\n") == 1 and stderr.startswith("dcsim: error: "), (code, stderr)
    assert says in stderr, stderr
    return stderr


def ok(monkeypatch, capsys, *args: str) -> None:
    code, _, stderr = dcsim(monkeypatch, capsys, *args)
    assert code == 0, stderr


def test_run_never_replaces_a_users_folder_nor_a_file_in_the_way(desk, monkeypatch, capsys):
    before = everything_under(desk)
    scenario = str(desk / "hall.toml")
    refused(monkeypatch, capsys, "run", scenario, "--out", str(desk), "--quiet", says="folder exists and is not empty")
    refused(monkeypatch, capsys, "run", scenario, "--out", str(desk), "--overwrite", "--quiet",
            says="not a folder dcsim wrote")
    for name in ("thesis.tex", "hall.toml"):
        for extra in ([], ["--overwrite"]):
            refused(monkeypatch, capsys, "run", scenario, "--out", str(desk / name), "--quiet", *extra,
                    says="a file is in the way")
    monkeypatch.chdir(desk)
    refused(monkeypatch, capsys, "run", "hall.toml", "--out", ".", "--overwrite", "--quiet", says="working folder")
    assert everything_under(desk) == before


def test_a_second_run_into_a_folder_dcsim_wrote_needs_overwrite_and_then_works(desk, monkeypatch, capsys):
    out = desk / "out"
    scenario = str(desk / "hall.toml")
    ok(monkeypatch, capsys, "run", scenario, "--out", str(out), "--quiet")
    first = (out / "summary.json").read_bytes()
    user = {k: v for k, v in everything_under(desk).items() if not k.startswith("out")}
    refused(monkeypatch, capsys, "run", scenario, "--out", str(out), "--quiet", "--set", "simulation.seed=1",
            says="folder exists and is not empty")
    assert (out / "summary.json").read_bytes() == first
    ok(monkeypatch, capsys, "run", scenario, "--out", str(out), "--quiet", "--overwrite", "--set", "simulation.seed=1")
    assert (out / "summary.json").read_bytes() != first and (out / OUTPUT_MARKER).is_file()
    assert sorted(p.name for p in desk.iterdir()) == ["figure.png", "hall.toml", "notes.csv", "out", "thesis.tex"]
    assert {k: v for k, v in everything_under(desk).items() if not k.startswith("out")} == user


def test_a_file_the_user_put_into_a_folder_dcsim_wrote_stops_overwrite(desk, monkeypatch, capsys):
    out = desk / "out"
    scenario = str(desk / "hall.toml")
    ok(monkeypatch, capsys, "run", scenario, "--out", str(out), "--quiet")
    (out / "my_notes.txt").write_text("what I saw in this run\n")
    (out / "hall.toml").write_bytes((desk / "hall.toml").read_bytes())  # a copy of the scenario kept with it
    before = everything_under(desk)
    refused(monkeypatch, capsys, "run", scenario, "--out", str(out), "--quiet", "--overwrite",
            says="it also holds 'hall.toml', 'my_notes.txt', which dcsim did not write")
    assert everything_under(desk) == before


def test_calibrate_never_replaces_a_users_folder(desk, measured, monkeypatch, capsys):
    before = everything_under(desk)
    for extra in ([], ["--overwrite"]):
        refused(monkeypatch, capsys, "calibrate", "--name", "mine", "--out", str(desk), *extra, str(measured),
                says="--out")
        refused(monkeypatch, capsys, "calibrate", "--name", "mine", "--out", str(desk / "thesis.tex"), *extra,
                str(measured), says="a file is in the way")
    assert everything_under(desk) == before


def test_a_second_calibration_into_its_folder_needs_overwrite_and_then_works(desk, measured, monkeypatch, capsys):
    before = everything_under(desk)
    out = desk / "mine"
    args = ["calibrate", "--name", "mine", "--epochs", "3", "--out", str(out), str(measured)]
    ok(monkeypatch, capsys, *args)
    refused(monkeypatch, capsys, *args, says="folder exists and is not empty")
    ok(monkeypatch, capsys, *args, "--overwrite")
    assert (out / "meta.json").is_file() and (out / OUTPUT_MARKER).is_file()
    assert {k: v for k, v in everything_under(desk).items() if not k.startswith("mine")} == before


def test_generate_refuses_an_existing_file_and_replaces_it_only_when_asked_by_name(desk, monkeypatch, capsys):
    gen = ["generate", "--config", CONFIG, "--rate", "2", "--duration-s", "10", "--warm-up-s", "0"]
    before = everything_under(desk)
    refused(monkeypatch, capsys, *gen, "--out", str(desk / "notes.csv"), says="file exists")
    for extra in ([], ["--overwrite"]):
        refused(monkeypatch, capsys, *gen, "--out", str(desk / "thesis.tex"), *extra, says="unknown output format")
        refused(monkeypatch, capsys, *gen, "--out", str(desk / "hall.toml"), *extra, says="unknown output format")
    assert everything_under(desk) == before
    ok(monkeypatch, capsys, *gen, "--out", str(desk / "notes.csv"), "--overwrite")  # named, and asked for
    assert pl.read_csv(desk / "notes.csv").columns == ["t_s", "active", "power_w"]
    after = everything_under(desk)
    assert {k: v for k, v in after.items() if k != "notes.csv"} == {k: v for k, v in before.items() if k != "notes.csv"}


def test_validate_refuses_an_existing_plot_and_replaces_it_only_when_asked_by_name(desk, measured, monkeypatch,
                                                                                     capsys):
    val = ["validate", "--config", CONFIG, "--measured", str(measured), "--seeds", "1"]
    before = everything_under(desk)
    refused(monkeypatch, capsys, *val, "--plot", str(desk / "figure.png"), says="file exists")
    for extra in ([], ["--overwrite"]):
        refused(monkeypatch, capsys, *val, "--plot", str(desk / "thesis.tex"), *extra, says="not a PNG path")
        refused(monkeypatch, capsys, *val, "--plot", str(desk), *extra, says="--plot")
    assert everything_under(desk) == before
    ok(monkeypatch, capsys, *val, "--plot", str(desk / "figure.png"), "--overwrite")
    assert (desk / "figure.png").read_bytes() != FIGURE
    assert (desk / "figure.png").read_bytes().startswith(b"\x89PNG")
    after = everything_under(desk)
    assert {k: v for k, v in after.items() if k != "figure.png"} == {k: v for k, v in before.items()
                                                                    if k != "figure.png"}
