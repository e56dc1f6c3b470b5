"""``[facility]``: the hall's layout and which configuration each server runs.

``rows × racks_per_row × servers_per_rack`` servers, each running ``config``; or a ``[[facility.mix]]`` of
``{config, fraction}`` (spread through the hall by :func:`mix_assignment`); or an explicit
``[[facility.servers]]`` list of ``{row, rack, config, count}`` (then the list is the layout).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import Field, model_validator

from dcsim.errors import DcsimInputError
from dcsim.plugins import resolve_path
from dcsim.scenario.overrides import NOTHING, Strict

BYTES_PER_SERVER = 4096
"""Memory one server takes before any simulation: its layout entry, its node in the power tree, its streams."""

__all__ = ["FacilityLayout", "MixEntry", "ServerEntry", "mix_assignment"]

_FRACTION_TOL = 1e-6


class MixEntry(Strict):
    """One ``[[facility.mix]]`` entry: a configuration and the fraction of the hall's servers that run it."""

    config: str = Field(min_length=1, description="a calibrated configuration name or artifact folder")
    fraction: float = Field(gt=0, le=1, description="a fraction in (0, 1]; the fractions sum to 1")


class ServerEntry(Strict):
    """One ``[[facility.servers]]`` entry: ``count`` servers in rack ``rack`` of row ``row``."""

    row: int = Field(ge=0, description="a row index ≥ 0")
    rack: int = Field(ge=0, description="a rack index ≥ 0 within the row")
    config: str | None = Field(None, min_length=1,
                               description="a calibrated configuration name or artifact folder "
                                           "(default facility.config)")
    count: int = Field(1, ge=1, description="a whole number of servers ≥ 1")


class FacilityLayout(Strict):
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
    def _one_layout(self) -> FacilityLayout:
        self._fits()
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
                    raise DcsimInputError(f"facility.servers[{i}].config", NOTHING,
                                          "a configuration name here or a default facility.config", problem="missing")
            return self
        for key, v in regular.items():
            if v is None:
                raise DcsimInputError(f"facility.{key}", NOTHING, FacilityLayout.model_fields[key].description,
                                      problem="missing key")
        if self.mix is None:
            if self.config is None:
                raise DcsimInputError("facility.config", NOTHING, "a configuration name for every server, "
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

    def _fits(self) -> None:
        """Refuse, before the layout is built, a hall whose server table alone cannot fit in memory."""
        from dcsim.io import exceeds_memory, gib

        dims = [self.rows, self.racks_per_row, self.servers_per_rack]
        if self.servers is None and all(isinstance(d, int) for d in dims):
            n = dims[0] * dims[1] * dims[2]
        elif self.servers is not None:
            n = sum(s.count for s in self.servers)
        else:
            return
        need = n * BYTES_PER_SERVER
        have = exceeds_memory(need, share=0.5)
        if have is not None:
            raise DcsimInputError("facility", f"{n:,} servers (about {gib(need)} for the hall's layout alone)",
                                  f"a hall that fits in the {gib(have)} this machine has available now",
                                  problem="too large to build here")

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

    def resolve_paths(self, base: Path) -> None:
        """Configuration names that are artifact folders, made absolute (relative to ``base``)."""
        if self.config is not None and _looks_like_path(self.config):
            self.config = resolve_path(base, self.config)
        for entry in (self.mix or []) + (self.servers or []):
            if entry.config is not None and _looks_like_path(entry.config):
                entry.config = resolve_path(base, entry.config)

    def configs_in_order(self) -> list[str]:
        """The configuration of every server, in tree index order."""
        if self.servers is not None:
            return [e["config"] for e in self.layout()]
        if self.mix is None:
            return [self.config] * self.n_servers
        pick = mix_assignment([m.fraction for m in self.mix], self.n_servers)
        return [self.mix[i].config for i in pick]


def _looks_like_path(name: str) -> bool:
    return "/" in name or "\\" in name or name.startswith(".") or name.startswith("~")


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
