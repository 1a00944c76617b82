"""Tests of craving_circuits.stats.permutation, largely against statsmodels and nilearn."""

from __future__ import annotations

import dataclasses
import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from nilearn.maskers import NiftiMasker
from nilearn.mass_univariate import permuted_ols
from scipy import ndimage, stats

from craving_circuits.stats import permutation as perm
from craving_circuits.stats.permutation import (
    PermutationResult,
    cluster_permutation_test,
    t_statistic,
)

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def ball_mask(shape=(10, 10, 10), radius=4.6):
    """A ball-shaped mask, so that the voxel order and the mask edges matter."""
    centre = (np.array(shape) - 1) / 2
    grid = np.indices(shape).transpose(1, 2, 3, 0)
    return np.linalg.norm(grid - centre, axis=-1) <= radius


def smooth_noise(rng, n_samples, mask, sigma=1.0):
    """(n_samples, n_voxels) spatially smooth Gaussian noise of unit variance."""
    vol = rng.standard_normal((n_samples, *mask.shape))
    vol = ndimage.gaussian_filter(vol, (0, sigma, sigma, sigma))
    y = vol[:, mask]
    return y / y.std()


def run_nilearn(y, tested, mask, confounds=None, *, n_perm, cluster_forming_p, two_sided=True, seed=0):
    """nilearn's permuted_ols with cluster inference, with our per-tail threshold convention."""
    masker = NiftiMasker(nib.Nifti1Image(mask.astype(np.uint8), np.eye(4))).fit()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = permuted_ols(
            np.asarray(tested, dtype=float)[:, None],
            y,
            confounding_vars=confounds,
            n_perm=n_perm,
            two_sided_test=two_sided,
            threshold=2 * cluster_forming_p if two_sided else cluster_forming_p,
            masker=masker,
            random_state=seed,
        )
    return {key: np.asarray(value)[0] for key, value in out.items()}


def designs(n, rng):
    """(tested, confounds) of a one-sample test and of a two-sample test with a confound."""
    group = np.r_[np.zeros(n // 2), np.ones(n - n // 2)]
    age = rng.normal(35, 8, n)
    return {
        "one-sample": (np.ones(n), None),
        "two-sample+age": (group, age[:, None]),
    }


# ---------------------------------------------------------------------------
# 1-2. The t statistic
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case", ["one-sample", "two-sample", "two-sample+confound", "one-sample+confound", "slope-no-intercept"]
)
def test_t_statistic_matches_statsmodels(case):
    rng = np.random.default_rng(1)
    n, n_vox = 23, 40
    y = rng.standard_normal((n, n_vox)) + 0.4
    group = (np.arange(n) % 2).astype(float)
    confound = rng.normal(30, 5, (n, 1))
    intercept = True
    if case == "one-sample":
        tested, confounds, exog = np.ones(n), None, np.ones((n, 1))
    elif case == "two-sample":
        tested, confounds, exog = group, None, np.c_[group, np.ones(n)]
    elif case == "two-sample+confound":
        tested, confounds, exog = group, confound, np.c_[group, np.ones(n), confound]
    elif case == "one-sample+confound":
        tested, confounds, exog = np.ones(n), confound, np.c_[np.ones(n), confound]
    else:
        tested, confounds, exog, intercept = confound[:, 0], None, confound, False
    expected = [sm.OLS(y[:, v], exog).fit().tvalues[0] for v in range(n_vox)]
    np.testing.assert_allclose(t_statistic(y, tested, confounds, intercept=intercept), expected, rtol=1e-10, atol=1e-12)


def test_t_statistic_constant_confound_is_absorbed_by_intercept():
    rng = np.random.default_rng(2)
    y = rng.standard_normal((15, 5))
    x = rng.standard_normal(15)
    conf = rng.standard_normal((15, 1))
    with_const = np.c_[conf, np.full(15, 3.0)]
    np.testing.assert_allclose(t_statistic(y, x, with_const), t_statistic(y, x, conf), rtol=1e-10)


@pytest.mark.parametrize("design", ["one-sample", "two-sample+age"])
@pytest.mark.parametrize("two_sided", [True, False])
def test_observed_t_and_clusters_match_nilearn(design, two_sided):
    rng = np.random.default_rng(3)
    mask = ball_mask()
    n = 18
    tested, confounds = designs(n, rng)[design]
    pattern = np.where(np.argwhere(mask)[:, 0] < 5, 0.4, -0.4)  # effects of both signs
    y = smooth_noise(rng, n, mask) + tested[:, None] * pattern[None, :]
    result = cluster_permutation_test(
        y, tested, mask, confounds, cluster_forming_p=0.02, n_perm=1, two_sided=two_sided, rng=0
    )
    ref = run_nilearn(y, tested, mask, confounds, n_perm=1, cluster_forming_p=0.02, two_sided=two_sided)

    np.testing.assert_allclose(result.t, ref["t"], rtol=1e-10, atol=1e-12)
    # Cluster formation (threshold, connectivity, signs): the size and mass of
    # each voxel's cluster, 0 outside clusters.
    assert len(result.clusters) >= (3 if two_sided else 2)
    if two_sided:
        assert set(result.clusters["sign"]) == {-1, 1}
    size_map = np.r_[0, result.clusters.sort_values("cluster_id")["size"]][result.labels]
    mass_map = np.r_[0.0, result.clusters.sort_values("cluster_id")["mass"]][result.labels]
    np.testing.assert_array_equal(size_map, ref["size"])
    np.testing.assert_allclose(mass_map, ref["mass"], rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------
# 3. Exact answer on a tiny input
# ---------------------------------------------------------------------------


def test_clusters_of_planted_blocks_are_exact():
    mask = np.ones((6, 6, 6), dtype=bool)
    mask[5, :, :3] = False  # the voxel order is not that of the full grid
    n = 10
    rng = np.random.default_rng(4)
    half = rng.standard_normal(n // 2)
    noise = np.r_[half, -half]  # mean exactly 0 up to rounding: t ~ 0 outside the blocks

    effect = np.zeros(mask.shape)
    block_pos = (slice(1, 3), slice(1, 3), slice(1, 3))  # 8 voxels
    block_neg = (slice(4, 5), slice(3, 6), slice(3, 5))  # 6 voxels
    effect[block_pos] = 4.0
    effect[2, 2, 1] = 6.0  # peak of the positive block
    effect[block_neg] = -4.0
    effect[4, 4, 4] = -7.0  # peak of the negative block
    effect[3, 3, 2] = 5.0  # touches the positive block by an edge only: its own cluster
    y = effect[mask][None, :] + noise[:, None]

    voxel_index = {tuple(c): i for i, c in enumerate(np.argwhere(mask))}
    t_exact = effect[mask] * np.sqrt(n) / np.std(noise, ddof=1)
    result = cluster_permutation_test(y, np.ones(n), mask, n_perm=50, rng=0)
    threshold = stats.t.isf(0.001, n - 1)
    assert result.df == n - 1
    assert result.threshold == pytest.approx(threshold)
    np.testing.assert_allclose(result.t, t_exact, rtol=1e-9, atol=1e-9)

    table = result.clusters
    assert list(table.columns) == [
        "cluster_id", "sign", "size", "mass", "peak_t", "peak_voxel", "p_fwe_size", "p_fwe_mass"
    ]  # fmt: skip
    assert table["cluster_id"].tolist() == [1, 2, 3]
    assert table["size"].tolist() == [8, 6, 1]
    assert table["sign"].tolist() == [1, -1, 1]
    assert table["peak_voxel"].tolist() == [voxel_index[2, 2, 1], voxel_index[4, 4, 4], voxel_index[3, 3, 2]]
    np.testing.assert_allclose(table["peak_t"], t_exact[table["peak_voxel"]])

    expected_labels = np.zeros(mask.shape, dtype=int)
    expected_labels[block_pos] = 1
    expected_labels[block_neg] = 2
    expected_labels[3, 3, 2] = 3
    np.testing.assert_array_equal(result.labels, expected_labels[mask])
    for cluster_id, mass in zip(table["cluster_id"], table["mass"]):
        members = expected_labels[mask] == cluster_id
        assert mass == pytest.approx(np.sum(np.abs(t_exact[members]) - threshold))

    # p = (1 + #{null >= observed}) / (1 + n_perm): the data count as one resampling.
    for statistic in ("size", "mass"):
        null = getattr(result, f"h0_max_{statistic}")
        expected = [(1 + np.sum(null >= value)) / 51 for value in table[statistic]]
        np.testing.assert_allclose(table[f"p_fwe_{statistic}"], expected)
    expected = [(1 + np.sum(result.h0_max_t >= abs(t))) / 51 for t in result.t]
    np.testing.assert_allclose(result.p_fwe_voxel, expected)
    assert result.h0_max_size.shape == result.h0_max_mass.shape == result.h0_max_t.shape == (50,)

    one_sided = cluster_permutation_test(y, np.ones(n), mask, n_perm=50, rng=0, two_sided=False)
    assert one_sided.clusters["size"].tolist() == [8, 1]
    assert set(one_sided.labels[expected_labels[mask] == 2]) == {0}
    expected = [(1 + np.sum(one_sided.h0_max_t >= t)) / 51 for t in one_sided.t]  # signed t
    np.testing.assert_allclose(one_sided.p_fwe_voxel, expected)
    assert np.all(one_sided.p_fwe_voxel[expected_labels[mask] == 2] == 1.0)


def test_adjacent_blocks_of_opposite_sign_are_separate_clusters():
    mask = np.ones((4, 4, 4), dtype=bool)
    n = 8
    half = np.random.default_rng(5).standard_normal(n // 2)
    effect = np.zeros(mask.shape)
    effect[0:2, 0:2, 0:2] = 5.0
    effect[2:4, 0:2, 0:2] = -5.0  # shares faces with the positive block
    y = effect[mask][None, :] + np.r_[half, -half][:, None]
    result = cluster_permutation_test(y, np.ones(n), mask, n_perm=10, rng=0)
    assert sorted(zip(result.clusters["size"], result.clusters["sign"])) == [(8, -1), (8, 1)]


# ---------------------------------------------------------------------------
# 4. p-values and null distributions against nilearn
# ---------------------------------------------------------------------------


def assert_p_close(p_ours, p_ref, n_ours, n_ref, z=5.0):
    """Agreement within z binomial standard errors of two Monte Carlo p estimates.

    A slack of 2 / n covers the two p conventions ((1 + count) / (n + 1) here;
    count / n, clipped, for nilearn's cluster-level p).
    """
    p_ours, p_ref = np.asarray(p_ours), np.asarray(p_ref)
    p_bar = (p_ours + p_ref) / 2
    se = np.sqrt(p_bar * (1 - p_bar) * (1 / n_ours + 1 / n_ref))
    tol = z * se + 2.0 / min(n_ours, n_ref)
    worst = np.max(np.abs(p_ours - p_ref) - tol)
    assert worst <= 0, f"p-values differ by up to {worst:.4f} beyond the Monte Carlo tolerance"


def assert_same_quantiles(null_ours, null_ref, levels=(0.5, 0.9, 0.95), z=5.0):
    """The a-quantile of one null is, within Monte Carlo error, an a-quantile of the other."""
    n = min(null_ours.size, null_ref.size)
    for a in levels:
        q = np.quantile(null_ours, a, method="inverted_cdf")
        tol = z * np.sqrt(a * (1 - a) * 2 / n)
        assert np.mean(null_ref <= q) >= a - tol, (a, q)
        assert np.mean(null_ref < q) <= a + tol, (a, q)


def planted_blob(design, amplitude):
    """Smooth noise on a 9^3 grid with a planted 3^3 blob: ``y, tested, confounds, mask, blob``."""
    rng = np.random.default_rng(6)
    mask = np.ones((9, 9, 9), dtype=bool)
    n = 16
    tested, confounds = designs(n, rng)[design]
    y = smooth_noise(rng, n, mask, sigma=0.8)
    blob = np.zeros(mask.shape, dtype=bool)
    blob[2:5, 2:5, 2:5] = True
    y = y + amplitude * tested[:, None] * blob[mask][None, :]
    return y, tested, confounds, mask, blob


# Blob amplitudes giving a planted cluster of intermediate significance.
@pytest.mark.parametrize(("design", "amplitude"), [("one-sample", 0.4), ("two-sample+age", 1.3)])
def test_p_values_and_nulls_agree_with_nilearn(design, amplitude):
    n_perm = 2000
    y, tested, confounds, mask, blob = planted_blob(design, amplitude)

    ours = cluster_permutation_test(y, tested, mask, confounds, cluster_forming_p=0.01, n_perm=n_perm, rng=1)
    ref = run_nilearn(y, tested, mask, confounds, n_perm=n_perm, cluster_forming_p=0.01, seed=1)

    # The cluster with most voxels in the blob, and nilearn's values at its peak.
    in_blob = ours.labels[blob[mask]]
    assert np.any(in_blob > 0), "the planted blob should form a cluster"
    cluster = ours.clusters.set_index("cluster_id").loc[np.bincount(in_blob[in_blob > 0]).argmax()]
    peak = int(cluster["peak_voxel"])
    assert ref["size"][peak] == cluster["size"]
    p_ref_size = 10 ** -ref["logp_max_size"][peak]
    assert 0.01 < p_ref_size < 0.8, "the planted cluster should be neither certain nor hopeless"
    assert_p_close(cluster["p_fwe_size"], p_ref_size, n_perm, n_perm)
    assert_p_close(cluster["p_fwe_mass"], 10 ** -ref["logp_max_mass"][peak], n_perm, n_perm)
    assert_p_close(ours.p_fwe_voxel, 10 ** -ref["logp_max_t"], n_perm, n_perm)

    assert_same_quantiles(ours.h0_max_size, ref["h0_max_size"])
    assert_same_quantiles(ref["h0_max_size"], ours.h0_max_size)
    assert stats.ks_2samp(ours.h0_max_t, ref["h0_max_t"]).pvalue > 1e-3
    assert stats.ks_2samp(ours.h0_max_mass, ref["h0_max_mass"]).pvalue > 1e-3


# ---------------------------------------------------------------------------
# 5. Calibration under the null
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("design", ["one-sample", "two-sample+age"])
def test_family_wise_error_rate_under_the_null(design):
    """With 19 resamplings, p <= 0.05 iff the data beat every resampling: rate 0.05 for continuous statistics."""
    n_datasets, alpha = 800, 0.05
    mask = np.ones((5, 5, 5), dtype=bool)
    n = 12
    rejections = {"voxel": 0, "mass": 0, "size": 0}
    for seed in range(n_datasets):
        rng = np.random.default_rng([7, seed])
        tested, confounds = designs(n, rng)[design]
        y = smooth_noise(rng, n, mask, sigma=0.7)
        result = cluster_permutation_test(y, tested, mask, confounds, cluster_forming_p=0.05, n_perm=19, rng=seed)
        rejections["voxel"] += result.p_fwe_voxel.min() <= alpha
        rejections["mass"] += np.min(result.clusters["p_fwe_mass"].to_numpy(), initial=1.0) <= alpha
        rejections["size"] += np.min(result.clusters["p_fwe_size"].to_numpy(), initial=1.0) <= alpha
    # 99.9% binomial band around alpha.
    low, high = stats.binom.ppf([0.0005, 0.9995], n_datasets, alpha) / n_datasets
    assert low <= rejections["voxel"] / n_datasets <= high, rejections
    assert low <= rejections["mass"] / n_datasets <= high, rejections
    # Cluster sizes are integers: ties with the null make the test conservative.
    assert rejections["size"] / n_datasets <= high, rejections


# ---------------------------------------------------------------------------
# 6. Reproducibility
# ---------------------------------------------------------------------------


def assert_same_result(a: PermutationResult, b: PermutationResult):
    np.testing.assert_array_equal(a.t, b.t)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.h0_max_size, b.h0_max_size)
    np.testing.assert_allclose(a.h0_max_mass, b.h0_max_mass, rtol=1e-12)
    np.testing.assert_allclose(a.h0_max_t, b.h0_max_t, rtol=1e-12)
    np.testing.assert_allclose(a.p_fwe_voxel, b.p_fwe_voxel)
    pd.testing.assert_frame_equal(a.clusters, b.clusters)


@pytest.mark.parametrize("design", ["one-sample", "two-sample+age"])
def test_seed_determines_the_result(design):
    rng = np.random.default_rng(8)
    mask = ball_mask((7, 7, 7), 3.2)
    n = 14
    tested, confounds = designs(n, rng)[design]
    y = smooth_noise(rng, n, mask) + 0.5 * tested[:, None]
    kwargs = dict(cluster_forming_p=0.01, n_perm=300)
    first = cluster_permutation_test(y, tested, mask, confounds, rng=42, **kwargs)
    assert_same_result(first, cluster_permutation_test(y, tested, mask, confounds, rng=42, **kwargs))
    assert_same_result(
        first, cluster_permutation_test(y, tested, mask, confounds, rng=np.random.default_rng(42), **kwargs)
    )
    assert_same_result(first, cluster_permutation_test(y, tested, mask, confounds, rng=42, batch_size=7, **kwargs))
    other = cluster_permutation_test(y, tested, mask, confounds, rng=43, **kwargs)
    np.testing.assert_array_equal(other.t, first.t)
    assert not np.array_equal(other.h0_max_t, first.h0_max_t)


@pytest.mark.parametrize("design", ["one-sample", "two-sample+age"])
def test_null_is_drawn_in_seeded_chunks_whatever_the_workers(design):
    """The null's chunks are seeded before they are dispatched: one worker or two give the same result."""
    rng = np.random.default_rng(19)
    mask = ball_mask((8, 8, 8), 3.6)
    n = 14
    tested, confounds = designs(n, rng)[design]
    y = smooth_noise(rng, n, mask) + 0.5 * tested[:, None]
    kwargs = dict(cluster_forming_p=0.01, n_perm=450, chunk_size=100, rng=5)
    serial = cluster_permutation_test(y, tested, mask, confounds, **kwargs)
    assert_same_result(serial, cluster_permutation_test(y, tested, mask, confounds, n_jobs=2, **kwargs))
    # chunk k is drawn from the k-th generator spawned from rng; the last chunk is shorter
    chunks = perm._draw_chunks(np.random.default_rng(5), 450, n, serial.sign_flip, 100)
    assert [len(c) for c in chunks] == [100, 100, 100, 100, 50]
    again = perm._draw_resamplings(np.random.default_rng(5).spawn(5)[3], 100, n, serial.sign_flip)
    np.testing.assert_array_equal(chunks[3], again)


@pytest.mark.parametrize(("design", "amplitude"), [("one-sample", 0.4), ("two-sample+age", 1.3)])
def test_chunked_null_moves_p_values_only_within_monte_carlo_error(design, amplitude, monkeypatch):
    """Seeded chunks draw other resamplings than one stream from rng: p-values agree within Monte Carlo error."""
    n_perm = 2000
    y, tested, confounds, mask, blob = planted_blob(design, amplitude)
    kwargs = dict(cluster_forming_p=0.01, n_perm=n_perm, rng=1)
    chunked = cluster_permutation_test(y, tested, mask, confounds, **kwargs)
    # the scheme before the chunks: every resampling drawn from rng itself, in one stream
    monkeypatch.setattr(
        perm,
        "_draw_chunks",
        lambda rng, n_perm, n_samples, sign_flip, chunk_size: [
            perm._draw_resamplings(rng, n_perm, n_samples, sign_flip)
        ],
    )
    stream = cluster_permutation_test(y, tested, mask, confounds, **kwargs)
    assert not np.array_equal(chunked.h0_max_t, stream.h0_max_t)
    pd.testing.assert_frame_equal(
        chunked.clusters.drop(columns=["p_fwe_size", "p_fwe_mass"]),
        stream.clusters.drop(columns=["p_fwe_size", "p_fwe_mass"]),
    )
    planted = chunked.clusters.loc[chunked.clusters["p_fwe_size"].idxmin()]
    assert 0.002 < planted["p_fwe_size"] < 0.9, "a planted cluster of intermediate significance"
    for column in ("p_fwe_size", "p_fwe_mass"):
        assert_p_close(chunked.clusters[column], stream.clusters[column], n_perm, n_perm, z=4.0)
    assert_p_close(chunked.p_fwe_voxel, stream.p_fwe_voxel, n_perm, n_perm, z=4.0)
    assert stats.ks_2samp(chunked.h0_max_size, stream.h0_max_size).pvalue > 1e-3


def test_inputs_are_not_modified():
    rng = np.random.default_rng(9)
    mask = ball_mask((6, 6, 6), 2.6)
    n = 10
    y = rng.standard_normal((n, mask.sum()))
    tested = (np.arange(n) % 2).astype(float)
    confounds = rng.standard_normal((n, 2))
    copies = [a.copy() for a in (y, tested, confounds, mask)]
    cluster_permutation_test(y, tested, mask, confounds, n_perm=20, rng=0)
    t_statistic(y, tested, confounds)
    for original, copy in zip((y, tested, confounds, mask), copies):
        np.testing.assert_array_equal(original, copy)


def test_voxels_without_variance_get_zero_t_and_a_warning():
    rng = np.random.default_rng(10)
    mask = np.ones((3, 3, 3), dtype=bool)
    y = rng.standard_normal((12, 27)) + 3.0
    y[:, [4, 20]] = 2.5  # constant across samples
    with pytest.warns(UserWarning, match="2 of 27 voxels have no residual variance"):
        result = cluster_permutation_test(y, np.ones(12), mask, n_perm=20, rng=0, cluster_forming_p=0.05)
    assert result.t[4] == 0 and result.t[20] == 0
    assert result.labels[4] == 0 and result.labels[20] == 0
    assert np.all(np.isfinite(result.h0_max_t))


# ---------------------------------------------------------------------------
# 7. Bad inputs
# ---------------------------------------------------------------------------


def _bad_inputs():
    rng = np.random.default_rng(11)
    mask = np.ones((3, 4, 5), dtype=bool)
    n = 10
    y = rng.standard_normal((n, 60))
    tested = np.ones(n)
    y_nan = y.copy()
    y_nan[[1, 3], 7] = np.nan
    y_nan[3, 9] = np.nan
    small_mask = mask.copy()
    small_mask[0, 0, :2] = False
    group = (np.arange(n) % 2).astype(float)
    return (
        [
            (dict(y=y, mask=small_mask), r"y has 60 columns but mask has 58 True voxels"),
            (dict(y=y, n_perm=0), r"n_perm must be a whole number >= 1, got 0"),
            (dict(y=y, n_perm=10.5), r"n_perm must be a whole number >= 1"),
            (dict(y=y, batch_size=0), r"batch_size must be a whole number >= 1"),
            (dict(y=y_nan), r"y contains NaN or infinite values in 2 of 60 columns and 2 of 10 rows"),
            (dict(y=y, tested=np.ones(n - 1)), r"tested has 9 rows but y has 10 samples"),
            (dict(y=y, tested=np.ones((n, 2))), r"tested must be 1D"),
            (dict(y=y, tested=np.zeros(n)), r"tested is all zeros"),
            (dict(y=y, confounds=np.ones((n - 2, 1))), r"confounds has 8 rows but y has 10 samples"),
            (
                dict(y=y, tested=group, confounds=np.c_[group * 2 + 1]),
                r"tested is a linear combination of the confounds",
            ),
            (dict(y=y, confounds=np.ones((n, 1))), r"constant and duplicate the tested intercept"),
            (dict(y=y, tested=group, confounds=rng.standard_normal((n, 8))), r"No residual degrees of freedom"),
            (dict(y=y, mask=mask.reshape(12, 5)), r"mask must be a 3D array"),
            (dict(y=y, mask=mask * 2), r"mask must be boolean"),
            (dict(y=y[0]), r"y must be 2D"),
            (dict(y=y, cluster_forming_p=0.7), r"cluster_forming_p must be a one-tailed p strictly between 0 and 0.5"),
            (dict(y=y, cluster_forming_p=0.0), r"cluster_forming_p"),
            (dict(y=y, cluster_forming_p=1e-300), r"cluster_forming_p=1e-300 is too small for 9 degrees of freedom"),
            (dict(y=y, two_sided="yes"), r"two_sided must be True or False"),
        ],
        mask,
        tested,
    )


@pytest.mark.parametrize("case", range(len(_bad_inputs()[0])))
def test_bad_inputs_raise_informative_errors(case):
    cases, mask, tested = _bad_inputs()
    overrides, message = cases[case]
    kwargs = dict(tested=tested, mask=mask, n_perm=5, rng=0) | overrides
    with pytest.raises(ValueError, match=message):
        cluster_permutation_test(**kwargs)


# ---------------------------------------------------------------------------
# 8. Null cluster maxima from the supra-threshold voxels, against ndimage.label
# ---------------------------------------------------------------------------

FACES = ndimage.generate_binary_structure(3, 1)


def irregular_masks():
    """Masks with holes, several components, and voxels on every face of the grid."""
    rng = np.random.default_rng(12)
    holed_ball = ball_mask((11, 11, 11), 4.6)
    holed_ball[rng.random(holed_ball.shape) < 0.15] = False  # holes
    holed_ball[0:2, 0:2, 0:3] = True  # a separate component in a corner
    blobs = ndimage.gaussian_filter(rng.standard_normal((9, 10, 8)), 1.0) > 0  # touches the grid's faces
    slabs = np.zeros((6, 7, 8), dtype=bool)
    slabs[:, :, 0:2] = True
    slabs[:, :, 4:8] = True  # two components, the full box in x and y
    slabs[2, 3, 5] = False
    return {"holed ball": holed_ball, "blobs": blobs, "slabs": slabs}


def ndimage_clusters(stat, mask, threshold, two_sided):
    """Per map and sign: supra-threshold voxels (ascending), their scipy.ndimage.label labels, |t| - threshold."""
    out = []
    for row in stat:
        per_sign = []
        for sign in (1, -1) if two_sided else (1,):
            signed = sign * row
            supra = signed > threshold
            volume = np.zeros(mask.shape, dtype=bool)
            volume[mask] = supra
            labels, _ = ndimage.label(volume, FACES)
            voxels = np.flatnonzero(supra)
            per_sign.append((sign, voxels, labels[mask][voxels], signed[voxels] - threshold))
        out.append(per_sign)
    return out


def ndimage_maxima(stat, mask, threshold, two_sided):
    """The old null statistics: per map, the largest cluster size and mass over both signs (0 without clusters)."""
    size, mass = np.zeros(len(stat), dtype=np.int64), np.zeros(len(stat))
    for i, per_sign in enumerate(ndimage_clusters(stat, mask, threshold, two_sided)):
        for _, voxels, labels, excess in per_sign:
            if voxels.size:
                size[i] = max(size[i], np.bincount(labels).max())
                mass[i] = max(mass[i], np.bincount(labels, weights=excess).max())
    return size, mass


def first_seen(labels):
    """Relabel 0, 1, ... in order of first occurrence: equal for two labellings of the same partition."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first)] = np.arange(first.size)
    return rank[inverse]


@pytest.mark.parametrize("mask_name", list(irregular_masks()))
@pytest.mark.parametrize("supra_fraction", [0.01, 0.3, 1.0])
@pytest.mark.parametrize("two_sided", [True, False])
@pytest.mark.parametrize("labelling", ["graph", "grid"])
def test_null_clusters_and_maxima_equal_ndimage_label(mask_name, supra_fraction, two_sided, labelling, monkeypatch):
    monkeypatch.setattr(perm._ClusterLabeller, "GRID_FRACTION", np.inf if labelling == "graph" else 0.0)
    mask = irregular_masks()[mask_name]
    rng = np.random.default_rng(13)
    stat = smooth_noise(rng, 12, mask, sigma=1.0)
    if supra_fraction == 1.0:  # every voxel supra-threshold (of both signs if two-sided)
        stat = np.sign(stat) * (np.abs(stat) + 1.0) if two_sided else np.abs(stat) + 1.0
        threshold = 0.5
    else:  # supra_fraction of the (map, voxel) pairs exceed the threshold
        threshold = np.quantile(np.abs(stat) if two_sided else stat, 1 - supra_fraction)
    assert threshold > 0
    magnitude = np.abs(stat) if two_sided else stat
    labeller = perm._ClusterLabeller(mask)
    flat, comp, n_comp = labeller.supra_threshold_components(stat, magnitude, threshold)

    reference = ndimage_clusters(stat, mask, threshold, two_sided)
    n_voxels = stat.shape[1]
    n_ref = 0
    for i, per_sign in enumerate(reference):
        for sign, voxels, labels, _ in per_sign:
            ours = flat // n_voxels == i
            ours &= (stat.reshape(-1)[flat] > 0) == (sign > 0)
            np.testing.assert_array_equal(flat[ours] % n_voxels, voxels)
            np.testing.assert_array_equal(first_seen(comp[ours]), first_seen(labels))
            n_ref += np.unique(labels).size
    assert n_comp == n_ref  # no cluster spans two maps or two signs
    assert flat.size == sum(v.size for per_sign in reference for _, v, _, _ in per_sign)

    size, mass = labeller.max_size_and_mass(stat, magnitude, threshold, lambda a: a - threshold)
    ref_size, ref_mass = ndimage_maxima(stat, mask, threshold, two_sided)
    np.testing.assert_array_equal(size, ref_size)
    np.testing.assert_array_equal(mass, ref_mass)  # same sums in the same order: bit for bit
    if supra_fraction == 0.3:
        assert np.all(size > 1) and np.unique(size).size > 1


def test_null_maxima_without_supra_threshold_voxels_are_zero():
    mask = irregular_masks()["blobs"]
    stat = smooth_noise(np.random.default_rng(14), 5, mask)
    labeller = perm._ClusterLabeller(mask)
    threshold = np.abs(stat).max()  # strict inequality: nothing exceeds it
    size, mass = labeller.max_size_and_mass(stat, np.abs(stat), threshold, lambda a: a - threshold)
    np.testing.assert_array_equal(size, np.zeros(5))
    np.testing.assert_array_equal(mass, np.zeros(5))
    # One supra-threshold voxel in one map: a cluster of size 1.
    stat[3, 17] = threshold + 0.5
    size, mass = labeller.max_size_and_mass(stat, np.abs(stat), threshold, lambda a: a - threshold)
    np.testing.assert_array_equal(size, [0, 0, 0, 1, 0])
    np.testing.assert_array_equal(mass, [0, 0, 0, 0.5, 0])


def test_null_maxima_when_every_voxel_is_supra_threshold():
    mask = irregular_masks()["slabs"]  # two components
    n_voxels = int(mask.sum())
    stat = np.full((3, n_voxels), 2.0)
    stat[1] = -2.0
    stat[2, np.argwhere(mask)[:, 2] >= 4] = -3.0  # the second slab negative in the third map
    size, mass = perm._ClusterLabeller(mask).max_size_and_mass(stat, np.abs(stat), 1.0, lambda a: a - 1.0)
    ref_size, ref_mass = ndimage_maxima(stat, mask, 1.0, True)
    np.testing.assert_array_equal(size, ref_size)
    np.testing.assert_array_equal(mass, ref_mass)
    big = int(np.sum(mask[:, :, 4:]))
    assert size.tolist() == [big, big, big]
    np.testing.assert_allclose(mass, [big, big, 2 * big])


def test_single_voxel_mask():
    mask = np.zeros((3, 3, 3), dtype=bool)
    mask[1, 2, 0] = True
    rng = np.random.default_rng(15)
    y = rng.standard_normal((10, 1))
    result = cluster_permutation_test(y, np.ones(10), mask, n_perm=200, rng=0, cluster_forming_p=0.2)
    reference = reference_null_maxima(y, np.ones(10), mask, None, 0.2, 200, True, 0)
    for key, values in reference.items():
        np.testing.assert_array_equal(getattr(result, key), values)
    assert set(result.h0_max_size) == {0, 1}  # both cases occur


def test_beta_cut_splits_the_computed_t_exactly():
    rng = np.random.default_rng(16)
    for df in (1, 4, 17, 120):
        for p in (0.3, 0.01, 1e-4, 1e-9):
            threshold = float(stats.t.isf(p, df))
            cut = perm._beta_cut(threshold, df)
            # the float64 numbers just around the cut, and random ones
            near = cut + np.arange(-50, 51) * np.spacing(cut)
            beta = np.sort(np.r_[near, -near, rng.uniform(-1, 1, 10_000), 0.0, 1.0, -1.0])
            t = perm._t_of_beta(beta, df)
            assert np.all(np.diff(t) >= 0)  # nondecreasing
            np.testing.assert_array_equal(t > threshold, beta > cut)
            np.testing.assert_array_equal(t < -threshold, beta < -cut)
            assert np.any(beta == cut) and np.any(t > threshold)


# The implementation before the null clusters were found from the supra-threshold
# voxels: every resampled t map labelled on the grid by scipy.ndimage.label.


def reference_null_maxima(
    y,
    tested,
    mask,
    confounds,
    cluster_forming_p,
    n_perm,
    two_sided,
    rng,
    variance_groups=None,
    batch_size=256,
    chunk_size=500,
):
    resid, model = perm._prepare(np.asarray(y, dtype=float), tested, confounds, True)
    groups = None
    if variance_groups is not None:
        model = dataclasses.replace(model, n_invariant=0, sign_flip=True)
        groups = perm._variance_groups(variance_groups, model)
        batch_size = min(batch_size, groups.batch_size(resid.shape[1]))
    draws = np.concatenate(
        perm._draw_chunks(np.random.default_rng(rng), n_perm, resid.shape[0], model.sign_flip, chunk_size)
    )
    threshold = float(stats.t.isf(cluster_forming_p, model.df))
    t_maps = []
    for start in range(0, n_perm, batch_size):
        batch = draws[start : start + batch_size]
        if groups is not None:
            t_maps.append(groups.null(batch.astype(np.float64), resid, groups.weights @ np.square(resid)))
        elif model.sign_flip:
            t_maps.append(
                perm._t_maps(batch * model.x, batch[:, :, None] * model.resampled_nuisance[None], resid, model.df)
            )
        else:
            t_maps.append(perm._t_maps(model.x[batch], model.resampled_nuisance[batch], resid, model.df))
    t_null = np.concatenate(t_maps)
    size, mass = ndimage_maxima(t_null, mask, threshold, two_sided)
    max_t = np.max(np.abs(t_null) if two_sided else t_null, axis=1)
    return {"h0_max_size": size, "h0_max_mass": mass, "h0_max_t": max_t}


@pytest.mark.parametrize(
    "design", ["one-sample", "one-sample+confound", "two-sample", "two-sample+confound", "variance groups"]
)
@pytest.mark.parametrize("cluster_forming_p", [0.001, 0.05])
@pytest.mark.parametrize("two_sided", [True, False])
@pytest.mark.parametrize("small_blocks", [False, True])
@pytest.mark.parametrize("labelling", ["default", "grid"])
def test_null_distributions_equal_labelling_every_map(
    design, cluster_forming_p, two_sided, small_blocks, labelling, monkeypatch
):
    if labelling == "grid":
        monkeypatch.setattr(perm._ClusterLabeller, "GRID_FRACTION", 0.0)
    mask = irregular_masks()["holed ball"]
    n = 14
    rng = np.random.default_rng(17)
    group = np.r_[np.zeros(n // 2), np.ones(n - n // 2)]
    confound = rng.standard_normal((n, 1))
    tested, confounds, groups = {
        "one-sample": (np.ones(n), None, None),
        "one-sample+confound": (np.ones(n), confound, None),
        "two-sample": (group, None, None),
        "two-sample+confound": (group, confound, None),
        "variance groups": (group, confound, group),
    }[design]
    y = smooth_noise(rng, n, mask) + 0.3 * tested[:, None]
    if small_blocks:  # several blocks of 3 null maps per batch, the last one shorter
        monkeypatch.setattr(perm, "_BLOCK_VALUES", 3 * int(mask.sum()) + 1)
    kwargs = dict(cluster_forming_p=cluster_forming_p, n_perm=301, two_sided=two_sided, rng=3, chunk_size=128)
    result = cluster_permutation_test(y, tested, mask, confounds, variance_groups=groups, batch_size=64, **kwargs)
    reference = reference_null_maxima(y, tested, mask, confounds, variance_groups=groups, batch_size=64, **kwargs)
    for key, values in reference.items():
        np.testing.assert_array_equal(getattr(result, key), values, err_msg=key)
    if cluster_forming_p == 0.001:  # few supra-threshold voxels: maps with clusters and maps without
        assert 0 < np.mean(result.h0_max_size == 0) < 1
    else:  # many
        assert np.median(result.h0_max_size) >= 5
    # The p-values follow from the null distributions.
    for statistic in ("size", "mass"):
        null = reference[f"h0_max_{statistic}"]
        expected = [(1 + np.sum(null >= value)) / 302 for value in result.clusters[statistic]]
        np.testing.assert_array_equal(result.clusters[f"p_fwe_{statistic}"], expected)
    observed = np.abs(result.t) if two_sided else result.t
    expected = (1 + np.sum(reference["h0_max_t"][:, None] >= observed[None], axis=0)) / 302
    np.testing.assert_array_equal(result.p_fwe_voxel, expected)


def test_observed_clusters_unchanged():
    """The observed map is still labelled by ndimage.label: its table against a direct labelling."""
    mask = irregular_masks()["blobs"]
    rng = np.random.default_rng(18)
    y = smooth_noise(rng, 12, mask) + 0.8
    result = cluster_permutation_test(y, np.ones(12), mask, n_perm=20, rng=0, cluster_forming_p=0.01)
    ((_, pos, pos_labels, pos_excess), (_, neg, neg_labels, neg_excess)) = ndimage_clusters(
        result.t[None], mask, result.threshold, True
    )[0]
    expected = sorted(
        [(np.sum(pos_labels == k), np.sum(pos_excess[pos_labels == k])) for k in np.unique(pos_labels)]
        + [(np.sum(neg_labels == k), np.sum(neg_excess[neg_labels == k])) for k in np.unique(neg_labels)],
        key=lambda c: (-c[0], -c[1]),
    )
    assert len(expected) >= 2
    assert result.clusters["size"].tolist() == [s for s, _ in expected]
    np.testing.assert_allclose(result.clusters["mass"], [m for _, m in expected], rtol=1e-12)
