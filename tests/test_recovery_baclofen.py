"""The baclofen study at the published group sizes, run through both chapters as the notebooks run
it: the group x time rise of right-dlPFC CBF is found from the data, the cue-response association,
the craving group x time effect and the mediation are recovered, and the `null` preset finds none
of them."""

import numpy as np
import pandas as pd
import pytest

from conftest import RECOVERY_ALPHA as ALPHA

pytestmark = pytest.mark.slow

CUE_ROIS = ["insula_anterior_ventral", "vmpfc"]


def _analyse(preset, root):
    """Both chapters on one simulated study; returns the tables the tests look at."""
    from craving_circuits import atlas, cue, mediation, perfusion, report, secondlevel
    from craving_circuits._io import read_tsv
    from craving_circuits.simulate.baclofen import simulate_baclofen_study

    study = simulate_baclofen_study(root / "study", preset, n_jobs=2)
    truth = report.load_ground_truth(study)
    # CBF chapter
    runs, exclusions = perfusion.collect_asl_runs(study)
    assert exclusions.empty
    cbf = perfusion.cbf_maps(runs, root / "cbf", n_jobs=2)
    diff, table, _ = perfusion.time_difference_maps(cbf.runs, cbf.maps)
    smoothed = secondlevel.smooth_maps(diff, cbf.mask_img, 6.0)
    result = perfusion.group_by_time_test(smoothed, table, cbf.mask_img,
                                          covariate=perfusion.global_change(cbf.runs, table), n_perm=1000, rng=0)
    rois = atlas.roi_masks(["dlpfc_right"], cbf.mask_img)
    clusters = secondlevel.cluster_table(result, cbf.mask_img, rois, alpha=ALPHA)
    mask = np.asarray(cbf.mask_img.dataobj) > 0
    values = perfusion.region_values(result, cbf.runs, cbf.maps, rois["dlpfc_right"][mask], "dlpfc_right",
                                     alpha=ALPHA, global_cbf=cbf.runs["mean_gm_cbf"])
    contrasts = perfusion.group_by_time_models(values, alpha=ALPHA)
    dlpfc_change = perfusion.participant_change(values[values["region"] == "dlpfc_right"])
    cbf_recovery = report.recovered_vs_planted(report.baclofen_cbf_estimates(clusters, contrasts), truth, ALPHA)
    # cue-reactivity chapter
    task_runs, task_exclusions = cue.collect_task_runs(study, None, "smokingcue")
    assert task_exclusions.empty
    maps = cue.cue_maps(task_runs, cbf.mask_img, n_jobs=2)
    cue_rois = atlas.roi_masks(CUE_ROIS, cbf.mask_img)
    roi_effects = cue.roi_means(maps, cbf.mask_img, cue_rois, task_runs[["participant_id", "group", "session_id"]])
    cue_diff, cue_table, _ = perfusion.time_difference_maps(task_runs, maps)
    voxel, _, _ = secondlevel.covariate_test(secondlevel.smooth_maps(cue_diff, cbf.mask_img, 6.0), cue_table,
                                             dlpfc_change.set_index("participant_id")["change"], cbf.mask_img,
                                             group=None, cluster_forming_p=0.01, n_perm=1000, rng=0)
    voxel_clusters = secondlevel.cluster_table(voxel, cbf.mask_img, cue_rois, alpha=ALPHA)
    roi_changes = perfusion.participant_change(roi_effects, "value", by=("roi",))
    associations = cue.roi_associations(roi_changes, dlpfc_change, n_boot=1000, rng=0, alpha=ALPHA)
    craving = cue.cue_craving(read_tsv(study / "phenotype" / "craving_ratings.tsv", "craving ratings"),
                              read_tsv(study / "participants.tsv", "participants.tsv"))
    craving_contrasts, _ = perfusion.group_by_time_model(craving, value="craving_rise", alpha=ALPHA)
    med_table, _ = cue.mediation_table(dlpfc_change, roi_changes, craving)
    med_cue = mediation.mediation_analysis(med_table, "baclofen", "dlpfc_change", "cue_change", n_boot=2000, rng=0,
                                           alpha=ALPHA)
    t1 = cue.session_response(roi_effects, "ses-T1", alpha=ALPHA)
    cue_recovery = report.recovered_vs_planted(
        report.baclofen_cue_estimates(t1, associations, voxel_clusters, craving_contrasts, med_cue), truth, ALPHA)
    return {"clusters": clusters, "contrasts": contrasts, "associations": associations,
            "voxel_clusters": voxel_clusters, "craving": craving_contrasts, "mediation": med_cue,
            "recovery": pd.concat([cbf_recovery, cue_recovery], ignore_index=True)}


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """``analysed(preset)`` runs both chapters once per preset for the whole module."""
    done = {}

    def get(preset):
        if preset not in done:
            done[preset] = _analyse(preset, tmp_path_factory.mktemp(f"baclofen_{preset}"))
        return done[preset]
    return get


def test_group_by_time_cluster_in_right_dlpfc(analysed):
    out = analysed("paper")
    significant = out["clusters"][out["clusters"]["significant"]]
    assert len(significant) >= 1
    best = significant.iloc[0]
    assert best["sign"] > 0 and best["overlap_dlpfc_right"] > 0 and best["peak_x"] > 0, significant
    assert (significant["overlap_dlpfc_right"] > 0).all(), significant  # nothing elsewhere
    table = out["contrasts"].set_index(["region", "term"]).loc["dlpfc_right"]
    assert table.loc["group x time", "estimate"] > 0 and table.loc["group x time", "p"] < ALPHA
    assert table.loc["T2 - T1 | baclofen", "estimate"] > table.loc["T2 - T1 | placebo", "estimate"]


def test_cue_association_craving_and_mediation_recovered(analysed):
    out = analysed("paper")
    associations = out["associations"].set_index("term")
    for roi in CUE_ROIS:  # a larger CBF rise goes with a smaller cue response
        row = associations.loc[f"cue change ~ dlPFC CBF change ({roi})"]
        assert row["estimate"] < 0 and row["ci_high"] < 0 and row["p"] < ALPHA, associations
    hit = out["voxel_clusters"][out["voxel_clusters"]["significant"]]
    assert (hit["sign"] < 0).any() and (hit[[f"overlap_{roi}" for roi in CUE_ROIS]] > 0).any(axis=None), hit
    craving = out["craving"].set_index("term").loc["group x time"]
    assert craving["estimate"] < 0 and craving["ci_high"] < 0, craving  # baclofen lowers cue-induced craving
    indirect = out["mediation"].set_index("term").loc["indirect effect (a b)"]
    assert indirect["ci_high"] < 0 and indirect["ci_high_bc"] < 0, indirect


def test_every_planted_effect_agrees_at_the_paper_preset(analysed):
    recovery = analysed("paper")["recovery"]
    assert recovery["agree"].all(), recovery[~recovery["agree"].astype(bool)][["effect", "test", "estimate", "p"]]


def test_null_preset_finds_none_of_the_effects(analysed):
    out = analysed("null")
    # voxelwise tests are FWE-controlled: no cluster at all, at the usual level
    assert not out["clusters"]["significant"].any(), out["clusters"].head()
    assert not out["voxel_clusters"]["significant"].any(), out["voxel_clusters"].head()
    assert np.isfinite(out["clusters"]["peak_t"]).all()
    recovery = out["recovery"]
    # everything but the T1 cue response itself (smokers react to cues in both presets) is absent
    assert set(recovery.loc[recovery["planted_present"] == True, "effect"]) == {"cue_response_t1"}  # noqa: E712
    absent = recovery[recovery["planted_present"] == False]  # noqa: E712 (None for unplanted rows)
    # Each ROI-level row is a test at ALPHA, so one of this family fires in about 1 - 0.95^k of
    # simulated studies; the family is asserted at ALPHA (Bonferroni). The false-positive rate of each
    # test on its own is measured by the calibration chapter over many simulated studies.
    level = ALPHA / len(absent)
    fired = absent[absent["p"] < level]
    assert fired.empty, fired[["effect", "test", "estimate", "p"]]
