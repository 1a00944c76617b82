"""Command line: ``python -m craving_circuits <command>`` (also ``craving-circuits``).

Commands
--------
simulate
    Write the simulated studies of a preset (``data/cocaine-<preset>`` and
    ``data/baclofen-<preset>``; ``--study`` picks one), each unless it is
    already there with the same parameters.
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
check
    Check a dataset for the chapters without analysing it: the runs found,
    the exclusions with their reasons and the errors (exit status 1 on errors).
calibrate-images
    Full-pipeline null replicates of both studies at a reduced resolution
    (:mod:`craving_circuits.verdict.image_calibration`), on the chosen engine;
    the table goes to ``<results-dir>/calibration/image_level.tsv``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import pandas as pd
import yaml

from craving_circuits.baclofen import layout as baclofen_layout
from craving_circuits.book.check import check_dataset
from craving_circuits.book.execute import (
    NotebookFailed,
    execute_plan,
    install_mathjax,
    load_plan,
)
from craving_circuits.book.owndata import own_data_plan
from craving_circuits.cocaine import layout as cocaine_layout
from craving_circuits.io import compute
from craving_circuits.simulate.baclofen import BACLOFEN_PRESETS, BaclofenStudyParams, baclofen_params
from craving_circuits.simulate.cocaine import PRESETS as COCAINE_PRESETS
from craving_circuits.simulate.cocaine import CocaineStudyParams, cocaine_params
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


def _cocaine_root(*args, **kwargs):

    return cocaine_layout.simulated_study(*args, **kwargs).bids_dir


#: The simulated studies of ``simulate --study``: presets, parameter class, parameter builder, writer.
STUDIES = {
    "cocaine": (COCAINE_PRESETS, CocaineStudyParams, cocaine_params, _cocaine_root),
    "baclofen": (BACLOFEN_PRESETS, BaclofenStudyParams, baclofen_params, baclofen_layout.simulated_study),
}


def simulation_overrides(studies: list[str], preset: str, overrides: dict) -> dict[str, dict]:
    """Each study's share of ``simulate --set``: the keys its parameters declare.

    Parameters
    ----------
    studies : list of str
        Names in :data:`STUDIES`.
    preset : str
        Must be a preset of every study named.
    overrides : dict
        ``--set`` values.

    Returns
    -------
    per_study : dict
        Study name to the overrides it declares.

    Raises
    ------
    ValueError
        For a preset one of the studies lacks, a key no study named declares
        (listing the valid ones), or a value a study's parameters refuse; raised
        before anything is written.
    """
    lacking = [s for s in studies if preset not in STUDIES[s][0]]
    if lacking:
        raise ValueError(
            f"Unknown preset {preset!r} for the {' and '.join(lacking)} study; choose one of: "
            f"{', '.join(STUDIES[lacking[0]][0])}, or pick a study with --study."
        )
    fields = {s: {f.name for f in dataclasses.fields(STUDIES[s][1])} - {"preset"} for s in studies}
    unknown = sorted(set(overrides) - set().union(*fields.values()))
    if unknown:
        valid = sorted(set().union(*fields.values()))
        raise ValueError(
            f"Unknown simulation parameter {unknown[0]!r} (study: {', '.join(studies)}); valid parameters are: "
            f"{', '.join(valid)}."
        )
    per_study = {s: {k: v for k, v in overrides.items() if k in fields[s]} for s in studies}
    for s in studies:
        STUDIES[s][2](preset, **per_study[s])  # a value out of range stops here, before any study is written
    return per_study


def _engine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        choices=compute.ENGINES,
        default="local",
        help="where parallel stages run: local worker processes, or Dask (a local cluster of --n-jobs workers, "
        "or the scheduler at --scheduler-address)",
    )
    parser.add_argument("--scheduler-address", default=None, help="a running Dask scheduler, e.g. tcp://host:8786")


def _check(args: argparse.Namespace) -> int:
    """The ``check`` command: print what :func:`check_dataset` found; 1 on errors."""
    options = {"task": args.task, "multiple_runs": args.multiple_runs}
    if args.sessions:
        options["sessions"] = tuple(args.sessions)
    if args.state_tasks:
        options["state_tasks"] = dict(zip(("neutral", "craving"), args.state_tasks))
    try:
        report = check_dataset(args.bids_dir, args.fmriprep_dir, args.aslprep_dir, args.chapter, **options)
    except ValueError as err:  # an unknown chapter
        print(f"craving-circuits check: {err}", file=sys.stderr)
        return 2
    with pd.option_context("display.width", 200, "display.max_colwidth", 400, "display.max_rows", 10_000):
        print("Chapters:")
        print(report.chapters.to_string(index=False) if len(report.chapters) else "  none (no chapter's inputs found)")
        print("\nRuns found (per participant, session and state):")
        counts = report.run_counts()
        print(counts.to_string(index=False) if len(counts) else "  none")
        print(f"\nExclusions ({len(report.exclusions)}):")
        for row in report.exclusions.itertuples(index=False):
            print(f"  {row.participant_id} {row.session_id} {row.state} [{row.stage}] {row.file}: {row.reason}")
        print(f"\nErrors ({len(report.errors)}):")
        for row in report.errors.itertuples(index=False):
            print(f"  {row.error}" if row.file in row.error else f"  {row.file}: {row.error}")
    print(f"\n{args.bids_dir}: {report.summary()}")
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="craving-circuits", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="simulate the studies of a preset (cocaine and baclofen)")
    sim.add_argument("--preset", default="paper")
    sim.add_argument(
        "--study", choices=[*STUDIES, "both"], default="both", help="which study to simulate (default: both)"
    )
    sim.add_argument("--data-dir", default="data")
    sim.add_argument("--n-jobs", type=int, default=1)
    sim.add_argument(
        "--set",
        nargs="*",
        metavar="KEY=VALUE",
        help="override simulation parameters (each study takes the keys it declares; a key none declares is refused)",
    )
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

    chk = sub.add_parser("check", help="check a dataset for the chapters without analysing it")
    chk.add_argument("--bids-dir", required=True, help="root of the BIDS dataset")
    chk.add_argument(
        "--fmriprep-dir", default=None, help="fMRIPrep derivatives (default: <bids-dir>/derivatives/fmriprep)"
    )
    chk.add_argument("--aslprep-dir", default=None, help="ASLPrep outputs, instead of raw ASL for the CBF chapter")
    chk.add_argument("--chapter", default=None, help="a chapter (e.g. nacc_seed_fc) or a study (cocaine, baclofen)")
    chk.add_argument("--sessions", nargs=2, default=None, metavar=("BEFORE", "AFTER"), help="baclofen session labels")
    chk.add_argument(
        "--state-tasks", nargs=2, default=None, metavar=("NEUTRAL", "CRAVING"), help="task labels of the rest states"
    )
    chk.add_argument("--task", default="smokingcue", help="task label of the cue task")
    chk.add_argument("--multiple-runs", default="average", choices=("average", "first", "error"))

    mj = sub.add_parser("mathjax", help="copy MathJax into the book's static files (no CDN)")
    mj.add_argument("dest", nargs="?", default="_mathjax_static/mathjax")

    args = parser.parse_args(argv)
    if args.command == "mathjax":
        print(install_mathjax(args.dest))
        return 0
    if args.command == "simulate":
        studies = list(STUDIES) if args.study == "both" else [args.study]
        try:
            per_study = simulation_overrides(studies, args.preset, _overrides(args.set))
            with compute.start(args.engine, args.scheduler_address, n_workers=args.n_jobs):
                for name in studies:
                    t0 = time.perf_counter()
                    write = STUDIES[name][3]
                    root = write(args.preset, args.data_dir, n_jobs=args.n_jobs, progress=True, **per_study[name])
                    print(f"{root} ready ({time.perf_counter() - t0:.0f} s)", flush=True)
        except ValueError as err:  # an unknown preset or parameter, or a value out of range
            print(f"craving-circuits simulate: {err}", file=sys.stderr)
            return 2
        return 0
    if args.command == "check":
        return _check(args)
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
