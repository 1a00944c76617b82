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
  adds band-limited noise of SD ``roi_noise`` (relative to the source), which
  attenuates correlations as noise in the voxels does, and the seed-target
  Fisher z, computed with the first level's own functions, gets a further
  run-level error of SD ``run_noise_z`` (what denoising costs in degrees of
  freedom, scrubbing and residual artefacts). The defaults, 0.3 and 0.18,
  match the mean craving rises and the spread of the state differences of the
  image pipeline on the ``paper`` study (controls: SD 0.31 of a session's
  craving - neutral change).
* **baclofen**: each session's right-dlPFC CBF is the analysis ROI's mean of the
  image simulator's model (baseline scaled by global CBF, smooth regional
  variation, the planted rise times the rise footprint, thermal noise of the
  quantified map), adjusted for global CBF by subtraction as
  :func:`craving_circuits.baclofen.perfusion.region_values` does; each run's cue effect
  in an ROI is the planted response times the ROI's mean cue footprint, times
  the share of it that the ROI's GLM recovers (``cue_gain``), plus the GLM's
  estimation noise (``cue_noise_sd``, % signal). The defaults, 0.62 and 0.075,
  match the mean and spread of the image pipeline's T1 estimates on the
  ``paper`` study.

The constants of the baclofen ROI model (ROI means of the footprints and of the
baseline, the SD of the regional variation averaged over the ROI) come from the
image simulator's own maps, once, by :func:`baclofen_roi_model`.

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
  with the same function, so its tables have the first level's scale.
* From :mod:`craving_circuits.io` (allowed to every simulator): the atlas ROIs
  (the planted regions *are* the analysis ROIs here, as in the image
  simulators) and the table schemas.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from craving_circuits.io.atlas import brain_mask, roi_masks
from craving_circuits.io.schemas import ROI_COLUMNS
from craving_circuits.simulate.baclofen import (
    CUE_ROIS,
    OBSERVED_COLUMNS,
    SESSIONS,
    BaclofenStudyParams,
    _Maps,
    cue_response,
    global_scale,
    simulate_baclofen_participants,
    simulate_baclofen_ratings,
)
from craving_circuits.simulate.cocaine import (
    OBSERVED_PARTICIPANT_COLUMNS,
    SOURCES,
    CocaineStudyParams,
    simulate_craving_ratings,
    simulate_mrs,
    simulate_participants,
    simulate_runs_table,
    source_correlation,
)
from craving_circuits.simulate.signals import band_limited_noise, correlated_sources
from craving_circuits.stats.correlation import correlate_columns, fisher_z

__all__ = ["ROI_LEVEL_STRATEGY", "cocaine_roi_study", "BaclofenRoiModel", "baclofen_roi_model", "baclofen_roi_study"]

#: The ``strategy`` label of ROI-level couplings.
ROI_LEVEL_STRATEGY = "roi-level"

_TARGETS = ("dlpfc", "thalamus_midline")


def cocaine_roi_study(
    params: CocaineStudyParams, roi_noise: float = 0.3, run_noise_z: float = 0.18
) -> dict[str, pd.DataFrame]:
    """One simulated cocaine study at ROI level.

    Parameters
    ----------
    params : CocaineStudyParams
        As for the image simulator (its ``seed`` seeds every draw).
    roi_noise : float
        SD of the noise of each ROI signal, relative to its source.
    run_noise_z : float
        SD of the run-level error added to each Fisher z.

    Returns
    -------
    tables : dict
        ``roi`` (4 runs x 2 targets per participant), ``participants``,
        ``ratings`` (with ``group``, as :func:`craving_circuits.cocaine.layout.read_craving_ratings`
        returns them), ``mrs``.
    """

    for name, value in (("roi_noise", roi_noise), ("run_noise_z", run_noise_z)):
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a non-negative number, got {value}.")
    participants = simulate_participants(params)
    runs = simulate_runs_table(participants, params)
    picked = [SOURCES.index(name) for name in ("nacc", *_TARGETS)]
    n_t, t_r = params.n_volumes, params.repetition_time
    rng = np.random.default_rng([params.seed, 31])
    series = band_limited_noise(rng, n_t, 6 * len(runs), t_r)  # one filtering call for all runs
    errors = run_noise_z * rng.standard_normal((len(runs), 2))
    rows = []
    for i, run in enumerate(runs.itertuples(index=False)):
        corr = source_correlation(run.fc_nacc_dlpfc, run.fc_nacc_thalamus)[np.ix_(picked, picked)]
        block = series[:, 6 * i : 6 * i + 6]
        signals = correlated_sources(rng, corr, n_t, t_r, independent=block[:, :3]) + roi_noise * block[:, 3:]
        z = fisher_z(correlate_columns(signals[:, 0], signals[:, 1:])) + errors[i]
        for target, value in zip(_TARGETS, z):
            rows.append(
                (
                    run.participant_id,
                    run.group,
                    run.session_id,
                    run.drug,
                    run.state,
                    ROI_LEVEL_STRATEGY,
                    "nacc",
                    target,
                    float(value),
                )
            )
    ratings = simulate_craving_ratings(participants, params)
    groups = participants.set_index("participant_id")["group"]
    return {
        "roi": pd.DataFrame(rows, columns=ROI_COLUMNS),
        "participants": participants[OBSERVED_PARTICIPANT_COLUMNS].copy(),
        "ratings": ratings.assign(group=ratings["participant_id"].map(groups)),
        "mrs": simulate_mrs(participants, params),
    }


@dataclass(frozen=True)
class BaclofenRoiModel:
    """Constants of the ROI-level baclofen study, from the image simulator's maps.

    Attributes
    ----------
    dlpfc_base : float
        Mean baseline CBF in the right-dlPFC analysis ROI (ml/100 g/min).
    dlpfc_weight : float
        Mean of the planted-rise footprint in that ROI (the rise reaches the
        ROI mean multiplied by it).
    gm_base : float
        Mean baseline CBF of grey matter (the global CBF).
    regional_sd : float
        SD of the ROI mean of the smooth regional CBF variation of a session.
    thermal_sd : float
        SD of the ROI mean of the thermal noise of a quantified CBF map.
    cue_weights : dict
        Mean cue footprint in each cue ROI.
    """

    dlpfc_base: float
    dlpfc_weight: float
    gm_base: float
    regional_sd: float
    thermal_sd: float
    cue_weights: dict


def baclofen_roi_model(params: BaclofenStudyParams, n_draws: int = 200, rng=0) -> BaclofenRoiModel:
    """Derive the ROI-level constants from the image simulator's maps (once per geometry).

    Parameters
    ----------
    params : BaclofenStudyParams
    n_draws : int
        Draws of the smooth regional variation used to estimate its ROI-mean SD.
    rng : numpy Generator, int or None

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
    gm = maps.geometry.gm
    # as true_cbf draws it: the first volume of a 16-volume sample
    regional = np.array([maps.geometry.noise.sample(rng, 16)[0] for _ in range(n_draws)]) * params.cbf_regional_sd * gm
    c = params.asl_constants
    # thermal noise of a voxel's control - label mean over the pairs, quantified like the signal
    sd_delta_m = np.sqrt(2.0 / params.n_asl_pairs) * params.asl_noise_pct / 100 * params.m0_scale
    per_unit = (
        6000
        * c.blood_brain_partition
        * np.exp(c.post_labeling_delay / c.t1_blood)
        / (2 * c.effective_efficiency * c.t1_blood * (1 - np.exp(-c.labeling_duration / c.t1_blood)))
    )
    voxel_sd = per_unit * sd_delta_m / maps.m0[dlpfc]
    return BaclofenRoiModel(
        dlpfc_base=float(maps.cbf_base[dlpfc].mean()),
        dlpfc_weight=float(maps.dlpfc[dlpfc].mean()),
        gm_base=float(np.average(maps.cbf_base, weights=gm)),
        regional_sd=float(regional[:, dlpfc].mean(axis=1).std(ddof=1)),
        thermal_sd=float(np.sqrt((voxel_sd**2).sum()) / dlpfc.sum()),
        cue_weights={name: float(maps.cue[rois[name]].mean()) for name in CUE_ROIS},
    )


def baclofen_roi_study(
    params: BaclofenStudyParams, model: BaclofenRoiModel, cue_gain: float = 0.62, cue_noise_sd: float = 0.075
) -> dict[str, pd.DataFrame]:
    """One simulated baclofen study at ROI level.

    Parameters
    ----------
    params : BaclofenStudyParams
    model : BaclofenRoiModel
        From :func:`baclofen_roi_model` for the same geometry.
    cue_gain : float
        Share of the footprint-weighted response that the ROI's GLM estimate
        recovers.
    cue_noise_sd : float
        SD of a run's ROI cue-effect estimate (% signal).

    Returns
    -------
    tables : dict
        ``cbf`` (right-dlPFC CBF per participant and session, adjusted for
        global CBF), ``cbf_unadjusted`` (the same without the adjustment, with
        the session's global CBF in ``global_cbf``), ``cue`` (cue effect per
        run and ROI), ``ratings``, ``participants``.
    """
    if not np.isfinite(cue_noise_sd) or cue_noise_sd < 0:
        raise ValueError(f"cue_noise_sd must be a non-negative number, got {cue_noise_sd}.")
    participants = simulate_baclofen_participants(params)
    cbf_rows, global_cbf, cue_rows = [], [], []
    for p_idx, p in enumerate(participants.itertuples(index=False)):
        for s_idx, session in enumerate(SESSIONS):
            rng = np.random.default_rng([params.seed, 32, p_idx, s_idx])
            scale = global_scale(p, session, params, rng)
            rise = p.dlpfc_rise * model.dlpfc_weight if session == "ses-T2" else 0.0
            value = model.dlpfc_base * scale + rng.normal(0, model.regional_sd) + rise + rng.normal(0, model.thermal_sd)
            cbf_rows.append(("dlpfc_right", p.participant_id, p.group, session, value))
            global_cbf.append(model.gm_base * scale)
            amp = cue_response(p, session, params)
            for roi in CUE_ROIS:
                cue_rows.append(
                    (
                        p.participant_id,
                        p.group,
                        session,
                        roi,
                        cue_gain * model.cue_weights[roi] * amp + rng.normal(0, cue_noise_sd),
                    )
                )
    raw = pd.DataFrame(cbf_rows, columns=["region", "participant_id", "group", "session_id", "cbf"])
    raw["global_cbf"] = global_cbf
    cbf = raw.drop(columns="global_cbf")
    g = np.asarray(global_cbf)
    cbf["cbf"] -= g - g.mean()  # as region_values with global_cbf
    return {
        "cbf": cbf,
        "cbf_unadjusted": raw,
        "cue": pd.DataFrame(cue_rows, columns=["participant_id", "group", "session_id", "roi", "value"]),
        "ratings": simulate_baclofen_ratings(participants, params),
        "participants": participants[OBSERVED_COLUMNS].copy(),
    }
