"""Arterial spin labelling: cerebral blood flow from single-delay pCASL.

Quantification follows the consensus single-compartment model of the ASL
white paper (Alsop et al. 2015, eq. 1) for pseudo-continuous labelling:

.. math::

    \\mathrm{CBF} = \\frac{6000\\,\\lambda\\,\\Delta M\\, e^{\\mathrm{PLD}/T_{1,b}}}
                      {2\\,\\alpha\\,T_{1,b}\\,M_0\\,(1 - e^{-\\tau/T_{1,b}})}
    \\quad [\\mathrm{ml}/100\\,\\mathrm{g}/\\mathrm{min}]

with ``ΔM`` = control - label, ``λ`` the blood-brain partition coefficient
(0.9 ml/g), ``T1,b`` the longitudinal relaxation time of blood (1.65 s at 3 T),
``α`` the labelling efficiency (0.85 for pCASL), ``τ`` the labelling duration
and ``PLD`` the post-labelling delay (both in s). With background suppression,
each inversion pulse also inverts part of the label; the efficiency is then
``α · η_BS ** n_pulses`` with ``η_BS`` the assumed efficiency of one pulse
(a parameter, 0.95 by default).

Data conventions
----------------
* A BIDS ``perf/`` run: ``*_asl.nii.gz`` (4-D, volumes listed in
  ``*_aslcontext.tsv`` as ``label``, ``control``, ``m0scan``, ``deltam``, ...),
  ``*_asl.json`` with ``ArterialSpinLabelingType``, ``PostLabelingDelay``,
  ``LabelingDuration``, ``M0Type``, ``BackgroundSuppression`` (and, when true,
  ``BackgroundSuppressionNumberPulses``); optional ``LabelingEfficiency``.
  A separate M0 scan is ``*_m0scan.nii.gz`` on the same grid.
* Arrays are over brain voxels, ``(n_voxels,)``, or images on the run's grid.
* Constants are read from the sidecar and fall back to the defaults above only
  where the sidecar does not give them; every constant used is written next
  to the CBF map (:func:`quantification_record`).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from craving_circuits.io.bids import AslConstants
from craving_circuits.io.files import read_json, read_nifti

__all__ = [
    "AslConstants",
    "REQUIRED_FIELDS",
    "read_asl_constants",
    "read_aslcontext",
    "load_m0",
    "M0_TYPES",
    "run_m0",
    "quantify_cbf",
    "mean_difference",
    "quantification_record",
    "cbf_qc",
]

#: Sidecar fields a single-delay pCASL run must give (BIDS ``*_asl.json``).
REQUIRED_FIELDS = (
    "ArterialSpinLabelingType",
    "PostLabelingDelay",
    "LabelingDuration",
    "M0Type",
    "BackgroundSuppression",
)

_VOLUME_TYPES = {"label", "control", "m0scan", "deltam", "cbf", "noRF"}

#: M0 types quantified here (BIDS ``M0Type``): a separate ``*_m0scan.nii.gz``, ``m0scan`` volumes inside the
#: series (listed in ``*_aslcontext.tsv``), or one value in the sidecar (``M0Estimate``).
M0_TYPES = ("Separate", "Included", "Estimate")

#: Longest plausible labelling duration or post-labelling delay (s); a larger value is taken for milliseconds.
_MAX_TIMING_S = 10.0


def _timing_seconds(sidecar: Path, field: str, value) -> float:
    """A timing field in seconds, refused when it cannot be seconds (ms written for s, or not positive)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{sidecar}: {field} is {value!r}, not a number; BIDS asks for seconds.") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{sidecar}: {field} is {value!r}; it must be a positive number of seconds.")
    if value > _MAX_TIMING_S:
        raise ValueError(
            f"{sidecar}: {field} is {value:g}, which as seconds is longer than any pCASL timing "
            f"(at most {_MAX_TIMING_S:g} s); it looks like milliseconds; BIDS asks for seconds "
            f"(write {value / 1000:g} if it is {value:g} ms)."
        )
    return value


def read_asl_constants(sidecar: str | Path, background_pulse_efficiency: float = 0.95, **defaults) -> AslConstants:
    """Quantification constants from a BIDS ``*_asl.json`` sidecar.

    Parameters
    ----------
    sidecar : path
    background_pulse_efficiency : float
        η_BS per suppression pulse (not a BIDS field).
    **defaults
        ``labeling_efficiency``, ``blood_brain_partition``, ``t1_blood``:
        values used when the sidecar does not give them (``LabelingEfficiency``
        is the only one BIDS defines).

    Raises
    ------
    FileNotFoundError
        If the sidecar is missing.
    ValueError
        If a required field is missing, the labelling is not pCASL, the
        post-labelling delay is not one number (multi-delay runs need another
        model), or background suppression is on without its number of pulses.
    """
    sidecar = Path(sidecar)
    meta = read_json(sidecar, "ASL sidecar")
    missing = [f for f in REQUIRED_FIELDS if f not in meta]
    if missing:
        raise ValueError(
            f"{sidecar}: the ASL sidecar lacks {missing}; add them (BIDS perf specification) before quantifying CBF."
        )
    if str(meta["ArterialSpinLabelingType"]).upper() != "PCASL":
        raise ValueError(
            f"{sidecar}: ArterialSpinLabelingType is {meta['ArterialSpinLabelingType']!r}; only "
            "single-delay PCASL is quantified here."
        )
    pld = meta["PostLabelingDelay"]
    if isinstance(pld, (list, tuple)):
        values = set(_timing_seconds(sidecar, "PostLabelingDelay", v) for v in pld)
        if len(values) != 1:
            raise ValueError(
                f"{sidecar}: PostLabelingDelay has several values {sorted(values)}; multi-delay "
                "ASL needs a kinetic model fit, not the single-delay equation."
            )
        pld = values.pop()
    pld = _timing_seconds(sidecar, "PostLabelingDelay", pld)
    labeling_duration = _timing_seconds(sidecar, "LabelingDuration", meta["LabelingDuration"])
    n_pulses = 0
    if meta["BackgroundSuppression"]:
        if "BackgroundSuppressionNumberPulses" not in meta:
            raise ValueError(
                f"{sidecar}: BackgroundSuppression is true but BackgroundSuppressionNumberPulses is "
                "missing; add it so that the loss of label can be corrected."
            )
        n_pulses = int(meta["BackgroundSuppressionNumberPulses"])
    if "LabelingEfficiency" in meta:
        defaults["labeling_efficiency"] = float(meta["LabelingEfficiency"])
    return AslConstants(
        post_labeling_delay=float(pld),
        labeling_duration=labeling_duration,
        n_background_pulses=n_pulses,
        background_pulse_efficiency=background_pulse_efficiency,
        **defaults,
    )


def read_aslcontext(path: str | Path, n_volumes: int) -> pd.Series:
    """Volume types of an ASL run (``*_aslcontext.tsv``), checked against its number of volumes.

    Raises
    ------
    FileNotFoundError, ValueError
        Naming the file: missing, no ``volume_type`` column, unknown types, or
        a length that does not match the run.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ASL context file not found: {path}; every *_asl.nii.gz needs its *_aslcontext.tsv.")
    table = pd.read_csv(path, sep="\t")
    if "volume_type" not in table:
        raise ValueError(f"{path}: no 'volume_type' column (columns: {list(table.columns)}).")
    types = table["volume_type"].astype(str)
    unknown = sorted(set(types) - _VOLUME_TYPES)
    if unknown:
        raise ValueError(f"{path}: unknown volume types {unknown}; BIDS allows {sorted(_VOLUME_TYPES)}.")
    if len(types) != n_volumes:
        raise ValueError(
            f"{path} lists {len(types)} volumes but the ASL run has {n_volumes}; they must match one to one."
        )
    return types.reset_index(drop=True)


def load_m0(path: str | Path, asl_img) -> np.ndarray:
    """The M0 scan of an ASL run as a 3-D array, checked to be on the run's grid.

    Parameters
    ----------
    path : path
        ``*_m0scan.nii.gz`` (3-D, or 4-D with repeats that are averaged).
    asl_img : nibabel image
        The ASL run (4-D); its first three dimensions and affine are the grid.

    Raises
    ------
    FileNotFoundError, ValueError
        Naming the file: missing, or another shape or affine than the ASL run.
    """

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"M0 scan not found: {path}; M0Type 'Separate' needs a *_m0scan.nii.gz.")
    img = read_nifti(path)
    grid = tuple(asl_img.shape[:3])
    if tuple(img.shape[:3]) != grid or not np.allclose(img.affine, asl_img.affine, atol=1e-3):
        raise ValueError(
            f"{path} has shape {img.shape[:3]} and another affine than its ASL run {grid}; resample "
            "the M0 scan to the ASL grid first."
        )
    data = np.asarray(img.dataobj, dtype=float)
    return data.mean(axis=3) if data.ndim == 4 else data


def run_m0(sidecar: str | Path, asl_img, volume_types: pd.Series, m0_path: str | Path | None = None):
    """The M0 of an ASL run by its sidecar's ``M0Type``, as a 3-D array on the run's grid.

    Parameters
    ----------
    sidecar : path
        ``*_asl.json``.
    asl_img : nibabel image
        The ASL run (4-D).
    volume_types : pandas.Series of str, length n_volumes
        From :func:`read_aslcontext`.
    m0_path : path, optional
        ``*_m0scan.nii.gz``, needed for ``M0Type`` ``Separate``.

    Returns
    -------
    m0 : ndarray, shape (nx, ny, nz)
        ``Separate``: the M0 scan (:func:`load_m0`); ``Included``: the mean of
        the series' ``m0scan`` volumes; ``Estimate``: ``M0Estimate`` in every
        voxel.

    Raises
    ------
    ValueError
        Naming the file: an M0Type not in :data:`M0_TYPES` (``Absent`` included:
        CBF in ml/100 g/min needs an M0), ``Included`` without ``m0scan``
        volumes, ``Estimate`` without a positive ``M0Estimate``.
    """
    sidecar = Path(sidecar)
    meta = read_json(sidecar, "ASL sidecar")
    m0_type = meta.get("M0Type")
    if m0_type == "Separate":
        if not m0_path:
            raise FileNotFoundError(
                f"{sidecar}: M0Type is 'Separate' but the run has no *_m0scan.nii.gz; add it next to the run."
            )
        return load_m0(m0_path, asl_img)
    if m0_type == "Included":
        selected = np.flatnonzero(np.asarray(volume_types) == "m0scan")
        if selected.size == 0:
            raise ValueError(
                f"{sidecar}: M0Type is 'Included' but the run's aslcontext.tsv lists no m0scan volume; mark "
                "the M0 volumes as m0scan, or set M0Type to what the run has."
            )
        return np.asarray(asl_img.dataobj, dtype=np.float32)[..., selected].astype(float).mean(axis=3)
    if m0_type == "Estimate":
        value = meta.get("M0Estimate")
        try:
            value = float(value)
        except (TypeError, ValueError):
            value = np.nan
        if not (np.isfinite(value) and value > 0):
            raise ValueError(
                f"{sidecar}: M0Type is 'Estimate' but M0Estimate is {meta.get('M0Estimate')!r}; give one "
                "positive M0 value (on the scale of the ASL series)."
            )
        return np.full(asl_img.shape[:3], value)
    raise ValueError(
        f"{sidecar}: M0Type is {m0_type!r}; CBF is quantified with M0Type {list(M0_TYPES)} (an M0 scan, M0 "
        "volumes in the series, or an M0Estimate). Without an M0 the CBF of ml/100 g/min cannot be computed."
    )


def mean_difference(series: np.ndarray, volume_types: pd.Series) -> np.ndarray:
    """Mean control - label difference ΔM of an ASL series.

    Parameters
    ----------
    series : ndarray, shape (n_volumes, n_voxels)
    volume_types : pandas.Series of str, length n_volumes

    Returns
    -------
    delta_m : ndarray, shape (n_voxels,)
        Mean of the control volumes minus mean of the label volumes (with
        ``deltam`` volumes, their mean instead).
    """
    series = np.asarray(series, dtype=float)
    types = np.asarray(volume_types)
    if series.shape[0] != types.size:
        raise ValueError(f"{series.shape[0]} volumes but {types.size} volume types.")
    if (types == "deltam").any():
        return series[types == "deltam"].mean(axis=0)
    n_label, n_control = int((types == "label").sum()), int((types == "control").sum())
    if n_label == 0 or n_control == 0 or n_label != n_control:
        raise ValueError(f"Need as many label as control volumes (and at least one), got {n_label} and {n_control}.")
    return series[types == "control"].mean(axis=0) - series[types == "label"].mean(axis=0)


def quantify_cbf(delta_m: np.ndarray, m0: np.ndarray, constants: AslConstants) -> np.ndarray:
    """CBF (ml/100 g/min) from ΔM and M0 by the single-compartment model (white paper eq. 1).

    Parameters
    ----------
    delta_m : ndarray, shape (n_voxels,)
        Control - label.
    m0 : ndarray, shape (n_voxels,)
        Equilibrium magnetisation of tissue (same scale as ``delta_m``).
    constants : AslConstants

    Returns
    -------
    cbf : ndarray, shape (n_voxels,)

    Raises
    ------
    ValueError
        If shapes differ or an M0 value is not positive (a zero M0 would give an
        infinite CBF; mask such voxels out first).
    """
    delta_m = np.asarray(delta_m, dtype=float)
    m0 = np.asarray(m0, dtype=float)
    if delta_m.shape != m0.shape:
        raise ValueError(f"ΔM has shape {delta_m.shape} but M0 has {m0.shape}; they must be on the same voxels.")
    bad = ~(np.isfinite(m0) & (m0 > 0))
    if bad.any():
        raise ValueError(
            f"M0 is zero, negative or not finite in {int(bad.sum())} voxel(s); restrict the mask to "
            "voxels with signal before quantifying."
        )
    c = constants
    scale = (
        6000.0
        * c.blood_brain_partition
        * np.exp(c.post_labeling_delay / c.t1_blood)
        / (2.0 * c.effective_efficiency * c.t1_blood * (1.0 - np.exp(-c.labeling_duration / c.t1_blood)))
    )
    return scale * delta_m / m0


def quantification_record(constants: AslConstants) -> dict:
    """What a CBF map was computed with: the equation, every constant and its unit."""
    return {
        "model": "single-compartment pCASL, white paper (Alsop et al. 2015) eq. 1",
        "equation": "CBF = 6000 * lambda * dM * exp(PLD / T1b) / (2 * alpha_eff * T1b * M0 * (1 - exp(-tau / T1b)))",
        "units": {"CBF": "ml/100 g/min", "PLD": "s", "tau": "s", "T1b": "s", "lambda": "ml/g"},
        "constants": {**asdict(constants), "effective_efficiency": constants.effective_efficiency},
    }


def cbf_qc(cbf: np.ndarray, gm_probability: np.ndarray, wm_probability: np.ndarray, threshold: float = 0.7) -> dict:
    """Quality of one CBF map: mean grey- and white-matter CBF, their ratio, negative grey-matter voxels.

    Parameters
    ----------
    cbf, gm_probability, wm_probability : ndarray, shape (n_voxels,)
    threshold : float
        Tissue probability above which a voxel counts as grey / white matter.

    Returns
    -------
    qc : dict
        ``mean_gm_cbf, mean_wm_cbf, gm_wm_ratio, pct_negative_gm, n_gm, n_wm``.
    """
    cbf = np.asarray(cbf, dtype=float)
    gm = np.asarray(gm_probability) > threshold
    wm = np.asarray(wm_probability) > threshold
    if not gm.any() or not wm.any():
        raise ValueError(
            f"No voxel with grey- or white-matter probability above {threshold}; check the tissue "
            "maps are on the CBF map's grid."
        )
    mean_gm, mean_wm = float(cbf[gm].mean()), float(cbf[wm].mean())
    return {
        "mean_gm_cbf": mean_gm,
        "mean_wm_cbf": mean_wm,
        "gm_wm_ratio": mean_gm / mean_wm if mean_wm != 0 else np.nan,
        "pct_negative_gm": float(100 * (cbf[gm] < 0).mean()),
        "n_gm": int(gm.sum()),
        "n_wm": int(wm.sum()),
    }
