"""fMRIPrep-style confounds of simulated runs (craving_circuits.simulate.fmriprep).

Oracles: hand computations on tiny arrays; the reference DVARS definition of
nipype's ``compute_dvars`` (used by fMRIPrep) and of Nichols' FSL script, in
which DVARS is divided by the *mean* over voxels of the predicted standard
deviation of the temporal difference, sqrt(2 (1 - AR1)) * IQR / 1.349; numpy's
SVD for CompCor; nilearn's ``load_confounds`` as the consumer of the files.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from nilearn.interfaces.fmriprep import load_confounds

from craving_circuits.cocaine.denoise import Strategy
from craving_circuits.io.bids import DEFAULT_STATE_TASKS, run_files
from craving_circuits.simulate.fmriprep import (
    MOTION_COLUMNS,
    acompcor,
    compute_confounds,
    dvars,
    expand,
)
from craving_circuits.simulate.signals import framewise_displacement

# --------------------------------------------------------------------------- expand


def test_expand_by_hand():
    out = expand("csf", [1.0, 3.0, 6.0, 2.0])
    assert list(out) == ["csf", "csf_derivative1", "csf_power2", "csf_derivative1_power2"]
    np.testing.assert_array_equal(out["csf"], [1, 3, 6, 2])
    np.testing.assert_array_equal(out["csf_derivative1"], [np.nan, 2, 3, -4])
    np.testing.assert_array_equal(out["csf_power2"], [1, 9, 36, 4])
    np.testing.assert_array_equal(out["csf_derivative1_power2"], [np.nan, 4, 9, 16])


# --------------------------------------------------------------------------- DVARS


def test_dvars_of_a_single_changed_volume():
    # 6 volumes x 4 voxels at 1000 (the median, so fMRIPrep's intensity normalisation to
    # 1000 is a no-op), volume 3 raised by (1, 2, 3, 4): DVARS = sqrt(mean(c^2)) = sqrt(7.5)
    # entering and leaving volume 3, 0 elsewhere.
    data = np.full((6, 4), 1000.0)
    data[3] += [1, 2, 3, 4]
    raw, std = dvars(data)
    assert raw.shape == std.shape == (6,)
    assert np.isnan(raw[0]) and np.isnan(std[0])
    np.testing.assert_allclose(raw[1:], [0, 0, np.sqrt(7.5), np.sqrt(7.5), 0], atol=1e-12)


def test_std_dvars_one_voxel_by_hand():
    # x = 1000 + [0, 1, 0, 1, 0]: IQR = 1 - 0 (the 25th and 75th percentiles fall on
    # samples, so every interpolation rule agrees), robust SD = 1 / 1.349;
    # centred [-.4, .6, -.4, .6, -.4]: lag-1 autocorrelation -0.96 / 1.2 = -0.8;
    # predicted SD of the difference sqrt(2 * 1.8) / 1.349; every |diff| = 1.
    data = 1000.0 + np.array([0, 1, 0, 1, 0], dtype=float)[:, None]
    raw, std = dvars(data)
    np.testing.assert_allclose(raw[1:], 1.0)
    np.testing.assert_allclose(std[1:], 1.349 / np.sqrt(3.6), rtol=1e-12)


def test_std_dvars_standardises_like_nipype_and_fmriprep():
    """Two voxels with the same shape of time series and SDs in ratio 1:2.

    The documented reference (Nichols' FSL script; nipype ``compute_dvars``, which
    fMRIPrep runs) divides DVARS by the mean of the voxels' predicted difference
    SDs: sqrt(3.6) / 1.349 * (1 + 2) / 2. Dividing by their root mean square
    instead, sqrt(3.6 * (1 + 4) / 2) / 1.349, gives standardised DVARS about 5 %
    lower here, and fewer volumes over nilearn's 1.5 scrubbing threshold than
    fMRIPrep's own confounds would flag.
    """
    pattern = np.array([0, 1, 0, 1, 0], dtype=float)
    data = 1000.0 + np.column_stack([pattern, 2 * pattern])
    raw, std = dvars(data)
    np.testing.assert_allclose(raw[1:], np.sqrt((1 + 4) / 2), rtol=1e-12)
    expected_std = np.sqrt(2.5) / (np.sqrt(3.6) / 1.349 * 1.5)
    np.testing.assert_allclose(std[1:], expected_std, rtol=1e-9)


def test_std_dvars_is_invariant_to_intensity_scaling():
    rng = np.random.default_rng(0)
    data = 900 + rng.standard_normal((40, 25)) * rng.uniform(1, 5, 25)
    _, std = dvars(data)
    raw2, std2 = dvars(3.0 * data + 50)
    np.testing.assert_allclose(std2, std, rtol=1e-10)
    np.testing.assert_allclose(raw2[1:], 3 * dvars(data)[0][1:], rtol=1e-12)


# --------------------------------------------------------------------------- aCompCor


def _cosines(n, t_r):
    """DCT-II high-pass basis (no constant) for a 128 s cutoff, from its definition."""
    n_basis = int(np.floor(2 * n * t_r / 128))
    t = np.arange(n)
    return np.column_stack([np.sqrt(2.0 / n) * np.cos(np.pi * (t + 0.5) * k / n) for k in range(1, n_basis + 1)])


def _reference_components(data, drift):
    design = np.column_stack([np.ones(len(data)), drift])
    beta, *_ = np.linalg.lstsq(design, data, rcond=None)
    resid = data - design @ beta
    resid = resid / resid.std(axis=0)
    u, s, _ = np.linalg.svd(resid, full_matrices=False)
    return u, s**2 / np.sum(s**2)


def test_acompcor_matches_svd_of_filtered_normalised_data():
    rng = np.random.default_rng(1)
    n, t_r = 100, 2.0
    drift = _cosines(n, t_r)
    assert drift.shape == (100, 3)
    latent = rng.standard_normal((n, 3)) * [5, 3, 2]
    data = 500 + latent @ rng.standard_normal((3, 40)) + rng.standard_normal((n, 40))
    data += np.linspace(0, 20, n)[:, None]  # slow drift, removed by the cosines
    comps, var = acompcor(data, drift, 4)
    assert comps.shape == (n, 4) and var.shape == (4,)
    np.testing.assert_allclose(comps.T @ comps, np.eye(4), atol=1e-10)
    u, ref_var = _reference_components(data, drift)
    # same subspace, component by component (up to sign)
    for j in range(4):
        assert abs(abs(comps[:, j] @ u[:, j]) - 1) < 1e-8
    np.testing.assert_allclose(var, ref_var[:4], rtol=1e-8)
    # orthogonal to the constant and the drift regressors
    np.testing.assert_allclose(np.column_stack([np.ones(n), drift]).T @ comps, 0, atol=1e-8)


def test_acompcor_ignores_a_constant_voxel():
    """A voxel that never changes has no variance to normalise and must not change the result.

    The code drops columns whose residual SD is 0, but after regressing out the
    constant a constant column keeps ~1e-13 of rounding error, which the
    normalisation blows up into a unit-variance column with a huge mean.
    """
    rng = np.random.default_rng(2)
    n = 60
    drift = _cosines(n, 2.0)
    data = 500 + rng.standard_normal((n, 12)) @ rng.standard_normal((12, 12))
    comps, var = acompcor(data, drift, 3)
    with_constant = np.column_stack([data, np.full(n, 1234.0)])
    comps_c, var_c = acompcor(with_constant, drift, 3)
    np.testing.assert_allclose(var_c, var, rtol=1e-6)
    np.testing.assert_allclose(np.abs(comps_c.T @ comps), np.eye(3), atol=1e-6)


# --------------------------------------------------------------------------- the confounds table


@pytest.fixture(scope="module")
def synthetic_run():
    rng = np.random.default_rng(3)
    n, n_vox, t_r = 60, 200, 2.0
    data = 1000 + 5 * rng.standard_normal((n, n_vox))
    data[40] += 60  # a signal jump at one volume: std DVARS high entering and leaving it
    motion = np.zeros((n, 6))
    motion[20:, 0] = 0.8  # one 0.8 mm movement at volume 20
    motion[:, 3] = 1e-4 * np.arange(n)  # slow rotation: FD 0.005 mm per volume
    wm = np.arange(0, 50)
    csf = np.arange(150, 200)
    confounds, meta = compute_confounds(data, motion, t_r, wm, csf, n_compcor=3)
    return data, motion, wm, csf, confounds, meta


def test_compute_confounds_columns(synthetic_run):
    data, motion, wm, csf, confounds, meta = synthetic_run
    assert len(confounds) == 60
    np.testing.assert_allclose(confounds["global_signal"], data.mean(axis=1))
    np.testing.assert_allclose(confounds["white_matter"], data[:, :50].mean(axis=1))
    np.testing.assert_allclose(confounds["csf_power2"], data[:, 150:].mean(axis=1) ** 2)
    np.testing.assert_allclose(confounds["trans_x_derivative1"][1:], np.diff(motion[:, 0]))
    for name in MOTION_COLUMNS:
        for suffix in ("", "_derivative1", "_power2", "_derivative1_power2"):
            assert name + suffix in confounds
    fd = confounds["framewise_displacement"].to_numpy()
    assert np.isnan(fd[0])
    np.testing.assert_allclose(fd[1:], 0.005 + np.where(np.arange(1, 60) == 20, 0.8, 0.0), atol=1e-12)
    # 60 volumes x 2 s = 120 s < 128 s: a single cosine, the half period of the run
    cosines = [c for c in confounds if c.startswith("cosine")]
    assert cosines == ["cosine00"]
    t = np.arange(60)
    assert abs(np.corrcoef(confounds["cosine00"], np.cos(np.pi * (t + 0.5) / 60))[0, 1]) > 1 - 1e-12


def test_compute_confounds_compcor_metadata(synthetic_run):
    _, _, _, _, confounds, meta = synthetic_run
    names = [c for c in confounds if c.startswith("a_comp_cor_")]
    assert names == [f"a_comp_cor_{k:02d}" for k in range(12)]  # 2 x 3 combined, 3 CSF, 3 WM
    masks = [meta[name]["Mask"] for name in names]
    assert masks == ["combined"] * 6 + ["CSF"] * 3 + ["WM"] * 3
    for mask_name in ("combined", "CSF", "WM"):
        var = [meta[n]["VarianceExplained"] for n in names if meta[n]["Mask"] == mask_name]
        cum = [meta[n]["CumulativeVarianceExplained"] for n in names if meta[n]["Mask"] == mask_name]
        assert all(a >= b for a, b in zip(var, var[1:]))
        np.testing.assert_allclose(cum, np.cumsum(var))
    block = confounds[names].to_numpy()
    np.testing.assert_allclose(block[:, :6].T @ block[:, :6], np.eye(6), atol=1e-10)
    assert meta["cosine00"]["Method"] == "DCT"
    json.dumps(meta)  # the sidecar is JSON-serialisable as is


def test_compute_confounds_motion_outliers(synthetic_run):
    _, _, _, _, confounds, _ = synthetic_run
    flagged = set(np.flatnonzero((confounds["framewise_displacement"] > 0.5) | (confounds["std_dvars"] > 1.5)))
    # the movement at 20 and the signal jump entering (40) and leaving (41) volume 40
    assert flagged == {20, 40, 41}
    outliers = confounds.filter(regex=r"^motion_outlier\d\d$")
    assert list(outliers) == ["motion_outlier00", "motion_outlier01", "motion_outlier02"]
    assert outliers.sum(axis=0).tolist() == [1, 1, 1]
    assert sorted(np.flatnonzero(outliers.sum(axis=1))) == [20, 40, 41]


# --------------------------------------------------------------------------- files of the tiny study


def _tiny_runs(tiny_study_dir):
    fmriprep = tiny_study_dir / "derivatives" / "fmriprep"
    participants = pd.read_csv(tiny_study_dir / "participants.tsv", sep="\t")
    out = []
    for pid in participants["participant_id"]:
        for ses in ("ses-1", "ses-2"):
            for task in DEFAULT_STATE_TASKS.values():
                out.append(run_files(fmriprep, pid, ses, task))
    return out


@pytest.fixture(scope="module")
def busy_run(tiny_study_dir):
    """The run of the tiny study with the most flagged volumes (deterministic choice)."""
    best, best_n = None, -1
    for files in _tiny_runs(tiny_study_dir):
        df = pd.read_csv(files.confounds, sep="\t", na_values="n/a")
        n = int(((df["framewise_displacement"] > 0.5) | (df["std_dvars"] > 1.5)).sum())
        if n > best_n:
            best, best_n = files, n
    assert best_n > 0
    return best


def test_tiny_study_fd_column_is_fd_of_its_motion_columns(tiny_study_dir):
    for files in _tiny_runs(tiny_study_dir)[:8]:
        df = pd.read_csv(files.confounds, sep="\t", na_values="n/a")
        assert df.loc[0, ["framewise_displacement", "dvars", "std_dvars"]].isna().all()
        fd = framewise_displacement(df[list(MOTION_COLUMNS)].to_numpy())
        # 8 significant digits in the file: each of the 12 motion values entering an FD (positions of up
        # to a few mm) carries a rounding error of up to ~1e-8 mm
        np.testing.assert_allclose(df["framewise_displacement"][1:], fd[1:], rtol=1e-6, atol=2e-7)


def test_tiny_study_motion_outlier_columns_flag_fd_and_dvars(busy_run):
    df = pd.read_csv(busy_run.confounds, sep="\t", na_values="n/a")
    flagged = np.flatnonzero((df["framewise_displacement"] > 0.5) | (df["std_dvars"] > 1.5))
    one_hot = df.filter(regex=r"^motion_outlier\d\d$").to_numpy()
    assert one_hot.shape[1] == len(flagged)
    np.testing.assert_array_equal(np.argmax(one_hot, axis=0), flagged)
    np.testing.assert_array_equal(one_hot.sum(axis=0), 1)


@pytest.mark.parametrize("confounds", ["simple", "scrubbing", "compcor"])
@pytest.mark.parametrize("gsr", [False, True], ids=["", "gsr"])
def test_nilearn_load_confounds_reads_the_files(busy_run, confounds, gsr):
    kwargs = Strategy(confounds, global_signal=gsr).load_confounds_kwargs()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nilearn warns about missing columns or metadata
        table, sample_mask = load_confounds(str(busy_run.bold), **kwargs)
    columns = set(table.columns)
    assert len(table) == 60 and not table.isna().any().any()
    motion24 = {m + s for m in MOTION_COLUMNS for s in ("", "_derivative1", "_power2", "_derivative1_power2")}
    assert motion24 <= columns
    assert "cosine00" in columns
    assert ("global_signal" in columns) == gsr
    compcor = sorted(c for c in columns if c.startswith("a_comp_cor"))
    if confounds == "compcor":
        # nilearn keeps the components of the combined WM+CSF mask, from the JSON sidecar
        meta = json.loads(busy_run.confounds_json.read_text())
        assert compcor == sorted(k for k, v in meta.items() if v.get("Mask") == "combined")
        assert len(compcor) == 10
    else:
        assert compcor == []
    if confounds == "simple":
        assert {"white_matter", "csf"} <= columns and "csf_derivative1" not in columns
    if confounds == "scrubbing":
        assert {"csf_derivative1_power2", "white_matter_power2"} <= columns
        df = pd.read_csv(busy_run.confounds, sep="\t", na_values="n/a")
        flagged = set(np.flatnonzero((df["framewise_displacement"] > 0.5) | (df["std_dvars"] > 1.5)))
        assert sample_mask is not None
        assert flagged.isdisjoint(sample_mask)
        assert len(sample_mask) <= 60 - len(flagged)
    else:
        assert sample_mask is None
