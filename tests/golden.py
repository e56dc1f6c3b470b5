"""Recorded outputs of every shipped scenario (shortened) and of ``dcsim generate`` / ``dcsim validate`` on small
cases, for a fixed seed: the proof that a rebuild of the glue leaves the numbers unchanged.

``python -m tests.golden --record`` rewrites ``tests/data/golden.json``; ``tests/test_golden.py`` recomputes every
case and compares digests. Parquet tables are hashed byte for byte; ``summary.json`` by its numbers (levels,
latency, request counts, events), not by its wall time or the paths of the machine it ran on.
"""
from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "data" / "golden.json"
SCENARIOS = REPO / "scenarios"

SCENARIO_CASES: dict[str, tuple[str, list[str]]] = {
    "default": ("default.toml", ["simulation.duration_s=120"]),
    "mixed_hall": ("mixed_hall.toml", ["simulation.duration_s=90"]),
    "paper_case_study": ("paper_case_study.toml", ["simulation.duration_s=120", "facility.rows=2",
                                                   "outputs.resolutions_s=[1.0, 60.0]"]),
    "paper_case_study_replay": ("paper_case_study_replay.toml", ["simulation.duration_s=120", "facility.rows=2",
                                                                 "outputs.resolutions_s=[1.0, 60.0]"]),
    "row_breakers": ("row_breakers.toml", ["simulation.duration_s=240", "workload.times_s=[0.0, 40.0, 160.0]"]),
    "row_breakers_cap": ("row_breakers.toml", ["simulation.duration_s=240", "workload.times_s=[0.0, 40.0, 160.0]",
                                               "control.policy=cap"]),
}
SUMMARY_KEYS = ("engine_path", "n_servers", "duration_s", "seed", "resolution_s", "levels", "latency_s", "requests",
                "max_active_per_server", "events")
GENERATE_CASES = {
    "generate_qwen_a100": ["--config", "qwen3-8b_a100_tp1", "--rate", "2", "--duration-s", "60", "--seed", "1"],
    "generate_gemma_moe": ["--config", "gemma-4-26b-a4b_a100_tp2", "--rate", "1", "--duration-s", "60", "--seed", "2"],
    "generate_llama_requests": ["--config", "llama-3.1-70b_h100_tp4", "--requests", "{requests}", "--seed", "3"],
}
VALIDATE_CASES = {
    "validate_qwen_bursty": ("qwen3-8b_a100_tp1", "arrival_pattern_qwen3-8b_a100_bursty", "simulated"),
    "validate_qwen_bursty_measured": ("qwen3-8b_a100_tp1", "arrival_pattern_qwen3-8b_a100_bursty", "measured"),
    "validate_llama_blocks": ("llama-3.1-70b_h100_tp4", "h100_tp4_state_control", "simulated"),
}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _digest_dir(out: Path) -> dict[str, str]:
    digests = {}
    for f in sorted(out.iterdir()):
        if f.suffix == ".parquet":
            digests[f.name] = _sha(f.read_bytes())
    summary = json.loads((out / "summary.json").read_text())
    digests["summary.json"] = _sha(json.dumps({k: summary.get(k) for k in SUMMARY_KEYS}, sort_keys=True).encode())
    return digests


def scenario_case(name: str) -> dict[str, str]:
    from dcsim.runner import run
    from dcsim.scenario import load_scenario

    file, sets = SCENARIO_CASES[name]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        run(load_scenario(SCENARIOS / file, sets), out_dir=out, progress=False)
        return _digest_dir(out)


def _requests_csv(folder: Path) -> Path:
    import numpy as np

    rng = np.random.default_rng(7)
    arrival = np.sort(rng.uniform(0, 50, 40))
    path = folder / "requests.csv"
    lines = ["arrival_s,n_in,n_out"] + [f"{float(a)!r},{int(i)},{int(o)}" for a, i, o in
                                        zip(arrival, rng.integers(20, 2000, 40), rng.integers(5, 400, 40))]
    path.write_text("\n".join(lines) + "\n")
    return path


def generate_case(name: str) -> dict[str, str]:
    from typer.testing import CliRunner

    from dcsim.cli import app

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        args = [a.replace("{requests}", str(_requests_csv(folder))) for a in GENERATE_CASES[name]]
        out = folder / "trace.parquet"
        res = CliRunner().invoke(app, ["generate", *args, "--out", str(out)])
        if res.exit_code != 0:
            raise RuntimeError(f"{name}: exit {res.exit_code}: {res.output} {res.exception!r}")
        return {"trace.parquet": _sha(out.read_bytes())}


def validate_case(name: str, powertrace: Path) -> dict[str, str]:
    from dcsim.measured import load_run
    from dcsim.configs import load_config
    from dcsim.studies.validate import validate

    config, campaign, features = VALIDATE_CASES[name]
    run_dir = sorted((powertrace / campaign).glob("*/"))[0]
    v = validate(load_config(config, power_model="bigru"), load_run(run_dir), seeds=2, features=features)
    return {"scores": _sha(json.dumps(v.to_json_dict(), sort_keys=True).encode()),
            "generated_w": _sha(v.generated_w.tobytes()), "active": _sha(v.active.tobytes())}


def record() -> dict[str, dict[str, str]]:
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import POWERTRACE

    out: dict[str, dict[str, str]] = {}
    for name in SCENARIO_CASES:
        out[name] = scenario_case(name)
        print(name, "ok", flush=True)
    for name in GENERATE_CASES:
        out[name] = generate_case(name)
    if POWERTRACE.is_dir():
        for name in VALIDATE_CASES:
            out[name] = validate_case(name, POWERTRACE)
    return out


if __name__ == "__main__":
    if "--record" in sys.argv:
        GOLDEN.write_text(json.dumps(record(), indent=1, sort_keys=True) + "\n")
        print(f"wrote {GOLDEN}")
    else:
        print(json.dumps(record(), indent=1, sort_keys=True))
