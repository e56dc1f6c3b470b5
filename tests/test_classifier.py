"""BiGRU state classifier (Stage 2): learns a toy mapping, windowed batched inference, determinism, persistence."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dcsim.errors import DcsimInputError
from dcsim.power.classifier import StateClassifier, _window_plan

torch.set_num_threads(1)

SMALL = dict(hidden=16, window=64, context=16, batch_size=16)


def toy(n_steps, rng):
    """A_t a rounded random walk ≥ 0; the state is 1 exactly when A_t > 5."""
    a = np.round(np.abs(np.cumsum(rng.normal(0, 1, n_steps))))
    feats = np.stack([a, np.diff(a, prepend=a[0])], axis=-1)
    return feats, (a > 5).astype(np.int64)


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    train = [toy(int(n), rng) for n in rng.integers(150, 400, 6)]
    return StateClassifier(2, epochs=20, patience=5, seed=0, **SMALL).fit(train)


def test_classifier_learns_a_toy_mapping_and_keeps_it_on_a_long_sequence(trained):
    feats, labels = toy(5000, np.random.default_rng(1))   # 80 windows long
    probs = trained.predict_proba(feats)
    assert probs.shape == (5000, 2)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    assert np.mean(probs.argmax(-1) == labels) > 0.9


def test_training_record_is_kept(trained):
    assert 1 <= trained.n_epochs_ <= 20
    assert len(trained.loss_curve_) == trained.n_epochs_
    assert trained.best_val_loss_ == pytest.approx(min(v for _, v in trained.loss_curve_))
    assert trained.feature_std_.shape == (2,) and np.all(trained.feature_std_ > 0)


def test_window_plan_takes_every_step_exactly_once_with_context_where_possible():
    for n_steps in (64, 65, 100, 380, 1001):
        starts, keep, steps = _window_plan(n_steps, 64, 16)
        counts = np.bincount(steps[keep], minlength=n_steps)
        assert np.all(counts == 1)
        pos = np.broadcast_to(np.arange(64), keep.shape)[keep]
        t = steps[keep]
        inner = (t >= 16) & (t < n_steps - 16)
        assert np.all((pos[inner] >= 16) & (pos[inner] < 48))


def test_inference_is_local_to_a_window(trained):
    feats, _ = toy(1000, np.random.default_rng(2))
    changed = feats.copy()
    changed[800:] = [[30.0, 0.0]]
    a, b = trained.predict_proba(feats), trained.predict_proba(changed)
    np.testing.assert_array_equal(a[:600], b[:600])
    assert not np.allclose(a[800:], b[800:])


def test_batch_of_sequences_equals_one_at_a_time(trained):
    rng = np.random.default_rng(3)
    batch = np.stack([toy(700, rng)[0] for _ in range(5)])
    together = trained.predict_proba(batch)
    alone = np.stack([trained.predict_proba(x) for x in batch])
    assert together.shape == (5, 700, 2)
    np.testing.assert_allclose(together, alone, atol=1e-6)
    small_chunks = StateClassifier.__new__(StateClassifier)
    small_chunks.__dict__.update(trained.__dict__, chunk_windows=3)
    np.testing.assert_allclose(small_chunks.predict_proba(batch), together, atol=1e-6)


def test_sequences_shorter_than_the_window_are_handled(trained):
    feats, _ = toy(20, np.random.default_rng(4))
    assert trained.predict_proba(feats).shape == (20, 2)
    assert trained.predict_proba(feats[None].repeat(3, 0)).shape == (3, 20, 2)


def test_same_seed_gives_identical_weights_and_probabilities():
    rng = np.random.default_rng(5)
    train = [toy(200, rng) for _ in range(3)]
    a = StateClassifier(2, epochs=3, seed=7, **SMALL).fit(train)
    b = StateClassifier(2, epochs=3, seed=7, **SMALL).fit(train)
    for (name, wa), wb in zip(a.model_.state_dict().items(), b.model_.state_dict().values()):
        assert torch.equal(wa, wb), name
    np.testing.assert_array_equal(a.predict_proba(train[0][0]), b.predict_proba(train[0][0]))
    c = StateClassifier(2, epochs=3, seed=8, **SMALL).fit(train)
    assert not torch.equal(a.model_.head.weight, c.model_.head.weight)


def test_fit_with_validation_set_unknown_labels_and_mixed_lengths():
    rng = np.random.default_rng(6)
    train = [toy(n, rng) for n in (30, 90, 250)]
    train[2][1][:50] = -1                        # missing power: ignored by the loss
    val = [toy(120, rng)]
    clf = StateClassifier(2, epochs=4, patience=2, seed=0, **SMALL).fit(train, val)
    assert np.isfinite(clf.best_val_loss_)
    assert clf.n_epochs_ <= 4


def test_save_load_round_trip(tmp_path, trained):
    path = tmp_path / "classifier.pt"
    trained.save(path)
    torch.load(path, weights_only=True)          # safe to load
    back = StateClassifier.load(path)
    feats, _ = toy(300, np.random.default_rng(7))
    np.testing.assert_array_equal(back.predict_proba(feats), trained.predict_proba(feats))
    assert (back.window, back.context, back.hidden, back.n_states) == (64, 16, 16, 2)
    np.testing.assert_array_equal(back.feature_mean_, trained.feature_mean_)
    assert back.n_epochs_ == trained.n_epochs_ and back.best_val_loss_ == trained.best_val_loss_


def test_bad_input_is_refused_with_a_named_error(tmp_path, trained):
    with pytest.raises(DcsimInputError, match="features"):
        trained.predict_proba(np.zeros((10, 3)))
    with pytest.raises(DcsimInputError, match="features"):
        trained.predict_proba(np.full((10, 2), np.nan))
    with pytest.raises(DcsimInputError, match="labels"):
        StateClassifier(2, **SMALL).fit([(np.zeros((10, 2)), np.full(10, 2))])
    with pytest.raises(DcsimInputError, match="context"):
        StateClassifier(2, window=64, context=32)
    bad = tmp_path / "bad.pt"
    bad.write_text("not a model")
    with pytest.raises(DcsimInputError, match="bad.pt"):
        StateClassifier.load(bad)
