"""Scenario → engine inputs, once: the facility, the request streams and the control policy.

:func:`build_inputs` is the one translation :func:`dcsim.run` (and anyone driving the engine from a
scenario) uses. The streams come from the engine's own builders
(:func:`~dcsim.facility.engine.independent_streams`, :func:`~dcsim.facility.engine.shared_stream`,
:func:`~dcsim.facility.engine.pooled_streams`); every arrival process is its ``[workload]`` model's
:meth:`build`; random start offsets are drawn from the run's named stream ``start_times``
(:mod:`dcsim.seeds`), in server (or pool) order. :func:`component_configs` describes what was built.

The smaller helpers (:func:`build_tree`, :func:`pools`, :func:`token_source`, :func:`arrival_process`)
are what :class:`~dcsim.scenario.schema.Scenario`'s methods of the same names call, and what its load-time
checks (:func:`check_workload`) build once so a problem is reported before anything runs.
"""
from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from dcsim.errors import DcsimInputError
from dcsim.facility.engine import Facility, Stream, independent_streams, pooled_streams, shared_stream
from dcsim.facility.tree import servers, tree_from_layout
from dcsim.plugins import make_router, router_class
from dcsim.seeds import named_generator
from dcsim.workload.arrivals import ArrivalProcess, Poisson
from dcsim.workload.routing import RandomRouter
from dcsim.workload.tokens import (BUILTIN_TOKEN_TABLES, EmpiricalTokens, FixedTokens, LognormalTokens,
                                   TokenSource)

__all__ = ["build_inputs", "build_tree", "pools", "token_source", "arrival_process", "component_configs",
           "check_workload"]


def build_inputs(scenario: Any, configs: dict[str, Any] | None = None,
                 power_model: str | None = None) -> tuple[Facility, list[Stream], Any]:
    """The engine's inputs for a scenario: the facility, the request streams and the control policy (or None).

    ``configs`` (name → calibrated configuration) skips loading the scenario's configurations by name;
    ``power_model`` picks the backend of every configuration loaded here (default: each one's own default).
    """
    names = scenario.server_configs()
    if configs is None:
        from dcsim.configs import load_config

        configs = {name: load_config(name, power_model=power_model) for name in dict.fromkeys(names)}
    configs = dict(configs)
    tree = build_tree(scenario)
    facility = Facility(tree, configs, scenario.site.p_base_w, scenario.site.pue)
    rng = named_generator(scenario.simulation.seed, "start_times")
    w = scenario.workload
    n = len(names)
    tokens: dict[str, TokenSource] = {}

    def process(config: str, n_servers: int) -> ArrivalProcess:
        if config not in tokens:
            src = token_source(scenario, config)
            tokens[config] = src if src is not None else configs[config].tokens
        return w.build(tokens[config], n_servers, rng, hall_servers=n)

    if w.stream == "independent":
        shared: dict[str, ArrivalProcess] = {}  # without random starts, servers of a configuration share one

        def per_server(i: int) -> ArrivalProcess:
            if w.random_start:
                return process(names[i], 1)
            if names[i] not in shared:
                shared[names[i]] = process(names[i], 1)
            return shared[names[i]]

        streams = independent_streams(per_server, n, names=servers(tree))
    elif w.stream == "shared_intensity":
        streams = shared_stream(process(names[0], n), n)
    else:
        streams = pooled_streams(tree, w.pool, lambda idx: process(names[int(idx[0])], int(idx.size)),
                                 make_router(w.routing))
    return facility, streams, scenario.control.build()


def component_configs(streams: list[Stream], policy: Any) -> dict[str, Any]:
    """The ``config()`` of every component the engine was given, for a run's metadata.

    ``streams``: one entry per distinct ``{arrivals, tokens, router}`` (the process's, its token source's
    and its router's ``config()``; None where there is none), with the names of the streams it feeds;
    ``policy``: the policy's ``config()`` or None.
    """
    entries: dict[str, dict[str, Any]] = {}
    for s in streams:
        tokens = getattr(s.process, "tokens", None)
        entry = {"arrivals": s.process.config(),
                 "tokens": tokens.config() if isinstance(tokens, TokenSource) else None,
                 "router": None if s.router is None else s.router.config()}
        key = json.dumps(entry, sort_keys=True, default=str)
        entries.setdefault(key, {**entry, "streams": []})["streams"].append(s.name)
    return {"streams": list(entries.values()), "policy": None if policy is None else policy.config()}


# ------------------------------------------------------------------------------------------ the parts

def build_tree(scenario: Any) -> Any:
    """A fresh ``networkx.DiGraph`` power tree (see :mod:`dcsim.facility.tree`) with the site's limits."""
    return tree_from_layout(scenario.facility.layout(), scenario.site.limits_w or None)


_IDLE = Poisson(0.0, FixedTokens(1, 1))


def pools(scenario: Any) -> list[np.ndarray]:
    """Server indices of each group a pooled stream feeds (``workload.pool``), in tree order: the servers of
    the engine's :func:`~dcsim.facility.engine.pooled_streams`."""
    return [s.servers for s in pooled_streams(build_tree(scenario), scenario.workload.pool, _IDLE, RandomRouter())]


def token_source(scenario: Any, config: str | None = None) -> TokenSource | None:
    """The token-length source for servers running ``config``; None means "use that configuration's own
    training quantiles" (``tokens = "config"``, which the engine loads with the configuration)."""
    spec = scenario.workload.tokens
    if not isinstance(spec, str):  # a {lognormal} or {fixed} table
        if spec.lognormal is not None:
            return LognormalTokens(**spec.lognormal.model_dump())
        return FixedTokens(**spec.fixed.model_dump())
    if spec == "config":
        return None
    cache: dict[str, EmpiricalTokens] = scenario._token_tables
    if spec not in cache:
        cache[spec] = EmpiricalTokens.builtin(spec) if spec in BUILTIN_TOKEN_TABLES else EmpiricalTokens.from_csv(spec)
    return cache[spec]


def arrival_process(scenario: Any, tokens: TokenSource | None, n_servers: int = 1,
                    rng: np.random.Generator | None = None) -> ArrivalProcess:
    """The configured arrival process for a group of ``n_servers`` servers, drawing lengths from ``tokens``.

    Call it with ``n_servers=1`` for each server of an independent stream, with the hall's server count
    for a shared-intensity draw, with the pool's size for a pooled stream; the rate is scaled as
    ``[workload]`` means it (see the model's ``rate_factor``). ``rng`` is needed when
    ``start_s = "random"``: the start is drawn from it.
    """
    return scenario.workload.build(tokens, n_servers, rng, hall_servers=scenario.n_servers)


# ------------------------------------------------------------------------------------- load-time check

def check_workload(scenario: Any) -> None:
    """Build what ``[workload]`` names once (token table, groups of one token source, the arrival process
    for its largest group), so a problem is reported at load, naming the key it came from."""
    w = scenario.workload
    router_class(w.routing)  # a plug-in is imported (and checked) even when no stream is routed
    if isinstance(w.tokens, str) and w.tokens != "config" and w.tokens not in BUILTIN_TOKEN_TABLES:
        try:
            token_source(scenario)
        except DcsimInputError as e:
            raise DcsimInputError(f"workload.tokens → {e.where}", e.value, e.allowed, e.problem) from None
    if w.tokens == "config" and w.stream != "independent" and w.arrival != "trace_replay":
        groups = [np.arange(scenario.n_servers)] if w.stream == "shared_intensity" else pools(scenario)
        configs = scenario.server_configs()
        for g in groups:
            mixed = sorted({configs[i] for i in g})
            if len(mixed) > 1:
                raise DcsimInputError("workload.tokens", "config", "a token source shared by the group: "
                                      + ", ".join(repr(n) for n in BUILTIN_TOKEN_TABLES) + ", a table or a CSV",
                                      problem=f"one {w.stream} stream feeds servers of {len(mixed)} "
                                              f"configurations ({', '.join(mixed)})")
    n = 1 if w.stream == "independent" else scenario.n_servers  # the largest group a process may feed
    try:
        arrival_process(scenario, FixedTokens(1, 1), n_servers=n, rng=np.random.default_rng(0))
    except DcsimInputError as e:
        raise DcsimInputError(_workload_where(e.where, w), e.value, e.allowed, e.problem) from None


def _workload_where(where: str, w: Any) -> str:
    """Key path for an error raised by a workload class (it names its own parameter or the file)."""
    root = re.split(r"[\[:. ]", where, maxsplit=1)[0]
    if where.startswith(("workload.", "simulation.")):
        return where
    if root in type(w).model_fields:
        return f"workload.{where}"
    if root in ("duration_s",):
        return f"simulation.{where}"
    path = getattr(w, "path", None)
    if path is not None and where.startswith(path):
        return f"workload.path → {where}"
    return f"workload.arrival → {where}"
