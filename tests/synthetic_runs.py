"""A synthetic measured run written in the reduced layout of ../shared/data, for end-to-end tests.

Requests arrive as Poisson, are served with a log-linear TTFT and a fixed TBT, and the GPU draws idle power when
nothing runs and a level that grows with the running count otherwise — so a calibrated pipeline has a real,
learnable mapping from A_t to power states.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np

EPOCH0 = 1_784_415_600.0
UTC_MINUS_7 = -25200.0


def write_synthetic_run(root: Path, name: str = "synthetic/run0", duration_s: float = 90.0, rate_per_s: float = 2.0,
                        n_gpus: int = 1, seed: int = 0, moe: bool = False) -> Path:
    rng = np.random.default_rng(seed)
    run = root / name
    run.mkdir(parents=True)
    lead_s = 10.0
    n = rng.poisson(rate_per_s * (duration_s - 2 * lead_s))
    arrival = EPOCH0 + lead_s + np.sort(rng.uniform(0, duration_s - 2 * lead_s, n))
    n_in = np.maximum(1, rng.lognormal(5.5, 0.8, n)).astype(int)
    n_out = rng.integers(20, 200, n)
    ttft = np.exp(-4.0 + 0.25 * np.log(n_in + 1) + rng.normal(0, 0.2, n))
    tbt = 0.014
    end = arrival + ttft + n_out * tbt

    def running_at(t: np.ndarray) -> np.ndarray:
        return ((arrival[None, :] <= t[:, None]) & (end[None, :] > t[:, None])).sum(axis=1)

    t_power = EPOCH0 + 0.25 * np.arange(int(duration_s / 0.25)) + 0.01
    active = running_at(t_power)
    node = np.where(active > 0, 250.0 + 9.0 * np.minimum(active, 12), 80.0) + rng.normal(0, 4.0, len(t_power))
    lines = ["time_local,gpu,power_w"]
    for t, p in zip(t_power, node):
        clock = dt.datetime.fromtimestamp(t + UTC_MINUS_7, dt.timezone.utc).strftime("%H:%M:%S.%f")[:-3]
        for g in range(n_gpus):
            lines.append(f"{clock},{g},{p / n_gpus:.2f}")
    (run / "power.csv").write_text("\n".join(lines) + "\n")

    t_engine = EPOCH0 + 0.25 * np.arange(int(duration_s / 0.25)) + 0.05
    emitted = np.clip((t_engine[:, None] - (arrival + ttft)[None, :]) / tbt + 1, 0, n_out[None, :]).astype(int).sum(axis=1)
    prompts = ((arrival + ttft)[None, :] <= t_engine[:, None]) @ n_in
    rows = ["t_epoch_s,running,waiting,prompt_tokens_total,generation_tokens_total"]
    rows += [f"{t:.6f},{r:.1f},0.0,{1 + p:.1f},{1 + g:.1f}"
             for t, r, p, g in zip(t_engine, running_at(t_engine), prompts, emitted)]
    (run / "engine.csv").write_text("\n".join(rows) + "\n")
    (run / "requests.json").write_text(json.dumps({
        "request_timestamps": arrival.tolist(), "input_lens": n_in.tolist(), "output_lens": n_out.tolist(),
        "ttfts": ttft.tolist()}))
    first = dt.datetime.fromtimestamp(t_power[0] + UTC_MINUS_7, dt.timezone.utc).strftime("%Y/%m/%d %H:%M:%S.%f")[:-3]
    (run / "manifest.json").write_text(json.dumps({
        "model": "synthetic/model", "hardware": "A100", "tp": n_gpus, "gpus_per_node": n_gpus,
        "arch": {"n_experts": 8 if moe else 1},
        "clock": {"local_utc_offset_s": UTC_MINUS_7, "power_first_timestamp": first}}))
    return run
