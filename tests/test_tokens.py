"""Token-length sources: fixed, lognormal, empirical (joint resampling, rescaling), shipped tables."""
from __future__ import annotations

import configparser
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dcsim.errors import DcsimInputError
from dcsim.workload.tokens import (EmpiricalTokens, FixedTokens, LognormalTokens, TokenSource,
                                   round_stochastic)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "dcsim" / "workload" / "data"


def rng(seed: int = 7) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_fixed_tokens_give_the_same_lengths_to_every_request():
    n_in, n_out = FixedTokens(512, 64).sample(5, rng())
    assert n_in.dtype == np.int64 and n_out.dtype == np.int64
    assert n_in.tolist() == [512] * 5 and n_out.tolist() == [64] * 5


def test_lognormal_tokens_have_the_requested_medians_and_are_at_least_one():
    src = LognormalTokens(median_in=800, sigma_in=0.8, median_out=150, sigma_out=1.0)
    n_in, n_out = src.sample(20_000, rng())
    assert abs(np.median(n_in) / 800 - 1) < 0.04 and abs(np.median(n_out) / 150 - 1) < 0.04
    assert n_in.min() >= 1 and n_out.min() >= 1
    assert abs(n_in.mean() / src.mean_tokens()[0] - 1) < 0.04


def test_empirical_tokens_resample_whole_pairs():
    table_in, table_out = np.array([10, 200, 3000]), np.array([1, 20, 300])
    n_in, n_out = EmpiricalTokens(table_in, table_out).sample(500, rng())
    pairs = set(zip(table_in.tolist(), table_out.tolist()))
    assert set(zip(n_in.tolist(), n_out.tolist())) == pairs  # every draw is a measured pair, all appear


def test_rescaled_empirical_tokens_move_the_means_and_keep_the_shape():
    base = EmpiricalTokens(np.array([100, 300]), np.array([10, 30]))
    src = base.rescaled(mean_in=400.0, mean_out=5.0)
    n_in, n_out = src.sample(40_000, rng())
    assert abs(n_in.mean() / 400 - 1) < 0.01 and abs(n_out.mean() / 5 - 1) < 0.02
    assert set(np.unique(n_in).tolist()) == {200, 600}  # the two atoms, scaled by 2
    assert src.mean_tokens() == pytest.approx((400.0, 5.0))


def test_sample_rescaled_follows_a_target_mean_per_request():
    src = EmpiricalTokens(np.array([50, 150]), np.array([5, 15]))
    target_in = np.repeat([100.0, 1000.0], 20_000)
    target_out = np.repeat([10.0, 2.0], 20_000)
    n_in, n_out = src.sample_rescaled(target_in, target_out, rng())
    assert n_in[:20_000].mean() == pytest.approx(100, rel=0.02)
    assert n_in[20_000:].mean() == pytest.approx(1000, rel=0.02)
    assert n_out[20_000:].mean() == pytest.approx(2, rel=0.03)


def test_stochastic_rounding_is_unbiased_and_never_below_one():
    x = rng().uniform(1.0, 5.0, 50_000)
    r = round_stochastic(x, rng(1))
    assert abs(r.mean() - x.mean()) < 0.02 and r.min() >= 1
    assert round_stochastic(np.array([0.01, 0.2]), rng()).tolist() == [1, 1]


def test_a_custom_token_source_gets_rescaling_from_its_mean():
    class Twice(TokenSource):
        def sample(self, n, rng):
            return np.full(n, 10, np.int64), np.full(n, 4, np.int64)

        def mean_tokens(self):
            return 10.0, 4.0

    n_in, n_out = Twice().sample_rescaled(np.full(1000, 25.0), np.full(1000, 8.0), rng())
    assert set(n_in.tolist()) == {25} and set(n_out.tolist()) == {8}


def test_token_sources_are_reproducible_from_the_seed():
    src = LognormalTokens(500, 1.0, 100, 1.0)
    a, b, c = src.sample(100, rng(3)), src.sample(100, rng(3)), src.sample(100, rng(4))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and not np.array_equal(a[0], c[0])


def test_bad_token_parameters_are_refused_naming_the_field():
    with pytest.raises(DcsimInputError, match="tokens.n_in"):
        FixedTokens(0, 10)
    with pytest.raises(DcsimInputError, match="tokens.median_out"):
        LognormalTokens(100, 0.5, -3, 0.5)
    with pytest.raises(DcsimInputError, match="tokens.sigma_in"):
        LognormalTokens(100, float("nan"), 10, 0.5)
    with pytest.raises(DcsimInputError, match="tokens.n_out"):
        EmpiricalTokens(np.array([1, 2]), np.array([0, 3]))


def test_empirical_tokens_read_azure_style_csv_columns(tmp_path):
    f = tmp_path / "trace.csv"
    f.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.97,4808,10\n"
                 "2023-11-16 18:17:04.03,3180,8\n")
    src = EmpiricalTokens.from_csv(f)
    assert src.n_in.tolist() == [4808, 3180] and src.n_out.tolist() == [10, 8]


@pytest.mark.parametrize("text, match", [
    ("", "empty"),
    ("a,b\n1,2\n", "prompt-token"),
    ("n_in,n_out\n12,x\n", "n_out"),
    ("n_in,n_out\n12,0\n", "n_out, row 1"),
])
def test_bad_token_csvs_are_refused_naming_the_file_and_column(tmp_path, text, match):
    f = tmp_path / "bad.csv"
    f.write_text(text)
    with pytest.raises(DcsimInputError, match=match) as e:
        EmpiricalTokens.from_csv(f)
    assert "bad.csv" in str(e.value)


def test_the_builtin_azure_tables_load_through_package_resources():
    code = EmpiricalTokens.builtin("azure2023_code")
    conv = EmpiricalTokens.builtin("azure2023_conv")
    assert len(code.n_in) == len(conv.n_in) == 2000
    # the Azure 2023 traces: code has long prompts and short outputs, conversation the reverse
    assert code.mean_tokens()[0] == pytest.approx(2048, rel=0.03) and code.mean_tokens()[1] == pytest.approx(27.9, rel=0.05)
    assert conv.mean_tokens()[0] == pytest.approx(1155, rel=0.03) and conv.mean_tokens()[1] == pytest.approx(211, rel=0.03)
    with pytest.raises(DcsimInputError, match="azure2023_conv"):
        EmpiricalTokens.builtin("burstgpt")


def test_setup_cfg_ships_the_workload_data():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    assert "dcsim.workload.data" in cfg["options"]["packages"].split()
    assert "dcsim.workload.data" in cfg["options.package_data"]


def test_the_shipped_inputs_are_what_the_derivation_script_makes(shared_data, tmp_path):
    subprocess.run([sys.executable, str(REPO / "calibration" / "derive_workload_inputs.py"),
                    "--shared-data", str(shared_data), "--out", str(tmp_path)], check=True, capture_output=True)
    for name in ("azure2024_code_day.csv", "azure2023_code_tokens.csv", "azure2023_conv_tokens.csv", "SOURCES.md"):
        made, shipped = (tmp_path / name).read_bytes(), (DATA / name).read_bytes()
        assert hashlib.md5(made).hexdigest() == hashlib.md5(shipped).hexdigest(), name


def test_token_source_config_is_json_serialisable():
    for src in (FixedTokens(1, 2), LognormalTokens(10, 1, 5, 1), EmpiricalTokens.builtin("azure2023_conv").rescaled(100, 10)):
        c = json.loads(json.dumps(src.config()))
        assert c["class"].startswith("dcsim.workload.tokens:")
