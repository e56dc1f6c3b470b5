"""Measured-run loader: clocks, lag, node sums, gaps, formats and errors on tiny synthetic runs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dcsim.errors import DcsimInputError
from dcsim.measured import load_run, read_power_csv

EPOCH0 = 1784415664.0          # 2026-07-18 23:01:04 UTC = 16:01:04 at UTC−7
UTC_MINUS_7 = -25200.0         # manifest clock.local_utc_offset_s
WATTS_PER_REQUEST = 40.0


def _schedule(duration_s: float, seed: int = 0) -> list[tuple[float, float, int]]:
    """Busy blocks (start, stop, running count) separated by idle gaps of irregular length."""
    rng = np.random.default_rng(seed)
    blocks, t = [], EPOCH0 + 1.0
    while t < EPOCH0 + duration_s - 2:
        busy = rng.uniform(1.0, 4.0)
        blocks.append((t, t + busy, int(rng.integers(1, 6))))
        t += busy + rng.uniform(1.0, 3.0)
    return blocks


def _running_true(blocks, t: np.ndarray) -> np.ndarray:
    out = np.zeros_like(t)
    for start, stop, n in blocks:
        out[(t >= start) & (t < stop)] = n
    return out


def _clock(t_epoch: float, local_utc_offset_s: float) -> tuple[str, str]:
    """(date 'YYYY/MM/DD', time 'HH:MM:SS.mmm') of an epoch time on a local wall clock."""
    ms = int(round((t_epoch + local_utc_offset_s) * 1000))
    stamp = str(np.datetime64(ms, "ms"))          # 'YYYY-MM-DDTHH:MM:SS.mmm'
    return stamp[:10].replace("-", "/"), stamp[11:23]


def make_run(root: Path, *, name: str = "campaign/run", n_gpus: int = 1, idle_w=(80.0, 100.0),
             lag_s: float = 0.3, local_utc_offset_s: float = UTC_MINUS_7, duration_s: float = 40.0,
             fmt: str = "reduced", manifest: bool = True, drop_s: tuple[float, float] | None = None,
             gpu_jitter_s: float = 0.0, na_rows: int = 0, seed: int = 0) -> Path:
    """Write a synthetic run: power follows the running count ``lag_s`` late, on a local wall clock."""
    rng = np.random.default_rng(seed)
    run = root / name
    run.mkdir(parents=True)
    blocks = _schedule(duration_s, seed)
    t_power = EPOCH0 - 1.0 + 0.1 + 0.25 * np.arange(int((duration_s + 2) / 0.25))
    if drop_s is not None:
        t_power = t_power[(t_power < EPOCH0 + drop_s[0]) | (t_power > EPOCH0 + drop_s[1])]
    lines = ["time_local,gpu,power_w"] if fmt == "reduced" else ["timestamp, index, power.draw [W]"]
    for k, t in enumerate(t_power):
        for g in range(n_gpus):
            tg = t + g * gpu_jitter_s
            p = idle_w[g] + WATTS_PER_REQUEST * _running_true(blocks, np.array([tg - lag_s]))[0] + rng.normal(0, 0.5)
            date, clock = _clock(tg, local_utc_offset_s)
            if fmt == "reduced":
                lines.append(f"{clock},{g},{p:.2f}")
            else:
                value = "[N/A]" if k < na_rows else f"{p:.2f} W"
                lines.append(f"{date} {clock}, {g}, {value}")
    (run / "power.csv").write_text("\n".join(lines) + "\n")

    t_engine = EPOCH0 + 0.25 * np.arange(int(duration_s / 0.25)) + rng.uniform(0, 0.02, int(duration_s / 0.25))
    running = _running_true(blocks, t_engine)
    rows = ["t_epoch_s,running,waiting,prompt_tokens_total,generation_tokens_total"]
    rows += [f"{t:.6f},{r:.1f},0.0,{1 + 10 * i:.1f},{1 + 5 * i:.1f}" for i, (t, r) in enumerate(zip(t_engine, running))]
    (run / "engine.csv").write_text("\n".join(rows) + "\n")

    starts = [b[0] for b in blocks]
    (run / "requests.json").write_text(json.dumps({
        "request_timestamps": starts, "input_lens": [100] * len(starts), "output_lens": [20] * len(starts),
        "ttfts": [0.05] * len(starts), "session_ids": list(range(len(starts)))}))
    first_date, first_clock = _clock(t_power[0], local_utc_offset_s)
    if manifest:
        (run / "manifest.json").write_text(json.dumps({
            "clock": {"local_utc_offset_s": local_utc_offset_s, "power_first_timestamp": f"{first_date} {first_clock}"},
            "tp": n_gpus, "arch": {"n_experts": 1}}))
    else:
        (run / "source.txt").write_text(f"repo: synthetic\npower_date: {first_date}\n")
    return run


def _expected_node_w(run, n_gpus: int = 1, idle_w=(80.0, 100.0)) -> np.ndarray:
    return sum(idle_w[:n_gpus]) + n_gpus * WATTS_PER_REQUEST * run.running


# --- clocks and lag -----------------------------------------------------------------------------


def test_manifest_offset_turns_local_wall_clock_into_epoch(tmp_path):
    run = load_run(make_run(tmp_path))
    assert run.clock_source == "manifest"
    assert run.clock_offset_s == 25200.0
    assert run.name == "campaign/run"
    assert run.t_s[0] == run.t0_s and np.all(np.diff(run.t_s) == 0.25)
    assert run.t0_s >= run.engine.t_s[0] and run.t_s[-1] <= run.engine.t_s[-1]


def test_lag_is_found_near_the_synthetic_0p3_s_and_the_offset_agrees(tmp_path):
    run = load_run(make_run(tmp_path, lag_s=0.3))
    assert run.power_lag_s == pytest.approx(0.3, abs=0.1)
    assert run.xcorr_check["agrees_with_manifest"] is True
    assert abs(run.xcorr_check["best_lag_s"] - 0.3) <= 0.1


def test_compensating_the_lag_lines_power_up_with_the_running_count(tmp_path):
    path = make_run(tmp_path, lag_s=0.6)
    fixed, raw = load_run(path), load_run(path, compensate_lag=False)
    assert raw.power_lag_s == fixed.power_lag_s == pytest.approx(0.6, abs=0.1)
    err_fixed = np.nanmean(np.abs(fixed.power_w - _expected_node_w(fixed)))
    err_raw = np.nanmean(np.abs(raw.power_w - _expected_node_w(raw)))
    assert err_fixed < 0.8 * err_raw


def test_without_manifest_the_zone_offset_is_searched_and_found(tmp_path):
    run = load_run(make_run(tmp_path, manifest=False, local_utc_offset_s=10800.0))   # UTC+3
    assert run.clock_source == "xcorr"
    assert run.clock_offset_s == -10800.0
    assert run.xcorr_check["agrees_with_manifest"] is None
    assert run.power_lag_s == pytest.approx(0.3, abs=0.1)


def test_raw_nvidia_smi_file_without_manifest_reports_its_clock_source(tmp_path):
    run = load_run(make_run(tmp_path, manifest=False, fmt="nvidia-smi", local_utc_offset_s=-18000.0))
    assert run.clock_source == "nvidia-smi"
    assert run.clock_offset_s == 18000.0


def test_a_run_under_10_s_falls_back_to_the_default_lag(tmp_path):
    path = make_run(tmp_path, duration_s=8.0)      # under 10 s of overlap: too short to correlate
    run = load_run(path)
    assert run.xcorr_check["lag_source"] == "default"
    assert run.xcorr_check["agrees_with_manifest"] is None


# --- node power, gaps, formats ------------------------------------------------------------------


def test_node_power_sums_both_gpus_even_with_per_gpu_timestamp_jitter(tmp_path):
    run = load_run(make_run(tmp_path, n_gpus=2, gpu_jitter_s=0.013))
    assert run.n_gpus == 2
    idle = run.power_w[run.running == 0]
    assert np.nanmedian(idle) == pytest.approx(180.0, abs=1.0)
    busy = np.isfinite(run.power_w) & (run.running > 0)
    assert np.median(run.power_w[busy] - _expected_node_w(run, 2)[busy]) == pytest.approx(0.0, abs=2.0)


def test_a_gap_longer_than_three_steps_splits_segments_and_a_short_one_is_bridged(tmp_path):
    long_gap = load_run(make_run(tmp_path / "a", drop_s=(10.0, 11.5)))
    assert len(long_gap.segments) == 2
    (a0, a1), (b0, b1) = long_gap.segments
    assert a0 == 0 and b1 == len(long_gap.power_w) and a1 < b0
    assert np.all(np.isnan(long_gap.power_w[a1:b0])) and np.all(np.isfinite(long_gap.power_w[a0:a1]))
    short_gap = load_run(make_run(tmp_path / "b", drop_s=(10.0, 10.4)))     # 0.5 s between samples
    assert short_gap.segments == [(0, len(short_gap.power_w))]


def test_both_power_formats_read_to_the_same_samples(tmp_path):
    reduced = make_run(tmp_path / "a", n_gpus=2)
    raw = make_run(tmp_path / "b", n_gpus=2, fmt="nvidia-smi")
    date = json.loads((reduced / "manifest.json").read_text())["clock"]["power_first_timestamp"]
    t_a, g_a, p_a = read_power_csv(reduced / "power.csv", date)
    t_b, g_b, p_b = read_power_csv(raw / "power.csv")
    np.testing.assert_allclose(t_a, t_b)
    np.testing.assert_array_equal(g_a, g_b)
    np.testing.assert_allclose(p_a, p_b)
    np.testing.assert_allclose(load_run(reduced).power_w, load_run(raw).power_w)


def test_missing_nvidia_smi_readings_are_dropped(tmp_path):
    path = make_run(tmp_path, fmt="nvidia-smi", na_rows=3)
    t, _, p = read_power_csv(path / "power.csv")
    assert len(p) == len(path.joinpath("power.csv").read_text().splitlines()) - 1 - 3
    assert np.all(np.isfinite(p))


def test_reduced_times_roll_over_at_midnight(tmp_path):
    f = tmp_path / "power.csv"
    f.write_text("time_local,gpu,power_w\n23:59:59.750,0,80\n00:00:00.000,0,81\n00:00:00.250,0,82\n")
    t, _, _ = read_power_csv(f, "2026/07/18")
    midnight = (np.datetime64("2026-07-19") - np.datetime64("1970-01-01")) / np.timedelta64(1, "s")
    np.testing.assert_allclose(t, [midnight - 0.25, midnight, midnight + 0.25])


def test_moe_flag_follows_manifest_experts(tmp_path):
    path = make_run(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["arch"]["n_experts"] = 128
    (path / "manifest.json").write_text(json.dumps(manifest))
    assert load_run(path).is_moe is True


# --- errors -------------------------------------------------------------------------------------


def _rewrite(path: Path, text: str) -> None:
    path.write_text(text)


@pytest.mark.parametrize("breakage, where", [
    (lambda r: (r / "engine.csv").unlink(), "engine.csv"),
    (lambda r: _rewrite(r / "power.csv", ""), "power.csv"),
    (lambda r: _rewrite(r / "power.csv", "when,which,watts\n16:01:04.000,0,80\n"), "power.csv: header"),
    (lambda r: _rewrite(r / "power.csv", "time_local,gpu,power_w\n16:01:04.000,0,nan\n"), "power.csv: power"),
    (lambda r: _rewrite(r / "power.csv", "time_local,gpu,power_w\n16:01:04.000,0,-5\n"), "power.csv: power"),
    (lambda r: _rewrite(r / "power.csv", "timestamp, index, power.draw [W]\n2026/07/18 16:01:04.000, 0, [N/A]\n"),
     "power.csv: power.draw"),
    (lambda r: _rewrite(r / "engine.csv", "t_epoch_s,running\n1.0,0\n"), "engine.csv: header"),
    (lambda r: _rewrite(r / "requests.json", json.dumps({"request_timestamps": [1.0, 2.0], "input_lens": [1],
                                                         "output_lens": [1, 2], "ttfts": [0.1, 0.1]})),
     "requests.json"),
    (lambda r: _rewrite(r / "requests.json", json.dumps({"request_timestamps": [1.0], "input_lens": [1],
                                                         "output_lens": [1]})), "requests.json: ttfts"),
])
def test_bad_inputs_raise_one_error_naming_the_file_and_field(tmp_path, breakage, where):
    path = make_run(tmp_path)
    breakage(path)
    with pytest.raises(DcsimInputError, match=where.replace(".", r"\.")):
        load_run(path)


def test_missing_directory_is_an_input_error(tmp_path):
    with pytest.raises(DcsimInputError, match="directory not found"):
        load_run(tmp_path / "nope")


def test_power_and_engine_a_day_apart_do_not_overlap(tmp_path):
    path = make_run(tmp_path)
    engine = path / "engine.csv"
    lines = engine.read_text().splitlines()
    shifted = [lines[0]] + [f"{float(r.split(',')[0]) + 86400:.6f}," + r.split(",", 1)[1] for r in lines[1:]]
    engine.write_text("\n".join(shifted) + "\n")
    with pytest.raises(DcsimInputError, match="no time overlap"):
        load_run(path)


# --- the measured data --------------------------------------------------------------------------


def test_every_shared_run_loads_with_valid_power(shared_data):
    runs = sorted(p for p in (shared_data / "powertrace").glob("*/*/") if (p / "power.csv").is_file())
    assert runs, "no runs under powertrace/"
    for path in runs:
        run = load_run(path)
        assert run.n_gpus == run.manifest["tp"]
        assert run.segments and sum(b - a for a, b in run.segments) > 0.9 * len(run.power_w)
        assert np.nanmin(run.power_w) > 50 * run.n_gpus
        assert 0.0 <= run.power_lag_s <= 2.0


def test_a100_qwen3_validate_xcorr_agrees_with_manifest_offset_within_1_s(run_dir):
    run = load_run(run_dir("validate_qwen3-8b_a100"))
    assert run.clock_source == "manifest"
    assert run.xcorr_check["agrees_with_manifest"] is True
    assert abs(run.xcorr_check["best_lag_s"]) <= 1.0
    assert run.xcorr_check["grid_corr"] > 0.7


def test_4xh100_llama70b_node_power_idles_near_476_w(run_dir):
    run = load_run(run_dir("h100_tp4_state_control"))
    assert run.n_gpus == 4
    idle = run.power_w[run.t_s < run.requests.arrival_s.min() - 30]
    assert np.nanmedian(idle) == pytest.approx(476.0, abs=5.0)
