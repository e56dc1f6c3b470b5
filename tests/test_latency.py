"""Latency surrogate (Eq. 4, Eq. 5) and TBT estimates from engine polls and request logs."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dcsim.errors import DcsimInputError
from dcsim.serving.latency import (
    LatencySurrogate,
    tbt_from_token_counter,
    tbt_samples_from_engine,
    tbt_samples_from_run,
)


def synthetic(n=4000, seed=0, alpha0=-4.4, alpha1=0.25, sigma=0.35, mu=np.log(0.013), s_tbt=0.12):
    rng = np.random.default_rng(seed)
    n_in = rng.integers(10, 4000, n).astype(float)
    ttft = np.exp(alpha0 + alpha1 * np.log(n_in + 1) + sigma * rng.standard_normal(n))
    tbt = np.exp(mu + s_tbt * rng.standard_normal(n))
    return n_in, ttft, tbt


@pytest.mark.parametrize("robust", [True, False])
def test_fit_recovers_known_parameters(robust):
    n_in, ttft, tbt = synthetic()
    s = LatencySurrogate(robust=robust).fit(n_in, ttft, tbt)
    assert s.alpha0_ == pytest.approx(-4.4, abs=0.08)
    assert s.alpha1_ == pytest.approx(0.25, abs=0.012)
    assert s.sigma_ttft_ == pytest.approx(0.35, rel=0.05)
    assert s.mu_log_tbt_ == pytest.approx(np.log(0.013), abs=0.01)
    assert s.sigma_log_tbt_ == pytest.approx(0.12, rel=0.08)


def test_robust_slope_resists_a_few_queue_delayed_requests():
    n_in, ttft, tbt = synthetic(n=400, sigma=0.1)
    ttft = ttft.copy()
    longest = np.argsort(n_in)[-20:]
    ttft[longest] *= 30.0  # a burst stuck behind others, all on long prompts
    robust = LatencySurrogate(robust=True).fit(n_in, ttft, tbt)
    ols = LatencySurrogate(robust=False).fit(n_in, ttft, tbt)
    assert abs(robust.alpha1_ - 0.25) < abs(ols.alpha1_ - 0.25)
    assert robust.alpha1_ == pytest.approx(0.25, abs=0.05)


def test_equal_prompt_lengths_give_a_flat_ttft():
    s = LatencySurrogate().fit([100, 100, 100], [0.1, 0.2, 0.4], [0.01])
    assert s.alpha1_ == 0.0
    assert np.exp(s.alpha0_) == pytest.approx(0.2)


def test_samples_have_the_right_shape_and_repeat_with_the_seed():
    s = LatencySurrogate().fit(*synthetic(n=300))
    n_in = np.array([0, 10, 100, 1000, 8000])
    a = s.sample_ttft_s(n_in, np.random.default_rng(7))
    b = s.sample_ttft_s(n_in, np.random.default_rng(7))
    assert a.shape == (5,) and np.array_equal(a, b) and np.all(a > 0)
    assert not np.array_equal(a, s.sample_ttft_s(n_in, np.random.default_rng(8)))
    tbt = s.sample_tbt_s(1000, np.random.default_rng(1))
    assert tbt.shape == (1000,) and np.array_equal(tbt, s.sample_tbt_s(1000, np.random.default_rng(1)))
    assert s.sample_tbt_s(0, np.random.default_rng(1)).shape == (0,)


def test_sampled_ttft_follows_prompt_length():
    s = LatencySurrogate().fit(*synthetic())
    rng = np.random.default_rng(3)
    short = np.median(s.sample_ttft_s(np.full(2000, 50), rng))
    long = np.median(s.sample_ttft_s(np.full(2000, 5000), rng))
    assert long / short == pytest.approx((5001 / 51) ** 0.25, rel=0.05)


def test_to_dict_round_trips_exactly():
    s = LatencySurrogate().fit(*synthetic(n=200))
    d = json.loads(json.dumps(s.to_dict()))
    back = LatencySurrogate.from_dict(d)
    for key in ("alpha0_", "alpha1_", "sigma_ttft_", "mu_log_tbt_", "sigma_log_tbt_"):
        assert getattr(back, key) == getattr(s, key)
    rng1, rng2 = np.random.default_rng(5), np.random.default_rng(5)
    assert np.array_equal(back.sample_ttft_s([10, 20], rng1), s.sample_ttft_s([10, 20], rng2))


def test_bad_parameters_and_inputs_are_named():
    with pytest.raises(DcsimInputError, match="latency.sigma_ttft"):
        LatencySurrogate.from_dict({"alpha0": 0, "alpha1": 0, "mu_log_tbt": 0, "sigma_log_tbt": 0})
    with pytest.raises(DcsimInputError, match="latency.alpha1"):
        LatencySurrogate.from_dict({"alpha0": 0, "alpha1": "x", "sigma_ttft": 0, "mu_log_tbt": 0, "sigma_log_tbt": 0})
    with pytest.raises(DcsimInputError, match="ttft_s"):
        LatencySurrogate().fit([1, 2, 3], [0.1, -0.2, 0.3], [0.01])
    with pytest.raises(DcsimInputError, match="n_in/ttft_s"):
        LatencySurrogate().fit([1, 2, 3], [0.1, 0.2], [0.01])
    with pytest.raises(RuntimeError, match="not fitted"):
        LatencySurrogate().sample_tbt_s(3, np.random.default_rng(0))


# ---- TBT from engine polls -------------------------------------------------------------

def decode_engine(tbt_s=0.013, dt_s=0.25, n=40, running=4):
    """Hand-made engine log: `running` requests decoding steadily, polled every dt_s."""
    t = 100.0 + dt_s * np.arange(n)
    gen = 1.0 + np.round(running * (t - t[0]) / tbt_s)
    return t, np.full(n, float(running)), gen, np.full(n, 5000.0)


def test_steady_decode_gives_the_true_tbt():
    t, run, gen, prompt = decode_engine()
    est = tbt_samples_from_engine(t, run, gen, prompt)
    assert est.size == 39
    assert np.median(est) == pytest.approx(0.013, rel=0.01)


def test_prefill_intervals_membership_changes_stale_rows_and_resets_are_left_out():
    t, run, gen, prompt = decode_engine()
    run[10] = 5.0  # a short request came and went around row 10: prefill, membership change
    prompt[10:] += 300.0
    gen[20] = gen[19]  # stale row: counters repeat, then the next row catches up
    gen[30:] -= gen[30] - 1.0  # counter reset
    t = np.insert(t, 25, t[25])  # duplicate row
    run, gen, prompt = np.insert(run, 25, run[25]), np.insert(gen, 25, gen[25]), np.insert(prompt, 25, prompt[25])
    est = tbt_samples_from_engine(t, run, gen, prompt)
    assert np.all(np.abs(est / 0.013 - 1) < 0.02)  # every kept interval is a clean decode interval
    assert est.size == 35  # 40 rows + 1 duplicate: 39 intervals, minus 2 around row 10, 1 stale merge, 1 reset


def test_requests_in_prefill_inflate_the_naive_ratio_but_not_the_estimate():
    # first half: a 5th request is always in prefill (counted as running, emitting nothing),
    # one prefill finishing per interval; second half: 4 requests in pure decode
    t, run, gen, prompt = decode_engine(running=4)
    run[:20] = 5.0
    prompt[:20] += 500.0 * np.arange(20)
    prompt[20:] = prompt[19]
    naive = run[:-1] * np.diff(t) / np.diff(gen)
    est = tbt_samples_from_engine(t, run, gen, prompt)
    assert np.mean(naive) > 1.1 * 0.013
    assert est.size == 19
    assert np.all(np.abs(est / 0.013 - 1) < 0.02)


def test_counter_fit_recovers_tbt_from_requests_shorter_than_a_poll():
    rng = np.random.default_rng(0)
    arrival = np.sort(np.repeat(np.arange(60.0), 8) + 0.456 + rng.uniform(0, 0.02, 480))
    ttft = rng.uniform(0.05, 0.2, arrival.size)
    n_out = np.full(arrival.size, 7.0)
    tbt = 0.013
    t = np.arange(-1.0, 62.0, 0.256) + 0.1
    token_times = (arrival + ttft)[:, None] + tbt * np.arange(7)[None, :]
    gen = 1.0 + np.searchsorted(np.sort(token_times.ravel()), t, side="right")
    assert tbt_from_token_counter(arrival, ttft, n_out, t, gen) == pytest.approx(tbt, rel=0.05)


def test_run_samples_keep_the_engine_spread_at_the_counter_level():
    t, run, gen, prompt = decode_engine(n=80, running=1)
    arrival, ttft, n_out = np.array([t[0] - 0.05]), np.array([0.05]), np.array([gen[-1] - gen[0] + 1])
    samples = tbt_samples_from_run(t, run, prompt, gen, arrival, ttft, n_out)
    assert np.median(samples) == pytest.approx(0.013, rel=0.02)


# ---- measured runs ------------------------------------------------------------------------

def load_run(path):
    engine = np.genfromtxt(path / "engine.csv", delimiter=",", names=True)
    requests = json.loads((path / "requests.json").read_text())
    return engine, {k: np.asarray(requests[k], dtype=float) for k in ("request_timestamps", "input_lens", "output_lens", "ttfts")}


@pytest.mark.parametrize("campaign", ["burstgpt_qwen3-8b_a100", "validate_qwen3-8b_a100"])
def test_measured_tbt_is_in_the_a100_range(run_dir, campaign):
    e, r = load_run(run_dir(campaign))
    clean = tbt_samples_from_engine(e["t_epoch_s"], e["running"], e["generation_tokens_total"], e["prompt_tokens_total"])
    level = tbt_from_token_counter(r["request_timestamps"], r["ttfts"], r["output_lens"], e["t_epoch_s"], e["generation_tokens_total"])
    assert 0.008 < np.median(clean) < 0.020
    assert 0.008 < level < 0.020
    assert level == pytest.approx(np.median(clean), rel=0.25)  # the two estimates agree


def test_validate_run_counter_fit_matches_the_client_tpot(run_dir):
    path = run_dir("validate_qwen3-8b_a100")
    e, r = load_run(path)
    summary = json.loads((path / "levels" / "validate_summary_no_itls.json").read_text())
    level = tbt_from_token_counter(r["request_timestamps"], r["ttfts"], r["output_lens"], e["t_epoch_s"], e["generation_tokens_total"])
    assert 1e3 * level == pytest.approx(summary["median_tpot_ms"], rel=0.05)
