"""The first level over a study: results aligned with runs, a cache trusted only when complete."""

import os

import numpy as np
import pandas as pd
import pytest

from craving_circuits.cocaine import connectivity, denoise, firstlevel, layout
from craving_circuits.io import schemas


@pytest.fixture(scope="module")
def prepared(tiny_study_dir):
    study = layout.open_study(tiny_study_dir)
    runs, _ = layout.collect_runs(study)
    runs = runs.head(6).reset_index(drop=True)
    analysis, mask_img, info = firstlevel.seed_analysis(
        runs, denoise.parse_strategy("conn"), comparison_strategies=[denoise.parse_strategy("none")]
    )
    return runs, analysis, mask_img, info


def test_rows_align_with_runs_and_match_the_per_run_function(prepared, tmp_path):
    runs, analysis, mask_img, info = prepared
    first = firstlevel.first_level(runs, analysis, mask_img, tmp_path, n_jobs=2)
    assert first.maps.shape == (6, info["n_voxels"])
    assert list(first.runs["bold"]) == list(runs["bold"])
    direct = connectivity.seed_connectivity_run(runs.iloc[3].to_dict(), analysis)
    np.testing.assert_array_equal(first.maps[3], direct.z_map)
    # one ROI value per run, target and strategy, with the run's identifiers
    assert len(first.roi) == 6 * 2 * 2
    row = first.roi[
        first.roi["participant_id"].eq(runs.iloc[3]["participant_id"])
        & first.roi["session_id"].eq(runs.iloc[3]["session_id"])
        & first.roi["state"].eq(runs.iloc[3]["state"])
        & first.roi["target"].eq("dlpfc")
        & first.roi["strategy"].eq(analysis.strategy.name)
    ]
    expected = [
        v["fisher_z"] for v in direct.roi_values if v["target"] == "dlpfc" and v["strategy"] == analysis.strategy.name
    ]
    assert row["fisher_z"].tolist() == pytest.approx(expected)
    assert set(first.roi.columns) == set(schemas.ROI_COLUMNS)


def test_cache_is_reused_only_when_inputs_and_settings_match(prepared, tmp_path, tiny_study_dir):
    runs, analysis, mask_img, _ = prepared
    first = firstlevel.first_level(runs, analysis, mask_img, tmp_path)
    assert first.n_cached == 0
    again = firstlevel.first_level(runs, analysis, mask_img, tmp_path)
    assert again.n_cached == 6
    np.testing.assert_array_equal(again.maps, first.maps)
    # an interrupted run: its map is there but its sidecar (written last) is not
    sidecars = sorted(tmp_path.rglob("*_zmap.json"))
    assert len(sidecars) == 6 and len(list(tmp_path.rglob("*_zmap.nii.gz"))) == 6
    sidecars[0].unlink()
    assert firstlevel.first_level(runs, analysis, mask_img, tmp_path).n_cached == 5
    # changed settings: nothing is reused
    other, _, _ = firstlevel.seed_analysis(runs, denoise.parse_strategy("simple"))
    assert firstlevel.first_level(runs, other, mask_img, tmp_path).n_cached == 0


def test_cache_serves_an_analysis_with_fewer_comparison_strategies(prepared, tmp_path):
    runs, analysis, mask_img, _ = prepared
    full = firstlevel.first_level(runs, analysis, mask_img, tmp_path)
    fewer, _, _ = firstlevel.seed_analysis(runs, analysis.strategy)  # no comparison strategy
    reused = firstlevel.first_level(runs, fewer, mask_img, tmp_path)
    assert reused.n_cached == 6
    np.testing.assert_array_equal(reused.maps, full.maps)
    assert set(reused.roi["strategy"]) == {analysis.strategy.name}
    chosen = full.roi[full.roi["strategy"] == analysis.strategy.name].reset_index(drop=True)
    assert reused.roi.reset_index(drop=True).equals(chosen)
    # the cache still serves the full analysis afterwards (it was not overwritten)
    assert firstlevel.first_level(runs, analysis, mask_img, tmp_path).n_cached == 6
    # a comparison strategy the cache lacks: recomputed
    more, _, _ = firstlevel.seed_analysis(
        runs, analysis.strategy, comparison_strategies=[denoise.parse_strategy("compcor")]
    )
    assert firstlevel.first_level(runs, more, mask_img, tmp_path).n_cached == 0


def test_changed_input_is_recomputed(tiny_study_dir, tmp_path):
    import shutil

    root = tmp_path / "study"
    shutil.copytree(tiny_study_dir, root)
    runs, _ = layout.collect_runs(layout.open_study(root))
    runs = runs.head(3)
    analysis, mask_img, _ = firstlevel.seed_analysis(runs, denoise.parse_strategy("conn"))
    firstlevel.first_level(runs, analysis, mask_img, tmp_path / "out")
    stat = os.stat(runs.iloc[0]["confounds"])
    os.utime(runs.iloc[0]["confounds"], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert firstlevel.first_level(runs, analysis, mask_img, tmp_path / "out").n_cached == 2


def test_no_partial_files_are_left(prepared, tmp_path):
    runs, analysis, mask_img, _ = prepared
    firstlevel.first_level(runs, analysis, mask_img, tmp_path)
    assert not [p for p in tmp_path.rglob(".tmp-*")]


def test_simulated_study_folders_do_not_collide(tmp_path):
    a = layout.simulated_study("tiny", tmp_path, n_cud=3, n_control=3, n_volumes=40)
    b = layout.simulated_study("tiny", tmp_path, n_cud=3, n_control=3, n_volumes=41)
    assert a.bids_dir != b.bids_dir and a.bids_dir.name.startswith("cocaine-tiny-")
    assert a.is_simulated and (a.bids_dir / "participants.tsv").is_file()


def test_rerun_under_another_strategy_reuses_the_comparison_couplings(prepared, tmp_path, monkeypatch):
    """A re-run with another chosen strategy denoises each run once: its comparisons come from the earlier outputs."""
    runs, analysis, mask_img, _ = prepared  # conn, compared with none
    firstlevel.first_level(runs, analysis, mask_img, tmp_path / "book")
    other, _, _ = firstlevel.seed_analysis(
        runs,
        denoise.parse_strategy("compcor+gsr"),
        comparison_strategies=[analysis.strategy, *analysis.comparison_strategies],
    )
    fresh = firstlevel.first_level(runs, other, mask_img, tmp_path / "fresh")
    denoised = []
    cleaning_matrix = connectivity.cleaning_matrix
    monkeypatch.setattr(
        connectivity, "cleaning_matrix", lambda *a, **k: denoised.append(a[2].name) or cleaning_matrix(*a, **k)
    )
    again = firstlevel.first_level(runs, other, mask_img, tmp_path / "book")
    assert denoised == [other.strategy.name] * len(runs)
    np.testing.assert_array_equal(again.maps, fresh.maps)
    pd.testing.assert_frame_equal(again.roi, fresh.roi)
    # other ROIs: the earlier couplings do not apply, every strategy is denoised again
    denoised.clear()
    fewer, _, _ = firstlevel.seed_analysis(
        runs, denoise.parse_strategy("scrubbing"), targets=("dlpfc",), comparison_strategies=[analysis.strategy]
    )
    firstlevel.first_level(runs, fewer, mask_img, tmp_path / "book")
    assert set(denoised) == {fewer.strategy.name, analysis.strategy.name} and len(denoised) == 2 * len(runs)
