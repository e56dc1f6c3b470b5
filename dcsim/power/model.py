"""The power-model interface: per-step work of a server in, sampled node GPU power (W) out.

One small abstract base in the scikit-learn style: hyper-parameters in ``__init__``, learned state in attributes
ending in ``_``, ``fit`` learns from measured runs, ``sample`` never refits and takes every random draw from the
``numpy.random.Generator`` passed in. A fitted model describes itself (:meth:`PowerModel.config`) and is stored as
one JSON file in a folder (no pickles)::

    model = StructuredPowerModel().fit(works, measured_power_w)    # works: WorkGrid per run (and draw)
    power_w = model.sample(work, rng)                               # (T,) or (S, T), same shape as the work
    model.save(folder); PowerModel.load(folder)

Subclasses set ``kind`` (the name written to the file) and implement ``fit``, ``sample``, ``to_dict`` and
``from_dict``; :meth:`PowerModel.load` finds the subclass by its ``kind``, without a registry.
"""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from dcsim.errors import DcsimInputError
from dcsim.serving.work import WorkGrid

MODEL_FILE = "power_model.json"
FORMAT_VERSION = 1


class PowerModel(ABC):
    """Work per 250 ms step → node GPU power (W). Subclass it and implement the four abstract methods."""

    kind: ClassVar[str] = ""

    @abstractmethod
    def fit(self, works: Sequence[WorkGrid], power_w: Sequence[np.ndarray]) -> "PowerModel":
        """Learn from pairs (work of a run, its measured node power in W on the same grid; NaN = no sample).

        The same measured trace may appear several times with different work draws (simulated schedules)."""

    @abstractmethod
    def sample(self, work: WorkGrid | np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Sampled node GPU power (W), the shape of the work's arrays: (T,) or (S, T)."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """Hyper-parameters and learned state as plain JSON values."""

    @classmethod
    @abstractmethod
    def from_dict(cls, d: dict[str, Any]) -> "PowerModel":
        """Inverse of :meth:`to_dict`."""

    def config(self) -> dict[str, Any]:
        """Static self-description for run metadata: the class and its hyper-parameters."""
        return {"class": f"{type(self).__module__}:{type(self).__qualname__}", "kind": self.kind}

    def save(self, folder: str | Path) -> Path:
        """Write ``power_model.json`` into ``folder`` (created if needed); return the file's path."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / MODEL_FILE
        body = {"kind": self.kind, "format_version": FORMAT_VERSION, "model": self.to_dict()}
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(body, indent=1, default=_json_default))
        tmp.replace(path)
        return path

    @staticmethod
    def load(folder: str | Path) -> "PowerModel":
        """Read the model a :meth:`save` wrote (a folder or the JSON file itself)."""
        path = Path(folder)
        path = path / MODEL_FILE if path.is_dir() else path
        if not path.is_file():
            raise DcsimInputError(str(path), "missing", f"a folder holding {MODEL_FILE}", problem="file not found")
        try:
            body = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DcsimInputError(str(path), "malformed JSON", "a file written by PowerModel.save",
                                  problem=str(exc)) from None
        kind = body.get("kind") if isinstance(body, dict) else None
        classes = {c.kind: c for c in _subclasses(PowerModel) if c.kind}
        if kind not in classes:
            raise DcsimInputError(f"{path}: kind", kind, ", ".join(sorted(classes)) or "a known power model")
        return classes[kind].from_dict(body["model"])


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def check_pairs(works: Sequence[WorkGrid], power_w: Sequence[np.ndarray]) -> list[tuple[WorkGrid, np.ndarray]]:
    """Training pairs as (WorkGrid of one server (T,), float power (T,)); a clear error for anything else."""
    if isinstance(works, WorkGrid):
        works, power_w = [works], [power_w]
    works, power_w = list(works), list(power_w)
    if not works or len(works) != len(power_w):
        raise DcsimInputError("works/power_w", (len(works), len(power_w)), "equal, non-zero numbers of runs")
    pairs = []
    for i, (w, p) in enumerate(zip(works, power_w)):
        if not isinstance(w, WorkGrid) or w.occupancy.ndim != 1:
            raise DcsimInputError(f"works[{i}]", type(w).__name__, "a WorkGrid of one server (arrays of shape (T,))")
        y = np.asarray(p, dtype=float)
        if y.shape != w.shape:
            raise DcsimInputError(f"power_w[{i}]", y.shape, f"the work's shape {w.shape}")
        if np.any(np.isinf(y)) or np.any(y[np.isfinite(y)] < 0):
            raise DcsimInputError(f"power_w[{i}]", "negative or infinite values", "power in W >= 0, NaN for no sample")
        pairs.append((w, y))
    return pairs
