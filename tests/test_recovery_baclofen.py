"""The baclofen study at the published group sizes: the group x time rise of right-dlPFC CBF is
found from the data, and nothing in the `null` preset."""

import numpy as np
import pytest

from conftest import RECOVERY_ALPHA as ALPHA

pytestmark = pytest.mark.slow


def _group_by_time(preset, tmp_path_factory):
    from craving_circuits import atlas, perfusion, secondlevel
    from craving_circuits.simulate.baclofen import simulate_baclofen_study

    root = tmp_path_factory.mktemp(f"baclofen_{preset}")
    study = simulate_baclofen_study(root / "study", preset, n_jobs=2)
    runs, exclusions = perfusion.collect_asl_runs(study)
    assert exclusions.empty
    maps = perfusion.cbf_maps(runs, root / "cbf", n_jobs=2)
    diff, table, _ = perfusion.time_difference_maps(maps.runs, maps.maps)
    smoothed = secondlevel.smooth_maps(diff, maps.mask_img, 6.0)
    result = perfusion.group_by_time_test(smoothed, table, maps.mask_img,
                                          covariate=perfusion.global_change(maps.runs, table), n_perm=1000, rng=0)
    rois = atlas.roi_masks(["dlpfc_right"], maps.mask_img)
    return result, secondlevel.cluster_table(result, maps.mask_img, rois, alpha=ALPHA), maps


def test_group_by_time_cluster_in_right_dlpfc(tmp_path_factory):
    from craving_circuits import perfusion

    result, clusters, maps = _group_by_time("paper", tmp_path_factory)
    significant = clusters[clusters["significant"]]
    assert len(significant) >= 1
    best = significant.iloc[0]
    assert best["sign"] > 0 and best["overlap_dlpfc_right"] > 0 and best["peak_x"] > 0, significant
    assert (significant["overlap_dlpfc_right"] > 0).all(), significant  # nothing elsewhere
    values, _ = perfusion.cluster_values(result, maps.runs, maps.maps)
    contrasts, _ = perfusion.group_by_time_model(values)
    table = contrasts.set_index("term")
    assert table.loc["group x time", "estimate"] > 0
    assert table.loc["T2 - T1 | baclofen", "estimate"] > table.loc["T2 - T1 | placebo", "estimate"]


def test_no_group_by_time_cluster_without_an_effect(tmp_path_factory):
    _, clusters, _ = _group_by_time("null", tmp_path_factory)
    assert not clusters["significant"].any(), clusters.head()
    assert np.isfinite(clusters["peak_t"]).all()
