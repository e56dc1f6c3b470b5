"""Measured-run file readers: power.csv (reduced or raw nvidia-smi), engine.csv, requests.json, manifest.json.

Every bad input ends in one :class:`~dcsim.errors.DcsimInputError` naming the file, the row or key and the value;
see :mod:`dcsim.measured` for the formats and what a run may hold.
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dcsim.constants import DAY_S
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

# what a measured run may hold (anything else is refused with a DcsimInputError naming file, row and value)
MAX_GPU_POWER_W = 3000.0     # one GPU's reading; the largest boards draw ~1.4 kW, so more is not a measurement
MAX_GPU_INDEX = 1023
MAX_ROLLOVER_STEP_S = 3600   # a midnight rollover lands within an hour of the previous sample
COVER_TOL_S = 5.0            # every GPU's samples span the others' to within 5 s at each end
REQUEST_SLACK_S = 60.0       # request arrivals lie within the engine log's span, give or take 60 s
EPOCH_RANGE_S = (946684800.0, 4102444800.0)   # 2000-01-01 .. 2100-01-01 UTC: epoch seconds, not ms
MAX_TOKENS = 10_000_000      # prompt or output tokens of one request
MAX_TTFT_S = DAY_S
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
        t = base + tod + DAY_S * _midnight_rollovers(tod, gpu)
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
        wrap = (step < -DAY_S / 2) & (step + DAY_S <= MAX_ROLLOVER_STEP_S)
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


