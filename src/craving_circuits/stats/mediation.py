"""Mediation with linear models and a bootstrap of the indirect effect.

For a treatment ``x``, a mediator ``m`` and an outcome ``y`` (with optional
covariates ``z``), two least-squares regressions

* ``m = i1 + a x + z g1 + e1`` (path *a*),
* ``y = i2 + c' x + b m + z g2 + e2`` (path *b* and the direct effect *c'*),

give the indirect effect ``a b`` and the total effect ``c = c' + a b`` (exact
for least squares with the same covariates in both models). The indirect effect
is not normally distributed, so its interval comes from a nonparametric
bootstrap of participants: the percentile interval and the bias-corrected (BC)
interval of Efron & Tibshirani (1993). With linear models and a binary
treatment, ``a b`` is the average causal mediation effect of Imai et al. (2010)
under sequential ignorability, which is what statsmodels' ``Mediation``
estimates.

Data conventions
----------------
One row per participant in a DataFrame; ``x`` numeric (0/1 for a group),
``m``, ``y`` and covariates numeric, no missing values (they are refused, not
dropped). The result is a tidy table with :data:`RESULT_COLUMNS` plus the BC
interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from craving_circuits.io.schemas import RESULT_COLUMNS

__all__ = ["RESULT_COLUMNS", "MEDIATION_TERMS", "mediation_analysis"]


#: Rows of :func:`mediation_analysis`, in order.
MEDIATION_TERMS = (
    "a (x -> m)",
    "b (m -> y | x)",
    "direct effect (c')",
    "total effect (c)",
    "indirect effect (a b)",
    "proportion mediated",
)


def _design(data: pd.DataFrame, columns) -> np.ndarray:
    return np.column_stack([np.ones(len(data))] + [data[c].to_numpy(dtype=float) for c in columns])


def _paths(xm: np.ndarray, m: np.ndarray, xy: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """a, b, c' by least squares; ``xm`` is [1, x, z], ``xy`` is [1, x, m, z]."""
    a = np.linalg.lstsq(xm, m, rcond=None)[0][1]
    coef = np.linalg.lstsq(xy, y, rcond=None)[0]
    return float(a), float(coef[2]), float(coef[1])


def mediation_analysis(
    data: pd.DataFrame, x: str, m: str, y: str, covariates=(), n_boot: int = 5000, rng=None, alpha: float = 0.05
) -> pd.DataFrame:
    """Paths, direct, total and indirect effects, with bootstrap intervals for the indirect effect.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per participant.
    x, m, y : str
        Treatment, mediator and outcome columns.
    covariates : sequence of str
        Entered in both models.
    n_boot : int
        Bootstrap resamples of participants.
    rng : numpy.random.Generator, int or None
    alpha : float
        ``1 - alpha`` intervals.

    Returns
    -------
    table : pandas.DataFrame
        Rows :data:`MEDIATION_TERMS`; columns :data:`RESULT_COLUMNS` plus
        ``ci_low_bc, ci_high_bc`` (bias-corrected bootstrap interval, indirect
        effect and proportion only). Paths and direct/total effects carry the
        OLS standard error, t interval and p; the indirect effect and the
        proportion carry the percentile interval (the primary one) and a
        bootstrap p (twice the smaller tail of the ``B`` resamples around 0,
        each tail counted as ``(k + 1) / (B + 1)``, so p is never below
        ``2 / (B + 1)``); the indirect effect also its bootstrap SE (the
        proportion, a ratio, has none). The bias-corrected interval is given
        beside it: it is liberal when one path is zero and the other is not
        (a partial null), so decisions use the percentile interval.

    Raises
    ------
    ValueError
        For missing columns, missing values, too few participants or a constant
        treatment.
    """

    covariates = list(covariates)
    needed = [x, m, y, *covariates]
    absent = [c for c in needed if c not in data.columns]
    if absent:
        raise ValueError(f"The table lacks the column(s) {absent}; it has {list(data.columns)}.")
    n_missing = int(data[needed].isna().any(axis=1).sum())
    if n_missing:
        raise ValueError(
            f"{n_missing} row(s) have missing values in {needed}; drop them explicitly (and list them) "
            "before the mediation analysis."
        )
    n = len(data)
    if n < len(covariates) + 5:
        raise ValueError(f"{n} participants are too few for a mediation model with {len(covariates)} covariate(s).")
    if data[x].nunique() < 2:
        raise ValueError(f"The treatment {x!r} is constant; nothing to mediate.")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}.")
    rng = np.random.default_rng(rng)
    xm, xy, xc = _design(data, [x, *covariates]), _design(data, [x, m, *covariates]), _design(data, [x, *covariates])
    mv, yv = data[m].to_numpy(dtype=float), data[y].to_numpy(dtype=float)
    fit_m, fit_y, fit_c = sm.OLS(mv, xm).fit(), sm.OLS(yv, xy).fit(), sm.OLS(yv, xc).fit()
    a, b = float(fit_m.params[1]), float(fit_y.params[2])
    total = float(fit_c.params[1])
    indirect = a * b
    boot = np.empty((n_boot, 2))
    for i in range(n_boot):
        idx = rng.integers(0, n, n)
        ab, bb, cb = _paths(xm[idx], mv[idx], xy[idx], yv[idx])
        boot[i] = ab * bb, (ab * bb) / (ab * bb + cb) if (ab * bb + cb) != 0 else np.nan
    rows = []
    for term, fit, k in (
        ("a (x -> m)", fit_m, 1),
        ("b (m -> y | x)", fit_y, 2),
        ("direct effect (c')", fit_y, 1),
        ("total effect (c)", fit_c, 1),
    ):
        ci = fit.conf_int(alpha)[k]
        rows.append(
            {
                "term": term,
                "estimate": float(fit.params[k]),
                "se": float(fit.bse[k]),
                "ci_low": float(ci[0]),
                "ci_high": float(ci[1]),
                "p": float(fit.pvalues[k]),
                "ci_low_bc": np.nan,
                "ci_high_bc": np.nan,
            }
        )
    for term, estimate, draws in (
        ("indirect effect (a b)", indirect, boot[:, 0]),
        ("proportion mediated", indirect / total if total else np.nan, boot[:, 1]),
    ):
        draws = draws[np.isfinite(draws)]
        low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
        bc_low, bc_high = _bias_corrected(draws, estimate, alpha)
        # each tail counted as (k + 1) / (B + 1), the observed value being one of the B + 1 possible ones:
        # a bootstrap p is never below what B resamples can show
        tails = ((draws <= 0).sum() + 1, (draws >= 0).sum() + 1)
        p = min(1.0, 2 * min(tails) / (len(draws) + 1))
        # a ratio whose denominator can come near zero has no finite variance: no SE for the proportion
        se = float(draws.std(ddof=1)) if term.startswith("indirect") else np.nan
        rows.append(
            {
                "term": term,
                "estimate": float(estimate),
                "se": se,
                "ci_low": float(low),
                "ci_high": float(high),
                "p": float(p),
                "ci_low_bc": bc_low,
                "ci_high_bc": bc_high,
            }
        )
    return pd.DataFrame(rows, columns=RESULT_COLUMNS + ["ci_low_bc", "ci_high_bc"])


def _bias_corrected(draws: np.ndarray, estimate: float, alpha: float) -> tuple[float, float]:
    """Bias-corrected percentile interval (Efron & Tibshirani 1993, section 14.3, without acceleration)."""
    share = (draws < estimate).mean() + 0.5 * (draws == estimate).mean()
    if share <= 0 or share >= 1 or not np.isfinite(estimate):
        return np.nan, np.nan
    z0 = stats.norm.ppf(share)
    levels = stats.norm.cdf(2 * z0 + stats.norm.ppf([alpha / 2, 1 - alpha / 2]))
    low, high = np.quantile(draws, levels)
    return float(low), float(high)
