"""Edge effects: the first and last minute of a stationary run against its middle (site power, 1 s means).

``python bench/edges.py [--scenario scenarios/paper_case_study.toml] [--duration-s 900] [--json]`` prints the
site mean over the first minute, the middle and the last minute, the peak and where it falls, and KS statistics
of the edge minutes against the middle. Ratios within one run are the figures that count.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dcsim.metrics import ks_statistic  # noqa: E402
from dcsim.runner import run  # noqa: E402
from dcsim.scenario import load_scenario  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="scenarios/paper_case_study.toml")
    ap.add_argument("--duration-s", type=float, default=900.0)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sets = [f"simulation.duration_s={args.duration_s}", "outputs.resolutions_s=[1.0]", *args.set]
    res = run(load_scenario(args.scenario, sets), write=False, progress=False)
    site = res.trace("site", 1.0)
    first, last, middle = site[:60], site[-60:], site[len(site) // 2 - 150:len(site) // 2 + 150]
    out = {"scenario": args.scenario, "duration_s": args.duration_s,
           "first_minute_kw": float(first.mean() / 1e3), "middle_kw": float(middle.mean() / 1e3),
           "last_minute_kw": float(last.mean() / 1e3), "last_2s_kw": [float(x / 1e3) for x in site[-2:]],
           "peak_kw": float(site.max() / 1e3), "peak_at_s": float(np.argmax(site)),
           "ks_first_vs_middle": ks_statistic(middle, first), "ks_last_vs_middle": ks_statistic(middle, last),
           "peak_to_average": float(site.max() / site.mean())}
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))


if __name__ == "__main__":
    main()
