"""Calibration end to end on synthetic runs: fit, write the artifact folder, load it, validate on held-out data."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dcsim.calibrate import block_masks, calibrate, split_runs
from dcsim.errors import DcsimInputError
from dcsim.measured import load_run
from dcsim.configs import load_config
from dcsim.studies.validate import validate
from synthetic_runs import write_synthetic_run

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    dirs = [write_synthetic_run(root, f"synthetic/run{i}", seed=i, rate_per_s=r) for i, r in enumerate([2.0, 3.0, 2.5])]
    out = root / "artifact"
    config = calibrate("synthetic_a100_tp1", dirs, roles=["train", "val", "test"], feature_draws=2, epochs=40,
                       out_dir=out)
    return dirs, out, config


def test_three_runs_are_split_as_whole_runs_and_one_run_in_time_blocks(tmp_path):
    dirs = [write_synthetic_run(tmp_path, f"s/run{i}", seed=i) for i in range(3)]
    runs = [load_run(d) for d in dirs]
    assert sorted(s.role for s in split_runs(runs)) == ["test", "train", "val"]
    (single,) = split_runs(runs[:1])
    assert single.role == "blocks"
    total = len(single.run.power_w)
    assert abs(single.test.sum() - 0.15 * total) <= 2 and abs(single.val.sum() - 0.15 * total) <= 2
    assert not (single.train & single.test).any() and not (single.val & single.test).any()


def test_time_blocks_hold_load_not_just_the_idle_tail(tmp_path):
    run = load_run(write_synthetic_run(tmp_path, seed=4))
    _, _, test = block_masks(run)
    assert np.nanmean(run.running[test]) > 0.5


def test_artifact_folder_has_every_file_and_its_provenance(calibrated):
    dirs, out, config = calibrated
    for f in ("meta.json", "states.json", "surrogate.json", "tokens.json", "classifier.pt", "power_model.json"):
        assert (out / f).is_file()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["k"] == config.states.k_ and meta["bic_curve"]
    assert {r["role"] for r in meta["runs"]} == {"train", "val", "test"}
    assert set(meta["checksums_sha256"]) == {"states.json", "surrogate.json", "tokens.json", "classifier.pt",
                                             "power_model.json"}
    test_runs = {r["name"] for r in meta["runs"] if r["role"] == "test"}
    assert meta["power_model_runs"] and not test_runs & set(meta["power_model_runs"])  # the test run is held out
    assert load_config(out).power_model == "structured"
    assert meta["split"]["n_train_samples"] > 0


def test_loaded_configuration_generates_like_the_fitted_one(calibrated):
    _, out, config = calibrated
    loaded = load_config(out)
    active = np.concatenate([np.zeros(40), np.full(80, 6.0), np.zeros(40)])
    from dcsim.power.chain import power_from_active

    a = power_from_active(config, active, np.random.default_rng(3))
    b = power_from_active(loaded, active, np.random.default_rng(3))
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_surrogate_recovers_the_synthetic_latencies(calibrated):
    _, _, config = calibrated
    assert config.surrogate.alpha1_ == pytest.approx(0.25, abs=0.1)
    assert np.exp(config.surrogate.mu_log_tbt_) == pytest.approx(0.014, rel=0.15)


def test_held_out_run_is_reproduced_closely(calibrated):
    dirs, out, config = calibrated
    test_run = next(r for r in config.meta["runs"] if r["role"] == "test")
    run = load_run(next(d for d in dirs if str(d).endswith(test_run["name"].split("/")[-1])))
    result = validate(load_config(out), run, seeds=2)
    assert result.scored.startswith("all")
    assert result.ks < 0.3 and abs(result.delta_energy_pct) < 10


def test_a_whole_training_run_cannot_be_scored(calibrated):
    dirs, out, config = calibrated
    train_name = next(r["name"] for r in config.meta["runs"] if r["role"] == "train")
    run = load_run(next(d for d in dirs if str(d).endswith(train_name.split("/")[-1])))
    with pytest.raises(DcsimInputError, match="whole train run"):
        validate(config, run, seeds=1)


def test_runs_of_different_server_sizes_are_refused(tmp_path):
    a = write_synthetic_run(tmp_path, "s/one", n_gpus=1)
    b = write_synthetic_run(tmp_path, "s/two", n_gpus=2)
    with pytest.raises(DcsimInputError, match="mix server sizes"):
        calibrate("mixed", [a, b], epochs=1, feature_draws=1)


@pytest.mark.slow
def test_recalibrating_the_shipped_qwen_a100_from_the_measured_runs_meets_the_dense_targets(run_dir, tmp_path):
    """Slow (~2 min): the fit_all recipe for qwen3-8b_a100_tp1, scored on the bursty run it never saw."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "calibration"))
    from fit_all import SHIPPED

    spec = SHIPPED["qwen3-8b_a100_tp1"]["runs"]
    fit = [(run_dir(c), r) for c, r in spec.items() if r != "test"]
    config = calibrate("qwen_check", [d for d, _ in fit], roles=[r for _, r in fit], out_dir=tmp_path / "cfg")
    result = validate(load_config(tmp_path / "cfg"), load_run(run_dir("arrival_pattern_qwen3-8b_a100_bursty")), seeds=5)
    assert result.ks <= 0.2 and result.acf_r2 >= 0.95 and abs(result.delta_energy_pct) <= 5
