"""The drug contrast: exact double differences, listed exclusions, and the mixed model's
interactions against classical ANOVAs of the same table."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from craving_circuits.cocaine import drug, secondlevel
from craving_circuits.io.schemas import ROI_COLUMNS


def _changes():
    rows = [
        ("s1", "CUD", "placebo", "dlpfc", 0.5),
        ("s1", "CUD", "NAC", "dlpfc", 0.2),
        ("s1", "CUD", "placebo", "thalamus", 0.4),
        ("s1", "CUD", "NAC", "thalamus", 0.9),
        ("s2", "control", "placebo", "dlpfc", 0.1),
        ("s2", "control", "NAC", "dlpfc", -0.3),
        ("s2", "control", "placebo", "thalamus", 0.0),  # no NAC value for the thalamus
        ("s3", "CUD", "NAC", "dlpfc", 1.0),  # no placebo session at all
    ]
    return pd.DataFrame(rows, columns=["participant_id", "group", "drug", "target", "delta"])


def test_drug_differences_exact_with_listed_exclusions():
    table, excl = drug.drug_differences(_changes())
    assert table[["participant_id", "target"]].values.tolist() == [["s1", "dlpfc"], ["s1", "thalamus"], ["s2", "dlpfc"]]
    np.testing.assert_allclose(table["dd"], [0.2 - 0.5, 0.9 - 0.4, -0.3 - 0.1])
    assert list(table.columns) == ["participant_id", "group", "target", "placebo", "NAC", "dd"]
    # exactly the two incomplete participant-outcomes are listed, with what is missing
    assert excl[["participant_id", "stage"]].values.tolist() == [["s2", "drug contrast"], ["s3", "drug contrast"]]
    assert "NAC (thalamus)" in excl["reason"].iloc[0] and "placebo (dlpfc)" in excl["reason"].iloc[1]
    changes = _changes()
    drug.drug_differences(changes)
    pd.testing.assert_frame_equal(changes, _changes())  # input untouched


def test_drug_differences_refuses_bad_tables():
    changes = _changes()
    with pytest.raises(ValueError, match="lacks the column"):
        drug.drug_differences(changes.drop(columns="target"))
    with pytest.raises(ValueError, match="Unknown drug"):
        drug.drug_differences(changes.replace({"drug": {"NAC": "nac"}}))
    with pytest.raises(ValueError, match="Several rows"):
        drug.drug_differences(pd.concat([changes, changes.iloc[:1]]))


def test_drug_samples_and_evidence_per_outcome():
    rng = np.random.default_rng(0)
    rows = [
        {"participant_id": f"{g}{i}", "group": g, "target": t, "dd": rng.normal()}
        for g, n in (("CUD", 6), ("control", 5))
        for i in range(n)
        for t in ("dlpfc", "thalamus")
    ]
    table = pd.DataFrame(rows)
    samples = drug.drug_samples(table)
    assert list(samples) == [
        "drug x state | CUD (dlpfc)",
        "drug x state | control (dlpfc)",
        "group x state x drug (dlpfc)",
        "drug x state | CUD (thalamus)",
        "drug x state | control (thalamus)",
        "group x state x drug (thalamus)",
    ]
    cud_dlpfc = table[(table["group"] == "CUD") & (table["target"] == "dlpfc")]["dd"].to_numpy()
    np.testing.assert_array_equal(samples["drug x state | CUD (dlpfc)"], cud_dlpfc)
    assert isinstance(samples["group x state x drug (thalamus)"], tuple)
    evidence = drug.drug_evidence(table, sesoi_dz=0.8)
    assert evidence["outcome"].tolist() == ["dlpfc"] * 3 + ["thalamus"] * 3
    assert evidence["contrast"].tolist()[:3] == ["drug x state | CUD", "drug x state | control", "group x state x drug"]
    one = drug.drug_evidence(table[table["target"] == "dlpfc"], by=None, groups=("CUD",))
    assert one["term"].tolist() == ["drug x state | CUD"] and one["outcome"].tolist() == [""]
    named = drug.drug_evidence(table[table["target"] == "dlpfc"], by=None, groups=("CUD",), name="rating")
    assert named["term"].tolist() == ["drug x state | CUD (rating)"] and named["outcome"].tolist() == ["rating"]
    assert named["contrast"].tolist() == ["drug x state | CUD"]
    assert one["p"].iloc[0] == pytest.approx(stats.ttest_1samp(cud_dlpfc, 0).pvalue)
    with pytest.raises(ValueError, match="nothing to test"):
        drug.drug_samples(table.head(2))


def _roi_table(seed=0, n_cud=9, n_control=8, nac=0.0):
    """A complete group x state x drug table of ROI values with participant and session effects."""
    rng = np.random.default_rng(seed)
    rows = []
    for g, n in (("CUD", n_cud), ("control", n_control)):
        for i in range(n):
            pid = f"sub-{g}{i:02d}"
            base = rng.normal(0.3, 0.2)
            for drug_name, ses in (("placebo", "ses-1"), ("NAC", "ses-2")):
                for state in ("neutral", "craving"):
                    for target in ("dlpfc", "thalamus_midline"):
                        rise = (0.4 if g == "CUD" else 0.0) + (nac if drug_name == "NAC" and g == "CUD" else 0.0)
                        value = base + (state == "craving") * rise + rng.normal(0, 0.15)
                        rows.append((pid, g, ses, drug_name, state, "conn", "nacc", target, value))
    return pd.DataFrame(rows, columns=ROI_COLUMNS)


def test_interaction_checks_against_anovas_and_the_paired_t():
    roi = _roi_table(nac=-0.2)
    models = secondlevel.roi_models(roi, "conn")
    checks = drug.interaction_checks(roi, "conn", models.contrasts)
    assert list(checks.columns) == drug.CHECK_COLUMNS
    for target in ("dlpfc", "thalamus_midline"):
        rows = checks[checks["target"] == target].set_index(["term", "method"])
        cells = roi[roi["target"] == target].pivot_table(
            index=["participant_id", "group"], columns=["drug", "state"], values="fisher_z"
        )
        dd = (
            (cells[("NAC", "craving")] - cells[("NAC", "neutral")])
            - (cells[("placebo", "craving")] - cells[("placebo", "neutral")])
        ).reset_index(name="dd")
        cud, ctl = dd.loc[dd["group"] == "CUD", "dd"], dd.loc[dd["group"] == "control", "dd"]
        anova = rows.loc[("drug x state | CUD", "RM ANOVA (AnovaRM F)")]
        paired = stats.ttest_1samp(cud, 0.0)
        assert anova["statistic"] == pytest.approx(paired.statistic**2, rel=1e-8)  # F = t^2
        assert anova["p"] == pytest.approx(paired.pvalue, rel=1e-8)
        assert anova["estimate"] == pytest.approx(cud.mean())
        mixed = rows.loc[("group x state x drug", "mixed ANOVA (F)")]
        two = stats.ttest_ind(cud, ctl)
        assert mixed["statistic"] == pytest.approx(two.statistic**2, rel=1e-8)
        assert mixed["p"] == pytest.approx(two.pvalue, rel=1e-8)
        # the mixed model's contrasts estimate the same quantities on this complete, balanced table
        model = rows.loc[("drug x state | CUD", "mixed model (Wald chi2)")]
        assert model["estimate"] == pytest.approx(cud.mean(), abs=1e-6)
        model3 = rows.loc[("group x state x drug", "mixed model (Wald chi2)")]
        assert model3["estimate"] == pytest.approx(cud.mean() - ctl.mean(), abs=1e-6)
    with pytest.raises(ValueError, match="No ROI values"):
        drug.interaction_checks(roi, "simple", models.contrasts)


def test_interaction_checks_leave_out_incomplete_participants():
    roi = _roi_table(seed=3)
    dropped = roi[~((roi["participant_id"] == "sub-CUD00") & (roi["drug"] == "NAC") & (roi["state"] == "craving"))]
    models = secondlevel.roi_models(dropped, "conn")
    checks = drug.interaction_checks(dropped, "conn", models.contrasts)
    anova = checks[checks["method"].str.startswith("RM ANOVA")].iloc[0]
    assert anova["df_den"] == 9 - 1 - 1  # one CUD participant fewer
