"""Denoising: the cleaning operator equals nilearn's cleaning, strategies map to nilearn's presets."""

import numpy as np
import pandas as pd
import pytest
from nilearn.interfaces.fmriprep.load_confounds_strategy import preset_strategies
from nilearn.signal import clean as nilearn_clean

from craving_circuits.cocaine import denoise


def _confounds(rng, n_volumes, n_confounds=6):
    t = np.linspace(0, 1, n_volumes)
    return np.column_stack([rng.standard_normal((n_volumes, n_confounds)), np.sin(6 * t)])


@pytest.mark.parametrize(
    "strategy, sample_mask",
    [
        (denoise.Strategy("simple"), None),
        (denoise.Strategy("scrubbing"), "scrub"),
        (denoise.Strategy("compcor", global_signal=True), None),
        (denoise.Strategy("none", high_pass=None, low_pass=None), None),
        (denoise.Strategy("simple", high_pass=None, low_pass=0.1), None),
        (denoise.Strategy("scrubbing", high_pass=0.01, low_pass=None), "scrub"),
    ],
)
def test_cleaning_matrix_equals_nilearn_clean(strategy, sample_mask):
    rng = np.random.default_rng(0)
    n_volumes, t_r = 120, 2.0
    signals = rng.standard_normal((n_volumes, 50)).cumsum(axis=0) + 100
    confounds = None if strategy.confounds == "none" else _confounds(rng, n_volumes)
    keep = None
    if sample_mask == "scrub":
        keep = np.setdiff1d(np.arange(n_volumes), [0, 1, 40, 41, 42, 90])
    matrix = denoise.cleaning_matrix(n_volumes, t_r, strategy, confounds, keep)
    filtering = strategy.high_pass is not None or strategy.low_pass is not None
    expected = nilearn_clean(
        signals.copy(),
        detrend=True,
        standardize=None,
        confounds=confounds,
        sample_mask=keep,
        filter="butterworth" if filtering else False,
        high_pass=strategy.high_pass,
        low_pass=strategy.low_pass,
        t_r=t_r,
    )
    got = denoise.clean(signals, matrix)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())


def test_clean_is_exact_for_nearly_explained_signals_and_checks_length():
    rng = np.random.default_rng(3)
    n_volumes = 80
    confound = rng.standard_normal((n_volumes, 1))
    # a voxel that is almost only its mean plus the confound: float32 arithmetic would lose it
    x = (1000 + 5 * confound + 1e-3 * rng.standard_normal((n_volumes, 1))).astype(np.float32)
    strategy = denoise.Strategy("simple", high_pass=None, low_pass=None)
    matrix = denoise.cleaning_matrix(n_volumes, 2.0, strategy, confound)
    expected = nilearn_clean(
        x.astype(np.float64), detrend=True, standardize=None, confounds=confound, filter=False, t_r=2.0
    )
    np.testing.assert_allclose(denoise.clean(x, matrix), expected, rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="9 volumes"):
        denoise.clean(np.ones((9, 3)), matrix)


def test_strategies_follow_nilearn_presets():
    simple = denoise.Strategy("simple").load_confounds_kwargs()
    assert simple["motion"] == preset_strategies["simple"]["motion"] == "full"
    assert set(simple["strategy"]) == set(preset_strategies["simple"]["strategy"])
    gsr = denoise.Strategy("scrubbing", global_signal=True).load_confounds_kwargs()
    assert "global_signal" in gsr["strategy"] and gsr["global_signal"] == "basic"
    assert gsr["fd_threshold"] == preset_strategies["scrubbing"]["fd_threshold"]
    assert "global_signal" not in denoise.Strategy("compcor").load_confounds_kwargs()
    assert denoise.Strategy("none").load_confounds_kwargs() is None
    assert denoise.Strategy("none", global_signal=True).load_confounds_kwargs()["strategy"] == ("global_signal",)


def test_parse_strategy_and_names():
    s = denoise.parse_strategy("compcor+gsr", band_pass=(0.008, 0.1))
    assert (s.confounds, s.global_signal, s.high_pass, s.low_pass) == ("compcor", True, 0.008, 0.1)
    assert s.name == "compcor+gsr 0.008-0.1 Hz"
    assert denoise.parse_strategy(s) is s
    with pytest.raises(ValueError, match="choose one of"):
        denoise.parse_strategy("aroma")
    with pytest.raises(ValueError, match="only '\\+gsr'"):
        denoise.parse_strategy("simple+wm")
    with pytest.raises(ValueError, match="must be below"):
        denoise.Strategy("simple", high_pass=0.1, low_pass=0.05)


def test_load_run_confounds_missing_file_names_it(tmp_path):
    bold = tmp_path / "sub-01_ses-1_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
    bold.write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="sub-01_ses-1_task-rest_desc-confounds_timeseries.tsv"):
        denoise.load_run_confounds(bold, denoise.Strategy("simple"))
    assert denoise.load_run_confounds(bold, denoise.Strategy("none")) == (None, None, [])


def test_confounds_summary_counts_families():
    names = ["trans_x", "rot_y_power2", "white_matter", "csf_derivative1", "a_comp_cor_00", "cosine00", "global_signal"]
    counts = denoise.confounds_summary(names)
    assert counts.to_dict() == {"motion": 2, "wm_csf": 2, "global_signal": 1, "compcor": 1, "cosine": 1}


def test_motion_summary_reads_fd(tmp_path):
    path = tmp_path / "conf.tsv"
    pd.DataFrame({"framewise_displacement": [np.nan, 0.1, 0.7, 0.2]}).to_csv(path, sep="\t", index=False, na_rep="n/a")
    runs = pd.DataFrame({"participant_id": ["sub-01"], "state": ["craving"], "confounds": [str(path)]})
    summary = denoise.motion_summary(runs)
    assert summary.loc[0, "mean_fd"] == pytest.approx(1.0 / 3)
    assert summary.loc[0, "max_fd"] == pytest.approx(0.7)
    assert summary.loc[0, "n_high_motion"] == 1
