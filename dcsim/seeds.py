"""Every random stream of a run, spawned in one place and named.

A run's seed is one :class:`numpy.random.SeedSequence`; each consumer takes its own named child, so adding a
consumer never shifts another's draws and a server's draws do not depend on how many servers are simulated
with it, in which order, in which chunk or on which worker:

- ``arrivals``: one child per request stream (drawing its requests, then routing them);
- ``servers``: one child per server, split into (serving, power);
- ``control``: the live control loop's power draws;
- ``start_times``: random start offsets of arrival profiles (``workload.start_s = "random"``);
- ``warm_up``: one child per request stream, the arrivals of the warm-up before scenario time 0.

>>> named_sequence(0, "servers").spawn_key
(1,)
"""
from __future__ import annotations

import numpy as np

STREAMS = {"arrivals": 0, "servers": 1, "control": 2, "start_times": 3, "warm_up": 4}
"""Name → spawn key. The numbers are part of the seeding contract: same seed, same traces."""


def named_sequence(seed: int, name: str) -> np.random.SeedSequence:
    """The child of ``SeedSequence(seed)`` that stream ``name`` draws from (equal to ``root.spawn(...)[key]``)."""
    return np.random.SeedSequence(int(seed), spawn_key=(STREAMS[name],))


def named_generator(seed: int, name: str) -> np.random.Generator:
    """A generator on :func:`named_sequence`."""
    return np.random.default_rng(named_sequence(seed, name))


def children(seed: int, name: str, n: int) -> list[np.random.Generator]:
    """``n`` generators spawned from stream ``name`` (one per request stream, per server, ...)."""
    return [np.random.default_rng(s) for s in named_sequence(seed, name).spawn(n)]
