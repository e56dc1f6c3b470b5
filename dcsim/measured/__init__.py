"""Measured-run loader: GPU power, vLLM engine counters and requests of one run on the 250 ms grid.

A run directory holds ``power.csv`` (nvidia-smi samples, local wall-clock time), ``engine.csv``
(engine counters, epoch seconds), ``requests.json`` and usually ``manifest.json`` / ``source.txt``.
``load_run`` puts node power (sum over the run's GPUs) and the running count on one epoch grid:

1. power time → epoch: ``epoch = naive − clock.local_utc_offset_s`` (naive = local date and time read
   as if UTC). Without a manifest the zone offset is searched in 15-minute steps over ±14 h for the
   one whose power overlaps the engine log and correlates best with the running count.
2. the offset is checked by cross-correlating node power with the running count over ±3 s (both
   high-passed, so load changes set the peak); the best lag within [−1, 2] s, clamped to [0, 2] s,
   is taken as the power reading's lag behind the running count. H100 readings are a ~1 s moving
   average and lag more than A100's near-instant ones. On the shared runs the A100 peak sits at
   −0.1..−0.2 s (the engine's polled count itself trails the work), so it clamps to 0 there.
3. each GPU is interpolated linearly onto the grid (read at ``t + power_lag_s`` when compensating),
   NaN where its bracketing samples are more than 3 grid steps apart, then summed.

What is refused (one ``DcsimInputError`` naming the file, row or key, the value and what is allowed;
never a traceback or a silently different trace): files that are missing, folders, not UTF-8 or not
CSV/JSON; times of day outside 00:00:00..23:59:59.999; a GPU index that is not a whole number; a reading
outside 0..3000 W; a GPU's clock stepping back from one of its rows to its next (rows are never re-sorted;
GPUs may interleave in any order, an exact repeat of a row is dropped) or two different readings of one GPU
at one time; a GPU whose samples start or stop more than 5 s inside the engine log; engine or request
times that are not epoch seconds (milliseconds are named as such), engine times that do not increase,
request arrivals outside the engine log (± 60 s); an empty request log; a manifest clock offset that is not
a finite zone offset (|x| <= 14 h); a grid without a single valid power sample. ``check_distinct_runs``
refuses the same run given twice. On the 12 shared runs none of these fires and every array is unchanged.

Which A_t trains the classifier: neither the engine's ``running`` count kept here nor a count rebuilt
exactly from the request log, but A_t *simulated* from the run's own arrivals and token counts through
the fitted latency surrogate and the FIFO-64 queue (``dcsim.power.chain.replay_occupancy``), because that
is what generation feeds the classifier. ``running`` stays on the run for ``dcsim validate --features
measured`` and for checks. Measured against grid power (Pearson r, all samples;
``python calibration/diagnostics.py features``), the engine snapshot is the weakest of the three, most of all where requests are
shorter than its ~250 ms poll (BurstGPT: outputs of ~7 tokens) or long prefills dominate (trace replay):

| run | engine running | rebuilt from log (measured TTFT, fitted TBT) | simulated (surrogate + FIFO-64) |
|---|---|---|---|
| Qwen3-8B A100 Poisson 4 | 0.81 | 0.83 | 0.82 |
| Qwen3-8B A100 Poisson 2.5 | 0.73 | 0.76 | 0.76 |
| Qwen3-8B A100 smooth | 0.81 | 0.82 | 0.82 |
| Qwen3-8B A100 bursty | 0.64 | 0.70 | 0.71 |
| Qwen3-8B A100 BurstGPT | 0.30 | 0.36 | 0.36 |
| Qwen3-8B A100 trace replay, cache off | 0.07 | 0.19 | 0.13 |
| Qwen3-8B A100 trace replay, cache on | 0.05 | 0.13 | 0.09 |
| Qwen3-8B H100 Poisson 4 | 0.86 | 0.87 | 0.87 |
| Llama-3.1-70B H100 TP4 | 0.87 | 0.88 | 0.88 |
| Gemma-4-26B-A4B A100 TP2 (MoE) | 0.83 | 0.87 | 0.86 |
"""
from __future__ import annotations

from dcsim.measured.grid import (MeasuredRun, check_distinct_runs, gpu_power_at, high_pass, lag_scan, load_run,
                                 node_power_at, segments_of, step_at)
from dcsim.measured.readers import (EngineSamples, RequestLog, read_engine_csv, read_power_csv,
                                    read_requests_json)

__all__ = ["MeasuredRun", "EngineSamples", "RequestLog", "load_run", "check_distinct_runs", "segments_of",
           "read_power_csv", "read_engine_csv", "read_requests_json", "gpu_power_at", "node_power_at", "step_at",
           "high_pass", "lag_scan"]
