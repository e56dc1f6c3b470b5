"""Diagnostics behind the calibration choices, measured on ../shared/data (the figures the docs quote).

    python calibration/diagnostics.py features   # power vs A_t (engine / rebuilt / simulated), TBT estimates
    python calibration/diagnostics.py splits     # training-split, seed, AR(1) and K comparisons (~6 min)

``features`` prints, per run, the Pearson correlation of grid power with the engine's running count, with
A_t rebuilt from the request log (measured TTFT, fitted TBT) and with A_t simulated through the shipped
configuration's surrogate and FIFO-64 queue; then the TBT estimates (naive running·Δt/Δtokens ratio of
sums, clean decode intervals, token-counter fit) and how well the surrogate rebuilds the running count.
``splits`` recalibrates qwen3-8b_a100_tp1 with the smooth run as validation only or in time blocks, for
classifier seeds 0-2, scoring the unseen bursty and BurstGPT runs; and llama-3.1-70b_h100_tp4 and qwen3-8b_h100_tp1
with i.i.d. or AR(1) power per state and K by BIC or K = 10, on their held-out blocks.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from calibration.fit_all import SHIPPED, run_dir  # noqa: E402
from dcsim.calibrate import calibrate  # noqa: E402
from dcsim.power.chain import replay_occupancy  # noqa: E402
from dcsim.measured import load_run  # noqa: E402
from dcsim.configs import load_config  # noqa: E402
from dcsim.serving.features import active_grid  # noqa: E402
from dcsim.serving.latency import tbt_from_token_counter, tbt_samples_from_engine  # noqa: E402
from dcsim.studies.validate import validate  # noqa: E402


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def features(data: Path) -> None:
    print("| run | engine running | rebuilt from log | simulated | TBT naive ms | TBT clean ms | TBT counter ms |"
          " rebuild r | rebuild mean ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, spec in SHIPPED.items():
        config = load_config(name)
        for campaign in spec["runs"]:
            run = load_run(run_dir(data, campaign))
            req, eng = run.requests, run.engine
            start = req.arrival_s - run.t0_s
            rebuilt = active_grid(start, start + req.ttft_s + req.n_out * np.exp(config.surrogate.mu_log_tbt_), 0.0,
                                  len(run.power_w), run.dt_s)
            sims = [replay_occupancy(run, config.surrogate, np.random.default_rng(s)) for s in range(5)]
            d_gen = np.diff(eng.generation_tokens_total)
            busy = (eng.running[1:] > 0) & (d_gen > 0)
            naive = float((eng.running[1:] * np.diff(eng.t_s))[busy].sum() / d_gen[busy].sum())
            clean = tbt_samples_from_engine(eng.t_s, eng.running, eng.generation_tokens_total, eng.prompt_tokens_total)
            counter = tbt_from_token_counter(req.arrival_s, req.ttft_s, req.n_out, eng.t_s, eng.generation_tokens_total)
            running = np.nan_to_num(run.running, nan=0.0)
            r_rebuild = np.median([_corr(running, s) for s in sims])
            ratio = np.median([s.mean() / running.mean() for s in sims])
            print(f"| {campaign} | {_corr(run.power_w, run.running):.2f} | {_corr(run.power_w, rebuilt):.2f} |"
                  f" {_corr(run.power_w, sims[0]):.2f} | {naive * 1e3:.1f} |"
                  f" {np.median(clean) * 1e3 if clean.size else float('nan'):.1f} | {counter * 1e3:.1f} |"
                  f" {r_rebuild:.2f} | {ratio:.2f} |")


def splits(data: Path) -> None:
    spec = SHIPPED["qwen3-8b_a100_tp1"]["runs"]
    fit = [c for c, r in spec.items() if r != "test"]
    bursty = load_run(run_dir(data, "arrival_pattern_qwen3-8b_a100_bursty"))
    burstgpt = load_run(run_dir(data, "burstgpt_qwen3-8b_a100"))
    print("qwen3-8b_a100_tp1: smooth run as | classifier seed | bursty KS / ACF R2 / NRMSE / dE % | BurstGPT dE %")
    for smooth_role in ("val", "blocks"):
        roles = [smooth_role if "smooth" in c else spec[c] for c in fit]
        for seed in (0, 1, 2):
            config = calibrate("study", [run_dir(data, c) for c in fit], roles=roles, seed=seed)
            b = validate(config, bursty, seeds=5)
            g = validate(config, burstgpt, seeds=5)
            print(f"  {smooth_role:6s} | {seed} | {b.ks:.3f} / {b.acf_r2:.3f} / {b.nrmse:.3f} / {b.delta_energy_pct:+.1f}"
                  f" | {g.delta_energy_pct:+.1f}", flush=True)
    for name in ("llama-3.1-70b_h100_tp4", "qwen3-8b_h100_tp1"):
        power_models(data, name)


def power_models(data: Path, name: str) -> None:
    """A single-run configuration with i.i.d. or AR(1) power per state and K by BIC or K = 10, on its held-out block."""
    (campaign,) = SHIPPED[name]["runs"]
    path = run_dir(data, campaign)
    run = load_run(path)
    print(f"{name} held-out block: power per state, K | KS / ACF R2 / NRMSE / dE %")
    for ar1, k in ((False, None), (True, None), (False, 10), (True, 10)):
        config = calibrate("study", [path], roles=["blocks"], ar1=ar1, k=k)
        v = validate(config, run, seeds=5)
        print(f"  {'AR(1)' if ar1 else 'i.i.d.'} K={config.states.k_} | {v.ks:.3f} / {v.acf_r2:.3f} / {v.nrmse:.3f} /"
              f" {v.delta_energy_pct:+.1f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("features", "splits"))
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = ap.parse_args()
    {"features": features, "splits": splits}[args.what](args.data)


if __name__ == "__main__":
    main()
