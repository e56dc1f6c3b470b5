"""Control of the power tree: what happens when a node goes over its limit (breakers, power caps).

One small abstract base, :class:`CapPolicy`, with one method ``step(t_s, node_power_w, tree)``: every
control interval the engine hands it the power of every node (its mean over the interval just ended;
the site is facility power, PUE × IT, every other node IT power) and the policy answers with a list
of :class:`Action`. The engine applies them to the servers under each node and logs each one in the
run's events table (``t_s, node, event, detail``). Built-ins:

- :class:`BreakerPolicy` — a node with a limit that stays above it for ``trip_time_s`` or longer trips:
  every server under it goes offline for ``restart_s`` (in-flight, queued and newly arriving requests
  are lost; GPU power and P_base are 0 while offline), then it is restored.
- :class:`PowerCap` — a node above its limit caps the servers under it: each server's GPU power is held
  at ``(limit × cap_fraction − Σ P_base) / n`` (the site's limit is divided by PUE first) and its decode
  slows in proportion (see the engine); released once the node has stayed below
  ``(cap_fraction − release_margin) × limit`` for ``release_hold_s``.

What the engine does with an action (the physics, kept out of the policies):

- ``trip``: every server under ``node`` goes offline until a ``restore`` of the same node;
- ``cap``: every server under ``node`` has its GPU power held at ``cap_w`` (W per server, never below the
  configuration's idle power: a cap below idle cannot be met, and the run warns of it) until an
  ``uncap`` of the same node; a server under several capped nodes takes the lowest cap. While capped,
  a server's decode speed is ``clip(cap_w / uncapped GPU power, 0.05, 1)`` (uncapped power: its mean
  over the last control interval), so its requests take longer, its queue grows and A_t rises.

The tree a policy sees carries what it needs: every node's ``level`` and ``limit_w``, every server's
``p_base_w``, and ``tree.graph["pue"]``. :data:`POLICIES` names the built-ins for scenarios; a user's
policy, named ``"module:Class"``, is loaded by :func:`dcsim.plugins.load_policy`; it must accept its
parameters as keyword arguments.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import networkx as nx

from dcsim.errors import DcsimInputError, check_number
from dcsim.facility.tree import SITE

__all__ = ["Action", "ACTION_EVENTS", "CapPolicy", "BreakerPolicy", "PowerCap", "limited_nodes",
           "per_server_cap_w", "POLICIES"]

ACTION_EVENTS = {"trip": "trip", "restore": "restore", "cap": "cap_on", "uncap": "cap_off"}
"""Action kind → the event name written to the events table."""

@dataclass(frozen=True)
class Action:
    """One thing a policy asks for: ``kind`` one of trip, restore, cap, uncap, at ``node``.

    ``cap_w`` (W per server, GPU power) is required for ``cap``; ``detail`` is free text for the events table.
    """

    kind: str
    node: str
    cap_w: float | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ACTION_EVENTS:
            raise DcsimInputError("Action.kind", self.kind, ", ".join(ACTION_EVENTS))
        if self.kind == "cap" and (self.cap_w is None or not math.isfinite(self.cap_w) or self.cap_w < 0):
            raise DcsimInputError("Action.cap_w", self.cap_w, "a finite GPU power cap >= 0 W per server")


def _class_spec(obj: object) -> str:
    return f"{type(obj).__module__}:{type(obj).__qualname__}"


class CapPolicy(ABC):
    """Reacts to node power every control interval. Subclass it and implement :meth:`step`."""

    @abstractmethod
    def step(self, t_s: float, node_power_w: dict[str, float], tree: nx.DiGraph) -> list[Action]:
        """Actions to take at time ``t_s`` given every node's mean power (W) over the interval just ended."""

    def reset(self) -> None:
        """Forget any state kept between steps (called before a run); nothing by default."""

    def config(self) -> dict[str, Any]:
        """Static self-description for run metadata."""
        return {"class": _class_spec(self)}

    def state(self) -> dict[str, Any]:
        """Dynamic state (JSON-ready), written to the run's summary at the end."""
        return {}


def limited_nodes(tree: nx.DiGraph) -> list[tuple[str, float]]:
    """(node, limit_w) for every node with a limit, in tree order."""
    return [(n, float(a["limit_w"])) for n, a in tree.nodes(data=True) if a.get("limit_w") is not None]


def _under(tree: nx.DiGraph, node: str) -> list[str]:
    """Servers in the subtree of ``node`` (itself, if it is a server)."""
    below = nx.descendants(tree, node) | {node}
    return [n for n in below if tree.nodes[n]["level"] == "server"]


def per_server_cap_w(tree: nx.DiGraph, node: str, cap_fraction: float) -> float:
    """GPU power cap per server that keeps ``node`` at ``cap_fraction`` of its limit: the node's IT budget
    (limit × cap_fraction, divided by PUE at the site) less Σ P_base under it, shared equally; >= 0."""
    limit = tree.nodes[node]["limit_w"]
    servers = _under(tree, node)
    budget = float(limit) * cap_fraction
    if node == SITE:
        budget /= float(tree.graph.get("pue", 1.0))
    base = sum(float(tree.nodes[s].get("p_base_w", 0.0)) for s in servers)
    return max(0.0, (budget - base) / max(len(servers), 1))


def _positive(where: str, value: Any, allow_zero: bool = False) -> float:
    return check_number(where, value, "a finite number >= 0" if allow_zero else "a positive, finite number",
                        low_open=not allow_zero)


class BreakerPolicy(CapPolicy):
    """Breakers on every node with a limit: above it for ``trip_time_s`` or longer → trip; restored after
    ``restart_s``.

    A node counts as above its limit from the start of the first interval whose mean power exceeds it;
    any interval at or below the limit resets that clock. A tripped node (and everything below it) is not
    watched until restored; restoring happens at the first control step ``restart_s`` or more after the trip.
    """

    def __init__(self, trip_time_s: float = 5.0, restart_s: float = 300.0) -> None:
        self.trip_time_s = _positive("control.trip_time_s", trip_time_s, allow_zero=True)
        self.restart_s = _positive("control.restart_s", restart_s, allow_zero=True)
        self.reset()

    def reset(self) -> None:
        self.over_since_: dict[str, float] = {}
        self.tripped_at_: dict[str, float] = {}
        self.n_trips_ = 0
        self._last_t = 0.0

    def step(self, t_s: float, node_power_w: dict[str, float], tree: nx.DiGraph) -> list[Action]:
        actions: list[Action] = []
        for node, at in list(self.tripped_at_.items()):
            if t_s - at >= self.restart_s - 1e-9:
                del self.tripped_at_[node]
                actions.append(Action("restore", node, detail=f"after {t_s - at:.1f} s"))
        dark = {n for node in self.tripped_at_ for n in nx.descendants(tree, node) | {node}}
        for node, limit in limited_nodes(tree):
            if node in dark or node not in node_power_w:
                continue
            power = float(node_power_w[node])
            if power <= limit:
                self.over_since_.pop(node, None)
                continue
            since = self.over_since_.setdefault(node, self._last_t)
            if t_s - since >= self.trip_time_s - 1e-9:
                self.over_since_.pop(node, None)
                self.tripped_at_[node] = t_s
                self.n_trips_ += 1
                dark |= nx.descendants(tree, node) | {node}
                actions.append(Action("trip", node, detail=f"{power / 1e3:.1f} kW > limit {limit / 1e3:.1f} kW "
                                                           f"for {t_s - since:.1f} s"))
        self._last_t = t_s
        return actions

    def config(self) -> dict[str, Any]:
        return {**super().config(), "trip_time_s": self.trip_time_s, "restart_s": self.restart_s}

    def state(self) -> dict[str, Any]:
        return {"tripped": sorted(self.tripped_at_), "n_trips": self.n_trips_}


class PowerCap(CapPolicy):
    """Power capping on every node with a limit.

    A node whose interval-mean power exceeds its limit caps the servers under it at
    :func:`per_server_cap_w` (limit × ``cap_fraction``); it is released once its power has stayed below
    ``(cap_fraction − release_margin) × limit`` for ``release_hold_s``.
    """

    def __init__(self, cap_fraction: float = 0.9, release_margin: float = 0.1, release_hold_s: float = 30.0) -> None:
        self.cap_fraction = _positive("control.cap_fraction", cap_fraction)
        if self.cap_fraction > 1:
            raise DcsimInputError("control.cap_fraction", cap_fraction, "a fraction of the limit in (0, 1]")
        self.release_margin = _positive("control.params.release_margin", release_margin, allow_zero=True)
        if self.release_margin >= self.cap_fraction:
            raise DcsimInputError("control.params.release_margin", release_margin,
                                  f"a fraction in [0, cap_fraction = {self.cap_fraction})")
        self.release_hold_s = _positive("control.params.release_hold_s", release_hold_s, allow_zero=True)
        self.reset()

    def reset(self) -> None:
        self.capped_: dict[str, float] = {}
        self.below_since_: dict[str, float] = {}
        self.n_caps_ = 0
        self._last_t = 0.0

    def step(self, t_s: float, node_power_w: dict[str, float], tree: nx.DiGraph) -> list[Action]:
        actions: list[Action] = []
        for node, limit in limited_nodes(tree):
            if node not in node_power_w:
                continue
            power = float(node_power_w[node])
            if node not in self.capped_:
                if power > limit:
                    cap = per_server_cap_w(tree, node, self.cap_fraction)
                    self.capped_[node] = cap
                    self.n_caps_ += 1
                    actions.append(Action("cap", node, cap_w=cap, detail=f"{power / 1e3:.1f} kW > limit "
                                                                        f"{limit / 1e3:.1f} kW; {cap:.0f} W/server"))
                continue
            if power < (self.cap_fraction - self.release_margin) * limit:
                since = self.below_since_.setdefault(node, self._last_t)
                if t_s - since >= self.release_hold_s - 1e-9:
                    del self.capped_[node]
                    self.below_since_.pop(node, None)
                    actions.append(Action("uncap", node, detail=f"{power / 1e3:.1f} kW for {t_s - since:.1f} s"))
            else:
                self.below_since_.pop(node, None)
        self._last_t = t_s
        return actions

    def config(self) -> dict[str, Any]:
        return {**super().config(), "cap_fraction": self.cap_fraction, "release_margin": self.release_margin,
                "release_hold_s": self.release_hold_s}

    def state(self) -> dict[str, Any]:
        return {"capped": {k: round(v, 3) for k, v in sorted(self.capped_.items())}, "n_caps": self.n_caps_}


POLICIES: dict[str, type[CapPolicy] | None] = {"none": None, "breaker": BreakerPolicy, "cap": PowerCap}
"""The built-in policies by the name a scenario gives them (``control.policy``; ``"none"``: no policy). A
built-in takes the ``[control]`` keys its ``__init__`` names (trip_time_s, restart_s, cap_fraction) and
``control.params`` as its other options."""
