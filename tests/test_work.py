"""The work grid: what a served schedule asks of the GPU in every 250 ms step."""
from __future__ import annotations

import numpy as np
import pytest

from dcsim.errors import DcsimInputError
from dcsim.serving.features import active_grid, feature_matrix
from dcsim.serving.kernel import serve_fifo
from dcsim.serving.work import FEATURE_SETS, union_intervals, work_from_served, work_grid

T0, N, DT = 0.0, 240, 0.25


def _schedule(seed: int = 0, n: int = 1500, span_s: float = 70.0):
    rng = np.random.default_rng(seed)
    arrival = np.sort(rng.uniform(-5.0, span_s, n))
    start = arrival + rng.exponential(0.2, n)
    first = start + rng.exponential(0.1, n)
    end = first + rng.exponential(2.0, n)
    n_in = rng.integers(1, 4000, n)
    n_out = rng.integers(1, 400, n)
    return arrival, start, first, end, n_in, n_out


def _fine(t: np.ndarray, start: np.ndarray, first: np.ndarray, end: np.ndarray, n_in, n_out, arrival):
    """Brute force on a fine grid of instants: busy, in prefill, resident tokens, waiting."""
    active = (start[None, :] <= t[:, None]) & (end[None, :] > t[:, None])
    prefill = (start[None, :] <= t[:, None]) & (first[None, :] > t[:, None])
    decoded = np.clip((t[:, None] - first[None, :]) / (end - first)[None, :], 0, 1) * n_out[None, :]
    kv = (active * (n_in[None, :] + decoded)).sum(axis=1)
    waiting = ((arrival[None, :] <= t[:, None]) & (start[None, :] > t[:, None])).sum(axis=1)
    return active.any(axis=1), prefill.any(axis=1), kv, waiting


def test_occupancy_is_the_papers_active_grid():
    arrival, start, first, end, n_in, n_out = _schedule()
    w = work_grid(start, first, end, n_in, n_out, T0, N, DT, arrival_s=arrival)
    assert np.array_equal(w.occupancy, active_grid(start, end, T0, N, DT))


def test_the_paper_feature_set_is_exactly_feature_matrix():
    arrival, start, first, end, n_in, n_out = _schedule()
    w = work_grid(start, first, end, n_in, n_out, T0, N, DT)
    assert np.array_equal(w.matrix("paper"), feature_matrix(active_grid(start, end, T0, N, DT)))
    assert w.matrix("work").shape == (N, len(FEATURE_SETS["work"]))


def test_prefill_and_decode_tokens_are_conserved_inside_the_window():
    arrival, start, first, end, n_in, n_out = _schedule()
    w = work_grid(start, first, end, n_in, n_out, T0, N, DT)
    t_end = T0 + N * DT
    inside_prefill = (start >= T0) & (first <= t_end)
    inside_decode = (first >= T0) & (end <= t_end)
    straddle_p = ~inside_prefill & (first > T0) & (start < t_end)
    straddle_d = ~inside_decode & (end > T0) & (first < t_end)
    # tokens of requests wholly inside are all there; straddling ones contribute their share inside the window
    share_p = (np.clip(first, T0, t_end) - np.clip(start, T0, t_end)) / np.maximum(first - start, 1e-12)
    share_d = (np.clip(end, T0, t_end) - np.clip(first, T0, t_end)) / np.maximum(end - first, 1e-12)
    want_p = n_in[inside_prefill].sum() + (n_in * share_p)[straddle_p].sum()
    want_d = n_out[inside_decode].sum() + (n_out * share_d)[straddle_d].sum()
    assert w.prefill_tokens_per_s.sum() * DT == pytest.approx(want_p, rel=1e-9)
    assert w.decode_tokens_per_s.sum() * DT == pytest.approx(want_d, rel=1e-9)


def test_a_zero_length_prefill_puts_its_tokens_into_its_step():
    w = work_grid([1.1], [1.1], [2.0], [500], [10], T0, 16, DT)
    assert w.prefill_tokens_per_s[4] * DT == pytest.approx(500)
    assert np.count_nonzero(w.prefill_tokens_per_s) == 1


def test_busy_fraction_is_at_most_one_and_at_most_the_occupancy():
    arrival, start, first, end, n_in, n_out = _schedule(1, n=300, span_s=60.0)
    w = work_grid(start, first, end, n_in, n_out, T0, N, DT)
    assert np.all(w.busy_fraction <= np.minimum(1.0, w.occupancy) + 1e-12)
    assert np.all(w.prefill_fraction <= w.busy_fraction + 1e-12)
    assert np.all(w.busy_fraction >= 0)


def test_one_request_is_a_full_knee_while_it_runs():
    w = work_grid([1.0], [1.05], [3.0], [200], [150], T0, 16, DT)
    assert w.busy_fraction[4:12] == pytest.approx(1.0)
    assert w.busy_fraction[:4].sum() == 0 and w.busy_fraction[12:].sum() == 0
    assert w.decode_tokens_per_s[5:11] == pytest.approx(150 / 1.95)


def test_time_averages_match_a_brute_force_on_a_fine_grid():
    arrival, start, first, end, n_in, n_out = _schedule(2, n=120, span_s=20.0)
    n = 80
    w = work_grid(start, first, end, n_in, n_out, T0, n, DT, arrival_s=arrival)
    sub = 400
    t = T0 + (np.arange(n * sub) + 0.5) * DT / sub
    busy, prefill, kv, waiting = _fine(t, start, first, end, n_in, n_out, arrival)
    avg = lambda x: x.reshape(n, sub).mean(axis=1)  # noqa: E731
    tol = 6.0 / sub  # each interval edge inside a step is resolved to one fine instant
    assert w.busy_fraction == pytest.approx(avg(busy), abs=tol)
    assert w.prefill_fraction == pytest.approx(avg(prefill), abs=tol)
    assert w.waiting == pytest.approx(avg(waiting), abs=len(start) / sub)
    assert w.kv_tokens == pytest.approx(avg(kv), rel=5e-3, abs=50.0)


def test_many_servers_in_one_pass_equal_one_server_at_a_time():
    arrival, start, first, end, n_in, n_out = _schedule(3)
    server = np.random.default_rng(3).integers(0, 5, start.size)
    many = work_grid(start, first, end, n_in, n_out, T0, N, DT, arrival_s=arrival, server=server, n_servers=5)
    assert many.shape == (5, N)
    for s in range(5):
        m = server == s
        one = work_grid(start[m], first[m], end[m], n_in[m], n_out[m], T0, N, DT, arrival_s=arrival[m])
        for name in FEATURE_SETS["work"]:
            assert many.feature(name)[s] == pytest.approx(one.feature(name), abs=1e-9), name


def test_union_of_intervals_merges_overlaps_per_row():
    a, b, r = union_intervals(np.array([0.0, 1.0, 5.0, 0.5]), np.array([2.0, 3.0, 6.0, 1.0]), np.array([0, 0, 0, 1]))
    assert a.tolist() == [0.0, 5.0, 0.5] and b.tolist() == [3.0, 6.0, 1.0] and r.tolist() == [0, 0, 1]


def test_waiting_counts_requests_queued_for_a_slot():
    rng = np.random.default_rng(4)
    arrival = np.sort(rng.uniform(0, 5, 200))
    served = serve_fifo(arrival, np.full(200, 0.05), np.full(200, 4.0), slots=64)
    w = work_from_served(served, np.full(200, 100), np.full(200, 100), 0.0, 60)
    assert w.waiting.max() > 0
    assert w.occupancy.max() <= 64 + 1e-9
    assert w.waiting.sum() * DT == pytest.approx(np.sum(np.clip(served.start_s, 0, 15) - np.clip(arrival, 0, 15)))


def test_bad_schedules_are_refused_at_the_boundary():
    with pytest.raises(DcsimInputError):
        work_grid([1.0], [0.5], [2.0], [10], [10], 0.0, 8)
    with pytest.raises(DcsimInputError):
        work_grid([1.0], [1.5], [2.0], [10, 11], [10], 0.0, 8)
    with pytest.raises(DcsimInputError):
        work_grid([1.0], [1.5], [2.0], [10], [10], 0.0, 8).matrix("nonsense")
