"""Calibrated configuration artifacts: save, load, list, checksums.

A configuration (GPU, model, tensor-parallel degree) is one folder::

    NAME/
      meta.json        provenance: runs and their roles, split, K, BIC curve, validation loss, checksums
      states.json      the Gaussian-mixture state dictionary (Stage 1)
      surrogate.json   the latency surrogate (Eq. 4 and Eq. 5)
      tokens.json      prompt/output token-length quantiles of the training requests (for ``--rate`` runs)
      classifier.pt    the BiGRU state classifier (Stage 2), a torch state dict with its hyper-parameters

Shipped configurations live in ``calibration/artifacts/`` and are installed as the package ``dcsim.artifacts``,
so :func:`load_config` finds them through :mod:`importlib.resources` in editable and normal installs alike.
Everywhere a command takes ``--config``, it accepts a shipped name or the path of such a folder.
"""
from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dcsim.constants import SLOTS_PER_SERVER
from dcsim.errors import DcsimInputError, clipped
from dcsim.power.classifier import StateClassifier
from dcsim.power.states import StateDictionary
from dcsim.serving.latency import LatencySurrogate
from dcsim.io import atomic_dir, json_ready
from dcsim.workload.tokens import TokenQuantiles

ARTIFACT_FILES = ("states.json", "surrogate.json", "tokens.json", "classifier.pt")


@dataclass
class CalibratedConfig:
    """Everything generation needs for one (GPU, model, TP) configuration."""

    name: str
    states: StateDictionary
    classifier: StateClassifier
    surrogate: LatencySurrogate
    tokens: TokenQuantiles
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    structured: Any = None  # a fitted dcsim.power.structured.StructuredPowerModel, when the folder ships one
    power_model: str = "bigru"  # which backend generation uses: "structured" or "bigru" (see POWER_MODELS)

    @property
    def n_gpus(self) -> int:
        return int(self.meta.get("n_gpus", 1))

    def config(self) -> dict[str, Any]:
        """Static self-description for run metadata: which configuration, from where, its power model."""
        return {"name": self.name, "path": None if self.path is None else str(self.path),
                "model": self.meta.get("model"), "gpu": self.meta.get("gpu"), "tp": self.meta.get("tp"),
                "n_gpus": self.n_gpus, "slots": self.slots,
                "power_model": (self.structured.config() if self.power_model == "structured" else
                                {"kind": "bigru+gmm", "k": int(self.states.k_),
                                 "power_noise": "ar1" if self.states.ar1 else "iid",
                                 "classifier_context_steps": int(getattr(self.classifier, "context", 0))}),
                "surrogate": self.surrogate.to_dict()}

    @property
    def slots(self) -> int:
        return int(self.meta.get("slots", SLOTS_PER_SERVER))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
"""A configuration name: a plain file name (letters, digits, '.', '_', '-'; no path, not '.' or '..')."""


def check_config_name(name: Any, where: str = "--name") -> str:
    """``name`` if it is a plain configuration name (:data:`NAME_PATTERN`), else one DcsimInputError."""
    import re

    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name) or name in (".", ".."):
        raise DcsimInputError(where, name, "a plain name of letters, digits, '.', '_' and '-' (up to 100), "
                              "e.g. qwen3-8b_a100_tp1", problem="not a plain configuration name")
    return name


def written_by_calibrate(folder: Path) -> bool:
    """Whether ``folder`` is a configuration folder dcsim calibrate wrote (its meta.json records checksums)."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and "checksums_sha256" in meta


def save_config(config: CalibratedConfig, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write the artifact folder atomically (a temporary folder renamed when complete); return its path."""
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, overwrite=overwrite, owned=written_by_calibrate) as tmp:
        (tmp / "states.json").write_text(json.dumps(config.states.to_dict(), indent=1))
        (tmp / "surrogate.json").write_text(json.dumps(config.surrogate.to_dict(), indent=1))
        (tmp / "tokens.json").write_text(json.dumps(config.tokens.to_dict(), indent=1))
        config.classifier.save(tmp / "classifier.pt")
        files = list(ARTIFACT_FILES)
        if config.structured is not None:
            config.structured.save(tmp)
            files.append("power_model.json")
        meta = dict(config.meta)
        meta["name"] = config.name
        meta["checksums_sha256"] = {f: _sha256(tmp / f) for f in files}
        (tmp / "meta.json").write_text(json.dumps(json_ready(meta), indent=1))
    config.path = out_dir
    config.meta = meta
    return out_dir


def shipped_dir() -> Path:
    """Folder of the shipped configurations (``calibration/artifacts`` in a checkout)."""
    return Path(str(resources.files("dcsim.artifacts")))


def shipped_names() -> list[str]:
    root = shipped_dir()
    return sorted(p.name for p in root.iterdir() if (p / "meta.json").is_file())


def resolve_config_dir(name_or_path: str | Path) -> Path:
    """A shipped name or the path of an artifact folder → the folder; a clear error otherwise."""
    text = str(name_or_path)
    candidate = Path(text)
    if candidate.is_dir():
        if not (candidate / "meta.json").is_file():
            raise DcsimInputError("--config", text, "a folder written by `dcsim calibrate` (it has meta.json)",
                                  problem="not a calibrated configuration folder")
        return candidate
    shipped = shipped_dir() / text
    if "/" not in text and (shipped / "meta.json").is_file():
        return shipped
    if candidate.exists():
        raise DcsimInputError("--config", text, "a shipped configuration name or an artifact folder path",
                              problem="a file, not a configuration folder")
    names = ", ".join(shipped_names()) or "none shipped"
    raise DcsimInputError("--config", text, f"a shipped configuration ({names}) or an artifact folder path",
                          problem="unknown configuration")


def _check_checksum(path: Path, meta: dict) -> None:
    """Refuse an artifact file whose SHA-256 differs from the one its meta.json recorded (none recorded: accepted)."""
    if meta.get("checksums_sha256", {}).get(path.name) not in (None, _sha256(path)):
        raise DcsimInputError(str(path), "checksum mismatch", "the file as written by dcsim calibrate",
                              problem="artifact changed after calibration")


def _read_artifact_json(path: Path, what: str) -> dict:
    """The JSON object in an artifact file; one DcsimInputError naming the file if it is missing or unreadable."""
    if path.is_dir():
        raise DcsimInputError(str(path), "a directory", what, problem="not a file")
    if not path.is_file():
        raise DcsimInputError(str(path), "missing", what, problem="artifact file missing")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DcsimInputError(str(path), path.read_bytes()[exc.start:exc.start + 4], f"UTF-8 JSON text ({what})",
                              problem=f"not UTF-8 text at byte {exc.start}") from None
    except (ValueError, RecursionError) as exc:   # JSONDecodeError, over-long integers, deep nesting
        raise DcsimInputError(str(path), clipped(exc), f"valid JSON ({what})", problem="not JSON") from None
    except OSError as exc:
        raise DcsimInputError(str(path), exc.strerror or "unreadable", what, problem="cannot read") from None
    if not isinstance(data, dict):
        raise DcsimInputError(str(path), f"a JSON {type(data).__name__}", f"a JSON object ({what})")
    return data


def _rebuild(path: Path, what: str, build: Callable[[dict], Any]) -> Any:
    """``build(contents of path)``; its errors re-raised as one DcsimInputError naming the file (and key)."""
    data = _read_artifact_json(path, what)
    try:
        return build(data)
    except DcsimInputError as exc:     # e.g. where 'states.phi' from StateDictionary.from_dict -> 'states.json: phi'
        if exc.where.startswith(str(path)):
            raise
        _, _, key = exc.where.partition(".")
        raise DcsimInputError(f"{path}: {key}" if key else str(path), exc.value, exc.allowed, exc.problem) from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
        raise DcsimInputError(str(path), clipped(exc), f"{what} as written by dcsim calibrate",
                              problem="unusable contents") from None


def _tokens_from_dict(path: Path, d: dict) -> TokenQuantiles:
    """Token quantile tables: two equal-length lists (at least 2 entries) of non-decreasing token counts >= 0."""
    lengths = {}
    for key in ("n_in_quantiles", "n_out_quantiles"):
        values = d.get(key)
        ok = (isinstance(values, list) and len(values) >= 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values))
        arr = np.asarray(values, dtype=float) if ok else None
        if not ok or not (np.all(np.isfinite(arr)) and np.all(arr >= 0) and np.all(np.diff(arr) >= 0)):
            raise DcsimInputError(f"{path}: {key}", "missing" if values is None else clipped(json.dumps(values)),
                                  "a list of at least 2 non-decreasing token counts >= 0 (quantiles)")
        lengths[key] = len(values)
    if len(set(lengths.values())) > 1:
        raise DcsimInputError(str(path), lengths, "n_in_quantiles and n_out_quantiles of equal length")
    return TokenQuantiles.from_dict(d)


def _load_classifier(path: Path) -> StateClassifier:
    if path.is_dir():
        raise DcsimInputError(str(path), "a directory", "a classifier.pt written by dcsim calibrate", problem="not a file")
    try:
        return StateClassifier.load(path)
    except (DcsimInputError, OSError, EOFError, RuntimeError, KeyError, TypeError, ValueError, AttributeError,
            IndexError, OverflowError, pickle.UnpicklingError):
        raise DcsimInputError(str(path), "not a classifier saved by dcsim",
                              "a torch file written by dcsim calibrate (StateClassifier.save)",
                              problem="unreadable classifier") from None


def _check_meta(path: Path, meta: dict) -> None:
    for key in ("n_gpus", "slots"):
        v = meta.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise DcsimInputError(f"{path}: {key}", v if isinstance(v, (int, float)) else clipped(json.dumps(v)),
                                  "a whole number >= 1")
    if "name" in meta and not isinstance(meta["name"], str):
        raise DcsimInputError(f"{path}: name", clipped(json.dumps(meta["name"])), "the configuration's name (a string)")
    sums = meta.get("checksums_sha256", {})
    if not (isinstance(sums, dict) and all(isinstance(v, str) for v in sums.values())):
        raise DcsimInputError(f"{path}: checksums_sha256", clipped(json.dumps(sums)),
                              "an object of file name -> SHA-256 hex digest")


def load_config(name_or_path: str | Path, verify: bool = True, power_model: str | None = None) -> CalibratedConfig:
    """Load a calibrated configuration by shipped name or folder path (checksums verified).

    Any unusable artifact (missing, a folder, not JSON, missing keys, wrong types, not a torch file, changed
    after calibration) is one DcsimInputError naming the file (and key).
    """
    folder = resolve_config_dir(name_or_path)
    meta = _read_artifact_json(folder / "meta.json", "a meta.json written by dcsim calibrate")
    _check_meta(folder / "meta.json", meta)
    for f in ARTIFACT_FILES:
        if (folder / f).is_dir():
            raise DcsimInputError(str(folder / f), "a directory", "the files " + ", ".join(ARTIFACT_FILES),
                                  problem="not a file")
        if not (folder / f).is_file():
            raise DcsimInputError(str(folder / f), "missing", "the files " + ", ".join(ARTIFACT_FILES),
                                  problem="artifact file missing")
        if verify:
            _check_checksum(folder / f, meta)
    states = _rebuild(folder / "states.json", "a state dictionary (means_w, sigmas_w, ...)", StateDictionary.from_dict)
    surrogate = _rebuild(folder / "surrogate.json", "a latency surrogate", LatencySurrogate.from_dict)
    tokens = _rebuild(folder / "tokens.json", "token quantiles (n_in_quantiles, n_out_quantiles)",
                      lambda d: _tokens_from_dict(folder / "tokens.json", d))
    classifier = _load_classifier(folder / "classifier.pt")
    structured = None
    pm = folder / "power_model.json"
    if pm.is_file() and verify:
        _check_checksum(pm, meta)
    if pm.is_file():
        from dcsim.power.model import PowerModel
        import dcsim.power.structured  # noqa: F401  (registers its kind)

        structured = PowerModel.load(folder)
    choice = choose_power_model(power_model, structured is not None, str(folder))
    return CalibratedConfig(meta.get("name", folder.name), states, classifier, surrogate, tokens, meta, folder,
                            structured, choice)


POWER_MODELS = ("structured", "bigru")
"""The power backends: ``structured`` (work ledger → non-negative power equation with a knee, meter, per-state
residual noise; the default wherever a configuration ships one, because it holds on workloads it never saw) and
``bigru`` (the paper's BiGRU over (A_t, ΔA_t) → GMM states)."""


def choose_power_model(asked: str | None, has_structured: bool, where: str) -> str:
    """The backend to use: ``asked``, or the default (structured where shipped, else bigru)."""
    if asked is None:
        return "structured" if has_structured else "bigru"
    if asked not in POWER_MODELS:
        raise DcsimInputError("--power-model", asked, "one of " + ", ".join(POWER_MODELS))
    if asked == "structured" and not has_structured:
        raise DcsimInputError("--power-model", asked, f"bigru: {where} ships no power_model.json",
                              problem="no structured model fitted for this configuration")
    return asked


def list_configs() -> list[dict[str, Any]]:
    """One row per shipped configuration: name, K, GPUs, provenance, training data size."""
    rows = []
    for name in shipped_names():
        meta = json.loads((shipped_dir() / name / "meta.json").read_text())
        rows.append({
            "name": name,
            "k": meta.get("k"),
            "n_gpus": meta.get("n_gpus"),
            "gpu": meta.get("gpu"),
            "model": meta.get("model"),
            "moe": meta.get("moe"),
            "ar1": meta.get("power_noise", "ar1" if meta.get("moe") else "iid") == "ar1",
            "train_runs": [r["name"] for r in meta.get("runs", []) if r.get("role") in ("train", "blocks")],
            "train_samples": meta.get("split", {}).get("n_train_samples"),
            "provenance": meta.get("provenance", ""),
        })
    return rows
