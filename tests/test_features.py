"""A_t and ΔA_t on the 250 ms grid."""
from __future__ import annotations

import numpy as np
import pytest

from dcsim.errors import DcsimInputError
from dcsim.serving.features import active_grid, delta_active, feature_matrix
from dcsim.serving.kernel import serve_fifo


def test_a_short_request_inside_one_step_counts_fractionally():
    a = active_grid([1.05], [1.15], t0_s=0.0, n_steps=8)
    assert a[4] == pytest.approx(0.4)
    assert np.count_nonzero(a) == 1


def test_a_request_spanning_steps_is_whole_in_the_middle_and_fractional_at_the_ends():
    a = active_grid([0.2], [1.1], t0_s=0.0, n_steps=6)
    assert a == pytest.approx([0.2, 1.0, 1.0, 1.0, 0.4, 0.0])


def test_a_request_on_step_boundaries_fills_exactly_its_steps():
    assert active_grid([0.5], [1.0], t0_s=0.0, n_steps=5) == pytest.approx([0, 0, 1, 1, 0])


def test_total_active_time_is_conserved_inside_the_window():
    rng = np.random.default_rng(0)
    start = rng.uniform(-5, 50, 2000)
    end = start + rng.exponential(2.0, 2000)
    t0, n, dt = 0.0, 160, 0.25
    a = active_grid(start, end, t0, n, dt)
    clipped = np.clip(end, t0, t0 + n * dt) - np.clip(start, t0, t0 + n * dt)
    assert np.sum(a) * dt == pytest.approx(np.sum(clipped), rel=1e-12)


def test_active_count_never_exceeds_the_slots():
    rng = np.random.default_rng(1)
    arrival = np.sort(rng.uniform(0, 30, 3000))
    served = serve_fifo(arrival, rng.exponential(0.1, 3000), rng.exponential(3.0, 3000), slots=64)
    a = active_grid(served.start_s, served.end_s, 0.0, 200)
    assert a.max() <= 64 + 1e-9
    assert a.max() > 60  # the server is saturated, so the bound is actually tested


def test_grid_offset_and_requests_outside_the_window():
    a = active_grid([0.0, 100.0, 10.1], [5.0, 101.0, 10.2], t0_s=10.0, n_steps=2, dt_s=0.5)
    assert a == pytest.approx([0.2, 0.0])


def test_many_servers_in_one_pass_equal_one_at_a_time():
    rng = np.random.default_rng(2)
    start = rng.uniform(0, 10, 500)
    end = start + rng.exponential(1.0, 500)
    server = rng.integers(0, 4, 500)
    grid = active_grid(start, end, 0.0, 40, server=server, n_servers=5)
    assert grid.shape == (5, 40)
    for s in range(5):
        assert np.allclose(grid[s], active_grid(start[server == s], end[server == s], 0.0, 40))
    assert np.all(grid[4] == 0)


def test_delta_active_and_feature_matrix():
    a = np.array([0.0, 1.0, 3.0, 2.0])
    assert np.array_equal(delta_active(a), [0.0, 1.0, 2.0, -1.0])
    two = np.stack([a, 2 * a])
    assert np.array_equal(delta_active(two)[1], [0.0, 2.0, 4.0, -2.0])
    f = feature_matrix(two)
    assert f.shape == (2, 4, 2)
    assert np.array_equal(f[..., 0], two) and np.array_equal(f[..., 1], delta_active(two))


def test_bad_inputs_are_named():
    with pytest.raises(DcsimInputError, match="end_s"):
        active_grid([1.0], [0.5], 0.0, 4)
    with pytest.raises(DcsimInputError, match="dt_s"):
        active_grid([0.0], [0.5], 0.0, 4, dt_s=0.0)
    with pytest.raises(DcsimInputError, match="server"):
        active_grid([0.0], [0.5], 0.0, 4, server=[3], n_servers=2)
