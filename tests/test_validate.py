"""Validation claims on measured runs the shipped configurations never trained on (skip without ../shared/data)."""
from __future__ import annotations

import numpy as np
import pytest

from dcsim.errors import DcsimInputError
from dcsim.measured import load_run
from dcsim.configs import load_config
from dcsim.studies.validate import score, scored_mask, validate


def test_bursty_arrivals_never_seen_in_training_are_reproduced(run_dir):
    config = load_config("qwen3-8b_a100_tp1", power_model="bigru")  # the structured model trained on every run
    run = load_run(run_dir("arrival_pattern_qwen3-8b_a100_bursty"))
    result = validate(config, run, seeds=3)
    assert result.scored.startswith("all")
    assert result.ks <= 0.2
    assert result.acf_r2 >= 0.9
    assert abs(result.delta_energy_pct) <= 5.0


def test_a_run_that_trained_in_blocks_is_scored_only_on_its_test_block(run_dir):
    config = load_config("llama-3.1-70b_h100_tp4", power_model="bigru")
    run = load_run(run_dir("h100_tp4_state_control"))
    mask, said = scored_mask(config, run)
    assert "held-out test samples" in said
    assert 0.1 < mask.mean() < 0.2


def test_a_whole_training_run_is_refused(run_dir):
    config = load_config("qwen3-8b_a100_tp1")
    with pytest.raises(DcsimInputError, match="whole train run"):
        validate(config, load_run(run_dir("validate_qwen3-8b_a100")), seeds=1)


def test_a_run_of_another_server_size_is_refused(run_dir):
    config = load_config("qwen3-8b_a100_tp1")
    with pytest.raises(DcsimInputError, match="GPUs per server"):
        validate(config, load_run(run_dir("h100_tp4_state_control")), seeds=1)


def test_score_of_a_trace_against_itself_is_perfect():
    rng = np.random.default_rng(0)
    x = np.repeat(rng.uniform(100, 400, 40), 5) + rng.normal(0, 5, 200)
    s = score(x, x, np.ones(200, bool), 0.25)
    assert s == {"ks": 0.0, "acf_r2": 1.0, "nrmse": 0.0, "delta_energy_pct": 0.0}


def test_score_uses_fewer_lags_on_a_short_block():
    rng = np.random.default_rng(1)
    x = rng.normal(300, 10, 100)
    mask = np.zeros(100, bool)
    mask[10:40] = True
    assert np.isfinite(score(x, x + rng.normal(0, 1, 100), mask, 0.25)["acf_r2"])


def test_a_run_the_structured_model_trained_on_is_refused(run_dir):
    config = load_config("llama-3.1-70b_h100_tp4")
    assert config.power_model == "structured"
    with pytest.raises(DcsimInputError, match="whole train run of the structured power model"):
        validate(config, load_run(run_dir("h100_tp4_state_control")), seeds=1)
