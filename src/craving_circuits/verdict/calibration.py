"""Calibration of the claims' tests by Monte Carlo over simulated studies.

How often does each test fire when nothing is there (false-positive rate), and
how often does it find what is there (power)? Each replicate is a whole
simulated study at ROI level (:mod:`craving_circuits.simulate.roi_level`: the
image simulators' participants, planted effects, ratings and spectra, with the
first level replaced by its ROI-level outcome), analysed by the same functions
the chapters use.

Conditions
----------
``null`` is the ``null`` preset; ``half``, ``paper`` and ``double`` are the
``paper`` preset with every planted effect of :data:`EFFECT_PARAMETERS`
multiplied by 0.5, 1 and 2. Replicate ``i`` of every condition uses the
simulator seed ``seed + i``, so conditions differ only in their effects.

ROI-level tests
---------------
Every claim of the registry (:data:`craving_circuits.verdict.claims.CLAIMS`)
whose test works on tidy tables is calibrated by that very test: the
chapter's chain (:mod:`craving_circuits.cocaine.chapters`,
:mod:`craving_circuits.baclofen.chapters`) runs on each replicate's tables and
the claim's estimand is read from its output, as the ledger reads it from the
chapter's result files. Claims whose test works on maps (the connectivity
rises, the CBF rise) are not given a stand-in at ROI level: their
calibration is the voxelwise one below.

Voxelwise tests
---------------
:func:`voxelwise_null` checks the cluster-level FWE control of the chapters'
permutation tests on a smaller number of null studies: per-participant contrast
maps of spatially smooth Gaussian noise on the analysis grid, smoothed as the
chapters smooth them, with the designs of the two studies
(:data:`craving_circuits.cocaine.secondlevel.GROUP_TESTS`, and the group x time test of
:func:`craving_circuits.baclofen.perfusion.group_by_time_test` with its global
covariate). A test fires when any cluster reaches ``p_FWE < alpha``.

Data conventions
----------------
:func:`monte_carlo` returns one row per replicate and test (``condition,
replicate, study, claim_id, test, planted_present, estimate, p, found,
equivalent``); :func:`calibration_summary` turns it into rates with
Clopper-Pearson intervals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from statsmodels.stats.proportion import proportion_confint
from tqdm import tqdm

from craving_circuits.baclofen import chapters as baclofen_chapters
from craving_circuits.baclofen import perfusion
from craving_circuits.cocaine import chapters as cocaine_chapters
from craving_circuits.cocaine import secondlevel
from craving_circuits.io.atlas import brain_mask
from craving_circuits.io.schemas import CALIBRATION_COLUMNS
from craving_circuits.io.schemas import CALIBRATION_SUMMARY_COLUMNS as SUMMARY_COLUMNS
from craving_circuits.io.schemas import VOXEL_CALIBRATION_COLUMNS as VOXEL_COLUMNS
from craving_circuits.simulate import baclofen_params, cocaine_params, roi_level
from craving_circuits.simulate.baclofen import planted_baclofen_effects
from craving_circuits.simulate.cocaine import planted_effects
from craving_circuits.simulate.signals import SmoothNoiseField
from craving_circuits.stats.voxelwise import smooth_maps
from craving_circuits.verdict import claims as registry
from craving_circuits.verdict.claims import Claim

__all__ = [
    "CONDITIONS",
    "EFFECT_PARAMETERS",
    "CONSERVATIVE_TESTS",
    "CALIBRATION_COLUMNS",
    "SUMMARY_COLUMNS",
    "VOXEL_COLUMNS",
    "condition_params",
    "cocaine_roi_tests",
    "baclofen_roi_tests",
    "monte_carlo",
    "calibration_summary",
    "power_table",
    "claims_table",
    "voxelwise_null",
    "voxelwise_summary",
]

#: Effect multipliers of the conditions (``null``: the null preset).
CONDITIONS = {"null": 0.0, "half": 0.5, "paper": 1.0, "double": 2.0}

#: The parameters that carry the planted effects, per study.
EFFECT_PARAMETERS = {
    "cocaine": (
        "craving_nacc_dlpfc",
        "craving_nacc_thalamus",
        "thalamus_reactivity_sd",
        "glu_craving_rise_pct",
        "glu_reactivity_pct",
        "craving_rating_rise",
        "craving_rating_reactivity",
    ),
    "baclofen": ("dlpfc_cbf_rise", "cue_dlpfc_coupling", "baclofen_craving_effect"),
}

#: Tests whose false-positive rate is only bounded by alpha, not equal to it: the bootstrap test of an
#: indirect effect is conservative when neither of its paths exists (the null of the calibration).
CONSERVATIVE_TESTS = frozenset({"baclofen_via_dlpfc"})


def condition_params(study: str, condition: str, seed: int):
    """Simulation parameters of one replicate.

    Parameters
    ----------
    study : {"cocaine", "baclofen"}
    condition : str
        A key of :data:`CONDITIONS`.
    seed : int
        The simulator seed.
    """

    if study not in EFFECT_PARAMETERS:
        raise ValueError(f"Unknown study {study!r}; choose 'cocaine' or 'baclofen'.")
    if condition not in CONDITIONS:
        raise ValueError(f"Unknown condition {condition!r}; choose one of {list(CONDITIONS)}.")
    make = cocaine_params if study == "cocaine" else baclofen_params
    if condition == "null":
        return make("null", seed=seed)
    paper = make("paper", seed=seed)
    factor = CONDITIONS[condition]
    return make("paper", seed=seed, **{name: getattr(paper, name) * factor for name in EFFECT_PARAMETERS[study]})


def _claim_row(claim: Claim, tables: dict, alpha: float) -> dict:
    """A claim's estimand read from a replicate's chapter tables, decided as the ledger decides."""
    rows = claim.estimand.read(tables[claim.estimand.chapter])
    if len(rows) != 1:
        raise ValueError(f"Claim {claim.claim_id}: {len(rows)} rows of its estimand {claim.estimand.id}.")
    row = rows[0]
    p, estimate = float(row["p"]), float(row["estimate"])
    found = bool(p < alpha and (claim.direction is None or np.sign(estimate) == claim.direction))
    equivalent = None
    if claim.direction is None:
        eq = claim.equivalence
        picked = eq._rows(tables[eq.chapter][eq.table], "")
        equivalent = bool(float(picked.iloc[0]["p_equivalence"]) < alpha)
    return {
        "claim_id": claim.claim_id,
        "test": row["test"],
        "estimate": estimate,
        "p": p,
        "found": found,
        "equivalent": equivalent,
    }


def cocaine_roi_tests(
    tables: dict, alpha: float = 0.05, sesoi_r: float = 0.5, sesoi_dz: float = 0.8, n_boot: int = 200, rng=None
) -> list[dict]:
    """The cocaine claims' ROI-level tests on one ROI-level study, through the chapters' own chains.

    The glutamate and NAC chapters' chains
    (:func:`craving_circuits.cocaine.chapters.glutamate_tests`,
    :func:`craving_circuits.cocaine.chapters.nac_tests`) run on the study's
    tables as the chapters run them on the first level's ROI values; each
    ROI-level claim of the registry is then read from their tables.

    Parameters
    ----------
    tables : dict
        From :func:`craving_circuits.simulate.roi_level.cocaine_roi_study`.
    alpha, sesoi_r, sesoi_dz : float
        Level, and the equivalence bounds of the chapters (correlation; d_z).
    n_boot : int
        Bootstrap resamples of the correlations (their p comes from the
        t distribution; the bootstrap only sets their interval).
    rng : numpy Generator, int or None

    Returns
    -------
    rows : list of dict
        ``claim_id, test, estimate, p, found, equivalent``, one per ROI-level cocaine claim.
    """
    fc = secondlevel.roi_state_differences(tables["roi"])
    drugs = tables["roi"][["participant_id", "session_id", "drug"]].drop_duplicates()
    chapters = {
        "thalamus_glutamate": cocaine_chapters.glutamate_tests(
            fc, tables["mrs"], tables["participants"], drugs, n_bootstrap=n_boot, sesoi_r=sesoi_r, alpha=alpha, rng=rng
        ),
        "nac_null_effect": cocaine_chapters.nac_tests(fc, tables["ratings"], sesoi_dz=sesoi_dz, alpha=alpha),
    }
    return [_claim_row(c, chapters, alpha) for c in registry.claims("cocaine", "roi")]


def baclofen_roi_tests(tables: dict, alpha: float = 0.05, n_boot: int = 200, rng=None) -> list[dict]:
    """The baclofen claims' ROI-level tests on one ROI-level study, through the cue chapter's own chain.

    The CBF chapter's dlPFC change (:func:`craving_circuits.baclofen.perfusion.participant_change`
    of the ROI's CBF) enters :func:`craving_circuits.baclofen.chapters.cue_tests`
    as in the cue chapter; each ROI-level claim of the registry is read from its tables.

    Parameters
    ----------
    tables : dict
        From :func:`craving_circuits.simulate.roi_level.baclofen_roi_study`.
    alpha : float
    n_boot : int
        Bootstrap resamples of the correlations and of the indirect effect.
    rng : numpy Generator, int or None

    Returns
    -------
    rows : list of dict
        ``claim_id, test, estimate, p, found, equivalent``, one per ROI-level baclofen claim.
    """
    dlpfc_change = perfusion.participant_change(tables["cbf"])
    chapters = {
        "baclofen_mediation": baclofen_chapters.cue_tests(
            tables["cue"],
            dlpfc_change,
            tables["ratings"],
            tables["participants"],
            n_bootstrap=n_boot,
            alpha=alpha,
            rng=rng,
        )
    }
    return [_claim_row(c, chapters, alpha) for c in registry.claims("baclofen", "roi")]


def _present(study: str, params) -> dict[str, bool]:

    effects = planted_effects(params) if study == "cocaine" else planted_baclofen_effects(params)
    return {e["effect"]: bool(e["present"]) for e in effects}


def _replicates(jobs: list, alpha: float, n_boot: int, roi_options: dict, baclofen_model) -> list[dict]:
    """Run a batch of ``(condition, replicate, study, seed)`` jobs (one worker)."""

    rows = []
    for condition, replicate, study, seed in jobs:
        params = condition_params(study, condition, seed)
        present = _present(study, params)
        rng = np.random.default_rng([seed, 7])
        if study == "cocaine":
            tables = roi_level.cocaine_roi_study(params, **roi_options.get("cocaine", {}))
            tests = cocaine_roi_tests(tables, alpha=alpha, n_boot=n_boot, rng=rng)
        else:
            tables = roi_level.baclofen_roi_study(params, baclofen_model, **roi_options.get("baclofen", {}))
            tests = baclofen_roi_tests(tables, alpha=alpha, n_boot=n_boot, rng=rng)
        for test in tests:
            rows.append(
                {
                    "condition": condition,
                    "replicate": replicate,
                    "study": study,
                    "planted_present": present[registry.claim(test["claim_id"]).estimand.effect],
                    **test,
                }
            )
    return rows


def monte_carlo(
    n_sims: int,
    conditions=tuple(CONDITIONS),
    studies=("cocaine", "baclofen"),
    seed: int = 10_000,
    alpha: float = 0.05,
    n_boot: int = 200,
    n_jobs: int = 1,
    batch_size: int = 10,
    roi_options: dict | None = None,
    baclofen_model=None,
    progress: bool = True,
) -> pd.DataFrame:
    """Simulate and test ``n_sims`` studies per condition and study, in parallel.

    Parameters
    ----------
    n_sims : int
        Replicates per condition and study.
    conditions : sequence of str
        Keys of :data:`CONDITIONS`.
    studies : sequence of {"cocaine", "baclofen"}
    seed : int
        Replicate ``i`` uses the simulator seed ``seed + i``.
    alpha : float
    n_boot : int
        Bootstrap resamples inside each replicate.
    n_jobs : int
        Worker processes (joblib).
    batch_size : int
        Replicates per job.
    roi_options : dict, optional
        Keyword arguments of the ROI-level simulators, per study.
    baclofen_model : BaclofenRoiModel, optional
        Derived from the ``paper`` preset's maps when not given.
    progress : bool
        Show a progress bar.

    Returns
    -------
    results : pandas.DataFrame
        Columns :data:`CALIBRATION_COLUMNS`.
    """

    if int(n_sims) != n_sims or n_sims < 1:
        raise ValueError(f"n_sims must be a positive integer, got {n_sims}.")
    unknown = set(studies) - set(EFFECT_PARAMETERS)
    if not studies or not conditions:
        raise ValueError("Give at least one study and one condition.")
    if unknown:
        raise ValueError(f"Unknown studies {sorted(unknown)}; choose from {list(EFFECT_PARAMETERS)}.")
    for condition in conditions:
        condition_params(studies[0], condition, seed)  # validates the name
    if "baclofen" in studies and baclofen_model is None:
        baclofen_model = roi_level.baclofen_roi_model(baclofen_params("paper"))
    jobs = [(c, i, s, seed + i) for s in studies for c in conditions for i in range(int(n_sims))]
    batches = [jobs[k : k + batch_size] for k in range(0, len(jobs), batch_size)]
    run = Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(_replicates)(batch, alpha, n_boot, roi_options or {}, baclofen_model) for batch in batches
    )
    rows = []
    with tqdm(total=len(jobs), desc="simulated studies", disable=not progress, mininterval=5) as bar:
        for batch, out in zip(batches, run):
            rows.extend(out)
            bar.update(len(batch))
    return pd.DataFrame(rows, columns=CALIBRATION_COLUMNS)


def calibration_summary(
    results: pd.DataFrame, alpha: float = 0.05, ci_level: float = 0.95, simultaneous: bool = True
) -> pd.DataFrame:
    """Rates of each test per condition, with Clopper-Pearson intervals.

    For a planted effect the rate of ``found`` is the power; for an absent one
    it is the false-positive rate (any significant effect for a claim of
    absence), and a claim of absence also gets the rate of declared
    equivalence. A false-positive rate is ``within`` its nominal level when
    its interval contains ``alpha``; the tests of :data:`CONSERVATIVE_TESTS`
    are checked for staying at or below it.

    With many false-positive rates, some 95 % intervals miss the nominal level
    by chance alone (one in twenty); with ``simultaneous`` their intervals have
    the Bonferroni level ``1 - (1 - ci_level) / k`` over the ``k`` rates, so that
    all of them cover their true rates together with probability ``ci_level``.

    Parameters
    ----------
    results : pandas.DataFrame
        From :func:`monte_carlo`.
    alpha : float
        The tests' level.
    ci_level : float
        Coverage of the intervals of the rates.
    simultaneous : bool
        Bonferroni-adjust the intervals of the false-positive rates.

    Returns
    -------
    summary : pandas.DataFrame
        Columns :data:`SUMMARY_COLUMNS`; ``measure`` is ``"false-positive
        rate"``, ``"power"`` or ``"equivalence rate"``; ``nominal`` and
        ``within`` only for false-positive rates.
    """

    missing = set(CALIBRATION_COLUMNS) - set(results.columns)
    if missing:
        raise ValueError(f"The results lack the column(s) {sorted(missing)}; pass monte_carlo's output.")
    if not 0 < ci_level < 1:
        raise ValueError(f"ci_level must be in (0, 1), got {ci_level}.")
    keys = ["study", "claim_id", "test", "condition", "planted_present"]
    counts = []
    for key, group in results.groupby(keys, sort=False):
        base = dict(zip(keys, key))
        counts.append(
            {
                **base,
                "measure": "power" if base["planted_present"] else "false-positive rate",
                "n": len(group),
                "count": int(group["found"].sum()),
            }
        )
        if group["equivalent"].notna().any():
            counts.append(
                {
                    **base,
                    "measure": "equivalence rate",
                    "n": len(group),
                    "count": int(group["equivalent"].astype(bool).sum()),
                }
            )
    n_fpr = sum(c["measure"] == "false-positive rate" for c in counts)
    rows = []
    for c in counts:
        fpr = c["measure"] == "false-positive rate"
        level = 1 - (1 - ci_level) / n_fpr if (fpr and simultaneous) else ci_level
        low, high = proportion_confint(c["count"], c["n"], alpha=1 - level, method="beta")
        nominal, within = np.nan, None
        if fpr:
            nominal = alpha
            within = bool(low <= alpha) if c["claim_id"] in CONSERVATIVE_TESTS else bool(low <= alpha <= high)
        rows.append(
            {**c, "rate": c["count"] / c["n"], "ci_low": low, "ci_high": high, "nominal": nominal, "within": within}
        )
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    order = out["condition"].map({c: i for i, c in enumerate(CONDITIONS)})
    return (
        out.assign(_order=order)
        .sort_values(["study", "claim_id", "_order", "measure"], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )


def power_table(summary: pd.DataFrame, measure: str = "power") -> pd.DataFrame:
    """One row per test, one column per condition: the rate of ``measure`` (wide, for reading).

    Parameters
    ----------
    summary : pandas.DataFrame
        From :func:`calibration_summary`.
    measure : {"power", "false-positive rate", "equivalence rate"}
    """
    rows = summary[summary["measure"] == measure]
    if rows.empty:
        raise ValueError(f"No rows with measure {measure!r}; the summary has {sorted(summary['measure'].unique())}.")
    wide = rows.pivot_table(index=["study", "claim_id", "test"], columns="condition", values="rate", sort=False)
    return wide[[c for c in CONDITIONS if c in wide.columns]].reset_index()


def claims_table(summary: pd.DataFrame, voxel_summary: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per claim of the registry: how its test was calibrated, how often it finds the ``paper`` effect, and its
    false-positive rate under the null (the calibration's "recovered vs planted").

    Parameters
    ----------
    summary : pandas.DataFrame
        From :func:`calibration_summary` (the ROI-level claims).
    voxel_summary : pandas.DataFrame, optional
        From :func:`voxelwise_summary` (the voxel-level claims' null rates).

    Returns
    -------
    table : pandas.DataFrame
        ``study, claim_id, level, calibrated_by, planted_at_paper,
        rate_at_paper`` (power, or the false-positive rate when the effect is
        absent), ``fpr_null``, ``fpr_null_within`` and, for claims of absence,
        ``equivalence_at_paper``; voxel-level claims have only their null rate.
    """
    rows = []
    for claim in registry.CLAIMS:
        sub = summary[summary["claim_id"] == claim.claim_id]
        row = {
            "study": claim.study,
            "claim_id": claim.claim_id,
            "level": claim.level,
            "calibrated_by": "the chapter's chain on ROI-level replicates"
            if claim.level == "roi"
            else f"voxelwise null maps, test {claim.voxel_test}",
            "planted_at_paper": None,
            "rate_at_paper": np.nan,
            "fpr_null": np.nan,
            "fpr_null_within": None,
            "equivalence_at_paper": np.nan,
        }
        if claim.level == "roi" and len(sub):
            paper = sub[sub["condition"] == "paper"]
            null = sub[(sub["condition"] == "null") & (sub["measure"] == "false-positive rate")]
            main = paper[paper["measure"] != "equivalence rate"]
            equivalence = paper[paper["measure"] == "equivalence rate"]
            row.update(
                {
                    "planted_at_paper": bool(main["planted_present"].iloc[0]) if len(main) else None,
                    "rate_at_paper": float(main["rate"].iloc[0]) if len(main) else np.nan,
                    "fpr_null": float(null["rate"].iloc[0]) if len(null) else np.nan,
                    "fpr_null_within": null["within"].iloc[0] if len(null) else None,
                    "equivalence_at_paper": float(equivalence["rate"].iloc[0]) if len(equivalence) else np.nan,
                }
            )
        elif claim.level == "voxel" and voxel_summary is not None:
            voxel = voxel_summary[voxel_summary["test"] == claim.voxel_test]
            if len(voxel):
                row.update({"fpr_null": float(voxel["rate"].iloc[0]), "fpr_null_within": voxel["within"].iloc[0]})
        rows.append(row)
    return pd.DataFrame(rows)


def _null_maps(field, n: int, mask_img, smoothing_fwhm: float, rng) -> np.ndarray:

    return smooth_maps(field.sample(rng, n), mask_img, smoothing_fwhm)


def _voxel_replicate(
    replicate: int,
    seed: int,
    field,
    mask_img,
    designs: dict,
    smoothing_fwhm: float,
    cluster_forming_p: float,
    n_perm: int,
    alpha: float,
) -> list[dict]:

    rng = np.random.default_rng([seed, replicate, 11])
    rows = []
    cocaine = designs["cocaine"]
    maps = _null_maps(field, len(cocaine), mask_img, smoothing_fwhm, rng)
    tests = secondlevel.group_tests(
        maps, cocaine, mask_img, cluster_forming_p=cluster_forming_p, n_perm=n_perm, rng=rng
    )
    baclofen = designs["baclofen"]
    maps = _null_maps(field, len(baclofen), mask_img, smoothing_fwhm, rng)
    tests["group_x_time_cbf"] = perfusion.group_by_time_test(
        maps,
        baclofen,
        mask_img,
        covariate=rng.standard_normal(len(baclofen)),
        cluster_forming_p=cluster_forming_p,
        n_perm=n_perm,
        rng=rng,
    )
    for name, result in tests.items():
        p = result.clusters["p_fwe_size"] if len(result.clusters) else pd.Series(dtype=float)
        rows.append(
            {
                "replicate": replicate,
                "study": "baclofen" if name == "group_x_time_cbf" else "cocaine",
                "test": name,
                "n_clusters": len(result.clusters),
                "min_p_fwe": float(p.min()) if len(p) else 1.0,
                "found": bool((p < alpha).any()),
            }
        )
    return rows


def voxelwise_null(
    n_sims: int,
    voxel_size_mm: int = 4,
    noise_fwhm_mm: float = 8.0,
    smoothing_fwhm: float = 6.0,
    cluster_forming_p: float = 0.001,
    n_perm: int = 500,
    alpha: float = 0.05,
    seed: int = 20_000,
    n_jobs: int = 1,
    n_cud: int = 18,
    n_control: int = 23,
    n_baclofen: int = 21,
    n_placebo: int = 22,
    progress: bool = True,
) -> pd.DataFrame:
    """Family-wise false positives of the voxelwise cluster tests on null maps.

    Parameters
    ----------
    n_sims : int
        Null studies.
    voxel_size_mm : int
        Grid of the analysis mask (the simulated studies' 4 mm).
    noise_fwhm_mm, smoothing_fwhm : float
        Intrinsic smoothness of the participant maps, and the chapters'
        smoothing applied on top.
    cluster_forming_p, n_perm, alpha : float, int, float
        As in the chapters (fewer permutations: each replicate only asks
        whether any cluster passes ``alpha``).
    seed : int
    n_jobs : int
    n_cud, n_control, n_baclofen, n_placebo : int
        Group sizes of the two designs.
    progress : bool

    Returns
    -------
    results : pandas.DataFrame
        Columns :data:`VOXEL_COLUMNS`, one row per replicate and test.
    """

    if int(n_sims) != n_sims or n_sims < 1:
        raise ValueError(f"n_sims must be a positive integer, got {n_sims}.")
    mask_img = brain_mask(voxel_size_mm)
    field = SmoothNoiseField(np.asarray(mask_img.dataobj) > 0, voxel_size_mm, noise_fwhm_mm)
    designs = {
        "cocaine": pd.DataFrame(
            {
                "participant_id": [f"sub-{i + 1:02d}" for i in range(n_cud + n_control)],
                "group": ["CUD"] * n_cud + ["control"] * n_control,
            }
        ),
        "baclofen": pd.DataFrame(
            {
                "participant_id": [f"sub-{i + 1:02d}" for i in range(n_baclofen + n_placebo)],
                "group": ["baclofen"] * n_baclofen + ["placebo"] * n_placebo,
            }
        ),
    }
    run = Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(_voxel_replicate)(i, seed, field, mask_img, designs, smoothing_fwhm, cluster_forming_p, n_perm, alpha)
        for i in range(int(n_sims))
    )
    rows = []
    for out in tqdm(run, total=int(n_sims), desc="null voxelwise studies", disable=not progress, mininterval=5):
        rows.extend(out)
    return pd.DataFrame(rows, columns=VOXEL_COLUMNS)


def voxelwise_summary(results: pd.DataFrame, alpha: float = 0.05, ci_level: float = 0.95) -> pd.DataFrame:
    """Family-wise error rate of each voxelwise test, with its Clopper-Pearson interval.

    ``within`` is true when the interval reaches down to ``alpha`` or below (the
    rate is compatible with FWE control at ``alpha``).

    Returns
    -------
    summary : pandas.DataFrame
        ``study, test, n, count, rate, ci_low, ci_high, nominal, within``.
    """

    missing = set(VOXEL_COLUMNS) - set(results.columns)
    if missing:
        raise ValueError(f"The results lack the column(s) {sorted(missing)}; pass voxelwise_null's output.")
    rows = []
    for (study, test), group in results.groupby(["study", "test"], sort=False):
        n, count = len(group), int(group["found"].sum())
        low, high = proportion_confint(count, n, alpha=1 - ci_level, method="beta")
        rows.append(
            {
                "study": study,
                "test": test,
                "n": n,
                "count": count,
                "rate": count / n,
                "ci_low": low,
                "ci_high": high,
                "nominal": alpha,
                "within": bool(low <= alpha),
            }
        )
    return pd.DataFrame(rows, columns=["study", "test", "n", "count", "rate", "ci_low", "ci_high", "nominal", "within"])
