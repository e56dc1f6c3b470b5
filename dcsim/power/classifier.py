"""The BiGRU state classifier (paper Stage 2): features (A_t, ΔA_t) per 250 ms step → state probabilities.

Model: inputs normalised with the training mean/std → bidirectional GRU (hidden 64 per direction) →
dropout → linear head → K logits; softmax gives p_t(k).

Training (``fit``) on sequences of different lengths:

* every epoch each training sequence is cut into windows of ``window`` steps from a fresh random
  offset (seeded), so the model always sees the window length it is run with; a sequence shorter
  than the window is one window of its own length (windows are batched by length);
* Adam with weight decay, cross-entropy; labels < 0 mark unknown states (missing power) and are ignored;
* early stopping on the validation loss (``patience`` epochs without improvement), best weights restored.
  Without a validation set the last 15 % of every sequence is held out.

Regularisation for small data: dropout on the GRU output, weight decay, early stopping, and optional
Gaussian noise of ``input_noise`` standard deviations added to the normalised training inputs.

Inference (``predict_proba``, also used for the validation loss) is windowed like training: windows of
``window`` steps overlapping by ``context`` steps on both sides, only each window's centre kept (the
first and last windows also keep their outer edge). A model trained on short windows and run over a
long sequence in one pass drifts: one trained on 128-step windows put 69 % of its mass on the idle
state of a 380-step sequence while 8–14 requests were active. Windows of all sequences are extracted
vectorised and run in batches of ``chunk_windows`` under ``torch.inference_mode``.

Determinism: the same seed gives the same weights and probabilities (torch's global RNG is seeded
inside a forked RNG state, window offsets and shuffles come from a numpy Generator).
"""
from __future__ import annotations

import copy
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dcsim.errors import DcsimInputError

_HOLDOUT_FRAC = 0.15
_MIN_HOLDOUT_LEN = 8  # sequences shorter than this stay wholly in training when holding out


class _BiGRU(nn.Module):
    def __init__(self, n_states: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.gru = nn.GRU(input_size=2, hidden_size=hidden, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden, n_states)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, W, 2) -> (B, W, K) logits
        out, _ = self.gru(x)
        return self.head(self.drop(out))


def _check_features(where: str, x: Any) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError):
        raise DcsimInputError(where, x, "an array of features (..., T, 2) = (A_t, ΔA_t)") from None
    if arr.ndim < 2 or arr.shape[-1] != 2 or arr.shape[-2] < 1:
        raise DcsimInputError(where, f"array of shape {arr.shape}", "features of shape (..., T, 2), T >= 1")
    if not np.all(np.isfinite(arr)):
        raise DcsimInputError(where, "non-finite values", "finite features")
    return arr


def _check_items(where: str, items: Any, n_states: int) -> list[tuple[np.ndarray, np.ndarray]]:
    if not isinstance(items, (list, tuple)) or not items:
        raise DcsimInputError(where, type(items).__name__, "a non-empty list of (features (T, 2), labels (T,)) pairs")
    out = []
    for i, item in enumerate(items):
        try:
            feats, labels = item
        except (TypeError, ValueError):
            raise DcsimInputError(f"{where}[{i}]", type(item).__name__, "a (features, labels) pair") from None
        f = _check_features(f"{where}[{i}].features", feats)
        lab = np.asarray(labels)
        if f.ndim != 2 or lab.shape != f.shape[:1]:
            raise DcsimInputError(f"{where}[{i}]", f"features {f.shape}, labels {lab.shape}",
                                  "features (T, 2) and labels (T,) of the same length")
        if lab.size and not np.issubdtype(lab.dtype, np.integer):
            raise DcsimInputError(f"{where}[{i}].labels", str(lab.dtype), "integer state labels")
        if lab.size and lab.max() >= n_states:
            raise DcsimInputError(f"{where}[{i}].labels", int(lab.max()),
                                  f"states 0..{n_states - 1} (or < 0 for unknown)")
        out.append((f, lab.astype(np.int64)))
    return out


def _window_plan(n_steps: int, window: int, context: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Window starts (n,), and per window the mask (n, W) of the steps it is kept for.

    Windows start every L = W - 2·context steps (the last one clamped to end at T); step t is taken from
    window j = clip((t - context) // L, 0, n - 1), so each kept step has ``context`` steps on both sides
    wherever the sequence allows it. Requires n_steps >= window.
    """
    centre = window - 2 * context
    n = max(1, int(np.ceil((n_steps - 2 * context) / centre)))
    starts = np.minimum(np.arange(n) * centre, n_steps - window)
    t = np.arange(n_steps)
    owner = np.clip((t - context) // centre, 0, n - 1)
    steps = starts[:, None] + np.arange(window)            # (n, W) step index of every window position
    keep = owner[steps] == np.arange(n)[:, None]
    return starts, keep, steps


class StateClassifier:
    """BiGRU mapping (A_t, ΔA_t) sequences to K state probabilities per step.

    window: training and inference window (steps); context: overlap kept on both sides of each inference
    window's centre (needs 2·context < window); chunk_windows: inference windows per batch (memory bound);
    input_noise: std of Gaussian noise added to normalised training inputs (0 = off).
    """

    def __init__(self, n_states: int, hidden: int = 64, window: int = 128, context: int = 32, epochs: int = 300,
                 batch_size: int = 32, lr: float = 3e-3, weight_decay: float = 1e-4, dropout: float = 0.1,
                 patience: int = 30, seed: int = 0, device: str = "cpu", input_noise: float = 0.0,
                 chunk_windows: int = 256) -> None:
        self.n_states = n_states
        self.hidden = hidden
        self.window = window
        self.context = context
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.patience = patience
        self.seed = seed
        self.device = device
        self.input_noise = input_noise
        self.chunk_windows = chunk_windows
        self._check_params()
        self.model_ = self._new_model()
        self.feature_mean_ = np.zeros(2, dtype=np.float32)
        self.feature_std_ = np.ones(2, dtype=np.float32)

    def _new_model(self) -> _BiGRU:
        """Freshly initialised network, the same for the same seed (torch's global RNG is left untouched)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return _BiGRU(self.n_states, self.hidden, self.dropout).to(self.device).eval()

    def _check_params(self) -> None:
        for name in ("n_states", "hidden", "window", "epochs", "batch_size", "patience", "chunk_windows"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise DcsimInputError(name, v, "a positive integer")
        if not isinstance(self.context, (int, np.integer)) or not 0 <= 2 * self.context < self.window:
            raise DcsimInputError("context", self.context, f"an integer >= 0 with 2·context < window ({self.window})")
        if not 0.0 <= self.dropout < 1.0:
            raise DcsimInputError("dropout", self.dropout, "a probability in [0, 1)")
        for name in ("lr", "weight_decay", "input_noise"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise DcsimInputError(name, v, "a non-negative number")

    # ----------------------------------------------------------------------------------- training
    def fit(self, train: list[tuple[np.ndarray, np.ndarray]],
            val: list[tuple[np.ndarray, np.ndarray]] | None = None) -> "StateClassifier":
        """Train on (features (T, 2), labels (T,)) sequences; labels < 0 are ignored. Returns self."""
        train = _check_items("train", train, self.n_states)
        if val is None:
            train, val = _hold_out(train)
        else:
            val = _check_items("val", val, self.n_states)
        all_x = np.concatenate([f for f, _ in train])
        self.feature_mean_ = all_x.mean(axis=0).astype(np.float32)
        std = all_x.std(axis=0)
        self.feature_std_ = np.where(std > 1e-6, std, 1.0).astype(np.float32)

        rng = np.random.default_rng(self.seed)
        dev = torch.device(self.device)
        norm = [(torch.from_numpy(self._normalise(f)).to(dev), torch.from_numpy(lab).to(dev)) for f, lab in train]
        val_x = [f for f, _ in val]
        val_y = np.concatenate([lab for _, lab in val])
        loss_fn = nn.CrossEntropyLoss(ignore_index=-1)
        model = self.model_ = self._new_model()
        opt = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        self.loss_curve_: list[tuple[float, float]] = []
        best_loss, best_state, since_best = np.inf, copy.deepcopy(model.state_dict()), 0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            for _epoch in range(self.epochs):
                model.train()
                total, count = 0.0, 0
                for xb, yb in self._epoch_batches(norm, rng):
                    if self.input_noise > 0:
                        xb = xb + self.input_noise * torch.randn_like(xb)
                    logits = model(xb)
                    loss = loss_fn(logits.reshape(-1, self.n_states), yb.reshape(-1).clamp(min=-1))
                    if not torch.isfinite(loss):  # a batch of unknown labels only
                        continue
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    n = int((yb >= 0).sum())
                    total += float(loss.detach()) * n
                    count += n
                val_loss = self._nll(val_x, val_y)
                self.loss_curve_.append((total / max(count, 1), val_loss))
                if val_loss < best_loss - 1e-6:
                    best_loss, best_state, since_best = val_loss, copy.deepcopy(model.state_dict()), 0
                else:
                    since_best += 1
                    if since_best >= self.patience:
                        break
        model.load_state_dict(best_state)
        model.eval()
        self.best_val_loss_ = float(best_loss)
        self.n_epochs_ = len(self.loss_curve_)
        return self

    def _epoch_batches(self, seqs: list[tuple[torch.Tensor, torch.Tensor]], rng: np.random.Generator):
        """Windows of every sequence from a random offset, grouped by length, shuffled, batched."""
        by_len: dict[int, list[tuple[int, int]]] = {}
        for i, (x, _) in enumerate(seqs):
            n_steps = x.shape[0]
            if n_steps <= self.window:
                by_len.setdefault(n_steps, []).append((i, 0))
                continue
            offset = int(rng.integers(0, min(self.window, n_steps - self.window + 1)))
            for s in range(offset, n_steps - self.window + 1, self.window):
                by_len.setdefault(self.window, []).append((i, s))
        batches = []
        for length in sorted(by_len):
            wins = by_len[length]
            order = rng.permutation(len(wins))
            for b in range(0, len(wins), self.batch_size):
                batches.append((length, [wins[j] for j in order[b:b + self.batch_size]]))
        for b in rng.permutation(len(batches)):
            length, wins = batches[b]
            xb = torch.stack([seqs[i][0][s:s + length] for i, s in wins])
            yb = torch.stack([seqs[i][1][s:s + length] for i, s in wins])
            yield xb, yb

    def _nll(self, xs: list[np.ndarray], y: np.ndarray) -> float:
        """Mean cross-entropy of windowed predictions over the known labels."""
        probs = np.concatenate([self.predict_proba(x) for x in xs])
        known = y >= 0
        if not known.any():
            return float("nan")
        p = probs[known, y[known]].astype(np.float64)
        return float(-np.mean(np.log(np.maximum(p, 1e-12))))

    # ---------------------------------------------------------------------------------- inference
    def _normalise(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.feature_mean_) / self.feature_std_).astype(np.float32)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """State probabilities (float32): features (..., T, 2) → (..., T, K), windowed and batched."""
        x = _check_features("features", features)
        lead, n_steps = x.shape[:-2], x.shape[-2]
        x = self._normalise(x.reshape(-1, n_steps, 2))
        n_seq = x.shape[0]
        model = self.model_
        was_training = model.training
        model.eval()
        dev = torch.device(self.device)
        out = np.empty((n_seq, n_steps, self.n_states), dtype=np.float32)
        try:
            with torch.inference_mode():
                if n_steps <= self.window:
                    for a in range(0, n_seq, self.chunk_windows):
                        xb = torch.from_numpy(x[a:a + self.chunk_windows]).to(dev)
                        out[a:a + self.chunk_windows] = torch.softmax(model(xb), dim=-1).cpu().numpy()
                else:
                    starts, keep, steps = _window_plan(n_steps, self.window, self.context)
                    n_win = starts.size
                    total = n_seq * n_win
                    offs = np.arange(self.window)
                    for a in range(0, total, self.chunk_windows):
                        flat = np.arange(a, min(a + self.chunk_windows, total))
                        seq, win = np.divmod(flat, n_win)
                        xb = x[seq[:, None], starts[win][:, None] + offs]                 # (c, W, 2)
                        probs = torch.softmax(model(torch.from_numpy(xb).to(dev)), dim=-1).cpu().numpy()
                        mask = keep[win]                                                  # (c, W)
                        rows = np.broadcast_to(seq[:, None], mask.shape)[mask]
                        out[rows, steps[win][mask]] = probs[mask]
        finally:
            model.train(was_training)
        return out.reshape(*lead, n_steps, self.n_states)

    # -------------------------------------------------------------------------------- persistence
    def _hparams(self) -> dict:
        return {k: getattr(self, k) for k in ("n_states", "hidden", "window", "context", "epochs", "batch_size", "lr",
                                              "weight_decay", "dropout", "patience", "seed", "input_noise",
                                              "chunk_windows")}

    def save(self, path: str | Path) -> None:
        """Write weights, hyper-parameters, normalisation and training record to one .pt (loads with weights_only)."""
        state = {k: v.detach().cpu() for k, v in self.model_.state_dict().items()}
        torch.save({
            "format": "dcsim.StateClassifier/1",
            "hparams": self._hparams(),
            "state_dict": state,
            "feature_mean": [float(v) for v in self.feature_mean_],
            "feature_std": [float(v) for v in self.feature_std_],
            "best_val_loss": float(getattr(self, "best_val_loss_", float("nan"))),
            "n_epochs": int(getattr(self, "n_epochs_", 0)),
            "loss_curve": [[float(a), float(b)] for a, b in getattr(self, "loss_curve_", [])],
        }, str(path))

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "StateClassifier":
        """Read a file written by `save` (torch.load with weights_only=True)."""
        try:
            blob = torch.load(str(path), map_location=device, weights_only=True)
            obj = cls(**blob["hparams"], device=device)
            obj.model_.load_state_dict(blob["state_dict"])
        except (OSError, EOFError, RuntimeError, KeyError, TypeError, ValueError, AttributeError,
                pickle.UnpicklingError) as exc:
            raise DcsimInputError(str(path), "unreadable classifier", "a classifier.pt written by StateClassifier.save",
                                  problem=type(exc).__name__) from None
        obj.model_.eval()
        obj.feature_mean_ = np.asarray(blob["feature_mean"], dtype=np.float32)
        obj.feature_std_ = np.asarray(blob["feature_std"], dtype=np.float32)
        obj.best_val_loss_ = float(blob["best_val_loss"])
        obj.n_epochs_ = int(blob["n_epochs"])
        obj.loss_curve_ = [tuple(p) for p in blob["loss_curve"]]
        return obj

    def __repr__(self) -> str:
        return f"StateClassifier(n_states={self.n_states}, hidden={self.hidden}, window={self.window})"


def _hold_out(items: list[tuple[np.ndarray, np.ndarray]]):
    """Split the last 15 % of every sequence off as validation (short sequences stay in training)."""
    train, val = [], []
    for f, lab in items:
        n_val = int(round(_HOLDOUT_FRAC * len(lab)))
        if len(lab) < _MIN_HOLDOUT_LEN or n_val < 1:
            train.append((f, lab))
            continue
        train.append((f[:-n_val], lab[:-n_val]))
        val.append((f[-n_val:], lab[-n_val:]))
    if not val:  # every sequence too short: validate on the training data
        val = list(train)
    return train, val
