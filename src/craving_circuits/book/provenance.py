"""Provenance of a build: package versions, commit, run log, machine, disk use and result fingerprints."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

import pandas as pd

from craving_circuits.io.files import read_json

__all__ = ["result_hashes", "package_versions", "git_commit", "run_log", "machine_info", "disk_usage"]


def result_hashes(results_dir: str | Path, pattern: str = "*.tsv", exclude=()) -> pd.DataFrame:
    """SHA-256 of every result table under ``results_dir``, to compare two builds.

    Two builds with the same code, seed and parameters write identical tables;
    run records (``run.json``, with times) and images (gzip headers carry a
    time) are left out by the default pattern.

    Parameters
    ----------
    results_dir : str or Path
    pattern : str
        Glob of the files to hash, searched recursively.
    exclude : sequence of str
        Run folders (first path component) to leave out.

    Returns
    -------
    hashes : pandas.DataFrame
        ``file`` (relative to ``results_dir``, sorted), ``bytes``, ``sha256``.

    Raises
    ------
    FileNotFoundError
        If ``results_dir`` does not exist.
    """

    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"Results folder {results_dir} not found; build the book (make notebooks) first.")
    rows = []
    for path in sorted(results_dir.rglob(pattern)):
        relative = path.relative_to(results_dir)
        if path.name.startswith(".") or relative.parts[0] in set(exclude):
            continue  # hidden: temporary files of an unfinished write
        data = path.read_bytes()
        rows.append({"file": relative.as_posix(), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    return pd.DataFrame(rows, columns=["file", "bytes", "sha256"])


def package_versions(
    packages=(
        "craving-circuits",
        "numpy",
        "scipy",
        "pandas",
        "nibabel",
        "nilearn",
        "statsmodels",
        "matplotlib",
        "joblib",
        "papermill",
        "jupyter-book",
    ),
) -> pd.DataFrame:
    """Installed versions of the packages the results depend on, plus Python's."""
    rows = [{"package": "python", "version": platform.python_version()}]
    for name in packages:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
        rows.append({"package": name, "version": version})
    return pd.DataFrame(rows)


def git_commit(path: str | Path = ".") -> str:
    """Commit of the repository at ``path`` (with ``-dirty`` if it has changes), or ``"unknown"``."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def run_log(executed_dir: str | Path = "book/executed") -> pd.DataFrame:
    """The book's run log: one row per executed notebook.

    Returns
    -------
    log : pandas.DataFrame
        ``name, title, status, started, duration_s, commit, parameters``
        (parameters as ``key=value`` text).
    """
    path = Path(executed_dir) / "runs.json"
    if not path.is_file():
        raise FileNotFoundError(f"No run log at {path}: run the notebooks with `make book` first.")
    rows = read_json(path, "run log")["runs"]
    table = pd.DataFrame(rows)
    table["parameters"] = [
        ", ".join(f"{k}={v}" for k, v in p.items() if k not in ("data_dir", "output_dir")) for p in table["parameters"]
    ]
    return table[["name", "title", "status", "started", "duration_s", "commit", "parameters"]]


def machine_info() -> pd.DataFrame:
    """Platform, processor count and memory of the machine that ran the book."""

    rows = [("platform", platform.platform()), ("python", platform.python_version()), ("cpus", str(os.cpu_count()))]
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        rows.append(("memory_gb", f"{pages * size / 1e9:.1f}"))
    except (ValueError, OSError, AttributeError):
        pass
    return pd.DataFrame(rows, columns=["item", "value"])


def disk_usage(folder: str | Path) -> pd.DataFrame:
    """Size on disk of each sub-folder (e.g. each simulated study), in MB."""
    folder = Path(folder)
    rows = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
        size = sum(f.stat().st_size for f in sub.rglob("*") if f.is_file())
        rows.append({"folder": sub.name, "size_mb": round(size / 1e6, 1)})
    return pd.DataFrame(rows, columns=["folder", "size_mb"])
