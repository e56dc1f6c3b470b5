"""Run a scenario end to end and write its outputs: ``dcsim.run(dcsim.load_scenario("scenarios/default.toml"))``.

The scenario becomes explicit objects (tree, calibrated configurations, request streams, control
policy), :func:`dcsim.facility.engine.simulate_hall` runs them, and the results are written to one folder
(default ``out/<scenario name>``), filled as a temporary folder and renamed when complete:

- ``site.parquet``, ``rows.parquet``, ``racks.parquet`` (``servers.parquet`` when asked), one per level
  of ``outputs.levels``: columns ``t_s, node, resolution_s, power_w``, every resolution of
  ``outputs.resolutions_s`` in one long table (block means; site = facility power, PUE × IT; others IT);
- ``events.parquet``: ``t_s, node, event, detail`` (trip, restore, cap_on, cap_off);
- ``requests.parquet`` (``outputs.requests``): ``arrival_s, start_s, first_token_s, end_s, server, lost``;
- ``summary.json``: per level and node the planning statistics (peak, average, peak-to-average, max
  ramp per 15 min, load factor, CoV, energy) at the finest resolution; latency percentiles; request
  counts; events; wall time; the policy; the scenario itself;
- ``power.png`` (``outputs.plot``): site and rows over time.

CSV instead of (or besides) Parquet with ``outputs.formats``.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from dcsim.constants import LEVELS
from dcsim.errors import DcsimInputError
from dcsim.io import json_ready, resample_mean
from dcsim.facility.engine import EVENT_COLUMNS, EngineResult, Facility, simulate_hall
from dcsim.facility.tree import nodes_at, servers
from dcsim.configs import CalibratedConfig
from dcsim.scenario.build import build_inputs, component_configs

__all__ = ["RunResult", "run", "LEVEL_FILES", "limit_report", "limit_warnings"]

LEVEL_FILES = {"site": "site", "row": "rows", "rack": "racks", "server": "servers"}


@dataclass
class RunResult:
    """What a run produced: long trace tables per level, the summary, requests and events, where written."""

    traces: dict[str, pl.DataFrame]
    summary: dict[str, Any]
    requests: pl.DataFrame
    events: pl.DataFrame
    out_dir: Path | None
    engine: EngineResult = field(repr=False)

    def trace(self, node: str, resolution_s: float) -> np.ndarray:
        """One node's power (W) at one written resolution."""
        for frame in self.traces.values():
            sel = frame.filter((pl.col("node") == node) & (pl.col("resolution_s") == float(resolution_s)))
            if sel.height:
                return sel["power_w"].to_numpy()
        raise DcsimInputError("node/resolution_s", (node, resolution_s), "a node and resolution that were written")


# ------------------------------------------------------------------------------------------------ results

def _level_nodes(result: EngineResult, tree: Any, level: str) -> list[str]:
    if level == "site":
        return ["site"]
    return [n for n in nodes_at(tree, level) if n in result.traces]


def _trace_frames(result: EngineResult, tree: Any, levels: list[str], resolutions_s: list[float]) -> dict[str, pl.DataFrame]:
    from dcsim.export import long_frame

    frames = {}
    for level in levels:
        nodes = _level_nodes(result, tree, level)
        traces = {n: result.traces[n] for n in nodes}
        frames[level] = pl.concat([long_frame(traces, result.dt_s, r) for r in resolutions_s], how="vertical")
    return frames


def _percentiles(x: np.ndarray) -> dict[str, float | None]:
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"p50": None, "p99": None, "mean": None}
    p50, p99 = np.percentile(x, [50, 99])
    return {"p50": float(p50), "p99": float(p99), "mean": float(x.mean())}


def limit_report(facility: Facility, result: EngineResult) -> dict[str, dict[str, Any]]:
    """Every node with a limit: its limit and idle floor (W), peak, headroom (limit − peak), time over the limit
    and the worst excess, at the engine's step (site: facility power, others IT power)."""
    report = {}
    for node, attrs in facility.tree.nodes(data=True):
        limit = attrs.get("limit_w")
        if limit is None:
            continue
        row = {"limit_w": float(limit), "idle_floor_w": facility.idle_floor_w(node)}
        trace = result.traces.get(node)
        if trace is not None and trace.size:
            excess = trace - float(limit)
            row.update({"peak_w": float(trace.max()), "headroom_w": float(limit - trace.max()),
                        "time_over_limit_s": float((excess > 0).sum() * result.dt_s),
                        "worst_excess_w": float(max(excess.max(), 0.0))})
        report[node] = row
    return report


def limit_warnings(report: dict[str, dict[str, Any]], policy: Any) -> list[str]:
    """What a planner must not miss: a limit below the node's idle floor (it cannot be met, a breaker trips at
    once, a cap would hold GPUs below idle), or limits exceeded with no policy acting on them."""
    out = []
    for node, r in report.items():
        if r["limit_w"] < r["idle_floor_w"]:
            out.append(f"limit of {node} ({r['limit_w'] / 1e3:.3g} kW) is below its idle floor "
                       f"({r['idle_floor_w'] / 1e3:.3g} kW: idle GPUs + P_base): it cannot be met")
        if policy is None and r.get("time_over_limit_s", 0.0) > 0:
            out.append(f"{node} was over its limit for {r['time_over_limit_s']:g} s (worst by "
                       f"{r['worst_excess_w'] / 1e3:.3g} kW) and control.policy is 'none': nothing acted on it")
    return out


def _summary(scenario: Any, result: EngineResult, tree: Any, levels: list[str], resolutions_s: list[float],
             wall_s: float, name: str, facility: Facility | None = None) -> dict[str, Any]:
    from dcsim.metrics import planning_summary

    finest = min(resolutions_s)
    per_level: dict[str, dict[str, Any]] = {}
    for level in levels:
        per_level[level] = {}
        for node in _level_nodes(result, tree, level):
            trace = resample_mean(result.traces[node], result.dt_s, finest)
            per_level[level][node] = planning_summary(trace, finest)
    req = result.requests
    finished = np.isfinite(req["end_s"])
    counts: dict[str, int] = {}
    for e in result.events:
        counts[e["event"]] = counts.get(e["event"], 0) + 1
    policy = result.policy
    limits = limit_report(facility, result) if facility is not None else {}
    return json_ready({
        "scenario": name,
        "source": scenario.source,
        "engine_path": result.path,
        "n_servers": len(servers(tree)),
        "duration_s": result.t_s.size * result.dt_s,
        "seed": scenario.simulation.seed,
        "resolution_s": finest,
        "levels": per_level,
        "latency_s": {
            "ttft": _percentiles(req["first_token_s"] - req["arrival_s"]),
            "end_to_end": _percentiles(req["end_s"] - req["arrival_s"]),
            "queue_wait": _percentiles(req["start_s"] - req["arrival_s"]),
        },
        "requests": {"total": int(req["arrival_s"].size), "finished": int(finished.sum()),
                     "unfinished": int((~finished & ~req["lost"]).sum()), "lost": int(req["lost"].sum())},
        "max_active_per_server": float(result.max_active.max()) if result.max_active.size else 0.0,
        "events": counts,
        "policy": None if policy is None else {"config": policy.config(), "state": policy.state()},
        "limits": limits,
        "warnings": limit_warnings(limits, policy),
        "wall_time_s": wall_s,
        "scenario_config": scenario.to_dict(),
    })


def _write(out_dir: Path, scenario: Any, result: EngineResult, tree: Any, frames: dict[str, pl.DataFrame],
           requests: pl.DataFrame, events: pl.DataFrame, summary: dict[str, Any], overwrite: bool = False) -> None:
    from dcsim.io import atomic_dir, write_table

    o = scenario.outputs
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        for fmt in o.formats:
            ext = "parquet" if fmt == "parquet" else "csv"
            for level, frame in frames.items():
                write_table(frame, tmp / f"{LEVEL_FILES[level]}.{ext}", fmt)
            write_table(events, tmp / f"events.{ext}", fmt)
            if o.requests:
                write_table(requests, tmp / f"requests.{ext}", fmt)
        if o.plot:
            from dcsim.plots import plot_site_rows

            finest = min(o.resolutions_s)
            rows = [n for n in nodes_at(tree, "row") if n in result.traces]
            plot = {n: resample_mean(result.traces[n], result.dt_s, finest) for n in ["site", *rows]}
            t = np.arange(plot["site"].size) * finest
            plot_site_rows(plot, t, tmp / "power.png", f"{summary['scenario']}: site and rows", rows=rows)
        files = sorted(p.name for p in tmp.iterdir()) + ["summary.json"]
        summary["files"] = files
        (tmp / "summary.json").write_text(json.dumps(summary, indent=1, allow_nan=False))


def _print_summary(console: Any, summary: dict[str, Any], out_dir: Path | None) -> None:
    from rich.table import Table

    table = Table(title=f"{summary['scenario']}: {summary['n_servers']} servers, {summary['duration_s']:g} s, "
                        f"seed {summary['seed']} ({summary['engine_path']} path, {summary['wall_time_s']:.1f} s)")
    for col, justify in (("node", "left"), ("peak kW", "right"), ("mean kW", "right"), ("peak/avg", "right"),
                         ("max ramp kW/15 min", "right"), ("energy kWh", "right")):
        table.add_column(col, justify=justify)
    shown = [("site", summary["levels"].get("site", {}))]
    rows = summary["levels"].get("row", {})
    shown.append(("row", rows if len(rows) <= 12 else {}))
    for _, nodes in shown:
        for node, s in nodes.items():
            ramp = s["max_ramp_w_per_15min"]
            table.add_row(node, f"{s['peak_w'] / 1e3:.1f}", f"{s['average_w'] / 1e3:.1f}", f"{s['peak_to_average']:.2f}",
                          "–" if ramp is None else f"{ramp / 1e3:.1f}", f"{s['energy_kwh']:.3g}")
    console.print(table)
    lat, req = summary["latency_s"], summary["requests"]

    def fmt(d: dict) -> str:
        return "–" if d["p50"] is None else f"p50 {d['p50']:.2f} s, p99 {d['p99']:.2f} s"

    console.print(f"requests {req['total']} (finished {req['finished']}, in flight at the end {req['unfinished']}, "
                  f"lost {req['lost']}); TTFT {fmt(lat['ttft'])}; end to end {fmt(lat['end_to_end'])}")
    if summary["events"]:
        console.print("events: " + ", ".join(f"{k} × {v}" for k, v in sorted(summary["events"].items())))
    limits = summary.get("limits") or {}
    if limits:
        shown = sorted(limits.items(), key=lambda kv: kv[1].get("headroom_w", float("inf")))[:12]
        console.print("limits (tightest first): " + "; ".join(
            f"{node} {r['limit_w'] / 1e3:.3g} kW, headroom {r['headroom_w'] / 1e3:+.3g} kW, over for "
            f"{r['time_over_limit_s']:g} s" for node, r in shown if "headroom_w" in r))
    if out_dir is not None:
        console.print(f"wrote {out_dir}")


# --------------------------------------------------------------------------------------------------- run

def _in_scenario(e: DcsimInputError, scenario: Any, facility: Facility, streams: Any) -> DcsimInputError:
    """An error the simulation raised (a plug-in's failure, a run too large), naming the scenario file; a run too
    large also says what made it so: duration, servers and requests per second."""
    source = scenario.source
    where = e.where if e.where.startswith(source) else f"{source}: {e.where}"
    value = e.value
    if e.where == "simulation":
        from dcsim.facility.engine import expected_requests

        d = scenario.simulation.duration_s
        total = expected_requests(streams, d)
        rate = "" if total is None else f", {total / d:.3g} requests/s in all"
        value = f"{value} for duration_s = {d:g} s on {len(facility.server_names):,} servers{rate}"
    return DcsimInputError(where, value, e.allowed, e.problem)


def run(scenario: Any, out_dir: str | Path | None = None, progress: bool = True,
        configs: dict[str, CalibratedConfig] | None = None, write: bool = True,
        chunk_servers: int | None = None, overwrite: bool = False, power_model: str | None = None) -> RunResult:
    """Simulate ``scenario`` (a :class:`dcsim.scenario.Scenario`) and write its outputs to ``out_dir``
    (default ``out/<scenario name>``); see the module docstring.

    ``progress``: a progress bar while it runs and a summary table at the end (rich). ``configs``: calibrated
    configurations by name, instead of loading the scenario's names. ``write=False`` returns the results only.
    ``power_model``: ``structured`` or ``bigru`` for every configuration (default: each one's own, structured
    where it ships one). ``overwrite``: replace an existing output folder that dcsim wrote (a folder with other files is never
    replaced); checked before the simulation starts, so a bad ``out_dir`` costs nothing.
    """
    from rich.console import Console

    start = time.perf_counter()
    name = Path(scenario.source).stem if scenario.source not in ("", "<dict>") else "scenario"
    target = Path(out_dir) if out_dir is not None else Path("out") / name
    if write:
        from dcsim.io import check_writable

        check_writable(target, "--out", overwrite=overwrite, folder=True)
    facility, streams, policy = build_inputs(scenario, configs, power_model)
    sim = scenario.simulation
    levels = [lv for lv in LEVELS if lv in scenario.outputs.levels]
    kwargs: dict[str, Any] = {} if chunk_servers is None else {"chunk_servers": chunk_servers}
    console = Console(stderr=True)

    def simulate(report: Any = None) -> EngineResult:
        try:
            return simulate_hall(facility, streams, sim.duration_s, seed=sim.seed, dt_s=sim.step_s, policy=policy,
                                 interval_s=scenario.control.interval_s, keep_servers="server" in levels,
                                 progress=report, warm_up_s=sim.warm_up_s, **kwargs)
        except DcsimInputError as e:
            raise _in_scenario(e, scenario, facility, streams) from None

    if progress:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                      TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True) as bar:
            task = bar.add_task(name, total=1.0)

            def report(done: float, total: float, phase: str) -> None:
                bar.update(task, completed=done / total if total else 1.0, description=f"{name}: {phase}")

            result = simulate(report)
    else:
        result = simulate()
    tree = facility.tree
    resolutions = sorted(float(r) for r in scenario.outputs.resolutions_s)
    frames = _trace_frames(result, tree, levels, resolutions)
    requests = pl.DataFrame(result.requests).select(
        pl.col("arrival_s", "start_s", "first_token_s", "end_s").cast(pl.Float64), pl.col("server").cast(pl.Int64),
        pl.col("lost").cast(pl.Boolean))
    events = pl.DataFrame(result.events or None, schema={"t_s": pl.Float64, "node": pl.String, "event": pl.String,
                                                         "detail": pl.String}).select(EVENT_COLUMNS)
    summary = _summary(scenario, result, tree, levels, resolutions, time.perf_counter() - start, name, facility)
    summary["components"] = json_ready({**component_configs(streams, policy),
                                        "configurations": {n: c.config() for n, c in facility.configs.items()}})
    summary["warnings"] = list(getattr(scenario, "warnings", [])) + summary["warnings"]
    for line in summary["warnings"]:
        console.print(f"dcsim: warning: {line}", markup=False, highlight=False, soft_wrap=True)
    written = None
    if write:
        _write(target, scenario, result, tree, frames, requests, events, summary, overwrite)
        written = target
    if progress:
        _print_summary(console, summary, written)
    return RunResult(frames, summary, requests, events, written, result)
