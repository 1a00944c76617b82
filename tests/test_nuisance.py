"""The simulator's nuisance that makes denoising matter, and its threat presets.

* spikes at high-motion volumes grow with the square of the framewise displacement over a threshold and
  do not change sign with the movement (not linear in the motion estimates);
* a motion-related signal shared by nearby voxels raises short-distance correlations more than long ones;
* the global signal and the physiological noise are larger after the cue film than after the neutral one;
* the threat presets are nulls for the claims they name, and the ROI-level twin honours them.
"""

import numpy as np
import pandas as pd
import pytest

from craving_circuits.cocaine import drug, secondlevel
from craving_circuits.simulate import cocaine, roi_level
from craving_circuits.simulate.cocaine import (
    PRESETS,
    THREATS,
    build_geometry,
    cocaine_params,
    simulate_participants,
    simulate_run_data,
    simulate_runs_table,
)
from craving_circuits.simulate.signals import (
    band_limited_noise,
    correlated_sources,
    distance_artifact,
    spike_artifact,
)
from craving_circuits.stats import correlation
from craving_circuits.stats.equivalence import DRUG_SESOI_DZ
from craving_circuits.verdict import claims

# --------------------------------------------------------------------------- spikes


def _loadings(n_voxels=50, seed=0):
    return np.random.default_rng(seed).standard_normal((6, n_voxels)).astype(np.float32)


def test_spikes_only_above_the_threshold_and_quadratic_in_the_excess():
    n_t, loadings = 20, _loadings()
    fd = np.full(n_t, 0.1)
    fd[0] = np.nan
    fd[5], fd[12] = 0.8, 1.3  # 0.5 and 1.0 mm above a 0.3 mm threshold
    jumps = np.zeros((n_t, 6))
    jumps[5, 0] = jumps[12, 1] = 1.0
    art = spike_artifact(fd, jumps, loadings, threshold_mm=0.3, pct_per_mm2=2.0, tail=(1.0, 0.5))
    assert art.shape == (n_t, 50) and art.dtype == np.float32
    hit = {5, 6, 12, 13}
    assert np.all(art[[t for t in range(n_t) if t not in hit]] == 0)
    assert np.all(art[list(hit)] < 0)  # drops
    # the brain-average drop is pct * excess**2 (the pattern averages 1), the tail scales it
    np.testing.assert_allclose(-art[5].mean(), 2.0 * 0.5**2, rtol=1e-5)
    np.testing.assert_allclose(-art[12].mean(), 2.0 * 1.0**2, rtol=1e-5)
    np.testing.assert_allclose(art[13], 0.5 * art[12], rtol=1e-5)
    # twice the excess, four times the drop: not linear in the displacement
    assert art[12].mean() / art[5].mean() == pytest.approx(4.0, rel=1e-5)


def test_spike_pattern_follows_the_image_gradient_and_not_the_sign_of_the_movement():
    n_t, loadings = 4, _loadings()
    fd = np.array([np.nan, 1.0, 0.0, 1.0])
    jumps = np.zeros((n_t, 6))
    jumps[1, 2], jumps[3, 2] = 1.0, -1.0  # the same movement, back and forth
    art = spike_artifact(fd, jumps, loadings, 0.3, 1.0, tail=(1.0,))
    np.testing.assert_allclose(art[1], art[3])  # a linear artefact would flip its sign
    g = np.abs(loadings[2])
    assert np.corrcoef(-art[1], g)[0, 1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="jumps"):
        spike_artifact(fd, jumps[:3], loadings, 0.3, 1.0)


# --------------------------------------------------------------------------- distance-dependent artefact


def test_distance_artifact_is_shared_more_by_near_voxels_and_follows_abrupt_movements():
    """Voxels on a line: the artefact's correlation between two voxels falls with their distance (over many
    runs with random foci); it is zero before the first movement above the threshold and scaled by the
    displacement over it, decaying after each movement."""
    xyz = np.column_stack([np.arange(0, 100, 5.0), np.zeros(20), np.zeros(20)])
    rng = np.random.default_rng(3)
    n_t = 200
    moving = np.full(n_t, 0.1)
    moving[0] = np.nan
    moving[50:190:6] = 1.3
    near, far = [], []
    for _ in range(60):
        art = distance_artifact(rng, xyz, moving, 2.0, pct_per_mm=1.0, length_mm=15.0, n_foci=2)
        assert art.shape == (n_t, 20)
        c = np.corrcoef(art[50:].T)
        near.append(np.mean([c[i, i + 1] for i in range(19)]))  # 5 mm apart
        far.append(np.mean([c[i, i + 12] for i in range(8)]))  # 60 mm apart
    assert np.mean(near) > np.mean(far) + 0.3
    assert np.all(art[:50] == 0)  # nothing before the first movement over the threshold
    larger = moving.copy()
    larger[50:190:6] = 2.3  # twice the excess over 0.3 mm
    a = distance_artifact(np.random.default_rng(1), xyz, moving, 2.0, 1.0, 15.0)
    b = distance_artifact(np.random.default_rng(1), xyz, larger, 2.0, 1.0, 15.0)
    np.testing.assert_allclose(b, 2 * a, rtol=1e-5)
    # the envelope decays over four volumes after a movement
    envelope = np.abs(a).mean(axis=1)
    assert envelope[50] > 0 and envelope[54] == 0


# --------------------------------------------------------------------------- arousal in the images


@pytest.fixture(scope="module")
def tiny_runs():
    params = cocaine_params("tiny_null")
    runs = simulate_runs_table(simulate_participants(params), params)
    return params, runs.to_dict("records"), build_geometry(params)


def _state_twin(run, state):
    """The same run (same draws, same motion and couplings) in the other state."""
    return {**run, "state": state}


def test_global_and_physiological_noise_grow_in_the_craving_state(tiny_runs):
    """One run simulated as neutral and as craving (same draws): the white-matter mean and the whole-brain
    mean vary more in the craving state, by about the planted factors; without them nothing changes."""
    params, runs, geometry = tiny_runs
    run = next(r for r in runs if r["state"] == "neutral")
    neutral = simulate_run_data(geometry, params, run)["data"].astype(float)
    craving = simulate_run_data(geometry, params, _state_twin(run, "craving"))["data"].astype(float)
    wm = geometry.wm_index
    ratio_wm = craving[:, wm].mean(axis=1).std() / neutral[:, wm].mean(axis=1).std()
    assert 1.15 < ratio_wm < params.physio_craving_factor * 1.1
    # what the cue film adds is largest next to the ventricles (cardiac and respiratory noise, CSF)
    added = (craving - neutral).std(axis=0)
    near = geometry.cardioresp[0]
    assert added[near > np.quantile(near, 0.9)].mean() > 1.3 * added[near < np.quantile(near, 0.5)].mean()
    flat = cocaine_params("tiny_null", global_craving_factor=1.0, physio_craving_factor=1.0)
    same = simulate_run_data(geometry, flat, _state_twin(run, "craving"))["data"]
    np.testing.assert_array_equal(same, simulate_run_data(geometry, flat, run)["data"])


def test_cardiac_and_respiratory_noise_reaches_grey_matter_next_to_the_ventricles(tiny_runs):
    params, _, geometry = tiny_runs
    near_csf = geometry.cardioresp[0]
    assert geometry.cardioresp.shape == (2, geometry.mask.sum())
    assert np.all(geometry.cardioresp >= 0) and np.allclose(geometry.cardioresp.max(axis=1), 1.0)
    gm = geometry.gm > 0.5
    assert near_csf[gm].max() > 0.3  # some grey matter gets a good share of it


def test_nuisance_parameters_are_validated():
    for name, value in (
        ("spike_pct_per_mm2", -1.0),
        ("global_craving_factor", -0.5),
        ("physio_craving_factor", -0.1),
        ("distance_artifact_mm", 0.0),
        ("motion_error_mm", -0.01),
        ("nac_first_share_cud", 1.5),
    ):
        with pytest.raises(ValueError, match=name):
            cocaine_params("tiny", **{name: value})


# --------------------------------------------------------------------------- threat presets


def test_every_threat_is_a_preset_and_names_registered_claims():
    registered = {c.claim_id for c in claims.claims()}
    threat_presets = {name for name in PRESETS if name.startswith("threat_")}
    # the NAC effect at the bound is the claims of absence's error condition, built by the calibration
    assert threat_presets - set(THREATS) == {"threat_nac_at_bound"} and set(THREATS) <= threat_presets
    for name, threat in THREATS.items():
        assert set(threat["claims"]) <= registered, (name, set(threat["claims"]) - registered)
        assert threat["claims"] and isinstance(threat["threat"], str) and threat["threat"].endswith(".")
        cocaine_params(name)  # valid parameters


def test_threat_presets_are_nulls_for_their_claims():
    """Nothing that a named claim asserts is planted (the NAC bound is the null of the equivalence test)."""
    for name in ("threat_state_motion", "threat_unequal_variance"):
        effects = {e["effect"]: e["planted"] for e in cocaine.planted_effects(cocaine_params(name))}
        assert effects["craving_nacc_dlpfc_cud"] == effects["craving_nacc_thalamus_cud"] == 0.0
        assert effects["group_x_state_nacc_dlpfc"] == effects["group_x_state_nacc_thalamus"] == 0.0
    habituation = cocaine_params("threat_habituation")
    assert habituation.nac_effect == habituation.nac_rating_effect == 0.0 and habituation.habituation > 0
    orders = simulate_participants(habituation).query("group == 'CUD'")["drug_order"].value_counts()
    assert orders["NAC-placebo"] == int(np.floor(habituation.nac_first_share_cud * habituation.n_cud))
    assert orders["NAC-placebo"] > orders["placebo-NAC"]


def test_the_nac_bound_preset_has_the_chapter_bound_at_roi_level():
    """Under threat_nac_at_bound the ROI-level twin's double differences of CUD have a standardised mean of
    minus the chapter's SESOI (d_z), for both couplings; the rating's too."""
    params = [cocaine_params("threat_nac_at_bound", seed=500 + i) for i in range(40)]
    tables = roi_level.cocaine_roi_studies(params, nuisance_leak=0.0)
    dd, _ = drug.drug_differences(secondlevel.roi_state_differences(tables["roi"]), by=("target",))
    cud = dd[dd["group"] == "CUD"]
    value = "dd"
    for target, sub in cud.groupby("target"):
        d_z = sub[value].mean() / sub[value].std(ddof=1)
        se = 1 / np.sqrt(len(sub))
        assert d_z == pytest.approx(-DRUG_SESOI_DZ, abs=3 * se + 0.05), target
    effects = cocaine.nac_effect_at_bound()
    assert effects["nac_effect"] < 0 and effects["nac_rating_effect"] < 0
    assert cocaine.nac_effect_at_bound(2 * DRUG_SESOI_DZ)["nac_effect"] < effects["nac_effect"]


def test_unequal_variance_preset_doubles_the_spread_of_the_cud_state_change_at_roi_level():
    params = [cocaine_params("threat_unequal_variance", seed=700 + i) for i in range(20)]
    tables = roi_level.cocaine_roi_studies(params, nuisance_leak=0.0)
    changes = secondlevel.roi_state_differences(tables["roi"])
    per = changes.groupby(["replicate", "group", "target", "participant_id"])["delta"].mean().reset_index()
    value = "delta"
    sd = per.groupby(["replicate", "group", "target"])[value].std().unstack("group")
    ratio = (sd["CUD"] / sd["control"]).groupby("target").median()
    assert ((ratio > 1.7) & (ratio < 2.3)).all(), ratio
    means = per.groupby("group")[value].mean()
    assert abs(means["CUD"] - means["control"]) < 0.05


def test_the_roi_level_twin_carries_the_state_dependent_nuisance():
    """With no denoising left to do (leak 0) the twin is the old one; with the nuisance leaking, the craving
    runs' couplings rise in both groups, more under the state-motion threat than under null."""
    base = cocaine_params("null", seed=11)
    a = roi_level.cocaine_roi_study(base, nuisance_leak=0.0)["roi"]
    b = roi_level.cocaine_roi_study(base, nuisance_leak=0.0)["roi"]
    pd.testing.assert_frame_equal(a, b)

    def rise(preset, leak, n=15):
        params = [cocaine_params(preset, seed=900 + i) for i in range(n)]
        roi = roi_level.cocaine_roi_studies(params, nuisance_leak=leak)["roi"]
        return secondlevel.roi_state_differences(roi)["delta"].mean()

    assert abs(rise("null", 0.0)) < 0.02
    assert rise("null", 1.0) > 0.03
    assert rise("threat_state_motion", 1.0) > rise("null", 1.0) + 0.03
    sd = roi_level.shared_nuisance_sd(base, simulate_runs_table(simulate_participants(base), base), 1.0)
    assert sd.shape == (4 * base.n_participants,) and np.all(sd > 0)


def test_the_twins_shared_nuisance_is_added_run_by_run():
    """The twin with its nuisance equals the run-by-run sum: sources mixed by their Cholesky factor, ROI noise,
    and the run's shared series times its SD (:func:`roi_level.shared_nuisance_sd`) in all three ROI signals."""
    params = cocaine_params("threat_state_motion", n_cud=3, n_control=3)
    runs = simulate_runs_table(simulate_participants(params), params)
    n_t, t_r, leak = params.n_volumes, params.repetition_time, 0.7
    rng = np.random.default_rng([params.seed, 31])
    series = band_limited_noise(rng, n_t, 6 * len(runs), t_r)
    errors = cocaine.ROI_LEVEL_MEASUREMENT["run_noise_z"] * rng.standard_normal((len(runs), 2))
    shared = band_limited_noise(np.random.default_rng([params.seed, 32]), n_t, len(runs), t_r)
    sd = roi_level.shared_nuisance_sd(params, runs, leak)
    expected = []
    for i, run in enumerate(runs.itertuples(index=False)):
        c = roi_level.run_correlations(np.array([run.fc_nacc_dlpfc]), np.array([run.fc_nacc_thalamus]))[0]
        block = series[:, 6 * i : 6 * i + 6]
        signals = correlated_sources(rng, c, n_t, t_r, independent=block[:, :3])
        signals = signals + cocaine.ROI_LEVEL_MEASUREMENT["roi_noise"] * block[:, 3:] + sd[i] * shared[:, i : i + 1]
        z = correlation.fisher_z(correlation.correlate_columns(signals[:, 0], signals[:, 1:]))
        expected.extend(z + errors[i])
    roi = roi_level.cocaine_roi_study(
        params,
        roi_noise=cocaine.ROI_LEVEL_MEASUREMENT["roi_noise"],
        run_noise_z=cocaine.ROI_LEVEL_MEASUREMENT["run_noise_z"],
        nuisance_leak=leak,
    )["roi"]
    np.testing.assert_allclose(roi["fisher_z"], expected, rtol=1e-10, atol=1e-10)
    # craving runs carry more of it (arousal, motion), CUD more than controls
    craving = (runs["state"] == "craving").to_numpy()
    assert sd[craving].mean() > 1.3 * sd[~craving].mean()
