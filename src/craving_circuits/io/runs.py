"""Mapping a per-run function over a study's runs: in parallel, cached, with listed exclusions.

Every per-run stage of the book (the seed-connectivity first level, the CBF
map of each pCASL run, the cue-task GLM of each task run) is a pure function
of one run's files. :func:`map_runs` runs such a function over a run table
with joblib (one run per worker at a time), shows one progress bar, lists the
runs the function refuses (:class:`RunExcluded`) in an exclusions table, and
keeps a cache.

Cache
-----
With a :class:`RunCache`, each run's output is written under
``<folder>/<participant>/<session>/<stem>`` (``<folder>/<participant>/<session>/<run_label>/<stem>``
for a run whose file name has run entities, ``run_label`` such as ``run-2``): the map as ``<stem>.nii.gz`` (on
the cache's grid) and a JSON sidecar ``<stem>.json`` holding the run's record,
the cache key (a hash of every setting the output depends on) and the size and
modification time of each input file. The sidecar is written last, atomically:
its presence marks the run as finished. A later call reuses the run only when
the key and the inputs match (and the stage's own ``accept`` check, if any,
passes), so an interrupted build leaves nothing that is taken as finished.
An excluded run is cached too, with its reason.

Data conventions
----------------
* ``runs`` has one row per run with at least ``participant_id`` and
  ``session_id``; a ``state`` column (or the mapper's ``state``) names the
  condition in the exclusions table.
* The function returns a :class:`RunOutput`: a map ``(n_voxels,)`` over the
  cache's mask (or None) and a JSON-able record (QC, ROI values, constants).
* Exclusions have the columns :data:`~craving_circuits.io.schemas.EXCLUSION_COLUMNS`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from tqdm import tqdm

from craving_circuits.io.files import read_json, read_nifti, short_hash, write_json, write_nifti
from craving_circuits.io.schemas import EXCLUSION_COLUMNS

__all__ = [
    "RunExcluded",
    "RunOutput",
    "RunCache",
    "MappedRuns",
    "map_runs",
    "file_fingerprint",
    "confounds_problem",
    "MOTION_COLUMNS",
    "FD_COLUMN",
]

#: The head-motion columns every fMRIPrep confounds file has.
MOTION_COLUMNS = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
#: Framewise displacement (mm, >= 0; ``n/a`` in the first row), read by scrubbing and the head-motion summary.
FD_COLUMN = "framewise_displacement"


class RunExcluded(Exception):
    """Raised by a per-run function for a run that cannot be analysed; the message is the listed reason."""


@dataclass
class RunOutput:
    """What a per-run function returns.

    Attributes
    ----------
    map : ndarray of float32, shape (n_voxels,), or None
        Values over the mask of the :class:`RunCache` (C order of
        ``np.argwhere(mask)``).
    record : dict
        JSON-able: QC figures, ROI values, constants of the run.
    """

    map: np.ndarray | None
    record: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RunCache:
    """Where and under which settings a stage keeps its per-run outputs.

    Attributes
    ----------
    folder : Path
        Outputs go to ``<folder>/<participant_id>/<session_id>/`` (and a
        subfolder named by the run's ``run_label``, when it has a non-empty one).
    settings : dict
        Everything the output depends on besides the input files (JSON-able);
        its hash is the cache key.
    stem : callable
        ``stem(run) -> str``, the file name (without extension) of a run's outputs.
    inputs : callable
        ``inputs(run) -> list of paths`` whose size and modification time must
        match for a cached run to be reused.
    mask : ndarray of bool, shape (nx, ny, nz)
    affine : ndarray, shape (4, 4)
        The grid of the maps.
    accept : callable, optional
        ``accept(record) -> bool``, a further check of a cached record (e.g.
        that it holds every value the caller needs).
    pass_previous : bool
        When a run must be computed, call ``function(run, previous=record)``
        with the record of the run's earlier output if that output was made
        from the same input files (under other settings; None otherwise), so
        that the function can reuse the parts of it that do not depend on
        what changed. The function is responsible for checking that.
    """

    folder: Path
    settings: dict
    stem: Callable[[dict], str]
    inputs: Callable[[dict], list]
    mask: np.ndarray
    affine: np.ndarray
    accept: Callable[[dict], bool] | None = None
    pass_previous: bool = False

    @property
    def key(self) -> str:
        mask_hash = hashlib.sha256(np.packbits(self.mask).tobytes()).hexdigest()
        return short_hash({"settings": self.settings, "mask": mask_hash, "affine": np.round(self.affine, 6).tolist()})

    def paths(self, run: dict) -> tuple[Path, Path]:
        folder = Path(self.folder) / run["participant_id"] / run["session_id"]
        if run.get("run_label"):  # one of several runs of a state: a folder of its own
            folder = folder / run["run_label"]
        stem = self.stem(run)
        return folder / f"{stem}.nii.gz", folder / f"{stem}.json"


@dataclass
class MappedRuns:
    """The result of :func:`map_runs`.

    Attributes
    ----------
    runs : pandas.DataFrame
        The runs analysed, in input order (excluded ones left out).
    outputs : list of RunOutput
        One per row of ``runs``.
    exclusions : pandas.DataFrame
        Runs the function refused, with their reason.
    n_cached : int
        Runs taken from the cache (analysed or excluded).
    """

    runs: pd.DataFrame
    outputs: list
    exclusions: pd.DataFrame
    n_cached: int = 0

    def maps(self, n_voxels: int) -> np.ndarray:
        """The maps stacked, ``(n_runs, n_voxels)`` float32 (empty with no run)."""
        maps = [o.map for o in self.outputs]
        return np.vstack(maps).astype(np.float32, copy=False) if maps else np.zeros((0, n_voxels), np.float32)


def file_fingerprint(paths) -> dict:
    """Size and modification time (ns) of each file, None for a missing one."""
    out = {}
    for p in paths:
        path = Path(p)
        stat = path.stat() if path.exists() else None
        out[str(path)] = None if stat is None else [stat.st_size, stat.st_mtime_ns]
    return out


def confounds_problem(path: str | Path, n_volumes: int) -> str | None:
    """What is wrong with a run's fMRIPrep confounds file, or None when it can be used.

    fMRIPrep writes one row per volume, a numeric value in every cell, and
    ``n/a`` only in the first row (of the derivative, framewise displacement
    and DVARS columns, which have no value for the first volume). A file that
    is not such a table (HTML, binary, another delimiter), lacks a motion
    column (:data:`MOTION_COLUMNS`) or framewise displacement
    (:data:`FD_COLUMN`), has another number of rows than the run has volumes,
    holds a missing or non-numeric value after the first row, or a negative
    framewise displacement, cannot denoise the run.

    Parameters
    ----------
    path : path
        The ``*_desc-confounds_timeseries.tsv`` file.
    n_volumes : int
        Volumes of the BOLD run it belongs to.

    Returns
    -------
    problem : str or None
        A reason that names the file (and the column and row where there is one)
        and what to do.
    """
    path = Path(path)
    fix = "copy fMRIPrep's desc-confounds_timeseries.tsv of this run again, or leave the run out"
    try:  # the common case, a good file, parsed as numbers at once
        numeric = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False, encoding="utf-8")
        values = numeric.to_numpy(dtype=float)
        if (
            len(numeric) == n_volumes
            and all(c in numeric.columns for c in (*MOTION_COLUMNS, FD_COLUMN))
            and not np.isnan(values[1:]).any()
            and not (numeric[FD_COLUMN] < 0).any()
        ):
            return None
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError, ValueError, TypeError):
        pass  # read again as text below, to say what is wrong
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, encoding="utf-8")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as err:
        return f"{path} is not a readable tab-separated table ({type(err).__name__}: {err}); {fix}"
    missing = [c for c in (*MOTION_COLUMNS, FD_COLUMN) if c not in table.columns]
    if missing:
        return f"{path} lacks the motion column(s) {missing}: it is not an fMRIPrep confounds table; {fix}"
    if len(table) != n_volumes:
        return f"{path} has {len(table)} rows but the run has {n_volumes} volumes (one row per volume); {fix}"
    # every cell at once; the first column with a problem is reported, as a reader scanning the table would
    text = np.char.strip(table.to_numpy(dtype=str))
    missing_cells = (text == "n/a") | (text == "")
    numbers = pd.to_numeric(pd.Series(np.where(missing_cells, "0", text).ravel()), errors="coerce")
    bad = numbers.isna().to_numpy().reshape(text.shape) & ~missing_cells
    late = missing_cells[1:]
    for j in np.flatnonzero(bad.any(axis=0) | late.any(axis=0)):
        column = table.columns[j]
        if bad[:, j].any():
            row = int(np.flatnonzero(bad[:, j])[0])
            return f"{path}, column {column!r}, row {row + 1}: {table[column].iloc[row]!r} is not a number; {fix}"
        row = int(np.flatnonzero(late[:, j])[0]) + 1
        return (
            f"{path}, column {column!r}, row {row + 1}: a missing value after the first row "
            f"(fMRIPrep writes n/a only in the first); {fix}"
        )
    fd = pd.to_numeric(table[FD_COLUMN].replace({"n/a": None, "": None}))
    if (fd < 0).any():
        row = int(np.flatnonzero((fd < 0).to_numpy())[0])
        return (
            f"{path}, column {FD_COLUMN!r}, row {row + 1}: {table[FD_COLUMN].iloc[row]!r} is negative "
            f"(a displacement is >= 0 mm); {fix}"
        )
    return None


def _cached(run: dict, cache: RunCache, key: str, fingerprint: dict):
    map_path, json_path = cache.paths(run)
    if not json_path.is_file():
        return None
    try:
        sidecar = read_json(json_path)
    except ValueError:
        return None
    if sidecar.get("cache_key") != key or sidecar.get("inputs") != fingerprint:
        return None
    if cache.accept is not None and not sidecar.get("excluded") and not cache.accept(sidecar.get("record", {})):
        return None
    if sidecar.get("excluded"):
        return sidecar["excluded"]
    if sidecar.get("has_map"):
        if not map_path.is_file():
            return None
        values = np.asarray(read_nifti(map_path).dataobj, dtype=np.float32)[cache.mask]
    else:
        values = None
    return RunOutput(values, sidecar.get("record", {}))


def _previous_record(run: dict, cache: RunCache, fingerprint: dict) -> dict | None:
    """The record of a run's earlier (not excluded) output made from the same input files, whatever its settings."""
    _, json_path = cache.paths(run)
    try:
        sidecar = read_json(json_path) if json_path.is_file() else {}
    except ValueError:
        return None
    if sidecar.get("inputs") != fingerprint or sidecar.get("excluded") or not sidecar.get("record"):
        return None
    return sidecar["record"]


def _job(run: dict, function: Callable, cache: RunCache | None, key: str | None) -> tuple:
    """One run: from the cache, or computed (and then cached). Returns ``(output or reason, cached)``."""
    fingerprint = file_fingerprint(cache.inputs(run)) if cache is not None else None
    kwargs = {}
    if cache is not None:
        hit = _cached(run, cache, key, fingerprint)
        if hit is not None:
            return hit, True
        if cache.pass_previous:
            kwargs["previous"] = _previous_record(run, cache, fingerprint)
    try:
        out = function(run, **kwargs)
    except RunExcluded as err:
        out = str(err)
    if cache is not None:
        map_path, json_path = cache.paths(run)
        excluded = out if isinstance(out, str) else None
        has_map = excluded is None and out.map is not None
        if has_map:
            vol = np.zeros(cache.mask.shape, dtype=np.float32)
            vol[cache.mask] = out.map
            write_nifti(map_path, nib.Nifti1Image(vol, cache.affine))
        write_json(
            json_path,
            {
                "cache_key": key,
                "settings": cache.settings,
                "inputs": fingerprint,
                "excluded": excluded,
                "has_map": has_map,
                "record": None if excluded else out.record,
            },
        )  # last: marks the run as finished
    return out, False


def map_runs(
    runs: pd.DataFrame,
    function: Callable[[dict], RunOutput],
    stage: str,
    cache: RunCache | None = None,
    n_jobs: int = 1,
    progress: bool = False,
    state: str | None = None,
    file_column: str = "bold",
) -> MappedRuns:
    """Apply a per-run function to every run, in parallel, reusing finished runs.

    Parameters
    ----------
    runs : pandas.DataFrame
        One row per run (``participant_id``, ``session_id``, and the columns the
        function reads).
    function : callable
        ``function(run: dict) -> RunOutput``; raises :class:`RunExcluded` for a
        run it cannot analyse. Must be picklable (a module-level function or a
        ``functools.partial`` of one).
    stage : str
        Name of the stage in the exclusions table and on the progress bar.
    cache : RunCache, optional
        Without one, nothing is written.
    n_jobs : int
        Processes; each holds one run at a time.
    progress : bool
        Show a progress bar.
    state : str, optional
        The ``state`` of the exclusion rows when ``runs`` has no ``state`` column.
    file_column : str
        The column naming a run's main file in the exclusions table.

    Returns
    -------
    MappedRuns
    """
    records = runs.to_dict("records")
    key = cache.key if cache is not None else None
    jobs = (delayed(_job)(run, function, cache, key) for run in records)
    results = list(
        tqdm(Parallel(n_jobs=n_jobs, return_as="generator")(jobs), total=len(records), desc=stage, disable=not progress)
    )
    kept, outputs, exclusions = [], [], []
    for i, (run, (out, _)) in enumerate(zip(records, results)):
        if isinstance(out, str):
            exclusions.append(
                {
                    "participant_id": run["participant_id"],
                    "session_id": run["session_id"],
                    "state": run.get("state", state),
                    "stage": stage,
                    "file": str(run.get(file_column, "")),
                    "reason": out,
                }
            )
            continue
        kept.append(i)
        outputs.append(out)
    return MappedRuns(
        runs=runs.iloc[kept].reset_index(drop=True),
        outputs=outputs,
        exclusions=pd.DataFrame(exclusions, columns=EXCLUSION_COLUMNS),
        n_cached=sum(cached for _, cached in results),
    )
