"""Fidelity and planning metrics on small hand-made series."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dcsim import metrics
from dcsim.errors import DcsimInputError

RNG_SEED = 20240611


def noisy_trace(n: int = 400) -> np.ndarray:
    rng = np.random.default_rng(RNG_SEED)
    return 300.0 + 100.0 * np.sin(np.arange(n) / 7.0) + rng.normal(0.0, 10.0, n)


# --- fidelity: identical and hand-computed cases ----------------------------------------------


def test_a_trace_compared_with_itself_is_a_perfect_match():
    x = noisy_trace()
    assert metrics.fidelity(x, x.copy()) == {"ks": 0.0, "acf_r2": 1.0, "nrmse": 0.0, "delta_energy_pct": 0.0}


def test_ks_of_half_overlapping_samples_is_one_half():
    # ECDFs differ by 0.5 at x = 2, 3, 4
    assert metrics.ks_statistic([1, 2, 3, 4], [3, 4, 5, 6]) == pytest.approx(0.5)


def test_ks_of_disjoint_samples_is_one_and_ignores_order_and_length():
    assert metrics.ks_statistic([1, 2, 3], [10, 11]) == 1.0
    assert metrics.ks_statistic([3, 1, 2], [2, 3, 1, 1, 2, 3]) == 0.0


def test_acf_of_a_short_series_matches_hand_computation():
    # x = 1,-1,1,-1: mean 0, lag-0 sum 4; lag sums -3, 2, -1
    np.testing.assert_allclose(metrics.acf([1, -1, 1, -1], 3), [-0.75, 0.5, -0.25])
    np.testing.assert_allclose(metrics.acf([1, 1, -1, -1], 3), [0.25, -0.5, -0.25])


def test_acf_of_a_sine_is_a_damped_cosine_at_its_period():
    period, n = 20, 20_000
    t = np.arange(n)
    lags = np.arange(1, 41)
    r = metrics.acf(np.sin(2 * np.pi * t / period), 40)
    expected = (n - lags) / n * np.cos(2 * np.pi * lags / period)  # up to edge terms of order 1/n
    np.testing.assert_allclose(r, expected, atol=1e-3)
    assert r[period // 2 - 1] == pytest.approx(-1.0, abs=0.01)  # half a period: anti-correlated
    assert r[period - 1] == pytest.approx(1.0, abs=0.02)  # one period: back in phase


def test_acf_is_unchanged_by_shifting_and_scaling():
    x = noisy_trace()
    np.testing.assert_allclose(metrics.acf(3.0 * x + 50.0, 10), metrics.acf(x, 10), atol=1e-12)


def test_acf_of_a_constant_is_nan_at_every_lag():
    r = metrics.acf(np.full(10, 0.1), 5)  # 0.1 has no exact float mean: guards the exact check
    assert r.shape == (5,) and np.isnan(r).all()


def test_acf_r2_against_a_different_pattern_matches_hand_computation():
    # measured ACF (-3/4, 1/2, -1/4), mean -1/6: SS_tot = 114/144; synthetic ACF (1/4, -1/2, -1/4): SS_res = 2
    assert metrics.acf_r2([1, -1, 1, -1], [1, 1, -1, -1], max_lag=3) == pytest.approx(1 - 2 / (114 / 144))


def test_acf_r2_of_a_shifted_and_scaled_copy_is_one():
    x = noisy_trace()
    assert metrics.acf_r2(x, 0.5 * x + 100.0) == pytest.approx(1.0)


def test_acf_r2_of_white_noise_against_a_slow_trace_is_poor():
    x = noisy_trace()
    noise = np.random.default_rng(RNG_SEED + 1).normal(300.0, 100.0, x.size)
    assert metrics.acf_r2(x, noise) < 0.0


def test_acf_r2_is_undefined_for_a_constant_baseline():
    # the paper's "—" for TDP and mean power in Table 2
    x = noisy_trace()
    assert math.isnan(metrics.acf_r2(x, np.full(x.size, 700.0)))
    assert math.isnan(metrics.fidelity(x, np.full(x.size, x.mean()))["acf_r2"])


def test_nrmse_of_a_constant_offset_is_offset_over_range():
    measured = np.array([0.0, 10.0, 0.0, 10.0])
    assert metrics.nrmse(measured, measured + 1.0) == pytest.approx(0.1)
    assert math.isnan(metrics.nrmse(np.full(4, 5.0), np.arange(4.0)))  # no range to normalise by


def test_delta_energy_is_signed_percent_of_measured_energy():
    measured = np.array([100.0, 200.0, 300.0])
    assert metrics.delta_energy_pct(measured, 1.1 * measured) == pytest.approx(10.0)
    assert metrics.delta_energy_pct(measured, [90.0, 180.0, 270.0]) == pytest.approx(-10.0)
    assert metrics.delta_energy_pct(measured, [300.0, 200.0, 100.0]) == pytest.approx(0.0)  # order ignored


# --- planning -------------------------------------------------------------------------------


def test_energy_of_one_kilowatt_for_an_hour_is_one_kwh():
    assert metrics.energy_kwh(np.full(4 * 3600, 1000.0), dt_s=0.25) == pytest.approx(1.0)
    assert metrics.energy_kwh(np.full(4, 1000.0), dt_s=900.0) == pytest.approx(1.0)


def test_a_constant_load_has_load_factor_one_and_no_variation():
    p = np.full(100, 0.1)
    assert metrics.load_factor(p) == pytest.approx(1.0)
    assert metrics.peak_to_average(p) == pytest.approx(1.0)
    assert metrics.coefficient_of_variation(p) == pytest.approx(0.0, abs=1e-12)


def test_peak_average_and_their_ratios_on_a_two_level_load():
    p = np.array([100.0, 300.0, 100.0, 300.0])  # mean 200, std 100
    assert (metrics.peak_w(p), metrics.average_w(p)) == (300.0, 200.0)
    assert metrics.peak_to_average(p) == pytest.approx(1.5)
    assert metrics.load_factor(p) == pytest.approx(2 / 3)
    assert metrics.coefficient_of_variation(p) == pytest.approx(0.5)


def test_ramp_of_a_step_is_the_step_height_between_15_minute_blocks():
    step_n = 3600  # 15 min at 250 ms
    p = np.concatenate([np.full(step_n, 1000.0), np.full(step_n, 1500.0), np.full(step_n, 1200.0)])
    assert metrics.max_ramp_w(p, dt_s=0.25) == pytest.approx(500.0)


def test_ramp_averages_within_blocks_so_fast_swings_do_not_count():
    # 250 ms swings of 1 kW average out inside each 15-min block
    p = np.tile([0.0, 1000.0], 3600)
    assert metrics.max_ramp_w(p, dt_s=0.25) == pytest.approx(0.0)
    # a step in the middle of a block shows half in that block: means 0, 50, 100
    q = np.concatenate([np.zeros(5400), np.full(5400, 100.0)])
    assert metrics.max_ramp_w(q, dt_s=0.25) == pytest.approx(50.0)


def test_ramp_drops_a_trailing_partial_block_and_needs_two_full_blocks():
    p = np.concatenate([np.full(4, 10.0), np.full(4, 20.0), [1e6]])
    assert metrics.max_ramp_w(p, dt_s=0.25, window_s=1.0) == pytest.approx(10.0)
    assert math.isnan(metrics.max_ramp_w(np.ones(7), dt_s=0.25, window_s=1.0))


def test_planning_summary_holds_every_statistic():
    p = np.concatenate([np.full(3600, 1000.0), np.full(3600, 3000.0)])
    assert metrics.planning_summary(p, dt_s=0.25) == pytest.approx(
        {
            "peak_w": 3000.0,
            "average_w": 2000.0,
            "peak_to_average": 1.5,
            "max_ramp_w_per_15min": 2000.0,
            "load_factor": 2 / 3,
            "cv": 0.5,
            "energy_kwh": 2000.0 * 0.5 / 1000.0,
        }
    )


# --- input checks ---------------------------------------------------------------------------


@pytest.mark.parametrize("metric", [metrics.nrmse, metrics.delta_energy_pct, metrics.fidelity])
def test_paired_metrics_refuse_unequal_lengths(metric):
    with pytest.raises(DcsimInputError, match="synthetic_w.*same length as measured_w"):
        metric(np.arange(60.0), np.arange(59.0))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_and_inf_are_refused_naming_the_argument(bad):
    x = np.arange(60.0)
    y = x.copy()
    y[7] = bad
    with pytest.raises(DcsimInputError, match="synthetic_w: sample 7 is not finite"):
        metrics.fidelity(x, y)
    with pytest.raises(DcsimInputError, match="power_w"):
        metrics.planning_summary(y)


def test_empty_and_non_1d_arrays_are_refused():
    with pytest.raises(DcsimInputError, match="measured_w: empty array"):
        metrics.ks_statistic([], [1.0])
    with pytest.raises(DcsimInputError, match="power_w: array of shape"):
        metrics.peak_w(np.ones((2, 3)))


def test_bad_lag_step_and_window_are_refused():
    with pytest.raises(DcsimInputError, match="max_lag"):
        metrics.acf(np.arange(10.0), max_lag=10)
    with pytest.raises(DcsimInputError, match="max_lag"):
        metrics.acf_r2(np.arange(100.0), np.arange(20.0), max_lag=50)  # shorter trace sets the limit
    with pytest.raises(DcsimInputError, match="dt_s"):
        metrics.energy_kwh([1.0], dt_s=0.0)
    with pytest.raises(DcsimInputError, match="window_s"):
        metrics.max_ramp_w(np.ones(100), dt_s=0.25, window_s=0.3)


# --- properties -----------------------------------------------------------------------------

power = arrays(np.float64, st.integers(60, 200), elements=st.floats(1.0, 1000.0))


@settings(max_examples=50, deadline=None)
@given(power, power)
def test_ks_lies_in_zero_one(a, b):
    assert 0.0 <= metrics.ks_statistic(a, b) <= 1.0


@settings(max_examples=50, deadline=None)
@given(power, st.floats(-50.0, 50.0))
def test_nrmse_is_non_negative_and_acf_r2_at_most_one(a, shift):
    b = np.roll(a, 3) + shift
    assert metrics.nrmse(a, b) >= 0.0 or math.isnan(metrics.nrmse(a, b))
    r2 = metrics.acf_r2(a, b, max_lag=20)
    assert r2 <= 1.0 + 1e-12 or math.isnan(r2)


@settings(max_examples=50, deadline=None)
@given(power, st.one_of(st.floats(0.1, 0.99), st.floats(1.01, 10.0)))
def test_energy_error_sign_follows_scaling(a, scale):
    d = metrics.delta_energy_pct(a, scale * a)
    assert (d > 0) == (scale > 1)
    assert d == pytest.approx(100.0 * (scale - 1.0))
