"""Tests of the variance groups (Winkler et al. 2014) and of forced sign flipping in cluster_permutation_test."""

from __future__ import annotations

import itertools
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage, stats

from craving_circuits.stats.permutation import cluster_permutation_test, t_statistic

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def smooth_noise(rng, n_samples, mask, sigma=1.0):
    """(n_samples, n_voxels) spatially smooth Gaussian noise of unit variance."""
    vol = rng.standard_normal((n_samples, *mask.shape))
    vol = ndimage.gaussian_filter(vol, (0, sigma, sigma, sigma))
    y = vol[:, mask]
    return y / y.std()


def observed(y, tested, confounds=None, **kwargs):
    """The observed statistic map (one resampling only)."""
    mask = np.ones((1, 1, y.shape[1]), dtype=bool)
    return cluster_permutation_test(y, tested, mask, confounds, n_perm=1, rng=0, **kwargs).t


def direct_g(y, design, groups):
    """G of the first column of ``design`` (which includes every regressor), straight from the formula."""
    n = design.shape[0]
    b = np.linalg.lstsq(design, y, rcond=None)[0][0]
    r = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
    # a: the row of (X'X)^-1 X' for the first coefficient; h: leverages.
    a = np.linalg.lstsq(design, np.eye(n), rcond=None)[0][0]
    h = np.einsum("ij,ji->i", design, np.linalg.lstsq(design, np.eye(n), rcond=None)[0])
    variance = 0.0
    for g in np.unique(groups):
        members = groups == g
        s2 = np.sum(r[members] ** 2, axis=0) / (members.sum() - h[members].sum())
        variance = variance + s2 * np.sum(a[members] ** 2)
    return b / np.sqrt(variance)


def direct_t(y, design):
    """OLS t of the first column of ``design``."""
    n, p = design.shape
    coef, rss = np.linalg.lstsq(design, y, rcond=None)[:2]
    cov = np.linalg.inv(design.T @ design)[0, 0]
    return coef[0] / np.sqrt(rss / (n - p) * cov)


def max_size_and_mass(stat_map, mask, threshold):
    """Largest face-connected cluster size and mass over both signs, independently of the package."""
    best_size, best_mass = 0, 0.0
    for signed in (stat_map, -stat_map):
        vol = np.zeros(mask.shape)
        vol[mask] = signed
        labels, k = ndimage.label(vol > threshold, ndimage.generate_binary_structure(3, 1))
        for c in range(1, k + 1):
            best_size = max(best_size, int(np.sum(labels == c)))
            best_mass = max(best_mass, float(np.sum(vol[labels == c] - threshold)))
    return best_size, best_mass


# ---------------------------------------------------------------------------
# The statistic
# ---------------------------------------------------------------------------


def test_two_groups_without_confounds_is_welch():
    rng = np.random.default_rng(20)
    n1, n0, n_vox = 9, 16, 30
    group = np.r_[np.ones(n1), np.zeros(n0)]
    y = rng.standard_normal((n1 + n0, n_vox)) * np.where(group == 1, 3.0, 1.0)[:, None] + 0.5 * group[:, None]
    labels = np.where(group == 1, "patients", "controls")  # labels need not be the tested values
    welch = stats.ttest_ind(y[group == 1], y[group == 0], equal_var=False).statistic
    np.testing.assert_allclose(observed(y, group, variance_groups=labels), welch, rtol=1e-10, atol=1e-12)
    # Any coding of the group regressor tests the same difference (the sign follows the coding).
    np.testing.assert_allclose(observed(y, 2 * group - 1, variance_groups=labels), welch, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(observed(y, 1 - group, variance_groups=list(labels)), -welch, rtol=1e-10, atol=1e-12)
    # And it is not the pooled t (the data are heteroscedastic).
    pooled = stats.ttest_ind(y[group == 1], y[group == 0]).statistic
    assert np.max(np.abs(welch - pooled)) > 0.1


@pytest.mark.parametrize("design", ["two-sample", "two-sample+confound", "one-sample+confound", "slope+confounds"])
def test_one_variance_group_gives_the_t(design):
    rng = np.random.default_rng(21)
    n, n_vox = 20, 25
    y = rng.standard_normal((n, n_vox)) + 0.3
    group = (np.arange(n) % 2).astype(float)
    confounds = rng.normal(30, 5, (n, 2))
    tested, confounds = {
        "two-sample": (group, None),
        "two-sample+confound": (group, confounds[:, :1]),
        "one-sample+confound": (np.ones(n), confounds[:, :1]),
        "slope+confounds": (rng.standard_normal(n), confounds),
    }[design]
    g = observed(y, tested, confounds, variance_groups=np.zeros(n))
    np.testing.assert_allclose(g, t_statistic(y, tested, confounds), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("design", ["two-sample+confounds", "one-sample+confound", "slope+confound"])
def test_g_matches_the_formula(design):
    rng = np.random.default_rng(22)
    n, n_vox = 24, 20
    groups = np.repeat([0, 1, 2], [5, 8, 11])
    y = rng.standard_normal((n, n_vox)) * np.array([2.0, 0.5, 1.0])[groups][:, None] + 0.2
    group = (np.arange(n) % 3 == 0).astype(float)  # unbalanced, and not aligned with the variance groups
    confounds = rng.normal(0, 1, (n, 2))
    tested, confounds = {
        "two-sample+confounds": (group, confounds),
        "one-sample+confound": (np.ones(n), confounds[:, :1]),
        "slope+confound": (rng.standard_normal(n), confounds[:, :1]),
    }[design]
    intercept = [] if np.ptp(tested) == 0 else [np.ones(n)]
    design_matrix = np.column_stack([tested, *intercept, confounds])
    expected = direct_g(y, design_matrix, groups)
    np.testing.assert_allclose(observed(y, tested, confounds, variance_groups=groups), expected, rtol=1e-9)
    # The variance groups matter: G is not the t (in a one-sample test, where a is uniform, only through the
    # degrees-of-freedom corrections of the group variances).
    assert np.max(np.abs(expected - direct_t(y, design_matrix))) > 1e-3


def test_voxels_without_variance_get_zero_g():
    rng = np.random.default_rng(23)
    mask = np.ones((3, 3, 3), dtype=bool)
    y = rng.standard_normal((14, 27))
    y[:, [3, 11]] = 1.5
    groups = np.repeat([0, 1], 7)
    with pytest.warns(UserWarning, match="2 of 27 voxels have no residual variance"):
        result = cluster_permutation_test(y, groups, mask, n_perm=30, rng=0, variance_groups=groups)
    assert result.t[3] == 0 and result.t[11] == 0
    assert np.all(np.isfinite(result.h0_max_t)) and np.all(np.isfinite(result.t))


# ---------------------------------------------------------------------------
# The resamplings: every null value is that of one sign flip of the residuals
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("statistic", ["G", "t, sign_flip=True"])
def test_null_values_are_those_of_sign_flipped_residuals(statistic):
    """With 8 samples all 256 sign flips can be enumerated: each resampling must be one of them.

    Freedman-Lane with sign flips: ``y* = S e``, ``e`` the residuals under the
    nuisance model (intercept and confound), refitted with the full design.
    """
    rng = np.random.default_rng(24)
    mask = np.ones((3, 3, 3), dtype=bool)
    n = 8
    group = np.repeat([1.0, 0.0], 4)
    confound = rng.standard_normal((n, 1))
    y = smooth_noise(rng, n, mask, sigma=0.6) * np.where(group == 1, 2.0, 1.0)[:, None]
    kwargs = dict(variance_groups=group) if statistic == "G" else dict(sign_flip=True)
    result = cluster_permutation_test(y, group, mask, confound, cluster_forming_p=0.05, n_perm=40, rng=1, **kwargs)
    assert result.sign_flip is True and result.statistic == ("G" if statistic == "G" else "t")
    assert result.df == n - 3

    nuisance = np.c_[np.ones(n), confound]
    e = y - nuisance @ np.linalg.lstsq(nuisance, y, rcond=None)[0]
    design = np.c_[group, nuisance]
    candidates = []
    for signs in itertools.product([1.0, -1.0], repeat=n):
        y_star = np.asarray(signs)[:, None] * e
        g = direct_g(y_star, design, group) if statistic == "G" else direct_t(y_star, design)
        candidates.append((np.abs(g).max(), *max_size_and_mass(g, mask, result.threshold)))
    candidates = np.array(candidates)
    for max_t, size, mass in zip(result.h0_max_t, result.h0_max_size, result.h0_max_mass):
        match = np.flatnonzero(np.isclose(candidates[:, 0], max_t, rtol=1e-9, atol=0))
        assert match.size, f"no sign flip gives max |{statistic}| = {max_t}"
        assert np.any((candidates[match, 1] == size) & np.isclose(candidates[match, 2], mass, rtol=1e-9, atol=1e-12))
    # The data themselves are one of the flips (all +1).
    g_obs = direct_g(y, design, group) if statistic == "G" else direct_t(y, design)
    np.testing.assert_allclose(result.t, g_obs, rtol=1e-9)


# ---------------------------------------------------------------------------
# Size under a heteroscedastic null (Behrens-Fisher)
# ---------------------------------------------------------------------------


def test_variance_groups_keep_the_level_where_the_pooled_permutation_test_does_not():
    """Two groups (12 and 30) with no difference, the small one with 3 times the SD of the large one.

    The pooled-variance t under row permutation is the Behrens-Fisher failure:
    the permutation null mixes the variances and is too narrow for the small,
    noisy group, so the family-wise error rate is far above alpha. With
    variance groups (G, sign flipping) it stays near alpha.
    """
    n_studies, alpha, n_perm = 400, 0.05, 99  # p <= 0.05 iff at most 4 of 99 resamplings reach the data
    mask = np.ones((6, 6, 6), dtype=bool)
    group = np.r_[np.ones(12), np.zeros(30)]
    sd = np.where(group == 1, 3.0, 1.0)
    rejections = {"G voxel": 0, "G mass": 0, "pooled voxel": 0, "pooled mass": 0}
    for seed in range(n_studies):
        rng = np.random.default_rng([25, seed])
        y = smooth_noise(rng, group.size, mask) * sd[:, None]
        for name, kwargs in (("G", dict(variance_groups=group)), ("pooled", {})):
            result = cluster_permutation_test(y, group, mask, cluster_forming_p=0.01, n_perm=n_perm, rng=seed, **kwargs)
            rejections[f"{name} voxel"] += result.p_fwe_voxel.min() <= alpha
            rejections[f"{name} mass"] += np.min(result.clusters["p_fwe_mass"].to_numpy(), initial=1.0) <= alpha
    rates = {
        key: (count / n_studies, *stats.binomtest(int(count), n_studies).proportion_ci(0.999, method="exact"))
        for key, count in rejections.items()
    }
    # 99.9% binomial band around alpha.
    low, high = stats.binom.ppf([0.0005, 0.9995], n_studies, alpha) / n_studies
    assert low <= rates["G voxel"][0] <= high, rates
    assert low <= rates["G mass"][0] <= high, rates
    # The pooled test is demonstrably liberal: even the lower end of the 99.9% interval of its rate is twice alpha.
    assert rates["pooled voxel"][1] > 2 * alpha, rates


# ---------------------------------------------------------------------------
# Options, reproducibility, memory
# ---------------------------------------------------------------------------


def test_sign_flip_option_and_defaults():
    rng = np.random.default_rng(26)
    mask = np.ones((4, 4, 4), dtype=bool)
    n = 16
    group = np.repeat([1.0, 0.0], 8)
    confound = rng.standard_normal((n, 1))
    y = smooth_noise(rng, n, mask) + 0.3 * group[:, None]
    kwargs = dict(cluster_forming_p=0.01, n_perm=60, rng=5)
    # Variance groups imply sign flipping; saying so changes nothing.
    implied = cluster_permutation_test(y, group, mask, confound, variance_groups=group, **kwargs)
    explicit = cluster_permutation_test(y, group, mask, confound, variance_groups=group, sign_flip=True, **kwargs)
    np.testing.assert_array_equal(implied.h0_max_t, explicit.h0_max_t)
    # One variance group: the t statistic with sign flips, computed either way.
    one_group = cluster_permutation_test(y, group, mask, confound, variance_groups=np.ones(n), **kwargs)
    flipped_t = cluster_permutation_test(y, group, mask, confound, sign_flip=True, **kwargs)
    np.testing.assert_allclose(one_group.t, flipped_t.t, rtol=1e-10)
    np.testing.assert_allclose(one_group.h0_max_t, flipped_t.h0_max_t, rtol=1e-10)
    np.testing.assert_allclose(one_group.h0_max_mass, flipped_t.h0_max_mass, rtol=1e-9)
    np.testing.assert_array_equal(one_group.h0_max_size, flipped_t.h0_max_size)
    assert (one_group.statistic, flipped_t.statistic) == ("G", "t")
    # sign_flip=False is the default permutation scheme; sign_flip=True the default for a one-sample test.
    default = cluster_permutation_test(y, group, mask, confound, **kwargs)
    assert default.sign_flip is False and default.statistic == "t"
    np.testing.assert_array_equal(
        default.h0_max_t, cluster_permutation_test(y, group, mask, confound, sign_flip=False, **kwargs).h0_max_t
    )
    one_sample = cluster_permutation_test(y, np.ones(n), mask, confound, **kwargs)
    assert one_sample.sign_flip is True
    np.testing.assert_array_equal(
        one_sample.h0_max_t, cluster_permutation_test(y, np.ones(n), mask, confound, sign_flip=True, **kwargs).h0_max_t
    )


@pytest.mark.parametrize("confounded", [False, True])
def test_result_does_not_depend_on_batch_size_and_inputs_are_kept(confounded):
    rng = np.random.default_rng(27)
    mask = np.ones((5, 5, 5), dtype=bool)
    n = 18
    group = np.repeat([1.0, 0.0], [6, 12])
    confounds = rng.standard_normal((n, 2)) if confounded else None
    labels = list(np.where(group == 1, "a", "b"))
    y = smooth_noise(rng, n, mask) * np.where(group == 1, 2.0, 1.0)[:, None] + 1.5 * group[:, None]
    copies = [np.copy(a) for a in (y, group, mask, labels)] + ([confounds.copy()] if confounded else [])
    kwargs = dict(cluster_forming_p=0.01, n_perm=50, rng=3, variance_groups=labels)
    reference = cluster_permutation_test(y, group, mask, confounds, **kwargs)
    for batch_size in (1, 7, 1000):
        other = cluster_permutation_test(y, group, mask, confounds, batch_size=batch_size, **kwargs)
        np.testing.assert_array_equal(other.t, reference.t)
        np.testing.assert_allclose(other.h0_max_t, reference.h0_max_t, rtol=1e-12)
        np.testing.assert_allclose(other.h0_max_mass, reference.h0_max_mass, rtol=1e-12)
        np.testing.assert_array_equal(other.h0_max_size, reference.h0_max_size)
        np.testing.assert_array_equal(other.p_fwe_voxel, reference.p_fwe_voxel)
        pd.testing.assert_frame_equal(other.clusters, reference.clusters)
    for original, copy in zip((y, group, mask, labels, *([confounds] if confounded else [])), copies):
        np.testing.assert_array_equal(original, copy)
    assert len(reference.clusters) > 0  # the planted effect forms clusters, so the comparison is not vacuous


def test_memory_stays_bounded():
    """n_samples = 45 and 60000 voxels: the buffers of a batch of resamplings stay near 256 MB."""
    n, n_vox = 45, 60000
    mask = np.zeros((40, 40, 40), dtype=bool)
    mask.flat[:n_vox] = True
    rng = np.random.default_rng(28)
    y = rng.standard_normal((n, n_vox))
    group = np.repeat([1.0, 0.0], [15, 30])
    tracemalloc.start()
    try:
        cluster_permutation_test(y, group, mask, rng.standard_normal((n, 2)), n_perm=120, variance_groups=group)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # y itself is 21.6 MB; a (n_perm, n_samples, n_voxels) or even (batch_size=256, n_voxels, ...) temporary would
    # exceed this.
    assert peak < 330 * 2**20, f"peak {peak / 2**20:.0f} MiB"


# ---------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------


def _bad_inputs():
    n = 10
    group = np.repeat([1.0, 0.0], 5)
    singleton = np.r_[0, np.ones(n - 1)]  # one sample alone in its group
    # Group "a" holds samples 0 and 1; the group regressor and a confound marking sample 0 fit both exactly.
    exact = np.r_[np.ones(2), np.zeros(n - 2)]
    return [
        (dict(variance_groups=group[:-1]), r"variance_groups has 9 labels but y has 10 samples"),
        (dict(variance_groups=np.c_[group, group]), r"variance_groups must be 1D"),
        (dict(variance_groups=[*group[:-1], None]), r"variance_groups has missing labels .* 1 of 10 samples"),
        (dict(variance_groups=np.r_[group[:-1], np.nan]), r"missing labels"),
        (dict(variance_groups=singleton), r"variance group 0\.0 has 1 sample\(s\)"),
        (
            dict(tested=exact, confounds=np.eye(n)[:, :1], variance_groups=np.where(exact == 1, "a", "b")),
            r"variance group 'a' has 2 sample\(s\) and 0 residual degrees of freedom",
        ),
        (dict(variance_groups=group, sign_flip=False), r"variance_groups needs sign flipping .* not exchangeable"),
        (dict(sign_flip="yes"), r"sign_flip must be None, True or False"),
        (dict(tested=np.ones(n), sign_flip=False), r"sign_flip=False with a constant tested"),
    ]


@pytest.mark.parametrize("case", range(len(_bad_inputs())))
def test_bad_inputs_raise_informative_errors(case):
    overrides, message = _bad_inputs()[case]
    rng = np.random.default_rng(29)
    n = 10
    kwargs = dict(y=rng.standard_normal((n, 12)), tested=np.repeat([1.0, 0.0], 5), mask=np.ones((2, 2, 3), dtype=bool))
    with pytest.raises(ValueError, match=message):
        cluster_permutation_test(**(kwargs | dict(n_perm=5, rng=0) | overrides))
