"""``[workload]``: where requests come from and how they reach the servers; one small model per arrival kind.

The section stays flat in TOML; its ``arrival`` key picks the model it is read as (a pydantic tagged
union), each with the parameters that arrival reads and a :meth:`~_Arrival.build` that makes the
:class:`~dcsim.workload.arrivals.ArrivalProcess`:

- ``poisson``: ``rate_per_s``;
- ``rate_profile``: ``times_s``, ``rates_per_s`` (piecewise constant), optional ``period_s``, ``start_s``;
- ``diurnal``: ``mean_rate_per_s``, ``amplitude``, ``peak_hour``, optional ``start_s``;
- ``minute_counts``: ``path`` (a per-minute count CSV), optional ``start_s``, ``wrap``;
- ``azure2024_code_day``: the shipped production day, optional ``start_s``; the hall's rate;
- ``trace_replay``: ``path`` (a request trace CSV), optional ``offset_s``, ``wrap``; its own tokens;
- ``"module:Class"`` / ``"file.py:Class"`` (or, from Python, an ArrivalProcess class or instance):
  ``params`` as keyword arguments (plus ``tokens`` and ``rate_scale`` when its ``__init__`` takes them).

A parameter of another arrival is refused, naming what this one reads. Every kind shares ``rate_scale``,
``tokens``, ``stream``, ``routing`` and ``pool``. ``stream``: ``independent`` (each server its own draw,
rate per server), ``shared_intensity`` (one hall draw at N × the rate, each request to a random server),
``pooled`` (one draw per ``pool`` at the configured rate, dispatched by ``routing``, which is ignored
otherwise, as is ``pool``). ``start_s = "random"``: each process starts at a random point of its period.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

import numpy as np
from pydantic import Discriminator, Field, Tag, field_serializer, field_validator, model_validator

from dcsim.constants import DAY_S
from dcsim.errors import DcsimInputError
from dcsim.plugins import PLUGIN_FORM, make_arrival, resolve_path, resolve_spec, spec_of
from dcsim.scenario.overrides import Strict, shown
from dcsim.workload.arrivals import ArrivalProcess, Poisson, TraceReplay
from dcsim.workload.profiles import Diurnal, RateProfile
from dcsim.workload.routing import ROUTERS, Router
from dcsim.workload.tokens import BUILTIN_TOKEN_TABLES, TokenSource

__all__ = ["Workload", "ARRIVALS", "STREAMS", "TokensTable", "Lognormal", "Fixed"]

STREAMS = ("independent", "shared_intensity", "pooled")


# ----------------------------------------------------------------------------------------------- tokens

class Lognormal(Strict):
    median_in: float = Field(gt=0, description="a median prompt length in tokens > 0")
    sigma_in: float = Field(ge=0, description="a log-space standard deviation ≥ 0")
    median_out: float = Field(gt=0, description="a median output length in tokens > 0")
    sigma_out: float = Field(ge=0, description="a log-space standard deviation ≥ 0")


class Fixed(Strict):
    n_in: int = Field(ge=1, description="a whole number of prompt tokens ≥ 1")
    n_out: int = Field(ge=1, description="a whole number of output tokens ≥ 1")


class TokensTable(Strict):
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


# ------------------------------------------------------------------------------------- the shared keys

_ROUTING_ALLOWED = f"one of {', '.join(ROUTERS)} {PLUGIN_FORM} (a subclass of Router)"


def _named(where: str, v: Any, allowed: str) -> None:
    """A plug-in name must be a non-empty string (from Python: a class or instance, checked when built)."""
    if not isinstance(v, str):
        raise DcsimInputError(where, v, allowed, problem="wrong type")
    if not v:
        raise DcsimInputError(where, v, allowed, problem="empty")


class _Arrival(Strict):
    """The keys every arrival kind shares, and what each kind's model answers to."""

    kind: ClassVar[str]
    needed_by: ClassVar[str]  # "arrival 'diurnal'": why a missing key is needed (see overrides.translate)
    key_order: ClassVar[tuple[str, ...]]  # every kind's keys, the order an "unknown key" error lists them in

    arrival: Any
    rate_scale: float = Field(1.0, gt=0, description="a factor > 0 on the rate")
    tokens: _TokensSpec = Field("config", description=_TOKENS_ALLOWED)
    stream: Literal["independent", "shared_intensity", "pooled"] = Field(
        "independent", description="one of independent, shared_intensity, pooled")
    routing: Any = Field("random", description=_ROUTING_ALLOWED)
    pool: Literal["rack", "row", "site"] = Field("rack", description="one of rack, row, site")

    @classmethod
    def parameters(cls) -> list[str]:
        """The keys this kind reads beyond the shared ones (its own first, then those of its base)."""
        own = [k for k in cls.__dict__.get("__annotations__", {}) if k in cls.model_fields]
        return [k for k in dict.fromkeys([*own, *cls.model_fields]) if k not in _Arrival.model_fields]

    @classmethod
    def uses(cls) -> str:
        return ", ".join(sorted({*cls.parameters(), "rate_scale", "tokens"}))

    @model_validator(mode="before")
    @classmethod
    def _own_parameters(cls, data: Any) -> Any:
        """Another kind's parameter is dropped when left at its default, else refused naming what this kind reads."""
        if not isinstance(data, Mapping):
            return data
        cls._check_arrival(data.get("arrival", cls.kind))
        own = set(cls.model_fields)
        foreign = {k: v for k, v in data.items() if k in _LEFT_OUT and k not in own}
        for key, value in foreign.items():
            if value != _LEFT_OUT[key]:
                raise DcsimInputError(f"workload.{key}", shown(value),
                                      f"for arrival {spec_of(data.get('arrival', cls.kind))!r}: {cls.uses()}",
                                      problem="not used by this arrival")
        unset = {k for k, v in data.items() if v is None and k in own and cls.model_fields[k].is_required()}
        return {k: v for k, v in data.items() if k not in foreign and k not in unset}  # None: left out

    @classmethod
    def _check_arrival(cls, arrival: Any) -> None:
        """The built-in kinds are chosen by their name: nothing to check."""

    @field_validator("tokens", mode="before")
    @classmethod
    def _tokens_shape(cls, v: Any) -> Any:
        if not isinstance(v, (str, Mapping)):
            raise DcsimInputError("workload.tokens", v, _TOKENS_ALLOWED, problem="wrong type")
        return v

    @field_validator("routing")
    @classmethod
    def _known_router(cls, v: Any) -> Any:
        if isinstance(v, (Router, type)):
            return v  # from Python: checked when built
        _named("workload.routing", v, _ROUTING_ALLOWED)
        if ":" not in v and v not in ROUTERS:
            raise DcsimInputError("workload.routing", v, _ROUTING_ALLOWED, problem="unknown router")
        return v

    @field_serializer("arrival", "routing", when_used="json")
    def _spec(self, v: Any) -> Any:
        return spec_of(v)

    def resolve_paths(self, base: Path) -> None:
        """Paths (a trace or count file, a token CSV, a ``file.py:Class``) made absolute, relative to ``base``."""
        if getattr(self, "path", None) is not None:
            self.path = resolve_path(base, self.path)
        if isinstance(self.tokens, str) and self.tokens != "config" and self.tokens not in BUILTIN_TOKEN_TABLES:
            self.tokens = resolve_path(base, self.tokens)
        self.arrival = resolve_spec(base, self.arrival)
        self.routing = resolve_spec(base, self.routing)

    # -- building

    @property
    def random_start(self) -> bool:
        """Whether each process draws its own start (``start_s = "random"``)."""
        return False

    def rate_factor(self, n_servers: int, hall_servers: int) -> float:
        """What the configured rate is multiplied by for a process feeding ``n_servers`` of ``hall_servers``.

        Per-server rates (independent, shared intensity): ``n_servers``. Pooled: 1 (the rate is the pool's).
        """
        return 1.0 if self.stream == "pooled" else float(n_servers)

    def build(self, tokens: TokenSource | None, n_servers: int, rng: np.random.Generator | None,
              hall_servers: int) -> ArrivalProcess:
        """The arrival process of a group of ``n_servers`` servers (of the hall's ``hall_servers``), drawing
        lengths from ``tokens``; its rate is ``rate_scale`` × :meth:`rate_factor`. ``rng`` draws a random start.
        An ``arrival`` set to a class or instance from Python after validation is built as a plug-in."""
        scale = self.rate_scale * self.rate_factor(n_servers, hall_servers)
        if self._replaced():
            return make_arrival(self.arrival, {}, tokens, scale)
        return self._make(tokens, scale)

    def _replaced(self) -> bool:
        return self.kind != "plugin" and not (isinstance(self.arrival, str) and self.arrival == self.kind)

    def _make(self, tokens: TokenSource | None, scale: float) -> ArrivalProcess:
        raise NotImplementedError


class _Profile(_Arrival):
    """A rate profile, entered at ``start_s`` (or at a random point of its period, drawn per process)."""

    start_s: Any = Field(0.0, description="seconds ≥ 0 into the profile at scenario time 0, or \"random\" "
                                          "(each draw starts at a uniformly random point of the period)")

    @field_validator("start_s")
    @classmethod
    def _start(cls, v: Any) -> Any:
        if v == "random":
            return v
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise DcsimInputError("workload.start_s", v, _Profile.model_fields["start_s"].description)
        return float(v)

    @property
    def random_start(self) -> bool:
        return self.start_s == "random"

    def build(self, tokens: TokenSource | None, n_servers: int, rng: np.random.Generator | None,
              hall_servers: int) -> ArrivalProcess:
        if self._replaced():
            return super().build(tokens, n_servers, rng, hall_servers)
        proc = self._make(tokens, self.rate_scale * self.rate_factor(n_servers, hall_servers),
                          0.0 if self.random_start else self.start_s)
        if self.random_start:
            if rng is None:
                raise DcsimInputError("rng", None, "a numpy Generator (workload.start_s is \"random\")")
            proc.start_s = float(rng.uniform(0.0, self._period_s(proc)))
        return proc

    def _period_s(self, proc: RateProfile) -> float:
        return proc.period_s


# ------------------------------------------------------------------------------------------ the kinds

class PoissonArrivals(_Arrival):
    """``arrival = "poisson"`` (the default): a constant rate."""

    kind = "poisson"
    arrival: Literal["poisson"] = "poisson"
    rate_per_s: float = Field(ge=0, description="a rate ≥ 0 requests per second")

    def _make(self, tokens: TokenSource | None, scale: float) -> ArrivalProcess:
        return Poisson(self.rate_per_s, tokens, rate_scale=scale)


class RateProfileArrivals(_Profile):
    """``arrival = "rate_profile"``: a piecewise-constant rate table, repeating every ``period_s`` if given."""

    kind = "rate_profile"
    arrival: Literal["rate_profile"]
    times_s: list[Annotated[float, Field(ge=0)]] = Field(
        min_length=1, description="piece start times in seconds, from 0, increasing")
    rates_per_s: list[Annotated[float, Field(ge=0)]] = Field(
        min_length=1, description="one rate ≥ 0 requests per second per piece")
    period_s: float | None = Field(None, gt=0, description="a repeat period in seconds > the last piece start")

    @model_validator(mode="after")
    def _periodic_if_random(self) -> RateProfileArrivals:
        if self.random_start and self.period_s is None:
            raise DcsimInputError("workload.start_s", "random", "a number, or set workload.period_s so the "
                                  "profile repeats", problem="a random start needs a periodic profile")
        return self

    def _make(self, tokens: TokenSource | None, scale: float, start_s: float = 0.0) -> ArrivalProcess:
        return RateProfile.table(self.times_s, self.rates_per_s, tokens, period_s=self.period_s, start_s=start_s,
                                 rate_scale=scale)


class DiurnalArrivals(_Profile):
    """``arrival = "diurnal"``: a 24-h cosine around a mean rate."""

    kind = "diurnal"
    arrival: Literal["diurnal"]
    mean_rate_per_s: float = Field(ge=0, description="a mean rate ≥ 0 requests per second")
    amplitude: float = Field(ge=0, lt=1, description="a relative amplitude in [0, 1)")
    peak_hour: float = Field(ge=0, lt=24, description="an hour of day in [0, 24)")

    def _period_s(self, proc: RateProfile) -> float:
        return DAY_S

    def _make(self, tokens: TokenSource | None, scale: float, start_s: float = 0.0) -> ArrivalProcess:
        return Diurnal(self.mean_rate_per_s, self.amplitude, self.peak_hour, tokens, start_s=start_s,
                                   rate_scale=scale)


class MinuteCountsArrivals(_Profile):
    """``arrival = "minute_counts"``: a per-minute count file, repeating unless ``wrap = false``."""

    kind = "minute_counts"
    arrival: Literal["minute_counts"]
    path: str = Field(min_length=1, description="the path of a CSV file")
    wrap: bool = Field(True, description="true (repeat the file end to end) or false")

    @model_validator(mode="after")
    def _repeating_if_random(self) -> MinuteCountsArrivals:
        if self.random_start and not self.wrap:
            raise DcsimInputError("workload.start_s", "random", "a number, or wrap = true",
                                  problem="a random start needs a repeating file")
        return self

    def _make(self, tokens: TokenSource | None, scale: float, start_s: float = 0.0) -> ArrivalProcess:
        return RateProfile.from_minute_counts(self.path, tokens, start_s=start_s, rate_scale=scale, wrap=self.wrap)


class Azure2024CodeDayArrivals(_Profile):
    """``arrival = "azure2024_code_day"``: the shipped production day; its rate is the hall's, whatever the stream."""

    kind = "azure2024_code_day"
    arrival: Literal["azure2024_code_day"]

    def rate_factor(self, n_servers: int, hall_servers: int) -> float:
        """The production service's rate is the hall's: a group of ``n_servers`` gets its share."""
        return n_servers / hall_servers

    def _make(self, tokens: TokenSource | None, scale: float, start_s: float = 0.0) -> ArrivalProcess:
        return RateProfile.builtin_azure2024_code_day(tokens, start_s=start_s, rate_scale=scale)


class TraceReplayArrivals(_Arrival):
    """``arrival = "trace_replay"``: a request trace replayed from an offset (random per draw when left out)."""

    kind = "trace_replay"
    arrival: Literal["trace_replay"]
    path: str = Field(min_length=1, description="the path of a CSV file")
    offset_s: float | None = Field(None, ge=0, description="trace seconds ≥ 0 (left out: random for each draw)")
    wrap: bool = Field(True, description="true (repeat the file end to end) or false")

    @model_validator(mode="after")
    def _own_tokens(self) -> TraceReplayArrivals:
        if self.tokens != "config":
            raise DcsimInputError("workload.tokens", shown(self.tokens), "to be left out: a trace replay uses the "
                                  "trace's own token counts", problem="not used by arrival 'trace_replay'")
        return self

    def _make(self, tokens: TokenSource | None, scale: float) -> ArrivalProcess:
        return TraceReplay(self.path, offset_s=self.offset_s, wrap=self.wrap, rate_scale=scale)


_KINDS = (PoissonArrivals, RateProfileArrivals, DiurnalArrivals, MinuteCountsArrivals, Azure2024CodeDayArrivals,
          TraceReplayArrivals)
_ARRIVAL_ALLOWED = (f"one of {', '.join(k.kind for k in _KINDS)} {PLUGIN_FORM} "
                    "(a subclass of ArrivalProcess)")


class PluginArrivals(_Arrival):
    """``arrival = "module:Class"`` (or an ArrivalProcess class or instance): a user's process."""

    kind = "plugin"
    arrival: Any = Field(description=_ARRIVAL_ALLOWED)
    params: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of a plug-in arrival class")

    @classmethod
    def uses(cls) -> str:
        return "params (its keyword arguments)"

    @classmethod
    def _check_arrival(cls, arrival: Any) -> None:
        if isinstance(arrival, (ArrivalProcess, type)):
            return  # from Python: checked when built
        _named("workload.arrival", arrival, _ARRIVAL_ALLOWED)
        if ":" not in arrival:
            raise DcsimInputError("workload.arrival", arrival, _ARRIVAL_ALLOWED, problem="unknown arrival")

    def _make(self, tokens: TokenSource | None, scale: float) -> ArrivalProcess:
        return make_arrival(self.arrival, self.params, tokens, scale)


ARRIVALS: dict[str, type[_Arrival]] = {k.kind: k for k in _KINDS}
"""The built-in arrival kinds by name (``workload.arrival``), each a model of the parameters it reads."""

_LEFT_OUT = {k: (None if f.is_required() else f.get_default(call_default_factory=True))
             for m in (*_KINDS, PluginArrivals) for k in m.parameters() for f in [m.model_fields[k]]}
"""Every kind's own parameters and the value that means "left out" (another kind may carry it at that)."""

_Arrival.key_order = ("arrival", *(k for k in _LEFT_OUT if k != "params"),
                      *(k for k in _Arrival.model_fields if k != "arrival"), "params")
for _kind in (*_KINDS, PluginArrivals):
    _kind.needed_by = f"arrival {_kind.kind!r}"
del _kind


def _arrival_kind(v: Any) -> str:
    arrival = v.get("arrival", "poisson") if isinstance(v, Mapping) else getattr(v, "arrival", "poisson")
    return arrival if isinstance(arrival, str) and arrival in ARRIVALS else "plugin"


Workload = Annotated[Union[tuple(Annotated[k, Tag(k.kind)] for k in (*_KINDS, PluginArrivals))],
                     Discriminator(_arrival_kind)]
"""``[workload]``: the model of its ``arrival`` (see the module docstring)."""
