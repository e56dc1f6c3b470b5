"""The examples a user copies keep running."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_custom_workload_example_runs_and_plots_the_rows(tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, str(REPO / "examples" / "custom_workload.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "out" / "custom_workload" / "rows.parquet").is_file()
    assert (tmp_path / "out" / "custom_workload_rows.png").stat().st_size > 10_000
