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

Stacked replicates
------------------
Every function here also takes a stack of replicates (the simulated studies
of the calibration) and computes each replicate's statistic at once: a cell
is then a 2-D array ``(n_replicates, n_max)`` whose row ``i`` holds replicate
``i``'s values followed by NaN padding (replicates may differ in size), and
every statistic becomes an array ``(n_replicates,)``. Row ``i`` of a stacked
result equals the result on replicate ``i`` alone. :func:`replicate_ids`,
:func:`stack_columns` and :func:`replicate_generators` turn tidy tables with
a :data:`~craving_circuits.io.schemas.REPLICATE` column (and random number
generators) into such stacks; :func:`row_quantiles` is the quantile of each
row of a NaN-padded stack.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from craving_circuits.io.schemas import REPLICATE, RESULT_COLUMNS

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
    "REPLICATE",
    "replicate_ids",
    "stack_columns",
    "replicate_generators",
    "generators",
    "with_replicates",
    "replicate_major",
    "row_frame",
    "row_quantiles",
    "resample_indices",
    "resample_counts",
    "replicate_chunks",
    "BOOTSTRAP_CHUNK",
]

#: Largest number of resampled values held at once by a stacked bootstrap (replicates x resamples x
#: participants); larger stacks are bootstrapped in chunks of replicates.
BOOTSTRAP_CHUNK = 2**21


# --------------------------------------------------------------------------- stacked replicates


def replicate_ids(table: pd.DataFrame) -> np.ndarray | None:
    """The sorted replicate labels of a table, or None for a table of one replicate (no replicate column)."""
    if REPLICATE not in table.columns:
        return None
    return np.unique(table[REPLICATE].to_numpy())


def stack_columns(table: pd.DataFrame, columns, replicates=None) -> list[np.ndarray]:
    """The values of some columns, one array each: 1-D for one replicate, a NaN-padded stack for several.

    Parameters
    ----------
    table : pandas.DataFrame
    columns : sequence of str
    replicates : array, shape (n_replicates,), optional
        Sorted replicate labels (from :func:`replicate_ids`); None: the table
        is one replicate.

    Returns
    -------
    values : list of ndarray
        Without ``replicates``: shape (n_rows,) each, as in the table. With:
        shape (n_replicates, n_max) each, row ``i`` holding the rows of
        replicate ``replicates[i]`` in table order, then NaN.

    Raises
    ------
    ValueError
        With ``replicates``: for a missing or infinite value (NaN marks the
        padding of a stack, so a missing value would vanish) or a row of
        another replicate.
    """
    columns = list(columns)
    if replicates is None:
        return [table[c].to_numpy(dtype=float) for c in columns]
    replicates = np.asarray(replicates)
    labels = table[REPLICATE].to_numpy()
    pos = np.searchsorted(replicates, labels)
    known = pos < len(replicates)
    known[known] = replicates[pos[known]] == labels[known]
    if not known.all():
        raise ValueError(f"Rows of replicate {labels[~known][0]!r}, which is not among the replicates given.")
    order = np.argsort(pos, kind="stable")
    counts = np.bincount(pos, minlength=len(replicates))
    starts = np.cumsum(counts) - counts
    rows = pos[order]
    within = np.arange(len(labels)) - starts[rows]
    out = []
    for c in columns:
        values = table[c].to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        if bad.any():
            raise ValueError(
                f"{int(bad.sum())} value(s) of {c} are missing or infinite; drop them explicitly (and list them)."
            )
        stacked = np.full((len(replicates), int(counts.max(initial=0))), np.nan)
        stacked[rows, within] = values[order]
        out.append(stacked)
    return out


def generators(rng, replicates=None) -> list[np.random.Generator]:
    """One random number generator per replicate.

    Parameters
    ----------
    rng : numpy Generator, int, None, mapping or sequence of Generators
        One replicate: anything :func:`numpy.random.default_rng` takes. Several:
        a mapping from replicate label to Generator, or a sequence of
        Generators in the order of ``replicates``; a single seed or Generator
        is split into independent children (``Generator.spawn``).
    replicates : array, optional
        Sorted replicate labels; None for one replicate.

    Returns
    -------
    rngs : list of numpy Generator
        ``len(replicates)`` (or 1) Generators; each is the object given, so
        that drawing from it consumes the caller's stream.
    """
    if replicates is None:
        if isinstance(rng, Mapping) or _is_generator_list(rng):
            raise ValueError("One replicate takes one Generator (or seed), not one per replicate.")
        return [np.random.default_rng(rng)]
    if isinstance(rng, Mapping):
        missing = [r for r in replicates if r not in rng]
        if missing:
            raise ValueError(f"No Generator for replicate(s) {missing[:5]}.")
        return [np.random.default_rng(rng[r]) for r in replicates]
    if _is_generator_list(rng):
        if len(rng) != len(replicates):
            raise ValueError(f"{len(rng)} Generators for {len(replicates)} replicates; give one per replicate.")
        return list(rng)
    return list(np.random.default_rng(rng).spawn(len(replicates)))


def _is_generator_list(rng) -> bool:
    return isinstance(rng, (list, tuple)) and len(rng) > 0 and all(isinstance(g, np.random.Generator) for g in rng)


def replicate_generators(rng, replicates=None):
    """The Generator of one replicate, or a mapping from replicate label to Generator (see :func:`generators`)."""
    rngs = generators(rng, replicates)
    return rngs[0] if replicates is None else dict(zip(replicates.tolist(), rngs))


def with_replicates(frame: pd.DataFrame, labels) -> pd.DataFrame:
    """``frame`` with the replicate labels of its rows as the first column (unchanged when ``labels`` is None)."""
    if labels is None:
        return frame
    frame = frame.copy()
    frame.insert(0, REPLICATE, np.asarray(labels))
    return frame


def replicate_major(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of each replicate together, in replicate order, each replicate's rows in their order."""
    if REPLICATE not in frame.columns:
        return frame.reset_index(drop=True)
    return frame.sort_values(REPLICATE, kind="stable", ignore_index=True)


def row_frame(row: dict, replicates=None, columns=None) -> pd.DataFrame:
    """A result row (scalars) as a one-row table, or a stacked row (arrays) as one row per replicate.

    Parameters
    ----------
    row : dict
        Scalars, or arrays of shape (n_replicates,) (strings may stay scalars).
    replicates : array, shape (n_replicates,), optional
        Labels of the stacked row's replicates (the first column of the table).
    columns : list of str, optional
        Columns to keep, in order (the replicate column stays in front).
    """
    if replicates is None:
        out = pd.DataFrame([row])
    else:
        out = with_replicates(
            pd.DataFrame({k: np.broadcast_to(v, len(replicates)) for k, v in row.items()}), replicates
        )
    if columns is not None:
        out = out[([REPLICATE] if replicates is not None else []) + list(columns)]
    return out


def resample_indices(rng, sizes: np.ndarray, n_boot: int, width: int) -> np.ndarray:
    """Bootstrap indices of participants: (n_replicates, n_boot, width).

    Replicate ``i`` draws ``rng[i].integers(0, sizes[i], size=(n_boot, sizes[i]))``, as alone; the rest of
    its row points at its last column, which is NaN padding whenever ``sizes[i] < width``.
    """
    idx = np.full((len(sizes), n_boot, width), width - 1, dtype=np.intp)
    for i, (g, n) in enumerate(zip(rng, sizes)):
        idx[i, :, :n] = g.integers(0, n, size=(n_boot, n))
    return idx


def resample_counts(idx: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """How often each participant is drawn in each resample: (n_replicates, n_boot, width), from
    :func:`resample_indices` (padding positions, from ``sizes[i]`` on, are not counted)."""
    n_rep, n_boot, width = idx.shape
    drawn = np.arange(width)[None, :] < np.asarray(sizes)[:, None]
    cells = (np.arange(n_rep * n_boot)[:, None] * width + idx.reshape(n_rep * n_boot, width))[
        np.repeat(drawn, n_boot, axis=0)
    ]
    return np.bincount(cells, minlength=n_rep * n_boot * width).reshape(n_rep, n_boot, width).astype(float)


def replicate_chunks(n_replicates: int, n_boot: int, width: int) -> list[slice]:
    """Slices of replicates whose resamples hold at most :data:`BOOTSTRAP_CHUNK` values."""
    step = max(1, BOOTSTRAP_CHUNK // max(1, n_boot * width))
    return [slice(k, min(k + step, n_replicates)) for k in range(0, n_replicates, step)]


def row_quantiles(values: np.ndarray, q) -> np.ndarray:
    """Quantiles (numpy's default, linear interpolation) of the finite values of each row.

    Parameters
    ----------
    values : ndarray, shape (n_rows, n)
        NaN (or any non-finite value) marks an absent value.
    q : array, shape (k,) or (n_rows, k)
        The same probabilities for every row, or each row's own.

    Returns
    -------
    quantiles : ndarray, shape (n_rows, k)
        NaN for a row without a finite value.
    """
    q = np.asarray(q, dtype=float)
    if values.shape[1] == 0:
        return np.full((len(values), q.shape[-1]), np.nan)
    values = np.where(np.isfinite(values), values, np.nan)
    ordered = np.sort(values, axis=1)  # NaN last
    count = np.isfinite(ordered).sum(axis=1)
    q = np.broadcast_to(q, (len(values), q.shape[-1]))
    n = count[:, None].astype(float)
    virtual = n * q + (1 - q) - 1  # numpy's (n - 1) q for the linear method, in its own order of operations
    below = np.clip(np.floor(virtual), 0, np.maximum(n - 1, 0))
    above = np.clip(below + 1, 0, np.maximum(n - 1, 0))
    gamma = virtual - np.floor(virtual)
    rows = np.arange(len(values))[:, None]
    lo = ordered[rows, below.astype(int)]
    hi = ordered[rows, above.astype(int)]
    diff = hi - lo
    out = np.where(gamma >= 0.5, hi - diff * (1 - gamma), lo + diff * gamma)
    out = np.where(virtual >= n - 1, ordered[rows, np.maximum(count - 1, 0)[:, None]], out)
    out = np.where(virtual <= 0, ordered[:, :1], out)
    return np.where(count[:, None] > 0, out, np.nan)


def participant_values(x, name: str, min_size: int = 0) -> np.ndarray:
    """``x`` as a 1-D float array of participant values (or a stack of them); an error naming ``name`` if it is not.

    Non-finite values are an error (never dropped); so are fewer than ``min_size`` values. A 2-D array is a
    stack of replicates (see the module docstring): NaN may only pad the end of a row, and each row needs
    ``min_size`` values.
    """
    x = np.asarray(x, dtype=float)
    if x.ndim not in (1, 2):
        raise ValueError(f"{name} must be a 1-D array of participant values, got shape {x.shape}.")
    if x.ndim == 2:
        present = np.isfinite(x)
        if np.isinf(x).any() or (present[:, 1:] & ~present[:, :-1]).any():
            raise ValueError(
                f"{name}: a stack of replicates may hold NaN only as padding after each replicate's values; "
                "remove missing values explicitly (and list them) before testing."
            )
        sizes = present.sum(axis=1)
        if (sizes < min_size).any():
            raise ValueError(f"{name} needs at least {min_size} values, got {int(sizes.min())} in a replicate.")
        return x
    if not np.all(np.isfinite(x)):
        raise ValueError(
            f"{name} has {int((~np.isfinite(x)).sum())} non-finite value(s); remove or impute them "
            "explicitly (and list them) before testing."
        )
    if x.size < min_size:
        raise ValueError(f"{name} needs at least {min_size} values, got {x.size}.")
    return x


def _sizes(cell: np.ndarray) -> np.ndarray:
    """Number of values of a cell, per replicate: shape (n_replicates,) (1 for a 1-D cell)."""
    return np.isfinite(np.atleast_2d(cell)).sum(axis=1)


@dataclass(frozen=True)
class CellContrast:
    """A linear contrast of the means of independent cells.

    Attributes
    ----------
    cells : tuple of ndarray, each shape (n_k,), or each shape (n_replicates, n_k_max)
        One replicate, or a stack of replicates (NaN-padded rows; see the module docstring).
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
        dims = {c.ndim for c in cells}
        if len(dims) > 1 or (dims == {2} and len({c.shape[0] for c in cells}) > 1):
            raise ValueError(f"{self.label}: mix of one replicate and stacks, or stacks of different sizes.")
        object.__setattr__(self, "cells", cells)
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        object.__setattr__(self, "variance_groups", tuple(int(g) for g in self.variance_groups))
        for group in set(self.variance_groups):
            members = [k for k, g in enumerate(self.variance_groups) if g == group]
            sizes = np.array([_sizes(self.cells[k]) for k in members])
            df = (sizes - 1).sum(axis=0)
            if (df < 1).any() or (sizes < 1).any():
                bad = int(np.flatnonzero((df < 1) | (sizes < 1).any(axis=0))[0])
                listed = ", ".join(str(int(v)) for v in sizes[:, bad])
                raise ValueError(
                    f"{self.label}: the cells of one variance group have {listed} value(s), which leave no "
                    "degrees of freedom for their variance; each needs at least 2 values in one cell and 1 in "
                    "every other."
                )

    @property
    def stacked(self) -> bool:
        """Whether the cells are stacks of replicates."""
        return self.cells[0].ndim == 2

    @property
    def n(self):
        """Number of participants (values) in all cells: int, or ndarray (n_replicates,) for a stack."""
        total = np.sum([_sizes(c) for c in self.cells], axis=0)
        return total.astype(int) if self.stacked else int(total[0])


@dataclass(frozen=True)
class ContrastMoments:
    """Estimate, standard error, degrees of freedom, standardiser and effective n of a contrast.

    Floats for one replicate; arrays of shape (n_replicates,) for a stack.
    """

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


def _scalar(values: np.ndarray, stacked: bool):
    """An array (n_replicates,) as is for a stack, its one element as a float otherwise."""
    return values if stacked else float(values[0])


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
        Floats, or arrays (n_replicates,) for a stacked contrast.
    """
    weights = np.asarray(contrast.weights)
    cells = [np.atleast_2d(c) for c in contrast.cells]  # (n_replicates, n_k)
    present = [np.isfinite(c) for c in cells]
    sizes = np.array([m.sum(axis=1) for m in present], dtype=float)  # (K, n_replicates)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.array(
            [np.where(s > 0, np.where(m, c, 0.0).sum(axis=1) / s, 0.0) for c, m, s in zip(cells, present, sizes)]
        )
        squares = np.array(
            [np.where(m, (c - mu[:, None]) ** 2, 0.0).sum(axis=1) for c, m, mu in zip(cells, present, means)]
        )
    groups = np.zeros(len(sizes), dtype=int) if pooled else np.asarray(contrast.variance_groups)
    var_parts, dfs, variances = [], [], []
    for group in np.unique(groups):
        members = groups == group
        df = np.sum(sizes[members] - 1, axis=0)
        variance = np.sum(squares[members], axis=0) / df
        variances.append(variance)
        dfs.append(df)
        var_parts.append(variance * np.sum(weights[members, None] ** 2 / sizes[members], axis=0))
    var_parts, dfs = np.array(var_parts), np.array(dfs)
    se = np.sqrt(var_parts.sum(axis=0))
    df = dfs[0] if len(dfs) == 1 else var_parts.sum(axis=0) ** 2 / np.sum(var_parts**2 / dfs, axis=0)
    sd = np.sqrt(np.mean(variances, axis=0))
    with np.errstate(divide="ignore"):
        n_eff = np.where(se > 0, (sd / np.where(se > 0, se, 1.0)) ** 2, np.inf)
    stacked = contrast.stacked
    return ContrastMoments(
        _scalar(weights @ means, stacked),
        _scalar(se, stacked),
        _scalar(df, stacked),
        _scalar(sd, stacked),
        _scalar(n_eff, stacked),
        contrast.n,
    )


def contrast_row(term: str, contrast: CellContrast, alpha: float = 0.05) -> dict:
    """Tidy row (:data:`RESULT_COLUMNS`) of the t-test of a contrast against 0, plus ``df`` and ``n``.

    For a stacked contrast every value but ``term`` is an array (n_replicates,) (see :func:`row_frame`).
    """
    m = contrast_moments(contrast)
    if np.any(np.asarray(m.se) == 0):
        raise ValueError(f"{term}: the values have no variance; the t-test is undefined.")
    half = stats.t.ppf(1 - alpha / 2, m.df) * m.se
    p = 2 * stats.t.sf(np.abs(m.estimate / m.se), m.df)
    return {
        "term": term,
        "estimate": m.estimate,
        "se": m.se,
        "ci_low": m.estimate - half,
        "ci_high": m.estimate + half,
        "p": p if contrast.stacked else float(p),
        "df": m.df,
        "n": m.n,
    }
