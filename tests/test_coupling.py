"""Coupling statistics: against scipy/statsmodels, hand computation and published worked examples."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.diagnostic import het_breuschpagan
from statsmodels.stats.outliers_influence import OLSInfluence

from craving_circuits.cocaine import glutamate, mrs
from craving_circuits.stats import correlation

RESULT = ["term", "estimate", "se", "ci_low", "ci_high", "p"]


def _xy(n, seed, slope=0.5):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    return x, slope * x + rng.standard_normal(n)


# --------------------------------------------------------------------------- correlation and bootstrap


@pytest.mark.parametrize("method, scipy_test", [("pearson", stats.pearsonr), ("spearman", stats.spearmanr)])
def test_correlation_estimate_and_p_equal_scipy(method, scipy_test):
    x, y = _xy(30, 1)
    row = correlation.correlation(x, y, method, n_boot=300, rng=0)
    expected = scipy_test(x, y)
    assert row["term"] == method and row["n"] == 30
    np.testing.assert_allclose([row["estimate"], row["p"]], [expected.statistic, expected.pvalue], rtol=1e-10)
    assert row["ci_low"] < row["estimate"] < row["ci_high"]
    assert row["se"] > 0


def _naive_boot(cols, pairs, method, n_boot, seed):
    """Resample participants with the documented draw: integers(0, n, size=(n_boot, n)), then one r per pair."""
    n = len(next(iter(cols.values())))
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    out = np.empty((n_boot, len(pairs)))
    for b in range(n_boot):
        for j, (a, c) in enumerate(pairs):
            xa, xc = cols[a][idx[b]], cols[c][idx[b]]
            r = stats.pearsonr(xa, xc) if method == "pearson" else stats.spearmanr(xa, xc)
            out[b, j] = r.statistic
    return out


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_bootstrap_correlations_equal_a_naive_loop(method):
    rng = np.random.default_rng(5)
    a = rng.standard_normal(15)
    cols = {"a": a, "b": a + rng.standard_normal(15), "c": rng.standard_normal(15)}
    pairs = [("a", "b"), ("a", "c"), ("c", "b")]
    boot = correlation.bootstrap_correlations(cols, pairs, method, n_boot=200, rng=11)
    assert boot.shape == (200, 3)
    np.testing.assert_allclose(boot, _naive_boot(cols, pairs, method, 200, 11), rtol=1e-10, atol=1e-12)
    # a Generator seeded the same way gives the same draws
    np.testing.assert_array_equal(
        boot, correlation.bootstrap_correlations(cols, pairs, method, 200, np.random.default_rng(11))
    )
    with pytest.raises(ValueError, match="method"):
        correlation.bootstrap_correlations(cols, pairs, "kendall", 10, 0)


def test_correlation_ci_is_percentile_of_the_naive_bootstrap():
    x, y = _xy(25, 2)
    row = correlation.correlation(x, y, "pearson", n_boot=400, rng=3, alpha=0.1)
    boot = _naive_boot({"x": x, "y": y}, [("x", "y")], "pearson", 400, 3)[:, 0]
    np.testing.assert_allclose(
        [row["ci_low"], row["ci_high"], row["se"]],
        [np.quantile(boot, 0.05), np.quantile(boot, 0.95), boot.std(ddof=1)],
        rtol=1e-10,
    )


def test_correlation_bootstrap_reproducible_and_shrinks_with_n():
    x, y = _xy(20, 4)
    first = correlation.correlation(x, y, n_boot=500, rng=7)
    assert first == correlation.correlation(x, y, n_boot=500, rng=7)
    assert first["ci_low"] != correlation.correlation(x, y, n_boot=500, rng=8)["ci_low"]
    xl, yl = _xy(400, 4)
    large = correlation.correlation(xl, yl, n_boot=500, rng=7)
    # CI width scales roughly as 1/sqrt(n): 20 -> 400 should shrink it about 4.5-fold
    assert (large["ci_high"] - large["ci_low"]) < 0.5 * (first["ci_high"] - first["ci_low"])
    assert large["se"] < 0.5 * first["se"]


def test_correlation_rejects_missing_values_and_too_few_pairs():
    x, y = _xy(10, 0)
    y[[2, 7]] = np.nan
    with pytest.raises(ValueError, match="2 of 10 pairs"):
        correlation.correlation(x, y, n_boot=10, rng=0)
    x[3] = np.inf
    with pytest.raises(ValueError, match="3 of 10 pairs"):
        correlation.correlation(x, y, n_boot=10, rng=0)
    with pytest.raises(ValueError, match="at least 4"):
        correlation.correlation([1.0, 2.0, 3.0], [1.0, 3.0, 2.0], n_boot=10, rng=0)
    with pytest.raises(ValueError, match="same length"):
        correlation.correlation([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0], n_boot=10, rng=0)


# --------------------------------------------------------------------------- Steiger's test


def test_steiger_published_example_steiger_1980_case_a():
    # Steiger (1980), Psychological Bulletin 87:245-251, p. 249, Case A: r_jk=.4, r_jh=.5, r_kh=.1, n=103.
    # The paper reports z = -.8913, computed by hand with rounded intermediate quantities (the covariance
    # of the Fisher z values was carried as a rounded figure); with full precision the same formula gives
    # about -0.889, so we check agreement with the published value to 0.005 rather than 4 decimals.
    z, p = correlation.steiger_test(0.4, 0.5, 0.1, 103)
    assert abs(z - (-0.8913)) < 0.005
    np.testing.assert_allclose(p, 2 * stats.norm.sf(abs(z)))


def test_steiger_published_example_silver_hittner_may_2006():
    # Silver, Hittner & May (2006), Applied Psychological Measurement 30:152-153 (DEPCOR),
    # Steiger's Z for r_jk=.3, r_jh=.4, r_kh=.5, n=100: z = -1.0718, p = .2838.
    z, p = correlation.steiger_test(0.3, 0.4, 0.5, 100)
    assert round(z, 4) == -1.0718
    assert round(p, 4) == 0.2838


def test_steiger_symmetry_zero_and_input_checks():
    z, p = correlation.steiger_test(0.3, 0.4, 0.5, 100)
    z_swapped, p_swapped = correlation.steiger_test(0.4, 0.3, 0.5, 100)
    np.testing.assert_allclose([z_swapped, p_swapped], [-z, p])
    z0, p0 = correlation.steiger_test(0.35, 0.35, 0.2, 50)
    assert z0 == 0.0 and p0 == pytest.approx(1.0)
    # a larger correlation between k and h makes the two r's more dependent: larger |z| for the same gap
    assert abs(correlation.steiger_test(0.3, 0.4, 0.8, 100)[0]) > abs(z)
    for bad in [(1.0, 0.3, 0.2, 50), (0.3, -1.0, 0.2, 50), (0.3, 0.2, 1.2, 50), (0.3, 0.2, np.nan, 50)]:
        with pytest.raises(ValueError):
            correlation.steiger_test(*bad)
    with pytest.raises(ValueError, match="n must be"):
        correlation.steiger_test(0.3, 0.2, 0.1, 3)


def _coupling_frame(n=40, seed=6):
    rng = np.random.default_rng(seed)
    g = rng.standard_normal(n)
    return pd.DataFrame(
        {
            "participant_id": [f"sub-{i:02d}" for i in range(n)],
            "group": np.where(np.arange(n) % 3 == 0, "control", "CUD"),
            "dfc_a": 0.6 * g + rng.standard_normal(n),
            "dfc_b": 0.1 * g + rng.standard_normal(n),
            "dglu": g,
        }
    )


def test_compare_couplings_against_scipy_steiger_and_naive_bootstrap():
    t = _coupling_frame()
    out = glutamate.compare_couplings(t, "a", "b", n_boot=300, rng=2)
    assert len(out) == 1 and list(out.columns) == ["n", "statistic"] + RESULT
    row = out.iloc[0]
    r_a = stats.pearsonr(t["dfc_a"], t["dglu"]).statistic
    r_b = stats.pearsonr(t["dfc_b"], t["dglu"]).statistic
    r_ab = stats.pearsonr(t["dfc_a"], t["dfc_b"]).statistic
    z, p = correlation.steiger_test(r_a, r_b, r_ab, 40)
    np.testing.assert_allclose([row["estimate"], row["statistic"], row["p"]], [r_a - r_b, z, p], rtol=1e-10)
    assert row["n"] == 40 and row["term"] == "r(dfc_a, dglu) - r(dfc_b, dglu)"
    assert row["ci_low"] < row["estimate"] < row["ci_high"]
    cols = {k: t[k].to_numpy() for k in ("dfc_a", "dfc_b", "dglu")}
    boot = _naive_boot(cols, [("dglu", "dfc_a"), ("dglu", "dfc_b")], "pearson", 300, 2)
    diff = boot[:, 0] - boot[:, 1]
    np.testing.assert_allclose(
        [row["ci_low"], row["ci_high"], row["se"]],
        [np.quantile(diff, 0.025), np.quantile(diff, 0.975), diff.std(ddof=1)],
        rtol=1e-10,
    )


# --------------------------------------------------------------------------- regressions


def test_robust_regression_equals_statsmodels_huber():
    x, y = _xy(30, 9, slope=0.8)
    t = pd.DataFrame({"dfc": y, "dglu": x})
    out = correlation.robust_regression(t, "dfc", "dglu", alpha=0.1)
    assert list(out.columns) == RESULT and out["term"].tolist() == ["intercept", "dglu"]
    ref = sm.RLM(y, sm.add_constant(x), M=sm.robust.norms.HuberT()).fit()
    np.testing.assert_allclose(out["estimate"], ref.params, rtol=1e-10)
    np.testing.assert_allclose(out["se"], ref.bse, rtol=1e-10)
    np.testing.assert_allclose(out["p"], ref.pvalues, rtol=1e-10)
    ci = np.asarray(ref.conf_int(0.1))
    np.testing.assert_allclose(out[["ci_low", "ci_high"]].to_numpy(), ci, rtol=1e-10)
    # Wald (normal) 90 % interval by hand
    np.testing.assert_allclose(out["ci_high"], ref.params + stats.norm.ppf(0.95) * ref.bse, rtol=1e-10)


def test_robust_regression_resists_one_outlier_where_ols_does_not():
    x = np.arange(21) / 2.0
    y = 1.0 + 2.0 * x + 0.1 * np.where(np.arange(21) % 2, 1.0, -1.0)  # true slope 2, tiny alternating noise
    y[-1] = 100.0  # the last participant's change is wildly off the line (true value about 21)
    t = pd.DataFrame({"y": y, "x": x})
    robust_slope = correlation.robust_regression(t, "y", "x")["estimate"].iloc[1]
    ols_slope = np.polyfit(x, y, 1)[0]
    assert abs(robust_slope - 2.0) < 0.1
    assert abs(ols_slope - 2.0) > 1.0


def test_influence_equals_statsmodels_and_hand_formulas_and_flags_planted_point():
    rng = np.random.default_rng(12)
    x = rng.standard_normal(20)
    y = 0.5 * x + 0.3 * rng.standard_normal(20)
    x[-1], y[-1] = 6.0, -4.0  # far out on x and against the trend
    t = pd.DataFrame({"participant_id": [f"sub-{i:02d}" for i in range(20)], "x": x, "y": y})
    out = correlation.influence(t, "y", "x")
    assert list(out.columns) == ["participant_id", "leverage", "cooks_distance", "studentized_residual", "influential"]
    assert out["participant_id"].tolist() == t["participant_id"].tolist()
    ref = OLSInfluence(sm.OLS(y, sm.add_constant(x)).fit())
    np.testing.assert_allclose(out["leverage"], ref.hat_matrix_diag, rtol=1e-10)
    np.testing.assert_allclose(out["cooks_distance"], ref.cooks_distance[0], rtol=1e-10)
    np.testing.assert_allclose(out["studentized_residual"], ref.resid_studentized_external, rtol=1e-10)
    # simple-regression formulas: h = 1/n + (x - mean)^2 / Sxx, D = e^2 h / (p s^2 (1 - h)^2)
    h = 1 / 20 + (x - x.mean()) ** 2 / ((x - x.mean()) ** 2).sum()
    slope, intercept = np.polyfit(x, y, 1)
    e = y - (intercept + slope * x)
    s2 = (e**2).sum() / (20 - 2)
    np.testing.assert_allclose(out["leverage"], h, rtol=1e-10)
    np.testing.assert_allclose(out["cooks_distance"], e**2 * h / (2 * s2 * (1 - h) ** 2), rtol=1e-10)
    assert out["influential"].tolist() == (out["cooks_distance"] > 4 / 20).tolist()
    assert bool(out["influential"].iloc[-1])
    assert out["cooks_distance"].idxmax() == 19


def _clinical(n=25, seed=13):
    rng = np.random.default_rng(seed)
    t = pd.DataFrame(
        {
            "cocaine_g_per_week": np.exp(rng.normal(1.0, 0.6, n)),
            "years_use": rng.normal(10, 4, n),
            "age": rng.normal(40, 8, n),
        }
    )
    t["dfc_a"] = 0.4 * np.log(t["cocaine_g_per_week"]) - 0.05 * t["years_use"] + rng.normal(0, 0.3, n)
    t["dfc_b"] = 0.02 * t["age"] + rng.normal(0, 0.3, n)
    return t


def _zscore(a):
    return (a - a.mean(axis=0)) / a.std(axis=0, ddof=1)


def test_predictor_model_betas_equal_lstsq_on_zscored_data_and_fit_equals_statsmodels():
    t = _clinical()
    preds = ["cocaine_g_per_week", "years_use", "age"]
    coef, fit = glutamate.predictor_model(t, "dfc_a", preds, alpha=0.05)
    assert list(coef.columns) == RESULT and coef["term"].tolist() == preds

    raw = np.column_stack([np.log(t["cocaine_g_per_week"]), t["years_use"], t["age"]])
    zx, zy = _zscore(raw), _zscore(t["dfc_a"].to_numpy())
    beta = np.linalg.lstsq(np.column_stack([np.ones(25), zx]), zy, rcond=None)[0]
    np.testing.assert_allclose(beta[0], 0.0, atol=1e-12)
    np.testing.assert_allclose(coef["estimate"], beta[1:], rtol=1e-10)
    zfit = sm.OLS(zy, sm.add_constant(zx)).fit()
    np.testing.assert_allclose(coef["se"], zfit.bse[1:], rtol=1e-10)
    np.testing.assert_allclose(coef["p"], zfit.pvalues[1:], rtol=1e-10)
    np.testing.assert_allclose(coef[["ci_low", "ci_high"]].to_numpy(), np.asarray(zfit.conf_int(0.05))[1:], rtol=1e-10)

    # fit statistics are invariant to standardising: compare with the fit on the unstandardised data
    rawfit = sm.OLS(t["dfc_a"].to_numpy(), sm.add_constant(raw)).fit()
    assert fit["n"] == 25
    np.testing.assert_allclose(
        [fit["r2"], fit["adj_r2"], fit["f"], fit["p_f"]],
        [rawfit.rsquared, rawfit.rsquared_adj, rawfit.fvalue, rawfit.f_pvalue],
        rtol=1e-8,
    )
    resid_z = zy - np.column_stack([np.ones(25), zx]) @ beta
    sh = stats.shapiro(resid_z)
    np.testing.assert_allclose([fit["shapiro_w"], fit["shapiro_p"]], [sh.statistic, sh.pvalue], rtol=1e-6)
    np.testing.assert_allclose(fit["breusch_pagan_p"], het_breuschpagan(rawfit.resid, rawfit.model.exog)[1], rtol=1e-8)
    np.testing.assert_allclose(fit["max_cooks_distance"], rawfit.get_influence().cooks_distance[0].max(), rtol=1e-8)


def test_predictor_model_recovers_planted_standardised_weights_exactly():
    rng = np.random.default_rng(21)
    a = rng.standard_normal((12, 2))
    q, _ = np.linalg.qr(a - a.mean(axis=0))  # two centred, uncorrelated columns
    z = q / q.std(axis=0, ddof=1)  # sample-standardised
    zy = 0.6 * z[:, 0] + 0.8 * z[:, 1]  # 0.6^2 + 0.8^2 = 1, so zy is standardised too
    t = pd.DataFrame(
        {"dfc_a": 3.0 + 2.0 * zy, "cocaine_g_per_week": np.exp(1.0 + 0.5 * z[:, 0]), "age": 30.0 + 5.0 * z[:, 1]}
    )
    coef, fit = glutamate.predictor_model(t, "dfc_a", ["cocaine_g_per_week", "age"])
    np.testing.assert_allclose(coef["estimate"], [0.6, 0.8], atol=1e-10)
    np.testing.assert_allclose(fit["r2"], 1.0, atol=1e-12)
    # without the log transform the grams column is no longer linear in the outcome
    coef_raw, fit_raw = glutamate.predictor_model(t, "dfc_a", ["cocaine_g_per_week", "age"], log_columns=())
    assert fit_raw["r2"] < 1 - 1e-6


def test_predictor_model_rejects_bad_input():
    t = _clinical()
    preds = ["cocaine_g_per_week", "years_use"]
    with_nan = t.copy()
    with_nan.loc[3, "years_use"] = np.nan
    with pytest.raises(ValueError, match="1 participants have a missing value"):
        glutamate.predictor_model(with_nan, "dfc_a", preds)
    zero = t.copy()
    zero.loc[0, "cocaine_g_per_week"] = 0.0
    with pytest.raises(ValueError, match="positive"):
        glutamate.predictor_model(zero, "dfc_a", preds)
    with pytest.raises(ValueError, match="ocdus"):
        glutamate.predictor_model(t, "dfc_a", preds + ["ocdus"])
    with pytest.raises(ValueError, match="too few"):
        glutamate.predictor_model(t.iloc[:4], "dfc_a", preds)  # 4 rows, 2 predictors (needs 5)
    glutamate.predictor_model(t.iloc[:5], "dfc_a", preds)  # 5 rows are enough


# --------------------------------------------------------------------------- participant change table


def _session_tables():
    fc = pd.DataFrame(
        [
            # participant, group, session, drug, target, delta
            ("sub-01", "CUD", "ses-1", "placebo", "dlpfc", 0.2),
            ("sub-01", "CUD", "ses-1", "placebo", "thal", 0.4),
            ("sub-01", "CUD", "ses-2", "NAC", "dlpfc", 0.4),
            ("sub-01", "CUD", "ses-2", "NAC", "thal", 0.0),
            ("sub-02", "CUD", "ses-1", "placebo", "dlpfc", 0.1),
            ("sub-02", "CUD", "ses-1", "placebo", "thal", 0.3),
            ("sub-02", "CUD", "ses-2", "NAC", "dlpfc", 0.5),
            ("sub-02", "CUD", "ses-2", "NAC", "thal", 0.7),
            ("sub-03", "control", "ses-1", "NAC", "dlpfc", -0.2),
            ("sub-03", "control", "ses-1", "NAC", "thal", 0.1),
            ("sub-04", "control", "ses-1", "placebo", "dlpfc", 0.3),
            ("sub-04", "control", "ses-1", "placebo", "thal", 0.3),
        ],
        columns=["participant_id", "group", "session_id", "drug", "target", "delta"],
    )
    glu = pd.DataFrame(
        [
            ("sub-01", "ses-1", 1.0, 10.0),
            ("sub-01", "ses-2", 2.0, 20.0),
            ("sub-02", "ses-1", 0.5, 5.0),  # ses-2 has FC but no glutamate change
            ("sub-03", "ses-1", -0.4, -4.0),
            ("sub-03", "ses-2", 0.6, 6.0),  # ses-2 has glutamate but no FC
            ("sub-04", "ses-2", 0.3, 3.0),  # glutamate only where FC is missing
        ],
        columns=["participant_id", "session_id", "delta", "delta_pct"],
    )
    participants = pd.DataFrame(
        {
            "participant_id": ["sub-01", "sub-02", "sub-03", "sub-04"],
            "age": [30, 40, 35, 45],
            "group": ["CUD", "CUD", "control", "control"],
            "ocdus_obsessive": [8.0, 16.0, np.nan, np.nan],
        }
    )
    drugs = pd.DataFrame(
        [
            ("sub-01", "ses-1", "placebo"),
            ("sub-01", "ses-2", "NAC"),
            ("sub-02", "ses-1", "placebo"),
            ("sub-02", "ses-2", "NAC"),
            ("sub-03", "ses-1", "NAC"),
            ("sub-03", "ses-2", "placebo"),
            ("sub-04", "ses-1", "placebo"),
            ("sub-04", "ses-2", "NAC"),
        ],
        columns=["participant_id", "session_id", "drug"],
    )
    return fc, glu, participants, drugs


def test_participant_changes_averages_only_sessions_with_both_changes():
    fc, glu, participants, drugs = _session_tables()
    table, excl = glutamate.participant_changes(fc, glu, participants, drugs)
    assert list(table.columns) == [
        "participant_id",
        "group",
        "n_sessions",
        "dfc_dlpfc",
        "dfc_thal",
        "dglu",
        "age",
        "ocdus_obsessive",
    ]
    assert table["participant_id"].tolist() == ["sub-01", "sub-02", "sub-03"]
    assert table["n_sessions"].tolist() == [2, 1, 1]
    np.testing.assert_allclose(
        table[["dfc_dlpfc", "dfc_thal", "dglu"]].to_numpy(float), [[0.3, 0.2, 15.0], [0.1, 0.3, 5.0], [-0.2, 0.1, -4.0]]
    )
    assert table["group"].tolist() == ["CUD", "CUD", "control"]
    assert table["age"].tolist() == [30, 40, 35]
    np.testing.assert_allclose(table["ocdus_obsessive"], [8.0, 16.0, np.nan])
    assert excl["participant_id"].tolist() == ["sub-04"]
    assert "no session" in excl["reason"].iloc[0]

    raw, _ = glutamate.participant_changes(fc, glu, participants, drugs, glu_column="delta")
    np.testing.assert_allclose(raw["dglu"], [1.5, 0.5, -0.4])


def test_participant_changes_single_drug_session():
    fc, glu, participants, drugs = _session_tables()
    placebo, excl = glutamate.participant_changes(fc, glu, participants, drugs, sessions="placebo")
    assert placebo["participant_id"].tolist() == ["sub-01", "sub-02"]
    assert placebo["n_sessions"].tolist() == [1, 1]
    np.testing.assert_allclose(
        placebo[["dfc_dlpfc", "dfc_thal", "dglu"]].to_numpy(float), [[0.2, 0.4, 10.0], [0.1, 0.3, 5.0]]
    )
    assert excl["participant_id"].tolist() == ["sub-03", "sub-04"]
    assert excl["reason"].str.contains("placebo").all()

    nac, excl_nac = glutamate.participant_changes(fc, glu, participants, drugs, sessions="NAC")
    assert nac["participant_id"].tolist() == ["sub-01", "sub-03"]
    np.testing.assert_allclose(
        nac[["dfc_dlpfc", "dfc_thal", "dglu"]].to_numpy(float), [[0.4, 0.0, 20.0], [-0.2, 0.1, -4.0]]
    )
    assert excl_nac["participant_id"].tolist() == ["sub-02", "sub-04"]


def test_participant_changes_rejects_bad_options():
    fc, glu, participants, drugs = _session_tables()
    with pytest.raises(ValueError, match="sessions"):
        glutamate.participant_changes(fc, glu, participants, drugs, sessions="first")
    with pytest.raises(ValueError, match="glu_column"):
        glutamate.participant_changes(fc, glu, participants, drugs, glu_column="neutral")


# --------------------------------------------------------------------------- mean change


def test_mean_change_equals_scipy_one_sample_t():
    v = np.array([4.0, -1.0, 6.5, 2.0, 3.5, 0.5, 5.0])
    out = correlation.mean_change(v, "dglu", alpha=0.1)
    assert list(out.columns) == ["n"] + RESULT and len(out) == 1
    row = out.iloc[0]
    test = stats.ttest_1samp(v, 0.0)
    ci = test.confidence_interval(0.9)
    assert row["n"] == 7 and row["term"] == "dglu"
    np.testing.assert_allclose(
        [row["estimate"], row["se"], row["ci_low"], row["ci_high"], row["p"]],
        [v.mean(), stats.sem(v), ci.low, ci.high, test.pvalue],
        rtol=1e-10,
    )
    # the t interval by hand
    np.testing.assert_allclose(row["ci_high"], v.mean() + stats.t.ppf(0.95, 6) * v.std(ddof=1) / np.sqrt(7))
    with pytest.raises(ValueError, match="1 values are missing"):
        correlation.mean_change([1.0, np.nan, 2.0], "x")
    with pytest.raises(ValueError, match="at least 2"):
        correlation.mean_change([1.0], "x")


# --------------------------------------------------------------------------- tables over targets


def test_robust_table_rows_equal_single_target_fits():
    t = _coupling_frame()
    out = glutamate.robust_table(t, ["a", "b"])
    assert list(out.columns) == ["target"] + RESULT
    assert out["target"].tolist() == ["a", "b"] and out["term"].tolist() == ["dglu", "dglu"]
    for i, target in enumerate(["a", "b"]):
        ref = sm.RLM(
            t[f"dfc_{target}"].to_numpy(), sm.add_constant(t["dglu"].to_numpy()), M=sm.robust.norms.HuberT()
        ).fit()
        np.testing.assert_allclose(
            out.loc[i, ["estimate", "se", "p"]].to_numpy(float), [ref.params[1], ref.bse[1], ref.pvalues[1]], rtol=1e-10
        )
        single = correlation.robust_regression(t, f"dfc_{target}", "dglu").iloc[1]
        np.testing.assert_allclose(out.loc[i, RESULT[1:]].to_numpy(float), single[RESULT[1:]].to_numpy(float))


def test_predictor_table_rows_equal_single_target_models():
    t = _clinical()
    preds = ["cocaine_g_per_week", "age"]
    coefs, fits = glutamate.predictor_table(t, ["a", "b"], preds)
    assert list(coefs.columns) == ["target"] + RESULT
    assert coefs["target"].tolist() == ["a", "a", "b", "b"]
    assert coefs["term"].tolist() == preds * 2
    assert fits["target"].tolist() == ["a", "b"]
    for i, target in enumerate(["a", "b"]):
        c, f = glutamate.predictor_model(t, f"dfc_{target}", preds)
        np.testing.assert_allclose(
            coefs.iloc[2 * i : 2 * i + 2][RESULT[1:]].to_numpy(float), c[RESULT[1:]].to_numpy(float)
        )
        for k, v in f.items():
            assert fits.loc[i, k] == pytest.approx(v)
        # independent check of the standardised betas
        zx = _zscore(np.column_stack([np.log(t["cocaine_g_per_week"]), t["age"]]))
        zy = _zscore(t[f"dfc_{target}"].to_numpy())
        beta = np.linalg.lstsq(np.column_stack([np.ones(len(t)), zx]), zy, rcond=None)[0]
        np.testing.assert_allclose(coefs.iloc[2 * i : 2 * i + 2]["estimate"], beta[1:], rtol=1e-10)


def test_coupling_table_one_row_per_target_sample_method():
    t = _coupling_frame()
    out = glutamate.coupling_table(t, ["a", "b"], n_boot=200, rng=4)
    assert list(out.columns) == ["target", "sample", "method", "n"] + RESULT
    assert len(out) == 2 * 2 * 2
    keys = list(zip(out["sample"], out["target"], out["method"]))
    assert keys == [(s, tg, m) for s in ("CUD", "all") for tg in ("a", "b") for m in ("pearson", "spearman")]
    n_cud = int((t["group"] == "CUD").sum())
    assert out["n"].tolist() == [n_cud] * 4 + [40] * 4
    assert out["term"].iloc[0] == "pearson r"  # target and sample have their own columns

    # one shared generator, consumed in the table's order: the same rows from single correlations
    rng = np.random.default_rng(4)
    for row in out.itertuples(index=False):
        sub = t if row.sample == "all" else t[t["group"] == "CUD"]
        ref = correlation.correlation(sub[f"dfc_{row.target}"], sub["dglu"], row.method, 200, rng)
        np.testing.assert_allclose(
            [row.estimate, row.se, row.ci_low, row.ci_high, row.p],
            [ref[k] for k in ("estimate", "se", "ci_low", "ci_high", "p")],
            rtol=1e-12,
        )
        scipy_test = stats.pearsonr if row.method == "pearson" else stats.spearmanr
        expected = scipy_test(sub[f"dfc_{row.target}"], sub["dglu"])
        np.testing.assert_allclose([row.estimate, row.p], [expected.statistic, expected.pvalue], rtol=1e-10)

    custom = glutamate.coupling_table(
        t, ["a"], samples={"controls": ["control"]}, methods=("spearman",), n_boot=50, rng=0
    )
    assert custom[["target", "sample", "method", "n"]].values.tolist() == [["a", "controls", "spearman", 40 - n_cud]]


# --------------------------------------------------------------------------- QC sensitivity


def test_qc_sensitivity_n_and_r_per_setting():
    # six CUD participants and one control, one placebo session each; sub-06's craving Glu has CRLB 25 %
    neutral = [10.0, 10.0, 8.0, 12.0, 10.0, 9.0, 10.0]
    craving = [11.0, 10.5, 9.0, 12.0, 13.0, 9.9, 12.0]
    crlb_craving = [5.0, 19.0, 20.0, 8.0, 6.0, 25.0, 5.0]
    dfc = [0.30, 0.05, 0.20, -0.10, 0.25, 0.40, -0.3]
    pids = [f"sub-0{i + 1}" for i in range(7)]
    groups = ["CUD"] * 6 + ["control"]
    rows = []
    for pid, n_val, c_val, c_crlb in zip(pids, neutral, craving, crlb_craving):
        rows.append(dict(zip(mrs.MRS_COLUMNS, [pid, "ses-1", "neutral", "Glu", 1.0, n_val, 6.0, 8.0, 20.0])))
        rows.append(dict(zip(mrs.MRS_COLUMNS, [pid, "ses-1", "craving", "Glu", 1.0, c_val, c_crlb, 8.0, 20.0])))
    mrs_table = pd.DataFrame(rows)
    fc = pd.DataFrame(
        {
            "participant_id": pids,
            "group": groups,
            "session_id": "ses-1",
            "drug": "placebo",
            "target": "dlpfc",
            "delta": dfc,
        }
    )
    participants = pd.DataFrame({"participant_id": pids, "group": groups})
    drugs = pd.DataFrame({"participant_id": pids, "session_id": "ses-1", "drug": "placebo"})

    out = glutamate.qc_sensitivity(
        mrs_table, fc, participants, drugs, ["dlpfc"], {"strict": {"max_crlb": 20}, "none": {"max_crlb": None}}
    )
    assert list(out.columns) == ["setting", "target", "n", "r", "p", "mean_dglu"]
    assert out["setting"].tolist() == ["strict", "none"] and out["target"].tolist() == ["dlpfc", "dlpfc"]

    pct = 100 * (np.array(craving) - np.array(neutral)) / np.array(neutral)
    x_all, y_all = np.array(dfc[:6]), pct[:6]  # CUD only; the control never enters
    expected = {"strict": (x_all[:5], y_all[:5]), "none": (x_all, y_all)}  # strict drops sub-06 (CRLB 25 > 20)
    for row in out.itertuples(index=False):
        x, y = expected[row.setting]
        ref = stats.pearsonr(x, y)
        assert row.n == len(x)
        np.testing.assert_allclose([row.r, row.p, row.mean_dglu], [ref.statistic, ref.pvalue, y.mean()], rtol=1e-10)
    assert out["n"].tolist() == [5, 6]


def test_coupling_equivalence_separates_absent_present_and_unknown_links():
    couplings = pd.DataFrame(
        {
            "target": ["a", "b", "c", "a"],
            "sample": "CUD",
            "method": ["pearson"] * 3 + ["spearman"],
            "n": [300, 300, 18, 300],
            "estimate": [0.01, 0.5, 0.05, 0.01],
            "p": [0.86, 1e-20, 0.84, 0.86],
        }
    )
    table = glutamate.coupling_equivalence(couplings, bound_r=0.3)
    assert list(table["target"]) == ["a", "b", "c"]  # Pearson rows only
    assert list(table["verdict"]) == ["equivalent", "effect", "inconclusive"]
    # the 90 % interval of r: Fisher z +/- 1.645 / sqrt(n - 3), back-transformed
    half = stats.norm.ppf(0.95) / np.sqrt(297)
    assert table.loc[0, "ci90_low"] == pytest.approx(np.tanh(np.arctanh(0.01) - half))
    with pytest.raises(ValueError, match="lacks the column"):
        glutamate.coupling_equivalence(couplings.drop(columns="n"), 0.3)
