"""Small I/O helpers every stage may use: atomic files and folders, tables, resampling, JSON.

Every output is written atomically: a file goes to a temporary name in its own folder and is moved
into place with ``os.replace``; a folder is filled as ``OUT.tmp-XXXX`` and renamed to ``OUT`` when
complete. A reader never sees a half-written output, and a failed run leaves the previous output
untouched.
"""
from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from dcsim.errors import DcsimInputError

__all__ = ["atomic_file", "atomic_dir", "write_table", "read_table", "resample_mean", "json_ready",
           "TABLE_FORMATS"]

TABLE_FORMATS = ("parquet", "csv")


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it onto ``path``, on error delete it."""
    path = Path(path)
    if path.is_dir():
        raise DcsimInputError(str(path), "a folder", "a file path", problem="output path is a folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(out_dir: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder ``OUT.tmp-XXXX`` beside ``out_dir``; rename it to ``out_dir`` on success.

    An existing ``out_dir`` is replaced only when the block finishes without an exception; on an
    exception the temporary folder is removed, the old ``out_dir`` (if any) stays as it was, and
    the exception propagates.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise DcsimInputError(str(out_dir), "a file", "a folder path", problem="output path is a file")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f"{out_dir.name}.old-", dir=out_dir.parent))
        old.rmdir()
        out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out_dir)


def write_table(df: pl.DataFrame, path: str | Path, fmt: str = "parquet") -> Path:
    """Write ``df`` as Parquet (zstd) or CSV (with a header row), atomically; return the path."""
    if fmt not in TABLE_FORMATS:
        raise DcsimInputError("format", fmt, ", ".join(TABLE_FORMATS))
    path = Path(path)
    with atomic_file(path) as tmp:
        if fmt == "parquet":
            df.write_parquet(tmp, compression="zstd")
        else:
            df.write_csv(tmp)
    return path


def read_table(path: str | Path, what: str = "a table") -> pl.DataFrame:
    """Read a Parquet file (``.parquet``) or a CSV (``#`` comments allowed) with polars; every file problem is a
    :class:`DcsimInputError` naming the file: missing, a folder, empty, malformed, no rows."""
    path = Path(path)
    kind = "Parquet" if path.suffix == ".parquet" else "CSV"
    if path.is_dir():
        raise DcsimInputError(str(path), "a folder", f"{what}: a {kind} file", "not a file")
    if not path.is_file():
        raise DcsimInputError(str(path), str(path), f"{what}: an existing {kind} file", "file not found")
    if path.stat().st_size == 0:
        raise DcsimInputError(str(path), "0 bytes", f"{what}: a {kind} file with a header and rows", "empty file")
    try:
        if kind == "Parquet":
            table = pl.read_parquet(path)
        else:
            table = pl.read_csv(path, comment_prefix="#", infer_schema_length=10000)
    except pl.exceptions.NoDataError:
        raise DcsimInputError(str(path), "empty file", f"{what}: a CSV with a header and at least one row",
                              "empty CSV") from None
    except (pl.exceptions.PolarsError, UnicodeDecodeError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DcsimInputError(str(path), first[:200], f"{what}: a well-formed {kind} file",
                              f"malformed {kind}") from None
    if table.height == 0:
        raise DcsimInputError(str(path), 0, f"{what} with at least one data row", "no rows")
    return table


def resample_mean(power_w: np.ndarray, dt_s: float, resolution_s: float) -> np.ndarray:
    """Block means over the last axis: ``(..., T)`` at ``dt_s`` → ``(..., T // k)`` at ``resolution_s = k·dt_s``.

    Output sample ``i`` is the mean over ``[i·resolution_s, (i+1)·resolution_s)``. A trailing partial
    block is dropped, so every output sample averages exactly ``k`` inputs (at most one block's
    energy at the end is left out). ``resolution_s`` must be a whole multiple of ``dt_s`` and no
    longer than the trace.

    >>> resample_mean(np.array([1.0, 3.0, 5.0, 7.0, 9.0]), 0.25, 0.5)
    array([2., 6.])
    """
    power = np.asarray(power_w, dtype=np.float64)
    if not (np.isfinite(dt_s) and dt_s > 0):
        raise DcsimInputError("dt_s", dt_s, "a positive step in seconds")
    ratio = resolution_s / dt_s if np.isfinite(resolution_s) and resolution_s > 0 else np.nan
    k = int(round(ratio)) if np.isfinite(ratio) else 0
    if k < 1 or abs(ratio - k) > 1e-9 * max(1.0, ratio):
        raise DcsimInputError("resolution_s", resolution_s, f"a positive whole multiple of dt_s = {dt_s} s")
    if power.ndim < 1 or power.shape[-1] < k:
        raise DcsimInputError("resolution_s", resolution_s,
                              f"at most the trace length ({power.shape[-1] if power.ndim else 0} × {dt_s} s)")
    if k == 1:
        return power.copy()
    n_blocks = power.shape[-1] // k
    blocks = power[..., : n_blocks * k].reshape(*power.shape[:-1], n_blocks, k)
    return blocks.mean(axis=-1)




def json_ready(obj: Any) -> Any:
    """Plain JSON data: numpy scalars and arrays → numbers and lists, paths → str, non-finite floats → None
    (JSON has no NaN), tuples → lists, keys → str."""
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [json_ready(v) for v in obj.tolist()]
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj
