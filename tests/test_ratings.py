"""Craving ratings: t-tests against statsmodels on the same data; bad rows are refused."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from craving_circuits.cocaine import ratings
from craving_circuits.verdict import claims


def _ratings(seed=0, n_cud=7, n_control=6):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_cud + n_control):
        group = "CUD" if i < n_cud else "control"
        order = (("ses-1", "placebo"), ("ses-2", "NAC")) if i % 2 else (("ses-1", "NAC"), ("ses-2", "placebo"))
        for ses, drug in order:
            neutral = rng.normal(15, 5)
            rise = rng.normal(20 if group == "CUD" else 0, 5)
            rows += [
                (f"sub-{i:02d}", group, ses, drug, "neutral", neutral),
                (f"sub-{i:02d}", group, ses, drug, "craving", neutral + rise),
            ]
    return pd.DataFrame(rows, columns=["participant_id", "group", "session_id", "drug", "state", "craving_vas"])


def test_rating_tests_match_statsmodels():
    data = _ratings()
    table = ratings.rating_tests(data).set_index("term")
    assert list(table.columns) == ratings.RESULT_COLUMNS[1:]
    wide = data.pivot_table(
        index=["participant_id", "group", "drug"], columns="state", values="craving_vas"
    ).reset_index()
    wide["delta"] = wide["craving"] - wide["neutral"]
    person = wide.groupby(["participant_id", "group"])["delta"].mean().reset_index()
    cud = person.loc[person["group"] == "CUD", "delta"].to_numpy()
    ctl = person.loc[person["group"] == "control", "delta"].to_numpy()
    d = DescrStatsW(cud)
    row = table.loc["craving - neutral | CUD"]
    assert row["estimate"] == pytest.approx(cud.mean())
    assert row["se"] == pytest.approx(d.std_mean)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(d.tconfint_mean())
    assert row["p"] == pytest.approx(d.ttest_mean(0)[1])
    cm = CompareMeans(DescrStatsW(cud), DescrStatsW(ctl))
    row = table.loc["group x state"]
    assert row["estimate"] == pytest.approx(cud.mean() - ctl.mean())
    assert row["p"] == pytest.approx(cm.ttest_ind(usevar="unequal")[1])
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(cm.tconfint_diff(usevar="unequal"))
    # the drug contrast, adjusted for period: the intercept of dd ~ sequence (sum coded) in OLS
    by_drug = wide[wide["group"] == "CUD"].pivot_table(index="participant_id", columns="drug", values="delta")
    dd = (by_drug["NAC"] - by_drug["placebo"]).rename("dd").reset_index()
    dd["nac_first"] = [int(pid[-2:]) % 2 == 0 for pid in dd["participant_id"]]
    fit = smf.ols("dd ~ C(nac_first, Sum)", data=dd).fit()
    row = table.loc["drug x state | CUD"]
    assert row["estimate"] == pytest.approx(fit.params["Intercept"], rel=1e-10)
    assert row["se"] == pytest.approx(fit.bse["Intercept"], rel=1e-10)
    assert row["p"] == pytest.approx(fit.pvalues["Intercept"], rel=1e-8)
    # without the adjustment: the paired t
    plain = ratings.rating_tests(data, period=False).set_index("term")
    paired = DescrStatsW(dd["dd"].to_numpy())
    assert plain.loc["drug x state | CUD", "p"] == pytest.approx(paired.ttest_mean(0)[1])


def test_rating_estimates_keys():
    est = claims.estimates("data", {"rating_tests": ratings.rating_tests(_ratings())})
    assert est["effect"].tolist() == ["craving_rating_rise_cud", "nac_rating_effect_cud"]
    assert est["test"].tolist() == [
        "t-test on ratings: craving - neutral | CUD",
        "crossover t, adjusted for period, on ratings: drug x state | CUD",
    ]


def test_bad_rows_are_refused():
    data = _ratings()
    with pytest.raises(ValueError, match="Duplicate ratings"):
        ratings.rating_changes(pd.concat([data, data.iloc[[0]]]))
    # a session lacking a state is left out of the changes and listed
    lacking = data.drop(index=3)
    pid, ses, state = data.loc[3, ["participant_id", "session_id", "state"]]
    changes = ratings.rating_changes(lacking)
    assert len(changes) == len(ratings.rating_changes(data)) - 1
    assert not ((changes["participant_id"] == pid) & (changes["session_id"] == ses)).any()
    listed = ratings.rating_exclusions(lacking)
    assert listed[["participant_id", "session_id", "state"]].values.tolist() == [[pid, ses, state]]
    assert ratings.rating_exclusions(data).empty
