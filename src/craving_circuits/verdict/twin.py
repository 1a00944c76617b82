"""The cocaine ROI-level twin's constants, derived from the image simulator and the image pipeline by code.

The calibration simulates thousands of studies at ROI level
(:mod:`craving_circuits.simulate.roi_level`): each run's seed-target Fisher z
is computed from simulated ROI series whose sources carry the run's planted
couplings, diluted by ROI noise, plus a run-level error. How much the ROI
means dilute the planted couplings (the planted regions overlap the analysis
ROIs only in part, and noise fills every voxel) and how much run-level error
the denoising leaves are properties of the image simulator and the image
pipeline together; this module measures them there, so that the twin's
constants are not set by hand.

Method
------
1. Simulate a cocaine study with the image simulator (the ``paper`` preset,
   fewer participants), run the seed chapter's first level on it with the
   book's default denoising, and pair each run's ROI Fisher z with the run's
   planted source coupling (:func:`craving_circuits.simulate.cocaine.simulate_runs_table`).
2. Per target, regress ``tanh(z_roi)`` on ``tanh(z_planted)`` by least squares
   with one intercept per session (so that only the craving - neutral
   differences that the chapters test inform the slope): the slope is the
   dilution ``k`` of the planted state effects. The
   twin dilutes a correlation by ``1 / (1 + a^2)`` when the ROI series of the
   seed and the target both carry noise of SD ``a`` relative to their sources;
   here the seed's noise is ``a_seed`` (from the dilution averaged over the
   targets) and each target's ``a_t`` solves
   ``k_t = 1 / sqrt((1 + a_seed^2) (1 + a_t^2))``. The twin's own fit on
   studies of the same design then corrects these noises once for the bias of
   the estimator (the twin's fitted dilution is matched to the image
   pipeline's, not only its population value).
3. The share of the state-dependent nuisance that the default denoising
   leaves (``nuisance_leak``): beside ``tanh(z_planted)``, each run's
   full-size nuisance variance in the twin's model
   (:func:`nuisance_variance`) enters a second within-session fit, whose slope
   says how much the image pipeline's couplings rise with the nuisance a run
   carries; the share is the one at which the twin's couplings give the same
   slope in the same fit (a root search over ``0 .. MAX_LEAK``; 0 when the
   image pipeline's slope is no larger than the twin's without any nuisance).
4. The residual spread of the image pipeline's z around its fit (within
   sessions) is the twin's
   sampling spread (its band-limited series, simulated with those noises, that
   share of the nuisance and no run-level error on the same planted couplings)
   plus the run-level error:
   ``run_noise_z_t = sqrt(max(0, var_image - var_twin))``.

The baclofen twin's cue constants (the share of the footprint-weighted
planted response that an ROI's GLM estimate recovers, and the spread of that
estimate) are measured the same way on an image-level baclofen study through
the cue chapter's first level (:func:`derive_baclofen_cue`); its CBF constants
come from the image simulator's maps
(:func:`craving_circuits.simulate.roi_level.baclofen_roi_model`).

The constants are stored with a hash of the code they come from
(:data:`SOURCES`, :data:`BACLOFEN_SOURCES`) in ``simulate/data/cocaine_twin.json``
and ``simulate/data/baclofen_twin.json`` (read by
:func:`craving_circuits.simulate.roi_level.cocaine_twin_constants` and
:func:`~craving_circuits.simulate.roi_level.baclofen_twin_constants`);
``python -m craving_circuits.verdict.twin`` derives them again. A test derives
them at a smaller size and checks that the stored values agree within the
Monte Carlo error of both.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize

import craving_circuits
from craving_circuits.baclofen import cue, perfusion
from craving_circuits.baclofen import layout as baclofen_layout
from craving_circuits.cocaine import denoise, firstlevel, layout
from craving_circuits.io.atlas import roi_masks
from craving_circuits.simulate import baclofen_params, cocaine_params, roi_level
from craving_circuits.simulate.baclofen import CUE_ROIS, SESSIONS, cue_response, simulate_baclofen_participants
from craving_circuits.simulate.cocaine import simulate_participants, simulate_runs_table

__all__ = [
    "SOURCES",
    "code_hash",
    "paired_runs",
    "fit_dilution",
    "nuisance_variance",
    "derive_cocaine_twin",
    "write_constants",
    "constants_table",
    "derive_baclofen_cue",
    "cue_table",
]

#: The modules whose code the constants depend on (relative to the package).
SOURCES = (
    "simulate/cocaine.py",
    "simulate/signals.py",
    "simulate/regions.py",
    "simulate/fmriprep.py",
    "cocaine/denoise.py",
    "cocaine/firstlevel.py",
    "cocaine/connectivity.py",
)

#: The modules whose code the baclofen twin's cue constants depend on.
BACLOFEN_SOURCES = ("simulate/baclofen.py", "simulate/regions.py", "simulate/signals.py", "baclofen/cue.py")

_TARGETS = {"dlpfc": "fc_nacc_dlpfc", "thalamus_midline": "fc_nacc_thalamus"}


def code_hash(sources=SOURCES) -> str:
    """SHA-256 of the source files ``sources`` (default :data:`SOURCES`), in order (the first 16 hex digits)."""
    root = Path(craving_circuits.__file__).parent
    digest = hashlib.sha256()
    for name in sources:
        digest.update((root / name).read_bytes())
    return digest.hexdigest()[:16]


def paired_runs(roi: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Each run's ROI Fisher z next to its planted coupling.

    Parameters
    ----------
    roi : pandas.DataFrame
        ``participant_id, session_id, state, target, fisher_z`` of one strategy.
    runs : pandas.DataFrame
        From :func:`craving_circuits.simulate.cocaine.simulate_runs_table`, optionally with
        ``nuisance_var`` (:func:`nuisance_variance`), which is carried along.

    Returns
    -------
    pairs : pandas.DataFrame
        ``participant_id, session_id, state, target, fisher_z, planted_z`` (and ``nuisance_var``).
    """
    keys = ["participant_id", "session_id", "state"]
    extra = [c for c in ("nuisance_var",) if c in runs.columns]
    planted = runs.melt(
        id_vars=[*keys, *extra], value_vars=list(_TARGETS.values()), var_name="column", value_name="planted_z"
    )
    planted["target"] = planted["column"].map({v: k for k, v in _TARGETS.items()})
    pairs = roi[[*keys, "target", "fisher_z"]].merge(
        planted[[*keys, "target", "planted_z", *extra]], on=[*keys, "target"]
    )
    if len(pairs) != len(roi):
        raise ValueError(f"{len(roi) - len(pairs)} ROI rows have no planted run; pass the study's own runs table.")
    return pairs


def fit_dilution(pairs: pd.DataFrame, within=("participant_id", "session_id")) -> pd.DataFrame:
    """Per target: slope of ``tanh(fisher_z)`` on ``tanh(planted_z)`` within sessions (the dilution of the planted
    state effects), its SE, and the residual variance of ``fisher_z`` around the fit.

    Parameters
    ----------
    pairs : pandas.DataFrame
        From :func:`paired_runs` (``target, fisher_z, planted_z`` and the columns of ``within``).
    within : sequence of str or None
        Columns whose groups each get their own intercept (a session's level), so that the slope is that of the
        craving - neutral differences the chapters test; None: one intercept.

    Returns
    -------
    fit : pandas.DataFrame
        ``target, n, dilution, dilution_se, residual_var`` (residuals in Fisher z, on the degrees of freedom
        left by the intercepts and the slope); with a ``nuisance_var`` column in ``pairs``, also the slope
        of ``tanh(fisher_z)`` on it in a second fit beside ``tanh(planted_z)`` (``nuisance_slope``,
        ``nuisance_slope_se``): how much a run's coupling rises with the nuisance it carries. Each is a
        statistic the twin is matched on (the same fit on the twin's runs), not a model of the images.
    """
    rows = []
    nuisance = "nuisance_var" in pairs.columns
    for target, sub in pairs.groupby("target", sort=False):
        x, y = np.tanh(sub["planted_z"].to_numpy(float)), np.tanh(sub["fisher_z"].to_numpy(float))
        groups = sub.groupby(list(within), sort=False).ngroup().to_numpy() if within else np.zeros(len(sub), int)
        n_groups = groups.max() + 1

        def centred(v, groups=groups):
            return v - (np.bincount(groups, v) / np.bincount(groups))[groups]

        xc, yc = centred(x), centred(y)
        slope = float(xc @ yc / (xc @ xc))
        df = len(x) - n_groups - 1
        se = float(np.sqrt(np.sum((yc - slope * xc) ** 2) / df / (xc @ xc)))
        # the same fit in Fisher z: each run's z against its session's mean z plus the diluted planted change
        zc = centred(sub["fisher_z"].to_numpy(float))
        fitted = centred(np.arctanh(np.clip(slope * x, -0.999, 0.999)))
        row = {
            "target": target,
            "n": len(x),
            "dilution": slope,
            "dilution_se": se,
            "residual_var": float(np.sum((zc - fitted) ** 2) / df),
        }
        if nuisance:  # the rise with the nuisance, in a second fit with the planted coupling beside it
            design = np.column_stack([xc, centred(sub["nuisance_var"].to_numpy(float))])
            coef, *_ = np.linalg.lstsq(design, yc, rcond=None)
            resid = yc - design @ coef
            cov = np.sum(resid**2) / (df - 1) * np.linalg.inv(design.T @ design)
            row.update(nuisance_slope=float(coef[1]), nuisance_slope_se=float(np.sqrt(cov[1, 1])))
        rows.append(row)
    return pd.DataFrame(rows)


def nuisance_variance(params, runs: pd.DataFrame) -> np.ndarray:
    """Each run's variance of the state-dependent nuisance at its full size, relative to the sources' variance:
    the twin's :func:`~craving_circuits.simulate.roi_level.shared_nuisance_sd` at ``nuisance_leak`` 1, squared.

    Returns
    -------
    variance : ndarray, shape (n_runs,)
    """
    return roi_level.shared_nuisance_sd(params, runs, 1.0) ** 2


def _noises(fit: pd.DataFrame) -> dict[str, float]:
    """ROI noise SDs of the seed and each target from the targets' dilutions (see the module docstring)."""
    k = dict(zip(fit["target"], np.clip(fit["dilution"], 1e-3, 1.0)))
    # the seed's share: the geometric mean dilution split evenly between the seed and the targets
    seed = float(np.sqrt(max(1 / float(np.exp(np.mean(np.log(list(k.values()))))) - 1, 0.0)))
    out = {"nacc": seed}
    for target, value in k.items():
        out[target] = float(np.sqrt(max(1 / (value**2 * (1 + seed**2)) - 1, 0.0)))
    return out


def derive_cocaine_twin(
    n_cud: int = 12,
    n_control: int = 12,
    seed: int = 4242,
    strategy: str = "conn",
    band_pass=(0.008, 0.09),
    n_twin: int = 20,
    n_jobs: int = 1,
    data_dir=None,
) -> dict:
    """Measure the cocaine twin's constants on an image-level study (see the module docstring).

    Parameters
    ----------
    n_cud, n_control : int
        Participants of the image-level study (the ``paper`` preset otherwise).
    seed : int
        Its simulator seed (apart from the calibration's).
    strategy, band_pass
        The seed chapter's default denoising.
    n_twin : int
        Twin studies (seeds ``seed .. seed + n_twin - 1``) that measure the
        twin's own sampling spread.
    n_jobs : int
    data_dir : path, optional
        Where the image-level study and its first level go (a temporary folder by default).

    Returns
    -------
    constants : dict
        ``roi_noise`` (per ROI: ``nacc``, ``dlpfc``, ``thalamus_midline``),
        ``run_noise_z`` (per target), ``nuisance_leak`` (the share of the
        state-dependent nuisance the default denoising leaves), ``fit`` (the
        regression per target, image pipeline), ``twin_residual_var``,
        ``twin_dilution`` and ``twin_nuisance_slope`` (per target, the twin's own
        fit), ``n_runs``, ``design`` (what was simulated), ``code_hash``.
    """
    overrides = {"n_cud": int(n_cud), "n_control": int(n_control), "seed": int(seed)}
    params = cocaine_params("paper", **overrides)
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(data_dir) if data_dir is not None else Path(tmp)
        study = layout.simulated_study("paper", where / "data", n_jobs=n_jobs, **overrides)
        runs, _ = layout.collect_runs(study)
        analysis, mask_img, _ = firstlevel.seed_analysis(runs, denoise.parse_strategy(strategy, band_pass))
        first = firstlevel.first_level(runs, analysis, mask_img, where / "firstlevel", n_jobs=n_jobs)
    roi = first.roi[first.roi["strategy"] == analysis.strategy.name]
    planted = simulate_runs_table(simulate_participants(params), params)
    fit = fit_dilution(paired_runs(roi, planted.assign(nuisance_var=nuisance_variance(params, planted))))
    # the twin's own fit on many studies of the same design: its dilution (to correct the noises for the
    # estimator's bias, once), its rise with the nuisance (to find the nuisance's share) and its sampling spread
    twin_params = [cocaine_params("paper", **{**overrides, "seed": int(seed) + i}) for i in range(int(n_twin))]
    twin_runs = [simulate_runs_table(simulate_participants(p), p) for p in twin_params]
    twin_runs = [r.assign(nuisance_var=nuisance_variance(p, r)) for p, r in zip(twin_params, twin_runs)]

    def twin_fit(noise: dict, leak: float = 0.0) -> pd.DataFrame:
        roi_twin = roi_level.cocaine_roi_studies(twin_params, roi_noise=noise, run_noise_z=0.0, nuisance_leak=leak)
        roi_twin = roi_twin["roi"]
        pairs = [
            paired_runs(roi_twin[roi_twin["replicate"] == i].drop(columns="replicate"), r)
            for i, r in enumerate(twin_runs)
        ]
        return fit_dilution(pd.concat(pairs, ignore_index=True)).set_index("target")

    fit = fit.set_index("target")
    noise = _noises(fit.reset_index())
    first = twin_fit(noise)
    corrected = fit["dilution"] * np.clip(fit["dilution"], 1e-3, 1.0) / first["dilution"]
    noise = _noises(pd.DataFrame({"target": corrected.index, "dilution": corrected.to_numpy()}))
    leak = _nuisance_leak(fit["nuisance_slope"].mean(), lambda value: twin_fit(noise, value)["nuisance_slope"].mean())
    twin_fitted = twin_fit(noise, leak)
    run_noise = {
        t: float(np.sqrt(max(fit.loc[t, "residual_var"] - twin_fitted.loc[t, "residual_var"], 0.0))) for t in _TARGETS
    }
    return {
        "roi_noise": noise,
        "run_noise_z": run_noise,
        "nuisance_leak": leak,
        "fit": fit.reset_index().to_dict("records"),
        "twin_residual_var": {t: float(twin_fitted.loc[t, "residual_var"]) for t in _TARGETS},
        "twin_dilution": {t: float(twin_fitted.loc[t, "dilution"]) for t in _TARGETS},
        "twin_nuisance_slope": {t: float(twin_fitted.loc[t, "nuisance_slope"]) for t in _TARGETS},
        "n_runs": int(len(roi) // len(_TARGETS)),
        "design": {**overrides, "preset": "paper", "strategy": analysis.strategy.name, "n_twin": int(n_twin)},
        "code_hash": code_hash(),
    }


#: The largest share of the nuisance the derivation considers (1: none of it removed by denoising).
MAX_LEAK = 1.0


def _nuisance_leak(image_slope: float, twin_slope, tol: float = 1e-3) -> float:
    """The share of the nuisance whose twin studies rise with it as the image pipeline's runs do.

    ``twin_slope(leak)`` is the twin's mean nuisance slope (over the targets) at ``leak``; it grows with the
    leak. Where the image pipeline's slope is no larger than the twin's at no leak, denoising leaves nothing
    that the twin could show: 0; where it is larger than at :data:`MAX_LEAK`, :data:`MAX_LEAK`.
    """
    low, high = twin_slope(0.0), twin_slope(MAX_LEAK)
    if image_slope <= low:
        return 0.0
    if image_slope >= high:
        return MAX_LEAK
    return float(optimize.brentq(lambda value: twin_slope(value) - image_slope, 0.0, MAX_LEAK, xtol=tol))


def derive_baclofen_cue(
    n_baclofen: int = 21,
    n_placebo: int = 22,
    seed: int = 4343,
    confounds=("motion", "wm_csf"),
    high_pass: float = 0.008,
    n_jobs: int = 1,
    data_dir=None,
) -> dict:
    """Measure the baclofen twin's cue constants (``cue_gain``, ``cue_noise_sd``) on an image-level study.

    The cue chapter's first level (:func:`craving_circuits.baclofen.cue.cue_maps`
    with its default confounds and high-pass, then
    :func:`craving_circuits.baclofen.cue.roi_means`) gives each run's cue
    effect in each cue ROI. The twin makes that effect ``cue_gain`` times the
    ROI's mean footprint (:func:`craving_circuits.simulate.roi_level.baclofen_roi_model`)
    times the run's planted response, plus noise of SD ``cue_noise_sd``; here
    ``cue_gain`` is the least-squares slope of the image pipeline's effects on
    footprint times planted response (both ROIs, no intercept, as in the twin),
    and ``cue_noise_sd`` the root mean square of the residuals.

    Returns
    -------
    constants : dict
        ``cue_gain``, ``cue_gain_se``, ``cue_noise_sd``, per-ROI fits
        (``fit``: slope, intercept and residual SD of each ROI with an
        intercept of its own), ``n_runs``, ``design``, ``code_hash`` (of
        :data:`BACLOFEN_SOURCES`).
    """
    overrides = {"n_baclofen": int(n_baclofen), "n_placebo": int(n_placebo), "seed": int(seed)}
    params = baclofen_params("paper", **overrides)
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(data_dir) if data_dir is not None else Path(tmp)
        root = baclofen_layout.simulated_study("paper", where / "data", n_jobs=n_jobs, **overrides)
        runs, _ = baclofen_layout.collect_task_runs(root)
        mask_img = perfusion.perfusion_mask(baclofen_layout.collect_asl_runs(root)[0])
        first = cue.cue_maps(
            runs, mask_img, where / "firstlevel", n_jobs=n_jobs, confounds=list(confounds), high_pass=high_pass
        )
    ids = first.runs[["participant_id", "group", "session_id"]]
    effects = cue.roi_means(first.maps, mask_img, roi_masks(list(CUE_ROIS), mask_img), ids)
    weights = roi_level.baclofen_roi_model(params).cue_weights
    planted = {
        (p.participant_id, session): cue_response(p, session, params)
        for p in simulate_baclofen_participants(params).itertuples(index=False)
        for session in SESSIONS
    }
    x = np.array(
        [
            weights[r] * planted[(pid, s)]
            for pid, s, r in effects[["participant_id", "session_id", "roi"]].itertuples(index=False)
        ]
    )
    y = effects["value"].to_numpy(float)
    gain = float(x @ y / (x @ x))
    residual = y - gain * x
    noise = float(np.sqrt(residual @ residual / (len(y) - 1)))
    fit = []
    for roi in CUE_ROIS:
        picked = (effects["roi"] == roi).to_numpy()
        slope, intercept = np.polyfit(x[picked] / weights[roi], y[picked] / weights[roi], 1)
        rest = y[picked] - (slope * x[picked] + intercept * weights[roi])
        fit.append(
            {
                "roi": roi,
                "gain": float(slope),
                "intercept": float(intercept * weights[roi]),
                "residual_sd": float(np.sqrt(rest @ rest / (picked.sum() - 2))),
            }
        )
    return {
        "cue_gain": gain,
        "cue_gain_se": float(noise / np.sqrt(x @ x)),
        "cue_noise_sd": noise,
        "fit": fit,
        "n_runs": int(len(y) // len(CUE_ROIS)),
        "design": {**overrides, "preset": "paper", "confounds": list(confounds), "high_pass": high_pass},
        "code_hash": code_hash(BACLOFEN_SOURCES),
    }


def write_constants(constants: dict, path=None) -> Path:
    """Write derived constants as the twin's package data (default: the file the twin reads)."""
    path = Path(path) if path is not None else roi_level.COCAINE_TWIN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(constants, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def constants_table(constants: dict | None = None) -> pd.DataFrame:
    """The twin's constants per target, next to what they were derived from (for a chapter).

    Parameters
    ----------
    constants : dict, optional
        From :func:`derive_cocaine_twin`; default: the stored ones.

    Returns
    -------
    table : pandas.DataFrame
        ``target, roi_noise_seed, roi_noise_target, run_noise_z, image_dilution,
        image_dilution_se, twin_dilution, nuisance_leak, image_nuisance_slope,
        image_nuisance_slope_se, twin_nuisance_slope, n_runs, this_code``
        (whether the constants were derived from the current code).
    """
    constants = roi_level.cocaine_twin_constants() if constants is None else constants
    fit = {row["target"]: row for row in constants["fit"]}
    return pd.DataFrame(
        [
            {
                "target": target,
                "roi_noise_seed": constants["roi_noise"]["nacc"],
                "roi_noise_target": constants["roi_noise"][target],
                "run_noise_z": constants["run_noise_z"][target],
                "image_dilution": fit[target]["dilution"],
                "image_dilution_se": fit[target]["dilution_se"],
                "twin_dilution": constants["twin_dilution"][target],
                "nuisance_leak": constants["nuisance_leak"],
                "image_nuisance_slope": fit[target]["nuisance_slope"],
                "image_nuisance_slope_se": fit[target]["nuisance_slope_se"],
                "twin_nuisance_slope": constants["twin_nuisance_slope"][target],
                "n_runs": constants["n_runs"],
                "this_code": constants["code_hash"] == code_hash(),
            }
            for target in _TARGETS
        ]
    )


def cue_table(constants: dict | None = None) -> pd.DataFrame:
    """The baclofen twin's cue constants next to each cue ROI's own fit (for a chapter).

    Returns
    -------
    table : pandas.DataFrame
        ``roi, gain, intercept, residual_sd`` of the image pipeline per ROI, then
        the twin's ``cue_gain`` and ``cue_noise_sd`` (both ROIs), ``n_runs`` and
        ``this_code``.
    """
    constants = roi_level.baclofen_twin_constants() if constants is None else constants
    table = pd.DataFrame(constants["fit"])
    return table.assign(
        cue_gain=constants["cue_gain"],
        cue_noise_sd=constants["cue_noise_sd"],
        n_runs=constants["n_runs"],
        this_code=constants["code_hash"] == code_hash(BACLOFEN_SOURCES),
    )


if __name__ == "__main__":  # python -m craving_circuits.verdict.twin [n_jobs]: derive and store both twins' constants
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    print(write_constants(derive_cocaine_twin(n_jobs=jobs)))
    print(write_constants(derive_baclofen_cue(n_jobs=jobs), roi_level.BACLOFEN_TWIN_FILE))
