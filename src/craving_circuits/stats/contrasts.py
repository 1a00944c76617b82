"""Linear contrasts of independent cell means: one and two samples, Welch, and the two-period crossover.

Every ROI-level test of a mean in the book is one linear contrast of the means
of independent cells of participant values, ``estimate = sum_k w_k mean_k``:

* one sample (a paired difference): one cell, weight 1;
* two groups: cells ``(x, y)``, weights ``(1, -1)``, each group with its own
  variance (Welch) or one pooled variance (Student);
* the two-period, two-sequence crossover (AB/BA): the per-participant
  difference ``dd = active - reference`` in the two sequences (active first,
  reference first) has mean ``tau - pi`` and ``tau + pi``, ``tau`` the drug
  effect and ``pi`` the period effect (second minus first period). The drug
  effect is the average of the two sequence means (weights ``(1/2, 1/2)``) and
  the period effect half their difference (``(-1/2, 1/2)``), with one variance
  pooled over the sequences: the analysis of Hills & Armitage (1979), equal to
  the intercept of ``dd ~ sequence`` in OLS with sum-coded sequence. With both
  sequences equally large it equals the mean of ``dd``; when they are not (a
  dropout, an exclusion), the plain mean is biased by the period effect times
  the imbalance and this one is not;
* the difference of a crossover effect between two groups: four cells,
  weights ``(1/2, 1/2, -1/2, -1/2)``, the variance pooled within each group
  and not between them (Welch-Satterthwaite degrees of freedom).

Data conventions
----------------
* Cells are 1-D float arrays of participant values; every value belongs to
  exactly one cell. Non-finite values are an error, never dropped.
* Variances are pooled within each *variance group* of cells (one variance per
  group, estimated from the cells' deviations around their own means). With
  one variance group the test is an exact t-test with ``sum(n_k) - K``
  degrees of freedom (``K`` cells); with several, the degrees of freedom are
  Satterthwaite's.
* :func:`contrast_moments` returns the standardiser ``sd`` (the root mean of
  the variance groups' variances: the SD for one sample, the pooled SD for
  Student, the root mean square SD for Welch) and the effective sample size
  ``n_eff = (sd / se) ** 2`` that turns a standardised effect ``delta`` into
  the noncentrality ``delta * sqrt(n_eff)`` of the t statistic (``n`` for one
  sample, ``n1 n2 / (n1 + n2)`` for Student).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from craving_circuits.io.schemas import RESULT_COLUMNS

__all__ = [
    "CellContrast",
    "ContrastMoments",
    "one_sample",
    "two_sample",
    "crossover",
    "crossover_period",
    "crossover_difference",
    "contrast_moments",
    "contrast_row",
    "participant_values",
    "RESULT_COLUMNS",
]


def participant_values(x, name: str, min_size: int = 0) -> np.ndarray:
    """``x`` as a 1-D float array of participant values; an error naming ``name`` if it is not one.

    Non-finite values are an error (never dropped); so are fewer than ``min_size`` values.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of participant values, got shape {x.shape}.")
    if not np.all(np.isfinite(x)):
        raise ValueError(
            f"{name} has {int((~np.isfinite(x)).sum())} non-finite value(s); remove or impute them "
            "explicitly (and list them) before testing."
        )
    if x.size < min_size:
        raise ValueError(f"{name} needs at least {min_size} values, got {x.size}.")
    return x


@dataclass(frozen=True)
class CellContrast:
    """A linear contrast of the means of independent cells.

    Attributes
    ----------
    cells : tuple of ndarray, each shape (n_k,)
    weights : tuple of float, one per cell
    variance_groups : tuple of int, one per cell
        Cells with the same label share one variance.
    label : str
        What the contrast estimates (for error messages).
    """

    cells: tuple
    weights: tuple
    variance_groups: tuple
    label: str = "contrast"

    def __post_init__(self):
        if not (len(self.cells) == len(self.weights) == len(self.variance_groups)) or not self.cells:
            raise ValueError(
                f"{self.label}: {len(self.cells)} cells, {len(self.weights)} weights and "
                f"{len(self.variance_groups)} variance groups; give one of each per cell."
            )
        cells = tuple(participant_values(cell, f"{self.label}: cell {k}") for k, cell in enumerate(self.cells))
        object.__setattr__(self, "cells", cells)
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        object.__setattr__(self, "variance_groups", tuple(int(g) for g in self.variance_groups))
        for group in set(self.variance_groups):
            members = [k for k, g in enumerate(self.variance_groups) if g == group]
            df = sum(self.cells[k].size - 1 for k in members)
            if df < 1 or any(self.cells[k].size < 1 for k in members):
                sizes = ", ".join(str(self.cells[k].size) for k in members)
                raise ValueError(
                    f"{self.label}: the cells of one variance group have {sizes} value(s), which leave no "
                    "degrees of freedom for their variance; each needs at least 2 values in one cell and 1 in "
                    "every other."
                )

    @property
    def n(self) -> int:
        """Number of participants (values) in all cells."""
        return int(sum(c.size for c in self.cells))


@dataclass(frozen=True)
class ContrastMoments:
    """Estimate, standard error, degrees of freedom, standardiser and effective n of a contrast."""

    estimate: float
    se: float
    df: float
    sd: float
    n_eff: float
    n: int


def one_sample(x, label: str = "sample") -> CellContrast:
    """The mean of one sample (or of paired differences)."""
    return CellContrast((x,), (1.0,), (0,), label)


def two_sample(x, y, equal_var: bool = False, label: str = "groups") -> CellContrast:
    """Mean of ``x`` minus mean of ``y``: Welch (default) or Student (``equal_var=True``)."""
    return CellContrast((x, y), (1.0, -1.0), (0, 0) if equal_var else (0, 1), label)


def crossover(first, second, label: str = "crossover") -> CellContrast:
    """The treatment effect of a two-period crossover from its two sequences.

    Parameters
    ----------
    first : array, shape (n_a,)
        ``active - reference`` of the participants who had the active
        treatment in the first period.
    second : array, shape (n_b,)
        The same for those who had it in the second period.

    Returns
    -------
    CellContrast
        Weights ``(1/2, 1/2)``, one variance: the average of the sequence
        means, unbiased by a period effect whatever ``n_a`` and ``n_b``.
    """
    return CellContrast((first, second), (0.5, 0.5), (0, 0), label)


def crossover_period(first, second, label: str = "period") -> CellContrast:
    """The period effect (second minus first period) of a two-period crossover; arguments as :func:`crossover`."""
    return CellContrast((first, second), (-0.5, 0.5), (0, 0), label)


def crossover_difference(group_1: tuple, group_2: tuple, label: str = "crossover difference") -> CellContrast:
    """Treatment effect in one group minus that in another, each from its two sequences.

    Parameters
    ----------
    group_1, group_2 : (array, array)
        ``(first, second)`` of each group, as in :func:`crossover`.

    Returns
    -------
    CellContrast
        Weights ``(1/2, 1/2, -1/2, -1/2)``; a variance per group (Welch).
    """
    return CellContrast((*group_1, *group_2), (0.5, 0.5, -0.5, -0.5), (0, 0, 1, 1), label)


def contrast_moments(contrast: CellContrast, pooled: bool = False) -> ContrastMoments:
    """Estimate, SE, degrees of freedom, standardiser and effective sample size.

    Parameters
    ----------
    contrast : CellContrast
    pooled : bool
        Pool the variance over all cells (one variance group), e.g. for a
        Bayes factor whose model has one variance.

    Returns
    -------
    ContrastMoments
    """
    weights = np.asarray(contrast.weights)
    sizes = np.array([c.size for c in contrast.cells], dtype=float)
    means = np.array([c.mean() if c.size else 0.0 for c in contrast.cells])
    squares = np.array([np.sum((c - c.mean()) ** 2) if c.size else 0.0 for c in contrast.cells])
    groups = np.zeros(len(sizes), dtype=int) if pooled else np.asarray(contrast.variance_groups)
    var_parts, dfs, variances = [], [], []
    for group in np.unique(groups):
        members = groups == group
        df = float(np.sum(sizes[members] - 1))
        variance = float(np.sum(squares[members]) / df)
        variances.append(variance)
        dfs.append(df)
        var_parts.append(variance * float(np.sum(weights[members] ** 2 / sizes[members])))
    var_parts, dfs = np.array(var_parts), np.array(dfs)
    se = float(np.sqrt(var_parts.sum()))
    df = float(dfs[0]) if len(dfs) == 1 else float(var_parts.sum() ** 2 / np.sum(var_parts**2 / dfs))
    sd = float(np.sqrt(np.mean(variances)))
    n_eff = (sd / se) ** 2 if se > 0 else np.inf
    return ContrastMoments(float(weights @ means), se, df, sd, float(n_eff), contrast.n)


def contrast_row(term: str, contrast: CellContrast, alpha: float = 0.05) -> dict:
    """Tidy row (:data:`RESULT_COLUMNS`) of the t-test of a contrast against 0, plus ``df`` and ``n``."""
    m = contrast_moments(contrast)
    if m.se == 0:
        raise ValueError(f"{term}: the values have no variance; the t-test is undefined.")
    half = stats.t.ppf(1 - alpha / 2, m.df) * m.se
    return {
        "term": term,
        "estimate": m.estimate,
        "se": m.se,
        "ci_low": m.estimate - half,
        "ci_high": m.estimate + half,
        "p": float(2 * stats.t.sf(abs(m.estimate / m.se), m.df)),
        "df": m.df,
        "n": m.n,
    }
