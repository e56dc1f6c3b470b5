"""The command line as a user meets it: outputs, one-line errors, exit codes."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from cli_helpers import dcsim as run_cli  # the one in-process CLI runner


def test_generate_writes_a_250ms_trace_and_prints_a_summary(monkeypatch, capsys, tmp_path):
    out = tmp_path / "trace.parquet"
    code, stdout, _ = run_cli(monkeypatch, capsys, "generate", "--config", "qwen3-8b_a100_tp1", "--rate", "2",
                              "--duration-s", "120", "--seed", "1", "--out", str(out))
    assert code == 0
    frame = pl.read_parquet(out)
    assert frame.columns == ["t_s", "active", "power_w"] and frame.height == 480
    assert np.allclose(np.diff(frame["t_s"].to_numpy()), 0.25)
    assert "GPU power mean" in stdout


def test_generate_is_reproducible_for_a_seed(monkeypatch, capsys, tmp_path):
    paths = [tmp_path / f"{i}.csv" for i in range(2)]
    for p in paths:
        run_cli(monkeypatch, capsys, "generate", "--config", "qwen3-8b_a100_tp1", "--rate", "3", "--duration-s", "60",
                "--seed", "7", "--out", str(p))
    assert paths[0].read_text() == paths[1].read_text()


def test_generate_from_a_request_file(monkeypatch, capsys, tmp_path):
    req = tmp_path / "req.csv"
    pl.DataFrame({"arrival_s": [1.0, 2.0, 2.5], "n_in": [100, 200, 50], "n_out": [50, 80, 20]}).write_csv(req)
    code, _, _ = run_cli(monkeypatch, capsys, "generate", "--config", "qwen3-8b_a100_tp1", "--requests", str(req),
                         "--duration-s", "20", "--out", str(tmp_path / "t.parquet"))
    assert code == 0
    assert pl.read_parquet(tmp_path / "t.parquet")["active"].max() > 0


@pytest.mark.parametrize("args, says", [
    (["generate", "--config", "nope", "--rate", "1", "--duration-s", "10"], "unknown configuration"),
    (["generate", "--config", "qwen3-8b_a100_tp1", "--rate", "-1", "--duration-s", "10"], "--rate"),
    (["generate", "--config", "qwen3-8b_a100_tp1", "--rate", "nan", "--duration-s", "10"], "--rate"),
    (["generate", "--config", "qwen3-8b_a100_tp1", "--duration-s", "10"], "exactly one of"),
    (["validate", "--config", "qwen3-8b_a100_tp1", "--measured", "/nonexistent/run"], "/nonexistent/run"),
])
def test_bad_input_is_one_line_and_exit_code_2(monkeypatch, capsys, tmp_path, args, says):
    code, stdout, stderr = run_cli(monkeypatch, capsys, *args, *(["--out", str(tmp_path / "x.parquet")]
                                                                  if args[0] == "generate" else []))
    assert code == 2
    assert says in stderr and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.parquet").exists()


@pytest.mark.parametrize("content, says", [("", "empty"), ("arrival_s,n_in\n1,2\n", "missing columns"),
                                           ("arrival_s,n_in,n_out\n1,nan,3\n", "n_in"),
                                           ("arrival_s,n_in,n_out\n-1,5,3\n", "arrival_s")])
def test_bad_request_files_are_named(monkeypatch, capsys, tmp_path, content, says):
    req = tmp_path / "req.csv"
    req.write_text(content)
    code, _, stderr = run_cli(monkeypatch, capsys, "generate", "--config", "qwen3-8b_a100_tp1", "--requests", str(req),
                              "--out", str(tmp_path / "t.parquet"))
    assert code == 2 and str(req) in stderr and says in stderr


def test_configs_lists_every_shipped_configuration(monkeypatch, capsys):
    code, stdout, _ = run_cli(monkeypatch, capsys, "configs")
    assert code == 0
    for name in ("qwen3-8b_a100_tp1", "llama-3.1-70b_h100_tp4", "gemma-4-26b-a4b_a100_tp2"):
        assert name[:12] in stdout


def test_validate_json_prints_exactly_one_object(monkeypatch, capsys, run_dir, tmp_path):
    run = run_dir("arrival_pattern_qwen3-8b_a100_bursty")
    png = tmp_path / "overlay.png"
    code, stdout, _ = run_cli(monkeypatch, capsys, "validate", "--config", "qwen3-8b_a100_tp1", "--measured", str(run),
                              "--seeds", "2", "--json", "--plot", str(png), "--power-model", "bigru")
    assert code == 0
    result = json.loads(stdout)
    assert set(result) == {"config", "run", "seeds", "ks", "acf_r2", "nrmse", "delta_energy_pct"}
    assert result["seeds"] == 2 and png.stat().st_size > 10_000
