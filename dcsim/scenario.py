"""A scenario: the hall, its workload, its limits and what to write, read from one TOML file.

``load_scenario("scenarios/default.toml", ["workload.rate_per_s=3"])`` reads the file with
:mod:`tomllib`, applies ``--set`` overrides, and validates everything into a :class:`Scenario`
(pydantic v2, unknown keys refused). Every problem a user can cause becomes one
:class:`~dcsim.errors.DcsimInputError` line naming the file, the key path, the bad value and what is
allowed, e.g. ``scenarios/x.toml: workload.rate_per_s: out of range, got -2.0; allowed: ...``.
Nothing is written by this module.

Sections (see the shipped ``scenarios/*.toml`` for commented examples):

- ``[simulation]`` ``duration_s``, ``step_s`` (0.25: configurations are calibrated at 250 ms), ``seed``.
- ``[facility]`` ``rows × racks_per_row × servers_per_rack`` servers, each running ``config``; or a
  ``[[facility.mix]]`` of ``{config, fraction}`` (see :func:`mix_assignment`); or an explicit
  ``[[facility.servers]]`` list of ``{row, rack, config, count}`` (then the list is the layout).
- ``[site]`` ``p_base_w`` (non-GPU IT power per server), ``pue``, ``[site.limits_w]`` (node or level → W).
- ``[workload]`` the arrival process, token lengths, how streams map to servers, routing.
- ``[control]`` what happens when a limit is exceeded: ``none``, ``breaker``, ``cap`` or a plug-in.
- ``[outputs]`` levels, resolutions, formats, plot, request log.

Relative paths in a file (trace CSVs, token tables, ``file.py:Class`` plug-ins, artifact folders)
are relative to the scenario file's folder; for :meth:`Scenario.from_dict`, to ``base_dir``
(default: the working directory). They are stored resolved (absolute).

How rates are meant (``[workload]``): for ``stream = "independent"`` and ``"shared_intensity"``
the configured rate is **per server** (a shared-intensity hall draw has N times that rate and each
server gets a 1/N thinning of it); for ``"pooled"`` it is **per pool** (rack, row or site,
``pool``), dispatched by ``routing``; for ``arrival = "azure2024_code_day"`` it is the **hall's**
rate whatever the stream: the production service's rate × ``rate_scale``, shared by all servers.
``rate_scale`` multiplies every built-in process's rate (for a trace replay it compresses time).
"""
from __future__ import annotations

import inspect
import json
import math
import re
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import (BaseModel, ConfigDict, Discriminator, Field, PrivateAttr, Tag, ValidationError, ValidationInfo,
                      field_validator, model_validator)

from dcsim.errors import DcsimInputError
from dcsim.plugins import load_plugin, load_router
from dcsim.workload.arrivals import ArrivalProcess, Poisson, RateProfile, TraceReplay
from dcsim.workload.routing import ROUTERS, Router
from dcsim.workload.tokens import (BUILTIN_TOKEN_TABLES, EmpiricalTokens, FixedTokens, LognormalTokens,
                                   TokenSource)

__all__ = ["Scenario", "load_scenario", "parse_override", "mix_assignment", "STEP_S", "ARRIVALS", "STREAMS",
           "ROUTERS", "POLICIES", "LEVELS"]

STEP_S = 0.25
"""The only simulation step for now: calibrated configurations are fitted on 250 ms samples."""

ARRIVALS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "poisson": (("rate_per_s",), ()),
    "rate_profile": (("times_s", "rates_per_s"), ("period_s", "start_s")),
    "diurnal": (("mean_rate_per_s", "amplitude", "peak_hour"), ("start_s",)),
    "minute_counts": (("path",), ("start_s", "wrap")),
    "azure2024_code_day": ((), ("start_s",)),
    "trace_replay": (("path",), ("offset_s", "wrap")),
}
"""Built-in arrivals → (parameters they require, parameters they also read); ``rate_scale`` and
``tokens`` go with every one (a trace replay uses the trace's own token counts)."""

_ARRIVAL_PARAMS = ("rate_per_s", "times_s", "rates_per_s", "period_s", "mean_rate_per_s", "amplitude",
                   "peak_hour", "path", "start_s", "offset_s", "wrap", "params")
STREAMS = ("independent", "shared_intensity", "pooled")
POLICIES = ("none", "breaker", "cap")
LEVELS = ("site", "row", "rack", "server")
_DEFAULT_RESOLUTIONS_S = (0.25, 1.0, 60.0, 900.0)
_DAY_S = 86400.0
_FRACTION_TOL = 1e-6

_PLUGIN = "or a plug-in 'module:Class' / 'path/to/file.py:Class'"


class _Model(BaseModel):
    """Strict, closed models: TOML types as written, unknown keys refused, no NaN or infinity."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


# --------------------------------------------------------------------------------------------- sections

class Simulation(_Model):
    """``[simulation]``: how long, at which step, from which seed."""

    duration_s: float = Field(ge=STEP_S, description=f"a number of seconds ≥ the step ({STEP_S} s)")
    step_s: float = Field(STEP_S, description=f"{STEP_S} (the configurations are calibrated at 250 ms)")
    seed: int = Field(0, ge=0, description="a whole number ≥ 0 (every random draw derives from it)")

    @field_validator("step_s")
    @classmethod
    def _calibrated_step(cls, v: float) -> float:
        if v != STEP_S:
            raise DcsimInputError("simulation.step_s", v, f"{STEP_S} only, for now",
                                  problem="the configurations are calibrated at 250 ms")
        return v


class MixEntry(_Model):
    """One ``[[facility.mix]]`` entry: a configuration and the fraction of the hall's servers that run it."""

    config: str = Field(min_length=1, description="a calibrated configuration name or artifact folder")
    fraction: float = Field(gt=0, le=1, description="a fraction in (0, 1]; the fractions sum to 1")


class ServerEntry(_Model):
    """One ``[[facility.servers]]`` entry: ``count`` servers in rack ``rack`` of row ``row``."""

    row: int = Field(ge=0, description="a row index ≥ 0")
    rack: int = Field(ge=0, description="a rack index ≥ 0 within the row")
    config: str | None = Field(None, min_length=1,
                               description="a calibrated configuration name or artifact folder "
                                           "(default facility.config)")
    count: int = Field(1, ge=1, description="a whole number of servers ≥ 1")


class Facility(_Model):
    """``[facility]``: the hall's layout and which configuration each server runs."""

    rows: int | None = Field(None, ge=1, description="a whole number of rows ≥ 1")
    racks_per_row: int | None = Field(None, ge=1, description="a whole number of racks per row ≥ 1")
    servers_per_rack: int | None = Field(None, ge=1, description="a whole number of servers per rack ≥ 1")
    config: str | None = Field(None, min_length=1,
                               description="a calibrated configuration name (e.g. qwen3-8b_a100_tp1) "
                                           "or artifact folder")
    mix: list[MixEntry] | None = Field(None, min_length=1, description="a list of {config, fraction} tables")
    servers: list[ServerEntry] | None = Field(None, min_length=1,
                                              description="a list of {row, rack, config, count} tables")

    @model_validator(mode="after")
    def _one_layout(self) -> Facility:
        regular = {"rows": self.rows, "racks_per_row": self.racks_per_row, "servers_per_rack": self.servers_per_rack}
        if self.servers is not None:
            for key, v in regular.items():
                if v is not None:
                    raise DcsimInputError(f"facility.{key}", v, "to be left out: [[facility.servers]] sets the layout",
                                          problem="not used with [[facility.servers]]")
            if self.mix is not None:
                raise DcsimInputError("facility.mix", "both mix and servers",
                                      "either [[facility.mix]] or [[facility.servers]]", problem="two layouts")
            for i, s in enumerate(self.servers):
                if s.config is None and self.config is None:
                    raise DcsimInputError(f"facility.servers[{i}].config", _NOTHING,
                                          "a configuration name here or a default facility.config", problem="missing")
            return self
        for key, v in regular.items():
            if v is None:
                raise DcsimInputError(f"facility.{key}", _NOTHING, Facility.model_fields[key].description,
                                      problem="missing key")
        if self.mix is None:
            if self.config is None:
                raise DcsimInputError("facility.config", _NOTHING, "a configuration name for every server, "
                                      "or a [[facility.mix]] of {config, fraction}", problem="missing key")
            return self
        if self.config is not None:
            raise DcsimInputError("facility.config", self.config, "to be left out when [[facility.mix]] is given",
                                  problem="not used with [[facility.mix]]")
        names = [m.config for m in self.mix]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise DcsimInputError(f"facility.mix[{i}].config", name, "each configuration once",
                                      problem="listed twice")
        total = math.fsum(m.fraction for m in self.mix)
        if abs(total - 1.0) > _FRACTION_TOL:
            raise DcsimInputError("facility.mix", round(total, 9), "fractions summing to 1",
                                  problem="fractions do not sum to 1")
        counts = _largest_remainder([m.fraction for m in self.mix], self.n_servers)
        for i, (m, c) in enumerate(zip(self.mix, counts)):
            if c == 0:
                raise DcsimInputError(f"facility.mix[{i}].fraction", m.fraction,
                                      f"a fraction giving at least one of the {self.n_servers} servers",
                                      problem="rounds to no server")
        return self

    @property
    def n_servers(self) -> int:
        if self.servers is not None:
            return sum(s.count for s in self.servers)
        return self.rows * self.racks_per_row * self.servers_per_rack

    def layout(self) -> list[dict[str, str]]:
        """One ``{row, rack, server, config}`` per server, in tree index order (row by row, rack by rack)."""
        if self.servers is None:
            names = self.configs_in_order()
            out = []
            for i in range(self.rows):
                for j in range(self.racks_per_row):
                    for k in range(self.servers_per_rack):
                        out.append({"row": f"row{i}", "rack": f"row{i}/rack{j}", "server": f"row{i}/rack{j}/srv{k}",
                                    "config": names[len(out)]})
            return out
        out, in_rack = [], {}
        for s in sorted(self.servers, key=lambda s: (s.row, s.rack)):  # stable: list order within a rack
            for _ in range(s.count):
                k = in_rack.get((s.row, s.rack), 0)
                in_rack[(s.row, s.rack)] = k + 1
                out.append({"row": f"row{s.row}", "rack": f"row{s.row}/rack{s.rack}",
                            "server": f"row{s.row}/rack{s.rack}/srv{k}", "config": s.config or self.config})
        return out

    def configs_in_order(self) -> list[str]:
        """The configuration of every server, in tree index order."""
        if self.servers is not None:
            return [e["config"] for e in self.layout()]
        if self.mix is None:
            return [self.config] * self.n_servers
        pick = mix_assignment([m.fraction for m in self.mix], self.n_servers)
        return [self.mix[i].config for i in pick]


class Site(_Model):
    """``[site]``: non-GPU power, PUE and the limits of the power tree."""

    p_base_w: float = Field(1000.0, ge=0, description="a non-GPU IT power per server in watts ≥ 0")
    pue: float = Field(1.3, ge=1, description="a power usage effectiveness ≥ 1")
    limits_w: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict,
        description="a table of node name (row0, \"row0/rack1\", …) or level (site, row, rack, server) → watts > 0")


class Lognormal(_Model):
    median_in: float = Field(gt=0, description="a median prompt length in tokens > 0")
    sigma_in: float = Field(ge=0, description="a log-space standard deviation ≥ 0")
    median_out: float = Field(gt=0, description="a median output length in tokens > 0")
    sigma_out: float = Field(ge=0, description="a log-space standard deviation ≥ 0")


class Fixed(_Model):
    n_in: int = Field(ge=1, description="a whole number of prompt tokens ≥ 1")
    n_out: int = Field(ge=1, description="a whole number of output tokens ≥ 1")


class TokensTable(_Model):
    """``tokens = {lognormal = {...}}`` or ``tokens = {fixed = {...}}``: exactly one of the two."""

    lognormal: Lognormal | None = Field(None, description="{median_in, sigma_in, median_out, sigma_out}")
    fixed: Fixed | None = Field(None, description="{n_in, n_out}")

    @model_validator(mode="after")
    def _exactly_one(self) -> TokensTable:
        if (self.lognormal is None) == (self.fixed is None):
            raise DcsimInputError("workload.tokens", "both or neither", "exactly one of {lognormal = {...}} "
                                  "or {fixed = {...}}")
        return self


_TOKENS_ALLOWED = (f"'config' (the configuration's own training lengths), "
                   f"{', '.join(repr(n) for n in BUILTIN_TOKEN_TABLES)}, "
                   "{lognormal = {median_in, sigma_in, median_out, sigma_out}}, {fixed = {n_in, n_out}} "
                   "or the path of a CSV of n_in, n_out pairs")


def _tokens_choice(v: Any) -> str:
    return "TokensTable" if isinstance(v, (Mapping, TokensTable)) else "str"


_TokensSpec = Annotated[Union[Annotated[str, Field(min_length=1), Tag("str")],
                              Annotated[TokensTable, Tag("TokensTable")]], Discriminator(_tokens_choice)]


class Workload(_Model):
    """``[workload]``: where requests come from and how they reach the servers.

    ``arrival`` and the parameters it reads (a parameter of another arrival is refused):

    - ``poisson``: ``rate_per_s``;
    - ``rate_profile``: ``times_s``, ``rates_per_s`` (piecewise constant), optional ``period_s``, ``start_s``;
    - ``diurnal``: ``mean_rate_per_s``, ``amplitude``, ``peak_hour``, optional ``start_s``;
    - ``minute_counts``: ``path`` (a per-minute count CSV), optional ``start_s``, ``wrap``;
    - ``azure2024_code_day``: the shipped production day, optional ``start_s``; the hall's rate;
    - ``trace_replay``: ``path`` (a request trace CSV), optional ``offset_s``, ``wrap``; its own tokens;
    - ``"module:Class"`` / ``"file.py:Class"``: ``params`` as keyword arguments (plus ``tokens`` and
      ``rate_scale`` when its ``__init__`` takes them).

    ``stream``: ``independent`` (each server its own draw, rate per server), ``shared_intensity``
    (one hall draw at N × the rate, each request to a random server), ``pooled`` (one draw per
    ``pool`` at the configured rate, dispatched by ``routing``; ``routing`` and ``pool`` are ignored
    otherwise). ``start_s = "random"`` draws each process's start in its period (the per-server
    random-offset replay, with ``independent``).
    """

    arrival: str = Field("poisson", min_length=1,
                         description=f"one of {', '.join(ARRIVALS)} {_PLUGIN} (a subclass of ArrivalProcess)")
    rate_per_s: float | None = Field(None, ge=0, description="a rate ≥ 0 requests per second")
    times_s: list[Annotated[float, Field(ge=0)]] | None = Field(
        None, min_length=1, description="piece start times in seconds, from 0, increasing")
    rates_per_s: list[Annotated[float, Field(ge=0)]] | None = Field(
        None, min_length=1, description="one rate ≥ 0 requests per second per piece")
    period_s: float | None = Field(None, gt=0, description="a repeat period in seconds > the last piece start")
    mean_rate_per_s: float | None = Field(None, ge=0, description="a mean rate ≥ 0 requests per second")
    amplitude: float | None = Field(None, ge=0, lt=1, description="a relative amplitude in [0, 1)")
    peak_hour: float | None = Field(None, ge=0, lt=24, description="an hour of day in [0, 24)")
    path: str | None = Field(None, min_length=1, description="the path of a CSV file")
    start_s: Any = Field(0.0, description="seconds ≥ 0 into the profile at scenario time 0, or \"random\" "
                                          "(each draw starts at a uniformly random point of the period)")
    offset_s: float | None = Field(None, ge=0, description="trace seconds ≥ 0 (left out: random for each draw)")
    wrap: bool = Field(True, description="true (repeat the file end to end) or false")
    rate_scale: float = Field(1.0, gt=0, description="a factor > 0 on the rate")
    tokens: _TokensSpec = Field("config", description=_TOKENS_ALLOWED)
    stream: Literal["independent", "shared_intensity", "pooled"] = Field(
        "independent", description="one of independent, shared_intensity, pooled")
    routing: str = Field("random", min_length=1,
                         description=f"one of {', '.join(ROUTERS)} {_PLUGIN} (a subclass of Router)")
    pool: Literal["rack", "row", "site"] = Field("rack", description="one of rack, row, site")
    params: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of a plug-in arrival class")

    @field_validator("tokens", mode="before")
    @classmethod
    def _tokens_shape(cls, v: Any) -> Any:
        if not isinstance(v, (str, Mapping)):
            raise DcsimInputError("workload.tokens", v, _TOKENS_ALLOWED, problem="wrong type")
        return v

    @field_validator("start_s")
    @classmethod
    def _start(cls, v: Any) -> Any:
        if v == "random":
            return v
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise DcsimInputError("workload.start_s", v, Workload.model_fields["start_s"].description)
        return float(v)

    @model_validator(mode="after")
    def _arrival_parameters(self) -> Workload:
        if self.arrival in ARRIVALS:
            required, optional = ARRIVALS[self.arrival]
            reads = set(required) | set(optional)
            for key in required:
                if getattr(self, key) is None:
                    raise DcsimInputError(f"workload.{key}", _NOTHING, Workload.model_fields[key].description,
                                          problem=f"missing key (arrival {self.arrival!r} needs it)")
        elif ":" in self.arrival:
            reads = {"params"}
        else:
            raise DcsimInputError("workload.arrival", self.arrival, Workload.model_fields["arrival"].description,
                                  problem="unknown arrival")
        defaults = {"start_s": 0.0, "wrap": True, "params": {}}
        for key in _ARRIVAL_PARAMS:
            if key not in reads and getattr(self, key) != defaults.get(key):
                uses = ", ".join(sorted(reads | {"rate_scale", "tokens"})) if self.arrival in ARRIVALS else \
                    "params (its keyword arguments)"
                raise DcsimInputError(f"workload.{key}", _shown(getattr(self, key)),
                                      f"for arrival {self.arrival!r}: {uses}", problem="not used by this arrival")
        if self.arrival == "trace_replay" and self.tokens != "config":
            raise DcsimInputError("workload.tokens", _shown(self.tokens), "to be left out: a trace replay uses the "
                                  "trace's own token counts", problem="not used by arrival 'trace_replay'")
        if self.start_s == "random":
            if self.arrival == "rate_profile" and self.period_s is None:
                raise DcsimInputError("workload.start_s", "random", "a number, or set workload.period_s so the "
                                      "profile repeats", problem="a random start needs a periodic profile")
            if self.arrival == "minute_counts" and not self.wrap:
                raise DcsimInputError("workload.start_s", "random", "a number, or wrap = true",
                                      problem="a random start needs a repeating file")
        if ":" not in self.routing and self.routing not in ROUTERS:
            raise DcsimInputError("workload.routing", self.routing, Workload.model_fields["routing"].description,
                                  problem="unknown router")
        return self


class Control(_Model):
    """``[control]``: what happens when a node's power exceeds its limit (``site.limits_w``).

    ``breaker``: a node above its limit for ``trip_time_s`` trips (it and everything below it go
    off) and is restored ``restart_s`` later. ``cap``: the servers under a node over its limit are
    capped so the node stays under ``cap_fraction`` × its limit. ``params`` go to the built-in's
    extra options (cap: ``release_margin``, ``release_hold_s``) or to a plug-in's ``__init__``; see
    :mod:`dcsim.facility.control`. Timings and fractions of the other policies are ignored, so a
    study can switch policy with ``--set control.policy=none``.
    """

    policy: str = Field("none", min_length=1, description=f"one of {', '.join(POLICIES)} {_PLUGIN}")
    interval_s: float = Field(1.0, gt=0,
                              description=f"a control period in seconds, a multiple of the step ({STEP_S} s)")
    trip_time_s: float = Field(5.0, ge=0, description="seconds ≥ 0 a node may stay over its limit before "
                                                      "its breaker trips")
    restart_s: float = Field(300.0, ge=0, description="seconds ≥ 0 a tripped node stays off")
    cap_fraction: float = Field(0.9, gt=0, le=1, description="the cap as a fraction of the node limit, in (0, 1]")
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="extra options of the policy (keyword arguments of a plug-in)")

    @model_validator(mode="after")
    def _known_policy(self) -> Control:
        if self.policy not in POLICIES and ":" not in self.policy:
            raise DcsimInputError("control.policy", self.policy, Control.model_fields["policy"].description,
                                  problem="unknown policy")
        return self


class Outputs(_Model):
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

class Scenario(_Model):
    """A validated scenario. Build it with :func:`load_scenario` or :meth:`from_dict`.

    The helpers below are what the engine calls: :meth:`server_configs`, :meth:`build_tree`,
    :meth:`pools`, :meth:`token_source`, :meth:`arrival_process`, :meth:`router`, :meth:`policy`,
    :meth:`to_dict`.
    """

    simulation: Simulation
    facility: Facility
    site: Site = Field(default_factory=Site)
    workload: Workload
    control: Control = Field(default_factory=Control)
    outputs: Outputs = Field(default_factory=Outputs)

    _source: str = PrivateAttr("<dict>")
    _config_list: tuple[str, ...] | None = PrivateAttr(None)
    _token_tables: dict[str, EmpiricalTokens] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> Scenario:
        ctx = info.context or {}
        base = Path(ctx.get("base_dir") or Path.cwd())
        self._resolve_paths(base)
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

        Tuples, numpy arrays and numpy scalars are accepted as lists and numbers; relative paths are
        taken from ``base_dir`` (default: the working directory). ``check_configs=False`` skips the
        check that every configuration exists (for tools that only read the layout).
        """
        if not isinstance(d, Mapping):
            raise DcsimInputError(source, type(d).__name__, "a table of sections", problem="not a table")
        try:
            s = cls.model_validate(_plain(d), context={"base_dir": base_dir, "check_configs": check_configs})
        except ValidationError as e:
            raise _translate(e, source) from None
        s._source = source
        return s

    @property
    def source(self) -> str:
        """Where the scenario came from (a file path or ``"<dict>"``)."""
        return self._source

    def to_dict(self) -> dict[str, Any]:
        """The scenario as plain JSON-able data (paths resolved, defaults filled); ``from_dict`` takes it back."""
        return self.model_dump(mode="json", exclude_none=True)

    # -- facility

    @property
    def n_servers(self) -> int:
        return self.facility.n_servers

    def server_configs(self) -> list[str]:
        """The configuration of each server, one per server in tree index order."""
        return list(self._configs)

    @property
    def _configs(self) -> tuple[str, ...]:
        if self._config_list is None:
            self._config_list = tuple(self.facility.configs_in_order())
        return self._config_list

    def build_tree(self) -> Any:
        """A fresh ``networkx.DiGraph`` power tree (see :mod:`dcsim.facility.tree`) with the site's limits."""
        from dcsim.facility.tree import tree_from_layout

        return tree_from_layout(self.facility.layout(), self.site.limits_w or None)

    def pools(self) -> list[np.ndarray]:
        """Server indices of each group a pooled stream feeds (``workload.pool``), in tree order."""
        from dcsim.facility.tree import nodes_at, server_indices_under

        tree = self.build_tree()
        if self.workload.pool == "site":
            return [np.arange(self.n_servers)]
        return [server_indices_under(tree, n) for n in nodes_at(tree, self.workload.pool)]

    # -- workload

    def token_source(self, config: str | None = None) -> TokenSource | None:
        """The token-length source for servers running ``config``; None means "use that configuration's own
        training quantiles" (``tokens = "config"``, which the engine loads with the configuration)."""
        spec = self.workload.tokens
        if isinstance(spec, TokensTable):
            if spec.lognormal is not None:
                return LognormalTokens(**spec.lognormal.model_dump())
            return FixedTokens(**spec.fixed.model_dump())
        if spec == "config":
            return None
        if spec in BUILTIN_TOKEN_TABLES:
            return self._table(spec)
        return self._table(spec, path=True)

    def _table(self, name: str, path: bool = False) -> EmpiricalTokens:
        cache = self._token_tables
        if name not in cache:
            cache[name] = EmpiricalTokens.from_csv(name) if path else EmpiricalTokens.builtin(name)
        return cache[name]

    def rate_factor(self, n_servers: int = 1) -> float:
        """What the configured rate is multiplied by for a process that feeds ``n_servers`` servers.

        Per-server rates (independent, shared intensity): ``n_servers``. Pooled: 1 (the rate is the
        pool's). The Azure 2024 day is the hall's rate: ``n_servers / hall servers``.
        """
        if self.workload.arrival == "azure2024_code_day":
            return n_servers / self.n_servers
        if self.workload.stream == "pooled":
            return 1.0
        return float(n_servers)

    def arrival_process(self, tokens: TokenSource | None, n_servers: int = 1,
                        rng: np.random.Generator | None = None) -> ArrivalProcess:
        """The configured arrival process for a group of ``n_servers`` servers, drawing lengths from ``tokens``.

        Call it with ``n_servers=1`` for each server of an independent stream, with the hall's
        server count for a shared-intensity draw (then :func:`~dcsim.workload.arrivals.split_shared`),
        with the pool's size for a pooled stream; the rate is scaled by :meth:`rate_factor`.
        ``rng`` is needed when ``start_s = "random"``: the start is drawn from it.
        """
        w = self.workload
        scale = w.rate_scale * self.rate_factor(n_servers)
        start = 0.0 if w.start_s == "random" else w.start_s
        if w.arrival == "poisson":
            proc: ArrivalProcess = Poisson(w.rate_per_s, tokens, rate_scale=scale)
        elif w.arrival == "rate_profile":
            proc = RateProfile.table(w.times_s, w.rates_per_s, tokens, period_s=w.period_s, start_s=start,
                                     rate_scale=scale)
        elif w.arrival == "diurnal":
            proc = RateProfile.diurnal(w.mean_rate_per_s, w.amplitude, w.peak_hour, tokens, start_s=start,
                                       rate_scale=scale)
        elif w.arrival == "minute_counts":
            proc = RateProfile.from_minute_counts(w.path, tokens, start_s=start, rate_scale=scale, wrap=w.wrap)
        elif w.arrival == "azure2024_code_day":
            proc = RateProfile.builtin_azure2024_code_day(tokens, start_s=start, rate_scale=scale)
        elif w.arrival == "trace_replay":
            proc = TraceReplay(w.path, offset_s=w.offset_s, wrap=w.wrap, rate_scale=scale)
        else:
            proc = _make_plugin(_arrival_class(w.arrival), w.params, tokens, scale)
        if w.start_s == "random":
            if rng is None:
                raise DcsimInputError("rng", None, "a numpy Generator (workload.start_s is \"random\")")
            period = _DAY_S if proc.kind == "diurnal" else proc.period_s
            proc.start_s = float(rng.uniform(0.0, period))
        return proc

    def policy(self) -> Any:
        """A fresh :class:`~dcsim.facility.control.CapPolicy` for ``[control]``, or None for ``"none"``."""
        from dcsim.plugins import make_policy

        c = self.control
        return make_policy(c.policy, trip_time_s=c.trip_time_s, restart_s=c.restart_s, cap_fraction=c.cap_fraction,
                           params=c.params)

    def router(self) -> Router:
        """A fresh router for a pooled stream (a plug-in class is constructed without arguments)."""
        spec = self.workload.routing
        cls = ROUTERS[spec] if spec in ROUTERS else load_router(spec, where="workload.routing")
        return cls()

    # -- cross-section checks (run once, at validation)

    def _resolve_paths(self, base: Path) -> None:
        w, f = self.workload, self.facility
        if w.path is not None:
            w.path = str(_resolve(base, w.path))
        if isinstance(w.tokens, str) and w.tokens != "config" and w.tokens not in BUILTIN_TOKEN_TABLES:
            w.tokens = str(_resolve(base, w.tokens))
        w.arrival = _resolve_plugin(base, w.arrival)
        w.routing = _resolve_plugin(base, w.routing)
        self.control.policy = _resolve_plugin(base, self.control.policy)
        if f.config is not None and _looks_like_path(f.config):
            f.config = str(_resolve(base, f.config))
        for entry in (f.mix or []) + (f.servers or []):
            if entry.config is not None and _looks_like_path(entry.config):
                entry.config = str(_resolve(base, entry.config))

    def _check_outputs(self) -> None:
        d = self.simulation.duration_s
        o = self.outputs
        if o.resolutions_s is None:
            o.resolutions_s = [r for r in _DEFAULT_RESOLUTIONS_S if r <= d]
            return
        for i, r in enumerate(o.resolutions_s):
            if not _is_multiple(r, STEP_S) or r > d:
                raise DcsimInputError(f"outputs.resolutions_s[{i}]", r, f"a multiple of the step ({STEP_S} s) "
                                      f"no longer than the duration ({d:g} s)")

    def _check_limits_and_control(self) -> None:
        layout = self.facility.layout()
        nodes = list(dict.fromkeys(["site"] + [e[k] for k in ("row", "rack", "server") for e in layout]))
        for key, value in self.site.limits_w.items():
            if key not in LEVELS and key not in nodes:
                shown = ", ".join(nodes[1:4]) + (f", … ({len(nodes)} nodes)" if len(nodes) > 4 else "")
                raise DcsimInputError(f"site.limits_w.{_key(key)}", value,
                                      f"a level ({', '.join(LEVELS)}) or a node of this facility ({shown})",
                                      problem=f"no node named {key!r}")
        c = self.control
        if not _is_multiple(c.interval_s, STEP_S):
            raise DcsimInputError("control.interval_s", c.interval_s, Control.model_fields["interval_s"].description)
        if c.policy != "none" and not self.site.limits_w:
            raise DcsimInputError("control.policy", c.policy, "'none', or set limits in [site.limits_w]",
                                  problem="no limit to act on")
        if c.policy != "none":
            self.policy()  # builds it once: options and plug-ins are checked here

    def _check_workload(self) -> None:
        w = self.workload
        if ":" in w.routing and w.routing not in ROUTERS:
            load_router(w.routing, where="workload.routing")
        if isinstance(w.tokens, str) and w.tokens != "config" and w.tokens not in BUILTIN_TOKEN_TABLES:
            try:
                self.token_source()
            except DcsimInputError as e:
                raise DcsimInputError(f"workload.tokens → {e.where}", e.value, e.allowed, e.problem) from None
        if w.tokens == "config" and w.stream != "independent" and w.arrival != "trace_replay":
            groups = [np.arange(self.n_servers)] if w.stream == "shared_intensity" else self.pools()
            configs = self._configs
            for g in groups:
                mixed = sorted({configs[i] for i in g})
                if len(mixed) > 1:
                    raise DcsimInputError("workload.tokens", "config", "a token source shared by the group: "
                                          + ", ".join(repr(n) for n in BUILTIN_TOKEN_TABLES) + ", a table or a CSV",
                                          problem=f"one {w.stream} stream feeds servers of {len(mixed)} "
                                                  f"configurations ({', '.join(mixed)})")
        n = 1 if w.stream == "independent" else self.n_servers  # the largest group a process may feed
        try:
            self.arrival_process(FixedTokens(1, 1), n_servers=n, rng=np.random.default_rng(0))
        except DcsimInputError as e:
            raise DcsimInputError(_workload_where(e.where, w), e.value, e.allowed, e.problem) from None

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
        for name in dict.fromkeys(self._configs):
            try:
                _check_config(name)
            except DcsimInputError as e:
                raise DcsimInputError(where.get(name, "facility.config"), name, e.allowed,
                                      e.problem or "unknown configuration") from None


def _check_config(name: str) -> None:
    """Raise :class:`DcsimInputError` unless ``name`` is a shipped configuration or an artifact folder."""
    from dcsim.power.configs import resolve_config_dir

    resolve_config_dir(name)


# --------------------------------------------------------------------------------------------- loading

def load_scenario(path: str | Path, overrides: Sequence[str] = (), check_configs: bool = True) -> Scenario:
    """Read a scenario TOML file, apply ``--set`` overrides (``"key.path=value"``, see :func:`parse_override`)
    and validate it. Every problem is one :class:`DcsimInputError` naming the file and the key path."""
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
        raise _toml_error(where, path.read_text("utf-8"), e) from None
    if not raw:
        raise DcsimInputError(where, "empty file", "a scenario with [simulation], [facility] and [workload] sections",
                              problem="empty scenario")
    overridden = []
    for text in overrides:
        keys, value = parse_override(text)
        _apply_override(raw, keys, value)
        overridden.append(_dotted(keys))
    try:
        return Scenario.from_dict(raw, source=where, base_dir=path.resolve().parent, check_configs=check_configs)
    except DcsimInputError as e:
        key = e.where.removeprefix(f"{where}: ")
        hit = [k for k in overridden if key == k or key.startswith((k + ".", k + "["))]
        if not hit:
            raise
        raise DcsimInputError(f"{where} (--set {hit[-1]}): {key}", e.value, e.allowed, e.problem) from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"workload.rate_per_s=3"`` → ``(["workload", "rate_per_s"], 3)``.

    The value is read as a TOML value when it is one (numbers, booleans, quoted strings, arrays,
    inline tables), else taken as a bare string (``workload.arrival=poisson``). Key segments
    follow TOML dotted keys: quote names with ``/``, e.g. ``site.limits_w."row0/rack1"=30e3``.
    """
    allowed = "key.path=value, e.g. workload.rate_per_s=3 or site.limits_w.\"row0/rack1\"=30000"
    if not isinstance(text, str) or "=" not in text:
        raise DcsimInputError("--set", text, allowed, problem="no '='")
    key, raw = (s.strip() for s in text.split("=", 1))
    try:
        keys = _key_path(tomllib.loads(f"{key} = 0"))
    except tomllib.TOMLDecodeError:
        raise DcsimInputError("--set", text, allowed, problem="malformed key path") from None
    for doc in (f"{key} = {raw}", f"{key} = {json.dumps(raw)}"):
        try:
            parsed = tomllib.loads(doc)
            break
        except tomllib.TOMLDecodeError:
            continue
    else:  # pragma: no cover - a JSON string is always a TOML string
        raise DcsimInputError("--set", text, allowed, problem="unreadable value")
    value: Any = parsed
    for k in keys:
        value = value[k]
    return keys, value


def _key_path(d: dict) -> list[str]:
    keys = []
    while isinstance(d, dict):
        (k, d), = d.items()
        keys.append(k)
    return keys


def _apply_override(raw: dict, keys: list[str], value: Any) -> None:
    """Set ``raw[k0][k1]...`` to ``value`` after checking the path against the scenario's models."""
    ann: Any = Scenario
    for depth, k in enumerate(keys):
        model = _model_of(ann)
        if model is None:
            if _free_table(ann):  # a table of free keys (limits_w, params, tokens)
                ann = Any
                continue
            shown = ".".join(_key(x) for x in keys[:depth])
            raise DcsimInputError(f"--set {_dotted(keys)}", value, f"a key path ending at {shown}",
                                  problem=f"{shown} takes a value, not a table")
        if k not in model.model_fields:
            raise DcsimInputError(f"--set {_dotted(keys)}", value, _keys_allowed(model, keys[:depth]),
                                  problem="unknown key")
        ann = model.model_fields[k].annotation
    node = raw
    for k in keys[:-1]:
        if not isinstance(node.get(k), dict):
            node[k] = {}
        node = node[k]
    node[keys[-1]] = value


# --------------------------------------------------------------------------------------------- errors

class _Nothing:
    def __repr__(self) -> str:
        return "nothing"


_NOTHING = _Nothing()

_PROBLEMS = {"missing": "missing key", "extra_forbidden": "unknown key", "literal_error": "not one of the choices",
             "greater_than": "out of range", "greater_than_equal": "out of range", "less_than": "out of range",
             "less_than_equal": "out of range", "finite_number": "not a finite number",
             "too_short": "too few entries", "string_too_short": "empty"}


def _translate(err: ValidationError, source: str) -> DcsimInputError:
    """The first problem of a pydantic error as one line: file, key path, value, what is allowed."""
    errors = err.errors(include_url=False)
    e = errors[0]
    more = f" (first of {len(errors)} problems)" if len(errors) > 1 else ""
    inner = (e.get("ctx") or {}).get("error")
    if isinstance(inner, DcsimInputError):
        problem = (inner.problem or "bad value") + more if more else inner.problem
        return DcsimInputError(f"{source}: {inner.where}", inner.value, inner.allowed, problem)
    loc = _strip_tags(e["loc"])
    field, model = _field_at(loc)
    kind = e["type"]
    if kind == "extra_forbidden":
        allowed = _keys_allowed(model, [p for p in loc[:-1]])
        return DcsimInputError(f"{source}: {_dotted(loc)}", _shown(e["input"]), allowed, "unknown key" + more)
    if kind == "missing":
        value: Any = _NOTHING
    else:
        value = _shown(e["input"])
    problem = _PROBLEMS.get(kind) or ("wrong type" if kind.endswith("_type")
                                      else e["msg"].removeprefix("Value error, "))
    allowed = field.description if field is not None and field.description else e["msg"]
    return DcsimInputError(f"{source}: {_dotted(loc)}", value, allowed, problem + more)


def _strip_tags(loc: tuple) -> tuple:
    """Drop pydantic's union-member tags (``'str'``, ``'TokensTable'``, ...) from an error location."""
    out, ann = [], Scenario
    for part in loc:
        ann_u = _unwrap(ann)
        if _is_union(ann_u):
            ann = _union_member(ann_u, part)
            continue
        out.append(part)
        ann = _step(ann_u, part)
    return tuple(out)


def _field_at(loc: tuple) -> tuple[Any, type[BaseModel] | None]:
    """The pydantic FieldInfo at a location (the list or table field for its items) and the model holding it."""
    ann: Any = Scenario
    field, model = None, None
    for part in loc:
        u = _unwrap(ann)
        if _is_union(u):
            u = _unwrap(_union_member(u, None))
        m = _model_of(u)
        if m is not None and isinstance(part, str):
            model = m
            if part not in m.model_fields:
                return None, m
            field = m.model_fields[part]
            ann = field.annotation
        else:
            ann = _step(u, part)
    return field, model


def _step(ann: Any, part: Any) -> Any:
    origin = typing.get_origin(ann)
    if origin is list and isinstance(part, int):
        return typing.get_args(ann)[0]
    if origin is dict:
        return typing.get_args(ann)[1]
    m = _model_of(ann)
    if m is not None and isinstance(part, str) and part in m.model_fields:
        return m.model_fields[part].annotation
    return Any


def _unwrap(ann: Any) -> Any:
    """Strip ``Annotated`` and ``X | None``."""
    while True:
        if typing.get_origin(ann) is Annotated:
            ann = typing.get_args(ann)[0]
            continue
        if _is_union(ann, any_size=True):
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            if len(args) == 1:
                ann = args[0]
                continue
        return ann


def _is_union(ann: Any, any_size: bool = False) -> bool:
    if typing.get_origin(ann) not in (Union, types.UnionType):
        return False
    return any_size or len([a for a in typing.get_args(ann) if a is not type(None)]) > 1


def _union_member(ann: Any, tag: Any) -> Any:
    members = [a for a in typing.get_args(ann) if a is not type(None)]
    for a in members:
        m = _model_of(_unwrap(a))
        if m is not None and (tag is None or tag == m.__name__):
            return a
    return members[0]


def _model_of(ann: Any) -> type[BaseModel] | None:
    ann = _unwrap(ann)
    if _is_union(ann):
        ann = _unwrap(_union_member(ann, None))
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def _free_table(ann: Any) -> bool:
    u = _unwrap(ann)
    return u is Any or typing.get_origin(u) is dict or _is_union(u)


def _keys_allowed(model: type[BaseModel] | None, prefix: Sequence[Any]) -> str:
    if model is None:
        return "a key the scenario defines"
    names = ", ".join(model.model_fields)
    if not prefix:
        return f"the sections {names}"
    section = _dotted([p for p in prefix if isinstance(p, str)])
    brackets = f"[[{section}]]" if any(isinstance(p, int) for p in prefix) else f"[{section}]"
    return f"the keys of {brackets}: {names}"


def _dotted(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (("." if out else "") + _key(str(part)))
    return out


def _key(name: str) -> str:
    """A TOML key as written: bare when it can be, else quoted (``"row0/rack1"``)."""
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def _shown(value: Any) -> Any:
    if isinstance(value, BaseModel):
        value = value.model_dump(exclude_none=True)
    text = repr(value)
    return value if len(text) <= 120 else text[:117] + "..."


def _toml_error(where: str, text: str, e: tomllib.TOMLDecodeError) -> DcsimInputError:
    msg = str(e)
    m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
    reason = re.sub(r"\s*\(at .*\)$", "", msg)
    if m is None:
        return DcsimInputError(where, "end of file", "valid TOML (https://toml.io)",
                               problem=f"malformed TOML: {reason}")
    line, col = int(m.group(1)), int(m.group(2))
    lines = text.splitlines()
    shown = lines[line - 1].strip() if 0 < line <= len(lines) else ""
    return DcsimInputError(f"{where}, line {line}, column {col}", shown, "valid TOML (https://toml.io)",
                           problem=f"malformed TOML: {reason}")


def _workload_where(where: str, w: Workload) -> str:
    """Key path for an error raised by a workload class (it names its own parameter or the file)."""
    root = re.split(r"[\[:. ]", where, maxsplit=1)[0]
    if where.startswith(("workload.", "simulation.")):
        return where
    if root in Workload.model_fields:
        return f"workload.{where}"
    if root in ("duration_s",):
        return f"simulation.{where}"
    if w.path is not None and where.startswith(w.path):
        return f"workload.path → {where}"
    return f"workload.arrival → {where}"


# --------------------------------------------------------------------------------------------- mixes

def _largest_remainder(fractions: Sequence[float], n: int) -> np.ndarray:
    """Whole counts summing to ``n``, each within 1 of ``fraction·n`` (Hamilton's method; ties to the earlier)."""
    f = np.asarray(fractions, dtype=np.float64)
    f = f / f.sum()
    quota = f * n
    counts = np.floor(quota).astype(np.int64)
    left = n - int(counts.sum())
    order = np.argsort(-(quota - counts), kind="stable")
    counts[order[:left]] += 1
    return counts


def mix_assignment(fractions: Sequence[float], n_servers: int) -> np.ndarray:
    """Which mix entry each of ``n_servers`` servers runs, deterministically and interleaved.

    Counts are ``fraction × n_servers`` rounded by largest remainder (so they sum to the hall). The
    entries are then spread evenly through the server index order, which runs row by row and rack
    by rack: server ``p`` takes the entry furthest behind its share ``(p+1)·count/n`` (ties to the
    earlier entry). Every run of consecutive servers, and so every rack and row, holds close to
    the hall's proportions, instead of one configuration per block of racks.

    >>> mix_assignment([0.5, 0.25, 0.25], 8).tolist()
    [0, 1, 2, 0, 0, 1, 2, 0]
    """
    counts = _largest_remainder(fractions, n_servers)
    assigned = np.zeros_like(counts)
    out = np.empty(n_servers, dtype=np.int64)
    for p in range(n_servers):
        deficit = (p + 1) * counts - n_servers * assigned  # exact integers: no float ties
        c = int(np.argmax(deficit))
        out[p] = c
        assigned[c] += 1
    return out


# --------------------------------------------------------------------------------------------- plug-ins

def _looks_like_path(name: str) -> bool:
    return "/" in name or "\\" in name or name.startswith(".") or name.startswith("~")


def _resolve(base: Path, name: str) -> Path:
    p = Path(name).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _resolve_plugin(base: Path, spec: str) -> str:
    """``"rel/file.py:Class"`` → absolute file path; other specs unchanged."""
    if ":" not in spec:
        return spec
    module, cls = spec.rsplit(":", 1)
    if not module.endswith(".py"):
        return spec
    return f"{_resolve(base, module)}:{cls}"


def _arrival_class(spec: str) -> type[ArrivalProcess]:
    return load_plugin(spec, ArrivalProcess, where="workload.arrival")


def _make_plugin(cls: type[ArrivalProcess], params: dict[str, Any], tokens: TokenSource | None,
                 scale: float) -> ArrivalProcess:
    """Construct a plug-in arrival: ``params`` as keywords, plus ``tokens`` and ``rate_scale`` when its
    ``__init__`` takes them. A class without ``rate_scale`` is refused when the rate must be scaled."""
    spec = f"{cls.__module__}:{cls.__qualname__}"
    sig = inspect.signature(cls)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    kwargs = dict(params)
    if takes_any or "tokens" in sig.parameters:
        kwargs.setdefault("tokens", tokens)
    if takes_any or "rate_scale" in sig.parameters:
        kwargs["rate_scale"] = scale
    elif not math.isclose(scale, 1.0):
        raise DcsimInputError("workload.arrival", spec, "a class whose __init__ takes rate_scale",
                              problem=f"its rate must be scaled by {scale:g} (rate_scale and stream)")
    try:
        sig.bind(**kwargs)
    except TypeError as e:
        raise DcsimInputError("workload.params", params, f"the keyword arguments of {spec}{sig}",
                              problem=str(e)) from None
    try:
        return cls(**kwargs)
    except DcsimInputError as e:
        raise DcsimInputError(f"workload.params → {e.where}", e.value, e.allowed, e.problem) from None
    except Exception as e:
        raise DcsimInputError("workload.params", params, f"the keyword arguments of {spec}{sig}",
                              problem=f"{type(e).__name__}: {e}") from None


# --------------------------------------------------------------------------------------------- helpers

def _is_multiple(x: float, step: float) -> bool:
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
