"""Seed connectivity of one run: exact answers on synthetic runs, and nilearn as the oracle."""

import gzip

import nibabel as nib
import numpy as np
import pytest
from nilearn.maskers import NiftiMasker
from nilearn.signal import clean as nilearn_clean
from scipy.signal import detrend

from craving_circuits.cocaine import connectivity, denoise, firstlevel, layout
from craving_circuits.stats import correlation

AFFINE = np.diag([4.0, 4.0, 4.0, 1.0])


def _synthetic_run(tmp_path, n_volumes=80, coupling=0.6, seed=0, name="run_bold.nii.gz"):
    """A 6x6x6 run: a seed block, a target block coupled to it, noise elsewhere."""
    rng = np.random.default_rng(seed)
    shape = (6, 6, 6)
    mask = np.zeros(shape, bool)
    mask[1:5, 1:5, 1:5] = True
    seed_block = np.zeros(shape, bool)
    seed_block[1:3, 1:3, 1:3] = True
    target_block = np.zeros(shape, bool)
    target_block[3:5, 3:5, 3:5] = True
    source = rng.standard_normal(n_volumes)
    data = rng.standard_normal(shape + (n_volumes,)) * 0.5
    data[seed_block] += source
    data[target_block] += coupling * source
    data += 100 + np.linspace(0, 3, n_volumes)  # a drift, removed by detrending
    path = tmp_path / name
    nib.save(nib.Nifti1Image(data.astype(np.float32), AFFINE), path)
    index = {"seed": np.flatnonzero(seed_block[mask]), "target": np.flatnonzero(target_block[mask])}
    return path, mask, index


def test_correlate_columns_matches_corrcoef():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(50)
    y = rng.standard_normal((50, 4)) + x[:, None] * np.array([0, 0.5, 1, -2])
    expected = [np.corrcoef(x, y[:, j])[0, 1] for j in range(4)]
    np.testing.assert_allclose(correlation.correlate_columns(x, y), expected, rtol=1e-12)
    flat = np.column_stack([y[:, 0], np.ones(50)])
    r = correlation.correlate_columns(x, flat)
    assert np.isfinite(r[0]) and np.isnan(r[1])


def test_fisher_z_is_arctanh_and_capped():
    assert correlation.fisher_z(np.array([0.5]))[0] == pytest.approx(np.arctanh(0.5))
    assert np.isfinite(correlation.fisher_z(np.array([1.0, -1.0]))).all()
    assert correlation.fisher_z(np.array([1.0]))[0] > 8


def test_read_masked_run_equals_nilearn_masker(tmp_path):
    path, mask, _ = _synthetic_run(tmp_path)
    mask_img = nib.Nifti1Image(mask.astype(np.uint8), AFFINE)
    got = connectivity.read_masked_run(path, mask, AFFINE)
    expected = NiftiMasker(mask_img, standardize=None).fit_transform(str(path))
    np.testing.assert_array_equal(got, expected.astype(np.float32))


@pytest.mark.parametrize(
    ("dtype", "slope", "inter", "name"),
    [
        (np.int16, 0.37, 12.5, "run.nii.gz"),
        (np.int16, 1.0, 0.0, "run.nii.gz"),
        (np.uint8, 2.0, -3.0, "run.nii.gz"),
        (np.float32, 1, 0, "run.nii.gz"),
        (np.dtype(">i2"), 0.37, 12.5, "run.nii.gz"),  # not the machine's byte order: read by nibabel
        (np.int16, 0.37, 12.5, "run.nii"),  # not gzipped: read from disk by nibabel
    ],
)
def test_read_masked_run_scales_the_mask_voxels_as_nibabel_scales_the_volume(tmp_path, dtype, slope, inter, name):
    """The header's scaling applied to the gathered voxels only: the values of nibabel's scaled whole volume."""
    rng = np.random.default_rng(3)
    mask = rng.random((6, 7, 5)) > 0.4
    header = nib.Nifti1Header(endianness=np.dtype(dtype).byteorder if np.dtype(dtype).byteorder == ">" else None)
    img = nib.Nifti1Image((rng.random((6, 7, 5, 9)) * 100).astype(dtype), AFFINE, header=header)
    img.set_data_dtype(np.dtype(dtype))
    img.header.set_slope_inter(slope, inter)
    img.to_filename(tmp_path / name)
    assert nib.load(tmp_path / name).get_data_dtype() == np.dtype(dtype)
    expected = np.asanyarray(nib.load(tmp_path / name).dataobj)[mask].T.astype(np.float32)
    got = connectivity.read_masked_run(tmp_path / name, mask, AFFINE)
    np.testing.assert_array_equal(got, expected)
    assert got.flags.c_contiguous and got.flags.writeable


def test_read_masked_run_rejects_other_grid_and_nan(tmp_path):
    path, mask, _ = _synthetic_run(tmp_path)
    shifted = AFFINE.copy()
    shifted[0, 3] = 2.0
    with pytest.raises(ValueError, match="another grid") as err:
        connectivity.read_masked_run(path, mask, shifted)
    assert str(path) in str(err.value)
    img = nib.load(path)
    data = np.asarray(img.dataobj).copy()
    data[2, 2, 2, 5] = np.nan
    bad = tmp_path / "nan_bold.nii.gz"
    nib.save(nib.Nifti1Image(data, AFFINE), bad)
    with pytest.raises(ValueError, match="NaN or infinite values in 1 voxels") as err:
        connectivity.read_masked_run(bad, mask, AFFINE)
    assert str(bad) in str(err.value)


def test_seed_run_without_confounds_is_detrended_correlation(tmp_path):
    path, mask, index = _synthetic_run(tmp_path)
    strategy = denoise.Strategy("none", high_pass=None, low_pass=None)
    analysis = connectivity.SeedAnalysis(mask=mask, affine=AFFINE, roi_index=index, seed="seed", strategy=strategy)
    result = connectivity.seed_connectivity_run({"bold": str(path), "t_r": 2.0}, analysis)
    assert result.excluded is None
    data = detrend(np.asarray(nib.load(path).dataobj)[mask].T.astype(float), axis=0)
    seed_ts = data[:, index["seed"]].mean(axis=1)
    target_ts = data[:, index["target"]].mean(axis=1)
    expected_roi = np.arctanh(np.corrcoef(seed_ts, target_ts)[0, 1])
    assert result.roi_values == [
        {"strategy": strategy.name, "target": "target", "fisher_z": pytest.approx(expected_roi)}
    ]
    expected_map = np.arctanh([np.corrcoef(seed_ts, data[:, v])[0, 1] for v in range(data.shape[1])])
    np.testing.assert_allclose(result.z_map, expected_map, rtol=1e-4, atol=1e-4)
    # the planted coupling is there, and noise voxels are uncorrelated on average
    assert expected_roi > 0.5
    others = np.setdiff1d(np.arange(data.shape[1]), np.r_[index["seed"], index["target"]])
    assert abs(np.mean(result.z_map[others])) < 0.1


def test_seed_run_reports_exclusion_instead_of_raising(tmp_path):
    path, mask, index = _synthetic_run(
        tmp_path, name="sub-01_ses-1_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
    )
    analysis = connectivity.SeedAnalysis(
        mask=mask, affine=AFFINE, roi_index=index, seed="seed", strategy=denoise.Strategy("simple")
    )
    result = connectivity.seed_connectivity_run({"bold": str(path), "t_r": 2.0}, analysis)
    assert result.z_map is None and "No confounds file" in result.excluded and str(path) in result.excluded


def test_seed_map_equals_nilearn_pipeline_on_simulated_run(tiny_study_dir):
    """The whole per-run computation against nilearn's masker + load_confounds on the same run."""
    from nilearn.interfaces.fmriprep import load_confounds

    study = layout.open_study(tiny_study_dir)
    runs, _ = layout.collect_runs(study)
    strategy = denoise.parse_strategy("scrubbing+gsr")
    analysis, mask_img, _ = firstlevel.seed_analysis(runs, strategy)
    run = runs.iloc[1].to_dict()
    result = connectivity.seed_connectivity_run(run, analysis)
    confounds, sample_mask = load_confounds(run["bold"], **strategy.load_confounds_kwargs())
    # nilearn's masker extracts the voxels, nilearn's clean denoises them (in float64: nilearn's masker
    # cleans in float32, whose rounding would dominate the comparison)
    raw = NiftiMasker(mask_img, standardize=None).fit_transform(run["bold"]).astype(np.float64)
    cleaned = nilearn_clean(
        raw,
        detrend=True,
        standardize=None,
        confounds=confounds,
        sample_mask=sample_mask,
        filter="butterworth",
        high_pass=strategy.high_pass,
        low_pass=strategy.low_pass,
        t_r=run["t_r"],
    )
    seed = cleaned[:, analysis.roi_index["nacc"]].mean(axis=1)
    expected = [np.corrcoef(seed, cleaned[:, v])[0, 1] for v in range(cleaned.shape[1])]
    # compared as correlations: near |r| = 1 the Fisher z magnifies float32 rounding of the stored map
    np.testing.assert_allclose(np.tanh(result.z_map), expected, atol=1e-6)
    assert result.qc["n_kept"] == len(sample_mask)


def test_read_masked_run_names_a_truncated_file(tmp_path):
    path, mask, _ = _synthetic_run(tmp_path)
    raw = gzip.decompress(path.read_bytes())
    short = tmp_path / "short_bold.nii.gz"
    short.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(ValueError, match="truncated") as err:
        connectivity.read_masked_run(short, mask, AFFINE)
    assert str(short) in str(err.value)
