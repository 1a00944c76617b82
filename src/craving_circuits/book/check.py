"""Checking a dataset for the book's chapters without analysing it.

:func:`check_dataset` runs every reader and run collector the chapters use
(participants, sessions, craving ratings, MRS table, resting-state runs and
their confounds, ASL runs and their sidecars, ASLPrep CBF maps, cue-task
runs) on a BIDS folder and reports, in one pass, the runs found, the runs or
participants left out with their reason, and the errors. Nothing is
analysed: images are opened for their headers only, and nothing is written
into the dataset. A reader that stops on a bad table is recorded as an error
naming the file, and the runs are then collected against the table's valid
rows, so that every problem shows in the same report.

:func:`available_chapters` says which chapters' inputs are present (file
names only, nothing read).

Data conventions
----------------
* ``CheckReport.runs``: :data:`RUN_COLUMNS`, one row per usable run (input
  kind ``rest_bold``, ``asl``, ``aslprep_cbf`` or ``cue_bold``).
* ``CheckReport.exclusions``: ``inputs`` plus
  :data:`~craving_circuits.io.schemas.EXCLUSION_COLUMNS`.
* ``CheckReport.errors``: :data:`ERROR_COLUMNS`, one row per problem that
  stops a chapter (the file and the reader's message).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import pandas as pd

from craving_circuits.baclofen import layout as baclofen_layout
from craving_circuits.baclofen.asl import read_asl_constants, read_aslcontext, run_m0
from craving_circuits.cocaine import layout as cocaine_layout
from craving_circuits.cocaine import mrs
from craving_circuits.io.bids import DEFAULT_STATE_TASKS, SPACE
from craving_circuits.io.files import read_json
from craving_circuits.io.runs import confounds_problem
from craving_circuits.io.schemas import EXCLUSION_COLUMNS

__all__ = [
    "INPUTS",
    "CHAPTER_INPUTS",
    "STUDIES",
    "RUN_COLUMNS",
    "ERROR_COLUMNS",
    "CheckReport",
    "available_chapters",
    "check_dataset",
]

#: The kinds of input the chapters read, and where each is looked for.
INPUTS = {
    "rest_bold": "fMRIPrep resting-state BOLD runs of the state_tasks (<fmriprep_dir>/sub-*/ses-*/func/)",
    "mrs": "MRS table <bids_dir>/derivatives/mrs/nacc_metabolites.tsv",
    "asl": "raw ASL runs <bids_dir>/sub-*/ses-*/perf/*_asl.nii.gz, or ASLPrep CBF maps in <aslprep_dir>",
    "cue_bold": "fMRIPrep cue-task BOLD runs (<fmriprep_dir>/sub-*/ses-*/func/*_task-<task>_*)",
}

#: The inputs each chapter of the book needs (a chapter runs when all are present).
CHAPTER_INPUTS = {
    "data": ("rest_bold",),
    "nacc_seed_fc": ("rest_bold",),
    "nac_null_effect": ("rest_bold",),
    "multiverse": ("rest_bold",),
    "thalamus_glutamate": ("rest_bold", "mrs"),
    "baclofen_cbf": ("asl",),
    "baclofen_mediation": ("asl", "cue_bold"),
}

#: The chapters of each study (``chapter=`` accepts a chapter or a study).
STUDIES = {
    "cocaine": ("data", "nacc_seed_fc", "nac_null_effect", "multiverse", "thalamus_glutamate"),
    "baclofen": ("baclofen_cbf", "baclofen_mediation"),
}

#: Columns of :attr:`CheckReport.runs`.
RUN_COLUMNS = ["inputs", "participant_id", "group", "session_id", "state", "file"]
#: Columns of :attr:`CheckReport.errors`.
ERROR_COLUMNS = ["inputs", "file", "error"]

_READ_ERRORS = (ValueError, FileNotFoundError, KeyError, TypeError, OSError, UnicodeDecodeError, pd.errors.ParserError)


@dataclass
class CheckReport:
    """What :func:`check_dataset` found.

    Attributes
    ----------
    chapters : pandas.DataFrame
        One row per chapter checked: ``chapter, inputs, present, n_runs,
        n_exclusions, n_errors, runnable`` (``runnable``: its inputs are
        present and none of them has an error).
    runs : pandas.DataFrame
        :data:`RUN_COLUMNS`, the usable runs.
    exclusions : pandas.DataFrame
        ``inputs`` plus :data:`EXCLUSION_COLUMNS`: runs and participants left
        out, with their reason.
    errors : pandas.DataFrame
        :data:`ERROR_COLUMNS`: problems that stop a chapter until fixed.
    """

    chapters: pd.DataFrame
    runs: pd.DataFrame
    exclusions: pd.DataFrame
    errors: pd.DataFrame

    @property
    def ok(self) -> bool:
        """No error (exclusions are allowed: the chapters list them and go on)."""
        return self.errors.empty

    def run_counts(self) -> pd.DataFrame:
        """Usable runs per input, participant, session and state (``n_runs``)."""
        keys = ["inputs", "participant_id", "session_id", "state"]
        if self.runs.empty:
            return pd.DataFrame(columns=keys + ["n_runs"])
        return self.runs.groupby(keys, sort=True).size().rename("n_runs").reset_index()

    def summary(self) -> str:
        """One line: runs, participants, exclusions, errors and the runnable chapters."""
        runnable = self.chapters.loc[self.chapters["runnable"], "chapter"].tolist()
        return (
            f"{len(self.runs)} run(s) of {self.runs['participant_id'].nunique()} participant(s), "
            f"{len(self.exclusions)} exclusion(s), {len(self.errors)} error(s); "
            f"chapters that can run: {', '.join(runnable) if runnable else 'none'}"
        )


def _present(
    bids_dir: Path, fmriprep_dir: Path, aslprep_dir: Path | None, state_tasks: dict, task: str, space: str
) -> dict:
    """Which inputs exist (file names only)."""
    rest = any(
        next(fmriprep_dir.glob(f"sub-*/ses-*/func/*_task-{t}_*space-{space}_desc-preproc_bold.nii.gz"), None)
        for t in state_tasks.values()
    )
    asl = next(bids_dir.glob("sub-*/ses-*/perf/*_asl.nii.gz"), None) or next(
        bids_dir.glob("sub-*/perf/*_asl.nii.gz"), None
    )
    derived = aslprep_dir is not None and next(Path(aslprep_dir).glob("sub-*/ses-*/perf/*_cbf.nii.gz"), None)
    cue = next(fmriprep_dir.glob(f"sub-*/ses-*/func/*_task-{task}_*space-{space}_desc-preproc_bold.nii.gz"), None)
    return {
        "rest_bold": bool(rest),
        "mrs": (bids_dir / "derivatives" / "mrs" / "nacc_metabolites.tsv").is_file(),
        "asl": bool(asl or derived),
        "cue_bold": bool(cue),
    }


def available_chapters(
    bids_dir: str | Path,
    fmriprep_dir: str | Path | None = None,
    aslprep_dir: str | Path | None = None,
    state_tasks: dict | None = None,
    task: str = "smokingcue",
    space: str = SPACE,
) -> pd.DataFrame:
    """Which chapters' inputs are present in a dataset (by file names; nothing is read).

    Parameters
    ----------
    bids_dir : path
    fmriprep_dir : path, optional
        Default ``<bids_dir>/derivatives/fmriprep``.
    aslprep_dir : path, optional
        ASLPrep's output folder, an alternative to raw ASL.
    state_tasks : dict, optional
        Task label of each resting state (default ``{"neutral": "restneutral", "craving": "restcue"}``).
    task : str
        Task label of the cue task.
    space : str

    Returns
    -------
    chapters : pandas.DataFrame
        One row per chapter of :data:`CHAPTER_INPUTS`: ``chapter, inputs``
        (the kinds it needs, comma separated), ``present`` (all found) and
        ``missing`` (what is absent, in words).
    """
    bids_dir = Path(bids_dir)
    fmriprep_dir = Path(fmriprep_dir) if fmriprep_dir else bids_dir / "derivatives" / "fmriprep"
    present = _present(
        bids_dir,
        fmriprep_dir,
        Path(aslprep_dir) if aslprep_dir else None,
        dict(state_tasks or DEFAULT_STATE_TASKS),
        task,
        space,
    )
    rows = []
    for chapter, needs in CHAPTER_INPUTS.items():
        absent = [INPUTS[k] for k in needs if not present[k]]
        rows.append(
            {"chapter": chapter, "inputs": ", ".join(needs), "present": not absent, "missing": "; ".join(absent)}
        )
    return pd.DataFrame(rows)


class _Collector:
    """Rows of the report, gathered while the readers run."""

    def __init__(self) -> None:
        self.runs: list[dict] = []
        self.exclusions: list[pd.DataFrame] = []
        self.errors: list[dict] = []

    def error(self, inputs: str, file, err: Exception | str) -> None:
        self.errors.append({"inputs": inputs, "file": str(file), "error": str(err)})

    def attempt(self, inputs: str, file, call: Callable):
        """``call()``, or None with its error recorded against ``file``."""
        try:
            return call()
        except _READ_ERRORS as err:
            self.error(inputs, file, err)
            return None

    def exclude(self, inputs: str, table: pd.DataFrame) -> None:
        if len(table):
            self.exclusions.append(table.assign(inputs=inputs)[["inputs", *EXCLUSION_COLUMNS]])


def _valid_rows(path: Path, key: str, levels: dict) -> tuple[pd.DataFrame, set]:
    """The rows a strict reader would accept (a unique ``key``, known ``levels``), and the refused keys."""
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (*_READ_ERRORS, pd.errors.EmptyDataError):
        return pd.DataFrame(columns=[key, *levels]), set()
    if key not in table.columns or any(c not in table.columns for c in levels):
        return pd.DataFrame(columns=[key, *levels]), set(table.get(key, []))
    keep = ~table[key].duplicated(keep=False) & table[key].str.match(r"^(sub|ses)-[A-Za-z0-9]+$")
    for column, allowed in levels.items():
        keep &= table[column].isin(allowed)
    return table.loc[keep, [key, *levels]], set(table.loc[~keep, key])


def _shadow_root(bids_dir: Path, folder: Path, levels: dict, sessions: bool) -> tuple[dict, int]:
    """A stand-in BIDS root in ``folder`` with the valid rows of participants.tsv (and of each sessions file).

    Sub-folders are links to the dataset's (or, with ``sessions``, folders
    holding the valid rows of each sessions file), so runs are found where they
    are; the dataset itself is not touched.

    Returns
    -------
    refused : dict
        ``{participant_id or (participant_id, session_id): table path}`` of the rows left out.
    n_valid : int
        Rows of participants.tsv kept.
    """
    participants, refused_ids = _valid_rows(bids_dir / "participants.tsv", "participant_id", levels)
    participants.to_csv(folder / "participants.tsv", sep="\t", index=False)
    refused = {pid: bids_dir / "participants.tsv" for pid in refused_ids}
    for subject in sorted(bids_dir.glob("sub-*")):
        if not subject.is_dir():
            continue
        if not sessions:
            (folder / subject.name).symlink_to(subject, target_is_directory=True)
            continue
        (folder / subject.name).mkdir()
        table = subject / f"{subject.name}_sessions.tsv"
        if table.is_file():
            rows, refused_sessions = _valid_rows(table, "session_id", {"drug": {"NAC", "placebo"}})
            rows.to_csv(folder / subject.name / table.name, sep="\t", index=False)
            refused |= {(subject.name, ses): table for ses in refused_sessions}
    return refused, len(participants)


def _restore_paths(table: pd.DataFrame, shadow: Path, bids_dir: Path, refused: dict | None = None) -> pd.DataFrame:
    """Paths under the stand-in root written as the dataset's; exclusions due to refused rows say so."""
    out = table.copy()
    for column in out.columns:
        out[column] = [v.replace(str(shadow), str(bids_dir)) if isinstance(v, str) else v for v in out[column]]
    if refused and "reason" in out.columns:
        for i, row in out.iterrows():
            table_path = refused.get(row["participant_id"]) or refused.get((row["participant_id"], row["session_id"]))
            if table_path is not None:
                out.loc[i, "reason"] = (
                    f"left out of this check: its row(s) in {table_path} are refused (see the errors)"
                )
    return out


def _check_cocaine(
    found: _Collector,
    bids_dir: Path,
    fmriprep_dir: Path | None,
    state_tasks: dict,
    multiple_runs: str,
    check_runs: bool,
    check_mrs: bool,
) -> None:
    study = found.attempt("rest_bold", bids_dir, lambda: cocaine_layout.open_study(bids_dir, fmriprep_dir, state_tasks))
    if study is None:
        return
    tables_ok = found.attempt("rest_bold", study.participants_file, lambda: cocaine_layout.read_participants(study))
    tables_ok = tables_ok is not None
    for table in sorted(bids_dir.glob("sub-*/sub-*_sessions.tsv")):
        pid = table.parent.name
        tables_ok &= (
            found.attempt("rest_bold", table, lambda pid=pid: cocaine_layout.read_sessions(study, pid)) is not None
        )
    if study.ratings_file.is_file():
        found.attempt("rest_bold", study.ratings_file, lambda: cocaine_layout.read_craving_ratings(study))
    if check_mrs:
        found.attempt("mrs", study.mrs_file, lambda: mrs.read_mrs(study.mrs_file))
    if not check_runs:
        return
    with tempfile.TemporaryDirectory() as scratch:
        shadow = Path(scratch).resolve()
        target, refused = study, {}
        if not tables_ok:  # collect the runs against the valid rows of the tables, to report every problem at once
            refused, n_valid = _shadow_root(bids_dir, shadow, {"group": {"CUD", "control"}}, sessions=True)
            if not n_valid:  # no participant to collect runs for; the error says why
                return
            target = cocaine_layout.Study(shadow, study.fmriprep_dir, study.state_tasks, study.space)
        collected = found.attempt(
            "rest_bold", study.fmriprep_dir, lambda: cocaine_layout.collect_runs(target, multiple_runs)
        )
        if collected is None:
            return
        runs, exclusions = (_restore_paths(t, shadow, bids_dir, refused) for t in collected)
    found.exclude("rest_bold", exclusions)
    for run in runs.to_dict("records"):
        found.runs.append({"inputs": "rest_bold", **{k: run[k] for k in RUN_COLUMNS[1:-1]}, "file": run["bold"]})


def _asl_run_problem(run: dict) -> str | None:
    """What stops a raw ASL run before quantification: its timing fields, aslcontext or M0 (headers only)."""
    try:
        read_asl_constants(run["asl_json"])
        img = nib.load(run["asl"])
        types = read_aslcontext(run["aslcontext"], int(img.shape[3]))
        m0_type = read_json(run["asl_json"], "ASL sidecar").get("M0Type")
        if m0_type != "Separate" and not (m0_type == "Included" and (types == "m0scan").any()):
            run_m0(run["asl_json"], img, types)  # an unknown type, no M0 volume, no M0Estimate: nothing is read
    except (*_READ_ERRORS, IndexError, nib.filebasedimages.ImageFileError) as err:
        return str(err)
    return None


def _check_baclofen(
    found: _Collector,
    bids_dir: Path,
    fmriprep_dir: Path | None,
    aslprep_dir: Path | None,
    sessions: tuple,
    task: str,
    check_asl: bool,
    check_cue: bool,
) -> None:
    participants = found.attempt(
        "asl", bids_dir / "participants.tsv", lambda: baclofen_layout.read_participants(bids_dir)
    )
    ratings = bids_dir / "phenotype" / "craving_ratings.tsv"
    if participants is not None and ratings.is_file():
        read = found.attempt("asl", ratings, lambda: baclofen_layout.read_craving_ratings(ratings, participants))
        if read is not None:
            found.exclude("asl", read[1])
    with tempfile.TemporaryDirectory() as scratch:
        shadow = Path(scratch).resolve()
        root, refused = bids_dir, {}
        if participants is None:  # the runs against the valid rows of participants.tsv
            refused, n_valid = _shadow_root(bids_dir, shadow, {"group": set(baclofen_layout.GROUPS)}, sessions=False)
            if not n_valid:  # no participant to collect runs for; the error says why
                return
            root = shadow
        results = []
        if check_asl and aslprep_dir is not None:
            derived = found.attempt(
                "asl", aslprep_dir, lambda: baclofen_layout.collect_aslprep_cbf(aslprep_dir, root, sessions)
            )
            results.append(("aslprep_cbf", "cbf", derived))
        elif check_asl:
            raw = found.attempt("asl", bids_dir, lambda: baclofen_layout.collect_asl_runs(root, sessions))
            results.append(("asl", "asl", raw))
        if check_cue:
            cue = found.attempt(
                "cue_bold",
                fmriprep_dir or bids_dir,
                lambda: baclofen_layout.collect_task_runs(
                    root, fmriprep_dir or bids_dir / "derivatives" / "fmriprep", task, sessions
                ),
            )
            results.append(("cue_bold", "bold", cue))
        results = [
            (k, c, tuple(_restore_paths(t, shadow, bids_dir, refused) for t in r))
            for k, c, r in results
            if r is not None
        ]
    for inputs, column, (runs, exclusions) in results:
        kind = "asl" if inputs == "aslprep_cbf" else inputs
        found.exclude(kind, exclusions)
        state = task if inputs == "cue_bold" else "rest"
        for run in runs.to_dict("records"):
            if inputs == "asl" and (problem := _asl_run_problem(run)) is not None:
                found.error("asl", run["asl_json"], problem)
                continue
            if inputs == "cue_bold":
                problem = found.attempt(
                    "cue_bold",
                    run["confounds"],
                    lambda run=run: confounds_problem(run["confounds"], nib.load(run["bold"]).shape[3]),
                )
                if problem:
                    found.exclude(
                        "cue_bold",
                        pd.DataFrame(
                            [
                                {
                                    "participant_id": run["participant_id"],
                                    "session_id": run["session_id"],
                                    "state": task,
                                    "stage": "inputs",
                                    "file": run["confounds"],
                                    "reason": problem,
                                }
                            ]
                        ),
                    )
                    continue
            found.runs.append(
                {
                    "inputs": inputs,
                    "participant_id": run["participant_id"],
                    "group": run["group"],
                    "session_id": run["session_id"],
                    "state": state,
                    "file": run[column],
                }
            )


def check_dataset(
    bids_dir: str | Path,
    fmriprep_dir: str | Path | None = None,
    aslprep_dir: str | Path | None = None,
    chapter: str | None = None,
    state_tasks: dict | None = None,
    sessions=baclofen_layout.SESSIONS,
    task: str = "smokingcue",
    multiple_runs: str = "average",
) -> CheckReport:
    """Check a dataset for the chapters without analysing it; every problem reported in one pass.

    Parameters
    ----------
    bids_dir : path
        Root of the dataset (raw BIDS with participants.tsv).
    fmriprep_dir, aslprep_dir : path, optional
        fMRIPrep's outputs (default ``<bids_dir>/derivatives/fmriprep``); ASLPrep's
        outputs, whose CBF maps the CBF chapter then reads instead of raw ASL.
    chapter : str, optional
        A chapter of :data:`CHAPTER_INPUTS` or a study of :data:`STUDIES`;
        default every chapter whose inputs are present.
    state_tasks : dict, optional
        Task label of each resting state of the cocaine study.
    sessions : (str, str)
        The baclofen study's session labels (before, after).
    task : str
        Task label of the cue task.
    multiple_runs : {"average", "first", "error"}
        As :func:`craving_circuits.cocaine.layout.collect_runs`.

    Returns
    -------
    CheckReport

    Raises
    ------
    ValueError
        For an unknown ``chapter``.
    """
    bids_dir = Path(bids_dir)
    fmriprep = Path(fmriprep_dir) if fmriprep_dir else None
    aslprep = Path(aslprep_dir) if aslprep_dir else None
    state_tasks = dict(state_tasks or DEFAULT_STATE_TASKS)
    if chapter is not None and chapter not in CHAPTER_INPUTS and chapter not in STUDIES:
        raise ValueError(
            f"Unknown chapter {chapter!r}; choose one of {sorted(CHAPTER_INPUTS)} or a study {sorted(STUDIES)}."
        )
    found = _Collector()
    if not bids_dir.is_dir():
        found.error("rest_bold", bids_dir, f"BIDS folder not found: {bids_dir}; pass the root of your BIDS dataset.")
        chapters = pd.DataFrame({"chapter": list(CHAPTER_INPUTS), "inputs": "", "present": False, "missing": ""})
    else:
        chapters = available_chapters(bids_dir, fmriprep, aslprep, state_tasks, task)
    for kind, folder, what in (("rest_bold", fmriprep, "fMRIPrep"), ("asl", aslprep, "ASLPrep")):
        if folder is not None and not folder.is_dir():
            found.error(kind, folder, f"{what} folder not found: {folder}; pass the folder that holds sub-*/ses-*/.")
    if bids_dir.is_dir() and not chapters["present"].any():
        found.error(
            "rest_bold",
            bids_dir,
            f"no chapter's inputs found under {bids_dir}: looked for {'; '.join(INPUTS.values())}.",
        )
    names = STUDIES.get(chapter, (chapter,)) if chapter else list(chapters.loc[chapters["present"], "chapter"])
    chapters = chapters[chapters["chapter"].isin(names)].reset_index(drop=True)
    wanted = {kind for name in names for kind in CHAPTER_INPUTS[name]}
    for row in chapters[~chapters["present"]].itertuples(index=False):
        if chapter is not None:  # asked for, and its inputs are absent
            found.error(
                row.inputs.split(", ")[0], bids_dir, f"inputs of the chapter {row.chapter} not found: {row.missing}"
            )
    if bids_dir.is_dir():
        if wanted & {"rest_bold", "mrs"}:
            _check_cocaine(
                found, bids_dir, fmriprep, state_tasks, multiple_runs, "rest_bold" in wanted, "mrs" in wanted
            )
        if wanted & {"asl", "cue_bold"}:
            _check_baclofen(
                found, bids_dir, fmriprep, aslprep, tuple(sessions), task, "asl" in wanted, "cue_bold" in wanted
            )
    runs = pd.DataFrame(found.runs, columns=RUN_COLUMNS)
    exclusions = (
        pd.concat(found.exclusions, ignore_index=True)
        if found.exclusions
        else pd.DataFrame(columns=["inputs", *EXCLUSION_COLUMNS])
    )
    errors = pd.DataFrame(found.errors, columns=ERROR_COLUMNS).drop_duplicates("error", ignore_index=True)
    kinds = {"aslprep_cbf": "asl"}
    run_kinds = runs["inputs"].replace(kinds)
    stats = []
    for row in chapters.itertuples(index=False):
        needs = set(CHAPTER_INPUTS[row.chapter])
        n_errors = int(errors["inputs"].isin(needs).sum())
        stats.append(
            {
                "chapter": row.chapter,
                "inputs": row.inputs,
                "present": bool(row.present),
                "n_runs": int(run_kinds.isin(needs).sum()),
                "n_exclusions": int(exclusions["inputs"].isin(needs).sum()),
                "n_errors": n_errors,
                "runnable": bool(row.present) and n_errors == 0,
            }
        )
    table = pd.DataFrame(
        stats, columns=["chapter", "inputs", "present", "n_runs", "n_exclusions", "n_errors", "runnable"]
    )
    return CheckReport(chapters=table, runs=runs, exclusions=exclusions, errors=errors)
