"""The drug contrast: exact double differences, the session order, listed exclusions, and the crossover
tests (period-adjusted) against statsmodels OLS."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats

from craving_circuits.cocaine import drug


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


def test_session_order_is_natural_and_gives_the_sequence():
    assert drug.session_order(["ses-10", "ses-2", "ses-1"]) == {"ses-1": 0, "ses-2": 1, "ses-10": 2}
    changes = pd.DataFrame(
        {
            "participant_id": ["a", "a", "b", "b"],
            "group": ["CUD"] * 4,
            "session_id": ["ses-2", "ses-10", "ses-10", "ses-2"],
            "drug": ["NAC", "placebo", "NAC", "placebo"],
            "delta": [0.1, 0.2, 0.3, 0.4],
        }
    )
    table, _ = drug.drug_differences(changes, by=())
    assert table.set_index("participant_id")["sequence"].to_dict() == {"a": "NAC-placebo", "b": "placebo-NAC"}
    with pytest.raises(ValueError, match="same session"):
        drug.drug_differences(changes.assign(session_id="ses-1"), by=())
    # nobody with both drugs: every participant listed, no table and no error
    only_nac = changes[changes["drug"] == "NAC"]
    table, excluded = drug.drug_differences(only_nac, by=())
    assert table.empty and sorted(excluded["participant_id"]) == ["a", "b"]


def _dd_table(seed=0, sizes=(("CUD", 4, 3), ("control", 3, 3)), period=-0.3):
    """Double differences by target with a period effect, CUD first / second order sizes as given."""
    rng = np.random.default_rng(seed)
    rows = []
    for g, n_first, n_second in sizes:
        for i in range(n_first + n_second):
            first = i < n_first
            for t in ("dlpfc", "thalamus"):
                rows.append(
                    {
                        "participant_id": f"{g}{i}",
                        "group": g,
                        "target": t,
                        "dd": (-period if first else period) + rng.normal(),
                        "sequence": "NAC-placebo" if first else "placebo-NAC",
                    }
                )
    return pd.DataFrame(rows)


def test_drug_samples_and_evidence_per_outcome():
    table = _dd_table()
    samples = drug.drug_samples(table)
    assert list(samples) == [
        "drug x state | CUD (dlpfc)",
        "drug x state | control (dlpfc)",
        "group x state x drug (dlpfc)",
        "drug x state | CUD (thalamus)",
        "drug x state | control (thalamus)",
        "group x state x drug (thalamus)",
    ]
    evidence = drug.drug_evidence(table, sesoi_dz=0.8)
    assert evidence["outcome"].tolist() == ["dlpfc"] * 3 + ["thalamus"] * 3
    assert evidence["contrast"].tolist()[:3] == ["drug x state | CUD", "drug x state | control", "group x state x drug"]
    rows = evidence.set_index("term")
    for target in ("dlpfc", "thalamus"):
        sub = table[table["target"] == target]
        # within a group: the intercept of dd ~ sequence (sum coded), the crossover analysis
        cud = sub[sub["group"] == "CUD"]
        fit = smf.ols("dd ~ C(sequence, Sum)", data=cud).fit()
        row = rows.loc[f"drug x state | CUD ({target})"]
        assert row["estimate"] == pytest.approx(fit.params["Intercept"], rel=1e-10)
        assert row["se"] == pytest.approx(fit.bse["Intercept"], rel=1e-10)
        assert row["p"] == pytest.approx(fit.pvalues["Intercept"], rel=1e-8)
        # between groups: the groups' period-adjusted effects, differenced
        ctl = sub[sub["group"] == "control"]
        fit_ctl = smf.ols("dd ~ C(sequence, Sum)", data=ctl).fit()
        row = rows.loc[f"group x state x drug ({target})"]
        assert row["estimate"] == pytest.approx(fit.params["Intercept"] - fit_ctl.params["Intercept"], rel=1e-10)
        assert row["se"] == pytest.approx(np.hypot(fit.bse["Intercept"], fit_ctl.bse["Intercept"]), rel=1e-10)
    # without the period adjustment: the paired t of the double differences and Welch between groups
    plain = drug.drug_evidence(table, sesoi_dz=0.8, period=False).set_index("term")
    cud_dlpfc = table[(table["group"] == "CUD") & (table["target"] == "dlpfc")]["dd"].to_numpy()
    ctl_dlpfc = table[(table["group"] == "control") & (table["target"] == "dlpfc")]["dd"].to_numpy()
    assert plain.loc["drug x state | CUD (dlpfc)", "p"] == pytest.approx(stats.ttest_1samp(cud_dlpfc, 0).pvalue)
    welch = stats.ttest_ind(cud_dlpfc, ctl_dlpfc, equal_var=False)
    assert plain.loc["group x state x drug (dlpfc)", "p"] == pytest.approx(welch.pvalue, rel=1e-10)
    one = drug.drug_evidence(table[table["target"] == "dlpfc"], by=None, groups=("CUD",))
    assert one["term"].tolist() == ["drug x state | CUD"] and one["outcome"].tolist() == [""]
    named = drug.drug_evidence(table[table["target"] == "dlpfc"], by=None, groups=("CUD",), name="rating")
    assert named["term"].tolist() == ["drug x state | CUD (rating)"] and named["outcome"].tolist() == ["rating"]
    with pytest.raises(ValueError, match="nothing to test"):
        drug.drug_samples(table.head(2))
    with pytest.raises(ValueError, match="session order"):
        drug.drug_samples(table.drop(columns="sequence"))
    with pytest.raises(ValueError, match="must be one of"):
        drug.drug_samples(table.assign(sequence="NAC-NAC"))


def test_period_tests_estimate_the_second_minus_first_session():
    table = _dd_table(seed=2, sizes=(("CUD", 5, 4), ("control", 4, 4)), period=-0.3)
    periods = drug.period_tests(table)
    assert list(periods.columns) == drug.PERIOD_COLUMNS
    row = periods[(periods["outcome"] == "dlpfc") & (periods["group"] == "CUD")].iloc[0]
    sub = table[(table["target"] == "dlpfc") & (table["group"] == "CUD")]
    means = sub.groupby("sequence")["dd"].mean()
    assert row["term"] == "period | CUD"
    assert row["estimate"] == pytest.approx((means["placebo-NAC"] - means["NAC-placebo"]) / 2, rel=1e-12)
    assert row["df"] == 9 - 2 and row["n"] == 9
