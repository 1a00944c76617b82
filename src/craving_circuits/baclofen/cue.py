"""Smoking-cue reactivity: a first-level GLM per task run, and cue-induced craving.

Data conventions
----------------
* Task runs are fMRIPrep-style derivatives (``*_task-<task>_space-*_desc-preproc_bold.nii.gz``
  with its confounds TSV), their events in the raw BIDS folder
  (``sub-*/ses-*/func/*_task-<task>_events.tsv`` with ``onset, duration,
  trial_type``: ``smoking`` and ``neutral``).
* The run table has one row per run: ``participant_id, group, session_id,
  bold, confounds, events, t_r``.
* A run's cue map is the GLM effect of ``smoking - neutral`` in percent signal
  change (the model of nilearn's ``FirstLevelModel`` with ``signal_scaling=0``), over the
  analysis mask: ``(n_runs, n_voxels)``.
* Craving ratings: ``participant_id, session_id, timepoint`` (``pre`` or
  ``post`` cue exposure), ``craving``; the cue-induced craving of a session is
  ``post - pre``.
* Stacked replicates: tables with a ``replicate`` column
  (:data:`~craving_circuits.io.schemas.REPLICATE`) hold several replicates of
  the study; :func:`cue_craving`, :func:`roi_associations`,
  :func:`mediation_table` and :func:`session_response` analyse each replicate
  as alone, all at once, and keep the column in front.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nilearn.glm.first_level import make_first_level_design_matrix, mean_scaling
from nilearn.interfaces.fmriprep import load_confounds

from craving_circuits import __version__
from craving_circuits.io.files import read_masked_run
from craving_circuits.io.runs import RunCache, RunOutput, map_runs
from craving_circuits.io.schemas import EXCLUSION_COLUMNS, REPLICATE, TASK_RUN_COLUMNS
from craving_circuits.stats.contrasts import (
    generators,
    replicate_ids,
    replicate_major,
    row_frame,
    stack_columns,
    with_replicates,
)
from craving_circuits.stats.correlation import correlation, least_squares, mean_change, partial_correlation
from craving_circuits.stats.glm import ar1_glm

__all__ = [
    "TASK_RUN_COLUMNS",
    "cue_glm_run",
    "CueMaps",
    "cue_maps",
    "roi_means",
    "cue_craving",
    "CONTRAST",
    "roi_associations",
    "mediation_table",
    "session_response",
]

CONTRAST = "smoking - neutral"


def cue_glm_run(
    run: dict,
    mask_img: nib.Nifti1Image,
    confounds=("motion", "wm_csf"),
    high_pass: float = 0.008,
    hrf_model: str = "glover",
) -> np.ndarray:
    """The ``smoking - neutral`` effect (percent signal) of one run: a pure function of its files.

    The model of nilearn's ``FirstLevelModel`` (``signal_scaling=0``, cosine
    drift up to ``high_pass`` Hz, AR(1) noise, no smoothing) with the fMRIPrep
    confounds of ``confounds`` (a ``load_confounds`` strategy): the same design
    matrix (nilearn's ``make_first_level_design_matrix``), the same percent
    scaling (``mean_scaling``) and the same AR(1) fit
    (:func:`craving_circuits.stats.glm.ar1_glm`), on the run's mask voxels only.

    Returns
    -------
    effect : ndarray of float32, shape (n_voxels,)

    Raises
    ------
    ValueError
        If the events lack a condition of the contrast, or the confounds do not
        have one row per volume (naming the file).
    """

    events = pd.read_csv(run["events"], sep="\t")
    missing = {"smoking", "neutral"} - set(events.get("trial_type", pd.Series(dtype=str)))
    if missing:
        raise ValueError(f"{run['events']} has no {sorted(missing)} trials; the cue contrast needs both conditions.")
    regressors, _ = load_confounds(run["bold"], strategy=tuple(confounds), motion="basic", wm_csf="basic")
    mask = np.asarray(mask_img.dataobj) > 0
    data = read_masked_run(run["bold"], mask, mask_img.affine)
    n_scans = data.shape[0]
    if len(regressors) != n_scans:
        raise ValueError(
            f"{run['confounds']} has {len(regressors)} rows for {n_scans} volumes in {run['bold']}; "
            f"the confounds of a run need one row per volume."
        )
    design = make_first_level_design_matrix(
        np.linspace(0.0, (n_scans - 1) * run["t_r"], n_scans),
        events[["onset", "duration", "trial_type"]],
        hrf_model=hrf_model,
        drift_model="cosine",
        high_pass=high_pass,
        add_regs=regressors.to_numpy(),
        add_reg_names=regressors.columns.tolist(),
    )
    scaled, _ = mean_scaling(data.astype(np.float64), axis=0)
    theta, _ = ar1_glm(scaled, design.to_numpy())
    contrast = (design.columns == "smoking").astype(float) - (design.columns == "neutral")
    return (contrast @ theta).astype(np.float32)


@dataclass
class CueMaps:
    """Cue maps of a study's task runs.

    Attributes
    ----------
    runs : pandas.DataFrame
        The runs analysed (rows of :func:`craving_circuits.baclofen.layout.collect_task_runs`).
    maps : ndarray of float32, shape (n_runs, n_voxels)
        ``smoking - neutral`` effect (% signal), row ``i`` for ``runs.iloc[i]``.
    exclusions : pandas.DataFrame
        Runs that could not be analysed (stage ``"cue GLM"``).
    n_cached : int
        Runs taken from the cache.
    """

    runs: pd.DataFrame
    maps: np.ndarray
    exclusions: pd.DataFrame
    n_cached: int = 0


def _cue_stem(run: dict) -> str:
    return Path(run["bold"]).name.replace("_desc-preproc_bold.nii.gz", "_desc-smokingMinusNeutral_effect")


def _task_inputs(run: dict) -> list[str]:
    return [run["bold"], str(run["bold"]).replace(".nii.gz", ".json"), run["confounds"], run["events"]]


def _cue_job(run: dict, mask_img: nib.Nifti1Image, glm: dict) -> RunOutput:
    return RunOutput(
        cue_glm_run(run, mask_img, **glm), {"contrast": CONTRAST, "units": "% signal", "source": run["bold"]}
    )


def cue_maps(
    runs: pd.DataFrame,
    mask_img: nib.Nifti1Image,
    out_dir: str | Path | None = None,
    n_jobs: int = 1,
    progress: bool = False,
    **glm,
) -> CueMaps:
    """:func:`cue_glm_run` over every run, in parallel (one run per process at a time).

    Parameters
    ----------
    runs : pandas.DataFrame
        From :func:`craving_circuits.baclofen.layout.collect_task_runs`.
    mask_img : nibabel.Nifti1Image
    out_dir : path, optional
        Where each run's effect map and sidecar are cached
        (:func:`craving_circuits.io.runs.map_runs`); None: nothing is written.
    n_jobs : int
    progress : bool
    **glm
        Keyword arguments of :func:`cue_glm_run` (``confounds``, ``high_pass``, ``hrf_model``).

    Returns
    -------
    CueMaps
    """
    mask = np.asarray(mask_img.dataobj) > 0
    cache = None
    if out_dir is not None:
        cache = RunCache(
            folder=Path(out_dir),
            settings={
                "version": __version__,
                "stage": "cue GLM",
                "fit": "stats.glm.ar1_glm",  # maps of the earlier FirstLevelModel fit are recomputed
                **{k: list(v) if isinstance(v, tuple) else v for k, v in glm.items()},
            },
            stem=_cue_stem,
            inputs=_task_inputs,
            mask=mask,
            affine=mask_img.affine,
        )
    mapped = map_runs(
        runs,
        partial(_cue_job, mask_img=mask_img, glm=glm),
        "cue GLM",
        cache,
        n_jobs=n_jobs,
        progress=progress,
        state="smokingcue",
    )
    return CueMaps(mapped.runs, mapped.maps(int(mask.sum())), mapped.exclusions, mapped.n_cached)


def roi_means(
    maps: np.ndarray, mask_img: nib.Nifti1Image, rois: dict[str, np.ndarray], table: pd.DataFrame
) -> pd.DataFrame:
    """Mean of each map in each ROI, as a long table.

    Parameters
    ----------
    maps : ndarray, shape (n_rows, n_voxels)
    rois : dict of name -> bool array on the grid of ``mask_img``
    table : pandas.DataFrame
        Identifies the rows of ``maps`` (its columns are repeated).

    Returns
    -------
    long : pandas.DataFrame
        The columns of ``table`` plus ``roi, value``.
    """
    mask = np.asarray(mask_img.dataobj) > 0
    frames = []
    for name, roi in rois.items():
        inside = np.asarray(roi)[mask] if np.asarray(roi).shape == mask.shape else np.asarray(roi, bool)
        if not inside.any():
            raise ValueError(f"ROI {name!r} has no voxel in the analysis mask.")
        frames.append(table.reset_index(drop=True).assign(roi=name, value=maps[:, inside].mean(axis=1)))
    return pd.concat(frames, ignore_index=True)


def cue_craving(ratings: pd.DataFrame, participants: pd.DataFrame) -> pd.DataFrame:
    """Cue-induced craving (post - pre) per participant and session.

    Returns
    -------
    table : pandas.DataFrame
        ``participant_id, group, session_id, pre, post, craving_rise``.

    Raises
    ------
    ValueError
        For a session without both ratings, duplicates, or a participant
        missing from ``participants``.
    """
    needed = {"participant_id", "session_id", "timepoint", "craving"}
    if needed - set(ratings.columns):
        raise ValueError(f"The ratings lack the column(s) {sorted(needed - set(ratings.columns))}.")
    rep = [REPLICATE] if REPLICATE in ratings.columns else []
    counts = ratings.groupby([*rep, "participant_id", "session_id", "timepoint"]).size()
    if (counts > 1).any():
        raise ValueError(f"Duplicate ratings for {counts[counts > 1].index[0]}; keep one per time point.")
    wide = ratings.pivot_table(
        index=[*rep, "participant_id", "session_id"], columns="timepoint", values="craving", aggfunc="first"
    ).reset_index()
    wide.columns.name = None
    for col in ("pre", "post"):
        if col not in wide:
            wide[col] = np.nan
    incomplete = wide[wide[["pre", "post"]].isna().any(axis=1)]
    if len(incomplete):
        raise ValueError(
            f"{len(incomplete)} session(s) lack a pre or post rating, e.g. "
            f"{incomplete[['participant_id', 'session_id']].iloc[0].tolist()}; complete or remove them."
        )
    person = [*rep, "participant_id"]
    groups = participants.set_index(person)["group"]
    index = pd.MultiIndex.from_frame(wide[person]) if rep else wide["participant_id"]
    group = groups.reindex(index)
    if group.isna().any():
        unknown = sorted(set(wide.loc[group.isna().to_numpy(), "participant_id"]))
        raise ValueError(f"Ratings of {unknown} who are not in participants.tsv.")
    wide.insert(len(person), "group", group.to_numpy())
    wide["craving_rise"] = wide["post"] - wide["pre"]
    return wide[[*person, "group", "session_id", "pre", "post", "craving_rise"]]


def roi_associations(
    cue_change: pd.DataFrame,
    dlpfc_change: pd.DataFrame,
    n_boot: int = 5000,
    rng=None,
    alpha: float = 0.05,
    within_groups: bool = True,
) -> pd.DataFrame:
    """Correlation of each ROI's cue-response change with the dlPFC CBF change, within the groups.

    Baclofen may change both the dlPFC CBF and the cue response; correlating
    the two changes across all participants would then find an association
    that is only the difference between the groups. By default group enters as
    a nuisance: the partial correlation adjusted for group
    (:func:`craving_circuits.stats.correlation.partial_correlation`), which is
    the association within the groups. ``within_groups=False`` gives the pooled
    correlation, for comparison.

    Parameters
    ----------
    cue_change : pandas.DataFrame
        ``participant_id, roi, change`` (``T2 - T1`` of the ROI cue effect).
    dlpfc_change : pandas.DataFrame
        ``participant_id, group, change`` (``T2 - T1`` of dlPFC CBF).
    n_boot : int
    rng : numpy Generator, int or None
    alpha : float
    within_groups : bool
        Adjust for group (default) or pool the participants.

    Returns
    -------
    table : pandas.DataFrame
        ``term, estimate, se, ci_low, ci_high, p, n``: Pearson r (partial r
        within groups) with its bootstrap interval, one row per ROI, plus
        ``adjusted_for`` (``group`` or empty) and the OLS slope of the cue
        change on the dlPFC change (% signal per ml/100 g/min, within groups
        when adjusted) as ``slope``.
    """
    replicates = replicate_ids(cue_change)
    rngs = generators(rng, replicates)
    rngs = rngs if replicates is not None else rngs[0]
    person = [REPLICATE, "participant_id"] if replicates is not None else ["participant_id"]
    x_all = dlpfc_change.set_index(person)[["change", "group"]]
    frames = []
    for roi, sub in cue_change.groupby("roi", sort=False):
        merged = (
            sub.set_index(person)["change"]
            .to_frame("cue")
            .join(x_all.rename(columns={"change": "dlpfc"}), how="inner")
            .reset_index()
        )
        dlpfc, cue_values = stack_columns(merged, ["dlpfc", "cue"], replicates)
        dlpfc, cue_values = np.atleast_2d(dlpfc), np.atleast_2d(cue_values)
        if within_groups:
            dummies = pd.get_dummies(merged["group"], drop_first=True, dtype=float)
            names = [f"_dummy_{k}" for k in range(dummies.shape[1])]
            dummies = pd.concat([merged[person[:-1]], dummies.set_axis(names, axis=1)], axis=1)
            covariates = np.stack([np.atleast_2d(v) for v in stack_columns(dummies, names, replicates)], axis=-1)
            if replicates is None:
                r = partial_correlation(dlpfc[0], cue_values[0], covariates[0], n_boot=n_boot, rng=rngs, alpha=alpha)
            else:
                r = partial_correlation(dlpfc, cue_values, covariates, n_boot=n_boot, rng=rngs, alpha=alpha)
        else:
            covariates = np.zeros(dlpfc.shape + (0,))
            x, y = (dlpfc[0], cue_values[0]) if replicates is None else (dlpfc, cue_values)
            r = correlation(x, y, "pearson", n_boot=n_boot, rng=rngs, alpha=alpha)
        design = np.concatenate([np.ones_like(dlpfc)[..., None], dlpfc[..., None], covariates], axis=-1)
        slope = least_squares(design, cue_values, full=False)["params"][:, 1]
        row = {
            "term": f"cue change ~ dlPFC CBF change ({roi})",
            "estimate": r["estimate"],
            "se": r["se"],
            "ci_low": r["ci_low"],
            "ci_high": r["ci_high"],
            "p": r["p"],
            "n": r["n"],
            "adjusted_for": "group" if within_groups else "",
            "slope": slope if replicates is not None else float(slope[0]),
        }
        frames.append(row_frame(row, replicates))
    if not frames:
        return pd.DataFrame()
    return replicate_major(pd.concat(frames, ignore_index=True))


def mediation_table(
    dlpfc_change: pd.DataFrame, cue_change: pd.DataFrame, craving: pd.DataFrame, sessions=("ses-T1", "ses-T2")
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per participant for the mediation models, and who could not enter them.

    Parameters
    ----------
    dlpfc_change, cue_change : pandas.DataFrame
        Per-participant changes (``change``), after - before.
    craving : pandas.DataFrame
        From :func:`cue_craving`.
    sessions : (str, str)
        The labels of the sessions before and after (the craving change is after - before).

    Returns
    -------
    table : pandas.DataFrame
        ``participant_id, group, baclofen`` (1/0), ``dlpfc_change``,
        ``cue_change`` (mean over the ROIs), ``craving_change`` (``T2 - T1`` of
        the cue-induced craving).
    exclusions : pandas.DataFrame
        Participants lacking one of the three changes, with which.
    """
    rep = [REPLICATE] if REPLICATE in dlpfc_change.columns else []
    person = [*rep, "participant_id"]
    cue_mean = cue_change.groupby(person)["change"].mean().rename("cue_change")
    wide = craving.pivot_table(index=person, columns="session_id", values="craving_rise")
    before, after = sessions
    craving_change = (wide.get(after) - wide.get(before)).rename("craving_change")
    table = dlpfc_change.set_index(person).rename(columns={"change": "dlpfc_change"})
    table = table.join(cue_mean, how="outer").join(craving_change, how="outer")
    measures = ["dlpfc_change", "cue_change", "craving_change"]
    lacking = table[measures].isna()
    exclusions = pd.DataFrame(
        [
            {
                **dict(zip(person, key if rep else (key,))),
                "session_id": "",
                "state": "",
                "stage": "mediation",
                "file": "",
                "reason": "no " + ", ".join(m for m in measures if lacking.loc[key, m]),
            }
            for key in table.index[lacking.any(axis=1)]
        ],
        columns=rep + EXCLUSION_COLUMNS,
    )
    table = table[~lacking.any(axis=1)].reset_index()
    table["baclofen"] = (table["group"] == "baclofen").astype(float)
    return table[[*person, "group", "baclofen", *measures]], exclusions


def session_response(long: pd.DataFrame, session: str = "ses-T1", alpha: float = 0.05) -> pd.DataFrame:
    """One-sample t-test of the cue effect in each ROI at one session, all participants.

    Parameters
    ----------
    long : pandas.DataFrame
        From :func:`roi_means` (``session_id, roi, value``).

    Returns
    -------
    table : pandas.DataFrame
        ``term, estimate, se, ci_low, ci_high, p``, one row per ROI.
    """

    sub = long[long["session_id"] == session]
    if sub.empty:
        raise ValueError(f"No cue effects at {session}; sessions present: {sorted(long['session_id'].unique())}.")
    replicates = replicate_ids(long)
    return replicate_major(
        pd.concat(
            [
                with_replicates(
                    mean_change(
                        stack_columns(g, ["value"], replicates)[0], f"cue response at {session} ({roi})", alpha
                    ),
                    replicates,
                )
                for roi, g in sub.groupby("roi", sort=False)
            ],
            ignore_index=True,
        )
    )
