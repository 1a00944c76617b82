"""Result files, "recovered vs planted" tables and provenance.

* Every notebook writes its tidy result tables with :func:`write_table` into its
  output folder; later chapters (and the claims ledger) read those files, never
  numbers copied by hand.
* :func:`recovered_vs_planted` compares estimates with the simulation's ground
  truth. An effect counts as *found* when ``p < alpha`` with the planted sign; a
  planted absence is *recovered* when the test is not significant. ``agree`` says
  whether the analysis and the truth tell the same story. On real data (no
  ground truth) the planted columns are empty.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from ._io import read_json, write_tsv

__all__ = [
    "load_ground_truth",
    "planted_table",
    "recovered_vs_planted",
    "seed_fc_estimates",
    "glutamate_estimates",
    "drug_estimates",
    "evidence_vs_planted",
    "EVIDENCE_RECOVERY_COLUMNS",
    "DRUG_EFFECTS",
    "side_by_side",
    "result_hashes",
    "baclofen_cbf_estimates",
    "multiverse_estimates",
    "agreement_by_effect",
    "baclofen_cue_estimates",
    "read_table",
    "write_table",
    "package_versions",
    "git_commit",
    "run_log",
    "machine_info",
    "disk_usage",
    "study_banner",
    "combine_exclusions",
    "combine_tables",
    "save_tables",
]

RECOVERY_COLUMNS = ["effect", "test", "planted", "estimate", "ci_low", "ci_high", "p", "planted_present",
                    "found", "agree"]

#: Columns of :func:`evidence_vs_planted`.
EVIDENCE_RECOVERY_COLUMNS = ["effect", "term", "planted", "estimate", "ci90_low", "ci90_high", "bound", "p",
                             "p_equivalence", "bf01", "verdict", "planted_present", "agree"]


def load_ground_truth(study) -> dict | None:
    """The ground truth of a simulated study (a :class:`~craving_circuits.layout.Study` or a BIDS root), or None."""
    path = getattr(study, "ground_truth_file", None) or Path(study) / "derivatives" / "simulation" / "ground_truth.json"
    return read_json(path, "ground truth") if path.is_file() else None


def planted_table(truth: dict | None) -> pd.DataFrame:
    """Planted effects as a table: ``effect, description, scale, planted, present``."""
    if truth is None:
        return pd.DataFrame(columns=["effect", "description", "scale", "planted", "present"])
    return pd.DataFrame(truth["effects"])


def recovered_vs_planted(estimates: pd.DataFrame, truth: dict | None, alpha: float = 0.05) -> pd.DataFrame:
    """Compare estimates with the planted effects.

    Parameters
    ----------
    estimates : pandas.DataFrame
        Columns ``effect`` (a planted effect name), ``test``, ``estimate``,
        ``ci_low``, ``ci_high``, ``p``.
    truth : dict or None
        From :func:`load_ground_truth`.
    alpha : float

    Returns
    -------
    table : pandas.DataFrame
        Columns :data:`RECOVERY_COLUMNS`.
    """
    missing = {"effect", "test", "estimate", "ci_low", "ci_high", "p"} - set(estimates.columns)
    if missing:
        raise ValueError(f"estimates lack the column(s) {sorted(missing)}.")
    planted = planted_table(truth).set_index("effect") if truth is not None else None
    rows = []
    for row in estimates.itertuples(index=False):
        significant = bool(row.p < alpha) if pd.notna(row.p) else False
        if planted is not None and row.effect in planted.index:
            value = float(planted.loc[row.effect, "planted"])
            present = bool(planted.loc[row.effect, "present"])
            found = significant and (not present or np.sign(row.estimate) == np.sign(value))
            agree = found == present
        else:
            if planted is not None:
                raise ValueError(f"{row.effect!r} is not a planted effect; known: {sorted(planted.index)}.")
            value, present, found, agree = np.nan, None, significant, None
        rows.append({"effect": row.effect, "test": row.test, "planted": value, "estimate": row.estimate,
                     "ci_low": row.ci_low, "ci_high": row.ci_high, "p": row.p, "planted_present": present,
                     "found": found, "agree": agree})
    return pd.DataFrame(rows, columns=RECOVERY_COLUMNS)


_ROI_EFFECTS = {
    ("craving - neutral | CUD", "dlpfc"): "craving_nacc_dlpfc_cud",
    ("craving - neutral | CUD", "thalamus_midline"): "craving_nacc_thalamus_cud",
    ("craving - neutral | control", "dlpfc"): "craving_nacc_dlpfc_control",
    ("craving - neutral | control", "thalamus_midline"): "craving_nacc_thalamus_control",
    ("group x state", "dlpfc"): "group_x_state_nacc_dlpfc",
    ("group x state", "thalamus_midline"): "group_x_state_nacc_thalamus",
    ("drug x state | CUD", "dlpfc"): "drug_x_state_cud",
    ("drug x state | CUD", "thalamus_midline"): "drug_x_state_cud",
}

_VOXEL_EFFECTS = {
    ("craving_cud", "dlpfc"): "craving_nacc_dlpfc_cud",
    ("craving_cud", "thalamus_midline"): "craving_nacc_thalamus_cud",
    ("craving_control", "dlpfc"): "craving_nacc_dlpfc_control",
    ("craving_control", "thalamus_midline"): "craving_nacc_thalamus_control",
    ("group_x_state", "dlpfc"): "group_x_state_nacc_dlpfc",
    ("group_x_state", "thalamus_midline"): "group_x_state_nacc_thalamus",
}


def _cluster_row(table: pd.DataFrame, target: str, effect: str, test: str, sign: int | None = None) -> dict:
    """The most significant cluster overlapping ``target`` (of ``sign``, if given) as an estimates row.

    Estimate: its peak t (NaN without any such cluster); p: its cluster-level
    FWE p (1 without any such cluster).
    """
    over = table[table[f"overlap_{target}"] > 0] if len(table) else table
    if sign is not None and len(over):
        over = over[np.sign(over["sign"]) == sign]
    best = over.sort_values("p_fwe_size").iloc[0] if len(over) else None
    return {"effect": effect, "test": test, "estimate": np.nan if best is None else float(best["peak_t"]),
            "ci_low": np.nan, "ci_high": np.nan, "p": 1.0 if best is None else float(best["p_fwe_size"])}


def _elsewhere_row(table: pd.DataFrame, effect: str, test: str) -> dict:
    """Significant clusters that overlap no target ROI, counted (p is 0 when there is one, else 1)."""
    overlap_cols = [c for c in table.columns if c.startswith("overlap_")]
    n_other = int((table["significant"].astype(bool) & (table[overlap_cols].sum(axis=1) == 0)).sum()) \
        if len(table) else 0
    return {"effect": effect, "test": test, "estimate": float(n_other), "ci_low": np.nan, "ci_high": np.nan,
            "p": 0.0 if n_other else 1.0}


def seed_fc_estimates(roi_contrasts: pd.DataFrame, cluster_tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Estimates of the NAcc seed chapter, keyed by planted effect.

    ROI rows come from the mixed-model contrasts. Voxelwise rows ask, for each
    test and target ROI, whether a significant cluster of the planted sign
    overlaps the ROI (estimate: its peak t; p: its cluster-level FWE p; the most
    significant such cluster, or the best non-significant one when none is
    significant). One more row per test counts significant clusters that
    overlap no target ROI (``effect`` = ``fc_change_elsewhere``: nothing is planted there).

    Parameters
    ----------
    roi_contrasts : pandas.DataFrame
        From :func:`craving_circuits.secondlevel.roi_models` (``target``,
        ``term``, ``estimate``, ``ci_low``, ``ci_high``, ``p``).
    cluster_tables : dict of test name -> DataFrame
        From :func:`craving_circuits.secondlevel.cluster_table`, with overlap
        columns for ``dlpfc`` and ``thalamus_midline``.

    Returns
    -------
    estimates : pandas.DataFrame
        ``effect, test, estimate, ci_low, ci_high, p``.
    """
    rows = []
    for row in roi_contrasts.itertuples(index=False):
        effect = _ROI_EFFECTS.get((row.term, row.target))
        if effect:
            rows.append({"effect": effect, "test": f"ROI mixed model: {row.term} ({row.target})",
                         "estimate": row.estimate, "ci_low": row.ci_low, "ci_high": row.ci_high, "p": row.p})
    for (test, target), effect in _VOXEL_EFFECTS.items():
        if test in cluster_tables:
            rows.append(_cluster_row(cluster_tables[test], target, effect,
                                     f"voxelwise cluster FWE: {test}, positive cluster on {target}", sign=1))
    for test, table in cluster_tables.items():
        rows.append(_elsewhere_row(table, "fc_change_elsewhere",
                                   f"voxelwise cluster FWE: {test}, significant clusters off the target ROIs"))
    return pd.DataFrame(rows, columns=["effect", "test", "estimate", "ci_low", "ci_high", "p"])


def glutamate_estimates(couplings: pd.DataFrame, comparison: pd.DataFrame, glu_rise: pd.DataFrame,
                        predictors: pd.DataFrame, voxel_clusters: pd.DataFrame | None = None,
                        fits: pd.DataFrame | None = None) -> pd.DataFrame:
    """Estimates of the glutamate chapter, keyed by planted effect.

    Parameters
    ----------
    couplings : pandas.DataFrame
        From :func:`craving_circuits.coupling.coupling_table` (Pearson rows of
        the ``CUD`` sample are used).
    comparison : pandas.DataFrame
        From :func:`craving_circuits.coupling.compare_couplings` (thalamus minus dlPFC).
    glu_rise : pandas.DataFrame
        From :func:`craving_circuits.coupling.mean_change` (CUD glutamate change).
    predictors : pandas.DataFrame
        From :func:`craving_circuits.coupling.predictor_table`.
    voxel_clusters : pandas.DataFrame, optional
        :func:`craving_circuits.secondlevel.cluster_table` of the voxelwise coupling,
        with overlap columns for ``dlpfc`` and ``thalamus_midline``.
    fits : pandas.DataFrame, optional
        The model fits of :func:`craving_circuits.coupling.predictor_table`; each
        model's F test enters as the joint clinical prediction (estimate: R²).

    Returns
    -------
    estimates : pandas.DataFrame
        ``effect, test, estimate, ci_low, ci_high, p``.
    """
    rows = []
    keep = couplings[(couplings["sample"] == "CUD") & (couplings["method"] == "pearson")]
    for row in keep.itertuples(index=False):
        effect = {"thalamus_midline": "thalamus_glu_coupling_cud", "dlpfc": "dlpfc_glu_coupling_cud"}.get(row.target)
        if effect:
            rows.append({"effect": effect, "test": f"Pearson r within CUD ({row.target})", "estimate": row.estimate,
                         "ci_low": row.ci_low, "ci_high": row.ci_high, "p": row.p})
    for row in comparison.itertuples(index=False):
        rows.append({"effect": "coupling_difference_cud", "test": f"Steiger test: {row.term}",
                     "estimate": row.estimate, "ci_low": row.ci_low, "ci_high": row.ci_high, "p": row.p})
    for row in glu_rise.itertuples(index=False):
        rows.append({"effect": "glu_rise_cud", "test": f"one-sample t: {row.term}", "estimate": row.estimate,
                     "ci_low": row.ci_low, "ci_high": row.ci_high, "p": row.p})
    names = {("thalamus_midline", "ocdus_obsessive"): "ocdus_predicts_thalamus_cud",
             ("thalamus_midline", "cocaine_g_per_week"): "use_predicts_thalamus_cud",
             ("dlpfc", "ocdus_obsessive"): "ocdus_predicts_dlpfc_cud",
             ("dlpfc", "cocaine_g_per_week"): "use_predicts_dlpfc_cud"}
    for row in predictors.itertuples(index=False):
        effect = names.get((row.target, row.term))
        if effect:
            rows.append({"effect": effect, "test": f"standardised beta of {row.term} ({row.target})",
                         "estimate": row.estimate, "ci_low": row.ci_low, "ci_high": row.ci_high, "p": row.p})
    model_effects = {"thalamus_midline": "clinical_model_thalamus_cud", "dlpfc": "clinical_model_dlpfc_cud"}
    for row in (fits.itertuples(index=False) if fits is not None else []):
        if row.target in model_effects:
            rows.append({"effect": model_effects[row.target], "test": f"F test of the predictor model ({row.target}); "
                         f"estimate R²", "estimate": row.r2, "ci_low": np.nan, "ci_high": np.nan, "p": row.p_f})
    if voxel_clusters is not None:
        for target, effect in (("thalamus_midline", "thalamus_glu_coupling_cud"), ("dlpfc", "dlpfc_glu_coupling_cud")):
            rows.append(_cluster_row(voxel_clusters, target, effect, f"voxelwise coupling, cluster on {target}"))
        rows.append(_elsewhere_row(voxel_clusters, "glu_coupling_elsewhere",
                                   "voxelwise coupling, significant clusters off the target ROIs"))
    return pd.DataFrame(rows, columns=["effect", "test", "estimate", "ci_low", "ci_high", "p"])


#: Planted effect of each drug contrast (the ``contrast`` column of :func:`craving_circuits.drug.drug_evidence`).
DRUG_EFFECTS = {"drug x state | CUD": "drug_x_state_cud", "drug x state | control": "drug_x_state_control",
                 "group x state x drug": "group_x_state_x_drug"}
_DRUG_TESTS = {"drug_x_state_cud": "drug_x_state_cud", "drug_x_state_control": "drug_x_state_control",
               "group_x_state_x_drug": "group_x_state_x_drug"}


def drug_estimates(roi_contrasts: pd.DataFrame, cluster_tables: dict[str, pd.DataFrame],
                   rating_tests: pd.DataFrame | None = None,
                   targets=("dlpfc", "thalamus_midline")) -> pd.DataFrame:
    """Estimates of the NAC chapter's difference tests, keyed by planted effect.

    ROI rows are the mixed-model drug contrasts. Voxelwise rows ask, for each
    drug test and target ROI, whether a significant cluster of either sign
    overlaps the ROI (estimate: its peak t; p: its cluster-level FWE p), and
    count significant clusters off the targets (``fc_change_elsewhere``). The
    rating row is the paired t-test of the NAC effect on the rating rise.

    Parameters
    ----------
    roi_contrasts : pandas.DataFrame
        ``RoiModels.contrasts`` (``target, term, estimate, ci_low, ci_high, p``).
    cluster_tables : dict of test name -> DataFrame
        :func:`craving_circuits.secondlevel.cluster_table` of the keys of
        :data:`craving_circuits.secondlevel.DRUG_TESTS`.
    rating_tests : pandas.DataFrame, optional
        From :func:`craving_circuits.ratings.rating_tests`.

    Returns
    -------
    estimates : pandas.DataFrame
        ``effect, test, estimate, ci_low, ci_high, p``.
    """
    rows = []
    for row in roi_contrasts.itertuples(index=False):
        effect = DRUG_EFFECTS.get(row.term)
        if effect and row.target in targets:
            rows.append({"effect": effect, "test": f"ROI mixed model: {row.term} ({row.target})",
                         "estimate": row.estimate, "ci_low": row.ci_low, "ci_high": row.ci_high, "p": row.p})
    for test, table in cluster_tables.items():
        effect = _DRUG_TESTS.get(test)
        if effect is None:
            raise ValueError(f"Unknown drug test {test!r}; expected keys of {sorted(_DRUG_TESTS)}.")
        for target in targets:
            rows.append(_cluster_row(table, target, effect, f"voxelwise cluster FWE: {test}, cluster on {target}"))
        rows.append(_elsewhere_row(table, "fc_change_elsewhere",
                                   f"voxelwise cluster FWE: {test}, significant clusters off the target ROIs"))
    if rating_tests is not None:
        for row in rating_tests[rating_tests["term"] == "drug x state | CUD"].itertuples(index=False):
            rows.append({"effect": "nac_rating_effect_cud", "test": f"paired t on ratings: {row.term}",
                         "estimate": row.estimate, "ci_low": row.ci_low, "ci_high": row.ci_high, "p": row.p})
    return pd.DataFrame(rows, columns=["effect", "test", "estimate", "ci_low", "ci_high", "p"])


def evidence_vs_planted(evidence: pd.DataFrame, effects, truth: dict | None) -> pd.DataFrame:
    """Verdicts of the evidence tables (difference, equivalence, Bayes factor) against the planted truth.

    A planted effect is recovered when the verdict shows a difference of the
    planted sign (``"effect"`` or ``"trivial effect"``); a planted absence when
    the verdict shows equivalence (``"equivalent"`` or ``"trivial effect"``):
    merely not finding an effect (``"inconclusive"``) does not count as
    showing its absence.

    Parameters
    ----------
    evidence : pandas.DataFrame
        From :func:`craving_circuits.equivalence.evidence_table` or
        :func:`craving_circuits.drug.drug_evidence`.
    effects : sequence of str, or dict
        The planted effect of each row of ``evidence``, or a mapping from the
        ``contrast`` column to it (e.g. :data:`DRUG_EFFECTS`).
    truth : dict or None

    Returns
    -------
    table : pandas.DataFrame
        Columns :data:`EVIDENCE_RECOVERY_COLUMNS` (planted columns empty on real data).
    """
    if isinstance(effects, dict):
        unknown = set(evidence["contrast"]) - set(effects)
        if unknown:
            raise ValueError(f"No planted effect given for the contrast(s) {sorted(unknown)}.")
        effects = evidence["contrast"].map(effects)
    effects = list(effects)
    if len(effects) != len(evidence):
        raise ValueError(f"{len(effects)} effect names for {len(evidence)} evidence rows; give one per row.")
    planted = planted_table(truth).set_index("effect") if truth is not None else None
    rows = []
    for effect, row in zip(effects, evidence.itertuples(index=False)):
        value, present, agree = np.nan, None, None
        if planted is not None:
            if effect not in planted.index:
                raise ValueError(f"{effect!r} is not a planted effect; known: {sorted(planted.index)}.")
            value = float(planted.loc[effect, "planted"])
            present = bool(planted.loc[effect, "present"])
            if present:
                agree = row.verdict in ("effect", "trivial effect") and np.sign(row.estimate) == np.sign(value)
            else:
                agree = row.verdict in ("equivalent", "trivial effect")
        rows.append({"effect": effect, "term": row.term, "planted": value, "estimate": row.estimate,
                     "ci90_low": row.ci90_low, "ci90_high": row.ci90_high, "bound": row.bound, "p": row.p,
                     "p_equivalence": row.p_equivalence, "bf01": row.bf01, "verdict": row.verdict,
                     "planted_present": present, "agree": agree})
    return pd.DataFrame(rows, columns=EVIDENCE_RECOVERY_COLUMNS)


def baclofen_cbf_estimates(clusters: pd.DataFrame, region_contrasts: pd.DataFrame,
                           roi: str = "dlpfc_right") -> pd.DataFrame:
    """Estimates of the CBF chapter, keyed by planted effect.

    The voxelwise rows ask for a significant positive group x time cluster on
    the a-priori ROI (and count significant clusters off it); the model rows
    use the a-priori ROI only (the cluster's own model would be circular).

    Parameters
    ----------
    clusters : pandas.DataFrame
        :func:`craving_circuits.secondlevel.cluster_table` of the group x time
        test with an overlap column for ``roi``.
    region_contrasts : pandas.DataFrame
        From :func:`craving_circuits.perfusion.group_by_time_models`.

    Returns
    -------
    estimates : pandas.DataFrame
        ``effect, test, estimate, ci_low, ci_high, p``.
    """
    rows = [_cluster_row(clusters, roi, "group_x_time_dlpfc_cbf", f"voxelwise cluster FWE: group x time, positive "
                         f"cluster on {roi}", sign=1),
            _elsewhere_row(clusters, "cbf_change_elsewhere", "voxelwise cluster FWE: group x time, significant "
                           "clusters off the ROI")]
    names = {"group x time": "group_x_time_dlpfc_cbf", "T2 - T1 | placebo": "time_dlpfc_cbf_placebo"}
    for row in region_contrasts[region_contrasts["region"] == roi].itertuples(index=False):
        if row.term in names:
            rows.append({"effect": names[row.term], "test": f"mixed model on the {roi} ROI: {row.term}",
                         "estimate": row.estimate, "ci_low": row.ci_low, "ci_high": row.ci_high, "p": row.p})
    return pd.DataFrame(rows, columns=["effect", "test", "estimate", "ci_low", "ci_high", "p"])


def baclofen_cue_estimates(t1_response: pd.DataFrame, associations: pd.DataFrame, voxel_clusters: pd.DataFrame,
                           craving_contrasts: pd.DataFrame, mediation: pd.DataFrame,
                           rois=("insula_anterior_ventral", "vmpfc")) -> pd.DataFrame:
    """Estimates of the cue-reactivity chapter, keyed by planted effect.

    Parameters
    ----------
    t1_response : pandas.DataFrame
        One-sample tests of the T1 cue response per ROI (``term`` names the ROI).
    associations : pandas.DataFrame
        From :func:`craving_circuits.cue.roi_associations`.
    voxel_clusters : pandas.DataFrame
        Cluster table of the voxelwise association, with ROI overlap columns.
    craving_contrasts : pandas.DataFrame
        From :func:`craving_circuits.perfusion.group_by_time_model` on the craving rise.
    mediation : pandas.DataFrame
        From :func:`craving_circuits.mediation.mediation_analysis` (outcome: cue change).
    """
    rows = []
    for row in t1_response.itertuples(index=False):
        rows.append({"effect": "cue_response_t1", "test": f"one-sample t: {row.term}", "estimate": row.estimate,
                     "ci_low": row.ci_low, "ci_high": row.ci_high, "p": row.p})
    for row in associations.itertuples(index=False):
        rows.append({"effect": "dlpfc_rise_cue_change", "test": f"Pearson r: {row.term}", "estimate": row.estimate,
                     "ci_low": row.ci_low, "ci_high": row.ci_high, "p": row.p})
    for roi in rois:
        rows.append(_cluster_row(voxel_clusters, roi, "dlpfc_rise_cue_change",
                                 f"voxelwise cluster FWE: cue change ~ dlPFC CBF change, cluster on {roi}"))
    rows.append(_elsewhere_row(voxel_clusters, "cue_change_elsewhere", "voxelwise cluster FWE: cue change ~ dlPFC "
                               "CBF change, significant clusters off the ROIs"))
    for row in craving_contrasts[craving_contrasts["term"] == "group x time"].itertuples(index=False):
        rows.append({"effect": "group_x_time_craving", "test": "mixed model on cue-induced craving: group x time",
                     "estimate": row.estimate, "ci_low": row.ci_low, "ci_high": row.ci_high, "p": row.p})
    for row in mediation[mediation["term"] == "indirect effect (a b)"].itertuples(index=False):
        rows.append({"effect": "indirect_effect_cue", "test": "bootstrap: indirect effect of baclofen on the cue "
                     "change through the dlPFC CBF change", "estimate": row.estimate, "ci_low": row.ci_low,
                     "ci_high": row.ci_high, "p": row.p})
    return pd.DataFrame(rows, columns=["effect", "test", "estimate", "ci_low", "ci_high", "p"])


def multiverse_estimates(table: pd.DataFrame) -> pd.DataFrame:
    """Estimates of the multiverse chapter, keyed by planted effect: one row per specification and contrast.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`craving_circuits.multiverse.multiverse_table`.
    """
    rows = []
    for row in table.itertuples(index=False):
        effect = _ROI_EFFECTS.get((row.term, row.target))
        if effect is None:
            continue
        rows.append({"effect": effect, "test": f"ROI mixed model, {row.strategy}: {row.term} ({row.target})",
                     "estimate": row.estimate, "ci_low": row.ci_low, "ci_high": row.ci_high, "p": row.p})
    return pd.DataFrame(rows, columns=["effect", "test", "estimate", "ci_low", "ci_high", "p"])


def agreement_by_effect(recovery: pd.DataFrame) -> pd.DataFrame:
    """Per planted effect: how many of its tests found it, and how many agree with the truth.

    Parameters
    ----------
    recovery : pandas.DataFrame
        From :func:`recovered_vs_planted`.

    Returns
    -------
    summary : pandas.DataFrame
        ``effect, planted, n_tests, n_found, n_agree``.
    """
    out = recovery.groupby("effect", sort=False).agg(planted=("planted", "first"), n_tests=("test", "size"),
                                                     n_found=("found", "sum"), n_agree=("agree", "sum"))
    return out.reset_index().astype({"n_found": int, "n_agree": int})


def side_by_side(tables: dict[str, pd.DataFrame], on: str = "term", columns=("estimate", "p")) -> pd.DataFrame:
    """Tables of several runs next to each other, matched on one column.

    Parameters
    ----------
    tables : dict of label -> DataFrame
        Each with the column ``on`` (unique) and ``columns``.
    on : str
    columns : sequence of str

    Returns
    -------
    wide : pandas.DataFrame
        Indexed by ``on`` (in the order of first appearance), columns
        ``(label, column)``; a row missing from a run is empty there.
    """
    parts = []
    for label, table in tables.items():
        missing = ({on} | set(columns)) - set(table.columns)
        if missing:
            raise ValueError(f"Table {label!r} lacks the column(s) {sorted(missing)}.")
        if table[on].duplicated().any():
            raise ValueError(f"Table {label!r} repeats values of {on!r}; they must be unique to match rows.")
        part = table.set_index(on)[list(columns)]
        part.columns = pd.MultiIndex.from_product([[label], list(columns)])
        parts.append(part)
    order = list(dict.fromkeys(v for t in tables.values() for v in t[on]))
    return pd.concat(parts, axis=1).reindex(order)


def result_hashes(results_dir: str | Path, pattern: str = "*.tsv", exclude=()) -> pd.DataFrame:
    """SHA-256 of every result table under ``results_dir``, to compare two builds.

    Two builds with the same code, seed and parameters write identical tables;
    run records (``run.json``, with times) and images (gzip headers carry a
    time) are left out by the default pattern.

    Parameters
    ----------
    results_dir : str or Path
    pattern : str
        Glob of the files to hash, searched recursively.
    exclude : sequence of str
        Run folders (first path component) to leave out.

    Returns
    -------
    hashes : pandas.DataFrame
        ``file`` (relative to ``results_dir``, sorted), ``bytes``, ``sha256``.

    Raises
    ------
    FileNotFoundError
        If ``results_dir`` does not exist.
    """
    import hashlib

    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"Results folder {results_dir} not found; build the book (make notebooks) first.")
    rows = []
    for path in sorted(results_dir.rglob(pattern)):
        relative = path.relative_to(results_dir)
        if path.name.startswith(".") or relative.parts[0] in set(exclude):
            continue  # hidden: temporary files of an unfinished write
        data = path.read_bytes()
        rows.append({"file": relative.as_posix(), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    return pd.DataFrame(rows, columns=["file", "bytes", "sha256"])


def read_table(out_dir: str | Path, name: str) -> pd.DataFrame:
    """Read a result table written by :func:`write_table` (``<out_dir>/<name>.tsv``).

    Raises
    ------
    FileNotFoundError
        Naming the file and the run that writes it.
    """
    path = Path(out_dir) / f"{name}.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"Result table {path} not found; run the notebook whose output folder is "
                                f"{Path(out_dir)} first (make notebooks, or the --only option of the runner).")
    # BIDS missing values only: words such as "null" (a condition) or "NA" stay text
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["n/a", ""])


def write_table(df: pd.DataFrame, out_dir: str | Path, name: str) -> Path:
    """Write a result table as ``<out_dir>/<name>.tsv`` (atomically)."""
    return write_tsv(Path(out_dir) / f"{name}.tsv", df)


def package_versions(packages=("craving-circuits", "numpy", "scipy", "pandas", "nibabel", "nilearn", "statsmodels",
                               "matplotlib", "joblib", "papermill", "jupyter-book")) -> pd.DataFrame:
    """Installed versions of the packages the results depend on, plus Python's."""
    rows = [{"package": "python", "version": platform.python_version()}]
    for name in packages:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
        rows.append({"package": name, "version": version})
    return pd.DataFrame(rows)


def git_commit(path: str | Path = ".") -> str:
    """Commit of the repository at ``path`` (with ``-dirty`` if it has changes), or ``"unknown"``."""
    try:
        commit = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def run_log(executed_dir: str | Path = "book/executed") -> pd.DataFrame:
    """The book's run log: one row per executed notebook.

    Returns
    -------
    log : pandas.DataFrame
        ``name, title, status, started, duration_s, commit, parameters``
        (parameters as ``key=value`` text).
    """
    path = Path(executed_dir) / "runs.json"
    if not path.is_file():
        raise FileNotFoundError(f"No run log at {path}: run the notebooks with `make book` first.")
    rows = read_json(path, "run log")["runs"]
    table = pd.DataFrame(rows)
    table["parameters"] = [
        ", ".join(f"{k}={v}" for k, v in p.items() if k not in ("data_dir", "output_dir")) for p in table["parameters"]
    ]
    return table[["name", "title", "status", "started", "duration_s", "commit", "parameters"]]


def machine_info() -> pd.DataFrame:
    """Platform, processor count and memory of the machine that ran the book."""
    import os

    rows = [("platform", platform.platform()), ("python", platform.python_version()),
            ("cpus", str(os.cpu_count()))]
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        rows.append(("memory_gb", f"{pages * size / 1e9:.1f}"))
    except (ValueError, OSError, AttributeError):
        pass
    return pd.DataFrame(rows, columns=["item", "value"])


def disk_usage(folder: str | Path) -> pd.DataFrame:
    """Size on disk of each sub-folder (e.g. each simulated study), in MB."""
    folder = Path(folder)
    rows = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
        size = sum(f.stat().st_size for f in sub.rglob("*") if f.is_file())
        rows.append({"folder": sub.name, "size_mb": round(size / 1e6, 1)})
    return pd.DataFrame(rows, columns=["folder", "size_mb"])


def study_banner(study, truth: dict | None) -> str:
    """One Markdown line saying which data a notebook analysed."""
    if truth is None:
        return f"**Data**: the BIDS dataset at `{study.bids_dir}` (no ground truth: planted columns stay empty)."
    p = truth["parameters"]
    planted = [e["effect"] for e in truth["effects"] if e["present"]]
    what = "every planted effect is zero" if not planted else f"{len(planted)} planted effects"
    return (f"**Data**: simulated study, preset `{p['preset']}` (seed {p['seed']}; {p['n_cud']} CUD, "
            f"{p['n_control']} controls; {p['n_volumes']} volumes, TR {p['repetition_time']} s, "
            f"{p['voxel_size_mm']} mm voxels); {what}.")


def combine_exclusions(*tables: pd.DataFrame) -> pd.DataFrame:
    """Stack exclusion tables of several stages into one."""
    from .layout import EXCLUSION_COLUMNS

    frames = [t for t in tables if t is not None and len(t)]
    if not frames:
        return pd.DataFrame(columns=EXCLUSION_COLUMNS)
    return pd.concat(frames, ignore_index=True)[EXCLUSION_COLUMNS]


def combine_tables(*tables: pd.DataFrame) -> pd.DataFrame:
    """Stack tables with possibly different columns (missing cells empty)."""
    frames = [t for t in tables if t is not None and len(t)]
    if not frames:
        columns = list(dict.fromkeys(c for t in tables if t is not None for c in t.columns))
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)


def save_tables(out_dir: str | Path, tables: dict[str, pd.DataFrame]) -> list[Path]:
    """Write several result tables (``<out_dir>/<name>.tsv``)."""
    return [write_table(df, out_dir, name) for name, df in tables.items()]
