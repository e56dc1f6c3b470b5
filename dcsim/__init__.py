"""dcsim: compositional power-trace generation for LLM-inference datacenters.

The small public surface: ``run`` a scenario, ``load_scenario``, ``load_config`` / ``list_configs`` for the
calibrated configurations, and ``metrics``. Heavy modules (torch) load on first use.
"""
from __future__ import annotations

from typing import Any

from dcsim.errors import DcsimInputError

__all__ = ["DcsimInputError", "run", "load_scenario", "load_config", "list_configs", "metrics"]
__version__ = "0.1.0"

_LAZY = {"load_scenario": ("dcsim.scenario", "load_scenario"),
         "load_config": ("dcsim.configs", "load_config"), "list_configs": ("dcsim.configs", "list_configs")}


def run(scenario: Any, *args: Any, **kwargs: Any) -> Any:
    """Simulate a scenario and write its outputs; see :func:`dcsim.runner.run` (the same arguments).

    A function here, not a submodule: ``dcsim.run(s)`` can be called any number of times in one process."""
    from dcsim.runner import run as _run

    return _run(scenario, *args, **kwargs)


def __getattr__(name: str) -> Any:
    import importlib

    if name == "metrics":
        return importlib.import_module("dcsim.metrics")
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'dcsim' has no attribute {name!r}")
