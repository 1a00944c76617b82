"""Threats to the baclofen claims, as simulator conditions: what each test does under them (ROI level)."""

import dataclasses

import nibabel as nib
import numpy as np
import pandas as pd
import pingouin as pg
import pytest
from scipy import ndimage
from statsmodels.stats.proportion import proportion_confint

from conftest import BACLOFEN_ROI_MODEL as MODEL
from craving_circuits.baclofen import cue, perfusion
from craving_circuits.simulate import BACLOFEN_PRESETS, baclofen_params, roi_level
from craving_circuits.simulate import baclofen as baclofen_sim
from craving_circuits.simulate.baclofen import THREATS, simulate_baclofen_participants
from craving_circuits.stats import voxelwise
from craving_circuits.stats.correlation import partial_correlation
from craving_circuits.verdict import claims

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


def _smooth_maps(rng, n, mask, sigma=1.0):
    """(n, n_voxels) spatially smooth Gaussian noise of unit variance over ``mask``."""
    vol = ndimage.gaussian_filter(rng.standard_normal((n, *mask.shape)), (0, sigma, sigma, sigma))
    values = vol[:, mask]
    return values / values.std(axis=0, keepdims=True)


def test_voxelwise_association_under_a_direct_drug_effect_fires_only_when_pooled():
    """Voxelwise twin of the ROI test above, on synthetic maps: the cue-change maps are lower under
    baclofen everywhere (a direct drug effect) and the dlPFC CBF change is higher under baclofen, with no
    association within either group. The pooled covariate test reads the group difference as an
    association; with group as a nuisance (Freedman-Lane) the test keeps its family-wise level."""
    rng = np.random.default_rng(12)
    mask = np.zeros((9, 9, 9), bool)
    mask[1:-1, 1:-1, 1:-1] = True
    mask_img = nib.Nifti1Image(mask.astype(np.uint8), np.eye(4))
    group = np.array(["baclofen"] * 21 + ["placebo"] * 22)
    table = pd.DataFrame({"participant_id": [f"sub-{i:02d}" for i in range(43)], "group": group})
    baclofen = (group == "baclofen").astype(float)
    n_sims, fired = 60, {"pooled": 0, "within groups": 0}
    for i in range(n_sims):
        cue_change = _smooth_maps(rng, 43, mask) - 1.0 * baclofen[:, None]
        dlpfc_change = pd.Series(rng.normal(0, 1, 43) + 2.0 * baclofen, index=table["participant_id"])
        for name, nuisance in (("pooled", None), ("within groups", "group")):
            result, _, _ = voxelwise.covariate_test(
                cue_change, table, dlpfc_change, mask_img, group=None, nuisance=nuisance, n_perm=100, rng=i
            )
            fired[name] += bool((result.clusters["p_fwe_size"] < ALPHA).any())
    assert fired["pooled"] / n_sims > 0.8, fired
    low, high = proportion_confint(fired["within groups"], n_sims, alpha=0.01, method="beta")
    assert low <= ALPHA <= high, fired


def test_voxelwise_group_by_time_under_a_global_drug_effect():
    """Voxelwise twin of the global-CBF test above, on synthetic maps: baclofen scales CBF everywhere by
    ``1 + f`` and changes nothing regionally. Unadjusted, the group x time test reports a rise almost
    everywhere (true, but not regional). The chapter's voxelwise adjustment is an ANCOVA with a slope on
    the global change per voxel, not a subtraction: a change proportional to the global one is absorbed
    whatever the voxel's baseline, so no regional effect is manufactured (unlike the subtraction of the
    ROI values above) and the test keeps its level. The price is the converse: a regional effect that
    moves with the global change is absorbed with it."""
    rng = np.random.default_rng(5)
    mask = np.zeros((12, 8, 8), bool)
    mask[1:-1, 1:-1, 1:-1] = True
    mask_img = nib.Nifti1Image(mask.astype(np.uint8), np.eye(4))
    coords = np.argwhere(mask)
    baseline = np.where(coords[:, 0] < 6, 60.0, 20.0)  # "grey" half and "white" half
    group = np.array(["baclofen"] * 21 + ["placebo"] * 22)
    table = pd.DataFrame({"participant_id": [f"sub-{i:02d}" for i in range(43)], "group": group})
    baclofen = (group == "baclofen").astype(float)
    f, n_sims = 0.15, 40
    fired = {"unadjusted, widespread rise": 0, "adjusted, any cluster": 0}
    for i in range(n_sims):
        scale = 1 + rng.normal(0, 0.05, 43) + f * baclofen  # session-to-session global change
        change = (scale - 1)[:, None] * baseline[None] + 3.0 * _smooth_maps(rng, 43, mask)
        global_change = change.mean(axis=1)
        unadjusted = perfusion.group_by_time_test(change, table, mask_img, n_perm=100, rng=i)
        hits = unadjusted.clusters[(unadjusted.clusters["p_fwe_size"] < ALPHA) & (unadjusted.clusters["sign"] > 0)]
        fired["unadjusted, widespread rise"] += bool((hits["size"] > 0.5 * mask.sum()).any())
        adjusted = perfusion.group_by_time_test(change, table, mask_img, covariate=global_change, n_perm=100, rng=i)
        fired["adjusted, any cluster"] += bool((adjusted.clusters["p_fwe_size"] < ALPHA).any())
    assert fired["unadjusted, widespread rise"] >= 0.9 * n_sims, fired
    low, high = proportion_confint(fired["adjusted, any cluster"], n_sims, alpha=0.01, method="beta")
    assert low <= ALPHA <= high, fired
    # the drug's global change itself is what the chapter's global change test reports
    runs = pd.DataFrame(
        [
            {"participant_id": pid, "group": g, "session_id": s, "mean_gm_cbf": 50.0 * (c if s == "ses-T2" else 1.0)}
            for pid, g, c in zip(table["participant_id"], group, scale)
            for s in ("ses-T1", "ses-T2")
        ]
    )
    row = perfusion.global_change_test(runs).iloc[0]
    assert row["estimate"] > 0 and row["p"] < ALPHA


def test_threat_presets_are_nulls_with_one_threat_and_name_registered_claims():
    null = baclofen_params("null")
    registered = {c.claim_id for c in claims.claims("baclofen")}
    assert set(THREATS) == {name for name in BACLOFEN_PRESETS if name.startswith("threat_")}
    for name, threat in THREATS.items():
        assert threat["claims"] and set(threat["claims"]) <= registered, (name, threat["claims"])
        assert isinstance(threat["threat"], str) and threat["threat"].endswith(".")
        params = baclofen_params(name)
        changed = {
            field.name
            for field in dataclasses.fields(params)
            if field.name != "preset" and getattr(params, field.name) != getattr(null, field.name)
        }
        assert 1 <= len(changed) <= 2, (name, changed)  # the threat (and, for the direct effect, the rise)
        assert params.cue_dlpfc_coupling == 0.0 and params.baclofen_craving_effect == 0.0
    assert baclofen_params("threat_direct_cue").baclofen_cue_effect < 0
    assert baclofen_params("threat_mediation_partial_null").dlpfc_cbf_rise > 0
    assert baclofen_params("threat_global_cbf").baclofen_global_cbf > 0
    assert baclofen_params("threat_global_cbf").dlpfc_cbf_rise == 0
    assert baclofen_params("threat_unequal_variance").baclofen_change_sd_ratio == 2.0


def _changes(tables: dict) -> dict[str, pd.DataFrame]:
    """Per participant T2 - T1 changes of the ROI-level tables: dlPFC CBF, cue (per ROI) and craving."""
    craving = cue.cue_craving(tables["ratings"], tables["participants"])
    craving_change = perfusion.participant_change(craving, "craving_rise")
    return {
        "cbf": perfusion.participant_change(tables["cbf"]),
        "cue": perfusion.participant_change(tables["cue"], "value", by=("roi",)),
        "craving": craving_change,
    }


def test_roi_twin_honours_every_threat_parameter():
    """Large groups, so the planted spread and means show in the ROI-level twin's changes."""
    size = dict(n_baclofen=1500, n_placebo=1500, seed=3)
    null = _changes(roi_level.baclofen_roi_study(baclofen_params("null", **size), MODEL))
    spread = _changes(roi_level.baclofen_roi_study(baclofen_params("threat_unequal_variance", **size), MODEL))

    def by_group(table, stat):
        return table.groupby("group")["change"].agg(stat)

    for what in ("cbf", "craving"):
        sd = by_group(spread[what], "std")
        sd_null = by_group(null[what], "std")
        assert sd["baclofen"] / sd["placebo"] > 1.5, (what, sd)  # placebo's and T1's spread stay
        assert abs(sd_null["baclofen"] / sd_null["placebo"] - 1) < 0.1, (what, sd_null)
        assert abs(sd["placebo"] / sd_null["placebo"] - 1) < 0.1
        mean = by_group(spread[what], "mean")
        assert abs(mean["baclofen"] - mean["placebo"]) < 4 * np.hypot(sd["baclofen"], sd["placebo"]) / np.sqrt(1500)
    # the dlPFC rise's own spread is exactly doubled: the participants are the image simulator's
    people = simulate_baclofen_participants(baclofen_params("threat_unequal_variance", **size))
    people_null = simulate_baclofen_participants(baclofen_params("null", **size))
    doubled = people["group"] == "baclofen"
    np.testing.assert_allclose(people.loc[doubled, "dlpfc_rise"], 2 * people_null.loc[doubled, "dlpfc_rise"])
    np.testing.assert_array_equal(people.loc[~doubled, "dlpfc_rise"], people_null.loc[~doubled, "dlpfc_rise"])
    # a direct drug effect moves the baclofen group's cue change by gain x ROI weight x c'
    direct = _changes(roi_level.baclofen_roi_study(baclofen_params("threat_direct_cue", **size), MODEL))
    c_prime = baclofen_params("threat_direct_cue").baclofen_cue_effect
    for roi, weight in MODEL.cue_weights.items():
        cue_change = direct["cue"][direct["cue"]["roi"] == roi]
        diff = by_group(cue_change, "mean")
        assert diff["baclofen"] - diff["placebo"] == pytest.approx(
            roi_level.baclofen_twin_constants()["cue_gain"] * weight * c_prime, abs=0.02
        ), roi
    # the partial null: the dlPFC rise is there under baclofen, the cue change does not follow it
    partial = _changes(roi_level.baclofen_roi_study(baclofen_params("threat_mediation_partial_null", **size), MODEL))
    rise = by_group(partial["cbf"], "mean")
    expected = baclofen_params("threat_mediation_partial_null").dlpfc_cbf_rise * MODEL.dlpfc_weight
    assert rise["baclofen"] - rise["placebo"] == pytest.approx(expected, rel=0.1)
    cue_means = by_group(partial["cue"], "mean")
    assert abs(cue_means["baclofen"] - cue_means["placebo"]) < 0.02
    # the global effect raises the baclofen group's global CBF at T2 by the planted fraction
    raw = roi_level.baclofen_roi_study(baclofen_params("threat_global_cbf", **size), MODEL)["cbf_unadjusted"]
    g = raw.pivot_table(index=["participant_id", "group"], columns="session_id", values="global_cbf").reset_index()
    ratio = (g["ses-T2"] / g["ses-T1"]).groupby(g["group"]).mean()
    assert ratio["baclofen"] / ratio["placebo"] == pytest.approx(1.15, abs=0.01)


def test_image_simulator_widens_only_the_baclofen_groups_t2_fluctuations():
    """true_cbf, which the images are made from: with the same draws, the baclofen group's T2 regional
    variation and session fluctuation are twice as wide; T1 and placebo are unchanged."""
    null = baclofen_params("tiny_null")
    threat = baclofen_params("tiny_null", baclofen_change_sd_ratio=2.0)
    maps = baclofen_sim._Maps(null)
    people = simulate_baclofen_participants(null).assign(dlpfc_rise=0.0)
    for p in people.iloc[:4].itertuples(index=False):
        for session in ("ses-T1", "ses-T2"):
            a, scale_a = baclofen_sim.true_cbf(maps, p, session, null, np.random.default_rng(1), with_scale=True)
            b, scale_b = baclofen_sim.true_cbf(maps, p, session, threat, np.random.default_rng(1), with_scale=True)
            factor = 2.0 if (session == "ses-T2" and p.group == "baclofen") else 1.0
            np.testing.assert_allclose(b - maps.cbf_base * scale_b, factor * (a - maps.cbf_base * scale_a), atol=1e-3)
            session_a = scale_a / (1 + p.cbf_global) - 1
            assert scale_b / (1 + p.cbf_global) - 1 == pytest.approx(factor * session_a)
