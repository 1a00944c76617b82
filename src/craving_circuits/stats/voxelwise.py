"""Maps over an analysis mask: back to images, smoothing, covariate tests and cluster tables.

Data conventions
----------------
* Maps are ``(n_maps, n_voxels)`` float arrays over the analysis mask (C order
  of ``np.argwhere(mask)``); :func:`to_img` puts them back on the grid.
* :func:`covariate_test` regresses participant maps on a covariate and tests
  the slope by :func:`craving_circuits.stats.permutation.cluster_permutation_test`.
* :func:`cluster_table` describes the clusters of a permutation test with MNI
  peaks, atlas labels and the share of each ROI they cover.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
from nilearn.image import smooth_img

from craving_circuits.io.atlas import label_coordinates
from craving_circuits.stats.permutation import cluster_permutation_test

__all__ = [
    "to_img",
    "smooth_maps",
    "covariate_test",
    "cluster_table",
    "cluster_tables",
    "cluster_summary",
    "cluster_on_roi",
]


def to_img(values: np.ndarray, mask_img: nib.Nifti1Image) -> nib.Nifti1Image:
    """Put ``(n_voxels,)`` values (or ``(n_maps, n_voxels)``) back on the mask's grid."""
    mask = np.asarray(mask_img.dataobj) > 0
    values = np.asarray(values, dtype=np.float32)
    if values.shape[-1] != mask.sum():
        raise ValueError(f"Got {values.shape[-1]} values for a mask of {int(mask.sum())} voxels.")
    if values.ndim == 1:
        vol = np.zeros(mask.shape, np.float32)
        vol[mask] = values
    else:
        vol = np.zeros(mask.shape + (values.shape[0],), np.float32)
        vol[mask] = values.T
    return nib.Nifti1Image(vol, mask_img.affine)


def smooth_maps(maps: np.ndarray, mask_img: nib.Nifti1Image, fwhm_mm: float | None) -> np.ndarray:
    """Gaussian smoothing of maps on the mask grid (nilearn ``smooth_img``), re-masked.

    Parameters
    ----------
    maps : ndarray, shape (n_maps, n_voxels)
    fwhm_mm : float or None
        None or 0 returns a copy.

    Returns
    -------
    smoothed : ndarray of float32, shape (n_maps, n_voxels)
    """

    if not fwhm_mm:
        return np.array(maps, dtype=np.float32, copy=True)
    mask = np.asarray(mask_img.dataobj) > 0
    img = smooth_img(to_img(maps, mask_img), fwhm_mm)
    return np.asarray(img.dataobj)[mask].T.astype(np.float32)


def covariate_test(
    diff: np.ndarray,
    table: pd.DataFrame,
    covariate: pd.Series,
    mask_img: nib.Nifti1Image,
    group: str | None = "CUD",
    cluster_forming_p: float = 0.01,
    n_perm: int = 5000,
    two_sided: bool = True,
    rng=None,
    nuisance: str | None = None,
    n_jobs: int = 1,
):
    """Where do the participants' contrast maps vary with a participant covariate (e.g. the glutamate change)?

    Regresses each voxel's value on the covariate (with an intercept, and the
    levels of ``nuisance`` as confounds) across the participants of ``group``
    and tests the slope by permutation (Freedman-Lane with confounds) with
    cluster-level FWE control.

    Parameters
    ----------
    diff : ndarray, shape (n_participants, n_voxels)
    table : pandas.DataFrame
        ``participant_id, group`` in the row order of ``diff``.
    covariate : pandas.Series
        Indexed by participant_id. Participants of ``group`` without a value are
        left out and returned in the exclusions.
    group : str or None
        Restrict to this group (None: everyone).
    nuisance : str, optional
        A column of ``table`` (e.g. ``"group"``) whose levels enter as
        confounds, so that the slope is the association within its levels.
    cluster_forming_p : float
        Default 0.01: permutation keeps the family-wise error at any
        cluster-forming threshold; a lenient one suits weak, spatially extended
        associations.
    n_jobs : int
        Workers computing the permutation null's chunks (does not change the result).

    Returns
    -------
    result : PermutationResult
    used : pandas.DataFrame
        ``participant_id, covariate`` of the participants tested.
    exclusions : pandas.DataFrame
        ``participant_id, reason``.
    """

    mask = np.asarray(mask_img.dataobj) > 0
    in_group = np.ones(len(table), bool) if group is None else (table["group"] == group).to_numpy()
    values = table["participant_id"].map(covariate).to_numpy(dtype=float)
    usable = in_group & np.isfinite(values)
    missing = table.loc[in_group & ~np.isfinite(values), "participant_id"]
    exclusions = pd.DataFrame({"participant_id": missing.to_numpy(), "reason": "no covariate value"})
    if usable.sum() < 4:
        raise ValueError(f"Only {int(usable.sum())} participants have a covariate value; at least 4 are needed.")
    confounds = None
    if nuisance is not None:
        levels = table.loc[usable, nuisance]
        confounds = pd.get_dummies(levels, drop_first=True, dtype=float).to_numpy()
        if confounds.shape[1] == 0:
            confounds = None  # one level only: nothing to adjust for
    result = cluster_permutation_test(
        diff[usable],
        values[usable],
        mask,
        confounds=confounds,
        cluster_forming_p=cluster_forming_p,
        n_perm=n_perm,
        two_sided=two_sided,
        rng=rng,
        n_jobs=n_jobs,
    )
    used = pd.DataFrame({"participant_id": table.loc[usable, "participant_id"].to_numpy(), "covariate": values[usable]})
    return result, used, exclusions


def cluster_table(result, mask_img: nib.Nifti1Image, rois: dict | None = None, alpha: float = 0.05) -> pd.DataFrame:
    """Clusters of a permutation test with MNI peaks, atlas labels and ROI overlaps.

    Parameters
    ----------
    result : PermutationResult
    mask_img : nibabel.Nifti1Image
    rois : dict of name -> ndarray of bool (nx, ny, nz), optional
        For each, the column ``overlap_<name>`` gives the share of the ROI's
        voxels inside the cluster.
    alpha : float
        ``significant`` is ``p_fwe_size < alpha``.

    Returns
    -------
    clusters : pandas.DataFrame
        ``cluster_id, sign, size, volume_mm3, peak_x, peak_y, peak_z, peak_t,
        p_fwe_size, significant, peak_label`` and the overlaps, largest first.
    """
    mask = np.asarray(mask_img.dataobj) > 0
    ijk = np.argwhere(mask)
    voxel_mm3 = round(float(abs(np.linalg.det(mask_img.affine[:3, :3]))), 6)
    base = result.clusters
    if base.empty:
        cols = [
            "cluster_id",
            "sign",
            "size",
            "volume_mm3",
            "peak_x",
            "peak_y",
            "peak_z",
            "peak_t",
            "p_fwe_size",
            "significant",
            "peak_label",
        ] + [f"overlap_{n}" for n in (rois or {})]
        return pd.DataFrame(columns=cols)
    peaks = nib.affines.apply_affine(mask_img.affine, ijk[base["peak_voxel"].to_numpy()])
    out = pd.DataFrame(
        {
            "cluster_id": base["cluster_id"].to_numpy(),
            "sign": base["sign"].to_numpy(),
            "size": base["size"].to_numpy(),
            "volume_mm3": base["size"].to_numpy() * voxel_mm3,
            "peak_x": peaks[:, 0],
            "peak_y": peaks[:, 1],
            "peak_z": peaks[:, 2],
            "peak_t": base["peak_t"].to_numpy(),
            "p_fwe_size": base["p_fwe_size"].to_numpy(),
            "significant": base["p_fwe_size"].to_numpy() < alpha,
            "peak_label": label_coordinates(peaks),
        }
    )
    for name, roi in (rois or {}).items():
        roi_masked = roi[mask]
        out[f"overlap_{name}"] = [
            float(np.logical_and(result.labels == cid, roi_masked).sum() / max(roi_masked.sum(), 1))
            for cid in out["cluster_id"]
        ]
    return out


def cluster_tables(
    results: dict, mask_img: nib.Nifti1Image, rois: dict | None = None, alpha: float = 0.05
) -> dict[str, pd.DataFrame]:
    """:func:`cluster_table` of every test in ``results``."""
    return {name: cluster_table(result, mask_img, rois, alpha) for name, result in results.items()}


def cluster_summary(table: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The ``n`` largest clusters of :func:`cluster_table`, in a compact form for display.

    Returns
    -------
    summary : pandas.DataFrame
        ``size, peak (x, y, z), peak_t, p_fwe, label`` and the ROI overlaps (%).
    """
    top = table.head(n)
    out = pd.DataFrame(
        {
            "size": top["size"].to_numpy(),
            "peak (x, y, z)": [
                f"({x:.0f}, {y:.0f}, {z:.0f})" for x, y, z in top[["peak_x", "peak_y", "peak_z"]].to_numpy()
            ],
            "peak_t": top["peak_t"].round(2).to_numpy(),
            "p_fwe": top["p_fwe_size"].round(4).to_numpy(),
            "label": top["peak_label"].to_numpy(),
        }
    )
    for col in [c for c in top.columns if c.startswith("overlap_")]:
        out[col.replace("overlap_", "% of ")] = (100 * top[col]).round(0).to_numpy()
    return out


def cluster_on_roi(clusters: pd.DataFrame, roi: str, sign: int | None = None) -> tuple[float, float]:
    """The most significant cluster of a :func:`cluster_table` that overlaps an ROI (of a sign, if given).

    Returns
    -------
    peak_t, p : float
        Its peak t and cluster-level FWE p; ``(nan, 1.0)`` without such a cluster.
    """
    over = clusters[clusters[f"overlap_{roi}"] > 0] if len(clusters) else clusters
    if sign is not None and len(over):
        over = over[np.sign(over["sign"]) == sign]
    if not len(over):
        return np.nan, 1.0
    best = over.sort_values("p_fwe_size").iloc[0]
    return float(best["peak_t"]), float(best["p_fwe_size"])
