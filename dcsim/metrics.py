"""Trace metrics: fidelity of a synthetic trace against a measured one, and planning statistics.

All functions take 1-D arrays of power in watts on a regular grid of step ``dt_s`` seconds
(0.25 s by default, the measurement grid) and return plain floats, so they can be used
anywhere in the pipeline. Bad input (empty, NaN/inf, not 1-D, unequal lengths where the
metric pairs samples) raises :class:`dcsim.errors.DcsimInputError`. A metric that is
mathematically undefined for valid input (the ACF of a constant trace, the NRMSE against a
flat measured trace) returns NaN, as the paper shows "—" for them.

Fidelity (paper §4.1, Tables 1–2):

- ``ks``: two-sample Kolmogorov–Smirnov statistic of the power samples (order ignored).
- ``acf_r2``: coefficient of determination of the synthetic ACF against the measured ACF
  over lags 1..max_lag (50 by default, 12.5 s at 250 ms).
- ``nrmse``: point-wise RMSE divided by the measured range (max − min).
- ``delta_energy_pct``: signed (E_syn − E_meas) / E_meas × 100 over the whole trace.

Planning (paper §5, Table 3): peak, average, peak-to-average ratio, maximum 15-minute ramp,
load factor, coefficient of variation and energy.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from dcsim.constants import STEP_S
from dcsim.errors import DcsimInputError, check_number, as_1d_array

__all__ = [
    "ks_statistic",
    "acf",
    "acf_r2",
    "nrmse",
    "delta_energy_pct",
    "fidelity",
    "peak_w",
    "average_w",
    "peak_to_average",
    "load_factor",
    "coefficient_of_variation",
    "energy_kwh",
    "max_ramp_w",
    "planning_summary",
]

JOULES_PER_KWH = 3.6e6


# --- input checks -------------------------------------------------------------------------


def _series(x: Any, name: str) -> np.ndarray:
    """``x`` as a 1-D float array of finite samples (at least one), or a DcsimInputError."""
    return as_1d_array(name, x, "power samples (W)", nonempty=True)


def _pair(measured_w: Any, synthetic_w: Any, paired: bool) -> tuple[np.ndarray, np.ndarray]:
    m = _series(measured_w, "measured_w")
    s = _series(synthetic_w, "synthetic_w")
    if paired and m.size != s.size:
        raise DcsimInputError(
            "synthetic_w", s.size, f"the same length as measured_w ({m.size} samples)", "length"
        )
    return m, s


def _positive(value: Any, name: str) -> float:
    return check_number(name, value, "a positive number of seconds", low_open=True)


def _max_lag(max_lag: Any, n: int, name: str = "max_lag") -> int:
    if isinstance(max_lag, bool) or not isinstance(max_lag, (int, np.integer)) or not 1 <= max_lag < n:
        raise DcsimInputError(name, max_lag, f"an integer lag from 1 to {n - 1} (below the trace length {n})")
    return int(max_lag)


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den != 0 else float("nan")


# --- fidelity -----------------------------------------------------------------------------


def ks_statistic(measured_w: np.ndarray, synthetic_w: np.ndarray) -> float:
    """Two-sample Kolmogorov–Smirnov statistic in [0, 1]; 0 for equal distributions.

    Compares the marginal distributions only, so the two traces may differ in length.
    """
    m, s = _pair(measured_w, synthetic_w, paired=False)
    return float(stats.ks_2samp(m, s, method="asymp").statistic)  # asymp: no exact p-value


def acf(x: np.ndarray, max_lag: int = 50) -> np.ndarray:
    """Autocorrelation of ``x`` at lags 1..max_lag (biased estimator).

    r_k = Σ_{t<n−k} (x_t − x̄)(x_{t+k} − x̄) / Σ_t (x_t − x̄)², so |r_k| ≤ 1 and long lags shrink
    towards 0 by (n − k)/n. A constant series has no autocorrelation: all lags are NaN.
    ``max_lag`` must be below the length of ``x``.
    """
    arr = _series(x, "x")
    lag = _max_lag(max_lag, arr.size)
    if np.ptp(arr) == 0:  # exact test: a float mean of a constant can leave tiny residuals
        return np.full(lag, np.nan)
    c = arr - arr.mean()
    var0 = float(np.dot(c, c))
    return np.array([np.dot(c[:-k], c[k:]) for k in range(1, lag + 1)]) / var0


def acf_r2(measured_w: np.ndarray, synthetic_w: np.ndarray, max_lag: int = 50) -> float:
    """R² of the synthetic ACF against the measured ACF over lags 1..max_lag.

    R² = 1 − SS_res / SS_tot with SS_res = Σ_k (r_meas,k − r_syn,k)² and
    SS_tot = Σ_k (r_meas,k − mean_k r_meas)². The paper (§4.1) says only "agreement between the
    autocorrelation functions"; this is the coefficient of determination with the measured ACF
    as reference (as in the authors' released code), not a squared correlation: it is 1 for a
    perfect match, is not symmetric, and goes negative when the synthetic ACF is further from
    the measured one than the measured ACF's own mean. NaN when either trace is constant
    (its ACF is undefined; the paper's "—" for TDP and mean baselines) or when the measured ACF
    is flat and the synthetic one differs. The traces may differ in length.
    """
    m, s = _pair(measured_w, synthetic_w, paired=False)
    lag = _max_lag(max_lag, min(m.size, s.size))
    r_m, r_s = acf(m, lag), acf(s, lag)
    if np.isnan(r_m).any() or np.isnan(r_s).any():
        return float("nan")
    ss_res = float(np.sum((r_m - r_s) ** 2))
    ss_tot = float(np.sum((r_m - r_m.mean()) ** 2))
    if ss_tot == 0:
        return 1.0 if ss_res == 0 else float("nan")
    return 1.0 - ss_res / ss_tot


def nrmse(measured_w: np.ndarray, synthetic_w: np.ndarray) -> float:
    """Point-wise RMSE divided by the measured range (max − min); NaN if the measured trace is flat."""
    m, s = _pair(measured_w, synthetic_w, paired=True)
    rmse = float(np.sqrt(np.mean((s - m) ** 2)))
    return _ratio(rmse, float(np.ptp(m)))


def delta_energy_pct(measured_w: np.ndarray, synthetic_w: np.ndarray, dt_s: float = STEP_S) -> float:
    """Signed energy error in percent: (E_syn − E_meas) / E_meas × 100 over the whole trace.

    Positive when the synthetic trace uses more energy. Energy is Σ power × dt_s (the step cancels
    in the ratio but is checked). NaN if the measured energy is zero. Paper tables report |ΔE|.
    """
    m, s = _pair(measured_w, synthetic_w, paired=True)
    dt = _positive(dt_s, "dt_s")
    e_meas, e_syn = float(m.sum()) * dt, float(s.sum()) * dt
    return _ratio(100.0 * (e_syn - e_meas), e_meas)


def fidelity(
    measured_w: np.ndarray, synthetic_w: np.ndarray, dt_s: float = STEP_S, max_lag: int = 50
) -> dict[str, float]:
    """All four fidelity metrics of one synthetic trace against one measured trace of equal length.

    Keys: ``ks``, ``acf_r2``, ``nrmse``, ``delta_energy_pct`` (signed, in %).
    """
    m, s = _pair(measured_w, synthetic_w, paired=True)
    return {
        "ks": ks_statistic(m, s),
        "acf_r2": acf_r2(m, s, max_lag),
        "nrmse": nrmse(m, s),
        "delta_energy_pct": delta_energy_pct(m, s, dt_s),
    }


# --- planning -----------------------------------------------------------------------------


def peak_w(power_w: np.ndarray) -> float:
    """Largest sample, in W."""
    return float(np.max(_series(power_w, "power_w")))


def average_w(power_w: np.ndarray) -> float:
    """Mean power, in W."""
    return float(np.mean(_series(power_w, "power_w")))


def peak_to_average(power_w: np.ndarray) -> float:
    """Peak / average (≥ 1 for non-negative power); NaN if the average is zero."""
    p = _series(power_w, "power_w")
    return _ratio(float(p.max()), float(p.mean()))


def load_factor(power_w: np.ndarray) -> float:
    """Average / peak, in (0, 1] for positive power (1 for a flat load); NaN if the peak is zero."""
    p = _series(power_w, "power_w")
    return _ratio(float(p.mean()), float(p.max()))


def coefficient_of_variation(power_w: np.ndarray) -> float:
    """Population standard deviation / mean; NaN if the mean is zero."""
    p = _series(power_w, "power_w")
    return _ratio(float(p.std()), float(p.mean()))


def energy_kwh(power_w: np.ndarray, dt_s: float = STEP_S) -> float:
    """Energy in kWh: Σ power_w × dt_s / 3.6e6 (each sample holds for one step)."""
    p = _series(power_w, "power_w")
    return float(p.sum()) * _positive(dt_s, "dt_s") / JOULES_PER_KWH


def max_ramp_w(power_w: np.ndarray, dt_s: float = STEP_S, window_s: float = 900.0) -> float:
    """Largest |change| between consecutive window averages, in W per window.

    The trace is cut into consecutive blocks of ``window_s`` (15 min by default, the utility
    metering interval), each block is averaged, and the result is max |diff| of those averages.
    A trailing partial block is dropped. ``window_s`` must be a whole number of steps
    (at least one). NaN when the trace holds fewer than two full windows.
    """
    p = _series(power_w, "power_w")
    dt = _positive(dt_s, "dt_s")
    window = _positive(window_s, "window_s")
    steps = round(window / dt)
    if steps < 1 or not np.isclose(steps * dt, window, rtol=1e-9, atol=0.0):
        raise DcsimInputError("window_s", window_s, f"a whole multiple of dt_s ({dt_s} s)")
    blocks = p.size // steps
    if blocks < 2:
        return float("nan")
    means = p[: blocks * steps].reshape(blocks, steps).mean(axis=1)
    return float(np.max(np.abs(np.diff(means))))


def planning_summary(power_w: np.ndarray, dt_s: float = STEP_S) -> dict[str, float]:
    """The planning statistics of one trace (paper Table 3), as plain floats.

    Keys: ``peak_w``, ``average_w``, ``peak_to_average``, ``max_ramp_w_per_15min``,
    ``load_factor``, ``cv``, ``energy_kwh``.
    """
    p = _series(power_w, "power_w")
    return {
        "peak_w": peak_w(p),
        "average_w": average_w(p),
        "peak_to_average": peak_to_average(p),
        "max_ramp_w_per_15min": max_ramp_w(p, dt_s, 900.0),
        "load_factor": load_factor(p),
        "cv": coefficient_of_variation(p),
        "energy_kwh": energy_kwh(p, dt_s),
    }
