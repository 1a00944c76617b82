"""Group level: exact state contrasts, smoothing as nilearn, test wiring, cluster tables."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from nilearn.image import smooth_img
from scipy import stats
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from craving_circuits.cocaine import secondlevel
from craving_circuits.stats import contrasts, permutation, voxelwise

AFFINE = np.diag([4.0, 4.0, 4.0, 1.0])


def _runs(rows):
    return pd.DataFrame(rows, columns=["participant_id", "group", "session_id", "drug", "state"])


def test_state_difference_maps_exact_and_listed_exclusions():
    runs = _runs(
        [
            ("sub-01", "CUD", "ses-1", "placebo", "neutral"),
            ("sub-01", "CUD", "ses-1", "placebo", "craving"),
            ("sub-01", "CUD", "ses-2", "NAC", "craving"),
            ("sub-01", "CUD", "ses-2", "NAC", "neutral"),
            ("sub-02", "control", "ses-1", "NAC", "craving"),  # its neutral run is missing
            ("sub-02", "control", "ses-2", "placebo", "neutral"),
            ("sub-02", "control", "ses-2", "placebo", "craving"),
        ]
    )
    maps = np.array([[0, 0], [1, 2], [5, 5], [1, 1], [9, 9], [2, 2], [3, 5]], dtype=float)
    diff, table, excl = secondlevel.state_difference_maps(runs, maps)
    assert table.to_dict("list") == {
        "participant_id": ["sub-01", "sub-02"],
        "group": ["CUD", "control"],
        "n_sessions": [2, 1],
    }
    np.testing.assert_allclose(diff, [[(1 + 4) / 2, (2 + 4) / 2], [1, 3]])
    assert excl[["participant_id", "session_id", "state", "stage"]].values.tolist() == [
        ["sub-02", "ses-1", "neutral", "second level"]
    ]
    placebo, table_p, excl_p = secondlevel.state_difference_maps(runs, maps, sessions="placebo")
    np.testing.assert_allclose(placebo, [[1, 2], [1, 3]])
    assert set(excl_p["reason"].str.contains("restricted to placebo")) == {True}
    with pytest.raises(ValueError, match="sessions must be"):
        secondlevel.state_difference_maps(runs, maps, sessions="first")
    with pytest.raises(ValueError, match="must match"):
        secondlevel.state_difference_maps(runs, maps[:3])


def _mask_img():
    mask = np.zeros((8, 8, 8), bool)
    mask[1:7, 1:7, 1:7] = True
    return nib.Nifti1Image(mask.astype(np.uint8), AFFINE), mask


def test_to_img_round_trip_and_smoothing_equals_nilearn():
    mask_img, mask = _mask_img()
    rng = np.random.default_rng(0)
    maps = rng.standard_normal((3, int(mask.sum())))
    img = voxelwise.to_img(maps, mask_img)
    assert img.shape == (8, 8, 8, 3)
    np.testing.assert_allclose(np.asarray(img.dataobj)[mask].T, maps, rtol=1e-6)
    smoothed = voxelwise.smooth_maps(maps, mask_img, 6.0)
    expected = np.asarray(smooth_img(img, 6.0).dataobj)[mask].T
    np.testing.assert_allclose(smoothed, expected, rtol=1e-5)
    np.testing.assert_allclose(voxelwise.smooth_maps(maps, mask_img, None), maps, rtol=1e-6)
    with pytest.raises(ValueError, match="values for a mask"):
        voxelwise.to_img(maps[:, :-1], mask_img)


def test_group_tests_use_the_right_participants_and_regressor():
    mask_img, mask = _mask_img()
    rng = np.random.default_rng(1)
    n_vox = int(mask.sum())
    table = pd.DataFrame(
        {"participant_id": [f"sub-{i:02d}" for i in range(10)], "group": ["CUD"] * 6 + ["control"] * 4}
    )
    diff = rng.standard_normal((10, n_vox))
    diff[:6] += 1.0
    one = secondlevel.group_test("craving_cud", diff, table, mask_img, n_perm=50, rng=0)
    np.testing.assert_allclose(one.t, permutation.t_statistic(diff[:6], np.ones(6)))
    ctl = secondlevel.group_test("craving_control", diff, table, mask_img, n_perm=50, rng=0)
    np.testing.assert_allclose(ctl.t, permutation.t_statistic(diff[6:], np.ones(4)))
    # CUD against controls: Welch's t voxel by voxel (a variance per group), or the pooled t on request
    two = secondlevel.group_test("group_x_state", diff, table, mask_img, n_perm=50, rng=0)
    np.testing.assert_allclose(two.t, stats.ttest_ind(diff[:6], diff[6:], equal_var=False).statistic, rtol=1e-10)
    assert two.statistic == "G" and two.sign_flip
    assert two.t.mean() > 0  # CUD above controls
    pooled = secondlevel.group_test("group_x_state", diff, table, mask_img, n_perm=50, rng=0, variance_groups=False)
    np.testing.assert_allclose(pooled.t, permutation.t_statistic(diff, (table["group"] == "CUD").to_numpy(float)))
    with pytest.raises(ValueError, match="Unknown group test"):
        secondlevel.group_test("drug", diff, table, mask_img)
    results = secondlevel.group_tests(diff, table, mask_img, tests=("craving_cud",), n_perm=20, rng=3)
    assert list(results) == ["craving_cud"]


def test_cluster_table_peaks_labels_and_overlap():
    mask_img, mask = _mask_img()
    n_vox = int(mask.sum())
    rng = np.random.default_rng(2)
    diff = rng.standard_normal((12, n_vox)) * 0.2
    block = np.zeros(mask.shape, bool)
    block[2:4, 2:4, 2:4] = True
    in_block = block[mask]
    diff[:, in_block] += 3.0
    table = pd.DataFrame({"participant_id": [f"s{i}" for i in range(12)], "group": ["CUD"] * 12})
    result = secondlevel.group_test("craving_cud", diff, table, mask_img, n_perm=100, rng=0)
    roi = np.zeros(mask.shape, bool)
    roi[2:4, 2:4, 2] = True  # half of the block
    clusters = voxelwise.cluster_table(result, mask_img, {"half": roi})
    top = clusters.iloc[0]
    assert top["size"] == 8 and top["sign"] == 1 and top["volume_mm3"] == 8 * 64
    peak_ijk = np.linalg.inv(AFFINE) @ np.array([top["peak_x"], top["peak_y"], top["peak_z"], 1.0])
    assert block[tuple(np.rint(peak_ijk[:3]).astype(int))]
    assert top["overlap_half"] == pytest.approx(1.0)
    assert bool(top["significant"]) == (top["p_fwe_size"] < 0.05)
    noise = rng.standard_normal((12, n_vox))
    none = secondlevel.group_test("craving_cud", noise, table, mask_img, n_perm=20, rng=0, cluster_forming_p=1e-12)
    empty = voxelwise.cluster_table(none, mask_img, {"half": roi})
    assert empty.empty and "overlap_half" in empty.columns


def test_roi_state_differences_exact():
    roi = pd.DataFrame(
        {
            "participant_id": ["a"] * 4,
            "group": ["CUD"] * 4,
            "session_id": ["ses-1"] * 4,
            "drug": ["NAC"] * 4,
            "state": ["neutral", "craving", "neutral", "craving"],
            "strategy": ["s"] * 4,
            "seed": ["nacc"] * 4,
            "target": ["dlpfc", "dlpfc", "thal", "thal"],
            "fisher_z": [0.1, 0.5, 0.2, 0.1],
        }
    )
    out = secondlevel.roi_state_differences(roi).set_index("target")
    assert out.loc["dlpfc", "delta"] == pytest.approx(0.4)
    assert out.loc["thal", "delta"] == pytest.approx(-0.1)


def test_covariate_test_regresses_maps_on_the_covariate_within_the_group():
    mask_img, mask = _mask_img()
    rng = np.random.default_rng(4)
    n_vox = int(mask.sum())
    ids = [f"sub-{i:02d}" for i in range(12)]
    table = pd.DataFrame({"participant_id": ids, "group": ["CUD"] * 9 + ["control"] * 3})
    covariate = pd.Series(rng.standard_normal(12), index=ids).drop("sub-02")  # one CUD without a value
    diff = rng.standard_normal((12, n_vox))
    diff[:, :50] += 2.0 * table["participant_id"].map(covariate).fillna(0).to_numpy()[:, None]
    result, used, excluded = voxelwise.covariate_test(diff, table, covariate, mask_img, n_perm=50, rng=0)
    keep = (table["group"] == "CUD") & (table["participant_id"] != "sub-02")
    np.testing.assert_allclose(
        result.t, permutation.t_statistic(diff[keep.to_numpy()], covariate[table.loc[keep, "participant_id"]])
    )
    assert list(used["participant_id"]) == list(table.loc[keep, "participant_id"])
    assert excluded.to_dict("list") == {"participant_id": ["sub-02"], "reason": ["no covariate value"]}
    assert result.t[:50].mean() > 3  # the planted slope
    everyone, used_all, _ = voxelwise.covariate_test(diff, table, covariate, mask_img, group=None, n_perm=20, rng=0)
    assert len(used_all) == 11
    with pytest.raises(ValueError, match="at least 4"):
        voxelwise.covariate_test(diff, table, covariate.head(2), mask_img, n_perm=10)


def test_drug_difference_maps_exact_and_listed_exclusions():
    runs = _runs(
        [
            ("sub-01", "CUD", "ses-1", "placebo", "neutral"),
            ("sub-01", "CUD", "ses-1", "placebo", "craving"),
            ("sub-01", "CUD", "ses-2", "NAC", "craving"),
            ("sub-01", "CUD", "ses-2", "NAC", "neutral"),
            ("sub-02", "control", "ses-1", "NAC", "craving"),  # its neutral run is missing
            ("sub-02", "control", "ses-2", "placebo", "neutral"),
            ("sub-02", "control", "ses-2", "placebo", "craving"),
            ("sub-03", "control", "ses-1", "NAC", "neutral"),
            ("sub-03", "control", "ses-1", "NAC", "craving"),
            ("sub-03", "control", "ses-2", "placebo", "craving"),
            ("sub-03", "control", "ses-2", "placebo", "neutral"),
        ]
    )
    maps = np.array(
        [[0, 0], [1, 2], [5, 5], [1, 1], [9, 9], [2, 2], [3, 5], [1, 0], [4, 4], [2, 7], [2, 2]], dtype=float
    )
    diff, table, excl = secondlevel.drug_difference_maps(runs, maps)
    assert table.to_dict("list") == {
        "participant_id": ["sub-01", "sub-03"],
        "group": ["CUD", "control"],
        "sequence": ["placebo-NAC", "NAC-placebo"],
    }
    # (NAC craving - NAC neutral) - (placebo craving - placebo neutral)
    np.testing.assert_allclose(diff, [[(5 - 1) - (1 - 0), (5 - 1) - (2 - 0)], [(4 - 1) - (2 - 2), (4 - 0) - (7 - 2)]])
    assert excl[["participant_id", "stage"]].values.tolist() == [["sub-02", "drug contrast"]]
    assert "NAC: neutral" in excl["reason"].iloc[0]
    two_placebo = runs.assign(drug="placebo")
    with pytest.raises(ValueError, match="placebo sessions"):
        secondlevel.drug_difference_maps(two_placebo, maps)
    with pytest.raises(ValueError, match="must match"):
        secondlevel.drug_difference_maps(runs, maps[:3])


def test_drug_tests_use_the_right_participants():
    mask_img, mask = _mask_img()
    rng = np.random.default_rng(4)
    n_vox = int(mask.sum())
    table = pd.DataFrame(
        {
            "participant_id": [f"sub-{i:02d}" for i in range(9)],
            "group": ["CUD"] * 5 + ["control"] * 4,
            "sequence": ["NAC-placebo", "placebo-NAC", "NAC-placebo", "NAC-placebo", "placebo-NAC"]
            + ["placebo-NAC", "NAC-placebo"] * 2,
        }
    )
    diff = rng.standard_normal((9, n_vox))
    tests = tuple(secondlevel.DRUG_TESTS)
    plain = secondlevel.group_tests(
        diff, table, mask_img, tests=tests, n_perm=20, rng=0, period=False, variance_groups=False
    )
    assert list(plain) == list(secondlevel.DRUG_TESTS)
    np.testing.assert_allclose(plain["drug_x_state_cud"].t, permutation.t_statistic(diff[:5], np.ones(5)))
    np.testing.assert_allclose(plain["drug_x_state_control"].t, permutation.t_statistic(diff[5:], np.ones(4)))
    np.testing.assert_allclose(
        plain["group_x_state_x_drug"].t, permutation.t_statistic(diff, (table["group"] == "CUD").to_numpy(float))
    )
    # adjusted for period (the default), each voxel's t is the ROI-level crossover t of its values
    adjusted = secondlevel.group_tests(diff, table, mask_img, tests=tests, n_perm=20, rng=0)
    first = (table["sequence"] == "NAC-placebo").to_numpy()
    cud = (table["group"] == "CUD").to_numpy()
    for v in (0, 7, n_vox - 1):
        cells = {g: (diff[m & first, v], diff[m & ~first, v]) for g, m in (("CUD", cud), ("control", ~cud))}
        for test, contrast in (
            ("drug_x_state_cud", contrasts.crossover(*cells["CUD"])),
            ("drug_x_state_control", contrasts.crossover(*cells["control"])),
            ("group_x_state_x_drug", contrasts.crossover_difference(cells["CUD"], cells["control"])),
        ):
            m = contrasts.contrast_moments(contrast)  # Welch between the groups
            assert adjusted[test].t[v] == pytest.approx(m.estimate / m.se, rel=1e-8)
    with pytest.raises(ValueError, match="sequence column"):
        secondlevel.group_tests(diff, table.drop(columns="sequence"), mask_img, tests=tests, n_perm=20)
    one_order = table.assign(sequence="NAC-placebo")
    with pytest.raises(ValueError, match="needs both orders"):
        secondlevel.group_tests(diff, one_order, mask_img, tests=tests, n_perm=20)


def _varying_rises(rng, n_cud=18, n_control=23, rise=0.3, rise_sd=0.5, control_sd=0.15, noise=0.05):
    """Session-level craving - neutral changes whose rise varies between participants (random slopes).

    CUD rises are drawn around ``rise`` with SD ``rise_sd``, control rises around 0 with the smaller
    SD ``control_sd``: the smaller group is the more variable one.
    """
    rows = []
    for i in range(n_cud + n_control):
        group = "CUD" if i < n_cud else "control"
        own = rng.normal(rise, rise_sd) if group == "CUD" else rng.normal(0.0, control_sd)
        for s, drug in enumerate(("placebo", "NAC")):
            for target in ("dlpfc", "thalamus_midline"):
                rows.append(
                    {
                        "participant_id": f"sub-{i:02d}",
                        "group": group,
                        "session_id": f"ses-{s + 1}",
                        "drug": drug,
                        "strategy": "conn",
                        "target": target,
                        "delta": own + rng.normal(0, noise),
                    }
                )
    return pd.DataFrame(rows)


def test_roi_state_tests_are_summary_statistics_checked_against_statsmodels():
    changes = _varying_rises(np.random.default_rng(1))
    tests = secondlevel.roi_state_tests(changes).set_index(["target", "term"])
    assert list(tests.reset_index().columns) == secondlevel.ROI_TEST_COLUMNS
    person = secondlevel.participant_state_changes(changes)
    assert len(person) == 2 * 41 and (person["n_sessions"] == 2).all()
    for target, sub in person.groupby("target"):
        cud = sub.loc[sub["group"] == "CUD", "delta"].to_numpy()
        control = sub.loc[sub["group"] == "control", "delta"].to_numpy()
        one = DescrStatsW(cud)
        row = tests.loc[(target, "craving - neutral | CUD")]
        # the SE is the SD of the participants' own rises over sqrt(n)
        assert row["se"] == pytest.approx(cud.std(ddof=1) / np.sqrt(18), rel=1e-12)
        assert row["p"] == pytest.approx(one.ttest_mean(0)[1], rel=1e-10) and row["df"] == 17
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(one.tconfint_mean(0.05), rel=1e-10)
        welch = CompareMeans(DescrStatsW(cud), DescrStatsW(control))
        row = tests.loc[(target, "group x state")]
        t, p, df = welch.ttest_ind(usevar="unequal")
        assert row["estimate"] == pytest.approx(cud.mean() - control.mean(), rel=1e-12)
        assert row["p"] == pytest.approx(p, rel=1e-10) and row["df"] == pytest.approx(df, rel=1e-10)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(welch.tconfint_diff(0.05, usevar="unequal"), rel=1e-10)
        assert row["method"] == "Welch two-sample t"
    with pytest.raises(ValueError, match="several strategies"):
        secondlevel.roi_state_tests(pd.concat([changes, changes.assign(strategy="none")]))
    with pytest.raises(ValueError, match="No craving - neutral change"):
        secondlevel.roi_state_tests(changes.iloc[:0])


def test_roi_state_tests_hold_their_level_when_rises_vary_and_variances_differ():
    """Under random slopes (rises that vary between people) and a smaller, more variable group, the
    summary-statistic tests keep their 95 % intervals' coverage; a random-intercept model would not."""
    rng = np.random.default_rng(7)
    n_sims, covered_rise, covered_diff = 300, 0, 0
    for _ in range(n_sims):
        tests = secondlevel.roi_state_tests(_varying_rises(rng, rise=0.3)).set_index(["target", "term"])
        rise = tests.loc[("dlpfc", "craving - neutral | CUD")]
        diff = tests.loc[("dlpfc", "group x state")]
        covered_rise += rise["ci_low"] <= 0.3 <= rise["ci_high"]
        covered_diff += diff["ci_low"] <= 0.3 <= diff["ci_high"]
    # 300 replicates: a true coverage of 0.95 falls below 0.91 with probability < 0.001
    assert covered_rise / n_sims > 0.91 and covered_diff / n_sims > 0.91
