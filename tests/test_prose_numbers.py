"""Numbers in prose come from results or from the code.

A number in ``book/*.md`` or in a notebook's markdown that depends on the data
or on a parameter is glued from a result (``{glue:text}`key```) in its
notebook. A number that documents a default (a simulator parameter, an
analysis default of a notebook's ``parameters`` cell, a function's default, the
regressors of a denoising strategy) may be typed, and is checked here against
the code's default, so that the prose cannot drift from the code. The checks
are tables of (file, text expected in it), the text built from the code's
values; whitespace is normalised, since prose wraps lines.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from nilearn.interfaces.fmriprep.load_confounds_strategy import preset_strategies
from nilearn.signal import butterworth
from statsmodels.robust.norms import HuberT

from craving_circuits.baclofen import asl
from craving_circuits.cocaine import connectivity, denoise, glutamate, mrs
from craving_circuits.io import atlas, bids
from craving_circuits.io.files import write_json, write_tsv
from craving_circuits.simulate import (
    baclofen,
    cocaine,
    fmriprep,
    kinetics,
    regions,
    signals,
)
from craving_circuits.stats import equivalence
from craving_circuits.verdict import calibration

ROOT = Path(__file__).resolve().parents[1]

#: Notebooks whose markdown carries no typed number that depends on data or parameters,
#: with the few typed numbers that are facts.
CHECKED_NOTEBOOKS = {
    "data": ["0-100"],  # the rating scale
    "nacc_seed_fc": [],
    "thalamus_glutamate": ["4/n"],  # a rule of thumb
    "calibration": [],
    "multiverse": [],
}

GLUE_ROLE = re.compile(r"\{glue(?::\w+)?\}`([^`]+)`")
GLUE_DIRECTIVE = re.compile(r"```\{glue(?::\w*)?\} (\S+)\n:doc: (\S+)")


def _normalised(text: str) -> str:
    return " ".join(text.split())


def _markdown(notebook: str) -> list[str]:
    cells = json.loads((ROOT / "notebooks" / f"{notebook}.ipynb").read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]


def _text(name: str) -> str:
    """A book page's text, or the markdown of a notebook (``notebooks/<name>.ipynb``)."""
    if name.endswith(".ipynb"):
        return "\n\n".join(_markdown(Path(name).stem))
    return (ROOT / name).read_text()


def _parameters(notebook: str) -> dict:
    """The literals of a notebook's ``parameters`` cell."""
    cells = json.loads((ROOT / "notebooks" / f"{notebook}.ipynb").read_text())["cells"]
    (cell,) = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    values: dict = {}
    exec("".join(cell["source"]), {}, values)
    return values


def _defaults(func) -> dict:
    return {k: p.default for k, p in inspect.signature(func).parameters.items() if p.default is not p.empty}


def _field_defaults(cls) -> dict:
    return {f.name: f.default for f in dataclasses.fields(cls)}


def _mni(spheres) -> str:
    """Sphere centres as the book writes them: ``(±44, 30, 32)`` for a mirrored pair, minus signs as U+2212."""

    def num(v: float) -> str:
        return f"{v:g}".replace("-", "−")

    if len(spheres) == 2:
        (x1, y1, z1), (x2, y2, z2) = spheres
        assert (x1, y1, z1) == (-x2, y2, z2), spheres
        return f"(±{abs(x1):g}, {num(y1)}, {num(z1)})"
    ((x, y, z),) = spheres
    return f"({num(x)}, {num(y)}, {num(z)})"


def _planted_region_rows(study: str) -> list[str]:
    """The cells ``| peaks | FWHM |`` of a study's planted regions, as the book's tables write them."""
    assert regions.OVERLAP_LEVEL == 0.5  # "half its maximum"
    return [
        f"| {_mni(regions.PLANTED_REGIONS[name].peaks_mm)} | {regions.PLANTED_REGIONS[name].fwhm_mm:g} mm |"
        for name in regions.STUDY_REGIONS[study].values()
    ]


def _assert_in_prose(rows) -> None:
    """Each (file, snippet) or (file, snippet, count): the snippet appears (at least ``count`` times)."""
    missing = []
    for row in rows:
        name, snippet, count = (*row, 1) if len(row) == 2 else row
        if _normalised(_text(name)).count(_normalised(snippet)) < count:
            missing.append(f"{name}: {snippet!r}" + (f" ({count} times)" if count > 1 else ""))
    assert not missing, "The prose does not say what the code does:\n" + "\n".join(missing)


# --------------------------------------------------------------------------- the cocaine simulator


def test_cocaine_design_states_the_simulator_defaults():
    p = _field_defaults(cocaine.CocaineStudyParams)
    assert cocaine.cocaine_params("paper") == cocaine.CocaineStudyParams()  # the table gives the paper preset
    tiny = {**p, **cocaine.PRESETS["tiny"]}
    motion = cocaine.PRESETS["threat_state_motion"]
    habituation = cocaine.PRESETS["threat_habituation"]
    assert (habituation["habituation"], habituation["nac_first_share_cud"]) == (0.5, 0.75)  # the words below
    z = cocaine.NACC_FC_Z
    assert z["dlpfc"] == z["thalamus_midline"]
    band = _defaults(signals.band_limited_noise)
    h = p["habituation"]
    planted = {e["effect"]: e["planted"] for e in cocaine.planted_effects(cocaine.CocaineStudyParams())}
    kept = 1 - h / 2
    assert planted["craving_nacc_dlpfc_cud"] == pytest.approx(kept * p["craving_nacc_dlpfc"])
    assert planted["craving_nacc_thalamus_cud"] == pytest.approx(kept * p["craving_nacc_thalamus"])
    rho = p["thalamus_reactivity_sd"] / np.hypot(p["thalamus_reactivity_sd"], p["craving_fc_individual_sd"])
    assert planted["thalamus_glu_coupling_cud"] == pytest.approx(rho)
    r_o, r_u = p["ocdus_reactivity_r"], p["use_reactivity_r"]
    assert p["motion_artifact_scale"] == 0.5  # "half of the intensity change"
    rois = atlas.ROIS
    page = "book/cocaine_design.md"
    _assert_in_prose(
        [
            (page, f"band-pass filter ({band['low_hz']:g}–{band['high_hz']:g} Hz)"),
            (page, f"a global fluctuation ({band['low_hz']:g}–{band['high_hz']:g} Hz)"),
            (
                page,
                f"coupled with the dlPFC and the thalamus at $z = {z['dlpfc']:g}$, with the insula at "
                f"{z['insula']:g}, with the vmPFC at {z['vmpfc']:g} and with the PCC at {z['pcc']:g}",
            ),
            (page, f"get an offset with SD {p['fc_subject_sd']:g}"),
            (
                page,
                f"$\\Delta_{{i,\\mathrm{{dlPFC}}}} = {p['craving_nacc_dlpfc']:g} + e_{{i1}}$, "
                f"$e_{{i1}} \\sim N(0, {p['craving_fc_individual_sd']:g}^2)$",
            ),
            (
                page,
                f"$\\Delta_{{i,\\mathrm{{thal}}}} = {p['craving_nacc_thalamus']:g} + "
                f"{p['thalamus_reactivity_sd']:g}\\,u_i + e_{{i2}}$",
            ),
            (page, f"| rises in controls | ${p['control_craving_fc']:g}$ |"),
            (page, f"$\\delta_{{\\mathrm{{NAC}}}} = {p['nac_effect']:g}$"),
            (page, f"$g_i = {p['glu_craving_rise_pct']:g} + {p['glu_reactivity_pct']:g}\\,u_i$"),
            (page, f"({r_o:g}\\,u_i + \\sqrt{{1-{r_o:g}^2}}\\,\\varepsilon_i)"),
            (page, f"({r_u:g}\\,u_i + {np.sqrt(1 - r_u**2):.2g}\\,\\varepsilon'_i)"),
            (page, f"rise $= {p['craving_rating_rise']:g} + {p['craving_rating_reactivity']:g}\\,u_i"),
            (page, f"$h = {h:g}$, whatever the drug | `habituation` |"),
            (
                page,
                f"${p['thalamus_reactivity_sd']:g}/\\sqrt{{{p['thalamus_reactivity_sd']:g}^2 + "
                f"{p['craving_fc_individual_sd']:g}^2}} \\approx {rho:.2f}$",
            ),
            (page, f"correlate with $u$ at {r_o:g} and {r_u:g}"),
            (page, f"${kept:g} \\times {p['craving_nacc_dlpfc']:g} \\approx {kept * p['craving_nacc_dlpfc']:.2f}$"),
            (
                page,
                f"${kept:g} \\times {p['craving_nacc_thalamus']:g} \\approx {kept * p['craving_nacc_thalamus']:.2f}$",
            ),
            # planted regions (the table of simulate.regions) and the analysis ROIs
            (page, f"anatomical jitter of $N(0, {regions.JITTER_SD_MM:g}^2)$ mm per axis"),
            *[(page, row) for row in _planted_region_rows("cocaine")],
            (page, "(thresholded at half its maximum)"),
            (page, f"probability where it is at least {rois['nacc'].min_probability:g} %"),
            (page, f"thalamus within {rois['thalamus_midline'].max_abs_x_mm:g} mm of the midline"),
            (page, f"uses {rois['dlpfc'].radius_mm:g} mm spheres at {_mni(rois['dlpfc'].spheres_mm)} mm"),
            (page, f"the PCC a {rois['pcc'].radius_mm:g} mm sphere at {_mni(rois['pcc'].spheres_mm)} mm"),
            # signal and noise
            (page, f"$\\sigma_{{\\mathrm{{src}}}} = {p['source_sd']:g}$ %"),
            (page, f"SD {p['global_sd']:g} %;"),
            (page, f"SD {p['physio_sd']:g} % in pure white matter and {1.5 * p['physio_sd']:g} % in pure CSF"),
            (
                page,
                f"(FWHM {p['smooth_noise_fwhm_mm']:g} mm) with lag-1 autocorrelation {p['noise_ar1']:g}, "
                f"SD {p['smooth_noise_sd']:g} %",
            ),
            (page, f"white noise, SD {p['white_noise_sd']:g} %"),
            (page, f"coefficients of SD {p['drift_sd']:g} %"),
            # head motion
            (page, f"per-volume step SD {p['motion_step_mm']:g} mm"),
            (page, f"on average {p['motion_spikes']:g} abrupt movements per run"),
            (
                page,
                f"multiplied by {p['motion_cud_factor']:g} in CUD and by a further "
                f"{p['motion_craving_factor']:g} in the craving state",
            ),
            (page, f"a signal drop of {p['spin_history_pct_per_mm']:g} % per mm"),
            (page, f"framewise displacement exceeds {p['spike_fd_threshold_mm']:g} mm"),
            (page, f"loses\n  {p['spike_pct_per_mm2']:g} % of its signal per squared mm"),
            (page, f"SD {p['distance_artifact_pct_per_mm']:g} % per mm of displacement"),
            (page, f"e^{{-d^2 / (2 \\cdot {p['distance_artifact_mm']:g}^2)}}"),
            (page, f"estimation error (SD {p['motion_error_mm']:g} mm per volume"),
            (page, f"SD {p['cardioresp_sd']:g} % where\n  they are largest"),
            (
                page,
                f"$a_s = {p['global_craving_factor']:g}$ and the physiological ones by "
                f"$b_s = {p['physio_craving_factor']:g}$",
            ),
            # MRS
            (page, f"$\\mathrm{{SNR}} = {p['mrs_snr']:g}\\, e^{{\\eta}}$"),
            (page, f"for the {100 * p['mrs_bad_shim_rate']:g} % of spectra with a poor shim"),
            (page, f"$\\mathrm{{CRLB}}^{{\\mathrm{{ref}}}} = {p['mrs_glu_crlb_pct']:g}$ % for glutamate"),
            # files and presets
            (
                page,
                f"({p['voxel_size_mm']} mm voxels, TR {p['repetition_time']:g} s, {p['n_volumes']} volumes by default",
            ),
            (page, f"| `paper` | the published sample ({p['n_cud']} CUD, {p['n_control']} controls)"),
            (
                page,
                f"| `tiny` | {tiny['n_cud']} CUD + {tiny['n_control']} controls, {tiny['voxel_size_mm']} mm voxels, "
                f"{tiny['n_volumes']} volumes, smooth noise of {tiny['smooth_noise_fwhm_mm']:g} mm FWHM",
            ),
            (page, f"rises still vary around zero with SD {p['craving_fc_individual_sd']:g}"),
            (
                page,
                f"more motion in CUD (×{motion['motion_cud_factor']:g}) and, after the cue film, much more motion "
                f"(×{motion['motion_craving_factor']:g}), global signal (×{motion['global_craving_factor']:g}) "
                f"and physiological noise (×{motion['physio_craving_factor']:g})",
            ),
            (page, "halved in the second session, and three quarters of CUD taking NAC first"),
            (page, f"equivalence bound (d_z {equivalence.DRUG_SESOI_DZ:g}, converted"),
        ]
    )


#: Constants of the cocaine simulator's model that are not parameters: (function, its code, the page's text).
MODEL_CONSTANTS = [
    ("participant_columns", "np.rint(10 + 4 * (r_o * u", "\\operatorname{round}\\bigl(10 + 4\\,"),
    ("participant_columns", "), 0, 24)", "clipped to 0–24"),
    ("participant_columns", "np.log(3.5) + 0.7 * (r_u * u", "\\log 3.5 + 0.7\\,"),
    ("participant_columns", "np.exp(rng.normal(0, 0.4, n))", "log-normal (SD 0.4 on the log scale)"),
    ("rating_columns", "neutral = rng.normal(15, 8, ", "neutral $\\sim N(15, 8^2)$"),
    ("rating_columns", "+ rng.normal(0, RATING_RISE_NOISE_SD, ", "\\,u_i + N(0, 6^2)$"),
    ("mrs_columns", "params.mrs_snr * np.exp(rng.normal(0, 0.3, ", "$\\eta \\sim N(0, 0.3^2)$"),
    ("mrs_columns", "6.0 + rng.gamma(2.0, 1.0, shape) + 6.0 * (", "6 Hz plus a Gamma(2, 1) Hz term plus 6 Hz more"),
    (
        "mrs_columns",
        "(14.0 / snr) * np.sqrt(fwhm / 8.0)",
        "\\frac{14}{\\mathrm{SNR}}\\sqrt{\\frac{\\mathrm{FWHM}}{8\\,\\mathrm{Hz}}}",
    ),
    ("simulate_run_data", "band_limited_noise(rng, n_t, 2, t_r, 0.01, 0.2)", "CSF fluctuations (0.01–0.2 Hz)"),
    ("build_geometry", "1.5 * csf * spread[1]", "+ 1.5\\, C(t)\\, p^{\\mathrm{CSF}}_v m^{\\mathrm{CSF}}_v"),
    ("build_geometry", "np.exp(0.5 * noise.sample(rng, 2))", "log-normal\n  fields $m_v$ (SD 0.5 on the log scale"),
    ("build_geometry", "sigma=8.0 / params.voxel_size_mm", "smoothed over 8 mm"),
    ("build_geometry", "/ 30.0)", "falling by $e$ every 30 mm"),
    ("simulate_run_data", "n_t, 2, t_r, 0.01, 0.15)", "cardiac and respiratory fluctuations (0.01–0.15 Hz)"),
    ("simulate_run_data", "np.convolve(fd, [1.0, 0.5, 0.25])", "(weights 1, 0.5, 0.25)"),
    ("build_geometry", "1.0 + 0.05 * field_", "a smooth bias field (SD 5 %)"),
    ("build_geometry", "_tissue_index(wm, (0.95,", "white-matter probability above 0.95"),
    ("build_geometry", "_tissue_index(csf, (0.9,", "CSF above 0.9"),
]


def test_cocaine_design_states_the_model_constants():
    """The generative model's fixed constants (not parameters) as the page writes them."""
    missing = [
        (function, code)
        for function, code, _ in MODEL_CONSTANTS
        if code not in inspect.getsource(getattr(cocaine, function))
    ]
    assert not missing, f"the simulator's code changed; update book/cocaine_design.md: {missing}"
    _assert_in_prose([("book/cocaine_design.md", prose) for _, _, prose in MODEL_CONSTANTS])


# --------------------------------------------------------------------------- the baclofen simulator and CBF


def _white_paper_grey_matter_bias() -> float:
    """Percent bias of the white paper's CBF on the simulator's pure grey matter at its mean physiology."""
    p = baclofen.BaclofenStudyParams()
    c = p.asl_constants
    delta_m = kinetics.buxton_pcasl_difference(
        p.gm_cbf,
        p.gm_arrival_time,
        c.post_labeling_delay,
        c.labeling_duration,
        t1_tissue=p.t1_gm,
        t1_blood=c.t1_blood,
        efficiency=p.labeling_efficiency * p.background_pulse_efficiency**c.n_background_pulses,
        m0_blood=1.0 / p.gm_blood_partition,
        partition=p.gm_blood_partition,
    )
    m0 = 1.0 - np.exp(-p.m0_repetition_time / p.t1_gm)
    return float(100 * (asl.quantify_cbf(np.array([delta_m]), np.array([m0]), c)[0] / p.gm_cbf - 1))


def test_baclofen_pages_state_the_simulator_and_quantification_defaults():
    p = _field_defaults(baclofen.BaclofenStudyParams)
    assert baclofen.baclofen_params("paper") == baclofen.BaclofenStudyParams()
    constants = _field_defaults(bids.AslConstants)
    eta = _defaults(asl.read_asl_constants)["background_pulse_efficiency"]
    assert eta == constants["background_pulse_efficiency"] == _parameters("baclofen_cbf")["background_pulse_efficiency"]
    unit = asl.quantify_cbf(np.array([0.006]), np.array([1.0]), bids.AslConstants(1.8, 1.8))[0]
    rois = atlas.ROIS
    page = "book/methods_baclofen.md"
    _assert_in_prose(
        [
            (
                page,
                f"writes {p['n_baclofen'] + p['n_placebo']} smokers ({p['n_baclofen']} baclofen, "
                f"{p['n_placebo']} placebo)",
            ),
            (page, f"{p['n_asl_pairs']} label/control pairs"),
            (
                page,
                f"`PostLabelingDelay` {p['post_labeling_delay']:g} s, `LabelingDuration` {p['labeling_duration']:g} s",
            ),
            (page, f"`BackgroundSuppressionNumberPulses` {p['background_suppression_pulses']}"),
            (page, f"grey matter about {p['gm_cbf']:g}, white matter about {p['wm_cbf']:g}"),
            (page, f"alternating {p['cue_block_s']:g} s blocks"),
            (page, f"peak delay drawn from N({p['hrf_delay_mean']:g}, {p['hrf_delay_sd']:g}) s"),
            (page, f"varies with an SD of {p['hrf_dispersion_sd']:g} on the log scale"),
            (page, f"(SD {p['cue_motion_mm']:g} mm along each axis)"),
            (page, f"abrupt movements {p['cue_spike_ratio']:g} times as frequent"),
            (page, f"T1 ({p['t1_gm']:g} and {p['t1_wm']:g} s)"),
            (page, f"means of {p['gm_arrival_time']:g} and {p['wm_arrival_time']:g} s, rising by"),
            (page, f"{p['arrival_time_gradient']:g} s per mm"),
            (page, f"scaled per participant (SD {p['arrival_time_subject_sd']:g} on the log scale)"),
            (page, f"arrived by the {p['post_labeling_delay']:g} s delay"),
            (page, f"labelling efficiency (mean {p['labeling_efficiency']:g}, SD {p['labeling_efficiency_sd']:g})"),
            (page, f"each background-suppression pulse keeps {p['background_pulse_efficiency']:g}"),
            (page, f"grey matter {p['gm_blood_partition']:g} ml/g"),
            (page, f"repetition time, {p['m0_repetition_time']:g} s"),
            (page, f"CSF, whose T1 is about {p['t1_csf']:.0f} s"),
            (
                page,
                f"the partition coefficient of {constants['blood_brain_partition']:g} where grey matter's is "
                f"{p['gm_blood_partition']:g}",
            ),
            (page, f"physiology, {-_white_paper_grey_matter_bias():.1f} % below the truth"),
            (
                page,
                f"$\\lambda = {constants['blood_brain_partition']:g}$ ml/g, $T_{{1,b}} = {constants['t1_blood']:g}$ s",
            ),
            (page, f"$\\alpha = {constants['labeling_efficiency']:g}$ for pCASL"),
            (page, f"a fraction $\\eta$ of the label ({eta:g} by default"),
            (page, f"$\\Delta M/M_0 = 0.006$ with $\\tau = \\mathrm{{PLD}} = 1.8$ s gives {unit:.2f} ml/100 g/min"),
            (page, f"the T2 - T1 CBF map is smoothed ({_parameters('baclofen_cbf')['smoothing_fwhm']:g} mm)"),
            (page, f"cosine drift regressors up to {_parameters('baclofen_mediation')['high_pass']:g} Hz"),
            ("book/baclofen_design.md", f"right dlPFC sphere at {_mni(rois['dlpfc_right'].spheres_mm)} mm"),
            (page, f"anatomical jitter of $N(0, {regions.JITTER_SD_MM:g}^2)$ mm per axis"),
            *[(page, row) for row in _planted_region_rows("baclofen")],
            ("book/baclofen_design.md", f"spheres at {_mni(rois['insula_anterior_ventral'].spheres_mm)} mm"),
        ]
    )


# --------------------------------------------------------------------------- denoising and the seed chapter


@pytest.fixture(scope="module")
def default_run_confounds(tmp_path_factory):
    """Confounds of a run of the simulator's default length, written as the simulator writes them, as each
    confound set reads them: family counts, CompCor masks and the cosines' cut-off."""
    p = cocaine.CocaineStudyParams()
    rng = np.random.default_rng(0)
    data = 1000 + 5 * rng.standard_normal((p.n_volumes, 300))
    motion = np.cumsum(1e-3 * rng.standard_normal((p.n_volumes, 6)), axis=0)
    confounds, meta = fmriprep.compute_confounds(data, motion, p.repetition_time, np.arange(100), np.arange(200, 300))
    files = bids.run_files(tmp_path_factory.mktemp("fmriprep"), "sub-01", "ses-1", "restneutral")
    files.bold.parent.mkdir(parents=True, exist_ok=True)
    files.bold.write_bytes(b"")
    write_tsv(files.confounds, confounds)
    write_json(files.confounds_json, meta)
    out = {}
    for name in ("simple", "scrubbing", "compcor", "conn"):
        _, _, names = denoise.load_run_confounds(files.bold, denoise.parse_strategy(name))
        masks = [meta[n]["Mask"] for n in names if n.startswith("a_comp_cor")]
        out[name] = {**denoise.confounds_summary(names).to_dict(), "total": len(names)}
        out[name].update(wm=masks.count("WM"), csf=masks.count("CSF"))
    cutoffs = {v["CutoffPeriod"] for k, v in meta.items() if k.startswith("cosine")}
    return out, cutoffs


def test_methods_connectivity_states_the_strategies_and_defaults(default_run_confounds):
    counts, cutoffs = default_run_confounds
    (cutoff,) = cutoffs
    nb = _parameters("nacc_seed_fc")
    strategy = _field_defaults(denoise.Strategy)
    hp, lp = strategy["high_pass"], strategy["low_pass"]
    assert nb["strategy"] == strategy["confounds"] == "conn"
    assert list(nb["band_pass"]) == [hp, lp] == list(_defaults(denoise.parse_strategy)["band_pass"])
    conn = denoise.Strategy("conn").load_confounds_kwargs()
    scrub = preset_strategies["scrubbing"]
    censoring = (
        f"FD > {scrub['fd_threshold']:g} mm or standardised DVARS > {scrub['std_dvars_threshold']:g}, "
        f"and segments shorter than {scrub['scrub']} volumes"
    )
    assert (conn["fd_threshold"], conn["std_dvars_threshold"], conn["scrub"]) == (
        scrub["fd_threshold"],
        scrub["std_dvars_threshold"],
        scrub["scrub"],
    )
    p = cocaine.CocaineStudyParams()
    seconds = p.n_volumes * p.repetition_time
    width = lp - hp
    c = counts
    assert c["simple"]["wm_csf"] == 2 and c["conn"]["motion"] == 2 * len(fmriprep.MOTION_COLUMNS)
    assert c["conn"]["wm"] == c["conn"]["csf"] == conn["n_compcor"]
    assert c["scrubbing"]["cosine"] == c["conn"]["cosine"]
    # the descriptions the chapters display (Strategy.describe)
    described = {
        "simple": f"{c['simple']['motion']} motion parameters and the mean WM and CSF signals",
        "scrubbing": f"{c['scrubbing']['motion']} motion parameters, WM and CSF signals with derivatives and squares, "
        f"and removal of volumes with FD > {scrub['fd_threshold']:g} mm or standardised DVARS > "
        f"{scrub['std_dvars_threshold']:g} plus segments shorter than {scrub['scrub']} volumes",
        "compcor": f"{c['compcor']['motion']} motion parameters and anatomical CompCor components",
        "conn": f"{c['conn']['motion']} motion parameters ({len(fmriprep.MOTION_COLUMNS)} and their derivatives), "
        f"{c['conn']['wm']} WM and {c['conn']['csf']} CSF anatomical CompCor components, and removal of volumes with "
        f"FD > {conn['fd_threshold']:g} mm or standardised DVARS > {conn['std_dvars_threshold']:g}",
    }
    for name, text in described.items():
        assert denoise.CONFOUND_SETS[name].startswith(text), (name, denoise.CONFOUND_SETS[name])
    # the run-exclusion rule of the first level
    assert "n_kept < max(20, n_volumes // 3)" in inspect.getsource(connectivity.seed_connectivity)
    rois = atlas.ROIS
    radius = _defaults(signals.framewise_displacement)["radius_mm"]
    comparison = [f"`{s}`" for s in nb["comparison_strategies"]]
    page = "book/methods_connectivity.md"
    _assert_in_prose(
        [
            (page, f"(default {hp:g}–{lp:g} Hz)"),
            (page, f"| `simple` | {c['simple']['motion']} motion parameters; mean white-matter and CSF signals |"),
            (
                page,
                f"| `scrubbing` | {c['scrubbing']['motion']} motion parameters; white-matter and CSF signals with "
                f"their derivatives and squares ({c['scrubbing']['wm_csf']}) | {censoring} |",
            ),
            (page, f"| `compcor` | {c['compcor']['motion']} motion parameters; anatomical CompCor components"),
            (
                page,
                f"| `conn` (default) | {c['conn']['motion']} motion parameters ({len(fmriprep.MOTION_COLUMNS)} and "
                f"their derivatives); {c['conn']['wm']} white-matter and {c['conn']['csf']} CSF anatomical CompCor "
                f"components | {censoring} |",
            ),
            (
                page,
                f"The {c['scrubbing']['motion']} motion parameters are the {len(fmriprep.MOTION_COLUMNS)} rigid-body",
            ),
            (page, f"({c['compcor']['compcor']} in the simulated data)"),
            (page, f"takes the first {c['conn']['wm']} of the white-matter mask and the first {c['conn']['csf']} of"),
            (page, f"cosine drift regressors ({cutoff:g} s high-pass)"),
            (page, f"arc length on a {radius:g} mm sphere"),
            (page, f"+ {radius:g}\\,\\mathrm{{mm}} \\sum_{{i}}"),
            ("book/cocaine_design.md", f"to move a point {radius:g} mm away"),
            (page, "fewer than $\\max(20, T/3)$"),
            (page, f"({p.n_volumes} volumes at TR {p.repetition_time:g} s, {seconds:g} s)"),
            (page, f"$2 \\times {width:g} \\times {seconds:g} \\approx {2 * width * seconds:.0f}$"),
            (
                page,
                f"`scrubbing` regresses out {c['scrubbing']['total']} series and `conn` {c['conn']['total']}, "
                f"the run's {c['conn']['cosine']} cosine drift regressors included",
            ),
            (page, f"the ROI couplings under {', '.join(comparison[:-1])} and {comparison[-1]} too"),
            (page, f"a Butterworth band-pass (order {_defaults(butterworth)['order']}"),
            (page, f"accumbens with probability ≥ {rois['nacc'].min_probability:g} %"),
            (page, f"**dlPFC**: {rois['dlpfc'].radius_mm:g} mm spheres at {_mni(rois['dlpfc'].spheres_mm)} mm"),
            (page, f"within {rois['thalamus_midline'].max_abs_x_mm:g} mm of the midline"),
            (page, f"smoothed with a {nb['smoothing_fwhm']:g} mm FWHM Gaussian"),
            (page, f"A cluster-forming threshold of one-tailed $p < {nb['cluster_forming_p']:g}$ per sign"),
            (page, f"with {nb['n_permutations']} permutations by default"),
        ]
    )


# --------------------------------------------------------------------------- the glutamate chapter


def test_methods_glutamate_states_the_analysis_defaults():
    nb = _parameters("thalamus_glutamate")
    seed_nb = _parameters("nacc_seed_fc")
    qc = _defaults(mrs.quality_control)
    assert (nb["max_crlb"], nb["max_fwhm_hz"], nb["min_snr"]) == (qc["max_crlb"], qc["max_fwhm_hz"], qc["min_snr"])
    assert qc["min_snr"] is None
    assert nb["n_bootstrap"] == _defaults(glutamate.coupling_table)["n_boot"]
    assert nb["smoothing_fwhm"] == seed_nb["smoothing_fwhm"]  # "as in" the seed chapter
    p = cocaine.CocaineStudyParams()
    r_o, r_u = p.ocdus_reactivity_r, p.use_reactivity_r
    sd, ind = p.thalamus_reactivity_sd, p.craving_fc_individual_sd
    alpha = nb["alpha"]
    page = "book/methods_glutamate.md"
    _assert_in_prose(
        [
            (page, f"| `crlb` | the CRLB is above `max_crlb` | {qc['max_crlb']:g} % |"),
            (page, f"| `fwhm` | the linewidth is above `max_fwhm_hz` | {qc['max_fwhm_hz']:g} Hz (0.1 ppm at 3 T) |"),
            (page, "| `snr` | the SNR is below `min_snr` | none |"),
            (page, f"({nb['n_bootstrap']} times by default)"),
            (page, f"tuning constant {HuberT().t:g}"),
            (page, f"(the notebook's `sesoi_r`, {nb['sesoi_r']:g} by default)"),
            (page, f"({100 * (1 - 2 * alpha):g} % at the default $\\alpha = {alpha:g}$)"),
            (page, f"smoothed with a {nb['smoothing_fwhm']:g} mm FWHM Gaussian as in"),
            (
                page,
                f"one-tailed $p < {nb['cluster_forming_p']:g}$, not the $p < {seed_nb['cluster_forming_p']:g}$ of the "
                "seed chapter",
            ),
            (page, f"the seed chapter ({nb['n_permutations']} permutations by default)"),
            (page, f"(about ${r_o:g} \\times {r_u:g} \\approx {r_o * r_u:.1f}$ at the planted values)"),
            (
                page,
                f"${p.craving_nacc_thalamus:g} + {sd:g}\\,u_i + e_i$ with $e_i \\sim N(0, {ind:g}^2)$",
            ),
            (page, f"\\rho = \\frac{{{sd:g}}}{{\\sqrt{{{sd:g}^2 + {ind:g}^2}}}} \\approx {sd / np.hypot(sd, ind):.2f}"),
        ]
    )


def test_calibration_conditions_are_those_the_chapter_names():
    # "the published design with the planted effects at half, one and two times the sizes of the default study"
    assert calibration.CONDITIONS == {"null": 0.0, "half": 0.5, "paper": 1.0, "double": 2.0}
    _assert_in_prose([("notebooks/calibration.ipynb", "at half, one and two times", 2)])


# --------------------------------------------------------------------------- glue


def _glued_keys(notebook: Path) -> tuple[set[str], bool]:
    """Keys a notebook glues, ``glue("key", ...)`` and the literal keys of ``pages.glue_values({...})``, and
    whether these are all of them (False when a key is computed, e.g. in a loop or by ``**`` of a dict)."""
    keys, complete = set(), True
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        for node in ast.walk(ast.parse("".join(cell["source"]))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = getattr(node.func, "attr", getattr(node.func, "id", None))
            first = node.args[0]
            if name == "glue":
                if isinstance(first, ast.Constant):
                    keys.add(first.value)
                else:
                    complete = False
            elif name == "glue_table":
                if isinstance(first, ast.Constant):
                    keys.add(first.value)
                else:
                    complete = False
            elif name == "glue_values":
                if not isinstance(first, ast.Dict):
                    complete = False
                    continue
                for key in first.keys:
                    if isinstance(key, ast.Constant):
                        keys.add(key.value)
                    else:
                        complete = False
    return keys, complete


def test_every_pasted_key_is_glued_in_its_notebook_and_keys_are_unique():
    owner: dict[str, str] = {}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        glued, complete = _glued_keys(path)
        for key in glued:
            assert key not in owner, f"glue key {key!r} in {path.name} and {owner[key]}"
            owner[key] = path.name
        pasted = {m.split(":")[0] for text in _markdown(path.stem) for m in GLUE_ROLE.findall(text)}
        if path.stem in CHECKED_NOTEBOOKS:
            assert complete, f"{path.name}: glue literal keys, so that this test can check them"
        if complete:
            assert pasted <= glued, f"{path.name} pastes keys it never glues: {sorted(pasted - glued)}"
    # a static page has no glue of its own: it pastes from an executed notebook (``executed/<run>.ipynb::key``
    # or the glue directive's ``:doc:``), and only keys that notebook glues
    runs = {entry["name"]: entry["notebook"] for entry in yaml.safe_load((ROOT / "book" / "runs.yml").read_text())}
    for page in sorted((ROOT / "book").glob("*.md")):
        text = page.read_text()
        references = [m.split(":")[0] if "::" not in m else m for m in GLUE_ROLE.findall(text)]
        references += [f"{doc}::{key}" for key, doc in GLUE_DIRECTIVE.findall(text)]
        for reference in references:
            assert "::" in reference, f"{page.name}: a static page has no glue of its own ({reference!r})"
            doc, key = reference.split("::", 1)
            run = re.fullmatch(r"executed/(\w+)\.ipynb", doc)
            assert run and run.group(1) in runs, f"{page.name}: {doc!r} is not an executed notebook of the plan"
            glued, complete = _glued_keys(ROOT / runs[run.group(1)])
            assert not complete or key.split(":")[0] in glued, f"{page.name} pastes {key!r}, never glued in {doc}"


@pytest.mark.parametrize("notebook", sorted(CHECKED_NOTEBOOKS))
def test_notebook_prose_types_no_number_that_depends_on_data_or_parameters(notebook):
    for text in _markdown(notebook):
        text = re.sub(r"\{[\w:-]+\}`[^`]*`", "", text)  # roles: glue, cite, doc
        text = re.sub(r"\$[^$]*\$", "", text)  # math
        text = re.sub(r"`[^`]*`", "", text)  # parameter names
        for allowed in CHECKED_NOTEBOOKS[notebook]:
            text = text.replace(allowed, "")
        numbers = re.findall(r"\S*\d\S*", text)
        assert not numbers, f"{notebook}: typed number(s) {numbers}: glue them from the notebook's values"


# --------------------------------------------------------------------------- the landing page


def test_landing_page_lists_every_chapter():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    intro = (ROOT / "book" / "intro.md").read_text()
    missing = []
    for part in toc["parts"]:
        for chapter in part["chapters"]:
            path = chapter["file"]
            mention = f"{{doc}}`{path.removeprefix('book/')}`"
            if mention not in intro:
                missing.append(mention)
    assert not missing, f"book/intro.md does not mention {missing}"
    assert "planned" not in intro.lower()
