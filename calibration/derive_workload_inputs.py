"""Derive the shipped workload inputs (dcsim/workload/data/) from the measured data in shared/data.

Writes, deterministically (fixed seed):

- ``azure2024_code_day.csv`` — the Azure 2024 code day per minute: ``minute_of_day, requests,
  mean_context_tokens, mean_generated_tokens`` (means = the per-minute token sums / requests);
- ``azure2023_code_tokens.csv``, ``azure2023_conv_tokens.csv`` — 2,000 ``(n_in, n_out)`` pairs each
  from the Azure 2023 one-hour traces, a stratified sample: the requests are ordered by
  ``(GeneratedTokens, ContextTokens)``, cut into 2,000 strata of equal rank width and one request is
  drawn uniformly per stratum (so the output-length distribution, tail included, is kept closely; the pairing of
  prompt and output lengths is that of real requests); no timestamps are kept;
- ``SOURCES.md`` — attribution, licence, citations, how each file was made, their statistics.

Run from the repository root:  python calibration/derive_workload_inputs.py [--shared-data PATH]
"""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "dcsim" / "workload" / "data"
SEED = 20231116
N_PAIRS = 2000
DAY_REL = Path("arrivals/azure_llm_2024_code_2024-05-16/code_2024-05-16_per_minute.csv")
DAY_MD5 = "c7164d1e652be1aed49b5333f7bdad94"
TRACES = {"code": Path("azure_llm_2023/AzureLLMInferenceTrace_code.csv"),
          "conv": Path("azure_llm_2023/AzureLLMInferenceTrace_conv.csv")}
COMMAND = "python calibration/derive_workload_inputs.py --shared-data ../shared/data"


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def derive_day(src: Path) -> tuple[pl.DataFrame, dict]:
    """Per-minute requests and mean tokens of the Azure 2024 code day."""
    day = pl.read_csv(src)
    assert day.columns == ["utc_minute_start", "minute_of_day", "requests", "context_tokens", "generated_tokens"]
    assert day.height == 1440 and day["minute_of_day"].to_list() == list(range(1440))
    assert day["requests"].min() > 0
    out = day.select(
        "minute_of_day", "requests",
        (pl.col("context_tokens") / pl.col("requests")).round(3).alias("mean_context_tokens"),
        (pl.col("generated_tokens") / pl.col("requests")).round(3).alias("mean_generated_tokens"),
    )
    stats = {
        "requests": int(day["requests"].sum()),
        "mean_rate": day["requests"].sum() / 86400,
        "min_rate": day["requests"].min() / 60, "max_rate": day["requests"].max() / 60,
        "ctx_per_req": day["context_tokens"].sum() / day["requests"].sum(),
        "gen_per_req": day["generated_tokens"].sum() / day["requests"].sum(),
        "md5_src": md5(src),
    }
    return out, stats


def derive_tokens(src: Path, rng: np.random.Generator) -> tuple[pl.DataFrame, dict]:
    """A stratified sample of (n_in, n_out) pairs from a 2023 trace (see the module docstring)."""
    trace = pl.read_csv(src)
    assert trace.columns == ["TIMESTAMP", "ContextTokens", "GeneratedTokens"]
    n_in = trace["ContextTokens"].to_numpy()
    n_out = trace["GeneratedTokens"].to_numpy()
    assert n_in.min() >= 1 and n_out.min() >= 1
    order = np.lexsort((n_in, n_out))
    # stratum i is the position interval [i, i+1)·n/N; one uniform position in each, so every
    # request has the same chance N/n to be picked (strata of unequal whole counts would bias it)
    pos = (np.arange(N_PAIRS) + rng.random(N_PAIRS)) * (len(order) / N_PAIRS)
    pick = order[np.floor(pos).astype(np.int64)]
    table = pl.DataFrame({"n_in": n_in[pick], "n_out": n_out[pick]}).sort("n_out", "n_in")
    stats = {
        "rows": len(n_in), "md5_src": md5(src),
        "full": (n_in.mean(), np.median(n_in), n_out.mean(), np.median(n_out), n_out.max()),
        "sample": (table["n_in"].mean(), table["n_in"].median(), table["n_out"].mean(),
                   table["n_out"].median(), table["n_out"].max()),
        "corr_full": float(np.corrcoef(np.log(n_in), np.log(n_out))[0, 1]),
        "corr_sample": float(np.corrcoef(np.log(table["n_in"].to_numpy()), np.log(table["n_out"].to_numpy()))[0, 1]),
    }
    return table, stats


def sources_md(day: dict, tok: dict[str, dict]) -> str:
    def row(name: str) -> str:
        s = tok[name]
        f, p = s["full"], s["sample"]
        return (f"| `azure2023_{name}_tokens.csv` | {s['rows']:,} requests | {f[0]:.1f} / {p[0]:.1f} | "
                f"{f[1]:.0f} / {p[1]:.0f} | {f[2]:.1f} / {p[2]:.1f} | {f[3]:.0f} / {p[3]:.0f} | "
                f"{f[4]} / {p[4]} | {s['corr_full']:.2f} / {s['corr_sample']:.2f} |")

    return f"""# Shipped workload inputs: sources and derivation

Every file here is derived from public production traces by `calibration/derive_workload_inputs.py`
(deterministic, seed {SEED}). Regenerate them all, from the repository root, with

    {COMMAND}

## Licence and attribution

Both traces are Microsoft Azure's, from `Azure/AzurePublicDataset`, licensed **CC-BY 4.0**
(https://creativecommons.org/licenses/by/4.0/). The files here are derived from them (aggregated or
sub-sampled; no timestamps of the 2023 traces are kept) and are shared under the same licence.
Cite, when you use them:

- Azure LLM inference trace 2023 (`azure2023_*_tokens.csv`): P. Patel, E. Choukse, C. Zhang,
  A. Shah, Í. Goiri, S. Maleki, R. Bianchini, "Splitwise: Efficient generative LLM inference using
  phase splitting", ISCA 2024.
- Azure LLM inference trace 2024 (`azure2024_code_day.csv`): J. Stojkovic, C. Zhang, Í. Goiri,
  J. Torrellas, E. Choukse, "DynamoLLM: Designing LLM Inference Clusters for Performance and Energy
  Efficiency", HPCA 2025 (arXiv 2408.00741).

## `azure2024_code_day.csv` — one production day, per minute

Columns `minute_of_day, requests, mean_context_tokens, mean_generated_tokens`, 1,440 rows: the Azure
2024 code service on 2024-05-16 (UTC; minute 0 = 00:00 UTC). Made from
`shared/data/{DAY_REL}` (md5 `{day['md5_src']}`; its own SOURCES.md tells how it was made from the
upstream week file `AzureLLMInferenceTrace_code_1week.csv`, release `dataset-llm-2024`): the request
count is kept, and the per-minute token sums are divided by it (rounded to 3 decimals).
The day: {day['requests']:,} requests, mean {day['mean_rate']:.1f} req/s (per minute
{day['min_rate']:.1f}–{day['max_rate']:.1f} req/s); {day['ctx_per_req']:.0f} context and
{day['gen_per_req']:.1f} generated tokens per request. It has no sub-minute structure and no
per-request lengths: `RateProfile.builtin_azure2024_code_day()` draws Poisson arrivals within each
minute and rescales an empirical length distribution (by default `azure2023_code`) to each minute's
means. These are the whole service's rates: scale them to a server or a hall with `rate_scale`.

## `azure2023_code_tokens.csv`, `azure2023_conv_tokens.csv` — token-length tables

Columns `n_in, n_out` (prompt = `ContextTokens`, output = `GeneratedTokens`), {N_PAIRS:,} pairs each, from
`shared/data/azure_llm_2023/AzureLLMInferenceTrace_{{code,conv}}.csv` (one hour each on 2023-11-16;
md5 `{tok['code']['md5_src']}` and `{tok['conv']['md5_src']}`). A stratified sample: the trace's
requests are ordered by `(GeneratedTokens, ContextTokens)`, cut into {N_PAIRS:,} consecutive strata of
equal width in rank (rank interval [i, i+1)·n/{N_PAIRS:,}), and one rank is drawn uniformly from each
(seed {SEED}), so every request has the same chance to be picked; each row is a real request's
pair, so resampling rows keeps the joint distribution. The rows are sorted by `(n_out, n_in)`.
`EmpiricalTokens.builtin("azure2023_code")` / `("azure2023_conv")` load them.

Full trace / shipped sample:

| file | source | mean n_in | median n_in | mean n_out | median n_out | max n_out | corr(log n_in, log n_out) |
|---|---|---|---|---|---|---|---|
{row('code')}
{row('conv')}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "__init__.py").touch(exist_ok=True)

    day, day_stats = derive_day(args.shared_data / DAY_REL)
    if day_stats["md5_src"] != DAY_MD5:
        print(f"warning: {DAY_REL} md5 {day_stats['md5_src']} differs from the documented {DAY_MD5}")
    day.write_csv(args.out / "azure2024_code_day.csv")

    rng = np.random.default_rng(SEED)
    tok_stats = {}
    for name, rel in TRACES.items():
        table, tok_stats[name] = derive_tokens(args.shared_data / rel, rng)
        table.write_csv(args.out / f"azure2023_{name}_tokens.csv")

    (args.out / "SOURCES.md").write_text(sources_md(day_stats, tok_stats))
    for f in sorted(args.out.glob("*.csv")):
        print(f"{f.relative_to(REPO) if f.is_relative_to(REPO) else f}  {f.stat().st_size:,} bytes  md5 {md5(f)}")


if __name__ == "__main__":
    main()
