"""The ROI-level statistics of the baclofen chapters, each chain written once.

As in :mod:`craving_circuits.cocaine.chapters`: each function takes the tidy
tables a chapter starts from and returns the result tables it writes, calling
the chapter's steps in the chapter's order. The notebook calls the same steps
cell by cell; the claims registry names these functions as the tests of the
claims; the calibration calls them on every simulated replicate; a test checks
that the notebook's tables equal what these functions return.

Data conventions
----------------
* ``roi_effects``: the cue effect of every run in every ROI
  (``participant_id, group, session_id, roi, value``), from
  :func:`craving_circuits.baclofen.cue.roi_means`.
* ``dlpfc_change``: the T2 - T1 change of right-dlPFC CBF per participant
  (``participant_id, group, change``), from
  :func:`craving_circuits.baclofen.perfusion.participant_change` (the CBF
  chapter's ``dlpfc_change`` table).
* ``ratings_table``: ``participant_id, session_id, timepoint, craving``;
  ``participants``: ``participant_id, group``.
* Stacked replicates: when the input tables have a ``replicate`` column
  (:data:`~craving_circuits.io.schemas.REPLICATE`; the simulated studies of the
  calibration), every replicate goes through the chain at once and every
  returned table has the column in front, each replicate's rows equal to what
  the chain returns on that replicate alone (with the same Generator).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from craving_circuits.baclofen import asl, cue, perfusion
from craving_circuits.baclofen import layout as baclofen_layout
from craving_circuits.baclofen.layout import SESSIONS
from craving_circuits.stats.contrasts import replicate_generators, replicate_ids
from craving_circuits.stats.mediation import mediation_analysis

__all__ = ["cue_tests", "cbf_inputs", "chapter_cbf_maps", "cbf_source", "coverage_note"]


def cue_tests(
    roi_effects: pd.DataFrame,
    dlpfc_change: pd.DataFrame,
    ratings_table: pd.DataFrame,
    participants: pd.DataFrame,
    n_bootstrap: int = 5000,
    alpha: float = 0.05,
    rng=None,
    sessions=SESSIONS,
) -> dict[str, pd.DataFrame]:
    """The cue chapter at ROI level: T1 response, CBF-cue associations, cue-induced craving, mediation.

    Parameters
    ----------
    roi_effects, dlpfc_change, ratings_table, participants : pandas.DataFrame
        See the module docstring.
    n_bootstrap : int
        Resamples of the correlations and of the indirect effects.
    alpha : float
    rng : numpy Generator, int or None
        Consumed by the associations, then the two mediation models. For
        stacked replicates, one Generator per replicate: a mapping from
        replicate label to Generator, or a sequence in the order of the sorted
        labels (see :func:`craving_circuits.stats.contrasts.generators`).
    sessions : (str, str)
        The session labels before and after randomisation.

    Returns
    -------
    tables : dict of str -> DataFrame
        ``t1_response`` (one-sample t of the T1 cue response per ROI),
        ``roi_changes`` (T2 - T1 per participant and ROI), ``associations``
        (Pearson r of each ROI's change with the dlPFC CBF change),
        ``craving`` (cue-induced craving per session), ``craving_test``
        (its T2 - T1 change within each group and, by Welch's t, between
        them: :func:`craving_circuits.baclofen.perfusion.region_change_tests`),
        ``mediation_exclusions``, ``mediation_cue`` and ``mediation_craving``
        (paths and bootstrap indirect effect of baclofen through the dlPFC
        change on the cue change and on the craving change).
    """
    rng = replicate_generators(rng, replicate_ids(roi_effects))
    t1 = cue.session_response(roi_effects, sessions[0], alpha=alpha)
    roi_changes = perfusion.participant_change(roi_effects, "value", sessions, by=("roi",))
    associations = cue.roi_associations(roi_changes, dlpfc_change, n_boot=n_bootstrap, rng=rng, alpha=alpha)
    craving = cue.cue_craving(ratings_table, participants)
    craving_test = perfusion.region_change_tests(
        craving.assign(region="craving"), "craving_rise", alpha=alpha, sessions=sessions
    )
    med_table, med_exclusions = cue.mediation_table(dlpfc_change, roi_changes, craving, sessions)
    med_cue = mediation_analysis(
        med_table, "baclofen", "dlpfc_change", "cue_change", n_boot=n_bootstrap, rng=rng, alpha=alpha
    )
    med_craving = mediation_analysis(
        med_table, "baclofen", "dlpfc_change", "craving_change", n_boot=n_bootstrap, rng=rng, alpha=alpha
    )
    return {
        "t1_response": t1,
        "roi_changes": roi_changes,
        "associations": associations,
        "craving": craving,
        "craving_test": craving_test,
        "mediation_exclusions": med_exclusions,
        "mediation_cue": med_cue,
        "mediation_craving": med_craving,
    }


def cbf_inputs(root: str | Path, sessions=SESSIONS, aslprep_dir: str | Path | None = None):
    """The CBF chapter's runs: raw pCASL runs of ``root``, or ASLPrep's CBF maps when ``aslprep_dir`` is given.

    Parameters
    ----------
    root : path
        The BIDS root (``participants.tsv``; ``perf/`` data when quantifying here).
    sessions : (str, str)
        Session labels before and after randomisation.
    aslprep_dir : path or None
        ASLPrep's output folder; None quantifies the raw data.

    Returns
    -------
    runs, exclusions : pandas.DataFrame
        From :func:`~craving_circuits.baclofen.layout.collect_asl_runs` or
        :func:`~craving_circuits.baclofen.layout.collect_aslprep_cbf`; both have
        ``participant_id, group, session_id``.
    """
    if aslprep_dir:
        return baclofen_layout.collect_aslprep_cbf(aslprep_dir, root, sessions)
    return baclofen_layout.collect_asl_runs(root, sessions)


def chapter_cbf_maps(
    runs: pd.DataFrame,
    out_dir: str | Path,
    aslprep_dir: str | Path | None = None,
    n_jobs: int = 1,
    background_pulse_efficiency: float = 0.95,
) -> perfusion.CbfMaps:
    """The chapter's CBF maps: quantified here (:func:`~craving_circuits.baclofen.perfusion.cbf_maps`), or read.

    With ``aslprep_dir`` the maps of ``runs`` (from :func:`cbf_inputs`) are
    ASLPrep's and are read as they are
    (:func:`~craving_circuits.baclofen.perfusion.derived_cbf_maps`): nothing is
    quantified and ``out_dir`` is not used.
    """
    if aslprep_dir:
        return perfusion.derived_cbf_maps(runs)
    return perfusion.cbf_maps(runs, out_dir, n_jobs=n_jobs, background_pulse_efficiency=background_pulse_efficiency)


def cbf_source(
    runs: pd.DataFrame, aslprep_dir: str | Path | None = None, background_pulse_efficiency: float = 0.95
) -> str:
    """Markdown saying where the chapter's CBF maps come from: quantified here (with the first run's record) or ASLPrep.

    Parameters
    ----------
    runs : pandas.DataFrame
        From :func:`cbf_inputs` (at least one row).
    aslprep_dir : path or None
    background_pulse_efficiency : float
        As :func:`~craving_circuits.baclofen.asl.read_asl_constants`.
    """
    if runs.empty:
        raise ValueError("No CBF run to analyse; check the exclusions table.")
    if aslprep_dir:
        with_qc = int((runs["qc"] != "").sum())
        return (
            f"The CBF maps are ASLPrep's, read from `{aslprep_dir}` ({len(runs)} maps, {with_qc} with ASLPrep's QC "
            "table): they were quantified by ASLPrep, so **quantification is skipped here** and the constants are "
            "those of ASLPrep's run (see its reports). The QC columns below are computed on the maps as read, the "
            "same way as for maps quantified here."
        )
    constants = quantification_constants(runs, aslprep_dir, background_pulse_efficiency)
    record = json.dumps(asl.quantification_record(constants), indent=1)
    return (
        "The maps are quantified here from the label and control images, each run's constants from its sidecar "
        f"and the defaults above. The first run's record, written next to its map:\n\n```json\n{record}\n```"
    )


def quantification_constants(
    runs: pd.DataFrame, aslprep_dir: str | Path | None = None, background_pulse_efficiency: float = 0.95
):
    """The first run's quantification constants (``asl.read_asl_constants``), or None for ASLPrep's maps.

    Parameters
    ----------
    runs : pandas.DataFrame
        From :func:`cbf_inputs` (at least one row).
    aslprep_dir : path or None
    background_pulse_efficiency : float
    """
    if aslprep_dir or runs.empty:
        return None
    return asl.read_asl_constants(runs.iloc[0]["asl_json"], background_pulse_efficiency)


def coverage_note(coverage: pd.DataFrame) -> str:
    """One sentence on partial coverage: every run covers the mask, or how many do not and what the mask lost.

    Parameters
    ----------
    coverage : pandas.DataFrame
        :attr:`~craving_circuits.baclofen.perfusion.CbfMaps.coverage`.
    """
    if coverage.empty:
        return "Every run covers the whole brain mask: the analysis mask loses no voxel."
    first = coverage.iloc[0]
    return (
        f"{len(coverage)} run(s) do not cover the whole brain mask (a field of view that misses part of the brain). "
        f"The analysis runs on the voxels every run covers: the mask lost {int(first['n_mask_lost'])} voxels "
        f"({first['pct_mask_lost']:.1f} %). Per run:"
    )
