"""Outputs: atomic tables and folders, the long trace table, OpenDSS and PyPSA exports."""
from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl
import pytest

from dcsim.errors import DcsimInputError
from dcsim.export import long_frame, to_opendss_loadshape, to_pypsa_series
from dcsim.io import OUTPUT_MARKER, atomic_dir, atomic_file, write_table


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_table_round_trips_through_polars(tmp_path, fmt):
    frame = pl.DataFrame({"t_s": [0.0, 0.25, 0.5], "node": ["site", "site", "site"], "power_w": [1.5, 2.5, 3.0]})
    path = write_table(frame, tmp_path / f"trace.{fmt}", fmt=fmt)
    back = pl.read_parquet(path) if fmt == "parquet" else pl.read_csv(path)
    assert back.equals(frame)
    assert [p.name for p in tmp_path.iterdir()] == [f"trace.{fmt}"]


def test_an_unknown_table_format_is_refused(tmp_path):
    with pytest.raises(DcsimInputError, match="format"):
        write_table(pl.DataFrame({"a": [1]}), tmp_path / "x.xlsx", fmt="xlsx")


def test_atomic_dir_renames_a_complete_folder_into_place(tmp_path):
    out = tmp_path / "run"
    with atomic_dir(out) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith("run.tmp-")
        (tmp / "a.txt").write_text("new")
    assert (out / "a.txt").read_text() == "new"
    assert (out / OUTPUT_MARKER).is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_atomic_dir_leaves_no_partial_output_and_keeps_the_old_one_on_an_exception(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "half.txt").write_text("partial")
            raise RuntimeError("simulation failed")
    assert list(tmp_path.iterdir()) == []
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(out, overwrite=True) as tmp:
            (tmp / "a.txt").write_text("new")
            raise RuntimeError("simulation failed")
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    assert (out / "a.txt").read_text() == "old"


def test_atomic_dir_replaces_an_existing_folder_on_success(tmp_path):
    out = tmp_path / "run"
    with atomic_dir(out) as tmp:
        (tmp / "old.txt").write_text("old")
    with atomic_dir(out, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == [OUTPUT_MARKER, "new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_long_frame_holds_block_means_per_node_with_block_start_times():
    traces = {"site": np.arange(8.0), "row0": np.full(8, 3.0)}
    frame = long_frame(traces, dt_s=0.25, resolution_s=1.0)
    assert frame.columns == ["t_s", "node", "resolution_s", "power_w"]
    assert frame["node"].to_list() == ["site", "site", "row0", "row0"]
    assert frame["t_s"].to_list() == [0.0, 1.0, 0.0, 1.0]
    assert frame["power_w"].to_list() == [1.5, 5.5, 3.0, 3.0]
    assert frame["resolution_s"].unique().to_list() == [1.0]


def test_opendss_loadshape_writes_per_unit_multipliers_and_a_loadshape_line(tmp_path):
    power = np.array([1.0e6, 2.0e6, 4.0e6, 3.0e6])
    dss = to_opendss_loadshape(power, 0.25, tmp_path / "site.dss", "dc_site")
    lines = [ln for ln in dss.read_text().splitlines() if not ln.startswith("!")]
    assert lines == ["New Loadshape.dc_site npts=4 sinterval=0.25 mult=(file=site.csv)"]
    assert "kW=4000" in dss.read_text()
    mult = np.loadtxt(tmp_path / "site.csv")
    np.testing.assert_allclose(mult, [0.25, 0.5, 1.0, 0.75])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site.csv", "site.dss"]


def test_opendss_loadshape_refuses_a_name_with_spaces(tmp_path):
    with pytest.raises(DcsimInputError, match="name"):
        to_opendss_loadshape(np.ones(4), 0.25, tmp_path / "x.dss", "my site")


def test_pypsa_series_has_a_snapshot_column_and_megawatts(tmp_path):
    path = to_pypsa_series(np.array([1.0e6, 2.5e6, 0.5e6]), 0.25, datetime(2024, 5, 1), tmp_path / "loads-p_set.csv",
                           name="dc")
    frame = pl.read_csv(path, try_parse_dates=True)
    assert frame.columns == ["snapshot", "dc"]
    assert frame["dc"].to_list() == [1.0, 2.5, 0.5]
    assert frame["snapshot"].to_list() == [datetime(2024, 5, 1, 0, 0, 0), datetime(2024, 5, 1, 0, 0, 0, 250000),
                                           datetime(2024, 5, 1, 0, 0, 0, 500000)]


def test_pypsa_series_takes_several_loads_and_refuses_a_bad_start(tmp_path):
    path = to_pypsa_series({"row0": np.ones(3) * 1e6, "row1": np.ones(3) * 2e6}, 900.0, "2024-05-01T00:00:00",
                           tmp_path / "p.csv")
    assert pl.read_csv(path).columns == ["snapshot", "row0", "row1"]
    with pytest.raises(DcsimInputError, match="start"):
        to_pypsa_series(np.ones(3), 1.0, "yesterday", tmp_path / "q.csv")


def test_a_folder_dcsim_did_not_write_is_never_replaced_even_with_overwrite(tmp_path):
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "chapter1.tex").write_text("years of work")
    for overwrite in (False, True):
        with pytest.raises(DcsimInputError, match="not empty|dcsim wrote"):
            with atomic_dir(out, overwrite=overwrite) as tmp:
                (tmp / "site.parquet").write_text("x")
    assert [p.name for p in out.iterdir()] == ["chapter1.tex"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis"]


def test_an_empty_folder_is_filled_and_a_file_in_the_way_is_refused(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("a")
    assert (out / "a.txt").is_file()
    (tmp_path / "f").write_text("mine")
    with pytest.raises(DcsimInputError, match="a file is in the way"):
        with atomic_dir(tmp_path / "f"):
            pass
    assert (tmp_path / "f").read_text() == "mine"


def test_a_writer_that_loses_the_race_fails_cleanly_and_leaves_nothing(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(DcsimInputError, match="not empty"):
        with atomic_dir(out) as tmp:
            (tmp / "mine.txt").write_text("late")
            out.mkdir()
            (out / "theirs.txt").write_text("first")  # another writer finished first
    assert [p.name for p in out.iterdir()] == ["theirs.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_killed_writers_leftovers_are_removed_by_the_next_write(tmp_path):
    out = tmp_path / "run"
    stale = tmp_path / "run.tmp-dead"
    stale.mkdir()
    (stale / ".dcsim-writing").write_text("999999999\n")  # no such process
    (stale / "summary.json").write_text("{}")
    foreign = tmp_path / "run.tmp-notours"
    foreign.mkdir()
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("a")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "run.tmp-notours"]


def test_outputs_honour_the_umask(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "run") as tmp:
            (tmp / "a.txt").write_text("a")
        with atomic_file(tmp_path / "b.txt") as tmp:
            tmp.write_text("b")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "run" / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o644


def test_a_file_output_is_not_replaced_unless_asked(tmp_path):
    path = tmp_path / "trace.parquet"
    path.write_text("mine")
    with pytest.raises(DcsimInputError, match="file exists"):
        with atomic_file(path, overwrite=False) as tmp:
            tmp.write_text("new")
    assert path.read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["trace.parquet"]
