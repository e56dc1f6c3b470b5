"""An existing user file survives every command and option: nothing dcsim writes replaces a file it did not write,
unless the user named that very file and said --overwrite."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from synthetic_runs import write_synthetic_run
from test_cli import run_cli

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--set", "simulation.duration_s=20", "--set", "simulation.warm_up_s=0", "--set",
         "outputs.resolutions_s=[1.0]", "--set", "outputs.plot=false", "--quiet"]


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def desk(tmp_path):
    """A user's folder: a thesis and the scenario file itself."""
    desk = tmp_path / "desk"
    desk.mkdir()
    (desk / "thesis.tex").write_text("\\chapter{Years of work}\n")
    (desk / "hall.toml").write_bytes((REPO / "scenarios" / "default.toml").read_bytes())
    return desk


@pytest.mark.parametrize("extra", [[], ["--overwrite"]])
def test_run_into_a_users_folder_is_refused_with_or_without_overwrite(monkeypatch, capsys, desk, extra):
    before = digests(desk)
    code, _, err = run_cli(monkeypatch, capsys, "run", str(desk / "hall.toml"), "--out", str(desk), *SMALL, *extra)
    assert code == 2 and err.count("\n") == 1 and err.startswith("dcsim: error: --out")
    assert digests(desk) == before
    assert sorted(p.name for p in desk.parent.iterdir()) == ["desk"]  # no hidden .tmp-* left beside it


def test_a_second_run_into_a_folder_dcsim_wrote_needs_overwrite(monkeypatch, capsys, desk, tmp_path):
    out = tmp_path / "out"
    args = ["run", str(desk / "hall.toml"), "--out", str(out), *SMALL]
    assert run_cli(monkeypatch, capsys, *args)[0] == 0
    first = digests(out)
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert code == 2 and "--overwrite" in err and digests(out) == first
    assert run_cli(monkeypatch, capsys, *args, "--overwrite")[0] == 0
    assert (out / "summary.json").is_file() and (out / ".dcsim-output").is_file()


def test_generate_never_replaces_a_file_unless_it_is_named_with_overwrite(monkeypatch, capsys, desk):
    target = desk / "thesis.tex"
    before = digests(desk)
    base = ["generate", "--config", "qwen3-8b_a100_tp1", "--rate", "1", "--duration-s", "10"]
    code, _, err = run_cli(monkeypatch, capsys, *base, "--out", str(target))  # not .parquet/.csv
    assert code == 2 and digests(desk) == before
    existing = desk / "mine.parquet"
    existing.write_bytes(b"my own table")
    code, _, err = run_cli(monkeypatch, capsys, *base, "--out", str(existing))
    assert code == 2 and "file exists" in err and existing.read_bytes() == b"my own table"
    assert run_cli(monkeypatch, capsys, *base, "--out", str(existing), "--overwrite")[0] == 0  # the user asked
    assert existing.read_bytes() != b"my own table"
    assert digests(desk)["thesis.tex"] == before["thesis.tex"] and digests(desk)["hall.toml"] == before["hall.toml"]


@pytest.mark.parametrize("extra", [[], ["--overwrite"]])
def test_calibrate_into_a_users_folder_is_refused_before_fitting(monkeypatch, capsys, desk, tmp_path, extra):
    run = write_synthetic_run(tmp_path / "runs")
    before = digests(desk)
    code, _, err = run_cli(monkeypatch, capsys, "calibrate", str(run), "--name", "mine", "--out", str(desk),
                           "--epochs", "1", *extra)
    assert code == 2 and "dcsim: error: --out" in err
    assert digests(desk) == before


def test_validate_never_replaces_an_existing_plot(monkeypatch, capsys, desk, run_dir):
    plot = desk / "figure.png"
    plot.write_bytes(b"\x89PNG my figure")
    code, _, err = run_cli(monkeypatch, capsys, "validate", "--config", "qwen3-8b_a100_tp1", "--measured",
                           str(run_dir("arrival_pattern_qwen3-8b_a100_bursty")), "--seeds", "1", "--plot", str(plot),
                           "--power-model", "bigru")
    assert code == 2 and "file exists" in err and plot.read_bytes() == b"\x89PNG my figure"
