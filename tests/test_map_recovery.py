"""Measured maps against a simulated study's true maps (verdict.planted.truth_maps, map_recovery): the
true maps read from the ground-truth folder in the order of the runs, and bias and correlations exact on
hand-made maps."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from craving_circuits.io.files import write_json, write_nifti, write_tsv
from craving_circuits.io.schemas import MAP_RECOVERY_COLUMNS
from craving_circuits.verdict import planted

SESSIONS = ("ses-T1", "ses-T2")


@pytest.fixture()
def study(tmp_path):
    """Five participants, two sessions, true CBF maps on a 5^3 grid (NaN in one corner voxel)."""
    rng = np.random.default_rng(0)
    mask = np.zeros((5, 5, 5), bool)
    mask[1:4, 1:4, 1:4] = True
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    sim = tmp_path / "derivatives" / "simulation"
    rows, true = [], {}
    for i in range(5):
        for session in SESSIONS:
            pid = f"sub-{i + 1:02d}"
            vol = np.full(mask.shape, np.nan, np.float32)
            vol[mask] = rng.normal(50, 10, mask.sum())
            vol[1, 1, 1] = np.nan  # outside the simulator's brain, inside the analysis mask
            name = f"{pid}/{session}/{pid}_{session}_desc-true_cbf.nii.gz"
            write_nifti(sim / name, nib.Nifti1Image(vol, affine))
            rows.append({"participant_id": pid, "session_id": session, "true_cbf_map": name})
            true[(pid, session)] = vol[mask]
    write_tsv(sim / "ground_truth_sessions.tsv", pd.DataFrame(rows))
    write_json(sim / "ground_truth.json", {"effects": [], "files": {"sessions": "ground_truth_sessions.tsv"}})
    return tmp_path, nib.Nifti1Image(mask.astype(np.uint8), affine), true


def test_truth_maps_in_the_order_of_the_runs_and_errors(study, tmp_path):
    root, mask_img, true = study
    runs = pd.DataFrame(
        {"participant_id": ["sub-03", "sub-01", "sub-03"], "session_id": ["ses-T2", "ses-T1", "ses-T1"]}
    )
    maps = planted.truth_maps(root, runs, "cbf", mask_img)
    assert maps.shape == (3, 27)
    for row, (pid, session) in enumerate(zip(runs["participant_id"], runs["session_id"])):
        np.testing.assert_array_equal(maps[row], true[(pid, session)])
    assert np.isnan(maps[:, 0]).all() and np.isfinite(maps[:, 1:]).all()
    with pytest.raises(ValueError, match="Unknown kind"):
        planted.truth_maps(root, runs, "bold", mask_img)
    with pytest.raises(ValueError, match="no column 'true_cue_map'"):
        planted.truth_maps(root, runs, "cue", mask_img)
    with pytest.raises(ValueError, match="sub-09"):
        planted.truth_maps(
            root, pd.DataFrame({"participant_id": ["sub-09"], "session_id": ["ses-T1"]}), "cbf", mask_img
        )
    other = nib.Nifti1Image(np.ones((5, 5, 6), np.uint8), mask_img.affine)
    with pytest.raises(ValueError, match="not on the grid"):
        planted.truth_maps(root, runs, "cbf", other)
    # real data: no ground truth, no maps, an empty table
    assert planted.truth_maps(tmp_path / "elsewhere", runs, "cbf", mask_img) is None
    empty = planted.map_recovery(np.zeros((3, 27)), None, runs, mask_img)
    assert empty.empty and list(empty.columns) == MAP_RECOVERY_COLUMNS


def test_bias_and_correlations_exact_by_hand(study):
    root, mask_img, _ = study
    runs = pd.DataFrame(
        [(f"sub-{i + 1:02d}", s) for i in range(5) for s in SESSIONS], columns=["participant_id", "session_id"]
    )
    true = planted.truth_maps(root, runs, "cbf", mask_img)
    offsets = np.array([-3.0, -1.0, 0.5, -2.0, -4.5])  # one per participant, both sessions
    scale = 0.8
    measured = scale * true + np.repeat(offsets, 2)[:, None]
    measured[:, 0] = 1e6  # where the truth is undefined: ignored
    region = np.zeros(mask_img.shape, bool)
    region[2, 1:4, 1:4] = True  # 9 voxels
    table = planted.map_recovery(measured, true, runs, mask_img, {"slab": region}, unit="ml/100 g/min")
    assert list(table.columns) == MAP_RECOVERY_COLUMNS
    assert table["region"].unique().tolist() == ["brain", "slab"]
    t = table[table["region"] == "slab"].set_index("term")
    inside = np.asarray(region)[np.asarray(mask_img.dataobj) > 0]
    m, tr = measured[:, inside], true[:, inside]
    bias = (m.mean(axis=1) - tr.mean(axis=1)).reshape(5, 2).mean(axis=1)
    expected = stats.ttest_1samp(bias, 0.0)
    row = t.loc["bias (ml/100 g/min)"]
    assert row["n"] == 5 and row["estimate"] == pytest.approx(bias.mean(), rel=1e-12)
    assert row["se"] == pytest.approx(bias.std(ddof=1) / np.sqrt(5), rel=1e-12)
    assert row["p"] == pytest.approx(expected.pvalue, rel=1e-9)
    ci = expected.confidence_interval(0.95)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-9)
    level = tr.mean(axis=1).reshape(5, 2).mean(axis=1).mean()
    assert t.loc["bias (%)", "estimate"] == pytest.approx(100 * bias.mean() / level, rel=1e-12)
    assert t.loc["bias (%)", "p"] == row["p"]
    # a scale and an offset per run: r = 1 across voxels (capped just below 1 by the Fisher z)
    assert t.loc["r across voxels", "estimate"] == pytest.approx(1.0, abs=1e-6)
    for session in SESSIONS:
        one = runs["session_id"] == session
        r = np.corrcoef(m[one].mean(axis=1), tr[one].mean(axis=1))[0, 1]
        got = t.loc[f"r across participants ({session})"]
        assert got["estimate"] == pytest.approx(r, rel=1e-12) and got["n"] == 5
        assert got["p"] == pytest.approx(stats.pearsonr(m[one].mean(axis=1), tr[one].mean(axis=1)).pvalue, rel=1e-8)
        ci = stats.pearsonr(m[one].mean(axis=1), tr[one].mean(axis=1)).confidence_interval(0.95)
        assert (got["ci_low"], got["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-8)
    # the changes: the offsets cancel, so measured change = 0.8 x true change
    assert t.loc["r across participants (ses-T2 - ses-T1)", "estimate"] == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="do not match"):
        planted.map_recovery(measured[:4], true, runs, mask_img)
    with pytest.raises(ValueError, match="no voxel"):
        planted.map_recovery(measured, true, runs, mask_img, {"none": np.zeros(mask_img.shape, bool)})
    with pytest.raises(ValueError, match="No region"):
        planted.map_recovery(measured, true, runs, mask_img, whole_brain=False)
