"""Correlations and simple regressions of participant-level scores, with tidy results.

* :func:`fisher_z` and :func:`correlate_columns`: Pearson r of one series with
  many (the seed-to-voxel correlation of the first level) and its Fisher z.
* :func:`correlation`: Pearson or Spearman r with a t-distribution p and a
  percentile bootstrap interval; :func:`bootstrap_correlations` resamples
  participants jointly for several correlations.
* :func:`steiger_test`: Steiger's (1980) z test of two dependent correlations
  that share a variable.
* :func:`mean_change`: the one-sample t test of a change score.
* :func:`robust_regression` (Huber) and :func:`influence` (leverage, Cook's
  distance) of a simple regression.

Data conventions
----------------
Inputs are 1D arrays (or DataFrame columns) of equal length without missing
values: a missing value is an error that asks the caller to drop it
explicitly. Tables have the columns :data:`~craving_circuits.io.schemas.RESULT_COLUMNS`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from craving_circuits.io.schemas import RESULT_COLUMNS

__all__ = [
    "RESULT_COLUMNS",
    "fisher_z",
    "correlate_columns",
    "bootstrap_correlations",
    "correlation",
    "partial_correlation",
    "steiger_test",
    "robust_regression",
    "influence",
    "mean_change",
    "mean_difference",
    "check_pairs",
    "tidy_fit",
]


def _corr_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row pair of x and y, shape (n_rows,)."""
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    den = np.sqrt((xc**2).sum(axis=-1) * (yc**2).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (xc * yc).sum(axis=-1) / den, np.nan)


def check_pairs(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1D of the same length, got {x.shape} and {y.shape}.")
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} of {len(x)} pairs have a missing or infinite value; drop them "
            f"explicitly and report which."
        )
    if len(x) < 4:
        raise ValueError(f"A correlation needs at least 4 pairs, got {len(x)}.")
    return x, y


def bootstrap_correlations(
    columns: dict[str, np.ndarray], pairs: list[tuple[str, str]], method: str = "pearson", n_boot: int = 5000, rng=None
) -> np.ndarray:
    """Bootstrap distribution of several correlations, resampling participants together.

    Parameters
    ----------
    columns : dict of name -> ndarray, shape (n,)
    pairs : list of (name, name)
    method : {"pearson", "spearman"}
        Spearman correlations are Pearson correlations of the ranks within
        each bootstrap sample.
    n_boot : int
    rng : numpy Generator, int or None

    Returns
    -------
    boot : ndarray, shape (n_boot, n_pairs)
    """
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}.")
    rng = np.random.default_rng(rng)
    n = len(next(iter(columns.values())))
    idx = rng.integers(0, n, size=(n_boot, n))
    out = np.empty((n_boot, len(pairs)))
    for j, (a, b) in enumerate(pairs):
        xa, xb = columns[a][idx], columns[b][idx]
        if method == "spearman":
            xa, xb = stats.rankdata(xa, axis=1), stats.rankdata(xb, axis=1)
        out[:, j] = _corr_rows(xa, xb)
    return out


def correlation(x, y, method: str = "pearson", n_boot: int = 5000, rng=None, alpha: float = 0.05) -> dict:
    """A correlation with a percentile bootstrap CI.

    Parameters
    ----------
    x, y : array-like, shape (n,)
    method : {"pearson", "spearman"}
    n_boot : int
        Bootstrap resamples of the participants.
    rng : numpy Generator, int or None
    alpha : float

    Returns
    -------
    row : dict
        ``term`` (the method), ``estimate`` (r), ``se`` (bootstrap SD),
        ``ci_low``, ``ci_high`` (percentile bootstrap), ``p`` (scipy's test of
        r = 0) and ``n``.
    """
    x, y = check_pairs(x, y)
    test = stats.pearsonr(x, y) if method == "pearson" else stats.spearmanr(x, y)
    boot = bootstrap_correlations({"x": x, "y": y}, [("x", "y")], method, n_boot, rng)[:, 0]
    boot = boot[np.isfinite(boot)]
    return {
        "term": method,
        "estimate": float(test.statistic),
        "se": float(boot.std(ddof=1)),
        "ci_low": float(np.quantile(boot, alpha / 2)),
        "ci_high": float(np.quantile(boot, 1 - alpha / 2)),
        "p": float(test.pvalue),
        "n": len(x),
    }


def _residualise(values: np.ndarray, design: np.ndarray) -> np.ndarray:
    """Residuals of each column of ``values`` (..., n, k) after least squares on ``design`` (..., n, q)."""
    coef = np.linalg.lstsq(design, values, rcond=None)[0] if design.ndim == 2 else None
    if coef is not None:
        return values - design @ coef
    pinv = np.linalg.pinv(design)  # batched
    return values - design @ (pinv @ values)


def partial_correlation(x, y, covariates, n_boot: int = 5000, rng=None, alpha: float = 0.05) -> dict:
    """Pearson correlation of ``x`` and ``y`` adjusted for covariates, with a percentile bootstrap CI.

    Both variables are regressed on the covariates (with an intercept) and the
    residuals correlated: the association within levels of the covariates
    (for a group indicator, the pooled within-group correlation). The test of
    zero partial correlation has ``n - 2 - q`` degrees of freedom for ``q``
    covariates; the bootstrap resamples participants and re-adjusts in each
    resample.

    Parameters
    ----------
    x, y : array-like, shape (n,)
    covariates : array-like, shape (n, q)
        Without the intercept (added here).
    n_boot : int
    rng : numpy Generator, int or None
    alpha : float

    Returns
    -------
    row : dict
        ``estimate`` (partial r), ``se`` (bootstrap SD), ``ci_low``,
        ``ci_high``, ``p``, ``n``, ``df``.
    """
    x, y = check_pairs(x, y)
    z = np.asarray(covariates, dtype=float).reshape(len(x), -1)
    if not np.isfinite(z).all():
        raise ValueError("The covariates have missing or infinite values; drop those participants explicitly.")
    design = np.column_stack([np.ones(len(x)), z])
    q = z.shape[1]
    if np.linalg.matrix_rank(design) < design.shape[1]:
        raise ValueError("The covariates are collinear (or constant); drop the redundant ones.")
    df = len(x) - 2 - q
    if df < 2:
        raise ValueError(f"{len(x)} participants are too few for a partial correlation with {q} covariate(s).")
    res = _residualise(np.column_stack([x, y]), design)
    r = float(_corr_rows(res[:, 0], res[:, 1]))
    t = r * np.sqrt(df / max(1 - r**2, np.finfo(float).tiny))
    p = float(2 * stats.t.sf(abs(t), df))
    rng = np.random.default_rng(rng)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    boot_res = _residualise(np.stack([x[idx], y[idx]], axis=-1), design[idx])
    boot = _corr_rows(boot_res[..., 0], boot_res[..., 1])
    boot = boot[np.isfinite(boot)]
    return {
        "estimate": r,
        "se": float(boot.std(ddof=1)),
        "ci_low": float(np.quantile(boot, alpha / 2)),
        "ci_high": float(np.quantile(boot, 1 - alpha / 2)),
        "p": p,
        "n": len(x),
        "df": df,
    }


def steiger_test(r_jk: float, r_jh: float, r_kh: float, n: int) -> tuple[float, float]:
    """Steiger's (1980) z test of two dependent correlations sharing variable j.

    Tests ``r_jk = r_jh`` given the correlation ``r_kh`` of the two other
    variables, with the pooled correlation in the covariance of the Fisher z
    values (Steiger 1980, equations 3, 10 and 14).

    Returns
    -------
    z, p : float
        The statistic and its two-sided p-value.
    """
    for name, r in (("r_jk", r_jk), ("r_jh", r_jh), ("r_kh", r_kh)):
        if not -1 < r < 1:
            raise ValueError(f"{name} must lie strictly between -1 and 1, got {r}.")
    if n < 4:
        raise ValueError(f"n must be at least 4, got {n}.")
    rbar = (r_jk + r_jh) / 2
    psi = r_kh * (1 - 2 * rbar**2) - 0.5 * rbar**2 * (1 - 2 * rbar**2 - r_kh**2)
    cov = psi / (1 - rbar**2) ** 2
    z = (np.arctanh(r_jk) - np.arctanh(r_jh)) * np.sqrt((n - 3) / (2 - 2 * cov))
    return float(z), float(2 * stats.norm.sf(abs(z)))


def tidy_fit(result, alpha: float, names=None) -> pd.DataFrame:
    ci = np.asarray(result.conf_int(alpha))
    names = names or list(result.model.exog_names)
    return pd.DataFrame(
        {
            "term": names,
            "estimate": np.asarray(result.params),
            "se": np.asarray(result.bse),
            "ci_low": ci[:, 0],
            "ci_high": ci[:, 1],
            "p": np.asarray(result.pvalues),
        }
    )


def robust_regression(table: pd.DataFrame, y: str, x: str, alpha: float = 0.05) -> pd.DataFrame:
    """Huber robust regression ``y ~ x`` (statsmodels RLM), less swayed by single participants.

    Returns
    -------
    table : pandas.DataFrame
        :data:`RESULT_COLUMNS`, terms ``intercept`` and ``x``; Wald (normal) inference.
    """

    xv, yv = check_pairs(table[x], table[y])
    result = sm.RLM(yv, sm.add_constant(xv), M=sm.robust.norms.HuberT()).fit()
    return tidy_fit(result, alpha, ["intercept", x])


def influence(table: pd.DataFrame, y: str, x: str) -> pd.DataFrame:
    """Influence of each participant on the least-squares fit ``y ~ x``.

    Returns
    -------
    table : pandas.DataFrame
        ``participant_id, leverage, cooks_distance, studentized_residual,
        influential`` (Cook's distance above 4/n).
    """

    xv, yv = check_pairs(table[x], table[y])
    fit = sm.OLS(yv, sm.add_constant(xv)).fit()
    infl = fit.get_influence()
    cooks = infl.cooks_distance[0]
    return pd.DataFrame(
        {
            "participant_id": table["participant_id"].to_numpy(),
            "leverage": infl.hat_matrix_diag,
            "cooks_distance": cooks,
            "studentized_residual": infl.resid_studentized_external,
            "influential": cooks > 4 / len(xv),
        }
    )


def mean_change(values, term: str, alpha: float = 0.05) -> pd.DataFrame:
    """One-sample t test of a change score against zero.

    Returns
    -------
    row : pandas.DataFrame
        ``n`` and :data:`RESULT_COLUMNS` (t-based CI).
    """
    v = np.asarray(values, dtype=float)
    if not np.isfinite(v).all():
        raise ValueError(f"{int((~np.isfinite(v)).sum())} values are missing; drop them explicitly.")
    if len(v) < 2:
        raise ValueError(f"A mean change needs at least 2 values, got {len(v)}.")
    test = stats.ttest_1samp(v, 0.0)
    ci = test.confidence_interval(1 - alpha)
    return pd.DataFrame(
        [
            {
                "n": len(v),
                "term": term,
                "estimate": v.mean(),
                "se": v.std(ddof=1) / np.sqrt(len(v)),
                "ci_low": ci.low,
                "ci_high": ci.high,
                "p": test.pvalue,
            }
        ]
    )


def mean_difference(x, y, term: str, alpha: float = 0.05) -> pd.DataFrame:
    """Welch's two-sample t test of ``mean(x) - mean(y)``, without assuming equal variances.

    The standard error is ``sqrt(s_x^2 / n_x + s_y^2 / n_y)`` and the degrees of
    freedom are Welch-Satterthwaite's, so the test keeps its level when the
    smaller group is the more variable one.

    Returns
    -------
    row : pandas.DataFrame
        ``n`` (both samples), :data:`RESULT_COLUMNS` (t-based CI) and ``df``.
    """
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    for name, v in (("x", a), ("y", b)):
        if not np.isfinite(v).all():
            raise ValueError(f"{int((~np.isfinite(v)).sum())} values of {name} are missing; drop them explicitly.")
        if len(v) < 2:
            raise ValueError(f"Each sample needs at least 2 values, {name} has {len(v)}.")
    test = stats.ttest_ind(a, b, equal_var=False)
    ci = test.confidence_interval(1 - alpha)
    return pd.DataFrame(
        [
            {
                "n": len(a) + len(b),
                "term": term,
                "estimate": a.mean() - b.mean(),
                "se": np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)),
                "ci_low": ci.low,
                "ci_high": ci.high,
                "p": test.pvalue,
                "df": float(test.df),
            }
        ]
    )


_R_MAX = 1 - 1e-7


def fisher_z(r: np.ndarray) -> np.ndarray:
    """Fisher's z transform ``arctanh(r)``, with ``|r|`` capped just below 1."""
    return np.arctanh(np.clip(r, -_R_MAX, _R_MAX))


def correlate_columns(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of one series with every column of a matrix.

    Parameters
    ----------
    x : ndarray, shape (n_volumes,)
    y : ndarray, shape (n_volumes, n_series)

    Returns
    -------
    r : ndarray, shape (n_series,)
        NaN where a column (or ``x``) has no variance.
    """
    x = np.asarray(x, dtype=np.float64)
    xc = x - x.mean()
    yc = y - y.mean(axis=0, dtype=np.float64).astype(y.dtype)
    num = xc.astype(y.dtype) @ yc
    den = np.sqrt(np.sum(xc**2)) * np.sqrt(np.einsum("ij,ij->j", yc, yc, dtype=np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 0, num / den, np.nan)
    return r
