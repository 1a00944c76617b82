"""The default scenario (`paper` preset) recovers the planted effects.

The study (164 runs) is simulated and analysed once per test session by the
``paper_analysis`` fixture, through the functions the notebook calls, with 1000
permutations. ``make test`` distributes test files over workers
(``--dist loadfile``), so this file and ``test_recovery_null.py`` run side by side.
"""

import numpy as np
import pytest

from conftest import RECOVERY_ALPHA as ALPHA

pytestmark = pytest.mark.slow

TARGETS = ("dlpfc", "thalamus_midline")
PLANTED_RISE = {"dlpfc": "craving_nacc_dlpfc_cud", "thalamus_midline": "craving_nacc_thalamus_cud"}


def test_roi_craving_rise_in_cud_only(paper_analysis):
    contrasts, truth = paper_analysis.contrasts, paper_analysis.drug.truth
    assert truth[PLANTED_RISE["dlpfc"]] != truth[PLANTED_RISE["thalamus_midline"]]
    for target in TARGETS:
        cud = contrasts.loc[(target, "craving - neutral | CUD")]
        assert cud["p"] < ALPHA and cud["estimate"] > 0, target
        # ROI-level Fisher z of mean time series land near the target's own source-level planted value
        planted = truth[PLANTED_RISE[target]]
        assert 0.4 * planted < cud["estimate"] < 1.6 * planted, (target, cud["estimate"], planted)
        assert contrasts.loc[(target, "craving - neutral | control"), "p"] > ALPHA, target


def test_roi_group_by_state_interaction(paper_analysis):
    contrasts = paper_analysis.contrasts
    for target in TARGETS:
        row = contrasts.loc[(target, "group x state")]
        assert row["p"] < ALPHA and row["estimate"] > 0, target


def test_roi_standard_errors_are_the_participants_spread(paper_analysis):
    """The reported SE of each craving - neutral rise is the SD of the participants' own rises over sqrt(n)."""
    per_person = paper_analysis.participant_changes
    assert per_person.groupby("target").size().tolist() == [41, 41]
    for (target, group), sub in per_person.groupby(["target", "group"]):
        row = paper_analysis.contrasts.loc[(target, f"craving - neutral | {group}")]
        expected = sub["delta"].std(ddof=1) / np.sqrt(len(sub))
        assert row["se"] == pytest.approx(expected, rel=0.05) and row["n"] == len(sub), (target, group)


def test_roi_no_nac_effect(paper_analysis):
    evidence = paper_analysis.drug.evidence
    for target in TARGETS:
        assert evidence.loc[f"drug x state | CUD ({target})", "p"] > ALPHA, target


def test_voxelwise_clusters_on_both_targets_in_cud(paper_analysis):
    clusters = paper_analysis.clusters
    table = clusters["craving_cud"]
    for target in TARGETS:
        hits = table[table["significant"] & (table["sign"] > 0) & (table[f"overlap_{target}"] > 0)]
        assert len(hits) >= 1, (target, table.head())


def test_voxelwise_nothing_in_controls_or_off_target(paper_analysis):
    clusters = paper_analysis.clusters
    assert not clusters["craving_control"]["significant"].any()
    for test in ("craving_cud", "group_x_state"):
        table = clusters[test]
        off = table[table["significant"] & (table[[f"overlap_{t}" for t in TARGETS]].sum(axis=1) == 0)]
        assert off.empty, (test, off)


# --------------------------------------------------------------------------- glutamate chapter


def test_thalamic_rise_is_coupled_with_glutamate_in_cud(paper_analysis):
    row = paper_analysis.couplings.loc[("thalamus_midline", "CUD", "pearson")]
    assert row["p"] < ALPHA and row["estimate"] > 0
    assert row["ci_low"] > 0  # the bootstrap CI agrees


def test_dlpfc_rise_is_not_coupled_with_glutamate_in_cud(paper_analysis):
    row = paper_analysis.couplings.loc[("dlpfc", "CUD", "pearson")]
    assert row["p"] > ALPHA


def test_the_two_couplings_differ(paper_analysis):
    comparison = paper_analysis.comparison
    assert comparison["estimate"] > 0 and comparison["p"] < ALPHA


def test_voxelwise_coupling_lies_in_the_thalamus(paper_analysis):
    table = paper_analysis.voxel_clusters
    hits = table[table["significant"] & (table["sign"] > 0) & (table["overlap_thalamus_midline"] > 0)]
    assert len(hits) >= 1, table.head()
    off = table[table["significant"] & (table[[f"overlap_{t}" for t in TARGETS]].sum(axis=1) == 0)]
    assert off.empty, off


def test_clinical_measures_predict_the_thalamic_rise_only(paper_analysis):
    fits = paper_analysis.fits
    assert fits.loc["thalamus_midline", "p_f"] < ALPHA
    assert fits.loc["dlpfc", "p_f"] > ALPHA
    betas = paper_analysis.betas
    for term in ("ocdus_obsessive", "cocaine_g_per_week"):
        assert betas.loc[("thalamus_midline", term), "estimate"] > 0


# --------------------------------------------------------------------------- NAC chapter


def test_nac_absence_is_shown_not_just_unfound(paper_analysis):
    """No NAC effect is planted: within CUD the evidence shows equivalence, and the Bayes factor favours none."""
    evidence = paper_analysis.drug.evidence
    for term in [f"drug x state | CUD ({t})" for t in TARGETS] + ["drug x state | CUD (rating)"]:
        row = evidence.loc[term]
        assert row["verdict"] == "equivalent", (term, row)
        assert row["bf01"] > 3, (term, row["bf01"])


def test_nac_no_voxelwise_cluster(paper_analysis):
    for test, table in paper_analysis.drug.clusters.items():
        assert not table["significant"].any(), (test, table.head())


def test_nac_period_effect_recovers_the_planted_habituation(paper_analysis):
    """The craving rises are planted smaller in the second session; the crossover's period rows see it
    (negative in CUD) and, on the rating's own scale, cover the planted value."""
    periods, truth = paper_analysis.drug.periods, paper_analysis.drug.truth
    assert truth["habituation_rating_cud"] < 0
    rating = periods.loc[("rating", "period | CUD")]
    assert rating["p"] < ALPHA and rating["ci_low"] <= truth["habituation_rating_cud"] <= rating["ci_high"]
    thalamus = periods.loc[("thalamus_midline", "period | CUD")]
    assert thalamus["estimate"] < 0
    for target in TARGETS:  # controls have no rise to habituate
        assert periods.loc[(target, "period | control"), "p"] > ALPHA / 10


def test_positive_control_detects_the_planted_nac_effect(nac_control_analysis):
    """NAC planted to lower both rises and the rating rise in CUD: every CUD test finds it, with its sign."""
    evidence = nac_control_analysis.evidence
    for target in TARGETS:
        row = evidence.loc[f"drug x state | CUD ({target})"]
        assert row["verdict"] == "effect" and row["estimate"] < 0 and row["bf01"] < 1 / 10, (target, row)
        # controls are untouched
        assert evidence.loc[f"drug x state | control ({target})", "verdict"] in ("equivalent", "inconclusive")
    rating = evidence.loc["drug x state | CUD (rating)"]
    assert rating["verdict"] == "effect" and rating["estimate"] < 0
    table = nac_control_analysis.clusters["drug_x_state_cud"]
    hits = table[
        table["significant"] & (table["sign"] < 0) & (table[[f"overlap_{t}" for t in TARGETS]].sum(axis=1) > 0)
    ]
    assert len(hits) >= 1, table.head()
    off = table[table["significant"] & (table[[f"overlap_{t}" for t in TARGETS]].sum(axis=1) == 0)]
    assert off.empty, off
