"""Mediation: paths equal OLS, total = direct + indirect, agreement with statsmodels' Mediation on the
framing data that ship with statsmodels, the published coefficients of pingouin's mediation data,
recovery of a planted indirect effect."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels
import statsmodels.api as sm

from craving_circuits.stats.mediation import (
    MEDIATION_TERMS,
    RESULT_COLUMNS,
    mediation_analysis,
)

FRAMING = Path(statsmodels.__file__).parent / "stats" / "tests" / "results" / "framing.csv"


@pytest.fixture(scope="module")
def framing():
    return pd.read_csv(FRAMING)


def test_paths_are_ols_and_effects_add_up(framing):
    table = mediation_analysis(framing, "treat", "emo", "cong_mesg", ["age", "income"], n_boot=200, rng=0)
    assert table["term"].tolist() == list(MEDIATION_TERMS)
    assert list(table.columns)[:6] == RESULT_COLUMNS
    rows = table.set_index("term")
    fit_m = sm.OLS.from_formula("emo ~ treat + age + income", framing).fit()
    fit_y = sm.OLS.from_formula("cong_mesg ~ treat + emo + age + income", framing).fit()
    assert rows.loc["a (x -> m)", "estimate"] == pytest.approx(fit_m.params["treat"], rel=1e-10)
    assert rows.loc["a (x -> m)", "se"] == pytest.approx(fit_m.bse["treat"], rel=1e-10)
    assert rows.loc["b (m -> y | x)", "estimate"] == pytest.approx(fit_y.params["emo"], rel=1e-10)
    assert rows.loc["direct effect (c')", "p"] == pytest.approx(fit_y.pvalues["treat"], rel=1e-8)
    indirect = rows.loc["indirect effect (a b)", "estimate"]
    assert indirect == pytest.approx(fit_m.params["treat"] * fit_y.params["emo"], rel=1e-10)
    # least squares with the same covariates: total = direct + indirect exactly
    assert rows.loc["total effect (c)", "estimate"] == pytest.approx(
        rows.loc["direct effect (c')", "estimate"] + indirect, rel=1e-10
    )


def test_agrees_with_statsmodels_mediation(framing):
    from statsmodels.stats.mediation import Mediation

    ours = mediation_analysis(framing, "treat", "emo", "cong_mesg", ["age", "income"], n_boot=2000, rng=1).set_index(
        "term"
    )
    outcome = sm.OLS.from_formula("cong_mesg ~ emo + treat + age + income", framing)
    mediator = sm.OLS.from_formula("emo ~ treat + age + income", framing)
    theirs = (
        Mediation(outcome, mediator, "treat", "emo")
        .fit(n_rep=400, method="boot", rng=np.random.default_rng(1))
        .summary()
    )

    # statsmodels reports the mean over its resamples: allow four Monte Carlo standard errors
    def tol(term):
        return 4 * ours.loc[term, "se"] / np.sqrt(400)

    for term, theirs_row in (
        ("indirect effect (a b)", "ACME (average)"),
        ("direct effect (c')", "ADE (average)"),
        ("total effect (c)", "Total effect"),
    ):
        assert ours.loc[term, "estimate"] == pytest.approx(theirs.loc[theirs_row, "Estimate"], abs=tol(term)), term
    # bootstrap intervals of the indirect effect agree to within bootstrap noise
    assert ours.loc["indirect effect (a b)", "ci_low"] == pytest.approx(
        theirs.loc["ACME (average)", "Lower CI bound"], abs=0.02
    )
    assert ours.loc["indirect effect (a b)", "ci_high"] == pytest.approx(
        theirs.loc["ACME (average)", "Upper CI bound"], abs=0.02
    )


def test_published_coefficients_of_the_pingouin_mediation_data():
    """pingouin ships the data of the University of Virginia Library's mediation tutorial (X, M, Y;
    100 rows); its documentation and tests publish the coefficients, which match R's ``mediation``
    package: a 0.5610 (SE 0.094480), direct 0.0396 (SE 0.109648), total 0.3961 (SE 0.111160),
    indirect 0.3565 with the bias-corrected bootstrap interval [0.2198, 0.5377] (500 resamples).
    pingouin's "Y ~ M" row is the regression of Y on M alone, not the b path (which adjusts for X),
    so b is checked as indirect / a."""
    import pingouin

    data = pingouin.read_dataset("mediation")
    table = mediation_analysis(data, "X", "M", "Y", n_boot=5000, rng=0).set_index("term")
    published = {
        "a (x -> m)": (0.561015, 0.094480),
        "direct effect (c')": (0.039604, 0.109648),
        "total effect (c)": (0.396126, 0.111160),
    }
    for term, (estimate, se) in published.items():
        assert table.loc[term, "estimate"] == pytest.approx(estimate, abs=5e-7), term
        assert table.loc[term, "se"] == pytest.approx(se, abs=5e-7), term
    indirect = table.loc["indirect effect (a b)"]
    assert indirect["estimate"] == pytest.approx(0.356522, abs=5e-7)
    assert table.loc["b (m -> y | x)", "estimate"] == pytest.approx(0.356522 / 0.561015, abs=1e-5)
    assert table.loc["proportion mediated", "estimate"] == pytest.approx(0.356522 / 0.396126, abs=1e-5)
    # bootstrap noise of a 500-resample interval end is about 0.01
    assert indirect["ci_low_bc"] == pytest.approx(0.219818, abs=0.03)
    assert indirect["ci_high_bc"] == pytest.approx(0.537654, abs=0.03)


def test_recovers_a_planted_indirect_effect_and_not_an_absent_one():
    rng = np.random.default_rng(5)
    n = 400
    x = np.repeat([0.0, 1.0], n // 2)
    m = 0.8 * x + rng.normal(0, 1, n)
    data = pd.DataFrame(
        {"x": x, "m": m, "y": 0.5 * m + 0.2 * x + rng.normal(0, 1, n), "y0": 0.2 * x + rng.normal(0, 1, n)}
    )
    rows = mediation_analysis(data, "x", "m", "y", n_boot=1000, rng=0).set_index("term")
    ind = rows.loc["indirect effect (a b)"]
    assert ind["ci_low"] < 0.4 < ind["ci_high"] and ind["ci_low_bc"] < 0.4 < ind["ci_high_bc"] and ind["p"] < 0.01
    none = mediation_analysis(data, "x", "m", "y0", n_boot=1000, rng=0).set_index("term")
    assert none.loc["indirect effect (a b)", "ci_low"] < 0 < none.loc["indirect effect (a b)", "ci_high"]
    # the same seed gives the same intervals
    again = mediation_analysis(data, "x", "m", "y", n_boot=1000, rng=0).set_index("term")
    assert again.loc["indirect effect (a b)", "ci_low"] == ind["ci_low"]


def test_bootstrap_p_is_never_below_what_the_resamples_can_show():
    rng = np.random.default_rng(3)
    n = 200
    x = np.repeat([0.0, 1.0], n // 2)
    m = 2.0 * x + rng.normal(0, 0.5, n)
    data = pd.DataFrame({"x": x, "m": m, "y": 2.0 * m + rng.normal(0, 0.5, n)})
    for n_boot in (99, 499):
        ind = (
            mediation_analysis(data, "x", "m", "y", n_boot=n_boot, rng=0).set_index("term").loc["indirect effect (a b)"]
        )
        # every resample is positive: the smallest p B resamples can give, 2 / (B + 1), not 0
        assert ind["ci_low"] > 0 and ind["p"] == pytest.approx(2 / (n_boot + 1))


def test_bad_input_is_refused(framing):
    with pytest.raises(ValueError, match="lacks the column"):
        mediation_analysis(framing, "treat", "emo", "nothing")
    broken = framing.assign(emo=framing["emo"].where(framing.index > 3))
    with pytest.raises(ValueError, match="4 row\\(s\\) have missing values"):
        mediation_analysis(broken, "treat", "emo", "cong_mesg")
    with pytest.raises(ValueError, match="constant"):
        mediation_analysis(framing.assign(treat=1), "treat", "emo", "cong_mesg")
