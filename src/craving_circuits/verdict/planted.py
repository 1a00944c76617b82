"""The planted truth of a simulated study, and the chapters' "recovered vs planted" tables.

* :func:`load_ground_truth` reads a simulated study's ``ground_truth.json``
  (None for real data).
* :func:`recovered_vs_planted` compares a chapter's estimates (read from its
  result tables through the claims registry, :func:`craving_circuits.verdict.claims.estimates`;
  :func:`chapter_recovery` does both) with the simulation's ground
  truth. An effect counts as *found* when ``p < alpha`` with the planted sign; a
  planted absence is *recovered* when the test is not significant. ``agree`` says
  whether the analysis and the truth tell the same story. On real data (no
  ground truth) the planted columns are empty.
* :func:`planted_regions_vs_rois` sets the regions where the simulators plant
  their effects (:mod:`craving_circuits.simulate.regions`) against the analysis
  ROIs that stand for them: the planted regions are defined apart from the
  ROIs, which overlap them only in part, so the chapters' ROI estimates are
  diluted versions of the planted amounts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from craving_circuits.io.files import read_json
from craving_circuits.io.schemas import EVIDENCE_RECOVERY_COLUMNS, RECOVERY_COLUMNS
from craving_circuits.simulate import regions
from craving_circuits.simulate.baclofen import baclofen_params
from craving_circuits.simulate.cocaine import cocaine_params
from craving_circuits.verdict import claims

__all__ = [
    "load_ground_truth",
    "planted_table",
    "recovered_vs_planted",
    "chapter_recovery",
    "evidence_vs_planted",
    "RECOVERY_COLUMNS",
    "EVIDENCE_RECOVERY_COLUMNS",
    "agreement_by_effect",
    "planted_regions_vs_rois",
]


def load_ground_truth(study) -> dict | None:
    """The ground truth of a simulated study (a :class:`~craving_circuits.cocaine.layout.Study` or a BIDS root).

    None for a study without one (real data).
    """
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
        ``ci_low``, ``ci_high``, ``p``, and ``estimand`` (the registry's id) when
        they come from :func:`craving_circuits.verdict.claims.estimates`.
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
        rows.append(
            {
                "estimand": getattr(row, "estimand", None),
                "effect": row.effect,
                "test": row.test,
                "planted": value,
                "estimate": row.estimate,
                "ci_low": row.ci_low,
                "ci_high": row.ci_high,
                "p": row.p,
                "planted_present": present,
                "found": found,
                "agree": agree,
            }
        )
    return pd.DataFrame(rows, columns=RECOVERY_COLUMNS)


def chapter_recovery(chapter: str, tables: dict, truth: dict | None, alpha: float = 0.05) -> pd.DataFrame:
    """A chapter's "recovered vs planted" table: its registry estimands read from its result tables, against the truth.

    Parameters
    ----------
    chapter : str
        A chapter of :data:`craving_circuits.verdict.claims.ESTIMANDS`.
    tables : dict of str -> pandas.DataFrame
        The chapter's result tables by name.
    truth : dict or None
    alpha : float

    Returns
    -------
    table : pandas.DataFrame
        Columns :data:`RECOVERY_COLUMNS`, one row per estimand (the ledger reads
        its claims' rows by ``estimand``).
    """
    return recovered_vs_planted(claims.estimates(chapter, tables), truth, alpha=alpha)


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
        ``contrast`` column to it (e.g. :data:`craving_circuits.verdict.claims.DRUG_EFFECTS`).
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
        rows.append(
            {
                "effect": effect,
                "term": row.term,
                "planted": value,
                "estimate": row.estimate,
                "ci90_low": row.ci90_low,
                "ci90_high": row.ci90_high,
                "bound": row.bound,
                "p": row.p,
                "p_equivalence": row.p_equivalence,
                "bf01": row.bf01,
                "verdict": row.verdict,
                "planted_present": present,
                "agree": agree,
            }
        )
    return pd.DataFrame(rows, columns=EVIDENCE_RECOVERY_COLUMNS)


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
    out = recovery.groupby("effect", sort=False).agg(
        planted=("planted", "first"), n_tests=("test", "size"), n_found=("found", "sum"), n_agree=("agree", "sum")
    )
    return out.reset_index().astype({"n_found": int, "n_agree": int})


def planted_regions_vs_rois(
    preset: str = "paper", cocaine_overrides: dict | None = None, baclofen_overrides: dict | None = None
) -> pd.DataFrame:
    """Each planted region of the two simulated studies against the analysis ROI it stands for.

    Per study, :func:`craving_circuits.simulate.regions.region_overlap` on the
    study's grid, with its seed and participants: the Dice overlap of the
    planted region (thresholded at half its maximum) with the ROI and the
    distance between their centres of mass, for the template region and as the
    range over the participants' anatomical jitter, and the share of the
    region's peak effect that the ROI mean carries.

    Parameters
    ----------
    preset : str
        A preset of both simulators (``paper``, ``null``, ``tiny``, ``tiny_null``).
    cocaine_overrides, baclofen_overrides : dict, optional
        Parameters of each study that replace the preset's (only the seed, the
        voxel size and the sample sizes matter here).

    Returns
    -------
    table : pandas.DataFrame, one row per study and planted region
        The columns of :func:`~craving_circuits.simulate.regions.region_overlap`,
        plus ``peaks_mm`` (the template's peak coordinates, as text).
    """
    cocaine = cocaine_params(preset, **(cocaine_overrides or {}))
    baclofen = baclofen_params(preset, **(baclofen_overrides or {}))
    tables = [
        regions.region_overlap("cocaine", cocaine.voxel_size_mm, cocaine.seed, cocaine.n_participants),
        regions.region_overlap(
            "baclofen", baclofen.voxel_size_mm, baclofen.seed, baclofen.n_baclofen + baclofen.n_placebo
        ),
    ]
    table = pd.concat(tables, ignore_index=True)
    peaks = {
        name: "; ".join("({:g}, {:g}, {:g})".format(*peak) for peak in region.peaks_mm)
        for name, region in regions.PLANTED_REGIONS.items()
    }
    table.insert(3, "peaks_mm", table["region"].map(peaks))
    return table
