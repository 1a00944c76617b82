"""The simulated baclofen study on disk and the perfusion stage: CBF recovered from the simulated
images with the bias that the white paper's equation has on data made by Buxton's kinetic model, the
group x time test wired to the right participants, bad inputs named."""

import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import scipy.stats

from craving_circuits.baclofen import layout as baclofen_layout
from craving_circuits.baclofen import perfusion
from craving_circuits.baclofen.asl import quantify_cbf
from craving_circuits.io import atlas
from craving_circuits.io.atlas import roi_mask
from craving_circuits.io.bids import run_files
from craving_circuits.simulate.baclofen import (
    PROTON_DENSITY,
    SESSIONS,
    TASK,
    _Maps,
    _Physiology,
    _physiology,
    asl_difference,
    asl_paths,
    baclofen_params,
    cue_events,
    planted_baclofen_effects,
    simulate_asl_run,
    simulate_baclofen_participants,
    simulate_baclofen_study,
    simulate_task_run,
)
from craving_circuits.simulate.kinetics import buxton_pcasl_difference
from craving_circuits.simulate.regions import study_regions
from craving_circuits.verdict import planted


@pytest.fixture(scope="module")
def tiny_baclofen(tmp_path_factory):
    return simulate_baclofen_study(tmp_path_factory.mktemp("baclofen") / "study", "tiny", n_jobs=2)


def test_study_layout_and_ground_truth(tiny_baclofen):
    params = baclofen_params("tiny")
    participants = pd.read_csv(tiny_baclofen / "participants.tsv", sep="\t")
    assert list(participants.columns) == ["participant_id", "group", "age", "sex", "cigarettes_per_day", "ftnd"]
    assert participants["group"].value_counts().to_dict() == {
        "baclofen": params.n_baclofen,
        "placebo": params.n_placebo,
    }
    for pid in participants["participant_id"]:
        for session in SESSIONS:
            paths = asl_paths(tiny_baclofen, pid, session)
            assert all(p.is_file() for p in paths.values()), (pid, session)
            meta = json.loads(paths["asl_json"].read_text())
            assert meta["ArterialSpinLabelingType"] == "PCASL" and meta["M0Type"] == "Separate"
            # the protocol's constants only: no efficiency, nothing of the physiology the images are made with
            assert "LabelingEfficiency" not in meta
            m0_meta = json.loads(paths["m0_json"].read_text())
            assert m0_meta["RepetitionTimePreparation"] == params.m0_repetition_time
            context = pd.read_csv(paths["aslcontext"], sep="\t")
            assert len(context) == nib.load(paths["asl"]).shape[3] == 2 * params.n_asl_pairs
            events = pd.read_csv(
                tiny_baclofen / pid / session / "func" / f"{pid}_{session}_task-{TASK}_events.tsv", sep="\t"
            )
            pd.testing.assert_frame_equal(events, cue_events(params), check_dtype=False)
    truth = json.loads((tiny_baclofen / "derivatives" / "simulation" / "ground_truth.json").read_text())
    assert [e["effect"] for e in truth["effects"]] == [e["effect"] for e in planted_baclofen_effects(params)]
    # the true maps lie in the ground-truth folder, never next to the data
    sessions = pd.read_csv(tiny_baclofen / "derivatives" / "simulation" / "ground_truth_sessions.tsv", sep="\t")
    for column in ("true_cbf_map", "true_cue_map"):
        for name in sessions[column]:
            assert (tiny_baclofen / "derivatives" / "simulation" / name).is_file()
    assert not list(tiny_baclofen.glob("sub-*/**/*desc-true*"))
    ratings = pd.read_csv(tiny_baclofen / "phenotype" / "craving_ratings.tsv", sep="\t")
    assert len(ratings) == len(participants) * 2 * 2  # sessions x (pre, post)
    # the null twin plants nothing
    null = {e["effect"]: e for e in planted_baclofen_effects(baclofen_params("null"))}
    assert not any(e["present"] for k, e in null.items() if k != "cue_response_t1")


def test_events_are_blocks_inside_the_run():
    params = baclofen_params("paper")
    events = cue_events(params)
    assert set(events["trial_type"]) == {"neutral", "smoking"}
    assert (events["onset"] + events["duration"]).max() <= params.n_task_volumes * params.task_repetition_time
    assert events["onset"].is_monotonic_increasing


def test_a_session_regenerated_alone_equals_its_files_and_truth(tiny_baclofen):
    """Any session, rebuilt alone with its participant's planted regions, equals what the study wrote."""
    params = baclofen_params("tiny")
    maps = _Maps(params)
    people = list(simulate_baclofen_participants(params).itertuples(index=False))
    physiology = _physiology(maps, params)
    sim = tiny_baclofen / "derivatives" / "simulation"
    truth = pd.read_csv(sim / "ground_truth_sessions.tsv", sep="\t").set_index(["participant_id", "session_id"])
    roi = roi_mask(
        "dlpfc_right",
        nib.load(
            run_files(tiny_baclofen / "derivatives" / "fmriprep", people[0].participant_id, SESSIONS[0], TASK).mask
        ),
    )
    for p_idx, s_idx in ((7, 1), (2, 0)):  # not the study's order
        person, session = people[p_idx], SESSIONS[s_idx]
        own = maps.participant(p_idx)
        asl = simulate_asl_run(own, physiology, person, p_idx, s_idx, params)
        on_disk = np.asarray(nib.load(asl_paths(tiny_baclofen, person.participant_id, session)["asl"]).dataobj)
        np.testing.assert_array_equal(on_disk[maps.mask].T, np.rint(asl["series"]).astype(np.int16))
        task = simulate_task_run(own, physiology, person, p_idx, s_idx, params)
        files = run_files(tiny_baclofen / "derivatives" / "fmriprep", person.participant_id, session, TASK)
        np.testing.assert_array_equal(np.asarray(nib.load(files.bold).dataobj)[maps.mask].T, task["data"])
        row = truth.loc[(person.participant_id, session)]
        assert row["dlpfc_cbf"] == pytest.approx(np.average(asl["cbf"], weights=own.dlpfc), rel=1e-5)
        assert row["dlpfc_roi_cbf"] == pytest.approx(asl["cbf"][roi[maps.mask]].mean(), rel=1e-5)
        # the participant's regions are not the template's: the jitter reaches the data
        assert not np.array_equal(own.dlpfc, maps.dlpfc) and not np.array_equal(own.cue, maps.cue)
    truth_json = json.loads((sim / "ground_truth.json").read_text())
    assert truth_json["planted_regions"] == study_regions("baclofen")


def test_cbf_maps_recover_the_planted_perfusion(tiny_baclofen, tmp_path):
    runs, exclusions = baclofen_layout.collect_asl_runs(tiny_baclofen)
    assert exclusions.empty and len(runs) == 2 * 12
    maps = perfusion.cbf_maps(runs, tmp_path / "cbf", n_jobs=2)
    assert maps.maps.shape == (24, int(np.asarray(maps.mask_img.dataobj).sum()))
    true = planted.truth_maps(tiny_baclofen, maps.runs, "cbf", maps.mask_img)
    grey = {"grey matter": atlas.tissue_probabilities(maps.mask_img)["gm"] > 0.7}
    table = planted.map_recovery(maps.maps, true, maps.runs, maps.mask_img, grey).set_index(["region", "term"])
    gm = table.loc["grey matter"]
    # The white paper's equation on data made by Buxton's model, at the mean physiology of pure grey
    # matter (transit 1.35 s, tissue T1 1.33 s, partition 0.98, M0 recovered to 1 - exp(-5 / 1.33)):
    # 21.7 % below the truth. Partial volume (white matter's longer transit, CSF's slower M0 recovery),
    # the spread of transit times and efficiencies and the noise move it by a few points.
    params = baclofen_params("tiny")
    assert _pure_grey_matter_bias(params) == pytest.approx(-21.7, abs=0.05)
    assert gm.loc["bias (%)", "estimate"] == pytest.approx(_pure_grey_matter_bias(params), abs=6.0), gm
    # the bias is a scale, not noise: the maps track the truth across participants and their changes
    assert gm.loc["r across participants (ses-T1)", "estimate"] > 0.8, gm
    assert gm.loc["r across participants (ses-T2 - ses-T1)", "estimate"] > 0.9, gm
    assert table.loc[("brain", "r across voxels"), "estimate"] > 0.5, table
    # grey matter perfuses about twice as much as white
    assert (maps.runs["gm_wm_ratio"] > 1.5).all() and (maps.runs["pct_negative_gm"] < 5).all()
    # each map is written with the constants it was computed with
    record = json.loads(open(maps.runs["cbf_map"].iloc[0].replace(".nii.gz", ".json")).read())
    assert record["record"]["constants"]["t1_blood"] == 1.65
    assert record["record"]["constants"]["n_background_pulses"] == 2
    # the per-run function is what the parallel map ran
    mask = np.asarray(maps.mask_img.dataobj) > 0
    one = perfusion.asl_run_cbf(runs.iloc[3].to_dict(), mask, maps.mask_img.affine)
    np.testing.assert_allclose(one["cbf"], maps.maps[3], rtol=1e-6)
    # the maps are cached by the shared per-run mapper: a second call reuses them, other settings do not
    again = perfusion.cbf_maps(runs, tmp_path / "cbf", n_jobs=2)
    assert maps.n_cached == 0 and again.n_cached == 24
    np.testing.assert_array_equal(again.maps, maps.maps)
    assert again.runs.equals(maps.runs)
    other = perfusion.cbf_maps(runs.head(2), tmp_path / "cbf", background_pulse_efficiency=0.9)
    assert other.n_cached == 0 and not np.allclose(other.maps, maps.maps[:2])


def _pure_grey_matter_bias(params) -> float:
    """Percent bias of the white paper's CBF in pure grey matter at the mean physiology of ``params``."""
    c = params.asl_constants
    delta_m = buxton_pcasl_difference(
        params.gm_cbf,
        params.gm_arrival_time,
        c.post_labeling_delay,
        c.labeling_duration,
        t1_tissue=params.t1_gm,
        t1_blood=c.t1_blood,
        efficiency=params.labeling_efficiency * params.background_pulse_efficiency**c.n_background_pulses,
        m0_blood=1.0 / params.gm_blood_partition,
        partition=params.gm_blood_partition,
    )
    m0 = 1.0 - np.exp(-params.m0_repetition_time / params.t1_gm)
    return float(100 * (quantify_cbf(np.array([delta_m]), np.array([m0]), c)[0] / params.gm_cbf - 1))


def test_asl_difference_sums_the_tissues_of_a_voxel_by_hand():
    """Pure grey matter, pure white matter and a mixed voxel: each tissue's share of the voxel's CBF gives
    label with its own transit time, T1 and partition coefficient, and the voxel's difference is their sum."""
    from types import SimpleNamespace

    params = baclofen_params("tiny")
    gm, wm = np.array([1.0, 0.0, 0.5]), np.array([0.0, 1.0, 0.3])
    maps = SimpleNamespace(geometry=SimpleNamespace(gm=gm, wm=wm, csf=1 - gm - wm))
    physiology = _Physiology(
        arrival_gm=np.array([1.2, 1.3, 1.4]),
        arrival_wm=np.array([1.6, 1.9, 2.1]),
        m0_recovery=np.ones(3),
        cue_region=np.zeros(3, int),
    )
    participant = SimpleNamespace(labeling_efficiency=0.8, arrival_scale=1.1)
    scale = 1.05
    cbf = np.array([70.0, 20.0 * scale, 40.0])
    out = asl_difference(maps, physiology, participant, cbf, scale, params)
    c = params.asl_constants

    def tissue(share, flow, arrival, t1, name):
        per_unit = buxton_pcasl_difference(
            flow,
            arrival * 1.1,
            c.post_labeling_delay,
            c.labeling_duration,
            t1_tissue=t1,
            efficiency=0.8 * 0.95**2,
            m0_blood=params.m0_scale / params.gm_blood_partition,
            partition=params.gm_blood_partition * PROTON_DENSITY[name],
        )
        return share * per_unit / flow

    wm_share = scale * params.wm_cbf * wm
    expected = tissue(cbf - wm_share, scale * params.gm_cbf, physiology.arrival_gm, params.t1_gm, "gm") + tissue(
        wm_share, scale * params.wm_cbf, physiology.arrival_wm, params.t1_wm, "wm"
    )
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert out[1] == pytest.approx(expected[1]) and out[1] < out[0]  # white matter: less flow, later, faster T1


def test_transit_times_m0_recovery_and_physiology_of_the_paper_study():
    """Transit times: shorter in grey than white matter, grey matter mostly before the post-labelling delay
    (some voxels of slow participants beyond it); the M0 scan's recovery per tissue; the participants'
    efficiencies and HRFs drawn after, and without changing, every earlier column."""
    from craving_circuits.simulate.baclofen import _physiology

    params = baclofen_params("paper")
    maps = _Maps(params)
    physiology = _physiology(maps, params)
    g = maps.geometry
    gm, wm = g.gm > 0.7, g.wm > 0.7
    assert np.average(physiology.arrival_gm, weights=g.gm) == pytest.approx(params.gm_arrival_time)
    assert np.average(physiology.arrival_wm, weights=g.wm) == pytest.approx(params.wm_arrival_time)
    assert 1.0 < np.percentile(physiology.arrival_gm[gm], 5) and np.percentile(physiology.arrival_gm[gm], 95) < 1.6
    assert np.median(physiology.arrival_wm[wm]) > np.median(physiology.arrival_gm[gm]) + 0.3
    participants = simulate_baclofen_participants(params)
    beyond = np.array(
        [(physiology.arrival_gm[gm] * s > params.post_labeling_delay).mean() for s in participants["arrival_scale"]]
    )
    assert beyond.mean() < 0.02 and (beyond > 0).sum() >= 3, beyond
    # M0 recovery 1 - exp(-TR / T1) of each tissue, weighted by its proton density
    pure = g.gm > 0.999
    np.testing.assert_allclose(
        physiology.m0_recovery[pure], 1 - np.exp(-params.m0_repetition_time / params.t1_gm), rtol=1e-6
    )
    # the proton densities are those of the maps' M0
    total = np.maximum(g.gm + g.wm + g.csf, 1e-6)
    weighted = params.m0_scale * sum(PROTON_DENSITY[k] * getattr(g, k) for k in PROTON_DENSITY) / total
    unclipped = weighted > 0.2 * params.m0_scale
    np.testing.assert_allclose(maps.m0[unclipped], weighted[unclipped], rtol=1e-5)
    # new latent columns come last, so the earlier draws are those of a study without them
    other = simulate_baclofen_participants(baclofen_params("paper", labeling_efficiency_sd=0.0, hrf_delay_sd=0.0))
    first = ["participant_id", "group", "age", "sex", "cigarettes_per_day", "ftnd", "cbf_global", "dlpfc_rise"]
    pd.testing.assert_frame_equal(participants[first], other[first])
    assert (other["labeling_efficiency"] == params.labeling_efficiency).all()
    assert participants["labeling_efficiency"].std() == pytest.approx(params.labeling_efficiency_sd, rel=0.4)


def test_time_differences_and_the_group_test(tmp_path):
    rng = np.random.default_rng(0)
    mask = np.zeros((6, 6, 6), bool)
    mask[1:5, 1:5, 1:5] = True
    mask_img = nib.Nifti1Image(mask.astype(np.uint8), np.eye(4))
    n_vox = int(mask.sum())
    runs = pd.DataFrame(
        [
            (f"sub-{i}", "baclofen" if i < 4 else "placebo", s)
            for i in range(8)
            for s in SESSIONS
            if not (i == 7 and s == "ses-T2")
        ],
        columns=["participant_id", "group", "session_id"],
    )
    maps = rng.normal(50, 5, (len(runs), n_vox)).astype(np.float32)
    diff, table, excl = perfusion.time_difference_maps(runs, maps)
    assert table["participant_id"].tolist() == [f"sub-{i}" for i in range(7)]
    np.testing.assert_allclose(diff[0], maps[1] - maps[0])
    assert excl["participant_id"].tolist() == ["sub-7"] and "ses-T2" in excl["reason"].iloc[0]
    from craving_circuits.stats import permutation

    baclofen = (table["group"] == "baclofen").to_numpy()
    result = perfusion.group_by_time_test(diff, table, mask_img, n_perm=20, rng=0)
    welch = scipy.stats.ttest_ind(diff[baclofen], diff[~baclofen], equal_var=False).statistic
    np.testing.assert_allclose(result.t, welch, rtol=1e-5, atol=1e-6)  # float32 maps
    pooled = perfusion.group_by_time_test(diff, table, mask_img, n_perm=20, rng=0, variance_groups=False)
    np.testing.assert_allclose(pooled.t, permutation.t_statistic(diff, baclofen.astype(float)), rtol=1e-5)
    with pytest.raises(ValueError, match="at least 2"):
        perfusion.group_by_time_test(diff[:5], table.head(5), mask_img, n_perm=20)


def test_region_change_tests_are_summary_statistics_checked_against_statsmodels():
    """One T2 - T1 change per participant: one-sample t within each group, Welch's t between them,
    here with a placebo group three times as variable as the baclofen group."""
    from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

    rng = np.random.default_rng(3)
    rows = []
    for i in range(21):
        group = "baclofen" if i < 8 else "placebo"
        base = rng.normal(50, 5)
        for s in SESSIONS:
            rise = rng.normal(6.0, 1.0) if group == "baclofen" else rng.normal(0.0, 3.0)
            value = base + (rise if s == "ses-T2" else 0.0)
            rows.append(
                {"region": "dlpfc_right", "participant_id": f"s{i}", "group": group, "session_id": s, "cbf": value}
            )
    values = pd.DataFrame(rows)
    table = perfusion.region_change_tests(values)
    assert list(table.columns) == perfusion.REGION_TEST_COLUMNS
    tests = table.set_index("term")
    change = perfusion.participant_change(values)
    bac = change.loc[change["group"] == "baclofen", "change"].to_numpy()
    pla = change.loc[change["group"] == "placebo", "change"].to_numpy()
    row = tests.loc["T2 - T1 | baclofen"]
    assert row["se"] == pytest.approx(bac.std(ddof=1) / np.sqrt(8), rel=1e-12)
    assert row["p"] == pytest.approx(DescrStatsW(bac).ttest_mean(0)[1], rel=1e-10) and row["df"] == 7
    welch = CompareMeans(DescrStatsW(bac), DescrStatsW(pla))
    _, p, df = welch.ttest_ind(usevar="unequal")
    row = tests.loc["group x time"]
    assert row["estimate"] == pytest.approx(bac.mean() - pla.mean(), rel=1e-12)
    assert row["p"] == pytest.approx(p, rel=1e-10) and row["df"] == pytest.approx(df, rel=1e-10)
    assert row["method"] == "Welch two-sample t"


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("sidecar", "lacks \\['PostLabelingDelay'\\]"),
        ("context", "lists 9 volumes but the ASL run has 20"),
        ("m0_shape", "has shape"),
        ("m0_zero", "M0 is zero or negative"),
    ],
)
def test_bad_perfusion_input_names_the_file(tiny_baclofen, tmp_path, breakage, message):
    root = tmp_path / "study"
    shutil.copytree(tiny_baclofen, root)
    runs, _ = baclofen_layout.collect_asl_runs(root)
    run = runs.iloc[0].to_dict()
    mask_img = perfusion.perfusion_mask(runs)
    mask = np.asarray(mask_img.dataobj) > 0
    if breakage == "sidecar":
        meta = json.loads(open(run["asl_json"]).read())
        del meta["PostLabelingDelay"]
        open(run["asl_json"], "w").write(json.dumps(meta))
        culprit = run["asl_json"]
    elif breakage == "context":
        pd.DataFrame({"volume_type": ["label", "control"] * 4 + ["label"]}).to_csv(
            run["aslcontext"], sep="\t", index=False
        )
        culprit = run["aslcontext"]
    else:
        img = nib.load(run["m0"])
        data = np.asarray(img.dataobj).copy()
        if breakage == "m0_shape":
            nib.save(nib.Nifti1Image(data[:-1], img.affine), run["m0"])
        else:
            data[mask] = 0
            nib.save(nib.Nifti1Image(data, img.affine), run["m0"])
        culprit = run["m0"]
    with pytest.raises(ValueError, match=message) as err:
        perfusion.asl_run_cbf(run, mask, mask_img.affine)
    assert str(culprit) in str(err.value)


def test_collect_lists_incomplete_runs(tiny_baclofen, tmp_path):
    root = tmp_path / "study"
    shutil.copytree(tiny_baclofen, root)
    paths = asl_paths(root, "sub-01", "ses-T2")
    paths["m0"].unlink()
    participants = pd.read_csv(root / "participants.tsv", sep="\t")
    participants[participants["participant_id"] != "sub-02"].to_csv(root / "participants.tsv", sep="\t", index=False)
    runs, exclusions = baclofen_layout.collect_asl_runs(root)
    assert len(runs) == 24 - 3
    listed = exclusions.set_index(["participant_id", "session_id"])["reason"]
    assert "m0scan" in listed.loc[("sub-01", "ses-T2")]
    assert "not in participants.tsv" in listed.loc[("sub-02", "ses-T1")]


def test_region_values_models_and_participant_change():
    from types import SimpleNamespace

    rng = np.random.default_rng(2)
    runs = pd.DataFrame(
        [(f"s{i}", "baclofen" if i < 6 else "placebo", s) for i in range(12) for s in SESSIONS],
        columns=["participant_id", "group", "session_id"],
    )
    maps = rng.normal(50, 3, (len(runs), 10)).astype(np.float32)
    maps[(runs["group"] == "baclofen") & (runs["session_id"] == "ses-T2"), :3] += 10
    roi = np.zeros(10, bool)
    roi[:3] = True
    labels = np.zeros(10, int)
    labels[:2] = 1
    clusters = pd.DataFrame({"cluster_id": [1], "sign": [1], "size": [2], "p_fwe_size": [0.01]})
    result = SimpleNamespace(clusters=clusters, labels=labels)
    values = perfusion.region_values(result, runs, maps, roi, "dlpfc_right")
    assert set(values["region"]) == {"dlpfc_right", "cluster"}
    first = values[values["region"] == "dlpfc_right"].iloc[0]
    assert first["cbf"] == pytest.approx(maps[0, :3].mean())
    assert values[values["region"] == "cluster"].iloc[0]["cbf"] == pytest.approx(maps[0, :2].mean())
    tests = perfusion.region_change_tests(values)
    assert tests["region"].tolist() == ["dlpfc_right"] * 3 + ["cluster"] * 3
    change = perfusion.participant_change(values[values["region"] == "dlpfc_right"])
    assert change["change"].iloc[0] == pytest.approx(maps[1, :3].mean() - maps[0, :3].mean(), rel=1e-6)
    # no significant cluster: only the ROI is described
    none = SimpleNamespace(clusters=clusters.assign(p_fwe_size=0.5), labels=labels)
    assert set(perfusion.region_values(none, runs, maps, roi)["region"]) == {"roi"}
    with pytest.raises(ValueError, match="non-empty"):
        perfusion.region_values(none, runs, maps, np.zeros(10, bool))
    # global adjustment: a run-wide shift is taken out
    shift = np.where(runs["session_id"] == "ses-T2", 5.0, 0.0)
    adjusted = perfusion.region_values(none, runs, maps + shift[:, None], roi, global_cbf=50 + shift)
    np.testing.assert_allclose(
        adjusted["cbf"] - adjusted["cbf"].mean(), maps[:, :3].mean(axis=1) - maps[:, :3].mean(), atol=1e-4
    )
    with pytest.raises(ValueError, match="one finite value per run"):
        perfusion.region_values(none, runs, maps, roi, global_cbf=[1.0, 2.0])


def test_simulated_baclofen_study_folder(tmp_path):
    from craving_circuits.baclofen import layout as baclofen_layout

    root = baclofen_layout.simulated_study(
        "tiny", tmp_path, n_jobs=1, n_baclofen=3, n_placebo=3, n_asl_pairs=2, n_task_volumes=40
    )
    assert root.name.startswith("baclofen-tiny-") and (root / "participants.tsv").is_file()
    assert (
        baclofen_layout.simulated_study(
            "tiny", tmp_path, n_jobs=1, n_baclofen=3, n_placebo=3, n_asl_pairs=2, n_task_volumes=40
        )
        == root
    )


def test_global_change_test_and_sensitivity_table():
    rows = []
    for i in range(8):
        group = "baclofen" if i < 4 else "placebo"
        for session, rise in (("ses-T1", 0.0), ("ses-T2", 6.0 + i if group == "baclofen" else float(i % 2))):
            rows.append(
                {
                    "participant_id": f"s{i}",
                    "group": group,
                    "session_id": session,
                    "mean_gm_cbf": 50.0 + rise,
                    "region": "dlpfc_right",
                    "cbf": 40.0 + rise,
                }
            )
    runs = pd.DataFrame(rows)
    change = perfusion.participant_change(runs, "mean_gm_cbf")
    a = change.loc[change["group"] == "baclofen", "change"].to_numpy()
    b = change.loc[change["group"] == "placebo", "change"].to_numpy()
    test = perfusion.global_change_test(runs).iloc[0]
    assert test["estimate"] == pytest.approx(a.mean() - b.mean())
    assert test["p"] == pytest.approx(scipy.stats.ttest_ind(a, b, equal_var=False).pvalue)
    clusters = pd.DataFrame(
        {"sign": [1, -1], "peak_t": [4.0, -5.0], "p_fwe_size": [0.02, 0.001], "overlap_dlpfc_right": [0.3, 0.5]}
    )
    empty = clusters.iloc[:0]
    table = perfusion.global_sensitivity({"adjusted": (clusters, runs), "not adjusted": (empty, runs)}, "dlpfc_right")
    assert table["global_cbf"].tolist() == ["adjusted", "adjusted", "not adjusted", "not adjusted"]
    voxel = table.iloc[0]
    assert (voxel["estimate"], voxel["p"]) == (4.0, 0.02)  # the positive cluster, not the stronger negative one
    assert np.isnan(table.iloc[2]["estimate"]) and table.iloc[2]["p"] == 1.0
    assert table.iloc[1]["estimate"] == pytest.approx(test["estimate"])  # same changes in this toy table
