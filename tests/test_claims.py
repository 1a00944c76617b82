"""The claims registry: estimands read from chapters' tables, the claims' declarations, and their functions."""

import inspect

import numpy as np
import pandas as pd
import pytest
import yaml

from craving_circuits.baclofen import chapters as baclofen_chapters
from craving_circuits.cocaine import chapters as cocaine_chapters
from craving_circuits.simulate.baclofen import baclofen_params, planted_baclofen_effects
from craving_circuits.simulate.cocaine import cocaine_params, planted_effects
from craving_circuits.verdict import claims
from craving_circuits.verdict.claims import Estimand

CLUSTER_COLUMNS = ["sign", "peak_t", "p_fwe_size", "significant"]


def _result(**columns):
    base = {"se": 0.1, "ci_low": 0.0, "ci_high": 1.0}
    n = len(next(iter(columns.values())))
    return pd.DataFrame({**{k: [v] * n for k, v in base.items()}, **columns})


def _empty_clusters(*targets):
    return pd.DataFrame(columns=CLUSTER_COLUMNS + [f"overlap_{t}" for t in targets])


def test_an_estimand_reads_one_row_a_cluster_or_a_count():
    table = _result(term=["a", "b"], target=["x", "x"], estimate=[0.3, 0.5], p=[0.01, 0.2])
    row = Estimand("id", "ch", "eff", "test of {term} ({target})", "t", match=(("term", "b"),))
    assert row.read({"t": table}) == [
        {
            "estimand": "id",
            "effect": "eff",
            "test": "test of b (x)",
            "estimate": 0.5,
            "ci_low": 0.0,
            "ci_high": 1.0,
            "p": 0.2,
        }
    ]
    assert Estimand("id", "ch", "eff", "l", "t", match=(("term", "c"),)).read({"t": table}) == []
    with pytest.raises(ValueError, match="2 rows match"):
        Estimand("id", "ch", "eff", "l", "t", match=(("target", "x"),)).read({"t": table})
    with pytest.raises(ValueError, match="no column 'region'"):
        Estimand("id", "ch", "eff", "l", "t", match=(("region", "x"),)).read({"t": table}, "run/")
    with pytest.raises(KeyError, match="run/other"):
        Estimand("id", "ch", "eff", "l", "other").read({"t": table}, "run/")
    each = Estimand("id", "ch", "eff", "{term}", "t", each="term").read({"t": table})
    assert [r["estimand"] for r in each] == ["id@a", "id@b"]
    clusters = pd.DataFrame(
        {
            "sign": [1, 1, -1],
            "peak_t": [5.0, 4.0, -4.5],
            "p_fwe_size": [0.03, 0.01, 0.001],
            "significant": [True, True, True],
            "overlap_x": [0.3, 0.2, 0.5],
            "overlap_y": 0.0,
        }
    )
    positive = Estimand("id", "ch", "eff", "l", "c", kind="cluster", target="x", sign=1).read({"c": clusters})[0]
    assert (positive["estimate"], positive["p"]) == (4.0, 0.01)  # the most significant positive cluster on x
    either = Estimand("id", "ch", "eff", "l", "c", kind="cluster", target="x").read({"c": clusters})[0]
    assert (either["estimate"], either["p"]) == (-4.5, 0.001)
    none = Estimand("id", "ch", "eff", "l", "c", kind="cluster", target="y").read({"c": clusters})[0]
    assert np.isnan(none["estimate"]) and none["p"] == 1.0
    off = Estimand("id", "ch", "eff", "l", "c", kind="elsewhere").read({"c": clusters.assign(overlap_x=[0, 0.1, 0])})
    assert (off[0]["estimate"], off[0]["p"]) == (2.0, 0.0)
    assert Estimand("id", "ch", "eff", "l", "c", kind="elsewhere").read({"c": _empty_clusters("x")})[0]["p"] == 1.0


def test_ids_are_unique_and_effects_are_planted_effects():
    ids = [e.id for group in claims.ESTIMANDS.values() for e in group]
    assert len(ids) == len(set(ids))
    planted = {e["effect"] for e in planted_effects(cocaine_params("paper"))}
    planted |= {e["effect"] for e in planted_baclofen_effects(baclofen_params("paper"))}
    assert {e.effect for group in claims.ESTIMANDS.values() for e in group} <= planted
    with pytest.raises(ValueError, match="Unknown chapter"):
        claims.estimands("intro")
    with pytest.raises(ValueError, match="Unknown estimand"):
        claims.estimand("nothing")


def test_every_claim_names_its_estimand_function_and_level():
    ids = [c.claim_id for c in claims.CLAIMS]
    assert len(ids) == len(set(ids))
    plan = yaml.safe_load(open(claims.__file__.rsplit("/src/", 1)[0] + "/book/runs.yml"))
    runs = {entry["name"] for entry in plan}
    for claim in claims.CLAIMS:
        assert claim.estimand in claims.estimands(claim.estimand.chapter)
        assert claim.estimand.chapter in runs  # the ledger reads the chapter's default run
        assert callable(claim.test) and claim.level in ("roi", "voxel")
        assert (claim.direction is None) == (claim.equivalence is not None)
        assert (claim.level == "voxel") == (claim.voxel_test is not None)
        if claim.level == "roi":
            # the claim's test is a chapter chain, and its estimand is one of the tables that chain returns
            assert claim.test in (
                cocaine_chapters.glutamate_tests,
                cocaine_chapters.nac_tests,
                baclofen_chapters.cue_tests,
            )
            assert claim.estimand.table in inspect.getdoc(claim.test)
    assert {c.study for c in claims.claims(level="voxel")} == {"cocaine", "baclofen"}
    with pytest.raises(ValueError, match="Unknown claim"):
        claims.claim("nothing")


def test_seed_chapter_estimates():
    contrasts = _result(
        target=["dlpfc", "thalamus_midline", "dlpfc"],
        term=["craving - neutral | CUD", "group x state", "group x state x drug"],
        method=["one-sample t", "Welch two-sample t", "paired t"],
        estimate=[0.3, 0.2, 0.1],
        p=[0.001, 0.01, 0.5],
    )
    clusters = {
        f"clusters_{t}": _empty_clusters("dlpfc", "thalamus_midline") for t in ("craving_control", "group_x_state")
    }
    clusters["clusters_craving_cud"] = pd.DataFrame(
        {
            "sign": [1, 1, -1],
            "peak_t": [5.0, 4.0, -4.5],
            "p_fwe_size": [0.01, 0.03, 0.02],
            "significant": [True, True, True],
            "overlap_dlpfc": [0.3, 0.0, 0.0],
            "overlap_thalamus_midline": 0.0,
        }
    )
    est = claims.estimates("nacc_seed_fc", {"roi_tests": contrasts, **clusters}).set_index("estimand")
    assert est.loc["seed/roi/craving_neutral_cud/dlpfc", "effect"] == "craving_nacc_dlpfc_cud"
    assert est.loc["seed/roi/group_x_state/thalamus_midline", "test"] == (
        "ROI Welch two-sample t: group x state (thalamus_midline)"
    )
    assert est.loc["seed/roi/group_x_state/thalamus_midline", "effect"] == "group_x_state_nacc_thalamus"
    assert not any("x drug" in t for t in est["test"])  # no planted effect of its own
    dl = est.loc["seed/voxel/craving_cud/dlpfc"]
    assert (dl["estimate"], dl["p"], dl["test"]) == (
        5.0,
        0.01,
        "voxelwise cluster FWE: craving_cud, positive cluster on dlpfc",
    )
    th = est.loc["seed/voxel/craving_cud/thalamus_midline"]
    assert np.isnan(th["estimate"]) and th["p"] == 1.0
    off = est.loc["seed/voxel/craving_cud/elsewhere"]
    assert off["effect"] == "fc_change_elsewhere" and off["estimate"] == 2.0 and off["p"] == 0.0


def test_glutamate_chapter_estimates():
    tables = {
        "couplings": _result(
            target=["thalamus_midline", "dlpfc", "thalamus_midline"],
            sample=["CUD", "CUD", "all"],
            method=["pearson"] * 3,
            term=["a", "b", "c"],
            estimate=[0.7, -0.1, 0.5],
            p=[0.001, 0.6, 0.01],
        ),
        "coupling_difference": _result(term=["diff"], estimate=[0.8], p=[0.003]),
        "glutamate_rise": _result(term=["rise"], estimate=[5.0], p=[0.02]),
        "predictor_betas": _result(
            target=["thalamus_midline", "thalamus_midline", "dlpfc", "dlpfc"],
            term=["ocdus_obsessive", "cocaine_g_per_week"] * 2,
            estimate=[0.5, 0.3, 0.1, 0.0],
            p=[0.02, 0.2, 0.6, 0.9],
        ),
        "predictor_fits": pd.DataFrame(
            {"target": ["thalamus_midline", "dlpfc"], "r2": [0.45, 0.05], "p_f": [0.01, 0.7]}
        ),
        "voxel_clusters": pd.DataFrame(
            {
                "sign": [1, -1],
                "peak_t": [4.5, -4.0],
                "p_fwe_size": [0.01, 0.03],
                "significant": [True, True],
                "overlap_thalamus_midline": [0.4, 0.0],
                "overlap_dlpfc": [0.0, 0.0],
            }
        ),
    }
    by = claims.estimates("thalamus_glutamate", tables).set_index("test")
    model = by.loc["F test of the predictor model (thalamus_midline); estimate R²"]
    assert (model["effect"], model["estimate"], model["p"]) == ("clinical_model_thalamus_cud", 0.45, 0.01)
    assert np.isnan(model["ci_low"])
    assert by.loc["Pearson r within CUD (thalamus_midline)", "estimate"] == 0.7  # the CUD row, not "all"
    assert by.loc["Steiger test: diff", "effect"] == "coupling_difference_cud"
    assert by.loc["standardised beta of cocaine_g_per_week (dlpfc)", "effect"] == "use_predicts_dlpfc_cud"
    thal = by.loc["voxelwise coupling, cluster on thalamus_midline"]
    assert (thal["estimate"], thal["p"]) == (4.5, 0.01)
    off = by.loc["voxelwise coupling, significant clusters off the target ROIs"]
    assert off["estimate"] == 1.0 and off["effect"] == "glu_coupling_elsewhere"


def test_nac_chapter_estimates():
    clusters = {
        f"clusters_{t}": _empty_clusters("dlpfc", "thalamus_midline")
        for t in ("drug_x_state_control", "group_x_state_x_drug")
    }
    clusters["clusters_drug_x_state_cud"] = pd.DataFrame(
        {
            "sign": [-1, 1],
            "peak_t": [-5.0, 4.0],
            "p_fwe_size": [0.01, 0.2],
            "significant": [True, False],
            "overlap_dlpfc": [0.4, 0.0],
            "overlap_thalamus_midline": [0.0, 0.1],
        }
    )
    terms = [f"{c} ({o})" for o in ("dlpfc", "thalamus_midline") for c in claims.DRUG_EFFECTS]
    evidence = _result(
        term=terms + ["drug x state | CUD (rating)"],
        estimate=[-0.1, 0.02, -0.12, 0.0, 0.01, -0.01, -2.0],
        p=[0.5, 0.8, 0.4, 0.9, 0.95, 0.9, 0.3],
    )
    periods = _result(
        outcome=["dlpfc", "dlpfc", "thalamus_midline", "thalamus_midline", "rating"],
        term=["period | CUD", "period | control"] * 2 + ["period | CUD"],
        estimate=[-0.1, 0.01, -0.15, 0.0, -6.0],
        p=[0.2, 0.9, 0.04, 0.99, 0.001],
    )
    est = claims.estimates("nac_null_effect", {"evidence": evidence, "periods": periods, **clusters}).set_index("test")
    row = est.loc["crossover t, adjusted for period: drug x state | CUD (dlpfc)"]
    assert (row["effect"], row["estimate"]) == ("drug_x_state_cud", -0.1)
    row = est.loc["crossover t, adjusted for period: group x state x drug (thalamus_midline)"]
    assert (row["effect"], row["estimate"]) == ("group_x_state_x_drug", -0.01)
    row = est.loc["crossover t, adjusted for period: drug x state | CUD (rating)"]
    assert (row["effect"], row["estimate"]) == ("nac_rating_effect_cud", -2.0)
    row = est.loc["crossover period effect (second minus first session), CUD (thalamus_midline)"]
    assert (row["effect"], row["estimate"], row["p"]) == ("habituation_nacc_thalamus_cud", -0.15, 0.04)
    assert not any("craving - neutral" in t for t in est.index)  # the seed chapter's rows stay there
    dl = est.loc["voxelwise cluster FWE: drug_x_state_cud, cluster on dlpfc"]
    assert (dl["estimate"], dl["p"]) == (-5.0, 0.01)  # a negative cluster counts: NAC lowers the rise
    empty = est.loc["voxelwise cluster FWE: group_x_state_x_drug, cluster on dlpfc"]
    assert np.isnan(empty["estimate"]) and empty["p"] == 1.0
    # every NAC claim reads an estimand the chapter has
    ids = set(est["estimand"])
    for claim in claims.CLAIMS:
        if claim.claim_id.startswith("nac_"):
            assert claim.estimand.id in ids and claim.equivalence.id in ids


def test_baclofen_chapters_estimates():
    clusters = pd.DataFrame(
        {
            "sign": [1, -1],
            "peak_t": [5.0, -4.0],
            "p_fwe_size": [0.01, 0.03],
            "significant": [True, True],
            "overlap_dlpfc_right": [0.4, 0.0],
        }
    )
    contrasts = _result(
        region=["dlpfc_right"] * 3 + ["cluster"] * 3,
        term=["T2 - T1 | baclofen", "T2 - T1 | placebo", "group x time"] * 2,
        estimate=[6.0, 1.0, 5.0, 8.0, 0.0, 8.0],
        p=[0.001, 0.3, 0.002, 0.0, 0.9, 0.0],
    )
    est = claims.estimates("baclofen_cbf", {"clusters": clusters, "region_tests": contrasts}).set_index("test")
    assert est.loc["voxelwise cluster FWE: group x time, positive cluster on dlpfc_right", "estimate"] == 5.0
    off = est.loc["voxelwise cluster FWE: group x time, significant clusters off the ROI"]
    assert off["effect"] == "cbf_change_elsewhere" and off["estimate"] == 1.0
    model = est.loc["Welch t of the dlpfc_right ROI's T2 - T1 change: group x time"]
    assert model["effect"] == "group_x_time_dlpfc_cbf" and model["estimate"] == 5.0  # the ROI, not the cluster
    assert len(est) == 4

    rois = ("insula_anterior_ventral", "vmpfc")
    tables = {
        "t1_response": _result(
            term=[f"cue response at ses-T1 ({r})" for r in rois], estimate=[0.3, 0.2], p=[0.001, 0.01]
        ),
        "associations": _result(
            term=[f"cue change ~ dlPFC CBF change ({r})" for r in rois], estimate=[-0.4, -0.3], p=[0.01, 0.04]
        ),
        "voxel_clusters": pd.DataFrame(
            {
                "sign": [-1],
                "peak_t": [-4.5],
                "p_fwe_size": [0.02],
                "significant": [True],
                "overlap_insula_anterior_ventral": [0.2],
                "overlap_vmpfc": [0.0],
            }
        ),
        "craving_test": contrasts.iloc[:3].assign(region="craving", estimate=[-5.0, 1.0, -6.0]),
        "mediation_cue": _result(term=["a (x -> m)", "indirect effect (a b)"], estimate=[5.0, -0.3], p=[0.001, 0.01]),
    }
    est = claims.estimates("baclofen_mediation", tables)
    assert est["effect"].tolist() == ["cue_response_t1"] * 2 + ["dlpfc_rise_cue_change"] * 4 + [
        "cue_change_elsewhere",
        "group_x_time_craving",
        "indirect_effect_cue",
    ]
    assert est["estimand"].tolist()[:2] == [f"cue/t1_response@cue response at ses-T1 ({r})" for r in rois]
    by = est.set_index("estimand")
    assert by.loc["cue/voxel/insula_anterior_ventral", "estimate"] == -4.5
    assert np.isnan(by.loc["cue/voxel/vmpfc", "estimate"])
    assert (by.loc["cue/craving_t", "estimate"], by.loc["cue/craving_t", "p"]) == (-6.0, 0.002)
    assert by.loc["cue/indirect", "estimate"] == -0.3


def test_multiverse_estimates_one_row_per_specification():
    table = _result(
        strategy=["simple", "compcor", "simple"],
        target=["dlpfc", "dlpfc", "thalamus_midline"],
        term=["craving - neutral | CUD"] * 3,
        estimate=[0.3, 0.35, 0.5],
        p=[0.01, 0.004, 0.001],
    )
    est = claims.estimates("multiverse", {"multiverse": table}).set_index("estimand")
    assert list(est.index) == [
        "multiverse/craving_neutral_cud/dlpfc@simple",
        "multiverse/craving_neutral_cud/dlpfc@compcor",
        "multiverse/craving_neutral_cud/thalamus_midline@simple",
    ]
    assert est.loc["multiverse/craving_neutral_cud/dlpfc@compcor", "test"] == (
        "summary-statistic t, compcor: craving - neutral | CUD (dlpfc)"
    )
