"""A measured run on the 250 ms grid: clock alignment, the power lag, node power, and :func:`load_run`.

See :mod:`dcsim.measured` for the method and the measured correlations.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from dcsim.constants import DAY_S, STEP_S
from dcsim.errors import DcsimInputError
from dcsim.measured.readers import (AGREE_FRACTION, AGREE_TOL_S, COVER_TOL_S, DEFAULT_LAG_S, EngineSamples, FINE_LAG_S, HIGH_PASS_S,
                                    LAG_RANGE_S, LAG_STEP_S, MAX_GAP_STEPS, MIN_XCORR_S, POWER_FILE, REQUEST_SLACK_S, RequestLog,
                                    ZONE_SPAN_S, ZONE_STEP_S, _date_seconds, _manifest_settings, _power_format, _read_manifest,
                                    _read_rows, _source_date, read_engine_csv, read_power_csv, read_requests_json)




@dataclass
class MeasuredRun:
    """One measured run on an epoch grid of step ``dt_s`` starting at ``t0_s``.

    ``power_w`` is node power (W, sum over ``n_gpus``), NaN inside sampling gaps; ``running`` is the
    engine's running-request count (last sample at or before each grid time). ``segments`` are the
    ``[start, stop)`` index ranges of valid power. ``xcorr_check`` records the cross-correlation:
    ``best_lag_s`` and ``corr_at_best`` over ±3 s, ``corr_within_1s``, ``offset_consistent`` /
    ``agrees_with_manifest`` (None when inconclusive or there is no manifest offset), ``lag_source``,
    ``grid_corr`` (grid power vs running count) and, after a zone search, ``zone_offset_s`` etc.
    """

    path: Path
    name: str
    manifest: dict
    n_gpus: int
    is_moe: bool
    t0_s: float
    dt_s: float
    power_w: np.ndarray
    running: np.ndarray
    segments: list[tuple[int, int]]
    engine: EngineSamples
    requests: RequestLog
    clock_offset_s: float
    clock_source: str
    power_lag_s: float
    xcorr_check: dict = field(default_factory=dict)

    @property
    def t_s(self) -> np.ndarray:
        """Epoch time (s) of every grid step."""
        return self.t0_s + self.dt_s * np.arange(len(self.power_w))



# ----------------------------------------------------------------------------------------------
# signals on a grid


def gpu_power_at(t_s: np.ndarray, power_w: np.ndarray, x_s: np.ndarray, max_gap_s: float) -> np.ndarray:
    """One GPU's power interpolated linearly at ``x_s``; NaN outside its samples or where the two
    samples around a point are more than ``max_gap_s`` apart (unless the point is a sample)."""
    i = np.searchsorted(t_s, x_s, side="right")
    inside = (i > 0) & (i < len(t_s))
    left = t_s[np.clip(i - 1, 0, len(t_s) - 1)]
    right = t_s[np.clip(i, 0, len(t_s) - 1)]
    ok = inside & ((right - left <= max_gap_s) | (x_s == left))
    ok |= (i == len(t_s)) & (x_s == t_s[-1])
    return np.where(ok, np.interp(x_s, t_s, power_w), np.nan)


def node_power_at(gpus: list[tuple[np.ndarray, np.ndarray]], x_s: np.ndarray, max_gap_s: float) -> np.ndarray:
    """Node power at ``x_s``: each GPU interpolated separately, then summed (NaN if any GPU is)."""
    return np.sum([gpu_power_at(t, p, x_s, max_gap_s) for t, p in gpus], axis=0)


def step_at(t_s: np.ndarray, values: np.ndarray, x_s: np.ndarray) -> np.ndarray:
    """Last value at or before each ``x_s``; NaN before the first and after the last sample."""
    i = np.searchsorted(t_s, x_s, side="right") - 1
    ok = (i >= 0) & (x_s <= t_s[-1])
    return np.where(ok, values[np.clip(i, 0, len(values) - 1)], np.nan)


def segments_of(valid: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` index ranges where ``valid`` is True."""
    edges = np.diff(np.concatenate([[0], valid.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation over the points where both are finite (NaN if under 3 or constant)."""
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return math.nan
    a, b = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    denom = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / denom if denom > 0 else math.nan


def high_pass(v: np.ndarray, width: int) -> np.ndarray:
    """``v`` minus its centred moving average over ``width`` (odd) steps; NaN where the window is not full."""
    ok = np.isfinite(v)
    kernel = np.ones(width)
    total = np.convolve(np.where(ok, v, 0.0), kernel, "same")
    count = np.convolve(ok.astype(float), kernel, "same")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = v - total / count
    out[count < width] = np.nan
    return out


def lag_scan(power_at: Callable[[np.ndarray], np.ndarray], engine: EngineSamples, x_s: np.ndarray,
             lags_s: np.ndarray, dt_s: float) -> np.ndarray:
    """Correlation of power read at ``x_s + lag`` with the running count at ``x_s``, per lag.

    Both signals are high-passed (a 2 s moving average removed) so the peak is set by load changes,
    not by slow drifts; the running count is interpolated linearly between polls here (the held
    count would trail each poll by half an interval and bias the lag).
    """
    width = 2 * int(round(HIGH_PASS_S / dt_s / 2)) + 1
    inside = (x_s >= engine.t_s[0]) & (x_s <= engine.t_s[-1])
    running = high_pass(np.where(inside, np.interp(x_s, engine.t_s, engine.running), np.nan), width)
    return np.array([_corr(high_pass(power_at(x_s + lag), width), running) for lag in lags_s])


# ----------------------------------------------------------------------------------------------
# the loader

Gpus = list[tuple[np.ndarray, np.ndarray]]   # per GPU: (sample times s, power W), times increasing


def _per_gpu(t_s: np.ndarray, gpu: np.ndarray, power_w: np.ndarray) -> Gpus:
    """Per-GPU (time, power), in ``np.unique(gpu)`` order; ``read_power_csv`` has already refused any GPU whose
    times do not increase (so nothing is re-sorted here)."""
    return [(t_s[gpu == g], power_w[gpu == g]) for g in np.unique(gpu)]


def _shift(gpus: Gpus, by_s: float) -> Gpus:
    return [(t + by_s, p) for t, p in gpus]


def _overlap_grid(gpus: Gpus, engine: EngineSamples, dt_s: float) -> np.ndarray:
    """Epoch grid (multiples of ``dt_s``) inside the span every GPU and the engine log cover."""
    lo = max([t[0] for t, _ in gpus] + [engine.t_s[0]])
    hi = min([t[-1] for t, _ in gpus] + [engine.t_s[-1]])
    start = math.ceil(lo / dt_s - 1e-9) * dt_s
    n = int(math.floor((hi - start) / dt_s + 1e-9)) + 1 if hi >= start else 0
    return start + dt_s * np.arange(n)


def _scan(gpus: Gpus, engine: EngineSamples, lags_s: np.ndarray, dt_s: float) -> tuple[np.ndarray, float]:
    """Lag-scan correlations for epoch-timed ``gpus`` and the overlap length (s) they were computed on."""
    x = _overlap_grid(gpus, engine, dt_s)
    if x.size * dt_s < MIN_XCORR_S:
        return np.full(len(lags_s), np.nan), x.size * dt_s
    corr = lag_scan(lambda xs: node_power_at(gpus, xs, MAX_GAP_STEPS * dt_s), engine, x, lags_s, dt_s)
    return corr, x.size * dt_s


def _search_zone(gpus: Gpus, engine: EngineSamples, span_s: int, dt_s: float) -> dict:
    """Zone offset (a multiple of 15 min within ±span_s) whose power overlaps the engine log and
    correlates best with the running count (lags 0..2 s at grid resolution); else the longest overlap."""
    coarse = np.arange(LAG_RANGE_S[0], LAG_RANGE_S[1] + 1e-9, dt_s)
    scored = []
    for offset in range(-span_s, span_s + 1, ZONE_STEP_S):
        shifted = _shift(gpus, offset)
        if _overlap_grid(shifted, engine, dt_s).size < 2:
            continue
        corr, overlap_s = _scan(shifted, engine, coarse, dt_s)
        best = float(np.nanmax(corr)) if np.any(np.isfinite(corr)) else -math.inf
        scored.append((best, overlap_s, offset))
    if not scored:
        return {}
    scored.sort(reverse=True)
    return {"zone_offset_s": float(scored[0][2]),
            "zone_corr": scored[0][0] if math.isfinite(scored[0][0]) else None,
            "zone_candidates_overlapping": len(scored),
            "runner_up_corr": (scored[1][0] if math.isfinite(scored[1][0]) else None) if len(scored) > 1 else None}


def _fine_check(gpus: Gpus, engine: EngineSamples, dt_s: float) -> dict:
    """Lag scan over ±3 s for epoch-timed ``gpus``: best lag, whether the offset holds, the power lag."""
    lags = np.round(np.arange(-FINE_LAG_S, FINE_LAG_S + LAG_STEP_S / 2, LAG_STEP_S), 2)
    corr, overlap_s = _scan(gpus, engine, lags, dt_s)
    check: dict[str, Any] = {"overlap_s": overlap_s, "lags_searched_s": [-FINE_LAG_S, FINE_LAG_S, LAG_STEP_S]}
    if not np.any(np.isfinite(corr)):
        why = (f"overlap {overlap_s:.1f} s < {MIN_XCORR_S:.0f} s" if overlap_s < MIN_XCORR_S
               else "running count or power never changes")
        return check | {"best_lag_s": None, "corr_at_best": None, "corr_within_1s": None,
                        "lag_estimate_s": None, "note": f"no cross-correlation: {why}"}
    c = np.nan_to_num(corr, nan=-np.inf)
    k = int(np.argmax(c))
    near = np.abs(lags) <= AGREE_TOL_S
    window = (lags >= LAG_RANGE_S[0] - AGREE_TOL_S) & (lags <= LAG_RANGE_S[1])
    k_lag = int(np.flatnonzero(window)[np.argmax(c[window])])
    best, within = float(corr[k]), float(np.max(c[near]))
    consistent: bool | None = bool(best > 0 and within >= AGREE_FRACTION * best)
    period = _running_period(engine, _overlap_grid(gpus, engine, dt_s), dt_s)
    if not consistent and period is not None:
        consistent = None
        check["note"] = f"inconclusive: the running count repeats every ~{period:.2f} s, so lags alias"
    return check | {
        "best_lag_s": float(lags[k]) + 0.0, "corr_at_best": best, "corr_within_1s": within,
        "offset_consistent": consistent, "running_period_s": period, "lag_estimate_s": float(lags[k_lag]) + 0.0,
    }


def _running_period(engine: EngineSamples, x_s: np.ndarray, dt_s: float) -> float | None:
    """Lag in 0.75..3 s at which the (high-passed) running count resembles itself more than one step
    later, i.e. a periodic load (e.g. arrivals planned on whole seconds); None if there is none."""
    width = 2 * int(round(HIGH_PASS_S / dt_s / 2)) + 1
    running = high_pass(np.interp(x_s, engine.t_s, engine.running), width)
    steps = np.arange(1, int(round(FINE_LAG_S / dt_s)) + 1)
    ac = np.array([_corr(running[k:], running[:-k]) for k in steps])
    far = steps * dt_s >= MAX_GAP_STEPS * dt_s
    if not np.any(np.isfinite(ac[far])) or not np.isfinite(ac[0]):
        return None
    k = int(np.nanargmax(np.where(far, ac, np.nan)))
    return float(steps[k] * dt_s) if ac[k] > ac[0] else None


def _local_clock(t_epoch_s: float, offset_s: float) -> str:
    """Wall-clock time of day (HH:MM:SS.mmm) the power log shows for an epoch time."""
    return str(np.datetime64(int(round((t_epoch_s - offset_s) * 1000)), "ms"))[11:23]


def _check_gpus_cover_engine(gpus: Gpus, labels: np.ndarray, engine: EngineSamples, offset_s: float,
                             power_file: Path) -> None:
    """Refuse a GPU whose samples start late or stop early against the other GPUs of the server (a GPU that
    vanished half-way would otherwise cut the run silently to the span every GPU covers).

    A power log that starts after or stops before the engine log as a whole is a real thing (the logger
    started late or stopped early) and is accepted: the grid steps it does not cover are NaN, and nothing
    fits or scores them."""
    if len(gpus) < 2:
        return
    first = min(float(t[0]) for t, _ in gpus)
    last = max(float(t[-1]) for t, _ in gpus)
    e0, e1 = max(first, float(engine.t_s[0])), min(last, float(engine.t_s[-1]))
    allowed = f"every GPU sampled as long as the others (to within {COVER_TOL_S:g} s of their start and end)"
    for g, (t, _) in zip(labels.tolist(), gpus):
        if t[-1] < e1 - COVER_TOL_S:
            raise DcsimInputError(f"{power_file}: gpu {g}", f"last sample at {_local_clock(t[-1], offset_s)}", allowed,
                                  problem=f"GPU {g} stops {e1 - t[-1]:.1f} s before the other GPUs")
        if t[0] > e0 + COVER_TOL_S:
            raise DcsimInputError(f"{power_file}: gpu {g}", f"first sample at {_local_clock(t[0], offset_s)}", allowed,
                                  problem=f"GPU {g} starts {t[0] - e0:.1f} s after the other GPUs")


def _check_requests_in_engine_span(requests: RequestLog, engine: EngineSamples, requests_file: Path) -> None:
    lo, hi = engine.t_s[0] - REQUEST_SLACK_S, engine.t_s[-1] + REQUEST_SLACK_S
    bad = np.flatnonzero((requests.arrival_s < lo) | (requests.arrival_s > hi))
    if bad.size:
        v = float(requests.arrival_s[bad[0]])
        raise DcsimInputError(
            f"{requests_file}: request_timestamps", v,
            f"epoch seconds within engine.csv's span {engine.t_s[0]:.3f}..{engine.t_s[-1]:.3f} "
            f"(give or take {REQUEST_SLACK_S:g} s)",
            problem=f"{bad.size} of {len(requests.arrival_s)} arrivals outside the engine log")


def check_distinct_runs(runs: Sequence[MeasuredRun]) -> None:
    """Refuse the same measured run given twice (one directory twice, or two copies holding the same data):
    calibrating on it would count its samples and requests twice."""
    seen: dict[tuple[str, str], MeasuredRun] = {}
    for run in runs:
        digest = hashlib.sha256()
        for arr in (np.array([run.t0_s, run.dt_s]), run.power_w, run.requests.arrival_s, run.requests.n_in,
                    run.requests.n_out):
            digest.update(np.ascontiguousarray(arr).tobytes())
        for key in (("the same directory", str(Path(run.path).resolve())),
                    ("identical power and request data", digest.hexdigest())):
            if key in seen:
                raise DcsimInputError("RUN_DIR", [str(seen[key].path), str(run.path)], "each measured run once",
                                      problem=f"the same run given twice ({key[0]})")
            seen[key] = run


def load_run(path: str | Path, dt_s: float = STEP_S, compensate_lag: bool = True) -> MeasuredRun:
    """Load one run directory onto the ``dt_s`` epoch grid spanning the power/engine overlap.

    The clock offset comes from the manifest (``clock.local_utc_offset_s``) or, without one, from a
    zone search; either way it is checked by cross-correlation (``xcorr_check``). With
    ``compensate_lag`` power is read ``power_lag_s`` later than each grid time, lining it up with the work.

    Every file is checked as it is read (see the readers); across files, every GPU must cover what the
    others cover (to within ``COVER_TOL_S``), the request arrivals must lie within it (give or take
    ``REQUEST_SLACK_S``) and the grid must hold some valid power. Any failure is one ``DcsimInputError``.
    """
    path = Path(path)
    if not path.is_dir():
        raise DcsimInputError(str(path), "a file" if path.exists() else "no such directory",
                              "a run directory with power.csv, engine.csv, requests.json",
                              problem="not a directory" if path.exists() else "directory not found")
    if not (isinstance(dt_s, (int, float)) and math.isfinite(dt_s) and dt_s > 0):
        raise DcsimInputError("dt_s", dt_s, "a positive number of seconds")
    manifest_file = path / "manifest.json"
    manifest = _read_manifest(manifest_file)
    utc_offset_s, date, tp = _manifest_settings(manifest, manifest_file)
    power_file, engine_file, requests_file = path / "power.csv", path / "engine.csv", path / "requests.json"
    date_where = f"{manifest_file}: clock.power_first_timestamp"
    if not date:
        date, date_where = _source_date(path / "source.txt"), f"{path / 'source.txt'}: power_date"
    header, _ = _read_rows(power_file, POWER_FILE)
    file_has_dates = _power_format(header) == "nvidia-smi"
    t_naive, gpu, power = read_power_csv(power_file, date, date_where)
    engine = read_engine_csv(engine_file)
    requests = read_requests_json(requests_file)

    labels = np.unique(gpu)
    n_gpus = int(labels.size)
    if tp is not None and tp != n_gpus:
        raise DcsimInputError(f"{power_file}: gpu", sorted(set(gpu.tolist())), f"{tp} GPUs (manifest tp)",
                              problem="GPU count differs from the manifest's tensor-parallel degree")

    no_overlap = DcsimInputError(f"{power_file} / {engine_file}", "disjoint time spans",
                                 "power and engine logs covering the same time", problem="no time overlap")
    check: dict[str, Any] = {"manifest_offset_s": None}
    if utc_offset_s is not None:
        offset, source = -utc_offset_s, "manifest"
        check["manifest_offset_s"] = offset
    else:
        span = ZONE_SPAN_S
        if not (file_has_dates or date):   # no date anywhere: read the times on the engine's UTC day
            t_naive = t_naive + _date_seconds(str(np.datetime64(int(engine.t_s[0]), "s")), str(engine_file))
            span += DAY_S
        zone = _search_zone(_per_gpu(t_naive, gpu, power), engine, span, dt_s)
        if not zone:
            raise no_overlap
        offset = zone["zone_offset_s"]
        days = round(offset / DAY_S) if abs(offset) > ZONE_SPAN_S else 0
        if days:                           # the assumed day was off: keep the offset a zone offset
            t_naive, offset = t_naive + days * DAY_S, offset - days * DAY_S
            zone["zone_offset_s"], zone["date_shifted_days"] = offset, days
        check.update(zone)
        source = "nvidia-smi" if file_has_dates else "xcorr"
    gpus = _shift(_per_gpu(t_naive, gpu, power), offset)
    if _overlap_grid(gpus, engine, dt_s).size < 2:
        raise no_overlap
    _check_gpus_cover_engine(gpus, labels, engine, offset, power_file)
    _check_requests_in_engine_span(requests, engine, requests_file)

    check.update(_fine_check(gpus, engine, dt_s))
    if check["lag_estimate_s"] is None:
        lag, check["lag_source"] = DEFAULT_LAG_S, "default"
    else:
        lag = round(float(np.clip(round(check["lag_estimate_s"] / LAG_STEP_S) * LAG_STEP_S, *LAG_RANGE_S)), 2)
        check["lag_source"] = "xcorr"
    check["agrees_with_manifest"] = check.get("offset_consistent") if source == "manifest" else None

    read_at = _shift(gpus, -lag) if compensate_lag else gpus
    x = _overlap_grid(read_at, engine, dt_s)
    if x.size < 2:
        raise no_overlap
    power_w = node_power_at(read_at, x, MAX_GAP_STEPS * dt_s)
    if not np.isfinite(power_w).any():
        step = float(np.median(np.diff(gpus[0][0]))) if len(gpus[0][0]) > 1 else math.inf
        raise DcsimInputError(str(power_file), f"readings {step:g} s apart",
                              f"readings at most {MAX_GAP_STEPS * dt_s:g} s apart for part of the run",
                              problem="no valid power on the grid")
    running = step_at(engine.t_s, engine.running, x)
    check["grid_corr"] = _corr(power_w, running)
    arch = manifest.get("arch") if isinstance(manifest.get("arch"), dict) else {}
    n_experts = arch.get("n_experts")
    return MeasuredRun(
        path=path, name=f"{path.parent.name}/{path.name}", manifest=manifest, n_gpus=n_gpus,
        is_moe=isinstance(n_experts, (int, float)) and n_experts > 1, t0_s=float(x[0]), dt_s=float(dt_s),
        power_w=power_w, running=running, segments=segments_of(np.isfinite(power_w)),
        engine=engine, requests=requests, clock_offset_s=float(offset), clock_source=source,
        power_lag_s=lag, xcorr_check=check,
    )

