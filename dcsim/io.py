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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from dcsim.errors import DcsimInputError

__all__ = ["atomic_file", "atomic_dir", "check_writable", "OUTPUT_MARKER", "write_table", "read_table", "resample_mean", "json_ready",
           "TABLE_FORMATS"]

TABLE_FORMATS = ("parquet", "csv")


OUTPUT_MARKER = ".dcsim-output"
"""The file dcsim writes into every output folder it makes, listing the files it wrote there; only a folder
holding it, and nothing besides what it lists, may be replaced."""
_MARKER_HEAD = "written by dcsim; `--overwrite` may replace this folder while it holds only these files:\n"
_TMP_MARKER = ".dcsim-writing"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _honour_umask(path: Path, folder: bool) -> None:
    """mkstemp/mkdtemp create 0600/0700 whatever the umask; give outputs the permissions of ordinary files."""
    os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_writable(path: str | Path, what: str, overwrite: bool = False, folder: bool = False,
                   owned: "Callable[[Path], bool] | None" = None) -> Path:
    """Before any work: ``path`` can be written as ``what`` (the option naming it) without losing a user's file.

    A file output must not exist (unless ``overwrite``) and must not be a folder. A folder output must not
    exist, or be empty, or, with ``overwrite``, be a folder dcsim wrote (:data:`OUTPUT_MARKER`, or ``owned``) and
    hold nothing the marker does not list (a file a user put there is never deleted).
    The nearest existing parent must be a folder this process can write: tried, with a hidden probe folder made
    and removed at once (``os.access`` says yes to root everywhere, also on read-only mounts and ``/proc``).
    A folder output may not be the working folder or one above it. Nothing else is created here."""
    if str(path) == "":  # Path("") would be the working folder
        raise DcsimInputError(what, "", "a file or folder path", problem="empty path")
    path = Path(path)
    allowed_dir = f"a new or empty folder, or with --overwrite a folder dcsim wrote (it holds {OUTPUT_MARKER})"
    if folder and path.is_dir() and Path.cwd().resolve().is_relative_to(path.resolve()):
        raise DcsimInputError(what, str(path), "a folder other than the working folder and those above it; "
                              "nothing was written", problem="the working folder would be replaced")
    if folder:
        if path.exists() and not path.is_dir():
            raise DcsimInputError(what, str(path), "a folder path", problem="a file is in the way")
        if path.is_dir() and any(path.iterdir()):
            if not overwrite:
                raise DcsimInputError(what, str(path), allowed_dir + "; nothing was written",
                                      problem="folder exists and is not empty")
            if not ((path / OUTPUT_MARKER).is_file() or (owned is not None and owned(path))):
                raise DcsimInputError(what, str(path), allowed_dir + "; nothing was written",
                                      problem="not a folder dcsim wrote, so it is not replaced")
            extra = _not_written_by_dcsim(path)
            if extra:
                raise DcsimInputError(what, str(path), "a folder holding only what dcsim wrote there (move your "
                                      "files out first); nothing was written",
                                      problem=f"it also holds {', '.join(map(repr, extra[:3]))}"
                                              f"{f' and {len(extra) - 3} more' if len(extra) > 3 else ''}, "
                                              "which dcsim did not write, so it is not replaced")
    else:
        if path.is_dir():
            raise DcsimInputError(what, str(path), "a file path", problem="a folder is in the way")
        if path.exists() and not overwrite:
            raise DcsimInputError(what, str(path), "a new file, or --overwrite to replace it; nothing was written",
                                  problem="file exists")
    base = _nearest_existing(path.absolute().parent)  # temporary files and folders are made beside the output
    if not base.is_dir():
        raise DcsimInputError(what, str(path), "a path inside a folder", problem=f"{base} is a file")
    if not os.access(base, os.W_OK | os.X_OK) or not _can_create_in(base):
        raise DcsimInputError(what, str(path), "a path in a folder you can write", problem=f"{base} is not writable")
    return path


def _not_written_by_dcsim(folder: Path) -> list[str]:
    """The entries of ``folder`` its :data:`OUTPUT_MARKER` does not list (none when the marker lists nothing: a
    folder written before markers listed their files)."""
    try:
        listed = (folder / OUTPUT_MARKER).read_text().splitlines()[1:]
    except (OSError, UnicodeDecodeError):
        return []
    if not listed:
        return []
    return sorted(p.name for p in folder.iterdir() if p.name not in listed and p.name != OUTPUT_MARKER)


def _can_create_in(folder: Path) -> bool:
    """Whether a folder can be made in ``folder`` (tried: a probe folder, removed at once)."""
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".dcsim-probe-", dir=folder))
    except OSError:
        return False
    return True


@contextlib.contextmanager
def atomic_file(path: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it onto ``path``, on error delete it.

    ``overwrite=False`` refuses an existing file (checked again when moving into place)."""
    path = Path(path)
    check_writable(path, str(path), overwrite=overwrite)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    except OSError as e:
        raise DcsimInputError(str(path), str(path), "a file this run can create",
                              problem=f"{type(e).__name__}: {e.strerror or e}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():
            _honour_umask(tmp, folder=False)
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if a file appeared meanwhile: never replaced
    except FileExistsError:
        raise DcsimInputError(str(path), str(path), "a new file", problem="written by someone else meanwhile") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def _clean_stale(out_dir: Path) -> None:
    """Remove ``OUT.tmp-*`` folders left by a dcsim run that was killed while writing (its process is gone)."""
    for tmp in out_dir.parent.glob(f"{glob_escape(out_dir.name)}.tmp-*"):
        marker = tmp / _TMP_MARKER
        try:
            pid = int(marker.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # not ours: left alone
        try:
            os.kill(pid, 0)
            continue  # still writing
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except PermissionError:
            continue


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)


@contextlib.contextmanager
def atomic_dir(out_dir: str | Path, overwrite: bool = False, what: str = "--out",
               owned: "Callable[[Path], bool] | None" = None) -> Iterator[Path]:
    """Yield an empty temporary folder ``OUT.tmp-XXXX`` beside ``out_dir``; rename it to ``out_dir`` on success.

    ``out_dir`` may be new or an empty folder; an existing folder with files is replaced only with ``overwrite``
    and only when dcsim wrote it (:func:`check_writable`), and only once the block finished without an
    exception. On an exception the temporary folder is removed, the old ``out_dir`` stays as it was, and the
    exception propagates. The folder gets :data:`OUTPUT_MARKER`, listing what it holds. A run killed while writing leaves its
    ``OUT.tmp-*`` folder behind; the next write to the same ``out_dir`` removes it.
    """
    out_dir = Path(out_dir)
    check_writable(out_dir, what, overwrite=overwrite, folder=True, owned=owned)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        _clean_stale(out_dir)
        tmp = Path(tempfile.mkdtemp(prefix=f"{out_dir.name}.tmp-", dir=out_dir.parent))
    except OSError as e:
        raise DcsimInputError(what, str(out_dir), "a folder this run can create",
                              problem=f"{type(e).__name__}: {e.strerror or e}") from None
    try:
        (tmp / _TMP_MARKER).write_text(f"{os.getpid()}\n")
        yield tmp
        (tmp / _TMP_MARKER).unlink()
        written = sorted(p.name for p in tmp.iterdir())
        (tmp / OUTPUT_MARKER).write_text(_MARKER_HEAD + "".join(f"{name}\n" for name in written))
        _honour_umask(tmp, folder=True)
        for f in tmp.iterdir():
            if f.is_file():
                _honour_umask(f, folder=False)
        check_writable(out_dir, what, overwrite=overwrite, folder=True, owned=owned)  # again: a writer may have won
        if out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f"{out_dir.name}.old-", dir=out_dir.parent))
            old.rmdir()
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out_dir)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DcsimInputError(what, str(out_dir), "a folder this run can create",
                              problem=f"{type(e).__name__}: {e.strerror or e}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_table(df: pl.DataFrame, path: str | Path, fmt: str = "parquet", overwrite: bool = True) -> Path:
    """Write ``df`` as Parquet (zstd) or CSV (with a header row), atomically; return the path."""
    if fmt not in TABLE_FORMATS:
        raise DcsimInputError("format", fmt, ", ".join(TABLE_FORMATS))
    path = Path(path)
    with atomic_file(path, overwrite=overwrite) as tmp:
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
    if kind == "CSV":
        data = path.read_bytes()
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data.count(b"\n", 0, e.start) + 1
            raise DcsimInputError(str(path), data[e.start:e.start + 4], f"{what}: UTF-8 text",
                                  f"not UTF-8 text at byte {e.start} (line {line})") from None
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




def available_memory_bytes() -> float:
    """Memory this machine can give a run now (MemAvailable), or infinity where it cannot be read."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024.0
    except OSError:
        pass
    return float("inf")


def exceeds_memory(need_bytes: float, share: float = 0.8) -> float | None:
    """The memory available now (bytes) when ``need_bytes`` is more than ``share`` of it, so the work must be
    refused before anything is allocated; None when it fits. The one memory rule of the run, generate and layout
    checks."""
    have = available_memory_bytes()
    return have if need_bytes > share * have else None


def gib(n_bytes: float) -> str:
    """A memory size for a message: GiB, or TiB when it is that large."""
    if n_bytes < 2**40:
        return f"{n_bytes / 2**30:,.3g} GiB"
    return f"{n_bytes / 2**40:,.0f} TiB" if n_bytes < 2**60 else f"{n_bytes / 2**40:.3g} TiB"


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
