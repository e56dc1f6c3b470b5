"""Helpers for tests that call the real command line in-process (``dcsim.cli.main``)."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

from dcsim import cli

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "scenarios" / "default.toml"
CONFIG = "qwen3-8b_a100_tp1"


def dcsim(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """``dcsim ARGS`` in-process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["dcsim", *args])
    code = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def small_scenario(folder: Path, name: str = "hall.toml", edit: Callable[[str], str] = lambda t: t,
                   control: str = "", site: str = "", workload: str = "") -> Path:
    """scenarios/default.toml (4 Qwen servers) shortened to 20 s with no warm-up, with lines added to [control], [site],
    [workload], then ``edit``ed as text."""
    text = DEFAULT.read_text()
    text = text.replace("duration_s = 600.0", "duration_s = 20.0\nwarm_up_s = 0.0").replace(
        "resolutions_s = [0.25, 1.0, 60.0]", "resolutions_s = [0.25, 1.0]")
    if control:
        text = text.replace('[control]\npolicy = "none"', "[control]\n" + control)
    if site:
        text = text.replace("[site]\n", "[site]\n" + site + "\n")
    if workload:
        text = text.replace('stream = "independent"', workload)
    path = folder / name
    path.write_text(edit(text))
    return path


def everything_under(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` (hidden ones too) → its bytes (None for a folder)."""
    out: dict[str, bytes | None] = {}
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            out[os.path.relpath(os.path.join(root, d), folder)] = None
        for f in files:
            p = os.path.join(root, f)
            out[os.path.relpath(p, folder)] = Path(p).read_bytes()
    return out


def one_line(exc: Exception, internals: tuple[str, ...], limit: int = 1200) -> str:
    """The error's message, asserted to be one line under ``limit`` characters naming none of ``internals``."""
    msg = str(exc)
    assert "\n" not in msg and len(msg) < limit, msg
    for internal in internals:
        assert internal not in msg, msg
    return msg
