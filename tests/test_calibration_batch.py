"""Stacked replicates: the chapters' chains, the statistics under them and the ROI-level simulators
give every replicate of a stack exactly what they give it alone, so that the calibration tests many
replicates at once with the chapters' own functions."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import integrate, stats
from statsmodels.stats.diagnostic import het_breuschpagan

from conftest import BACLOFEN_ROI_MODEL as MODEL
from craving_circuits.cocaine import chapters, glutamate, secondlevel
from craving_circuits.io.schemas import REPLICATE
from craving_circuits.simulate import roi_level
from craving_circuits.simulate.cocaine import SOURCES, simulate_participants, simulate_runs_table, source_correlation
from craving_circuits.simulate.signals import band_limited_noise, correlated_sources
from craving_circuits.stats import contrasts, correlation, equivalence
from craving_circuits.stats.mediation import mediation_analysis
from craving_circuits.verdict import calibration

SEEDS = [11, 12, 13]


def _replicate(table: pd.DataFrame, label) -> pd.DataFrame:
    return table[table[REPLICATE] == label].drop(columns=REPLICATE).reset_index(drop=True)


def _assert_same_tables(stacked: dict, alone: dict, label) -> None:
    assert set(stacked) == set(alone)
    for name, table in alone.items():
        assert list(stacked[name].columns) == [REPLICATE, *table.columns], name
        pd.testing.assert_frame_equal(
            _replicate(stacked[name], label), table.reset_index(drop=True), check_dtype=False, rtol=1e-12, atol=1e-12
        )


def _rngs(labels):
    return {label: np.random.default_rng([label, 7]) for label in labels}


# --------------------------------------------------------------------------- simulators


@pytest.mark.parametrize("study", ["cocaine", "baclofen"])
def test_stacked_simulator_replicate_is_the_single_simulator(study):
    # a seed under two conditions in a row (which share the noise that does not depend on the effects), then others
    jobs = [("paper", SEEDS[0]), ("null", SEEDS[0]), ("double", SEEDS[1]), ("paper", SEEDS[2])]
    params = [calibration.condition_params(study, condition, seed) for condition, seed in jobs]
    labels = [10, 3, 7, 5]
    if study == "cocaine":
        stacked = roi_level.cocaine_roi_studies(params, replicates=labels)
    else:
        stacked = roi_level.baclofen_roi_studies(params, MODEL, replicates=labels)
    for label, p in zip(labels, params):
        alone = roi_level.cocaine_roi_study(p) if study == "cocaine" else roi_level.baclofen_roi_study(p, MODEL)
        assert set(stacked) == set(alone)
        for name, table in alone.items():
            pd.testing.assert_frame_equal(_replicate(stacked[name], label), table, check_exact=True)
    if study == "cocaine":  # the effects differ between the two conditions of the first seed
        first, second = (_replicate(stacked["roi"], label)["fisher_z"] for label in labels[:2])
        assert not np.allclose(first, second)
    with pytest.raises(ValueError, match="distinct replicate labels"):
        roi_level.cocaine_roi_studies(params[:2], replicates=[1, 1])


def test_vectorised_runs_equal_the_image_simulators_run_by_run_mixing():
    """All runs at once equal the image simulator's functions run by run: source correlations,
    Cholesky mixing of the shared band-limited series, ROI noise, Fisher z of the first level."""
    params = calibration.condition_params("cocaine", "paper", 4)
    runs = simulate_runs_table(simulate_participants(params), params)
    picked = [SOURCES.index(name) for name in ("nacc", "dlpfc", "thalamus_midline")]
    corr = roi_level.run_correlations(runs["fc_nacc_dlpfc"], runs["fc_nacc_thalamus"])
    for i, run in enumerate(runs.itertuples(index=False)):
        expected = source_correlation(run.fc_nacc_dlpfc, run.fc_nacc_thalamus)[np.ix_(picked, picked)]
        np.testing.assert_allclose(corr[i], expected, rtol=1e-14, atol=1e-15)

    n_t, t_r = params.n_volumes, params.repetition_time
    rng = np.random.default_rng([params.seed, 31])
    series = band_limited_noise(rng, n_t, 6 * len(runs), t_r)
    constants = roi_level.cocaine_twin_constants()  # the defaults: per ROI and per target
    roi_noise = np.array([constants["roi_noise"][k] for k in ("nacc", "dlpfc", "thalamus_midline")])
    errors = np.array([constants["run_noise_z"][k] for k in ("dlpfc", "thalamus_midline")]) * rng.standard_normal(
        (len(runs), 2)
    )
    expected = []
    for i, run in enumerate(runs.itertuples(index=False)):
        c = source_correlation(run.fc_nacc_dlpfc, run.fc_nacc_thalamus)[np.ix_(picked, picked)]
        block = series[:, 6 * i : 6 * i + 6]
        signals = correlated_sources(rng, c, n_t, t_r, independent=block[:, :3]) + roi_noise * block[:, 3:]
        expected.extend(correlation.fisher_z(correlation.correlate_columns(signals[:, 0], signals[:, 1:])) + errors[i])
    roi = roi_level.cocaine_roi_study(params, nuisance_leak=0.0)["roi"]  # the nuisance: test_nuisance.py
    assert list(roi["target"][:2]) == ["dlpfc", "thalamus_midline"]
    np.testing.assert_allclose(roi["fisher_z"], expected, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- chains


def test_stacked_cocaine_chains_equal_each_replicate_alone():
    params = [calibration.condition_params("cocaine", "paper", seed) for seed in SEEDS]
    tables = roi_level.cocaine_roi_studies(params, replicates=SEEDS)
    stacked = calibration._cocaine_chapters(tables, 0.05, 0.5, 0.8, 60, _rngs(SEEDS))
    sizes = stacked["thalamus_glutamate"]["changes"].groupby(REPLICATE).size()
    # the replicates lose different participants to the MRS quality control: the stacks are padded
    assert sizes.nunique() > 1
    assert len(stacked["thalamus_glutamate"]["mrs_exclusions"])
    for seed, p in zip(SEEDS, params):
        alone = calibration._cocaine_chapters(roi_level.cocaine_roi_study(p), 0.05, 0.5, 0.8, 60, _rngs([seed])[seed])
        for chapter in alone:
            _assert_same_tables(stacked[chapter], alone[chapter], seed)
    # and the claims read from them are those of each replicate alone
    rows = pd.DataFrame(calibration.cocaine_roi_tests(tables, n_boot=60, rng=_rngs(SEEDS)))
    for seed, p in zip(SEEDS, params):
        alone = pd.DataFrame(calibration.cocaine_roi_tests(roi_level.cocaine_roi_study(p), n_boot=60, rng=[seed, 7]))
        pd.testing.assert_frame_equal(_replicate(rows, seed), alone, rtol=1e-12)


def test_stacked_baclofen_chain_equals_each_replicate_alone_with_unequal_replicates():
    params = [calibration.condition_params("baclofen", "half", seed) for seed in SEEDS]
    studies = [roi_level.baclofen_roi_study(p, MODEL) for p in params]
    # one participant's cue runs are lost in the second replicate: it leaves the associations and the mediation
    lost = studies[1]["cue"]["participant_id"].iloc[0]
    studies[1]["cue"] = studies[1]["cue"][studies[1]["cue"]["participant_id"] != lost].reset_index(drop=True)
    stacked = {
        name: pd.concat([s[name].assign(**{REPLICATE: seed}) for seed, s in zip(SEEDS, studies)], ignore_index=True)
        for name in studies[0]
    }
    out = calibration._baclofen_chapters(stacked, 0.05, 80, _rngs(SEEDS))["baclofen_mediation"]
    assert list(out["mediation_exclusions"][REPLICATE]) == [SEEDS[1]]
    assert out["associations"].groupby(REPLICATE)["n"].first().nunique() == 2
    for seed, study in zip(SEEDS, studies):
        alone = calibration._baclofen_chapters(study, 0.05, 80, _rngs([seed])[seed])["baclofen_mediation"]
        _assert_same_tables(out, alone, seed)


def test_stacked_rng_must_match_the_replicates():
    params = [calibration.condition_params("baclofen", "paper", seed) for seed in SEEDS]
    tables = roi_level.baclofen_roi_studies(params, MODEL, replicates=SEEDS)
    with pytest.raises(ValueError, match="No Generator for replicate"):
        calibration.baclofen_roi_tests(tables, n_boot=20, rng=_rngs(SEEDS[:2]))
    with pytest.raises(ValueError, match="2 Generators for 3 replicates"):
        contrasts.generators([np.random.default_rng(0)] * 2, np.arange(3))


def test_monte_carlo_does_not_depend_on_the_chunks():
    kwargs = dict(conditions=("null",), baclofen_model=MODEL, n_boot=40, progress=False, seed=3)
    whole = calibration.monte_carlo(3, batch_size=3, **kwargs)
    single = calibration.monte_carlo(3, batch_size=1, **kwargs)
    pd.testing.assert_frame_equal(whole, single, rtol=1e-12)
    assert whole.groupby(["study", "replicate"]).size().nunique() > 1  # both studies, each with all its claims
    assert list(whole.drop_duplicates(["study", "replicate"])["replicate"]) == [0, 1, 2, 0, 1, 2]


# --------------------------------------------------------------------------- statistics


def _old_mediation_bootstrap(data, n_boot, seed):
    """The per-resample loop of least squares (one rng.integers call per resample)."""
    rng = np.random.default_rng(seed)
    n = len(data)
    xm = np.column_stack([np.ones(n), data["x"]])
    xy = np.column_stack([np.ones(n), data["x"], data["m"]])
    out = np.empty(n_boot)
    for i in range(n_boot):
        idx = rng.integers(0, n, n)
        a = np.linalg.lstsq(xm[idx], data["m"].to_numpy()[idx], rcond=None)[0][1]
        b = np.linalg.lstsq(xy[idx], data["y"].to_numpy()[idx], rcond=None)[0][2]
        out[i] = a * b
    return out


def test_batched_mediation_bootstrap_equals_the_per_resample_loop():
    rng = np.random.default_rng(3)
    frames = []
    for label, n in zip(SEEDS, (23, 30, 27)):
        x = (np.arange(n) % 2).astype(float)
        m = 0.8 * x + rng.standard_normal(n)
        frames.append(pd.DataFrame({REPLICATE: label, "x": x, "m": m, "y": 0.5 * m + rng.standard_normal(n)}))
    data = pd.concat(frames, ignore_index=True)
    stacked = mediation_analysis(data, "x", "m", "y", n_boot=300, rng=_rngs(SEEDS))
    for label, frame in zip(SEEDS, frames):
        draws = _old_mediation_bootstrap(frame, 300, [label, 7])
        row = _replicate(stacked, label).set_index("term").loc["indirect effect (a b)"]
        assert row["ci_low"] == pytest.approx(np.quantile(draws, 0.025), rel=1e-10)
        assert row["ci_high"] == pytest.approx(np.quantile(draws, 0.975), rel=1e-10)
        assert row["se"] == pytest.approx(draws.std(ddof=1), rel=1e-10)
        alone = mediation_analysis(frame.drop(columns=REPLICATE), "x", "m", "y", n_boot=300, rng=[label, 7])
        pd.testing.assert_frame_equal(_replicate(stacked, label), alone, rtol=1e-12)


def test_stacked_bootstraps_do_not_depend_on_the_memory_chunks(monkeypatch):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 15))
    y = x + rng.standard_normal((4, 15))
    x[1, 11:] = y[1, 11:] = np.nan
    z = np.where(np.isfinite(x), (np.arange(15) % 2)[None, :], np.nan)[..., None]
    whole = correlation.partial_correlation(x, y, z, n_boot=100, rng=[np.random.default_rng(k) for k in range(4)])
    spearman = correlation.correlation(x, y, "spearman", 100, [np.random.default_rng(k) for k in range(4)])
    monkeypatch.setattr(contrasts, "BOOTSTRAP_CHUNK", 100 * 15)  # one replicate at a time
    parts = correlation.partial_correlation(x, y, z, n_boot=100, rng=[np.random.default_rng(k) for k in range(4)])
    for key in whole:
        np.testing.assert_allclose(whole[key], parts[key], rtol=1e-12)
    for k in range(4):
        alone = correlation.correlation(x[k][np.isfinite(x[k])], y[k][np.isfinite(y[k])], "spearman", 100, k)
        for key in ("estimate", "se", "ci_low", "ci_high", "p", "n"):
            assert spearman[key][k] == pytest.approx(alone[key], rel=1e-12)


def test_stacked_samples_refuse_missing_values_inside_a_replicate():
    x = np.array([[1.0, np.nan, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]])
    with pytest.raises(ValueError, match="only as padding"):
        contrasts.one_sample(x)
    table = pd.DataFrame({REPLICATE: [0, 0, 1], "v": [1.0, np.nan, 2.0]})
    with pytest.raises(ValueError, match="missing or infinite"):
        contrasts.stack_columns(table, ["v"], np.array([0, 1]))


def _quad_bf10(t, n_eff, df, r):
    """The JZS Bayes factor by adaptive quadrature over g, split at the integrand's peak."""

    def integrand(g):
        a = 1.0 + n_eff * g * r**2
        log = (
            -0.5 * np.log(a)
            - (df + 1) / 2 * np.log1p(t**2 / (a * df))
            - 0.5 * np.log(2 * np.pi)
            - 1.5 * np.log(g)
            - 1 / (2 * g)
        )
        return np.exp(log + (df + 1) / 2 * np.log1p(t**2 / df))

    peak = max(t**2 / n_eff, 1e-3)
    edges = (0.0, peak, 100 * peak + 1.0, np.inf)
    return sum(integrate.quad(integrand, lo, hi, limit=200)[0] for lo, hi in zip(edges[:-1], edges[1:]))


def test_vectorised_bayes_factor_and_detectable_effect_equal_the_scalar_ones():
    rng = np.random.default_rng(2)
    t = np.concatenate([[0.0, -3.0, 12.0, 30.0], rng.normal(0, 3, 40)])
    n_eff = rng.uniform(2, 300, t.size)
    df = np.maximum(1.0, np.round(n_eff * rng.uniform(0.5, 2.0, t.size)))
    for r in (0.2, equivalence.DEFAULT_PRIOR_SCALE, 1.4):
        got = equivalence._jzs_bf10(t, n_eff, df, r)
        expected = [_quad_bf10(*args, r) for args in zip(t, n_eff, df)]
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    sizes = np.array([5.0, 12.0, 12.0, 40.0, 5.0])
    got = equivalence._detectable(sizes, sizes - 1, 0.05, 0.8)
    np.testing.assert_allclose(got, [equivalence._detectable_one(n, n - 1, 0.05, 0.8) for n in sizes], rtol=1e-12)
    assert equivalence._detectable(12.0, 11.0, 0.05, 0.8) == pytest.approx(equivalence.detectable_effect(12), rel=1e-6)


def test_predictor_model_equals_statsmodels_ols_and_its_diagnostics():
    rng = np.random.default_rng(6)
    n = 25
    table = pd.DataFrame(
        {
            "dfc_a": rng.standard_normal(n),
            "ocdus_obsessive": rng.integers(0, 24, n).astype(float),
            "cocaine_g_per_week": np.exp(rng.normal(1, 0.5, n)),
        }
    )
    table["dfc_a"] += 0.3 * table["ocdus_obsessive"] / 10
    predictors = ["ocdus_obsessive", "cocaine_g_per_week"]
    coefficients, fit = glutamate.predictor_model(table, "dfc_a", predictors)
    data = table.assign(cocaine_g_per_week=np.log(table["cocaine_g_per_week"]))
    z = (data - data.mean()) / data.std(ddof=1)
    ols = sm.OLS(z["dfc_a"].to_numpy(), sm.add_constant(z[predictors].to_numpy())).fit()
    ci = np.asarray(ols.conf_int(0.05))[1:]
    np.testing.assert_allclose(coefficients["estimate"], ols.params[1:], rtol=1e-10)
    np.testing.assert_allclose(coefficients["se"], ols.bse[1:], rtol=1e-10)
    np.testing.assert_allclose(coefficients[["ci_low", "ci_high"]], ci, rtol=1e-10)
    np.testing.assert_allclose(coefficients["p"], ols.pvalues[1:], rtol=1e-10)
    expected = {
        "n": n,
        "r2": ols.rsquared,
        "adj_r2": ols.rsquared_adj,
        "f": ols.fvalue,
        "p_f": ols.f_pvalue,
        "shapiro_w": stats.shapiro(ols.resid).statistic,
        "shapiro_p": stats.shapiro(ols.resid).pvalue,
        "breusch_pagan_p": het_breuschpagan(ols.resid, ols.model.exog)[1],
        "max_cooks_distance": ols.get_influence().cooks_distance[0].max(),
    }
    for key, value in expected.items():
        assert fit[key] == pytest.approx(value, rel=1e-9), key
    # stacked: two replicates, the second with fewer participants, each as alone
    stacked = pd.concat([table.assign(**{REPLICATE: 0}), table.iloc[:19].assign(**{REPLICATE: 1})], ignore_index=True)
    betas, fits = glutamate.predictor_table(stacked, ["a"], predictors)
    for label, part in ((0, table), (1, table.iloc[:19])):
        b_alone, f_alone = glutamate.predictor_table(part, ["a"], predictors)
        pd.testing.assert_frame_equal(_replicate(betas, label), b_alone, rtol=1e-12)
        pd.testing.assert_frame_equal(_replicate(fits, label), f_alone, rtol=1e-10, check_dtype=False)


def test_stacked_chains_with_their_other_options_equal_each_replicate_alone():
    params = [calibration.condition_params("cocaine", "half", seed) for seed in SEEDS[:2]]
    tables = roi_level.cocaine_roi_studies(params, replicates=SEEDS[:2])
    fc = secondlevel.roi_state_differences(tables["roi"])
    drugs = tables["roi"][[REPLICATE, "participant_id", "session_id", "drug"]].drop_duplicates()
    nac = chapters.nac_tests(fc, tables["ratings"], period=False)
    glu = chapters.glutamate_tests(
        fc,
        tables["mrs"],
        tables["participants"],
        drugs,
        sessions="placebo",
        max_crlb=None,
        n_bootstrap=30,
        rng=_rngs(SEEDS),
    )
    for seed, p in zip(SEEDS[:2], params):
        alone = roi_level.cocaine_roi_study(p)
        fc_alone = secondlevel.roi_state_differences(alone["roi"])
        drugs_alone = alone["roi"][["participant_id", "session_id", "drug"]].drop_duplicates()
        _assert_same_tables(nac, chapters.nac_tests(fc_alone, alone["ratings"], period=False), seed)
        glu_alone = chapters.glutamate_tests(
            fc_alone,
            alone["mrs"],
            alone["participants"],
            drugs_alone,
            sessions="placebo",
            max_crlb=None,
            n_bootstrap=30,
            rng=_rngs([seed])[seed],
        )
        _assert_same_tables(glu, glu_alone, seed)


def test_partial_correlation_bootstrap_equals_residualising_each_resample():
    rng = np.random.default_rng(9)
    n = 31
    group = (np.arange(n) % 3 == 0).astype(float)
    x = 4 * group + rng.normal(10, 2, n)
    y = 0.3 * x - group + rng.normal(0, 1, n)
    ours = correlation.partial_correlation(x, y, group, n_boot=400, rng=5)
    idx = np.random.default_rng(5).integers(0, n, size=(400, n))
    draws = []
    for rows in idx:
        design = np.column_stack([np.ones(n), group[rows]])
        res = [v[rows] - design @ np.linalg.lstsq(design, v[rows], rcond=None)[0] for v in (x, y)]
        draws.append(stats.pearsonr(*res).statistic)
    assert ours["se"] == pytest.approx(np.std(draws, ddof=1), rel=1e-10)
    assert (ours["ci_low"], ours["ci_high"]) == pytest.approx(tuple(np.quantile(draws, [0.025, 0.975])), rel=1e-10)
