"""Perfusion: CBF maps of every pCASL run, and the group x time analysis of resting CBF.

Data conventions
----------------
* A perfusion study is a BIDS root with ``participants.tsv`` (``participant_id``,
  ``group``: ``baclofen`` or ``placebo``) and, per session,
  ``sub-*/ses-*/perf/`` with ``*_asl.nii.gz``, ``*_aslcontext.tsv``,
  ``*_asl.json`` and ``*_m0scan.nii.gz`` (see :mod:`craving_circuits.baclofen.asl`).
  Sessions are ``ses-T1`` (before) and ``ses-T2`` (after randomisation) by
  default; every function that pairs them takes ``sessions`` (before, after)
  for a study with other labels.
* The run table has one row per ASL run: ``participant_id, group,
  session_id, asl, asl_json, aslcontext, m0``.
* Maps are ``(n_runs, n_voxels)`` float32 over the analysis mask (C order of
  ``np.argwhere(mask)``), as in :mod:`craving_circuits.cocaine.secondlevel`.
* The group x time effect of a participant is ``T2 - T1``; the test compares
  those differences between baclofen and placebo (two-sample, permutation with
  cluster-level FWE control). Values taken from a cluster found by that test
  describe it; testing them again is circular and is shown as a description,
  not as independent evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nilearn.datasets import load_mni152_brain_mask
from nilearn.image import resample_to_img

from craving_circuits import __version__
from craving_circuits.baclofen.asl import (
    cbf_qc,
    mean_difference,
    quantification_record,
    quantify_cbf,
    read_asl_constants,
    read_aslcontext,
    run_m0,
)
from craving_circuits.baclofen.layout import GROUPS, SESSIONS
from craving_circuits.io.atlas import tissue_probabilities
from craving_circuits.io.bids import SPACE
from craving_circuits.io.runs import RunCache, RunOutput, map_runs
from craving_circuits.io.schemas import ASL_RUN_COLUMNS as RUN_COLUMNS
from craving_circuits.io.schemas import EXCLUSION_COLUMNS, REPLICATE
from craving_circuits.stats.contrasts import replicate_ids, replicate_major, stack_columns, with_replicates
from craving_circuits.stats.correlation import mean_change
from craving_circuits.stats.correlation import mean_difference as welch_difference
from craving_circuits.stats.permutation import cluster_permutation_test
from craving_circuits.stats.voxelwise import cluster_on_roi

__all__ = [
    "RUN_COLUMNS",
    "COVERAGE_COLUMNS",
    "MIN_COVERAGE",
    "perfusion_mask",
    "asl_run_cbf",
    "CbfMaps",
    "cbf_maps",
    "derived_cbf_maps",
    "time_difference_maps",
    "global_change",
    "global_change_test",
    "group_by_time_welch",
    "region_change_tests",
    "REGION_TEST_COLUMNS",
    "global_sensitivity",
    "group_by_time_test",
    "cluster_values",
    "region_values",
    "participant_change",
]


#: Share of the brain mask a run must cover (M0 positive) to be analysed on the common coverage.
MIN_COVERAGE = 0.5


def perfusion_mask(runs: pd.DataFrame) -> nib.Nifti1Image:
    """nilearn's MNI152 brain mask on the grid of the first ASL run (nearest-neighbour)."""

    if runs.empty:
        raise ValueError("No ASL run to analyse; check the exclusions table.")
    reference = nib.load(runs.iloc[0]["asl"])
    ref3d = nib.Nifti1Image(np.zeros(reference.shape[:3], np.uint8), reference.affine)
    img = resample_to_img(
        load_mni152_brain_mask(resolution=1), ref3d, interpolation="nearest", force_resample=True, copy_header=True
    )
    return nib.Nifti1Image((np.asarray(img.dataobj) > 0).astype(np.uint8), reference.affine)


def asl_run_cbf(
    run: dict,
    mask: np.ndarray,
    affine: np.ndarray,
    background_pulse_efficiency: float = 0.95,
    min_coverage: float = MIN_COVERAGE,
) -> dict:
    """CBF of one run over the mask: a pure function of the run's files.

    Parameters
    ----------
    run : dict
        A row of :func:`collect_asl_runs`.
    mask : ndarray of bool, shape (nx, ny, nz)
    affine : ndarray, shape (4, 4)
        The grid the run must be on.
    min_coverage : float
        Share of the mask a run must cover (M0 positive and finite). A run
        covering less of the mask has NaN CBF where it has no M0 (partial
        coverage: the study is analysed on the common coverage, see
        :func:`cbf_maps`).

    Returns
    -------
    dict with ``cbf`` (n_voxels,), NaN outside the run's coverage, and
    ``record`` (the quantification constants).

    Raises
    ------
    ValueError, FileNotFoundError
        Naming the file: another grid, a context that does not match the
        volumes, an incomplete sidecar, or M0 zero in more of the mask than
        ``1 - min_coverage``.
    """
    img = nib.load(run["asl"])
    if img.ndim != 4 or tuple(img.shape[:3]) != mask.shape or not np.allclose(img.affine, affine, atol=1e-3):
        raise ValueError(
            f"{run['asl']} has shape {img.shape} and affine unlike the study's grid {mask.shape}; "
            "resample every run to one grid first."
        )
    constants = read_asl_constants(run["asl_json"], background_pulse_efficiency)
    types = read_aslcontext(run["aslcontext"], img.shape[3])
    m0 = run_m0(run["asl_json"], img, types, run.get("m0"))[mask]
    bad = ~(np.isfinite(m0) & (m0 > 0))
    if bad.mean() > 1 - min_coverage:
        raise ValueError(
            f"{run.get('m0') or run['asl']}: M0 is zero or negative in {int(bad.sum())} voxel(s) of the brain mask "
            f"({100 * bad.mean():.1f}%, more than the {100 * (1 - min_coverage):g}% a partial coverage may lose); "
            "check the M0 scan (or its registration) before quantifying CBF."
        )
    series = np.asarray(img.dataobj, dtype=np.float32)[mask].T
    delta_m = mean_difference(series, types)
    if not bad.any():
        return {
            "cbf": quantify_cbf(delta_m, m0, constants).astype(np.float32),
            "record": quantification_record(constants),
        }
    cbf = np.full(m0.shape, np.nan, np.float32)
    cbf[~bad] = quantify_cbf(delta_m[~bad], m0[~bad], constants)
    return {"cbf": cbf, "record": {**quantification_record(constants), "n_uncovered": int(bad.sum())}}


@dataclass
class CbfMaps:
    """CBF maps of a study.

    Attributes
    ----------
    runs : pandas.DataFrame
        The analysed runs with QC columns (``mean_gm_cbf, mean_wm_cbf,
        gm_wm_ratio, pct_negative_gm``) and the path of each CBF map.
    maps : ndarray of float32, shape (n_runs, n_voxels)
    mask_img : nibabel.Nifti1Image
    exclusions : pandas.DataFrame
        Runs that could not be quantified (stage ``"cbf"``).
    n_cached : int
        Runs taken from the cache.
    coverage : pandas.DataFrame
        Runs with partial coverage (:data:`COVERAGE_COLUMNS`): the voxels of
        the brain mask each lacks, and the voxels the study's analysis mask
        lost to them (the mask is the runs' common coverage). Empty when every
        run covers the whole mask.
    """

    runs: pd.DataFrame
    maps: np.ndarray
    mask_img: nib.Nifti1Image
    exclusions: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=EXCLUSION_COLUMNS))
    n_cached: int = 0
    coverage: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COVERAGE_COLUMNS))


#: Columns of :attr:`CbfMaps.coverage`.
COVERAGE_COLUMNS = [
    "participant_id",
    "session_id",
    "file",
    "n_uncovered",
    "pct_uncovered",
    "n_mask_lost",
    "pct_mask_lost",
]


def _common_coverage(table: pd.DataFrame, maps: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
    """Voxels every run covers, and the runs that lack some, with the loss (voxels and % of the mask)."""
    covered = np.isfinite(maps)
    common = covered.all(axis=0)
    n_mask = maps.shape[1]
    lacking = np.flatnonzero(~covered.all(axis=1))
    n_lost = int((~common).sum())
    rows = [
        {
            "participant_id": table.iloc[i]["participant_id"],
            "session_id": table.iloc[i]["session_id"],
            "file": table.iloc[i]["asl"],
            "n_uncovered": int((~covered[i]).sum()),
            "pct_uncovered": 100.0 * (~covered[i]).sum() / n_mask,
            "n_mask_lost": n_lost,
            "pct_mask_lost": 100.0 * n_lost / n_mask,
        }
        for i in lacking
    ]
    return common, pd.DataFrame(rows, columns=COVERAGE_COLUMNS)


def _cbf_stem(run: dict) -> str:
    return Path(run["asl"]).name.removesuffix("_asl.nii.gz") + f"_space-{SPACE}_cbf"


def _asl_inputs(run: dict) -> list[str]:
    return [p for p in (run["asl"], run["asl_json"], run["aslcontext"], run["m0"]) if p]


def _cbf_job(
    run: dict, mask: np.ndarray, affine: np.ndarray, gm: np.ndarray, wm: np.ndarray, background_pulse_efficiency: float
) -> RunOutput:
    result = asl_run_cbf(run, mask, affine, background_pulse_efficiency)
    covered = np.isfinite(result["cbf"])
    qc = cbf_qc(result["cbf"], gm, wm) if covered.all() else cbf_qc(result["cbf"][covered], gm[covered], wm[covered])
    return RunOutput(
        result["cbf"], {**result["record"], "qc": qc, "source": run["asl"], "m0": run["m0"], "units": "ml/100 g/min"}
    )


def cbf_maps(
    runs: pd.DataFrame,
    out_dir: str | Path,
    n_jobs: int = 1,
    background_pulse_efficiency: float = 0.95,
    tissue_threshold: float = 0.7,
    progress: bool = False,
) -> CbfMaps:
    """Quantify every run (in parallel, one run per process at a time) and write each map with its constants.

    Each CBF map is written as ``<out_dir>/sub-*/ses-*/*_cbf.nii.gz`` next to a
    JSON sidecar whose ``record`` holds the equation, every constant and the
    map's QC; a later call with the same settings and unchanged files reuses it
    (:func:`craving_circuits.io.runs.map_runs`).

    Parameters
    ----------
    runs : pandas.DataFrame
        From :func:`craving_circuits.baclofen.layout.collect_asl_runs`.
    out_dir : path
    n_jobs : int
    background_pulse_efficiency : float
        η_BS per suppression pulse (see :mod:`craving_circuits.baclofen.asl`).
    tissue_threshold : float
        Tissue probability that counts a voxel as grey or white matter in QC.
    progress : bool
        Show a progress bar.

    Returns
    -------
    CbfMaps
        When some runs cover only part of the brain mask (M0 zero outside
        their field of view), every map is restricted to the voxels all runs
        cover (``mask_img`` too) and ``coverage`` lists the loss; a run that
        covers less than :data:`MIN_COVERAGE` of the mask stops with an error
        naming it.
    """
    mask_img = perfusion_mask(runs)
    mask = np.asarray(mask_img.dataobj) > 0
    tissue = tissue_probabilities(mask_img)
    gm, wm = tissue["gm"][mask] > tissue_threshold, tissue["wm"][mask] > tissue_threshold
    cache = RunCache(
        folder=Path(out_dir),
        settings={
            "version": __version__,
            "stage": "cbf",
            "background_pulse_efficiency": background_pulse_efficiency,
            "tissue_threshold": tissue_threshold,
        },
        stem=_cbf_stem,
        inputs=_asl_inputs,
        mask=mask,
        affine=mask_img.affine,
    )
    job = partial(
        _cbf_job,
        mask=mask,
        affine=mask_img.affine,
        gm=gm.astype(float),
        wm=wm.astype(float),
        background_pulse_efficiency=background_pulse_efficiency,
    )
    mapped = map_runs(runs, job, "cbf", cache, n_jobs=n_jobs, progress=progress, state="rest", file_column="asl")
    outputs = mapped.outputs
    table = mapped.runs
    if outputs:
        qc_names = list(outputs[0].record["qc"])
        table = table.assign(
            **{k: [o.record["qc"][k] for o in outputs] for k in qc_names},
            cbf_map=[str(cache.paths(run)[0]) for run in table.to_dict("records")],
        )
    maps = mapped.maps(int(mask.sum()))
    common, coverage = _common_coverage(table, maps)
    if coverage.empty:
        return CbfMaps(table, maps, mask_img, mapped.exclusions, mapped.n_cached)
    # partial coverage: the analysis mask is the voxels every run covers, the loss listed
    restricted = mask.copy()
    restricted[mask] = common
    mask_img = nib.Nifti1Image(restricted.astype(np.uint8), mask_img.affine)
    return CbfMaps(table, maps[:, common], mask_img, mapped.exclusions, mapped.n_cached, coverage)


def derived_cbf_maps(runs: pd.DataFrame, tissue_threshold: float = 0.7) -> CbfMaps:
    """CBF maps quantified elsewhere (ASLPrep), read on the grid of the first map: no quantification here.

    Parameters
    ----------
    runs : pandas.DataFrame
        From :func:`craving_circuits.baclofen.layout.collect_aslprep_cbf`.
    tissue_threshold : float
        As :func:`cbf_maps`, for the QC columns computed here.

    Returns
    -------
    CbfMaps
        ``runs`` has the QC columns of :func:`cbf_maps` (computed the same way
        on the derived maps), ``cbf_map`` (the derived file), ``quantified``
        (False: the maps were read, not computed from label/control images)
        and ``qc_table`` (ASLPrep's own QC table, empty when absent). A map on
        another grid than the first, or with non-finite values in the brain
        mask, is listed in ``exclusions`` (stage ``"cbf"``) with its reason.
    """
    if runs.empty:
        raise ValueError("No CBF map to analyse; check the exclusions table.")
    reference = nib.load(runs.iloc[0]["cbf"])
    grid = tuple(reference.shape[:3])
    ref3d = nib.Nifti1Image(np.zeros(grid, np.uint8), reference.affine)
    brain = resample_to_img(
        load_mni152_brain_mask(resolution=1), ref3d, interpolation="nearest", force_resample=True, copy_header=True
    )
    mask = np.asarray(brain.dataobj) > 0
    mask_img = nib.Nifti1Image(mask.astype(np.uint8), reference.affine)
    tissue = tissue_probabilities(mask_img)
    gm, wm = tissue["gm"][mask] > tissue_threshold, tissue["wm"][mask] > tissue_threshold
    kept, maps, qcs, exclusions = [], [], [], []
    for i, run in enumerate(runs.to_dict("records")):
        img = nib.load(run["cbf"])
        data = np.asarray(img.dataobj, dtype=np.float32)
        data = data[..., 0] if data.ndim == 4 and data.shape[3] == 1 else data
        reason = None
        if data.shape != grid or not np.allclose(img.affine, reference.affine, atol=1e-3):
            reason = f"shape {data.shape} or affine unlike the first map's {grid}; resample every map to one grid"
        elif not np.isfinite(data[mask]).all():
            reason = f"{int((~np.isfinite(data[mask])).sum())} non-finite CBF value(s) in the brain mask"
        if reason:
            exclusions.append(
                {"participant_id": run["participant_id"], "session_id": run["session_id"], "state": "rest"}
                | {"stage": "cbf", "file": run["cbf"], "reason": reason}
            )
            continue
        kept.append(i)
        maps.append(data[mask])
        qcs.append(cbf_qc(data[mask], gm.astype(float), wm.astype(float)))
    table = runs.iloc[kept].reset_index(drop=True)
    qc = pd.DataFrame(qcs, index=table.index)
    table = pd.concat([table, qc], axis=1).assign(cbf_map=table["cbf"], quantified=False, qc_table=table["qc"])
    table = table.drop(columns=["cbf", "qc"])
    stacked = np.vstack(maps).astype(np.float32) if maps else np.zeros((0, int(mask.sum())), np.float32)
    return CbfMaps(table, stacked, mask_img, pd.DataFrame(exclusions, columns=EXCLUSION_COLUMNS))


def time_difference_maps(runs: pd.DataFrame, maps: np.ndarray, sessions=SESSIONS):
    """Per-participant ``T2 - T1`` maps.

    Returns
    -------
    diff : ndarray of float32, shape (n_participants, n_voxels)
    table : pandas.DataFrame
        ``participant_id, group`` in the row order of ``diff``.
    exclusions : pandas.DataFrame
        Participants without both sessions, stage ``"time contrast"``.
    """
    if len(runs) != len(maps):
        raise ValueError(f"{len(runs)} runs but {len(maps)} maps; they must match row by row.")
    first, second = sessions
    runs = runs.reset_index(drop=True)
    if len(runs):
        _require_sessions(runs["session_id"], sessions)
    rows, diffs, exclusions = [], [], []
    for pid, sub in runs.groupby("participant_id", sort=True):
        have = set(sub["session_id"])
        if not {first, second} <= have:
            exclusions.append(
                {
                    "participant_id": pid,
                    "session_id": ",".join(sorted(have)),
                    "state": "rest",
                    "stage": "time contrast",
                    "file": "",
                    "reason": f"needs both {first} and {second}, has {sorted(have)}",
                }
            )
            continue
        i1 = sub.index[sub["session_id"] == first][0]
        i2 = sub.index[sub["session_id"] == second][0]
        diffs.append(maps[i2] - maps[i1])
        rows.append({"participant_id": pid, "group": sub["group"].iloc[0]})
    n_vox = maps.shape[1] if maps.ndim == 2 else 0
    return (
        np.vstack(diffs).astype(np.float32) if diffs else np.zeros((0, n_vox), np.float32),
        pd.DataFrame(rows, columns=["participant_id", "group"]),
        pd.DataFrame(exclusions, columns=EXCLUSION_COLUMNS),
    )


def global_change(
    runs: pd.DataFrame, table: pd.DataFrame, column: str = "mean_gm_cbf", sessions=SESSIONS
) -> np.ndarray:
    """Each participant's ``T2 - T1`` change of mean grey-matter CBF, in the row order of ``table``.

    Parameters
    ----------
    runs : pandas.DataFrame
        ``CbfMaps.runs`` (with the QC column ``column``).
    table : pandas.DataFrame
        From :func:`time_difference_maps`.
    sessions : (str, str)
        The session labels before and after.

    Returns
    -------
    change : ndarray, shape (n_participants,)
    """
    wide = runs.pivot_table(index="participant_id", columns="session_id", values=column)
    _require_sessions(wide.columns, sessions)
    change = wide[sessions[1]] - wide[sessions[0]]
    return change.loc[table["participant_id"]].to_numpy(dtype=float)


def group_by_time_test(
    diff: np.ndarray,
    table: pd.DataFrame,
    mask_img: nib.Nifti1Image,
    covariate: np.ndarray | None = None,
    cluster_forming_p: float = 0.001,
    n_perm: int = 5000,
    two_sided: bool = True,
    rng=None,
    variance_groups: bool = True,
    n_jobs: int = 1,
):
    """Baclofen minus placebo in the ``T2 - T1`` maps, permutation with cluster-level FWE control.

    Parameters
    ----------
    diff : ndarray, shape (n_participants, n_voxels)
    table : pandas.DataFrame
        ``participant_id, group`` in the row order of ``diff``.
    mask_img : nibabel.Nifti1Image
    covariate : ndarray, shape (n_participants,), optional
        A nuisance regressor, typically the change of global CBF
        (:func:`global_change`): session-to-session changes of whole-brain
        perfusion (caffeine, arousal, haematocrit) are large next to regional
        effects, and an ANCOVA with global CBF removes them (Freedman-Lane
        permutation).
    cluster_forming_p, n_perm, two_sided, rng
        See :func:`craving_circuits.stats.permutation.cluster_permutation_test`.
    variance_groups : bool
        Let each group have its own variance (default): the statistic is
        Welch's (with a covariate, its variance-group generalisation) and the
        resampling sign flipping, which stays valid when the drug changes the
        spread of the changes (Winkler et al. 2014). False: the pooled-variance
        t with Freedman-Lane permutation.
    n_jobs : int
        Workers computing the permutation null's chunks (does not change the result).

    Returns
    -------
    PermutationResult
        Positive t: a larger rise (or smaller fall) under baclofen.
    """

    groups = table["group"].to_numpy()
    counts = {g: int((groups == g).sum()) for g in GROUPS}
    if min(counts.values()) < 2:
        raise ValueError(f"Each group needs at least 2 participants with both sessions, got {counts}.")
    mask = np.asarray(mask_img.dataobj) > 0
    confounds = None if covariate is None else np.asarray(covariate, dtype=float).reshape(len(table), 1)
    return cluster_permutation_test(
        diff,
        (groups == "baclofen").astype(float),
        mask,
        confounds=confounds,
        cluster_forming_p=cluster_forming_p,
        n_perm=n_perm,
        two_sided=two_sided,
        rng=rng,
        variance_groups=groups if variance_groups else None,
        n_jobs=n_jobs,
    )


def cluster_values(
    result, runs: pd.DataFrame, maps: np.ndarray, sign: int = 1, alpha: float = 0.05
) -> tuple[pd.DataFrame, np.ndarray]:
    """Mean CBF of every run in the most significant cluster of one sign.

    Returns
    -------
    values : pandas.DataFrame
        ``participant_id, group, session_id, cbf``.
    in_cluster : ndarray of bool, shape (n_voxels,)

    Raises
    ------
    ValueError
        If no cluster of that sign is significant at ``alpha`` (nothing to
        describe).
    """
    clusters = result.clusters
    found = clusters[(np.sign(clusters["sign"]) == sign) & (clusters["p_fwe_size"] < alpha)]
    if found.empty:
        raise ValueError(
            f"No {'positive' if sign > 0 else 'negative'} cluster with FWE p < {alpha}; there is no "
            "cluster to describe."
        )
    best = found.sort_values(["p_fwe_size", "size"], ascending=[True, False]).iloc[0]
    in_cluster = result.labels == best["cluster_id"]
    values = (
        runs[["participant_id", "group", "session_id"]]
        .reset_index(drop=True)
        .assign(cbf=maps[:, in_cluster].mean(axis=1))
    )
    return values, in_cluster


def region_values(
    result,
    runs: pd.DataFrame,
    maps: np.ndarray,
    roi: np.ndarray,
    roi_name: str = "roi",
    alpha: float = 0.05,
    global_cbf=None,
) -> pd.DataFrame:
    """Mean CBF per run in an a-priori ROI and, if there is one, in the most significant positive cluster.

    The ROI is chosen before seeing the data, so its model is an independent
    test; the cluster was selected by the test itself, so its model only
    describes it.

    Parameters
    ----------
    result : PermutationResult
        From :func:`group_by_time_test`.
    runs, maps
        ``CbfMaps.runs`` and ``CbfMaps.maps``.
    roi : ndarray of bool, shape (n_voxels,)
        Over the analysis mask.
    roi_name : str
    global_cbf : array, shape (n_runs,), optional
        Each run's global (mean grey-matter) CBF. When given, values are
        adjusted by subtraction, ``cbf - (global - mean(global))``, the ROI
        counterpart of the global covariate of :func:`group_by_time_test`.

    Returns
    -------
    values : pandas.DataFrame
        ``region, participant_id, group, session_id, cbf``; ``region`` is
        ``roi_name`` or ``"cluster"``.
    """
    roi = np.asarray(roi, bool)
    if roi.shape != (maps.shape[1],) or not roi.any():
        raise ValueError(f"The ROI must be a non-empty boolean array over the {maps.shape[1]} mask voxels.")
    offset = np.zeros(len(runs))
    if global_cbf is not None:
        g = np.asarray(global_cbf, dtype=float)
        if g.shape != (len(runs),) or not np.isfinite(g).all():
            raise ValueError(f"global_cbf needs one finite value per run ({len(runs)}), got shape {g.shape}.")
        offset = g - g.mean()
    ids = runs[["participant_id", "group", "session_id"]].reset_index(drop=True)
    frames = [ids.assign(region=roi_name, cbf=maps[:, roi].mean(axis=1) - offset)]
    try:
        cluster, _ = cluster_values(result, runs, maps, sign=1, alpha=alpha)
        frames.append(cluster.assign(region="cluster", cbf=cluster["cbf"] - offset))
    except ValueError:
        pass  # no significant cluster: nothing to describe
    out = pd.concat(frames, ignore_index=True)
    return out[["region", "participant_id", "group", "session_id", "cbf"]]


def _require_sessions(found, sessions) -> None:
    """A clear error when the table lacks one of the two sessions (instead of a KeyError)."""
    absent = [s for s in sessions if s not in set(found)]
    if absent:
        raise ValueError(
            f"No value in session(s) {absent}; the table has the sessions {sorted(set(found))}. Set the parameter "
            "sessions to your study's labels (before, after)."
        )


def participant_change(values: pd.DataFrame, value: str = "cbf", sessions=SESSIONS, by=()) -> pd.DataFrame:
    """``T2 - T1`` of a value per participant (and per level of ``by``, e.g. ``("roi",)``).

    Participants without both sessions are absent here; the stages that lose
    them list them (:func:`time_difference_maps`,
    :func:`craving_circuits.baclofen.cue.mediation_table`).

    Returns
    -------
    change : pandas.DataFrame
        ``participant_id, group, *by, change`` (after ``replicate`` for a table of stacked replicates).
    """
    keys = [*([REPLICATE] if REPLICATE in values.columns else []), "participant_id", "group", *by]
    wide = values.pivot_table(index=keys, columns="session_id", values=value).reset_index()
    _require_sessions(values["session_id"], sessions)
    wide = wide.dropna(subset=list(sessions))
    out = wide[keys].copy()
    out.columns.name = None
    out["change"] = wide[sessions[1]] - wide[sessions[0]]
    return out.reset_index(drop=True)


def group_by_time_welch(
    values: pd.DataFrame, value: str = "cbf", term: str = "group x time", alpha: float = 0.05, sessions=SESSIONS
) -> pd.DataFrame:
    """Baclofen minus placebo in each participant's ``T2 - T1`` change, by Welch's t (no equal variances assumed).

    Parameters
    ----------
    values : pandas.DataFrame
        ``participant_id, group, session_id`` and ``value`` (one region).
    term : str
    alpha : float
    sessions : (str, str)
        The session labels before and after.

    Returns
    -------
    row : pandas.DataFrame
        ``n``, ``term, estimate, se, ci_low, ci_high, p`` and ``df``.
    """
    change = participant_change(values, value, sessions)
    by_group = {g: change.loc[change["group"] == g, "change"].to_numpy() for g in GROUPS}
    return welch_difference(by_group["baclofen"], by_group["placebo"], term, alpha)


#: Columns of :func:`region_change_tests`.
REGION_TEST_COLUMNS = ["region", "term", "n", "estimate", "se", "ci_low", "ci_high", "p", "df", "method"]


def region_change_tests(
    values: pd.DataFrame, value: str = "cbf", alpha: float = 0.05, sessions=SESSIONS
) -> pd.DataFrame:
    """Group x time in each region from each participant's ``T2 - T1`` change (summary statistics).

    ``T2 - T1 | <group>`` is the one-sample t of the group's changes and
    ``group x time`` Welch's t of baclofen minus placebo: each participant's
    own change carries their own response to the drug, so the standard errors
    are the spread of those changes over the square root of the group size,
    and the groups may differ in spread (the drug may change it).

    Parameters
    ----------
    values : pandas.DataFrame
        From :func:`region_values` (``region, participant_id, group,
        session_id`` and ``value``).
    value : str
        The measured column (e.g. ``"cbf"``, or ``"craving_rise"`` with a
        single ``region`` naming the measure).
    alpha : float

    Returns
    -------
    tests : pandas.DataFrame
        Columns :data:`REGION_TEST_COLUMNS`; three rows per region (per
        replicate, after a ``replicate`` column, for stacked replicates).
    """
    replicates = replicate_ids(values)
    frames = []
    for region, sub in values.groupby("region", sort=False):
        change = participant_change(sub, value, sessions)
        by_group = {g: stack_columns(change[change["group"] == g], ["change"], replicates)[0] for g in GROUPS}
        for g in GROUPS:
            row = mean_change(by_group[g], f"T2 - T1 | {g}", alpha)
            frames.append(row.assign(region=region, df=(row["n"] - 1).astype(float), method="one-sample t"))
        row = welch_difference(by_group["baclofen"], by_group["placebo"], "group x time", alpha)
        frames.append(row.assign(region=region, method="Welch two-sample t"))
    if not frames:
        return pd.DataFrame(columns=REGION_TEST_COLUMNS if replicates is None else [REPLICATE, *REGION_TEST_COLUMNS])
    if replicates is None:
        return pd.concat(frames, ignore_index=True)[REGION_TEST_COLUMNS]
    frames = [with_replicates(f, replicates) for f in frames]
    return replicate_major(pd.concat(frames, ignore_index=True))[[REPLICATE, *REGION_TEST_COLUMNS]]


def global_change_test(
    runs: pd.DataFrame, column: str = "mean_gm_cbf", alpha: float = 0.05, sessions=SESSIONS
) -> pd.DataFrame:
    """Does the drug change global CBF? Welch's t of the ``T2 - T1`` change of mean grey-matter CBF between groups.

    A drug that raises flow everywhere raises every region's CBF too; whether
    a regional effect survives the adjustment for global CBF then depends on
    how the region's baseline compares with the global mean (see the methods
    page), so the global change is shown beside the regional result.

    Parameters
    ----------
    runs : pandas.DataFrame
        ``CbfMaps.runs`` (``participant_id, group, session_id`` and ``column``).

    Returns
    -------
    row : pandas.DataFrame
        As :func:`group_by_time_welch`.
    """
    return group_by_time_welch(runs, column, "baclofen - placebo: T2 - T1 of global CBF", alpha, sessions)


def global_sensitivity(analyses: dict, roi: str, alpha: float = 0.05, sessions=SESSIONS) -> pd.DataFrame:
    """The group x time result of the ROI with and without the global-CBF adjustment, voxelwise and in the ROI.

    Parameters
    ----------
    analyses : dict of label -> (clusters, values)
        For each choice (e.g. ``"adjusted for global CBF"``), the cluster table
        of :func:`group_by_time_test` with an overlap column for ``roi`` and the
        :func:`region_values` computed the same way.
    roi : str
    alpha : float

    Returns
    -------
    table : pandas.DataFrame
        ``global_cbf, analysis, estimate, se, ci_low, ci_high, p``: per choice,
        the most significant positive cluster on the ROI (estimate its peak t,
        p its cluster-level FWE p; p 1 without one) and the Welch test of the
        ROI's ``T2 - T1`` change between groups.
    """
    rows = []
    for label, (clusters, values) in analyses.items():
        peak_t, p = cluster_on_roi(clusters, roi, sign=1)
        rows.append(
            {
                "global_cbf": label,
                "analysis": f"voxelwise cluster FWE, positive cluster on {roi}",
                "estimate": peak_t,
                "se": np.nan,
                "ci_low": np.nan,
                "ci_high": np.nan,
                "p": p,
            }
        )
        welch = group_by_time_welch(values[values["region"] == roi], alpha=alpha, sessions=sessions).iloc[0]
        rows.append(
            {
                "global_cbf": label,
                "analysis": f"Welch t of the {roi} T2 - T1 change",
                **{k: float(welch[k]) for k in ("estimate", "se", "ci_low", "ci_high", "p")},
            }
        )
    return pd.DataFrame(rows, columns=["global_cbf", "analysis", "estimate", "se", "ci_low", "ci_high", "p"])
