"""Seed-based functional connectivity of one resting-state run.

Data conventions
----------------
* A run's voxel data are ``(n_volumes, n_voxels)``, voxels being the ``True``
  entries of the analysis mask in C order (``np.argwhere(mask)``).
* A seed-to-voxel map is ``(n_voxels,)``: the Fisher z (``arctanh``) of the
  Pearson correlation between the seed's mean time series and each voxel,
  both cleaned by the same strategy.
* ROI-to-ROI values are the Fisher z of the correlation between the mean
  cleaned time series of two ROIs.

:func:`seed_connectivity_run` is the whole per-run computation: it reads only
that run's files (:func:`read_masked_run`) and computes on the arrays
(:func:`seed_connectivity`), returning a small result, so it can be mapped over
runs by any engine (here joblib) without holding more than one run in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from craving_circuits.cocaine.denoise import (
    Strategy,
    clean,
    cleaning_matrix,
    load_run_confounds,
)
from craving_circuits.io.files import read_masked_run
from craving_circuits.stats.correlation import correlate_columns, fisher_z

__all__ = [
    "seed_to_voxel_z",
    "roi_means",
    "SeedAnalysis",
    "RunResult",
    "read_masked_run",
    "seed_connectivity",
    "seed_connectivity_run",
]


def seed_to_voxel_z(cleaned: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Fisher-z seed-to-voxel map.

    Parameters
    ----------
    cleaned : ndarray, shape (n_volumes, n_voxels)
    seed : ndarray, shape (n_volumes,)

    Returns
    -------
    z : ndarray of float32, shape (n_voxels,)
    """
    return fisher_z(correlate_columns(seed, cleaned)).astype(np.float32)


def roi_means(data: np.ndarray, roi_index: dict[str, np.ndarray]) -> np.ndarray:
    """Mean time series of each ROI.

    Parameters
    ----------
    data : ndarray, shape (n_volumes, n_voxels)
    roi_index : dict of name -> ndarray of int
        Columns of ``data`` in each ROI.

    Returns
    -------
    means : ndarray, shape (n_volumes, n_rois)
        Columns in the order of ``roi_index``.
    """
    return np.column_stack([data[:, idx].mean(axis=1, dtype=np.float64) for idx in roi_index.values()])


@dataclass(frozen=True)
class SeedAnalysis:
    """Everything the per-run computation needs besides the run's files.

    Attributes
    ----------
    mask : ndarray of bool, shape (nx, ny, nz)
        Analysis mask on the study's reference grid.
    affine : ndarray, shape (4, 4)
    roi_index : dict of name -> ndarray of int
        Columns (masked voxels) of each ROI; must contain ``seed``.
    seed : str
        Seed ROI name.
    strategy : Strategy
        Denoising of the seed-to-voxel map.
    comparison_strategies : tuple of Strategy
        Further strategies for which only ROI-to-ROI values are computed
        (cheap: the cleaning is applied to ROI means only).
    """

    mask: np.ndarray
    affine: np.ndarray
    roi_index: dict
    seed: str = "nacc"
    strategy: Strategy = field(default_factory=Strategy)
    comparison_strategies: tuple = ()

    @property
    def targets(self) -> list[str]:
        return [name for name in self.roi_index if name != self.seed]


@dataclass
class RunResult:
    """Output of :func:`seed_connectivity_run` for one run."""

    run: dict
    excluded: str | None = None
    z_map: np.ndarray | None = None  # (n_voxels,) float32
    roi_values: list = field(default_factory=list)  # rows: strategy, target, fisher_z
    qc: dict = field(default_factory=dict)


def seed_connectivity_run(run: dict, analysis: SeedAnalysis, known_roi_values: dict | None = None) -> RunResult:
    """Read one run, denoise it and compute its seed map and ROI-to-ROI couplings.

    Parameters
    ----------
    run : dict
        A row of :func:`craving_circuits.cocaine.layout.collect_runs` (needs ``bold``
        and ``t_r``).
    analysis : SeedAnalysis
    known_roi_values : dict, optional
        See :func:`seed_connectivity`.

    Returns
    -------
    RunResult
        With ``excluded`` set (and nothing else) when the run cannot be
        analysed; the reason names the file.
    """
    try:
        data = read_masked_run(run["bold"], analysis.mask, analysis.affine)
    except ValueError as err:
        return RunResult(run=run, excluded=str(err))
    return seed_connectivity(data, run, analysis, known_roi_values)


def seed_connectivity(
    data: np.ndarray, run: dict, analysis: SeedAnalysis, known_roi_values: dict | None = None
) -> RunResult:
    """Denoise a run's data and compute its seed map and ROI-to-ROI couplings.

    Parameters
    ----------
    data : ndarray, shape (n_volumes, n_voxels)
        The run's voxels in the analysis mask (:func:`read_masked_run`).
    run : dict
        Needs ``bold`` (its confounds are found next to it) and ``t_r``.
    analysis : SeedAnalysis
    known_roi_values : dict, optional
        ``{strategy name: [roi value, ...]}``: the couplings of comparison
        strategies already computed for this run (from an earlier output made
        from the same files), taken as they are instead of denoising again.

    Returns
    -------
    RunResult
    """
    n_volumes = data.shape[0]
    rois = roi_means(data, analysis.roi_index)
    names = list(analysis.roi_index)
    seed_col = names.index(analysis.seed)
    result = RunResult(run=run)
    known = known_roi_values or {}
    for strategy in (analysis.strategy, *analysis.comparison_strategies):
        if strategy is not analysis.strategy and strategy.name in known:
            result.roi_values.extend(known[strategy.name])
            continue
        try:
            confounds, sample_mask, conf_names = load_run_confounds(run["bold"], strategy)
        except (FileNotFoundError, ValueError) as err:
            return RunResult(run=run, excluded=str(err))
        n_kept = n_volumes if sample_mask is None else len(sample_mask)
        if n_kept < max(20, n_volumes // 3):
            return RunResult(
                run=run,
                excluded=f"{run['bold']}: only {n_kept} of {n_volumes} volumes left after scrubbing "
                f"({strategy.name}); too few for a correlation.",
            )
        try:
            matrix = cleaning_matrix(n_volumes, run["t_r"], strategy, confounds, sample_mask)
        except ValueError as err:  # e.g. a run too short for the band-pass: left out, the others go on
            return RunResult(run=run, excluded=f"{run['bold']}: {err}")
        roi_clean = clean(rois, matrix)
        for j, target in enumerate(names):
            if j == seed_col:
                continue
            r = correlate_columns(roi_clean[:, seed_col], roi_clean[:, [j]])[0]
            result.roi_values.append({"strategy": strategy.name, "target": target, "fisher_z": float(fisher_z(r))})
        if strategy is analysis.strategy:
            cleaned = clean(data, matrix)
            result.z_map = seed_to_voxel_z(cleaned, roi_clean[:, seed_col])
            n_flat = int(np.count_nonzero(np.isnan(result.z_map)))
            mean = data.mean(axis=0)
            sd = data.std(axis=0)
            result.qc = {
                "n_volumes": n_volumes,
                "n_kept": n_kept,
                "n_confounds": len(conf_names),
                "n_flat_voxels": n_flat,
                "median_tsnr": float(np.median(np.divide(mean, sd, out=np.zeros_like(mean), where=sd > 0))),
            }
    return result
