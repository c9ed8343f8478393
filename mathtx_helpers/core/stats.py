"""Statistics the analyses share: shares and statistics with bootstrap intervals, error-rate bounds, 9s.

Knows no track: every function takes arrays (and an explicit Generator where it resamples).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def share_ci(mask, rng: np.random.Generator, n_boot: int = 4000, level: float = 0.95) -> tuple[float, float, float]:
    """Share of True in `mask` with a percentile-bootstrap interval. Resampling n Bernoulli values with
    replacement and taking their mean is exactly Binomial(n, p)/n, which is drawn directly. A share of 0 or 1
    gets the degenerate interval [p, p], as any bootstrap does: read it with its count."""
    mask = np.asarray(mask, dtype=bool)
    if mask.size == 0:
        return math.nan, math.nan, math.nan
    p = float(mask.mean())
    boots = rng.binomial(mask.size, p, size=n_boot) / mask.size
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return p, float(lo), float(hi)


def error_rate_upper(errors: int, n: int, level: float = 0.95) -> float:
    """One-sided upper confidence bound of an error rate seen as `errors` in `n` trials (exact binomial,
    Clopper-Pearson). With zero errors this is 1 - (1 - level)^(1/n), about 3/n: the rule of three."""
    from scipy.stats import beta

    if not 0 <= errors <= n or n < 1:
        raise ValueError(f"need 0 <= errors <= n and n >= 1, got errors={errors}, n={n}")
    return 1.0 if errors == n else float(beta.ppf(level, errors + 1, n - errors))


def nines(accuracy: float) -> float:
    """How many leading 9s an accuracy has, the papers' way: 0.9999 -> 4, 0.985 -> 1, 1.0 -> no limit (inf)."""
    if accuracy >= 1:
        return math.inf
    return int(math.floor(-math.log10(1 - accuracy) + 1e-9))


def bootstrap_ci(stat: Callable[..., float], *arrays, rng: np.random.Generator, n_boot: int = 1000,
                 level: float = 0.95) -> tuple[float, float, float]:
    """stat(*arrays) with a percentile-bootstrap interval (rows of all arrays resampled together). Resamples
    where stat is undefined (NaN) are skipped."""
    arrays = [np.asarray(a) for a in arrays]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError("bootstrap_ci: the arrays must have the same length")
    value = float(stat(*arrays))
    if n == 0:
        return value, math.nan, math.nan
    boots = [stat(*(a[idx] for a in arrays)) for idx in _resamples(rng, n, n_boot)]
    return _percentile_interval(value, boots, level)


def _resamples(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    """(n_boot, n) row indices drawn with replacement: the resamples every bootstrap here shares."""
    return rng.integers(0, n, size=(n_boot, n))


def _percentile_interval(value: float, boots, level: float) -> tuple[float, float, float]:
    """value with the percentile interval of its bootstrap values (undefined, NaN, resamples skipped)."""
    boots = np.asarray(boots, float)
    boots = boots[np.isfinite(boots)]
    if boots.size == 0:
        return value, math.nan, math.nan
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return value, float(lo), float(hi)


def auc(fail, score) -> float:
    """ROC AUC of `score` as a flag for `fail` (NaN when one class is missing)."""
    from sklearn.metrics import roc_auc_score

    fail = np.asarray(fail)
    return float(roc_auc_score(fail, score)) if 0 < fail.sum() < len(fail) else math.nan


def auc_ci(fail, score, rng: np.random.Generator, n_boot: int = 1000,
           level: float = 0.95) -> tuple[float, float, float]:
    """auc(fail, score) with the percentile-bootstrap interval of bootstrap_ci(auc, fail, score) (the same
    resampled rows, drawn from rng the same way), computed without re-sorting each resample: a resample is a
    count per row, and the AUC of counted rows is sum over score levels of positives x (negatives below + half
    the tied ones) / (P N), the Mann-Whitney form of the ROC area with ties counted half, as sklearn's."""
    fail = np.asarray(fail, dtype=bool)
    score = np.asarray(score, dtype=float)
    if len(fail) != len(score):
        raise ValueError("auc_ci: fail and score must have the same length")
    n = len(fail)
    value = auc(fail, score)
    if n == 0:
        return value, math.nan, math.nan
    levels, group = np.unique(score, return_inverse=True)  # group: each row's score level, ascending
    boots = []
    for idx in _resamples(rng, n, n_boot):
        w = np.bincount(idx, minlength=n).astype(float)  # how often each row was drawn
        pos = np.bincount(group, weights=w * fail, minlength=levels.size)
        neg = np.bincount(group, weights=w * ~fail, minlength=levels.size)
        P, N = pos.sum(), neg.sum()
        below = np.cumsum(neg) - neg  # negatives strictly below each level
        boots.append(float(pos @ (below + neg / 2)) / (P * N) if P > 0 and N > 0 else math.nan)
    return _percentile_interval(value, boots, level)
