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

import csv
import hashlib
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from dcsim.errors import DcsimInputError, clipped

REDUCED_HEADER = ["time_local", "gpu", "power_w"]
ENGINE_COLUMNS = ["t_epoch_s", "running", "waiting", "prompt_tokens_total", "generation_tokens_total"]
REQUEST_KEYS = ["request_timestamps", "input_lens", "output_lens", "ttfts"]
POWER_FILE = "a CSV file time_local,gpu,power_w (or nvidia-smi's timestamp, index, power.draw [W])"

MAX_GAP_STEPS = 3            # a grid step bracketed by samples more than this many steps apart is a gap
FINE_LAG_S = 3.0             # fine lag search: ±3 s ...
LAG_STEP_S = 0.05            # ... in 50 ms steps
LAG_RANGE_S = (0.0, 2.0)     # plausible power-meter lag behind the work
DEFAULT_LAG_S = 0.3          # used when there is nothing to correlate (under 10 s, or no load change)
AGREE_TOL_S = 1.0            # xcorr agrees with an offset if it peaks within ±1 s of it ...
AGREE_FRACTION = 0.8         # ... at >= 80% of its best correlation over ±3 s (periodic loads alias)
HIGH_PASS_S = 2.0            # the lag scan correlates changes faster than ~2 s
MIN_XCORR_S = 10.0           # shorter overlaps give no lag estimate (DEFAULT_LAG_S is used)
ZONE_STEP_S = 900            # zone offsets come in 15-minute steps
ZONE_SPAN_S = 14 * 3600      # ... between UTC−14 h and UTC+14 h
_DAY_S = 86400

# what a measured run may hold (anything else is refused with a DcsimInputError naming file, row and value)
MAX_GPU_POWER_W = 3000.0     # one GPU's reading; the largest boards draw ~1.4 kW, so more is not a measurement
MAX_GPU_INDEX = 1023
MAX_ROLLOVER_STEP_S = 3600   # a midnight rollover lands within an hour of the previous sample
COVER_TOL_S = 5.0            # every GPU's samples span the others' to within 5 s at each end
REQUEST_SLACK_S = 60.0       # request arrivals lie within the engine log's span, give or take 60 s
EPOCH_RANGE_S = (946684800.0, 4102444800.0)   # 2000-01-01 .. 2100-01-01 UTC: epoch seconds, not ms
MAX_TOKENS = 10_000_000      # prompt or output tokens of one request
MAX_TTFT_S = 86400.0
MAX_UTC_OFFSET_S = 14 * 3600


@dataclass(frozen=True)
class EngineSamples:
    """vLLM engine counters as polled; ``t_s`` in epoch seconds, token counters cumulative."""

    t_s: np.ndarray
    running: np.ndarray
    waiting: np.ndarray
    prompt_tokens_total: np.ndarray
    generation_tokens_total: np.ndarray


@dataclass(frozen=True)
class RequestLog:
    """One entry per request: arrival (epoch s), input and output tokens, time to first token (s)."""

    arrival_s: np.ndarray
    n_in: np.ndarray
    n_out: np.ndarray
    ttft_s: np.ndarray


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
# file readers: every bad input ends in one DcsimInputError naming the file, the row or key, the value


def _read_text(path: Path, what: str) -> str:
    """The text of ``path`` (UTF-8; a leading byte-order mark dropped); refused if missing, a folder or not text."""
    if path.is_dir():
        raise DcsimInputError(str(path), "a directory", what, problem="not a file")
    if not path.is_file():
        raise DcsimInputError(str(path), "no such file", what, problem="file not found")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DcsimInputError(str(path), exc.strerror or type(exc).__name__, f"a readable file: {what}",
                              problem="cannot read") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DcsimInputError(str(path), data[exc.start:exc.start + 4], f"UTF-8 text: {what}",
                              problem=f"not UTF-8 text at byte {exc.start}") from None


def _read_json(path: Path, what: str) -> Any:
    text = _read_text(path, what)
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:   # JSONDecodeError, over-long integers, deep nesting
        raise DcsimInputError(str(path), clipped(exc), what, problem="not JSON") from None


def _read_rows(path: Path, what: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and data rows of a CSV file, fields stripped, blank rows skipped; each data row with its row
    number (its line in the file: the header is row 1)."""
    reader = csv.reader(io.StringIO(_read_text(path, what), newline=""))
    rows = []
    try:
        for r in reader:
            if r and any(c.strip() for c in r):
                rows.append((reader.line_num, [c.strip() for c in r]))
    except csv.Error as exc:
        raise DcsimInputError(f"{path} (row {reader.line_num})", clipped(exc),
                              f"{what}, fields of under {csv.field_size_limit()} characters",
                              problem="unreadable CSV") from None
    if not rows:
        raise DcsimInputError(str(path), "", f"{what}, with a header", problem="empty file")
    header = rows[0][1]
    if len(rows) < 2:
        raise DcsimInputError(str(path), clipped(",".join(header)), f"{what}, with data rows after the header", problem="no data rows")
    return header, rows[1:]


def _float(path: Path, column: str, row: int, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise DcsimInputError(f"{path}: {column} (row {row})", clipped(text), "a number") from None


_GPU_INDEX = re.compile(r"\d{1,4}")


def _gpu_index(path: Path, column: str, row: int, text: str) -> int:
    if not _GPU_INDEX.fullmatch(text) or int(text) > MAX_GPU_INDEX:
        raise DcsimInputError(f"{path}: {column} (row {row})", clipped(text),
                              f"a GPU index, a whole number 0..{MAX_GPU_INDEX}")
    return int(text)


_TIME_OF_DAY = re.compile(r"(\d{1,2}):(\d{2}):(\d{2}(?:\.\d{1,9})?)")


def _seconds_of_day(path: Path, row: int, text: str) -> float:
    m = _TIME_OF_DAY.fullmatch(text)
    if not m or int(m[1]) > 23 or int(m[2]) > 59 or float(m[3]) >= 60:
        raise DcsimInputError(f"{path}: time_local (row {row})", clipped(text),
                              "a time of day HH:MM:SS.mmm from 00:00:00 to 23:59:59.999")
    hh, mm, ss = m.groups()
    return int(hh) * 3600 + int(mm) * 60 + float(ss)


def _date_seconds(date: Any, where: str) -> float:
    """Naive seconds of midnight of ``date`` ('YYYY/MM/DD' or 'YYYY-MM-DD', time after it ignored), read as UTC."""
    try:
        day = np.datetime64(date.strip()[:10].replace("/", "-"), "D")
    except (AttributeError, TypeError, ValueError, OverflowError):
        raise DcsimInputError(where, date if isinstance(date, (int, float)) else clipped(date),
                              "a date YYYY/MM/DD") from None
    if np.isnat(day):
        raise DcsimInputError(where, clipped(date), "a date YYYY/MM/DD")
    return float(day.astype("datetime64[s]").astype(np.int64))


def _power_format(header: list[str]) -> str:
    if header == REDUCED_HEADER:
        return "reduced"
    names = [h.lower() for h in header]
    if "timestamp" in names and "index" in names and any(n.startswith("power.draw") for n in names):
        return "nvidia-smi"
    return "unknown"


def read_power_csv(path: str | Path, date: str | None = None,
                   date_where: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read ``power.csv`` in either format, detected by its header; rows in file order.

    Returns ``(t_naive_s, gpu, power_w)``: naive seconds (local date and time read as if UTC), GPU
    index, power in W. The reduced format (``time_local,gpu,power_w``) holds only the time of day:
    ``date`` ('YYYY/MM/DD', read from ``date_where`` for messages) supplies the day (without it the first
    row is on 1970-01-01) and a GPU's time jumping back by more than 12 h to within an hour after midnight
    is a midnight rollover. The raw nvidia-smi format (``timestamp, index, power.draw [W]``) carries its
    dates; ``[N/A]``-like values are missing and dropped.

    Refused: a reading outside 0..``MAX_GPU_POWER_W`` W, a GPU's time stepping back from one of its rows to
    the next, two different readings of one GPU at one time. Rows of different GPUs may interleave in any
    order; a row repeated exactly is dropped.
    """
    path = Path(path)
    header, rows = _read_rows(path, POWER_FILE)
    kind = _power_format(header)
    if kind == "unknown":
        raise DcsimInputError(f"{path}: header", clipped(",".join(header)),
                              "'time_local,gpu,power_w' or nvidia-smi 'timestamp, index, power.draw [W]'")
    if kind == "reduced":
        stamps, tod, gpu, power, lines = _read_reduced(path, rows)
        base = _date_seconds(date, date_where or f"{path}: date of time_local") if date else 0.0
        t = base + tod + _DAY_S * _midnight_rollovers(tod, gpu)
        time_col, power_col = "time_local", "power_w"
    else:
        stamps, t, gpu, power, lines = _read_nvidia_smi(path, header, rows)
        time_col, power_col = "timestamp", next(h for h in header if h.lower().startswith("power.draw"))
    bad = np.flatnonzero(~np.isfinite(power) | (power < 0) | (power > MAX_GPU_POWER_W))
    if bad.size:
        i = int(bad[0])
        raise DcsimInputError(f"{path}: {power_col} (row {lines[i]})", float(power[i]),
                              f"one GPU's power reading, 0 to {MAX_GPU_POWER_W:.0f} W")
    keep = _check_time_order(path, time_col, power_col, t, gpu, power, stamps, lines)
    return t[keep], gpu[keep], power[keep]


def _read_reduced(path: Path, rows: list[tuple[int, list[str]]]):
    stamps, tod, gpu, power, lines = [], [], [], [], []
    for i, r in rows:
        if len(r) != 3:
            raise DcsimInputError(f"{path}: row {i}", clipped(",".join(r)), "3 fields: time_local,gpu,power_w")
        stamps.append(r[0])
        tod.append(_seconds_of_day(path, i, r[0]))
        gpu.append(_gpu_index(path, "gpu", i, r[1]))
        power.append(_float(path, "power_w", i, r[2]))
        lines.append(i)
    return stamps, np.asarray(tod), np.asarray(gpu, dtype=int), np.asarray(power), lines


def _midnight_rollovers(tod: np.ndarray, gpu: np.ndarray) -> np.ndarray:
    """Per row, how many midnights its GPU's clock has passed: a step back of more than 12 h that lands
    within ``MAX_ROLLOVER_STEP_S`` after the previous sample once a day is added (other steps back are refused later)."""
    days = np.zeros(len(tod))
    for g in np.unique(gpu):
        idx = np.flatnonzero(gpu == g)
        step = np.diff(tod[idx])
        wrap = (step < -_DAY_S / 2) & (step + _DAY_S <= MAX_ROLLOVER_STEP_S)
        days[idx[1:]] = np.cumsum(wrap)
    return days


def _check_time_order(path: Path, time_col: str, power_col: str, t: np.ndarray, gpu: np.ndarray,
                      power: np.ndarray, stamps: list[str], lines: list[int]) -> np.ndarray:
    """Rows to keep: each GPU's times must increase from its row to its next; an exact repeat is dropped,
    a step back or a second, different reading at the same time is refused."""
    keep = np.ones(len(t), bool)
    for g in np.unique(gpu):
        idx = np.flatnonzero(gpu == g)
        step = np.diff(t[idx])
        same = step == 0
        bad = np.flatnonzero((step < 0) | (same & (power[idx[1:]] != power[idx[:-1]])))
        if bad.size:
            a, b = int(idx[bad[0]]), int(idx[bad[0] + 1])
            if step[bad[0]] < 0:
                raise DcsimInputError(
                    f"{path}: {time_col} (row {lines[b]})", stamps[b],
                    f"each GPU's times increasing row to row (GPU {g} was at {stamps[a]} in row {lines[a]})",
                    problem=f"GPU {g}'s clock steps back {t[a] - t[b]:.3f} s")
            raise DcsimInputError(
                f"{path}: {power_col} (row {lines[b]})", float(power[b]),
                f"one reading per GPU per time (row {lines[a]} reads {power[a]:g} W)",
                problem=f"a second reading for GPU {g} at {stamps[b]}")
        keep[idx[1:][same]] = False
    return keep


_MISSING = {"[n/a]", "n/a", "[not supported]", "[unknown error]", "[gpu is lost]", ""}
_STAMP = re.compile(r"(\d{4})[/-](\d{2})[/-](\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?)")


def _read_nvidia_smi(path: Path, header: list[str], rows: list[tuple[int, list[str]]]):
    names = [h.lower() for h in header]
    it, ig = names.index("timestamp"), names.index("index")
    ip = next(k for k, n in enumerate(names) if n.startswith("power.draw"))
    stamps, t_ms, gpu, power, lines = [], [], [], [], []
    n_missing = 0
    for i, r in rows:
        if len(r) != len(header):
            raise DcsimInputError(f"{path}: row {i}", clipped(",".join(r)), f"{len(header)} fields as in the header")
        value = r[ip].lower().removesuffix("w").strip()
        if value in _MISSING:
            n_missing += 1
            continue
        m = _STAMP.fullmatch(r[it])
        try:
            stamp = np.datetime64(f"{m[1]}-{m[2]}-{m[3]}T{m[4]}", "ms") if m else None
        except ValueError:
            stamp = None
        if stamp is None:
            raise DcsimInputError(f"{path}: {header[it]} (row {i})", clipped(r[it]),
                                  "a date and time 'YYYY/MM/DD HH:MM:SS.mmm'")
        stamps.append(r[it])
        t_ms.append(int(stamp.astype(np.int64)))
        gpu.append(_gpu_index(path, header[ig], i, r[ig]))
        power.append(_float(path, header[ip], i, value))
        lines.append(i)
    if not power:
        raise DcsimInputError(f"{path}: power.draw", f"{n_missing} of {len(rows)} rows missing",
                              "at least one numeric power reading", problem="every power value is missing")
    return stamps, np.asarray(t_ms, dtype=np.int64) / 1000.0, np.asarray(gpu, dtype=int), np.asarray(power), lines


def _check_epoch_seconds(where: Callable[[int], str], t: np.ndarray) -> None:
    """Refuse times that are not Unix epoch seconds (2000..2100), naming milliseconds when they look like it."""
    bad = np.flatnonzero(~((t >= EPOCH_RANGE_S[0]) & (t < EPOCH_RANGE_S[1])))
    if bad.size:
        i = int(bad[0])
        ms = EPOCH_RANGE_S[0] <= t[i] / 1000 < EPOCH_RANGE_S[1]
        raise DcsimInputError(where(i), float(t[i]), "Unix epoch seconds (years 2000 to 2100)",
                              problem="looks like milliseconds" if ms else "not epoch seconds")


def read_engine_csv(path: str | Path) -> EngineSamples:
    """Read ``engine.csv`` (columns ``t_epoch_s,running,waiting,prompt_tokens_total,generation_tokens_total``).

    Refused: times that are not epoch seconds or do not increase row to row, negative counts, and
    cumulative token counters that decrease.
    """
    path = Path(path)
    header, rows = _read_rows(path, "a CSV file " + ",".join(ENGINE_COLUMNS))
    missing = [c for c in ENGINE_COLUMNS if c not in header]
    if missing:
        raise DcsimInputError(f"{path}: header", clipped(",".join(header)), ",".join(ENGINE_COLUMNS),
                              problem=f"missing column {missing[0]}")
    cols = {c: header.index(c) for c in ENGINE_COLUMNS}
    lines = [i for i, _ in rows]
    data = np.empty((len(rows), len(ENGINE_COLUMNS)))
    for i, (line, r) in enumerate(rows):
        for j, c in enumerate(ENGINE_COLUMNS):
            text = r[cols[c]] if cols[c] < len(r) else ""
            data[i, j] = _float(path, c, line, text)
    bad = np.argwhere(~np.isfinite(data))
    if bad.size:
        i, j = bad[0]
        raise DcsimInputError(f"{path}: {ENGINE_COLUMNS[j]} (row {lines[i]})", float(data[i, j]), "a finite number")
    t = data[:, 0]
    _check_epoch_seconds(lambda i: f"{path}: t_epoch_s (row {lines[i]})", t)
    back = np.flatnonzero(np.diff(t) <= 0)
    if back.size:
        i = int(back[0]) + 1
        raise DcsimInputError(f"{path}: t_epoch_s (row {lines[i]})", float(t[i]),
                              f"times increasing row to row (row {lines[i - 1]} is at {t[i - 1]})",
                              problem="time repeats" if t[i] == t[i - 1] else "time steps back")
    for j, c in enumerate(ENGINE_COLUMNS[1:], start=1):
        neg = np.flatnonzero(data[:, j] < 0)
        if neg.size:
            raise DcsimInputError(f"{path}: {c} (row {lines[neg[0]]})", float(data[neg[0], j]), "a count >= 0")
        if c.endswith("_total"):
            down = np.flatnonzero(np.diff(data[:, j]) < 0)
            if down.size:
                i = int(down[0]) + 1
                raise DcsimInputError(f"{path}: {c} (row {lines[i]})", float(data[i, j]),
                                      f"a cumulative counter, never below the row before ({data[i - 1, j]:g})",
                                      problem="counter decreases")
    return EngineSamples(*(data[:, j].copy() for j in range(len(ENGINE_COLUMNS))))


def read_requests_json(path: str | Path) -> RequestLog:
    """Read ``requests.json``: equal-length lists under ``request_timestamps, input_lens, output_lens, ttfts``.

    At least one request; arrivals in Unix epoch seconds, token counts whole numbers 0..``MAX_TOKENS``, TTFTs
    0..``MAX_TTFT_S`` s or null (unknown). Requests are returned in arrival order (a log written in
    completion order is sorted, each request's fields kept together).
    """
    path = Path(path)
    data = _read_json(path, "a JSON object of lists " + ", ".join(REQUEST_KEYS))
    if not isinstance(data, dict):
        raise DcsimInputError(str(path), f"a JSON {type(data).__name__}", f"an object with keys {', '.join(REQUEST_KEYS)}")
    for key in REQUEST_KEYS:
        if key not in data:
            raise DcsimInputError(f"{path}: {key}", "<missing>", "a list, one entry per request",
                                  problem="missing key")
        if not isinstance(data[key], list):
            raise DcsimInputError(f"{path}: {key}", type(data[key]).__name__, "a list, one entry per request")
    lengths = {k: len(data[k]) for k in REQUEST_KEYS}
    if len(set(lengths.values())) > 1:
        raise DcsimInputError(f"{path}: {', '.join(REQUEST_KEYS)}", lengths, "lists of equal length")
    if lengths["request_timestamps"] == 0:
        raise DcsimInputError(f"{path}: request_timestamps", "0 requests", "at least one request",
                              problem="empty request log")

    def column(key: str, allow_none: bool, low: float, high: float, allowed: str, whole: bool = False) -> np.ndarray:
        values = []
        for i, v in enumerate(data[key]):
            number = isinstance(v, (int, float)) and not isinstance(v, bool)
            if allow_none and (v is None or (number and math.isnan(v))):
                values.append(math.nan)
                continue
            try:
                x = float(v) if number else math.nan
            except OverflowError:
                x = math.inf
            if not (low <= x <= high) or (whole and x != round(x)):
                raise DcsimInputError(f"{path}: {key}[{i}]", x if number else clipped(json.dumps(v)), allowed)
            values.append(x)
        return np.asarray(values, dtype=float)

    arrival = column("request_timestamps", False, -math.inf, math.inf, "a finite number (epoch seconds)")
    _check_epoch_seconds(lambda i: f"{path}: request_timestamps[{i}]", arrival)
    n_in, n_out = (column(key, False, 0, MAX_TOKENS, f"a whole number of tokens, 0 to {MAX_TOKENS}", whole=True)
                   for key in ("input_lens", "output_lens"))
    ttft = column("ttfts", True, 0.0, MAX_TTFT_S, f"seconds from 0 to {MAX_TTFT_S:.0f}, or null")
    order = np.argsort(arrival, kind="stable")
    return RequestLog(arrival[order], n_in[order].astype(np.int64), n_out[order].astype(np.int64), ttft[order])


def _read_manifest(path: Path) -> dict:
    if not path.exists():
        return {}
    manifest = _read_json(path, "a JSON object of run settings")
    if not isinstance(manifest, dict):
        raise DcsimInputError(str(path), f"a JSON {type(manifest).__name__}", "a JSON object of run settings")
    return manifest


def _manifest_settings(manifest: dict, path: Path) -> tuple[float | None, str | None, int | None]:
    """The manifest's ``clock.local_utc_offset_s``, ``clock.power_first_timestamp`` and ``tp``, each None when
    absent; refused when present but unusable."""
    clock = manifest.get("clock", {})
    if not isinstance(clock, dict):
        raise DcsimInputError(f"{path}: clock", clipped(json.dumps(clock)),
                              "an object with local_utc_offset_s and power_first_timestamp")
    offset = clock.get("local_utc_offset_s")
    if offset is not None:
        number = isinstance(offset, (int, float)) and not isinstance(offset, bool)
        if not (number and math.isfinite(offset) and abs(offset) <= MAX_UTC_OFFSET_S):
            raise DcsimInputError(f"{path}: clock.local_utc_offset_s", offset if number else clipped(json.dumps(offset)),
                                  f"the zone's offset from UTC in seconds, a number from {-MAX_UTC_OFFSET_S} to "
                                  f"{MAX_UTC_OFFSET_S} (e.g. -25200 for UTC-7)")
    date = clock.get("power_first_timestamp")
    if date is not None and not isinstance(date, str):
        raise DcsimInputError(f"{path}: clock.power_first_timestamp", clipped(json.dumps(date)),
                              "a date and time 'YYYY/MM/DD HH:MM:SS.mmm'")
    tp = manifest.get("tp")
    if tp is not None and (isinstance(tp, bool) or not isinstance(tp, int) or tp < 1):
        raise DcsimInputError(f"{path}: tp", tp if isinstance(tp, (int, float)) else clipped(json.dumps(tp)),
                              "the tensor-parallel degree, a whole number >= 1")
    return (None if offset is None else float(offset)), (date or None), tp


def _source_date(path: Path) -> str | None:
    if not path.exists():
        return None
    for line in _read_text(path, "provenance lines 'key: value'").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "power_date" and value.strip():
            return value.strip()
    return None


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


def load_run(path: str | Path, dt_s: float = 0.25, compensate_lag: bool = True) -> MeasuredRun:
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
            span += _DAY_S
        zone = _search_zone(_per_gpu(t_naive, gpu, power), engine, span, dt_s)
        if not zone:
            raise no_overlap
        offset = zone["zone_offset_s"]
        days = round(offset / _DAY_S) if abs(offset) > ZONE_SPAN_S else 0
        if days:                           # the assumed day was off: keep the offset a zone offset
            t_naive, offset = t_naive + days * _DAY_S, offset - days * _DAY_S
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
