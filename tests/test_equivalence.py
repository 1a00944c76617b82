"""Evidence of absence: TOST against statsmodels, the JZS Bayes factor against published values
and an independent integral, sensitivity against the noncentral t."""

import numpy as np
import pytest
from scipy import integrate, stats
from statsmodels.stats.weightstats import DescrStatsW, ttost_ind, ttost_paired

from craving_circuits.stats import equivalence

# Student's sleep data (extra hours of sleep under two drugs, the same 10 patients)
SLEEP_1 = np.array([0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0])
SLEEP_2 = np.array([1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4])


@pytest.mark.parametrize("seed, shift, bound", [(0, 0.0, 0.5), (1, 0.3, 0.5), (2, -0.6, 0.4), (3, 0.1, 2.0)])
def test_tost_one_sample_and_paired_match_statsmodels(seed, shift, bound):
    rng = np.random.default_rng(seed)
    before = rng.normal(0, 1, 18)
    after = before + rng.normal(shift, 0.7, 18)
    ours = equivalence.tost(after - before, bound)
    p, lower, upper = ttost_paired(after, before, -bound, bound)
    assert ours["p"] == pytest.approx(p, rel=1e-10)
    assert (ours["t_lower"], ours["p_lower"]) == pytest.approx(lower[:2], rel=1e-10)
    assert (ours["t_upper"], ours["p_upper"]) == pytest.approx(upper[:2], rel=1e-10)
    p_mean = DescrStatsW(after - before).ttost_mean(-bound, bound)[0]
    assert ours["p"] == pytest.approx(p_mean, rel=1e-10)
    # duality: equivalence at alpha exactly when the 1 - 2 alpha interval lies inside the bounds
    inside = -bound < ours["ci_low"] and ours["ci_high"] < bound
    assert inside == (ours["p"] < 0.05)
    ci = DescrStatsW(after - before).tconfint_mean(alpha=0.10)
    assert (ours["ci_low"], ours["ci_high"]) == pytest.approx(ci, rel=1e-10)


@pytest.mark.parametrize("seed, bound", [(0, 0.8), (5, 0.3)])
def test_tost_two_samples_matches_statsmodels_pooled(seed, bound):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(0.1, 1, 18), rng.normal(0, 1.2, 23)
    ours = equivalence.tost(x, bound, y)
    p, lower, upper = ttost_ind(x, y, -bound, bound, usevar="pooled")
    assert ours["p"] == pytest.approx(p, rel=1e-10)
    assert ours["t_lower"] == pytest.approx(lower[0], rel=1e-10)
    assert ours["df"] == 18 + 23 - 2


def test_tost_refuses_bad_input():
    with pytest.raises(ValueError, match="positive"):
        equivalence.tost([1.0, 2.0, 3.0], 0.0)
    with pytest.raises(ValueError, match="non-finite"):
        equivalence.tost([1.0, np.nan, 3.0], 1.0)
    with pytest.raises(ValueError, match="no variance"):
        equivalence.tost([1.0, 1.0, 1.0], 1.0)
    with pytest.raises(ValueError, match="alpha"):
        equivalence.tost([1.0, 2.0, 3.0], 1.0, alpha=0.6)


def test_jzs_bayes_factor_reproduces_published_values():
    # BayesFactor::ttest.tstat (r = sqrt(2)/2), as published in pingouin's documentation and tests
    assert equivalence.jzs_bf10(3.5, 20) == pytest.approx(17.185, abs=1e-3)
    assert equivalence.jzs_bf10(3.5, 20, 20) == pytest.approx(26.743, abs=1e-3)
    # BayesFactor::ttestBF on the sleep data, paired: 17.25888
    t = stats.ttest_rel(SLEEP_1, SLEEP_2).statistic
    assert equivalence.jzs_bf10(t, 10) == pytest.approx(17.25888, rel=1e-5)


def _bf10_over_effect(t, n, n2, r):
    """The same Bayes factor, integrating the noncentral t density over a Cauchy prior on the effect."""
    n_eff, df = (n, n - 1) if n2 is None else (n * n2 / (n + n2), n + n2 - 2)
    alt = integrate.quad(
        lambda d: stats.nct.pdf(t, df, d * np.sqrt(n_eff)) * stats.cauchy.pdf(d, 0, r),
        -np.inf,
        np.inf,
        limit=200,
        epsabs=0,
    )[0]
    return alt / stats.t.pdf(t, df)


@pytest.mark.parametrize(
    "t, n, n2, r",
    [
        (0.0, 18, None, 0.707),
        (1.2, 18, None, 0.5),
        (-2.4, 18, None, 1.0),
        (0.3, 18, 23, 0.707),
        (2.0, 30, 25, 1.414),
        (4.0, 12, None, 0.3),
    ],
)
def test_jzs_bayes_factor_matches_an_independent_integral(t, n, n2, r):
    assert equivalence.jzs_bf10(t, n, n2, r) == pytest.approx(_bf10_over_effect(t, n, n2, r), rel=1e-5)


def test_bayes_factor_properties_and_errors():
    # symmetric in the sign of t; more data at t = 0 give more evidence for no effect
    assert equivalence.jzs_bf10(-2.0, 15) == pytest.approx(equivalence.jzs_bf10(2.0, 15), rel=1e-12)
    assert equivalence.jzs_bf10(0.0, 100) < equivalence.jzs_bf10(0.0, 20) < 1
    curve = equivalence.bayes_factor_robustness(0.0, 18)
    assert np.all(np.diff(curve["bf01"]) > 0)  # a wider prior, more evidence for the null at t = 0
    assert np.isclose(curve["prior_scale"], np.sqrt(2) / 2).any()
    np.testing.assert_allclose(curve["bf01"] * curve["bf10"], 1.0)
    with pytest.raises(ValueError, match="prior scale"):
        equivalence.jzs_bf10(1.0, 10, r=0)
    with pytest.raises(ValueError, match="n >= 2"):
        equivalence.jzs_bf10(1.0, 1)
    with pytest.raises(ValueError, match="finite"):
        equivalence.jzs_bf10(np.inf, 10)


@pytest.mark.parametrize("n, n2", [(18, None), (41, None), (18, 23)])
def test_detectable_effect_has_the_requested_power(n, n2):
    d = equivalence.detectable_effect(n, n2, alpha=0.05, power=0.8)
    if n2 is None:
        df, nc = n - 1, d * np.sqrt(n)
    else:
        df, nc = n + n2 - 2, d * np.sqrt(n * n2 / (n + n2))
    crit = stats.t.ppf(0.975, df)
    power = stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc)
    assert power == pytest.approx(0.8, abs=1e-6)


def test_verdicts_and_labels():
    assert equivalence.verdict(0.01, 0.30) == "effect"
    assert equivalence.verdict(0.40, 0.01) == "equivalent"
    assert equivalence.verdict(0.01, 0.01) == "trivial effect"
    assert equivalence.verdict(0.40, 0.30) == "inconclusive"
    assert equivalence.bf_label(4.0) == "moderate for no effect"
    assert equivalence.bf_label(1 / 40) == "very strong for an effect"
    assert equivalence.bf_label(1.5) == "anecdotal for no effect"
    assert equivalence.bf_label(150) == "extreme for no effect"
    with pytest.raises(ValueError):
        equivalence.bf_label(0.0)


def test_evidence_table_combines_the_three_answers():
    rng = np.random.default_rng(4)
    null = rng.normal(0, 1, 40)
    shifted = rng.normal(1.2, 1, 40)
    groups = (rng.normal(0, 1, 30), rng.normal(0, 1, 30))
    table = equivalence.evidence_table({"null": null, "shifted": shifted, "groups": groups}, sesoi_dz=0.8)
    assert list(table.columns) == equivalence.EVIDENCE_COLUMNS
    rows = table.set_index("term")
    assert rows.loc["null", "verdict"] == "equivalent" and rows.loc["null", "bf01"] > 3
    assert rows.loc["shifted", "verdict"] == "effect" and rows.loc["shifted", "bf01"] < 1 / 100
    # each column is what its function gives on the same sample
    sd = null.std(ddof=1)
    assert rows.loc["null", "bound"] == pytest.approx(0.8 * sd)
    assert rows.loc["null", "p_equivalence"] == pytest.approx(equivalence.tost(null, 0.8 * sd)["p"])
    t = null.mean() / (sd / np.sqrt(40))
    assert rows.loc["null", "p"] == pytest.approx(stats.ttest_1samp(null, 0).pvalue)
    assert rows.loc["null", "bf01"] == pytest.approx(1 / equivalence.jzs_bf10(t, 40))
    assert rows.loc["groups", "n"] == 60
    # two groups: Welch's test; the Bayes factor and the design's sensitivity use one variance (Student)
    assert rows.loc["groups", "p"] == pytest.approx(stats.ttest_ind(*groups, equal_var=False).pvalue, rel=1e-10)
    p_welch, _, _ = ttost_ind(*groups, -rows.loc["groups", "bound"], rows.loc["groups", "bound"], usevar="unequal")
    assert rows.loc["groups", "p_equivalence"] == pytest.approx(p_welch, rel=1e-10)
    rms_sd = np.sqrt((groups[0].var(ddof=1) + groups[1].var(ddof=1)) / 2)
    assert rows.loc["groups", "bound"] == pytest.approx(0.8 * rms_sd)
    t_pooled = stats.ttest_ind(*groups).statistic
    assert rows.loc["groups", "bf01"] == pytest.approx(1 / equivalence.jzs_bf10(t_pooled, 30, 30), rel=1e-8)
    assert rows.loc["groups", "detectable_dz"] == pytest.approx(equivalence.detectable_effect(30, 30), rel=1e-5)
    assert rows.loc["null", "detectable_dz"] == pytest.approx(equivalence.detectable_effect(40), rel=1e-5)
    # the smallest bound the data support: equivalence just above it, not just below
    within = rows.loc["null", "equivalent_within_dz"]
    assert equivalence.tost(null, (within + 1e-6) * sd)["p"] < 0.05 < equivalence.tost(null, (within - 1e-3) * sd)["p"]
    with pytest.raises(ValueError, match="sesoi_dz"):
        equivalence.evidence_table({"a": null}, sesoi_dz=-1)
    curves = equivalence.robustness_curves({"null": null, "groups": groups})
    assert set(curves) == {"null", "groups"}
    default = curves["null"].set_index("prior_scale")["bf01"]
    assert default.loc[default.index[np.isclose(default.index, np.sqrt(2) / 2)][0]] == pytest.approx(
        rows.loc["null", "bf01"]
    )


@pytest.mark.parametrize("r, n, bound_r", [(0.1, 30, 0.4), (-0.35, 18, 0.5), (0.6, 100, 0.3)])
def test_tost_correlation_matches_statsmodels_ztost_on_fisher_z(r, n, bound_r):
    """statsmodels' ztost on two values z -/+ se (mean z, standard error se) is the same z test."""
    from statsmodels.stats.weightstats import ztost

    ours = equivalence.tost_correlation(r, n, bound_r)
    z, se = np.arctanh(r), 1 / np.sqrt(n - 3)
    p, lower, upper = ztost(np.array([z - se, z + se]), -np.arctanh(bound_r), np.arctanh(bound_r))
    assert ours["p"] == pytest.approx(p, rel=1e-10)
    assert ours["p_lower"] == pytest.approx(lower[1], rel=1e-10)
    assert ours["p_upper"] == pytest.approx(upper[1], rel=1e-10)
    # the 90 % interval lies inside the bounds exactly when equivalence is declared
    inside = -bound_r < ours["ci_low"] and ours["ci_high"] < bound_r
    assert inside == (ours["p"] < 0.05)


def test_tost_correlation_exact_value_and_errors():
    # r = 0, n = 28: se of z is 0.2; bound z = 0.5 is 2.5 standard errors away
    result = equivalence.tost_correlation(0.0, 28, float(np.tanh(0.5)))
    assert result["p"] == pytest.approx(stats.norm.sf(2.5), rel=1e-12)
    assert result["ci_high"] == pytest.approx(np.tanh(stats.norm.ppf(0.95) * 0.2))
    for bad in (dict(r=1.0, n=20, bound_r=0.3), dict(r=0.2, n=3, bound_r=0.3), dict(r=0.2, n=20, bound_r=0.0)):
        with pytest.raises(ValueError):
            equivalence.tost_correlation(**bad)
