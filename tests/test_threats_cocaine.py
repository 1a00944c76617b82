"""Threats to the cocaine claims, as simulator conditions: what each test does under them (ROI level)."""

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from craving_circuits.cocaine import chapters, drug, secondlevel
from craving_circuits.simulate import cocaine_params, roi_level

ALPHA = 0.05
TERM = "drug x state | CUD (thalamus_midline)"


def _unbalanced(fc_changes, participants, keep_second=3):
    """In each replicate, exclude all but ``keep_second`` CUD participants who took NAC second (a dropout
    pattern by order)."""
    late = participants[(participants["group"] == "CUD") & (participants["drug_order"] == "placebo-NAC")]
    excluded = late.groupby("replicate").tail(-keep_second)[["replicate", "participant_id"]]
    keys = fc_changes.merge(excluded.assign(_excluded=True), on=["replicate", "participant_id"], how="left")
    return fc_changes[keys["_excluded"].isna().to_numpy()]


def _studies(n_sims, first_seed, **overrides):
    """``n_sims`` ROI-level studies of the paper preset, stacked (seeds ``first_seed + i``)."""
    return roi_level.cocaine_roi_studies(
        [cocaine_params("paper", seed=first_seed + i, **overrides) for i in range(n_sims)]
    )


def _nac_rows(n_sims, habituation, unbalance):
    tables = _studies(n_sims, 7000, habituation=habituation)
    fc = secondlevel.roi_state_differences(tables["roi"])
    if unbalance:
        fc = _unbalanced(fc, tables["participants"])
    cud = fc[(fc["group"] == "CUD") & (fc["target"] == "thalamus_midline")]
    rows = {"rise": cud.groupby("replicate")["delta"].mean().to_numpy()}
    dd, _ = drug.drug_differences(fc, by=("target",))
    for name, period in (("with period", True), ("without period", False)):
        evidence = drug.drug_evidence(dd, by="target", period=period)
        picked = evidence[evidence["term"] == TERM].sort_values("replicate")
        assert len(picked) == n_sims
        rows[name] = picked[["estimate", "p"]].to_numpy(dtype=float)
    return rows


def test_habituation_with_unbalanced_order_biases_the_drug_contrast_only_without_the_period_term():
    """NAC does nothing, the craving rises habituate by half in the second session, and dropouts leave
    9 CUD participants who took NAC first against 3 who took it second. The plain mean of the double
    differences then credits NAC with the habituation; the period-adjusted contrast is unbiased and
    keeps its level.

    With 9 participants in the first order and 3 in the second the plain mean is ``tau - pi / 2``, ``pi``
    the period effect: minus the habituation times the first session's rise, which the mean rise over
    both sessions gives as ``rise / (1 - h / 2)``."""
    n_sims, h = 200, 0.5
    rows = _nac_rows(n_sims, habituation=h, unbalance=True)
    naive, adjusted = rows["without period"], rows["with period"]
    expected_bias = h * np.mean(rows["rise"]) / (1 - h / 2) / 2
    mc_se = naive[:, 0].std(ddof=1) / np.sqrt(n_sims)
    assert expected_bias > 5 * mc_se
    assert naive[:, 0].mean() == pytest.approx(expected_bias, abs=4 * mc_se)
    mc_se = adjusted[:, 0].std(ddof=1) / np.sqrt(n_sims)
    assert abs(adjusted[:, 0].mean()) < 3 * mc_se, adjusted[:, 0].mean()
    low, high = proportion_confint(int((adjusted[:, 1] < ALPHA).sum()), n_sims, alpha=0.01, method="beta")
    assert low <= ALPHA <= high, (adjusted[:, 1] < ALPHA).mean()


def test_balanced_order_the_period_term_removes_habituation_from_the_error():
    """With both orders equally large both contrasts are unbiased, but habituation adds to the spread of
    the plain double differences: the period-adjusted SE is smaller."""
    params = cocaine_params("paper", habituation=0.5)
    tables = roi_level.cocaine_roi_study(params)
    dd, _ = drug.drug_differences(secondlevel.roi_state_differences(tables["roi"]), by=("target",))
    with_period = drug.drug_evidence(dd, by="target", period=True).set_index("term")
    without = drug.drug_evidence(dd, by="target", period=False).set_index("term")
    assert with_period.loc[TERM, "se"] < without.loc[TERM, "se"]
    # balanced: the two estimates coincide
    assert with_period.loc[TERM, "estimate"] == pytest.approx(without.loc[TERM, "estimate"], abs=1e-12)


def test_the_period_effect_recovers_the_planted_habituation():
    """The period row of the NAC chapter estimates the habituation of the thalamic rise (negative) and of
    the rating; without habituation it is null."""
    estimates = {}
    for habituation in (0.0, 0.5):
        tables = _studies(30, 9000, habituation=habituation)
        periods = chapters.nac_tests(secondlevel.roi_state_differences(tables["roi"]), tables["ratings"])["periods"]
        rows = periods[periods["term"] == "period | CUD"].pivot(index="replicate", columns="outcome", values="estimate")
        estimates[habituation] = rows[["thalamus_midline", "rating"]].to_numpy()
    null, planted = estimates[0.0], estimates[0.5]
    assert np.all(np.abs(null.mean(axis=0)) < 3 * null.std(axis=0, ddof=1) / np.sqrt(30))
    assert np.all(planted.mean(axis=0) < -5 * planted.std(axis=0, ddof=1) / np.sqrt(30))
    # the rating's habituation is half its planted rise of 25 VAS points
    assert planted[:, 1].mean() == pytest.approx(-0.5 * 25.0, abs=2.0)


def test_a_single_order_is_refused_with_the_period_adjustment():
    tables = roi_level.cocaine_roi_study(cocaine_params("tiny"))
    fc = secondlevel.roi_state_differences(tables["roi"])
    order = tables["participants"].set_index("participant_id")["drug_order"]
    fc = fc[fc["participant_id"].map(order) == "NAC-placebo"]
    dd, _ = drug.drug_differences(fc, by=("target",))
    with pytest.raises(ValueError, match="needs both orders"):
        drug.drug_evidence(dd, by="target")
    # without it the test runs, and is what the user asked for
    assert len(drug.drug_evidence(dd, by="target", period=False))
