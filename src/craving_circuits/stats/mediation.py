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

Stacked replicates: a table with a ``replicate`` column holds several
replicates (see :mod:`craving_circuits.stats.contrasts`); every replicate is
analysed at once, the least squares of all replicates and bootstrap resamples
batched, each replicate's resamples drawn from its own Generator as alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from craving_circuits.io.schemas import RESULT_COLUMNS
from craving_circuits.stats.contrasts import (
    generators,
    replicate_chunks,
    replicate_ids,
    replicate_major,
    resample_counts,
    resample_indices,
    row_quantiles,
    stack_columns,
    with_replicates,
)
from craving_circuits.stats.correlation import least_squares, resampled_coefficients

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


def _design(*columns: np.ndarray) -> np.ndarray:
    """``[1, columns...]``, shape (n_replicates, n_max, 1 + len(columns)) (padding rows: NaN)."""
    return np.stack([np.ones_like(columns[0]), *columns], axis=-1)


def mediation_analysis(
    data: pd.DataFrame, x: str, m: str, y: str, covariates=(), n_boot: int = 5000, rng=None, alpha: float = 0.05
) -> pd.DataFrame:
    """Paths, direct, total and indirect effects, with bootstrap intervals for the indirect effect.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per participant (and replicate, with a ``replicate`` column).
    x, m, y : str
        Treatment, mediator and outcome columns.
    covariates : sequence of str
        Entered in both models.
    n_boot : int
        Bootstrap resamples of participants: ``rng.integers(0, n, size=(n_boot, n))``.
    rng : numpy.random.Generator, int or None; for stacked replicates, see
        :func:`craving_circuits.stats.contrasts.generators`
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
        (a partial null), so decisions use the percentile interval. With
        stacked replicates, a ``replicate`` column in front and the rows of
        each replicate together.

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
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}.")
    replicates = replicate_ids(data)
    values = [np.atleast_2d(v) for v in stack_columns(data, needed, replicates)]
    xv, mv, yv, zs = values[0], values[1], values[2], values[3:]
    n = np.isfinite(xv).sum(axis=1)
    if (n < len(covariates) + 5).any():
        raise ValueError(
            f"{int(n.min())} participants are too few for a mediation model with {len(covariates)} covariate(s)."
        )
    spread = np.nanmax(xv, axis=1) - np.nanmin(xv, axis=1)
    if (spread == 0).any():
        raise ValueError(f"The treatment {x!r} is constant; nothing to mediate.")
    xm, xy = _design(xv, *zs), _design(xv, mv, *zs)
    fit_m, fit_y, fit_c = least_squares(xm, mv), least_squares(xy, yv), least_squares(xm, yv)
    a, b, total = fit_m["params"][:, 1], fit_y["params"][:, 2], fit_c["params"][:, 1]
    indirect = a * b
    rngs = generators(rng, replicates)
    width = xv.shape[1]
    boot = np.empty((len(n), n_boot, 2))
    present = np.isfinite(xv)
    xm0, xy0 = np.where(present[..., None], xm, 0.0), np.where(present[..., None], xy, 0.0)
    mv0, yv0 = np.where(present, mv, 0.0)[..., None], np.where(present, yv, 0.0)[..., None]
    for part in replicate_chunks(len(n), n_boot, width):
        counts = resample_counts(resample_indices(rngs[part], n[part], n_boot, width), n[part])
        ab = resampled_coefficients(xm0[part], mv0[part], counts)[..., 1, 0]
        coef = resampled_coefficients(xy0[part], yv0[part], counts)[..., 0]
        product = ab * coef[..., 2]
        share_den = product + coef[..., 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            boot[part] = np.stack([product, np.where(share_den != 0, product / share_den, np.nan)], axis=-1)
    frames = []
    for term, fit, k in (
        ("a (x -> m)", fit_m, 1),
        ("b (m -> y | x)", fit_y, 2),
        ("direct effect (c')", fit_y, 1),
        ("total effect (c)", fit_c, 1),
    ):
        estimate, se, df = fit["params"][:, k], fit["bse"][:, k], fit["df_resid"]
        half = stats.t.ppf(1 - alpha / 2, df) * se
        frames.append(
            {
                "term": term,
                "estimate": estimate,
                "se": se,
                "ci_low": estimate - half,
                "ci_high": estimate + half,
                "p": 2 * stats.t.sf(np.abs(estimate / se), df),
                "ci_low_bc": np.nan,
                "ci_high_bc": np.nan,
            }
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        proportion = np.where(total != 0, indirect / total, np.nan)
    for term, estimate, draws in (
        ("indirect effect (a b)", indirect, boot[..., 0]),
        ("proportion mediated", proportion, boot[..., 1]),
    ):
        finite = np.isfinite(draws)
        k = finite.sum(axis=1)
        low, high = row_quantiles(draws, [alpha / 2, 1 - alpha / 2]).T
        bc_low, bc_high = _bias_corrected(draws, estimate, alpha)
        # each tail counted as (k + 1) / (B + 1), the observed value being one of the B + 1 possible ones:
        # a bootstrap p is never below what B resamples can show
        tails = np.minimum((finite & (draws <= 0)).sum(axis=1), (finite & (draws >= 0)).sum(axis=1)) + 1
        p = np.minimum(1.0, 2 * tails / (k + 1))
        # a ratio whose denominator can come near zero has no finite variance: no SE for the proportion
        se = _nanstd(draws) if term.startswith("indirect") else np.nan
        frames.append(
            {
                "term": term,
                "estimate": estimate,
                "se": se,
                "ci_low": low,
                "ci_high": high,
                "p": p,
                "ci_low_bc": bc_low,
                "ci_high_bc": bc_high,
            }
        )
    columns = RESULT_COLUMNS + ["ci_low_bc", "ci_high_bc"]
    table = pd.concat(
        [pd.DataFrame({c: np.broadcast_to(f[c], len(n)) for c in columns}) for f in frames], ignore_index=True
    )
    if replicates is None:
        return table
    return replicate_major(with_replicates(table, np.tile(replicates, len(frames))))


def _nanstd(draws: np.ndarray) -> np.ndarray:
    """SD (ddof 1) of the finite draws of each row, shape (n_rows,)."""
    finite = np.isfinite(draws)
    k = finite.sum(axis=1)
    d0 = np.where(finite, draws, 0.0)
    centred = np.where(finite, d0 - d0.sum(axis=1, keepdims=True) / k[:, None], 0.0)
    return np.sqrt((centred**2).sum(axis=1) / (k - 1))


def _bias_corrected(draws: np.ndarray, estimate: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Bias-corrected percentile interval of each row (Efron & Tibshirani 1993, section 14.3, without acceleration).

    ``draws`` (n_rows, B), NaN left out; ``estimate`` (n_rows,). NaN where the share of draws below the
    estimate is 0 or 1, or the estimate is not finite.
    """
    finite = np.isfinite(draws)
    k = finite.sum(axis=1)
    e = estimate[:, None]
    share = ((finite & (draws < e)).sum(axis=1) + 0.5 * (finite & (draws == e)).sum(axis=1)) / k
    ok = (share > 0) & (share < 1) & np.isfinite(estimate)
    z0 = stats.norm.ppf(np.where(ok, share, 0.5))
    levels = stats.norm.cdf(2 * z0[:, None] + stats.norm.ppf([alpha / 2, 1 - alpha / 2]))
    bounds = row_quantiles(draws, levels)
    return np.where(ok, bounds[:, 0], np.nan), np.where(ok, bounds[:, 1], np.nan)
