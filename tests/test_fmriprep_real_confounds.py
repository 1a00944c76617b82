"""The book's confound strategies on real fMRIPrep confounds tables.

The nilearn wheel ships confounds tables written by fMRIPrep itself (read here
through :mod:`importlib.resources`): a 1.x ``desc-confounds_regressors`` table
of 189 columns with one non-steady-state volume, the same run without that
column, and a 21.x ``desc-confounds_timeseries`` table of a high-motion run
with three non-steady-state volumes; 30 volumes each. They are copied beside a
BOLD file name as fMRIPrep lays them out (as nilearn's own tests do).

Oracles: nilearn's ``load_confounds`` with the book's thresholds, a hand
computation of scrubbing from the FD and standardised DVARS columns, and
nilearn's ``signal.clean`` and ``NiftiMasker`` cleaning a seeded random signal
with the same confounds, volumes and filter.
"""

from __future__ import annotations

import importlib.resources
import shutil
import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.interfaces.fmriprep import load_confounds
from nilearn.maskers import NiftiMasker
from nilearn.signal import clean as nilearn_clean

import test_layout
from craving_circuits.cocaine import connectivity, denoise, layout
from craving_circuits.io.bids import sibling_files
from craving_circuits.io.runs import confounds_problem

DATA = importlib.resources.files("nilearn.interfaces.fmriprep") / "data"
N_VOLUMES = 30
T_R = 2.0
study_copy = test_layout.study_copy  # the fixture: a writable copy of the tiny simulated study
BOLD_NAME = "sub-01_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"

#: The real tables and their sidecars (the run without non-steady volumes shares the 1.x sidecar).
TABLES = {
    "fmriprep1x": ("test_desc-confounds_regressors.tsv", "test_desc-confounds_regressors.json"),
    "fmriprep1x_no_nonsteady": (
        "no_nonsteady_desc-confounds_regressors.tsv",
        "test_desc-confounds_regressors.json",
    ),
    "fmriprep21x_high_motion": ("test-v21_desc-confounds_timeseries.tsv", "test-v21_desc-confounds_timeseries.json"),
}
STRATEGIES = [f"{name}{gsr}" for name in denoise.CONFOUND_SETS for gsr in ("", "+gsr")]
SCRUBBING = [s for s in STRATEGIES if "scrub" in (denoise.parse_strategy(s).load_confounds_kwargs() or {})]


def _install(table: str, tmp_path, drop_columns=()):
    """Copy a real table and its sidecar beside a (empty) BOLD file with fMRIPrep's names.

    Returns the BOLD path and the confounds path.
    """
    tsv, sidecar = TABLES[table]
    suffix = tsv.removesuffix(".tsv").rsplit("_", 1)[1]  # regressors (1.x) or timeseries (20.2+)
    folder = tmp_path / table
    folder.mkdir()
    confounds = folder / f"sub-01_task-rest_desc-confounds_{suffix}.tsv"
    with importlib.resources.as_file(DATA / tsv) as source:
        if drop_columns:
            frame = pd.read_csv(source, sep="\t", dtype=str, keep_default_na=False)
            frame.drop(columns=list(drop_columns)).to_csv(confounds, sep="\t", index=False)
        else:
            shutil.copyfile(source, confounds)
    with importlib.resources.as_file(DATA / sidecar) as source:
        shutil.copyfile(source, confounds.with_suffix(".json"))
    bold = folder / BOLD_NAME
    bold.touch()
    return bold, confounds


def _kept(sample_mask) -> np.ndarray:
    """Indices of the kept volumes (nilearn's None: all)."""
    return np.arange(N_VOLUMES) if sample_mask is None else np.asarray(sample_mask)


def _read(path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)


def _non_steady(frame: pd.DataFrame) -> np.ndarray:
    """Indices of the volumes fMRIPrep flags as non-steady-state (hand reading of the one-hot columns)."""
    columns = [c for c in frame.columns if c.startswith("non_steady_state_outlier")]
    return np.flatnonzero(frame[columns].to_numpy().any(axis=1)) if columns else np.array([], dtype=int)


def _scrub_by_hand(frame: pd.DataFrame, fd_threshold: float, dvars_threshold: float, min_segment: int) -> np.ndarray:
    """Volumes kept by scrubbing: FD or standardised DVARS above threshold removed, then every run of
    consecutive kept volumes shorter than ``min_segment``, then the non-steady-state volumes."""
    fd = frame["framewise_displacement"].to_numpy(dtype=float)
    dvars = frame["std_dvars"].to_numpy(dtype=float)
    keep = ~((fd > fd_threshold) | (dvars > dvars_threshold))  # NaN (first row) compares False: kept
    if not keep.all():
        start = 0
        for end in range(1, len(keep) + 1):
            if end == len(keep) or keep[end] != keep[start]:
                if keep[start] and end - start < min_segment:
                    keep[start:end] = False
                start = end
    keep[_non_steady(frame)] = False
    return np.flatnonzero(keep)


def test_the_real_tables_are_shipped_with_nilearn():
    names = {entry.name for entry in DATA.iterdir()}
    for tsv, sidecar in TABLES.values():
        assert tsv in names and sidecar in names
    with importlib.resources.as_file(DATA / TABLES["fmriprep1x"][0]) as path:
        old = _read(path)
    with importlib.resources.as_file(DATA / TABLES["fmriprep21x_high_motion"][0]) as path:
        new = _read(path)
    assert old.shape == (N_VOLUMES, 189) and len(new) == N_VOLUMES
    assert len(_non_steady(old)) == 1 and len(_non_steady(new)) == 3
    # the 21.x run is a high-motion one: most of its volumes move more than the book's 0.5 mm
    assert (new["framewise_displacement"] > 0.5).sum() > N_VOLUMES / 2
    assert (old["framewise_displacement"] > 0.5).sum() == 0


@pytest.mark.parametrize("table", TABLES)
def test_confounds_check_accepts_the_real_tables(table, tmp_path):
    _, confounds = _install(table, tmp_path)
    assert confounds_problem(confounds, N_VOLUMES) is None
    problem = confounds_problem(confounds, N_VOLUMES + 1)  # the check can fail on the same file
    assert problem is not None and "has 30 rows but the run has 31 volumes" in problem


@pytest.mark.parametrize("table", TABLES)
def test_the_confounds_of_a_bold_file_are_found_under_either_fmriprep_name(table, tmp_path):
    bold, confounds = _install(table, tmp_path)
    files = sibling_files(bold)
    assert files.confounds == confounds and files.confounds_json == confounds.with_suffix(".json")
    # a folder holding both names: the current one (timeseries) is used, as nilearn does
    current = confounds.with_name("sub-01_task-rest_desc-confounds_timeseries.tsv")
    if current != confounds:
        shutil.copyfile(confounds, current)
        assert sibling_files(bold).confounds == current


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("table", TABLES)
def test_every_strategy_loads_from_the_real_tables(table, strategy, tmp_path):
    bold, path = _install(table, tmp_path)
    frame = _read(path)
    spec = denoise.parse_strategy(strategy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nilearn: "All volumes were marked as motion outliers"
        confounds, sample_mask, names = denoise.load_run_confounds(bold, spec)
    kwargs = spec.load_confounds_kwargs()
    if kwargs is None:
        assert confounds is None and names == []
    else:
        assert confounds.shape == (N_VOLUMES, len(names))
        if sample_mask is None or len(sample_mask):  # nilearn demeans over kept volumes: none left, NaN
            assert np.isfinite(confounds).all()
        assert ("global_signal" in names) == spec.global_signal
        motion = [n for n in names if n.startswith(("trans_", "rot_"))]
        expected_motion = {"basic": 6, "derivatives": 12, "power2": 12, "full": 24}
        assert len(motion) == (expected_motion[kwargs["motion"]] if "motion" in kwargs["strategy"] else 0)
        if "compcor" in kwargs["strategy"]:
            assert any(n.startswith(("a_comp_cor", "c_comp_cor", "w_comp_cor")) for n in names)
            assert denoise.confounds_summary(names)["compcor"] == sum("comp_cor" in n for n in names) > 0
    # every strategy drops fMRIPrep's non-steady-state volumes ("none" included), as nilearn does
    dropped = np.setdiff1d(np.arange(N_VOLUMES), _kept(sample_mask))
    assert set(_non_steady(frame)) <= set(dropped)
    if spec.confounds != "none" or not spec.global_signal:
        if not kwargs or "scrub" not in kwargs:
            np.testing.assert_array_equal(dropped, _non_steady(frame))


@pytest.mark.parametrize("strategy", SCRUBBING)
@pytest.mark.parametrize("table", TABLES)
def test_scrubbing_keeps_the_volumes_nilearn_keeps(table, strategy, tmp_path):
    bold, path = _install(table, tmp_path)
    kwargs = denoise.parse_strategy(strategy).load_confounds_kwargs()
    # the thresholds the book states for its scrubbing strategies
    assert (kwargs["fd_threshold"], kwargs["std_dvars_threshold"], kwargs["scrub"]) == (0.5, 1.5, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        _, book_mask, _ = denoise.load_run_confounds(bold, denoise.parse_strategy(strategy))
        _, nilearn_mask = load_confounds(
            str(bold),
            strategy=("motion", "scrub"),
            motion="basic",
            scrub=kwargs["scrub"],
            fd_threshold=kwargs["fd_threshold"],
            std_dvars_threshold=kwargs["std_dvars_threshold"],
        )
    np.testing.assert_array_equal(_kept(book_mask), _kept(nilearn_mask))
    np.testing.assert_array_equal(_kept(book_mask), _scrub_by_hand(_read(path), 0.5, 1.5, 5))
    if table == "fmriprep21x_high_motion":
        assert len(book_mask) == 0  # no segment of 5 still volumes is left in this run
    else:
        assert len(_kept(book_mask)) == N_VOLUMES - len(_non_steady(_read(path)))


def _masker_clean(signals, confounds, sample_mask, spec):
    """nilearn's NiftiMasker cleaning of an image whose voxels carry ``signals``."""
    n_series = signals.shape[1]
    image = nib.Nifti1Image(signals.T.reshape(n_series, 1, 1, N_VOLUMES).astype(np.float64), np.eye(4))
    mask = nib.Nifti1Image(np.ones((n_series, 1, 1), dtype=np.uint8), np.eye(4))
    masker = NiftiMasker(
        mask_img=mask,
        detrend=True,
        standardize=False,
        high_pass=spec.high_pass,
        low_pass=spec.low_pass,
        t_r=T_R,
    )
    return masker.fit_transform(image, confounds=confounds, sample_mask=sample_mask)


#: Every table x strategy with volumes left to clean: scrubbing removes every volume of the 21.x
#: high-motion run, which the seed chapter then excludes (test below).
CLEANED = [
    (table, strategy)
    for table in TABLES
    for strategy in STRATEGIES
    if not (table == "fmriprep21x_high_motion" and strategy in SCRUBBING)
]
#: Filters a 30-volume run admits (scipy pads a band-pass of order 5 by 33 volumes, a one-sided filter by 18).
BANDS = {"no_filter": (None, None), "high_pass": (0.01, None), "low_pass": (None, 0.1)}


@pytest.mark.parametrize("band", BANDS)
@pytest.mark.parametrize("table, strategy", CLEANED)
def test_the_cleaning_matrix_equals_nilearns_cleaning_on_the_real_tables(table, strategy, band, tmp_path):
    bold, _ = _install(table, tmp_path)
    spec = denoise.parse_strategy(strategy, band_pass=BANDS[band])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        confounds, sample_mask, names = denoise.load_run_confounds(bold, spec)
        kwargs = spec.load_confounds_kwargs()
        reference = None if kwargs is None else load_confounds(str(bold), **kwargs)[0]
    signals = 1000.0 + np.random.default_rng(0).standard_normal((N_VOLUMES, 6))
    book = denoise.clean(signals, denoise.cleaning_matrix(N_VOLUMES, T_R, spec, confounds, sample_mask))
    assert book.shape == (len(_kept(sample_mask)), 6)
    filtering = spec.high_pass is not None or spec.low_pass is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        expected = nilearn_clean(
            signals,
            detrend=True,
            standardize=False,
            confounds=reference,
            sample_mask=sample_mask,
            filter="butterworth" if filtering else False,
            high_pass=spec.high_pass,
            low_pass=spec.low_pass,
            t_r=T_R,
        )
        masked = _masker_clean(signals, reference, sample_mask, spec)
    if reference is not None:
        assert list(reference.columns) == names
    np.testing.assert_allclose(book, expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(book, masked, rtol=0, atol=1e-9)
    # the cleaning did something: detrending alone removes the mean of 1000
    assert np.abs(book - signals[_kept(sample_mask)]).min() > 900


@pytest.mark.parametrize("table", TABLES)
def test_a_band_pass_on_a_run_too_short_for_it_is_refused_with_the_reason(table, tmp_path):
    bold, _ = _install(table, tmp_path)
    spec = denoise.parse_strategy("simple")  # the book's 0.008-0.09 Hz band-pass
    confounds, sample_mask, _ = denoise.load_run_confounds(bold, spec)
    with pytest.raises(ValueError, match="A run of 30 volumes is too short for the Butterworth filter of simple"):
        denoise.cleaning_matrix(N_VOLUMES, T_R, spec, confounds, sample_mask)
    # in the seed chapter such a run is left out with that reason, not a stop of the chapter
    data = 1000.0 + np.random.default_rng(2).standard_normal((N_VOLUMES, 4))
    analysis = connectivity.SeedAnalysis(
        mask=np.ones((4, 1, 1), dtype=bool),
        affine=np.eye(4),
        roi_index={"seed": np.array([0, 1]), "other": np.array([2, 3])},
        seed="seed",
        strategy=spec,
    )
    result = connectivity.seed_connectivity(data, {"bold": str(bold), "t_r": T_R}, analysis)
    assert result.excluded.startswith(f"{bold}: A run of 30 volumes is too short") and result.z_map is None


@pytest.mark.parametrize("table", TABLES)
def test_the_seed_chapter_analyses_or_excludes_each_real_run(table, tmp_path):
    """One run's denoising in the seed chapter (high-pass only: the run is too short for a band-pass):
    analysed on the 1.x runs; on the 21.x high-motion run analysed under ``simple`` and excluded with its
    reason under scrubbing, which leaves no volume."""
    bold, confounds = _install(table, tmp_path)
    data = 1000.0 + np.random.default_rng(1).standard_normal((N_VOLUMES, 6))
    data[:, 2] += data[:, 0] - 1000.0  # a target voxel coupled to the seed
    index = {"seed": np.array([0, 1]), "near": np.array([2, 3]), "far": np.array([4, 5])}
    run = {"bold": str(bold), "t_r": T_R}
    results = {}
    for name in ("simple", "scrubbing"):
        analysis = connectivity.SeedAnalysis(
            mask=np.ones((6, 1, 1), dtype=bool),
            affine=np.eye(4),
            roi_index=index,
            seed="seed",
            strategy=denoise.parse_strategy(name, band_pass=(0.01, None)),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            results[name] = connectivity.seed_connectivity(data, run, analysis)
    simple, scrubbing = results["simple"], results["scrubbing"]
    assert simple.excluded is None, simple.excluded
    assert simple.qc["n_kept"] == N_VOLUMES - len(_non_steady(_read(confounds)))
    assert np.isfinite(simple.z_map).all() and len(simple.roi_values) == 2
    if table == "fmriprep21x_high_motion":
        assert scrubbing.excluded is not None
        assert str(bold) in scrubbing.excluded and "only 0 of 30 volumes left after scrubbing" in scrubbing.excluded
    else:
        assert scrubbing.excluded is None and scrubbing.qc["n_kept"] == simple.qc["n_kept"]


@pytest.mark.parametrize(
    "table, strategy, dropped, missing",
    [
        ("fmriprep1x", "compcor", "a_comp_cor", "a_comp_cor"),
        ("fmriprep21x_high_motion", "scrubbing", "std_dvars", "std_dvars"),
        ("fmriprep1x", "simple+gsr", "global_signal", "global_signal"),
    ],
)
def test_a_table_without_a_column_the_strategy_needs_is_refused_naming_file_and_column(
    table, strategy, dropped, missing, tmp_path
):
    with importlib.resources.as_file(DATA / TABLES[table][0]) as path:
        columns = [c for c in _read(path).columns if c == dropped or c.startswith(dropped + "_")]
    assert columns
    bold, confounds = _install(table, tmp_path, drop_columns=columns)
    with pytest.raises(ValueError) as err:
        denoise.load_run_confounds(bold, denoise.parse_strategy(strategy))
    message = str(err.value)
    assert str(bold) in message and str(confounds) in message and missing in message, message


def test_a_study_with_fmriprep_1x_confounds_names_loses_no_run(study_copy):
    """fMRIPrep 1.x named the table ``desc-confounds_regressors``: the run is found, checked and denoised
    from it, not excluded as "confounds file missing"."""
    files = test_layout._files(study_copy, "sub-02", "ses-2", "restcue")
    old_name = {
        path: path.with_name(path.name.replace("_desc-confounds_timeseries", "_desc-confounds_regressors"))
        for path in (files.confounds, files.confounds_json)
    }
    for current, old in old_name.items():
        current.rename(old)
    runs, exclusions = layout.collect_runs(layout.open_study(study_copy))
    assert exclusions.empty, exclusions
    mine = runs[(runs["participant_id"] == "sub-02") & (runs["session_id"] == "ses-2") & (runs["state"] == "craving")]
    assert list(mine["confounds"]) == [str(old_name[files.confounds])]
    spec = denoise.parse_strategy("conn")
    confounds, sample_mask, names = denoise.load_run_confounds(mine["bold"].iloc[0], spec)
    old_name[files.confounds].rename(files.confounds)
    old_name[files.confounds_json].rename(files.confounds_json)
    expected = denoise.load_run_confounds(mine["bold"].iloc[0], spec)
    np.testing.assert_array_equal(confounds, expected[0])
    np.testing.assert_array_equal(_kept(sample_mask), _kept(expected[1]))
    assert names == expected[2]
