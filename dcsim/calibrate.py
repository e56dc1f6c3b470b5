"""Calibration: fit a configuration's surrogate, state dictionary and classifier from measured runs.

Reads as the paper's offline stages, in order::

    runs      = [load_run(d) for d in run_dirs]                 # measured power + vLLM logs on the 250 ms grid
    split     = split_runs(runs)                                # whole runs 70/15/15, or time blocks for 1-2 runs
    surrogate = LatencySurrogate().fit(...)                     # Eq. 4 / Eq. 5 from the training requests
    states    = StateDictionary().fit(train power)              # Stage 1: GMM, K by BIC
    features  = simulated A_t of the runs' own arrivals         # through the surrogate + FIFO-64 queue
    classifier= StateClassifier(K).fit(features, state labels)  # Stage 2: BiGRU

Why the classifier trains on *simulated* features: generation feeds it A_t built by the latency surrogate and
the FIFO queue, so training on the same kind of A_t (several surrogate draws per run, which also augments the
small data) keeps training and generation consistent. Trained on the engine's running count instead, the
same classifier scored KS 0.26 and ACF R² −0.40 when driven by the surrogate (issue #4's probe); see
``dcsim.measured`` for how the engine count and the rebuilt count compare against power.
"""
from __future__ import annotations

import datetime as _dt
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from dcsim.errors import DcsimInputError
from dcsim.measured import MeasuredRun, check_distinct_runs, load_run, segments_of
from dcsim.power.classifier import StateClassifier
from dcsim.configs import CalibratedConfig, check_config_name, save_config, written_by_calibrate
from dcsim.io import check_writable
from dcsim.constants import SLOTS_PER_SERVER
from dcsim.power.chain import replay_occupancy
from dcsim.workload.tokens import TokenQuantiles
from dcsim.power.states import StateDictionary
from dcsim.serving.features import feature_matrix
from dcsim.serving.latency import LatencySurrogate, tbt_samples_from_run

ROLES = ("train", "val", "test", "blocks")
BLOCK_FRACTIONS = (0.70, 0.15, 0.15)


@dataclass
class RunSplit:
    """One run's part in a calibration: its role and, per grid step, which samples train, validate, test."""

    run: MeasuredRun
    role: str  # train | val | test (whole run) or blocks (time blocks inside the run)
    train: np.ndarray  # bool per grid step
    val: np.ndarray
    test: np.ndarray

    def intervals(self, mask: np.ndarray) -> list[list[float]]:
        """Mask → [[start_epoch_s, stop_epoch_s), ...] (what the meta file records)."""
        return [[self.run.t0_s + a * self.run.dt_s, self.run.t0_s + b * self.run.dt_s] for a, b in segments_of(mask)]


def block_masks(run: MeasuredRun) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contiguous 70/15/15 time blocks of one run: the test block then the validation block sit in the middle of
    the loaded span (first arrival to last request end), so both hold real load; the rest trains.

    (Putting them at the end would score mostly the idle drain of a short run.)
    """
    n = len(run.power_w)
    n_test = max(1, int(round(BLOCK_FRACTIONS[2] * n)))
    n_val = max(1, int(round(BLOCK_FRACTIONS[1] * n)))
    arrivals = (run.requests.arrival_s - run.t0_s) / run.dt_s
    busy = np.flatnonzero(np.nan_to_num(run.running, nan=0.0) > 0)
    first = int(np.clip(arrivals.min(), 0, n - 1)) if len(arrivals) else 0
    last = int(busy.max()) if len(busy) else n - 1
    centre = (first + max(last, first)) // 2
    start = int(np.clip(centre - n_test, 0, max(0, n - n_test - n_val)))
    test = np.zeros(n, bool)
    val = np.zeros(n, bool)
    test[start:start + n_test] = True
    val[start + n_test:start + n_test + n_val] = True
    return ~(test | val), val, test


def split_runs(runs: Sequence[MeasuredRun], roles: Sequence[str] | None = None) -> list[RunSplit]:
    """Assign roles. Explicit ``roles`` win; otherwise whole runs 70/15/15 (by name order; at least one run each for
    validation and test) when there are 3 or more runs, else contiguous time blocks inside each run."""
    if roles is None:
        if len(runs) >= 3:
            n = len(runs)
            n_test = max(1, int(round(0.15 * n)))
            n_val = max(1, int(round(0.15 * n)))
            order = sorted(range(n), key=lambda i: runs[i].name)
            roles_by_index = {}
            for rank, i in enumerate(order):
                roles_by_index[i] = "test" if rank >= n - n_test else "val" if rank >= n - n_test - n_val else "train"
            roles = [roles_by_index[i] for i in range(n)]
        else:
            roles = ["blocks"] * len(runs)
    if len(roles) != len(runs):
        raise DcsimInputError("roles", len(roles), f"one role per run ({len(runs)} runs)")
    splits = []
    for run, role in zip(runs, roles):
        if role not in ROLES:
            raise DcsimInputError(f"role of {run.name}", role, ", ".join(ROLES))
        n = len(run.power_w)
        full, none = np.ones(n, bool), np.zeros(n, bool)
        if role == "blocks":
            tr, va, te = block_masks(run)
        else:
            tr, va, te = (full if role == r else none for r in ("train", "val", "test"))
        valid = np.isfinite(run.power_w)
        splits.append(RunSplit(run, role, tr & valid, va & valid, te & valid))
    if not any(s.train.any() for s in splits):
        raise DcsimInputError("runs", [r.name for r in runs], "at least one run (or block) that trains")
    return splits


def _requests_in(split: RunSplit, mask: np.ndarray) -> np.ndarray:
    """Indices of the run's requests arriving inside the mask's samples."""
    run = split.run
    k = np.floor((run.requests.arrival_s - run.t0_s) / run.dt_s).astype(int)
    inside = (k >= 0) & (k < len(mask))
    keep = np.zeros(len(k), bool)
    keep[inside] = mask[k[inside]]
    return np.flatnonzero(keep)


def fit_surrogate(splits: Sequence[RunSplit]) -> LatencySurrogate:
    """Eq. 4 from the training requests' TTFTs; Eq. 5 from each fitting run's engine counters and request log
    (``tbt_samples_from_run``: level from the token counter, spread from clean decode intervals).

    For runs split into time blocks, TBT uses the whole run's counters (the test block's latencies, never its
    power): a counter fit needs every request that emits tokens in the window.
    """
    n_in, ttft, tbt = [], [], []
    for s in splits:
        if not (s.train.any() or s.val.any()):
            continue
        idx = _requests_in(s, s.train)
        n_in.append(s.run.requests.n_in[idx])
        ttft.append(s.run.requests.ttft_s[idx])
        e, r = s.run.engine, s.run.requests
        tbt.append(tbt_samples_from_run(e.t_s, e.running, e.prompt_tokens_total, e.generation_tokens_total,
                                        r.arrival_s, r.ttft_s, r.n_out))
    n_in_a, ttft_a = np.concatenate(n_in), np.concatenate(ttft)
    tbt_a = np.concatenate(tbt) if tbt else np.array([])
    if len(n_in_a) < 5 or len(tbt_a) < 5:
        raise DcsimInputError("runs", f"{len(n_in_a)} requests / {len(tbt_a)} decode intervals in training data",
                              "at least 5 of each to fit the latency surrogate")
    return LatencySurrogate().fit(n_in_a, ttft_a, tbt_a)


def fit_structured(splits: Sequence[RunSplit]) -> tuple[Any, list[str]]:
    """The structured power model on every run that trains or validates, whole (the model has no early
    stopping to hold blocks out for), on each run's logged schedule against power read at the meter's own time
    (it fits the lag itself); each run weighs the same. Returns the model and the runs it was fitted on."""
    from dcsim.power.structured import StructuredPowerModel
    from dcsim.serving.work import logged_work

    works, power, weights, names = [], [], [], []
    for s in splits:
        if not (s.train.any() or s.val.any()):
            continue  # a whole test run: never fitted on
        raw = load_run(s.run.path, compensate_lag=False)
        valid = np.isfinite(raw.power_w)
        works.append(logged_work(raw, SLOTS_PER_SERVER))
        power.append(raw.power_w)
        weights.append(1.0 / max(int(valid.sum()), 1))
        names.append(s.run.name)
    return StructuredPowerModel().fit(works, power, sample_weight=weights), names


def _pieces(features: np.ndarray, labels: np.ndarray, mask: np.ndarray, min_len: int = 8):
    return [(features[a:b], labels[a:b]) for a, b in segments_of(mask) if b - a >= min_len]


def calibrate(name: str, run_dirs: Sequence[str | Path], roles: Sequence[str] | None = None, k: int | None = None,
              ar1: bool | None = None, seed: int = 0, feature_draws: int = 8, epochs: int = 300, window: int = 128,
              k_range: tuple[int, int] = (2, 16), out_dir: str | Path | None = None, provenance: str = "",
              overwrite: bool = False,
              log: Callable[[str], None] | None = None) -> CalibratedConfig:
    """Fit every part of a configuration from measured runs and (when ``out_dir`` is given) write its artifact folder."""
    say = log or (lambda _msg: None)
    check_config_name(name)
    if out_dir is not None:
        check_writable(out_dir, "--out", overwrite=overwrite, folder=True, owned=written_by_calibrate)
    if not run_dirs:
        raise DcsimInputError("RUN_DIR", [], "one or more measured run directories")
    runs = [load_run(d) for d in run_dirs]
    check_distinct_runs(runs)
    gpus = {r.n_gpus for r in runs}
    if len(gpus) > 1:
        raise DcsimInputError("RUN_DIR", {r.name: r.n_gpus for r in runs},
                              "runs of one configuration (the same number of GPUs per server)",
                              problem="runs mix server sizes")
    ar1 = any(r.is_moe for r in runs) if ar1 is None else ar1
    splits = split_runs(runs, roles)
    for s in splits:
        say(f"  {s.run.name}: {s.role} (train {int(s.train.sum())}, val {int(s.val.sum())}, test {int(s.test.sum())} samples,"
            f" lag {s.run.power_lag_s:.2f} s, clock {s.run.clock_source})")

    surrogate = fit_surrogate(splits)
    say(f"  surrogate: TTFT log-linear a0={surrogate.alpha0_:.3f} a1={surrogate.alpha1_:.3f} sigma={surrogate.sigma_ttft_:.3f};"
        f" TBT median {np.exp(surrogate.mu_log_tbt_) * 1e3:.1f} ms sigma_log={surrogate.sigma_log_tbt_:.3f}")

    train_power = [s.run.power_w[a:b] for s in splits for a, b in segments_of(s.train)]
    states = StateDictionary(k=k, k_range=k_range, ar1=ar1, seed=seed).fit(train_power)
    say(f"  states: K={states.k_} (BIC over {k_range[0]}..{k_range[1]}), means {np.round(states.means_).astype(int).tolist()} W")

    rng = np.random.default_rng(seed)
    slots = SLOTS_PER_SERVER
    train_items, val_items = [], []
    for s in splits:
        if not (s.train.any() or s.val.any()):
            continue  # a whole test run: recorded in the meta file, never fitted on
        labels = np.full(len(s.run.power_w), -1, dtype=np.int64)
        valid = np.isfinite(s.run.power_w)
        labels[valid] = states.label(s.run.power_w[valid])
        for _ in range(feature_draws):
            feats = feature_matrix(replay_occupancy(s.run, surrogate, rng, slots))
            train_items += _pieces(feats, labels, s.train)
            val_items += _pieces(feats, labels, s.val)
    classifier = StateClassifier(n_states=states.k_, window=window, epochs=epochs, seed=seed)
    classifier.fit(train_items, val_items or None)
    say(f"  classifier: {classifier.n_epochs_} epochs, best validation loss {classifier.best_val_loss_:.3f}")

    n_in = np.concatenate([s.run.requests.n_in[_requests_in(s, s.train)] for s in splits])
    n_out = np.concatenate([s.run.requests.n_out[_requests_in(s, s.train)] for s in splits])
    first = runs[0]
    meta = {
        "model": first.manifest.get("model"),
        "gpu": first.manifest.get("hardware"),
        "tp": first.manifest.get("tp", first.n_gpus),
        "n_gpus": first.n_gpus,
        "moe": any(r.is_moe for r in runs),
        "power_noise": "ar1" if ar1 else "iid",
        "slots": slots,
        "dt_s": first.dt_s,
        "k": states.k_,
        "bic_curve": {str(kk): float(v) for kk, v in states.bic_curve_.items()},
        "provenance": provenance or "calibrated with dcsim calibrate from the runs listed",
        "runs": [{
            "name": s.run.name, "role": s.role,
            "power_lag_s": s.run.power_lag_s, "clock_source": s.run.clock_source,
            "train_intervals_epoch_s": s.intervals(s.train), "val_intervals_epoch_s": s.intervals(s.val),
            "test_intervals_epoch_s": s.intervals(s.test),
        } for s in splits],
        "split": {
            "rule": "explicit roles" if roles is not None else ("whole runs 70/15/15" if len(runs) >= 3 else
                                                                 "contiguous time blocks 70/15/15 per run"),
            "n_train_samples": int(sum(s.train.sum() for s in splits)),
            "n_val_samples": int(sum(s.val.sum() for s in splits)),
            "n_test_samples": int(sum(s.test.sum() for s in splits)),
            "feature_draws": feature_draws,
        },
        "classifier": {"hidden": classifier.hidden, "window": classifier.window, "epochs_run": classifier.n_epochs_,
                       "best_val_loss": classifier.best_val_loss_},
        "training_requests": int(len(n_in)),
        "seed": seed,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "created_with": {"python": platform.python_version(), "dcsim": _version()},
    }
    structured, fitted_on = fit_structured(splits)
    say(f"  structured power model: idle {structured.idle_w_:.0f} W, meter lag {structured.lag_s_:.2f} s, "
        f"window {structured.window_s_:.2f} s, fitted on {len(fitted_on)} run(s)")
    meta["power_model_runs"] = fitted_on
    config = CalibratedConfig(name, states, classifier, surrogate, TokenQuantiles.from_requests(n_in, n_out), meta,
                              structured=structured, power_model="structured")
    if out_dir is not None:
        save_config(config, out_dir, overwrite=overwrite)
    return config


def _version() -> str:
    from dcsim import __version__

    return __version__
