"""The first level of the seed-connectivity chapters: one seed map and ROI couplings per run.

* :func:`seed_analysis` prepares the analysis mask and ROIs on the study's grid.
* :func:`first_level` maps :func:`craving_circuits.cocaine.connectivity.seed_connectivity_run`
  over the runs with :func:`craving_circuits.io.runs.map_runs`. Each run's
  outputs (a Fisher-z NIfTI map and a JSON sidecar with ROI values, QC and
  provenance) are cached; a later call reuses a run only if its sidecar records
  the same inputs (size and modification time of every file) and the same
  analysis settings, and holds the comparison strategies asked for.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from craving_circuits import __version__
from craving_circuits.cocaine.connectivity import SeedAnalysis, seed_connectivity_run
from craving_circuits.cocaine.denoise import Strategy
from craving_circuits.cocaine.layout import analysis_mask
from craving_circuits.io.atlas import roi_mask
from craving_circuits.io.bids import bids_filename
from craving_circuits.io.files import short_hash
from craving_circuits.io.runs import RunCache, RunExcluded, RunOutput, map_runs
from craving_circuits.io.schemas import ROI_COLUMNS

__all__ = ["seed_analysis", "FirstLevel", "first_level", "ROI_COLUMNS"]


def seed_analysis(
    runs: pd.DataFrame,
    strategy: Strategy,
    seed: str = "nacc",
    targets=("dlpfc", "thalamus_midline"),
    comparison_strategies=(),
) -> tuple[SeedAnalysis, nib.Nifti1Image, dict]:
    """Analysis mask and ROIs on the study grid.

    Returns
    -------
    analysis : SeedAnalysis
    mask_img : nibabel.Nifti1Image
    info : dict
        Mask sizes (see :func:`craving_circuits.cocaine.layout.analysis_mask`) and the
        number of voxels of each ROI.
    """
    mask_img, info = analysis_mask(runs)
    mask = np.asarray(mask_img.dataobj) > 0
    roi_index = {}
    for name in (seed, *targets):
        roi = roi_mask(name, mask_img)
        roi_index[name] = np.flatnonzero(roi[mask])
        info[f"roi_voxels_{name}"] = int(roi_index[name].size)
    analysis = SeedAnalysis(
        mask=mask,
        affine=mask_img.affine,
        roi_index=roi_index,
        seed=seed,
        strategy=strategy,
        comparison_strategies=tuple(comparison_strategies),
    )
    return analysis, mask_img, info


@dataclass
class FirstLevel:
    """First-level results of a study.

    Attributes
    ----------
    runs : pandas.DataFrame
        Analysed runs (rows of :func:`craving_circuits.cocaine.layout.collect_runs`) with
        QC columns ``n_kept, n_confounds, n_flat_voxels, median_tsnr``.
    maps : ndarray of float32, shape (n_runs, n_voxels)
        Seed-to-voxel Fisher z, row ``i`` for ``runs.iloc[i]``.
    roi : pandas.DataFrame
        Long table with columns :data:`ROI_COLUMNS`.
    exclusions : pandas.DataFrame
        Runs that could not be analysed (stage ``"first level"``).
    mask_img : nibabel.Nifti1Image
    analysis : SeedAnalysis
    n_cached : int
        Runs taken from the cache.
    """

    runs: pd.DataFrame
    maps: np.ndarray
    roi: pd.DataFrame
    exclusions: pd.DataFrame
    mask_img: nib.Nifti1Image
    analysis: SeedAnalysis
    n_cached: int = 0


def _analysis_settings(analysis: SeedAnalysis) -> dict:
    """What a run's z-map depends on besides its files (not the comparison strategies, which add ROI values only)."""
    return {
        "version": __version__,
        "stage": "seed connectivity",
        "seed": analysis.seed,
        "strategy": asdict(analysis.strategy),
        "rois": {k: hashlib.sha256(v.tobytes()).hexdigest() for k, v in analysis.roi_index.items()},
    }


def _strategy_keys(analysis: SeedAnalysis) -> dict[str, str]:
    """Comparison strategies by a hash of their settings -> their name (the ``strategy`` of ROI values)."""
    return {short_hash(asdict(s)): s.name for s in analysis.comparison_strategies}


def _run_inputs(run: dict) -> list[str]:
    return [
        run["bold"],
        run["confounds"],
        str(run["confounds"]).replace(".tsv", ".json"),
        str(run["bold"]).replace(".nii.gz", ".json"),
    ]


def _run_stem(run: dict, seed: str) -> str:
    return bids_filename(
        {
            "sub": run["participant_id"].removeprefix("sub-"),
            "ses": run["session_id"].removeprefix("ses-"),
            "task": run["task"],
            "desc": f"{seed}seed",
        },
        "zmap",
        "",
    )


def _has_comparisons(record: dict, comparison: dict[str, str]) -> bool:
    """A finished run serves an analysis whose comparison strategies it already has."""
    return set(comparison) <= set(record.get("comparison_keys", {}))


def _roi_key(analysis: SeedAnalysis) -> str:
    """What a run's ROI couplings depend on besides its files and the strategy: the seed and the ROIs."""
    settings = _analysis_settings(analysis)
    return short_hash({k: settings[k] for k in ("version", "seed", "rois")})


def _all_strategy_keys(analysis: SeedAnalysis) -> dict[str, str]:
    """Every strategy of the analysis (the chosen one first) by a hash of its settings -> its name."""
    return {short_hash(asdict(s)): s.name for s in (analysis.strategy, *analysis.comparison_strategies)}


def _reusable_roi_values(previous: dict | None, analysis: SeedAnalysis) -> dict[str, list[dict]]:
    """The ROI couplings of an earlier output of the run (same files) that this analysis would compute again.

    Only the comparison strategies are taken (the chosen one is computed anyway,
    with the map), and only when the earlier output had the same seed and ROIs
    and a strategy with the same settings; values are relabelled with this
    analysis's strategy names.
    """
    if not previous or previous.get("roi_key") != _roi_key(analysis):
        return {}
    earlier = previous.get("strategy_keys", {})
    chosen = short_hash(asdict(analysis.strategy))
    known = {}
    for key, name in _all_strategy_keys(analysis).items():
        if key == chosen or key not in earlier:
            continue
        values = [v for v in previous.get("roi_values", []) if v["strategy"] == earlier[key]]
        if values:
            known[name] = [{**v, "strategy": name} for v in values]
    return known


def _seed_job(run: dict, analysis: SeedAnalysis, previous: dict | None = None) -> RunOutput:
    result = seed_connectivity_run(run, analysis, known_roi_values=_reusable_roi_values(previous, analysis))
    if result.excluded:
        raise RunExcluded(result.excluded)
    return RunOutput(
        result.z_map,
        {
            "comparison_keys": _strategy_keys(analysis),
            "strategy_keys": _all_strategy_keys(analysis),
            "roi_key": _roi_key(analysis),
            "roi_values": result.roi_values,
            "qc": result.qc,
            "strategy": analysis.strategy.name,
            "seed": analysis.seed,
            "source": run["bold"],
        },
    )


def first_level(
    runs: pd.DataFrame,
    analysis: SeedAnalysis,
    mask_img: nib.Nifti1Image,
    out_dir: str | Path,
    n_jobs: int = 1,
    progress: bool = False,
) -> FirstLevel:
    """Seed connectivity of every run, in parallel, reusing finished runs (:func:`~craving_circuits.io.runs.map_runs`).

    A finished run is reused by any analysis with the same settings whose
    comparison strategies it already has (its extra ROI values are left out),
    so chapters that need fewer comparisons share the seed chapter's results
    without overwriting them. A run computed again under another chosen
    strategy (a re-run with ``strategy="compcor+gsr"``, say) takes the ROI
    couplings of its comparison strategies from its earlier output when that
    was made from the same files with the same seed and ROIs, and computes only
    the chosen strategy's map and couplings.

    Parameters
    ----------
    runs : pandas.DataFrame
        From :func:`craving_circuits.cocaine.layout.collect_runs`.
    analysis : SeedAnalysis
    mask_img : nibabel.Nifti1Image
    out_dir : path
        Where the per-run maps and sidecars go (``<out_dir>/sub-*/ses-*``).
    n_jobs : int
        Processes; each holds one run at a time.
    progress : bool
        Show a progress bar.

    Returns
    -------
    FirstLevel
    """
    comparison = _strategy_keys(analysis)
    cache = RunCache(
        folder=Path(out_dir),
        settings=_analysis_settings(analysis),
        stem=partial(_run_stem, seed=analysis.seed),
        inputs=_run_inputs,
        mask=analysis.mask,
        affine=analysis.affine,
        accept=partial(_has_comparisons, comparison=comparison),
        pass_previous=True,
    )
    mapped = map_runs(
        runs, partial(_seed_job, analysis=analysis), "first level", cache, n_jobs=n_jobs, progress=progress
    )
    wanted = {analysis.strategy.name, *comparison.values()}
    kept, roi_rows = [], []
    for run, out in zip(mapped.runs.to_dict("records"), mapped.outputs):
        kept.append({**run, **out.record["qc"]})
        for value in out.record["roi_values"]:
            if value["strategy"] not in wanted:
                continue
            roi_rows.append(
                {
                    **{k: run[k] for k in ROI_COLUMNS[:5]},
                    "strategy": value["strategy"],
                    "seed": analysis.seed,
                    "target": value["target"],
                    "fisher_z": value["fisher_z"],
                }
            )
    return FirstLevel(
        runs=pd.DataFrame(kept),
        maps=mapped.maps(int(analysis.mask.sum())),
        roi=pd.DataFrame(roi_rows, columns=ROI_COLUMNS),
        exclusions=mapped.exclusions,
        mask_img=mask_img,
        analysis=analysis,
        n_cached=mapped.n_cached,
    )
