"""Speed, memory and disk figures of the book, measured on this machine.

Usage (from the repository root, after `make venv`)::

    .venv/bin/python benchmarks/benchmark.py                  # per-run costs on data/cocaine-paper
    .venv/bin/python benchmarks/benchmark.py --build          # also time a whole `make book` from scratch
    .venv/bin/python benchmarks/benchmark.py --build --tests  # and `make test`

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
  tree (sampled every 0.2 s) and the disk used by the simulated data;
* ``--tests``: wall time of `make test`.

Results go to ``benchmarks/results/benchmark.json`` and are printed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


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


class _PeakMemory:
    """Peak resident memory of a process and all its descendants."""

    def __init__(self, pid: int, interval: float = 0.2):
        import psutil

        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import psutil

        while not self._stop.is_set():
            total = 0
            try:
                procs = [self.proc] + self.proc.children(recursive=True)
            except psutil.Error:
                break
            for p in procs:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(self.interval)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join()


def _timed(cmd: list[str], cwd: Path) -> tuple[float, float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    with _PeakMemory(proc.pid) as mem:
        _, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    return time.perf_counter() - t0, mem.peak / 1e9


def build(preset: str, null_preset: str, n_jobs: int) -> dict:
    data_dir, work = ROOT / "benchmarks" / "results" / "data", ROOT / "benchmarks" / "results"
    for folder in (data_dir, ROOT / "results", ROOT / "book" / "executed", ROOT / "_build"):
        shutil.rmtree(folder, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    make = ["make", f"PRESET={preset}", f"NULL_PRESET={null_preset}", f"N_JOBS={n_jobs}", f"DATA_DIR={data_dir}"]
    out = {}
    t_total, peak = 0.0, 0.0
    for step in ("simulate", "notebooks", "html"):
        seconds, gb = _timed(make + [step], ROOT)
        out[f"{step}_s"] = round(seconds, 1)
        t_total += seconds
        peak = max(peak, gb)
    out["make_book_s"] = round(t_total, 1)
    out["peak_memory_gb"] = round(peak, 2)
    # files shared between sibling studies are hard links: count each inode once, as du does
    inodes = {(st.st_dev, st.st_ino): st.st_size for st in (f.stat() for f in data_dir.rglob("*") if f.is_file())}
    size = sum(inodes.values())
    out["simulated_data_gb"] = round(size / 1e9, 2)
    log = json.loads((ROOT / "book" / "executed" / "runs.json").read_text())["runs"]
    out["per_notebook_s"] = {r["name"]: r["duration_s"] for r in log}
    shutil.rmtree(data_dir, ignore_errors=True)
    return out


def tests(n_jobs: int) -> dict:
    seconds, gb = _timed(["make", "test", f"N_JOBS={n_jobs}"], ROOT)
    return {"make_test_s": round(seconds, 1), "make_test_peak_memory_gb": round(gb, 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--null-preset", default="null")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--build", action="store_true", help="time a whole `make book` from scratch")
    parser.add_argument("--tests", action="store_true", help="time `make test`")
    args = parser.parse_args(argv)
    import os
    import platform

    results = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}
    if args.build:
        results["make_book"] = build(args.preset, args.null_preset, args.n_jobs)
    results["per_run"] = per_run(ROOT / args.data_dir, args.preset, args.runs)
    if args.tests:
        results["make_test"] = tests(args.n_jobs)
    path = ROOT / "benchmarks" / "results" / "benchmark.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
