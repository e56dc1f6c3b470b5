"""State dictionary (Stage 1): mixture by BIC, ordering by mean, labels, persistence, AR(1) φ per state."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dcsim.errors import DcsimInputError
from dcsim.power.states import StateDictionary, lag1_phi, plateau_k

MEANS = np.array([300.0, 100.0, 600.0])   # deliberately not in order
SIGMAS = np.array([15.0, 5.0, 25.0])


def mixture(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.integers(0, 3, n)
    return MEANS[z] + SIGMAS[z] * rng.standard_normal(n)


def ar1(n, mu, sigma, phi, rng):
    y = np.empty(n)
    y[0] = mu + sigma * rng.standard_normal()
    e = rng.standard_normal(n) * sigma * np.sqrt(1 - phi**2)
    for t in range(1, n):
        y[t] = mu + phi * (y[t - 1] - mu) + e[t]
    return y


def test_bic_picks_three_states_on_a_clean_three_component_mixture():
    sd = StateDictionary(k_range=(2, 6)).fit(mixture())
    assert sd.k_ == 3
    assert sorted(sd.bic_curve_) == [2, 3, 4, 5, 6]
    assert sd.bic_curve_[3] < sd.bic_curve_[2]


def test_states_are_ordered_by_mean_and_match_the_truth():
    sd = StateDictionary(k=3).fit(mixture())
    assert np.all(np.diff(sd.means_) > 0)
    np.testing.assert_allclose(sd.means_, np.sort(MEANS), rtol=0.02)
    np.testing.assert_allclose(sd.sigmas_, SIGMAS[np.argsort(MEANS)], rtol=0.15)
    assert sd.weights_.sum() == pytest.approx(1.0)
    assert sd.bic_curve_ == {}


def test_observed_range_is_kept():
    y = mixture()
    sd = StateDictionary(k=3).fit(y)
    assert (sd.y_min_, sd.y_max_) == (y.min(), y.max())


def test_labels_round_trip_state_means_and_samples():
    sd = StateDictionary(k=3).fit(mixture())
    np.testing.assert_array_equal(sd.label(sd.means_), [0, 1, 2])
    rng = np.random.default_rng(5)
    z = rng.integers(0, 3, 500)
    y = np.sort(MEANS)[z] + np.sort(SIGMAS)[z] * 0.5 * rng.standard_normal(500)  # well inside each state
    assert np.mean(sd.label(y) == z) > 0.99


def test_predict_proba_rows_sum_to_one_and_argmax_is_the_label():
    sd = StateDictionary(k=3).fit(mixture())
    y = np.linspace(50, 700, 40).reshape(4, 10)
    p = sd.predict_proba(y)
    assert p.shape == (4, 10, 3)
    np.testing.assert_allclose(p.sum(-1), 1.0)
    np.testing.assert_array_equal(p.argmax(-1), sd.label(y))


def test_to_dict_from_dict_gives_an_equal_dictionary_through_json():
    sd = StateDictionary(k_range=(2, 4), ar1=True).fit([mixture(seed=1), mixture(seed=2)])
    back = StateDictionary.from_dict(json.loads(json.dumps(sd.to_dict())))
    for attr in ("means_", "sigmas_", "weights_", "phi_"):
        np.testing.assert_array_equal(getattr(back, attr), getattr(sd, attr))
    assert (back.k_, back.y_min_, back.y_max_, back.ar1) == (sd.k_, sd.y_min_, sd.y_max_, True)
    assert back.bic_curve_ == sd.bic_curve_
    y = np.linspace(50, 700, 101)
    np.testing.assert_array_equal(back.label(y), sd.label(y))


def test_from_dict_accepts_hand_written_parameters_and_orders_them():
    sd = StateDictionary.from_dict({"means_w": [500, 100], "sigmas_w": [20, 5], "phi": [0.5, 0.1]})
    np.testing.assert_array_equal(sd.means_, [100, 500])
    np.testing.assert_array_equal(sd.phi_, [0.1, 0.5])
    assert sd.y_min_ == 80 and sd.y_max_ == 580 and not sd.ar1


def test_same_seed_gives_the_same_fit_with_subsampling():
    y = mixture(n=5000)
    a = StateDictionary(k_range=(2, 4), max_fit_samples=1000, seed=3).fit(y)
    b = StateDictionary(k_range=(2, 4), max_fit_samples=1000, seed=3).fit(y)
    np.testing.assert_array_equal(a.means_, b.means_)
    assert a.y_max_ == y.max()  # the range uses every sample, not the subsample


def test_phi_is_recovered_per_state_on_synthetic_ar1_blocks():
    rng = np.random.default_rng(0)
    low = ar1(4000, 100.0, 4.0, 0.8, rng)
    high = ar1(4000, 400.0, 10.0, 0.3, rng)
    segments = [np.concatenate([low[:2000], high[:2000]]), np.concatenate([high[2000:], low[2000:]])]
    sd = StateDictionary(k=2).fit(segments)
    np.testing.assert_allclose(sd.phi_, [0.8, 0.3], atol=0.05)


def test_phi_is_zero_for_iid_noise_and_when_runs_are_too_short():
    rng = np.random.default_rng(1)
    assert StateDictionary(k=1).fit(rng.normal(200, 5, 3000)).phi_[0] == pytest.approx(0.0, abs=0.05)
    y = np.array([1.0, 2.0, 1.5, 9.0, 8.0])
    assert lag1_phi([y], [np.array([0, 0, 1, 1, 1])], 2).tolist() == [0.0, 0.0]


def test_nan_samples_are_ignored_and_break_runs():
    y = mixture()
    y[::100] = np.nan
    sd = StateDictionary(k=3).fit(y)
    assert np.isfinite(sd.means_).all() and np.isfinite(sd.y_max_)


def test_plateau_rule_takes_the_start_of_a_slowly_falling_curve():
    curve = {2: 1000.0, 3: 200.0, 4: 150.0, 5: 148.0, 6: 146.0, 7: 145.0, 8: 144.0}
    assert plateau_k(curve, 0.05) == 4   # 150 - 144 = 6 <= 0.05 * 856
    assert plateau_k(curve, 0.0) == 8    # the minimum


def test_bad_input_is_refused_with_a_named_error():
    with pytest.raises(DcsimInputError, match="power_w"):
        StateDictionary(k=2).fit(np.ones((3, 3)))
    with pytest.raises(DcsimInputError, match="k_range"):
        StateDictionary(k_range=(5, 2)).fit(mixture())
    with pytest.raises(DcsimInputError, match="distinct"):
        StateDictionary(k=3).fit([1.0, 1.0, 2.0])
    with pytest.raises(DcsimInputError, match="power_w"):
        StateDictionary(k=3).fit(mixture()).label([1.0, np.nan])


def test_unfitted_dictionary_says_so():
    with pytest.raises(RuntimeError, match="not fitted"):
        StateDictionary().label([1.0])
