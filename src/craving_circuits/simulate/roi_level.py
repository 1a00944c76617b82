"""The two simulated studies at ROI level, for Monte Carlo calibration of the tests.

A full simulated study writes every voxel of every run and takes minutes; the
calibration chapter needs hundreds of studies. These functions draw the same
participants, planted effects, ratings and spectra as the image simulators
(:mod:`craving_circuits.simulate.cocaine`, :mod:`craving_circuits.simulate.baclofen`:
the very same functions and seeds), and replace only the images and their
first level by what the analyses extract from them:

* **cocaine**: for each run, the NAcc, dlPFC and midline-thalamus sources are
  drawn with the run's planted correlations by the image simulator's
  :func:`~craving_circuits.simulate.signals.correlated_sources`; each ROI signal
  adds band-limited noise of SD ``roi_noise`` (relative to its source, one per
  ROI), which dilutes the correlations as the planted regions' partial overlap
  with the ROIs and the noise in the voxels do, and the seed-target Fisher z,
  computed with the first level's own functions, gets a further run-level
  error of SD ``run_noise_z`` (one per target: what denoising costs in degrees
  of freedom, scrubbing and residual artefacts). These constants are not set
  by hand: :mod:`craving_circuits.verdict.twin` measures them on an
  image-level study run through the seed chapter's first level with its
  default denoising (the dilution of each target's coupling, and the spread
  the twin's own series leave unexplained), and stores them with the hash of
  the code they come from in ``simulate/data/cocaine_twin.json``
  (:func:`cocaine_twin_constants`), which the twin reads by default.
  The image simulator's state-dependent
  nuisance (global signal and cardiac/respiratory noise that grow after the cue
  film, spikes and a distance-dependent signal after abrupt movements, more in
  CUD and after the cue film) enters as one series shared by a run's three ROI
  signals, whose SD follows the run's state and motion scale
  (:func:`shared_nuisance_sd`) times ``nuisance_leak``, the share that
  denoising leaves; it raises a run's couplings the more, the more nuisance
  the run has. The share is derived like the other constants: the image
  pipeline's run couplings are regressed (within sessions) on the planted
  coupling and on each run's full-size nuisance variance, and the share is the
  one at which the twin's own couplings rise with that variance as the image
  pipeline's do (0 when they do not rise at all).
  The design parameters of the threats (the share of CUD who take NAC first,
  habituation, the spread of the rises) act through the image simulator's own
  participants and runs tables, which the twin uses.
* **baclofen**: each session's right-dlPFC CBF is the analysis ROI's mean of the
  image simulator's model (baseline scaled by global CBF, smooth regional
  variation, the planted rise times the rise footprint, thermal noise of the
  quantified map), adjusted for global CBF by subtraction as
  :func:`craving_circuits.baclofen.perfusion.region_values` does; each run's cue effect
  in an ROI is the planted response times the ROI's mean cue footprint, times
  the share of it that the ROI's GLM recovers (``cue_gain``), plus the GLM's
  estimation noise (``cue_noise_sd``, % signal). Both are measured on an
  image-level study run through the cue chapter's first level
  (:func:`craving_circuits.verdict.twin.derive_baclofen_cue`: the slope of the
  ROI estimates on footprint times planted response, and the spread of the
  residuals) and stored in ``simulate/data/baclofen_twin.json``
  (:func:`baclofen_twin_constants`). What the twin leaves out: the image simulator makes its
  pCASL images with Buxton's kinetic model, so the image pipeline's quantified
  dlPFC CBF is about 20 % below the truth (0.80 of it on the ``paper`` study,
  SD 0.04 between runs), while the twin's CBF is the truth plus noise; the bias
  scales a participant's rise and its spread alike, so the tests' statistics
  change little, but the twin's CBF estimates are in true units. One gain and
  one noise serve both cue ROIs (the derivation also reports each ROI's own).

The constants of the baclofen ROI model (ROI means of the footprints and of the
baseline, the SD of the regional variation averaged over the ROI) come from the
image simulator's own maps, once, by :func:`baclofen_roi_model`. The footprints
are the planted regions of :mod:`craving_circuits.simulate.regions`, which the
analysis ROIs overlap only in part; their ROI means are averaged over the
participants' anatomical jitter, so each participant's share of the planted
rise is the average share (the ROI-level twin does not vary it).

Stacked replicates
------------------
:func:`cocaine_roi_studies` and :func:`baclofen_roi_studies` simulate many
studies (one per parameter set, e.g. one per seed) into one set of tables with
a ``replicate`` column in front (:data:`~craving_circuits.io.schemas.REPLICATE`),
which the chapters' chains analyse all at once. Replicate ``i`` is exactly the
study that :func:`cocaine_roi_study` or :func:`baclofen_roi_study` returns for
``params[i]``: the image simulators' participants, ratings and spectra are drawn
per study (with their own seeds) by the functions that return their columns as
arrays (:func:`craving_circuits.simulate.cocaine.participant_columns` and its
siblings; every row of a study at once), within a study the runs' ROI signals and
their Fisher z are computed for all runs at once, and the tables of all replicates
are built once, from the replicates' columns one after the other.

Data conventions
----------------
The functions return the tables that the chapters read from the files of a
simulated study, with the same columns: ``roi`` in the long format of
:data:`craving_circuits.io.schemas.ROI_COLUMNS` (strategy ``"roi-level"``),
``participants`` (observed columns only), ``ratings``, ``mrs``; for baclofen,
``cbf`` (``region, participant_id, group, session_id, cbf``), ``cue``
(``participant_id, group, session_id, roi, value``), ``ratings`` and
``participants``.

Shared with the analysis
------------------------
* :func:`craving_circuits.stats.correlation.correlate_columns` and
  :func:`craving_circuits.stats.correlation.fisher_z`: the ROI-level twin stands
  in for the first level, whose output is the Fisher z of the seed-target
  correlation of a run; it computes that statistic from simulated ROI series
  with the same function (all runs of a study at once), so its tables have the
  first level's scale.
* From :mod:`craving_circuits.io` (allowed to every simulator): the atlas ROIs
  and the table schemas. The cocaine twin's ROI signals stand for the ROI means
  of the image simulator, whose sources lie in planted regions that the ROIs
  overlap only in part; ``roi_noise`` carries that dilution along with the
  noise. The baclofen twin takes the ROI means of the planted footprints from
  the image simulator's maps.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from craving_circuits.io.atlas import brain_mask, roi_masks
from craving_circuits.io.schemas import REPLICATE, ROI_COLUMNS
from craving_circuits.simulate.baclofen import (
    CUE_ROIS,
    OBSERVED_COLUMNS,
    SESSIONS,
    BaclofenStudyParams,
    _Maps,
    cue_responses,
    global_scales,
    t2_spreads,
)
from craving_circuits.simulate.baclofen import (
    participant_columns as baclofen_participant_columns,
)
from craving_circuits.simulate.baclofen import (
    rating_columns as baclofen_rating_columns,
)
from craving_circuits.simulate.cocaine import (
    OBSERVED_PARTICIPANT_COLUMNS,
    SOURCES,
    CocaineStudyParams,
    mrs_columns,
    participant_columns,
    rating_columns,
    run_columns,
    source_correlation,
)
from craving_circuits.simulate.signals import band_limited_noise, source_cholesky
from craving_circuits.stats.correlation import correlate_columns, fisher_z

__all__ = [
    "ROI_LEVEL_STRATEGY",
    "COCAINE_TWIN_FILE",
    "BACLOFEN_TWIN_FILE",
    "cocaine_twin_constants",
    "baclofen_twin_constants",
    "cocaine_roi_study",
    "cocaine_roi_studies",
    "BaclofenRoiModel",
    "baclofen_roi_model",
    "baclofen_roi_study",
    "baclofen_roi_studies",
    "thermal_cbf_sd",
    "run_correlations",
    "shared_nuisance_sd",
    "motion_nuisance_variance",
]

#: The ``strategy`` label of ROI-level couplings.
ROI_LEVEL_STRATEGY = "roi-level"

_TARGETS = ("dlpfc", "thalamus_midline")
_ROIS = ("nacc", *_TARGETS)

#: The cocaine twin's constants, derived by :mod:`craving_circuits.verdict.twin`.
COCAINE_TWIN_FILE = Path(__file__).parent / "data" / "cocaine_twin.json"

#: The baclofen twin's cue constants, derived by :mod:`craving_circuits.verdict.twin`.
BACLOFEN_TWIN_FILE = Path(__file__).parent / "data" / "baclofen_twin.json"


@lru_cache(maxsize=2)
def _constants(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found; derive the twin's constants with `python -m craving_circuits.verdict.twin`."
        )
    return json.loads(path.read_text())


def cocaine_twin_constants() -> dict:
    """The cocaine twin's derived constants (``roi_noise`` per ROI, ``run_noise_z`` per target, how they were
    measured, and the hash of the code they come from), from :data:`COCAINE_TWIN_FILE`."""
    return _constants(COCAINE_TWIN_FILE)


def baclofen_twin_constants() -> dict:
    """The baclofen twin's derived cue constants (``cue_gain``, ``cue_noise_sd``, how they were measured, and the
    hash of the code they come from), from :data:`BACLOFEN_TWIN_FILE`."""
    return _constants(BACLOFEN_TWIN_FILE)


def run_correlations(fc_nacc_dlpfc: np.ndarray, fc_nacc_thalamus: np.ndarray) -> np.ndarray:
    """Population correlations of the NAcc, dlPFC and midline-thalamus sources of many runs.

    The rows and columns ``("nacc", "dlpfc", "thalamus_midline")`` of
    :func:`craving_circuits.simulate.cocaine.source_correlation`, for arrays of
    planted couplings: the NAcc correlates with a source at ``r_j = tanh(z_j)``,
    and two other sources at ``sqrt(1 - r_j^2) p_jk sqrt(1 - r_k^2) + r_j r_k``,
    with ``p_jk`` their partial correlation given the NAcc (read from
    ``source_correlation`` at zero coupling, where the entry is ``p_jk``).

    Parameters
    ----------
    fc_nacc_dlpfc, fc_nacc_thalamus : ndarray, shape (n_runs,)
        Fisher z of the NAcc couplings.

    Returns
    -------
    corr : ndarray, shape (n_runs, 3, 3)
    """
    d, t = (SOURCES.index(name) for name in _TARGETS)
    partial = source_correlation(0.0, 0.0)[d, t]
    r = np.tanh(np.stack([np.asarray(fc_nacc_dlpfc, float), np.asarray(fc_nacc_thalamus, float)], axis=-1))
    scale = np.sqrt(1 - r**2)
    corr = np.broadcast_to(np.eye(3), r.shape[:-1] + (3, 3)).copy()
    corr[..., 0, 1:] = corr[..., 1:, 0] = r
    corr[..., 1, 2] = corr[..., 2, 1] = scale[..., 0] * partial * scale[..., 1] + r[..., 0] * r[..., 1]
    return corr


def _leak(nuisance_leak: float | None) -> float:
    """``nuisance_leak``, or (None) the derived constant; checked."""
    value = cocaine_twin_constants()["nuisance_leak"] if nuisance_leak is None else nuisance_leak
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"nuisance_leak must be a non-negative number, got {value}.")
    return float(value)


def shared_nuisance_sd(params: CocaineStudyParams, runs: pd.DataFrame, nuisance_leak: float) -> np.ndarray:
    """SD, relative to the sources, of the nuisance that the ROI signals of each run share after denoising.

    The image simulator's nuisance that reaches the grey matter of every ROI
    alike: the global signal (``global_sd``, times ``global_craving_factor``
    in the craving state), the cardiac and respiratory fluctuations
    (``cardioresp_sd``, times ``physio_craving_factor`` in the craving state)
    and the spikes and the signal shared by nearby voxels after abrupt
    movements (:func:`motion_nuisance_variance`, larger in CUD and in the
    craving state through the run's motion scale). Their variances add, and
    the SD is taken over ``source_sd``; ``nuisance_leak`` is the share of that
    SD that denoising leaves (0: removed entirely; 1: no denoising).

    Parameters
    ----------
    params : CocaineStudyParams
    runs : pandas.DataFrame or mapping of arrays
        From :func:`craving_circuits.simulate.cocaine.simulate_runs_table`, or its columns
        (:func:`~craving_circuits.simulate.cocaine.run_columns`).
    nuisance_leak : float

    Returns
    -------
    sd : ndarray, shape (n_runs,)
    """
    craving = np.asarray(runs["state"]) == "craving"
    glob = params.global_sd * np.where(craving, params.global_craving_factor, 1.0)
    physio = params.cardioresp_sd * np.where(craving, params.physio_craving_factor, 1.0)
    motion = motion_nuisance_variance(params, np.asarray(runs["motion_scale"], dtype=float))
    return nuisance_leak * np.sqrt(glob**2 + physio**2 + motion) / params.source_sd


@lru_cache(maxsize=16)
def _excess_moments(threshold_mm: float, n_draws: int) -> tuple[float, float]:
    """Second and fourth moments of a jump's framewise displacement over ``threshold_mm`` (fixed seed)."""
    jumps = np.abs(np.random.default_rng(0).standard_normal((n_draws, 6))) * 0.5
    excess = np.clip(jumps.sum(axis=1) - threshold_mm, 0.0, None)
    return float(np.mean(excess**2)), float(np.mean(excess**4))


def motion_nuisance_variance(params: CocaineStudyParams, motion_scale, n_draws: int = 20_000) -> np.ndarray:
    """Mean variance (%^2 per volume) of the spike and distance artefacts of a run, at their full size.

    Abrupt movements come at the rate ``motion_spikes * motion_scale`` per
    run, and half of them return (a second jump); each jump's framewise
    displacement is that of :func:`~craving_circuits.simulate.signals.random_motion`'s
    jumps (SD 0.5 mm per axis, rotations alike at 50 mm), its moments over
    the spike threshold drawn once with a fixed seed. A jump adds
    ``spike_pct_per_mm2**2 * E[excess**4]`` (spikes, with their tail) and
    ``distance_artifact_pct_per_mm**2 * E[excess**2]`` (the shared signal at its
    focus, with its decay) to the run's summed squares.

    Parameters
    ----------
    params : CocaineStudyParams
    motion_scale : array
        The runs' motion scales.

    Returns
    -------
    variance : ndarray, the shape of ``motion_scale``
    """
    second, fourth = _excess_moments(float(params.spike_fd_threshold_mm), int(n_draws))
    tail, decay = (1.0, 0.6, 0.3), (1.0, 0.7, 0.5, 0.35)  # spike_artifact's and distance_artifact's defaults
    per_jump = params.spike_pct_per_mm2**2 * fourth * np.sum(np.square(tail))
    per_jump += params.distance_artifact_pct_per_mm**2 * second * np.sum(np.square(decay))
    jumps_per_run = 1.5 * params.motion_spikes * np.asarray(motion_scale, dtype=float)
    return jumps_per_run * per_jump / params.n_volumes


def _noise_vectors(roi_noise, run_noise_z) -> tuple[np.ndarray, np.ndarray]:
    """``roi_noise`` per ROI (nacc, dlpfc, thalamus) and ``run_noise_z`` per target, from numbers, mappings, or
    (None) the derived constants."""
    constants = cocaine_twin_constants() if roi_noise is None or run_noise_z is None else {}
    out = []
    for name, value, keys in (("roi_noise", roi_noise, _ROIS), ("run_noise_z", run_noise_z, _TARGETS)):
        value = constants[name] if value is None else value
        vector = np.array([value[k] for k in keys] if isinstance(value, Mapping) else [value] * len(keys), float)
        if not np.all(np.isfinite(vector)) or np.any(vector < 0):
            raise ValueError(f"{name} must be non-negative numbers, got {value}.")
        out.append(vector)
    return out[0], out[1]


def cocaine_roi_study(
    params: CocaineStudyParams,
    roi_noise=None,
    run_noise_z=None,
    nuisance_leak: float | None = None,
) -> dict[str, pd.DataFrame]:
    """One simulated cocaine study at ROI level.

    Parameters
    ----------
    params : CocaineStudyParams
        As for the image simulator (its ``seed`` seeds every draw).
    roi_noise : float, mapping or None
        SD of the noise of each ROI signal, relative to its source: one for
        all, or per ROI (``nacc``, ``dlpfc``, ``thalamus_midline``); None: the
        derived constants (:func:`cocaine_twin_constants`).
    run_noise_z : float, mapping or None
        SD of the run-level error added to each Fisher z: one for both, or per
        target; None: the derived constants.
    nuisance_leak : float or None
        Share of the state-dependent nuisance left after denoising
        (:func:`shared_nuisance_sd`); it is added to the three ROI signals of a
        run alike, so it raises every coupling more in runs with more of it.
        None: the derived constant.

    Returns
    -------
    tables : dict
        ``roi`` (4 runs x 2 targets per participant), ``participants``,
        ``ratings`` (with ``group``, as :func:`craving_circuits.cocaine.layout.read_craving_ratings`
        returns them), ``mrs``.
    """
    roi_noise, run_noise_z = _noise_vectors(roi_noise, run_noise_z)
    nuisance_leak = _leak(nuisance_leak)
    participants = participant_columns(params)
    runs = run_columns(participants, params)
    noise = _run_noise(params, len(runs["participant_id"]), run_noise_z)
    return _frames(_cocaine_columns(params, participants, runs, roi_noise, noise, nuisance_leak), _COCAINE_ORDER)


def _run_noise(params: CocaineStudyParams, n_runs: int, run_noise_z: np.ndarray) -> tuple[np.ndarray, ...]:
    """The band-limited series of every run, the run-level errors of the Fisher z and each run's shared
    nuisance series: a function of the seed and the design only (not of the planted effects)."""
    rng = np.random.default_rng([params.seed, 31])
    series = band_limited_noise(rng, params.n_volumes, 6 * n_runs, params.repetition_time)  # one filtering call
    errors = run_noise_z * rng.standard_normal((n_runs, 2))
    shared = band_limited_noise(
        np.random.default_rng([params.seed, 32]), params.n_volumes, n_runs, params.repetition_time
    )
    return series, errors, shared


#: The column order of each table of a cocaine study.
_COCAINE_ORDER = {"roi": ROI_COLUMNS, "participants": OBSERVED_PARTICIPANT_COLUMNS}


def _cocaine_columns(
    params: CocaineStudyParams,
    participants: Mapping,
    runs: Mapping,
    roi_noise: np.ndarray,
    noise: tuple[np.ndarray, ...],
    nuisance_leak: float = 0.0,
) -> dict[str, dict[str, np.ndarray]]:
    """The tables of :func:`cocaine_roi_study` as columns, from its participants, runs and :func:`_run_noise`."""
    series, errors, shared = noise
    n_t, n_runs = params.n_volumes, len(runs["participant_id"])
    corr = run_correlations(runs["fc_nacc_dlpfc"], runs["fc_nacc_thalamus"])
    chol = source_cholesky(corr)
    blocks = series.reshape(n_t, n_runs, 6)  # run i's six series, as the image simulator's columns 6i..6i+5
    # each run's sources mixed by its Cholesky factor (correlated_sources), plus each ROI's noise
    signals = np.einsum("trk,rjk->trj", blocks[..., :3], chol) + roi_noise * blocks[..., 3:]
    if nuisance_leak > 0:  # the nuisance left after denoising, shared by the run's three ROI signals
        signals += (shared * shared_nuisance_sd(params, runs, nuisance_leak))[..., None]
    z = fisher_z(correlate_columns(signals[..., 0], signals[..., 1:])) + errors  # (n_runs, 2)
    n_targets = len(_TARGETS)
    roi = {
        **{c: np.repeat(runs[c], n_targets) for c in ("participant_id", "group", "session_id", "drug", "state")},
        "strategy": np.full(n_runs * n_targets, ROI_LEVEL_STRATEGY, dtype=object),
        "seed": np.full(n_runs * n_targets, "nacc", dtype=object),
        "target": np.tile(np.array(_TARGETS, dtype=object), n_runs),
        "fisher_z": z.ravel(),
    }
    ratings = rating_columns(participants, params)
    per_rating = len(ratings["participant_id"]) // max(len(participants["participant_id"]), 1)
    return {
        "roi": roi,
        "participants": {c: participants[c] for c in OBSERVED_PARTICIPANT_COLUMNS},
        "ratings": {**ratings, "group": np.repeat(participants["group"], per_rating)},
        "mrs": mrs_columns(participants, params),
    }


def _frames(columns: dict[str, dict[str, np.ndarray]], order: dict) -> dict[str, pd.DataFrame]:
    """Tables from :func:`_cocaine_columns`' columns, in the column order of ``order`` where it has one."""
    return {name: pd.DataFrame(cols, columns=order.get(name)) for name, cols in columns.items()}


def _stack_columns(studies: list[dict], replicates, order: dict) -> dict[str, pd.DataFrame]:
    """The tables of several studies given as columns, one under the other, with their replicate labels in
    front: one table per name, built once."""
    out = {}
    for name in studies[0]:
        parts = [study[name] for study in studies]
        lengths = [len(next(iter(p.values()))) for p in parts]
        columns = {REPLICATE: np.repeat(np.asarray(replicates), lengths)}
        columns.update({c: np.concatenate([p[c] for p in parts]) for c in parts[0]})
        out[name] = pd.DataFrame(columns, columns=[REPLICATE, *order[name]] if name in order else None)
    return out


def _labels(n: int, replicates) -> np.ndarray:
    labels = np.arange(n) if replicates is None else np.asarray(replicates)
    if len(labels) != n or len(np.unique(labels)) != n:
        raise ValueError(f"Give {n} distinct replicate labels, one per parameter set; got {len(labels)}.")
    return labels


def cocaine_roi_studies(
    params,
    roi_noise=None,
    run_noise_z=None,
    replicates=None,
    nuisance_leak: float | None = None,
) -> dict[str, pd.DataFrame]:
    """Several simulated cocaine studies at ROI level, stacked (see the module docstring).

    Parameters
    ----------
    params : sequence of CocaineStudyParams
        One per replicate (e.g. the same preset with seeds ``seed + i``).
        The runs' band-limited noise depends on the seed and the design only,
        so consecutive parameter sets that share them (the same seed under
        several planted effects) draw it once.
    roi_noise, run_noise_z, nuisance_leak : float, mapping or None
        As in :func:`cocaine_roi_study`.
    replicates : array, optional
        The replicates' labels (default ``0, 1, ...``).

    Returns
    -------
    tables : dict
        The tables of :func:`cocaine_roi_study`, each with a ``replicate``
        column in front; the rows of replicate ``i`` are those of
        ``cocaine_roi_study(params[i])``.
    """
    params = list(params)
    labels = _labels(len(params), replicates)
    roi_noise, run_noise_z = _noise_vectors(roi_noise, run_noise_z)
    nuisance_leak = _leak(nuisance_leak)
    studies, shared = [], None
    for p in params:
        participants = participant_columns(p)
        runs = run_columns(participants, p)
        n_runs = len(runs["participant_id"])
        key = (p.seed, p.n_volumes, p.repetition_time, n_runs)
        if shared is None or shared[0] != key:  # consecutive studies of one seed and design share their noise
            shared = (key, _run_noise(p, n_runs, run_noise_z))
        studies.append(_cocaine_columns(p, participants, runs, roi_noise, shared[1], nuisance_leak))
    return _stack_columns(studies, labels, _COCAINE_ORDER)


@dataclass(frozen=True)
class BaclofenRoiModel:
    """Constants of the ROI-level baclofen study, from the image simulator's maps.

    Attributes
    ----------
    dlpfc_base : float
        Mean baseline CBF in the right-dlPFC analysis ROI (ml/100 g/min).
    dlpfc_weight : float
        Mean of the planted-rise footprint in that ROI, averaged over the
        participants' anatomical jitter (the rise reaches the ROI mean
        multiplied by it).
    gm_base : float
        Mean baseline CBF of grey matter (the global CBF).
    regional_sd : float
        SD of the ROI mean of the smooth regional CBF variation of a session.
    thermal_sd : float
        SD of the ROI mean of the thermal noise of a quantified CBF map.
    cue_weights : dict
        Mean cue footprint in each cue ROI, averaged over the jitter.
    """

    dlpfc_base: float
    dlpfc_weight: float
    gm_base: float
    regional_sd: float
    thermal_sd: float
    cue_weights: dict


def thermal_cbf_sd(params: BaclofenStudyParams, m0: np.ndarray) -> np.ndarray:
    """SD of a voxel's quantified CBF (ml/100 g/min) that the thermal noise of its pCASL run leaves.

    The noise of the control - label mean over the pairs, quantified like the
    signal (the white paper's factor over the voxel's M0).

    Parameters
    ----------
    params : BaclofenStudyParams
    m0 : ndarray, shape (n_voxels,)
        The voxels' M0 (``_Maps.m0``).

    Returns
    -------
    sd : ndarray, shape (n_voxels,)
    """
    c = params.asl_constants
    sd_delta_m = np.sqrt(2.0 / params.n_asl_pairs) * params.asl_noise_pct / 100 * params.m0_scale
    per_unit = (
        6000
        * c.blood_brain_partition
        * np.exp(c.post_labeling_delay / c.t1_blood)
        / (2 * c.effective_efficiency * c.t1_blood * (1 - np.exp(-c.labeling_duration / c.t1_blood)))
    )
    return per_unit * sd_delta_m / np.asarray(m0, dtype=float)


def baclofen_roi_model(params: BaclofenStudyParams, n_draws: int = 200, rng=0, n_jitter: int = 100) -> BaclofenRoiModel:
    """Derive the ROI-level constants from the image simulator's maps (once per geometry).

    Parameters
    ----------
    params : BaclofenStudyParams
    n_draws : int
        Draws of the smooth regional variation used to estimate its ROI-mean SD.
    rng : numpy Generator, int or None
    n_jitter : int
        Participants (indices ``0 .. n_jitter - 1`` of the image simulator's
        jitter under ``params.seed``) over which the footprints' ROI means are
        averaged.

    Returns
    -------
    model : BaclofenRoiModel
    """

    rng = np.random.default_rng(rng)
    maps = _Maps(params)
    mask_img = brain_mask(params.voxel_size_mm)
    mask = np.asarray(mask_img.dataobj) > 0
    rois = {name: roi[mask] for name, roi in roi_masks(["dlpfc_right", *CUE_ROIS], mask_img).items()}
    dlpfc = rois["dlpfc_right"]
    # the footprints' ROI means, one participant's maps at a time: [dlPFC, *cue ROIs]
    shares = np.array(
        [
            [own.dlpfc[dlpfc].mean(), *(own.cue[rois[name]].mean() for name in CUE_ROIS)]
            for own in map(maps.participant, range(int(n_jitter)))
        ]
    ).mean(axis=0)
    gm = maps.geometry.gm
    # as true_cbf draws it: the first volume of a 16-volume sample
    regional = np.array([maps.geometry.noise.sample(rng, 16)[0] for _ in range(n_draws)]) * params.cbf_regional_sd * gm
    voxel_sd = thermal_cbf_sd(params, maps.m0[dlpfc])
    return BaclofenRoiModel(
        dlpfc_base=float(maps.cbf_base[dlpfc].mean()),
        dlpfc_weight=float(shares[0]),
        gm_base=float(np.average(maps.cbf_base, weights=gm)),
        regional_sd=float(regional[:, dlpfc].mean(axis=1).std(ddof=1)),
        thermal_sd=float(np.sqrt((voxel_sd**2).sum()) / dlpfc.sum()),
        cue_weights={name: float(share) for name, share in zip(CUE_ROIS, shares[1:])},
    )


def baclofen_roi_study(
    params: BaclofenStudyParams,
    model: BaclofenRoiModel,
    cue_gain: float | None = None,
    cue_noise_sd: float | None = None,
) -> dict[str, pd.DataFrame]:
    """One simulated baclofen study at ROI level.

    Parameters
    ----------
    params : BaclofenStudyParams
    model : BaclofenRoiModel
        From :func:`baclofen_roi_model` for the same geometry.
    cue_gain : float or None
        Share of the footprint-weighted response that the ROI's GLM estimate
        recovers; None: the derived constant (:func:`baclofen_twin_constants`).
    cue_noise_sd : float or None
        SD of a run's ROI cue-effect estimate (% signal); None: the derived constant.

    Returns
    -------
    tables : dict
        ``cbf`` (right-dlPFC CBF per participant and session, adjusted for
        global CBF), ``cbf_unadjusted`` (the same without the adjustment, with
        the session's global CBF in ``global_cbf``), ``cue`` (cue effect per
        run and ROI), ``ratings``, ``participants``.
    """
    cue_gain = baclofen_twin_constants()["cue_gain"] if cue_gain is None else cue_gain
    cue_noise_sd = baclofen_twin_constants()["cue_noise_sd"] if cue_noise_sd is None else cue_noise_sd
    if not np.isfinite(cue_noise_sd) or cue_noise_sd < 0:
        raise ValueError(f"cue_noise_sd must be a non-negative number, got {cue_noise_sd}.")
    return _frames(_baclofen_columns(params, model, cue_gain, cue_noise_sd), _BACLOFEN_ORDER)


#: The column order of each table of a baclofen study.
_BACLOFEN_ORDER = {"participants": OBSERVED_COLUMNS}


def _baclofen_columns(
    params: BaclofenStudyParams, model: BaclofenRoiModel, cue_gain: float | None, cue_noise_sd: float | None
) -> dict[str, dict[str, np.ndarray]]:
    """The tables of :func:`baclofen_roi_study` as columns (every participant and session at once)."""
    cue_gain = baclofen_twin_constants()["cue_gain"] if cue_gain is None else cue_gain
    cue_noise_sd = baclofen_twin_constants()["cue_noise_sd"] if cue_noise_sd is None else cue_noise_sd
    if not np.isfinite(cue_noise_sd) or cue_noise_sd < 0:
        raise ValueError(f"cue_noise_sd must be a non-negative number, got {cue_noise_sd}.")
    participants = baclofen_participant_columns(params)
    n_s, n_roi = len(SESSIONS), len(CUE_ROIS)
    group = np.asarray(participants["group"])[:, None]
    session = np.array(SESSIONS)[None, :]
    # each session's global fluctuation, regional and thermal CBF noise, and its cue noise per ROI
    z = np.random.default_rng([params.seed, 32]).standard_normal((len(group), n_s, 3 + n_roi))
    scale = global_scales(
        participants["cbf_global"][:, None], group, session, params.cbf_session_sd * z[..., 0], params
    ).ravel()
    spread = t2_spreads(group, session, params)  # as true_cbf widens the regional variation
    regional = (spread * model.regional_sd * z[..., 1]).ravel()
    thermal = model.thermal_sd * z[..., 2].ravel()
    cue_noise = cue_noise_sd * z[..., 3:].reshape(-1, n_roi)
    amp = cue_responses(
        participants["cue_response"][:, None], participants["dlpfc_rise"][:, None], group, session, params
    ).ravel()
    rise = np.outer(participants["dlpfc_rise"], [0.0, model.dlpfc_weight]).ravel()  # at ses-T2
    ids = {
        "participant_id": np.repeat(participants["participant_id"], n_s),
        "group": np.repeat(participants["group"], n_s),
        "session_id": np.tile(np.array(SESSIONS, dtype=object), len(group)),
    }
    value = model.dlpfc_base * scale + regional + rise + thermal
    g = model.gm_base * scale
    region = np.full(len(value), "dlpfc_right", dtype=object)
    weights = np.array([model.cue_weights[roi] for roi in CUE_ROIS])
    return {
        "cbf": {"region": region, **ids, "cbf": value - (g - g.mean())},  # as region_values with global_cbf
        "cbf_unadjusted": {"region": region, **ids, "cbf": value, "global_cbf": g},
        "cue": {
            **{k: np.repeat(v, n_roi) for k, v in ids.items()},
            "roi": np.tile(np.array(CUE_ROIS, dtype=object), len(amp)),
            "value": (cue_gain * weights[None, :] * amp[:, None] + cue_noise).ravel(),
        },
        "ratings": baclofen_rating_columns(participants, params),
        "participants": {c: participants[c] for c in OBSERVED_COLUMNS},
    }


def baclofen_roi_studies(
    params, model: BaclofenRoiModel, cue_gain: float | None = None, cue_noise_sd: float | None = None, replicates=None
) -> dict[str, pd.DataFrame]:
    """Several simulated baclofen studies at ROI level, stacked (see the module docstring).

    Parameters
    ----------
    params : sequence of BaclofenStudyParams
        One per replicate.
    model, cue_gain, cue_noise_sd
        As in :func:`baclofen_roi_study`.
    replicates : array, optional
        The replicates' labels (default ``0, 1, ...``).

    Returns
    -------
    tables : dict
        The tables of :func:`baclofen_roi_study`, each with a ``replicate``
        column in front; the rows of replicate ``i`` are those of
        ``baclofen_roi_study(params[i], model)``.
    """
    params = list(params)
    labels = _labels(len(params), replicates)
    return _stack_columns(
        [_baclofen_columns(p, model, cue_gain, cue_noise_sd) for p in params], labels, _BACLOFEN_ORDER
    )
