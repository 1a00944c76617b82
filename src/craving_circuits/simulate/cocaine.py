"""A simulated cocaine-craving study with planted ground truth.

Design (after Engeli et al., 2023): people with cocaine use disorder (CUD) and
controls take part in two drug sessions, N-acetylcysteine (NAC) and placebo, in
counterbalanced order. In each session one resting-state run follows a neutral
film (non-craving state) and one follows a cocaine-cue film (craving state);
nucleus accumbens (NAcc) glutamate is measured by MRS in both states.

Generative model of a run (percent signal change, then scaled to intensities)
--------------------------------------------------------------------------------
* Six band-limited (0.01-0.1 Hz) regional sources (NAcc, dlPFC, midline
  thalamus, insula, vmPFC, posterior cingulate) with a run-specific
  correlation matrix; each source loads on a planted region of its own
  (:mod:`craving_circuits.simulate.regions`: a grey-matter-weighted Gaussian
  blob around typical literature coordinates, shifted in each participant by
  an anatomical jitter), which the analysis ROI of the same name overlaps
  only in part.
* The NAcc-dlPFC and NAcc-thalamus source couplings (Fisher z) carry a
  participant random intercept and, in CUD during craving, the planted rises.
  The thalamic rise grows with a latent *craving reactivity* ``u`` that also
  drives the NAcc glutamate rise, the OCDUS obsessive-thinking score, cocaine
  use and the craving rating; the dlPFC rise varies independently of ``u``.
  NAC changes the rises by ``nac_effect`` (0 by default). The rises (and the
  craving rating's) habituate: in the second session they are smaller by the
  share ``habituation`` whatever the drug, a period effect that the drug
  contrasts must not mistake for a drug effect.
* Nuisance: a global signal; white-matter and CSF fluctuations weighted by
  tissue probability; cardiac and respiratory fluctuations that reach the
  grey matter next to the ventricles and the large vessels; spatially smooth
  AR(1) noise; white noise; linear and quadratic drift; head motion (random
  walk plus abrupt movements, more in CUD and in the craving state) that leaks
  into the signal through the image gradient (linear in the motion), through
  spin-history signal drops after each movement, through spikes at
  high-displacement volumes (a drop that grows with the square of the
  displacement over a threshold, patterned by the image gradient along the
  movement) and through a signal shared by nearby voxels after each abrupt
  movement (a distance-dependent artefact); the motion estimates carry an
  estimation error. Arousal: after the cue film the global signal and the
  physiological fluctuations are larger (``global_craving_factor``,
  ``physio_craving_factor``). None of the spikes, the distance-dependent
  signal or the physiology is a function of the motion estimates: an analysis
  that regresses out motion parameters and mean tissue signals alone keeps
  part of them, which is larger in the craving state.
* Threat conditions (:data:`THREATS`): named presets, each a null for some
  claims with one threat to them present (state-dependent motion and
  physiology, habituation with an unbalanced drug order, unequal group
  variances, an NAC effect at the equivalence bound).

Everything random is drawn from generators seeded by ``seed`` and the run's
indices (the anatomical jitter by ``seed`` and the participant's index), so any
run can be regenerated on its own and in any order.

Shared with the analysis
------------------------
Nothing from the analysis layers. From :mod:`craving_circuits.io`: the BIDS
naming (the simulator writes the files the analysis finds), the MNI brain mask
and tissue probabilities. The sources are named after the analysis ROIs they
stand for (:data:`SOURCES`), but their footprints are the planted regions of
:mod:`craving_circuits.simulate.regions`, defined apart from the atlas ROIs:
the ROIs overlap them only in part (Dice well below 1), as a ROI overlaps an
effect in real data. From :mod:`craving_circuits.stats.equivalence`:
:data:`~craving_circuits.stats.equivalence.DRUG_SESOI_DZ`, the NAC chapter's
equivalence bound, which the ``threat_nac_at_bound`` preset plants on purpose
(an effect exactly at the bound is the null of the equivalence test). The
analysis's confounds are computed from the simulated images
(:mod:`craving_circuits.simulate.fmriprep`), never from the planted nuisance
series.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from dataclasses import astuple, dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy import ndimage, optimize
from tqdm import tqdm

from craving_circuits import __version__
from craving_circuits.io.atlas import brain_mask, tissue_probabilities
from craving_circuits.io.bids import DEFAULT_STATE_TASKS, SPACE, run_files
from craving_circuits.io.files import (
    atomic_path,
    write_json,
    write_nifti,
    write_text,
    write_tsv,
)
from craving_circuits.simulate.fmriprep import compute_confounds
from craving_circuits.simulate.params import (
    check_range,
    claim_output_folder,
    params_to_dict,
    resolve_params,
)
from craving_circuits.simulate.regions import STUDY_REGIONS, PlantedFootprints, study_regions
from craving_circuits.simulate.signals import (
    SmoothNoiseField,
    band_limited_noise,
    correlated_sources,
    distance_artifact,
    fisher_z_sampling_sd,
    framewise_displacement,
    motion_loadings,
    random_motion,
    spike_artifact,
)
from craving_circuits.stats.equivalence import DRUG_SESOI_DZ

__all__ = [
    "CocaineStudyParams",
    "PRESETS",
    "THREATS",
    "nac_effect_at_bound",
    "rise_sd_for_spread_ratio",
    "SOURCES",
    "STATES",
    "DRUGS",
    "cocaine_params",
    "simulate_participants",
    "simulate_runs_table",
    "simulate_mrs",
    "simulate_craving_ratings",
    "participant_columns",
    "run_columns",
    "mrs_columns",
    "rating_columns",
    "planted_effects",
    "source_correlation",
    "simulate_cocaine_study",
    "run_content_key",
    "SIMULATOR_VERSION",
]


def _code_hash() -> str:
    """Hash of the simulator's source (this package and the atlas module): a change re-simulates."""

    here = Path(__file__).resolve().parent
    files = [
        here / name for name in ("__init__.py", "cocaine.py", "signals.py", "fmriprep.py", "params.py", "regions.py")
    ]
    files += [here.parent / "io" / name for name in ("atlas.py", "bids.py", "files.py")]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


SIMULATOR_VERSION = f"1+{_code_hash()}"
GENERATOR_NAME = "craving_circuits.simulate.cocaine"

#: The regional sources, named after the analysis ROIs they stand for; each loads on its planted
#: region (:data:`craving_circuits.simulate.regions.STUDY_REGIONS`), not on the ROI.
SOURCES = tuple(STUDY_REGIONS["cocaine"])
STATES = ("neutral", "craving")
DRUGS = ("placebo", "NAC")

#: Resting coupling of the NAcc source with every other source (Fisher z).
NACC_FC_Z = {"dlpfc": 0.15, "thalamus_midline": 0.15, "insula": 0.2, "vmpfc": 0.35, "pcc": 0.1}

#: Coupling among the other sources once the NAcc is accounted for (partial
#: correlations given the NAcc source, Fisher z), shared by every run.
PARTIAL_FC_Z = {
    ("dlpfc", "thalamus_midline"): 0.1,
    ("dlpfc", "insula"): 0.3,
    ("dlpfc", "vmpfc"): 0.0,
    ("dlpfc", "pcc"): -0.2,
    ("thalamus_midline", "insula"): 0.2,
    ("thalamus_midline", "vmpfc"): 0.1,
    ("thalamus_midline", "pcc"): 0.1,
    ("insula", "vmpfc"): 0.1,
    ("insula", "pcc"): -0.1,
    ("vmpfc", "pcc"): 0.5,
}

#: NAcc metabolites: (mean water-scaled concentration in i.u., between-participant sd,
#: CRLB % of a spectrum with SNR 14 and 8 Hz linewidth; for Glu the parameter
#: ``mrs_glu_crlb_pct`` replaces it).
METABOLITES = {
    "Glu": (8.5, 0.6, 8.0),
    "Gln": (3.0, 0.4, 18.0),
    "NAA": (9.5, 0.6, 3.0),
    "tCr": (7.0, 0.4, 3.0),
    "tCho": (1.7, 0.15, 5.0),
    "mI": (5.5, 0.5, 6.0),
    "GSH": (1.8, 0.2, 14.0),
}


#: SD of a CUD participant's cue-induced rating rise in one session beyond what craving
#: reactivity explains (VAS points).
RATING_RISE_NOISE_SD = 6.0

#: The ROI-level twin's measurement model (:mod:`craving_circuits.simulate.roi_level`): the SD of
#: each ROI signal's noise relative to its source, of the run-level error of each Fisher z, and the
#: share of the state-dependent nuisance SD that the book's default denoising leaves in the ROI signals.
ROI_LEVEL_MEASUREMENT = {"roi_noise": 0.3, "run_noise_z": 0.18, "nuisance_leak": 0.2}


def _p(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class CocaineStudyParams:
    """Every number of the simulated cocaine-craving study.

    Connectivity effects are on the Fisher-z scale of the correlation between
    the latent regional sources; what a seed analysis measures is smaller,
    because noise dilutes the sources in every voxel.
    """

    preset: str = _p("paper", "Name of the preset these parameters started from.")
    seed: int = _p(2023, "Seed of every random draw.")
    # sample
    n_cud: int = _p(18, "Participants with cocaine use disorder.")
    n_control: int = _p(23, "Healthy control participants.")
    # acquisition
    voxel_size_mm: int = _p(4, "Isotropic voxel size of the preprocessed BOLD (mm).")
    n_volumes: int = _p(150, "Volumes per resting-state run.")
    repetition_time: float = _p(2.0, "Repetition time (s).")
    # signal and noise, percent signal change
    source_sd: float = _p(2.0, "SD of each regional source at the peak of its planted region (%).")
    global_sd: float = _p(0.3, "SD of the global signal fluctuation (%).")
    physio_sd: float = _p(1.0, "SD of white-matter and CSF fluctuations in pure tissue (%).")
    smooth_noise_sd: float = _p(0.8, "SD of spatially smooth AR(1) noise (%).")
    smooth_noise_fwhm_mm: float = _p(8.0, "Smoothness (FWHM) of the smooth noise (mm).")
    noise_ar1: float = _p(0.4, "Lag-1 autocorrelation of the smooth noise.")
    white_noise_sd: float = _p(0.8, "SD of voxel-wise white noise (%).")
    drift_sd: float = _p(1.0, "SD of linear and quadratic drift across voxels (%).")
    # head motion
    motion_step_mm: float = _p(0.02, "SD of the per-volume head-motion step (mm).")
    motion_spikes: float = _p(1.5, "Expected abrupt head movements per run, typical participant.")
    motion_cud_factor: float = _p(1.3, "Head motion in CUD relative to controls.")
    motion_craving_factor: float = _p(1.5, "Head motion in the craving state relative to neutral.")
    motion_artifact_scale: float = _p(0.5, "Fraction of the image-gradient motion artefact left after realignment.")
    spin_history_pct_per_mm: float = _p(3.0, "Signal drop per mm of framewise displacement (%).")
    motion_error_mm: float = _p(
        0.005, "SD of the error of the motion estimates per volume (mm; rotations: as much at 50 mm)."
    )
    spike_fd_threshold_mm: float = _p(0.3, "Framewise displacement above which a volume gets a spike artefact (mm).")
    spike_pct_per_mm2: float = _p(
        0.5, "Mean signal drop of a spike per squared mm of framewise displacement above the threshold (%)."
    )
    distance_artifact_pct_per_mm: float = _p(
        1.0,
        "SD at its focus of the signal shared by nearby voxels after an abrupt movement, per mm of framewise "
        "displacement above the spike threshold (%).",
    )
    distance_artifact_mm: float = _p(30.0, "Spatial scale of the fall-off of that shared signal (mm).")
    # arousal: the cue film changes physiology
    global_craving_factor: float = _p(2.0, "SD of the global signal in the craving state relative to neutral.")
    cardioresp_sd: float = _p(
        1.5, "SD of cardiac and respiratory fluctuations next to the ventricles and vessels, grey matter included (%)."
    )
    physio_craving_factor: float = _p(
        2.0, "SD of white-matter, CSF, cardiac and respiratory fluctuations in the craving state relative to neutral."
    )
    # connectivity, Fisher z of source correlations
    fc_subject_sd: float = _p(0.1, "Between-participant SD of the resting NAcc couplings.")
    craving_nacc_dlpfc: float = _p(0.45, "Craving-state rise of NAcc-dlPFC coupling in CUD.")
    craving_nacc_thalamus: float = _p(0.7, "Craving-state rise of NAcc-midline thalamus coupling in CUD.")
    thalamus_reactivity_sd: float = _p(0.4, "SD of the thalamic rise across CUD explained by craving reactivity.")
    craving_fc_individual_sd: float = _p(0.1, "SD of both rises across CUD unrelated to anything measured.")
    control_craving_fc: float = _p(0.0, "Craving-state change of both couplings in controls.")
    nac_effect: float = _p(0.0, "Change of both craving rises under NAC in CUD (negative: NAC dampens).")
    nac_first_share_cud: float = _p(
        0.5, "Share of CUD participants who take NAC in the first session (controls stay balanced)."
    )
    habituation: float = _p(
        0.25,
        "Share by which the cue-induced rises (both couplings and the craving rating) are smaller in the "
        "second session than in the first, whatever the drug (0: none).",
    )
    # glutamate
    glu_craving_rise_pct: float = _p(5.0, "Mean craving-state rise of NAcc Glu in CUD (%).")
    glu_reactivity_pct: float = _p(15.0, "SD of the Glu rise across CUD explained by craving reactivity (%).")
    mrs_snr: float = _p(14.0, "Median SNR of the NAcc spectra.")
    mrs_glu_crlb_pct: float = _p(8.0, "Glu CRLB of a spectrum with the median SNR and an 8 Hz linewidth (%).")
    mrs_bad_shim_rate: float = _p(0.08, "Share of spectra with a poor shim (linewidth + 6 Hz).")
    # clinical measures
    ocdus_reactivity_r: float = _p(0.7, "Correlation of OCDUS obsessive thinking with craving reactivity (CUD).")
    use_reactivity_r: float = _p(0.6, "Correlation of log cocaine grams/week with craving reactivity (CUD).")
    craving_rating_rise: float = _p(25.0, "Mean cue-induced rise of the craving rating in CUD (VAS 0-100).")
    craving_rating_reactivity: float = _p(8.0, "SD of the rating rise explained by craving reactivity.")
    nac_rating_effect: float = _p(0.0, "Change of the rating rise under NAC in CUD (VAS points).")

    def __post_init__(self):
        for name in ("seed", "n_cud", "n_control", "voxel_size_mm", "n_volumes"):
            value = getattr(self, name)
            check_range(name, value, integer=True)
            object.__setattr__(self, name, int(value))  # 4.0 (e.g. from YAML) becomes 4
        check_range("n_cud", self.n_cud, 2, 10_000, integer=True)
        check_range("n_control", self.n_control, 2, 10_000, integer=True)
        check_range("voxel_size_mm", self.voxel_size_mm, 2, 12, integer=True)
        check_range("n_volumes", self.n_volumes, 30, 5000, integer=True)
        check_range("repetition_time", self.repetition_time, 0.3, 6.0)
        for name in (
            "source_sd",
            "global_sd",
            "physio_sd",
            "smooth_noise_sd",
            "white_noise_sd",
            "drift_sd",
            "motion_step_mm",
            "motion_spikes",
            "motion_artifact_scale",
            "spin_history_pct_per_mm",
            "motion_error_mm",
            "spike_fd_threshold_mm",
            "spike_pct_per_mm2",
            "distance_artifact_pct_per_mm",
            "cardioresp_sd",
            "fc_subject_sd",
            "thalamus_reactivity_sd",
            "craving_fc_individual_sd",
            "glu_reactivity_pct",
            "craving_rating_reactivity",
        ):
            check_range(name, getattr(self, name), 0.0)
        check_range("smooth_noise_fwhm_mm", self.smooth_noise_fwhm_mm, 0.1)
        check_range("noise_ar1", self.noise_ar1, 0.0, 0.95)
        check_range("habituation", self.habituation, 0.0, 1.0)
        check_range("nac_first_share_cud", self.nac_first_share_cud, 0.0, 1.0)
        check_range("motion_cud_factor", self.motion_cud_factor, 0.0)
        check_range("motion_craving_factor", self.motion_craving_factor, 0.0)
        check_range("global_craving_factor", self.global_craving_factor, 0.0)
        check_range("physio_craving_factor", self.physio_craving_factor, 0.0)
        check_range("distance_artifact_mm", self.distance_artifact_mm, 1.0)
        check_range("mrs_snr", self.mrs_snr, 1.0)
        check_range("mrs_glu_crlb_pct", self.mrs_glu_crlb_pct, 0.1, 100.0)
        check_range("mrs_bad_shim_rate", self.mrs_bad_shim_rate, 0.0, 1.0)
        check_range("ocdus_reactivity_r", self.ocdus_reactivity_r, -1.0, 1.0)
        check_range("use_reactivity_r", self.use_reactivity_r, -1.0, 1.0)

    @property
    def n_participants(self) -> int:
        return self.n_cud + self.n_control


_NULL = dict(
    craving_nacc_dlpfc=0.0,
    craving_nacc_thalamus=0.0,
    thalamus_reactivity_sd=0.0,
    control_craving_fc=0.0,
    nac_effect=0.0,
    glu_craving_rise_pct=0.0,
    glu_reactivity_pct=0.0,
    craving_rating_rise=0.0,
    craving_rating_reactivity=0.0,
    nac_rating_effect=0.0,
)
_TINY = dict(n_cud=8, n_control=6, voxel_size_mm=8, n_volumes=60, smooth_noise_fwhm_mm=12.0)


def _default(name: str):
    return CocaineStudyParams.__dataclass_fields__[name].default


def nac_effect_at_bound(
    sesoi_dz: float = DRUG_SESOI_DZ,
    n_volumes: int = _default("n_volumes"),
    repetition_time: float = _default("repetition_time"),
    roi_noise: float = ROI_LEVEL_MEASUREMENT["roi_noise"],
    run_noise_z: float = ROI_LEVEL_MEASUREMENT["run_noise_z"],
) -> dict[str, float]:
    """NAC effects (planted units) whose standardised size is the NAC chapter's equivalence bound.

    The chapter's bound is ``sesoi_dz`` SDs of a participant's double
    difference (NAC minus placebo of craving minus neutral), measured. For the
    couplings that SD is that of four runs' Fisher z, ``2 * sigma_run``, with
    ``sigma_run`` the run's sampling SD (:func:`~craving_circuits.simulate.signals.fisher_z_sampling_sd`)
    and the run-level error of the ROI-level twin combined; a planted shift
    ``delta`` of the source coupling moves the measured Fisher z by
    ``atanh(tanh(z0 + delta) / (1 + roi_noise**2)) - atanh(tanh(z0) / (1 + roi_noise**2))``
    (the ROI noise attenuates correlations), ``z0`` the resting coupling.
    ``delta`` is solved for a measured shift of ``-sesoi_dz * 2 * sigma_run``
    (NAC dampens the rise). For the rating the SD is that of the difference
    of two sessions' rises, ``sqrt(2) * RATING_RISE_NOISE_SD``.

    Returns
    -------
    effects : dict
        ``nac_effect`` (Fisher z of the sources) and ``nac_rating_effect``
        (VAS points), both negative.
    """
    sigma_run = np.hypot(fisher_z_sampling_sd(n_volumes, repetition_time), run_noise_z)
    target = -sesoi_dz * 2.0 * sigma_run
    z0 = _resting_coupling()
    gain = 1.0 + roi_noise**2

    def measured(delta):
        return np.arctanh(np.tanh(z0 + delta) / gain) - np.arctanh(np.tanh(z0) / gain) - target

    delta = optimize.brentq(measured, -3.0, 0.0)
    return {"nac_effect": float(delta), "nac_rating_effect": float(-sesoi_dz * np.sqrt(2) * RATING_RISE_NOISE_SD)}


def _resting_coupling() -> float:
    z0 = NACC_FC_Z["thalamus_midline"]
    if NACC_FC_Z["dlpfc"] != z0:
        raise ValueError("The threat presets assume one resting coupling for the dlPFC and the thalamus.")
    return z0


def rise_sd_for_spread_ratio(
    ratio: float = 2.0,
    n_volumes: int = _default("n_volumes"),
    repetition_time: float = _default("repetition_time"),
    habituation: float = _default("habituation"),
    roi_noise: float = ROI_LEVEL_MEASUREMENT["roi_noise"],
    run_noise_z: float = ROI_LEVEL_MEASUREMENT["run_noise_z"],
) -> float:
    """SD of the CUD craving rises (``craving_fc_individual_sd``) that makes the measured spread of CUD's state
    changes ``ratio`` times the controls'.

    A participant's state change (craving minus neutral, the mean of the two
    sessions) varies in controls by measurement alone, with SD ``sigma_run``
    (two runs' Fisher z over two sessions; see :func:`nac_effect_at_bound`). In
    CUD the rise adds its spread, scaled by the mean share kept over the two
    sessions (``1 - habituation / 2``) and by the slope of the measured Fisher z
    in the planted one at the resting coupling (the ROI noise attenuates it).

    Returns
    -------
    sd : float
    """
    if ratio < 1:
        raise ValueError(f"ratio must be at least 1, got {ratio}.")
    sigma_run = np.hypot(fisher_z_sampling_sd(n_volumes, repetition_time), run_noise_z)
    r0, gain = np.tanh(_resting_coupling()), 1.0 + roi_noise**2
    slope = (1 - r0**2) / gain / (1 - (r0 / gain) ** 2)
    return float(np.sqrt(ratio**2 - 1) * sigma_run / (slope * (1 - habituation / 2)))


_PAPER_RISES = {
    name: _default(name)
    for name in ("craving_nacc_dlpfc", "craving_nacc_thalamus", "thalamus_reactivity_sd", "craving_rating_rise")
}

#: Threat conditions: each a null for some claims with one threat to them present (see :data:`THREATS`).
_THREAT_PRESETS: dict[str, dict] = {
    "threat_state_motion": {
        **_NULL,
        "motion_cud_factor": 1.6,
        "motion_craving_factor": 2.5,
        "global_craving_factor": 3.0,
        "physio_craving_factor": 3.0,
    },
    "threat_habituation": {**_NULL, **_PAPER_RISES, "habituation": 0.5, "nac_first_share_cud": 0.75},
    "threat_unequal_variance": {**_NULL, "craving_fc_individual_sd": rise_sd_for_spread_ratio(2.0)},
    "threat_nac_at_bound": {**_NULL, **nac_effect_at_bound()},
}

#: Named parameter sets. ``paper`` has the published sample sizes; ``null`` is the
#: same study (same seed, same noise) with every planted effect set to zero;
#: ``tiny`` and ``tiny_null`` are small and coarse, for tests; the ``threat_*`` presets
#: are the threat conditions of :data:`THREATS`.
PRESETS: dict[str, dict] = {
    "paper": {},
    "null": dict(_NULL),
    "tiny": dict(_TINY),
    "tiny_null": {**_TINY, **_NULL},
    **_THREAT_PRESETS,
}

#: What each threat preset could fake: the ids of the claims (:func:`craving_circuits.verdict.claims.claims`)
#: whose tests it could mislead (each claim's planted effect is absent under it), and the threat in one
#: sentence. ``threat_nac_at_bound`` is not among them: an NAC effect at the bound is the claims of absence's
#: own error condition, which the calibration builds from the chapter's bound by simulation
#: (:func:`craving_circuits.verdict.calibration.equivalence_bounds`).
THREATS: dict[str, dict] = {
    "threat_state_motion": {
        "claims": ("craving_nacc_dlpfc", "craving_nacc_thalamus"),
        "threat": "Head motion, global signal and physiological noise grow after the cue film (more in CUD), "
        "with no change of coupling: weak denoising reads them as a craving rise.",
    },
    "threat_habituation": {
        "claims": ("nac_no_effect_dlpfc", "nac_no_effect_thalamus_midline", "nac_no_effect_rating"),
        "threat": "The craving rises are halved in the second session and three quarters of CUD take NAC "
        "first: a drug contrast that ignores the period credits NAC with the habituation.",
    },
    "threat_unequal_variance": {
        "claims": ("craving_nacc_dlpfc", "craving_nacc_thalamus"),
        "threat": "The craving change varies about twice as much between CUD participants as between controls, "
        "with a mean of zero in both groups: tests that pool the variances misstate the error of the "
        "group x state contrast.",
    },
}


def cocaine_params(preset: str = "paper", **overrides) -> CocaineStudyParams:
    """Parameters of a preset, with any field overridden by keyword.

    >>> cocaine_params("null", n_cud=10).craving_nacc_dlpfc
    0.0
    """
    return resolve_params(CocaineStudyParams, PRESETS, preset, overrides)


# --------------------------------------------------------------------------- participants


def _participant_ids(n: int) -> list[str]:
    width = max(2, len(str(n)))
    return [f"sub-{i + 1:0{width}d}" for i in range(n)]


def simulate_participants(params: CocaineStudyParams) -> pd.DataFrame:
    """Participants with their observed measures and latent (planted) variables.

    Returns
    -------
    participants : pandas.DataFrame, one row per participant
        Observed: ``participant_id, group, age, sex, drug_order,
        cocaine_g_per_week, ocdus_obsessive``. Latent (ground truth):
        ``craving_reactivity, motion_propensity, fc_offset_dlpfc,
        fc_offset_thalamus, rise_dlpfc, rise_thalamus, glu_baseline,
        glu_rise_pct``; ``rise_*`` are the participant's craving rises in Fisher z
        under placebo in the first session (the second session's are smaller by
        ``habituation``).
    """
    return pd.DataFrame(participant_columns(params))


def participant_columns(params: CocaineStudyParams) -> dict[str, np.ndarray]:
    """The columns of :func:`simulate_participants`, as arrays of shape (n_participants,).

    The table functions below take these columns (a mapping of arrays) or the table alike.
    """
    rng = np.random.default_rng([params.seed, 0])
    n = params.n_participants
    groups = np.array(["CUD"] * params.n_cud + ["control"] * params.n_control)
    rng.shuffle(groups)
    cud = groups == "CUD"
    order = np.empty(n, dtype=object)
    for g in ("CUD", "control"):
        idx = np.flatnonzero(groups == g)
        share = params.nac_first_share_cud if g == "CUD" else 0.5
        # NAC first for the odd positions, then the even ones, until the share is reached
        # (a share of one half alternates the orders)
        rank = np.argsort(np.arange(len(idx)) % 2 == 0, kind="stable")
        nac_first = np.zeros(len(idx), dtype=bool)
        nac_first[rank[: int(np.floor(share * len(idx) + 1e-9))]] = True
        order[idx] = np.where(nac_first, "NAC-placebo", "placebo-NAC")
    u = rng.standard_normal(n)
    e_ocd, e_use = rng.standard_normal(n), rng.standard_normal(n)
    r_o, r_u = params.ocdus_reactivity_r, params.use_reactivity_r
    ocdus = np.clip(np.rint(10 + 4 * (r_o * u + np.sqrt(1 - r_o**2) * e_ocd)), 0, 24)
    grams = np.round(np.exp(np.log(3.5) + 0.7 * (r_u * u + np.sqrt(1 - r_u**2) * e_use)), 1)
    motion = np.exp(rng.normal(0, 0.4, n)) * np.where(cud, params.motion_cud_factor, 1.0)
    indiv = rng.standard_normal((n, 2)) * params.craving_fc_individual_sd
    rise_dlpfc = np.where(cud, params.craving_nacc_dlpfc + indiv[:, 0], params.control_craving_fc)
    rise_thal = np.where(
        cud,
        params.craving_nacc_thalamus + params.thalamus_reactivity_sd * u + indiv[:, 1],
        params.control_craving_fc,
    )
    return {
        "participant_id": np.array(_participant_ids(n), dtype=object),
        "group": groups,
        "age": np.clip(np.rint(rng.normal(36, 8, n)), 20, 60).astype(int),
        "sex": np.where(rng.random(n) < np.where(cud, 0.8, 0.7), "M", "F"),
        "drug_order": order,
        "cocaine_g_per_week": np.where(cud, grams, 0.0),
        "ocdus_obsessive": np.where(cud, ocdus, np.nan),
        "craving_reactivity": np.where(cud, u, np.nan),
        "motion_propensity": motion,
        "fc_offset_dlpfc": rng.normal(0, params.fc_subject_sd, n),
        "fc_offset_thalamus": rng.normal(0, params.fc_subject_sd, n),
        "rise_dlpfc": rise_dlpfc,
        "rise_thalamus": rise_thal,
        "glu_baseline": rng.normal(*METABOLITES["Glu"][:2], n),
        "glu_rise_pct": np.where(cud, params.glu_craving_rise_pct + params.glu_reactivity_pct * u, 0.0),
    }


OBSERVED_PARTICIPANT_COLUMNS = [
    "participant_id",
    "group",
    "age",
    "sex",
    "drug_order",
    "cocaine_g_per_week",
    "ocdus_obsessive",
]


def _session_drugs(drug_order) -> np.ndarray:
    """The drug of each participant's two sessions, shape (n, 2), from ``drug_order`` ("NAC-placebo")."""
    return np.array([order.split("-") for order in drug_order], dtype=object).reshape(-1, 2)


def simulate_runs_table(participants: pd.DataFrame, params: CocaineStudyParams) -> pd.DataFrame:
    """One row per run with its planted source couplings.

    Returns
    -------
    runs : pandas.DataFrame
        ``participant_id, group, session_id, drug, state, task, run_key``
        (indices that seed the run), ``motion_scale`` and the planted Fisher z
        of ``fc_nacc_dlpfc`` and ``fc_nacc_thalamus``. Rows run over
        participants, then sessions, then :data:`STATES`.
    """
    return pd.DataFrame(run_columns(participants, params))


def run_columns(participants: pd.DataFrame, params: CocaineStudyParams) -> dict[str, np.ndarray]:
    """The columns of :func:`simulate_runs_table`, as arrays (all runs at once)."""
    n, n_s, n_c = len(participants["participant_id"]), 2, len(STATES)
    p_idx = np.repeat(np.arange(n), n_s * n_c)
    s_idx = np.tile(np.repeat(np.arange(n_s), n_c), n)
    c_idx = np.tile(np.arange(n_c), n * n_s)
    column = {c: np.asarray(participants[c]) for c in ("participant_id", "group")}
    drug = _session_drugs(participants["drug_order"])[p_idx, s_idx] if n else np.array([], dtype=object)
    craving = c_idx == STATES.index("craving")
    kept = 1.0 - params.habituation * s_idx  # the second session's rises are smaller
    shift = np.where((drug == "NAC") & (column["group"][p_idx] == "CUD"), params.nac_effect, 0.0)

    def coupling(base: float, offset: str, rise: str) -> np.ndarray:
        own = np.asarray(participants[offset], dtype=float)[p_idx]
        return base + own + craving * (kept * np.asarray(participants[rise], dtype=float)[p_idx] + shift)

    motion = np.asarray(participants["motion_propensity"], dtype=float)[p_idx]
    run_key = np.empty(len(p_idx), dtype=object)
    run_key[:] = list(zip(p_idx.tolist(), s_idx.tolist(), c_idx.tolist()))
    return {
        "participant_id": column["participant_id"][p_idx],
        "group": column["group"][p_idx],
        "session_id": np.array([f"ses-{k + 1}" for k in range(n_s)], dtype=object)[s_idx],
        "drug": drug,
        "state": np.array(STATES, dtype=object)[c_idx],
        "task": np.array([DEFAULT_STATE_TASKS[s] for s in STATES], dtype=object)[c_idx],
        "run_key": run_key,
        "motion_scale": motion * np.where(craving, params.motion_craving_factor, 1.0),
        "fc_nacc_dlpfc": coupling(NACC_FC_Z["dlpfc"], "fc_offset_dlpfc", "rise_dlpfc"),
        "fc_nacc_thalamus": coupling(NACC_FC_Z["thalamus_midline"], "fc_offset_thalamus", "rise_thalamus"),
    }


def simulate_mrs(participants: pd.DataFrame, params: CocaineStudyParams) -> pd.DataFrame:
    """NAcc MRS metabolite table in long format.

    Each spectrum (participant x session x state) gets an SNR and a linewidth;
    each metabolite's Cramer-Rao lower bound (CRLB) grows as SNR falls and the
    linewidth widens. The measured value scatters around the true one by the
    CRLB, and the reported CRLB is relative to the *measured* value, so low
    readings get high CRLBs (the reason CRLB filtering biases means upwards).

    Returns
    -------
    mrs : pandas.DataFrame
        ``participant_id, session_id, state, metabolite, value_tcr, value_water,
        crlb_percent, fwhm_hz, snr``; ``Glx`` is Glu + Gln. Rows run over
        participants, sessions, :data:`STATES`, then the metabolites of
        :data:`METABOLITES` and ``Glx``.
    """
    return pd.DataFrame(mrs_columns(participants, params))


def mrs_columns(participants: pd.DataFrame, params: CocaineStudyParams) -> dict[str, np.ndarray]:
    """The columns of :func:`simulate_mrs`, as arrays (every spectrum at once)."""
    rng = np.random.default_rng([params.seed, 2])
    names = list(METABOLITES)
    mean, sd, crlb_ref = (np.array(v, dtype=float) for v in zip(*METABOLITES.values()))
    crlb_ref[names.index("Glu")] = params.mrs_glu_crlb_pct
    glu, gln, tcr = (names.index(m) for m in ("Glu", "Gln", "tCr"))
    n, n_s, n_c = len(participants["participant_id"]), 2, len(STATES)
    shape = (n, n_s * n_c)  # a spectrum per session and state
    base = rng.normal(mean, sd, (n, len(names)))
    base[:, glu] = np.asarray(participants["glu_baseline"], dtype=float)
    snr = params.mrs_snr * np.exp(rng.normal(0, 0.3, shape))
    fwhm = 6.0 + rng.gamma(2.0, 1.0, shape) + 6.0 * (rng.random(shape) < params.mrs_bad_shim_rate)
    quality = (14.0 / snr) * np.sqrt(fwhm / 8.0)
    true = np.repeat(base[:, None, :], n_s * n_c, axis=1)  # (n, spectra, metabolites)
    craving = np.tile(np.arange(n_c) == STATES.index("craving"), n_s)
    rise = 1 + np.asarray(participants["glu_rise_pct"], dtype=float)[:, None] / 100.0
    true[:, :, glu] = np.where(craving, base[:, [glu]] * rise, base[:, [glu]])
    sd_abs = crlb_ref / 100.0 * quality[..., None] * true
    measured = np.maximum(true + sd_abs * rng.standard_normal(true.shape), 0.05)
    measured = np.concatenate([measured, measured[..., [glu]] + measured[..., [gln]]], axis=-1)
    sd_abs = np.concatenate([sd_abs, np.hypot(sd_abs[..., [glu]], sd_abs[..., [gln]])], axis=-1)
    n_m = len(names) + 1
    spectra = n * n_s * n_c
    s_idx = np.tile(np.repeat(np.arange(n_s), n_c), n)
    return {
        "participant_id": np.repeat(np.asarray(participants["participant_id"]), n_s * n_c * n_m),
        "session_id": np.repeat(np.array([f"ses-{k + 1}" for k in range(n_s)], dtype=object)[s_idx], n_m),
        "state": np.repeat(np.tile(np.array(STATES, dtype=object), n * n_s), n_m),
        "metabolite": np.tile(np.array([*names, "Glx"], dtype=object), spectra),
        "value_tcr": (measured / measured[..., [tcr]]).ravel(),
        "value_water": measured.ravel(),
        "crlb_percent": np.minimum(100.0 * sd_abs / measured, 999.0).ravel(),
        "fwhm_hz": np.repeat(fwhm.ravel(), n_m),
        "snr": np.repeat(snr.ravel(), n_m),
    }


def simulate_craving_ratings(participants: pd.DataFrame, params: CocaineStudyParams) -> pd.DataFrame:
    """Craving ratings (visual analogue scale 0-100) after each film.

    Returns
    -------
    ratings : pandas.DataFrame
        ``participant_id, session_id, drug, state, craving_vas``; rows run over
        participants, sessions, then :data:`STATES`.
    """
    return pd.DataFrame(rating_columns(participants, params))


def rating_columns(participants: pd.DataFrame, params: CocaineStudyParams) -> dict[str, np.ndarray]:
    """The columns of :func:`simulate_craving_ratings`, as arrays (every rating at once)."""
    rng = np.random.default_rng([params.seed, 3])
    n, n_s, n_c = len(participants["participant_id"]), 2, len(STATES)
    drugs = _session_drugs(participants["drug_order"]) if n else np.empty((0, n_s), dtype=object)
    cud = (np.asarray(participants["group"]) == "CUD")[:, None]
    kept = 1.0 - params.habituation * np.arange(n_s)
    reactivity = np.nan_to_num(np.asarray(participants["craving_reactivity"], dtype=float))[:, None]
    neutral = rng.normal(15, 8, (n, n_s))
    rise = (
        kept * (params.craving_rating_rise + params.craving_rating_reactivity * reactivity)
        + np.where(drugs == "NAC", params.nac_rating_effect, 0.0)
        + rng.normal(0, RATING_RISE_NOISE_SD, (n, n_s))
    )
    control = rng.normal(3, 3, (n, n_s, n_c))  # controls crave little after either film
    values = np.where(cud[..., None], np.stack([neutral, neutral + rise], axis=-1), control)
    return {
        "participant_id": np.repeat(np.asarray(participants["participant_id"]), n_s * n_c),
        "session_id": np.tile(np.repeat(np.array([f"ses-{k + 1}" for k in range(n_s)], dtype=object), n_c), n),
        "drug": np.repeat(drugs.ravel(), n_c),
        "state": np.tile(np.array(STATES, dtype=object), n * n_s),
        "craving_vas": np.clip(np.round(values), 0, 100).ravel().astype(float),
    }


def planted_effects(params: CocaineStudyParams) -> list[dict]:
    """The effects planted in the study, in a form a results table can be checked against.

    Couplings are those of the latent sources, which load on the planted regions
    of :mod:`craving_circuits.simulate.regions`. What an analysis measures between
    ROI means is smaller: noise dilutes the sources in every voxel, and each ROI
    overlaps its planted region only in part. Recovery is judged by sign and
    significance (and, across studies, by bias and correlation), not identity.

    Returns
    -------
    effects : list of dict
        Keys ``effect, description, scale, planted, present``.
    """
    thal_sd = np.hypot(params.thalamus_reactivity_sd, params.craving_fc_individual_sd)
    coupling = params.thalamus_reactivity_sd / thal_sd if thal_sd > 0 and params.glu_reactivity_pct > 0 else 0.0
    fc = "Fisher z of the source correlation"  # of the planted regions' sources, not of the ROI means
    r_o, r_u = params.ocdus_reactivity_r, params.use_reactivity_r
    overlap = r_o * r_u  # the two measures correlate through craving reactivity only
    clinical_r = np.sqrt((r_o**2 + r_u**2 - 2 * r_o * r_u * overlap) / (1 - overlap**2))
    clinical_r = clinical_r if params.thalamus_reactivity_sd > 0 else 0.0
    mean_kept = 1.0 - params.habituation / 2  # the rises averaged over the two sessions
    rows = [
        (
            "craving_nacc_dlpfc_cud",
            "Craving minus neutral, NAcc-dlPFC coupling, CUD (mean of the two sessions)",
            fc,
            mean_kept * params.craving_nacc_dlpfc,
        ),
        (
            "craving_nacc_thalamus_cud",
            "Craving minus neutral, NAcc-midline thalamus coupling, CUD (mean of the two sessions)",
            fc,
            mean_kept * params.craving_nacc_thalamus,
        ),
        (
            "craving_nacc_dlpfc_control",
            "Craving minus neutral, NAcc-dlPFC coupling, controls (mean of the two sessions)",
            fc,
            mean_kept * params.control_craving_fc,
        ),
        (
            "craving_nacc_thalamus_control",
            "Craving minus neutral, NAcc-midline thalamus coupling, controls (mean of the two sessions)",
            fc,
            mean_kept * params.control_craving_fc,
        ),
        (
            "group_x_state_nacc_dlpfc",
            "CUD minus controls in the craving rise, NAcc-dlPFC",
            fc,
            mean_kept * (params.craving_nacc_dlpfc - params.control_craving_fc),
        ),
        (
            "group_x_state_nacc_thalamus",
            "CUD minus controls in the craving rise, NAcc-thalamus",
            fc,
            mean_kept * (params.craving_nacc_thalamus - params.control_craving_fc),
        ),
        (
            "habituation_nacc_dlpfc_cud",
            "Second minus first session in the craving rise of NAcc-dlPFC coupling (period effect), CUD",
            fc,
            -params.habituation * params.craving_nacc_dlpfc,
        ),
        (
            "habituation_nacc_thalamus_cud",
            "Second minus first session in the craving rise of NAcc-thalamus coupling (period effect), CUD",
            fc,
            -params.habituation * params.craving_nacc_thalamus,
        ),
        (
            "habituation_rating_cud",
            "Second minus first session in the craving rating rise (period effect), CUD",
            "VAS points",
            -params.habituation * params.craving_rating_rise,
        ),
        ("drug_x_state_cud", "NAC minus placebo in the craving rise of both couplings, CUD", fc, params.nac_effect),
        ("drug_x_state_control", "NAC minus placebo in the craving rise of both couplings, controls", fc, 0.0),
        (
            "group_x_state_x_drug",
            "CUD minus controls in the NAC effect on the craving rise of both couplings",
            fc,
            params.nac_effect,
        ),
        (
            "fc_change_elsewhere",
            "Craving-related change of NAcc coupling anywhere but dlPFC and midline thalamus",
            fc,
            0.0,
        ),
        ("glu_rise_cud", "Craving minus neutral NAcc glutamate, CUD", "percent", params.glu_craving_rise_pct),
        (
            "thalamus_glu_coupling_cud",
            "Correlation of the thalamic coupling rise with the Glu rise (latent, before measurement noise), CUD",
            "Pearson r",
            coupling,
        ),
        ("dlpfc_glu_coupling_cud", "Correlation of the dlPFC coupling rise with the Glu rise, CUD", "Pearson r", 0.0),
        (
            "coupling_difference_cud",
            "Thalamic minus dlPFC correlation with the Glu rise (latent), CUD",
            "difference of Pearson r",
            coupling,
        ),
        (
            "ocdus_predicts_thalamus_cud",
            "Correlation of OCDUS obsessive thinking with craving reactivity, which drives the thalamic rise",
            "Pearson r",
            params.ocdus_reactivity_r if params.thalamus_reactivity_sd > 0 else 0.0,
        ),
        (
            "use_predicts_thalamus_cud",
            "Correlation of log cocaine use with craving reactivity, which drives the thalamic rise",
            "Pearson r",
            params.use_reactivity_r if params.thalamus_reactivity_sd > 0 else 0.0,
        ),
        (
            "clinical_model_thalamus_cud",
            "OCDUS and log cocaine use together: multiple correlation with craving "
            "reactivity, which drives the thalamic rise",
            "multiple R",
            clinical_r,
        ),
        (
            "clinical_model_dlpfc_cud",
            "OCDUS and log cocaine use together as predictors of the dlPFC rise",
            "multiple R",
            0.0,
        ),
        ("ocdus_predicts_dlpfc_cud", "OCDUS obsessive thinking as a predictor of the dlPFC rise", "Pearson r", 0.0),
        ("use_predicts_dlpfc_cud", "Cocaine use as a predictor of the dlPFC rise", "Pearson r", 0.0),
        (
            "glu_coupling_elsewhere",
            "Coupling of the NAcc connectivity rise with the Glu rise anywhere but the midline thalamus",
            "Pearson r",
            0.0,
        ),
        (
            "craving_rating_rise_cud",
            "Craving minus neutral rating, CUD (mean of the two sessions)",
            "VAS points",
            mean_kept * params.craving_rating_rise,
        ),
        ("nac_rating_effect_cud", "NAC minus placebo in the rating rise, CUD", "VAS points", params.nac_rating_effect),
    ]
    return [
        {"effect": e, "description": d, "scale": s, "planted": float(v), "present": bool(abs(v) > 0)}
        for e, d, s, v in rows
    ]


# --------------------------------------------------------------------------- images


@dataclass
class _Geometry:
    """Arrays shared by every run of a study (grid, tissue, planted regions)."""

    affine: np.ndarray
    mask: np.ndarray  # (nx, ny, nz) bool
    planted: PlantedFootprints  # the sources' planted regions, per participant
    baseline: np.ndarray  # (n_voxels,)
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    loadings: np.ndarray  # (6, n_voxels)
    spin_map: np.ndarray  # (n_voxels,)
    wm_index: np.ndarray
    csf_index: np.ndarray
    noise: SmoothNoiseField
    xyz: np.ndarray  # (n_voxels, 3) mm
    cardioresp: np.ndarray  # (2, n_voxels): next to CSF, next to large vessels
    tissue_physio: np.ndarray  # (2, n_voxels): white-matter and CSF fluctuations' amplitudes

    def footprints(self, participant_index: int) -> np.ndarray:
        """The source footprints of one participant (with their anatomical jitter; cached per participant).

        Returns
        -------
        footprints : ndarray of float32, shape (n_sources, n_voxels)
            Rows in the order of :data:`SOURCES`.
        """
        return self.planted.participant(participant_index)


def _tissue_index(prob: np.ndarray, thresholds, min_voxels: int = 10) -> np.ndarray:
    """Voxels of a nuisance mask: the strictest threshold that leaves ``min_voxels``.

    Strict masks keep grey-matter signal out of the WM and CSF confounds, as
    fMRIPrep's eroded masks do; coarse grids need a looser threshold.
    """
    for threshold in thresholds:
        index = np.flatnonzero(prob > threshold)
        if index.size >= min_voxels:
            return index
    raise ValueError("The grid is too coarse for white-matter and CSF masks; use a smaller voxel_size_mm.")


def build_geometry(params: CocaineStudyParams) -> _Geometry:
    """Grid, tissue maps, planted regions of the sources and motion loadings of the study."""
    mask_img = brain_mask(params.voxel_size_mm)
    mask = np.asarray(mask_img.dataobj) > 0
    tissue = tissue_probabilities(mask_img)
    gm, wm, csf = (tissue[k][mask] for k in ("gm", "wm", "csf"))
    # neural signal only where there is grey matter; each participant's regions are shifted by their jitter
    planted = PlantedFootprints("cocaine", mask, mask_img.affine, gm, params.seed)
    rng = np.random.default_rng([params.seed, 4])
    field_ = ndimage.gaussian_filter(rng.standard_normal(mask.shape), sigma=6.0 / params.voxel_size_mm * 4)
    bias = 1.0 + 0.05 * field_ / field_[mask].std()
    total = np.maximum(gm + wm + csf, 1e-6)
    base = 1000.0 * (0.85 * gm + 0.7 * wm + 1.3 * csf) / total * np.clip(bias[mask], 0.8, 1.2)
    base3d = np.zeros(mask.shape)
    base3d[mask] = base
    noise = SmoothNoiseField(mask, params.voxel_size_mm, params.smooth_noise_fwhm_mm)
    spin = 1.0 + 0.3 * noise.sample(rng, 32)[0]  # one smooth unit-variance volume
    xyz = nib.affines.apply_affine(mask_img.affine, np.argwhere(mask))
    # pulsatility and breathing reach the tissue next to the ventricles and sulci (the CSF map smoothed
    # over 8 mm) and next to the large vessels at the base of the brain (falling over 30 mm from its bottom)
    csf3d = np.zeros(mask.shape)
    csf3d[mask] = csf
    near_csf = ndimage.gaussian_filter(csf3d, sigma=8.0 / params.voxel_size_mm)[mask]
    near_vessels = np.exp(-(xyz[:, 2] - xyz[:, 2].min()) / 30.0)
    cardioresp = np.stack([near_csf / near_csf.max(), near_vessels / near_vessels.max()])
    # white-matter and CSF fluctuations vary in amplitude across their tissue (smooth log-normal fields of
    # mean 1): a mask's mean signal is one mixture of them and of the global signal, its components more
    spread = np.exp(0.5 * noise.sample(rng, 2))
    spread /= spread.mean(axis=1, keepdims=True)
    tissue_physio = np.stack([wm * spread[0], 1.5 * csf * spread[1]])
    return _Geometry(
        affine=mask_img.affine,
        mask=mask,
        planted=planted,
        baseline=base.astype(np.float32),
        gm=gm.astype(np.float32),
        wm=wm.astype(np.float32),
        csf=csf.astype(np.float32),
        loadings=motion_loadings(base3d, mask, mask_img.affine),
        spin_map=spin.astype(np.float32),
        wm_index=_tissue_index(wm, (0.95, 0.9, 0.8)),
        csf_index=_tissue_index(csf, (0.9, 0.8, 0.7, 0.5)),
        noise=noise,
        xyz=xyz.astype(np.float32),
        cardioresp=cardioresp.astype(np.float32),
        tissue_physio=tissue_physio.astype(np.float32),
    )


def source_correlation(fc_nacc_dlpfc: float, fc_nacc_thalamus: float) -> np.ndarray:
    """Population correlation matrix of the sources of one run.

    The NAcc source correlates with each other source ``j`` at ``r_j`` (from
    :data:`NACC_FC_Z`, with the run's planted NAcc-dlPFC and NAcc-thalamus values);
    the other sources keep the partial correlations :data:`PARTIAL_FC_Z` given the
    NAcc. Equivalently ``x_j = r_j * x_nacc + sqrt(1 - r_j**2) * f_j`` with the
    ``f`` correlated by the partial matrix, which makes any ``|r_j| < 1`` valid.

    Parameters
    ----------
    fc_nacc_dlpfc, fc_nacc_thalamus : float
        Fisher z of the NAcc couplings.

    Returns
    -------
    corr : ndarray, shape (n_sources, n_sources)
        In the order of :data:`SOURCES` (NAcc first).
    """
    z = dict(NACC_FC_Z, dlpfc=fc_nacc_dlpfc, thalamus_midline=fc_nacc_thalamus)
    others = SOURCES[1:]
    r = np.tanh([z[name] for name in others])
    partial = np.eye(len(others))
    for (a, b), value in PARTIAL_FC_Z.items():
        i, j = others.index(a), others.index(b)
        partial[i, j] = partial[j, i] = np.tanh(value)
    scale = np.sqrt(1 - r**2)
    corr = np.eye(len(SOURCES))
    corr[0, 1:] = corr[1:, 0] = r
    corr[1:, 1:] = scale[:, None] * partial * scale[None, :] + np.outer(r, r)
    return corr


def simulate_run_data(geometry: _Geometry, params: CocaineStudyParams, run: dict) -> dict:
    """Simulate one run's BOLD data and estimated head motion.

    Parameters
    ----------
    geometry : _Geometry
        From :func:`build_geometry`.
    params : CocaineStudyParams
    run : dict
        A row of :func:`simulate_runs_table`; its ``run_key`` seeds the run's
        draws, and its first index (the participant's) picks the participant's
        planted regions (:meth:`_Geometry.footprints`).

    Returns
    -------
    dict with
        ``data`` : ndarray of int16, shape (n_volumes, n_voxels), BOLD intensities;
        ``motion`` : ndarray, shape (n_volumes, 6), estimated motion (true plus
        estimation error); ``true_motion`` : the same without error.
    """
    rng = np.random.default_rng([params.seed, 1, *run["run_key"]])
    nuisance_rng = np.random.default_rng([params.seed, 5, *run["run_key"]])  # the artefacts' own draws
    n_t, t_r = params.n_volumes, params.repetition_time
    n_v = geometry.mask.sum()
    craving = run["state"] == "craving"
    arousal = params.physio_craving_factor if craving else 1.0
    corr = source_correlation(run["fc_nacc_dlpfc"], run["fc_nacc_thalamus"])
    sources = correlated_sources(rng, corr, n_t, t_r).astype(np.float32)
    y = (params.source_sd * sources) @ geometry.footprints(run["run_key"][0])
    glob = band_limited_noise(rng, n_t, 1, t_r).astype(np.float32)
    y += params.global_sd * (params.global_craving_factor if craving else 1.0) * glob
    physio = band_limited_noise(rng, n_t, 2, t_r, 0.01, 0.2).astype(np.float32)
    y += (arousal * params.physio_sd * physio) @ geometry.tissue_physio
    cardioresp = band_limited_noise(nuisance_rng, n_t, 2, t_r, 0.01, 0.15).astype(np.float32)
    y += (arousal * params.cardioresp_sd * cardioresp) @ geometry.cardioresp
    y += params.smooth_noise_sd * geometry.noise.sample(rng, n_t, params.noise_ar1)
    y += params.white_noise_sd * rng.standard_normal((n_t, n_v), dtype=np.float32)
    t = np.linspace(-1, 1, n_t, dtype=np.float32)[:, None]
    drift = rng.standard_normal((2, n_v)).astype(np.float32) * params.drift_sd
    y += t * drift[0] + (t**2 - 1 / 3) * drift[1]
    # head motion
    scale = run["motion_scale"]
    true_motion = random_motion(
        rng, n_t, step_mm=params.motion_step_mm * scale, n_spikes=rng.poisson(params.motion_spikes * scale)
    )
    centred = (true_motion - true_motion.mean(axis=0)).astype(np.float32)
    y += params.motion_artifact_scale * (centred @ geometry.loadings)
    fd = np.nan_to_num(framewise_displacement(true_motion))
    history = np.convolve(fd, [1.0, 0.5, 0.25])[:n_t].astype(np.float32)
    y -= params.spin_history_pct_per_mm * history[:, None] * geometry.spin_map
    jumps = np.diff(true_motion, axis=0, prepend=true_motion[:1])
    y += spike_artifact(fd, jumps, geometry.loadings, params.spike_fd_threshold_mm, params.spike_pct_per_mm2)
    y += distance_artifact(
        nuisance_rng,
        geometry.xyz,
        fd,
        t_r,
        params.distance_artifact_pct_per_mm,
        params.distance_artifact_mm,
        params.spike_fd_threshold_mm,
    )
    data = geometry.baseline * (1.0 + y / 100.0)
    error = rng.standard_normal((n_t, 6)) * (params.motion_error_mm * np.array([1.0] * 3 + [1 / 50.0] * 3))
    return {
        "data": np.clip(np.rint(data), 0, np.iinfo(np.int16).max).astype(np.int16),
        "motion": true_motion + error,
        "true_motion": true_motion,
    }


def _write_run(geometry: _Geometry, params: CocaineStudyParams, run: dict, fmriprep_dir: Path) -> dict:
    """Simulate one run and write its fMRIPrep-style files; return a summary row."""
    sim = simulate_run_data(geometry, params, run)
    files = run_files(fmriprep_dir, run["participant_id"], run["session_id"], run["task"])
    n_t = params.n_volumes
    # Fortran order is NIfTI's on-disk order: nibabel then writes without a copy
    vol = np.zeros(geometry.mask.shape + (n_t,), dtype=np.int16, order="F")
    vol[geometry.mask] = sim["data"].T
    img = nib.Nifti1Image(vol, geometry.affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_zooms((params.voxel_size_mm,) * 3 + (params.repetition_time,))
    write_nifti(files.bold, img)
    write_json(
        files.bold_json,
        {
            "RepetitionTime": params.repetition_time,
            "TaskName": run["task"],
            "SkullStripped": True,
            "StartTime": 0.0,
            "SliceTimingCorrected": False,
            "GeneratedBy": GENERATOR_NAME,
        },
    )
    write_nifti(files.mask, nib.Nifti1Image(geometry.mask.astype(np.uint8), geometry.affine))
    confounds, meta = compute_confounds(
        sim["data"].astype(np.float64), sim["motion"], params.repetition_time, geometry.wm_index, geometry.csf_index
    )
    write_tsv(files.confounds, confounds, float_format="%.8g")
    write_json(files.confounds_json, meta)
    fd = confounds["framewise_displacement"]
    return {
        "participant_id": run["participant_id"],
        "session_id": run["session_id"],
        "state": run["state"],
        "mean_fd": float(np.nanmean(fd)),
        "n_fd_over_0_5": int((fd > 0.5).sum()),
    }


# --------------------------------------------------------------------------- sharing runs between studies

#: Parameters that change a run's images only through its row of the runs table
#: (its planted couplings and motion scale), or not at all. Two studies that differ
#: only in these - a preset and its ``null`` twin, or a variant with an NAC effect -
#: have identical images for every run whose row is the same.
_ROW_ONLY_PARAMS = frozenset(
    {
        "preset",
        "craving_nacc_dlpfc",
        "craving_nacc_thalamus",
        "thalamus_reactivity_sd",
        "craving_fc_individual_sd",
        "control_craving_fc",
        "nac_effect",
        "glu_craving_rise_pct",
        "glu_reactivity_pct",
        "mrs_snr",
        "mrs_bad_shim_rate",
        "mrs_glu_crlb_pct",
        "ocdus_reactivity_r",
        "use_reactivity_r",
        "craving_rating_rise",
        "craving_rating_reactivity",
        "nac_rating_effect",
    }
)
_RUN_CONTENTS = "run_contents.tsv"


def run_content_key(params: CocaineStudyParams, run: dict) -> str:
    """Hash of everything a run's images depend on (simulator code, parameters, the run's row)."""

    image_params = {k: v for k, v in params_to_dict(params).items() if k not in _ROW_ONLY_PARAMS}
    row = {
        k: run[k] for k in ("participant_id", "session_id", "task", "motion_scale", "fc_nacc_dlpfc", "fc_nacc_thalamus")
    }
    row["run_key"] = list(run["run_key"])
    payload = json.dumps({"simulator": SIMULATOR_VERSION, "params": image_params, "run": row}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def _run_donors(out: Path) -> dict[str, tuple[Path, dict]]:
    """Runs of complete sibling studies (same folder) by content key."""
    donors = {}
    for sibling in sorted(out.parent.iterdir()) if out.parent.is_dir() else []:
        index = sibling / "derivatives" / "simulation" / _RUN_CONTENTS
        truth = sibling / "derivatives" / "simulation" / "ground_truth.json"
        if sibling == out or not index.is_file() or not truth.is_file():
            continue
        table = pd.read_csv(index, sep="\t")
        for row in table.to_dict("records"):
            donors.setdefault(row["content_key"], (sibling, row))
    return donors


def _link_run(donor: Path, row: dict, run: dict, fmriprep_dir: Path) -> dict:
    """Hard-link (or copy) a sibling study's identical run; return its summary row."""
    source = run_files(donor / "derivatives" / "fmriprep", row["participant_id"], row["session_id"], row["task"])
    target = run_files(fmriprep_dir, run["participant_id"], run["session_id"], run["task"])
    for src, dst in zip(astuple(source), astuple(target)):
        with atomic_path(dst) as tmp:
            try:
                os.link(src, tmp)
            except OSError:
                shutil.copy2(src, tmp)
    fd = pd.read_csv(target.confounds, sep="\t", usecols=["framewise_displacement"], na_values="n/a")
    fd = fd["framewise_displacement"]
    return {
        "participant_id": run["participant_id"],
        "session_id": run["session_id"],
        "state": run["state"],
        "mean_fd": float(np.nanmean(fd)),
        "n_fd_over_0_5": int((fd > 0.5).sum()),
    }


# --------------------------------------------------------------------------- the study


def _describe_participants() -> dict:
    return {
        "participant_id": {"Description": "Participant label"},
        "group": {
            "Description": "Diagnostic group",
            "Levels": {"CUD": "cocaine use disorder", "control": "healthy control"},
        },
        "age": {"Description": "Age", "Units": "years"},
        "sex": {"Description": "Sex", "Levels": {"M": "male", "F": "female"}},
        "drug_order": {
            "Description": "Drug in session 1 - drug in session 2",
            "Levels": {"placebo-NAC": "placebo first", "NAC-placebo": "N-acetylcysteine first"},
        },
        "cocaine_g_per_week": {"Description": "Cocaine use intensity (0 for controls)", "Units": "g/week"},
        "ocdus_obsessive": {"Description": "OCDUS obsessive-thinking subscale (CUD only; n/a for controls)"},
    }


def _describe_mrs() -> dict:
    return {
        "participant_id": {"Description": "Participant label"},
        "session_id": {"Description": "Session label"},
        "state": {
            "Description": "Film before the spectrum",
            "Levels": {"neutral": "neutral film", "craving": "cocaine-cue film"},
        },
        "metabolite": {"Description": "Metabolite (Glx = Glu + Gln)"},
        "value_tcr": {"Description": "Concentration relative to total creatine"},
        "value_water": {"Description": "Water-scaled concentration", "Units": "institutional units"},
        "crlb_percent": {"Description": "Cramer-Rao lower bound relative to the fitted value", "Units": "%"},
        "fwhm_hz": {"Description": "Linewidth of the spectrum", "Units": "Hz"},
        "snr": {"Description": "Signal-to-noise ratio of the spectrum"},
    }


def _dataset_description(name: str, dataset_type: str) -> dict:
    desc = {"Name": name, "BIDSVersion": "1.9.0", "DatasetType": dataset_type}
    desc["GeneratedBy"] = [{"Name": GENERATOR_NAME, "Version": __version__}]
    return desc


def simulate_cocaine_study(
    out_dir: str | Path,
    preset: str = "paper",
    *,
    n_jobs: int = 1,
    replace: bool = False,
    progress: bool = False,
    **overrides,
) -> Path:
    """Write a simulated cocaine-craving study as BIDS + fMRIPrep-style derivatives.

    The study is complete when ``derivatives/simulation/ground_truth.json`` exists;
    it is written last. Calling again with the same parameters returns at once.

    Runs whose images would be identical to those of a complete study in the
    same parent folder (the ``null`` twin of a preset, say: only the craving
    runs of CUD participants differ) are hard-linked from it (copied where links
    are not possible) instead of being simulated again; ``run_contents.tsv`` in
    ``derivatives/simulation`` records each run's content key and whether it was
    shared.

    Parameters
    ----------
    out_dir : path
        Dataset root to create.
    preset : str
        One of :data:`PRESETS`.
    n_jobs : int
        Runs simulated in parallel (processes).
    replace : bool
        If ``out_dir`` holds a simulated study with other parameters (or an
        interrupted one), delete and rewrite it. Folders this simulator did
        not write are never deleted.
    progress : bool
        Show a progress bar.
    **overrides
        Any field of :class:`CocaineStudyParams`.

    Returns
    -------
    out_dir : pathlib.Path

    Raises
    ------
    ValueError
        For an unknown preset or parameter, or when ``out_dir`` holds other data.
    """

    params = cocaine_params(preset, **overrides)
    out = Path(out_dir)
    truth_path = out / "derivatives" / "simulation" / "ground_truth.json"
    wanted = {"simulator_version": SIMULATOR_VERSION, "parameters": params_to_dict(params)}
    if claim_output_folder(out, wanted, GENERATOR_NAME, replace):
        return out

    participants = simulate_participants(params)
    runs = simulate_runs_table(participants, params)
    write_json(out / "dataset_description.json", _dataset_description("Simulated cocaine-craving study", "raw"))
    write_text(
        out / "README",
        "Simulated data with planted effects, written by craving_circuits.simulate.cocaine.\n"
        "Not real participants. Raw BOLD images are not simulated: derivatives/fmriprep holds what\n"
        "fMRIPrep would output. The planted truth is in derivatives/simulation.\n",
    )
    write_tsv(out / "participants.tsv", participants[OBSERVED_PARTICIPANT_COLUMNS])
    write_json(out / "participants.json", _describe_participants())
    for pid, sub in runs.groupby("participant_id", sort=True):
        sessions = sub.drop_duplicates("session_id")[["session_id", "drug"]]
        write_tsv(out / pid / f"{pid}_sessions.tsv", sessions)
    write_json(
        out / "sessions.json",
        {
            "drug": {
                "Description": "Drug taken before the session",
                "Levels": {"NAC": "N-acetylcysteine 2400 mg/day", "placebo": "placebo"},
            }
        },
    )
    ratings = simulate_craving_ratings(participants, params)
    write_tsv(out / "phenotype" / "craving_ratings.tsv", ratings)
    write_json(
        out / "phenotype" / "craving_ratings.json",
        {"craving_vas": {"Description": "Craving after the film, visual analogue scale", "Units": "0-100"}},
    )

    fmriprep_dir = out / "derivatives" / "fmriprep"
    write_json(
        fmriprep_dir / "dataset_description.json",
        _dataset_description("fMRIPrep-style derivatives (simulated)", "derivative"),
    )
    mrs_dir = out / "derivatives" / "mrs"
    write_json(mrs_dir / "dataset_description.json", _dataset_description("NAcc MRS (simulated)", "derivative"))
    write_tsv(mrs_dir / "nacc_metabolites.tsv", simulate_mrs(participants, params))
    write_json(mrs_dir / "nacc_metabolites.json", _describe_mrs())

    records = runs.to_dict("records")
    keys = [run_content_key(params, run) for run in records]
    donors = _run_donors(out)
    linked = [_link_run(*donors[key], run, fmriprep_dir) for key, run in zip(keys, records) if key in donors]
    todo = [run for key, run in zip(keys, records) if key not in donors]
    geometry = build_geometry(params) if todo else None
    jobs = (delayed(_write_run)(geometry, params, run, fmriprep_dir) for run in todo)
    results = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(jobs)
    simulated = list(tqdm(results, total=len(todo), desc="simulate runs", disable=not progress))
    summary = pd.DataFrame(linked + simulated)

    sim_dir = out / "derivatives" / "simulation"
    write_json(
        sim_dir / "dataset_description.json",
        _dataset_description("Planted ground truth of the simulation", "derivative"),
    )
    truth_runs = runs.drop(columns=["run_key"]).merge(summary, on=["participant_id", "session_id", "state"])
    write_tsv(sim_dir / "ground_truth_runs.tsv", truth_runs)
    write_tsv(sim_dir / "ground_truth_participants.tsv", participants)
    write_tsv(
        sim_dir / _RUN_CONTENTS,
        runs[["participant_id", "session_id", "state", "task"]].assign(
            content_key=keys, shared=[key in donors for key in keys]
        ),
    )
    write_json(
        truth_path,
        {
            **wanted,
            "study": "cocaine_craving",
            "space": SPACE,
            "sources": list(SOURCES),
            "nacc_fc_z": NACC_FC_Z,
            "partial_fc_z_given_nacc": {f"{a}-{b}": v for (a, b), v in PARTIAL_FC_Z.items()},
            "effects": planted_effects(params),
            "planted_regions": study_regions("cocaine"),
            "files": {"participants": "ground_truth_participants.tsv", "runs": "ground_truth_runs.tsv"},
        },
    )
    return out


def parameters_table(values: dict | None = None) -> pd.DataFrame:
    """Every simulation parameter with its meaning, its ``paper`` value and (optionally) the value used.

    Parameters
    ----------
    values : dict, optional
        Parameter values actually used (e.g. ``ground_truth["parameters"]``).

    Returns
    -------
    table : pandas.DataFrame
        ``parameter, description, paper`` and ``used`` when ``values`` is given.
    """
    rows = []
    for f in dataclasses.fields(CocaineStudyParams):
        row = {"parameter": f.name, "description": f.metadata.get("help", ""), "paper": f.default}
        if values is not None:
            row["used"] = values.get(f.name)
        rows.append(row)
    return pd.DataFrame(rows)
