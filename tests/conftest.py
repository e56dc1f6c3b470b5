"""Shared test fixtures: where the measured data lives (skip with a reason when it is absent)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DCSIM_SHARED_DATA", REPO.parent / "shared" / "data"))
POWERTRACE = SHARED_DATA / "powertrace"


def _run_dir(campaign: str) -> Path:
    runs = sorted((POWERTRACE / campaign).glob("*/"))
    return runs[0] if runs else POWERTRACE / campaign / "missing"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"measured data not present at {SHARED_DATA} (set DCSIM_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def run_dir(shared_data):
    """Factory: run_dir('validate_qwen3-8b_a100') -> the run directory of that campaign."""
    def get(campaign: str) -> Path:
        path = _run_dir(campaign)
        if not path.is_dir():
            pytest.skip(f"run {campaign} not present under {POWERTRACE}")
        return path
    return get
