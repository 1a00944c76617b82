"""Contrasts of cell means: one and two samples against scipy, the crossover against statsmodels OLS, and the
crossover's period adjustment under the failure it exists for (unbalanced sequences with a period effect)."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import integrate, stats

from craving_circuits.stats import contrasts, equivalence


def _crossover_data(rng, n_first, n_second, tau=0.3, period=-0.4, sd=0.5):
    """Per-participant active - reference in a two-period crossover: mean tau - pi (active first), tau + pi."""
    first = tau - period + sd * rng.standard_normal(n_first)
    second = tau + period + sd * rng.standard_normal(n_second)
    return first, second


def test_one_and_two_samples_match_scipy():
    rng = np.random.default_rng(0)
    x, y = rng.normal(0.2, 1.0, 14), rng.normal(0.0, 2.5, 31)
    one = contrasts.contrast_row("x", contrasts.one_sample(x))
    assert one["p"] == pytest.approx(stats.ttest_1samp(x, 0).pvalue, rel=1e-12)
    assert one["df"] == 13
    welch = contrasts.contrast_row("x - y", contrasts.two_sample(x, y))
    reference = stats.ttest_ind(x, y, equal_var=False)
    assert welch["p"] == pytest.approx(reference.pvalue, rel=1e-12)
    assert welch["df"] == pytest.approx(reference.df, rel=1e-12)
    ci = reference.confidence_interval(0.95)
    assert (welch["ci_low"], welch["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-12)
    student = contrasts.contrast_row("x - y", contrasts.two_sample(x, y, equal_var=True))
    assert student["p"] == pytest.approx(stats.ttest_ind(x, y).pvalue, rel=1e-12)


@pytest.mark.parametrize("n_first, n_second", [(9, 9), (12, 5), (4, 14)])
def test_crossover_equals_ols_with_sum_coded_sequence(n_first, n_second):
    rng = np.random.default_rng(n_first * 100 + n_second)
    first, second = _crossover_data(rng, n_first, n_second)
    frame = pd.DataFrame(
        {"dd": np.r_[first, second], "sequence": ["AB"] * n_first + ["BA"] * n_second},
    )
    fit = smf.ols("dd ~ C(sequence, Sum)", data=frame).fit()
    tau = contrasts.contrast_row("drug", contrasts.crossover(first, second))
    assert tau["estimate"] == pytest.approx(fit.params["Intercept"], rel=1e-12)
    assert tau["se"] == pytest.approx(fit.bse["Intercept"], rel=1e-12)
    assert tau["p"] == pytest.approx(fit.pvalues["Intercept"], rel=1e-10)
    assert tau["df"] == fit.df_resid
    # the period effect (second minus first) is minus the AB level's sum-coded coefficient
    period = contrasts.contrast_row("period", contrasts.crossover_period(first, second))
    coefficient = "C(sequence, Sum)[S.AB]"
    assert period["estimate"] == pytest.approx(-fit.params[coefficient], rel=1e-12)
    assert period["se"] == pytest.approx(fit.bse[coefficient], rel=1e-12)


def test_crossover_difference_between_groups():
    rng = np.random.default_rng(7)
    g1 = _crossover_data(rng, 9, 8, tau=0.4, sd=0.9)
    g2 = _crossover_data(rng, 12, 11, tau=0.0, sd=0.3)
    contrast = contrasts.crossover_difference(g1, g2)
    row = contrasts.contrast_row("difference", contrast)
    # the estimate is each group's period-adjusted effect, differenced
    tau1 = contrasts.contrast_moments(contrasts.crossover(*g1))
    tau2 = contrasts.contrast_moments(contrasts.crossover(*g2))
    assert row["estimate"] == pytest.approx(tau1.estimate - tau2.estimate, rel=1e-12)
    # each group keeps its own variance: SE and Welch-Satterthwaite df from the two groups' parts
    assert row["se"] == pytest.approx(np.hypot(tau1.se, tau2.se), rel=1e-12)
    df = (tau1.se**2 + tau2.se**2) ** 2 / (tau1.se**4 / tau1.df + tau2.se**4 / tau2.df)
    assert row["df"] == pytest.approx(df, rel=1e-12)
    # with one pooled variance it is the OLS group coefficient of the four-cell model (sum coding: half of it)
    frame = pd.DataFrame(
        {
            "dd": np.r_[(*g1, *g2)],
            "group": ["a"] * 17 + ["b"] * 23,
            "sequence": ["AB"] * 9 + ["BA"] * 8 + ["AB"] * 12 + ["BA"] * 11,
        }
    )
    fit = smf.ols("dd ~ C(group, Sum) * C(sequence, Sum)", data=frame).fit()
    pooled = contrasts.contrast_moments(contrast, pooled=True)
    assert pooled.estimate == pytest.approx(2 * fit.params["C(group, Sum)[S.a]"], rel=1e-12)
    assert pooled.se == pytest.approx(2 * fit.bse["C(group, Sum)[S.a]"], rel=1e-12)
    assert pooled.df == fit.df_resid


def test_period_adjustment_removes_the_bias_of_an_unbalanced_crossover():
    """With a period effect and unequal sequences the plain mean of the differences is biased by
    ``pi * (n_second - n_first) / n``; the period-adjusted effect is not, and its 95 % interval covers."""
    rng = np.random.default_rng(11)
    tau, period, n_first, n_second = 0.0, -0.4, 13, 5
    plain, adjusted, covered, plain_rejects, adjusted_rejects = [], [], 0, 0, 0
    n_sims = 2000
    for _ in range(n_sims):
        first, second = _crossover_data(rng, n_first, n_second, tau=tau, period=period, sd=0.5)
        naive = contrasts.contrast_row("plain", contrasts.one_sample(np.r_[first, second]))
        row = contrasts.contrast_row("adjusted", contrasts.crossover(first, second))
        plain.append(naive["estimate"])
        adjusted.append(row["estimate"])
        covered += row["ci_low"] <= tau <= row["ci_high"]
        plain_rejects += naive["p"] < 0.05
        adjusted_rejects += row["p"] < 0.05
    expected_bias = period * (n_second - n_first) / (n_first + n_second)
    assert np.mean(plain) == pytest.approx(expected_bias, abs=0.02)
    assert abs(np.mean(adjusted) - tau) < 0.02
    # size: the plain test rejects a true null far too often, the adjusted one at its level
    low, high = stats.binomtest(adjusted_rejects, n_sims).proportion_ci(0.99)
    assert low <= 0.05 <= high
    assert plain_rejects / n_sims > 0.15
    assert 0.93 <= covered / n_sims <= 0.97


def test_crossover_bayes_factor_is_the_noncentral_t_integral():
    rng = np.random.default_rng(3)
    first, second = _crossover_data(rng, 11, 6, tau=0.2)
    m = contrasts.contrast_moments(contrasts.crossover(first, second))
    n_eff = 1 / (0.25 / 11 + 0.25 / 6)
    assert m.n_eff == pytest.approx(n_eff, rel=1e-12)
    t, df, r = m.estimate / m.se, 15, np.sqrt(2) / 2
    alt = integrate.quad(
        lambda d: stats.nct.pdf(t, df, d * np.sqrt(n_eff)) * stats.cauchy.pdf(d, 0, r), -np.inf, np.inf, limit=200
    )[0]
    bf10 = equivalence.contrast_bf10(contrasts.crossover(first, second), r)
    assert bf10 == pytest.approx(alt / stats.t.pdf(t, df), rel=1e-5)


def test_contrasts_refuse_cells_without_variance_or_values():
    with pytest.raises(ValueError, match="no degrees of freedom"):
        contrasts.crossover([0.1], [0.2])
    with pytest.raises(ValueError, match="no degrees of freedom"):
        contrasts.crossover([0.1, 0.3, 0.2], [])
    with pytest.raises(ValueError, match="non-finite"):
        contrasts.one_sample([0.1, np.nan, 0.3])
    with pytest.raises(ValueError, match="one of each per cell"):
        contrasts.CellContrast(([1.0, 2.0],), (1.0, 2.0), (0,))
    with pytest.raises(ValueError, match="no variance"):
        contrasts.contrast_row("flat", contrasts.one_sample([1.0, 1.0, 1.0]))
