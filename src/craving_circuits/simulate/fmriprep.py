"""fMRIPrep-style confounds computed from simulated BOLD data.

The columns follow fMRIPrep's confounds TSV (>= 20.2) so that
:func:`nilearn.interfaces.fmriprep.load_confounds` reads them:

* ``trans_x ... rot_z`` with ``_derivative1``, ``_power2`` and
  ``_derivative1_power2`` expansions;
* ``global_signal``, ``white_matter``, ``csf`` with the same expansions;
* ``framewise_displacement`` (Power), ``dvars`` and ``std_dvars``;
* ``a_comp_cor_NN`` (anatomical CompCor: ``combined``, then ``CSF``, then ``WM``
  masks; the JSON sidecar states each component's mask);
* ``cosineNN`` (discrete cosine basis of a 128 s high-pass filter);
* ``motion_outlierNN`` (one-hot, FD > 0.5 mm or std DVARS > 1.5).

Derivatives are backward differences, so their first row is missing (``n/a``),
as in fMRIPrep.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from nilearn.signal import create_cosine_drift

from craving_circuits.simulate.signals import framewise_displacement

__all__ = ["compute_confounds", "expand", "dvars", "acompcor", "MOTION_COLUMNS"]

MOTION_COLUMNS = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")


def expand(name: str, x: np.ndarray) -> dict[str, np.ndarray]:
    """fMRIPrep's expansion of one regressor: itself, derivative, squares.

    Returns
    -------
    dict of name -> ndarray, shape (n_volumes,)
        ``name``, ``name_derivative1`` (NaN first), ``name_power2`` and
        ``name_derivative1_power2``.
    """
    x = np.asarray(x, dtype=float)
    deriv = np.concatenate([[np.nan], np.diff(x)])
    return {
        name: x,
        f"{name}_derivative1": deriv,
        f"{name}_power2": x**2,
        f"{name}_derivative1_power2": deriv**2,
    }


def dvars(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DVARS and standardised DVARS (Nichols' method, as in nipype/fMRIPrep).

    Parameters
    ----------
    data : ndarray, shape (n_volumes, n_voxels)

    Returns
    -------
    dvars, std_dvars : ndarray, shape (n_volumes,)
        NaN in the first row. ``std_dvars`` divides DVARS by its expected value
        under temporal stationarity, from each voxel's robust standard deviation
        and lag-1 autocorrelation.
    """
    data = np.asarray(data, dtype=float)
    diff = np.diff(data, axis=0)
    raw = np.sqrt(np.mean(diff**2, axis=1))
    q75, q25 = np.percentile(data, [75, 25], axis=0, method="lower")
    robust_sd = (q75 - q25) / 1.349
    centred = data - data.mean(axis=0)
    denom = np.sum(centred**2, axis=0)
    ar1 = np.divide(np.sum(centred[1:] * centred[:-1], axis=0), denom, out=np.zeros_like(denom), where=denom > 0)
    # expected DVARS under stationarity: the mean over voxels of each voxel's predicted SD of
    # successive differences (nipype's compute_dvars, after Nichols' DVARS standardisation)
    usable = robust_sd > 0
    expected = np.mean(np.sqrt(2 * (1 - ar1[usable])) * robust_sd[usable]) if usable.any() else 0.0
    std = raw / expected if expected > 0 else np.full_like(raw, np.nan)
    return np.concatenate([[np.nan], raw]), np.concatenate([[np.nan], std])


def acompcor(data: np.ndarray, drift: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """Principal components of high-pass filtered, variance-normalised signals.

    Parameters
    ----------
    data : ndarray, shape (n_volumes, n_voxels)
        Signals from a noise mask (white matter and/or CSF).
    drift : ndarray, shape (n_volumes, n_drift)
        High-pass basis (cosines) regressed out first, with a constant.
    n_components : int

    Returns
    -------
    components : ndarray, shape (n_volumes, n_components)
        Orthonormal columns.
    variance_explained : ndarray, shape (n_components,)
        Fraction of the total variance explained by each component.
    """
    basis = np.column_stack([np.ones(len(data)), drift])
    q, _ = np.linalg.qr(basis)
    resid = data - q @ (q.T @ data)
    sd = resid.std(axis=0)
    keep = sd > 1e-10 * np.abs(data).max(axis=0)  # constant columns leave only rounding error
    resid = resid[:, keep] / sd[keep]
    # left singular vectors from the small (n_volumes x n_volumes) Gram matrix
    eigval, eigvec = np.linalg.eigh(resid @ resid.T)
    order = np.argsort(eigval)[::-1]
    eigval, eigvec = np.clip(eigval[order], 0, None), eigvec[:, order]
    var = eigval / eigval.sum()
    return eigvec[:, :n_components], var[:n_components]


def compute_confounds(
    data: np.ndarray,
    motion: np.ndarray,
    t_r: float,
    wm_index: np.ndarray,
    csf_index: np.ndarray,
    n_compcor: int = 5,
    fd_threshold: float = 0.5,
    dvars_threshold: float = 1.5,
) -> tuple[pd.DataFrame, dict]:
    """Confounds table and its JSON sidecar for one run.

    Parameters
    ----------
    data : ndarray, shape (n_volumes, n_voxels)
        BOLD intensities in the brain mask.
    motion : ndarray, shape (n_volumes, 6)
        Estimated head motion, translations (mm) then rotations (rad).
    t_r : float
        Repetition time in seconds.
    wm_index, csf_index : ndarray of int
        Columns of ``data`` in the white-matter and CSF masks.
    n_compcor : int
        Components per CompCor mask (the combined mask keeps twice as many).

    Returns
    -------
    confounds : pandas.DataFrame, shape (n_volumes, n_columns)
    metadata : dict
        The confounds JSON sidecar (CompCor masks and variance explained).
    """
    n_volumes = data.shape[0]
    columns: dict[str, np.ndarray] = {}
    columns.update(expand("global_signal", data.mean(axis=1)))
    columns.update(expand("white_matter", data[:, wm_index].mean(axis=1)))
    columns.update(expand("csf", data[:, csf_index].mean(axis=1)))
    raw_dvars, std_dvars = dvars(data)
    columns["std_dvars"] = std_dvars
    columns["dvars"] = raw_dvars
    fd = framewise_displacement(motion)
    columns["framewise_displacement"] = fd

    frame_times = np.arange(n_volumes) * t_r
    cosines = create_cosine_drift(1.0 / 128, frame_times)[:, :-1]
    metadata: dict[str, dict] = {}
    k = 0
    for mask_name, index, n in (
        ("combined", np.union1d(wm_index, csf_index), 2 * n_compcor),
        ("CSF", csf_index, n_compcor),
        ("WM", wm_index, n_compcor),
    ):
        comps, var = acompcor(data[:, index], cosines, n)
        cumulative = np.cumsum(var)
        for j in range(comps.shape[1]):
            name = f"a_comp_cor_{k:02d}"
            columns[name] = comps[:, j]
            metadata[name] = {
                "Method": "aCompCor",
                "Mask": mask_name,
                "Retained": True,
                "VarianceExplained": float(var[j]),
                "CumulativeVarianceExplained": float(cumulative[j]),
            }
            k += 1
    for j in range(cosines.shape[1]):
        columns[f"cosine{j:02d}"] = cosines[:, j]
        metadata[f"cosine{j:02d}"] = {"Method": "DCT", "CutoffPeriod": 128.0}
    for j, name in enumerate(MOTION_COLUMNS):
        columns.update(expand(name, motion[:, j]))
    outliers = np.flatnonzero((np.nan_to_num(fd) > fd_threshold) | (np.nan_to_num(std_dvars) > dvars_threshold))
    for j, t in enumerate(outliers):
        one_hot = np.zeros(n_volumes)
        one_hot[t] = 1.0
        columns[f"motion_outlier{j:02d}"] = one_hot
    return pd.DataFrame(columns), metadata
