"""Configuration artifacts: round trip, integrity checks, shipped configurations found by any install."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dcsim.errors import DcsimInputError
from dcsim.workload.tokens import TokenQuantiles
from dcsim.configs import list_configs, load_config, resolve_config_dir, shipped_names

REPO = Path(__file__).resolve().parents[1]
EXPECTED_SHIPPED = {"qwen3-8b_a100_tp1", "qwen3-8b_h100_tp1", "llama-3.1-70b_h100_tp4", "gemma-4-26b-a4b_a100_tp2"}


def test_every_promised_configuration_ships():
    assert EXPECTED_SHIPPED <= set(shipped_names())


@pytest.mark.parametrize("name", sorted(EXPECTED_SHIPPED))
def test_shipped_configuration_loads_with_its_provenance(name):
    config = load_config(name)
    assert config.states.k_ == config.meta["k"] >= 2
    assert config.meta["runs"] and config.meta["provenance"]
    assert config.n_gpus == {"llama-3.1-70b_h100_tp4": 4, "gemma-4-26b-a4b_a100_tp2": 2}.get(name, 1)
    assert config.states.ar1 == (name in ("gemma-4-26b-a4b_a100_tp2", "llama-3.1-70b_h100_tp4"))  # AR(1)


def test_configs_listing_names_k_gpus_and_training_data():
    rows = {r["name"]: r for r in list_configs()}
    assert rows["llama-3.1-70b_h100_tp4"]["n_gpus"] == 4
    assert all(r["train_samples"] > 0 and r["train_runs"] for r in rows.values())


def test_unknown_configuration_is_refused_with_the_shipped_names():
    with pytest.raises(DcsimInputError, match="unknown configuration.*qwen3-8b_a100_tp1"):
        resolve_config_dir("qwen-9000_tpu")


def test_a_tampered_artifact_is_refused(tmp_path):
    copy = tmp_path / "cfg"
    shutil.copytree(resolve_config_dir("qwen3-8b_a100_tp1"), copy)
    states = json.loads((copy / "states.json").read_text())
    (copy / "states.json").write_text(json.dumps(states) + " ")
    with pytest.raises(DcsimInputError, match="checksum"):
        load_config(copy)


def test_a_folder_without_meta_is_not_a_configuration(tmp_path):
    with pytest.raises(DcsimInputError, match="not a calibrated configuration"):
        resolve_config_dir(tmp_path)


def test_token_quantiles_sample_within_their_range_and_keep_the_mean():
    tq = TokenQuantiles.from_requests(np.arange(1, 1001), np.full(1000, 50))
    n_in, n_out = tq.sample(20000, np.random.default_rng(0))
    assert n_in.min() >= 1 and n_in.max() <= 1000 and np.all(n_out == 50)
    assert n_in.mean() == pytest.approx(500.5, rel=0.02)
    assert tq.mean_tokens()[0] == pytest.approx(500.5, rel=0.01)


def test_a_normal_non_editable_install_finds_the_shipped_artifacts(tmp_path):
    target = tmp_path / "site"
    build = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(REPO)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-2000:]
    code = ("import dcsim, dcsim.scenario, dcsim.configs as c; print(dcsim.__file__); "
            "print(sorted(c.shipped_names()));"
            "print(c.load_config('qwen3-8b_a100_tp1').states.k_)")
    env = dict(os.environ, PYTHONPATH=str(target))
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert probe.returncode == 0, probe.stderr[-2000:]
    where, names, k = probe.stdout.strip().splitlines()
    assert where.startswith(str(target))
    assert EXPECTED_SHIPPED <= set(eval(names))
    assert int(k) >= 2
