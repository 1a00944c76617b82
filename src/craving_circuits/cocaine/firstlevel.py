"""Mapping the per-run work over a study, with a cache that is only trusted when complete.

* :func:`simulated_study` returns a simulated study, simulating it first if needed.
* :func:`seed_analysis` prepares the analysis mask and ROIs on the study's grid.
* :func:`first_level` maps :func:`craving_circuits.cocaine.connectivity.seed_connectivity_run`
  over the runs with joblib. Each run's outputs (a Fisher-z NIfTI map and a JSON
  sidecar with ROI values, QC and provenance) are written atomically, the
  sidecar last; a later call reuses a run only if its sidecar exists and records
  the same inputs (size and modification time of every file) and the same
  analysis settings. An interrupted build therefore leaves nothing that is
  taken as finished.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from tqdm import tqdm

from craving_circuits import __version__
from craving_circuits.cocaine.connectivity import SeedAnalysis, seed_connectivity_run
from craving_circuits.cocaine.denoise import Strategy
from craving_circuits.cocaine.layout import analysis_mask
from craving_circuits.io.atlas import roi_mask
from craving_circuits.io.bids import bids_filename
from craving_circuits.io.files import read_json, short_hash, write_json, write_nifti
from craving_circuits.io.schemas import EXCLUSION_COLUMNS, ROI_COLUMNS

__all__ = ["seed_analysis", "FirstLevel", "first_level", "ROI_COLUMNS"]


def seed_analysis(runs: pd.DataFrame, strategy: Strategy, seed: str = "nacc",
                  targets=("dlpfc", "thalamus_midline"), comparison_strategies=()) -> tuple[SeedAnalysis, nib.Nifti1Image, dict]:
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
    analysis = SeedAnalysis(mask=mask, affine=mask_img.affine, roi_index=roi_index, seed=seed,
                            strategy=strategy, comparison_strategies=tuple(comparison_strategies))
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


def _analysis_key(analysis: SeedAnalysis) -> str:
    """What a run's z-map depends on (not the comparison strategies, which add ROI values only)."""
    return short_hash(
        {
            "version": __version__,
            "seed": analysis.seed,
            "strategy": asdict(analysis.strategy),
            "mask": hashlib.sha256(np.packbits(analysis.mask).tobytes()).hexdigest(),
            "rois": {k: hashlib.sha256(v.tobytes()).hexdigest() for k, v in analysis.roi_index.items()},
        }
    )


def _strategy_keys(analysis: SeedAnalysis) -> dict[str, str]:
    """Comparison strategies by a hash of their settings -> their name (the ``strategy`` of ROI values)."""
    return {short_hash(asdict(s)): s.name for s in analysis.comparison_strategies}


def _reusable(cached: dict, key: str, fingerprint: dict, comparison: dict[str, str]) -> bool:
    """A finished run serves an analysis with the same settings and a subset of its comparison strategies."""
    return (cached.get("analysis_key") == key and cached.get("inputs") == fingerprint
            and set(comparison) <= set(cached.get("comparison_keys", {})))


def _fingerprint(run: dict) -> dict:
    paths = [run["bold"], run["confounds"], str(run["confounds"]).replace(".tsv", ".json"),
             str(run["bold"]).replace(".nii.gz", ".json")]
    out = {}
    for p in paths:
        path = Path(p)
        stat = path.stat() if path.exists() else None
        out[str(path)] = None if stat is None else [stat.st_size, stat.st_mtime_ns]
    return out


def _output_paths(run: dict, out_dir: Path, seed: str) -> tuple[Path, Path]:
    sub, ses = run["participant_id"], run["session_id"]
    stem = bids_filename({"sub": sub.removeprefix("sub-"), "ses": ses.removeprefix("ses-"), "task": run["task"],
                          "desc": f"{seed}seed"}, "zmap", "")
    folder = out_dir / sub / ses
    return folder / f"{stem}.nii.gz", folder / f"{stem}.json"


def _first_level_job(run: dict, analysis: SeedAnalysis, out_dir: Path, key: str) -> dict:
    """Run (or reuse) one run's first level; returns what the parent needs.

    A finished run is reused by any analysis with the same settings whose
    comparison strategies it already has (its extra ROI values are left out),
    so chapters that need fewer comparisons share the seed chapter's results
    without overwriting them.
    """
    map_path, json_path = _output_paths(run, out_dir, analysis.seed)
    fingerprint = _fingerprint(run)
    comparison = _strategy_keys(analysis)
    if json_path.is_file():
        try:
            cached = read_json(json_path)
        except ValueError:
            cached = {}
        if _reusable(cached, key, fingerprint, comparison):
            if cached.get("excluded"):
                return {"run": run, "excluded": cached["excluded"], "cached": True}
            if map_path.is_file():
                img = nib.load(map_path)
                z = np.asarray(img.dataobj, dtype=np.float32)[analysis.mask]
                wanted = {analysis.strategy.name, *comparison.values()}
                values = [v for v in cached["roi_values"] if v["strategy"] in wanted]
                return {"run": run, "z_map": z, "roi_values": values, "qc": cached["qc"], "cached": True}
    result = seed_connectivity_run(run, analysis)
    record = {"analysis_key": key, "comparison_keys": comparison, "inputs": fingerprint,
              "excluded": result.excluded,
              "roi_values": result.roi_values, "qc": result.qc, "strategy": analysis.strategy.name,
              "seed": analysis.seed, "source": run["bold"]}
    if result.excluded is None:
        vol = np.zeros(analysis.mask.shape, dtype=np.float32)
        vol[analysis.mask] = result.z_map
        write_nifti(map_path, nib.Nifti1Image(vol, analysis.affine))
    write_json(json_path, record)  # last: its presence marks the run as finished
    if result.excluded:
        return {"run": run, "excluded": result.excluded, "cached": False}
    return {"run": run, "z_map": result.z_map, "roi_values": result.roi_values, "qc": result.qc,
            "cached": False}


def first_level(runs: pd.DataFrame, analysis: SeedAnalysis, mask_img: nib.Nifti1Image, out_dir: str | Path,
                n_jobs: int = 1, progress: bool = False) -> FirstLevel:
    """Seed connectivity of every run, in parallel, reusing finished runs.

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

    out_dir = Path(out_dir)
    key = _analysis_key(analysis)
    records = runs.to_dict("records")
    jobs = (delayed(_first_level_job)(run, analysis, out_dir, key) for run in records)
    outputs = list(tqdm(Parallel(n_jobs=n_jobs, return_as="generator")(jobs), total=len(records),
                        desc="first level", disable=not progress))
    kept, maps, roi_rows, exclusions = [], [], [], []
    for out in outputs:
        run = out["run"]
        if "excluded" in out and out["excluded"]:
            exclusions.append({"participant_id": run["participant_id"], "session_id": run["session_id"],
                               "state": run["state"], "stage": "first level", "file": run["bold"],
                               "reason": out["excluded"]})
            continue
        kept.append({**run, **out["qc"]})
        maps.append(out["z_map"])
        for value in out["roi_values"]:
            roi_rows.append({**{k: run[k] for k in ROI_COLUMNS[:5]}, "strategy": value["strategy"],
                             "seed": analysis.seed, "target": value["target"], "fisher_z": value["fisher_z"]})
    n_voxels = int(analysis.mask.sum())
    return FirstLevel(
        runs=pd.DataFrame(kept),
        maps=np.vstack(maps) if maps else np.zeros((0, n_voxels), np.float32),
        roi=pd.DataFrame(roi_rows, columns=ROI_COLUMNS),
        exclusions=pd.DataFrame(exclusions, columns=EXCLUSION_COLUMNS),
        mask_img=mask_img,
        analysis=analysis,
        n_cached=sum(bool(o.get("cached")) for o in outputs),
    )
