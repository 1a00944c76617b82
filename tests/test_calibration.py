"""Calibration: ROI-level studies with exact answers when their noise is off, the conditions'
parameters, reproducible and parallel-safe Monte Carlo at a tiny size, and the rates with their
Clopper-Pearson intervals against statsmodels."""

import ast
import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage
from statsmodels.stats.proportion import proportion_confint

from conftest import BACLOFEN_ROI_MODEL as MODEL
from craving_circuits.book import plotting
from craving_circuits.cocaine import secondlevel
from craving_circuits.io.atlas import brain_mask
from craving_circuits.simulate import baclofen_params, cocaine_params, roi_level
from craving_circuits.simulate.baclofen import simulate_baclofen_participants
from craving_circuits.simulate.cocaine import build_geometry, simulate_participants, simulate_runs_table
from craving_circuits.simulate.signals import SmoothNoiseField
from craving_circuits.verdict import calibration
from craving_circuits.verdict import claims as registry
from figure_checks import assert_book_figure

ROOT = Path(__file__).resolve().parents[1]


def test_conditions_scale_only_the_planted_effects():
    paper = calibration.condition_params("cocaine", "paper", 3)
    half = calibration.condition_params("cocaine", "half", 3)
    assert half.seed == paper.seed == 3
    assert half.craving_nacc_thalamus == pytest.approx(paper.craving_nacc_thalamus / 2)
    assert half.source_sd == paper.source_sd and half.n_cud == paper.n_cud
    null = calibration.condition_params("baclofen", "null", 3)
    double = calibration.condition_params("baclofen", "double", 3)
    assert null.dlpfc_cbf_rise == 0 and double.dlpfc_cbf_rise == 2 * baclofen_params("paper").dlpfc_cbf_rise
    with pytest.raises(ValueError, match="Unknown condition"):
        calibration.condition_params("cocaine", "triple", 0)
    with pytest.raises(ValueError, match="Unknown study"):
        calibration.condition_params("heroin", "paper", 0)


def test_cocaine_roi_study_measures_the_planted_couplings_without_noise():
    """With no ROI noise and long runs, each run's Fisher z is its planted z up to sampling error."""
    params = cocaine_params("tiny", n_volumes=3000)
    tables = roi_level.cocaine_roi_study(params, roi_noise=0.0, run_noise_z=0.0)
    runs = simulate_runs_table(simulate_participants(params), params)
    roi = tables["roi"]
    assert len(roi) == 2 * len(runs) and set(roi["strategy"]) == {roi_level.ROI_LEVEL_STRATEGY}
    assert list(tables["participants"]["participant_id"]) == list(simulate_participants(params)["participant_id"])
    dlpfc = roi[roi["target"] == "dlpfc"]["fisher_z"].to_numpy()
    # band-limited series of 3000 volumes: about 1000 effective samples, SE of z about 0.03
    assert np.abs(dlpfc - runs["fc_nacc_dlpfc"].to_numpy()).mean() < 0.06
    assert np.corrcoef(dlpfc, runs["fc_nacc_dlpfc"])[0, 1] > 0.9
    # the analysis functions read it like the image pipeline's table
    diff = secondlevel.roi_state_differences(roi)
    assert len(diff) == 2 * params.n_participants * 2
    with pytest.raises(ValueError, match="roi_noise"):
        roi_level.cocaine_roi_study(params, roi_noise=-1)


def test_baclofen_roi_study_exact_without_noise():
    params = baclofen_params("paper", cbf_session_sd=0.0, cue_response_sd=0.0)
    model = roi_level.BaclofenRoiModel(**{**MODEL.__dict__, "regional_sd": 0.0, "thermal_sd": 0.0})
    tables = roi_level.baclofen_roi_study(params, model, cue_gain=0.5, cue_noise_sd=0.0)
    people = simulate_baclofen_participants(params).set_index("participant_id")
    cbf = tables["cbf"].pivot(index="participant_id", columns="session_id", values="cbf")
    # with global CBF fixed within a participant, the global adjustment cancels in T2 - T1
    change = cbf["ses-T2"] - cbf["ses-T1"]
    np.testing.assert_allclose(change, 0.5 * people.loc[change.index, "dlpfc_rise"], atol=1e-9)
    cue = tables["cue"].pivot_table(index="participant_id", columns=["roi", "session_id"], values="value")
    insula = cue["insula_anterior_ventral"]
    expected = 0.5 * 0.6 * params.cue_dlpfc_coupling * people.loc[insula.index, "dlpfc_rise"]
    np.testing.assert_allclose(insula["ses-T2"] - insula["ses-T1"], expected, atol=1e-9)
    assert set(tables["ratings"]["participant_id"]) == set(people.index)


def test_monte_carlo_is_reproducible_and_parallel_safe():
    kwargs = dict(conditions=("null", "paper"), baclofen_model=MODEL, n_boot=50, progress=False, batch_size=2)
    serial = calibration.monte_carlo(3, n_jobs=1, **kwargs)
    parallel = calibration.monte_carlo(3, n_jobs=2, **kwargs)
    pd.testing.assert_frame_equal(serial, parallel)
    assert list(serial.columns) == calibration.CALIBRATION_COLUMNS
    # one row per replicate, condition and ROI-level claim of the registry: the ledger's claims, not stand-ins
    roi_claims = [c.claim_id for c in registry.claims(level="roi")]
    assert len(serial) == 3 * 2 * len(roi_claims) and set(serial["claim_id"]) == set(roi_claims)
    assert not set(serial["claim_id"]) & {c.claim_id for c in registry.claims(level="voxel")}
    paper = serial[serial["condition"] == "paper"].set_index(["claim_id", "replicate"])
    null = serial[serial["condition"] == "null"].set_index(["claim_id", "replicate"])
    assert paper.loc["thalamus_glu", "planted_present"].all()
    assert not null["planted_present"].any()
    # the strongest planted effects are found in every replicate at the paper preset
    assert paper.loc["cbf_rise_insula", "found"].all()
    # the test label is the one the ledger reports
    assert set(paper.loc["baclofen_craving", "test"]) == {registry.claim("baclofen_craving").estimand.label}
    assert serial.loc[serial["claim_id"].str.startswith("nac_no_effect"), "equivalent"].notna().all()
    with pytest.raises(ValueError, match="n_sims"):
        calibration.monte_carlo(0)
    with pytest.raises(ValueError, match="at least one study"):
        calibration.monte_carlo(1, studies=())
    with pytest.raises(ValueError, match="Unknown condition"):
        calibration.monte_carlo(1, conditions=("triple",), studies=("cocaine",))


def test_summary_rates_and_clopper_pearson_intervals():
    rows = []
    for i in range(40):  # 40 null replicates: 2 false positives; 40 paper: 30 hits; equivalence in 10
        rows.append(
            dict(
                condition="null",
                replicate=i,
                study="s",
                claim_id="a",
                test="t",
                planted_present=False,
                estimate=0.0,
                p=0.5,
                found=i < 2,
                equivalent=None,
            )
        )
        rows.append(
            dict(
                condition="paper",
                replicate=i,
                study="s",
                claim_id="a",
                test="t",
                planted_present=True,
                estimate=1.0,
                p=0.01,
                found=i < 30,
                equivalent=None,
            )
        )
        rows.append(
            dict(
                condition="null",
                replicate=i,
                study="s",
                claim_id="b",
                test="u",
                planted_present=False,
                estimate=0.0,
                p=0.5,
                found=i < 12,
                equivalent=i < 10,
            )
        )
    # c: a claim of absence at its equivalence bound, declaring equivalence in 3 of 40
    for i in range(40):
        rows.append(
            dict(
                condition="at_bound_c",
                replicate=i,
                study="s",
                claim_id="c",
                test="v",
                planted_present=True,
                estimate=0.8,
                p=0.2,
                found=i < 20,
                equivalent=i < 3,
            )
        )
    summary = calibration.calibration_summary(pd.DataFrame(rows))
    assert list(summary.columns) == calibration.SUMMARY_COLUMNS
    table = summary.set_index(["claim_id", "condition", "measure"])
    fpr = table.loc[("a", "null", "false-positive rate")]
    assert fpr["rate"] == 2 / 40
    assert (fpr["ci_low"], fpr["ci_high"]) == pytest.approx(proportion_confint(2, 40, 0.05, method="beta"))
    # 2 / 40 has an upper bound of 0.17: too few replicates to show that the level holds
    assert fpr["criterion"] == calibration.MAX_UPPER_BOUND and not fpr["holds"]
    assert table.loc[("a", "paper", "power"), "rate"] == 0.75 and table.loc[("a", "paper", "power"), "holds"] is None
    assert not table.loc[("b", "null", "false-positive rate"), "holds"]  # 12 / 40 is far above 0.05
    assert table.loc[("b", "null", "equivalence rate"), "count"] == 10
    assert np.isnan(table.loc[("b", "null", "equivalence rate"), "criterion"])
    at_bound = table.loc[("c", "at_bound_c", "equivalence at the bound")]
    assert at_bound["count"] == 3 and at_bound["ci_high"] == pytest.approx(proportion_confint(3, 40, method="beta")[1])
    # with 2000 replicates the same rates are decided: 5 % holds, 7 % does not
    many = pd.concat([pd.DataFrame(rows[:1])] * 2000, ignore_index=True)
    many["found"] = np.arange(2000) < 100
    assert calibration.calibration_summary(many)["holds"].iloc[0]
    many["found"] = np.arange(2000) < 140
    assert not calibration.calibration_summary(many)["holds"].iloc[0]
    with pytest.raises(ValueError, match="lack the column"):
        calibration.calibration_summary(pd.DataFrame(rows).drop(columns="found"))


def test_voxelwise_null_runs_every_voxelwise_test_under_every_condition_at_a_tiny_size():
    sizes = dict(voxel_size_mm=8, n_perm=20, n_cud=5, n_control=5, n_baclofen=5, n_placebo=5, progress=False)
    results = calibration.voxelwise_null(2, **sizes)
    assert list(results.columns) == calibration.VOXEL_COLUMNS
    expected = {*secondlevel.GROUP_TESTS, *secondlevel.DRUG_TESTS, "glutamate_coupling", "group_x_time_cbf"}
    assert set(results["test"]) == expected | {"cue_cbf_coupling"}
    per_condition = results.groupby("condition")["test"].apply(set)
    for condition, spec in calibration.VOXEL_CONDITIONS.items():
        assert per_condition[condition] == set(spec["tests"]), condition
    n_rows = sum(len(spec["tests"]) for spec in calibration.VOXEL_CONDITIONS.values())
    assert len(results) == 2 * n_rows and results["min_p_fwe"].between(0, 1).all()
    cfp = results.groupby("test")["cluster_forming_p"].first()
    assert cfp["glutamate_coupling"] == 0.01 and cfp["craving_cud"] == 0.001
    summary = calibration.voxelwise_summary(results)
    assert (summary["n"] == 2).all() and summary["rate"].between(0, 1).all()
    assert (summary["condition"].iloc[: len(calibration.VOXEL_TESTS)] == "null").all()  # null rows first
    row = summary.iloc[0]
    low, high = proportion_confint(row["count"], 2, alpha=0.05, method="beta")
    assert row["ci_low"] == pytest.approx(low) and row["ci_high"] == pytest.approx(high)
    assert row["holds"] == (high <= 0.075) and row["criterion"] == 0.075
    assert calibration.upper_bound_at(0.05, 200) == pytest.approx(proportion_confint(10, 200, 0.05, method="beta")[1])
    assert 0.085 < calibration.upper_bound_at(0.05, 200) < 0.095  # 200 replicates cannot show 0.075 at 0.05
    pd.testing.assert_frame_equal(results, calibration.voxelwise_null(2, **sizes, n_jobs=2))
    # a condition's rows do not depend on which other conditions run
    alone = calibration.voxelwise_null(2, **sizes, conditions=("global_cbf",)).reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, results[results["condition"] == "global_cbf"].reset_index(drop=True))
    with pytest.raises(ValueError, match="Unknown conditions"):
        calibration.voxelwise_null(1, **sizes, conditions=("nothing",))


def _parameter(notebook: str, name: str):
    """A literal of a notebook's parameters cell."""
    cells = json.loads((ROOT / "notebooks" / f"{notebook}.ipynb").read_text())["cells"]
    source = next("".join(c["source"]) for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and node.targets[0].id == name:
            return ast.literal_eval(node.value)
    raise KeyError(name)


def test_voxelwise_tests_use_their_chapters_cluster_forming_thresholds():
    chapter = {
        "state": "nacc_seed_fc",
        "drug": "nac_null_effect",
        "cbf": "baclofen_cbf",
        "cue": "baclofen_mediation",
    }
    for test, spec in calibration.VOXEL_TESTS.items():
        notebook = "thalamus_glutamate" if test == "glutamate_coupling" else chapter[spec["maps"]]
        assert spec["cluster_forming_p"] == _parameter(notebook, "cluster_forming_p"), test
        assert _parameter(notebook, "smoothing_fwhm") == 6.0  # the calibration's default smoothing
    ledger_tests = {c.voxel_test for c in registry.CLAIMS if c.voxel_test}
    assert ledger_tests <= set(calibration.VOXEL_TESTS)


def test_map_fwhm_recovers_the_smoothness_of_gaussian_smoothed_noise():
    mask = np.zeros((30, 30, 30), bool)
    mask[3:-3, 3:-3, 3:-3] = True
    mask_img = nib.Nifti1Image(mask.astype(np.uint8), np.diag([2.0, 2.0, 2.0, 1.0]))
    rng = np.random.default_rng(0)
    for fwhm in (6.0, 10.0):
        sigma = fwhm / np.sqrt(8 * np.log(2)) / 2.0  # voxels
        vol = ndimage.gaussian_filter(rng.standard_normal((40, 30, 30, 30)), (0, sigma, sigma, sigma))
        estimate = calibration.map_fwhm(vol[:, mask], mask_img)
        np.testing.assert_allclose(estimate, fwhm, rtol=0.1)
    white = calibration.map_fwhm(rng.standard_normal((40, int(mask.sum()))), mask_img)
    assert np.all(np.isnan(white) | (white < 2.0))  # no correlation between neighbours


def test_null_maps_have_the_simulators_smoothness():
    """The null maps' smooth part is the simulators' own noise field: the same smoothness as the noise the
    image simulators add (drawn here through their geometry), mixed with white noise (baclofen: in the
    simulator's proportions; cocaine: in those derived from the image pipeline's maps)."""
    for study, make in (("cocaine", cocaine_params), ("baclofen", baclofen_params)):
        params = make("paper", voxel_size_mm=8)
        for kind, noise in calibration.map_noise(study, params).items():
            assert noise.fwhm_mm == params.smooth_noise_fwhm_mm and noise.voxel_size_mm == params.voxel_size_mm
            assert 0 < noise.smooth_share < 1, (study, kind)
    params = cocaine_params("paper", voxel_size_mm=8)
    derived = calibration.read_map_noise()["presets"]["null"]["kinds"]["state"]
    assert calibration.map_noise("cocaine", params)["state"].smooth_share == derived["smooth_share"]
    geometry = build_geometry(params)
    mask_img = nib.Nifti1Image(geometry.mask.astype(np.uint8), geometry.affine)
    rng = np.random.default_rng(1)
    share = 0.5
    simulator = np.sqrt(share) * geometry.noise.sample(rng, 60) + np.sqrt(1 - share) * rng.standard_normal(
        (60, int(geometry.mask.sum()))
    )
    noise = calibration.MapNoise(params.smooth_noise_fwhm_mm, share, params.voxel_size_mm)
    fields = {(8, params.smooth_noise_fwhm_mm): SmoothNoiseField(geometry.mask, 8, params.smooth_noise_fwhm_mm)}
    null = calibration._null_maps(fields, noise, 60, np.random.default_rng(2))
    np.testing.assert_allclose(
        calibration.map_fwhm(null, mask_img), calibration.map_fwhm(simulator, mask_img), rtol=0.1
    )
    assert null.std(axis=0).mean() == pytest.approx(1.0, abs=0.1)


def test_match_map_noise_recovers_a_known_share_and_a_wider_field():
    mask_img = brain_mask(8)
    mask = np.asarray(mask_img.dataobj) > 0
    base = calibration.MapNoise(12.0, 0.5, 8)
    for truth in (calibration.MapNoise(12.0, 0.3, 8), calibration.MapNoise(16.0, 1.0, 8)):
        fields = {(8, truth.fwhm_mm): SmoothNoiseField(mask, 8, truth.fwhm_mm)}
        maps = calibration._null_maps(fields, truth, 60, np.random.default_rng(5))
        for scale in ("map", "voxel"):
            target = float(np.nanmean(calibration.map_fwhm(maps, mask_img, scale=scale)))
            noise, drawn = calibration.match_map_noise(target, base, mask_img, n_maps=60, scale=scale)
            assert drawn == pytest.approx(target, rel=0.01)
            assert noise.smooth_share == pytest.approx(truth.smooth_share, abs=0.05)
            assert noise.fwhm_mm == pytest.approx(truth.fwhm_mm, rel=0.05)
    # nothing is rougher than white noise: a share of 0
    white = calibration.match_map_noise(0.0, base, mask_img, n_maps=20)[0]
    assert white.smooth_share == 0.0 and white.fwhm_mm == 12.0


def test_map_fwhm_by_map_is_not_set_by_one_map_of_outlying_amplitude():
    mask_img = brain_mask(8)
    mask = np.asarray(mask_img.dataobj) > 0
    field = SmoothNoiseField(mask, 8, 12.0)
    noise = calibration.MapNoise(12.0, 0.5, 8)
    maps = calibration._null_maps({(8, 12.0): field}, noise, 14, np.random.default_rng(0))
    clean = calibration.map_fwhm(maps, mask_img, scale="map")
    np.testing.assert_allclose(clean, calibration.map_fwhm(maps, mask_img), rtol=0.05)  # stationary: the same
    maps[-1] *= 20  # one participant map twenty times as large, as smooth as the others
    by_map = calibration.map_fwhm(maps, mask_img, scale="map")
    np.testing.assert_allclose(by_map, clean, rtol=0.05)
    by_voxel = calibration.map_fwhm(maps, mask_img)
    assert np.abs(by_voxel - clean).mean() > 2 * np.abs(by_map - clean).mean()  # by voxel: moved by it
    with pytest.raises(ValueError, match="scale"):
        calibration.map_fwhm(maps, mask_img, scale="participant")


def test_wide_tables_and_figure_of_a_summary():

    rows = []
    for condition, factor in calibration.CONDITIONS.items():
        for i in range(20):
            rows.append(
                dict(
                    condition=condition,
                    replicate=i,
                    study="s",
                    claim_id="rise",
                    test="t",
                    planted_present=factor > 0,
                    estimate=factor,
                    p=0.01,
                    found=i < 20 * min(factor, 1) or i == 0,
                    equivalent=None,
                )
            )
            rows.append(
                dict(
                    condition=condition,
                    replicate=i,
                    study="s",
                    claim_id="none",
                    test="u",
                    planted_present=False,
                    estimate=0.0,
                    p=0.5,
                    found=i == 0,
                    equivalent=i < 15,
                )
            )
    summary = calibration.calibration_summary(pd.DataFrame(rows))
    power = calibration.power_table(summary)
    assert list(power.columns) == ["study", "claim_id", "test", "half", "paper", "double"]
    assert power.set_index("claim_id").loc["rise", "half"] == 0.5
    claims = calibration.claims_table(
        summary.replace({"claim_id": {"rise": "thalamus_glu", "none": "nac_no_effect_dlpfc"}}),
        pd.DataFrame({"test": ["craving_cud"], "n": [200], "rate": [0.02], "ci_high": [0.05]}),
    )
    claims = claims.set_index("claim_id")
    assert list(claims.index) == [c.claim_id for c in registry.CLAIMS]
    assert claims.loc["thalamus_glu", "planted_at_paper"] and claims.loc["thalamus_glu", "rate_at_paper"] == 1.0
    # 1 / 20 under null: upper bound 0.25, not calibrated, and the reason names the rate
    assert claims.loc["thalamus_glu", "fpr_null"] == 0.05 and not claims.loc["thalamus_glu", "calibrated"]
    assert claims.loc["thalamus_glu", "reason"].startswith("false-positive rate under null: 0.050, upper bound 0.249")
    assert claims.loc["thalamus_glu", "n"] == 20 and claims.loc["thalamus_glu", "n_conditions"] == 1
    assert not claims.loc["nac_no_effect_dlpfc", "planted_at_paper"]
    assert claims.loc["nac_no_effect_dlpfc", "n_conditions"] == 4  # absent under every condition
    # voxel-level claims: their rate from the voxelwise calibration, nothing at ROI level
    voxel = claims.loc["craving_nacc_dlpfc"]
    assert voxel["level"] == "voxel" and voxel["fpr_null"] == 0.02 and np.isnan(voxel["rate_at_paper"])
    assert voxel["calibrated"] and claims.loc["baclofen_dlpfc_cbf", "calibrated"] is None
    upper = calibration.upper_bound_table(summary).set_index("claim_id")
    assert list(upper.columns) == ["study", "n", "null", "half", "paper", "double", "worst", "holds"]
    assert np.isnan(upper.loc["rise", "paper"]) and upper.loc["none", "n"] == 20 and not upper["holds"].any()
    assert upper.loc["none", "worst"] == pytest.approx(proportion_confint(1, 20, method="beta")[1])
    with pytest.raises(ValueError, match="No rows"):
        calibration.power_table(summary[summary["measure"] != "power"])
    fig = plotting.plot_calibration(summary)
    assert len(fig.axes) == 2 and len(fig.axes[1].get_lines()) >= 1
    assert_book_figure(fig)


def test_independent_maps_are_not_standardised_over_the_draw():
    """Participant maps must vary in their mean as independent draws do: the time-series sampler
    standardises each voxel over its volumes (mean exactly 0), which would make every one-sample
    test's statistic vanish; the independent draws keep unit variance and the field's smoothness."""
    mask_img = brain_mask(8)
    mask = np.asarray(mask_img.dataobj) > 0
    field = SmoothNoiseField(mask, 8, 16.0)
    series = field.sample(np.random.default_rng(0), 20)
    np.testing.assert_allclose(series.mean(axis=0), 0, atol=1e-5)
    maps = field.independent(np.random.default_rng(0), 400)
    assert maps.shape == (400, int(mask.sum()))
    assert maps.var(axis=0).mean() == pytest.approx(1.0, abs=0.1)
    means = np.stack([field.independent(np.random.default_rng(k), 20).mean(axis=0) for k in range(1, 41)])
    assert means.var(axis=0).mean() == pytest.approx(1 / 20, rel=0.2)  # a sample mean's variance
    np.testing.assert_allclose(
        calibration.map_fwhm(maps[:60], mask_img),
        calibration.map_fwhm(field.sample(np.random.default_rng(3), 60), mask_img),
        rtol=0.1,
    )


def test_threat_and_at_bound_conditions():
    bounds = {"nac_no_effect_dlpfc": ("nac_effect", -0.3)}
    conditions = calibration.study_conditions("cocaine", bounds)
    assert conditions[:4] == tuple(calibration.CONDITIONS) and "at_bound_nac_no_effect_dlpfc" in conditions
    assert not any(c.startswith(calibration.AT_BOUND) for c in calibration.study_conditions("baclofen", bounds))
    params = calibration.condition_params("cocaine", "at_bound_nac_no_effect_dlpfc", 5, bounds)
    paper = cocaine_params("paper", seed=5)
    assert params.nac_effect == -0.3 and params.craving_nacc_thalamus == paper.craving_nacc_thalamus
    assert params.seed == 5
    with pytest.raises(ValueError, match="Unknown condition"):  # an at-bound condition needs its bound
        calibration.condition_params("cocaine", "at_bound_nac_no_effect_dlpfc", 5)
    threats = calibration.threats("baclofen")
    assert {"threat_global_cbf", "threat_mediation_partial_null", "threat_direct_cue"} <= set(threats)
    for study in ("cocaine", "baclofen"):
        for name, threat in calibration.threats(study).items():
            assert name in calibration.study_conditions(study) and threat["threat"]
            params = calibration.condition_params(study, name, 4)
            assert params == (cocaine_params if study == "cocaine" else baclofen_params)(name, seed=4)
            # each threat is a null for the claims it lists: their planted effects are absent under it
            present = calibration._present(study, params)
            for claim_id in threat["claims"]:
                assert registry.claim(claim_id).study == study
                assert not present[registry.claim(claim_id).estimand.effect], (name, claim_id)
    # the mediation's partial null: the dlPFC rise is there (a != 0), its effect on the cue response is not
    partial = calibration.condition_params("baclofen", "threat_mediation_partial_null", 0)
    assert partial.dlpfc_cbf_rise > 0 and partial.cue_dlpfc_coupling == 0


def test_equivalence_bounds_put_the_true_effect_at_the_bound():
    bounds = calibration.equivalence_bounds(n_sims=40, seed=500)
    assert set(bounds["claim_id"]) == set(calibration.EQUIVALENCE_PARAMETERS)
    assert (bounds["value"] < 0).all()
    np.testing.assert_allclose(bounds["bound"], 0.8 * bounds["sd"])
    # on other studies, the mean estimate at the value is the bound (in SDs of the contrast), up to Monte Carlo error
    values = dict(zip(bounds["parameter"], bounds["value"]))  # the two connectivity claims share nac_effect
    for claim_id in ("nac_no_effect_dlpfc", "nac_no_effect_rating"):
        row = bounds.set_index("claim_id").loc[claim_id]
        moments = calibration._equivalence_moments({**values, row["parameter"]: row["value"]}, 60, 9000, 0.8, 0.05, {})
        mean, sd = moments[claim_id]
        assert mean / sd == pytest.approx(-0.8, abs=0.12), claim_id
    # the calibration runs the at-bound conditions, and reads the equivalence rate there as an error rate
    results = calibration.monte_carlo(
        2, conditions=("at_bound_nac_no_effect_rating",), studies=("cocaine",), bounds=bounds, n_boot=20, progress=False
    )
    assert set(results["condition"]) == {"at_bound_nac_no_effect_rating"}
    summary = calibration.calibration_summary(results).set_index(["claim_id", "measure"])
    assert summary.loc[("nac_no_effect_rating", "equivalence at the bound"), "holds"] is not None
    assert ("nac_no_effect_dlpfc", "equivalence rate") in summary.index  # another claim's bound: not its error
    with pytest.raises(ValueError, match="Unknown condition"):
        calibration.monte_carlo(1, conditions=("at_bound_nac_no_effect_rating",), studies=("cocaine",))


def test_the_calibration_runs_every_roi_claims_own_test(monkeypatch):
    """Each ROI-level claim's test, as the registry names it, is the function the calibration calls."""
    called = []
    for function in {c.test for c in registry.claims(level="roi")}:
        module = sys.modules[function.__module__]

        def wrapper(*args, _function=function, **kwargs):
            called.append(_function)
            return _function(*args, **kwargs)

        monkeypatch.setattr(module, function.__name__, wrapper)
    results = calibration.monte_carlo(
        1, conditions=("null",), baclofen_model=MODEL, n_boot=10, batch_size=1, n_jobs=1, progress=False
    )
    assert set(called) == {c.test for c in registry.claims(level="roi")}
    assert set(results["claim_id"]) == {c.claim_id for c in registry.claims(level="roi")}


def test_threats_table_lists_every_threat_and_claim_with_what_its_test_did():
    """Every (threat, claim) pair of the simulators' THREATS is a row; ROI-level claims carry their error rate
    under the threat's condition, voxel-level claims the voxelwise condition with the threat's variance
    structure, and a threat that only images carry names the image-level command."""
    conditions = ("null", *calibration.threats("cocaine"), *calibration.threats("baclofen"))
    results = calibration.monte_carlo(
        2, conditions=conditions, baclofen_model=MODEL, n_boot=10, n_jobs=1, progress=False
    )
    summary = calibration.calibration_summary(results)
    voxel = pd.DataFrame(
        [
            dict(
                replicate=r,
                condition=c,
                study=s,
                test=t,
                cluster_forming_p=0.001,
                n_clusters=1,
                min_p_fwe=0.5,
                found=(r == 0 and c == "global_cbf"),
            )
            for r in range(4)
            for c, s, t in (
                ("null", "baclofen", "group_x_time_cbf"),
                ("global_cbf", "baclofen", "group_x_time_cbf"),
                ("unequal_variance", "cocaine", "craving_cud"),
            )
        ],
        columns=calibration.VOXEL_COLUMNS,
    )
    table = calibration.threats_table(summary, calibration.voxelwise_summary(voxel), image_command="run it")
    assert list(table.columns) == calibration.THREAT_COLUMNS
    expected = {
        (preset, claim_id)
        for study in ("cocaine", "baclofen")
        for preset, threat in calibration.threats(study).items()
        for claim_id in threat["claims"]
    }
    assert set(zip(table["threat"], table["claim_id"])) == expected and len(table) == len(expected)
    rows = table.set_index(["threat", "claim_id"])
    # a ROI-level claim: its own false-positive rate under the threat's condition, from the summary
    row = rows.loc[("threat_mediation_partial_null", "baclofen_via_dlpfc")]
    own = summary[
        (summary["claim_id"] == "baclofen_via_dlpfc")
        & (summary["condition"] == "threat_mediation_partial_null")
        & summary["holds"].notna()
    ].iloc[0]
    assert row["checked_by"] == "ROI-level replicates" and row["n"] == 2
    assert row["rate"] == own["rate"] and row["ci_high"] == own["ci_high"]
    # a voxel-level claim under a threat with a voxelwise condition: 1 of 4 maps fired
    row = rows.loc[("threat_global_cbf", "baclofen_dlpfc_cbf")]
    assert row["checked_by"] == "voxelwise null maps (global_cbf)" and row["rate"] == 0.25 and not row["holds"]
    # state-dependent motion is in the images only: not checked in this build, the command is named
    row = rows.loc[("threat_state_motion", "craving_nacc_dlpfc")]
    assert row["checked_by"] == "image level only: run it" and row["holds"] is None and np.isnan(row["rate"])
