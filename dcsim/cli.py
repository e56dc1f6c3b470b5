"""The `dcsim` command line (typer). Each command is a thin call into the library.

Bad input a user can cause ends in one line on stderr (what, the value, what is allowed) and exit code 2.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, List, Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from dcsim.constants import STEP_S
from dcsim.errors import DcsimInputError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="dcsim: 250 ms power traces of LLM-inference servers, from requests to site power.")
out = Console()
err = Console(stderr=True)


@app.command("configs")
def configs_cmd() -> None:
    """List the shipped calibrated configurations."""
    from dcsim.configs import list_configs

    table = Table(title="shipped configurations")
    table.add_column("name", no_wrap=True)
    for col in ("K", "GPUs", "power per state", "train samples"):
        table.add_column(col, justify="right")
    table.add_column("trained on (campaigns)")
    rows = list_configs()
    for row in rows:
        campaigns = sorted({r.split("/")[0] for r in row["train_runs"]})
        table.add_row(row["name"], str(row["k"]), str(row["n_gpus"]), "AR(1)" if row["ar1"] else "i.i.d.",
                      str(row["train_samples"]), "\n".join(campaigns))
    out.print(table)
    for row in rows:
        out.print(f"{row['name']}: {row['provenance']}", highlight=False)


@app.command("calibrate")
def calibrate_cmd(
    run_dirs: List[Path] = typer.Argument(..., help="measured run directories (power.csv, engine.csv, requests.json)"),
    name: str = typer.Option(..., "--name", help="configuration name, e.g. qwen3-8b_a100_tp1"),
    out_dir: Optional[str] = typer.Option(None, "--out", help="artifact folder (default calibration/artifacts/NAME)"),
    k: Optional[int] = typer.Option(None, "--k", help="fix the number of power states instead of choosing by BIC"),
    ar1: Optional[bool] = typer.Option(None, "--ar1/--iid", help="AR(1) power per state (default: AR(1) for a mixture-of-experts model, from the manifest)"),
    seed: int = typer.Option(0, "--seed", min=0, help="a whole number >= 0"),
    epochs: int = typer.Option(300, "--epochs", min=1, help="most classifier epochs (early stopping usually ends sooner)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an --out folder dcsim wrote (never one holding other files)"),
) -> None:
    """Fit a configuration (surrogate, GMM states, BiGRU) from your own measured runs."""
    from dcsim.calibrate import calibrate

    from dcsim.configs import check_config_name

    if k is not None and k < 1:
        raise DcsimInputError("--k", k, "an integer >= 1")
    target = _path(out_dir, "--out") or Path("calibration") / "artifacts" / check_config_name(name)
    out.print(f"calibrating [bold]{name}[/] from {len(run_dirs)} run(s)")
    config = calibrate(name, [str(d) for d in run_dirs], k=k, ar1=ar1, seed=seed, epochs=epochs, out_dir=target,
                       overwrite=overwrite, log=out.print)
    out.print(f"wrote {target} (K={config.states.k_}, {config.meta['split']['n_train_samples']} training samples)")


def _path(text: Optional[str], option: str) -> Optional[Path]:
    """An output path as typed, or one line for an empty one (``Path("")`` would be the working folder)."""
    if text is None:
        return None
    if not text.strip():
        raise DcsimInputError(option, text, "a file or folder path", problem="empty path")
    return Path(text)


def _read_requests(path: Path) -> Any:
    """A request file (CSV or Parquet: arrival_s, n_in, n_out) as a sorted schedule, or one line naming the file."""
    import polars as pl

    from dcsim.io import read_table
    from dcsim.workload.arrivals import Requests

    allowed = "a CSV or Parquet file with columns arrival_s, n_in, n_out"
    frame = read_table(path, "requests")
    missing = [c for c in ("arrival_s", "n_in", "n_out") if c not in frame.columns]
    if missing:
        raise DcsimInputError(str(path), missing, allowed, problem="missing columns")
    cols = []
    for c in ("arrival_s", "n_in", "n_out"):
        col = frame[c]
        as_number = col.cast(pl.Float64, strict=False) if col.dtype != pl.Boolean else pl.Series([None] * len(col))
        bad = (as_number.is_null() & col.is_not_null()).to_numpy()
        if bad.any():  # text, true/false: never read as a number
            i = int(np.argmax(bad))
            raise DcsimInputError(f"{path}: {c}", col[i], "numbers in arrival_s, n_in, n_out",
                                  problem=f"{int(bad.sum())} value(s) not a number, first in row {i + 1}")
        cols.append(as_number.to_numpy())
    return Requests.from_arrays(*cols, where=str(path))


GENERATE_BYTES_PER_STEP = 256  # one server's A_t, features, states, power and the written table (measured ~200 B)


def _check_fits(duration_s: float, n_requests: float, where: str, value: str) -> None:
    """Refuse, before anything is drawn, a trace whose memory would exceed what this machine has available."""
    from dcsim.facility.engine import BYTES_PER_REQUEST
    from dcsim.io import exceeds_memory, gib

    need = duration_s / STEP_S * GENERATE_BYTES_PER_STEP + n_requests * BYTES_PER_REQUEST
    have = exceeds_memory(need)
    if have is not None:
        raise DcsimInputError(where, value, f"a trace that fits in the {gib(have)} this machine has available now "
                              "(a shorter --duration-s or a lower --rate)",
                              problem=f"too large to generate here (about {gib(need)} of memory)")


def _write_trace(path: Path, t_s: np.ndarray, active: np.ndarray, power_w: np.ndarray, overwrite: bool) -> None:
    import polars as pl

    from dcsim.io import write_table

    frame = pl.DataFrame({"t_s": t_s, "active": active, "power_w": power_w})
    write_table(frame, path, fmt="csv" if path.suffix == ".csv" else "parquet", overwrite=overwrite)


@app.command("generate")
def generate_cmd(
    config: str = typer.Option(..., "--config", help="shipped configuration name or artifact folder"),
    rate: Optional[float] = typer.Option(None, "--rate", help="Poisson arrival rate (req/s)"),
    duration_s: Optional[float] = typer.Option(None, "--duration-s", help="trace length (s)"),
    warm_up_s: float = typer.Option(120.0, "--warm-up-s", help="with --rate: seconds of arrivals before 0, so the "
                                    "server starts in steady state (0: it starts empty)"),
    requests: Optional[Path] = typer.Option(None, "--requests", help="CSV/Parquet with arrival_s, n_in, n_out"),
    seed: int = typer.Option(0, "--seed", min=0, help="a whole number >= 0"),
    out_text: str = typer.Option(..., "--out", help="output trace (.parquet, or .csv)"),
    power_model: Optional[str] = typer.Option(None, "--power-model", help="structured or bigru (default: "
                                              "structured where the configuration ships one)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace the --out file if it exists: the file you named, by name"),
) -> None:
    """Generate one server's 250 ms power trace (t_s, active, power_w) and print its summary."""
    from dcsim import metrics
    from dcsim.configs import load_config
    from dcsim.power.chain import context_steps, generate_server
    from dcsim.workload.arrivals import Poisson, Requests

    from dcsim.io import check_writable

    out_path = _path(out_text, "--out")
    if out_path.suffix not in (".parquet", ".csv"):
        raise DcsimInputError("--out", str(out_path), "a file name ending in .parquet or .csv",
                              problem="unknown output format")
    check_writable(out_path, "--out", overwrite=overwrite)
    if (rate is None) == (requests is None):
        raise DcsimInputError("--rate/--requests", "both" if rate is not None else "neither",
                              "exactly one of --rate R --duration-s S or --requests FILE")
    cfg = load_config(config, power_model=power_model)
    rng = np.random.default_rng(seed)
    rng_arrivals, rng_sim = rng.spawn(2)
    if rate is not None:
        if not (np.isfinite(rate) and rate > 0):
            raise DcsimInputError("--rate", rate, "a positive arrival rate in requests per second")
        if duration_s is None or not (np.isfinite(duration_s) and duration_s > 0):
            raise DcsimInputError("--duration-s", duration_s, "a positive duration in seconds (required with --rate)")
        if not (np.isfinite(warm_up_s) and warm_up_s >= 0):
            raise DcsimInputError("--warm-up-s", warm_up_s, "a number of seconds >= 0")
        tail_s = context_steps(cfg) * STEP_S  # arrivals past the end: the classifier sees the future it would
        _check_fits(duration_s + tail_s, rate * (duration_s + tail_s + warm_up_s), "--duration-s/--rate",
                    f"{duration_s:g} s at {rate:g} requests/s")
        process = Poisson(rate, cfg.tokens)
        drawn = process.sample(duration_s + tail_s, rng_arrivals)
        if warm_up_s > 0:  # the server is already in steady state at 0
            warm = process.sample(warm_up_s, rng_arrivals.spawn(1)[0])
            drawn = Requests.concat([Requests(warm.arrival_s - warm_up_s, warm.n_in, warm.n_out), drawn])
    else:
        drawn = _read_requests(requests)
        if duration_s is None:
            duration_s = float(drawn.arrival_s.max()) + 60.0
            _check_fits(duration_s, len(drawn), f"{requests}: arrival_s",
                        f"a last arrival at {duration_s - 60.0:g} s (the trace runs 60 s past it)")
        elif not (np.isfinite(duration_s) and duration_s > 0):
            raise DcsimInputError("--duration-s", duration_s, "a positive duration in seconds")
        else:
            _check_fits(duration_s, len(drawn), "--duration-s", f"{duration_s:g} s")
    arrival_s = drawn.arrival_s[(drawn.arrival_s >= 0) & (drawn.arrival_s < duration_s)]
    trace = generate_server(cfg, drawn, duration_s, rng_sim)
    _write_trace(out_path, trace.t_s, trace.active, trace.power_w, overwrite)
    summary = metrics.planning_summary(trace.power_w, STEP_S)
    table = Table(title=f"{cfg.name}: {duration_s:g} s, {len(arrival_s)} requests, seed {seed}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("mean active requests", f"{trace.active.mean():.2f}")
    table.add_row("max active requests", f"{trace.active.max():.2f}")
    for label, value in (("GPU power mean (W)", summary["average_w"]), ("GPU power peak (W)", summary["peak_w"]),
                         ("GPU power p5 / p50 / p95 (W)", " / ".join(f"{v:.0f}" for v in np.percentile(trace.power_w, [5, 50, 95]))),
                         ("peak-to-average", summary["peak_to_average"]), ("coefficient of variation", summary["cv"]),
                         ("GPU energy (kWh)", summary["energy_kwh"])):
        table.add_row(label, value if isinstance(value, str) else f"{value:.3f}" if abs(value) < 10 else f"{value:.0f}")
    inside = (trace.served.arrival_s >= 0) & (trace.served.arrival_s < duration_s)
    done = trace.served.end_s[inside & np.isfinite(trace.served.end_s)]
    table.add_row("requests finished in window", f"{int((done <= duration_s).sum())} / {len(arrival_s)}")
    out.print(table)
    out.print(f"wrote {out_path}")


@app.command("run")
def run_cmd(
    scenario: Path = typer.Argument(..., help="scenario TOML file (see scenarios/)"),
    out_dir: Optional[str] = typer.Option(None, "--out", help="output folder (default out/<scenario name>)"),
    sets: List[str] = typer.Option([], "--set", help="override a scenario key: key.path=value (repeatable)"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar and no summary table"),
    power_model: Optional[str] = typer.Option(None, "--power-model", help="structured or bigru (default: "
                                              "structured where the configuration ships one)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an --out folder dcsim wrote (never one holding other files)"),
) -> None:
    """Simulate a facility scenario and write its traces, requests, events, summary and plot."""
    from dcsim.runner import run
    from dcsim.scenario import load_scenario

    target = _path(out_dir, "--out")
    run(load_scenario(scenario, sets), out_dir=target, progress=not quiet, overwrite=overwrite, power_model=power_model)


@app.command("validate")
def validate_cmd(
    config: str = typer.Option(..., "--config", help="shipped configuration name or artifact folder"),
    measured: Path = typer.Option(..., "--measured", help="measured run directory"),
    seeds: int = typer.Option(5, "--seeds", min=1, help="synthetic traces to score (the median is reported)"),
    features: str = typer.Option("simulated", "--features", help="simulated (surrogate + queue) or measured (engine A_t)"),
    as_json: bool = typer.Option(False, "--json", help="print exactly one JSON object on stdout"),
    plot_text: Optional[str] = typer.Option(None, "--plot", help="overlay PNG of measured vs generated power, A_t beneath"),
    power_model: Optional[str] = typer.Option(None, "--power-model", help="structured or bigru (default: "
                                              "structured where the configuration ships one)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace the --plot file if it exists: the file you named, by name"),
) -> None:
    """Score generated against measured power for a run's own requests (medians over seeds)."""
    from dcsim.measured import load_run
    from dcsim.configs import load_config
    from dcsim.studies.validate import validate

    from dcsim.io import check_writable, json_ready

    plot = _path(plot_text, "--plot")
    if plot is not None:
        if plot.suffix != ".png":
            raise DcsimInputError("--plot", str(plot), "a file name ending in .png", problem="not a PNG path")
        check_writable(plot, "--plot", overwrite=overwrite)
    cfg = load_config(config, power_model=power_model)
    run = load_run(measured, compensate_lag=cfg.power_model == "bigru")  # the structured model fits its own lag
    result = validate(cfg, run, seeds=seeds, features=features)
    if plot is not None:
        from dcsim.plots import plot_overlay

        plot_overlay(result.t_s, result.measured_w, result.generated_w, result.active, plot,
                     f"{cfg.name} on {run.name} ({features} A_t)", overwrite=overwrite)
    if as_json:
        sys.stdout.write(json.dumps(json_ready(result.to_json_dict()), allow_nan=False) + "\n")
        return
    table = Table(title=f"{cfg.name} vs {run.name}: median of {seeds} seeds, {features} A_t")
    for col in ("KS", "ACF R²", "NRMSE", "ΔE %"):
        table.add_column(col, justify="right")
    table.add_row(f"{result.ks:.3f}", f"{result.acf_r2:.3f}", f"{result.nrmse:.3f}", f"{result.delta_energy_pct:+.1f}")
    out.print(table)
    out.print(f"scored {result.scored}")
    if plot is not None:
        out.print(f"wrote {plot}")


def _given(exc: BaseException) -> str:
    """``, got 'abc'``: the value an option refused (typer checks it with pydantic, whose error keeps it)."""
    errors = getattr(exc.__cause__, "errors", None)
    try:
        first = errors()[0] if callable(errors) else None
    except Exception:  # pragma: no cover - not a pydantic error after all
        first = None
    return f", got {first['input']!r}" if isinstance(first, dict) and "input" in first else ""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main() -> None:
    """Console entry point: runs the typer app; bad input (a user's file, option or value) becomes one line on
    stderr and exit code 2, never a traceback or a usage panel."""
    try:  # typer >= 0.20 carries its own click
        from typer._click import exceptions as cx
    except ImportError:  # pragma: no cover - older typer on the click package
        from click import exceptions as cx

    command = typer.main.get_command(app)
    try:
        code = command.main(prog_name="dcsim", standalone_mode=False)
    except DcsimInputError as exc:
        err.print(f"dcsim: error: {_one_line(exc)}", markup=False, highlight=False, soft_wrap=True)
        raise SystemExit(2) from None
    except cx.NoArgsIsHelpError as exc:
        out.print(exc.ctx.get_help(), markup=False, highlight=False)
        raise SystemExit(0) from None
    except cx.UsageError as exc:
        where = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
        err.print(f"dcsim: error: {where}{_one_line(exc.format_message())}{_given(exc)} (see --help)", markup=False,
                  highlight=False, soft_wrap=True)
        raise SystemExit(2) from None
    except (typer.Abort, KeyboardInterrupt):
        err.print("dcsim: aborted", markup=False, highlight=False)
        raise SystemExit(130) from None
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
