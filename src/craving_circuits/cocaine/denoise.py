"""Confound strategies and the cleaning of resting-state signals.

Data conventions
----------------
* Signals are ``(n_volumes, n_series)`` arrays, time on axis 0 (nilearn's
  convention); a run's voxel data are ``(n_volumes, n_voxels)``.
* Confounds come from fMRIPrep's ``desc-confounds_timeseries.tsv`` (fMRIPrep
  1.x: ``desc-confounds_regressors.tsv``) through
  :func:`nilearn.interfaces.fmriprep.load_confounds`; which columns are used is
  set by a :class:`Strategy`. The non-steady-state volumes fMRIPrep flags are
  dropped under every strategy (``none`` included), as nilearn drops them.

How cleaning is done
--------------------
For one run, :func:`nilearn.signal.clean` (detrending, Butterworth filtering of
signals and confounds, interpolation and censoring of high-motion volumes,
confound regression) is *linear* in the signals: every voxel's time series is
mapped through the same ``(n_kept, n_volumes)`` matrix. :func:`cleaning_matrix`
obtains that matrix by letting nilearn clean the identity matrix; cleaning all
voxels is then one matrix product. The result equals nilearn's voxel-by-voxel
output (the tests check it) at a fraction of the cost: nilearn's in-place
Butterworth filter loops over voxels. Standardisation, the only non-linear
step, is left out; correlations do not depend on it.
"""

from __future__ import annotations

import copy
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from nilearn.interfaces.fmriprep import load_confounds
from nilearn.interfaces.fmriprep.load_confounds_strategy import preset_strategies
from nilearn.signal import clean as nilearn_clean

from craving_circuits.io.bids import sibling_files
from craving_circuits.io.files import read_tsv

__all__ = [
    "CONFOUND_SETS",
    "Strategy",
    "parse_strategy",
    "load_run_confounds",
    "cleaning_matrix",
    "clean",
    "confounds_summary",
    "motion_summary",
]

#: Confound sets: nilearn's preset denoising strategies, plus ``none``.
CONFOUND_SETS = {
    "none": "No confound regression (detrending and filtering only).",
    "simple": "24 motion parameters and the mean WM and CSF signals (nilearn 'simple').",
    "scrubbing": "24 motion parameters, WM and CSF signals with derivatives and squares, and removal of "
    "volumes with FD > 0.5 mm or standardised DVARS > 1.5 plus segments shorter than 5 volumes "
    "(nilearn 'scrubbing', after Power et al. 2014).",
    "compcor": "24 motion parameters and anatomical CompCor components of the combined WM+CSF mask "
    "(nilearn 'compcor', after Behzadi et al. 2007).",
    "conn": "12 motion parameters (6 and their derivatives), 5 WM and 5 CSF anatomical CompCor components, "
    "and removal of volumes with FD > 0.5 mm or standardised DVARS > 1.5 (close to the CONN toolbox's "
    "default denoising).",
}

#: load_confounds arguments of the confound sets that are not nilearn presets.
_EXTRA_SETS = {
    "conn": {
        "strategy": ("motion", "compcor", "high_pass", "scrub"),
        "motion": "derivatives",
        "compcor": "anat_separated",
        "n_compcor": 5,
        "scrub": 5,
        "fd_threshold": 0.5,
        "std_dvars_threshold": 1.5,
        "demean": True,
    },
}


@dataclass(frozen=True)
class Strategy:
    """A denoising strategy: confound set, global signal regression and band-pass.

    Parameters
    ----------
    confounds : str
        One of :data:`CONFOUND_SETS`.
    global_signal : bool
        Also regress out the global signal (GSR).
    high_pass, low_pass : float or None
        Butterworth band edges in Hz (None: no filtering on that side).
    """

    confounds: str = "conn"
    global_signal: bool = False
    high_pass: float | None = 0.008
    low_pass: float | None = 0.09

    def __post_init__(self):
        if self.confounds not in CONFOUND_SETS:
            raise ValueError(
                f"Unknown confound strategy {self.confounds!r}; choose one of: {', '.join(CONFOUND_SETS)} "
                f"(optionally with '+gsr')."
            )
        if self.high_pass is not None and self.low_pass is not None and self.high_pass >= self.low_pass:
            raise ValueError(
                f"The band-pass high_pass ({self.high_pass} Hz) must be below low_pass ({self.low_pass} Hz)."
            )

    @property
    def name(self) -> str:
        """Short label, e.g. ``scrubbing+gsr 0.01-0.08 Hz``."""
        band = f"{self.high_pass or 0:g}-{self.low_pass or 'inf'} Hz"
        return f"{self.confounds}{'+gsr' if self.global_signal else ''} {band}"

    def describe(self) -> str:
        """One sentence for the book."""
        text = CONFOUND_SETS[self.confounds]
        if self.global_signal:
            text += " Global signal regressed out."
        if self.high_pass or self.low_pass:
            text += f" Butterworth band-pass {self.high_pass or 0:g}-{self.low_pass or 'inf'} Hz."
        return text

    def load_confounds_kwargs(self) -> dict | None:
        """Keyword arguments of :func:`nilearn.interfaces.fmriprep.load_confounds`, or None."""

        if self.confounds == "none":
            if not self.global_signal:
                return None
            return {"strategy": ("global_signal",), "global_signal": "basic", "demean": True}
        # nilearn's preset, cosine drift regressors included (CompCor needs them; with a
        # Butterworth high-pass they are redundant but harmless)
        kwargs = copy.deepcopy({**preset_strategies, **_EXTRA_SETS}[self.confounds])
        strategy = list(kwargs["strategy"])
        if self.global_signal:
            strategy.append("global_signal")
            kwargs["global_signal"] = "basic"
        else:
            kwargs.pop("global_signal", None)
        kwargs["strategy"] = tuple(strategy)
        return kwargs


def parse_strategy(text: str, band_pass=(0.008, 0.09)) -> Strategy:
    """Strategy from a label such as ``"scrubbing"`` or ``"compcor+gsr"``.

    Parameters
    ----------
    text : str
        A confound set, optionally followed by ``+gsr``.
    band_pass : (float or None, float or None)
        High-pass and low-pass edges in Hz.
    """
    if isinstance(text, Strategy):
        return text
    parts = str(text).strip().lower().split("+")
    extras = set(parts[1:])
    if extras - {"gsr"}:
        raise ValueError(f"Unknown strategy modifier(s) {sorted(extras - {'gsr'})} in {text!r}; only '+gsr' exists.")
    high, low = band_pass
    return Strategy(confounds=parts[0], global_signal="gsr" in extras, high_pass=high, low_pass=low)


def load_run_confounds(
    bold_path: str | Path, strategy: Strategy
) -> tuple[np.ndarray | None, np.ndarray | None, list[str]]:
    """Confound regressors and kept volumes of one run under ``strategy``.

    Parameters
    ----------
    bold_path : path
        fMRIPrep ``desc-preproc_bold.nii.gz``; its confounds TSV and JSON must sit
        beside it.

    Returns
    -------
    confounds : ndarray, shape (n_volumes, n_confounds), or None
    sample_mask : ndarray of int, shape (n_kept,), or None
        Indices of the volumes kept after scrubbing (None: all kept).
    names : list of str
        Confound column names.

    Raises
    ------
    FileNotFoundError
        If the confounds file is missing (strategy ``none`` needs none).
    ValueError
        If the table lacks a column the strategy needs; the message names the
        BOLD file, the confounds file and nilearn's list of what is missing.
    """

    kwargs = strategy.load_confounds_kwargs()
    # no regressors: only the non-steady-state volumes fMRIPrep flags are dropped, as nilearn
    # drops them under every strategy; without an fMRIPrep confounds file there is nothing to drop
    no_regressors = kwargs is None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=DeprecationWarning)
            if no_regressors:
                warnings.filterwarnings("ignore", message="strategy is empty", category=UserWarning)
                confounds, sample_mask = load_confounds(str(bold_path), strategy=(), demean=True)
            else:
                confounds, sample_mask = load_confounds(str(bold_path), **kwargs)
    except KeyError as err:  # nilearn reads some columns (FD, DVARS for scrubbing) without a check
        raise ValueError(
            f"Cannot read the confounds of {bold_path} from {_confounds_file(bold_path)} for the "
            f"{strategy.confounds!r} strategy: it lacks the column(s) {err.args[0]}. Use a strategy the table "
            f"supports, or rerun fMRIPrep."
        ) from err
    except ValueError as err:
        if no_regressors:  # no fMRIPrep confounds beside the file: no volume to drop, nothing to regress
            return None, None, []
        if "Could not find associated confound file" in str(err):
            expected = str(bold_path).split("_space-")[0] + "_desc-confounds_timeseries.tsv"
            raise FileNotFoundError(
                f"No confounds file for {bold_path}: expected {expected} (or fMRIPrep 1.x's "
                f"_desc-confounds_regressors.tsv). Copy it from the fMRIPrep output, or exclude the run."
            ) from err
        raise ValueError(
            f"Cannot read the confounds of {bold_path} from {_confounds_file(bold_path)} for the "
            f"{strategy.confounds!r} strategy: {_missing_columns(str(err))}. Use a strategy the table "
            f"supports, or rerun fMRIPrep."
        ) from err
    if confounds is None:
        return None, sample_mask, []
    names = list(confounds.columns)
    return confounds.to_numpy(dtype=float), sample_mask, names


#: The columns of an fMRIPrep confounds table that each component of a load_confounds strategy reads.
_COMPONENT_COLUMNS = {
    "motion": "trans_x, trans_y, trans_z, rot_x, rot_y, rot_z and their _derivative1/_power2 expansions",
    "wm_csf": "white_matter, csf and their _derivative1/_power2 expansions",
    "global_signal": "global_signal and its _derivative1/_power2 expansions",
    "compcor": "a_comp_cor_NN (fMRIPrep 20.2+: also c_comp_cor_NN, w_comp_cor_NN) with their Mask and "
    "CumulativeVarianceExplained in the JSON sidecar",
    "high_pass": "cosineNN",
    "scrub": "framewise_displacement, std_dvars",
    "non_steady_state": "non_steady_state_outlierNN",
}


def _missing_columns(message: str) -> str:
    """nilearn's "keywords or parameters are missing" message, with the columns each one needs."""
    found = re.search(r"missing:\s*\[(.*?)\]\s*\[(.*?)\]", message)
    if found is None:
        return message
    columns, components = ([x.strip(" '\"") for x in group.split(",") if x.strip()] for group in found.groups())
    parts = [f"it lacks the column(s) {', '.join(columns)}"] if columns else []
    parts += [f"it has no {c} columns ({_COMPONENT_COLUMNS.get(c, c)})" for c in components]
    return "; ".join(parts) if parts else message


def _confounds_file(bold_path: str | Path) -> Path | str:
    """The confounds table that goes with a BOLD file (for messages)."""
    try:
        return sibling_files(bold_path).confounds
    except ValueError:
        return "its confounds table"


def cleaning_matrix(
    n_volumes: int,
    t_r: float,
    strategy: Strategy,
    confounds: np.ndarray | None = None,
    sample_mask: np.ndarray | None = None,
) -> np.ndarray:
    """The linear map that :func:`nilearn.signal.clean` applies to every voxel of a run.

    Parameters
    ----------
    n_volumes : int
    t_r : float
        Repetition time in seconds.
    strategy : Strategy
    confounds : ndarray, shape (n_volumes, n_confounds), optional
    sample_mask : ndarray of int, shape (n_kept,), optional

    Returns
    -------
    matrix : ndarray, shape (n_kept, n_volumes)
        ``matrix @ signals`` equals ``nilearn.signal.clean(signals, ...,
        standardize=False)`` for any ``signals`` of shape ``(n_volumes, n)``.

    Raises
    ------
    ValueError
        If the run is too short for the band-pass filter (scipy's ``filtfilt``
        pads a band-pass of order 5 by 33 volumes).
    """
    filtering = strategy.high_pass is not None or strategy.low_pass is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)

        try:
            matrix = nilearn_clean(
                np.eye(n_volumes),
                detrend=True,
                standardize=None,
                confounds=confounds,
                sample_mask=sample_mask,
                filter="butterworth" if filtering else False,
                high_pass=strategy.high_pass,
                low_pass=strategy.low_pass,
                t_r=t_r,
                butterworth__copy=True,  # filter all columns at once
            )
        except ValueError as err:
            if "padlen" not in str(err):
                raise
            raise ValueError(
                f"A run of {n_volumes} volumes is too short for the Butterworth filter of {strategy.name} "
                f"(scipy: {err}); filter on one side only (high_pass or low_pass None), or leave the run out."
            ) from err
    return np.asarray(matrix)


def clean(signals: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a cleaning matrix to signals.

    The product is computed in float64: raw BOLD intensities (around 1000) lose
    too many digits in float32 in voxels whose signal the confounds explain
    almost entirely.

    Parameters
    ----------
    signals : ndarray, shape (n_volumes, n_series)
    matrix : ndarray, shape (n_kept, n_volumes)
        From :func:`cleaning_matrix`.

    Returns
    -------
    cleaned : ndarray of float64, shape (n_kept, n_series)
    """
    if signals.shape[0] != matrix.shape[1]:
        raise ValueError(f"Signals have {signals.shape[0]} volumes but the cleaning matrix expects {matrix.shape[1]}.")
    return matrix @ np.asarray(signals, dtype=np.float64)


def confounds_summary(names: list[str]) -> pd.Series:
    """Counts of confound regressors by family (motion, wm_csf, compcor, ...)."""
    families = {
        "motion": ("trans_", "rot_"),
        "wm_csf": ("white_matter", "csf"),
        "global_signal": ("global_signal",),
        "compcor": ("a_comp_cor", "c_comp_cor", "w_comp_cor", "t_comp_cor"),
        "cosine": ("cosine",),
    }
    counts = {k: sum(n.startswith(p) for n in names) for k, p in families.items()}
    return pd.Series(counts)


def motion_summary(runs: pd.DataFrame, fd_threshold: float = 0.5) -> pd.DataFrame:
    """Head-motion summary of each run from its confounds file.

    Parameters
    ----------
    runs : pandas.DataFrame
        With ``confounds`` (path) and identifying columns.
    fd_threshold : float
        Framewise displacement (mm) above which a volume counts as high-motion.

    Returns
    -------
    summary : pandas.DataFrame
        The identifying columns of ``runs`` plus ``mean_fd``, ``max_fd`` and
        ``n_high_motion``.
    """

    rows = []
    ident = [c for c in ("participant_id", "group", "session_id", "drug", "state") if c in runs.columns]
    for run in runs.to_dict("records"):
        fd = read_tsv(run["confounds"], "confounds file", usecols=["framewise_displacement"])
        fd = fd["framewise_displacement"].to_numpy(dtype=float)
        rows.append(
            {
                **{k: run[k] for k in ident},
                "mean_fd": float(np.nanmean(fd)),
                "max_fd": float(np.nanmax(fd)),
                "n_high_motion": int(np.sum(np.nan_to_num(fd) > fd_threshold)),
            }
        )
    return pd.DataFrame(rows)
