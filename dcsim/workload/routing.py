"""Routing for pooled streams: one request stream dispatched over a group of servers.

One small abstract base, :class:`Router`, with one method ``choose(...)`` that returns the index of
the server that gets the request, given a :class:`ServerView` of the group right now. Built-ins:
:class:`RoundRobin`, :class:`RandomRouter`, :class:`JoinShortestQueue`, :class:`LeastPower`; all skip
offline servers and raise :class:`NoServerOnline` when none is left; :data:`ROUTERS` names them for
scenarios. A user's router, named ``"module:Class"``, is loaded by :func:`dcsim.plugins.load_router`.

>>> view = ServerView(active=np.array([3, 1, 0]), queued=np.array([0, 0, 2]),
...                   power_w=np.array([300.0, 200.0, 250.0]), online=np.array([True, True, True]))
>>> JoinShortestQueue().choose(0.0, 100, 20, view, np.random.default_rng(0))
1
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

__all__ = ["ServerView", "Router", "RoundRobin", "RandomRouter", "JoinShortestQueue", "LeastPower",
           "NoServerOnline", "ROUTERS", "READS"]


class NoServerOnline(RuntimeError):
    """Every server of the group is offline: the request cannot be routed."""


@dataclass
class ServerView:
    """What a router may look at, one entry per server of the group.

    ``active``: requests in batch slots now; ``queued``: requests waiting; ``power_w``: latest GPU
    power reading (NaN when none yet); ``online``: whether the server takes requests.
    """

    active: np.ndarray
    queued: np.ndarray
    power_w: np.ndarray
    online: np.ndarray

    def __len__(self) -> int:
        return len(self.online)

    def online_index(self) -> np.ndarray:
        """Indices of the online servers; raises :class:`NoServerOnline` when there are none."""
        idx = np.flatnonzero(np.asarray(self.online, dtype=bool))
        if len(idx) == 0:
            raise NoServerOnline(f"all {len(self.online)} servers of the group are offline")
        return idx


def _argmin_random(values: np.ndarray, candidates: np.ndarray, rng: np.random.Generator) -> int:
    """The candidate with the smallest value, ties broken uniformly at random."""
    v = values[candidates]
    best = candidates[v == v.min()]
    return int(best[0] if len(best) == 1 else best[rng.integers(len(best))])


READS = ("nothing", "queues", "power")
"""What a router may look at in its :class:`ServerView`, from least to most: nothing of the servers (its choice
can be made before the run), queue state (``active``, ``queued``, ``online``), or power too (``power_w``)."""


class Router(ABC):
    """Chooses the server for each request of a pooled stream. Subclass it and implement :meth:`choose`.

    Declare what :meth:`choose` reads in the class attribute ``reads`` (one of :data:`READS`): the engine takes
    the cheapest path that can serve it (``"nothing"``: the fast kernel; ``"queues"``: the SimPy event path;
    ``"power"``: the live path, which generates power as the run goes). A router that does not say is
    assumed to read power. A subclass inherits its parent's declaration: restate it if you read more.
    """

    reads: ClassVar[str] = "power"

    @abstractmethod
    def choose(self, t_s: float, n_in: int, n_out: int, servers: ServerView, rng: np.random.Generator) -> int:
        """Index (into ``servers``) of the online server that gets the request arriving at ``t_s``."""

    def reset(self) -> None:
        """Forget any state kept between requests (called before a new run); nothing by default."""

    def config(self) -> dict[str, Any]:
        """Static self-description for run metadata."""
        return {"class": f"{type(self).__module__}:{type(self).__qualname__}"}


class RoundRobin(Router):
    """Servers in turn, 0, 1, 2, ...; an offline server is passed over."""

    reads = "nothing"

    def __init__(self) -> None:
        self.next_ = 0

    def reset(self) -> None:
        self.next_ = 0

    def choose(self, t_s: float, n_in: int, n_out: int, servers: ServerView, rng: np.random.Generator) -> int:
        idx = servers.online_index()
        n = len(servers)
        start = self.next_ % n
        pick = int(idx[np.searchsorted(idx, start) % len(idx)])  # first online at or after start
        self.next_ = (pick + 1) % n
        return pick


class RandomRouter(Router):
    """A uniformly random online server."""

    reads = "nothing"

    def choose(self, t_s: float, n_in: int, n_out: int, servers: ServerView, rng: np.random.Generator) -> int:
        idx = servers.online_index()
        return int(idx[rng.integers(len(idx))])


class JoinShortestQueue(Router):
    """The online server with the fewest requests in hand (active + queued), ties at random."""

    reads = "queues"

    def choose(self, t_s: float, n_in: int, n_out: int, servers: ServerView, rng: np.random.Generator) -> int:
        idx = servers.online_index()
        load = np.asarray(servers.active, dtype=np.float64) + np.asarray(servers.queued, dtype=np.float64)
        return _argmin_random(load, idx, rng)


class LeastPower(Router):
    """The online server drawing the least power now, ties at random; no reading yet (NaN) counts as 0 W."""

    reads = "power"

    def choose(self, t_s: float, n_in: int, n_out: int, servers: ServerView, rng: np.random.Generator) -> int:
        idx = servers.online_index()
        power = np.nan_to_num(np.asarray(servers.power_w, dtype=np.float64), nan=0.0)
        return _argmin_random(power, idx, rng)


ROUTERS: dict[str, type[Router]] = {"random": RandomRouter, "round_robin": RoundRobin,
                                    "join_shortest_queue": JoinShortestQueue, "least_power": LeastPower}
"""The built-in routers by the name a scenario gives them (``workload.routing``)."""
