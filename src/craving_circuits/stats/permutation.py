"""Voxelwise second-level inference by permutation, with family-wise error control.

Data conventions
----------------
* ``y`` is ``(n_samples, n_voxels)``: one row per sample (usually one subject's
  first-level contrast map), one column per ``True`` voxel of a 3D boolean
  ``mask`` of shape ``(nx, ny, nz)``, in C order (``np.argwhere(mask)``), as
  produced by :func:`nilearn.masking.apply_mask` or ``data[mask]``.
* ``tested`` is ``(n_samples,)``: the regressor whose coefficient is tested.
  A constant ``tested`` (e.g. all ones) *is* the intercept: a one-sample test.
* ``confounds`` is ``(n_samples, n_confounds)`` or ``None``: regressors that are
  fitted but not tested. An intercept is added unless ``tested`` is constant
  (or, in :func:`t_statistic`, ``intercept=False``); constant confound columns
  are absorbed by it.
* Voxel-wise outputs are ``(n_voxels,)`` in the column order of ``y``.

Model and statistic
-------------------
Ordinary least squares ``y = tested * b + Z g + e`` per voxel, ``Z`` being the
nuisance regressors (intercept and confounds). The statistic is the usual t of
``b``, with ``df = n_samples - rank(Z) - 1`` residual degrees of freedom; it
equals statsmodels' ``OLS(...).fit().tvalues`` and nilearn's
``permuted_ols(...)["t"]`` (the tests check both). It is computed as nilearn
does: ``Z`` is orthonormalised; ``tested`` and every voxel are residualised on
``Z`` and scaled to unit norm (``x`` and ``e``); then ``beta = x @ e`` and
``t = beta * sqrt(df / (1 - beta**2))``. A voxel that the model fits exactly
(no residual variance, e.g. constant across samples, as outside the field of
view) has ``t = 0`` in the data and in every resampling, never joins a
cluster, and is reported in a warning.

Permutation scheme (that of ``nilearn.mass_univariate.permuted_ols``, 0.14.1)
------------------------------------------------------------------------------
* ``tested`` not constant: Freedman-Lane. The voxel residuals ``e`` under the
  nuisance model are kept; the rows of ``x`` and of the orthonormal nuisance
  basis ``Z`` are permuted together (equivalent to permuting the residuals and
  refitting the full model), and ``t`` is refitted with the permuted nuisance
  columns in the model: ``rss = 1 - beta**2 - ||(P Z).T e||**2``. The intercept
  column is invariant under permutation and ``e`` is orthogonal to it, so it
  drops out of that sum.
* ``tested`` constant (one-sample test): sign flipping of the rows of ``e``
  (equivalently of ``x`` and ``Z``; ``||S e|| = ||e|| = 1``, so the residual
  sum of squares is again ``1 - beta**2 - ||(S Z).T e||**2``). As in nilearn
  this also applies when there are confounds; it assumes symmetric errors.
* ``sign_flip=True`` forces sign flipping when ``tested`` is not constant too
  (Freedman-Lane with sign flips: the nuisance-model residuals ``e`` are
  flipped; every nuisance column, the intercept included, is then resampled,
  as none is invariant under sign flips). It assumes independent, symmetric
  errors, but not that they are exchangeable, and is what variance groups use
  (below). ``sign_flip=False`` with a constant ``tested`` is an error: a
  permutation leaves a constant regressor unchanged.
* Each of the ``n_perm`` resamplings is drawn independently and uniformly
  (with replacement, so the identity may occur), in fixed chunks of
  ``chunk_size``: chunk ``k`` draws from the ``k``-th generator spawned from
  ``rng`` (:meth:`numpy.random.Generator.spawn`). All draws are made before
  any computation, and each chunk's null maxima are a pure function of its
  draws, so results depend neither on ``batch_size`` nor on how many workers
  (``n_jobs``, or the engine of :mod:`craving_circuits.io.compute`) compute the
  chunks. Another ``chunk_size`` draws other resamplings, hence p-values that
  differ within Monte Carlo error.

Variance groups
---------------
``variance_groups`` (one label per sample) allows the error variance to differ
between groups of samples (Winkler, Ridgway, Webster, Smith & Nichols 2014,
NeuroImage 92:381-397). The statistic is then not the OLS t but, per voxel,

    ``G = b / sqrt(sum_g s_g**2 * sum_{i in g} a_i**2)``,
    ``s_g**2 = sum_{i in g} r_i**2 / (n_g - sum_{i in g} h_ii)``,

with ``X = [tested, Z]`` the full design, ``b = a @ y`` the OLS coefficient of
``tested`` (``a`` its row of ``pinv(X)``, i.e. ``x / ||x_raw||**2`` with
``x_raw`` the tested regressor residualised on ``Z``), ``r = (I - H) y`` the
full-model residuals and ``h_ii`` the diagonal of the hat matrix ``H`` of
``X``. The denominator estimates the variance of ``b`` when each group has its
own error variance (a grouped sandwich estimator with a per-group
degrees-of-freedom correction). With one group ``G`` is the ordinary t; with
two groups, ``tested`` the group indicator and no confounds it is Welch's
(Aspin-Welch) v. For a rank-1 contrast Winkler et al. (and PALM) divide the OLS
estimate by ``sqrt(c' (X' W X)^-1 c)`` with ``W = diag(1 / s_g**2)``; the two
denominators agree in those two cases, and more generally whenever ``W`` maps
the column space of ``X`` into itself (e.g. when that space is spanned by
indicators of the variance groups), but not in general when a regressor varies
within groups of different variances.

``G`` does not change when ``y`` or ``a`` is scaled, so it is computed from the
unit-norm residuals ``e`` and unit-norm ``x`` of the t path: ``b ∝ x @ e``,
``r = e - x (x @ e)`` and the squared denominator is ``sum_i w_i r_i**2`` with
the fixed weights ``w_i = sum_{j in g(i)} x_j**2 / (n_g - sum_{j in g(i)}
h_jj)``, ``g(i)`` the group of sample ``i``. Every group needs at least 2
samples and more than 0.5 residual degrees of freedom ``n_g - sum_{i in g}
h_ii`` (a ``ValueError`` otherwise).

Resampling: errors of different variances are not exchangeable between
groups, so variance groups always use sign flipping (Freedman-Lane, as above;
``sign_flip=False`` is an error). Flipping the residuals ``u = S e`` (``S``
diagonal, +-1) and refitting the fixed design ``X`` gives ``b* ∝ x @ S e`` and
residuals ``(I - H) S e``; equivalently, ``S X`` fitted to ``e`` has residuals
``S (I - H) S e`` (``H_{SX} = S H S``), with the same squares. The leverages,
``a`` up to signs, and so the per-group degrees of freedom, are the same in
every resampling. With ``Q = [x, Z]`` orthonormal and ``m = Q' S e`` the
squared denominator is ``sum_i w_i e_i**2 - 2 m' Q' W S e + m' Q' W Q m``
(``W = diag(w)``): a batch of resamplings costs one product of ``e`` with
``2 (rank(X))`` rows per resampling, and no ``(n_samples, n_voxels)`` array per
resampling. Batches are capped so that their buffers stay under about 256 MB.

Clusters are formed on ``G`` with the threshold of the t path,
``scipy.stats.t.isf(cluster_forming_p, df)`` with ``df = n_samples -
rank(X)``. ``G`` has no exact t distribution, so the threshold is only
approximately the nominal voxelwise p; the FWE p-values stay valid, as the same
rule is applied to the data and to every resampling. The voxel-level maximum
is that of ``|G|`` (of ``G`` if one-sided).

Clusters (as nilearn)
---------------------
* Cluster-forming threshold: ``cluster_forming_p`` is a one-tailed p per tail,
  ``threshold = scipy.stats.t.isf(cluster_forming_p, df)``. (nilearn's
  ``threshold`` argument is two-tailed when ``two_sided_test=True``: our
  ``cluster_forming_p=p`` is nilearn's ``threshold=2 * p``.)
* Supra-threshold voxels are ``t > threshold`` and, if two-sided, also
  ``t < -threshold`` (strict inequalities); positive and negative voxels form
  separate clusters, connected by faces only
  (``scipy.ndimage.generate_binary_structure(3, 1)``), within the mask.
* Size is the number of voxels; mass is ``sum(|t| - threshold)``.
* Null distributions: per resampling, the largest cluster size and the largest
  mass over clusters of both signs (0 if there is no cluster), and the maximum
  of ``|t|`` (two-sided) or of ``t`` (one-sided) over voxels.
* Computation. The observed map is labelled by ``scipy.ndimage.label`` (with
  that structure, on the bounding box of the mask). The resampled maps are
  not: their clusters are found from their supra-threshold voxels alone, so
  that the cost grows with the number of those voxels (few under the null at
  the usual thresholds), not with the volume. The face neighbours of every
  mask voxel are tabulated once. For a block of null maps (a few MB, computed
  together), the supra-threshold voxels of all maps and both signs are the
  nodes of one graph, whose edges join face neighbours of the same map and
  sign; ``scipy.sparse.csgraph.connected_components`` splits it into the
  clusters of every map at once. Sizes and masses are ``np.bincount`` sums
  over the nodes taken in voxel order, so they are the numbers, bit for bit,
  that labelling each map on the grid gives; the largest per map follow.
  Labelling each map on the grid costs about as much as a graph with one node
  per 6 voxels of the mask's bounding box (40 % of the voxels of the 4 mm MNI
  brain mask); blocks with more supra-threshold voxels than that (which
  cluster-forming thresholds of usual p do not give under the null) are
  labelled on the grid instead.
* Without resampled nuisance columns (no confounds, and an intercept if any:
  one-sample sign flips, or permutations of a two-sample design), the
  resampled t is ``beta * sqrt(df / (1 - beta**2))`` with ``beta = x @ e``
  alone. Each floating-point step of that formula is correctly rounded, so the
  computed t is a nondecreasing (and odd) function of ``beta``: the
  supra-threshold voxels are ``|beta| > cut``, with ``cut`` the largest
  float64 whose computed t does not exceed the threshold (found once, by
  bisection), and the largest ``|t|`` is the t of the largest ``|beta|``. t is
  then computed only for the supra-threshold voxels (their mass) and for the
  maxima, with the same arithmetic, hence the same values as on the whole map.

p-values
--------
``p = (1 + #{null >= observed}) / (1 + n_perm)`` for voxel max-t, cluster size
and cluster mass alike: the unpermuted data count as one member of the null,
so ``p >= 1 / (1 + n_perm)`` and ``P(p <= alpha) <= alpha`` whenever the data
are exchangeable with their resamplings (exactly so for sign flips of
symmetric errors, approximately for Freedman-Lane with confounds). nilearn does
this for the voxel-level p only; its cluster-level p is
``#{null >= observed} / n_perm`` clipped to ``[1 / n_perm, 1 - 1 / n_perm]``.
A voxel's p uses the null of the maximum over all voxels, a cluster's p the
null of the largest cluster of either sign: both control the family-wise error
over the whole mask (and both signs, if two-sided).

Differences from nilearn
------------------------
Besides the cluster-level p above: a constant confound column next to a
non-constant ``tested`` is absorbed by the intercept and the scheme stays
permutation (nilearn then switches to sign flipping); a constant confound
column next to a constant ``tested`` is an error (nilearn drops it with a
warning); NaN or infinite values are an error (nilearn ignores them in the
maxima); ``df`` counts the rank of the nuisance regressors (nilearn's
cluster-forming threshold counts their columns). The resamplings themselves are not nilearn's: the two null
distributions agree in law, not draw by draw.
"""

from __future__ import annotations

import dataclasses
import numbers
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy import ndimage, sparse, stats
from scipy.sparse import csgraph

from craving_circuits.io.schemas import CLUSTER_COLUMNS as _CLUSTER_COLUMNS

__all__ = ["t_statistic", "PermutationResult", "cluster_permutation_test"]

#: Face connectivity, as nilearn's cluster-level inference.
CLUSTER_STRUCTURE = ndimage.generate_binary_structure(3, 1)

# Relative size below which a column (of unit-norm regressors, or of a voxel's
# residuals relative to its data) counts as zero.
_RANK_TOL = 1e-10

# Floor of the residual sum of squares of unit-norm data: below rounding error,
# it only prevents divisions by zero.
_RSS_FLOOR = np.finfo(np.float64).eps ** 2

# Variance groups: least residual degrees of freedom per group, and the memory
# budget of the buffers of one batch of resamplings.
_MIN_GROUP_DF = 0.5
_BATCH_BYTES = 256 * 2**20

# Values per block of null maps processed together after their batch is computed
# (a few MB, to stay in cache).
_BLOCK_VALUES = 2**18


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Model:
    """A fitted nuisance model, in the normalised form used for all resamplings.

    ``nuisance`` is an orthonormal basis of the nuisance space (intercept first,
    if any); its first ``n_invariant`` columns are unchanged by the resamplings
    (the intercept under permutation) and drop out of the null statistic.
    """

    x: np.ndarray  # (n_samples,) tested regressor residualised on the nuisance space, unit norm
    nuisance: np.ndarray  # (n_samples, rank)
    n_invariant: int
    df: int
    sign_flip: bool

    @property
    def resampled_nuisance(self) -> np.ndarray:
        return self.nuisance[:, self.n_invariant :]


def _as_finite_float(name: str, a, n_rows: int | None = None) -> np.ndarray:
    a = np.asarray(a)
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {a.dtype}.")
    a = a.astype(np.float64, copy=False)
    if n_rows is not None and a.shape[0] != n_rows:
        raise ValueError(f"{name} has {a.shape[0]} rows but y has {n_rows} samples (rows); give one row per sample.")
    bad = ~np.isfinite(a)
    if bad.any():
        if a.ndim == 1:
            raise ValueError(
                f"{name} contains NaN or infinite values in {int(bad.sum())} of {a.size} samples; "
                "remove those samples or impute the values before testing."
            )
        raise ValueError(
            f"{name} contains NaN or infinite values in {int(bad.any(axis=0).sum())} of {a.shape[1]} columns "
            f"and {int(bad.any(axis=1).sum())} of {a.shape[0]} rows; remove those voxels or samples, "
            "or impute the values, before testing."
        )
    return a


def _fit_model(n_samples: int, tested, confounds, intercept: bool) -> _Model:
    tested = np.asarray(tested)
    if tested.ndim != 1:
        raise ValueError(
            f"tested must be 1D with one value per sample, got shape {tested.shape}; test one regressor at a time."
        )
    tested = _as_finite_float("tested", tested, n_samples)
    if not np.any(tested):
        raise ValueError("tested is all zeros; use ones for a one-sample test.")
    sign_flip = bool(np.ptp(tested) == 0)

    blocks = []
    with_intercept = bool(intercept) and not sign_flip
    if with_intercept:
        blocks.append(np.full((n_samples, 1), 1.0 / np.sqrt(n_samples)))
    if confounds is not None:
        c = np.asarray(confounds)
        if c.ndim == 1:
            c = c[:, None]
        if c.ndim != 2:
            raise ValueError(f"confounds must be 2D (n_samples, n_confounds), got shape {c.shape}.")
        c = _as_finite_float("confounds", c, n_samples)
        norms = np.linalg.norm(c, axis=0)
        if sign_flip and np.any((np.ptp(c, axis=0) == 0) & (norms > 0)):
            constant = np.flatnonzero((np.ptp(c, axis=0) == 0) & (norms > 0)).tolist()
            raise ValueError(
                f"confounds column(s) {constant} are constant and duplicate the tested intercept; remove them."
            )
        c = c[:, norms > 0] / norms[norms > 0]
        if with_intercept:
            c = c - blocks[0] @ (blocks[0].T @ c)
        if c.shape[1]:
            u, s, _ = np.linalg.svd(c, full_matrices=False)
            blocks.append(u[:, s > _RANK_TOL])
    nuisance = np.hstack(blocks) if blocks else np.empty((n_samples, 0))

    x = tested - nuisance @ (nuisance.T @ tested)
    x_norm = np.linalg.norm(x)
    if x_norm <= _RANK_TOL * np.linalg.norm(tested):
        raise ValueError(
            "tested is a linear combination of the confounds (and the intercept), so its effect "
            "cannot be estimated; remove the redundant confounds."
        )
    df = n_samples - nuisance.shape[1] - 1
    if df < 1:
        raise ValueError(
            f"No residual degrees of freedom: {n_samples} samples for {nuisance.shape[1] + 1} "
            "independent regressors; use more samples or fewer confounds."
        )
    # The intercept is invariant under permutation; a constant ``tested`` (sign
    # flips) never comes with one.
    return _Model(x / x_norm, nuisance, int(with_intercept), df, sign_flip)


def _prepare(y, tested, confounds, intercept) -> tuple[np.ndarray, _Model]:
    """Validated model, and residuals of every voxel on its nuisance space scaled to unit norm.

    Returns
    -------
    resid : ndarray, shape (n_samples, n_voxels)
        Zero columns for voxels the full model fits exactly.
    model : _Model
    """
    y = np.asarray(y)
    if y.ndim != 2:
        raise ValueError(f"y must be 2D (n_samples, n_voxels), got shape {y.shape}.")
    y = _as_finite_float("y", y)
    model = _fit_model(y.shape[0], tested, confounds, intercept)
    resid = y - model.nuisance @ (model.nuisance.T @ y)
    full_resid = resid - np.outer(model.x, model.x @ resid)
    exact = np.linalg.norm(full_resid, axis=0) <= _RANK_TOL * np.linalg.norm(y, axis=0)
    if exact.any():
        warnings.warn(
            f"{int(exact.sum())} of {y.shape[1]} voxels have no residual variance (the model fits them "
            "exactly, e.g. they are constant across samples); their t is set to 0.",
            UserWarning,
            stacklevel=3,
        )
    resid[:, exact] = 0.0
    resid[:, ~exact] /= np.linalg.norm(resid[:, ~exact], axis=0)
    return resid, model


def _t_maps(x: np.ndarray, z: np.ndarray, resid: np.ndarray, df: int, work: np.ndarray | None = None) -> np.ndarray:
    """t maps for a batch of designs.

    Parameters
    ----------
    x : ndarray, shape (batch, n_samples)
        Unit-norm tested regressor, orthogonal to ``z``, per design.
    z : ndarray, shape (batch, n_samples, k)
        Orthonormal nuisance columns per design, except those ``resid`` is known
        to be orthogonal to.
    resid : ndarray, shape (n_samples, n_voxels)
        Unit-norm (or zero) voxel residuals.
    df : int
    work : ndarray, shape (2 + (k > 0), >= batch, n_voxels), optional
        Reused buffer (large batches are much faster without fresh allocations).

    Returns
    -------
    t : ndarray, shape (batch, n_voxels)
        A view into ``work`` if given.
    """
    batch = x.shape[0]
    if work is None:
        work = np.empty((2 + (z.shape[2] > 0), batch, resid.shape[1]))
    t, rss = work[0, :batch], work[1, :batch]
    np.matmul(x, resid, out=t)  # beta
    np.square(t, out=rss)
    np.subtract(1.0, rss, out=rss)
    for j in range(z.shape[2]):
        a = np.matmul(z[:, :, j], resid, out=work[2, :batch])
        rss -= np.square(a, out=a)
    np.maximum(rss, _RSS_FLOOR, out=rss)
    t *= np.sqrt(np.divide(df, rss, out=rss), out=rss)
    return t


def _t_of_beta(beta: np.ndarray, df: int) -> np.ndarray:
    """t from ``beta`` when no nuisance column is resampled, with the arithmetic of :func:`_t_maps`, bit for bit."""
    rss = np.square(beta)
    np.subtract(1.0, rss, out=rss)
    np.maximum(rss, _RSS_FLOOR, out=rss)
    return beta * np.sqrt(np.divide(df, rss, out=rss), out=rss)


def _beta_cut(threshold: float, df: int) -> float:
    """The largest ``beta >= 0`` whose t, as computed by :func:`_t_of_beta`, is at most ``threshold > 0``.

    Each floating-point step of :func:`_t_of_beta` is correctly rounded, hence
    weakly monotone, so the computed t is a nondecreasing function of
    ``beta >= 0`` (and odd): ``t > threshold`` exactly when ``beta > cut``,
    and ``t < -threshold`` exactly when ``beta < -cut``. Found by bisection
    over the float64 values between 0 and infinity (ordered as their bits).
    """
    lo, hi = (int(bits) for bits in np.array([0.0, np.inf]).view(np.int64))  # t(0) = 0 <= threshold < t(inf)
    with np.errstate(over="ignore"):  # beta**2 overflows for the largest candidates; t is then inf
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if _t_of_beta(np.array([mid], dtype=np.int64).view(np.float64), df)[0] <= threshold:
                lo = mid
            else:
                hi = mid
    return float(np.array([lo], dtype=np.int64).view(np.float64)[0])


def _observed_t(model: _Model, resid: np.ndarray) -> np.ndarray:
    # The residuals are orthogonal to the whole nuisance space.
    return _t_maps(model.x[None], np.empty((1, model.x.size, 0)), resid, model.df)[0]


def t_statistic(y, tested, confounds=None, intercept=True) -> np.ndarray:
    """OLS t of the tested regressor's coefficient, voxel by voxel.

    Parameters
    ----------
    y : array-like, shape (n_samples, n_voxels)
    tested : array-like, shape (n_samples,)
        Regressor whose coefficient is tested. If constant, it is the intercept
        (one-sample test) and no other intercept is added.
    confounds : array-like, shape (n_samples, n_confounds), optional
        Regressors fitted but not tested.
    intercept : bool
        Add a constant regressor (ignored when ``tested`` is constant).

    Returns
    -------
    t : ndarray, shape (n_voxels,)
        With ``n_samples - rank(nuisance) - 1`` degrees of freedom; 0 where the
        model fits a voxel exactly.
    """
    resid, model = _prepare(y, tested, confounds, intercept)
    return _observed_t(model, resid)


# ---------------------------------------------------------------------------
# Variance groups
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _VarianceGroups:
    """Fixed quantities of the variance-group statistic ``G`` (see the module docstring).

    ``basis`` is ``Q = [x, Z]``, an orthonormal basis of the full design;
    ``weights`` are the ``w_i``, so that ``G = (x @ e) / sqrt(sum_i w_i r_i**2)``.
    """

    basis: np.ndarray  # (n_samples, rank + 1)
    weights: np.ndarray  # (n_samples,)
    gram: np.ndarray  # (rank + 1, rank + 1): Q' W Q
    floor: float

    def observed(self, x: np.ndarray, resid: np.ndarray) -> np.ndarray:
        """``G`` of the data, from unit-norm (or zero) nuisance-model residuals ``resid``."""
        beta = x @ resid
        r = resid - np.outer(x, beta)
        den = self.weights @ np.square(r)
        return beta / np.sqrt(np.maximum(den, self.floor))

    def batch_size(self, n_voxels: int) -> int:
        """Resamplings per batch whose buffers fit in about ``_BATCH_BYTES``."""
        k = self.basis.shape[1]
        return max(1, _BATCH_BYTES // (8 * n_voxels * (3 * k + 2)))

    def null(self, flips: np.ndarray, resid: np.ndarray, c0: np.ndarray) -> np.ndarray:
        """``G`` maps of a batch of sign flips.

        Parameters
        ----------
        flips : ndarray, shape (batch, n_samples)
            +1/-1.
        resid : ndarray, shape (n_samples, n_voxels)
            Unit-norm (or zero) nuisance-model residuals ``e``.
        c0 : ndarray, shape (n_voxels,)
            ``sum_i w_i e_i**2``.

        Returns
        -------
        g : ndarray, shape (batch, n_voxels)
        """
        batch, n = flips.shape
        k = self.basis.shape[1]
        # Rows of (Q' S) and (Q' W S) for every resampling, in one product with e.
        left = np.empty((2, batch, k, n))
        np.multiply(flips[:, None, :], self.basis.T[None], out=left[0])
        np.multiply(left[0], self.weights, out=left[1])
        prod = (left.reshape(2 * batch * k, n) @ resid).reshape(2, batch, k, -1)
        m, q = prod[0], prod[1]  # m = Q' S e, q = Q' W S e
        # den = c0 - 2 m'q + m' (Q'WQ) m = c0 + sum_j m_j ((Q'WQ) m - 2 q)_j
        quad = np.matmul(self.gram, m)
        q *= -2.0
        quad += q
        quad *= m
        den = quad.sum(axis=1)
        den += c0
        np.maximum(den, self.floor, out=den)
        np.sqrt(den, out=den)
        return np.divide(m[:, 0], den, out=den)  # m[:, 0] = x' S e


def _variance_groups(variance_groups, model: _Model) -> _VarianceGroups:
    """Validated variance groups of ``model``'s samples and the weights of ``G``."""
    n_samples = model.x.size
    labels = np.asarray(variance_groups, dtype=object) if variance_groups is not None else None
    if labels is None or labels.ndim != 1:
        shape = None if labels is None else labels.shape
        raise ValueError(f"variance_groups must be 1D with one label per sample, got shape {shape}.")
    if labels.size != n_samples:
        raise ValueError(
            f"variance_groups has {labels.size} labels but y has {n_samples} samples (rows); give one label per sample."
        )
    missing = pd.isna(labels)
    if missing.any():
        raise ValueError(
            f"variance_groups has missing labels (None or NaN) for {int(missing.sum())} of {n_samples} samples; "
            "give every sample a group."
        )
    codes, uniques = pd.factorize(labels, sort=False)
    basis = np.column_stack([model.x, model.nuisance])
    leverage = np.sum(np.square(basis), axis=1)
    weights = np.empty(n_samples)
    for code, label in enumerate(uniques):
        members = codes == code
        n_g = int(members.sum())
        df_g = n_g - float(leverage[members].sum())
        if n_g < 2 or df_g <= _MIN_GROUP_DF:
            label = label.item() if isinstance(label, np.generic) else label
            df_g = max(0.0, round(df_g, 9))
            raise ValueError(
                f"variance group {label!r} has {n_g} sample(s) and {df_g:.3g} residual degrees of freedom "
                f"(its size minus the sum of its leverages under the full design); each group needs at least 2 "
                f"samples and more than {_MIN_GROUP_DF} degrees of freedom to estimate its variance. Merge it "
                "with another group, or remove regressors that only it informs."
            )
        weights[members] = np.sum(np.square(model.x[members])) / df_g
    return _VarianceGroups(
        basis=basis,
        weights=weights,
        gram=basis.T @ (weights[:, None] * basis),
        floor=_RSS_FLOOR * float(weights.max()),
    )


# ---------------------------------------------------------------------------
# Clusters
# ---------------------------------------------------------------------------


def _face_neighbours(mask: np.ndarray) -> np.ndarray:
    """The 6 face neighbours of each mask voxel, as indices into the mask's voxels.

    Returns
    -------
    neighbours : ndarray of int32, shape (n_voxels, 6)
        Along each axis, the previous and the next voxel; a neighbour outside
        the mask (or the grid) is replaced by the voxel itself.
    """
    own = np.arange(int(mask.sum()), dtype=np.int32)
    index = np.full(np.add(mask.shape, 2), -1, dtype=np.int32)  # padded: every voxel has 6 neighbours in it
    index[1:-1, 1:-1, 1:-1][mask] = own
    columns = []
    for axis in range(3):
        for step in (-1, 1):
            window = [slice(1, -1)] * 3
            window[axis] = slice(1 + step, mask.shape[axis] + 1 + step)
            neighbour = index[tuple(window)][mask]
            columns.append(np.where(neighbour >= 0, neighbour, own))
    return np.stack(columns, axis=1)


class _ClusterLabeller:
    """Face-connected components of sets of mask voxels.

    :meth:`clusters` labels one map with ``scipy.ndimage.label``, on a reused
    buffer covering the bounding box of the mask.
    :meth:`supra_threshold_components` (and :meth:`max_size_and_mass`, for the
    null distributions) labels many maps at once from their supra-threshold
    voxels alone: the nodes of a graph whose edges join face neighbours of the
    same map and sign (from a table of each mask voxel's face neighbours, built
    once), split by ``scipy.sparse.csgraph.connected_components``; or, when
    they are so many that this is faster, by labelling each map on the grid.
    """

    #: Above this many supra-threshold voxels per map, per voxel of the mask's
    #: bounding box, :meth:`supra_threshold_components` labels each map on the
    #: grid instead (the two cost the same at about this density).
    GRID_FRACTION = 1 / 6

    def __init__(self, mask: np.ndarray):
        coords = np.argwhere(mask)
        lo = coords.min(axis=0)
        shape = tuple(coords.max(axis=0) - lo + 1)
        self._flat = np.ravel_multi_index(tuple((coords - lo).T), shape)
        self._volume = np.zeros(shape, dtype=bool)
        self._labels = np.empty(shape, dtype=np.int32)
        self._neighbours = _face_neighbours(mask)
        # Reused by supra_threshold_components, grown as needed: supra-threshold
        # flags per (map, voxel), node numbers per (sign, map, voxel), -1 where
        # there is no node.
        self._supra = np.empty(0, dtype=bool)
        self._node = np.empty(0, dtype=np.int32)

    def components(self, voxels: np.ndarray) -> np.ndarray:
        """Component number (1..k) of each voxel of ``voxels`` (indices into the mask's voxels)."""
        flat = self._flat[voxels]
        self._volume.flat[flat] = True
        ndimage.label(self._volume, CLUSTER_STRUCTURE, output=self._labels)
        self._volume.flat[flat] = False
        return self._labels.flat[flat]

    def supra_threshold_components(
        self, stat: np.ndarray, magnitude: np.ndarray, cut: float
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Clusters of a batch of maps, from their supra-threshold voxels alone.

        Parameters
        ----------
        stat : ndarray, shape (n_maps, n_voxels)
            The t maps, or any increasing odd function of them.
        magnitude : ndarray, shape (n_maps, n_voxels)
            ``|stat|`` (two-sided), or ``stat`` itself (one-sided).
        cut : float
            Positive: the supra-threshold voxels are ``magnitude > cut``; they
            form clusters with their face neighbours of the same map and sign.
            ``n_maps * n_voxels`` must be below ``2**30`` (int32 node slots).

        Returns
        -------
        flat : ndarray of intp, shape (n_nodes,)
            The supra-threshold voxels, as indices into ``stat.ravel()``
            (``map * n_voxels + voxel``), ascending.
        comp : ndarray of int, shape (n_nodes,)
            The cluster (0..n_comp-1) of each; a cluster lies in one map.
        n_comp : int
        """
        n_maps, n_voxels = stat.shape
        n_values = n_maps * n_voxels
        if self._supra.size < n_values:
            self._supra = np.empty(n_values, dtype=bool)
            self._node = np.full(2 * n_values, -1, dtype=np.int32)
        supra = np.greater(magnitude, cut, out=self._supra[:n_values].reshape(n_maps, n_voxels))
        flat = np.flatnonzero(supra)
        n_nodes = flat.size
        if n_nodes == 0:
            return flat, np.empty(0, dtype=np.int32), 0
        if n_nodes > self.GRID_FRACTION * self._volume.size * n_maps:
            return flat, *self._grid_components(stat, flat)
        voxel = flat % n_voxels
        nodes = np.arange(n_nodes, dtype=np.int32)
        # Node numbers in slots (sign, map, voxel): a node's neighbours' slots lie
        # in the same sign and map, and hold a node only if that neighbour is of
        # the same sign and supra-threshold (a missing neighbour is the voxel
        # itself). The buffer is left all -1 again.
        slot = flat + n_values * (stat.reshape(-1)[flat] < 0)
        neighbours = self._neighbours[voxel]
        neighbours += (slot - voxel)[:, None]
        self._node[slot] = nodes
        edges = self._node[neighbours]
        self._node[slot] = -1
        np.copyto(edges, nodes[:, None], where=edges < 0)  # self-loops
        # Every edge is listed from both of its ends, so the strongly connected
        # components are the connected components (and need no transposed copy).
        graph = sparse.csr_matrix(
            (np.ones(edges.size), edges.reshape(-1), np.arange(0, edges.size + 1, edges.shape[1], dtype=np.int32)),
            shape=(n_nodes, n_nodes),
        )
        n_comp, comp = csgraph.connected_components(graph, directed=True, connection="strong")
        return flat, comp, int(n_comp)

    def _grid_components(self, stat: np.ndarray, flat: np.ndarray) -> tuple[np.ndarray, int]:
        """:meth:`supra_threshold_components` by labelling each map and sign on the grid (:meth:`components`)."""
        n_maps, n_voxels = stat.shape
        negative = stat.reshape(-1)[flat] < 0
        comp = np.empty(flat.size, dtype=np.int64)
        n_comp = 0
        bounds = np.searchsorted(flat, np.arange(n_maps + 1) * n_voxels)
        for i in range(n_maps):
            for sign in (False, True):
                nodes = bounds[i] + np.flatnonzero(negative[bounds[i] : bounds[i + 1]] == sign)
                if nodes.size:
                    labels = self.components(flat[nodes] - i * n_voxels)
                    comp[nodes] = labels + (n_comp - 1)
                    n_comp += int(labels.max())
        return comp, n_comp

    def max_size_and_mass(
        self, stat: np.ndarray, magnitude: np.ndarray, cut: float, excess
    ) -> tuple[np.ndarray, np.ndarray]:
        """Largest cluster size and mass of each map of a batch.

        Parameters
        ----------
        stat, magnitude, cut
            As in :meth:`supra_threshold_components`.
        excess : callable
            Maps the ``magnitude`` of supra-threshold voxels (1D) to their
            contributions to the mass, ``|t| - threshold``.

        Returns
        -------
        size : ndarray of int64, shape (n_maps,)
        mass : ndarray of float64, shape (n_maps,)
            0 for a map without supra-threshold voxels.
        """
        n_maps, n_voxels = stat.shape
        flat, comp, n_comp = self.supra_threshold_components(stat, magnitude, cut)
        max_size = np.zeros(n_maps, dtype=np.int64)
        max_mass = np.zeros(n_maps)
        if n_comp == 0:
            return max_size, max_mass
        size = np.bincount(comp)
        # Each cluster's mass is summed over its voxels in voxel order (``flat``
        # ascends), as np.bincount over the labels of one map would.
        mass = np.bincount(comp, weights=excess(magnitude.reshape(-1)[flat]))
        comp_map = np.empty(n_comp, dtype=np.intp)
        comp_map[comp] = flat // n_voxels
        np.maximum.at(max_size, comp_map, size)
        np.maximum.at(max_mass, comp_map, mass)
        return max_size, max_mass

    def clusters(self, t: np.ndarray, threshold: float, two_sided: bool) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Clusters of one map ``t`` of shape (n_voxels,), sorted by size descending.

        Returns
        -------
        table : dict of ndarray, shape (n_clusters,)
            ``cluster_id``, ``sign``, ``size``, ``mass``, ``peak_t``, ``peak_voxel``.
        labels : ndarray of int, shape (n_voxels,)
            0 outside clusters, else the ``cluster_id``.
        """
        parts = []  # (sign, voxels, component of each voxel)
        for sign in (1, -1) if two_sided else (1,):
            signed = t if sign == 1 else -t
            voxels = np.flatnonzero(signed > threshold)
            if voxels.size:
                parts.append((sign, voxels, self.components(voxels)))
        # Number the clusters of all signs consecutively.
        offsets = np.cumsum([0] + [int(comp.max()) for _, _, comp in parts])
        voxels = np.concatenate([v for _, v, _ in parts] + [np.empty(0, np.intp)])
        comp = np.concatenate([c + off - 1 for (_, _, c), off in zip(parts, offsets)] + [np.empty(0, np.intp)])
        sign = np.concatenate([np.full(int(c.max()), s) for s, _, c in parts] + [np.empty(0, np.int64)])
        abs_t = np.abs(t[voxels])
        size = np.bincount(comp, minlength=sign.size)
        mass = np.bincount(comp, weights=abs_t - threshold, minlength=sign.size)
        # Peak: first voxel of each cluster once sorted by cluster, then by
        # decreasing |t| (ties: lowest voxel index, as ``voxels`` is sorted per sign).
        by_cluster = np.lexsort((voxels, -abs_t, comp))
        peak = voxels[by_cluster[np.searchsorted(comp[by_cluster], np.arange(sign.size))]]
        order = np.lexsort((peak, -mass, -size))
        cluster_id = np.empty(sign.size, dtype=np.int64)
        cluster_id[order] = np.arange(1, sign.size + 1)
        labels = np.zeros(t.shape[0], dtype=np.int64)
        labels[voxels] = cluster_id[comp]
        table = {
            "cluster_id": cluster_id[order],
            "sign": sign[order].astype(np.int64),
            "size": size[order].astype(np.int64),
            "mass": mass[order],
            "peak_t": t[peak[order]],
            "peak_voxel": peak[order].astype(np.int64),
        }
        return table, labels


def _p_from_null(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """``(1 + #{null >= observed}) / (1 + n_null)`` for each observed value."""
    sorted_null = np.sort(null)
    n_ge = null.size - np.searchsorted(sorted_null, observed, side="left")
    return (1.0 + n_ge) / (1.0 + null.size)


# ---------------------------------------------------------------------------
# Permutation test
# ---------------------------------------------------------------------------


@dataclass
class PermutationResult:
    """Outcome of :func:`cluster_permutation_test`.

    Attributes
    ----------
    t : ndarray, shape (n_voxels,)
        Observed t (the variance-group statistic ``G`` if ``statistic == "G"``).
    df : int
        Residual degrees of freedom ``n_samples - rank(X)``.
    threshold : float
        Cluster-forming threshold on ``|t|`` (on ``t`` if one-sided).
    labels : ndarray of int, shape (n_voxels,)
        0 outside supra-threshold clusters, else the ``cluster_id``.
    clusters : pandas.DataFrame
        One row per cluster, sorted by size descending (ties: mass descending),
        with columns ``cluster_id`` (1..k in that order), ``sign`` (+1/-1),
        ``size`` (voxels), ``mass`` (sum of ``|t| - threshold``), ``peak_t``,
        ``peak_voxel`` (index into the voxel axis), ``p_fwe_size``,
        ``p_fwe_mass``.
    p_fwe_voxel : ndarray, shape (n_voxels,)
        FWE-corrected p from the null distribution of the maximum ``|t|``
        (of ``t`` if one-sided).
    h0_max_size, h0_max_mass, h0_max_t : ndarray, shape (n_perm,)
        Null distributions of the largest cluster size and mass and of the
        maximum statistic, in the order of the resamplings.
    n_perm : int
    two_sided : bool
    statistic : str
        ``"t"`` (OLS t) or ``"G"`` (with variance groups).
    sign_flip : bool or None
        Whether the resamplings were sign flips (else row permutations); None
        if not recorded.
    """

    t: np.ndarray
    df: int
    threshold: float
    labels: np.ndarray
    clusters: pd.DataFrame
    p_fwe_voxel: np.ndarray
    h0_max_size: np.ndarray
    h0_max_mass: np.ndarray
    h0_max_t: np.ndarray
    n_perm: int
    two_sided: bool
    statistic: str = "t"
    sign_flip: bool | None = None


def _check_mask(mask, n_voxels: int) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise ValueError(f"mask must be a 3D array (nx, ny, nz), got shape {mask.shape}.")
    if mask.dtype != bool:
        if not (np.issubdtype(mask.dtype, np.number) and np.isin(mask, (0, 1)).all()):
            raise ValueError("mask must be boolean (or contain only 0 and 1); binarise it first, e.g. mask > 0.")
        mask = mask.astype(bool)
    if not mask.any():
        raise ValueError("mask has no True voxels; nothing to test.")
    if int(mask.sum()) != n_voxels:
        raise ValueError(
            f"y has {n_voxels} columns but mask has {int(mask.sum())} True voxels; y must hold the mask's "
            "voxels in C order (e.g. data[mask] per sample, or nilearn.masking.apply_mask with the same mask)."
        )
    return mask


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}.")
    return int(value)


def _draw_resamplings(rng: np.random.Generator, n_perm: int, n_samples: int, sign_flip: bool) -> np.ndarray:
    """(n_perm, n_samples) sign flips (+1/-1) or row permutations."""
    if sign_flip:
        return rng.integers(0, 2, size=(n_perm, n_samples), dtype=np.int8) * np.int8(2) - np.int8(1)
    return rng.permuted(np.tile(np.arange(n_samples, dtype=np.int32), (n_perm, 1)), axis=1)


def _draw_chunks(
    rng: np.random.Generator, n_perm: int, n_samples: int, sign_flip: bool, chunk_size: int
) -> list[np.ndarray]:
    """The resamplings in seeded chunks of ``chunk_size`` rows (the last fewer), chunk ``k`` from ``rng.spawn()[k]``.

    Returns
    -------
    chunks : list of ndarray, each of shape (n_draws, n_samples)
    """
    n_chunks = -(-n_perm // chunk_size)
    sizes = [min(chunk_size, n_perm - k * chunk_size) for k in range(n_chunks)]
    return [_draw_resamplings(child, size, n_samples, sign_flip) for child, size in zip(rng.spawn(n_chunks), sizes)]


@dataclass(frozen=True)
class _Scale:
    """From the statistic the nulls are computed on (beta, or t / G) to t, and to a cluster's mass."""

    from_beta: bool
    df: int
    threshold: float

    def to_t(self, stat: np.ndarray) -> np.ndarray:
        return _t_of_beta(stat, self.df) if self.from_beta else stat

    def excess(self, stat: np.ndarray) -> np.ndarray:
        return self.to_t(stat) - self.threshold


def _null_maxima(
    draws: np.ndarray,
    model: _Model,
    groups,
    resid: np.ndarray,
    labeller,
    cut: float,
    scale: _Scale,
    two_sided: bool,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Largest |t| (or t), cluster size and cluster mass of the null map of each resampling of one chunk.

    Parameters
    ----------
    draws : ndarray, shape (n_draws, n_samples)
        Sign flips or row permutations.
    model, groups, resid, labeller, cut, scale, two_sided, batch_size
        As prepared by :func:`cluster_permutation_test`.

    Returns
    -------
    max_t : ndarray, shape (n_draws,)
    max_size : ndarray of int64, shape (n_draws,)
    max_mass : ndarray, shape (n_draws,)
    """
    n_draws, n_voxels = len(draws), resid.shape[1]
    max_t = np.empty(n_draws)
    max_size = np.zeros(n_draws, dtype=np.int64)
    max_mass = np.zeros(n_draws)
    n_resampled = model.resampled_nuisance.shape[1]
    if groups is None:
        work = np.empty((1 if scale.from_beta else 2 + (n_resampled > 0), min(batch_size, n_draws), n_voxels))
    else:
        batch_size = min(batch_size, groups.batch_size(n_voxels))
        c0 = groups.weights @ np.square(resid)
    block = max(1, _BLOCK_VALUES // n_voxels)
    magnitude_buffer = np.empty((min(block, batch_size, n_draws), n_voxels)) if two_sided else None
    for start in range(0, n_draws, batch_size):
        batch = draws[start : start + batch_size]
        if groups is not None:
            stat = groups.null(batch.astype(np.float64), resid, c0)
        else:
            if model.sign_flip:
                x = batch * model.x
                z = batch[:, :, None] * model.resampled_nuisance[None]
            else:
                x = model.x[batch]
                z = model.resampled_nuisance[batch]
            if scale.from_beta:
                stat = np.matmul(x, resid, out=work[0, : len(batch)])
            else:
                stat = _t_maps(x, z, resid, model.df, work)
        # Row blocks small enough to stay in cache through the passes below.
        for first in range(0, len(batch), block):
            rows = stat[first : first + block]
            magnitude = np.abs(rows, out=magnitude_buffer[: len(rows)]) if two_sided else rows
            done = slice(start + first, start + first + len(rows))
            max_t[done] = scale.to_t(magnitude.max(axis=1))
            max_size[done], max_mass[done] = labeller.max_size_and_mass(rows, magnitude, cut, scale.excess)
    return max_t, max_size, max_mass


def cluster_permutation_test(
    y,
    tested,
    mask,
    confounds=None,
    cluster_forming_p=0.001,
    n_perm=5000,
    two_sided=True,
    rng=None,
    batch_size=256,
    *,
    variance_groups=None,
    sign_flip=None,
    chunk_size=500,
    n_jobs=1,
) -> PermutationResult:
    """Permutation test of one regressor with cluster- and voxel-level FWE control.

    Parameters
    ----------
    y : array-like, shape (n_samples, n_voxels)
        Columns are the ``True`` voxels of ``mask`` in C order.
    tested : array-like, shape (n_samples,)
        Tested regressor; constant for a one-sample test (sign flipping),
        otherwise row permutation (Freedman-Lane) unless ``sign_flip`` or
        ``variance_groups`` is given.
    mask : array-like of bool, shape (nx, ny, nz)
        Defines the voxel grid and the neighbourhoods of clusters.
    confounds : array-like, shape (n_samples, n_confounds), optional
        Fitted, not tested. An intercept is always added unless ``tested`` is
        constant.
    cluster_forming_p : float
        One-tailed p per tail, in ``(0, 0.5)``, converted to the threshold
        ``scipy.stats.t.isf(cluster_forming_p, df)``.
    n_perm : int
        Number of random resamplings.
    two_sided : bool
        Positive and negative clusters (of ``|t|``) if True, positive only if False.
    rng : numpy.random.Generator, int or None
        Source of the resamplings (passed to :func:`numpy.random.default_rng`).
    batch_size : int
        Resamplings whose t maps are computed together, in a buffer of
        2 (3 with confounds) x ``batch_size * n_voxels`` float64. Does not
        change the result. With variance groups, batches are further capped so
        that their buffers stay under about 256 MB.
    variance_groups : array-like, shape (n_samples,), optional
        Label of each sample's variance group (any hashable values, no missing
        ones). The error variance may then differ between groups: the
        statistic is the variance-group statistic ``G`` of Winkler et al.
        (2014) instead of the t (Welch's v for a two-sample test without
        confounds; the t for a single group), the resamplings are sign flips
        (``sign_flip`` must not be False), and clusters are formed on ``G``
        with the t threshold, only approximately of level
        ``cluster_forming_p`` (see the module docstring). Each group needs at
        least 2 samples and more than 0.5 residual degrees of freedom.
    sign_flip : bool or None
        None: sign flipping if ``tested`` is constant or ``variance_groups`` is
        given, else permutation. True: sign flipping (Freedman-Lane with sign
        flips of the nuisance-model residuals; assumes independent symmetric
        errors) whatever ``tested``; without variance groups the statistic is
        still the t. False: permutation; an error if ``tested`` is constant or
        ``variance_groups`` is given.
    chunk_size : int
        Resamplings per seeded chunk of the null (see the module docstring):
        part of the result's definition, like ``rng``.
    n_jobs : int
        Worker processes computing the chunks (joblib; under the Dask engine
        of :mod:`craving_circuits.io.compute`, the cluster's workers). Does not
        change the result.

    Returns
    -------
    PermutationResult
    """
    y = np.asarray(y)
    if y.ndim != 2:
        raise ValueError(f"y must be 2D (n_samples, n_voxels), got shape {y.shape}.")
    mask = _check_mask(mask, y.shape[1])
    n_perm = _check_positive_int("n_perm", n_perm)
    batch_size = _check_positive_int("batch_size", batch_size)
    chunk_size = _check_positive_int("chunk_size", chunk_size)
    if not (isinstance(cluster_forming_p, numbers.Real) and 0 < cluster_forming_p < 0.5):
        raise ValueError(
            f"cluster_forming_p must be a one-tailed p strictly between 0 and 0.5, got {cluster_forming_p!r}."
        )
    if not isinstance(two_sided, (bool, np.bool_)):
        raise ValueError(f"two_sided must be True or False, got {two_sided!r}.")
    two_sided = bool(two_sided)
    if sign_flip is not None and not isinstance(sign_flip, (bool, np.bool_)):
        raise ValueError(f"sign_flip must be None, True or False, got {sign_flip!r}.")
    if variance_groups is not None and sign_flip is not None and not sign_flip:
        raise ValueError(
            "variance_groups needs sign flipping (sign_flip=None or True): errors with different variances "
            "are not exchangeable between groups, so permuting rows across groups is not a valid null."
        )

    resid, model = _prepare(y, tested, confounds, True)
    if sign_flip is not None and not sign_flip and model.sign_flip:
        raise ValueError(
            "sign_flip=False with a constant tested (one-sample test): a permutation leaves a constant "
            "regressor unchanged; use sign flipping (sign_flip=None or True)."
        )
    if (sign_flip or variance_groups is not None) and not model.sign_flip:
        # No nuisance column (the intercept included) is invariant under sign flips.
        model = dataclasses.replace(model, n_invariant=0, sign_flip=True)
    groups = None if variance_groups is None else _variance_groups(variance_groups, model)
    rng = np.random.default_rng(rng)
    chunks = _draw_chunks(rng, n_perm, y.shape[0], model.sign_flip, chunk_size)

    t_obs = _observed_t(model, resid) if groups is None else groups.observed(model.x, resid)
    threshold = float(stats.t.isf(cluster_forming_p, model.df))
    if not threshold > 0:  # scipy gives -inf for the tiniest p
        raise ValueError(
            f"cluster_forming_p={cluster_forming_p!r} is too small for {model.df} degrees of freedom: "
            f"scipy.stats.t.isf gives the threshold {threshold}; use a larger p."
        )
    labeller = _ClusterLabeller(mask)

    # Without resampled nuisance columns t is an increasing function of beta
    # alone (_t_of_beta): clusters and maxima are found on beta, and t is
    # computed only for the supra-threshold voxels and the maxima.
    from_beta = groups is None and model.resampled_nuisance.shape[1] == 0
    scale = _Scale(from_beta, model.df, threshold)
    cut = _beta_cut(threshold, model.df) if from_beta else threshold
    nulls = Parallel(n_jobs=n_jobs)(
        delayed(_null_maxima)(draws, model, groups, resid, labeller, cut, scale, two_sided, batch_size)
        for draws in chunks
    )
    h0_max_t, h0_max_size, h0_max_mass = (np.concatenate(parts) for parts in zip(*nulls))

    table, labels = labeller.clusters(t_obs, threshold, two_sided)
    table["p_fwe_size"] = _p_from_null(table["size"], h0_max_size)
    table["p_fwe_mass"] = _p_from_null(table["mass"], h0_max_mass)
    p_fwe_voxel = _p_from_null(np.abs(t_obs) if two_sided else t_obs, h0_max_t)
    return PermutationResult(
        t=t_obs,
        df=model.df,
        threshold=threshold,
        labels=labels,
        clusters=pd.DataFrame(table, columns=_CLUSTER_COLUMNS),
        p_fwe_voxel=p_fwe_voxel,
        h0_max_size=h0_max_size,
        h0_max_mass=h0_max_mass,
        h0_max_t=h0_max_t,
        n_perm=n_perm,
        two_sided=two_sided,
        statistic="t" if groups is None else "G",
        sign_flip=model.sign_flip,
    )
