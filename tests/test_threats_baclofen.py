"""Threats to the baclofen claims, as simulator conditions: what each test does under them (ROI level)."""

import numpy as np
import pandas as pd
import pingouin as pg
from statsmodels.stats.proportion import proportion_confint

from conftest import BACLOFEN_ROI_MODEL as MODEL
from craving_circuits.baclofen import cue, perfusion
from craving_circuits.simulate import baclofen_params, roi_level
from craving_circuits.stats.correlation import partial_correlation

ALPHA = 0.05


def _fires(n_sims: int, **overrides) -> dict[str, int]:
    """How often the pooled and the group-adjusted association fire (negative, p < ALPHA) in the insula."""
    counts = {"pooled": 0, "within groups": 0}
    for i in range(n_sims):
        params = baclofen_params("paper", seed=5000 + i, **overrides)
        tables = roi_level.baclofen_roi_study(params, MODEL)
        dlpfc = perfusion.participant_change(tables["cbf"])
        cue_change = perfusion.participant_change(tables["cue"], "value", by=("roi",))
        for name, within in (("pooled", False), ("within groups", True)):
            row = cue.roi_associations(cue_change, dlpfc, n_boot=20, rng=i, within_groups=within).iloc[0]
            counts[name] += bool(row["p"] < ALPHA and row["estimate"] < 0)
    return counts


def test_a_direct_drug_effect_on_the_cue_response_fakes_only_the_pooled_association():
    """No link of the CBF rise with the cue response (cue_dlpfc_coupling 0), but baclofen lowers the cue
    response by another route: the pooled correlation reads the group difference as an association;
    the association within groups, the book's test, keeps its level."""
    n_sims = 300
    counts = _fires(n_sims, cue_dlpfc_coupling=0.0, baclofen_cue_effect=-0.4)
    assert counts["pooled"] / n_sims > 0.5, counts
    # one-sided test at ALPHA: expected rate ALPHA / 2; the upper 99 % bound must stay under ALPHA
    low, high = proportion_confint(counts["within groups"], n_sims, alpha=0.02, method="beta")
    assert high < 0.075, counts
    # the planted link itself is still found within groups
    found = _fires(40, baclofen_cue_effect=-0.4)
    assert found["within groups"] / 40 > 0.8, found


def test_partial_correlation_matches_residual_correlation_and_pingouin():
    rng = np.random.default_rng(0)
    n = 43
    group = (np.arange(n) < 21).astype(float)
    x = 10 * group + rng.normal(0, 5, n)
    y = -0.3 * group - 0.02 * x + rng.normal(0, 0.2, n)
    ours = partial_correlation(x, y, group, n_boot=500, rng=1)
    theirs = pg.partial_corr(pd.DataFrame({"x": x, "y": y, "g": group}), "x", "y", covar="g")
    assert np.isclose(ours["estimate"], theirs["r"].iloc[0], rtol=1e-10)
    assert np.isclose(ours["p"], theirs["p-val"].iloc[0], rtol=1e-8) and ours["df"] == n - 3
    assert ours["ci_low"] < ours["estimate"] < ours["ci_high"]


def test_a_drug_effect_on_global_cbf_is_seen_and_moves_the_adjusted_dlpfc_result():
    """Baclofen raises CBF everywhere by 15 % and nothing in the dlPFC in particular. The unadjusted
    dlPFC test reports a rise (true, but not specific); the global change test shows the group
    difference that makes a regional claim unspecific; the adjusted test's estimate moves by the
    baseline difference f (b_dlPFC - b_global), here below zero (the ROI's baseline is under the
    global mean), so the adjustment manufactures a fall rather than hiding the rise."""
    f, n_sims = 0.15, 100
    fired = {"unadjusted": 0, "adjusted": 0, "global": 0}
    adjusted_estimates = []
    for i in range(n_sims):
        params = baclofen_params("paper", seed=7000 + i, dlpfc_cbf_rise=0.0, baclofen_global_cbf=f)
        tables = roi_level.baclofen_roi_study(params, MODEL)
        raw = tables["cbf_unadjusted"]
        unadjusted = perfusion.group_by_time_welch(raw).iloc[0]
        adjusted = perfusion.group_by_time_welch(tables["cbf"]).iloc[0]
        global_test = perfusion.global_change_test(raw, "global_cbf").iloc[0]
        fired["unadjusted"] += bool(unadjusted["p"] < ALPHA and unadjusted["estimate"] > 0)
        fired["adjusted"] += bool(adjusted["p"] < ALPHA and adjusted["estimate"] > 0)
        fired["global"] += bool(global_test["p"] < ALPHA and global_test["estimate"] > 0)
        adjusted_estimates.append(adjusted["estimate"])
    assert fired["unadjusted"] / n_sims > 0.5 and fired["global"] / n_sims > 0.9, fired
    # the adjusted estimate is centred on f (b_dlPFC - b_global), not on zero
    expected = f * (MODEL.dlpfc_base - MODEL.gm_base)
    mean, se = np.mean(adjusted_estimates), np.std(adjusted_estimates, ddof=1) / np.sqrt(n_sims)
    assert abs(mean - expected) < 4 * se and expected < -3 * se, (mean, se, expected)
    assert fired["adjusted"] / n_sims < 0.05, fired  # no spurious rise; the bias goes the other way here
