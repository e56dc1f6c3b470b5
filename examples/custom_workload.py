"""A custom arrival process and a custom router, plugged into a scenario built in Python.

    python examples/custom_workload.py            # writes out/custom_workload/ and out/custom_workload_rows.png

The arrival process is a Poisson stream with a flash crowd (the rate jumps for a while); the router
sends each request to the server with the fewest requests in hand, and among those to the one drawing
the least power. Both are ordinary subclasses, named in the scenario as ``"this/file.py:Class"``.
A router that reads power makes the engine run its closed-loop path (power generated interval by
interval, so the router sees it).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dcsim.workload.arrivals import ArrivalProcess, Requests
from dcsim.workload.routing import Router, ServerView
from dcsim.workload.tokens import TokenSource

HERE = Path(__file__).resolve()


class FlashCrowd(ArrivalProcess):
    """Poisson arrivals at ``rate_per_s``, ``surge``× as many between ``start_s`` and ``start_s + length_s``.

    The scenario passes ``tokens`` (the token source of ``workload.tokens``) and ``rate_scale`` (the stream's
    size: a pooled stream of a rack gets the rack's traffic); every draw comes from ``rng``.
    """

    def __init__(self, rate_per_s: float, surge: float, start_s: float, length_s: float, tokens: TokenSource,
                 rate_scale: float = 1.0) -> None:
        self.base_rate_per_s, self.surge, self.start_s, self.length_s = rate_per_s, surge, start_s, length_s
        self.tokens, self.rate_scale = tokens, rate_scale

    def rate_per_s(self, t_s: np.ndarray) -> np.ndarray:
        t_s = np.asarray(t_s, dtype=float)
        crowd = (t_s >= self.start_s) & (t_s < self.start_s + self.length_s)
        return self.base_rate_per_s * self.rate_scale * np.where(crowd, self.surge, 1.0)

    def sample(self, duration_s: float, rng: np.random.Generator) -> Requests:
        peak = self.base_rate_per_s * self.rate_scale * max(self.surge, 1.0)
        t = np.sort(rng.uniform(0.0, duration_s, rng.poisson(peak * duration_s)))
        t = t[rng.random(t.size) * peak < self.rate_per_s(t)]  # thinning
        n_in, n_out = self.tokens.sample(t.size, rng)
        return Requests(t, n_in, n_out)


class FewestThenCoolest(Router):
    """The online server with the fewest requests in hand; ties go to the one drawing the least power."""

    reads = "power"  # what choose() looks at: "nothing", "queues" or "power" (the engine picks its path from it)

    def choose(self, t_s: float, n_in: int, n_out: int, servers: ServerView, rng: np.random.Generator) -> int:
        idx = servers.online_index()
        load = (servers.active + servers.queued)[idx]
        power = np.nan_to_num(servers.power_w[idx], nan=0.0)
        return int(idx[np.lexsort((power, load))[0]])


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dcsim.runner import run
    from dcsim.scenario import Scenario

    scenario = Scenario.from_dict({
        "simulation": {"duration_s": 600.0, "seed": 7},
        "facility": {"rows": 2, "racks_per_row": 2, "servers_per_rack": 4, "config": "qwen3-8b_a100_tp1"},
        "site": {"p_base_w": 1000.0, "pue": 1.3},
        "workload": {"arrival": f"{HERE}:FlashCrowd",
                     "params": {"rate_per_s": 6.0, "surge": 2.5, "start_s": 200.0, "length_s": 150.0},
                     "tokens": "azure2023_conv", "stream": "pooled", "pool": "rack",
                     "routing": f"{HERE}:FewestThenCoolest"},
        "outputs": {"levels": ["site", "row", "rack"], "resolutions_s": [1.0, 60.0]},
    }, source="custom_workload")
    result = run(scenario, out_dir=Path("out") / "custom_workload")

    fig, ax = plt.subplots(figsize=(9, 3.5), constrained_layout=True)
    rows = result.traces["row"].filter(result.traces["row"]["resolution_s"] == 1.0)
    for name in rows["node"].unique(maintain_order=True):
        one = rows.filter(rows["node"] == name)
        ax.plot(one["t_s"].to_numpy() / 60, one["power_w"].to_numpy() / 1e3, lw=0.8, label=name)
    ax.axvspan(200 / 60, 350 / 60, color="orange", alpha=0.15, label="flash crowd")
    ax.set_xlabel("time (min)")
    ax.set_ylabel("row IT power (kW)")
    ax.legend(frameon=False)
    path = Path("out") / "custom_workload_rows.png"
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
