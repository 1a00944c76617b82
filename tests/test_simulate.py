"""The simulated cocaine-craving study (craving_circuits.simulate.cocaine and .params).

Checks are against the generative model as documented (hand-derived
identities, correlations implied by the parameters), against files on disk of
the session's ``tiny`` study, and against re-simulation of single runs.
"""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from craving_circuits.io.atlas import brain_mask
from craving_circuits.io.bids import run_files
from craving_circuits.simulate import (
    COCAINE_PRESETS,
    cocaine_params,
    simulate_cocaine_study,
)
from craving_circuits.simulate.cocaine import (
    NACC_FC_Z,
    PARTIAL_FC_Z,
    SOURCES,
    build_geometry,
    planted_effects,
    simulate_craving_ratings,
    simulate_mrs,
    simulate_participants,
    simulate_run_data,
    simulate_runs_table,
    source_correlation,
)
from craving_circuits.simulate.params import params_to_dict
from craving_circuits.simulate.regions import study_regions

TINY = cocaine_params("tiny")

OBSERVED = ["participant_id", "group", "age", "sex", "drug_order", "cocaine_g_per_week", "ocdus_obsessive"]
METABOLITE_NAMES = {"Glu", "Gln", "Glx", "NAA", "tCr", "tCho", "mI", "GSH"}

# --------------------------------------------------------------------------- parameters


def test_unknown_preset_is_named():
    with pytest.raises(ValueError, match="'papr'") as err:
        cocaine_params("papr")
    for name in ("paper", "null", "tiny", "tiny_null"):
        assert name in str(err.value)


def test_unknown_parameter_is_named():
    with pytest.raises(ValueError, match="'n_cuds'") as err:
        cocaine_params("tiny", n_cuds=3)
    assert "n_cud," in str(err.value)  # the valid names are listed


@pytest.mark.parametrize(
    "name, value",
    [
        ("n_cud", 1),
        ("n_control", 0),
        ("n_volumes", 29),
        ("n_volumes", 60.5),
        ("voxel_size_mm", 1),
        ("voxel_size_mm", 13),
        ("repetition_time", 0.1),
        ("repetition_time", 7.0),
        ("noise_ar1", 0.96),
        ("noise_ar1", -0.1),
        ("source_sd", -0.5),
        ("smooth_noise_fwhm_mm", 0.0),
        ("motion_cud_factor", -1.0),
        ("mrs_snr", 0.5),
        ("mrs_bad_shim_rate", 1.5),
        ("ocdus_reactivity_r", 1.2),
        ("use_reactivity_r", -1.01),
    ],
)
def test_out_of_range_parameter_is_named(name, value):
    with pytest.raises(ValueError, match=name):
        cocaine_params("tiny", **{name: value})


def test_overrides_and_preset_are_recorded():
    p = cocaine_params("null", n_cud=10, seed=7)
    assert (p.preset, p.n_cud, p.seed, p.craving_nacc_dlpfc) == ("null", 10, 7, 0.0)
    assert p.n_control == 23 and p.n_participants == 33
    d = params_to_dict(p)
    assert d["n_cud"] == 10 and d["preset"] == "null"
    json.dumps(d)


def test_whole_number_floats_are_usable_sample_sizes():
    """n_cud=4.0 passes the 'whole number' check (e.g. from YAML ``--set n_cud=4.0``).

    Then it must either be refused or work; it is accepted and the simulation
    fails later with ``TypeError: can't multiply sequence by non-int of type 'float'``.
    """
    try:
        params = cocaine_params("tiny", n_cud=4.0, n_volumes=60.0)
    except ValueError:
        return  # refusing non-int values is a valid contract
    participants = simulate_participants(params)
    assert (participants["group"] == "CUD").sum() == 4


def test_paper_preset_has_the_published_sample():
    # Engeli et al. 2023: 18 participants with CUD, 23 controls
    p = cocaine_params("paper")
    assert (p.n_cud, p.n_control) == (18, 23)
    assert set(COCAINE_PRESETS) == {"paper", "null", "tiny", "tiny_null"} | {
        "threat_state_motion",
        "threat_habituation",
        "threat_unequal_variance",
        "threat_nac_at_bound",
    }


@pytest.mark.parametrize("preset", ["null", "tiny_null"])
def test_null_presets_plant_nothing(preset):
    effects = planted_effects(cocaine_params(preset))
    assert len(effects) >= 10
    for row in effects:
        assert row["planted"] == 0.0 and row["present"] is False, row


def test_planted_effects_follow_the_parameters():
    p = cocaine_params("paper")
    effects = {row["effect"]: row for row in planted_effects(p)}
    # the rises are the mean of the two sessions; the second is smaller by the habituation
    assert p.habituation > 0
    kept = 1 - p.habituation / 2
    assert effects["craving_nacc_dlpfc_cud"]["planted"] == pytest.approx(kept * p.craving_nacc_dlpfc)
    # the control change is 0, so group x state equals the CUD rise
    assert effects["group_x_state_nacc_thalamus"]["planted"] == pytest.approx(kept * p.craving_nacc_thalamus)
    habituation = effects["habituation_nacc_thalamus_cud"]["planted"]
    assert habituation == pytest.approx(-p.habituation * p.craving_nacc_thalamus)
    assert effects["habituation_rating_cud"]["planted"] == pytest.approx(-p.habituation * p.craving_rating_rise)
    assert effects["craving_rating_rise_cud"]["planted"] == pytest.approx(kept * p.craving_rating_rise)
    assert effects["fc_change_elsewhere"]["present"] is False
    # rise_thalamus = mean + a u + i e, Glu rise = mean + g u: latent r = a / sqrt(a^2 + i^2)
    a, i = p.thalamus_reactivity_sd, p.craving_fc_individual_sd
    np.testing.assert_allclose(effects["thalamus_glu_coupling_cud"]["planted"], a / np.sqrt(a**2 + i**2))
    assert effects["dlpfc_glu_coupling_cud"]["planted"] == 0.0
    assert effects["ocdus_predicts_thalamus_cud"]["planted"] == 0.7
    # no reactivity-driven thalamic rise: OCDUS no longer predicts it
    q = cocaine_params("paper", thalamus_reactivity_sd=0.0)
    effects_q = {row["effect"]: row for row in planted_effects(q)}
    assert effects_q["ocdus_predicts_thalamus_cud"]["planted"] == 0.0
    assert effects_q["thalamus_glu_coupling_cud"]["planted"] == 0.0


# --------------------------------------------------------------------------- source correlations


@pytest.mark.parametrize("z_dlpfc, z_thal", [(0.15, 0.15), (0.6, 0.6), (2.5, 2.5), (-2.5, 2.5), (0.0, -1.0)])
def test_source_correlation_nacc_row_and_partial_correlations(z_dlpfc, z_thal):
    corr = source_correlation(z_dlpfc, z_thal)
    n = len(SOURCES)
    assert SOURCES[0] == "nacc" and corr.shape == (n, n)
    np.testing.assert_allclose(corr, corr.T, rtol=0, atol=1e-15)  # symmetric up to rounding
    np.testing.assert_allclose(np.diag(corr), 1.0, atol=1e-14)
    assert np.linalg.eigvalsh(corr).min() > 0
    # NAcc couplings are exactly tanh of the requested Fisher z
    z = dict(NACC_FC_Z, dlpfc=z_dlpfc, thalamus_midline=z_thal)
    for j, name in enumerate(SOURCES[1:], start=1):
        assert corr[0, j] == np.tanh(z[name])
    # partial correlation given the NAcc: (r_ab - r_an r_bn) / sqrt((1 - r_an^2)(1 - r_bn^2))
    for (a, b), value in PARTIAL_FC_Z.items():
        i, j = SOURCES.index(a), SOURCES.index(b)
        partial = (corr[i, j] - corr[i, 0] * corr[j, 0]) / np.sqrt((1 - corr[i, 0] ** 2) * (1 - corr[j, 0] ** 2))
        np.testing.assert_allclose(partial, np.tanh(value), atol=1e-12)


# --------------------------------------------------------------------------- participants and runs


def test_participants_tiny():
    p = cocaine_params("tiny")
    df = simulate_participants(p)
    assert list(df["participant_id"]) == [f"sub-{i:02d}" for i in range(1, p.n_participants + 1)]
    assert df["group"].value_counts().to_dict() == {"CUD": p.n_cud, "control": p.n_control}
    cud, ctl = df[df.group == "CUD"], df[df.group == "control"]
    assert ctl["ocdus_obsessive"].isna().all() and (ctl["cocaine_g_per_week"] == 0).all()
    assert ctl["craving_reactivity"].isna().all()
    assert (cud["cocaine_g_per_week"] > 0).all()
    assert cud["ocdus_obsessive"].between(0, 24).all() and (cud["ocdus_obsessive"] % 1 == 0).all()
    assert df["age"].between(20, 60).all() and set(df["sex"]) <= {"M", "F"}
    # reproducible
    pd.testing.assert_frame_equal(df, simulate_participants(p))


@pytest.mark.parametrize("n_cud, n_control", [(4, 4), (5, 7), (9, 2)])
def test_drug_orders_are_balanced_within_groups(n_cud, n_control):
    df = simulate_participants(cocaine_params("tiny", n_cud=n_cud, n_control=n_control))
    assert (df.group == "CUD").sum() == n_cud and (df.group == "control").sum() == n_control
    assert set(df["drug_order"]) <= {"placebo-NAC", "NAC-placebo"}
    for _, sub in df.groupby("group"):
        counts = sub["drug_order"].value_counts()
        assert abs(counts.get("placebo-NAC", 0) - counts.get("NAC-placebo", 0)) <= 1


def test_participant_ids_widen_with_sample_size():
    df = simulate_participants(cocaine_params("tiny", n_cud=50, n_control=50))
    assert df["participant_id"].iloc[0] == "sub-001" and df["participant_id"].iloc[-1] == "sub-100"
    assert df["participant_id"].is_unique


def test_latent_correlations_match_planted_values():
    """With 4,000 CUD the sample correlations estimate the planted ones to ~0.01."""
    p = cocaine_params("paper", n_cud=4000, n_control=2)
    df = simulate_participants(p)
    cud = df[df.group == "CUD"]
    effects = {row["effect"]: row["planted"] for row in planted_effects(p)}
    r = np.corrcoef(cud["rise_thalamus"], cud["glu_rise_pct"])[0, 1]
    assert abs(r - effects["thalamus_glu_coupling_cud"]) < 0.02
    assert abs(np.corrcoef(cud["rise_dlpfc"], cud["glu_rise_pct"])[0, 1]) < 0.05
    # OCDUS is rounded to whole points (sd 4) and clipped at 0 and 24: attenuation < 1 %
    r_ocd = np.corrcoef(cud["ocdus_obsessive"], cud["craving_reactivity"])[0, 1]
    assert abs(r_ocd - effects["ocdus_predicts_thalamus_cud"]) < 0.03
    r_use = np.corrcoef(np.log(cud["cocaine_g_per_week"]), cud["craving_reactivity"])[0, 1]
    assert abs(r_use - effects["use_predicts_thalamus_cud"]) < 0.03
    assert abs(cud["rise_thalamus"].mean() - p.craving_nacc_thalamus) < 0.03
    assert abs(cud["glu_rise_pct"].mean() - p.glu_craving_rise_pct) < 1.0  # 4 SE (SD 15 / sqrt(4000))


def test_runs_table_couplings():
    p = cocaine_params("tiny", nac_effect=-0.2)
    participants = simulate_participants(p)
    runs = simulate_runs_table(participants, p)
    assert len(runs) == TINY.n_participants * 4
    assert runs["run_key"].map(tuple).is_unique
    assert set(runs["task"]) == {"restneutral", "restcue"}
    assert (runs.loc[runs.state == "neutral", "task"] == "restneutral").all()
    for pp in participants.itertuples():
        sub = runs[runs.participant_id == pp.participant_id]
        assert list(sub["drug"].drop_duplicates()) == pp.drug_order.split("-")
        for drug, ses in sub.groupby("drug"):
            kept = 1 - p.habituation * (ses["session_id"].iloc[0] == "ses-2")
            neutral = ses[ses.state == "neutral"].iloc[0]
            craving = ses[ses.state == "craving"].iloc[0]
            assert neutral.session_id == craving.session_id
            np.testing.assert_allclose(neutral.fc_nacc_dlpfc, NACC_FC_Z["dlpfc"] + pp.fc_offset_dlpfc)
            np.testing.assert_allclose(neutral.fc_nacc_thalamus, NACC_FC_Z["thalamus_midline"] + pp.fc_offset_thalamus)
            shift = -0.2 if (drug == "NAC" and pp.group == "CUD") else 0.0
            np.testing.assert_allclose(craving.fc_nacc_dlpfc - neutral.fc_nacc_dlpfc, kept * pp.rise_dlpfc + shift)
            np.testing.assert_allclose(
                craving.fc_nacc_thalamus - neutral.fc_nacc_thalamus, kept * pp.rise_thalamus + shift
            )
            np.testing.assert_allclose(craving.motion_scale / neutral.motion_scale, 1.5)
        if pp.group == "control":
            assert (sub["fc_nacc_dlpfc"].round(12) == round(NACC_FC_Z["dlpfc"] + pp.fc_offset_dlpfc, 12)).all()


def test_craving_ratings_table():
    p = cocaine_params("tiny")
    participants = simulate_participants(p)
    ratings = simulate_craving_ratings(participants, p)
    assert len(ratings) == TINY.n_participants * 4
    assert ratings["craving_vas"].between(0, 100).all() and (ratings["craving_vas"] % 1 == 0).all()
    merged = ratings.merge(participants[["participant_id", "drug_order"]], on="participant_id")
    first = merged[merged.session_id == "ses-1"]
    assert (first["drug"] == first["drug_order"].str.split("-").str[0]).all()


# --------------------------------------------------------------------------- MRS


def _mrs_wide(mrs: pd.DataFrame) -> pd.DataFrame:
    return mrs.pivot_table(index=["participant_id", "session_id", "state"], columns="metabolite", values="value_water")


def test_mrs_table_identities():
    p = cocaine_params("tiny")
    participants = simulate_participants(p)
    mrs = simulate_mrs(participants, p)
    spectra = mrs.groupby(["participant_id", "session_id", "state"])
    assert spectra.ngroups == TINY.n_participants * 2 * 2
    for _, spec in spectra:
        assert set(spec["metabolite"]) == METABOLITE_NAMES and len(spec) == len(METABOLITE_NAMES)
        assert spec["snr"].nunique() == 1 and spec["fwhm_hz"].nunique() == 1
        value = spec.set_index("metabolite")["value_water"]
        crlb = spec.set_index("metabolite")["crlb_percent"]
        np.testing.assert_allclose(spec["value_tcr"], spec["value_water"] / value["tCr"], rtol=1e-12)
        np.testing.assert_allclose(value["Glx"], value["Glu"] + value["Gln"], rtol=1e-12)
        # absolute SDs add in quadrature for the sum
        np.testing.assert_allclose(
            crlb["Glx"] * value["Glx"], np.hypot(crlb["Glu"] * value["Glu"], crlb["Gln"] * value["Gln"]), rtol=1e-12
        )
    assert (mrs["crlb_percent"] < 999).all() and (mrs["value_water"] > 0.05).all()  # no clipping here


def test_mrs_crlb_is_relative_to_the_measured_value():
    """CRLB% x measured value = reference CRLB x quality x true value.

    quality = (14 / SNR) * sqrt(FWHM / 8) is known from the table, and the true
    value of every metabolite but Glu is the same in the four spectra of a
    participant, so CRLB% x value / quality is invariant there: a spectrum that
    reads low reports a proportionally higher CRLB. For Glu the invariant scales
    with the planted true value: glu_baseline, times (1 + glu_rise_pct / 100)
    after the cue film.
    """
    p = cocaine_params("tiny")
    participants = simulate_participants(p).set_index("participant_id")
    mrs = simulate_mrs(participants.reset_index(), p)
    quality = (14.0 / mrs["snr"]) * np.sqrt(mrs["fwhm_hz"] / 8.0)
    mrs = mrs.assign(k=mrs["crlb_percent"] * mrs["value_water"] / quality)
    # measurements really scatter: values differ across the four spectra
    assert mrs[mrs.metabolite == "NAA"].groupby("participant_id")["value_water"].nunique().min() == 4
    for metabolite in ("Gln", "NAA", "tCr", "tCho", "mI", "GSH"):
        k = mrs[mrs.metabolite == metabolite].groupby("participant_id")["k"]
        np.testing.assert_allclose(k.max() / k.min(), 1.0, rtol=1e-10)
    glu = mrs[mrs.metabolite == "Glu"].join(participants[["glu_baseline", "glu_rise_pct"]], on="participant_id")
    true = glu["glu_baseline"] * np.where(glu["state"] == "craving", 1 + glu["glu_rise_pct"] / 100, 1.0)
    ratio = glu["k"] / true  # the reference CRLB of Glu, the same for everyone
    np.testing.assert_allclose(ratio, ratio.iloc[0], rtol=1e-10)


def test_mrs_measurement_error_is_the_reported_crlb():
    """(measured - true) / (CRLB% x measured / 100) is standard normal (2,400 Glu spectra)."""
    p = cocaine_params("paper", n_cud=300, n_control=300)
    participants = simulate_participants(p).set_index("participant_id")
    mrs = simulate_mrs(participants.reset_index(), p)
    glu = mrs[mrs.metabolite == "Glu"].join(participants[["glu_baseline", "glu_rise_pct"]], on="participant_id")
    true = glu["glu_baseline"] * np.where(glu["state"] == "craving", 1 + glu["glu_rise_pct"] / 100, 1.0)
    z = (glu["value_water"] - true) / (glu["crlb_percent"] * glu["value_water"] / 100)
    assert len(z) == 2400
    assert abs(z.mean()) < 0.1  # SE 0.02
    assert abs(z.std() - 1) < 0.08  # SE 0.015
    # CUD: Glu rises by glu_craving_rise_pct on average (truth, before measurement)
    cud = participants[participants.group == "CUD"]
    # SE = glu_reactivity_pct / sqrt(300), about 0.9 with the defaults
    assert abs(cud["glu_rise_pct"].mean() - p.glu_craving_rise_pct) < 4 * p.glu_reactivity_pct / np.sqrt(300)


# --------------------------------------------------------------------------- single runs


@pytest.fixture(scope="module")
def tiny_setup():
    params = cocaine_params("tiny")
    participants = simulate_participants(params)
    runs = simulate_runs_table(participants, params)
    return params, runs.to_dict("records"), build_geometry(params)


def test_a_run_is_reproducible_and_independent_of_other_runs(tiny_setup):
    params, runs, geometry = tiny_setup
    a, b, c = runs[3], runs[10], runs[25]
    first = simulate_run_data(geometry, params, a)
    simulate_run_data(geometry, params, c)
    simulate_run_data(geometry, params, b)
    again = simulate_run_data(geometry, params, a)
    for key in ("data", "motion", "true_motion"):
        np.testing.assert_array_equal(first[key], again[key])
    assert first["data"].dtype == np.int16
    assert first["data"].shape == (params.n_volumes, geometry.mask.sum())
    assert first["motion"].shape == (params.n_volumes, 6)
    np.testing.assert_array_equal(first["true_motion"][0], 0.0)
    other = simulate_run_data(geometry, params, b)
    assert not np.array_equal(first["data"], other["data"])


def test_a_regenerated_run_equals_the_file_of_the_whole_study(tiny_setup, tiny_study_dir):
    """The study simulated every run in one pass; one run regenerated alone is identical."""
    params, runs, geometry = tiny_setup
    fmriprep = tiny_study_dir / "derivatives" / "fmriprep"
    for run in (runs[0], runs[13], runs[-1]):
        sim = simulate_run_data(geometry, params, run)
        files = run_files(fmriprep, run["participant_id"], run["session_id"], run["task"])
        img = nib.load(files.bold)
        on_disk = np.asarray(img.dataobj)[geometry.mask].T
        np.testing.assert_array_equal(on_disk, sim["data"])
        conf = pd.read_csv(files.confounds, sep="\t", na_values="n/a")
        motion_cols = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
        np.testing.assert_allclose(conf[motion_cols].to_numpy(), sim["motion"], rtol=1e-7, atol=1e-12)


def test_null_preset_is_the_same_study_without_effects(tiny_setup):
    """tiny_null: same seed, same noise; only CUD craving runs (where the rises act) differ."""
    params, runs, geometry = tiny_setup
    null = cocaine_params("tiny_null")
    null_runs = simulate_runs_table(simulate_participants(null), null).to_dict("records")
    assert [r["run_key"] for r in null_runs] == [r["run_key"] for r in runs]
    checked = set()
    for run, null_run in zip(runs, null_runs):
        kind = (run["group"], run["state"])
        if kind in checked:
            continue
        checked.add(kind)
        data = simulate_run_data(geometry, params, run)["data"]
        null_data = simulate_run_data(geometry, null, null_run)["data"]
        if kind == ("CUD", "craving"):
            assert run["fc_nacc_thalamus"] != null_run["fc_nacc_thalamus"]
            assert not np.array_equal(data, null_data)
        else:
            np.testing.assert_array_equal(data, null_data)
    assert len(checked) == 4


# --------------------------------------------------------------------------- the study on disk


def _all_files(root):
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_tiny_study_top_level_files(tiny_study_dir):
    root = tiny_study_dir
    desc = json.loads((root / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "raw" and "BIDSVersion" in desc
    for sub in ("fmriprep", "mrs", "simulation"):
        d = json.loads((root / "derivatives" / sub / "dataset_description.json").read_text())
        assert d["DatasetType"] == "derivative"
    participants = pd.read_csv(root / "participants.tsv", sep="\t", na_values="n/a", keep_default_na=False)
    assert list(participants.columns) == OBSERVED  # no latent variable leaks into the observed table
    assert participants["group"].value_counts().to_dict() == {"CUD": TINY.n_cud, "control": TINY.n_control}
    raw_lines = (root / "participants.tsv").read_text().splitlines()
    controls = [line for line in raw_lines if "\tcontrol\t" in line]
    assert len(controls) == TINY.n_control and all(line.endswith("\t0\tn/a") for line in controls)
    assert set(json.loads((root / "participants.json").read_text())) == set(OBSERVED)
    for row in participants.itertuples():
        sessions = pd.read_csv(root / row.participant_id / f"{row.participant_id}_sessions.tsv", sep="\t")
        assert list(sessions["session_id"]) == ["ses-1", "ses-2"]
        assert list(sessions["drug"]) == row.drug_order.split("-")
    ratings = pd.read_csv(root / "phenotype" / "craving_ratings.tsv", sep="\t")
    assert len(ratings) == TINY.n_participants * 4 and (root / "phenotype" / "craving_ratings.json").is_file()
    mrs = pd.read_csv(root / "derivatives" / "mrs" / "nacc_metabolites.tsv", sep="\t")
    assert len(mrs) == TINY.n_participants * 4 * len(METABOLITE_NAMES)
    assert (root / "derivatives" / "mrs" / "nacc_metabolites.json").is_file()


def test_tiny_study_files_equal_the_in_memory_tables(tiny_study_dir):
    params = cocaine_params("tiny")
    participants = simulate_participants(params)
    truth_p = pd.read_csv(tiny_study_dir / "derivatives" / "simulation" / "ground_truth_participants.tsv", sep="\t")
    np.testing.assert_allclose(truth_p["glu_rise_pct"], participants["glu_rise_pct"], rtol=1e-5)
    assert list(truth_p["participant_id"]) == list(participants["participant_id"])
    mrs = pd.read_csv(tiny_study_dir / "derivatives" / "mrs" / "nacc_metabolites.tsv", sep="\t")
    expected = simulate_mrs(participants, params)
    np.testing.assert_allclose(mrs["value_water"], expected["value_water"], rtol=1e-5)
    assert list(mrs["metabolite"]) == list(expected["metabolite"])


def test_tiny_study_ground_truth(tiny_study_dir):
    sim = tiny_study_dir / "derivatives" / "simulation"
    truth = json.loads((sim / "ground_truth.json").read_text())
    params = cocaine_params("tiny")
    assert truth["parameters"] == params_to_dict(params)
    assert truth["effects"] == planted_effects(params)
    assert truth["sources"] == list(SOURCES)
    assert truth["planted_regions"] == study_regions("cocaine")
    assert [r["roi"] for r in truth["planted_regions"]] == list(SOURCES)
    runs = pd.read_csv(sim / "ground_truth_runs.tsv", sep="\t")
    assert len(runs) == TINY.n_participants * 4
    fmriprep = tiny_study_dir / "derivatives" / "fmriprep"
    for row in runs.head(6).itertuples():
        files = run_files(fmriprep, row.participant_id, row.session_id, row.task)
        fd = pd.read_csv(files.confounds, sep="\t", na_values="n/a")["framewise_displacement"]
        np.testing.assert_allclose(row.mean_fd, fd.mean(), rtol=1e-5)
        assert row.n_fd_over_0_5 == int((fd > 0.5).sum())


def test_tiny_study_bold_images(tiny_study_dir):
    fmriprep = tiny_study_dir / "derivatives" / "fmriprep"
    grid = brain_mask(8)
    inside = np.asarray(grid.dataobj) > 0
    participants = pd.read_csv(tiny_study_dir / "participants.tsv", sep="\t")
    n_checked = 0
    for pid in participants["participant_id"]:
        for ses in ("ses-1", "ses-2"):
            for task in ("restneutral", "restcue"):
                files = run_files(fmriprep, pid, ses, task)
                for path in (files.bold, files.bold_json, files.mask, files.confounds, files.confounds_json):
                    assert path.is_file(), path
                n_checked += 1
    assert n_checked == TINY.n_participants * 4
    files = run_files(fmriprep, participants["participant_id"].iloc[-1], "ses-2", "restcue")
    sidecar = json.loads(files.bold_json.read_text())
    img = nib.load(files.bold)
    assert img.shape == grid.shape + (60,)
    assert img.get_data_dtype() == np.int16
    assert img.header.get_zooms() == (8.0, 8.0, 8.0, sidecar["RepetitionTime"]) == (8.0, 8.0, 8.0, 2.0)
    assert img.header.get_xyzt_units() == ("mm", "sec")
    np.testing.assert_array_equal(img.affine, grid.affine)
    data = np.asarray(img.dataobj)
    assert np.all(data[~inside] == 0) and np.all(data[inside].mean(axis=1) > 100)
    mask = nib.load(files.mask)
    np.testing.assert_array_equal(np.asarray(mask.dataobj) > 0, inside)


def test_ground_truth_is_written_last(tiny_study_dir):
    truth = tiny_study_dir / "derivatives" / "simulation" / "ground_truth.json"
    last = truth.stat().st_mtime_ns
    # what the simulator writes (analyses may later add their own derivatives)
    written_by_simulator = ("fmriprep", "mrs", "simulation")
    others = [
        p
        for p in _all_files(tiny_study_dir)
        if p != truth
        and (
            p.relative_to(tiny_study_dir).parts[0] != "derivatives"
            or p.relative_to(tiny_study_dir).parts[1] in written_by_simulator
        )
    ]
    assert len(others) > 150
    assert all(p.stat().st_mtime_ns <= last for p in others)
    assert not any(p.name.startswith(".tmp-") for p in others)  # no temporary file left over


def test_same_parameters_do_not_rewrite(tiny_study_dir):
    before = {p: p.stat().st_mtime_ns for p in _all_files(tiny_study_dir)}
    assert simulate_cocaine_study(tiny_study_dir, "tiny", n_jobs=1) == tiny_study_dir
    after = {p: p.stat().st_mtime_ns for p in _all_files(tiny_study_dir)}
    assert after == before


def _copy_study_markers(src, dst, with_truth=True):
    """The files that identify a study (so that no test can damage the shared one)."""
    (dst / "derivatives" / "simulation").mkdir(parents=True)
    shutil.copy2(src / "dataset_description.json", dst / "dataset_description.json")
    shutil.copy2(src / "participants.tsv", dst / "participants.tsv")
    if with_truth:
        truth = src / "derivatives" / "simulation" / "ground_truth.json"
        shutil.copy2(truth, dst / "derivatives" / "simulation" / "ground_truth.json")


def test_other_parameters_need_replace(tiny_study_dir, tmp_path):
    study = tmp_path / "study"
    _copy_study_markers(tiny_study_dir, study)
    before = {p: p.read_bytes() for p in _all_files(study)}
    with pytest.raises(ValueError, match="replace=True"):
        simulate_cocaine_study(study, "tiny", n_jobs=1, seed=1)
    with pytest.raises(ValueError, match="replace=True"):
        simulate_cocaine_study(study, "tiny_null", n_jobs=1)
    assert {p: p.read_bytes() for p in _all_files(study)} == before


def test_unfinished_study_needs_replace(tiny_study_dir, tmp_path):
    study = tmp_path / "study"
    _copy_study_markers(tiny_study_dir, study, with_truth=False)
    with pytest.raises(ValueError, match="unfinished"):
        simulate_cocaine_study(study, "tiny", n_jobs=1)
    assert (study / "participants.tsv").is_file()


@pytest.mark.parametrize(
    "description",
    [
        None,
        '{"Name": "real study", "BIDSVersion": "1.9.0", "GeneratedBy": [{"Name": "fMRIPrep"}]}',
        "{not json",
        '{"Name": "real study", "GeneratedBy": "fMRIPrep"}',  # not the BIDS list of objects
    ],
    ids=["no-description", "other-generator", "invalid-json", "generatedby-not-a-list"],
)
@pytest.mark.parametrize("replace", [False, True])
def test_foreign_folders_are_never_deleted(tmp_path, description, replace):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "notes.txt").write_text("precious")
    if description is not None:
        (folder / "dataset_description.json").write_text(description)
    with pytest.raises(ValueError, match="not a study written by this simulator"):
        simulate_cocaine_study(folder, "tiny", n_jobs=1, replace=replace)
    assert (folder / "notes.txt").read_text() == "precious"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["notes.txt"] + (["dataset_description.json"] if description is not None else [])
    )


def test_tiny_null_study_on_disk(tiny_study_dir, tiny_null_study_dir):
    """Null study: no planted effect, and the same data as ``tiny`` wherever no effect acts."""
    truth = json.loads((tiny_null_study_dir / "derivatives" / "simulation" / "ground_truth.json").read_text())
    assert truth["parameters"]["preset"] == "tiny_null"
    assert all(row["planted"] == 0.0 and not row["present"] for row in truth["effects"])
    participants = pd.read_csv(tiny_study_dir / "participants.tsv", sep="\t")
    pd.testing.assert_frame_equal(pd.read_csv(tiny_null_study_dir / "participants.tsv", sep="\t"), participants)
    cud = participants.loc[participants.group == "CUD", "participant_id"].iloc[0]
    ctl = participants.loc[participants.group == "control", "participant_id"].iloc[0]
    for pid, task, same in [(cud, "restneutral", True), (ctl, "restcue", True), (cud, "restcue", False)]:
        a = run_files(tiny_study_dir / "derivatives" / "fmriprep", pid, "ses-1", task).bold
        b = run_files(tiny_null_study_dir / "derivatives" / "fmriprep", pid, "ses-1", task).bold
        equal = np.array_equal(np.asarray(nib.load(a).dataobj), np.asarray(nib.load(b).dataobj))
        assert equal == same, (pid, task)


def test_identical_runs_are_shared_with_a_sibling_study(tmp_path):
    """The null twin of a study links the runs it shares and simulates the others: same files as alone."""
    import filecmp

    small = dict(n_cud=2, n_control=2, n_volumes=30)
    first = simulate_cocaine_study(tmp_path / "data" / "a", "tiny", **small)
    twin = simulate_cocaine_study(tmp_path / "data" / "b", "tiny_null", **small)
    alone = simulate_cocaine_study(tmp_path / "alone" / "b", "tiny_null", **small)
    contents = pd.read_csv(twin / "derivatives" / "simulation" / "run_contents.tsv", sep="\t")
    groups = pd.read_csv(twin / "participants.tsv", sep="\t").set_index("participant_id")["group"]
    differs = (contents["participant_id"].map(groups) == "CUD") & (contents["state"] == "craving")
    assert (contents["shared"] == ~differs).all()  # exactly the runs without a planted effect are shared
    for row in contents.itertuples():
        mine = run_files(twin / "derivatives" / "fmriprep", row.participant_id, row.session_id, row.task)
        theirs = run_files(first / "derivatives" / "fmriprep", row.participant_id, row.session_id, row.task)
        solo = run_files(alone / "derivatives" / "fmriprep", row.participant_id, row.session_id, row.task)
        assert (mine.bold.stat().st_ino == theirs.bold.stat().st_ino) == row.shared
        assert filecmp.cmp(mine.bold, solo.bold, shallow=False)
        assert filecmp.cmp(mine.confounds, solo.confounds, shallow=False)
    alone_contents = pd.read_csv(alone / "derivatives" / "simulation" / "run_contents.tsv", sep="\t")
    assert not alone_contents["shared"].any()
    assert list(alone_contents["content_key"]) == list(contents["content_key"])
