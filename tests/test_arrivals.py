"""Arrival processes: Poisson, time-varying rates by thinning, trace replay, shared intensity, plug-ins."""
from __future__ import annotations

import json
import textwrap

import numpy as np
import polars as pl
import pytest

from dcsim.errors import DcsimInputError
from dcsim.plugins import load_plugin
from dcsim.workload.arrivals import ArrivalProcess, Poisson, Requests, TraceReplay, split_shared, thin
from dcsim.workload.profiles import Diurnal, RateProfile
from dcsim.workload.tokens import EmpiricalTokens, FixedTokens

FIXED = FixedTokens(100, 10)


def rng(seed: int = 11) -> np.random.Generator:
    return np.random.default_rng(seed)


def within(count: float, expected: float, sigmas: float = 4.0) -> bool:
    """A Poisson count is within `sigmas` standard deviations of its mean."""
    return abs(count - expected) <= sigmas * np.sqrt(expected)


# --- the schedule -------------------------------------------------------------------------------

def test_requests_slice_and_concat_keep_time_order():
    a = Requests(np.array([0.0, 2.0, 4.0]), np.array([1, 2, 3]), np.array([5, 6, 7]))
    b = Requests(np.array([1.0, 3.0]), np.array([8, 9]), np.array([1, 1]))
    both = Requests.concat([a, b])
    assert both.arrival_s.tolist() == [0, 1, 2, 3, 4] and both.n_in.tolist() == [1, 8, 2, 9, 3]
    assert len(a.slice(a.n_in > 1)) == 2 and a.slice(np.array([0, 2])).n_out.tolist() == [5, 7]
    assert len(Requests.concat([])) == 0


def test_requests_refuse_unsorted_times_and_zero_tokens():
    with pytest.raises(DcsimInputError, match="arrival_s"):
        Requests(np.array([1.0, 0.5]), np.array([1, 1]), np.array([1, 1]))
    with pytest.raises(DcsimInputError, match="n_out"):
        Requests(np.array([0.0]), np.array([1]), np.array([0]))
    with pytest.raises(DcsimInputError, match="equal length"):
        Requests(np.array([0.0]), np.array([1, 2]), np.array([1]))


# --- Poisson --------------------------------------------------------------------------------------

def test_poisson_count_and_mean_gap_match_the_rate():
    reqs = Poisson(5.0, FIXED).sample(2000.0, rng())
    assert within(len(reqs), 10_000)
    gaps = np.diff(reqs.arrival_s)
    assert abs(gaps.mean() - 0.2) < 4 * 0.2 / np.sqrt(len(gaps))
    assert abs(gaps.std() / gaps.mean() - 1) < 0.05  # exponential gaps: CoV 1
    assert reqs.arrival_s.min() >= 0 and reqs.arrival_s.max() < 2000


def test_rate_scale_doubles_poisson_counts():
    base = np.mean([len(Poisson(3.0, FIXED).sample(500.0, rng(s))) for s in range(10)])
    double = np.mean([len(Poisson(3.0, FIXED, rate_scale=2.0).sample(500.0, rng(s))) for s in range(10)])
    assert within(base * 10, 15_000) and within(double * 10, 30_000)


def test_negative_or_nan_rates_are_refused():
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(DcsimInputError, match="rate_per_s"):
            Poisson(bad, FIXED)
    with pytest.raises(DcsimInputError, match=r"rates_per_s\[1\]"):
        RateProfile.table([0, 10], [1.0, -2.0], FIXED)
    with pytest.raises(DcsimInputError, match="rate_scale"):
        Poisson(1.0, FIXED, rate_scale=0)
    with pytest.raises(DcsimInputError, match="tokens"):
        Poisson(1.0, tokens="fixed")


# --- piecewise tables and the diurnal form ----------------------------------------------------------

def test_thinning_reproduces_a_piecewise_rate_counts_per_piece():
    prof = RateProfile.table([0, 100, 300], [1.0, 5.0, 0.5], FIXED, period_s=400)
    t = prof.sample(40_000.0, rng()).arrival_s % 400  # 100 passes through the table
    counts = np.histogram(t, bins=[0, 100, 300, 400])[0]
    for got, expected in zip(counts, [100 * 100 * 1.0, 100 * 200 * 5.0, 100 * 100 * 0.5]):
        assert within(got, expected)


def test_a_table_without_period_holds_its_last_rate_and_start_s_shifts_into_it():
    prof = RateProfile.table([0, 100], [0.0, 2.0], FIXED, start_s=50)
    reqs = prof.sample(1050.0, rng())
    assert reqs.arrival_s.min() >= 50  # the first 50 s of the scenario are the rate-0 piece
    assert within(len(reqs), 2.0 * 1000)
    assert prof.rate_per_s(np.array([0.0, 49.9, 50.0, 1e6])).tolist() == [0, 0, 2, 2]


def test_diurnal_rate_peaks_at_peak_hour_and_averages_to_the_mean():
    prof = Diurnal(mean_rate_per_s=2.0, amplitude=0.6, peak_hour=15, tokens=FIXED)
    assert prof.rate_per_s(np.array([15 * 3600.0, 3 * 3600.0])) == pytest.approx([3.2, 0.8])
    reqs = prof.sample(2 * 86400.0, rng())
    assert within(len(reqs), 2.0 * 2 * 86400)
    hourly = np.histogram(reqs.arrival_s % 86400, bins=24, range=(0, 86400))[0] / 2
    expected = 3600 * prof.rate_per_s(np.arange(24) * 3600 + 1800.0)
    assert np.all(np.abs(hourly - expected) <= 4.5 * np.sqrt(expected / 2) + 60)  # cos is not flat within an hour
    assert 14 <= int(np.argmax(hourly)) <= 15


def test_diurnal_start_s_moves_the_clock():
    late = Diurnal(1.0, 0.5, 12, FIXED, start_s=12 * 3600)
    assert late.rate_per_s(np.array([0.0]))[0] == pytest.approx(1.5)


@pytest.mark.parametrize("amplitude", [-0.1, 1.0, 2.0, float("nan")])
def test_amplitude_out_of_range_is_refused(amplitude):
    with pytest.raises(DcsimInputError, match="amplitude"):
        Diurnal(1.0, amplitude, 12, FIXED)


# --- per-minute count files ---------------------------------------------------------------------

MINUTES = {"minute_of_day": [0, 1, 2], "requests": [60, 600, 0],
           "mean_context_tokens": [100.0, 2000.0, None], "mean_generated_tokens": [40.0, 4.0, None]}
TOKENS = EmpiricalTokens(np.array([50, 100, 150]), np.array([5, 20, 35]))


def test_per_minute_counts_match_the_minute_totals_in_expectation():
    prof = RateProfile.from_minute_counts(MINUTES, TOKENS)
    t = np.concatenate([prof.sample(180.0, rng(s)).arrival_s for s in range(20)])
    counts = np.histogram(t, bins=[0, 60, 120, 180])[0]
    assert within(counts[0], 20 * 60) and within(counts[1], 20 * 600) and counts[2] == 0


def test_per_minute_token_means_follow_the_minute_means():
    reqs = RateProfile.from_minute_counts(MINUTES, TOKENS).sample(120.0, rng())
    first, second = reqs.arrival_s < 60, reqs.arrival_s >= 60
    assert reqs.n_in[first].mean() == pytest.approx(100, rel=0.1)
    assert reqs.n_out[first].mean() == pytest.approx(40, rel=0.1)
    assert reqs.n_in[second].mean() == pytest.approx(2000, rel=0.05)
    assert reqs.n_out[second].mean() == pytest.approx(4, rel=0.08)


def test_minute_files_with_token_sums_are_read_as_means(tmp_path):
    f = tmp_path / "day.csv"
    f.write_text("utc_minute_start,minute_of_day,requests,context_tokens,generated_tokens\n"
                 "2024-05-16T00:00:00Z,0,120,240000,1200\n2024-05-16T00:01:00Z,1,60,6000,600\n")
    prof = RateProfile.from_minute_counts(f, TOKENS)
    assert prof.mean_in_tokens.tolist() == [2000, 100] and prof.mean_out_tokens.tolist() == [10, 10]
    assert prof.rate_per_s(np.array([30.0, 90.0, 150.0])).tolist() == [2, 1, 2]  # wraps after 2 minutes


def test_a_minute_file_without_wrap_stops_after_its_last_minute():
    prof = RateProfile.from_minute_counts(MINUTES, TOKENS, wrap=False)
    assert prof.sample(3600.0, rng()).arrival_s.max() < 120


def test_malformed_minute_files_are_refused_naming_file_and_column(tmp_path):
    f = tmp_path / "minutes.csv"
    f.write_text("minute_of_day,requests\n0,12\n1,-3\n")
    with pytest.raises(DcsimInputError, match=r"minutes.csv: column requests, row 2"):
        RateProfile.from_minute_counts(f, TOKENS)
    f.write_text("minute,count\n0,12\n")
    with pytest.raises(DcsimInputError, match=r"minutes.csv.*request count"):
        RateProfile.from_minute_counts(f, TOKENS)
    f.write_text("")
    with pytest.raises(DcsimInputError, match=r"minutes.csv.*empty"):
        RateProfile.from_minute_counts(f, TOKENS)


def test_the_builtin_azure_2024_code_day_has_its_daily_cycle():
    prof = RateProfile.builtin_azure2024_code_day(rate_scale=0.01)
    reqs = prof.sample(86400.0, rng())
    assert within(len(reqs), 0.01 * 3_074_565)
    hourly = np.histogram(reqs.arrival_s, bins=24, range=(0, 86400))[0]
    assert 17 <= int(np.argmax(hourly)) <= 20 and 6 <= int(np.argmin(hourly)) <= 10  # peak 18-19, valley 08 UTC
    assert reqs.n_in.mean() == pytest.approx(2552, rel=0.05) and reqs.n_out.mean() == pytest.approx(22.4, rel=0.05)
    json.dumps(prof.config())


# --- trace replay -------------------------------------------------------------------------------

TRACE = {"t_s": [0.0, 1.0, 2.0, 3.0], "n_in": [10, 20, 30, 40], "n_out": [1, 2, 3, 4]}  # lasts 4 s


def test_replay_starts_at_the_offset_and_wraps_around():
    reqs = TraceReplay(TRACE, offset_s=1.5).sample(10.0, rng())
    assert reqs.arrival_s == pytest.approx([0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5])
    assert reqs.n_in.tolist() == [30, 40, 10, 20, 30, 40, 10, 20, 30, 40]


def test_replay_without_wrap_stops_at_the_end_of_the_trace():
    reqs = TraceReplay(TRACE, offset_s=1.5, wrap=False).sample(10.0, rng())
    assert reqs.arrival_s == pytest.approx([0.5, 1.5]) and reqs.n_out.tolist() == [3, 4]


def test_replay_rate_scale_compresses_time():
    reqs = TraceReplay(TRACE, offset_s=0.0, rate_scale=2.0).sample(4.0, rng())
    assert reqs.arrival_s == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5])


def test_replay_draws_a_random_offset_per_call_reproducibly_from_the_seed():
    proc = TraceReplay({"t_s": np.arange(100.0), "n_in": np.arange(1, 101), "n_out": np.ones(100, int)})
    g = rng(5)
    draws = [proc.sample(10.0, g).n_in for _ in range(5)]  # one call per server
    assert all(len(d) == 10 for d in draws) and len({int(d[0]) for d in draws}) >= 4  # each its own offset
    assert np.array_equal(proc.sample(10.0, rng(5)).n_in, draws[0])


def test_replay_parses_iso_datetimes_like_the_azure_trace(tmp_path):
    f = tmp_path / "azure.csv"
    f.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,4808,10\n"
                 "2023-11-16 18:17:04.0319600,3180,8\n2023-11-16 18:17:05.9799600,110,27\n")
    proc = TraceReplay(f, offset_s=0.0)
    assert proc.times_s == pytest.approx([0.0, 0.052, 2.0])
    assert proc.period_s == pytest.approx(3.0)  # span + one mean gap
    assert TraceReplay(f, offset_s=0, wrap=False).sample(100.0, rng()).n_in.tolist() == [4808, 3180, 110]


def test_replay_with_configurable_columns_and_utc_offsets():
    table = pl.DataFrame({"when": ["2024-05-10 00:00:00.009930+00:00", "2024-05-10 00:00:01.009930+00:00"],
                          "p": [5, 6], "o": [7, 8]})
    proc = TraceReplay(table, time_col="when", in_col="p", out_col="o", offset_s=0)
    assert proc.times_s.tolist() == [0.0, 1.0] and proc.n_out.tolist() == [7, 8]


@pytest.mark.parametrize("text, match", [
    ("", "empty"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n", "no rows"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,1,1\nnoon,2,2\n", "column TIMESTAMP"),
    ("TIMESTAMP,Prompt,GeneratedTokens\n0,1,1\n1,2,2\n", "prompt-token"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n0,1,1\n1,2,-2\n", "column GeneratedTokens, row 2"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens\n0,1,1\n", "at least 2"),
])
def test_empty_or_malformed_trace_csvs_are_refused_naming_file_and_column(tmp_path, text, match):
    f = tmp_path / "trace.csv"
    f.write_text(text)
    with pytest.raises(DcsimInputError, match=match) as e:
        TraceReplay(f)
    assert "trace.csv" in str(e.value)


def test_the_azure_2023_traces_replay_at_their_production_rates(shared_data):
    for name, rate in (("code", 2.57), ("conv", 5.53)):
        proc = TraceReplay(shared_data / "azure_llm_2023" / f"AzureLLMInferenceTrace_{name}.csv")
        reqs = proc.sample(7200.0, rng())  # longer than the one-hour trace: wraps
        assert len(reqs) / 7200 == pytest.approx(rate, rel=0.02)
        json.dumps(proc.config())


# --- shared intensity -------------------------------------------------------------------------------

def test_thinning_keeps_each_request_with_its_probability():
    reqs = Poisson(10.0, FIXED).sample(1000.0, rng())
    kept = thin(reqs, 0.25, rng(1))
    assert abs(len(kept) / len(reqs) - 0.25) < 0.02
    assert len(thin(reqs, np.where(reqs.arrival_s < 500, 1.0, 0.0), rng())) == np.sum(reqs.arrival_s < 500)
    with pytest.raises(DcsimInputError, match="probability"):
        thin(reqs, 1.5, rng())


def test_a_shared_split_partitions_the_hall_draw_about_evenly():
    proc = Diurnal(40.0, 0.5, 12, FIXED)
    parts = split_shared(proc, 8, 3600.0, rng(2))
    hall = proc.sample(3600.0, rng(2))  # the same draw, redone from the same seed
    union = Requests.concat(parts)
    assert np.array_equal(union.arrival_s, hall.arrival_s) and np.array_equal(union.n_in, hall.n_in)
    sizes = np.array([len(p) for p in parts])
    assert np.all(np.abs(sizes - len(hall) / 8) < 4 * np.sqrt(len(hall) / 8))
    assert all(np.all(np.diff(p.arrival_s) >= 0) for p in parts)


# --- seeding and metadata -------------------------------------------------------------------------------

@pytest.mark.parametrize("proc", [
    Poisson(3.0, TOKENS),
    Diurnal(3.0, 0.3, 10, TOKENS),
    RateProfile.from_minute_counts(MINUTES, TOKENS),
    TraceReplay(TRACE),
])
def test_every_process_is_reproducible_from_its_seed_and_describes_itself(proc):
    a, b = proc.sample(300.0, rng(9)), proc.sample(300.0, rng(9))
    assert np.array_equal(a.arrival_s, b.arrival_s) and np.array_equal(a.n_in, b.n_in)
    assert not np.array_equal(a.arrival_s, proc.sample(300.0, rng(10)).arrival_s)
    assert json.loads(json.dumps(proc.config()))["class"].startswith(("dcsim.workload.arrivals:", "dcsim.workload.profiles:"))


# --- plug-ins -------------------------------------------------------------------------------------

PLUGIN = textwrap.dedent('''
    import numpy as np
    from dcsim.workload.arrivals import ArrivalProcess, Requests

    class EverySecond(ArrivalProcess):
        def sample(self, duration_s, rng):
            t = np.arange(0.0, duration_s)
            return Requests(t, np.full(len(t), 7), np.full(len(t), 3))

    class NotAProcess:
        pass
''')


def test_a_user_arrival_process_plugs_in_by_module_and_class(tmp_path, monkeypatch):
    (tmp_path / "my_arrivals.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    cls = load_plugin("my_arrivals:EverySecond", ArrivalProcess)
    assert len(cls().sample(5.0, rng())) == 5
    by_path = load_plugin(f"{tmp_path / 'my_arrivals.py'}:EverySecond", ArrivalProcess)
    assert by_path().sample(3.0, rng()).n_in.tolist() == [7, 7, 7]


@pytest.mark.parametrize("spec, match", [
    ("EverySecond", "not of the form module:Class"),
    ("no_such_module_zz:Foo", "module 'no_such_module_zz' not found"),
    ("my_arrivals2:Missing", "no 'Missing' in module"),
    ("my_arrivals2:NotAProcess", "not a subclass of ArrivalProcess"),
    ("dcsim.workload.arrivals:ArrivalProcess", "abstract"),
    ("missing_file.py:EverySecond", "not found"),
])
def test_bad_plugin_specs_are_refused_with_a_clear_message(tmp_path, monkeypatch, spec, match):
    (tmp_path / "my_arrivals2.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(DcsimInputError, match=match) as e:
        load_plugin(spec, ArrivalProcess, where="workload.arrivals.class")
    assert str(e.value).startswith("workload.arrivals.class:")
