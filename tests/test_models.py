"""Tests of craving_circuits.stats.models against outside computations.

Oracles are OLS fits (statsmodels ``ols``), repeated-measures ANOVA
(statsmodels ``AnovaRM``), paired t tests (scipy) and cell means computed with
pandas - never numbers taken from the functions under test.

Why the oracles are exact here: in balanced, complete data with participants
nested in group and state x drug within participant, the random-intercept
covariance leaves the fixed-effects column space invariant, so GLS = OLS; and
REML with compound symmetry estimates the residual variance as the pooled
within-participant error mean square of the repeated-measures ANOVA (as long
as the intercept variance estimate is interior, which the simulations ensure
by a participant SD well above the residual SD). The only discrepancy left is
the convergence of the REML optimiser on the variance parameters, observed at
~1e-6 relative; the tolerance ``RTOL_REML = 1e-4`` leaves room for that and is
still far below any real difference (a different error term changes the SE by
tens of percent).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.anova import AnovaRM

from craving_circuits.stats import models
from craving_circuits.stats.models import (
    RESULT_COLUMNS,
    cell_contrast,
    factorial_contrasts,
    fit_mixed_model,
    random_effects_summary,
    tidy_fixed_effects,
)

FORMULA = "fisher_z ~ C(group, Treatment('control')) * C(state, Treatment('neutral')) * C(drug, Treatment('placebo'))"
SUM_FORMULA = "fisher_z ~ C(group, Sum) * C(state, Sum) * C(drug, Sum)"
RTOL_REML = 1e-4
EXPECTED_TERMS = [
    "craving - neutral | CUD",
    "craving - neutral | control",
    "group x state",
    "drug x state | CUD",
    "drug x state | control",
    "group x state x drug",
]


def simulate(n_per_group=12, seed=0, craving_cud=0.0, craving_control=0.0, sd_participant=0.3, sd_residual=0.15):
    """Balanced, complete 2x2x2 long table with random participant intercepts."""
    rng = np.random.default_rng(seed)
    base = {
        ("neutral", "placebo"): 0.10,
        ("neutral", "NAC"): 0.12,
        ("craving", "placebo"): 0.10,
        ("craving", "NAC"): 0.05,
    }
    rows = []
    for group, craving in (("CUD", craving_cud), ("control", craving_control)):
        for i in range(n_per_group):
            intercept = rng.normal(0, sd_participant)
            for state in ("neutral", "craving"):
                for drug in ("placebo", "NAC"):
                    mu = base[state, drug] + (craving if state == "craving" else 0.0)
                    rows.append(
                        {
                            "participant": f"{group}-{i:02d}",
                            "group": group,
                            "state": state,
                            "drug": drug,
                            "fisher_z": mu + intercept + rng.normal(0, sd_residual),
                        }
                    )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def balanced():
    data = simulate(n_per_group=12, seed=11, craving_cud=0.2)
    return data, fit_mixed_model(data, FORMULA, groups="participant")


def cell_means(data):
    return data.groupby(["group", "state", "drug"])["fisher_z"].mean()


def pandas_contrasts(data):
    """The six contrasts, computed directly from observed cell means."""
    m = cell_means(data)

    def cn(g):  # craving - neutral in group g, averaged over drug
        return m[g, "craving"].mean() - m[g, "neutral"].mean()

    def ds(g):  # (craving - neutral | NAC) - (craving - neutral | placebo)
        return (m[g, "craving", "NAC"] - m[g, "neutral", "NAC"]) - (
            m[g, "craving", "placebo"] - m[g, "neutral", "placebo"]
        )

    return pd.Series(
        {
            "craving - neutral | CUD": cn("CUD"),
            "craving - neutral | control": cn("control"),
            "group x state": cn("CUD") - cn("control"),
            "drug x state | CUD": ds("CUD"),
            "drug x state | control": ds("control"),
            "group x state x drug": ds("CUD") - ds("control"),
        }
    )


def pooled_within_error_anovarm(data):
    """Pooled within-participant error mean square, from AnovaRM per group.

    With the four state x drug cells as one within factor, AnovaRM's error
    term is the participant x cell interaction (3 (n - 1) df), the error that
    compound symmetry assumes for every within contrast. AnovaRM reports F,
    so the error mean square is MS_cells / F, MS_cells from the cell means.
    """
    ss, df = 0.0, 0.0
    for _, sub in data.groupby("group"):
        sub = sub.assign(cell=sub["state"] + "/" + sub["drug"])
        table = AnovaRM(sub, "fisher_z", "participant", within=["cell"]).fit().anova_table
        n = sub["participant"].nunique()
        means = sub.groupby("cell")["fisher_z"].mean()
        ms_cells = n * np.sum((means - means.mean()) ** 2) / (len(means) - 1)
        ms_error = ms_cells / table.loc["cell", "F Value"]
        ss += ms_error * table.loc["cell", "Den DF"]
        df += table.loc["cell", "Den DF"]
    return ss / df


# --------------------------------------------------------------------------
# 1. balanced data: GLS = OLS, contrasts = differences of cell means
# --------------------------------------------------------------------------


def test_fixed_effects_equal_ols_in_balanced_data(balanced):
    data, result = balanced
    ols = smf.ols(FORMULA, data).fit()
    tidy = tidy_fixed_effects(result)
    assert tidy["term"].tolist() == ols.params.index.tolist()
    np.testing.assert_allclose(tidy["estimate"], ols.params.to_numpy(), rtol=0, atol=1e-10)


def test_factorial_contrasts_equal_cell_mean_differences(balanced):
    data, result = balanced
    table = factorial_contrasts(result)
    expected = pandas_contrasts(data)
    np.testing.assert_allclose(table["estimate"], expected[table["term"]].to_numpy(), rtol=0, atol=1e-10)


def test_contrasts_do_not_depend_on_factor_coding(balanced):
    data, result = balanced
    treatment = factorial_contrasts(result)
    sum_coded = factorial_contrasts(fit_mixed_model(data, SUM_FORMULA, "participant"))
    np.testing.assert_allclose(sum_coded["estimate"], treatment["estimate"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(sum_coded["se"], treatment["se"], rtol=RTOL_REML)


def test_estimated_cell_mean_with_nonzero_weights(balanced):
    data, result = balanced
    cells = pd.DataFrame({"group": ["CUD", "CUD"], "state": ["craving", "craving"], "drug": ["placebo", "NAC"]})
    row = cell_contrast(result, cells, [0.5, 0.5], "CUD craving mean")
    sub = data[(data["group"] == "CUD") & (data["state"] == "craving")]
    assert row["estimate"].iloc[0] == pytest.approx(sub["fisher_z"].mean(), abs=1e-10)


def test_formulaic_engine_gives_same_contrasts(balanced, monkeypatch):
    data, result = balanced
    monkeypatch.setattr(statsmodels.formula.options, "formula_engine", "formulaic")
    other = fit_mixed_model(data, FORMULA, "participant")
    assert type(other.model.data.model_spec).__module__.startswith("formulaic")
    np.testing.assert_allclose(
        factorial_contrasts(other)["estimate"], pandas_contrasts(data)[EXPECTED_TERMS].to_numpy(), rtol=0, atol=1e-10
    )


# --------------------------------------------------------------------------
# 2. standard errors of within-participant contrasts
# --------------------------------------------------------------------------


def test_within_contrast_se_equals_repeated_measures_error(balanced):
    # "craving - neutral | CUD" is, per CUD participant, d_i = (mean of the two
    # craving scans - mean of the two neutral scans), weights +-1/2 on four
    # cells; the intercept cancels, so var(d_i) = sigma^2 * sum(w^2) = sigma^2
    # and SE = sqrt(sigma^2 / n), sigma^2 the pooled within error.
    # (AnovaRM's F for *state* within CUD alone would use only the CUD
    # participant x state error, n - 1 df, and match z^2 only approximately;
    # pooling as compound symmetry does makes the comparison exact.)
    data, result = balanced
    n_cud = data.loc[data["group"] == "CUD", "participant"].nunique()
    table = factorial_contrasts(result).set_index("term")

    sigma2_anova = pooled_within_error_anovarm(data)
    # second, independent route: OLS with participant fixed effects
    # (numeric 0/1 codes keep the design full rank: participants absorb group)
    coded = data.assign(
        cud=(data["group"] == "CUD").astype(float),
        crav=(data["state"] == "craving").astype(float),
        nac=(data["drug"] == "NAC").astype(float),
    )
    fe_fit = smf.ols("fisher_z ~ C(participant) + crav * nac + (crav + nac + crav:nac):cud", coded).fit()
    assert np.linalg.matrix_rank(fe_fit.model.exog) == fe_fit.model.exog.shape[1]
    sigma2_ols = fe_fit.scale
    assert sigma2_anova == pytest.approx(sigma2_ols, rel=1e-10)

    assert table.loc["craving - neutral | CUD", "se"] == pytest.approx(np.sqrt(sigma2_anova / n_cud), rel=RTOL_REML)
    # interaction within CUD: weights +-1 on four cells, sum(w^2) = 4
    assert table.loc["drug x state | CUD", "se"] == pytest.approx(np.sqrt(4 * sigma2_anova / n_cud), rel=RTOL_REML)
    assert random_effects_summary(result).set_index("component").loc["residual", "variance"] == pytest.approx(
        sigma2_anova, rel=RTOL_REML
    )


def test_two_condition_contrast_is_the_paired_t_test():
    # One group, one drug level: two scans per participant. Then the mixed
    # model's z for craving - neutral is the paired t statistic and z^2 is
    # AnovaRM's F (REML sigma^2 = var(d) / 2, intercept variance interior).
    data = simulate(n_per_group=15, seed=3, craving_cud=0.1)
    data = data[(data["group"] == "CUD") & (data["drug"] == "placebo")]
    result = fit_mixed_model(data, "fisher_z ~ C(state, Treatment('neutral'))", "participant")
    cells = pd.DataFrame({"state": ["craving", "neutral"]})
    row = cell_contrast(result, cells, [1, -1], "craving - neutral").iloc[0]
    z = row["estimate"] / row["se"]

    wide = data.pivot(index="participant", columns="state", values="fisher_z")
    t = stats.ttest_rel(wide["craving"], wide["neutral"])
    d = wide["craving"] - wide["neutral"]
    assert row["estimate"] == pytest.approx(d.mean(), abs=1e-12)
    assert row["se"] == pytest.approx(d.std(ddof=1) / np.sqrt(len(d)), rel=RTOL_REML)
    assert z == pytest.approx(t.statistic, rel=RTOL_REML)
    f = AnovaRM(data, "fisher_z", "participant", within=["state"]).fit().anova_table
    assert z**2 == pytest.approx(f.loc["state", "F Value"], rel=2 * RTOL_REML)


def test_intercept_variance_equals_anova_estimator(balanced):
    # REML = ANOVA (method of moments) estimator in balanced data:
    # tau^2 = (MS_participants-within-group - sigma^2) / k, k = 4 scans each.
    data, result = balanced
    k = 4
    means = data.groupby(["group", "participant"])["fisher_z"].mean()
    dev = means - means.groupby(level="group").transform("mean")
    ms_participants = k * np.sum(dev**2) / (len(means) - 2)
    sigma2 = pooled_within_error_anovarm(data)
    summary = random_effects_summary(result).set_index("component")
    tau2 = summary.loc["participant intercept", "variance"]
    assert tau2 == pytest.approx((ms_participants - sigma2) / k, rel=RTOL_REML)
    np.testing.assert_allclose(summary["sd"] ** 2, summary["variance"], rtol=1e-12)


# --------------------------------------------------------------------------
# 3. planted effects are recovered
# --------------------------------------------------------------------------


def test_planted_craving_effect_in_cud_only():
    # Planted: craving - neutral = 0.2 in CUD, 0 in controls. With 40
    # participants per group and residual SD 0.15, SE = 0.15 / sqrt(40) ~ 0.024,
    # so the CUD effect is ~8 SE from 0 (power to exclude 0 > 0.999). Each CI
    # covers its true value with probability 0.95; the seed is fixed, so the
    # outcome is deterministic, not flaky.
    truth = 0.2
    data = simulate(n_per_group=40, seed=2024, craving_cud=truth, craving_control=0.0)
    table = factorial_contrasts(fit_mixed_model(data, FORMULA, "participant")).set_index("term")
    cud = table.loc["craving - neutral | CUD"]
    ctl = table.loc["craving - neutral | control"]
    assert cud["ci_low"] <= truth <= cud["ci_high"]
    assert cud["ci_low"] > 0 and cud["p"] < 0.05
    assert ctl["ci_low"] <= 0 <= ctl["ci_high"]
    assert cud["se"] == pytest.approx(0.15 / np.sqrt(40), rel=0.3)


# --------------------------------------------------------------------------
# 4. shape of the tables
# --------------------------------------------------------------------------


def test_result_tables_have_documented_columns_and_rows(balanced):
    data, result = balanced
    assert RESULT_COLUMNS == ["term", "estimate", "se", "ci_low", "ci_high", "p"]
    tidy = tidy_fixed_effects(result)
    assert list(tidy.columns) == RESULT_COLUMNS
    assert len(tidy) == 8 and "participant Var" not in set(tidy["term"])
    table = factorial_contrasts(result)
    assert list(table.columns) == RESULT_COLUMNS
    assert table["term"].tolist() == EXPECTED_TERMS
    one = cell_contrast(result, data.iloc[:2], [1, -1], "two rows")
    assert list(one.columns) == RESULT_COLUMNS and one["term"].tolist() == ["two rows"]
    summary = random_effects_summary(result)
    assert list(summary.columns) == ["component", "variance", "sd"]
    assert summary["component"].tolist() == ["participant intercept", "residual"]


def test_wald_inference_is_normal_based(balanced):
    _, result = balanced
    tidy = tidy_fixed_effects(result, alpha=0.1)
    z = stats.norm.ppf(0.95)
    np.testing.assert_allclose(tidy["ci_low"], tidy["estimate"] - z * tidy["se"], rtol=1e-10)
    np.testing.assert_allclose(tidy["ci_high"], tidy["estimate"] + z * tidy["se"], rtol=1e-10)
    np.testing.assert_allclose(tidy["p"], 2 * stats.norm.sf(np.abs(tidy["estimate"] / tidy["se"])), rtol=1e-10)


def test_ml_fit_when_requested():
    data = simulate(n_per_group=6, seed=5)
    assert fit_mixed_model(data, FORMULA, "participant", reml=False).method == "ML"


# --------------------------------------------------------------------------
# 5. bad input
# --------------------------------------------------------------------------


def test_missing_columns_are_named():
    data = simulate(n_per_group=4, seed=1)
    with pytest.raises(ValueError, match="craving_score"):
        fit_mixed_model(data, "craving_score ~ C(state)", "participant")
    with pytest.raises(ValueError, match="subject"):
        fit_mixed_model(data, FORMULA, "subject")


def test_missing_values_are_counted_not_dropped():
    data = simulate(n_per_group=4, seed=1)
    data.loc[[0, 5, 9], "fisher_z"] = np.nan
    with pytest.raises(ValueError, match=rf"\b3 of {len(data)} rows"):
        fit_mixed_model(data, FORMULA, "participant")


def test_bad_cells_and_weights(balanced):
    _, result = balanced
    cells = pd.DataFrame({"group": ["CUD", "CUD"], "state": ["craving", "neutral"], "drug": ["NAC", "NAC"]})
    with pytest.raises(ValueError, match="drug"):
        cell_contrast(result, cells.drop(columns="drug"), [1, -1], "x")
    with pytest.raises(ValueError, match="3 weights for 2 cells"):
        cell_contrast(result, cells, [1, -1, 0], "x")
    with pytest.raises(ValueError, match="cells"):
        cell_contrast(result, cells.assign(group=["CUD", "smoker"]), [1, -1], "x")


def test_inputs_are_not_modified(balanced):
    data = simulate(n_per_group=5, seed=9)
    data_copy = data.copy(deep=True)
    result = fit_mixed_model(data, FORMULA, "participant")
    pd.testing.assert_frame_equal(data, data_copy)

    cells = pd.DataFrame({"group": ["CUD", "control"], "state": ["craving", "craving"], "drug": ["NAC", "NAC"]})
    cells_copy = cells.copy(deep=True)
    weights = np.array([1.0, -1.0])
    cell_contrast(result, cells, weights, "x")
    factorial_contrasts(result)
    pd.testing.assert_frame_equal(cells, cells_copy)
    np.testing.assert_array_equal(weights, [1.0, -1.0])
    pd.testing.assert_frame_equal(data, data_copy)


def test_formula_variables_skip_functions_and_contrasts():
    lhs, rhs = models.formula_variables(
        "y ~ C(group, Treatment('control')) * np.log(x) + C(drug, Sum) + bs(w, df=3) + Q('a b')"
    )
    assert lhs == ["y"]
    assert rhs == ["group", "x", "drug", "w", "a b"]
