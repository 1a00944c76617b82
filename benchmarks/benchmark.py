"""Speed, memory and disk figures of the book, measured on this machine.

Usage (from the repository root, after `make venv`)::

    .venv/bin/python benchmarks/benchmark.py                  # per-run costs on data/cocaine-paper
    .venv/bin/python benchmarks/benchmark.py --build          # also time a whole `make book` from scratch
    .venv/bin/python benchmarks/benchmark.py --build --tests  # and `make test`, `make test-fast`
    .venv/bin/python benchmarks/benchmark.py --build --rerun --tests --no-per-run   # every target of the README
    .venv/bin/python benchmarks/benchmark.py --no-per-run --cohort 1 2 4             # cost as the cohort grows
    .venv/bin/python benchmarks/benchmark.py --no-per-run --cohort 1 2 4 --engine dask --n-jobs 16

What is measured
----------------
* per run (``--runs`` runs of the simulated study): the time to read the run from
  disk (load the NIfTI and take the brain voxels) against the time to denoise it
  and compute its seed map and ROI couplings (confounds loading included), as the
  first level does; and, for
  comparison, nilearn's ``signal.clean`` with its default in-place (voxel by
  voxel) Butterworth filter on the same run;
* ``--build``: wall time of each step of `make book` (simulation, notebooks,
  HTML) in fresh data/results folders, the peak memory of the whole process
  tree (sampled every 0.2 s; the target is on the sum of proportional set sizes,
  which counts a page shared between processes once, and the sum of resident
  set sizes is reported beside it), the notebooks that were running at the peak,
  and the disk used by the simulated data;
* ``--tests``: wall time of `make test` and of `make test-fast`;
* ``--rerun``: after ``--build`` (or on a built book), the teaching use: the seed
  chapter re-executed with papermill and another denoising strategy
  (``-p strategy compcor+gsr``), its first level computed anew;
* ``--cohort 1 2 4``: the cocaine study simulated at 1x, 2x and 4x the
  paper's cohort (18 CUD, 23 controls, four runs each), then its first level
  and the seed chapter's three voxelwise permutation tests (``--cohort-perm``
  resamplings); time per run of the simulation and of the first level, and the
  permutation time, with ``--engine`` (local or dask) and ``--n-jobs`` workers.
* ``--clusters``: the cluster permutation test (one-sample, sign flips, two-sided,
  cluster-forming p 0.001 per tail, 1000 resamplings) on 18 smooth random maps
  over nilearn's bundled MNI152 brain mask at 4 mm (29,398 voxels), side by side
  in one run (median of ``--repeats`` runs each): this package; the same test
  labelling every resampled t map on the grid with ``scipy.ndimage.label`` (the
  method before the null clusters were found from the supra-threshold voxels,
  re-implemented here from the package's parts; its null distributions must
  equal the package's bit for bit); and nilearn's ``non_parametric_inference``
  with cluster inference (``threshold=0.002`` two-tailed, ``n_jobs=1``). The
  first two also with Welch's statistic (two groups of 9 as variance groups).
  ``--no-per-run`` skips the per-run figures (which need the simulated data).

Results go to ``benchmarks/results/benchmark.json`` (the sections measured by
this call replace those of an earlier call) and are printed.

The targets of the README are checked by :data:`TARGETS` and reported under
``targets`` (measured, target, met).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

#: Where ``--build`` simulates (removed after the build and the re-run).
BUILD_DATA = ROOT / "benchmarks" / "results" / "data"

#: (section, key, upper bound, unit): the targets on a 2-core machine.
TARGETS = (
    ("make_book", "make_book_s", 8 * 60, "s"),
    ("make_book", "peak_memory_gb", 2.0, "GB"),
    ("make_test", "make_test_s", 10 * 60, "s"),
    ("make_test", "make_test_fast_s", 2 * 60, "s"),
    ("rerun", "seed_chapter_rerun_s", 30, "s"),
)


def per_run(data_dir: Path, preset: str, n_runs: int) -> dict:
    from nilearn.signal import clean as nilearn_clean

    from craving_circuits.cocaine import connectivity, denoise, firstlevel, layout

    study = layout.simulated_study(preset, data_dir, n_jobs=2)
    runs, _ = layout.collect_runs(study)
    strategy = denoise.parse_strategy("conn")
    analysis, _, _ = firstlevel.seed_analysis(runs, strategy)
    rows = []
    for run in runs.head(n_runs).to_dict("records"):
        t0 = time.perf_counter()
        data = connectivity.read_masked_run(run["bold"], analysis.mask, analysis.affine)
        t_read = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = connectivity.seed_connectivity(data, run, analysis)
        t_work = time.perf_counter() - t0
        assert result.excluded is None, result.excluded
        rows.append({"read_s": t_read, "denoise_and_map_s": t_work})
    # nilearn's default cleaning (in-place Butterworth: one voxel at a time) on one run, for scale
    run = runs.iloc[0].to_dict()
    data = connectivity.read_masked_run(run["bold"], analysis.mask, analysis.affine).astype(np.float64)
    confounds, sample_mask, _ = denoise.load_run_confounds(run["bold"], strategy)
    t0 = time.perf_counter()
    nilearn_clean(
        data,
        confounds=confounds,
        sample_mask=sample_mask,
        detrend=True,
        standardize=None,
        filter="butterworth",
        high_pass=strategy.high_pass,
        low_pass=strategy.low_pass,
        t_r=run["t_r"],
    )
    t_nilearn = time.perf_counter() - t0
    read = np.median([r["read_s"] for r in rows])
    work = np.median([r["denoise_and_map_s"] for r in rows])
    return {
        "n_runs": len(rows),
        "n_voxels": int(analysis.mask.sum()),
        "n_volumes": int(runs.iloc[0]["n_volumes"]),
        "median_read_s": round(float(read), 3),
        "median_denoise_and_map_s": round(float(work), 3),
        "ratio_to_read": round(float(work / read), 2),
        "nilearn_default_clean_one_run_s": round(t_nilearn, 2),
    }


def _median_time(func, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = func()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def _labelling_every_map(y, tested, mask, cluster_forming_p, n_perm, rng, variance_groups=None, batch_size=256):
    """The cluster permutation test with every resampled t map labelled on the grid (ndimage.label).

    The package's own computation of the resampled maps, batch by batch as in
    ``cluster_permutation_test`` (so the same numbers), then per map and sign
    the supra-threshold voxels labelled on the mask's bounding box; two-sided,
    no confounds. Returns the null distributions.
    """
    import dataclasses

    from scipy import stats

    from craving_circuits.stats import permutation as perm

    resid, model = perm._prepare(y, tested, None, True)
    groups = None
    if variance_groups is not None:
        model = dataclasses.replace(model, n_invariant=0, sign_flip=True)
        groups = perm._variance_groups(variance_groups, model)
        batch_size = min(batch_size, groups.batch_size(y.shape[1]))
        c0 = groups.weights @ np.square(resid)
    draws = perm._draw_resamplings(np.random.default_rng(rng), n_perm, y.shape[0], model.sign_flip)
    threshold = float(stats.t.isf(cluster_forming_p, model.df))
    labeller = perm._ClusterLabeller(mask)
    t_obs = perm._observed_t(model, resid) if groups is None else groups.observed(model.x, resid)
    h0_max_t, h0_max_size, h0_max_mass = np.empty(n_perm), np.zeros(n_perm, dtype=np.int64), np.zeros(n_perm)
    for start in range(0, n_perm, batch_size):
        batch = draws[start : start + batch_size]
        if groups is not None:
            t_null = groups.null(batch.astype(np.float64), resid, c0)
        elif model.sign_flip:
            t_null = perm._t_maps(batch * model.x, batch[:, :, None] * model.resampled_nuisance[None], resid, model.df)
        else:
            t_null = perm._t_maps(model.x[batch], model.resampled_nuisance[batch], resid, model.df)
        h0_max_t[start : start + len(batch)] = np.maximum(t_null.max(axis=1), -t_null.min(axis=1))
        for i, t_map in enumerate(t_null, start=start):
            for signed in (t_map, -t_map):
                voxels = np.flatnonzero(signed > threshold)
                if voxels.size:
                    comp = labeller.components(voxels)
                    h0_max_size[i] = max(h0_max_size[i], np.bincount(comp).max())
                    h0_max_mass[i] = max(h0_max_mass[i], np.bincount(comp, weights=signed[voxels] - threshold).max())
    labeller.clusters(t_obs, threshold, True)
    return {"h0_max_t": h0_max_t, "h0_max_size": h0_max_size, "h0_max_mass": h0_max_mass}


def clusters(n_perm: int = 1000, repeats: int = 3) -> dict:
    import warnings

    import nibabel as nib
    import pandas as pd
    from nilearn.datasets import load_mni152_brain_mask
    from nilearn.glm.second_level import non_parametric_inference
    from scipy import ndimage

    from craving_circuits.stats.permutation import cluster_permutation_test

    mask_img = load_mni152_brain_mask(resolution=4)  # bundled with nilearn: no download
    mask = np.asarray(mask_img.dataobj) > 0
    n = 18
    rng = np.random.default_rng(0)
    sigma = 8.0 / 4.0 / np.sqrt(8 * np.log(2))  # FWHM 8 mm in 4 mm voxels
    volumes = ndimage.gaussian_filter(rng.standard_normal((n, *mask.shape)), (0, sigma, sigma, sigma))
    y = volumes[:, mask]
    y /= y.std()
    tested = np.ones(n)
    groups = np.repeat([0, 1], n // 2)
    p = 0.001
    out = {"n_maps": n, "n_voxels": int(mask.sum()), "n_perm": n_perm, "cluster_forming_p_per_tail": p}

    def ours(**kwargs):
        return cluster_permutation_test(
            y, kwargs.pop("tested", tested), mask, cluster_forming_p=p, n_perm=n_perm, rng=0, **kwargs
        )

    seconds, result = _median_time(ours, repeats)
    out["package_s"] = round(seconds, 3)
    seconds, every_map = _median_time(lambda: _labelling_every_map(y, tested, mask, p, n_perm, 0), repeats)
    out["labelling_every_map_s"] = round(seconds, 3)
    out["same_null_distributions"] = all(np.array_equal(getattr(result, k), v) for k, v in every_map.items())

    images = []
    for row in y:
        volume = np.zeros(mask.shape, dtype=np.float32)
        volume[mask] = row
        images.append(nib.Nifti1Image(volume, mask_img.affine))

    def nilearn():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return non_parametric_inference(
                images,
                design_matrix=pd.DataFrame({"intercept": tested}),
                mask=mask_img,
                n_perm=n_perm,
                two_sided_test=True,
                threshold=2 * p,
                tfce=False,
                random_state=0,
                n_jobs=1,
            )

    out["nilearn_s"] = round(_median_time(nilearn, repeats)[0], 3)
    out["speedup_vs_labelling_every_map"] = round(out["labelling_every_map_s"] / out["package_s"], 1)
    out["speedup_vs_nilearn"] = round(out["nilearn_s"] / out["package_s"], 1)

    seconds, result = _median_time(lambda: ours(tested=groups.astype(float), variance_groups=groups), repeats)
    out["variance_groups_package_s"] = round(seconds, 3)
    seconds, every_map = _median_time(
        lambda: _labelling_every_map(y, groups.astype(float), mask, p, n_perm, 0, variance_groups=groups), repeats
    )
    out["variance_groups_labelling_every_map_s"] = round(seconds, 3)
    out["variance_groups_same_null_distributions"] = all(
        np.array_equal(getattr(result, k), v) for k, v in every_map.items()
    )
    return out


class _PeakMemory:
    """Peak memory of a process and all its descendants, sampled every ``interval`` seconds.

    Two sums over the process tree: resident set sizes (RSS), which count a page
    shared by several processes (the numerical libraries every worker maps) once per
    process, and proportional set sizes (PSS), which split each shared page between
    the processes that map it, so that the sum is the memory the tree occupies.
    ``peak_at`` is the UTC time of the PSS peak.
    """

    def __init__(self, pid: int, interval: float = 0.2):
        import psutil

        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.peak_pss = 0
        self.peak_at = None
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import psutil

        while not self._stop.is_set():
            rss = pss = 0
            try:
                procs = [self.proc] + self.proc.children(recursive=True)
            except psutil.Error:
                break
            for p in procs:
                try:
                    full = p.memory_full_info()
                except psutil.Error:
                    continue
                rss += full.rss
                pss += getattr(full, "pss", full.rss)
            self.peak = max(self.peak, rss)
            if pss > self.peak_pss:
                self.peak_pss, self.peak_at = pss, datetime.now(UTC)
            time.sleep(self.interval)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join()


def _timed(cmd: list[str], cwd: Path, memory: dict | None = None) -> tuple[float, float]:
    """Run ``cmd``; return its wall time (s) and the peak RSS sum (GB).

    If ``memory`` is given it receives ``rss_gb``, ``pss_gb`` and ``peak_at``.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    with _PeakMemory(proc.pid) as mem:
        _, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    if memory is not None:
        memory.update(rss_gb=mem.peak / 1e9, pss_gb=mem.peak_pss / 1e9, peak_at=mem.peak_at)
    return time.perf_counter() - t0, mem.peak / 1e9


def _running_at(log: list[dict], when) -> list[str]:
    """Names of the notebooks of the run log that were executing at time ``when``."""
    if when is None:
        return []
    names = []
    for r in log:
        start = datetime.fromisoformat(r["started"])
        # ``started`` is rounded to the second
        if start - timedelta(seconds=1) <= when <= start + timedelta(seconds=r["duration_s"] + 1):
            names.append(r["name"])
    return names


def build(preset: str, null_preset: str, n_jobs: int) -> dict:
    data_dir, work = BUILD_DATA, ROOT / "benchmarks" / "results"
    for folder in (data_dir, ROOT / "results", ROOT / "book" / "executed", ROOT / "_build"):
        shutil.rmtree(folder, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    make = ["make", f"PRESET={preset}", f"NULL_PRESET={null_preset}", f"N_JOBS={n_jobs}", f"DATA_DIR={data_dir}"]
    out = {}
    t_total, peak, peak_pss, peak_step = 0.0, 0.0, 0.0, None
    for step in ("simulate", "notebooks", "html"):
        memory = {}
        seconds, gb = _timed(make + [step], ROOT, memory)
        out[f"{step}_s"] = round(seconds, 1)
        out[f"{step}_peak_pss_gb"] = round(memory["pss_gb"], 2)
        t_total += seconds
        peak = max(peak, gb)
        if memory["pss_gb"] > peak_pss:
            peak_pss, peak_step = memory["pss_gb"], (step, memory["peak_at"])
    out["make_book_s"] = round(t_total, 1)
    out["peak_memory_gb"] = round(peak_pss, 2)
    out["peak_memory_rss_sum_gb"] = round(peak, 2)
    # files shared between sibling studies are hard links: count each inode once, as du does
    inodes = {(st.st_dev, st.st_ino): st.st_size for st in (f.stat() for f in data_dir.rglob("*") if f.is_file())}
    size = sum(inodes.values())
    out["simulated_data_gb"] = round(size / 1e9, 2)
    log = json.loads((ROOT / "book" / "executed" / "runs.json").read_text())["runs"]
    out["per_notebook_s"] = {r["name"]: r["duration_s"] for r in log}
    out["peak_memory_step"] = peak_step[0]
    if peak_step[0] == "notebooks":
        out["peak_memory_notebooks"] = _running_at(log, peak_step[1])
    return out


def tests(n_jobs: int) -> dict:
    seconds, gb = _timed(["make", "test", f"N_JOBS={n_jobs}"], ROOT)
    fast, fast_gb = _timed(["make", "test-fast", f"N_JOBS={n_jobs}"], ROOT)
    return {
        "make_test_s": round(seconds, 1),
        "make_test_peak_memory_gb": round(gb, 2),
        "make_test_fast_s": round(fast, 1),
        "make_test_fast_peak_memory_gb": round(fast_gb, 2),
    }


def rerun(n_jobs: int, data_dir: Path) -> dict:
    """The seed chapter re-executed with another denoising strategy on a built book (the teaching use).

    A reader re-runs the chapter into the book's own ``results/nacc_seed_fc``, where
    the first level of the build already holds each run's couplings under the
    comparison strategies; the re-run here starts from a hard-linked copy of that
    folder (the files are replaced, never written through, so the book is left as
    it was), or from nothing if the book has not been built.
    """
    out = ROOT / "benchmarks" / "results" / "rerun"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    built = ROOT / "results" / "nacc_seed_fc" / "firstlevel"
    if built.is_dir():
        shutil.copytree(built, out / "nacc_seed_fc" / "firstlevel", copy_function=os.link)
    cmd = [
        str(Path(sys.executable).with_name("papermill")),
        "notebooks/nacc_seed_fc.ipynb",
        str(out / "nacc_seed_fc.ipynb"),
        "-p",
        "strategy",
        "compcor+gsr",
        "-p",
        "data_dir",
        str(data_dir),
        "-p",
        "output_dir",
        str(out / "nacc_seed_fc"),
        "-p",
        "n_jobs",
        str(n_jobs),
    ]
    memory = {}
    seconds, _ = _timed(cmd, ROOT, memory)
    shutil.rmtree(out, ignore_errors=True)
    return {
        "seed_chapter_rerun_s": round(seconds, 1),
        "seed_chapter_rerun_from_built_first_level": built.is_dir(),
        "seed_chapter_rerun_peak_memory_gb": round(memory["pss_gb"], 2),
        "seed_chapter_rerun_peak_memory_rss_sum_gb": round(memory["rss_gb"], 2),
    }


def cohort(factors, n_jobs: int, n_perm: int, engine: str, scheduler_address: str | None) -> dict:
    """Cost of the cocaine study's stages at multiples of the paper's cohort."""
    from craving_circuits.cocaine import denoise, firstlevel, layout, secondlevel
    from craving_circuits.io import compute
    from craving_circuits.simulate import cocaine_params
    from craving_circuits.stats.voxelwise import smooth_maps

    paper = cocaine_params("paper")
    rows = []
    with compute.start(engine, scheduler_address, n_workers=n_jobs) as workers:
        for factor in factors:
            folder = ROOT / "benchmarks" / "results" / f"cohort-x{factor}"
            shutil.rmtree(folder, ignore_errors=True)
            t0 = time.perf_counter()
            study = layout.simulated_study(
                "paper",
                folder / "data",
                n_jobs=n_jobs,
                n_cud=paper.n_cud * factor,
                n_control=paper.n_control * factor,
            )
            t_sim = time.perf_counter() - t0
            runs, _ = layout.collect_runs(study)
            t0 = time.perf_counter()
            analysis, mask_img, _ = firstlevel.seed_analysis(runs, denoise.parse_strategy("conn"))
            first = firstlevel.first_level(runs, analysis, mask_img, folder / "firstlevel", n_jobs=n_jobs)
            t_first = time.perf_counter() - t0
            diff, table, _ = secondlevel.state_difference_maps(first.runs, first.maps)
            smoothed = smooth_maps(diff, mask_img, 6.0)
            t0 = time.perf_counter()
            secondlevel.group_tests(smoothed, table, mask_img, n_perm=n_perm, rng=0, n_jobs=n_jobs)
            t_perm = time.perf_counter() - t0
            rows.append(
                {
                    "factor": factor,
                    "participants": int(table["participant_id"].nunique()),
                    "runs": len(runs),
                    "voxels": int(smoothed.shape[1]),
                    "simulate_s": round(t_sim, 1),
                    "simulate_per_run_s": round(t_sim / len(runs), 3),
                    "first_level_s": round(t_first, 1),
                    "first_level_per_run_s": round(t_first / len(runs), 3),
                    "permutation_s": round(t_perm, 1),
                    "permutation_per_participant_s": round(t_perm / len(table), 3),
                }
            )
            print(rows[-1], flush=True)
            shutil.rmtree(folder, ignore_errors=True)
        where = workers.describe()
    return {"engine": where, "n_jobs": n_jobs, "n_perm_per_test": n_perm, "tests": 3, "rows": rows}


def check_targets(results: dict) -> list[dict]:
    """Each target of :data:`TARGETS` whose figure was measured: measured, target, met."""
    out = []
    for section, key, bound, unit in TARGETS:
        value = results.get(section, {}).get(key)
        if value is not None:
            out.append({"figure": key, "measured": value, "target": bound, "unit": unit, "met": value <= bound})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--null-preset", default="null")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--build", action="store_true", help="time a whole `make book` from scratch")
    parser.add_argument("--tests", action="store_true", help="time `make test`")
    parser.add_argument(
        "--clusters",
        action="store_true",
        help="time the cluster permutation test against the method before and nilearn",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per method in --clusters (median reported)")
    parser.add_argument("--no-per-run", action="store_true", help="skip the per-run figures")
    parser.add_argument("--rerun", action="store_true", help="time the seed chapter re-run with another strategy")
    parser.add_argument("--cohort", type=int, nargs="*", metavar="FACTOR", help="cohort multiples, e.g. 1 2 4")
    parser.add_argument("--cohort-perm", type=int, default=1000, help="resamplings per test in --cohort")
    parser.add_argument("--engine", default="local", help="engine of --cohort: local or dask")
    parser.add_argument("--scheduler-address", default=None, help="Dask scheduler of --cohort")
    args = parser.parse_args(argv)
    import os
    import platform

    path = ROOT / "benchmarks" / "results" / "benchmark.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    results["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform()}
    data_dir = ROOT / args.data_dir
    if args.build:
        results["make_book"] = build(args.preset, args.null_preset, args.n_jobs)
        data_dir = BUILD_DATA
    if args.rerun:
        results["rerun"] = rerun(args.n_jobs, data_dir)
    if args.build:
        shutil.rmtree(BUILD_DATA, ignore_errors=True)
    if not args.no_per_run:
        results["per_run"] = per_run(ROOT / args.data_dir, args.preset, args.runs)
    if args.clusters:
        results["cluster_test"] = clusters(repeats=args.repeats)
    if args.tests:
        results["make_test"] = tests(args.n_jobs)
    if args.cohort:
        results["cohort"] = cohort(args.cohort, args.n_jobs, args.cohort_perm, args.engine, args.scheduler_address)
    results["targets"] = check_targets(results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
