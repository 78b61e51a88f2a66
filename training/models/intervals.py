"""Prediction intervals from the closes alone: a volatility term structure times empirical quantiles.

At an origin t (the last training day), from the closes up to t only:

1. Daily log returns r. short = EWMA of r^2 (lambda 0.94, RiskMetrics: half-life 11 days);
   long = mean of r^2 over the last 1095 days.
2. The mean daily variance over the next h days decays from short to long as a GARCH(1,1)
   forecast does: v(h) = long + (short - long) * w1 * (1 - phi^h) / (h (1 - phi)), with
   phi = 0.5^(1/half_life); sd(h) = sqrt(h v(h)). (w1, half_life) come from a fixed grid, chosen by
   QLIKE on the h-day returns already known at t (h up to 90): recent volatility matters for days,
   the long-run level for months.
3. z = the h-day log return from every past start s (s + h <= t, s at least a year into the data)
   divided by that start's sd(h); q_L(h) = the L-quantile of |z|. The band is symmetric in log
   price around the prediction: no drift is extrapolated, so it does not lean up after a bull run.
4. Half-widths m_L(h) = q_L(h) sd_t(h) for h = 1..365, never narrowing with h or with L. The
   served interval at level L is prediction * exp(+-m_L(h)).

No constant is tuned to an outcome: lambda, the windows and the grid are fixed; w1, half_life and
the quantiles are estimated from the asset's own past at each origin. Pure numpy and pandas.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from artifact import LEVELS, Interval

MAX_HORIZON = 365  # days with their own half-width; past it they grow like sqrt(h)
EWMA_HALF_LIFE = np.log(0.5) / np.log(0.94)  # RiskMetrics' daily lambda 0.94: 11.2 days
LONG_WINDOW = 1095  # days of squared returns in the long-run variance
MIN_RETURNS = 90  # returns before a variance is estimated
FIT_HORIZONS = (1, 2, 3, 5, 7, 10, 14, 21, 30, 45, 60, 90)
FIT_HALF_LIVES = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)
FIT_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
FIT_STRIDE = 2  # every other start in the fit: overlapping returns say little more
DEFAULT_TERMS = (1.0, 32.0)  # (w1, half_life) when too few returns are known to fit them
CALIBRATION_START = 365  # starts with less history before them give too noisy a variance
MIN_SAMPLES = 180  # standardized returns a horizon's quantile needs, and at least
WINDOWS_PER_QUANTILE = 5  # ... this many non-overlapping h-day windows' worth


def log_prices(closes: pd.Series) -> np.ndarray:
    """Log closes on a contiguous daily grid (a missing day repeats the last close)."""
    series = pd.Series(np.asarray(closes, dtype=float), index=pd.DatetimeIndex(closes.index)).sort_index()
    series = series[~series.index.duplicated(keep="last")].asfreq("D").ffill()
    if series.isna().any() or (series <= 0).any():
        raise ValueError("closes must be positive")
    return np.log(series.to_numpy())


def variances(logp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(short, long) daily variance at each day, from the returns up to it (NaN while too few)."""
    squared = pd.Series(np.diff(logp, prepend=np.nan)) ** 2
    short = squared.ewm(halflife=EWMA_HALF_LIFE, min_periods=MIN_RETURNS, ignore_na=True).mean()
    long = squared.rolling(LONG_WINDOW, min_periods=MIN_RETURNS).mean()
    return short.to_numpy(), long.to_numpy()


def short_weight(h, w1: float, half_life: float) -> np.ndarray:
    """The weight of the short variance in the mean daily variance over the next h days."""
    h = np.asarray(h, dtype=float)
    phi = 0.5 ** (1.0 / half_life)
    return w1 * (1 - phi**h) / (h * (1 - phi))


def horizon_sd(short, long, horizons, w1: float, half_life: float) -> np.ndarray:
    """The sd of the h-day log return forecast at each day: shape (days, horizons)."""
    h = np.atleast_1d(np.asarray(horizons, dtype=float))
    daily = long[:, None] + (short - long)[:, None] * short_weight(h, w1, half_life)[None, :]
    return np.sqrt(h[None, :] * daily)


def forward_returns(logp: np.ndarray, horizons) -> np.ndarray:
    """R[s, j] = log(P[s + h_j] / P[s]); NaN where s + h_j is past the data."""
    returns = np.full((len(logp), len(horizons)), np.nan)
    for j, h in enumerate(horizons):
        if h < len(logp):
            returns[: len(logp) - h, j] = logp[h:] - logp[: len(logp) - h]
    return returns


def fit_terms(short, long, fit_returns: np.ndarray, t: int) -> tuple[float, float]:
    """(w1, half_life) on the grid with the lowest QLIKE over the h-day returns known at day t.

    QLIKE(v) = R^2/v + log v per horizon, with one scale per horizon profiled out: the quantiles
    of the standardized returns absorb the scale.
    """
    known = []
    for j, h in enumerate(FIT_HORIZONS):
        starts = np.arange(0, t - h + 1, FIT_STRIDE)
        starts = starts[
            np.isfinite(short[starts]) & np.isfinite(long[starts]) & np.isfinite(fit_returns[starts, j])
        ]
        if len(starts) >= 50:
            known.append((h, starts, fit_returns[starts, j] ** 2))
    if not known:
        return DEFAULT_TERMS
    best, terms = np.inf, DEFAULT_TERMS
    for half_life in FIT_HALF_LIVES:
        for w1 in FIT_WEIGHTS:
            loss = 0.0
            for h, starts, squared in known:
                variance = h * (
                    long[starts] + (short[starts] - long[starts]) * short_weight(h, w1, half_life)
                )
                loss += np.log(np.mean(squared / variance)) + np.mean(np.log(variance))
            if loss < best - 1e-12:
                best, terms = loss, (w1, half_life)
    return terms


def standardized_quantiles(abs_z: np.ndarray, t: int, shares) -> np.ndarray:
    """q[h-1, k]: the shares[k]-quantile of |z| at horizon h over the starts known at day t.

    A horizon with too few known returns takes the quantiles of the longest shorter one that
    has enough (NaN if none has).
    """
    quantiles = np.full((abs_z.shape[1], len(shares)), np.nan)
    enough = None
    for j in range(abs_z.shape[1]):
        h = j + 1
        z = abs_z[CALIBRATION_START : max(t - h + 1, CALIBRATION_START), j]
        z = z[np.isfinite(z)]
        if len(z) >= max(MIN_SAMPLES, WINDOWS_PER_QUANTILE * h):
            enough = quantiles[j] = np.quantile(z, shares)
        elif enough is not None:
            quantiles[j] = enough
    return quantiles


def half_widths(t: int, levels, abs_z: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """m[k, h-1] at day t: never narrower at a longer horizon or a higher level."""
    shares = np.asarray(levels, dtype=float) / 100
    widths = (standardized_quantiles(abs_z, t, shares) * sd[t][:, None]).T
    return np.maximum.accumulate(np.maximum.accumulate(widths, axis=1), axis=0)


def served_interval(closes: pd.Series, levels=LEVELS) -> Interval:
    """The intervals to serve after the last close, from the closes up to it."""
    logp = log_prices(closes)
    t = len(logp) - 1
    short, long = variances(logp)
    terms = fit_terms(short, long, forward_returns(logp, FIT_HORIZONS), t)
    sd = horizon_sd(short, long, range(1, MAX_HORIZON + 1), *terms)
    widths = half_widths(t, levels, np.abs(forward_returns(logp, range(1, MAX_HORIZON + 1)) / sd), sd)
    if not np.isfinite(widths).all():
        raise ValueError("too little history to calibrate the intervals: about two years are needed")
    rounded = np.round(widths, 5)
    return Interval(
        list(range(1, MAX_HORIZON + 1)),
        {level: (-rounded[k]).tolist() for k, level in enumerate(levels)},
        {level: rounded[k].tolist() for k, level in enumerate(levels)},
    )


def rolling_half_widths(
    logp: np.ndarray, origins, horizons, levels=LEVELS, refit_every: int = 28
) -> np.ndarray:
    """m[i, j, k] at each origin (a day index), horizon and level, each from the data up to it.

    As served_interval at each origin, except that (w1, half_life), which change slowly, are
    refitted every `refit_every` days, so that a backtest over hundreds of origins takes seconds.
    """
    horizons = list(horizons)
    short, long = variances(logp)
    fit_returns = forward_returns(logp, FIT_HORIZONS)
    returns = forward_returns(logp, range(1, max(horizons) + 1))
    widths = np.full((len(origins), len(horizons), len(levels)), np.nan)
    fitted_at, terms, sd, abs_z = None, None, None, None
    for i, t in enumerate(origins):
        if fitted_at is None or t - fitted_at >= refit_every:
            fitted_at, new = t, fit_terms(short, long, fit_returns, t)
            if new != terms:
                terms = new
                sd = horizon_sd(short, long, range(1, max(horizons) + 1), *terms)
                abs_z = np.abs(returns / sd)
        if np.isfinite(short[t]) and np.isfinite(long[t]):
            widths[i] = half_widths(t, levels, abs_z, sd)[:, np.asarray(horizons) - 1].T
    return widths


def trivial_bounds(logp: np.ndarray, t: int, h: int, levels=LEVELS, window: int = 1095):
    """The trivial interval's log bounds at origin t: quantiles of all h-day log returns of the
    `window` days before it (the baseline every served interval must beat)."""
    first = max(0, t - window)
    returns = logp[first + h : t + 1] - logp[first : t - h + 1]
    shares = np.asarray(levels, dtype=float) / 100
    return np.quantile(returns, (1 - shares) / 2), np.quantile(returns, (1 + shares) / 2)
