"""Simulated baclofen study: pCASL perfusion and a smoking-cue task before and after treatment.

The design follows Ketcherside et al. (2020): smokers randomised to baclofen or
placebo, scanned before (``ses-T1``) and three weeks after (``ses-T2``)
randomisation. Per session there is

* a resting pCASL run as BIDS ``perf/`` data: ``*_asl.nii.gz`` with
  label/control pairs, ``*_aslcontext.tsv``, ``*_asl.json`` and a separate
  ``*_m0scan.nii.gz``. The images are generated from ground-truth CBF maps
  through Buxton et al.'s (1998) general kinetic model
  (:mod:`craving_circuits.simulate.kinetics`), not the white paper's equation
  that quantification inverts: grey and white matter in each voxel (partial
  volume) each with its own CBF, T1 and arterial transit time (a smooth map
  that grows with distance from the circle of Willis, longer in white matter,
  scaled per participant; beyond the post-labelling delay in some voxels),
  tissue T1 shortened by flow, the label's decay in blood during transit, each
  participant's own labelling efficiency, tissue partition coefficients, and
  an M0 scan whose finite repetition time (written as its
  ``RepetitionTimePreparation``) leaves each tissue short of equilibrium. Then
  thermal noise, background suppression of the static tissue signal and head
  motion whose misregistration does not cancel between label and control. As a
  simplification the ASL images are already on the MNI analysis grid (as after
  registration);
* a smoking-cue task run (BOLD) as fMRIPrep-style derivatives (same conventions
  as the cocaine study), with ``events.tsv`` of smoking and neutral cue blocks.
  Each participant's cue regions respond through their own double-gamma HRF
  (delay and dispersion drawn per participant and region), and heads move
  more during smoking-cue blocks (task-correlated motion);
* craving ratings before and after cue exposure.

The true maps of each session (CBF, and the smoking - neutral cue effect) are
written to the ground-truth folder ``derivatives/simulation/sub-*/ses-*/``,
named in the ``true_cbf_map`` and ``true_cue_map`` columns of
``ground_truth_sessions.tsv``, never next to the data the analysis reads.

Planted effects (all in the ground truth): baclofen raises right-dlPFC CBF at
T2 (``dlpfc_cbf_rise``; placebo does not change); within participants, the
larger the rise, the smaller the T2 cue response in the anterior ventral insula
and vmPFC (``cue_dlpfc_coupling``, percent signal per ml/100 g/min); baclofen
lowers cue-induced craving at T2 (``baclofen_craving_effect``).

The CBF rise and the cue response are planted in regions of their own
(:mod:`craving_circuits.simulate.regions`: grey-matter-weighted Gaussian blobs
around typical literature coordinates, shifted in each participant by an
anatomical jitter drawn from ``seed`` and the participant's index). A planted
amount is the change at the peak of its region; the analysis ROIs overlap the
regions only in part and see a diluted change (``dlpfc_roi_cbf`` in
``ground_truth_sessions.tsv`` is the true CBF averaged over the analysis ROI).

Shared with the analysis
------------------------
Nothing from the analysis layers. From :mod:`craving_circuits.io`: the BIDS
naming; the right-dlPFC analysis ROI, only to write the true CBF averaged over
it into the ground truth (the planted CBF rise and cue responses lie in the
planted regions of :mod:`craving_circuits.simulate.regions`, which the analysis
ROIs overlap only in part); and
:class:`craving_circuits.io.bids.AslConstants`, the labelling constants the
simulator declares in each ``*_asl.json`` (what a scanner protocol declares:
post-labelling delay, labelling duration, background-suppression pulses) and
whose blood T1 it uses. The signal is not made with the model quantification
inverts: the white paper's single-compartment equation is an approximation of
Buxton's kinetic model (its limit without transit time and with tissue
relaxing like blood), and the efficiency, partition coefficient and M0 it
assumes are not each participant's or voxel's. So quantified CBF has a
realistic, non-zero bias (lower than the truth in grey matter at the ``paper``
parameters; see :func:`craving_circuits.verdict.planted.map_recovery`), and
the planted effects are recovered only as well as the white paper's equation
allows. Likewise the cue responses are made with each participant's own HRF,
while the analysis fits the canonical Glover HRF.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from nilearn.glm.first_level import compute_regressor
from tqdm import tqdm

from craving_circuits.io.atlas import brain_mask, roi_mask, voxel_coordinates_mm
from craving_circuits.io.bids import SPACE, AslConstants, run_files
from craving_circuits.io.files import write_json, write_nifti, write_text, write_tsv
from craving_circuits.simulate.cocaine import build_geometry
from craving_circuits.simulate.fmriprep import compute_confounds
from craving_circuits.simulate.kinetics import buxton_pcasl_difference
from craving_circuits.simulate.params import (
    check_range,
    claim_output_folder,
    params_to_dict,
    resolve_params,
)
from craving_circuits.simulate.regions import PlantedFootprints, study_regions
from craving_circuits.simulate.signals import (
    band_limited_noise,
    double_gamma_hrf,
    framewise_displacement,
    random_motion,
)

__all__ = [
    "BaclofenStudyParams",
    "BACLOFEN_PRESETS",
    "THREATS",
    "baclofen_params",
    "simulate_baclofen_study",
    "cue_events",
    "participant_columns",
    "rating_columns",
    "t2_spreads",
    "cue_responses",
    "global_scales",
    "planted_baclofen_effects",
    "TASK",
    "SESSIONS",
    "GROUPS",
]

GENERATOR_NAME = "craving_circuits.simulate.baclofen"
TASK = "smokingcue"
SESSIONS = ("ses-T1", "ses-T2")
GROUPS = ("baclofen", "placebo")
CUE_ROIS = ("insula_anterior_ventral", "vmpfc")
#: Dispersion of the canonical (Glover) HRF peak (s), around which the participants' vary.
GLOVER_DISPERSION = 0.9
#: Where the label arrives from: the circle of Willis (MNI mm); transit times grow with distance from it.
CIRCLE_OF_WILLIS_MM = (0.0, -10.0, -25.0)
#: Proton density of each tissue relative to grey matter: the weights of ``_Maps.m0``.
PROTON_DENSITY = {"gm": 1.0, "wm": 0.85, "csf": 1.2}


def _code_hash() -> str:

    here = Path(__file__).resolve().parent
    files = [
        here / name
        for name in ("baclofen.py", "cocaine.py", "signals.py", "fmriprep.py", "params.py", "regions.py", "kinetics.py")
    ]
    files += [here.parent / "io" / name for name in ("atlas.py", "bids.py", "files.py")]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


SIMULATOR_VERSION = f"1+{_code_hash()}"


def _p(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class BaclofenStudyParams:
    """Every number of the simulated baclofen study."""

    preset: str = _p("paper", "Name of the preset these parameters started from.")
    seed: int = _p(2020, "Seed of every random draw.")
    n_baclofen: int = _p(21, "Smokers randomised to baclofen (80 mg/day).")
    n_placebo: int = _p(22, "Smokers randomised to placebo.")
    voxel_size_mm: int = _p(4, "Isotropic voxel size of the images (mm).")
    smooth_noise_fwhm_mm: float = _p(8.0, "Smoothness (FWHM) of spatially smooth noise (mm).")
    # perfusion
    gm_cbf: float = _p(60.0, "Grey-matter CBF (ml/100 g/min).")
    wm_cbf: float = _p(20.0, "White-matter CBF (ml/100 g/min).")
    cbf_subject_sd: float = _p(0.12, "Between-participant SD of global CBF (fraction).")
    cbf_session_sd: float = _p(0.05, "Session-to-session SD of global CBF (fraction).")
    cbf_regional_sd: float = _p(4.0, "SD of smooth regional CBF variation per session (ml/100 g/min).")
    n_asl_pairs: int = _p(30, "Label/control pairs per pCASL run.")
    post_labeling_delay: float = _p(1.8, "Post-labelling delay (s).")
    labeling_duration: float = _p(1.8, "Labelling duration (s).")
    background_suppression_pulses: int = _p(2, "Background-suppression inversion pulses.")
    static_fraction: float = _p(0.1, "Static tissue signal left after background suppression (fraction of M0).")
    asl_noise_pct: float = _p(0.3, "Thermal noise SD per ASL volume (% of grey-matter M0).")
    asl_motion_mm: float = _p(0.05, "SD of the per-volume head-motion step in ASL runs (mm).")
    m0_scale: float = _p(10000.0, "M0 of grey matter (scanner units; images are stored as int16).")
    # ASL physiology: what the images are made with (Buxton's kinetic model), beyond what the sidecar declares
    gm_arrival_time: float = _p(1.35, "Mean arterial transit time (ATT) of grey matter (s).")
    wm_arrival_time: float = _p(1.75, "Mean arterial transit time (ATT) of white matter (s).")
    arrival_time_gradient: float = _p(
        0.007,
        "Rise of the ATT with a voxel's distance from the circle of Willis (s per mm), around each tissue's mean.",
    )
    arrival_time_subject_sd: float = _p(0.1, "Between-participant SD of a factor that scales every ATT (log scale).")
    t1_gm: float = _p(1.33, "T1 of grey matter at 3 T (s).")
    t1_wm: float = _p(0.83, "T1 of white matter at 3 T (s).")
    t1_csf: float = _p(4.2, "T1 of cerebrospinal fluid at 3 T (s).")
    gm_blood_partition: float = _p(
        0.98,
        "Blood-brain partition coefficient of grey matter (ml/g); white matter's and CSF's follow their proton "
        "densities (0.85 and 1.2 times grey matter's). Arterial blood has M0 m0_scale / this.",
    )
    labeling_efficiency: float = _p(0.85, "Mean labelling efficiency of the participants (before suppression).")
    labeling_efficiency_sd: float = _p(0.05, "Between-participant SD of the labelling efficiency.")
    background_pulse_efficiency: float = _p(0.95, "Fraction of the label each background-suppression pulse keeps.")
    m0_repetition_time: float = _p(
        5.0,
        "Repetition time of the M0 scan (s), written as its RepetitionTimePreparation: "
        "M0 recovers to 1 - exp(-TR / T1) of its equilibrium in each tissue.",
    )
    # task
    n_task_volumes: int = _p(150, "Volumes of the smoking-cue task run.")
    task_repetition_time: float = _p(2.0, "Repetition time of the task run (s).")
    cue_block_s: float = _p(20.0, "Duration of each cue block (s).")
    neutral_response_pct: float = _p(0.3, "Response to neutral cues in the cue ROIs (%).")
    cue_response_pct: float = _p(0.8, "Extra response to smoking cues in the cue ROIs at T1 (%).")
    cue_response_sd: float = _p(0.2, "Between-participant SD of the smoking-cue response (%).")
    task_noise_sd: float = _p(0.8, "SD of smooth AR(1) noise in the task run (%).")
    task_white_noise_sd: float = _p(0.8, "SD of voxel-wise white noise in the task run (%).")
    motion_step_mm: float = _p(0.02, "SD of the per-volume head-motion step in task runs (mm).")
    hrf_delay_mean: float = _p(6.0, "Mean delay of the haemodynamic response (s; the canonical Glover HRF's is 6).")
    hrf_delay_sd: float = _p(1.0, "SD of the HRF delay between participants and cue regions (s).")
    hrf_dispersion_sd: float = _p(
        0.2, "SD of the HRF dispersion (width) between participants and cue regions (log scale, around Glover's 0.9 s)."
    )
    cue_motion_mm: float = _p(
        0.05, "SD of the head displacement held during smoking-cue blocks, each axis (mm; task-correlated motion)."
    )
    cue_spike_ratio: float = _p(3.0, "Rate of abrupt head movements during smoking-cue blocks relative to elsewhere.")
    # planted effects
    dlpfc_cbf_rise: float = _p(
        20.0,
        "Mean rise of CBF from T1 to T2 under baclofen at the peak of the planted right-dlPFC region "
        "(ml/100 g/min); the analysis ROI's mean rises by a fraction of it (see simulate.regions).",
    )
    dlpfc_rise_sd: float = _p(8.0, "Between-participant SD of that rise, both groups (ml/100 g/min, at the peak).")
    cue_dlpfc_coupling: float = _p(
        -0.06, "Change of the T2 cue response per ml/100 g/min of peak dlPFC CBF rise (%, at the peak)."
    )
    baclofen_global_cbf: float = _p(
        0.0,
        "Change of global CBF at T2 under baclofen (fraction of each participant's CBF, everywhere): "
        "a drug effect on global flow, with none specific to the dlPFC.",
    )
    baclofen_cue_effect: float = _p(
        0.0,
        "Direct change of the T2 cue response under baclofen, not through the dlPFC CBF rise (%): "
        "a confounder, across groups, of the CBF-cue association.",
    )
    baclofen_change_sd_ratio: float = _p(
        1.0,
        "Spread of the baclofen group's T2 - T1 changes relative to placebo's (unequal group variances, no "
        "mean difference): multiplies the SD of its participants' dlPFC rise and, at T2, of its session's "
        "global and regional CBF fluctuation and of its cue-induced craving rise.",
    )
    craving_cue_rise: float = _p(15.0, "Mean cue-induced craving rise (post - pre, VAS 0-100).")
    baclofen_craving_effect: float = _p(-8.0, "Change of the cue-induced craving rise at T2 under baclofen.")
    craving_sd: float = _p(6.0, "SD of the cue-induced craving rise within a session (VAS).")

    def __post_init__(self):
        for name in (
            "seed",
            "n_baclofen",
            "n_placebo",
            "voxel_size_mm",
            "n_asl_pairs",
            "n_task_volumes",
            "background_suppression_pulses",
        ):
            check_range(name, getattr(self, name), integer=True)
            object.__setattr__(self, name, int(getattr(self, name)))
        check_range("n_baclofen", self.n_baclofen, 3, 10_000)
        check_range("n_placebo", self.n_placebo, 3, 10_000)
        check_range("voxel_size_mm", self.voxel_size_mm, 2, 12)
        check_range("n_asl_pairs", self.n_asl_pairs, 1, 1000)
        check_range("n_task_volumes", self.n_task_volumes, 40, 5000)
        check_range("background_suppression_pulses", self.background_suppression_pulses, 0, 10)
        check_range("baclofen_global_cbf", self.baclofen_global_cbf, -0.9, 10.0)
        check_range("baclofen_change_sd_ratio", self.baclofen_change_sd_ratio, 0.0, 100.0)
        for name in ("gm_arrival_time", "wm_arrival_time"):
            check_range(name, getattr(self, name), 0.0, 5.0)
        check_range("arrival_time_gradient", self.arrival_time_gradient, 0.0, 0.05)
        check_range("arrival_time_subject_sd", self.arrival_time_subject_sd, 0.0, 1.0)
        for name in ("t1_gm", "t1_wm", "t1_csf"):
            check_range(name, getattr(self, name), 0.1, 10.0)
        check_range("gm_blood_partition", self.gm_blood_partition, 0.5, 1.2)
        check_range("labeling_efficiency", self.labeling_efficiency, 0.5, 1.0)
        check_range("labeling_efficiency_sd", self.labeling_efficiency_sd, 0.0, 0.3)
        check_range("background_pulse_efficiency", self.background_pulse_efficiency, 0.5, 1.0)
        check_range("m0_repetition_time", self.m0_repetition_time, 0.5, 100.0)
        check_range("hrf_delay_mean", self.hrf_delay_mean, 3.0, 10.0)
        check_range("hrf_delay_sd", self.hrf_delay_sd, 0.0, 3.0)
        check_range("hrf_dispersion_sd", self.hrf_dispersion_sd, 0.0, 1.0)
        for name in (
            "gm_cbf",
            "wm_cbf",
            "post_labeling_delay",
            "labeling_duration",
            "m0_scale",
            "task_repetition_time",
            "cue_block_s",
            "smooth_noise_fwhm_mm",
        ):
            check_range(name, getattr(self, name), 1e-6)
        for name in (
            "cbf_subject_sd",
            "cbf_session_sd",
            "cbf_regional_sd",
            "asl_noise_pct",
            "asl_motion_mm",
            "cue_response_sd",
            "task_noise_sd",
            "task_white_noise_sd",
            "motion_step_mm",
            "dlpfc_rise_sd",
            "craving_sd",
            "static_fraction",
            "cue_motion_mm",
            "cue_spike_ratio",
        ):
            check_range(name, getattr(self, name), 0.0)

    @property
    def asl_constants(self) -> AslConstants:
        return AslConstants(
            post_labeling_delay=self.post_labeling_delay,
            labeling_duration=self.labeling_duration,
            n_background_pulses=self.background_suppression_pulses,
        )


_NULL = dict(dlpfc_cbf_rise=0.0, cue_dlpfc_coupling=0.0, baclofen_craving_effect=0.0)
_TINY = dict(n_baclofen=6, n_placebo=6, voxel_size_mm=8, smooth_noise_fwhm_mm=16.0, n_asl_pairs=10, n_task_volumes=90)

_PAPER = BaclofenStudyParams()

#: ``paper`` has the published group sizes; ``null`` is the same study with every
#: planted effect set to zero (cue responses themselves remain); tiny ones for tests;
#: each ``threat_*`` preset is ``null`` with one threat present (:data:`THREATS`).
BACLOFEN_PRESETS: dict[str, dict] = {
    "paper": {},
    "null": dict(_NULL),
    "tiny": dict(_TINY),
    "tiny_null": {**_TINY, **_NULL},
    # baclofen raises the dlPFC CBF (as at paper) and lowers the cue response directly, by as much as the
    # paper's indirect effect at the peak of the cue regions; the CBF rise and the cue response are not linked
    "threat_direct_cue": {
        **_NULL,
        "dlpfc_cbf_rise": _PAPER.dlpfc_cbf_rise,
        "baclofen_cue_effect": _PAPER.dlpfc_cbf_rise * _PAPER.cue_dlpfc_coupling,
    },
    # baclofen raises CBF everywhere by 15 %, nothing in the dlPFC in particular
    "threat_global_cbf": {**_NULL, "baclofen_global_cbf": 0.15},
    # the first path of the mediation is there (the dlPFC CBF rise), the second (CBF-cue coupling) is not
    "threat_mediation_partial_null": {**_NULL, "dlpfc_cbf_rise": _PAPER.dlpfc_cbf_rise},
    # the baclofen group's changes spread twice as wide as placebo's, with the same mean
    "threat_unequal_variance": {**_NULL, "baclofen_change_sd_ratio": 2.0},
}

#: What each threat preset could fake: the claim ids (of :mod:`craving_circuits.verdict.claims`) for which it
#: is a null with the threat present, and the threat in one sentence.
THREATS: dict[str, dict] = {
    "threat_direct_cue": {
        "claims": ("cbf_rise_insula", "cbf_rise_vmpfc", "baclofen_via_dlpfc"),
        "threat": "Baclofen lowers the cue response by a route of its own (c' != 0) while raising dlPFC CBF, "
        "with no link between the two: pooled over groups, the drug's two effects look like a CBF-cue "
        "association.",
    },
    "threat_global_cbf": {
        "claims": ("baclofen_dlpfc_cbf", "baclofen_via_dlpfc"),
        "threat": "Baclofen raises CBF everywhere, not in the dlPFC in particular: an unadjusted group x time "
        "test reads the global rise as a regional one.",
    },
    "threat_mediation_partial_null": {
        "claims": ("baclofen_via_dlpfc", "cbf_rise_insula", "cbf_rise_vmpfc"),
        "threat": "Baclofen raises dlPFC CBF (a != 0) but the CBF rise does not change the cue response "
        "(b = 0): a test of the indirect effect that is liberal under this partial null reports mediation.",
    },
    "threat_unequal_variance": {
        "claims": ("baclofen_dlpfc_cbf", "baclofen_craving", "baclofen_via_dlpfc"),
        "threat": "The baclofen group's T2 - T1 changes spread twice as wide as placebo's, with no mean "
        "difference: a pooled-variance test with unequal group sizes misjudges its null distribution.",
    },
}


def baclofen_params(preset: str = "paper", **overrides) -> BaclofenStudyParams:
    """Parameters of a preset, with any field overridden by keyword."""
    return resolve_params(BaclofenStudyParams, BACLOFEN_PRESETS, preset, overrides)


# --------------------------------------------------------------------------- participants and ratings


def simulate_baclofen_participants(params: BaclofenStudyParams) -> pd.DataFrame:
    """One row per participant: observed measures and latent (planted) variables.

    Returns
    -------
    participants : pandas.DataFrame
        Observed ``participant_id, group, age, sex, cigarettes_per_day, ftnd``;
        latent ``cbf_global`` (fraction), ``dlpfc_rise`` (ml/100 g/min),
        ``cue_response`` (% at T1), ``motion_propensity``, and the physiology
        the images are made with: ``labeling_efficiency`` (before background
        suppression), ``arrival_scale`` (factor of every arterial transit
        time), and per cue region ``hrf_delay_<roi>`` and
        ``hrf_dispersion_<roi>`` (s) of the participant's haemodynamic response.
    """
    return pd.DataFrame(participant_columns(params))


def participant_columns(params: BaclofenStudyParams) -> dict[str, np.ndarray]:
    """The columns of :func:`simulate_baclofen_participants`, as arrays of shape (n_participants,).

    The functions below that take participants take these columns (a mapping of arrays) or the table alike.
    """
    rng = np.random.default_rng([params.seed, 20])
    n = params.n_baclofen + params.n_placebo
    groups = np.array(["baclofen"] * params.n_baclofen + ["placebo"] * params.n_placebo)
    rng.shuffle(groups)
    spread = np.where(groups == "baclofen", params.baclofen_change_sd_ratio, 1.0)
    rise = np.where(groups == "baclofen", params.dlpfc_cbf_rise, 0.0) + spread * rng.normal(0, params.dlpfc_rise_sd, n)
    width = max(2, len(str(n)))
    table = {
        "participant_id": np.array([f"sub-{i + 1:0{width}d}" for i in range(n)], dtype=object),
        "group": groups,
        "age": np.clip(np.rint(rng.normal(42, 11, n)), 18, 65).astype(int),
        "sex": np.where(rng.random(n) < 0.63, "M", "F"),
        "cigarettes_per_day": np.clip(np.rint(rng.normal(16, 6, n)), 5, 40).astype(int),
        "ftnd": np.clip(np.rint(rng.normal(5, 2, n)), 0, 10).astype(int),
        "cbf_global": rng.normal(0, params.cbf_subject_sd, n),
        "dlpfc_rise": rise,
        "cue_response": params.cue_response_pct + rng.normal(0, params.cue_response_sd, n),
        "motion_propensity": np.exp(rng.normal(0, 0.4, n)),
    }
    # drawn after the columns above, which therefore do not depend on these parameters
    table["labeling_efficiency"] = np.clip(
        rng.normal(params.labeling_efficiency, params.labeling_efficiency_sd, n), 0.5, 1
    )
    table["arrival_scale"] = np.exp(rng.normal(0, params.arrival_time_subject_sd, n))
    delay = np.clip(rng.normal(params.hrf_delay_mean, params.hrf_delay_sd, (n, len(CUE_ROIS))), 3.0, 10.0)
    dispersion = GLOVER_DISPERSION * np.exp(rng.normal(0, params.hrf_dispersion_sd, (n, len(CUE_ROIS))))
    for j, roi in enumerate(CUE_ROIS):
        table[f"hrf_delay_{roi}"] = delay[:, j]
        table[f"hrf_dispersion_{roi}"] = dispersion[:, j]
    return table


OBSERVED_COLUMNS = ["participant_id", "group", "age", "sex", "cigarettes_per_day", "ftnd"]


def simulate_baclofen_ratings(participants: pd.DataFrame, params: BaclofenStudyParams) -> pd.DataFrame:
    """Craving before and after cue exposure, per participant and session (VAS 0-100).

    Returns
    -------
    ratings : pandas.DataFrame
        ``participant_id, session_id, timepoint, craving``; rows run over
        participants, :data:`SESSIONS`, then ``pre`` and ``post``.
    """
    return pd.DataFrame(rating_columns(participants, params))


def rating_columns(participants, params: BaclofenStudyParams) -> dict[str, np.ndarray]:
    """The columns of :func:`simulate_baclofen_ratings`, as arrays (every rating at once)."""
    rng = np.random.default_rng([params.seed, 21])
    ids = np.asarray(participants["participant_id"])
    group = np.asarray(participants["group"])[:, None]
    n, n_s = len(ids), len(SESSIONS)
    session = np.array(SESSIONS)[None, :]
    pre = rng.normal(35, 12, (n, n_s))
    rise = params.craving_cue_rise + rng.normal(0, params.craving_sd, (n, n_s)) * t2_spreads(group, session, params)
    rise = rise + np.where((session == "ses-T2") & (group == "baclofen"), params.baclofen_craving_effect, 0.0)
    values = np.stack([pre, pre + rise], axis=-1)  # (n, sessions, pre/post)
    return {
        "participant_id": np.repeat(ids, n_s * 2),
        "session_id": np.tile(np.repeat(np.array(SESSIONS, dtype=object), 2), n),
        "timepoint": np.tile(np.array(["pre", "post"], dtype=object), n * n_s),
        "craving": np.clip(np.round(values), 0, 100).ravel().astype(float),
    }


def t2_spreads(group, session, params: BaclofenStudyParams) -> np.ndarray:
    """Factor on a session's fluctuations: ``baclofen_change_sd_ratio`` at T2 under baclofen, else 1.

    ``group`` and ``session`` are arrays that broadcast together; the result has their shape.
    """
    t2_baclofen = (np.asarray(session) == "ses-T2") & (np.asarray(group) == "baclofen")
    return np.where(t2_baclofen, params.baclofen_change_sd_ratio, 1.0)


def t2_spread(participant, session: str, params: BaclofenStudyParams) -> float:
    """:func:`t2_spreads` of one participant (a row with ``group``) and session."""
    return float(t2_spreads(participant.group, session, params))


def cue_responses(cue_response, dlpfc_rise, group, session, params: BaclofenStudyParams) -> np.ndarray:
    """Planted smoking-minus-neutral cue response (%) of participants and sessions.

    Parameters
    ----------
    cue_response, dlpfc_rise, group, session : array_like
        The participants' T1 response and dlPFC CBF rise (columns of
        :func:`simulate_baclofen_participants`), their group and the session;
        they broadcast together (e.g. shape (n, 1) and (1, 2)).
    params : BaclofenStudyParams

    Returns
    -------
    response : ndarray, the broadcast shape
    """
    t2 = np.asarray(session) == "ses-T2"
    change = np.where(t2, params.cue_dlpfc_coupling * np.asarray(dlpfc_rise, dtype=float), 0.0)
    change = change + np.where(t2 & (np.asarray(group) == "baclofen"), params.baclofen_cue_effect, 0.0)
    return np.asarray(cue_response, dtype=float) + change


def cue_response(participant, session: str, params: BaclofenStudyParams) -> float:
    """:func:`cue_responses` of one participant (a row of :func:`simulate_baclofen_participants`) and session."""
    return float(cue_responses(participant.cue_response, participant.dlpfc_rise, participant.group, session, params))


def planted_baclofen_effects(params: BaclofenStudyParams) -> list[dict]:
    """The effects planted in the study, in the form of the cocaine study's ground truth.

    CBF changes and cue responses are planted amounts at the peaks of their
    planted regions (:mod:`craving_circuits.simulate.regions`); the analysis
    ROIs overlap the regions only in part, so their means change by less
    (``region_overlap``'s ``roi_mean_weight`` is the share, before jitter).
    """
    cbf = "ml/100 g/min at the peak of the planted region"
    rows = [
        (
            "group_x_time_dlpfc_cbf",
            "Baclofen minus placebo in the T2 - T1 change of right-dlPFC CBF",
            cbf,
            params.dlpfc_cbf_rise,
        ),
        ("time_dlpfc_cbf_placebo", "T2 - T1 change of right-dlPFC CBF under placebo", cbf, 0.0),
        ("cbf_change_elsewhere", "Group x time change of CBF anywhere but the right dlPFC", cbf, 0.0),
        (
            "cue_response_t1",
            "Smoking minus neutral cue response in anterior ventral insula and vmPFC at T1",
            "% signal at the peak of the planted regions",
            params.cue_response_pct,
        ),
        (
            "dlpfc_rise_cue_change",
            "Change of the cue response (T2 - T1) per ml/100 g/min of dlPFC CBF rise, "
            "anterior ventral insula and vmPFC",
            "% per ml/100 g/min",
            params.cue_dlpfc_coupling,
        ),
        (
            "cue_change_elsewhere",
            "Association of the dlPFC CBF rise with the cue-response change anywhere else",
            "% per ml/100 g/min",
            0.0,
        ),
        (
            "baclofen_global_cbf",
            "Change of global CBF at T2 under baclofen (fraction), everywhere",
            "fraction",
            params.baclofen_global_cbf,
        ),
        (
            "baclofen_cue_direct",
            "Direct effect of baclofen on the T2 cue response, not through the dlPFC CBF rise",
            "% signal",
            params.baclofen_cue_effect,
        ),
        (
            "group_x_time_craving",
            "Baclofen minus placebo in the T2 - T1 change of cue-induced craving",
            "VAS points",
            params.baclofen_craving_effect,
        ),
        (
            "indirect_effect_cue",
            "Indirect effect of baclofen on the cue-response change through the dlPFC CBF rise",
            "% signal",
            params.dlpfc_cbf_rise * params.cue_dlpfc_coupling,
        ),
    ]
    return [
        {"effect": e, "description": d, "scale": s, "planted": float(v), "present": bool(abs(v) > 0)}
        for e, d, s, v in rows
    ]


# --------------------------------------------------------------------------- images


def cue_events(params: BaclofenStudyParams) -> pd.DataFrame:
    """Blocks of the cue task: neutral and smoking cues alternating, 10 s fixation between blocks.

    Returns
    -------
    events : pandas.DataFrame
        BIDS ``onset, duration, trial_type`` (seconds), blocks that end before
        the run does.
    """
    length = params.n_task_volumes * params.task_repetition_time
    rows, onset, kinds = [], 10.0, ("neutral", "smoking")
    i = 0
    while onset + params.cue_block_s <= length:
        rows.append({"onset": onset, "duration": params.cue_block_s, "trial_type": kinds[i % 2]})
        onset += params.cue_block_s + 10.0
        i += 1
    return pd.DataFrame(rows)


def _block_regressors(
    params: BaclofenStudyParams, delay: float = 6.0, dispersion: float = GLOVER_DISPERSION
) -> dict[str, np.ndarray]:
    """Response to each kind of cue block through a double-gamma HRF with this delay and dispersion.

    The boxcar of the blocks convolved with the HRF of unit area, as nilearn
    builds a GLM's regressors (a 20 s block peaks at about 1.5). The defaults
    are Glover's HRF (the analysis's); the undershoot follows the peak by
    Glover's 6 s.

    Returns
    -------
    dict of str -> ndarray, shape (n_task_volumes,)
        ``neutral`` and ``smoking``.
    """

    def hrf(t_r, oversampling=50, time_length=32.0, onset=0.0):
        return double_gamma_hrf(
            t_r, oversampling, time_length, onset, delay=delay, undershoot=delay + 6.0, dispersion=dispersion
        )

    events = cue_events(params)
    frame_times = np.arange(params.n_task_volumes) * params.task_repetition_time
    out = {}
    for kind in ("neutral", "smoking"):
        sub = events[events["trial_type"] == kind]
        cond = np.vstack([sub["onset"], sub["duration"], np.ones(len(sub))])
        reg, _ = compute_regressor(cond, hrf, frame_times)
        out[kind] = reg[:, 0]
    return out


def _cue_boxcar(params: BaclofenStudyParams, kind: str = "smoking") -> np.ndarray:
    """1 at the volumes acquired during a block of ``kind``, else 0: shape (n_task_volumes,)."""
    events = cue_events(params)
    times = np.arange(params.n_task_volumes) * params.task_repetition_time
    sub = events[events["trial_type"] == kind]
    inside = (times[:, None] >= sub["onset"].to_numpy()) & (
        times[:, None] < (sub["onset"] + sub["duration"]).to_numpy()
    )
    return inside.any(axis=1).astype(float)


class _Maps:
    """Maps on the analysis grid: tissue, M0 and the footprints of the planted CBF rise and cue response.

    ``dlpfc`` (the rise) and ``cue`` are footprints over the mask's voxels,
    maximum 1, built from the planted regions of
    :mod:`craving_circuits.simulate.regions`. ``_Maps(params)`` holds the
    template (no jitter); the study's sessions use ``maps.participant(p_idx)``,
    the same maps with that participant's jittered footprints.
    """

    def __init__(self, params: BaclofenStudyParams):

        self.geometry = build_geometry(params)
        g = self.geometry
        mask_img = brain_mask(params.voxel_size_mm)
        self.mask, self.affine = g.mask, g.affine
        total = np.maximum(g.gm + g.wm + g.csf, 1e-6)
        self.cbf_base = (params.gm_cbf * g.gm + params.wm_cbf * g.wm) / total
        self.m0 = params.m0_scale * (1.0 * g.gm + 0.85 * g.wm + 1.2 * g.csf) / total
        self.m0 = np.maximum(self.m0, 0.2 * params.m0_scale)
        self.planted = PlantedFootprints("baclofen", g.mask, g.affine, g.gm, params.seed)
        self._set_footprints(self.planted.template())
        self.dlpfc_roi = roi_mask("dlpfc_right", mask_img)[self.mask]  # for the ground truth only
        static = np.zeros(self.mask.shape)
        static[self.mask] = self.m0
        zooms = np.abs(np.diag(self.affine)[:3])
        self.gradient_z = (np.gradient(static, zooms[2], axis=2))[self.mask]  # signal per mm along z

    def _set_footprints(self, stack: np.ndarray) -> None:
        rois = self.planted.rois
        self.dlpfc = stack[rois.index("dlpfc_right")].astype(np.float64)
        cue = sum(stack[rois.index(name)].astype(np.float64) for name in CUE_ROIS)
        self.cue = cue / cue.max()

    def participant(self, participant_index: int) -> _Maps:
        """These maps with the footprints of one participant (their anatomical jitter)."""
        out = copy.copy(self)
        out._set_footprints(self.planted.participant(participant_index))
        return out


def global_scales(cbf_global, group, session, fluctuation, params: BaclofenStudyParams) -> np.ndarray:
    """The factor that scales a session's whole CBF map, for participants and sessions.

    The participant's level ``cbf_global``, the session's ``fluctuation``
    (a draw of N(0, ``cbf_session_sd``), wider by ``baclofen_change_sd_ratio``
    at T2 under baclofen) and, at T2 under baclofen, the drug's effect on
    global flow. The arguments broadcast together; the result has their shape.
    """
    spread = t2_spreads(group, session, params)
    t2_baclofen = (np.asarray(session) == "ses-T2") & (np.asarray(group) == "baclofen")
    scale = (1 + np.asarray(cbf_global, dtype=float)) * (1 + np.asarray(fluctuation, dtype=float) * spread)
    return scale * np.where(t2_baclofen, 1 + params.baclofen_global_cbf, 1.0)


def global_scale(participant, session: str, params: BaclofenStudyParams, rng) -> float:
    """:func:`global_scales` of one participant and session, its fluctuation one draw from ``rng``."""
    fluctuation = rng.normal(0, params.cbf_session_sd)
    return float(global_scales(participant.cbf_global, participant.group, session, fluctuation, params))


@dataclass(frozen=True)
class _Physiology:
    """What the images are made with beyond the maps: transit times, M0 recovery, cue regions.

    Attributes
    ----------
    arrival_gm, arrival_wm : ndarray, shape (n_voxels,)
        Arterial transit time of each tissue (s) before a participant's scale:
        the tissue's mean, plus ``arrival_time_gradient`` per mm of distance
        from the circle of Willis beyond the tissue's mean distance.
    m0_recovery : ndarray, shape (n_voxels,)
        Fraction of the equilibrium M0 that the M0 scan's repetition time
        leaves: ``1 - exp(-TR / T1)`` of each tissue, weighted by its share of M0.
    cue_region : ndarray of int, shape (n_voxels,)
        Index in :data:`CUE_ROIS` of the planted cue region (template, no
        jitter) whose footprint is largest at the voxel: the region whose HRF
        the voxel's cue response has.
    """

    arrival_gm: np.ndarray
    arrival_wm: np.ndarray
    m0_recovery: np.ndarray
    cue_region: np.ndarray


def _physiology(maps: _Maps, params: BaclofenStudyParams) -> _Physiology:
    g = maps.geometry
    xyz = voxel_coordinates_mm(maps.mask.shape, maps.affine)[maps.mask]
    distance = np.linalg.norm(xyz - np.asarray(CIRCLE_OF_WILLIS_MM), axis=1)

    def arrival(mean: float, weights: np.ndarray) -> np.ndarray:
        return np.maximum(mean + params.arrival_time_gradient * (distance - np.average(distance, weights=weights)), 0.1)

    fractions = {"gm": g.gm, "wm": g.wm, "csf": g.csf}
    t1 = {"gm": params.t1_gm, "wm": params.t1_wm, "csf": params.t1_csf}
    full = sum(PROTON_DENSITY[k] * fractions[k] for k in fractions)
    recovered = sum(
        PROTON_DENSITY[k] * fractions[k] * (1 - np.exp(-params.m0_repetition_time / t1[k])) for k in fractions
    )
    template = maps.planted.template()
    to_region = [template[maps.planted.rois.index(name)] for name in CUE_ROIS]  # planted regions, not the ROIs
    return _Physiology(
        arrival_gm=arrival(params.gm_arrival_time, g.gm),
        arrival_wm=arrival(params.wm_arrival_time, g.wm),
        m0_recovery=np.where(full > 1e-6, recovered / np.maximum(full, 1e-6), 1.0),
        cue_region=np.argmax(to_region, axis=0),
    )


def true_cbf(
    maps: _Maps, participant, session: str, params: BaclofenStudyParams, rng, with_scale: bool = False
) -> np.ndarray | tuple[np.ndarray, float]:
    """Ground-truth CBF of one session (ml/100 g/min), shape (n_voxels,).

    With ``with_scale``, also the session's global scale (the factor of the
    baseline map); the draws from ``rng`` are the same either way.
    """
    scale = global_scale(participant, session, params, rng)
    spread = params.cbf_regional_sd * t2_spread(participant, session, params)
    regional = maps.geometry.noise.sample(rng, 16)[0] * spread * maps.geometry.gm  # one smooth volume
    rise = participant.dlpfc_rise * maps.dlpfc if session == "ses-T2" else 0.0
    cbf = maps.cbf_base * scale + regional + rise
    return (cbf, scale) if with_scale else cbf


def asl_difference(
    maps: _Maps, physiology: _Physiology, participant, cbf: np.ndarray, scale: float, params: BaclofenStudyParams
) -> np.ndarray:
    """Control - label difference of one session by Buxton's kinetic model, tissue by tissue.

    A voxel's CBF is split into white matter's share (its fraction times the
    white-matter CBF, globally scaled) and grey matter's (the rest: baseline,
    regional variation, the planted rise). Each share gives label with its
    tissue's transit time (scaled by the participant's ``arrival_scale``), T1
    and partition coefficient (:func:`craving_circuits.simulate.kinetics.buxton_pcasl_difference`;
    the flow in ``T1'`` is the tissue's globally scaled baseline), with the
    participant's labelling efficiency times the survival of the
    background-suppression pulses, from arterial blood of M0
    ``m0_scale / gm_blood_partition``.

    Returns
    -------
    delta_m : ndarray, shape (n_voxels,)
    """
    g = maps.geometry
    c = params.asl_constants
    total = np.maximum(g.gm + g.wm + g.csf, 1e-6)
    wm_share = scale * params.wm_cbf * g.wm / total
    shares = {"gm": cbf - wm_share, "wm": wm_share}
    tissue = {
        "gm": (scale * params.gm_cbf, physiology.arrival_gm, params.t1_gm),
        "wm": (scale * params.wm_cbf, physiology.arrival_wm, params.t1_wm),
    }
    efficiency = participant.labeling_efficiency * params.background_pulse_efficiency**c.n_background_pulses
    delta_m = np.zeros_like(cbf, dtype=float)
    for name, (flow, arrival, t1) in tissue.items():
        per_unit = (
            buxton_pcasl_difference(
                flow,
                arrival * participant.arrival_scale,
                c.post_labeling_delay,
                c.labeling_duration,
                t1_tissue=t1,
                t1_blood=c.t1_blood,
                efficiency=efficiency,
                m0_blood=params.m0_scale / params.gm_blood_partition,
                partition=params.gm_blood_partition * PROTON_DENSITY[name],
            )
            / flow
        )
        delta_m += shares[name] * per_unit
    return delta_m


def simulate_asl_run(
    maps: _Maps, physiology: _Physiology, participant, p_idx: int, s_idx: int, params: BaclofenStudyParams
) -> dict:
    """One pCASL run: label/control series, M0 scan and the true CBF.

    The difference is Buxton's kinetic model (:func:`asl_difference`), not the
    white paper's; the M0 scan is the equilibrium M0 times the recovery its
    repetition time allows.

    Returns
    -------
    dict with ``series`` (n_volumes, n_voxels) float32 in label, control order,
    ``m0`` (2, n_voxels), ``cbf`` (n_voxels,) the truth.
    """
    rng = np.random.default_rng([params.seed, 22, p_idx, s_idx])
    cbf, scale = true_cbf(maps, participant, SESSIONS[s_idx], params, rng, with_scale=True)
    delta_m = asl_difference(maps, physiology, participant, cbf, scale, params)
    n = 2 * params.n_asl_pairs
    sd = params.asl_noise_pct / 100 * params.m0_scale
    steps = rng.normal(0, params.asl_motion_mm * participant.motion_propensity, n)
    displacement = np.cumsum(steps) - np.cumsum(steps).mean()
    static = params.static_fraction * maps.m0
    series = static[None, :] + displacement[:, None] * params.static_fraction * maps.gradient_z[None, :]
    series = series + rng.normal(0, sd, series.shape)
    series[0::2] -= delta_m  # label volumes first in each pair
    m0 = (maps.m0 * physiology.m0_recovery)[None, :] * (1 + rng.normal(0, 0.01, (2, maps.m0.size)))
    return {"series": series.astype(np.float32), "m0": m0.astype(np.float32), "cbf": cbf.astype(np.float32)}


def simulate_task_run(
    maps: _Maps, physiology: _Physiology, participant, p_idx: int, s_idx: int, params: BaclofenStudyParams
) -> dict:
    """One smoking-cue BOLD run (percent-signal model on the baseline image) and its motion.

    Each cue region responds through the participant's own HRF for it
    (``hrf_delay_<roi>``, ``hrf_dispersion_<roi>``), not the canonical one the
    analysis models; the head moves more during smoking-cue blocks (a held
    displacement and a higher rate of abrupt movements).

    Returns
    -------
    dict with ``data`` (n_volumes, n_voxels) int16, ``motion`` (n_volumes, 6)
    as estimated (with error), ``cue`` (n_voxels,) the true smoking - neutral
    effect: the contrast of a GLM whose regressors are built with each region's
    own HRF, fitted to the response alone (% signal per unit of regressor, the
    unit of the analysis's effect maps; a block's peak response, which the
    parameters give, is about 1.5 units).
    """
    g = maps.geometry
    rng = np.random.default_rng([params.seed, 23, p_idx, s_idx])
    n_t, t_r = params.n_task_volumes, params.task_repetition_time
    amp = cue_response(participant, SESSIONS[s_idx], params)
    y = np.zeros((n_t, maps.cue.size))
    effect = np.zeros(maps.cue.size)
    for r, roi in enumerate(CUE_ROIS):
        reg = _block_regressors(
            params, getattr(participant, f"hrf_delay_{roi}"), getattr(participant, f"hrf_dispersion_{roi}")
        )
        peak = {kind: reg[kind].max() for kind in reg}  # the parameters give the response at a block's peak
        weights = {"neutral": params.neutral_response_pct, "smoking": params.neutral_response_pct + amp}
        response = sum(weights[kind] / peak[kind] * reg[kind] for kind in weights)
        inside = physiology.cue_region == r
        y[:, inside] = response[:, None] * maps.cue[inside][None, :]
        effect[inside] = (weights["smoking"] / peak["smoking"] - weights["neutral"] / peak["neutral"]) * maps.cue[
            inside
        ]
    y = y + params.task_noise_sd * g.noise.sample(rng, n_t, 0.4)
    y += params.task_white_noise_sd * rng.standard_normal(y.shape)
    y += 0.3 * band_limited_noise(rng, n_t, 1, t_r)
    t = np.linspace(-1, 1, n_t)[:, None]
    y += t * rng.standard_normal(y.shape[1]) * 1.0
    smoking = _cue_boxcar(params, "smoking")
    motion = random_motion(
        rng,
        n_t,
        step_mm=params.motion_step_mm * participant.motion_propensity,
        n_spikes=rng.poisson(1.0 * participant.motion_propensity),
        spike_weights=1.0 + (params.cue_spike_ratio - 1.0) * smoking,
    )
    held = rng.normal(0, params.cue_motion_mm * participant.motion_propensity, 6) / np.array([1.0] * 3 + [50.0] * 3)
    motion = motion + smoking[:, None] * held[None, :]
    y += 0.5 * (motion - motion.mean(axis=0)) @ g.loadings
    data = g.baseline * (1.0 + y / 100.0)
    error = rng.standard_normal((n_t, 6)) * np.array([0.005] * 3 + [0.0001] * 3)
    return {
        "data": np.clip(np.rint(data), 0, np.iinfo(np.int16).max).astype(np.int16),
        "motion": motion + error,
        "cue": effect.astype(np.float32),
    }


def asl_paths(root: Path, participant_id: str, session_id: str) -> dict[str, Path]:
    """BIDS paths of one session's perfusion files."""
    folder = Path(root) / participant_id / session_id / "perf"
    stem = f"{participant_id}_{session_id}"
    return {
        "asl": folder / f"{stem}_asl.nii.gz",
        "asl_json": folder / f"{stem}_asl.json",
        "aslcontext": folder / f"{stem}_aslcontext.tsv",
        "m0": folder / f"{stem}_m0scan.nii.gz",
        "m0_json": folder / f"{stem}_m0scan.json",
    }


def truth_map_paths(participant_id: str, session_id: str) -> dict[str, str]:
    """Paths of one session's true maps, relative to ``derivatives/simulation``.

    ``cbf``: the true CBF (ml/100 g/min); ``cue``: the true smoking - neutral
    cue response (% signal at the peak of a block). Both float32 on the
    study's grid, NaN outside the simulator's brain mask.
    """
    stem = f"{participant_id}/{session_id}/{participant_id}_{session_id}"
    return {"cbf": f"{stem}_desc-true_cbf.nii.gz", "cue": f"{stem}_task-{TASK}_desc-truecue_effect.nii.gz"}


def _truth_volume(maps: _Maps, values: np.ndarray, zooms: tuple) -> nib.Nifti1Image:
    """Values over the mask as a float32 image, NaN elsewhere."""
    vol = np.full(maps.mask.shape, np.nan, dtype=np.float32)
    vol[maps.mask] = values
    img = nib.Nifti1Image(vol, maps.affine)
    img.header.set_zooms(zooms)
    img.header.set_xyzt_units("mm", "sec")
    return img


def _volume(maps: _Maps, values: np.ndarray, zooms: tuple) -> nib.Nifti1Image:
    """Values over the mask as an int16 image (as a scanner writes it; rounding is far below the noise)."""
    values = np.atleast_2d(values)
    vol = np.zeros(maps.mask.shape + (values.shape[0],), dtype=np.int16, order="F")
    vol[maps.mask] = np.clip(np.rint(values), np.iinfo(np.int16).min, np.iinfo(np.int16).max).T
    img = nib.Nifti1Image(vol if values.shape[0] > 1 else vol[..., 0], maps.affine)
    img.header.set_zooms(zooms[: img.ndim])
    img.header.set_xyzt_units("mm", "sec")
    return img


def _write_session(
    maps: _Maps, physiology: _Physiology, participant, p_idx: int, s_idx: int, params: BaclofenStudyParams, root: Path
) -> dict:
    maps = maps.participant(p_idx)  # this participant's planted regions
    session = SESSIONS[s_idx]
    pid = participant.participant_id
    vox = (float(params.voxel_size_mm),) * 3
    # perfusion
    asl_run = simulate_asl_run(maps, physiology, participant, p_idx, s_idx, params)
    paths = asl_paths(root, pid, session)
    write_nifti(paths["asl"], _volume(maps, asl_run["series"], vox + (4.0,)))
    write_tsv(paths["aslcontext"], pd.DataFrame({"volume_type": ["label", "control"] * params.n_asl_pairs}))
    write_json(
        paths["asl_json"],
        {
            "ArterialSpinLabelingType": "PCASL",
            "PostLabelingDelay": params.post_labeling_delay,
            "LabelingDuration": params.labeling_duration,
            "M0Type": "Separate",
            "BackgroundSuppression": params.background_suppression_pulses > 0,
            **(
                {"BackgroundSuppressionNumberPulses": params.background_suppression_pulses}
                if params.background_suppression_pulses
                else {}
            ),
            "RepetitionTimePreparation": 4.0,
            "MagneticFieldStrength": 3,
            "GeneratedBy": GENERATOR_NAME,
        },
    )
    write_nifti(paths["m0"], _volume(maps, asl_run["m0"], vox + (4.0,)))
    write_json(
        paths["m0_json"],
        {"IntendedFor": str(paths["asl"].relative_to(root)), "RepetitionTimePreparation": params.m0_repetition_time},
    )
    # cue task
    task = simulate_task_run(maps, physiology, participant, p_idx, s_idx, params)
    fmriprep_dir = root / "derivatives" / "fmriprep"
    files = run_files(fmriprep_dir, pid, session, TASK)
    n_t = params.n_task_volumes
    vol = np.zeros(maps.mask.shape + (n_t,), dtype=np.int16, order="F")
    vol[maps.mask] = task["data"].T
    img = nib.Nifti1Image(vol, maps.affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_zooms(vox + (params.task_repetition_time,))
    write_nifti(files.bold, img)
    write_json(
        files.bold_json,
        {
            "RepetitionTime": params.task_repetition_time,
            "TaskName": TASK,
            "SkullStripped": True,
            "GeneratedBy": GENERATOR_NAME,
        },
    )
    write_nifti(files.mask, nib.Nifti1Image(maps.mask.astype(np.uint8), maps.affine))
    g = maps.geometry
    confounds, meta = compute_confounds(
        task["data"].astype(np.float64), task["motion"], params.task_repetition_time, g.wm_index, g.csf_index
    )
    write_tsv(files.confounds, confounds, float_format="%.8g")
    write_json(files.confounds_json, meta)
    events_path = root / pid / session / "func" / f"{pid}_{session}_task-{TASK}_events.tsv"
    write_tsv(events_path, cue_events(params))
    fd = np.nan_to_num(framewise_displacement(task["motion"]))
    # the true maps, in the ground-truth folder (the analysis reads them only to compare)
    truth_maps = truth_map_paths(pid, session)
    sim_dir = root / "derivatives" / "simulation"
    write_nifti(sim_dir / truth_maps["cbf"], _truth_volume(maps, asl_run["cbf"], vox))
    write_nifti(sim_dir / truth_maps["cue"], _truth_volume(maps, task["cue"], vox))
    truth_cbf = {
        "participant_id": pid,
        "session_id": session,
        "dlpfc_cbf": float(np.average(asl_run["cbf"], weights=maps.dlpfc)),
        "dlpfc_roi_cbf": float(asl_run["cbf"][maps.dlpfc_roi].mean()),
        "gm_cbf": float(np.average(asl_run["cbf"], weights=g.gm)),
        "cue_response": cue_response(participant, session, params),
        "task_mean_fd": float(fd.mean()),
        "true_cbf_map": truth_maps["cbf"],
        "true_cue_map": truth_maps["cue"],
    }
    return truth_cbf


def simulate_baclofen_study(
    out_dir: str | Path,
    preset: str = "paper",
    *,
    n_jobs: int = 1,
    replace: bool = False,
    progress: bool = False,
    **overrides,
) -> Path:
    """Write a simulated baclofen study (BIDS ``perf/`` + fMRIPrep-style task derivatives).

    The study is complete when ``derivatives/simulation/ground_truth.json``
    exists (written last); calling again with the same parameters returns at
    once. Each session is a pure function of the parameters and its indices,
    simulated in parallel.

    Parameters
    ----------
    out_dir : path
    preset : str
        One of :data:`BACLOFEN_PRESETS`.
    n_jobs, replace, progress, **overrides
        As for :func:`craving_circuits.simulate.cocaine.simulate_cocaine_study`.

    Returns
    -------
    out_dir : pathlib.Path
    """

    params = baclofen_params(preset, **overrides)
    out = Path(out_dir)
    truth_path = out / "derivatives" / "simulation" / "ground_truth.json"
    wanted = {"simulator_version": SIMULATOR_VERSION, "parameters": params_to_dict(params)}
    if claim_output_folder(out, wanted, GENERATOR_NAME, replace):
        return out
    description = {
        "Name": "Simulated baclofen study",
        "BIDSVersion": "1.9.0",
        "DatasetType": "raw",
        "GeneratedBy": [{"Name": GENERATOR_NAME, "Version": SIMULATOR_VERSION}],
    }
    write_json(out / "dataset_description.json", description)
    write_text(
        out / "README",
        "Simulated data with planted effects, written by craving_circuits.simulate.baclofen.\n"
        "Not real participants. The planted truth is in derivatives/simulation.\n",
    )
    participants = simulate_baclofen_participants(params)
    write_tsv(out / "participants.tsv", participants[OBSERVED_COLUMNS])
    write_json(
        out / "participants.json",
        {
            "group": {
                "Description": "Randomised treatment",
                "Levels": {"baclofen": "baclofen 80 mg/day", "placebo": "placebo"},
            },
            "cigarettes_per_day": {"Description": "Cigarettes smoked per day"},
            "ftnd": {"Description": "Fagerstrom Test for Nicotine Dependence, 0-10"},
        },
    )
    write_tsv(out / "phenotype" / "craving_ratings.tsv", simulate_baclofen_ratings(participants, params))
    write_json(
        out / "phenotype" / "craving_ratings.json",
        {
            "timepoint": {"Description": "Before (pre) or after (post) the smoking-cue exposure"},
            "craving": {"Description": "Craving for a cigarette, visual analogue scale", "Units": "0-100"},
        },
    )
    write_json(
        out / "derivatives" / "fmriprep" / "dataset_description.json",
        {**description, "Name": "fMRIPrep-style derivatives (simulated)", "DatasetType": "derivative"},
    )

    maps = _Maps(params)
    physiology = _physiology(maps, params)
    jobs = (
        delayed(_write_session)(maps, physiology, p, i, s, params, out)
        for i, p in enumerate(participants.itertuples(index=False))
        for s in range(len(SESSIONS))
    )
    results = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(jobs)
    sessions = pd.DataFrame(
        list(tqdm(results, total=2 * len(participants), desc="simulate sessions", disable=not progress))
    )
    sim_dir = out / "derivatives" / "simulation"
    write_json(
        sim_dir / "dataset_description.json",
        {**description, "Name": "Planted ground truth", "DatasetType": "derivative"},
    )
    write_tsv(sim_dir / "ground_truth_participants.tsv", participants)
    write_tsv(sim_dir / "ground_truth_sessions.tsv", sessions.sort_values(["participant_id", "session_id"]))
    write_json(
        truth_path,
        {
            **wanted,
            "study": "baclofen",
            "space": SPACE,
            "effects": planted_baclofen_effects(params),
            "planted_regions": study_regions("baclofen"),
            "files": {"participants": "ground_truth_participants.tsv", "sessions": "ground_truth_sessions.tsv"},
        },
    )
    return out
