"""Both baclofen chapters run as the notebooks run them, for the recovery tests (paper and null presets)."""

import numpy as np
import pandas as pd

from conftest import RECOVERY_ALPHA as ALPHA
from craving_circuits.baclofen import chapters, cue, perfusion
from craving_circuits.baclofen import layout as baclofen_layout
from craving_circuits.io import atlas
from craving_circuits.io.files import read_tsv
from craving_circuits.simulate.baclofen import simulate_baclofen_study
from craving_circuits.stats import voxelwise
from craving_circuits.verdict import planted

CUE_ROIS = ["insula_anterior_ventral", "vmpfc"]


def _analyse(preset, root):
    """Both chapters on one simulated study; returns the tables the tests look at."""
    study = simulate_baclofen_study(root / "study", preset, n_jobs=2)
    truth = planted.load_ground_truth(study)
    # CBF chapter
    runs, exclusions = baclofen_layout.collect_asl_runs(study)
    assert exclusions.empty
    cbf = perfusion.cbf_maps(runs, root / "cbf", n_jobs=2)
    diff, table, _ = perfusion.time_difference_maps(cbf.runs, cbf.maps)
    smoothed = voxelwise.smooth_maps(diff, cbf.mask_img, 6.0)
    result = perfusion.group_by_time_test(
        smoothed, table, cbf.mask_img, covariate=perfusion.global_change(cbf.runs, table), n_perm=500, rng=0
    )
    rois = atlas.roi_masks(["dlpfc_right"], cbf.mask_img)
    clusters = voxelwise.cluster_table(result, cbf.mask_img, rois, alpha=ALPHA)
    mask = np.asarray(cbf.mask_img.dataobj) > 0
    values = perfusion.region_values(
        result,
        cbf.runs,
        cbf.maps,
        rois["dlpfc_right"][mask],
        "dlpfc_right",
        alpha=ALPHA,
        global_cbf=cbf.runs["mean_gm_cbf"],
    )
    contrasts = perfusion.region_change_tests(values, alpha=ALPHA)
    dlpfc_change = perfusion.participant_change(values[values["region"] == "dlpfc_right"])
    cbf_recovery = planted.chapter_recovery(
        "baclofen_cbf", {"clusters": clusters, "region_tests": contrasts}, truth, ALPHA
    )
    # cue-reactivity chapter
    task_runs, task_exclusions = baclofen_layout.collect_task_runs(study, None, "smokingcue")
    assert task_exclusions.empty
    first = cue.cue_maps(task_runs, cbf.mask_img, root / "firstlevel", n_jobs=2)
    task_runs, maps = first.runs, first.maps
    cue_rois = atlas.roi_masks(CUE_ROIS, cbf.mask_img)
    roi_effects = cue.roi_means(maps, cbf.mask_img, cue_rois, task_runs[["participant_id", "group", "session_id"]])
    cue_diff, cue_table, _ = perfusion.time_difference_maps(task_runs, maps)
    voxel, _, _ = voxelwise.covariate_test(
        voxelwise.smooth_maps(cue_diff, cbf.mask_img, 6.0),
        cue_table,
        dlpfc_change.set_index("participant_id")["change"],
        cbf.mask_img,
        group=None,
        nuisance="group",
        cluster_forming_p=0.01,
        n_perm=500,
        rng=0,
    )
    voxel_clusters = voxelwise.cluster_table(voxel, cbf.mask_img, cue_rois, alpha=ALPHA)
    ratings = read_tsv(study / "phenotype" / "craving_ratings.tsv", "craving ratings")
    participants = read_tsv(study / "participants.tsv", "participants.tsv")
    results = chapters.cue_tests(roi_effects, dlpfc_change, ratings, participants, n_bootstrap=1000, alpha=ALPHA, rng=0)
    results.update(voxel_clusters=voxel_clusters)
    cue_recovery = planted.chapter_recovery("baclofen_mediation", results, truth, ALPHA)
    return {
        "clusters": clusters,
        "contrasts": contrasts,
        "associations": results["associations"],
        "voxel_clusters": voxel_clusters,
        "craving": results["craving_test"],
        "mediation": results["mediation_cue"],
        "recovery": pd.concat([cbf_recovery, cue_recovery], ignore_index=True),
    }
