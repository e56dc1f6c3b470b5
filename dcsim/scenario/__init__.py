"""Scenarios: one TOML file (or dict) → a validated :class:`Scenario` → the engine's inputs.

- :mod:`~dcsim.scenario.schema`: the :class:`Scenario` model and its sections, :func:`load_scenario`;
- :mod:`~dcsim.scenario.workload`: ``[workload]``, one small model per arrival kind, each with ``build()``;
- :mod:`~dcsim.scenario.layout`: ``[facility]``, the hall's layout and configuration mixes;
- :mod:`~dcsim.scenario.overrides`: ``--set`` overrides and the one-line error messages;
- :mod:`~dcsim.scenario.build`: scenario → facility, streams and policy, once (:func:`build_inputs`).
"""
from __future__ import annotations

from dcsim.constants import LEVELS, STEP_S
from dcsim.facility.control import POLICIES
from dcsim.scenario.build import build_inputs, component_configs
from dcsim.scenario.layout import mix_assignment
from dcsim.scenario.overrides import parse_override
from dcsim.scenario.schema import Scenario, load_scenario
from dcsim.scenario.workload import ARRIVALS, STREAMS
from dcsim.workload.routing import ROUTERS

__all__ = ["Scenario", "load_scenario", "parse_override", "mix_assignment", "build_inputs", "component_configs",
           "STEP_S", "ARRIVALS", "STREAMS", "ROUTERS", "POLICIES", "LEVELS"]
