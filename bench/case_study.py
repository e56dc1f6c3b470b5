"""Benchmark the facility engine in one run and print ratios (compare within a run; these machines are noisy).

    python bench/case_study.py [--minutes 10] [--json]

Runs the paper's case-study hall (240 servers, Azure 2024 code day) for a few minutes on the fast path (no
control policy) and on the closed-loop live path (a power cap whose limit never binds), and reports
server-seconds simulated per wall second for each and the live/fast cost ratio.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from dcsim.runner import run
from dcsim.scenario import load_scenario

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "paper_case_study.toml"


def timed_run(overrides: list[str]) -> tuple[float, dict]:
    scenario = load_scenario(SCENARIO, overrides)
    t0 = time.perf_counter()
    result = run(scenario, progress=False, write=False)
    return time.perf_counter() - t0, result.summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    duration_s = args.minutes * 60.0
    base = [f"simulation.duration_s={duration_s}", "outputs.resolutions_s=[1.0, 60.0]", "outputs.plot=false"]
    fast_s, fast = timed_run(base)
    live_s, live = timed_run(base + ["control.policy=\"cap\"", "site.limits_w.site=1e9"])
    n = fast["n_servers"]
    result = {
        "servers": n, "duration_s": duration_s,
        "fast_server_s_per_wall_s": n * duration_s / fast_s, "live_server_s_per_wall_s": n * duration_s / live_s,
        "live_over_fast_cost": live_s / fast_s, "fast_path": fast["engine_path"], "live_path": live["engine_path"],
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{n} servers, {args.minutes:g} min of the Azure 2024 code day")
    print(f"  {result['fast_path']} path: {result['fast_server_s_per_wall_s']:.0f} server-seconds per wall second")
    print(f"  {result['live_path']} path (cap that never binds): {result['live_server_s_per_wall_s']:.0f}"
          f" server-seconds per wall second, {result['live_over_fast_cost']:.1f}x the fast path's cost")


if __name__ == "__main__":
    main()
