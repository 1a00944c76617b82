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
multiplied by 0.5, 1 and 2. Every threat preset that a study's image
simulator lists in its ``THREATS`` (name -> the claims it could fake, and the
threat) is a condition of that study, run as the preset is. For each claim of
absence whose effect a simulator parameter moves
(:data:`EQUIVALENCE_PARAMETERS`), ``at_bound_<claim_id>`` is the ``paper``
preset with that parameter at the value that puts the true effect exactly at
the chapter's equivalence bound, found by simulation
(:func:`equivalence_bounds`). Replicate ``i`` of every condition uses the
simulator seed ``seed + i``, so conditions differ only in their parameters.

Holding the level
-----------------
An error rate (the false-positive rate of a test under a condition where its
claim's effect is absent; for a claim of absence, also the rate of declaring
equivalence with the true effect at the bound) holds its level when the upper
end of its two-sided 95 % Clopper-Pearson interval is at most
:data:`MAX_UPPER_BOUND` (0.075). A claim's test is calibrated when every one
of its error rates holds, under every condition; :func:`claims_table` says
which are not, and why.

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

The replicates are simulated and tested in stacks: the ROI-level simulators
stack a chunk of replicates into one set of tables with a ``replicate`` column
(:func:`craving_circuits.simulate.roi_level.cocaine_roi_studies`,
:func:`craving_circuits.simulate.roi_level.baclofen_roi_studies`), and the
chapters' chains analyse all of them at once, each replicate with its own
bootstrap Generator, exactly as they analyse one study. Chunks of replicates
run in parallel; a replicate's result does not depend on its chunk.

Voxelwise tests
---------------
:func:`voxelwise_null` checks the cluster-level FWE control of every voxelwise
permutation test of the chapters (:data:`VOXEL_TESTS`: the seed chapter's
:data:`craving_circuits.cocaine.secondlevel.GROUP_TESTS`, the NAC chapter's
:data:`~craving_circuits.cocaine.secondlevel.DRUG_TESTS`, the glutamate and cue
chapters' covariate tests of :func:`craving_circuits.stats.voxelwise.covariate_test`
and the group x time test of :func:`craving_circuits.baclofen.perfusion.group_by_time_test`
with its global covariate), each at its chapter's cluster-forming threshold, on
null participant maps with the smoothness of the maps the image pipeline makes
(:func:`map_noise`: the image simulators' smooth noise field mixed with white
noise; for the cocaine connectivity maps in the proportion measured on the
pipeline's own null maps and stored in :data:`MAP_NOISE_FILE`, for the
baclofen maps in the simulators' proportions) smoothed as the chapters smooth them, and under the threats' variance
structures (:data:`VOXEL_CONDITIONS`). A test fires when any cluster reaches
``p_FWE < alpha``; :func:`voxelwise_summary` gives each rate a Clopper-Pearson
interval.

Data conventions
----------------
:func:`monte_carlo` returns one row per replicate and test (``condition,
replicate, study, claim_id, test, planted_present, estimate, p, found,
equivalent``); :func:`calibration_summary` turns it into rates with
Clopper-Pearson intervals.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from string import Formatter

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy.optimize import brentq
from statsmodels.stats.proportion import proportion_confint
from tqdm import tqdm

from craving_circuits.baclofen import chapters as baclofen_chapters
from craving_circuits.baclofen import perfusion
from craving_circuits.cocaine import chapters as cocaine_chapters
from craving_circuits.cocaine import secondlevel
from craving_circuits.io.atlas import brain_mask
from craving_circuits.io.schemas import CALIBRATION_COLUMNS, REPLICATE
from craving_circuits.io.schemas import CALIBRATION_SUMMARY_COLUMNS as SUMMARY_COLUMNS
from craving_circuits.io.schemas import VOXEL_CALIBRATION_COLUMNS as VOXEL_COLUMNS
from craving_circuits.io.tables import read_table, save_tables
from craving_circuits.simulate import baclofen as baclofen_simulator
from craving_circuits.simulate import baclofen_params, cocaine_params, roi_level
from craving_circuits.simulate import cocaine as cocaine_simulator
from craving_circuits.simulate.baclofen import _Maps as BaclofenMaps
from craving_circuits.simulate.baclofen import planted_baclofen_effects
from craving_circuits.simulate.cocaine import planted_effects
from craving_circuits.simulate.signals import SmoothNoiseField
from craving_circuits.stats import voxelwise
from craving_circuits.stats.voxelwise import smooth_maps
from craving_circuits.verdict import claims as registry
from craving_circuits.verdict.claims import Claim

__all__ = [
    "CONDITIONS",
    "EFFECT_PARAMETERS",
    "EQUIVALENCE_PARAMETERS",
    "AT_BOUND",
    "MAX_UPPER_BOUND",
    "CALIBRATION_COLUMNS",
    "SUMMARY_COLUMNS",
    "VOXEL_COLUMNS",
    "threats",
    "study_conditions",
    "condition_params",
    "equivalence_bounds",
    "cocaine_roi_tests",
    "baclofen_roi_tests",
    "monte_carlo",
    "calibration_summary",
    "power_table",
    "claims_table",
    "VOXEL_TESTS",
    "VOXEL_CONDITIONS",
    "VOXEL_SUMMARY_COLUMNS",
    "MapNoise",
    "map_noise",
    "map_fwhm",
    "MAP_NOISE_FILE",
    "MAP_NOISE_PARAMETERS",
    "noise_signature",
    "read_map_noise",
    "match_map_noise",
    "upper_bound_table",
    "run_roi_calibration",
    "read_roi_calibration",
    "engine_table",
    "voxelwise_null",
    "voxelwise_summary",
    "upper_bound_at",
    "threats_table",
    "THREAT_COLUMNS",
]

#: Columns of :func:`voxelwise_summary`: the keys of a voxelwise rate, then those of a rate's interval.
VOXEL_SUMMARY_COLUMNS = [
    *VOXEL_COLUMNS[1:5],
    *[c for c in SUMMARY_COLUMNS if c not in ("study", "claim_id", "test", "condition", "planted_present", "measure")],
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

#: A rate "holds its level" when the upper end of its 95 % Clopper-Pearson interval is at most this.
MAX_UPPER_BOUND = 0.075

#: Prefix of the conditions that put a claim of absence's effect exactly at its equivalence bound.
AT_BOUND = "at_bound_"

#: Claims of absence whose effect a simulator parameter moves: the parameter, and a first value in the
#: direction the drug was expected to act (the secant of :func:`equivalence_bounds` starts from it).
EQUIVALENCE_PARAMETERS = {
    "nac_no_effect_dlpfc": ("nac_effect", -0.2),
    "nac_no_effect_thalamus_midline": ("nac_effect", -0.2),
    "nac_no_effect_rating": ("nac_rating_effect", -10.0),
}

_SIMULATORS = {"cocaine": cocaine_simulator, "baclofen": baclofen_simulator}


def threats(study: str) -> dict:
    """The threat presets of a study's image simulator (its ``THREATS``: name -> ``claims``, ``threat``)."""
    if study not in _SIMULATORS:
        raise ValueError(f"Unknown study {study!r}; choose 'cocaine' or 'baclofen'.")
    return dict(getattr(_SIMULATORS[study], "THREATS", {}))


def _bound_values(bounds) -> dict:
    """``claim_id -> (parameter, value)`` from :func:`equivalence_bounds`' table (or such a dict)."""
    if bounds is None:
        return {}
    if isinstance(bounds, pd.DataFrame):
        return {r.claim_id: (r.parameter, float(r.value)) for r in bounds.itertuples(index=False)}
    return dict(bounds)


def study_conditions(study: str, bounds=None) -> tuple[str, ...]:
    """Every condition of a study: :data:`CONDITIONS`, its simulator's threat presets, and one
    ``at_bound_<claim_id>`` per claim of absence of the study with a value in ``bounds``.

    Parameters
    ----------
    study : {"cocaine", "baclofen"}
    bounds : pandas.DataFrame or dict, optional
        From :func:`equivalence_bounds`.
    """
    at_bound = [f"{AT_BOUND}{c}" for c in _bound_values(bounds) if registry.claim(c).study == study]
    return (*CONDITIONS, *threats(study), *at_bound)


def condition_params(study: str, condition: str, seed: int, bounds=None):
    """Simulation parameters of one replicate.

    Parameters
    ----------
    study : {"cocaine", "baclofen"}
    condition : str
        One of :func:`study_conditions`: a key of :data:`CONDITIONS`; a threat
        preset of the study's simulator (the preset as it is); or
        ``at_bound_<claim_id>``: the ``paper`` preset with the claim's
        parameter (:data:`EQUIVALENCE_PARAMETERS`) at its value in ``bounds``.
    seed : int
        The simulator seed.
    bounds : pandas.DataFrame or dict, optional
        From :func:`equivalence_bounds` (needed for the ``at_bound_`` conditions).
    """

    if study not in EFFECT_PARAMETERS:
        raise ValueError(f"Unknown study {study!r}; choose 'cocaine' or 'baclofen'.")
    make = cocaine_params if study == "cocaine" else baclofen_params
    values = _bound_values(bounds)
    if condition.startswith(AT_BOUND) and condition[len(AT_BOUND) :] in values:
        parameter, value = values[condition[len(AT_BOUND) :]]
        return make("paper", seed=seed, **{parameter: value})
    if condition in threats(study):
        return make(condition, seed=seed)
    if condition not in CONDITIONS:
        raise ValueError(
            f"Unknown condition {condition!r} for the {study} study; "
            f"choose one of {list(study_conditions(study, bounds))}."
        )
    if condition == "null":
        return make("null", seed=seed)
    paper = make("paper", seed=seed)
    factor = CONDITIONS[condition]
    return make("paper", seed=seed, **{name: getattr(paper, name) * factor for name in EFFECT_PARAMETERS[study]})


def _equivalence_moments(values: dict, n_sims: int, seed: int, sesoi_dz: float, alpha: float, options: dict) -> dict:
    """Mean estimate and root mean square standardiser of each claim of absence's contrast over ``n_sims`` ROI-level
    ``paper`` studies with the parameters ``values``, read from the NAC chapter's chain as the ledger reads them."""
    params = [cocaine_params("paper", seed=seed + i, **values) for i in range(n_sims)]
    tables = roi_level.cocaine_roi_studies(params, **options)
    chapters = {
        "nac_null_effect": cocaine_chapters.nac_tests(
            secondlevel.roi_state_differences(tables["roi"]), tables["ratings"], sesoi_dz=sesoi_dz, alpha=alpha
        )
    }
    out = {}
    for claim_id in EQUIVALENCE_PARAMETERS:
        eq = registry.claim(claim_id).equivalence
        rows = _one_per_replicate(
            eq._rows(chapters[eq.chapter][eq.table], ""), np.arange(n_sims), f"Claim {claim_id}", unique=False
        )
        sd = rows["bound"].to_numpy(dtype=float) / sesoi_dz
        out[claim_id] = (float(rows["estimate"].astype(float).mean()), float(np.sqrt(np.mean(sd**2))))
    return out


def equivalence_bounds(
    n_sims: int = 200, seed: int = 90_000, sesoi_dz: float = 0.8, alpha: float = 0.05, roi_options: dict | None = None
) -> pd.DataFrame:
    """The value of each claim of absence's simulator parameter that puts its true effect at the equivalence bound.

    The NAC chapter's equivalence test declares an effect absent when it lies
    within ``sesoi_dz`` standardisers of its contrast (the raw ``bound`` of
    :func:`craving_circuits.stats.equivalence.evidence_table`). Its error
    under the hypothesis it rejects is the rate of declaring equivalence when
    the true effect is exactly at that bound. The planted parameter that
    gives such an effect is found by code, not set by hand: ``n_sims``
    ROI-level ``paper`` studies are simulated with the parameter at zero and
    at a first value (:data:`EQUIVALENCE_PARAMETERS`), the chapter's chain
    gives each study's estimate and standardiser, and the parameter's value
    at which the mean estimate equals ``sesoi_dz`` times the root mean
    square standardiser is read off the secant (the shift is linear in the
    parameter: it adds to every CUD participant's NAC session).

    Parameters
    ----------
    n_sims : int
        Studies per point of the secant (seeds ``seed .. seed + n_sims - 1``,
        apart from the calibration's replicates).
    seed : int
    sesoi_dz, alpha : float
        As in the NAC chapter.
    roi_options : dict, optional
        Keyword arguments of the ROI-level simulators, per study.

    Returns
    -------
    bounds : pandas.DataFrame
        ``claim_id, parameter, value, estimate_per_unit, sd, bound, n_sims``:
        the parameter's value at the bound, the change of the mean estimate per
        unit of the parameter, the contrast's standardiser and raw bound.
    """
    if int(n_sims) != n_sims or n_sims < 2:
        raise ValueError(f"n_sims must be an integer of at least 2, got {n_sims}.")
    options = (roi_options or {}).get("cocaine", {})
    first = {parameter: value for parameter, value in EQUIVALENCE_PARAMETERS.values()}
    zero = _equivalence_moments(dict.fromkeys(first, 0.0), int(n_sims), seed, sesoi_dz, alpha, options)
    moved = _equivalence_moments(first, int(n_sims), seed, sesoi_dz, alpha, options)
    rows = []
    for claim_id, (parameter, value) in EQUIVALENCE_PARAMETERS.items():
        (m0, sd0), (m1, sd1) = zero[claim_id], moved[claim_id]
        slope = (m1 - m0) / value
        if not np.isfinite(slope) or slope == 0:
            raise ValueError(f"Claim {claim_id}: its estimate does not move with {parameter}; no bound to reach.")
        sd = float(np.sqrt((sd0**2 + sd1**2) / 2))
        target = np.sign(slope * value) * sesoi_dz * sd  # on the side the drug was expected to act
        rows.append(
            {
                "claim_id": claim_id,
                "parameter": parameter,
                "value": float((target - m0) / slope),
                "estimate_per_unit": float(slope),
                "sd": sd,
                "bound": float(sesoi_dz * sd),
                "n_sims": int(n_sims),
            }
        )
    return pd.DataFrame(rows)


def _label_fields(label: str) -> list[str]:
    """The columns a label's format fields read (``{target}``, ``{row.x}`` -> ``row``)."""
    fields = (re.split(r"[.\[]", field)[0] for _, field, _, _ in Formatter().parse(label) if field)
    return list(dict.fromkeys(fields))


def _one_per_replicate(table: pd.DataFrame, replicates, what: str, unique: bool = True) -> pd.DataFrame:
    """The row of each replicate, in the order of ``replicates`` (the first one when not ``unique``)."""
    if replicates is None:
        if unique and len(table) != 1:
            raise ValueError(f"{what}: {len(table)} rows.")
        if table.empty:
            raise ValueError(f"{what}: no row.")
        return table.iloc[:1]
    counts = table[REPLICATE].value_counts().reindex(replicates, fill_value=0)
    bad = counts[(counts != 1) if unique else (counts == 0)]
    if len(bad):
        raise ValueError(f"{what}: {int(bad.iloc[0])} rows in replicate {bad.index[0]!r}.")
    return table.drop_duplicates(REPLICATE).set_index(REPLICATE).loc[replicates].reset_index()


def _claim_rows(claim: Claim, chapters: dict, alpha: float, replicates=None) -> pd.DataFrame:
    """A claim's estimand read from a replicate's (or each of stacked replicates') chapter tables, decided as the
    ledger decides: ``replicate`` (stacked only), ``claim_id, test, estimate, p, found, equivalent``."""
    e = claim.estimand
    if e.kind != "row" or e.each is not None:
        raise ValueError(f"Claim {claim.claim_id}: its estimand {e.id} is not one row of a table.")
    table = chapters[e.chapter][e.table]
    rows = _one_per_replicate(
        e._rows(table, e.table), replicates, f"Claim {claim.claim_id}: rows of its estimand {e.id}"
    )
    fields = _label_fields(e.label)
    if fields:
        keys = list(rows[fields].itertuples(index=False, name=None))
        labels = {key: e.label.format(**dict(zip(fields, key))) for key in dict.fromkeys(keys)}
        test = [labels[key] for key in keys]
    else:
        test = [e.label] * len(rows)
    estimate = pd.to_numeric(rows[e.estimate], errors="coerce").to_numpy(dtype=float)
    p = pd.to_numeric(rows[e.p], errors="coerce").to_numpy(dtype=float)
    found = p < alpha
    if claim.direction is not None:
        found &= np.sign(estimate) == claim.direction
    equivalent = np.full(len(rows), None, dtype=object)
    if claim.direction is None:
        eq = claim.equivalence
        picked = _one_per_replicate(
            eq._rows(chapters[eq.chapter][eq.table], ""),
            replicates,
            f"Claim {claim.claim_id}: rows of its equivalence test",
            unique=False,
        )
        equivalent[:] = list(picked["p_equivalence"].astype(float).to_numpy() < alpha)
    out = pd.DataFrame(
        {
            "claim_id": claim.claim_id,
            "test": test,
            "estimate": estimate,
            "p": p,
            "found": found.astype(bool),
            "equivalent": equivalent,
        }
    )
    if replicates is not None:
        out.insert(0, REPLICATE, np.asarray(replicates))
    return out


def _claims_table(study: str, chapters: dict, alpha: float, replicates=None) -> pd.DataFrame:
    """Every ROI-level claim of a study read from its chapters' tables, each replicate's rows together."""
    frames = [_claim_rows(c, chapters, alpha, replicates) for c in registry.claims(study, "roi")]
    table = pd.concat(frames, ignore_index=True)
    if replicates is None:
        return table
    return table.sort_values(REPLICATE, kind="stable", ignore_index=True)


def _cocaine_chapters(tables: dict, alpha: float, sesoi_r: float, sesoi_dz: float, n_boot: int, rng) -> dict:
    fc = secondlevel.roi_state_differences(tables["roi"])
    keys = [c for c in (REPLICATE, "participant_id", "session_id", "drug") if c in tables["roi"].columns]
    drugs = tables["roi"][keys].drop_duplicates()
    return {
        "thalamus_glutamate": cocaine_chapters.glutamate_tests(
            fc, tables["mrs"], tables["participants"], drugs, n_bootstrap=n_boot, sesoi_r=sesoi_r, alpha=alpha, rng=rng
        ),
        "nac_null_effect": cocaine_chapters.nac_tests(fc, tables["ratings"], sesoi_dz=sesoi_dz, alpha=alpha),
    }


def _baclofen_chapters(tables: dict, alpha: float, n_boot: int, rng) -> dict:
    dlpfc_change = perfusion.participant_change(tables["cbf"])
    return {
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


def _replicate_labels(tables: dict):
    first = next(iter(tables.values()))
    return np.unique(first[REPLICATE].to_numpy()) if REPLICATE in first.columns else None


def cocaine_roi_tests(
    tables: dict, alpha: float = 0.05, sesoi_r: float = 0.5, sesoi_dz: float = 0.8, n_boot: int = 200, rng=None
) -> list[dict]:
    """The cocaine claims' ROI-level tests on one ROI-level study (or stacked ones), through the chapters' own chains.

    The glutamate and NAC chapters' chains
    (:func:`craving_circuits.cocaine.chapters.glutamate_tests`,
    :func:`craving_circuits.cocaine.chapters.nac_tests`) run on the study's
    tables as the chapters run them on the first level's ROI values; each
    ROI-level claim of the registry is then read from their tables.

    Parameters
    ----------
    tables : dict
        From :func:`craving_circuits.simulate.roi_level.cocaine_roi_study`, or
        stacked replicates from :func:`craving_circuits.simulate.roi_level.cocaine_roi_studies`.
    alpha, sesoi_r, sesoi_dz : float
        Level, and the equivalence bounds of the chapters (correlation; d_z).
    n_boot : int
        Bootstrap resamples of the correlations (their p comes from the
        t distribution; the bootstrap only sets their interval).
    rng : numpy Generator, int or None
        For stacked replicates, one Generator per replicate (a mapping from
        label to Generator, or a sequence in the order of the sorted labels).

    Returns
    -------
    rows : list of dict
        ``claim_id, test, estimate, p, found, equivalent``, one per ROI-level
        cocaine claim (per replicate and claim, with ``replicate``, for stacked replicates).
    """
    chapters = _cocaine_chapters(tables, alpha, sesoi_r, sesoi_dz, n_boot, rng)
    return _claims_table("cocaine", chapters, alpha, _replicate_labels(tables)).to_dict("records")


def baclofen_roi_tests(tables: dict, alpha: float = 0.05, n_boot: int = 200, rng=None) -> list[dict]:
    """The baclofen claims' ROI-level tests on one ROI-level study (or stacked ones), through the cue chapter's chain.

    The CBF chapter's dlPFC change (:func:`craving_circuits.baclofen.perfusion.participant_change`
    of the ROI's CBF) enters :func:`craving_circuits.baclofen.chapters.cue_tests`
    as in the cue chapter; each ROI-level claim of the registry is read from its tables.

    Parameters
    ----------
    tables : dict
        From :func:`craving_circuits.simulate.roi_level.baclofen_roi_study`, or
        stacked replicates from :func:`craving_circuits.simulate.roi_level.baclofen_roi_studies`.
    alpha : float
    n_boot : int
        Bootstrap resamples of the correlations and of the indirect effect.
    rng : numpy Generator, int or None
        For stacked replicates, one Generator per replicate (as for :func:`cocaine_roi_tests`).

    Returns
    -------
    rows : list of dict
        ``claim_id, test, estimate, p, found, equivalent``, one per ROI-level
        baclofen claim (per replicate and claim, with ``replicate``, for stacked replicates).
    """
    chapters = _baclofen_chapters(tables, alpha, n_boot, rng)
    return _claims_table("baclofen", chapters, alpha, _replicate_labels(tables)).to_dict("records")


def _present(study: str, params) -> dict[str, bool]:

    effects = planted_effects(params) if study == "cocaine" else planted_baclofen_effects(params)
    return {e["effect"]: bool(e["present"]) for e in effects}


def _replicates(
    study: str,
    conditions: tuple,
    replicates: list[int],
    seed: int,
    alpha: float,
    n_boot: int,
    roi_options: dict,
    baclofen_model,
    bounds: dict,
) -> pd.DataFrame:
    """Simulate and test a chunk of replicates of one study under every condition, as one stack (one worker).

    The stack holds each replicate under each condition, seed by seed (a seed's conditions share the draws
    that do not depend on the planted effects); its labels are ``replicate * len(conditions) + condition``.
    """

    jobs = [(condition, i) for i in replicates for condition in conditions]
    params = [condition_params(study, condition, seed + i, bounds) for condition, i in jobs]
    labels = np.array([i * len(conditions) + k for i in replicates for k in range(len(conditions))])
    rngs = {label: np.random.default_rng([seed + i, 7]) for label, (_, i) in zip(labels, jobs)}
    options = roi_options.get(study, {})
    if study == "cocaine":
        tables = roi_level.cocaine_roi_studies(params, replicates=labels, **options)
        chapters = _cocaine_chapters(tables, alpha, 0.5, 0.8, n_boot, rngs)
    else:
        tables = roi_level.baclofen_roi_studies(params, baclofen_model, replicates=labels, **options)
        chapters = _baclofen_chapters(tables, alpha, n_boot, rngs)
    rows = _claims_table(study, chapters, alpha, np.sort(labels))
    present = {label: _present(study, p) for label, p in zip(labels, params)}
    effects = rows["claim_id"].map(lambda claim_id: registry.claim(claim_id).estimand.effect)
    rows["planted_present"] = [present[r][e] for r, e in zip(rows[REPLICATE], effects)]
    rows["condition"] = [conditions[k] for k in rows[REPLICATE] % len(conditions)]
    rows["study"] = study
    rows[REPLICATE] = rows[REPLICATE] // len(conditions)
    return rows[CALIBRATION_COLUMNS]


def monte_carlo(
    n_sims: int,
    conditions=None,
    studies=("cocaine", "baclofen"),
    seed: int = 10_000,
    alpha: float = 0.05,
    n_boot: int = 200,
    n_jobs: int = 1,
    batch_size: int = 25,
    roi_options: dict | None = None,
    baclofen_model=None,
    bounds=None,
    progress: bool = True,
) -> pd.DataFrame:
    """Simulate and test ``n_sims`` studies per condition and study, in stacks, in parallel.

    Parameters
    ----------
    n_sims : int
        Replicates per condition and study.
    conditions : sequence of str, optional
        Conditions to run (each study runs those of :func:`study_conditions`
        that are its own); default: every condition of every study.
    studies : sequence of {"cocaine", "baclofen"}
    seed : int
        Replicate ``i`` uses the simulator seed ``seed + i`` and the bootstrap
        Generator ``numpy.random.default_rng([seed + i, 7])``.
    alpha : float
    n_boot : int
        Bootstrap resamples inside each replicate.
    n_jobs : int
        Worker processes (joblib; with a Dask engine active, its workers).
    batch_size : int
        Replicates per job; a job simulates and tests them under every
        condition as one stack (the results do not depend on it).
    roi_options : dict, optional
        Keyword arguments of the ROI-level simulators, per study.
    baclofen_model : BaclofenRoiModel, optional
        Derived from the ``paper`` preset's maps when not given.
    bounds : pandas.DataFrame or dict, optional
        From :func:`equivalence_bounds`: adds the ``at_bound_`` conditions.
    progress : bool
        Show a progress bar.

    Returns
    -------
    results : pandas.DataFrame
        Columns :data:`CALIBRATION_COLUMNS`; the rows of each study, condition
        and replicate together, in that order.
    """

    if int(n_sims) != n_sims or n_sims < 1:
        raise ValueError(f"n_sims must be a positive integer, got {n_sims}.")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
    unknown = set(studies) - set(EFFECT_PARAMETERS)
    if not studies or (conditions is not None and not len(conditions)):
        raise ValueError("Give at least one study and one condition.")
    if unknown:
        raise ValueError(f"Unknown studies {sorted(unknown)}; choose from {list(EFFECT_PARAMETERS)}.")
    bounds = _bound_values(bounds)
    own = {s: study_conditions(s, bounds) for s in studies}
    if conditions is None:
        per_study = own
    else:
        stray = [c for c in conditions if not any(c in own[s] for s in studies)]
        if stray:
            raise ValueError(
                f"Unknown condition {stray[0]!r}; the studies' conditions are {sorted(set().union(*own.values()))}."
            )
        per_study = {s: tuple(c for c in conditions if c in own[s]) for s in studies}
    per_study = {s: c for s, c in per_study.items() if c}
    if "baclofen" in per_study and baclofen_model is None:
        baclofen_model = roi_level.baclofen_roi_model(baclofen_params("paper"))
    indices = list(range(int(n_sims)))
    chunks = [indices[k : k + int(batch_size)] for k in range(0, len(indices), int(batch_size))]
    jobs = [(s, chunk) for s in per_study for chunk in chunks]
    run = Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(_replicates)(s, per_study[s], chunk, seed, alpha, n_boot, roi_options or {}, baclofen_model, bounds)
        for s, chunk in jobs
    )
    frames = []
    total = sum(len(c) for c in per_study.values()) * len(indices)
    with tqdm(total=total, desc="simulated studies", disable=not progress, mininterval=5) as bar:
        for (s, chunk), out in zip(jobs, run):
            frames.append(out)
            bar.update(len(chunk) * len(per_study[s]))
    results = pd.concat(frames, ignore_index=True)
    condition_order = list(dict.fromkeys(c for cs in per_study.values() for c in cs))
    order = [
        results["study"].map({s: k for k, s in enumerate(per_study)}),
        results["condition"].map({c: k for k, c in enumerate(condition_order)}),
    ]
    results = results.assign(_study=order[0], _condition=order[1])
    results = results.sort_values(["_study", "_condition", REPLICATE], kind="stable", ignore_index=True)
    return results[CALIBRATION_COLUMNS]


def _condition_rank(conditions) -> dict:
    """Order of conditions for tables: :data:`CONDITIONS`, then the others as they come."""
    return {c: k for k, c in enumerate(dict.fromkeys([*CONDITIONS, *conditions]))}


def calibration_summary(
    results: pd.DataFrame, alpha: float = 0.05, ci_level: float = 0.95, max_upper: float = MAX_UPPER_BOUND
) -> pd.DataFrame:
    """Rates of each test per condition, with Clopper-Pearson intervals, and whether each error rate holds its level.

    For a planted effect the rate of ``found`` is the power; for an absent one
    it is the false-positive rate (any significant effect in the claimed
    direction; for a claim of absence, any significant effect). A claim of
    absence also gets the rate at which its equivalence test declares the
    effect absent: under its ``at_bound_<claim_id>`` condition, where the true
    effect is exactly at the equivalence bound, that rate is the equivalence
    test's error (``"equivalence at the bound"``); elsewhere it is reported as
    ``"equivalence rate"``.

    An error rate (a false-positive rate, or equivalence at the bound) holds
    its level when the upper end of its Clopper-Pearson interval is at most
    ``max_upper`` (``holds``); with 2000 replicates a true rate of ``alpha =
    0.05`` has an upper end of about 0.06, and a true rate of 0.065 one of about 0.075.

    Parameters
    ----------
    results : pandas.DataFrame
        From :func:`monte_carlo`.
    alpha : float
        The tests' level.
    ci_level : float
        Coverage of the (two-sided) intervals of the rates.
    max_upper : float
        The largest upper end of an error rate's interval that holds its level.

    Returns
    -------
    summary : pandas.DataFrame
        Columns :data:`SUMMARY_COLUMNS`; ``measure`` is ``"false-positive
        rate"``, ``"power"``, ``"equivalence at the bound"`` or ``"equivalence
        rate"``; ``nominal``, ``criterion`` and ``holds`` only for the error rates.
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
            at_bound = base["condition"] == f"{AT_BOUND}{base['claim_id']}"
            counts.append(
                {
                    **base,
                    "measure": "equivalence at the bound" if at_bound else "equivalence rate",
                    "n": len(group),
                    "count": int(group["equivalent"].astype(bool).sum()),
                }
            )
    rows = []
    for c in counts:
        low, high = proportion_confint(c["count"], c["n"], alpha=1 - ci_level, method="beta")
        error = c["measure"] in ("false-positive rate", "equivalence at the bound")
        rows.append(
            {
                **c,
                "rate": c["count"] / c["n"],
                "ci_low": low,
                "ci_high": high,
                "nominal": alpha if error else np.nan,
                "criterion": max_upper if error else np.nan,
                "holds": bool(high <= max_upper) if error else None,
            }
        )
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    order = out["condition"].map(_condition_rank(out["condition"]))
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
    measure : {"power", "false-positive rate", "equivalence rate", "equivalence at the bound"}
    """
    rows = summary[summary["measure"] == measure]
    if rows.empty:
        raise ValueError(f"No rows with measure {measure!r}; the summary has {sorted(summary['measure'].unique())}.")
    wide = rows.pivot_table(index=["study", "claim_id", "test"], columns="condition", values="rate", sort=False)
    rank = _condition_rank(wide.columns)
    columns = [c for c in CONDITIONS if c in wide.columns] if measure == "power" else sorted(wide.columns, key=rank.get)
    return wide[columns].dropna(how="all").reset_index()  # claims with the measure only under other conditions: out


def upper_bound_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The upper Clopper-Pearson bound of every error rate: one row per claim, one column per condition.

    A cell is the upper end of the interval of the claim's false-positive rate
    under a condition where its effect is absent, or of its equivalence rate
    under its ``at_bound_`` condition; it is empty where the claim's effect is
    present (power is no error). ``n`` is the smallest replicate count of the
    row, ``worst`` the largest bound, ``holds`` whether every bound is at most
    the criterion.

    Parameters
    ----------
    summary : pandas.DataFrame
        From :func:`calibration_summary`.
    """
    errors = summary[summary["holds"].notna()]
    if errors.empty:
        raise ValueError("The summary has no error rates (no condition where a claim's effect is absent).")
    wide = errors.pivot_table(index=["study", "claim_id"], columns="condition", values="ci_high", sort=False)
    wide = wide[sorted(wide.columns, key=_condition_rank(wide.columns).get)]
    per_claim = errors.groupby(["study", "claim_id"], sort=False)
    wide.insert(0, "n", per_claim["n"].min())
    wide["worst"] = per_claim["ci_high"].max()
    wide["holds"] = per_claim["holds"].all().astype(bool)
    return wide.reset_index().rename_axis(columns=None)


#: Columns of :func:`threats_table`.
THREAT_COLUMNS = [
    "study",
    "threat",
    "description",
    "claim_id",
    "level",
    "checked_by",
    "n",
    "rate",
    "ci_high",
    "holds",
]


def _voxel_condition(preset: str) -> str | None:
    """The voxelwise condition that carries a threat preset's variance structure, if any."""
    name = preset.removeprefix("threat_")
    return name if name in VOXEL_CONDITIONS and name != "null" else None


def threats_table(
    summary: pd.DataFrame, voxel_summary: pd.DataFrame | None = None, image_command: str | None = None
) -> pd.DataFrame:
    """Each threat, the claims it could fake, and what those claims' tests did under it.

    One row per threat and claim: the simulators' threat presets (their
    ``THREATS``) and the calibration's ``at_bound_`` conditions (the claims of
    absence with the true effect at their equivalence bound). A ROI-level
    claim's row is its error rate under the threat's ROI-level condition (the
    chapter's own test on the replicates); a voxel-level claim's row is its
    test's family-wise error under the voxelwise condition with the threat's
    variance structure. A threat that only images carry (state-dependent
    motion and physiology) has no row values in this build: ``checked_by``
    names the image-level command that runs it.

    Parameters
    ----------
    summary : pandas.DataFrame
        From :func:`calibration_summary`.
    voxel_summary : pandas.DataFrame, optional
        From :func:`voxelwise_summary`.
    image_command : str, optional
        The command to show for the threats checked only at image level.

    Returns
    -------
    table : pandas.DataFrame
        Columns :data:`THREAT_COLUMNS`; ``rate`` is the false-positive rate
        (the equivalence rate for ``at_bound_`` conditions), ``holds`` whether
        its upper bound ``ci_high`` is at most the criterion, None where not
        checked in this build.
    """
    errors = summary[summary["holds"].notna()]
    entries = []
    for study in ("cocaine", "baclofen"):
        for preset, threat in threats(study).items():
            entries += [(study, preset, threat["threat"], claim_id) for claim_id in threat["claims"]]
    for condition in dict.fromkeys(errors.loc[errors["condition"].str.startswith(AT_BOUND), "condition"]):
        claim_id = condition.removeprefix(AT_BOUND)
        description = "The drug's true effect sits exactly at the equivalence bound of the chapter."
        entries.append((registry.claim(claim_id).study, condition, description, claim_id))
    rows = []
    for study, condition, description, claim_id in entries:
        claim = registry.claim(claim_id)
        row = dict(study=study, threat=condition, description=description, claim_id=claim_id, level=claim.level)
        row.update(checked_by=None, n=np.nan, rate=np.nan, ci_high=np.nan, holds=None)
        if claim.level == "roi":
            sub = errors[(errors["claim_id"] == claim_id) & (errors["condition"] == condition)]
            if len(sub):
                worst = sub.loc[sub["ci_high"].idxmax()]
                row.update(checked_by="ROI-level replicates", **_rate_fields(worst))
        else:
            voxel_condition = _voxel_condition(condition)
            sub = (
                voxel_summary[
                    (voxel_summary["test"] == claim.voxel_test) & (voxel_summary["condition"] == voxel_condition)
                ]
                if voxel_summary is not None and voxel_condition is not None
                else pd.DataFrame()
            )
            if len(sub):
                row.update(checked_by=f"voxelwise null maps ({voxel_condition})", **_rate_fields(sub.iloc[0]))
        if row["checked_by"] is None:
            row["checked_by"] = "image level only" + (f": {image_command}" if image_command else "")
        rows.append(row)
    return pd.DataFrame(rows, columns=THREAT_COLUMNS)


def _rate_fields(row) -> dict:
    return dict(n=int(row["n"]), rate=float(row["rate"]), ci_high=float(row["ci_high"]), holds=bool(row["holds"]))


def _calibration_verdict(claim: Claim, errors: pd.DataFrame, max_upper: float) -> tuple[bool, str]:
    """Whether a ROI-level claim's test holds its level in every condition where it was checked, and why not."""
    if errors.empty:
        return False, "no condition where its effect is absent was run"
    failed = errors[~errors["holds"].astype(bool)]
    if len(failed):
        worst = failed.loc[failed["ci_high"].idxmax()]
        return False, (
            f"{worst['measure']} under {worst['condition']}: {worst['rate']:.3f}, upper bound "
            f"{worst['ci_high']:.3f} > {max_upper:g}"
        )
    if claim.direction is None and not (errors["measure"] == "equivalence at the bound").any():
        return False, "its equivalence test was never run with the true effect at its bound (no simulator parameter)"
    return True, f"every upper bound at most {max_upper:g} ({len(errors)} error rates)"


def claims_table(
    summary: pd.DataFrame, voxel_summary: pd.DataFrame | None = None, max_upper: float = MAX_UPPER_BOUND
) -> pd.DataFrame:
    """Per claim of the registry: how its test was calibrated, whether it holds its level, how often it finds the
    ``paper`` effect, and its false-positive rate under the null (the calibration's "recovered vs planted").

    Parameters
    ----------
    summary : pandas.DataFrame
        From :func:`calibration_summary` (the ROI-level claims).
    voxel_summary : pandas.DataFrame, optional
        From :func:`voxelwise_summary` (the voxel-level claims' null rates,
        with ``test, n, rate, ci_high``).
    max_upper : float
        The largest upper Clopper-Pearson bound of an error rate that holds its level.

    Returns
    -------
    table : pandas.DataFrame
        ``study, claim_id, level, calibrated_by, n`` (the smallest replicate
        count of its error rates), ``n_conditions`` (conditions with an error
        rate), ``planted_at_paper, rate_at_paper`` (power, or the
        false-positive rate when the effect is absent), ``fpr_null``,
        ``worst_upper`` (the largest upper bound of its error rates) and
        ``worst_condition``, ``equivalence_at_bound`` (the rate, claims of
        absence), ``calibrated`` and ``reason``. ``calibrated`` is None for a
        voxel-level claim without a voxelwise summary.
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
            "n": np.nan,
            "n_conditions": 0,
            "planted_at_paper": None,
            "rate_at_paper": np.nan,
            "fpr_null": np.nan,
            "worst_upper": np.nan,
            "worst_condition": None,
            "equivalence_at_bound": np.nan,
            "calibrated": None,
            "reason": "not run",
        }
        if claim.level == "roi" and len(sub):
            paper = sub[sub["condition"] == "paper"]
            null = sub[(sub["condition"] == "null") & (sub["measure"] == "false-positive rate")]
            main = paper[~paper["measure"].str.startswith("equivalence")]
            errors = sub[sub["holds"].notna()]
            at_bound = sub[sub["measure"] == "equivalence at the bound"]
            calibrated, reason = _calibration_verdict(claim, errors, max_upper)
            worst = errors.loc[errors["ci_high"].idxmax()] if len(errors) else None
            row.update(
                {
                    "n": int(errors["n"].min()) if len(errors) else np.nan,
                    "n_conditions": int(errors["condition"].nunique()),
                    "planted_at_paper": bool(main["planted_present"].iloc[0]) if len(main) else None,
                    "rate_at_paper": float(main["rate"].iloc[0]) if len(main) else np.nan,
                    "fpr_null": float(null["rate"].iloc[0]) if len(null) else np.nan,
                    "worst_upper": float(worst["ci_high"]) if worst is not None else np.nan,
                    "worst_condition": worst["condition"] if worst is not None else None,
                    "equivalence_at_bound": float(at_bound["rate"].iloc[0]) if len(at_bound) else np.nan,
                    "calibrated": calibrated,
                    "reason": reason,
                }
            )
        elif claim.level == "voxel" and voxel_summary is not None:
            voxel = voxel_summary[voxel_summary["test"] == claim.voxel_test]
            if len(voxel):
                v = voxel.loc[voxel["ci_high"].idxmax()]  # the worst of its conditions, if it has several
                null = voxel[voxel["condition"] == "null"] if "condition" in voxel.columns else voxel
                holds = bool(v["ci_high"] <= max_upper)
                row.update(
                    {
                        "n": int(voxel["n"].min()),
                        "n_conditions": len(voxel),
                        "fpr_null": float(null["rate"].iloc[0]) if len(null) else np.nan,
                        "worst_upper": float(v["ci_high"]),
                        "worst_condition": v.get("condition", "null maps"),
                        "calibrated": holds,
                        "reason": f"family-wise error {v['rate']:.3f}, upper bound {v['ci_high']:.3f} "
                        f"{'<=' if holds else '>'} {max_upper:g}",
                    }
                )
        rows.append(row)
    return pd.DataFrame(rows)


#: The tables :func:`run_roi_calibration` writes, by file name.
ROI_CALIBRATION_TABLES = ("bounds", "summary", "upper_bounds", "claims")


def run_roi_calibration(
    n_sims: int,
    output_dir=None,
    seed: int = 10_000,
    alpha: float = 0.05,
    n_boot: int = 200,
    n_bound_sims: int = 200,
    n_jobs: int = 1,
    batch_size: int = 50,
    progress: bool = False,
) -> dict[str, pd.DataFrame]:
    """The whole ROI-level calibration at any replicate count: every condition of both studies, summarised.

    The command ``craving-circuits calibrate`` runs it (on the engine it is
    given) with more replicates than the book's build, and the calibration
    chapter shows the intervals its counts give. The tables are written
    together: into a sibling folder first, which then replaces
    ``output_dir`` (a run that stops part-way leaves the previous tables).

    Parameters
    ----------
    n_sims : int
        Replicates per condition and study.
    output_dir : str or Path, optional
        Where to write :data:`ROI_CALIBRATION_TABLES` (``<name>.tsv``); nothing is written without it.
    seed, alpha, n_boot, n_jobs, batch_size, progress
        As in :func:`monte_carlo`.
    n_bound_sims : int
        Studies per point of :func:`equivalence_bounds`.

    Returns
    -------
    tables : dict
        ``bounds`` (:func:`equivalence_bounds`), ``summary``
        (:func:`calibration_summary`), ``upper_bounds``
        (:func:`upper_bound_table`), ``claims`` (:func:`claims_table`).
    """
    bounds = equivalence_bounds(n_bound_sims, alpha=alpha)
    results = monte_carlo(
        n_sims,
        seed=seed,
        alpha=alpha,
        n_boot=n_boot,
        n_jobs=n_jobs,
        batch_size=batch_size,
        bounds=bounds,
        progress=progress,
    )
    summary = calibration_summary(results, alpha=alpha)
    tables = {
        "bounds": bounds,
        "summary": summary,
        "upper_bounds": upper_bound_table(summary),
        "claims": claims_table(summary),
    }
    if output_dir is not None:
        output_dir = Path(output_dir)
        partial, old = (
            output_dir.with_name(output_dir.name + ".partial"),
            output_dir.with_name(output_dir.name + ".old"),
        )
        for stale in (partial, old):
            shutil.rmtree(stale, ignore_errors=True)
        save_tables(partial, tables)
        if output_dir.exists():
            output_dir.rename(old)
        partial.rename(output_dir)
        shutil.rmtree(old, ignore_errors=True)
    return tables


def read_roi_calibration(output_dir) -> dict[str, pd.DataFrame] | None:
    """The tables of a :func:`run_roi_calibration` run (e.g. ``craving-circuits calibrate``), or None if it has not
    been run into ``output_dir`` (raises when only some of its tables are there)."""
    paths = {name: Path(output_dir) / f"{name}.tsv" for name in ROI_CALIBRATION_TABLES}
    there = [name for name, path in paths.items() if path.exists()]
    if not there:
        return None
    if len(there) < len(paths):
        missing = sorted(set(paths) - set(there))
        raise FileNotFoundError(
            f"{output_dir} holds only part of a calibration run (missing {missing}); run "
            f"`craving-circuits calibrate --output-dir {output_dir}` again."
        )
    return {name: read_table(output_dir, name) for name in paths}


def engine_table(output_dir) -> pd.DataFrame:
    """The upper bounds of a ``craving-circuits calibrate`` run in ``output_dir`` (:func:`upper_bound_table`), or
    one row saying how to run it when it has not been run."""
    run = read_roi_calibration(output_dir)
    if run is None:
        return pd.DataFrame(
            {"not run": [f"craving-circuits calibrate --replicates 10000 --engine dask --output-dir {output_dir}"]}
        )
    return run["upper_bounds"]


#: The voxelwise tests of the chapters, which the ledger reads: the study, the maps each tests (``state``:
#: craving - neutral, ``drug``: the NAC - placebo double difference, ``cbf``: the T2 - T1 CBF change,
#: ``cue``: the T2 - T1 cue-response change) and its cluster-forming threshold in the chapter.
VOXEL_TESTS: dict[str, dict] = {
    **{name: {"study": "cocaine", "maps": "state", "cluster_forming_p": 0.001} for name in secondlevel.GROUP_TESTS},
    **{name: {"study": "cocaine", "maps": "drug", "cluster_forming_p": 0.001} for name in secondlevel.DRUG_TESTS},
    "glutamate_coupling": {"study": "cocaine", "maps": "state", "cluster_forming_p": 0.01},
    "group_x_time_cbf": {"study": "baclofen", "maps": "cbf", "cluster_forming_p": 0.001},
    "cue_cbf_coupling": {"study": "baclofen", "maps": "cue", "cluster_forming_p": 0.01},
}

#: The conditions of the voxelwise calibration: the threats' variance structures, each with the tests it
#: concerns (``null``: every test).
VOXEL_CONDITIONS: dict[str, dict] = {
    "null": {
        "tests": tuple(VOXEL_TESTS),
        "description": "nothing planted: smooth Gaussian noise with the simulators' smoothness",
    },
    "unequal_variance": {
        "tests": ("group_x_state", "group_x_state_x_drug", "group_x_time_cbf", "cue_cbf_coupling"),
        "description": "one group's maps spread wider (the smaller group, CUD, for cocaine; baclofen for "
        "baclofen), by the ratio of the threat_unequal_variance preset",
    },
    "global_cbf": {
        "tests": ("group_x_time_cbf",),
        "description": "baclofen raises CBF everywhere by the fraction of the threat_global_cbf preset, the "
        "global-CBF covariate of the chapter in the model",
    },
    "direct_cue": {
        "tests": ("cue_cbf_coupling",),
        "description": "baclofen lowers the cue response everywhere and raises the dlPFC CBF, with no link "
        "between them (threat_direct_cue); group is a nuisance of the chapter's test",
    },
}


@dataclass(frozen=True)
class MapNoise:
    """How the null participant maps of one kind are made.

    Attributes
    ----------
    fwhm_mm : float
        Smoothness of the smooth part (a :class:`~craving_circuits.simulate.signals.SmoothNoiseField`).
    smooth_share : float
        Share of the map's variance that is smooth; the rest is voxel-wise white noise.
    voxel_size_mm : int
    """

    fwhm_mm: float
    smooth_share: float
    voxel_size_mm: int


#: Where the cocaine maps' noise derived from the image pipeline is stored (see :func:`map_noise`).
MAP_NOISE_FILE = Path(roi_level.__file__).parent / "data" / "cocaine_map_noise.json"

#: The cocaine simulator's parameters that shape the noise of its participant maps: a derived map noise
#: applies to the parameters that agree with its derivation's on every one of these.
MAP_NOISE_PARAMETERS = tuple(
    "n_volumes repetition_time source_sd global_sd physio_sd fc_subject_sd "  # the series
    "smooth_noise_sd smooth_noise_fwhm_mm noise_ar1 white_noise_sd drift_sd "  # the noise
    "motion_step_mm motion_spikes motion_cud_factor motion_craving_factor motion_artifact_scale "  # motion
    "spin_history_pct_per_mm motion_error_mm spike_fd_threshold_mm spike_pct_per_mm2 "  # artefacts, nuisance
    "distance_artifact_pct_per_mm distance_artifact_mm global_craving_factor cardioresp_sd "
    "physio_craving_factor".split()
)


def noise_signature(params) -> dict:
    """The values of :data:`MAP_NOISE_PARAMETERS` of cocaine simulator parameters."""
    return {name: float(getattr(params, name)) for name in MAP_NOISE_PARAMETERS}


def read_map_noise(path=None) -> dict:
    """The stored derivations of the cocaine maps' noise (``MAP_NOISE_FILE`` by default), one per preset."""
    path = Path(path) if path is not None else MAP_NOISE_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing; run `python -m craving_circuits.verdict.image_calibration 2` to derive it."
        )
    return json.loads(path.read_text())


def map_noise(study: str, params=None, derived: dict | None = None) -> dict[str, MapNoise]:
    """The noise of each kind of participant map of a study.

    Cocaine (``state`` and ``drug``, seed-connectivity Fisher-z differences): measured on the image
    pipeline's own null maps. A correlation map's noise is not the time series' (the smooth AR(1)
    component has fewer effective degrees of freedom, and the structured nuisance adds its own), so
    :func:`craving_circuits.verdict.image_calibration.derive_map_noise` simulates null studies with the
    image simulator, makes the maps as the chapters do, measures their smoothness
    (:func:`map_fwhm`, each map weighed alike) and finds the share of the simulator's smooth noise
    field (and, only when a share of 1 is not smooth enough, a wider field) whose drawn maps
    (:func:`match_map_noise`) measure the same. Those derivations are stored in
    :data:`MAP_NOISE_FILE` per simulator preset; the one whose noise parameters
    (:data:`MAP_NOISE_PARAMETERS`) are ``params``' own is used. Its share and field width apply on any
    grid: both are properties of the time series (the simulator's white noise has the same SD per
    voxel on every grid), derived on the 8 mm grid the calibration uses.

    Baclofen: from the simulator's parameters: ``cue`` (the task run's smooth and white noise) and
    ``cbf`` (the smooth regional CBF variation against the thermal noise of a quantified grey-matter
    voxel).

    Parameters
    ----------
    study : {"cocaine", "baclofen"}
    params : CocaineStudyParams or BaclofenStudyParams, optional
        Default: the ``paper`` preset.
    derived : dict, optional
        Cocaine: the derivations to choose from (default: :func:`read_map_noise`).

    Returns
    -------
    noise : dict of str -> MapNoise
        Cocaine: ``state`` and ``drug``; baclofen: ``cue`` and ``cbf``.
    """
    if study == "cocaine":
        p = params or cocaine_params("paper")
        derived = read_map_noise() if derived is None else derived
        wanted = noise_signature(p)
        for entry in derived["presets"].values():
            if all(np.isclose(entry["noise_parameters"][k], v) for k, v in wanted.items()):
                kinds = entry["kinds"]
                return {
                    kind: MapNoise(
                        float(kinds[kind]["fwhm_mm"]), float(kinds[kind]["smooth_share"]), int(p.voxel_size_mm)
                    )
                    for kind in ("state", "drug")
                }
        raise ValueError(
            f"No derived map noise for cocaine parameters of preset {p.preset!r} (their noise parameters differ "
            f"from those of the presets {sorted(derived['presets'])} in {MAP_NOISE_FILE.name}); derive it with "
            "craving_circuits.verdict.image_calibration.derive_map_noise and add it there."
        )
    if study == "baclofen":
        p = params or baclofen_params("paper")
        cue_share = p.task_noise_sd**2 / (p.task_noise_sd**2 + p.task_white_noise_sd**2)
        thermal = float(roi_level.thermal_cbf_sd(p, np.array([p.m0_scale]))[0])  # in pure grey matter
        cbf_share = p.cbf_regional_sd**2 / (p.cbf_regional_sd**2 + thermal**2)
        fwhm, vox = float(p.smooth_noise_fwhm_mm), int(p.voxel_size_mm)
        return {"cue": MapNoise(fwhm, float(cue_share), vox), "cbf": MapNoise(fwhm, float(cbf_share), vox)}
    raise ValueError(f"Unknown study {study!r}; choose 'cocaine' or 'baclofen'.")


def map_fwhm(maps: np.ndarray, mask_img, scale: str = "voxel") -> np.ndarray:
    """Smoothness of maps along each axis (mm), from the correlation of neighbouring voxels.

    For a Gaussian autocorrelation, the correlation ``rho`` of two voxels ``d``
    mm apart gives ``FWHM = d sqrt(-4 ln 2 / (2 ln rho))`` (Forman et al. 1995),
    with ``rho`` estimated from every pair of neighbouring in-mask voxels along
    the axis, after removing each voxel's mean over the maps and scaling.

    Parameters
    ----------
    maps : ndarray, shape (n_maps, n_voxels)
    mask_img : nibabel.Nifti1Image
    scale : {"voxel", "map"}
        ``"voxel"``: each voxel scaled by its SD over the maps (maps whose variance differs between
        voxels); ``"map"``: each map scaled by its SD over the voxels, so that every map weighs alike.
        One participant map of outlying amplitude dominates the SD of every voxel it reaches under
        ``"voxel"``, and can set the estimate; under ``"map"`` it counts as one map. For stationary maps
        both estimate the same smoothness.

    Returns
    -------
    fwhm : ndarray, shape (3,)
    """
    mask = np.asarray(mask_img.dataobj) > 0
    maps = np.asarray(maps, dtype=float)
    if maps.ndim != 2 or maps.shape[1] != mask.sum() or len(maps) < 2:
        raise ValueError(f"Give at least 2 maps of the mask's {int(mask.sum())} voxels, got shape {maps.shape}.")
    if scale not in ("voxel", "map"):
        raise ValueError(f"scale must be 'voxel' or 'map', got {scale!r}.")
    z = maps - maps.mean(axis=0)
    if scale == "voxel":
        z /= np.maximum(z.std(axis=0), 1e-12)
    else:
        z -= z.mean(axis=1, keepdims=True)
        z /= np.maximum(z.std(axis=1, keepdims=True), 1e-12)
    vol = np.zeros((len(z),) + mask.shape)
    vol[:, mask] = z
    zooms = np.abs(np.diag(mask_img.affine)[:3])
    out = []
    for axis in range(3):
        a = [slice(None)] * 3
        b = [slice(None)] * 3
        a[axis], b[axis] = slice(0, -1), slice(1, None)
        pair = mask[tuple(a)] & mask[tuple(b)]
        rho = float((vol[(slice(None), *a)][:, pair] * vol[(slice(None), *b)][:, pair]).mean())
        out.append(zooms[axis] * np.sqrt(-2 * np.log(2) / np.log(rho)) if 0 < rho < 1 else np.nan)
    return np.asarray(out)


def _null_maps(fields: dict, noise: MapNoise, n: int, rng) -> np.ndarray:
    """``n`` unit-variance null maps: the simulator's smooth noise field mixed with white noise."""
    field = fields[(noise.voxel_size_mm, noise.fwhm_mm)]
    smooth = field.independent(rng, n).astype(np.float64)
    white = rng.standard_normal(smooth.shape)
    return np.sqrt(noise.smooth_share) * smooth + np.sqrt(1 - noise.smooth_share) * white


def match_map_noise(
    target_fwhm: float, base: MapNoise, mask_img, n_maps: int = 200, seed: int = 0, scale: str = "map"
) -> tuple[MapNoise, float]:
    """The map noise whose drawn maps (:func:`_null_maps`) have the smoothness ``target_fwhm``.

    The share of ``base``'s smooth field is found by a root search on ``[0, 1]`` (the mean
    :func:`map_fwhm` of ``n_maps`` maps drawn with the same ``seed`` at every share, so that the
    measured smoothness is a smooth, increasing function of the share). When even a share of 1 is not
    smooth enough, the share is 1 and the field's FWHM is found instead (from ``base.fwhm_mm`` up to
    four times it); when a share of 0 is already too smooth, the share is 0.

    Parameters
    ----------
    target_fwhm : float
        Smoothness (mm) to match, measured with :func:`map_fwhm` (``scale``), averaged over its axes.
    base : MapNoise
        The smooth field's FWHM to start from, and the grid.
    mask_img : nibabel.Nifti1Image
        The grid's brain mask.
    n_maps, seed : int
    scale : {"map", "voxel"}

    Returns
    -------
    noise : MapNoise
    drawn_fwhm : float
        The smoothness of its drawn maps (mm).
    """
    mask = np.asarray(mask_img.dataobj) > 0
    fields: dict = {}

    def drawn(share: float, fwhm: float) -> float:
        key = (base.voxel_size_mm, fwhm)
        if key not in fields:
            fields[key] = SmoothNoiseField(mask, base.voxel_size_mm, fwhm)
        maps = _null_maps(fields, MapNoise(fwhm, share, base.voxel_size_mm), n_maps, np.random.default_rng(seed))
        return float(np.mean(np.nan_to_num(map_fwhm(maps, mask_img, scale=scale), nan=0.0)))  # NaN: no correlation

    fwhm = float(base.fwhm_mm)
    if drawn(0.0, fwhm) >= target_fwhm:
        share = 0.0
    elif drawn(1.0, fwhm) >= target_fwhm:
        share = float(brentq(lambda s: drawn(s, fwhm) - target_fwhm, 0.0, 1.0, xtol=1e-3))
    else:
        share = 1.0
        if drawn(1.0, 4 * fwhm) <= target_fwhm:
            raise ValueError(f"No field up to {4 * fwhm} mm FWHM is as smooth as {target_fwhm:.2f} mm.")
        fwhm = float(brentq(lambda f: drawn(1.0, f) - target_fwhm, fwhm, 4 * fwhm, xtol=1e-2))
    noise = MapNoise(fwhm, share, int(base.voxel_size_mm))
    return noise, drawn(share, fwhm)


@dataclass(frozen=True)
class _VoxelSetup:
    """What every voxelwise replicate shares: grid, noise fields, designs and the threats' sizes."""

    mask_img: object
    fields: dict
    noise: dict
    designs: dict
    cbf_base: np.ndarray
    gm: np.ndarray
    cbf_session_sd: float
    regional_sd: float
    thermal_sd: np.ndarray
    rise_sd: float
    rise: float
    sd_ratio: float
    global_effect: float


def _voxel_setup(voxel_size_mm: int, n_cud: int, n_control: int, n_baclofen: int, n_placebo: int) -> _VoxelSetup:
    cocaine = cocaine_params("paper", voxel_size_mm=voxel_size_mm)
    baclofen = baclofen_params("paper", voxel_size_mm=voxel_size_mm)
    noise = {**map_noise("cocaine", cocaine), **map_noise("baclofen", baclofen)}
    mask_img = brain_mask(voxel_size_mm)
    mask = np.asarray(mask_img.dataobj) > 0
    fields = {(n.voxel_size_mm, n.fwhm_mm): SmoothNoiseField(mask, n.voxel_size_mm, n.fwhm_mm) for n in noise.values()}
    maps = BaclofenMaps(baclofen)
    if not np.array_equal(maps.mask, mask):
        raise ValueError("The baclofen simulator's grid is not the analysis mask's; check voxel_size_mm.")
    ids = [f"sub-{i + 1:02d}" for i in range(max(n_cud + n_control, n_baclofen + n_placebo))]
    sequence = np.where(np.arange(n_cud + n_control) % 2 == 0, "NAC-placebo", "placebo-NAC")
    designs = {
        "cocaine": pd.DataFrame(
            {
                "participant_id": ids[: n_cud + n_control],
                "group": ["CUD"] * n_cud + ["control"] * n_control,
                "sequence": sequence,
            }
        ),
        "baclofen": pd.DataFrame(
            {
                "participant_id": ids[: n_baclofen + n_placebo],
                "group": ["baclofen"] * n_baclofen + ["placebo"] * n_placebo,
            }
        ),
    }
    threats = {name: baclofen_params(name) for name in ("threat_unequal_variance", "threat_global_cbf")}
    direct = baclofen_params("threat_direct_cue")
    return _VoxelSetup(
        mask_img=mask_img,
        fields=fields,
        noise=noise,
        designs=designs,
        cbf_base=maps.cbf_base,
        gm=maps.geometry.gm,
        cbf_session_sd=baclofen.cbf_session_sd,
        regional_sd=baclofen.cbf_regional_sd,
        thermal_sd=roi_level.thermal_cbf_sd(baclofen, maps.m0),
        rise_sd=direct.dlpfc_rise_sd,
        rise=direct.dlpfc_cbf_rise,
        sd_ratio=threats["threat_unequal_variance"].baclofen_change_sd_ratio,
        global_effect=threats["threat_global_cbf"].baclofen_global_cbf,
    )


def _cbf_noise(setup: _VoxelSetup, n: int, rng) -> np.ndarray:
    """The regional and thermal part of ``n`` T2 - T1 CBF maps (ml/100 g/min): each session's smooth regional
    variation (grey matter) and the thermal noise of the two sessions."""
    noise = setup.noise["cbf"]
    field = setup.fields[(noise.voxel_size_mm, noise.fwhm_mm)]
    regional = field.independent(rng, n).astype(np.float64) * setup.regional_sd * setup.gm
    thermal = rng.standard_normal(regional.shape) * setup.thermal_sd
    return np.sqrt(2) * (regional + thermal)


def _fires(result, alpha: float) -> tuple[int, float, bool]:
    p = result.clusters["p_fwe_size"] if len(result.clusters) else pd.Series(dtype=float)
    return len(result.clusters), float(p.min()) if len(p) else 1.0, bool((p < alpha).any())


def _voxel_replicate(
    replicate: int,
    seed: int,
    setup: _VoxelSetup,
    conditions: tuple,
    smoothing_fwhm: float,
    n_perm: int,
    alpha: float,
) -> list[dict]:
    """One null replicate: the maps of each kind drawn and smoothed once, every condition's tests run on them.

    Smoothing is linear, so a condition's smoothed maps are built from the smoothed parts (a group's maps
    scaled, a constant shift, the global change times the baseline map), as smoothing its maps would.
    """
    rng = np.random.default_rng([seed, replicate, 11])
    coc, bac = setup.designs["cocaine"], setup.designs["baclofen"]
    cud = (coc["group"] == "CUD").to_numpy()
    baclofen = (bac["group"] == "baclofen").to_numpy()
    state = _null_maps(setup.fields, setup.noise["state"], len(coc), rng)
    drug = _null_maps(setup.fields, setup.noise["drug"], len(coc), rng)
    cue_maps = _null_maps(setup.fields, setup.noise["cue"], len(bac), rng)
    glutamate = pd.Series(rng.standard_normal(len(coc)), index=coc["participant_id"])
    dlpfc = rng.normal(0, setup.rise_sd, len(bac))
    session = rng.normal(0, np.sqrt(2) * setup.cbf_session_sd, len(bac))
    cbf_noise = _cbf_noise(setup, len(bac), np.random.default_rng([seed, replicate, 13]))
    parts = np.vstack([state, drug, cue_maps, cbf_noise, setup.cbf_base, np.ones(len(setup.gm))])
    smoothed = smooth_maps(parts, setup.mask_img, smoothing_fwhm).astype(np.float64)
    n_c, n_b = len(coc), len(bac)
    state_s, drug_s = smoothed[:n_c], smoothed[n_c : 2 * n_c]
    cue_s, noise_s = smoothed[2 * n_c : 2 * n_c + n_b], smoothed[2 * n_c + n_b : 2 * n_c + 2 * n_b]
    base_s, ones_s = smoothed[-2], smoothed[-1]
    base_gm = np.average(setup.cbf_base, weights=setup.gm)
    noise_gm = np.average(cbf_noise, axis=1, weights=setup.gm)

    rows = []
    for condition in conditions:
        spread = setup.sd_ratio if condition == "unequal_variance" else 1.0
        for k, test in enumerate(VOXEL_TESTS):
            if test not in VOXEL_CONDITIONS[condition]["tests"]:
                continue
            spec = VOXEL_TESTS[test]
            test_rng = np.random.default_rng([seed, replicate, 12, list(VOXEL_CONDITIONS).index(condition), k])
            cfp = spec["cluster_forming_p"]
            options = dict(cluster_forming_p=cfp, n_perm=n_perm, rng=test_rng)
            if spec["maps"] in ("state", "drug"):
                maps = (state_s if spec["maps"] == "state" else drug_s) * np.where(cud, spread, 1.0)[:, None]
                if test == "glutamate_coupling":
                    result, _, _ = voxelwise.covariate_test(
                        maps, coc, glutamate, setup.mask_img, group="CUD", **options
                    )
                else:
                    result = secondlevel.group_test(test, maps, coc, setup.mask_img, **options)
            elif spec["maps"] == "cbf":
                change = session + (setup.global_effect * baclofen if condition == "global_cbf" else 0.0)
                scale = np.where(baclofen, spread, 1.0)
                maps = scale[:, None] * (change[:, None] * base_s[None, :] + noise_s)
                covariate = scale * (change * base_gm + noise_gm)  # the chapter's mean grey-matter change
                result = perfusion.group_by_time_test(maps, bac, setup.mask_img, covariate=covariate, **options)
            else:
                covariate = dlpfc.copy()
                maps = cue_s * np.where(baclofen, spread, 1.0)[:, None]
                if condition == "direct_cue":
                    covariate = covariate + setup.rise * baclofen  # the rise, in the CBF chapter's units
                    maps = maps - 1.0 * baclofen[:, None] * ones_s[None, :]  # one SD lower cue response everywhere
                result, _, _ = voxelwise.covariate_test(
                    maps,
                    bac,
                    pd.Series(covariate, index=bac["participant_id"]),
                    setup.mask_img,
                    group=None,
                    nuisance="group",
                    **options,
                )
            n_clusters, min_p, found = _fires(result, alpha)
            rows.append(
                {
                    "replicate": replicate,
                    "condition": condition,
                    "study": spec["study"],
                    "test": test,
                    "cluster_forming_p": cfp,
                    "n_clusters": n_clusters,
                    "min_p_fwe": min_p,
                    "found": found,
                }
            )
    return rows


def voxelwise_null(
    n_sims: int,
    voxel_size_mm: int = 4,
    smoothing_fwhm: float = 6.0,
    n_perm: int = 100,
    alpha: float = 0.05,
    seed: int = 20_000,
    n_jobs: int = 1,
    conditions=tuple(VOXEL_CONDITIONS),
    n_cud: int | None = None,
    n_control: int | None = None,
    n_baclofen: int | None = None,
    n_placebo: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Family-wise false positives of every voxelwise test of the chapters on null maps, under each threat.

    Each replicate draws per-participant maps of each kind (:data:`VOXEL_TESTS`) on the analysis grid:
    the simulators' smooth noise field (:class:`craving_circuits.simulate.signals.SmoothNoiseField` at
    their ``smooth_noise_fwhm_mm``) mixed with white noise (:func:`map_noise`: for the cocaine maps in the
    proportion derived from the image pipeline's null maps, for the baclofen maps in the simulators'); the
    CBF change maps also carry each participant's global CBF change times the
    simulator's baseline map, and are tested with the chapter's global covariate. The maps are smoothed
    as the chapters smooth them, and each test runs at its chapter's cluster-forming threshold. The
    conditions of :data:`VOXEL_CONDITIONS` transform the same draws. A test fires when any cluster
    reaches ``p_FWE < alpha``.

    Parameters
    ----------
    n_sims : int
        Null replicates (each under every condition).
    voxel_size_mm : int
        Grid of the analysis mask (the simulated studies' 4 mm).
    smoothing_fwhm : float
        The chapters' smoothing of the participant maps.
    n_perm : int
        Permutations per test. A permutation p-value ``(1 + count) / (1 + n_perm)`` is exact for any
        number of permutations, so fewer only make each replicate's decision noisier, not its level
        wrong; 100 give a level of 5/101 = 0.0495 at ``alpha`` 0.05.
    alpha : float
    seed : int
    n_jobs : int
    conditions : sequence of str
        Keys of :data:`VOXEL_CONDITIONS`.
    n_cud, n_control, n_baclofen, n_placebo : int, optional
        Group sizes (default: the ``paper`` presets').
    progress : bool

    Returns
    -------
    results : pandas.DataFrame
        Columns :data:`VOXEL_COLUMNS`, one row per replicate, condition and test.
    """

    if int(n_sims) != n_sims or n_sims < 1:
        raise ValueError(f"n_sims must be a positive integer, got {n_sims}.")
    unknown = set(conditions) - set(VOXEL_CONDITIONS)
    if unknown or not len(conditions):
        raise ValueError(f"Unknown conditions {sorted(unknown)}; choose from {list(VOXEL_CONDITIONS)}.")
    cocaine, baclofen = cocaine_params("paper"), baclofen_params("paper")
    setup = _voxel_setup(
        voxel_size_mm,
        n_cud or cocaine.n_cud,
        n_control or cocaine.n_control,
        n_baclofen or baclofen.n_baclofen,
        n_placebo or baclofen.n_placebo,
    )
    conditions = tuple(c for c in VOXEL_CONDITIONS if c in conditions)
    run = Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(_voxel_replicate)(i, seed, setup, conditions, smoothing_fwhm, n_perm, alpha) for i in range(int(n_sims))
    )
    rows = []
    for out in tqdm(run, total=int(n_sims), desc="null voxelwise studies", disable=not progress, mininterval=5):
        rows.extend(out)
    return pd.DataFrame(rows, columns=VOXEL_COLUMNS)


def voxelwise_summary(
    results: pd.DataFrame, alpha: float = 0.05, ci_level: float = 0.95, max_upper: float = MAX_UPPER_BOUND
) -> pd.DataFrame:
    """Family-wise error rate of each voxelwise test under each condition, with its Clopper-Pearson interval.

    ``holds`` is true when the upper bound ``ci_high`` is at most ``criterion`` (``max_upper``, 0.075 as
    for the ROI-level rates): the rate is shown to be near its level or below it (at 200 replicates, only
    a rate well under ``alpha`` shows that). The ``null`` rows come first.

    Returns
    -------
    summary : pandas.DataFrame
        Columns :data:`VOXEL_SUMMARY_COLUMNS`.
    """

    missing = set(VOXEL_COLUMNS) - set(results.columns)
    if missing:
        raise ValueError(f"The results lack the column(s) {sorted(missing)}; pass voxelwise_null's output.")
    rows = []
    keys = ["condition", "study", "test", "cluster_forming_p"]
    order = {c: i for i, c in enumerate(VOXEL_CONDITIONS)}
    for key, group in sorted(results.groupby(keys, sort=False), key=lambda kv: order.get(kv[0][0], len(order))):
        n, count = len(group), int(group["found"].sum())
        low, high = proportion_confint(count, n, alpha=1 - ci_level, method="beta")
        rows.append(
            {
                **dict(zip(keys, key)),
                "n": n,
                "count": count,
                "rate": count / n,
                "ci_low": low,
                "ci_high": high,
                "nominal": alpha,
                "criterion": max_upper,
                "holds": bool(high <= max_upper),
            }
        )
    return pd.DataFrame(rows, columns=VOXEL_SUMMARY_COLUMNS)


def upper_bound_at(rate: float, n_sims: int, ci_level: float = 0.95) -> float:
    """Upper Clopper-Pearson bound of an observed rate of ``rate`` in ``n_sims`` replicates (the count rounded).

    What a test whose false-positive rate is exactly ``rate`` shows at best, for the chapter's prose.
    """
    count = int(round(rate * n_sims))
    return float(proportion_confint(count, int(n_sims), alpha=1 - ci_level, method="beta")[1])
