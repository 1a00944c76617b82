"""Image-level calibration: full-pipeline null replicates of both studies, at a reduced resolution.

The voxelwise calibration (:func:`craving_circuits.verdict.calibration.voxelwise_null`)
draws second-level maps directly. Here each replicate is a whole simulated
study of each kind, from the images on: the image simulators write a null
study (the ``tiny_null`` presets by default: 8 mm voxels, small groups) with
the replicate's seed, and the chapters' own functions analyse it as the
chapters do:

* **cocaine**: denoising and seed first level
  (:func:`craving_circuits.cocaine.firstlevel.seed_analysis`,
  :func:`~craving_circuits.cocaine.firstlevel.first_level`), the state and drug
  contrast maps, the seed chapter's :data:`~craving_circuits.cocaine.secondlevel.GROUP_TESTS`,
  the NAC chapter's :data:`~craving_circuits.cocaine.secondlevel.DRUG_TESTS`
  and the glutamate chapter's covariate test of the glutamate change;
* **baclofen**: CBF quantification (:func:`craving_circuits.baclofen.perfusion.cbf_maps`),
  the group x time test with the global covariate, the dlPFC change, the cue
  GLMs (:func:`craving_circuits.baclofen.cue.cue_maps`) and the covariate test
  of the cue-response change on the dlPFC change with group as a nuisance.

Each test runs at its chapter's cluster-forming threshold
(:data:`craving_circuits.verdict.calibration.VOXEL_TESTS`) and fires when a
cluster reaches ``p_FWE < alpha``. Replicates are independent tasks of the
engine of :mod:`craving_circuits.io.compute` (joblib's workers or a Dask
cluster); each writes its studies into a folder of its own, deleted when it
is done, and returns its rows. A replicate is a pure function of its seed, so
the table does not depend on the engine or the number of workers.

Data conventions
----------------
:func:`image_null` returns one row per replicate and test with the columns
:data:`IMAGE_COLUMNS` (those of the voxelwise calibration, condition
``"image-level null"``, plus ``map_fwhm_mm``, the mean smoothness of the
participant maps before the chapter's smoothing, from
:func:`craving_circuits.verdict.calibration.map_fwhm` as :data:`MAP_SCALES` says).

The cocaine maps' noise
-----------------------
The same code paths (:func:`cocaine_participant_maps`) measure the noise of the
cocaine participant maps for the voxelwise calibration:
:func:`derive_map_noise` simulates null studies, measures the smoothness of
their ``state`` and ``drug`` maps, and finds the share of the simulator's
smooth noise field whose drawn maps measure the same
(:func:`craving_circuits.verdict.calibration.match_map_noise`). It does so for
each preset of :data:`MAP_NOISE_DESIGNS`: ``null`` (the ``paper`` preset's noise,
on the 8 mm grid the calibration chapter draws on) and ``tiny_null`` (this
module's replicates). :func:`write_map_noise` stores them with the hash of
:data:`MAP_NOISE_SOURCES` in ``simulate/data/cocaine_map_noise.json``, which
:func:`craving_circuits.verdict.calibration.map_noise` reads
(``python -m craving_circuits.verdict.image_calibration [n_jobs]`` derives them
again).
:func:`run_image_calibration` writes it to ``<results_dir>/calibration/image_level.tsv``
(atomically); :func:`image_level_table` summarises it for the calibration chapter.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import Markdown
from joblib import Parallel, delayed

from craving_circuits.baclofen import cue, perfusion
from craving_circuits.baclofen import layout as baclofen_layout
from craving_circuits.cocaine import chapters, denoise, firstlevel, mrs, secondlevel
from craving_circuits.cocaine import layout as cocaine_layout
from craving_circuits.io import atlas
from craving_circuits.io.files import read_tsv, write_tsv
from craving_circuits.simulate import cocaine_params
from craving_circuits.stats import voxelwise
from craving_circuits.verdict import calibration, twin
from craving_circuits.verdict.calibration import VOXEL_COLUMNS, VOXEL_TESTS, map_fwhm, voxelwise_summary

__all__ = [
    "IMAGE_COLUMNS",
    "IMAGE_CONDITION",
    "IMAGE_TABLE",
    "image_replicate",
    "image_null",
    "run_image_calibration",
    "image_level_table",
    "MAP_SCALES",
    "MAP_NOISE_SOURCES",
    "MAP_NOISE_DESIGNS",
    "cocaine_participant_maps",
    "derive_map_noise",
    "write_map_noise",
]

#: Columns of :func:`image_null`.
IMAGE_COLUMNS = [*VOXEL_COLUMNS, "map_fwhm_mm"]

#: The ``condition`` of the image-level rows.
IMAGE_CONDITION = "image-level null"

#: Where :func:`run_image_calibration` writes its table, under the results folder.
IMAGE_TABLE = Path("calibration") / "image_level.tsv"

#: How the participant maps' smoothness is measured here, per kind (``map_fwhm``'s ``scale``). The cocaine
#: maps: each map weighs alike, since a participant with one analysable session or much motion makes a map
#: of outlying amplitude that, each voxel scaled by its SD, sets the estimate (one such map turned a tiny
#: replicate's 7.7 mm into 17 mm). The baclofen maps: each voxel scaled by its SD, since their variance
#: differs between voxels (the regional CBF variation is grey matter's, the thermal noise follows M0).
MAP_SCALES = {"state": "map", "drug": "map", "cue": "voxel", "cbf": "voxel"}

#: The cocaine participant maps the voxelwise tests use.
KINDS = ("state", "drug")


def _row(replicate: int, test: str, result, alpha: float, fwhm: float) -> dict:
    p = result.clusters["p_fwe_size"] if len(result.clusters) else pd.Series(dtype=float)
    spec = VOXEL_TESTS[test]
    return {
        "replicate": replicate,
        "condition": IMAGE_CONDITION,
        "study": spec["study"],
        "test": test,
        "cluster_forming_p": spec["cluster_forming_p"],
        "n_clusters": len(result.clusters),
        "min_p_fwe": float(p.min()) if len(p) else 1.0,
        "found": bool((p < alpha).any()),
        "map_fwhm_mm": fwhm,
    }


def cocaine_participant_maps(
    folder: str | Path, preset: str, seed: int, strategy: str = "conn", n_jobs: int = 1, **overrides
) -> dict:
    """Simulate a cocaine study and make the participant maps the voxelwise tests use, as the chapters do.

    The image simulator writes the study (``preset`` with ``seed`` and ``overrides``) under
    ``<folder>/data``; the seed chapter's denoising ``strategy`` and first level
    (:func:`craving_circuits.cocaine.firstlevel.seed_analysis`,
    :func:`~craving_circuits.cocaine.firstlevel.first_level`) run on it, and the second level's
    :func:`~craving_circuits.cocaine.secondlevel.state_difference_maps` and
    :func:`~craving_circuits.cocaine.secondlevel.drug_difference_maps` make the participant maps.

    Returns
    -------
    maps : dict
        ``study`` (its layout), ``runs`` (the collected runs), ``analysis``, ``mask_img``, ``first``
        (the first level), ``state`` and ``drug`` (each ``(maps, table)``: maps of shape
        ``(n_participants, n_voxels)``, unsmoothed, and their participants' table).
    """
    folder = Path(folder)
    study = cocaine_layout.simulated_study(preset, folder / "data", n_jobs=n_jobs, seed=seed, **overrides)
    runs, _ = cocaine_layout.collect_runs(study)
    analysis, mask_img, _ = firstlevel.seed_analysis(runs, denoise.parse_strategy(strategy))
    first = firstlevel.first_level(runs, analysis, mask_img, folder / "firstlevel", n_jobs=n_jobs)
    state, table, _ = secondlevel.state_difference_maps(first.runs, first.maps)
    drug, drug_table, _ = secondlevel.drug_difference_maps(first.runs, first.maps)
    return {
        "study": study,
        "runs": runs,
        "analysis": analysis,
        "mask_img": mask_img,
        "first": first,
        "state": (state, table),
        "drug": (drug, drug_table),
    }


def _cocaine_rows(replicate: int, seed: int, folder: Path, preset: str, options: dict) -> list[dict]:
    """The cocaine chapters' voxelwise tests on one simulated null study."""
    alpha, smoothing, n_perm = options["alpha"], options["smoothing_fwhm"], options["n_perm"]
    made = cocaine_participant_maps(folder, preset, seed, options["strategy"])
    study, runs, analysis, mask_img, first = (made[k] for k in ("study", "runs", "analysis", "mask_img", "first"))
    rows = []
    diff, table = made["state"]
    fwhm = float(np.nanmean(map_fwhm(diff, mask_img, scale=MAP_SCALES["state"])))
    smoothed = voxelwise.smooth_maps(diff, mask_img, smoothing)
    rng = np.random.default_rng([seed, 41])
    for test in secondlevel.GROUP_TESTS:
        cfp = VOXEL_TESTS[test]["cluster_forming_p"]
        result = secondlevel.group_test(test, smoothed, table, mask_img, cluster_forming_p=cfp, n_perm=n_perm, rng=rng)
        rows.append(_row(replicate, test, result, alpha, fwhm))
    drug_maps, drug_table = made["drug"]
    drug_fwhm = float(np.nanmean(map_fwhm(drug_maps, mask_img, scale=MAP_SCALES["drug"])))
    drug_smoothed = voxelwise.smooth_maps(drug_maps, mask_img, smoothing)
    for test in secondlevel.DRUG_TESTS:
        cfp = VOXEL_TESTS[test]["cluster_forming_p"]
        result = secondlevel.group_test(
            test, drug_smoothed, drug_table, mask_img, cluster_forming_p=cfp, n_perm=n_perm, rng=rng
        )
        rows.append(_row(replicate, test, result, alpha, drug_fwhm))
    fc_changes = secondlevel.roi_state_differences(first.roi, analysis.strategy.name)
    drugs = runs[["participant_id", "session_id", "drug"]].drop_duplicates()
    glu = chapters.glutamate_tests(
        fc_changes,
        mrs.read_mrs(study.mrs_file),
        cocaine_layout.read_participants(study),
        drugs,
        n_bootstrap=20,
        alpha=alpha,
        rng=rng,
    )
    result, _, _ = voxelwise.covariate_test(
        smoothed,
        table,
        glu["changes"].set_index("participant_id")["dglu"],
        mask_img,
        group="CUD",
        cluster_forming_p=VOXEL_TESTS["glutamate_coupling"]["cluster_forming_p"],
        n_perm=n_perm,
        rng=rng,
    )
    rows.append(_row(replicate, "glutamate_coupling", result, alpha, fwhm))
    return rows


def _baclofen_rows(replicate: int, seed: int, folder: Path, preset: str, options: dict) -> list[dict]:
    """The baclofen chapters' voxelwise tests on one simulated null study."""
    alpha, smoothing, n_perm = options["alpha"], options["smoothing_fwhm"], options["n_perm"]
    root = baclofen_layout.simulated_study(preset, folder / "data", seed=seed)
    asl_runs, _ = baclofen_layout.collect_asl_runs(root)
    cbf = perfusion.cbf_maps(asl_runs, folder / "cbf", n_jobs=1)
    diff, table, _ = perfusion.time_difference_maps(cbf.runs, cbf.maps)
    fwhm = float(np.nanmean(map_fwhm(diff, cbf.mask_img, scale=MAP_SCALES["cbf"])))
    smoothed = voxelwise.smooth_maps(diff, cbf.mask_img, smoothing)
    rng = np.random.default_rng([seed, 42])
    result = perfusion.group_by_time_test(
        smoothed,
        table,
        cbf.mask_img,
        covariate=perfusion.global_change(cbf.runs, table),
        cluster_forming_p=VOXEL_TESTS["group_x_time_cbf"]["cluster_forming_p"],
        n_perm=n_perm,
        rng=rng,
    )
    rows = [_row(replicate, "group_x_time_cbf", result, alpha, fwhm)]
    mask = np.asarray(cbf.mask_img.dataobj) > 0
    dlpfc = atlas.roi_masks(["dlpfc_right"], cbf.mask_img)["dlpfc_right"][mask]
    values = perfusion.region_values(
        result, cbf.runs, cbf.maps, dlpfc, "dlpfc_right", alpha=alpha, global_cbf=cbf.runs["mean_gm_cbf"]
    )
    dlpfc_change = perfusion.participant_change(values[values["region"] == "dlpfc_right"])
    task_runs, _ = baclofen_layout.collect_task_runs(root)
    first = cue.cue_maps(task_runs, cbf.mask_img, folder / "cue", n_jobs=1)
    cue_diff, cue_table, _ = perfusion.time_difference_maps(first.runs, first.maps)
    cue_fwhm = float(np.nanmean(map_fwhm(cue_diff, cbf.mask_img, scale=MAP_SCALES["cue"])))
    result, _, _ = voxelwise.covariate_test(
        voxelwise.smooth_maps(cue_diff, cbf.mask_img, smoothing),
        cue_table,
        dlpfc_change.set_index("participant_id")["change"],
        cbf.mask_img,
        group=None,
        nuisance="group",
        cluster_forming_p=VOXEL_TESTS["cue_cbf_coupling"]["cluster_forming_p"],
        n_perm=n_perm,
        rng=np.random.default_rng([seed, 43]),
    )
    rows.append(_row(replicate, "cue_cbf_coupling", result, alpha, cue_fwhm))
    return rows


def image_replicate(
    replicate: int,
    seed: int,
    work_dir: str | Path,
    cocaine_preset: str = "tiny_null",
    baclofen_preset: str = "tiny_null",
    n_perm: int = 100,
    alpha: float = 0.05,
    smoothing_fwhm: float = 6.0,
    strategy: str = "conn",
    keep: bool = False,
) -> list[dict]:
    """One full-pipeline null replicate of both studies (simulator seed ``seed + replicate``).

    Parameters
    ----------
    replicate : int
    seed : int
    work_dir : path
        The replicate's studies and first levels go to ``<work_dir>/replicate-<replicate>``, deleted
        afterwards unless ``keep``.
    cocaine_preset, baclofen_preset : str
        Null presets of the simulators (every planted effect zero).
    n_perm, alpha, smoothing_fwhm, strategy
        Permutations per test, level, the chapters' smoothing and the seed chapter's denoising.

    Returns
    -------
    rows : list of dict
        One per voxelwise test (:data:`IMAGE_COLUMNS`).
    """
    folder = Path(work_dir) / f"replicate-{replicate}"
    options = {"alpha": alpha, "smoothing_fwhm": smoothing_fwhm, "n_perm": n_perm, "strategy": strategy}
    try:
        rows = _cocaine_rows(replicate, seed + replicate, folder / "cocaine", cocaine_preset, options)
        rows += _baclofen_rows(replicate, seed + replicate, folder / "baclofen", baclofen_preset, options)
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    return rows


def image_null(n_replicates: int, work_dir: str | Path, seed: int = 30_000, n_jobs: int = 1, **options) -> pd.DataFrame:
    """Full-pipeline null replicates of both studies, as independent tasks of the active engine.

    Parameters
    ----------
    n_replicates : int
    work_dir : path
        Scratch folder of the replicates (on a file system every worker sees).
    seed : int
        Replicate ``i`` simulates with seed ``seed + i``.
    n_jobs : int
        Replicates run side by side (with the Dask engine, the cluster's workers).
    **options
        Of :func:`image_replicate`.

    Returns
    -------
    results : pandas.DataFrame
        Columns :data:`IMAGE_COLUMNS`, ordered by replicate and test.
    """
    if int(n_replicates) != n_replicates or n_replicates < 1:
        raise ValueError(f"n_replicates must be a positive integer, got {n_replicates}.")
    out = Parallel(n_jobs=n_jobs)(
        delayed(image_replicate)(i, seed, work_dir, **options) for i in range(int(n_replicates))
    )
    return pd.DataFrame([row for rows in out for row in rows], columns=IMAGE_COLUMNS)


def run_image_calibration(
    n_replicates: int,
    results_dir: str | Path = "results",
    work_dir: str | Path | None = None,
    seed: int = 30_000,
    n_jobs: int = 1,
    **options,
) -> tuple[Path, float]:
    """Run :func:`image_null` and write its table to ``<results_dir>/calibration/image_level.tsv``.

    Returns
    -------
    path : pathlib.Path
        The table (written atomically: a reader never sees half of it).
    seconds : float
        Wall-clock time of the replicates.
    """
    work = Path(work_dir) if work_dir is not None else Path(results_dir) / "calibration" / ".image_level_work"
    start = time.perf_counter()
    results = image_null(n_replicates, work, seed=seed, n_jobs=n_jobs, **options)
    seconds = time.perf_counter() - start
    shutil.rmtree(work, ignore_errors=True)
    return write_tsv(Path(results_dir) / IMAGE_TABLE, results), seconds


#: The modules whose code the derived cocaine map noise depends on (relative to the package): the image
#: simulator and the first level (as for the ROI-level twin), and the second level's difference maps.
MAP_NOISE_SOURCES = (*twin.SOURCES, "cocaine/secondlevel.py")

#: The derivations :func:`write_map_noise` stores, per preset: the calibration's (the ``null`` preset, the
#: ``paper`` noise, on the 8 mm grid the calibration draws on) and the tests' (``tiny_null``, 8 mm).
MAP_NOISE_DESIGNS = {
    "null": {"n_replicates": 4, "seed": 50_000, "n_cud": 9, "n_control": 9},
    "tiny_null": {"n_replicates": 6, "seed": 51_000},
}


def _replicate_fwhm(seed: int, folder: Path, preset: str, strategy: str, overrides: dict) -> dict:
    try:
        made = cocaine_participant_maps(folder, preset, seed, strategy, **overrides)
        return {
            kind: float(np.nanmean(map_fwhm(made[kind][0], made["mask_img"], scale=MAP_SCALES[kind]))) for kind in KINDS
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def derive_map_noise(
    preset: str = "null",
    n_replicates: int = 4,
    seed: int = 50_000,
    voxel_size_mm: int = 8,
    strategy: str = "conn",
    n_maps: int = 200,
    draw_seed: int = 0,
    n_jobs: int = 1,
    work_dir: str | Path | None = None,
    **overrides,
) -> dict:
    """The cocaine participant maps' noise, measured on the image pipeline's null maps.

    Replicate ``i`` simulates a study of ``preset`` (with ``overrides``) on the ``voxel_size_mm`` grid
    with seed ``seed + i`` and makes its ``state`` and ``drug`` maps as the chapters do
    (:func:`cocaine_participant_maps`, the seed chapter's ``strategy``); their smoothness is
    :func:`craving_circuits.verdict.calibration.map_fwhm` (each map weighed alike, averaged over the
    axes), averaged over the replicates. :func:`craving_circuits.verdict.calibration.match_map_noise`
    then finds the share of the simulator's smooth noise field (its ``smooth_noise_fwhm_mm``; a wider
    field only if a share of 1 is not smooth enough) whose ``n_maps`` drawn maps (seed ``draw_seed``)
    measure the same.

    Returns
    -------
    derivation : dict
        ``preset``, ``voxel_size_mm``, ``design`` (what was simulated), ``noise_parameters``
        (:func:`craving_circuits.verdict.calibration.noise_signature` of the preset),
        ``time_series_share`` (the simulator's smooth / (smooth + white) variance), ``scale``,
        ``n_maps``, ``draw_seed`` and ``kinds``: per kind ``pipeline_fwhm_mm`` (mean over replicates),
        ``pipeline_fwhm_sd`` (their SD; NaN for one replicate), ``replicate_fwhm_mm``, and the matched
        ``smooth_share``, ``fwhm_mm`` and ``drawn_fwhm_mm``.
    """
    if int(n_replicates) != n_replicates or n_replicates < 1:
        raise ValueError(f"n_replicates must be a positive integer, got {n_replicates}.")
    params = cocaine_params(preset, **overrides)
    if params.voxel_size_mm != voxel_size_mm:
        overrides = {**overrides, "voxel_size_mm": int(voxel_size_mm)}
        params = cocaine_params(preset, **overrides)
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(work_dir) if work_dir is not None else Path(tmp)
        out = Parallel(n_jobs=n_jobs)(
            delayed(_replicate_fwhm)(seed + i, where / f"map-noise-{seed + i}", preset, strategy, overrides)
            for i in range(int(n_replicates))
        )
    share = params.smooth_noise_sd**2 / (params.smooth_noise_sd**2 + params.white_noise_sd**2)
    base = calibration.MapNoise(float(params.smooth_noise_fwhm_mm), float(share), int(voxel_size_mm))
    mask_img = atlas.brain_mask(voxel_size_mm)
    kinds = {}
    for kind in KINDS:
        values = np.array([o[kind] for o in out])
        noise, drawn = calibration.match_map_noise(
            float(values.mean()), base, mask_img, n_maps=n_maps, seed=draw_seed, scale=MAP_SCALES[kind]
        )
        kinds[kind] = {
            "pipeline_fwhm_mm": float(values.mean()),
            "pipeline_fwhm_sd": float(values.std(ddof=1)) if len(values) > 1 else float("nan"),
            "replicate_fwhm_mm": [float(v) for v in values],
            "smooth_share": noise.smooth_share,
            "fwhm_mm": noise.fwhm_mm,
            "drawn_fwhm_mm": drawn,
        }
    return {
        "preset": preset,
        "voxel_size_mm": int(voxel_size_mm),
        "design": {**overrides, "n_replicates": int(n_replicates), "seed": int(seed), "strategy": strategy},
        "noise_parameters": calibration.noise_signature(params),
        "time_series_share": float(share),
        "scale": {kind: MAP_SCALES[kind] for kind in KINDS},
        "n_maps": int(n_maps),
        "draw_seed": int(draw_seed),
        "kinds": kinds,
    }


def write_map_noise(n_jobs: int = 1, path=None) -> Path:
    """Derive the map noise of every preset of :data:`MAP_NOISE_DESIGNS` and store it with the code hash
    (default: :data:`craving_circuits.verdict.calibration.MAP_NOISE_FILE`, which ``map_noise`` reads)."""
    presets = {}
    for preset, design in MAP_NOISE_DESIGNS.items():
        presets[preset] = derive_map_noise(preset, n_jobs=n_jobs, **design)
    constants = {"code_hash": twin.code_hash(MAP_NOISE_SOURCES), "presets": presets}
    return twin.write_constants(constants, path if path is not None else calibration.MAP_NOISE_FILE)


#: The command that fills the image-level table (shown by the chapter when the table is missing).
COMMAND = "craving-circuits calibrate-images --replicates 200 --n-jobs 8 --engine dask"


def image_level_table(calibration_dir: str | Path = "results/calibration", alpha: float = 0.05):
    """The image-level calibration's summary for the chapter, or how to produce it.

    Parameters
    ----------
    calibration_dir : path
        The calibration chapter's results folder (``<results_dir>/calibration``), where
        :func:`run_image_calibration` writes ``image_level.tsv``.
    alpha : float

    Returns
    -------
    summary : pandas.DataFrame or IPython.display.Markdown
        :func:`craving_circuits.verdict.calibration.voxelwise_summary` of the table with the mean
        ``map_fwhm_mm`` of each test, when the table exists; otherwise a paragraph with the command
        that writes it.
    """
    path = Path(calibration_dir) / IMAGE_TABLE.name
    if not path.exists():
        return Markdown(
            f"The image-level calibration has not been run for this build (there is no `{path.name}` in "
            f"the calibration results). To run it: `{COMMAND}` (any replicate count; add "
            "`--scheduler-address tcp://host:8786` to use a running Dask cluster, or `--engine local` "
            "for worker processes on this machine), then execute this chapter again."
        )
    results = read_tsv(path, "the image-level calibration table")
    missing = set(IMAGE_COLUMNS) - set(results.columns)
    if missing:
        raise ValueError(
            f"{path} lacks the column(s) {sorted(missing)}; run `craving-circuits calibrate-images` again to "
            "rewrite it."
        )
    summary = voxelwise_summary(results[VOXEL_COLUMNS], alpha=alpha)
    fwhm = results.groupby("test")["map_fwhm_mm"].mean()
    return summary.assign(map_fwhm_mm=summary["test"].map(fwhm).to_numpy())


if __name__ == "__main__":  # python -m craving_circuits.verdict.image_calibration [n_jobs]: derive the map noise
    print(write_map_noise(int(sys.argv[1]) if len(sys.argv) > 1 else 1))
