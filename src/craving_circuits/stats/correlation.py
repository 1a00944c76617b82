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

:func:`correlation`, :func:`bootstrap_correlations`,
:func:`partial_correlation`, :func:`steiger_test`, :func:`mean_change`,
:func:`mean_difference` and :func:`least_squares` also take stacks of
replicates (2-D arrays ``(n_replicates, n_max)``, each row one replicate's
values then NaN padding; see :mod:`craving_circuits.stats.contrasts`) and
return one result per replicate. A bootstrap then takes one Generator per
replicate and draws each replicate's resamples from its own Generator exactly
as for that replicate alone, so row ``i`` of a stacked result equals the
result of replicate ``i`` alone with the same Generator.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from craving_circuits.io.schemas import RESULT_COLUMNS
from craving_circuits.stats.contrasts import (
    contrast_row,
    generators,
    one_sample,
    participant_values,
    replicate_chunks,
    resample_counts,
    resample_indices,
    row_quantiles,
    two_sample,
)

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
    "least_squares",
    "row_correlations",
    "resampled_coefficients",
]


def row_correlations(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation along the last axis of x and y, NaN entries (in either) left out, shape x.shape[:-1]."""
    present = np.isfinite(x) & np.isfinite(y)
    with np.errstate(invalid="ignore", divide="ignore"):
        if present.all():
            xc = x - x.mean(axis=-1, keepdims=True)
            yc = y - y.mean(axis=-1, keepdims=True)
        else:
            n = present.sum(axis=-1, keepdims=True)
            x0, y0 = np.where(present, x, 0.0), np.where(present, y, 0.0)
            xc = np.where(present, x0 - x0.sum(axis=-1, keepdims=True) / n, 0.0)
            yc = np.where(present, y0 - y0.sum(axis=-1, keepdims=True) / n, 0.0)
        den = np.sqrt((xc**2).sum(axis=-1) * (yc**2).sum(axis=-1))
        return np.where(den > 0, (xc * yc).sum(axis=-1) / den, np.nan)


def _resampled_ranks(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Average rank of each participant's value within each resample, from how often each participant is drawn.

    Parameters
    ----------
    values : ndarray, shape (n_replicates, width)
        NaN-padded participant values.
    counts : ndarray, shape (n_replicates, n_boot, width)
        From :func:`craving_circuits.stats.contrasts.resample_counts` (zero at padding).

    Returns
    -------
    ranks : ndarray, shape (n_replicates, n_boot, width)
        The rank :func:`scipy.stats.rankdata` gives the participant's value in the resample (ties averaged):
        the number of drawn values below its tie group plus half the group's draws plus 1/2. Drawn values
        of the same participant share it.
    """
    n_rep, width = values.shape
    positions = np.arange(width)
    order = np.argsort(values, axis=1)  # NaN (padding) last
    ordered = np.take_along_axis(values, order, axis=1)
    new = np.ones((n_rep, width), dtype=bool)
    new[:, 1:] = ordered[:, 1:] != ordered[:, :-1]  # a tie group starts here
    start = np.maximum.accumulate(np.where(new, positions, 0), axis=1)
    last = np.ones((n_rep, width), dtype=bool)
    last[:, :-1] = new[:, 1:]
    end = np.minimum.accumulate(np.where(last, positions, width)[:, ::-1], axis=1)[:, ::-1]
    cumulative = np.zeros(counts.shape[:2] + (width + 1,))
    np.cumsum(np.take_along_axis(counts, order[:, None, :], axis=2), axis=2, out=cumulative[..., 1:])
    before = np.take_along_axis(cumulative, np.broadcast_to(start[:, None, :], counts.shape), axis=2)
    through = np.take_along_axis(cumulative, np.broadcast_to(end[:, None, :] + 1, counts.shape), axis=2)
    by_order = before + (through - before + 1) / 2
    return np.take_along_axis(by_order, np.argsort(order, axis=1)[:, None, :], axis=2)


def _moment_correlations(moments: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Pearson r from weighted sums ``(x, y, x^2, y^2, x y)`` (..., 5) over ``total`` weight (...)."""
    sx, sy, sxx, syy, sxy = np.moveaxis(moments, -1, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        vx, vy, cxy = sxx - sx * sx / total, syy - sy * sy / total, sxy - sx * sy / total
        den = np.sqrt(vx * vy)
        return np.where(den > 0, cxy / den, np.nan)


def _resampled_pearson(x: np.ndarray, y: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Pearson r of every resample, each participant counted as often as it is drawn.

    ``x``, ``y`` (n_replicates, width), NaN-padded; ``counts`` (n_replicates, n_boot, width). The values are
    centred at their replicate's mean first, so that the sums of squares lose no precision.
    """
    present = np.isfinite(x)
    n = present.sum(axis=1, keepdims=True)
    xc = np.where(present, x - np.where(present, x, 0.0).sum(axis=1, keepdims=True) / n, 0.0)
    yc = np.where(present, y - np.where(present, y, 0.0).sum(axis=1, keepdims=True) / n, 0.0)
    moments = counts @ np.stack([xc, yc, xc * xc, yc * yc, xc * yc], axis=-1)  # (R, B, 5)
    return _moment_correlations(moments, counts.sum(axis=-1))


def _resampled_rank_correlations(rank_x: np.ndarray, rank_y: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Pearson r of the ranks of every resample (Spearman's r), each participant weighted by its draws.

    The ranks of a resample of ``N`` values average ``(N + 1) / 2`` exactly, so they are centred there.
    """
    centre = (counts.sum(axis=-1, keepdims=True) + 1) / 2
    xc, yc = rank_x - centre, rank_y - centre
    weighted = counts * xc
    sxy = np.einsum("rbw,rbw->rb", weighted, yc)
    sxx = np.einsum("rbw,rbw->rb", weighted, xc)
    syy = np.einsum("rbw,rbw,rbw->rb", counts, yc, yc)
    den = np.sqrt(sxx * syy)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, sxy / den, np.nan)


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks along the last axis, NaN entries left out (and NaN in the result)."""
    present = np.isfinite(x)
    ranks = stats.rankdata(np.where(present, x, np.inf), axis=-1)  # the padding ranks last
    return np.where(present, ranks, np.nan)


def _nanstd(x: np.ndarray) -> np.ndarray:
    """SD (ddof 1) of the finite values of each row of x (n_rows, n)."""
    present = np.isfinite(x)
    k = present.sum(axis=1)
    x0 = np.where(present, x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        centred = np.where(present, x0 - x0.sum(axis=1, keepdims=True) / k[:, None], 0.0)
        return np.sqrt((centred**2).sum(axis=1) / (k - 1))


def _one(values, stacked: bool):
    """Per-replicate values as they are for a stack; the single replicate's value as a float otherwise."""
    values = np.asarray(values)
    return values if stacked else values.reshape(-1)[0].item()


def check_pairs(x, y) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` as float arrays of pairs: 1-D, or stacks of replicates with the same padding.

    Raises
    ------
    ValueError
        For different shapes, a missing value, or fewer than 4 pairs (in any replicate).
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim not in (1, 2):
        raise ValueError(f"x and y must be 1D of the same length, got {x.shape} and {y.shape}.")
    if x.ndim == 2:
        participant_values(x, "x")
        participant_values(y, "y")
        if (np.isfinite(x) != np.isfinite(y)).any():
            raise ValueError("x and y have missing values in different places; drop the pairs explicitly.")
        n = np.isfinite(x).sum(axis=1)
        if (n < 4).any():
            raise ValueError(f"A correlation needs at least 4 pairs, got {int(n.min())} in a replicate.")
        return x, y
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
    columns : dict of name -> ndarray, shape (n,) or (n_replicates, n_max)
        One replicate, or stacks of replicates (NaN-padded alike).
    pairs : list of (name, name)
    method : {"pearson", "spearman"}
        Spearman correlations are Pearson correlations of the ranks within
        each bootstrap sample.
    n_boot : int
    rng : numpy Generator, int or None; for stacks, a sequence of Generators (one per replicate)
        Each replicate's resamples are ``rng.integers(0, n, size=(n_boot, n))``.

    Returns
    -------
    boot : ndarray, shape (n_boot, n_pairs), or (n_replicates, n_boot, n_pairs) for stacks
        Each resample's correlation, computed with each participant weighted by how often it is drawn
        (the correlation of the resampled rows).
    """
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}.")
    first = np.asarray(next(iter(columns.values())), dtype=float)
    stacked = first.ndim == 2
    data = {k: np.atleast_2d(np.asarray(v, dtype=float)) for k, v in columns.items()}
    sizes = np.isfinite(np.atleast_2d(first)).sum(axis=1)
    width = np.atleast_2d(first).shape[1]
    rngs = generators(rng, np.arange(len(sizes)) if stacked else None)
    out = np.empty((len(sizes), n_boot, len(pairs)))
    for part in replicate_chunks(len(sizes), n_boot, width):
        counts = resample_counts(resample_indices(rngs[part], sizes[part], n_boot, width), sizes[part])
        if method == "spearman":
            names = dict.fromkeys(c for pair in pairs for c in pair)
            ranks = {k: _resampled_ranks(data[k][part], counts) for k in names}
            for j, (a, b) in enumerate(pairs):
                out[part, :, j] = _resampled_rank_correlations(ranks[a], ranks[b], counts)
        else:
            for j, (a, b) in enumerate(pairs):
                out[part, :, j] = _resampled_pearson(data[a][part], data[b][part], counts)
    return out if stacked else out[0]


def _r_pvalue(r: np.ndarray, df) -> np.ndarray:
    """Two-sided p of r = 0 by the t test with ``df`` degrees of freedom (p = 0 at ``|r| = 1``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = r * np.sqrt(df / ((1.0 - r) * (1.0 + r)))
    return 2 * stats.t.sf(np.abs(t), df)


def _bootstrap_summary(r, boot, p, n, alpha: float, stacked: bool) -> dict:
    """Estimate, bootstrap SE and percentile interval, p and n of one correlation (or of each replicate's)."""
    ci = row_quantiles(boot, [alpha / 2, 1 - alpha / 2])
    return {
        "estimate": _one(r, stacked),
        "se": _one(_nanstd(boot), stacked),
        "ci_low": _one(ci[:, 0], stacked),
        "ci_high": _one(ci[:, 1], stacked),
        "p": _one(p, stacked),
        "n": n if stacked else int(n[0]),
    }


def correlation(x, y, method: str = "pearson", n_boot: int = 5000, rng=None, alpha: float = 0.05) -> dict:
    """A correlation with a percentile bootstrap CI.

    Parameters
    ----------
    x, y : array-like, shape (n,), or stacks (n_replicates, n_max)
    method : {"pearson", "spearman"}
    n_boot : int
        Bootstrap resamples of the participants.
    rng : numpy Generator, int or None; for stacks, a sequence of Generators (one per replicate)
    alpha : float

    Returns
    -------
    row : dict
        ``term`` (the method), ``estimate`` (r), ``se`` (bootstrap SD),
        ``ci_low``, ``ci_high`` (percentile bootstrap), ``p`` (the t test of
        r = 0 with ``n - 2`` degrees of freedom, as scipy's tests) and ``n``;
        arrays (n_replicates,) for stacks.
    """
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}.")
    x, y = check_pairs(x, y)
    stacked = x.ndim == 2
    xs, ys = np.atleast_2d(x), np.atleast_2d(y)
    n = np.isfinite(xs).sum(axis=1)
    r = row_correlations(xs, ys) if method == "pearson" else row_correlations(_ranks(xs), _ranks(ys))
    p = _r_pvalue(r, n - 2)
    boot = np.atleast_2d(bootstrap_correlations({"x": x, "y": y}, [("x", "y")], method, n_boot, rng)[..., 0])
    return {"term": method, **_bootstrap_summary(r, boot, p, n, alpha, stacked)}


def _solve(xtx: np.ndarray, xtv: np.ndarray) -> np.ndarray:
    """``pinv(X'X) X'v`` for stacks of small normal equations (..., k, k) and (..., k, m).

    LU where ``X'X`` is well conditioned (the determinant against the product of the diagonal, which
    bounds it), the pseudo-inverse elsewhere (a rank-deficient resample), so that the solution is the
    minimum-norm least-squares one whatever the rank.
    """
    diagonal = np.prod(np.diagonal(xtx, axis1=-2, axis2=-1), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        regular = np.linalg.det(xtx) > 1e-10 * diagonal
    out = np.empty(xtx.shape[:-1] + xtv.shape[-1:])
    if regular.any():
        out[regular] = np.linalg.solve(xtx[regular], xtv[regular])
    if not regular.all():
        out[~regular] = np.linalg.pinv(xtx[~regular]) @ xtv[~regular]
    return out


def _residualise(values: np.ndarray, design: np.ndarray) -> np.ndarray:
    """Residuals of each column of ``values`` (..., n, k) after least squares on ``design`` (..., n, q).

    Rows of zeros (padding) stay zero.
    """
    xtx = np.einsum("...ni,...nj->...ij", design, design)
    xtv = np.einsum("...ni,...nk->...ik", design, values)
    return values - design @ _solve(xtx, xtv)


def resampled_coefficients(design: np.ndarray, values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Least-squares coefficients of every resample, from how often each participant is drawn.

    Parameters
    ----------
    design : ndarray, shape (n_replicates, n, k)
        Zero at padding.
    values : ndarray, shape (n_replicates, n, m)
        Zero at padding.
    counts : ndarray, shape (n_replicates, n_boot, n)
        From :func:`craving_circuits.stats.contrasts.resample_counts`.

    Returns
    -------
    coefficients : ndarray, shape (n_replicates, n_boot, k, m)
        ``pinv(X_b'X_b) X_b'v_b`` of each resample ``b`` (``X_b'X_b`` is ``sum_j c_bj x_j x_j'``).
    """
    n_rep, n, k = design.shape
    m = values.shape[-1]
    xx = (design[..., :, None] * design[..., None, :]).reshape(n_rep, n, k * k)
    xv = (design[..., :, None] * values[..., None, :]).reshape(n_rep, n, k * m)
    n_boot = counts.shape[1]
    return _solve((counts @ xx).reshape(n_rep, n_boot, k, k), (counts @ xv).reshape(n_rep, n_boot, k, m))


def _resampled_residual_correlations(design: np.ndarray, values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Correlation of the two columns' residuals within every resample, shape (n_replicates, n_boot).

    Each participant is weighted by how often it is drawn, as if its row were repeated. With ``G`` the
    weighted cross-products of ``[X, x, y]``, the residual cross-products are the Schur complement
    ``G_vv - G_vX pinv(G_XX) G_Xv``. The values and covariates are centred at their replicate's mean first
    (the intercept, column 0 of ``design``, spans the same space), so the cross-products lose no precision.

    Parameters
    ----------
    design : ndarray, shape (n_replicates, n, k)
        Intercept first; zero at padding.
    values : ndarray, shape (n_replicates, n, 2)
        Zero at padding.
    counts : ndarray, shape (n_replicates, n_boot, n)
    """
    n_rep, n, k = design.shape
    present = design[..., 0] != 0
    size = present.sum(axis=1)[:, None, None]
    columns = np.concatenate([design, values], axis=-1)
    centred = np.where(present[..., None], columns - columns.sum(axis=1, keepdims=True) / size, 0.0)
    centred[..., 0] = design[..., 0]
    q = k + 2
    gram = (counts @ (centred[..., :, None] * centred[..., None, :]).reshape(n_rep, n, q * q)).reshape(
        n_rep, counts.shape[1], q, q
    )
    beta = _solve(gram[..., :k, :k], gram[..., :k, k:])
    residual = gram[..., k:, k:] - np.swapaxes(gram[..., :k, k:], -1, -2) @ beta
    den = np.sqrt(residual[..., 0, 0] * residual[..., 1, 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, residual[..., 0, 1] / den, np.nan)


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
    x, y : array-like, shape (n,), or stacks (n_replicates, n_max)
    covariates : array-like, shape (n, q), or (n_replicates, n_max, q) for stacks
        Without the intercept (added here); padded like ``x``.
    n_boot : int
    rng : numpy Generator, int or None; for stacks, a sequence of Generators (one per replicate)
    alpha : float

    Returns
    -------
    row : dict
        ``estimate`` (partial r), ``se`` (bootstrap SD), ``ci_low``,
        ``ci_high``, ``p``, ``n``, ``df``; arrays (n_replicates,) for stacks.
    """
    x, y = check_pairs(x, y)
    stacked = x.ndim == 2
    xs, ys = np.atleast_2d(x), np.atleast_2d(y)
    present = np.isfinite(xs)
    n_rep, width = xs.shape
    z = np.asarray(covariates, dtype=float).reshape(n_rep, width, -1)
    if not np.isfinite(z[present]).all():
        raise ValueError("The covariates have missing or infinite values; drop those participants explicitly.")
    design = np.where(present[..., None], np.concatenate([np.ones((n_rep, width, 1)), z], axis=2), 0.0)
    q = z.shape[2]
    if (np.linalg.matrix_rank(design) < design.shape[2]).any():
        raise ValueError("The covariates are collinear (or constant); drop the redundant ones.")
    n = present.sum(axis=1)
    df = n - 2 - q
    if (df < 2).any():
        raise ValueError(f"{int(n.min())} participants are too few for a partial correlation with {q} covariate(s).")
    values = np.stack([np.where(present, xs, 0.0), np.where(present, ys, 0.0)], axis=-1)
    res = np.where(present[..., None], _residualise(values, design), np.nan)
    r = row_correlations(res[..., 0], res[..., 1])
    t = r * np.sqrt(df / np.maximum(1 - r**2, np.finfo(float).tiny))
    p = 2 * stats.t.sf(np.abs(t), df)
    rngs = generators(rng, np.arange(n_rep) if stacked else None)
    boot = np.empty((n_rep, n_boot))
    for part in replicate_chunks(n_rep, n_boot, width):
        counts = resample_counts(resample_indices(rngs[part], n[part], n_boot, width), n[part])
        boot[part] = _resampled_residual_correlations(design[part], values[part], counts)
    return {**_bootstrap_summary(r, boot, p, n, alpha, stacked), "df": df if stacked else int(df[0])}


def steiger_test(r_jk, r_jh, r_kh, n):
    """Steiger's (1980) z test of two dependent correlations sharing variable j.

    Tests ``r_jk = r_jh`` given the correlation ``r_kh`` of the two other
    variables, with the pooled correlation in the covariance of the Fisher z
    values (Steiger 1980, equations 3, 10 and 14). Arrays (one test per
    replicate) are tested elementwise.

    Returns
    -------
    z, p : float, or arrays
        The statistic and its two-sided p-value.
    """
    r_jk, r_jh, r_kh, n = (np.asarray(v, dtype=float) for v in (r_jk, r_jh, r_kh, n))
    for name, r in (("r_jk", r_jk), ("r_jh", r_jh), ("r_kh", r_kh)):
        if not np.all((-1 < r) & (r < 1)):
            raise ValueError(f"{name} must lie strictly between -1 and 1, got {r}.")
    if np.any(n < 4):
        raise ValueError(f"n must be at least 4, got {n}.")
    rbar = (r_jk + r_jh) / 2
    psi = r_kh * (1 - 2 * rbar**2) - 0.5 * rbar**2 * (1 - 2 * rbar**2 - r_kh**2)
    cov = psi / (1 - rbar**2) ** 2
    z = (np.arctanh(r_jk) - np.arctanh(r_jh)) * np.sqrt((n - 3) / (2 - 2 * cov))
    p = 2 * stats.norm.sf(np.abs(z))
    if z.ndim == 0:
        return float(z), float(p)
    return z, p


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


def _stacked_frame(row: dict, columns: list[str], stacked: bool) -> pd.DataFrame:
    """A result row as a one-row table, or, with arrays (n_replicates,), one row per replicate."""
    if stacked:
        n_rows = len(next(v for v in row.values() if np.ndim(v) == 1))
        return pd.DataFrame({c: np.broadcast_to(row[c], n_rows) for c in columns})
    return pd.DataFrame([{c: row[c] for c in columns}])


def mean_change(values, term: str, alpha: float = 0.05) -> pd.DataFrame:
    """One-sample t test of a change score against zero.

    Parameters
    ----------
    values : array, shape (n,), or a stack (n_replicates, n_max)
    term : str
    alpha : float

    Returns
    -------
    row : pandas.DataFrame
        ``n`` and :data:`RESULT_COLUMNS` (t-based CI); one row per replicate for a stack.
    """
    v = np.asarray(values, dtype=float)
    if v.ndim == 1 and not np.isfinite(v).all():
        raise ValueError(f"{int((~np.isfinite(v)).sum())} values are missing; drop them explicitly.")
    v = participant_values(v, term)
    n = np.isfinite(np.atleast_2d(v)).sum(axis=1)
    if (n < 2).any():
        raise ValueError(f"A mean change needs at least 2 values, got {int(n.min())}.")
    row = contrast_row(term, one_sample(v, label=term), alpha)
    return _stacked_frame(row, ["n", *RESULT_COLUMNS], v.ndim == 2)


def mean_difference(x, y, term: str, alpha: float = 0.05) -> pd.DataFrame:
    """Welch's two-sample t test of ``mean(x) - mean(y)``, without assuming equal variances.

    The standard error is ``sqrt(s_x^2 / n_x + s_y^2 / n_y)`` and the degrees of
    freedom are Welch-Satterthwaite's, so the test keeps its level when the
    smaller group is the more variable one.

    Parameters
    ----------
    x, y : array, shape (n_x,) and (n_y,), or stacks (n_replicates, n_max)
    term : str
    alpha : float

    Returns
    -------
    row : pandas.DataFrame
        ``n`` (both samples), :data:`RESULT_COLUMNS` (t-based CI) and ``df``; one row per replicate for stacks.
    """
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    for name, v in (("x", a), ("y", b)):
        if v.ndim == 1 and not np.isfinite(v).all():
            raise ValueError(f"{int((~np.isfinite(v)).sum())} values of {name} are missing; drop them explicitly.")
        participant_values(v, name)
        size = np.isfinite(np.atleast_2d(v)).sum(axis=1)
        if (size < 2).any():
            raise ValueError(f"Each sample needs at least 2 values, {name} has {int(size.min())}.")
    row = contrast_row(term, two_sample(a, b, equal_var=False, label=term), alpha)
    return _stacked_frame(row, ["n", *RESULT_COLUMNS, "df"], a.ndim == 2)


def least_squares(design: np.ndarray, y: np.ndarray, full: bool = True) -> dict:
    """Ordinary least squares of stacks of samples, with the statistics of statsmodels' OLS.

    Parameters
    ----------
    design : ndarray, shape (..., n_max, k)
        The regressors, with the intercept column (padding rows are ignored).
    y : ndarray, shape (..., n_max)
        The outcome; NaN marks the padding.
    full : bool
        Also the inference and the diagnostics' ingredients (else ``params`` only).

    Returns
    -------
    fit : dict of ndarray
        ``params`` (..., k) (the minimum-norm solution, ``pinv(X'X) X'y``); with
        ``full``: ``bse`` (..., k); ``nobs``, ``rank``, ``df_resid``, ``ssr``
        (residual sum of squares), ``centered_tss``, ``rsquared`` and
        ``sigma2`` (...,); ``resid`` and ``hat`` (leverage) (..., n_max; NaN
        at padding); ``cov_unscaled`` (..., k, k), the pseudo-inverse of ``X'X``.
    """
    present = np.isfinite(y)
    y0 = np.where(present, y, 0.0)
    x = np.where(present[..., None], design, 0.0)
    xtx = np.einsum("...ni,...nj->...ij", x, x)
    params = _solve(xtx, np.einsum("...ni,...n->...i", x, y0)[..., None])[..., 0]
    if not full:
        return {"params": params}
    xtx_inv = np.linalg.pinv(xtx)
    resid = np.where(present, y0 - np.einsum("...ni,...i->...n", x, params), np.nan)
    nobs = present.sum(axis=-1)
    rank = np.linalg.matrix_rank(x)
    df_resid = (nobs - rank).astype(float)
    ssr = (np.where(present, resid, 0.0) ** 2).sum(axis=-1)
    mean = y0.sum(axis=-1) / nobs
    centered_tss = np.where(present, (y0 - mean[..., None]) ** 2, 0.0).sum(axis=-1)
    sigma2 = ssr / df_resid
    return {
        "params": params,
        "bse": np.sqrt(sigma2[..., None] * np.diagonal(xtx_inv, axis1=-2, axis2=-1)),
        "nobs": nobs,
        "rank": rank,
        "df_resid": df_resid,
        "ssr": ssr,
        "centered_tss": centered_tss,
        "rsquared": 1 - ssr / centered_tss,
        "sigma2": sigma2,
        "resid": resid,
        "hat": np.where(present, np.einsum("...ni,...ij,...nj->...n", x, xtx_inv, x), np.nan),
        "cov_unscaled": xtx_inv,
    }


_R_MAX = 1 - 1e-7


def fisher_z(r: np.ndarray) -> np.ndarray:
    """Fisher's z transform ``arctanh(r)``, with ``|r|`` capped just below 1."""
    return np.arctanh(np.clip(r, -_R_MAX, _R_MAX))


def correlate_columns(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of one series with every column of a matrix (or of many series, each with its own).

    Parameters
    ----------
    x : ndarray, shape (n_volumes,), or (n_volumes, n_batch)
    y : ndarray, shape (n_volumes, n_series), or (n_volumes, n_batch, n_series)
        With a batch axis, series ``b`` of ``x`` is correlated with the
        columns of ``y[:, b]`` (e.g. the seed and targets of many runs at once).

    Returns
    -------
    r : ndarray, shape (n_series,), or (n_batch, n_series)
        NaN where a column (or ``x``) has no variance.
    """
    x = np.asarray(x, dtype=np.float64)
    xc = x - x.mean(axis=0)
    yc = y - y.mean(axis=0, dtype=np.float64).astype(y.dtype)
    if x.ndim == 2:
        num = np.einsum("tb,tbs->bs", xc.astype(y.dtype), yc)
        den = np.sqrt(np.sum(xc**2, axis=0))[:, None] * np.sqrt(np.einsum("tbs,tbs->bs", yc, yc, dtype=np.float64))
    else:
        num = xc.astype(y.dtype) @ yc
        den = np.sqrt(np.sum(xc**2)) * np.sqrt(np.einsum("ij,ij->j", yc, yc, dtype=np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 0, num / den, np.nan)
    return r
