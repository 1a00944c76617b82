"""Finding a study's runs: bad input gives a clear error or a listed exclusion, inputs are never modified."""

import hashlib
import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from craving_circuits.cocaine import denoise, firstlevel, layout
from craving_circuits.io import bids
from craving_circuits.simulate import cocaine_params

TINY = cocaine_params("tiny")


@pytest.fixture
def study_copy(tiny_study_dir, tmp_path):
    """A writable copy of the tiny study."""
    root = tmp_path / "study"
    shutil.copytree(tiny_study_dir, root)
    return root


def _files(study_root, pid="sub-01", ses="ses-1", task="restcue"):
    return bids.run_files(study_root / "derivatives" / "fmriprep", pid, ses, task)


def _digest(root):
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _excluded(exclusions, pid, ses, state):
    rows = exclusions[
        (exclusions["participant_id"] == pid) & (exclusions["session_id"] == ses) & (exclusions["state"] == state)
    ]
    assert len(rows) == 1, exclusions
    return rows.iloc[0]


def test_complete_study_has_every_run(tiny_study_dir):
    study = layout.open_study(tiny_study_dir)
    runs, exclusions = layout.collect_runs(study)
    participants = layout.read_participants(study)
    assert len(runs) == len(participants) * 2 * 2
    assert exclusions.empty
    assert set(runs["state"]) == {"neutral", "craving"}
    assert runs.groupby(["participant_id", "session_id"])["drug"].nunique().eq(1).all()
    assert runs.groupby("participant_id")["drug"].nunique().eq(2).all()


def test_missing_confounds_file_is_listed(study_copy):
    files = _files(study_copy)
    files.confounds.unlink()
    runs, exclusions = layout.collect_runs(layout.open_study(study_copy))
    row = _excluded(exclusions, "sub-01", "ses-1", "craving")
    assert row["file"] == str(files.confounds) and "confounds file missing" in row["reason"]
    assert not (
        (runs["participant_id"] == "sub-01") & (runs["session_id"] == "ses-1") & (runs["state"] == "craving")
    ).any()


def test_run_on_another_grid_or_tr_is_listed(study_copy):
    files = _files(study_copy, "sub-02", "ses-2", "restneutral")
    img = nib.load(files.bold)
    shifted = img.affine.copy()
    shifted[0, 3] += 2.0
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), shifted, img.header), files.bold)
    other = _files(study_copy, "sub-03", "ses-1", "restcue")
    sidecar = json.loads(other.bold_json.read_text())
    sidecar["RepetitionTime"] = 2.5
    other.bold_json.write_text(json.dumps(sidecar))
    runs, exclusions = layout.collect_runs(layout.open_study(study_copy))
    assert "differs from the study's reference grid" in _excluded(exclusions, "sub-02", "ses-2", "neutral")["reason"]
    tr_row = _excluded(exclusions, "sub-03", "ses-1", "craving")
    assert "repetition time 2.5 s differs" in tr_row["reason"] and tr_row["file"].endswith("_bold.nii.gz")
    assert len(runs) + len(exclusions) == TINY.n_participants * 4


def test_missing_sidecar_and_missing_bold_are_listed(study_copy):
    _files(study_copy, "sub-04", "ses-1", "restcue").bold_json.unlink()
    missing = _files(study_copy, "sub-05", "ses-2", "restneutral").bold
    missing.unlink()
    _, exclusions = layout.collect_runs(layout.open_study(study_copy))
    assert "RepetitionTime" in _excluded(exclusions, "sub-04", "ses-1", "craving")["reason"]
    row = _excluded(exclusions, "sub-05", "ses-2", "neutral")
    assert row["file"] == str(missing) and "not found" in row["reason"]


def test_participant_absent_from_participants_tsv_is_listed(study_copy):
    table = pd.read_csv(study_copy / "participants.tsv", sep="\t")
    table[table["participant_id"] != "sub-06"].to_csv(
        study_copy / "participants.tsv", sep="\t", index=False, na_rep="n/a"
    )
    runs, exclusions = layout.collect_runs(layout.open_study(study_copy))
    rows = exclusions[exclusions["participant_id"] == "sub-06"]
    assert len(rows) == 4
    assert rows["reason"].str.contains("no row in").all()
    assert "sub-06" not in set(runs["participant_id"])


def test_missing_sessions_file_is_listed(study_copy):
    (study_copy / "sub-07" / "sub-07_sessions.tsv").unlink()
    _, exclusions = layout.collect_runs(layout.open_study(study_copy))
    rows = exclusions[exclusions["participant_id"] == "sub-07"]
    assert len(rows) == 4 and rows["reason"].str.contains("no drug recorded").all()


def test_bad_participants_and_paths_raise_clear_errors(study_copy, tmp_path):
    with pytest.raises(FileNotFoundError, match="BIDS folder not found"):
        layout.open_study(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="state_tasks"):
        layout.open_study(study_copy, state_tasks={"rest": "rest"})
    with pytest.raises(FileNotFoundError, match="fMRIPrep folder not found"):
        layout.open_study(study_copy, fmriprep_dir=tmp_path / "nofmriprep")
    table = pd.read_csv(study_copy / "participants.tsv", sep="\t")
    table.loc[0, "group"] = "patient"
    table.to_csv(study_copy / "participants.tsv", sep="\t", index=False, na_rep="n/a")
    study = layout.open_study(study_copy)
    with pytest.raises(ValueError, match="'patient'.*use CUD or control"):
        layout.collect_runs(study)
    (study_copy / "participants.tsv").unlink()
    with pytest.raises(FileNotFoundError, match="participants.tsv"):
        layout.open_study(study_copy)


def test_nan_run_is_excluded_at_first_level(study_copy, tmp_path):
    files = _files(study_copy, "sub-08", "ses-1", "restcue")
    img = nib.load(files.bold)
    data = np.asarray(img.dataobj).astype(np.float32)
    mask = np.asarray(nib.load(files.mask).dataobj) > 0
    data[mask.nonzero()[0][0], mask.nonzero()[1][0], mask.nonzero()[2][0], 3] = np.nan
    header = img.header.copy()
    header.set_data_dtype(np.float32)  # keep the NaN (an int16 file cannot hold it)
    nib.save(nib.Nifti1Image(data, img.affine, header), files.bold)
    study = layout.open_study(study_copy)
    runs, exclusions = layout.collect_runs(study)
    assert exclusions.empty  # the header is fine: the NaN is found when the run is read
    analysis, mask_img, _ = firstlevel.seed_analysis(runs, denoise.parse_strategy("simple"))
    first = firstlevel.first_level(runs, analysis, mask_img, tmp_path / "fl")
    row = _excluded(first.exclusions, "sub-08", "ses-1", "craving")
    assert row["stage"] == "first level" and str(files.bold) in row["reason"] and "NaN" in row["reason"]
    assert len(first.runs) == len(runs) - 1 == len(first.maps)


def test_inputs_are_never_modified(tiny_study_dir, tmp_path):
    before = _digest(tiny_study_dir)
    study = layout.open_study(tiny_study_dir)
    runs, _ = layout.collect_runs(study)
    analysis, mask_img, _ = firstlevel.seed_analysis(runs, denoise.parse_strategy("conn"))
    firstlevel.first_level(runs.head(4), analysis, mask_img, tmp_path / "fl")
    assert _digest(tiny_study_dir) == before


def test_design_summary_and_ratings(tiny_study_dir):
    study = layout.open_study(tiny_study_dir)
    runs, _ = layout.collect_runs(study)
    summary = layout.design_summary(layout.read_participants(study), runs).set_index("group")
    assert summary.loc["CUD", "participants"] == TINY.n_cud
    assert summary.loc["control", "participants"] == TINY.n_control
    assert (summary["placebo_first"] + summary["nac_first"] == summary["participants"]).all()
    assert (summary["runs_neutral"] == 2 * summary["participants"]).all()
    ratings = layout.read_craving_ratings(study)
    assert len(ratings) == TINY.n_participants * 4 and ratings["group"].notna().all()


def test_bids_filename_orders_entities():
    name = bids.bids_filename({"desc": "preproc", "task": "rest", "sub": "01", "space": "MNI"}, "bold", ".nii.gz")
    assert name == "sub-01_task-rest_space-MNI_desc-preproc_bold.nii.gz"
    with pytest.raises(ValueError, match="Unknown BIDS entities"):
        bids.bids_filename({"sub": "01", "foo": "x"}, "bold", ".nii.gz")
