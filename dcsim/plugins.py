"""Extension points by name: the built-ins of each stage and users' ``"module:Class"`` plug-ins.

Three things a scenario names can be extended by subclassing one small base: an arrival process
(:class:`~dcsim.workload.arrivals.ArrivalProcess`), a router (:class:`~dcsim.workload.routing.Router`)
and a control policy (:class:`~dcsim.facility.control.CapPolicy`). Each stage keeps its table of
built-ins beside its base class (``ROUTERS`` in routing, ``POLICIES`` in control; the built-in arrivals
are the scenario's arrival kinds, see :mod:`dcsim.scenario.workload`); this module finds a name in
them, imports ``"package.module:Class"`` or ``"path/to/file.py:Class"`` plug-ins, and builds them, every
failure one :class:`~dcsim.errors.DcsimInputError` naming the key it came from.

Any stage may import this module: it imports the stages' tables only when asked for them.

>>> make_router("round_robin").config()["class"]
'dcsim.workload.routing:RoundRobin'
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dcsim.errors import DcsimInputError, plugin_error

__all__ = ["load_plugin", "resolve_path", "resolve_spec", "spec_of", "load_router", "router_class", "make_router",
           "load_policy", "make_policy", "make_arrival", "PLUGIN_FORM"]

PLUGIN_FORM = "or a plug-in 'module:Class' / 'path/to/file.py:Class'"


# ------------------------------------------------------------------------------------------- loading

def load_plugin(spec: str, base: type, where: str = "plugin") -> type:
    """Import a user class named ``"package.module:Class"`` (or ``"path/to/file.py:Class"``) and check
    that it is a concrete subclass of ``base``; any failure is a :class:`DcsimInputError` naming ``where``."""
    allowed = f"'module:Class' naming a subclass of {base.__module__}.{base.__qualname__}"
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        if isinstance(spec, str) and spec.count(":") > 1 and spec.rsplit(":", 1)[0].endswith(".py"):
            mod_name, cls_name = spec.rsplit(":", 1)  # a Windows path with a drive letter
        else:
            raise DcsimInputError(where, spec, allowed, "not of the form module:Class")
    else:
        mod_name, cls_name = spec.split(":")
    try:
        if mod_name.endswith(".py"):
            module = _import_file(Path(mod_name), where, spec, allowed)
        else:
            module = importlib.import_module(mod_name)
    except DcsimInputError:
        raise
    except ModuleNotFoundError as e:
        if e.name and (mod_name == e.name or mod_name.startswith(e.name + ".")):
            raise DcsimInputError(where, spec, allowed, f"module {mod_name!r} not found") from None
        raise DcsimInputError(where, spec, allowed, f"importing {mod_name!r} failed: {e}") from None
    except Exception as e:
        raise DcsimInputError(where, spec, allowed, f"importing {mod_name!r} failed: {type(e).__name__}: {e}") from None
    obj: Any = module
    for part in cls_name.split("."):
        if not hasattr(obj, part):
            raise DcsimInputError(where, spec, allowed, f"no {cls_name!r} in module {mod_name!r}")
        obj = getattr(obj, part)
    return _checked_class(obj, base, where, spec, allowed, name=cls_name)


def _checked_class(obj: Any, base: type, where: str, spec: Any, allowed: str, name: str | None = None) -> type:
    name = name or getattr(obj, "__qualname__", repr(obj))
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise DcsimInputError(where, spec, allowed, f"{name!r} is not a subclass of {base.__qualname__}")
    if inspect.isabstract(obj):
        missing = ", ".join(sorted(obj.__abstractmethods__))
        raise DcsimInputError(where, spec, allowed, f"{name!r} is abstract (implement {missing})")
    return obj


def _import_file(path: Path, where: str, spec: str, allowed: str) -> Any:
    if not path.is_file():
        raise DcsimInputError(where, spec, allowed, f"file {str(path)!r} not found")
    name = f"dcsim_plugin_{path.stem}_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    file_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(file_spec)
    sys.modules[name] = module
    try:
        file_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def resolve_path(base_dir: str | Path, name: str) -> str:
    """A path as written in a scenario (``~`` expanded; relative to ``base_dir``), made absolute."""
    p = Path(name).expanduser()
    return str(p if p.is_absolute() else (Path(base_dir) / p).resolve())


def resolve_spec(base_dir: str | Path, spec: Any) -> Any:
    """``"rel/file.py:Class"`` → the file's absolute path (relative to ``base_dir``); any other spec unchanged."""
    if not isinstance(spec, str) or ":" not in spec:
        return spec
    module, cls = spec.rsplit(":", 1)
    if not module.endswith(".py"):
        return spec
    return f"{resolve_path(base_dir, module)}:{cls}"


def spec_of(obj: Any) -> Any:
    """What names ``obj`` in a scenario: a name or spec as it is, a class or an instance as ``"module:Class"``."""
    if isinstance(obj, str):
        return obj
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def _class_of(spec: Any, base: type, table: Mapping[str, Any], where: str, allowed: str) -> type:
    """A built-in by name, a plug-in by ``"module:Class"``, or a class given as it is."""
    if isinstance(spec, type):
        return _checked_class(spec, base, where, spec_of(spec), allowed)
    if isinstance(spec, str) and spec in table:
        return table[spec]
    if isinstance(spec, str) and ":" in spec:
        return load_plugin(spec, base, where=where)
    raise DcsimInputError(where, spec, allowed)


# ------------------------------------------------------------------------------------------- routers

def load_router(spec: str, where: str = "workload.routing") -> type:
    """A user's :class:`~dcsim.workload.routing.Router` subclass named ``"module:Class"``; see :func:`load_plugin`."""
    from dcsim.workload.routing import Router

    return load_plugin(spec, Router, where=where)


def router_class(spec: Any, where: str = "workload.routing") -> type:
    """The Router class a scenario names: a built-in name (``ROUTERS``), ``"module:Class"``, a Router class,
    or a Router instance's class."""
    from dcsim.workload.routing import ROUTERS, Router

    if isinstance(spec, Router):
        return type(spec)
    return _class_of(spec, Router, ROUTERS, where, f"one of {', '.join(ROUTERS)} {PLUGIN_FORM}")


def make_router(spec: Any, where: str = "workload.routing") -> Any:
    """A router: a Router instance as it is, else :func:`router_class` built without arguments."""
    from dcsim.workload.routing import Router

    if isinstance(spec, Router):
        return spec
    cls = router_class(spec, where)
    try:
        return cls()
    except Exception as exc:  # the plug-in's own __init__ failed
        raise plugin_error(f"{where} __init__()", cls, exc, "a router that can be built without arguments") from None


# ------------------------------------------------------------------------------------------ policies

def load_policy(spec: str, params: Mapping[str, Any] | None = None, where: str = "control.policy") -> Any:
    """A user's :class:`~dcsim.facility.control.CapPolicy` named ``"module:Class"``, built with ``params`` as
    keyword arguments."""
    from dcsim.facility.control import CapPolicy

    return _build_policy(load_plugin(spec, CapPolicy, where=where), spec, params)


def _build_policy(cls: type, spec: Any, params: Mapping[str, Any] | None) -> Any:
    try:
        return cls(**dict(params or {}))
    except DcsimInputError:
        raise
    except TypeError as exc:
        raise DcsimInputError("control.params", sorted(params or {}), f"the keyword arguments of {spec_of(spec)}",
                              problem=str(exc)) from None
    except Exception as exc:  # the plug-in's own __init__ failed
        raise plugin_error("control.policy __init__()", cls, exc, "a policy that can be built") from None


def make_policy(policy: Any, trip_time_s: float = 5.0, restart_s: float = 300.0, cap_fraction: float = 0.9,
                params: Mapping[str, Any] | None = None) -> Any:
    """The policy a scenario names: ``"none"`` → None, a built-in (``POLICIES``), ``"module:Class"``, a
    CapPolicy class, or a CapPolicy instance (as it is).

    A built-in takes the ``trip_time_s``, ``restart_s`` and ``cap_fraction`` its ``__init__`` names, and
    ``params`` as its extra options (cap: release_margin, release_hold_s); a plug-in takes ``params`` only.
    """
    from dcsim.facility.control import POLICIES, CapPolicy

    if isinstance(policy, CapPolicy):
        if params:
            raise DcsimInputError("control.params", sorted(params), "to be left out: the policy is an instance",
                                  problem="not used by a policy instance")
        return policy
    params = dict(params or {})
    if isinstance(policy, str) and policy in POLICIES:
        cls = POLICIES[policy]
        if cls is None:
            return None
        given = {"trip_time_s": trip_time_s, "restart_s": restart_s, "cap_fraction": cap_fraction}
        takes = inspect.signature(cls).parameters
        try:
            return cls(**{k: v for k, v in given.items() if k in takes}, **params)
        except TypeError as exc:
            raise DcsimInputError("control.params", sorted(params), f"the options of the {policy!r} policy",
                                  problem=str(exc)) from None
    allowed = f"{', '.join(POLICIES)} or 'module:Class'"
    if isinstance(policy, str) and ":" in policy:
        return load_policy(policy, params)
    if isinstance(policy, type):
        return _build_policy(_checked_class(policy, CapPolicy, "control.policy", spec_of(policy), allowed),
                             policy, params)
    raise DcsimInputError("control.policy", policy, allowed)


# ------------------------------------------------------------------------------------------ arrivals

def make_arrival(spec: Any, params: Mapping[str, Any], tokens: Any, scale: float) -> Any:
    """A plug-in arrival process: ``"module:Class"`` or an ArrivalProcess class built with ``params`` as
    keywords, plus ``tokens`` and ``rate_scale`` when its ``__init__`` takes them; or an ArrivalProcess
    instance, used as it is. A process that cannot take ``rate_scale`` is refused when its rate must be scaled."""
    from dcsim.workload.arrivals import ArrivalProcess

    if isinstance(spec, ArrivalProcess):
        if not math.isclose(scale, 1.0):
            raise DcsimInputError("workload.arrival", spec_of(spec), "a class or 'module:Class' whose __init__ "
                                  "takes rate_scale, or an instance with rate_scale = 1 and no stream to size",
                                  problem=f"an instance's rate cannot be scaled by {scale:g} (rate_scale and stream)")
        if params:
            raise DcsimInputError("workload.params", dict(params), "to be left out: the arrival is an instance",
                                  problem="not used by an arrival instance")
        return spec
    cls = _class_of(spec, ArrivalProcess, {}, "workload.arrival", f"'module:Class' naming a subclass of "
                                                                  f"{ArrivalProcess.__module__}.ArrivalProcess")
    name = spec_of(cls)
    sig = inspect.signature(cls)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    kwargs = dict(params)
    if takes_any or "tokens" in sig.parameters:
        kwargs.setdefault("tokens", tokens)
    if takes_any or "rate_scale" in sig.parameters:
        kwargs["rate_scale"] = scale
    elif not math.isclose(scale, 1.0):
        raise DcsimInputError("workload.arrival", name, "a class whose __init__ takes rate_scale",
                              problem=f"its rate must be scaled by {scale:g} (rate_scale and stream)")
    try:
        sig.bind(**kwargs)
    except TypeError as e:
        raise DcsimInputError("workload.params", params, f"the keyword arguments of {name}{sig}",
                              problem=str(e)) from None
    try:
        return cls(**kwargs)
    except DcsimInputError as e:
        raise DcsimInputError(f"workload.params → {e.where}", e.value, e.allowed, e.problem) from None
    except Exception as e:
        raise DcsimInputError("workload.params", params, f"the keyword arguments of {name}{sig}",
                              problem=f"{type(e).__name__}: {e}") from None
