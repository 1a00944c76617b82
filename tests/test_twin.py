"""The cocaine ROI-level twin's constants: derived from the image simulator and the seed chapter's first level by
code, stored with the hash of that code, read by the twin, and derived again here at a small size."""

import numpy as np
import pandas as pd
import pytest

from conftest import BACLOFEN_ROI_MODEL as MODEL
from craving_circuits.simulate import baclofen_params, cocaine_params, roi_level
from craving_circuits.simulate.baclofen import CUE_ROIS
from craving_circuits.verdict import twin


def test_the_twin_reads_the_constants_derived_from_this_code():
    constants = roi_level.cocaine_twin_constants()
    assert constants["code_hash"] == twin.code_hash(), (
        "The image simulator or the first level changed since the twin's constants were derived; "
        "run `python -m craving_circuits.verdict.twin 2` and commit simulate/data/cocaine_twin.json."
    )
    assert set(constants["roi_noise"]) == {"nacc", "dlpfc", "thalamus_midline"}
    assert set(constants["run_noise_z"]) == {"dlpfc", "thalamus_midline"}
    # the defaults are the stored constants, per ROI and per target
    params = cocaine_params("tiny", seed=3)
    default = roi_level.cocaine_roi_study(params)["roi"]
    explicit = roi_level.cocaine_roi_study(
        params, constants["roi_noise"], constants["run_noise_z"], constants["nuisance_leak"]
    )["roi"]
    pd.testing.assert_frame_equal(default, explicit)
    assert 0 <= constants["nuisance_leak"] <= twin.MAX_LEAK
    # a single number is every ROI's (target's) value
    same = roi_level.cocaine_roi_study(params, 0.3, 0.18)["roi"]
    mapped = roi_level.cocaine_roi_study(params, dict.fromkeys(("nacc", "dlpfc", "thalamus_midline"), 0.3), 0.18)
    pd.testing.assert_frame_equal(same, mapped["roi"])
    with pytest.raises(ValueError, match="roi_noise"):
        roi_level.cocaine_roi_study(params, roi_noise=-1.0)
    # with its constants, the twin dilutes each coupling as the image pipeline did (within the fit's error)
    for row in constants["fit"]:
        target = row["target"]
        expected = min(row["dilution"], 1.0)
        assert abs(constants["twin_dilution"][target] - expected) < 3 * row["dilution_se"] + 0.05, target
    # and its couplings rise with the nuisance as the image pipeline's do, where a share of it can show that
    image = np.mean([row["nuisance_slope"] for row in constants["fit"]])
    se = np.sqrt(np.mean([row["nuisance_slope_se"] ** 2 for row in constants["fit"]]))
    matched = np.mean(list(constants["twin_nuisance_slope"].values()))
    assert matched == pytest.approx(image, abs=2 * se) or (constants["nuisance_leak"] == 0 and image <= matched)


def test_joint_fit_recovers_a_known_nuisance_slope_and_the_leak_search_inverts_it():
    rng = np.random.default_rng(1)
    n = 4000
    planted, nuisance = rng.normal(0.3, 0.3, n), rng.gamma(2.0, 0.05, n)
    observed = np.arctanh(np.clip(0.6 * np.tanh(planted) + 0.8 * nuisance, -0.99, 0.99)) + rng.normal(0, 0.1, n)
    pairs = pd.DataFrame({"target": "dlpfc", "planted_z": planted, "fisher_z": observed, "nuisance_var": nuisance})
    fit = twin.fit_dilution(pairs, within=None).iloc[0]
    assert fit["dilution"] == pytest.approx(0.6, abs=3 * fit["dilution_se"] + 0.01)
    assert fit["nuisance_slope"] == pytest.approx(0.8, abs=3 * fit["nuisance_slope_se"] + 0.02)
    # without the nuisance column the slope is what it was, and no nuisance columns appear
    assert "nuisance_slope" not in twin.fit_dilution(pairs.drop(columns="nuisance_var"), within=None).columns

    # the leak search: a twin whose slope grows as leak**2 is inverted; below its slope at 0, no leak; above its
    # slope at the largest leak, the largest leak
    def slope(leak):
        return 0.01 + 0.5 * leak**2

    assert twin._nuisance_leak(0.01 + 0.5 * 0.3**2, slope) == pytest.approx(0.3, abs=1e-3)
    assert twin._nuisance_leak(0.0, slope) == 0.0
    assert twin._nuisance_leak(5.0, slope) == twin.MAX_LEAK


def test_fit_recovers_a_known_dilution_and_spread():
    rng = np.random.default_rng(0)
    planted = rng.normal(0.3, 0.3, 4000)
    observed = np.arctanh(0.6 * np.tanh(planted)) + rng.normal(0, 0.2, planted.size)
    pairs = pd.DataFrame({"target": "dlpfc", "planted_z": planted, "fisher_z": observed})
    fit = twin.fit_dilution(pairs, within=None).iloc[0]
    assert fit["dilution"] == pytest.approx(0.6, abs=3 * fit["dilution_se"] + 0.01)
    assert fit["residual_var"] == pytest.approx(0.04, rel=0.1)
    # sessions with their own levels (an offset the state contrasts cancel): the slope within sessions is the same
    pairs["participant_id"], pairs["session_id"] = np.arange(planted.size) // 2, "ses-1"
    pairs["fisher_z"] += np.repeat(rng.normal(0, 0.1, planted.size // 2), 2)
    within = twin.fit_dilution(pairs).iloc[0]
    assert within["dilution"] == pytest.approx(0.6, abs=3 * within["dilution_se"] + 0.02)
    assert within["residual_var"] == pytest.approx(0.04, rel=0.15)
    assert twin.fit_dilution(pairs, within=None).iloc[0]["residual_var"] > 1.15 * within["residual_var"]  # offsets
    # noises that give dilutions 0.6 and 0.8 in the twin's model
    noise = twin._noises(pd.DataFrame({"target": ["dlpfc", "thalamus_midline"], "dilution": [0.6, 0.8]}))
    for target, k in (("dlpfc", 0.6), ("thalamus_midline", 0.8)):
        assert 1 / np.sqrt((1 + noise["nacc"] ** 2) * (1 + noise[target] ** 2)) == pytest.approx(k)


@pytest.mark.slow
def test_stored_constants_agree_with_a_fresh_small_derivation(tmp_path):
    stored = roi_level.cocaine_twin_constants()
    fresh = twin.derive_cocaine_twin(n_cud=3, n_control=3, seed=777, n_twin=5, data_dir=tmp_path)
    assert fresh["code_hash"] == stored["code_hash"] and 18 <= fresh["n_runs"] <= 24  # runs the first level keeps
    for new, old in zip(fresh["fit"], stored["fit"]):
        assert new["target"] == old["target"]
        # Monte Carlo error of both derivations: the slopes' SEs, and the SE of a variance (var * sqrt(2 / df))
        assert abs(new["dilution"] - old["dilution"]) < 3 * np.hypot(new["dilution_se"], old["dilution_se"])
        gap = abs(new["nuisance_slope"] - old["nuisance_slope"])
        assert gap < 3 * np.hypot(new["nuisance_slope_se"], old["nuisance_slope_se"])
        var_se = np.hypot(*(f["residual_var"] * np.sqrt(2 / (f["n"] - 2)) for f in (new, old)))
        assert abs(new["residual_var"] - old["residual_var"]) < 3 * var_se


def test_the_baclofen_twin_reads_its_derived_cue_constants():
    constants = roi_level.baclofen_twin_constants()
    assert constants["code_hash"] == twin.code_hash(twin.BACLOFEN_SOURCES), (
        "The baclofen simulator or the cue first level changed since the twin's cue constants were derived; "
        "run `python -m craving_circuits.verdict.twin 2` and commit simulate/data/baclofen_twin.json."
    )
    assert 0 < constants["cue_gain"] <= 1.5 and constants["cue_noise_sd"] > 0
    params = baclofen_params("paper", seed=2)
    default = roi_level.baclofen_roi_study(params, MODEL)["cue"]
    explicit = roi_level.baclofen_roi_study(params, MODEL, constants["cue_gain"], constants["cue_noise_sd"])["cue"]
    pd.testing.assert_frame_equal(default, explicit)
    table = twin.cue_table(constants)
    assert list(table["roi"]) == list(CUE_ROIS) and table["this_code"].all()


@pytest.mark.slow
def test_stored_cue_constants_agree_with_a_fresh_small_derivation(tmp_path):
    stored = roi_level.baclofen_twin_constants()
    fresh = twin.derive_baclofen_cue(n_baclofen=4, n_placebo=4, seed=778, data_dir=tmp_path)
    assert fresh["code_hash"] == stored["code_hash"]
    assert abs(fresh["cue_gain"] - stored["cue_gain"]) < 3 * np.hypot(fresh["cue_gain_se"], stored["cue_gain_se"])
    # the SD of the residuals: SE of an SD about sd / sqrt(2 df)
    se = np.hypot(*(c["cue_noise_sd"] / np.sqrt(2 * (2 * c["n_runs"] - 1)) for c in (fresh, stored)))
    assert abs(fresh["cue_noise_sd"] - stored["cue_noise_sd"]) < 3 * se
