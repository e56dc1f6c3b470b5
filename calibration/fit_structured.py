"""Fit the structured power model to every shipped configuration's runs and score it beside the BiGRU+GMM backend.

    python calibration/fit_structured.py [--data ../shared/data] [--seeds 5] [--schedule surrogate measured]
                                         [--parts lowo id single knee sanity] [--out DIR]

Prints one JSON document (progress goes to stderr); writes nothing unless ``--out DIR`` is given (then
``DIR/report.json`` and one fitted ``structured_<schedule>/<config>/power_model.json`` per configuration).
Every figure is a median over ``--seeds`` generated traces of KS, ACF R² (lags 1–50), NRMSE and signed ΔE %
(``dcsim.studies.validate.score``); the generated work always comes from the scored run's own requests through the
configuration's shipped latency surrogate and the FIFO-64 kernel (the generation path).

Parts:
- ``lowo``: qwen3-8b_a100_tp1, leave one workload family out (ShareGPT Poisson = the 4 and 2.5 req/s runs, bursty,
  smooth, BurstGPT, trace replay cache off, cache on; the 6 s smoke runs are ignored): train on the other five
  families, score the whole held-out run(s). The BiGRU+GMM backend is refitted on the same families (same surrogate,
  states by BIC, 8 feature draws, 300 epochs), and the shipped one is scored too.
- ``id``: qwen3-8b_a100_tp1 in distribution, the shipped split: train on both ShareGPT Poisson runs and the smooth
  run's training blocks, score the bursty run and the smooth run's test block (the shipped BiGRU's own test data).
- ``single``: qwen3-8b_h100_tp1, llama-3.1-70b_h100_tp4, gemma-4-26b-a4b_a100_tp2: fit on the first 75 % of the run,
  score the held-out last 25 % (both backends refitted on the same 75 %).
- ``knee``: Poisson 0.3 req/s for 600 s with the configuration's training token lengths: mean power over steps with
  occupancy in [0.5, 1.5), against the measured mean at one running request (engine ``running == 1``).
- ``sanity``: mean power against offered load from 0.1 req/s to past saturation (must not decrease), and the share of
  steps with work in flight over the whole meter window that read near idle.

``--schedule`` picks the work the structured model is fitted on: ``surrogate`` (each training run's requests
through the surrogate and FIFO-64, 4 draws, as generation builds it) and/or ``measured`` (the request log's own
TTFT after the FIFO queue, and the run's effective TBT from its token counter). Generation always uses the surrogate.
The structured model is scored against power read at the meter's own time (``load_run(compensate_lag=False)``; it
fits the lag); the BiGRU against the lag-compensated power it was trained on (the same for the A100 runs, lag 0).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


from dcsim.constants import STEP_S  # noqa: E402
from dcsim.measured import MeasuredRun, load_run, segments_of  # noqa: E402
from dcsim.power.classifier import StateClassifier  # noqa: E402
from dcsim.configs import CalibratedConfig, load_config  # noqa: E402
from dcsim.power.states import StateDictionary  # noqa: E402
from dcsim.power.structured import StructuredPowerModel, fully_busy, work_terms  # noqa: E402
from dcsim.power.chain import power_from_active, replay_occupancy  # noqa: E402
from dcsim.serving.features import feature_matrix  # noqa: E402
from dcsim.serving.kernel import serve_requests  # noqa: E402
from dcsim.serving.work import WorkGrid, logged_work, simulated_work, work_from_served  # noqa: E402
from dcsim.studies.validate import score, validate  # noqa: E402
from dcsim.workload.arrivals import Poisson  # noqa: E402

PT = "powertrace"
QWEN_A100 = "qwen3-8b_a100_tp1"
FAMILIES = {
    "sharegpt_poisson": ["validate_qwen3-8b_a100", "arrival_rate_qwen3-8b_a100_r2p5"],
    "bursty": ["arrival_pattern_qwen3-8b_a100_bursty"],
    "smooth": ["arrival_pattern_qwen3-8b_a100_smooth"],
    "burstgpt": ["burstgpt_qwen3-8b_a100"],
    "trace_replay_cache_off": ["trace_replay_qwen3-8b_a100_cache_off"],
    "trace_replay_cache_on": ["trace_replay_qwen3-8b_a100_cache_on"],
}
SINGLE = ("qwen3-8b_h100_tp1", "llama-3.1-70b_h100_tp4", "gemma-4-26b-a4b_a100_tp2")
TRAIN_SHARE = 0.75
KNEE_RATE_PER_S, KNEE_DURATION_S = 0.3, 600.0
DRAWS = 4          # surrogate draws per training run (structured, surrogate schedule)
FEATURE_DRAWS = 8  # as dcsim.calibrate
EDGE_S = 60.0
WITH_BIGRU = True  # --backends


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# data


class Runs:
    """Measured runs loaded once per lag convention: raw (the meter's time) and lag-compensated."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self._cache: dict[tuple[str, bool], MeasuredRun] = {}

    def get(self, name: str, raw: bool) -> MeasuredRun:
        key = (name, raw)
        if key not in self._cache:
            path = self.data / PT / name
            if "/" not in name:
                path = sorted(p for p in path.iterdir() if p.is_dir())[0]
            self._cache[key] = load_run(path, compensate_lag=not raw)
        return self._cache[key]


def config_runs(name: str) -> list[str]:
    """Run names (relative to powertrace/) listed in the configuration's meta.json, smoke runs left out."""
    meta = load_config(name).meta
    return [r["name"] for r in meta["runs"] if "smoke" not in r["name"]]


def masked(power_w: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask, power_w, np.nan)


def first_share(run: MeasuredRun, share: float) -> np.ndarray:
    mask = np.zeros(len(run.power_w), bool)
    mask[: int(round(share * len(run.power_w)))] = True
    return mask & np.isfinite(run.power_w)


def meta_mask(config: CalibratedConfig, run: MeasuredRun, key: str) -> np.ndarray:
    record = next(r for r in config.meta["runs"] if r["name"] == run.name)
    if record["role"] in ("train", "test"):
        full = np.ones(len(run.power_w), bool) if (record["role"] == "train") == (key == "train") else \
            np.zeros(len(run.power_w), bool)
        return full & np.isfinite(run.power_w)
    mask = np.zeros(len(run.power_w), bool)
    for a, b in record[f"{key}_intervals_epoch_s"]:
        mask |= (run.t_s >= a - 1e-6) & (run.t_s < b - 1e-6)
    return mask & np.isfinite(run.power_w)


# ----------------------------------------------------------------------------------------------
# work of a run


def surrogate_work(run: MeasuredRun, config: CalibratedConfig, rng: np.random.Generator) -> WorkGrid:
    r = run.requests
    return simulated_work(r.arrival_s, r.n_in, r.n_out, config.surrogate, rng, len(run.power_w), t0_s=run.t0_s,
                          dt_s=run.dt_s, slots=config.slots)


def measured_work(run: MeasuredRun, config: CalibratedConfig) -> WorkGrid:
    """The request log's own schedule (``dcsim.serving.work.logged_work``)."""
    return logged_work(run, config.slots)


# ----------------------------------------------------------------------------------------------
# the two backends: fit and score


def fit_structured(train: list[tuple[MeasuredRun, np.ndarray]], config: CalibratedConfig, schedule: str,
                   seed: int = 0) -> StructuredPowerModel:
    """Fit on (raw run, training mask) pairs; every run weighs the same in the least squares."""
    rng = np.random.default_rng(seed)
    works, power, weights = [], [], []
    for run, mask in train:
        draws = [surrogate_work(run, config, rng) for _ in range(DRAWS)] if schedule == "surrogate" else \
            [measured_work(run, config)]
        for w in draws:
            works.append(w)
            power.append(masked(run.power_w, mask))
            weights.append(1.0 / (mask.sum() * len(draws)))
    return StructuredPowerModel().fit(works, power, sample_weight=weights)


def fit_bigru(train: list[tuple[MeasuredRun, np.ndarray]], config: CalibratedConfig, moe: bool,
              seed: int = 0, epochs: int = 300) -> CalibratedConfig:
    """The paper's backend refitted on the training masks, as dcsim.calibrate does (surrogate kept)."""
    segments = [run.power_w[a:b] for run, mask in train for a, b in segments_of(mask)]
    states = StateDictionary(moe=moe, seed=seed).fit(segments)
    rng = np.random.default_rng(seed)
    items = []
    for run, mask in train:
        labels = np.full(len(run.power_w), -1, dtype=np.int64)
        labels[mask] = states.label(run.power_w[mask])
        for _ in range(FEATURE_DRAWS):
            feats = feature_matrix(replay_occupancy(run, config.surrogate, rng, config.slots))
            items += [(feats[a:b], labels[a:b]) for a, b in segments_of(mask) if b - a >= 8]
    classifier = StateClassifier(n_states=states.k_, epochs=epochs, seed=seed).fit(items)
    return CalibratedConfig(config.name + "+refit", states, classifier, config.surrogate, config.tokens,
                            dict(config.meta, k=states.k_))


def _medians(per_seed: list[dict]) -> dict:
    out = {k: float(np.median([p[k] for p in per_seed])) for k in per_seed[0]}
    return out | {"n_seeds": len(per_seed)}


def _edges(run: MeasuredRun, generated: list[np.ndarray], mask: np.ndarray) -> dict:
    """KS, NRMSE, ΔE (medians over seeds) on the first and last minute of the scored samples."""
    idx = np.flatnonzero(mask)
    n = int(EDGE_S / run.dt_s)
    out = {}
    for label, part in (("first_minute", idx[:n]), ("last_minute", idx[-n:])):
        m = np.zeros(len(mask), bool)
        m[part] = True
        if m.sum() < 16:
            continue
        out[label] = _medians([score(run.power_w, g, m, run.dt_s) for g in generated]) | {
            "measured_mean_w": float(run.power_w[m].mean()),
            "generated_mean_w": float(np.median([g[m].mean() for g in generated]))}
    return out


def score_structured(model: StructuredPowerModel, run: MeasuredRun, mask: np.ndarray, config: CalibratedConfig,
                     seeds: int) -> dict:
    per_seed, gens = [], []
    for s in range(seeds):
        rng_serve, rng_power = np.random.default_rng([0, s]).spawn(2)
        generated = model.sample(surrogate_work(run, config, rng_serve), rng_power)
        per_seed.append(score(run.power_w, generated, mask, run.dt_s))
        gens.append(generated)
    return _medians(per_seed) | {"n_scored": int(mask.sum()), "edges": _edges(run, gens, mask)}


def score_bigru(config: CalibratedConfig, run: MeasuredRun, mask: np.ndarray, seeds: int) -> dict:
    per_seed, gens = [], []
    for s in range(seeds):
        rng_serve, rng_power = np.random.default_rng([0, s]).spawn(2)
        generated = power_from_active(config, replay_occupancy(run, config.surrogate, rng_serve, config.slots),
                                      rng_power)
        per_seed.append(score(run.power_w, generated, mask, run.dt_s))
        gens.append(generated)
    return _medians(per_seed) | {"n_scored": int(mask.sum()), "edges": _edges(run, gens, mask)}


def pooled(rows: list[dict]) -> dict:
    """Several scored runs of one family: the median of their medians (per metric)."""
    if len(rows) == 1:
        return rows[0]
    keys = ("ks", "acf_r2", "nrmse", "delta_energy_pct")
    return {k: float(np.median([r[k] for r in rows])) for k in keys} | {"runs": rows}


# ----------------------------------------------------------------------------------------------
# parts


def part_lowo(runs: Runs, schedules: list[str], seeds: int) -> dict:
    config = load_config(QWEN_A100)
    out = {}
    for held, campaigns in FAMILIES.items():
        t0 = time.perf_counter()
        train_raw = [(runs.get(c, True), np.isfinite(runs.get(c, True).power_w))
                     for f, cs in FAMILIES.items() if f != held for c in cs]
        train_comp = [(runs.get(c, False), np.isfinite(runs.get(c, False).power_w))
                      for f, cs in FAMILIES.items() if f != held for c in cs]
        row: dict = {"train_families": [f for f in FAMILIES if f != held]}
        for schedule in schedules:
            model = fit_structured(train_raw, config, schedule)
            row[f"structured_{schedule}"] = pooled([score_structured(model, runs.get(c, True),
                                                                     np.isfinite(runs.get(c, True).power_w), config,
                                                                     seeds) for c in campaigns])
            row[f"structured_{schedule}"]["model"] = model.config()
        if WITH_BIGRU:
            bigru = fit_bigru(train_comp, config, moe=False)
            row["bigru_refit"] = pooled([score_bigru(bigru, runs.get(c, False),
                                                     np.isfinite(runs.get(c, False).power_w), seeds)
                                         for c in campaigns]) | {"k": bigru.states.k_}
            row["bigru_shipped"] = pooled([score_bigru(config, runs.get(c, False),
                                                       np.isfinite(runs.get(c, False).power_w), seeds)
                                           for c in campaigns])
            shipped_train = [r["name"] for r in config.meta["runs"] if r["role"] in ("train", "blocks")]
            row["bigru_shipped"]["held_out"] = not any(n.startswith(c) for n in shipped_train for c in campaigns)
        out[held] = row
        say(f"  lowo {held}: " + "  ".join(f"{k} KS {v['ks']:.3f} ACF {v['acf_r2']:.3f} NRMSE {v['nrmse']:.3f} "
                                           f"dE {v['delta_energy_pct']:+.1f}%" for k, v in row.items()
                                           if isinstance(v, dict)) + f"  [{time.perf_counter() - t0:.0f} s]")
    return out


def part_id(runs: Runs, schedules: list[str], seeds: int) -> dict:
    config = load_config(QWEN_A100)
    names = [r["name"] for r in config.meta["runs"]]
    train_names = [n for n in names if any(n.startswith(c) for c in FAMILIES["sharegpt_poisson"] + FAMILIES["smooth"])]
    test_names = [n for n in names if n.startswith(FAMILIES["bursty"][0]) or n.startswith(FAMILIES["smooth"][0])]
    out: dict = {"train": train_names, "scored": {}}
    for schedule in schedules:
        train = [(runs.get(n, True), meta_mask(config, runs.get(n, True), "train")) for n in train_names]
        model = fit_structured(train, config, schedule)
        out[f"structured_{schedule}_model"] = model.config()
        for n in test_names:
            run = runs.get(n, True)
            out["scored"].setdefault(n, {})[f"structured_{schedule}"] = score_structured(
                model, run, meta_mask(config, run, "test"), config, seeds)
    for n in test_names if WITH_BIGRU else []:
        v = validate(config, runs.get(n, False), seeds=seeds)
        out["scored"][n]["bigru_shipped"] = v.to_json_dict() | {"scored": v.scored}
    for n, row in out["scored"].items():
        say(f"  id {n[:40]}: " + "  ".join(f"{k} KS {v['ks']:.3f} ACF {v['acf_r2']:.3f} NRMSE {v['nrmse']:.3f} "
                                           f"dE {v['delta_energy_pct']:+.1f}%" for k, v in row.items()))
    return out


def part_single(runs: Runs, schedules: list[str], seeds: int) -> dict:
    out = {}
    for name in SINGLE:
        config = load_config(name)
        (run_name,) = config_runs(name)
        raw, comp = runs.get(run_name, True), runs.get(run_name, False)
        train_raw, train_comp = first_share(raw, TRAIN_SHARE), first_share(comp, TRAIN_SHARE)
        test_raw = np.isfinite(raw.power_w) & ~first_share(raw, TRAIN_SHARE)
        test_comp = np.isfinite(comp.power_w) & ~first_share(comp, TRAIN_SHARE)
        row: dict = {"run": run_name, "n_train": int(train_raw.sum()), "n_test": int(test_raw.sum()),
                     "test_span_s": float(test_raw.sum() * raw.dt_s)}
        for schedule in schedules:
            model = fit_structured([(raw, train_raw)], config, schedule)
            row[f"structured_{schedule}"] = score_structured(model, raw, test_raw, config, seeds) | {
                "model": model.config()}
        if WITH_BIGRU:
            bigru = fit_bigru([(comp, train_comp)], config, moe=bool(config.meta.get("moe")))
            row["bigru_refit"] = score_bigru(bigru, comp, test_comp, seeds) | {"k": bigru.states.k_}
        out[name] = row
        say(f"  single {name}: " + "  ".join(f"{k} KS {v['ks']:.3f} ACF {v['acf_r2']:.3f} NRMSE {v['nrmse']:.3f} "
                                             f"dE {v['delta_energy_pct']:+.1f}%" for k, v in row.items()
                                             if isinstance(v, dict)))
    return out


def full_models(runs: Runs, schedules: list[str]) -> dict[tuple[str, str], StructuredPowerModel]:
    """The structured model each configuration would ship: fitted on all its runs (smoke runs left out)."""
    models = {}
    for name in (QWEN_A100, *SINGLE):
        config = load_config(name)
        train = [(runs.get(n, True), np.isfinite(runs.get(n, True).power_w)) for n in config_runs(name)]
        for schedule in schedules:
            models[(name, schedule)] = fit_structured(train, config, schedule)
    return models


def measured_one_running(runs: Runs, name: str) -> dict:
    rows = {}
    for n in config_runs(name):
        run = runs.get(n, False)
        sel = (run.running == 1) & np.isfinite(run.power_w)
        idle = (run.running == 0) & np.isfinite(run.power_w)
        rows[n] = {"mean_w_at_1_running": float(run.power_w[sel].mean()) if sel.any() else None,
                   "n_samples": int(sel.sum()),
                   "idle_w_at_0_running": float(np.median(run.power_w[idle])) if idle.any() else None}
    # the generated workload draws the configuration's training token lengths (ShareGPT), so the target pools the
    # runs of that workload; for qwen3-8b_a100_tp1 that leaves out BurstGPT and the long-prompt trace replays
    like = [n for n in rows if name != QWEN_A100 or any(n.startswith(c) for f in ("sharegpt_poisson", "bursty", "smooth")
                                                        for c in FAMILIES[f])]
    ok = [n for n in like if rows[n]["mean_w_at_1_running"] is not None]
    target = float(np.average([rows[n]["mean_w_at_1_running"] for n in ok], weights=[rows[n]["n_samples"] for n in ok]))
    ok_all = [n for n in rows if rows[n]["mean_w_at_1_running"] is not None]
    every = float(np.average([rows[n]["mean_w_at_1_running"] for n in ok_all],
                             weights=[rows[n]["n_samples"] for n in ok_all]))
    return {"runs": rows, "target_runs": like, "pooled_mean_w": target, "pooled_mean_w_all_runs": every}


def _requests(config: CalibratedConfig, rate_per_s: float, duration_s: float, rng: np.random.Generator):
    return Poisson(rate_per_s, config.tokens).sample(duration_s, rng)


def generate_both(config: CalibratedConfig, model: StructuredPowerModel, rate_per_s: float, duration_s: float,
                  seed: int) -> tuple[WorkGrid, np.ndarray, np.ndarray]:
    """One seeded generation at ``rate_per_s``: the work grid, structured power, BiGRU power (same requests and
    schedule)."""
    rng_arrivals, rng_serve, rng_a, rng_b = np.random.default_rng(seed).spawn(4)
    req = _requests(config, rate_per_s, duration_s, rng_arrivals)
    n = int(round(duration_s / STEP_S))
    served = serve_requests(req.arrival_s, req.n_in, req.n_out, config.surrogate, rng_serve, slots=config.slots)
    work = work_from_served(served, req.n_in, req.n_out, 0.0, n, STEP_S)
    return work, model.sample(work, rng_a), power_from_active(config, work.occupancy, rng_b)


def part_knee(runs: Runs, models: dict, seeds: int) -> dict:
    out = {}
    for (name, schedule), model in models.items():
        config = load_config(name)
        row = out.setdefault(name, {"measured": measured_one_running(runs, name)})
        knee_s, knee_b, mean_s, mean_b, occ = [], [], [], [], []
        for s in range(seeds):
            work, p_s, p_b = generate_both(config, model, KNEE_RATE_PER_S, KNEE_DURATION_S, seed=s)
            sel = (work.occupancy >= 0.5) & (work.occupancy < 1.5)
            knee_s.append(p_s[sel].mean())
            knee_b.append(p_b[sel].mean())
            mean_s.append(p_s.mean())
            mean_b.append(p_b.mean())
            occ.append(work.occupancy.mean())
        target = row["measured"]["pooled_mean_w"]
        row[f"structured_{schedule}"] = {"knee_w": float(np.median(knee_s)), "mean_w": float(np.median(mean_s)),
                                         "ratio_to_measured": float(np.median(knee_s) / target),
                                         "idle_w": model.idle_w_, "busy_w": model.coef_["busy_fraction"]}
        row["bigru_shipped"] = {"knee_w": float(np.median(knee_b)), "mean_w": float(np.median(mean_b)),
                                "ratio_to_measured": float(np.median(knee_b) / target)}
        row["mean_occupancy"] = float(np.median(occ))
        say(f"  knee {name} {schedule}: structured {np.median(knee_s):.0f} W, BiGRU {np.median(knee_b):.0f} W, "
            f"measured at 1 running {target:.0f} W (mean occupancy {np.median(occ):.2f})")
    return out


def saturation_rate(config: CalibratedConfig) -> float:
    """Offered load that fills the 64 slots: slots / mean service time (surrogate at the mean token lengths)."""
    n_in, n_out = config.tokens.mean_tokens()
    s = config.surrogate
    ttft = np.exp(s.alpha0_ + s.alpha1_ * np.log(n_in + 1.0) + s.sigma_ttft_ ** 2 / 2)
    tbt = np.exp(s.mu_log_tbt_ + s.sigma_log_tbt_ ** 2 / 2)
    return config.slots / (ttft + n_out * tbt)


def part_sanity(models: dict, seeds: int) -> dict:
    out = {}
    for (name, schedule), model in models.items():
        config = load_config(name)
        sat = saturation_rate(config)
        rates = sorted({0.1, 0.3, 1.0, 2.0, 4.0} | {round(float(f * sat), 2) for f in (0.25, 0.5, 0.75, 1.0, 1.25, 1.5)})
        mean_s, mean_b, occ = [], [], []
        low_share, low_share_b, n_busy = [], [], 0
        for rate in rates:
            ps, pb, oc = [], [], []
            for s in range(seeds):
                work, p_s, p_b = generate_both(config, model, rate, 300.0, seed=100 + s)
                ps.append(p_s.mean())
                pb.append(p_b.mean())
                oc.append(work.occupancy.mean())
                busy = work_terms(work, ("busy_fraction",), model.prefill_capacity_tokens_per_s_)[..., 0]
                full = fully_busy(busy, model.lag_s_, model.window_s_, STEP_S)
                threshold = model.idle_w_ + 0.5 * model.coef_["busy_fraction"]
                n_busy += int(full.sum())
                low_share.append(int((p_s[full] < threshold).sum()))
                low_share_b.append(int((p_b[full] < threshold).sum()))
            mean_s.append(float(np.mean(ps)))
            mean_b.append(float(np.mean(pb)))
            occ.append(float(np.mean(oc)))
        out.setdefault(name, {"saturation_rate_per_s": sat, "rates_per_s": rates, "mean_occupancy": occ})
        out[name][f"structured_{schedule}"] = {
            "mean_w": mean_s, "non_decreasing": bool(np.all(np.diff(mean_s) >= -1e-9)),
            "largest_drop_w": float(min(0.0, np.min(np.diff(mean_s)))),
            "busy_steps": n_busy, "busy_steps_below_half_knee": int(sum(low_share)),
            "half_knee_threshold_w": model.idle_w_ + 0.5 * model.coef_["busy_fraction"]}
        out[name]["bigru_shipped"] = {
            "mean_w": mean_b, "non_decreasing": bool(np.all(np.diff(mean_b) >= -1e-9)),
            "largest_drop_w": float(min(0.0, np.min(np.diff(mean_b)))),
            "busy_steps": n_busy, "busy_steps_below_half_knee": int(sum(low_share_b))}
        say(f"  sanity {name} {schedule}: rates {rates} -> structured {np.round(mean_s).astype(int).tolist()} W, "
            f"BiGRU {np.round(mean_b).astype(int).tolist()} W; busy steps below half knee: structured "
            f"{sum(low_share)}/{n_busy}, BiGRU {sum(low_share_b)}/{n_busy}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--schedule", nargs="+", default=["surrogate", "measured"], choices=["surrogate", "measured"])
    ap.add_argument("--parts", nargs="+", default=["lowo", "id", "single", "knee", "sanity"],
                    choices=["lowo", "id", "single", "knee", "sanity"])
    ap.add_argument("--backends", nargs="+", default=["structured", "bigru"], choices=["structured", "bigru"],
                    help="leave out bigru to skip its refits (the structured figures do not depend on them)")
    ap.add_argument("--out", type=Path, default=None, help="folder for report.json and the fitted models")
    ap.add_argument("--ship", action="store_true", help="write each configuration's model fitted on the logged "
                    "schedule of all its runs into calibration/artifacts/<config>/power_model.json (the shipped one)")
    args = ap.parse_args()
    global WITH_BIGRU
    WITH_BIGRU = "bigru" in args.backends
    runs = Runs(args.data)
    report: dict = {"seeds": args.seeds, "schedules": args.schedule}
    t0 = time.perf_counter()
    if "lowo" in args.parts:
        report["lowo_qwen3-8b_a100_tp1"] = part_lowo(runs, args.schedule, args.seeds)
    if "id" in args.parts:
        report["in_distribution_qwen3-8b_a100_tp1"] = part_id(runs, args.schedule, args.seeds)
    if "single" in args.parts:
        report["single_run_tail"] = part_single(runs, args.schedule, args.seeds)
    if "knee" in args.parts or "sanity" in args.parts:
        models = full_models(runs, args.schedule)
        report["full_models"] = {f"{n}/{s}": m.config() for (n, s), m in models.items()}
        if "knee" in args.parts:
            report["knee"] = part_knee(runs, models, args.seeds)
        if "sanity" in args.parts:
            report["sanity"] = part_sanity(models, min(args.seeds, 3))
        if args.out is not None:
            for (n, s), m in models.items():
                m.save(args.out / f"structured_{s}" / n)
        if args.ship:
            for (n, s), m in models.items():
                if s == "measured":
                    folder = REPO / "calibration" / "artifacts" / n
                    m.save(folder)
                    meta = json.loads((folder / "meta.json").read_text())
                    meta["power_model_runs"] = config_runs(n)  # whole runs it was fitted on: never scored as held out
                    (folder / "meta.json").write_text(json.dumps(meta, indent=1))
                    say(f"shipped {n}/power_model.json")
    report["elapsed_s"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(report, indent=1, default=float)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "report.json").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
