"""Benchmark the hot paths in one run and print ratios (these machines are noisy: compare within a run).

    python bench/generation.py [--servers 64] [--hours 1] [--json]

- serving: compiled FIFO kernel vs the SimPy reference on the same requests (speed-up ratio, and equal results)
- classifier: BiGRU windowed inference throughput, as simulated seconds per wall second (real-time factor)
- server: one shipped configuration end to end (requests -> power) as a real-time factor
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from dcsim.configs import load_config
from dcsim.serving.features import feature_matrix
from dcsim.serving.kernel import serve_fifo
from dcsim.serving.queue import serve_fifo_simpy
from dcsim.power.chain import generate_server
from dcsim.workload.arrivals import Requests


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--servers", type=int, default=64)
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--config", default="qwen3-8b_a100_tp1")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    config = load_config(args.config)
    duration_s = args.hours * 3600.0

    n = int(3.0 * duration_s)
    arrival = np.sort(rng.uniform(0, duration_s, n))
    ttft = rng.lognormal(-3, 0.3, n)
    decode = rng.lognormal(1, 0.5, n)
    ref, t_simpy = timed(serve_fifo_simpy, arrival, ttft, decode)
    fast, t_kernel = timed(serve_fifo, arrival, ttft, decode)
    assert np.array_equal(ref.start_s, fast.start_s)

    n_steps = int(duration_s / 0.25)
    active = np.clip(rng.normal(6, 3, (args.servers, n_steps)).cumsum(axis=1) * 0.01 + 6, 0, 64)
    _, t_gru = timed(config.classifier.predict_proba, feature_matrix(active))

    n_in, n_out = config.tokens.sample(n, rng)
    _, t_server = timed(generate_server, config, Requests(arrival, n_in, n_out), duration_s, rng)

    result = {
        "torch_threads": torch.get_num_threads(),
        "requests": n,
        "serving_kernel_speedup_vs_simpy": t_simpy / t_kernel,
        "classifier_realtime_factor_per_server": args.servers * duration_s / t_gru,
        "classifier_steps_per_s": args.servers * n_steps / t_gru,
        "server_end_to_end_realtime_factor": duration_s / t_server,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.config}, {args.hours:g} h, {args.servers} servers for the classifier, {result['torch_threads']} torch threads")
    print(f"  serving: kernel is {result['serving_kernel_speedup_vs_simpy']:.1f}x faster than SimPy ({n} requests, equal starts)")
    print(f"  classifier: {result['classifier_realtime_factor_per_server']:.0f} server-seconds simulated per wall second"
          f" ({result['classifier_steps_per_s']:.0f} steps/s)")
    print(f"  one server end to end: {result['server_end_to_end_realtime_factor']:.0f}x real time")


if __name__ == "__main__":
    main()
