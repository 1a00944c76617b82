"""The CBF chapter on ASLPrep derivatives: the chapter's own functions, then the notebook itself."""

import shutil
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import papermill
import pytest

from craving_circuits.baclofen import chapters as baclofen_chapters
from craving_circuits.baclofen import layout as baclofen_layout
from craving_circuits.baclofen import perfusion
from craving_circuits.io import atlas
from craving_circuits.simulate.baclofen import simulate_baclofen_study
from craving_circuits.stats import voxelwise
from test_bad_inputs_asl import to_aslprep, tree_checksum

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def source_study(tmp_path_factory):
    return simulate_baclofen_study(tmp_path_factory.mktemp("baclofen_aslprep") / "study", "tiny", n_jobs=1)


@pytest.fixture(scope="module")
def quantified(source_study, tmp_path_factory):
    runs, _ = baclofen_chapters.cbf_inputs(source_study)
    return runs, baclofen_chapters.chapter_cbf_maps(runs, tmp_path_factory.mktemp("cbf"))


def _chain(cbf, sessions=baclofen_layout.SESSIONS) -> dict[str, pd.DataFrame]:
    """The chapter's cells after the maps: group x time with the global covariate, the ROI tables."""
    diff, table, _ = perfusion.time_difference_maps(cbf.runs, cbf.maps, sessions)
    smoothed = voxelwise.smooth_maps(diff, cbf.mask_img, 6.0)
    covariate = perfusion.global_change(cbf.runs, table, sessions=sessions)
    result = perfusion.group_by_time_test(
        smoothed, table, cbf.mask_img, covariate=covariate, n_perm=20, rng=np.random.default_rng(0)
    )
    rois = atlas.roi_masks(["dlpfc_right"], cbf.mask_img)
    mask = np.asarray(cbf.mask_img.dataobj) > 0
    values = perfusion.region_values(
        result, cbf.runs, cbf.maps, rois["dlpfc_right"][mask], "dlpfc_right", global_cbf=cbf.runs["mean_gm_cbf"]
    )
    return {
        "qc": cbf.runs[["participant_id", "session_id", "mean_gm_cbf", "gm_wm_ratio"]],
        "region_tests": perfusion.region_change_tests(values, sessions=sessions),
        "dlpfc_change": perfusion.participant_change(values[values["region"] == "dlpfc_right"], sessions=sessions),
        "global_change_test": perfusion.global_change_test(cbf.runs, sessions=sessions),
    }


def test_aslprep_maps_go_through_the_cbf_chain_without_quantification(source_study, quantified, tmp_path):
    raw_runs, raw = quantified
    aslprep = tmp_path / "aslprep"
    to_aslprep(raw, source_study, aslprep)
    before = tree_checksum(aslprep), tree_checksum(source_study)
    runs, exclusions = baclofen_chapters.cbf_inputs(source_study, aslprep_dir=aslprep)
    assert exclusions.empty and list(runs.columns) == baclofen_layout.DERIVED_CBF_COLUMNS
    source = baclofen_chapters.cbf_source(runs, aslprep)
    assert "quantification is skipped here" in source and str(aslprep) in source
    assert f"{len(runs)} maps, {len(runs)} with ASLPrep's QC table" in source
    cbf = baclofen_chapters.chapter_cbf_maps(runs, tmp_path / "unused", aslprep)
    assert not (tmp_path / "unused").exists()  # nothing quantified, nothing written
    assert not cbf.runs["quantified"].any() and cbf.exclusions.empty
    np.testing.assert_array_equal(cbf.maps, raw.maps)
    derived, quantified_here = _chain(cbf), _chain(raw)
    for name, table in derived.items():
        pd.testing.assert_frame_equal(table, quantified_here[name], obj=name)
    assert baclofen_chapters.coverage_note(cbf.coverage).startswith("Every run covers the whole brain mask")
    assert (tree_checksum(aslprep), tree_checksum(source_study)) == before
    # the raw path says it quantified, with the first run's constants
    assert "quantified here" in baclofen_chapters.cbf_source(
        raw_runs
    ) and '"constants"' in baclofen_chapters.cbf_source(raw_runs)


def test_coverage_note_gives_the_loss():
    coverage = pd.DataFrame(
        {
            "participant_id": ["sub-02", "sub-05"],
            "session_id": ["ses-T2", "ses-T1"],
            "file": ["a", "b"],
            "n_uncovered": [120, 40],
            "pct_uncovered": [4.0, 1.3333],
            "n_mask_lost": [150, 150],
            "pct_mask_lost": [5.0, 5.0],
        }
    )
    note = baclofen_chapters.coverage_note(coverage)
    assert note.startswith("2 run(s) do not cover") and "lost 150 voxels (5.0 %)" in note
    assert not note.startswith("Every run")


@pytest.mark.book
def test_cbf_notebook_runs_on_aslprep_derivatives(source_study, quantified, tmp_path):
    _, raw = quantified
    aslprep = tmp_path / "aslprep"
    to_aslprep(raw, source_study, aslprep)
    bids = Path(shutil.copytree(source_study, tmp_path / "bids"))
    for folder in bids.glob("sub-*"):
        shutil.rmtree(folder)  # participants.tsv and the truth only: no perf/ data to quantify
    out = tmp_path / "out"
    papermill.execute_notebook(
        str(ROOT / "notebooks" / "baclofen_cbf.ipynb"),
        str(tmp_path / "executed.ipynb"),
        parameters={
            "bids_dir": str(bids),
            "aslprep_dir": str(aslprep),
            "output_dir": str(out),
            "n_permutations": 50,
            "n_jobs": 1,
        },
        kernel_name="python3",
        cwd=str(tmp_path),
        progress_bar=False,
    )
    nb = nbformat.read(tmp_path / "executed.ipynb", as_version=4)
    shown = "".join("".join(o.get("data", {}).get("text/markdown", "")) for c in nb.cells for o in c.get("outputs", []))
    assert "quantification is skipped here" in shown and "Every run covers the whole brain mask" in shown
    assert not (out / "cbf").exists()
    qc = pd.read_csv(out / "cbf_qc.tsv", sep="\t")
    assert len(qc) == len(raw.runs) and not qc["quantified"].any()
    assert (out / "dlpfc_change.tsv").is_file() and (out / "recovered_vs_planted.tsv").is_file()
