"""Command line: ``python -m craving_circuits <command>`` (also ``craving-circuits``).

Commands
--------
simulate
    Write a simulated study (``data/cocaine-<preset>``), unless it is already there.
execute
    Execute the book's notebooks with papermill as the run plan says; with
    ``--bids-dir`` (and ``--fmriprep-dir``, ``--aslprep-dir``) every chapter
    whose inputs are present runs on that dataset, the others are skipped with
    a page saying what was absent (:mod:`craving_circuits.book.owndata`).
calibrate
    Run the ROI-level calibration of every claim's test with more replicates
    than the book's build (``--replicates``, default 10,000 per condition and
    study) on an engine, into ``results/calibration_engine``; the calibration
    chapter shows its intervals when it is there.
mathjax
    Copy MathJax into the book's static files, so pages need no CDN.
calibrate-images
    Full-pipeline null replicates of both studies at a reduced resolution
    (:mod:`craving_circuits.verdict.image_calibration`), on the chosen engine;
    the table goes to ``<results-dir>/calibration/image_level.tsv``.
"""

from __future__ import annotations

import argparse
import sys
import time

import yaml

from craving_circuits.book.execute import (
    NotebookFailed,
    execute_plan,
    install_mathjax,
    load_plan,
)
from craving_circuits.book.owndata import own_data_plan
from craving_circuits.cocaine.layout import simulated_study
from craving_circuits.io import compute
from craving_circuits.verdict import image_calibration
from craving_circuits.verdict.calibration import run_roi_calibration

__all__ = ["main"]


def _parse_value(text: str):

    return yaml.safe_load(text)


def _overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise SystemExit(f"--set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = _parse_value(value)
    return out


def _engine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        choices=compute.ENGINES,
        default="local",
        help="where parallel stages run: local worker processes, or Dask (a local cluster of --n-jobs workers, "
        "or the scheduler at --scheduler-address)",
    )
    parser.add_argument("--scheduler-address", default=None, help="a running Dask scheduler, e.g. tcp://host:8786")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="craving-circuits", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="simulate the cocaine-craving study")
    sim.add_argument("--preset", default="paper")
    sim.add_argument("--data-dir", default="data")
    sim.add_argument("--n-jobs", type=int, default=1)
    sim.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="override simulation parameters")
    _engine_arguments(sim)

    ex = sub.add_parser("execute", help="execute the notebooks of the run plan")
    ex.add_argument("--plan", default="book/runs.yml")
    ex.add_argument("--preset", default="paper")
    ex.add_argument("--null-preset", default="null")
    ex.add_argument("--root", default=".")
    ex.add_argument("--executed-dir", default="book/executed")
    ex.add_argument("--results-dir", default="results")
    ex.add_argument("--data-dir", default="data")
    ex.add_argument("--n-jobs", type=int, default=1, help="workers of the whole build")
    ex.add_argument(
        "--max-parallel",
        type=int,
        default=None,
        help="notebooks executing side by side (default: --n-jobs; each gets n_jobs // max_parallel workers)",
    )
    ex.add_argument("--only", nargs="*", help="names of plan entries to run")
    ex.add_argument(
        "--set",
        nargs="*",
        metavar="KEY=VALUE",
        help="parameter values for every notebook that declares them (e.g. n_permutations=1000)",
    )
    ex.add_argument(
        "--bids-dir",
        default=None,
        help="your own BIDS dataset: every chapter whose inputs it holds runs on it, the others are skipped "
        "(the null runs, the positive control and the calibration stay simulated)",
    )
    ex.add_argument(
        "--fmriprep-dir", default=None, help="its fMRIPrep derivatives (default: <bids-dir>/derivatives/fmriprep)"
    )
    ex.add_argument("--aslprep-dir", default=None, help="its ASLPrep derivatives (CBF maps), if any")

    _engine_arguments(ex)

    cal = sub.add_parser(
        "calibrate-images", help="full-pipeline null replicates of both studies at a reduced resolution"
    )
    cal.add_argument("--replicates", type=int, required=True, help="null replicates (each: both studies)")
    cal.add_argument("--results-dir", default="results")
    cal.add_argument("--work-dir", default=None, help="scratch folder every worker sees (default: in results)")
    cal.add_argument("--seed", type=int, default=30_000, help="replicate i simulates with seed + i")
    cal.add_argument("--n-permutations", type=int, default=100, help="per voxelwise test")
    cal.add_argument("--cocaine-preset", default="tiny_null")
    cal.add_argument("--baclofen-preset", default="tiny_null")
    cal.add_argument("--n-jobs", type=int, default=1, help="replicates side by side (local engine)")
    _engine_arguments(cal)

    cal = sub.add_parser("calibrate", help="run the ROI-level calibration with many replicates on an engine")
    cal.add_argument("--replicates", type=int, default=10_000, help="replicates per condition and study")
    cal.add_argument("--output-dir", default="results/calibration_engine")
    cal.add_argument("--seed", type=int, default=10_000, help="replicate i uses the simulator seed seed + i")
    cal.add_argument("--alpha", type=float, default=0.05)
    cal.add_argument("--n-bootstrap", type=int, default=200, help="bootstrap resamples inside each replicate")
    cal.add_argument("--bound-replicates", type=int, default=200, help="studies per point of the bound search")
    cal.add_argument("--batch-size", type=int, default=50, help="replicates per task")
    cal.add_argument("--n-jobs", type=int, default=1)
    _engine_arguments(cal)

    mj = sub.add_parser("mathjax", help="copy MathJax into the book's static files (no CDN)")
    mj.add_argument("dest", nargs="?", default="_mathjax_static/mathjax")

    args = parser.parse_args(argv)
    if args.command == "mathjax":
        print(install_mathjax(args.dest))
        return 0
    if args.command == "simulate":
        t0 = time.perf_counter()
        try:
            with compute.start(args.engine, args.scheduler_address, n_workers=args.n_jobs):
                study = simulated_study(
                    args.preset, args.data_dir, n_jobs=args.n_jobs, progress=True, **_overrides(args.set)
                )
        except ValueError as err:  # an unknown preset or parameter, or a value out of range
            print(f"craving-circuits simulate: {err}", file=sys.stderr)
            return 2
        print(f"{study.bids_dir} ready ({time.perf_counter() - t0:.0f} s)")
        return 0
    if args.command == "calibrate-images":
        with compute.start(args.engine, args.scheduler_address, n_workers=args.n_jobs) as engine:
            path, seconds = image_calibration.run_image_calibration(
                args.replicates,
                args.results_dir,
                args.work_dir,
                seed=args.seed,
                n_jobs=engine.n_workers,
                n_perm=args.n_permutations,
                cocaine_preset=args.cocaine_preset,
                baclofen_preset=args.baclofen_preset,
            )
        print(
            f"{path} written: {args.replicates} replicates in {seconds:.0f} s on {engine.n_workers} worker(s) "
            f"({seconds * engine.n_workers / args.replicates:.0f} s of a worker per replicate)"
        )
        return 0
    if args.command == "calibrate":
        t0 = time.perf_counter()
        with compute.start(args.engine, args.scheduler_address, n_workers=args.n_jobs) as engine:
            tables = run_roi_calibration(
                args.replicates,
                args.output_dir,
                seed=args.seed,
                alpha=args.alpha,
                n_boot=args.n_bootstrap,
                n_bound_sims=args.bound_replicates,
                n_jobs=engine.n_workers,
                batch_size=args.batch_size,
                progress=True,
            )
        claims = tables["claims"]
        n_roi = int((claims["level"] == "roi").sum())
        n_ok = int(claims.loc[claims["level"] == "roi", "calibrated"].astype(bool).sum())
        print(
            f"{args.output_dir}: {n_ok} of {n_roi} ROI-level claims calibrated, {args.replicates} replicates per "
            f"condition ({time.perf_counter() - t0:.0f} s)"
        )
        return 0
    if args.command == "execute":
        plan = load_plan(args.plan, args.preset, args.null_preset)
        if args.bids_dir is None and (args.fmriprep_dir or args.aslprep_dir):
            print("craving-circuits execute: --fmriprep-dir and --aslprep-dir need --bids-dir.", file=sys.stderr)
            return 2
        if args.bids_dir is not None:
            try:
                plan = own_data_plan(plan, args.bids_dir, args.fmriprep_dir, args.aslprep_dir, args.null_preset)
            except FileNotFoundError as err:
                print(f"craving-circuits execute: {err}", file=sys.stderr)
                return 2
        total = len([e for e in plan if not args.only or e["name"] in args.only])
        finished = []

        def line(record: dict) -> None:
            finished.append(record["name"])
            how = (
                f"skipped: {record['reason']}"
                if record["status"] == "skipped"
                else f"{record['status']} in {record['duration_s']} s"
            )
            print(f"[{len(finished)}/{total}] {record['name']}: {how}", flush=True)

        try:
            execute_plan(
                plan,
                args.root,
                args.executed_dir,
                args.results_dir,
                args.data_dir,
                args.n_jobs,
                only=args.only,
                overrides=_overrides(args.set),
                engine_options={"engine": args.engine, "scheduler_address": args.scheduler_address},
                max_parallel=args.max_parallel,
                progress=line,
            )
        except NotebookFailed as err:
            print(err, file=sys.stderr)
            return 1
        except (ValueError, FileNotFoundError) as err:  # the plan or the command line is wrong
            print(f"craving-circuits execute: {err}", file=sys.stderr)
            return 2
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
