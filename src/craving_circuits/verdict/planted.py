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

from pathlib import Path

import numpy as np
import pandas as pd

from craving_circuits.io.files import read_json
from craving_circuits.io.schemas import EVIDENCE_RECOVERY_COLUMNS, RECOVERY_COLUMNS

__all__ = ["load_ground_truth", "planted_table", "recovered_vs_planted", "seed_fc_estimates", "glutamate_estimates", "drug_estimates", "evidence_vs_planted", "EVIDENCE_RECOVERY_COLUMNS", "DRUG_EFFECTS", "baclofen_cbf_estimates", "multiverse_estimates", "agreement_by_effect", "baclofen_cue_estimates"]


def load_ground_truth(study) -> dict | None:
    """The ground truth of a simulated study (a :class:`~craving_circuits.cocaine.layout.Study` or a BIDS root), or None."""
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
        From :func:`craving_circuits.cocaine.secondlevel.roi_models` (``target``,
        ``term``, ``estimate``, ``ci_low``, ``ci_high``, ``p``).
    cluster_tables : dict of test name -> DataFrame
        From :func:`craving_circuits.stats.voxelwise.cluster_table`, with overlap
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
        From :func:`craving_circuits.cocaine.glutamate.coupling_table` (Pearson rows of
        the ``CUD`` sample are used).
    comparison : pandas.DataFrame
        From :func:`craving_circuits.cocaine.glutamate.compare_couplings` (thalamus minus dlPFC).
    glu_rise : pandas.DataFrame
        From :func:`craving_circuits.stats.correlation.mean_change` (CUD glutamate change).
    predictors : pandas.DataFrame
        From :func:`craving_circuits.cocaine.glutamate.predictor_table`.
    voxel_clusters : pandas.DataFrame, optional
        :func:`craving_circuits.stats.voxelwise.cluster_table` of the voxelwise coupling,
        with overlap columns for ``dlpfc`` and ``thalamus_midline``.
    fits : pandas.DataFrame, optional
        The model fits of :func:`craving_circuits.cocaine.glutamate.predictor_table`; each
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


#: Planted effect of each drug contrast (the ``contrast`` column of :func:`craving_circuits.cocaine.drug.drug_evidence`).
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
        :func:`craving_circuits.stats.voxelwise.cluster_table` of the keys of
        :data:`craving_circuits.cocaine.secondlevel.DRUG_TESTS`.
    rating_tests : pandas.DataFrame, optional
        From :func:`craving_circuits.cocaine.ratings.rating_tests`.

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
        From :func:`craving_circuits.stats.equivalence.evidence_table` or
        :func:`craving_circuits.cocaine.drug.drug_evidence`.
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
        :func:`craving_circuits.stats.voxelwise.cluster_table` of the group x time
        test with an overlap column for ``roi``.
    region_contrasts : pandas.DataFrame
        From :func:`craving_circuits.baclofen.perfusion.group_by_time_models`.

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
        From :func:`craving_circuits.baclofen.cue.roi_associations`.
    voxel_clusters : pandas.DataFrame
        Cluster table of the voxelwise association, with ROI overlap columns.
    craving_contrasts : pandas.DataFrame
        From :func:`craving_circuits.baclofen.perfusion.group_by_time_model` on the craving rise.
    mediation : pandas.DataFrame
        From :func:`craving_circuits.stats.mediation.mediation_analysis` (outcome: cue change).
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
        From :func:`craving_circuits.cocaine.multiverse.multiverse_table`.
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


