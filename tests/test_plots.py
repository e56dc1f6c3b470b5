"""Figures are written as non-empty PNG files."""
from __future__ import annotations

import numpy as np
import pytest

from dcsim.errors import DcsimInputError
from dcsim.plots import plot_overlay, plot_site_rows

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    data = path.read_bytes()
    return len(data) > 1000 and data[:8] == PNG_MAGIC


def test_overlay_writes_a_png(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(400) * 0.25
    active = rng.integers(0, 30, size=t.size)
    measured = 1500 + 100 * active + rng.normal(0, 50, t.size)
    generated = 1500 + 100 * active + rng.normal(0, 50, t.size)
    path = plot_overlay(t, measured, generated, active, tmp_path / "overlay.png", "measured vs generated")
    assert path == tmp_path / "overlay.png" and _is_png(path)


def test_overlay_without_measured_power_or_active_requests_still_draws(tmp_path):
    t = np.arange(100) * 0.25
    path = plot_overlay(t, None, np.linspace(1e3, 5e3, t.size), None, tmp_path / "g.png", "generated only")
    assert _is_png(path)


def test_site_rows_writes_a_png_for_a_long_trace(tmp_path):
    rng = np.random.default_rng(1)
    t = np.arange(24 * 360) * 10.0  # 24 h at 10 s: drawn as block means
    rows = {f"row{i}": 90e3 + rng.normal(0, 5e3, t.size) for i in range(3)}
    traces = {"site": 1.3 * sum(rows.values()), **rows, "row0/rack0": rows["row0"] / 6}
    path = plot_site_rows(traces, t, tmp_path / "site.png", "site and rows")
    assert _is_png(path)


def test_site_rows_refuses_traces_without_a_site(tmp_path):
    with pytest.raises(DcsimInputError, match="site"):
        plot_site_rows({"row0": np.ones(10)}, np.arange(10.0), tmp_path / "x.png", "no site")
