"""A scenario: the hall, its workload, its limits and what to write, read from one TOML file.

``load_scenario("scenarios/default.toml", ["workload.rate_per_s=3"])`` reads the file with
:mod:`tomllib`, applies ``--set`` overrides (:mod:`~dcsim.scenario.overrides`), and validates everything
into a :class:`Scenario` (pydantic v2, unknown keys refused). Every problem a user can cause becomes one
:class:`~dcsim.errors.DcsimInputError` line naming the file, the key path, the bad value and what is
allowed, e.g. ``scenarios/x.toml: workload.rate_per_s: out of range, got -2.0; allowed: ...``.
Nothing is written by this module.

Sections (see the shipped ``scenarios/*.toml`` for commented examples):

- ``[simulation]`` ``duration_s``, ``step_s`` (0.25: configurations are calibrated at 250 ms), ``seed``.
- ``[facility]`` ``rows × racks_per_row × servers_per_rack`` servers, each running ``config``; or a
  ``[[facility.mix]]`` of ``{config, fraction}`` (see :func:`~dcsim.scenario.layout.mix_assignment`); or an explicit
  ``[[facility.servers]]`` list of ``{row, rack, config, count}`` (then the list is the layout).
- ``[site]`` ``p_base_w`` (non-GPU IT power per server), ``pue``, ``[site.limits_w]`` (node or level → W).
- ``[workload]`` the arrival process, token lengths, how streams map to servers, routing: one model per
  arrival kind, see :mod:`dcsim.scenario.workload`.
- ``[control]`` what happens when a limit is exceeded: ``none``, ``breaker``, ``cap`` or a plug-in.
- ``[outputs]`` levels, resolutions, formats, plot, request log.

Relative paths in a file (trace CSVs, token tables, ``file.py:Class`` plug-ins, artifact folders)
are relative to the scenario file's folder; for :meth:`Scenario.from_dict`, to ``base_dir``
(default: the working directory). They are stored resolved (absolute). From Python, ``workload.arrival``,
``workload.routing`` and ``control.policy`` may also be a class or an instance of the extension point's
base (ArrivalProcess, Router, CapPolicy). The scenario is data only: :mod:`dcsim.scenario.build` turns it
into the engine's inputs (its helper methods below call that module).

How rates are meant (``[workload]``): for ``stream = "independent"`` and ``"shared_intensity"``
the configured rate is **per server** (a shared-intensity hall draw has N times that rate and each
server gets a 1/N thinning of it); for ``"pooled"`` it is **per pool** (rack, row or site,
``pool``), dispatched by ``routing``; for ``arrival = "azure2024_code_day"`` it is the **hall's**
rate whatever the stream: the production service's rate × ``rate_scale``, shared by all servers.
``rate_scale`` multiplies every built-in process's rate (for a trace replay it compresses time).
"""
from __future__ import annotations

import math

import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (Field, PrivateAttr, ValidationError, ValidationInfo, field_serializer, field_validator,
                      model_validator)

from dcsim.constants import LEVELS, STEP_S
from dcsim.errors import DcsimInputError
from dcsim.facility.control import POLICIES, CapPolicy
from dcsim.plugins import PLUGIN_FORM, resolve_spec, spec_of
from dcsim.scenario.overrides import Strict, apply_override, dotted, key, parse_override, toml_error, translate
from dcsim.scenario import build
from dcsim.scenario.layout import FacilityLayout
from dcsim.scenario.workload import Workload
from dcsim.workload.tokens import EmpiricalTokens

__all__ = ["Scenario", "load_scenario", "Simulation", "Site", "Control", "Outputs"]

_DEFAULT_RESOLUTIONS_S = (STEP_S, 1.0, 60.0, 900.0)
_POLICY_ALLOWED = f"one of {', '.join(POLICIES)} {PLUGIN_FORM}"


# --------------------------------------------------------------------------------------------- sections

class Simulation(Strict):
    """``[simulation]``: how long, at which step, from which seed, after how long a warm-up."""

    duration_s: float = Field(ge=STEP_S, description=f"a number of seconds ≥ the step ({STEP_S} s)")
    step_s: float = Field(STEP_S, description=f"{STEP_S} (the configurations are calibrated at 250 ms)")
    seed: int = Field(0, ge=0, description="a whole number ≥ 0 (every random draw derives from it)")
    warm_up_s: float = Field(120.0, ge=0, le=86400.0,
                             description="seconds ≥ 0 (at most a day) of arrivals simulated before time 0 and "
                                         "dropped, so the hall starts in steady state (0: it starts empty)")

    @field_validator("step_s")
    @classmethod
    def _calibrated_step(cls, v: float) -> float:
        if v != STEP_S:
            raise DcsimInputError("simulation.step_s", v, f"{STEP_S} only, for now",
                                  problem="the configurations are calibrated at 250 ms")
        return v


class Site(Strict):
    """``[site]``: non-GPU power, PUE and the limits of the power tree."""

    p_base_w: float = Field(1000.0, ge=0, description="a non-GPU IT power per server in watts ≥ 0")
    pue: float = Field(1.3, ge=1, description="a power usage effectiveness ≥ 1")
    limits_w: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict,
        description="a table of node name (row0, \"row0/rack1\", …) or level (site, row, rack, server) → watts > 0")


class Control(Strict):
    """``[control]``: what happens when a node's power exceeds its limit (``site.limits_w``).

    ``breaker``: a node above its limit for ``trip_time_s`` trips (it and everything below it go
    off) and is restored ``restart_s`` later. ``cap``: the servers under a node over its limit are
    capped so the node stays under ``cap_fraction`` × its limit. ``params`` go to the built-in's
    extra options (cap: ``release_margin``, ``release_hold_s``) or to a plug-in's ``__init__``; see
    :mod:`dcsim.facility.control`. Timings and fractions of the other policies are ignored, so a
    study can switch policy with ``--set control.policy=none``.
    """

    policy: Any = Field("none", description=_POLICY_ALLOWED)
    interval_s: float = Field(1.0, gt=0,
                              description=f"a control period in seconds, a multiple of the step ({STEP_S} s)")
    trip_time_s: float = Field(5.0, ge=0, description="seconds ≥ 0 a node may stay over its limit before "
                                                      "its breaker trips")
    restart_s: float = Field(300.0, ge=0, description="seconds ≥ 0 a tripped node stays off")
    cap_fraction: float = Field(0.9, gt=0, le=1, description="the cap as a fraction of the node limit, in (0, 1]")
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="extra options of the policy (keyword arguments of a plug-in)")

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, v: Any) -> Any:
        if isinstance(v, (CapPolicy, type)):
            return v  # from Python: checked when built
        if not isinstance(v, str) or not v:
            raise DcsimInputError("control.policy", v, _POLICY_ALLOWED, problem="empty" if v == "" else "wrong type")
        if v not in POLICIES and ":" not in v:
            raise DcsimInputError("control.policy", v, _POLICY_ALLOWED, problem="unknown policy")
        return v

    @field_serializer("policy", when_used="json")
    def _spec(self, v: Any) -> Any:
        return spec_of(v)

    @property
    def acts(self) -> bool:
        """Whether a policy is named (anything but ``"none"``)."""
        return not (isinstance(self.policy, str) and self.policy == "none")

    def build(self) -> CapPolicy | None:
        """A fresh :class:`~dcsim.facility.control.CapPolicy` (an instance given is used as it is), or None."""
        from dcsim.plugins import make_policy

        return make_policy(self.policy, trip_time_s=self.trip_time_s, restart_s=self.restart_s,
                           cap_fraction=self.cap_fraction, params=self.params)


class Outputs(Strict):
    """``[outputs]``: which traces to write, at which resolutions, in which formats."""

    levels: list[Literal["site", "row", "rack", "server"]] = Field(
        ["site", "row", "rack"], min_length=1, description="a list of levels among site, row, rack, server")
    resolutions_s: list[Annotated[float, Field(gt=0)]] | None = Field(
        None, min_length=1, description=f"a list of resolutions in seconds, each a multiple of the step ({STEP_S} s) "
                                        "and at most the duration (default 0.25, 1, 60, 900 up to the duration)")
    formats: list[Literal["parquet", "csv"]] = Field(["parquet"], min_length=1,
                                                     description="a list among parquet, csv")
    plot: bool = Field(True, description="true or false")
    requests: bool = Field(True, description="true or false (write the request log)")

    @field_validator("levels", "formats", "resolutions_s")
    @classmethod
    def _unique(cls, v: list | None, info: ValidationInfo) -> list | None:
        if v is not None and len(set(v)) != len(v):
            dup = next(x for i, x in enumerate(v) if x in v[:i])
            raise DcsimInputError(f"outputs.{info.field_name}", v, "each entry once", problem=f"{dup!r} listed twice")
        return v



# --------------------------------------------------------------------------------------------- scenario

class Scenario(Strict):
    """A validated scenario. Build it with :func:`load_scenario` or :meth:`from_dict`.

    Data only; the helpers below (:meth:`server_configs`, :meth:`build_tree`, :meth:`pools`,
    :meth:`token_source`, :meth:`arrival_process`, :meth:`router`, :meth:`policy`) call
    :mod:`dcsim.scenario.build`, the one translation of a scenario into the engine's inputs.
    """

    simulation: Simulation
    facility: FacilityLayout
    site: Site = Field(default_factory=Site)
    workload: Workload = Field(description="a [workload] table (see the shipped scenarios)")
    control: Control = Field(default_factory=Control)
    outputs: Outputs = Field(default_factory=Outputs)

    _source: str = PrivateAttr("<dict>")
    _warnings: list[str] = PrivateAttr(default_factory=list)
    _config_list: tuple[str, ...] | None = PrivateAttr(None)
    _token_tables: dict[str, EmpiricalTokens] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> Scenario:
        ctx = info.context or {}
        self._resolve_paths(Path(ctx.get("base_dir") or Path.cwd()))
        self._check_outputs()
        self._check_limits_and_control()
        self._check_workload()
        if ctx.get("check_configs", True):
            self._check_configs()
        return self

    # -- construction

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "<dict>", base_dir: str | Path | None = None,
                  check_configs: bool = True) -> Scenario:
        """Validate a plain dict (as TOML would give) into a scenario; errors name ``source`` and the key path.

        Tuples, numpy arrays and numpy scalars are accepted as lists and numbers; classes and instances
        (arrival, routing, policy) as they are; relative paths are taken from ``base_dir`` (default: the
        working directory). ``check_configs=False`` skips the check that every configuration exists (for
        tools that only read the layout).
        """
        if not isinstance(d, Mapping):
            raise DcsimInputError(source, type(d).__name__, "a table of sections", problem="not a table")
        try:
            s = cls.model_validate(_plain(d), context={"base_dir": base_dir, "check_configs": check_configs})
        except ValidationError as e:
            raise translate(e, source, Scenario) from None
        s._source = source
        return s

    @property
    def warnings(self) -> list[str]:
        """What validation adjusted and a user should know (each also printed and written to the summary)."""
        return list(self._warnings)

    @property
    def source(self) -> str:
        """Where the scenario came from (a file path or ``"<dict>"``)."""
        return self._source

    def to_dict(self) -> dict[str, Any]:
        """The scenario as plain JSON-able data (paths resolved, defaults filled); ``from_dict`` takes it back.
        A class or instance given from Python is written as its ``"module:Class"`` (an instance's own
        settings are in its ``config()``, see :func:`dcsim.scenario.build.component_configs`)."""
        return self.model_dump(mode="json", exclude_none=True)

    # -- what the engine is built from (see dcsim.scenario.build)

    @property
    def n_servers(self) -> int:
        return self.facility.n_servers

    def server_configs(self) -> list[str]:
        """The configuration of each server, one per server in tree index order."""
        if self._config_list is None:
            self._config_list = tuple(self.facility.configs_in_order())
        return list(self._config_list)

    def build_tree(self) -> Any:
        """A fresh ``networkx.DiGraph`` power tree (see :mod:`dcsim.facility.tree`) with the site's limits."""
        return build.build_tree(self)

    def pools(self) -> list[np.ndarray]:
        """Server indices of each group a pooled stream feeds (``workload.pool``), in tree order."""
        return build.pools(self)

    def token_source(self, config: str | None = None) -> Any:
        """The token-length source for servers running ``config``; None means that configuration's own."""
        return build.token_source(self, config)

    def arrival_process(self, tokens: Any, n_servers: int = 1, rng: np.random.Generator | None = None) -> Any:
        """The configured arrival process for a group of ``n_servers`` servers (see :func:`build.arrival_process`)."""
        return build.arrival_process(self, tokens, n_servers, rng)

    def router(self) -> Any:
        """A fresh router for a pooled stream (a plug-in class is constructed without arguments)."""
        from dcsim.plugins import make_router

        return make_router(self.workload.routing)

    def policy(self) -> CapPolicy | None:
        """A fresh :class:`~dcsim.facility.control.CapPolicy` for ``[control]``, or None for ``"none"``."""
        return self.control.build()

    # -- cross-section checks (run once, at validation)

    def _resolve_paths(self, base: Path) -> None:
        self.facility.resolve_paths(base)
        self.workload.resolve_paths(base)
        self.control.policy = resolve_spec(base, self.control.policy)

    def _check_outputs(self) -> None:
        d = self.simulation.duration_s
        o = self.outputs
        if o.resolutions_s is None:
            o.resolutions_s = [r for r in _DEFAULT_RESOLUTIONS_S if r <= d]
            return
        for i, r in enumerate(o.resolutions_s):
            if not _is_multiple(r, STEP_S):
                raise DcsimInputError(f"outputs.resolutions_s[{i}]", r, f"a multiple of the step ({STEP_S} s) "
                                      f"no longer than the duration ({d:g} s)")
        longer = [r for r in o.resolutions_s if r > d]
        if longer:
            if len(longer) == len(o.resolutions_s):
                raise DcsimInputError("outputs.resolutions_s", o.resolutions_s, f"at least one resolution no longer "
                                      f"than the duration ({d:g} s)", problem="every resolution is longer than the run")
            o.resolutions_s = [r for r in o.resolutions_s if r <= d]
            self._warnings.append(f"outputs.resolutions_s: {', '.join(f'{r:g} s' for r in longer)} dropped: longer "
                                  f"than the duration ({d:g} s)")

    def _check_limits_and_control(self) -> None:
        layout = self.facility.layout()
        nodes = list(dict.fromkeys(["site"] + [e[k] for k in ("row", "rack", "server") for e in layout]))
        for name, value in self.site.limits_w.items():
            if name not in LEVELS and name not in nodes:
                listed = ", ".join(nodes[1:4]) + (f", … ({len(nodes)} nodes)" if len(nodes) > 4 else "")
                raise DcsimInputError(f"site.limits_w.{key(name)}", value,
                                      f"a level ({', '.join(LEVELS)}) or a node of this facility ({listed})",
                                      problem=f"no node named {name!r}")
        c = self.control
        if not _is_multiple(c.interval_s, STEP_S):
            raise DcsimInputError("control.interval_s", c.interval_s, Control.model_fields["interval_s"].description)
        if c.acts and not self.site.limits_w:
            raise DcsimInputError("control.policy", spec_of(c.policy), "'none', or set limits in [site.limits_w]",
                                  problem="no limit to act on")
        if c.acts:
            c.build()  # builds it once: options and plug-ins are checked here

    def _check_workload(self) -> None:
        build.check_workload(self)

    def _check_configs(self) -> None:
        f = self.facility
        where: dict[str, str] = {}
        if f.config is not None:
            where[f.config] = "facility.config"
        for i, m in enumerate(f.mix or []):
            where.setdefault(m.config, f"facility.mix[{i}].config")
        for i, s in enumerate(f.servers or []):
            if s.config is not None:
                where.setdefault(s.config, f"facility.servers[{i}].config")
        for name in dict.fromkeys(self.server_configs()):
            try:
                _check_config(name)
            except DcsimInputError as e:
                raise DcsimInputError(where.get(name, "facility.config"), name, e.allowed,
                                      e.problem or "unknown configuration") from None


def _check_config(name: str) -> None:
    """Raise :class:`DcsimInputError` unless ``name`` is a shipped configuration or an artifact folder."""
    from dcsim.configs import resolve_config_dir

    resolve_config_dir(name)


# --------------------------------------------------------------------------------------------- loading

def load_scenario(path: str | Path, overrides: Sequence[str] = (), check_configs: bool = True) -> Scenario:
    """Read a scenario TOML file, apply ``--set`` overrides (``"key.path=value"``, see
    :func:`~dcsim.scenario.overrides.parse_override`) and validate it. Every problem is one
    :class:`DcsimInputError` naming the file and the key path."""
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise DcsimInputError(where, where, "an existing scenario TOML file", problem="file not found")
    if not path.is_file():
        raise DcsimInputError(where, where, "a scenario TOML file", problem="not a file")
    try:
        raw = tomllib.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise DcsimInputError(where, f"byte {e.start}", "a UTF-8 text file", problem="not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise toml_error(where, path.read_text("utf-8"), e) from None
    if not raw:
        raise DcsimInputError(where, "empty file" if not path.stat().st_size else "no keys", "a scenario with [simulation], [facility] and [workload] sections",
                              problem="empty scenario")
    overridden = []
    for text in overrides:
        keys, value = parse_override(text)
        apply_override(raw, keys, value, Scenario)
        overridden.append(dotted(keys))
    try:
        return Scenario.from_dict(raw, source=where, base_dir=path.resolve().parent, check_configs=check_configs)
    except DcsimInputError as e:
        at = e.where.removeprefix(f"{where}: ")
        hit = [k for k in overridden if at == k or at.startswith((k + ".", k + "["))]
        if not hit:
            raise
        raise DcsimInputError(f"{where} (--set {hit[-1]}): {at}", e.value, e.allowed, e.problem) from None


# --------------------------------------------------------------------------------------------- helpers

def _is_multiple(x: float, step: float) -> bool:
    if not (isinstance(x, (int, float)) and math.isfinite(x / step)):
        return False
    k = round(x / step)
    return k >= 1 and abs(x - k * step) <= 1e-9 * max(1.0, x)


def _plain(obj: Any) -> Any:
    """Python values as TOML would give them: tuples and arrays → lists, numpy scalars → numbers, paths → str."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj
