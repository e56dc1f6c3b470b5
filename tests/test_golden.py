"""The one-road rebuild left every output unchanged: each recorded case (tests/golden.py) gives the same digests."""
from __future__ import annotations

import json

import pytest

import golden

RECORDED = json.loads(golden.GOLDEN.read_text())


@pytest.mark.parametrize("name", sorted(golden.SCENARIO_CASES))
def test_shipped_scenario_outputs_are_unchanged(name):
    assert golden.scenario_case(name) == RECORDED[name]


@pytest.mark.parametrize("name", sorted(golden.GENERATE_CASES))
def test_generate_outputs_are_unchanged(name):
    assert golden.generate_case(name) == RECORDED[name]


@pytest.mark.parametrize("name", sorted(golden.VALIDATE_CASES))
def test_validate_outputs_are_unchanged(name, shared_data):
    assert golden.validate_case(name, shared_data / "powertrace") == RECORDED[name]
