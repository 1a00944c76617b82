"""Reliability of the build: the same seeds and parameters give byte-identical result tables, and a
build killed part-way leaves nothing that the next build takes as finished. One build from nothing,
then a second build from nothing that is killed part-way and completed by a third command: the
second build's tables equal the first's byte for byte.

The builds run part of the book's plan (simulations, first-level cache, perfusion maps) on the tiny
presets through the command line that `make notebooks` uses, in the same folder, so that the tables
that name input files name the same paths."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from craving_circuits.book.provenance import result_hashes

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
RUNS = ("nacc_seed_fc", "baclofen_cbf")


def _book(dest: Path) -> Path:
    dest.mkdir(parents=True)
    shutil.copytree(ROOT / "notebooks", dest / "notebooks")
    plan = [e for e in yaml.safe_load((ROOT / "book" / "runs.yml").read_text()) if e["name"] in RUNS]
    assert [e["name"] for e in plan] == list(RUNS)
    (dest / "plan.yml").write_text(yaml.safe_dump(plan))
    return dest


def _command(root: Path, n_jobs: int = 2) -> list[str]:
    return [
        sys.executable,
        "-m",
        "craving_circuits",
        "execute",
        "--plan",
        str(root / "plan.yml"),
        "--root",
        str(root),
        "--preset",
        "tiny",
        "--null-preset",
        "tiny_null",
        "--data-dir",
        "data",
        "--n-jobs",
        str(n_jobs),
        "--set",
        "n_permutations=200",
    ]


def _build(root: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(_command(root), cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return time.perf_counter() - start


def _clean(root: Path) -> None:
    for name in ("results", "data", "book"):
        shutil.rmtree(root / name, ignore_errors=True)


def test_same_tables_from_a_build_and_from_an_interrupted_then_resumed_build(tmp_path):
    root = _book(tmp_path / "book")
    duration = _build(root)
    first = result_hashes(root / "results")
    assert len(first) >= 10 and set(first["file"].str.split("/").str[0]) == set(RUNS)

    # the same build again from nothing, killed part-way (simulations, cached runs and tables half
    # written) and then completed: it must write the same bytes. One process for the killed build (no
    # worker pool that would outlive the kill), so it is slower and the kill lands earlier in it.
    _clean(root)
    process = subprocess.Popen(
        _command(root, n_jobs=1), cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    time.sleep(0.4 * duration)
    assert process.poll() is None, "the build ended before it could be interrupted"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert (root / "data").exists()  # it had started writing
    _build(root)
    pd.testing.assert_frame_equal(result_hashes(root / "results"), first)
    executed = root / "book" / "executed"
    assert sorted(p.name for p in executed.glob("*.ipynb")) == sorted(f"{name}.ipynb" for name in RUNS)
