"""The power-distribution tree (paper Stage 4): site (PCC) → rows → racks → servers.

A tree is a ``networkx.DiGraph`` with edges pointing from parent to child. Every node has

- ``level``: ``"site"``, ``"row"``, ``"rack"`` or ``"server"``;
- ``limit_w``: a power limit in watts, or ``None`` (no limit);

and every server node also has ``config`` (the calibrated configuration it runs) and ``index``
(0..S-1, its row in every ``(S, T)`` power matrix; see :func:`servers`).

Aggregation follows the paper: a server's IT power is its GPU power plus a constant non-GPU
power, ``P_IT = y_t + P_base``; a rack's and a row's traces are IT power, the exact sums of their
children; the ``"site"`` node is the facility meter at the point of common coupling, so its trace
is ``PUE × Σ P_IT`` (cooling and conversion losses included). Its limit, if any, is on that
facility power.

Aggregation is vectorised (per rack, one float64 sum over its servers' rows of the power matrix,
read as a view where they are contiguous; then one vector add per node up the tree, so every
trace is the sum of its children's traces) and can stream: :func:`new_sums`, :func:`aggregate_chunk` per
chunk of servers, then :func:`finish_sums`, so an engine never holds the whole ``(S, T)`` matrix.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import networkx as nx
import numpy as np

from dcsim.constants import LEVELS
from dcsim.errors import DcsimInputError
from dcsim.io import resample_mean

__all__ = [
    "SITE",
    "build_tree",
    "tree_from_layout",
    "apply_limits",
    "servers",
    "nodes_at",
    "server_indices_under",
    "aggregate",
    "new_sums",
    "aggregate_chunk",
    "finish_sums",
    "resample_mean",
]

SITE = "site"


def build_tree(rows: int, racks_per_row: int, servers_per_rack: int, configs: list[str] | str = "default",
               limits_w: Mapping[str, float] | None = None) -> nx.DiGraph:
    """A regular tree: ``rows`` rows of ``racks_per_row`` racks of ``servers_per_rack`` servers.

    Names are ``"row{i}"``, ``"row{i}/rack{j}"`` and ``"row{i}/rack{j}/srv{k}"``; server indices run
    row by row, rack by rack. ``configs`` is one configuration name for every server, or a list of
    one name per server in index order. ``limits_w`` maps a node name or a level name
    (``{"row": 600e3}`` limits every row) to watts; see :func:`apply_limits`.

    >>> t = build_tree(2, 3, 4)
    >>> len(servers(t)), nodes_at(t, "row"), servers(t)[5]
    (24, ['row0', 'row1'], 'row0/rack1/srv1')
    """
    counts = {"rows": rows, "racks_per_row": racks_per_row, "servers_per_rack": servers_per_rack}
    for key, n in counts.items():
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise DcsimInputError(f"facility.{key}", n, "a whole number ≥ 1")
    n_servers = rows * racks_per_row * servers_per_rack
    names = _config_list(configs, n_servers)
    layout = []
    for i in range(rows):
        for j in range(racks_per_row):
            for k in range(servers_per_rack):
                layout.append({"row": f"row{i}", "rack": f"row{i}/rack{j}", "server": f"row{i}/rack{j}/srv{k}",
                               "config": names[len(layout)]})
    return tree_from_layout(layout, limits_w)


def tree_from_layout(layout: list[dict[str, Any]], limits_w: Mapping[str, float] | None = None) -> nx.DiGraph:
    """A tree from an explicit list of servers, one dict each, in index order.

    Each entry has ``row``, ``rack`` and ``server`` names and optionally ``config`` (default
    ``"default"``): ``[{"row": "row0", "rack": "row0/rack0", "server": "row0/rack0/s0", "config": "a100"}]``.
    Names must be unique across the tree; a rack must sit in one row only.
    """
    if not isinstance(layout, (list, tuple)) or not layout:
        raise DcsimInputError("facility.layout", type(layout).__name__ if not isinstance(layout, (list, tuple))
                              else "[]", "a non-empty list of {row, rack, server[, config]} entries")
    tree = nx.DiGraph()
    tree.add_node(SITE, level="site", limit_w=None)
    for i, entry in enumerate(layout):
        where = f"facility.layout[{i}]"
        if not isinstance(entry, Mapping):
            raise DcsimInputError(where, entry, "a table with row, rack, server and optional config")
        for key in ("row", "rack", "server"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise DcsimInputError(f"{where}.{key}", entry.get(key), "a non-empty name")
        unknown = set(entry) - {"row", "rack", "server", "config"}
        if unknown:
            raise DcsimInputError(where, sorted(unknown), "keys row, rack, server, config", problem="unknown keys")
        row, rack, server = entry["row"], entry["rack"], entry["server"]
        config = entry.get("config", "default")
        if not isinstance(config, str) or not config:
            raise DcsimInputError(f"{where}.config", config, "a configuration name")
        for name, level, parent in ((row, "row", SITE), (rack, "rack", row)):
            if name in tree:
                if tree.nodes[name]["level"] != level:
                    raise DcsimInputError(f"{where}.{level}", name, f"a name not already used for a "
                                          f"{tree.nodes[name]['level']}", problem="name clash")
                (have,) = tree.predecessors(name)
                if have != parent:
                    raise DcsimInputError(f"{where}.{level}", name, f"one parent only (it is already under {have!r})",
                                          problem=f"{level} in two places")
            else:
                tree.add_node(name, level=level, limit_w=None)
                tree.add_edge(parent, name)
        if server in tree:
            raise DcsimInputError(f"{where}.server", server, "a name used once in the tree", problem="duplicate name")
        tree.add_node(server, level="server", limit_w=None, config=config, index=i)
        tree.add_edge(rack, server)
    if limits_w:
        apply_limits(tree, limits_w)
    return tree


def apply_limits(tree: nx.DiGraph, limits_w: Mapping[str, float]) -> nx.DiGraph:
    """Set ``limit_w`` from a mapping of node names or level names to watts; a node name wins over its level.

    A key that is neither a level nor a node in the tree is refused, naming the key, its value and
    the names that exist. Returns the same tree.
    """
    if not isinstance(limits_w, Mapping):
        raise DcsimInputError("facility.limits_w", limits_w, "a table of node or level name → watts")
    by_level, by_node = {}, {}
    for key, value in limits_w.items():
        where = f"facility.limits_w.{key}"
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not np.isfinite(value) or value <= 0:
            raise DcsimInputError(where, value, "a positive, finite power in watts")
        if key in LEVELS:
            by_level[key] = float(value)
        elif key in tree:
            by_node[key] = float(value)
        else:
            raise DcsimInputError(where, value, f"a level ({', '.join(LEVELS)}) or an existing node: "
                                  f"{_abbreviate(tree)}", problem=f"no node named {key!r}")
    for name, attrs in tree.nodes(data=True):
        if name in by_node:
            attrs["limit_w"] = by_node[name]
        elif attrs["level"] in by_level:
            attrs["limit_w"] = by_level[attrs["level"]]
    return tree


def servers(tree: nx.DiGraph) -> list[str]:
    """Server names in index order (the row order of every ``(S, T)`` power matrix)."""
    found = [(attrs["index"], name) for name, attrs in tree.nodes(data=True) if attrs["level"] == "server"]
    found.sort()
    return [name for _, name in found]


def nodes_at(tree: nx.DiGraph, level: str) -> list[str]:
    """Nodes at one level, in insertion order (rows and racks appear in server-index order)."""
    if level not in LEVELS:
        raise DcsimInputError("level", level, ", ".join(LEVELS))
    return [name for name, attrs in tree.nodes(data=True) if attrs["level"] == level]


def server_indices_under(tree: nx.DiGraph, node: str) -> np.ndarray:
    """Sorted server indices in the subtree of ``node`` (itself, if it is a server)."""
    if node not in tree:
        raise DcsimInputError("node", node, _abbreviate(tree), problem="no such node")
    below = nx.descendants(tree, node) | {node}
    idx = [tree.nodes[n]["index"] for n in below if tree.nodes[n]["level"] == "server"]
    return np.array(sorted(idx), dtype=np.int64)


def aggregate(tree: nx.DiGraph, gpu_power_w: np.ndarray, p_base_w: float | np.ndarray, pue: float,
              include_servers: bool = False) -> dict[str, np.ndarray]:
    """Node traces in watts, each ``(T,)`` float64, from the GPU power of every server ``(S, T)``.

    Racks and rows carry IT power (``Σ (y_t + P_base)`` over their servers); ``"site"`` carries
    facility power ``PUE × Σ P_IT``. ``p_base_w`` is one value or one per server (index order).
    With ``include_servers`` the servers' own ``P_IT`` traces are included too.
    """
    gpu = _power_matrix(gpu_power_w, len(servers(tree)), "gpu_power_w")
    sums = new_sums(tree, gpu.shape[1])
    aggregate_chunk(tree, sums, gpu, np.arange(gpu.shape[0]), p_base_w)
    finish_sums(tree, sums, pue)
    if include_servers:
        base = _p_base(p_base_w, gpu.shape[0])
        for name, row, b in zip(servers(tree), gpu, base):
            sums[name] = row.astype(np.float64) + b
    return sums


def new_sums(tree: nx.DiGraph, n_steps: int) -> dict[str, np.ndarray]:
    """Zeroed accumulators, one ``(n_steps,)`` float64 array per non-server node, for streaming aggregation.

    Use: ``sums = new_sums(tree, T)``; ``aggregate_chunk(tree, sums, power_chunk, idx, p_base_w)`` for
    each chunk of servers (any order, each server once); then ``finish_sums(tree, sums, pue)`` once.
    """
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise DcsimInputError("n_steps", n_steps, "a whole number ≥ 1")
    return {name: np.zeros(int(n_steps)) for name, attrs in tree.nodes(data=True) if attrs["level"] != "server"}


def aggregate_chunk(tree: nx.DiGraph, sums: dict[str, np.ndarray], gpu_power_w: np.ndarray,
                    server_index: np.ndarray | Iterable[int], p_base_w: float | np.ndarray) -> None:
    """Add the IT power of a chunk of servers into their parent nodes' accumulators, in place.

    ``gpu_power_w`` is ``(s, T)`` for the servers ``server_index`` (``s`` indices into the tree's
    index order); ``p_base_w`` is one value or ``(S,)`` for all servers of the tree (the chunk's
    entries are taken from it). Only the servers' direct parents change; :func:`finish_sums`
    fills the levels above.
    """
    names = servers(tree)
    idx = np.asarray(list(server_index) if not isinstance(server_index, np.ndarray) else server_index)
    if idx.size == 0:
        return
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise DcsimInputError("server_index", idx.shape, "a 1-D array of server indices")
    if idx.min() < 0 or idx.max() >= len(names):
        raise DcsimInputError("server_index", int(idx.max() if idx.max() >= len(names) else idx.min()),
                              f"indices 0..{len(names) - 1}")
    gpu = _power_matrix(gpu_power_w, idx.size, "gpu_power_w")
    n_steps = len(next(iter(sums.values())))
    if gpu.shape[1] != n_steps:
        raise DcsimInputError("gpu_power_w", gpu.shape, f"{n_steps} time steps per server, as in the sums",
                              problem="wrong number of steps")
    base = _p_base(p_base_w, len(names))[idx]
    parent_names = np.array([next(tree.predecessors(names[i])) for i in idx], dtype=object)
    parents, group = np.unique(parent_names, return_inverse=True)
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(len(parents) + 1))
    for p, name in enumerate(parents):
        rows = order[bounds[p]:bounds[p + 1]]
        if rows[-1] - rows[0] + 1 == rows.size:  # contiguous: a view, no copy
            block = gpu[rows[0]:rows[-1] + 1]
        else:
            block = gpu[rows]
        acc = sums[name]
        acc += block.sum(axis=0, dtype=np.float64)
        acc += base[rows].sum()


def finish_sums(tree: nx.DiGraph, sums: dict[str, np.ndarray], pue: float) -> dict[str, np.ndarray]:
    """Fill every node above the servers' parents with the sum of its children, then scale the site by PUE.

    Call once, after every server has been added by :func:`aggregate_chunk`. Works in place and
    returns ``sums``.
    """
    if isinstance(pue, bool) or not isinstance(pue, (int, float, np.integer, np.floating)) \
            or not np.isfinite(pue) or pue < 1:
        raise DcsimInputError("site.pue", pue, "a finite number ≥ 1")
    depth = nx.shortest_path_length(tree, SITE)
    for name in sorted(sums, key=lambda n: -depth[n]):
        if name == SITE:
            continue
        (parent,) = tree.predecessors(name)
        sums[parent] += sums[name]
    sums[SITE] *= float(pue)
    return sums


def _config_list(configs: list[str] | str, n_servers: int) -> list[str]:
    if isinstance(configs, str):
        return [configs] * n_servers
    if not isinstance(configs, (list, tuple)) or not all(isinstance(c, str) and c for c in configs):
        raise DcsimInputError("facility.configs", configs, "a configuration name or a list of names")
    if len(configs) == 1:
        return list(configs) * n_servers
    if len(configs) != n_servers:
        raise DcsimInputError("facility.configs", f"{len(configs)} names",
                              f"one name, or one per server ({n_servers})", problem="wrong length")
    return list(configs)


def _power_matrix(power_w: np.ndarray, n_servers: int, where: str) -> np.ndarray:
    power = np.asarray(power_w)
    if power.ndim != 2 or power.shape[0] != n_servers or power.shape[1] < 1:
        raise DcsimInputError(where, power.shape, f"an array of shape ({n_servers}, T) with T ≥ 1")
    if not np.issubdtype(power.dtype, np.number):
        raise DcsimInputError(where, str(power.dtype), "numbers")
    return power


def _p_base(p_base_w: float | np.ndarray, n_servers: int) -> np.ndarray:
    base = np.asarray(p_base_w, dtype=np.float64)
    if base.ndim == 0:
        base = np.full(n_servers, float(base))
    if base.shape != (n_servers,) or not np.all(np.isfinite(base)) or np.any(base < 0):
        raise DcsimInputError("site.p_base_w", p_base_w if base.ndim == 0 else base.shape,
                              f"one non-negative power in watts, or one per server ({n_servers})")
    return base


def _abbreviate(tree: nx.DiGraph, head: int = 3) -> str:
    """Existing names by level, a few of each: 'site; rows: row0, row1, … (10); racks: …'."""
    parts = []
    for level in LEVELS:
        names = nodes_at(tree, level)
        if level == "site":
            parts.append(SITE)
        elif names:
            shown = ", ".join(names[:head]) + (f", … ({len(names)})" if len(names) > head else "")
            parts.append(f"{level}s: {shown}")
    return "; ".join(parts)
