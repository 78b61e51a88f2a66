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
   divided by that start's sd(h); q_L(h) = the L-quantile of |z|. A young asset has few such
   starts, so its quantiles are shrunk towards the pooled quantiles of other assets (each
   standardized by its own volatility, from their closes before the origin's year only), which
   weigh as two years of its own starts: the own share grows with its history. The band is
   symmetric in log price around the prediction: no drift is extrapolated.
4. Half-widths m_L(h) = q_L(h) sd_t(h) for h = 1..365, never narrowing with h or with L. The
   served interval at level L is prediction * exp(+-m_L(h)).

No constant is tuned to an outcome: lambda, the windows and the grid are fixed; w1, half_life and
the quantiles are estimated from the asset's own past (and the other assets' before its year) at
each origin. Pure numpy and pandas.
"""

from __future__ import annotations

from dataclasses import dataclass

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
POOL_WEIGHT_STARTS = 730  # the other assets' quantiles weigh as two years of an asset's own starts


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


def standardized_quantiles(
    abs_z: np.ndarray, t: int, shares, first: int = CALIBRATION_START, min_samples: int = MIN_SAMPLES
) -> tuple[np.ndarray, np.ndarray]:
    """(q, n): q[h-1, k] the shares[k]-quantile of |z| at horizon h over the starts known at day t
    from day `first` on, and n[h-1] the number of those starts; NaN and 0 where too few."""
    quantiles = np.full((abs_z.shape[1], len(shares)), np.nan)
    counts = np.zeros(abs_z.shape[1])
    for j in range(abs_z.shape[1]):
        h = j + 1
        z = abs_z[first : max(t - h + 1, first), j]
        z = z[np.isfinite(z)]
        if len(z) >= max(min_samples, WINDOWS_PER_QUANTILE * h):
            quantiles[j], counts[j] = np.quantile(z, shares), len(z)
    return quantiles, counts


def standardized_returns(logp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(|z|, sd): every past h-day log return over its start's forecast sd, for h = 1..MAX_HORIZON,
    with the term structure fitted at the last day; shapes (days, MAX_HORIZON)."""
    t = len(logp) - 1
    short, long = variances(logp)
    terms = fit_terms(short, long, forward_returns(logp, FIT_HORIZONS), t)
    sd = horizon_sd(short, long, range(1, MAX_HORIZON + 1), *terms)
    return np.abs(forward_returns(logp, range(1, MAX_HORIZON + 1)) / sd), sd


@dataclass(frozen=True)
class Pool:
    """Standardized-return quantiles of other assets, by the year they may serve in.

    For year Y, each reference asset's quantiles come from its closes before 1 January of Y only,
    so that no forecast borrows from its own future; they are averaged, weighted by their counts
    of starts (pooling quantiles, not samples: Vincentization).
    """

    names: tuple[str, ...]
    quantiles: dict[int, np.ndarray]  # year -> q[h-1, k] for LEVELS
    counts: dict[int, np.ndarray]  # year -> starts behind q[h-1]

    def at(self, day: pd.Timestamp) -> tuple[np.ndarray, np.ndarray] | None:
        year = pd.Timestamp(day).year
        return (self.quantiles[year], self.counts[year]) if year in self.quantiles else None


NO_POOL = Pool((), {}, {})


def reference_pool(references: dict[str, pd.Series], years, levels=LEVELS) -> Pool:
    """The pool of the reference assets' standardized quantiles for each of `years`."""
    shares = np.asarray(levels, dtype=float) / 100
    quantiles, counts = {}, {}
    for year in sorted(set(years)):
        total_q, total_n = np.zeros((MAX_HORIZON, len(shares))), np.zeros(MAX_HORIZON)
        for closes in references.values():
            known = closes[closes.index < pd.Timestamp(year=year, month=1, day=1)]
            if len(known) <= CALIBRATION_START + MIN_SAMPLES:
                continue
            logp = log_prices(known)
            q, n = standardized_quantiles(standardized_returns(logp)[0], len(logp) - 1, shares)
            total_q += np.nan_to_num(q) * n[:, None]
            total_n += n
        with np.errstate(invalid="ignore"):
            quantiles[year], counts[year] = total_q / total_n[:, None], total_n
    return Pool(tuple(references), quantiles, counts)


def blended_quantiles(own: np.ndarray, own_counts: np.ndarray, pooled) -> tuple[np.ndarray, np.ndarray]:
    """(q, own share): the asset's own quantiles, shrunk towards the pool's by their weights.

    The pool weighs as POOL_WEIGHT_STARTS of the asset's own starts, so the own share grows with
    its history (a year: about a third; ten years: over 80%). NaN where neither has quantiles.
    """
    pool_q, pool_n = pooled if pooled is not None else (np.full_like(own, np.nan), np.zeros(len(own)))
    pool_weight = np.where(pool_n > 0, POOL_WEIGHT_STARTS, 0.0)
    with np.errstate(invalid="ignore"):
        share = own_counts / (own_counts + pool_weight)
    blended = np.nan_to_num(own) * share[:, None] + np.nan_to_num(pool_q) * (1 - share[:, None])
    blended[~np.isfinite(share)] = np.nan
    return blended, share


def fallback_quantiles(quantiles: np.ndarray, share: np.ndarray, abs_z: np.ndarray, t: int, shares):
    """Where neither the asset nor a pool has quantiles (the first assets of all, a lone young one):
    the asset's own from every start with a variance, and at longer horizons the longest shorter
    horizon's; the own share is then 1."""
    missing = ~np.isfinite(quantiles[:, 0])
    if missing.any():
        loose, counts = standardized_quantiles(abs_z, t, shares, first=MIN_RETURNS, min_samples=MIN_RETURNS)
        quantiles[missing], share[missing] = loose[missing], np.where(counts[missing] > 0, 1.0, np.nan)
        filled = pd.DataFrame(quantiles).ffill().to_numpy()
        share[~np.isfinite(quantiles[:, 0]) & np.isfinite(filled[:, 0])] = 1.0
        quantiles = filled
    return quantiles, share


def calibrated_half_widths(closes: pd.Series, levels=LEVELS, pool: Pool = NO_POOL):
    """(m, own share): m[k, h-1] after the last close, never narrower at a longer horizon or a
    higher level, and the share of the asset's own history in each horizon's quantiles."""
    logp = log_prices(closes)
    t = len(logp) - 1
    abs_z, sd = standardized_returns(logp)
    own, counts = standardized_quantiles(abs_z, t, np.asarray(levels, dtype=float) / 100)
    pooled = pool.at(closes.index[-1])
    if pooled is not None:
        pooled = (pooled[0][:, [list(LEVELS).index(level) for level in levels]], pooled[1])
    quantiles, share = blended_quantiles(own, counts, pooled)
    quantiles, share = fallback_quantiles(quantiles, share, abs_z, t, np.asarray(levels, dtype=float) / 100)
    widths = (quantiles * sd[t][:, None]).T
    return np.maximum.accumulate(np.maximum.accumulate(widths, axis=1), axis=0), share


def served_interval(closes: pd.Series, levels=LEVELS, pool: Pool = NO_POOL) -> Interval:
    """The intervals to serve after the last close, from the closes up to it (and the pool)."""
    widths, _ = calibrated_half_widths(closes, levels, pool)
    if not np.isfinite(widths).all():
        raise ValueError("too little history to calibrate the intervals, and no reference assets to borrow from")
    rounded = np.round(widths, 5)
    return Interval(
        list(range(1, MAX_HORIZON + 1)),
        {level: (-rounded[k]).tolist() for k, level in enumerate(levels)},
        {level: rounded[k].tolist() for k, level in enumerate(levels)},
    )
