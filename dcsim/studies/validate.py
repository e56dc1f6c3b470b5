"""Validation against a measured run: drive the pipeline with the run's own arrivals and token lengths and
compare generated with measured power (median over seeds of KS, ACF R², NRMSE, ΔE)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dcsim import metrics
from dcsim.errors import DcsimInputError
from dcsim.measured import MeasuredRun, segments_of
from dcsim.configs import CalibratedConfig
from dcsim.power.chain import power_from_active, replay_power

FEATURES = ("simulated", "measured")
ACF_MAX_LAG = 50  # lags 1..50 (12.5 s), as the paper


@dataclass
class Validation:
    """Medians over seeds of the paper's fidelity metrics on the scored samples of one measured run."""

    config: str
    run: str
    seeds: int
    features: str
    scored: str  # which samples were scored, in words
    n_scored: int
    ks: float
    acf_r2: float
    nrmse: float
    delta_energy_pct: float
    per_seed: list[dict] = field(default_factory=list)
    t_s: np.ndarray | None = None  # grid times (s from the run's grid start)
    measured_w: np.ndarray | None = None
    generated_w: np.ndarray | None = None  # first seed
    active: np.ndarray | None = None  # first seed's A_t
    mask: np.ndarray | None = None

    def to_json_dict(self) -> dict:
        return {"config": self.config, "run": self.run, "seeds": self.seeds, "ks": self.ks, "acf_r2": self.acf_r2,
                "nrmse": self.nrmse, "delta_energy_pct": self.delta_energy_pct}


def scored_mask(config: CalibratedConfig, run: MeasuredRun) -> tuple[np.ndarray, str]:
    """Which samples of ``run`` may be scored against ``config``: all of them when the run did not train it;
    only the held-out test blocks its meta file records when it did; none (an error) when it trained whole."""
    valid = np.isfinite(run.power_w)
    if config.power_model == "structured" and run.name in config.meta.get("power_model_runs", []):
        raise DcsimInputError("--measured", run.name, f"a run that did not train {config.name}'s structured power "
                              "model (or --power-model bigru)", problem="this run was a whole train run of the structured power model")
    record = next((r for r in config.meta.get("runs", []) if r.get("name") == run.name), None)
    if record is None or record.get("role") == "test":
        why = "held-out test run" if record else "run not used in calibration"
        return valid, f"all {int(valid.sum())} samples ({why})"
    intervals = record.get("test_intervals_epoch_s") or []
    if record.get("role") != "blocks" or not intervals:
        raise DcsimInputError("--measured", run.name,
                              f"a run that did not train {config.name}, or one it holds test blocks of",
                              problem=f"this run was a whole {record.get('role')} run of the configuration")
    mask = np.zeros(len(run.power_w), bool)
    for a, b in intervals:
        mask |= (run.t_s >= a - 1e-6) & (run.t_s < b - 1e-6)
    mask &= valid
    return mask, (f"only the {int(mask.sum())} held-out test samples "
                  f"({len(intervals)} block(s)); this run trained the configuration")


def score(measured_w: np.ndarray, generated_w: np.ndarray, mask: np.ndarray, dt_s: float) -> dict:
    """Fidelity over the masked samples: KS, NRMSE, ΔE on all of them, ACF R² (lags 1..50, fewer when the piece is
    shorter) on the longest contiguous piece."""
    m, g = measured_w[mask], generated_w[mask]
    a, b = max(segments_of(mask), key=lambda p: p[1] - p[0])
    max_lag = int(min(ACF_MAX_LAG, b - a - 2))  # a short held-out block gets fewer lags
    return {"ks": metrics.ks_statistic(m, g),
            "acf_r2": metrics.acf_r2(measured_w[a:b], generated_w[a:b], max_lag=max_lag),
            "nrmse": metrics.nrmse(m, g), "delta_energy_pct": metrics.delta_energy_pct(m, g, dt_s)}


def validate(config: CalibratedConfig, run: MeasuredRun, seeds: int = 5, features: str = "simulated",
             seed: int = 0) -> Validation:
    """Generate ``seeds`` traces for the measured run's own requests and score them against its power."""
    if features not in FEATURES:
        raise DcsimInputError("--features", features, " or ".join(FEATURES))
    if features == "measured" and config.power_model != "bigru":
        raise DcsimInputError("--features", features, "simulated, or --power-model bigru (the engine's running "
                              "count is an A_t, which only the BiGRU reads)")
    if seeds < 1:
        raise DcsimInputError("--seeds", seeds, "an integer >= 1")
    if run.n_gpus != config.n_gpus:
        raise DcsimInputError("--measured", f"{run.name} ({run.n_gpus} GPUs)",
                              f"a run of the configuration's server size ({config.n_gpus} GPUs)",
                              problem="run and configuration differ in GPUs per server")
    mask, scored = scored_mask(config, run)
    if mask.sum() < 8:
        raise DcsimInputError("--measured", run.name, "a run with at least 8 scorable power samples")
    per_seed, first = [], None
    for s in range(seeds):
        rng = np.random.default_rng([seed, s])
        rng_serve, rng_power = rng.spawn(2)
        if features == "measured":
            active = np.nan_to_num(run.running, nan=0.0)
            generated = power_from_active(config, active, rng_power)
        else:  # the run's requests served past both ends by the power model's context, then trimmed
            active, generated = replay_power(config, run, rng_serve, rng_power)
        per_seed.append(score(run.power_w, generated, mask, run.dt_s))
        if first is None:
            first = (active, generated)
    med = {k: float(np.median([p[k] for p in per_seed])) for k in per_seed[0]}
    return Validation(config.name, run.name, seeds, features, scored, int(mask.sum()), med["ks"], med["acf_r2"],
                      med["nrmse"], med["delta_energy_pct"], per_seed, run.t_s - run.t0_s, run.power_w, first[1],
                      first[0], mask)
