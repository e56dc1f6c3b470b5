"""Sampling (Stage 3 steps 4–5): categorical state draws, per-state Gaussian / AR(1) power, clipping."""
from __future__ import annotations

import numpy as np
import pytest

from dcsim.errors import DcsimInputError
from dcsim.power.generator import sample_power, sample_states
from dcsim.power.states import StateDictionary


def states_dict(ar1=False, phi=(0.0, 0.0, 0.0), y_min=0.0, y_max=2000.0):
    return StateDictionary.from_dict({"means_w": [100.0, 400.0, 800.0], "sigmas_w": [5.0, 20.0, 40.0],
                                      "phi": list(phi), "ar1": ar1, "y_min_w": y_min, "y_max_w": y_max})


def lag1(y):
    x = y - y.mean()
    return float(x[1:] @ x[:-1] / (x @ x))


def test_sample_states_frequencies_match_the_probabilities():
    probs = np.array([0.1, 0.6, 0.3])
    z = sample_states(np.broadcast_to(probs, (4, 50_000, 3)), np.random.default_rng(0))
    assert z.shape == (4, 50_000) and z.dtype == np.int64
    np.testing.assert_allclose(np.bincount(z.ravel(), minlength=3) / z.size, probs, atol=0.005)


def test_sample_states_draws_not_argmax_and_follows_each_step():
    probs = np.zeros((1000, 2))
    probs[:500, 0] = 1.0
    probs[500:] = [0.3, 0.7]
    z = sample_states(probs, np.random.default_rng(1))
    assert np.all(z[:500] == 0)
    assert 0.6 < z[500:].mean() < 0.8   # argmax would give 1.0


def test_sample_states_normalises_float32_rows_and_is_seeded():
    probs = np.random.default_rng(2).random((10, 3)).astype(np.float32)
    a = sample_states(probs, np.random.default_rng(7))
    b = sample_states(probs, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert a.max() <= 2


def test_dense_power_has_the_mean_and_sigma_of_each_state():
    sd = states_dict()
    z = np.repeat([0, 1, 2], 20_000).reshape(3, -1)
    y = sample_power(z, sd, np.random.default_rng(0))
    assert y.shape == z.shape
    np.testing.assert_allclose(y.mean(axis=1), sd.means_, rtol=0.005)
    np.testing.assert_allclose(y.std(axis=1), sd.sigmas_, rtol=0.03)
    assert abs(lag1(y[1])) < 0.03   # i.i.d.


def test_ar1_power_is_ar1_with_lag1_autocorrelation_phi_and_stationary_sigma():
    sd = states_dict(ar1=True, phi=(0.2, 0.85, 0.5))
    z = np.ones((8, 5000), dtype=int)
    y = sample_power(z, sd, np.random.default_rng(0))
    assert np.mean([lag1(row) for row in y]) == pytest.approx(0.85, abs=0.02)
    assert y.mean() == pytest.approx(400.0, abs=2.0)
    assert y.std() == pytest.approx(20.0, rel=0.05)


def test_ar1_power_moves_to_the_new_state_mean_after_a_switch():
    sd = states_dict(ar1=True, phi=(0.5, 0.5, 0.5))
    z = np.concatenate([np.zeros(100, int), np.full(100, 2)])
    y = sample_power(np.tile(z, (200, 1)), sd, np.random.default_rng(3))
    assert y[:, 150:].mean() == pytest.approx(800.0, abs=3.0)
    assert y[:, :100].mean() == pytest.approx(100.0, abs=1.0)


@pytest.mark.parametrize("ar1", [False, True])
def test_power_is_clipped_to_the_observed_range(ar1):
    sd = states_dict(ar1=ar1, phi=(0.9, 0.9, 0.9), y_min=95.0, y_max=810.0)
    z = np.repeat(np.random.default_rng(4).integers(0, 3, (5, 30)), 100, axis=1)   # blocks of 100 steps
    y = sample_power(z, sd, np.random.default_rng(5))
    assert y.min() >= 95.0 and y.max() <= 810.0
    assert y.min() == 95.0 and y.max() == 810.0   # the clip is active here


def test_power_is_reproducible_for_a_seed():
    sd = states_dict(ar1=True, phi=(0.3, 0.3, 0.3))
    z = np.random.default_rng(6).integers(0, 3, (3, 400))
    np.testing.assert_array_equal(sample_power(z, sd, np.random.default_rng(9)),
                                  sample_power(z, sd, np.random.default_rng(9)))


def test_bad_states_and_probabilities_are_refused():
    sd = states_dict()
    with pytest.raises(DcsimInputError, match="states"):
        sample_power(np.array([0, 3]), sd, np.random.default_rng(0))
    with pytest.raises(DcsimInputError, match="states"):
        sample_power(np.array([0.5, 1.0]), sd, np.random.default_rng(0))
    with pytest.raises(DcsimInputError, match="probs"):
        sample_states(np.array([[0.5, -0.1]]), np.random.default_rng(0))
    with pytest.raises(DcsimInputError, match="probs"):
        sample_states(np.zeros((2, 3)), np.random.default_rng(0))
