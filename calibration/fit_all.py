"""Regenerate every shipped configuration in calibration/artifacts/ from the measured runs in ../shared/data.

    python calibration/fit_all.py [--data ../shared/data] [--only NAME] [--epochs 300]

Which runs train each configuration, and why:
- qwen3-8b_a100_tp1: trains on the two Poisson ShareGPT runs (4 and 2.5 req/s) and 70 % of the smooth-arrival run,
  whose middle 15 % + 15 % time blocks validate (early stopping) and test. With the smooth run only validating,
  the classifier saw less data and scored ACF R² 0.944 / 0.975 / 0.947 on the bursty run for classifier seeds
  0 / 1 / 2, against 0.988 / 0.987 / 0.989 with it in blocks (`python calibration/diagnostics.py splits`).
  It is tested on runs of other arrival patterns and workloads it never saw: bursty arrivals,
  the BurstGPT replay (outputs of ~7 tokens), and the multi-turn trace replay with prefix cache off and on
  (prompts of ~12k tokens). The long-context replays are kept out of training on purpose: pooled in, they moved the
  power at A_t = 1 from about 290 W to about 356 W (issue #4's probe), i.e. the state a request puts the GPU in
  depends on prompt length, which (A_t, ΔA_t) cannot see; a ShareGPT-like default workload is the one trained for.
  The two 4-request smoke runs are too short to use.
- qwen3-8b_h100_tp1, llama-3.1-70b_h100_tp4, gemma-4-26b-a4b_a100_tp2: one run each, so contiguous 70/15/15 time
  blocks inside the run (test and validation blocks in the middle of the loaded span); scores on these are on
  unseen time, not unseen workloads. gemma is a mixture-of-experts model (manifest arch.n_experts = 128): AR(1).
llama-3.1-70b_h100_tp4 samples power per state as AR(1) although it is dense: the H100 reading is a ~1 s moving
average, so measured power is autocorrelated inside a state, which i.i.d. draws cannot reproduce. On its held-out
block this moved ACF R² from -0.125 to 0.222 and KS from 0.141 to 0.117 (NRMSE 0.205 -> 0.204, dE -1.2 % -> -1.5 %;
K = 10 i.i.d. gives KS 0.049 but ACF R² 0.044; `python calibration/diagnostics.py splits`).
For qwen3-8b_h100_tp1 the same change looked worse on its 39-sample (10 s) held-out block (KS 0.231 -> 0.333,
ACF R² -0.40 -> -0.99), too short to decide either way, so it stays i.i.d. as in the paper.
The paper's own Llama A100 training data is not public, so no Llama A100 configuration ships.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dcsim.calibrate import calibrate  # noqa: E402
from dcsim.measured import load_run  # noqa: E402
from dcsim.configs import load_config  # noqa: E402
from dcsim.studies.validate import validate  # noqa: E402

PT = "powertrace"
SHIPPED = {
    "qwen3-8b_a100_tp1": {
        "runs": {
            "validate_qwen3-8b_a100": "train",
            "arrival_rate_qwen3-8b_a100_r2p5": "train",
            "arrival_pattern_qwen3-8b_a100_smooth": "blocks",
            "arrival_pattern_qwen3-8b_a100_bursty": "test",
            "burstgpt_qwen3-8b_a100": "test",
            "trace_replay_qwen3-8b_a100_cache_off": "test",
            "trace_replay_qwen3-8b_a100_cache_on": "test",
        },
        "provenance": "measured: Qwen3-8B on 1xA100, vLLM 0.10.1, grantwilkins/powertrace-sim runs (2026-07-18)",
    },
    "qwen3-8b_h100_tp1": {
        "runs": {"validate_qwen3-8b": "blocks"},
        "provenance": "measured: Qwen3-8B on 1xH100, one Poisson 4 req/s run, time blocks",
    },
    "llama-3.1-70b_h100_tp4": {
        "runs": {"h100_tp4_state_control": "blocks"},
        "ar1": True,
        "provenance": "measured: Llama-3.1-70B-Instruct on 4xH100 TP4, one run (180 s idle + 1680 requests), time blocks",
    },
    "gemma-4-26b-a4b_a100_tp2": {
        "runs": {"validate_gemma-4-26b-a4b_moe_transfer_a100": "blocks"},
        "provenance": "measured: Gemma-4-26B-A4B (MoE, 128 experts) on 2xA100 TP2, one run, time blocks, AR(1)",
    },
}


def run_dir(data: Path, campaign: str) -> Path:
    found = sorted(p for p in (data / PT / campaign).iterdir() if p.is_dir())
    return found[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--only", action="append", help="configuration name (repeatable)")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--seeds", type=int, default=5, help="validation seeds")
    ap.add_argument("--out", type=Path, default=REPO / "calibration" / "artifacts")
    args = ap.parse_args()
    report_path = args.out / "validation.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    for name, spec in SHIPPED.items():
        if args.only and name not in args.only:
            continue
        campaigns = list(spec["runs"])
        roles = [spec["runs"][c] for c in campaigns]
        dirs = [run_dir(args.data, c) for c in campaigns]
        print(f"== {name}")
        t0 = time.perf_counter()
        # whole "test" runs go in too: never fitted on, but recorded in meta.json, so `dcsim validate` scores them whole
        calibrate(name, dirs, roles=roles, epochs=args.epochs, out_dir=args.out / name, overwrite=True, ar1=spec.get("ar1"),
                  provenance=spec["provenance"], log=print)
        fit_s = time.perf_counter() - t0
        config = load_config(args.out / name)
        scored = [d for d, r in zip(dirs, roles) if r in ("test", "blocks")]
        report[name] = {"fit_s": round(fit_s, 1), "k": config.states.k_, "validation": []}
        for d in scored:
            run = load_run(d)
            for features in ("simulated", "measured"):
                v = validate(config, run, seeds=args.seeds, features=features)
                row = v.to_json_dict() | {"features": features, "scored": v.scored}
                report[name]["validation"].append(row)
                print(f"  {v.run:70s} {features:9s} KS {v.ks:.3f}  ACF R2 {v.acf_r2:.3f}  NRMSE {v.nrmse:.3f}"
                      f"  dE {v.delta_energy_pct:+.1f}%")
        print(f"  fitted in {fit_s:.0f} s")
        report_path.write_text(json.dumps(report, indent=1))
    print(f"wrote {report_path}")


if __name__ == "__main__":
    main()
