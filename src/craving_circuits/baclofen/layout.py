"""Where the files of the baclofen study live, and the simulated study of a preset.

Data conventions
----------------
* A perfusion study is a BIDS root with ``participants.tsv`` (``participant_id``,
  ``group``: ``baclofen`` or ``placebo``) and, per session (``ses-T1`` before,
  ``ses-T2`` after randomisation), ``sub-*/ses-*/perf/`` with ``*_asl.nii.gz``,
  ``*_aslcontext.tsv``, ``*_asl.json`` and ``*_m0scan.nii.gz``.
* The smoking-cue task runs are fMRIPrep-style derivatives
  (``*_task-<task>_space-*_desc-preproc_bold.nii.gz`` with its confounds TSV),
  their events in the raw BIDS folder (``sub-*/ses-*/func/*_task-<task>_events.tsv``).
* :func:`collect_asl_runs` and :func:`collect_task_runs` return one row per run
  (:data:`~craving_circuits.io.schemas.ASL_RUN_COLUMNS`,
  :data:`~craving_circuits.io.schemas.TASK_RUN_COLUMNS`) and list every run
  they leave out, with its reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from craving_circuits.io.bids import SPACE, run_files
from craving_circuits.io.files import read_json, read_tsv, short_hash
from craving_circuits.io.schemas import (
    ASL_RUN_COLUMNS,
    EXCLUSION_COLUMNS,
    TASK_RUN_COLUMNS,
)
from craving_circuits.simulate.baclofen import simulate_baclofen_study

__all__ = [
    "likely_session_order",
    "GROUPS",
    "SESSIONS",
    "RATING_RANGE",
    "simulated_study",
    "read_participants",
    "read_craving_ratings",
    "collect_asl_runs",
    "collect_aslprep_cbf",
    "DERIVED_CBF_COLUMNS",
    "collect_task_runs",
]

#: Columns of :func:`collect_aslprep_cbf`.
DERIVED_CBF_COLUMNS = ["participant_id", "group", "session_id", "cbf", "qc"]


#: Groups of the baclofen study.
GROUPS = ("baclofen", "placebo")
#: Sessions: before (T1) and after (T2) three weeks of baclofen or placebo.
SESSIONS = ("ses-T1", "ses-T2")
#: The craving visual analogue scale.
RATING_RANGE = (0.0, 100.0)


def _check_sessions(sessions) -> tuple[str, str]:
    sessions = tuple(sessions)
    if len(sessions) != 2 or len(set(sessions)) != 2 or not all(str(s).startswith("ses-") for s in sessions):
        raise ValueError(
            f"sessions must be two different BIDS session labels (before, after), e.g. ('ses-T1', 'ses-T2'); "
            f"got {sessions!r}."
        )
    return sessions


def _run_reason(pid: str, session: str, sessions, groups: pd.Series) -> str | None:
    """Why a run is left out at collection: another session, or a participant not in participants.tsv."""
    if session not in sessions:
        return f"session {session} is not one of sessions {tuple(sessions)}"
    if pid not in groups.index:
        return f"{pid} is not in participants.tsv; add it with its group"
    return None


def read_participants(bids_dir: str | Path) -> pd.DataFrame:
    """``participants.tsv`` of the baclofen study, checked.

    Returns
    -------
    participants : pandas.DataFrame
        As in the file (at least ``participant_id, group``).

    Raises
    ------
    FileNotFoundError
        If the file is missing.
    ValueError
        Naming the file: no rows, a missing column, an unknown group, or a
        participant on several rows (with the line numbers).
    """
    path = Path(bids_dir) / "participants.tsv"
    participants = read_tsv(path, "participants.tsv")
    missing = {"participant_id", "group"} - set(participants.columns)
    if missing:
        raise ValueError(f"{path} lacks the column(s) {sorted(missing)}; add them (group: baclofen or placebo).")
    if participants.empty:
        raise ValueError(f"{path} has no participant rows; add one row per participant with its group.")
    ids = participants["participant_id"].astype(str)
    duplicated = ids[ids.duplicated(keep=False)]
    if len(duplicated):
        lines = {pid: [int(i) + 2 for i in idx] for pid, idx in duplicated.groupby(duplicated).groups.items()}
        raise ValueError(f"{path}: participant(s) on several rows (file lines {lines}); keep one row per participant.")
    bad = sorted(set(participants["group"].astype(str)) - set(GROUPS))
    if bad:
        raise ValueError(f"{path}: group values {bad} are not recognised; use baclofen or placebo.")
    return participants


def read_craving_ratings(
    path: str | Path, participants: pd.DataFrame, value_range: tuple[float, float] = RATING_RANGE
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The craving ratings (``phenotype/craving_ratings.tsv``), checked; participants with a missing rating listed.

    ``n/a`` and empty cells are missing values (BIDS): a participant with one
    is left out of the craving analyses and listed. Anything else that is not
    a number, or a number outside ``value_range``, is an error.

    Parameters
    ----------
    path : path
        Columns ``participant_id, session_id, timepoint, craving``.
    participants : pandas.DataFrame
        ``participant_id`` (from :func:`read_participants`).
    value_range : (float, float)
        The scale's ends (VAS 0-100).

    Returns
    -------
    ratings : pandas.DataFrame
        The rows of the participants with every rating, ``craving`` as float.
    exclusions : pandas.DataFrame
        One row per participant left out (stage ``"craving ratings"``), with the
        file and the rows with a missing rating.

    Raises
    ------
    FileNotFoundError, ValueError
        Naming the file, and for a bad value its line and column.
    """
    path = Path(path)
    ratings = read_tsv(path, "craving ratings", dtype=str)
    needed = {"participant_id", "session_id", "timepoint", "craving"}
    if needed - set(ratings.columns):
        raise ValueError(f"{path} lacks the column(s) {sorted(needed - set(ratings.columns))}; add them.")
    values = pd.to_numeric(ratings["craving"], errors="coerce")
    not_number = values.isna() & ratings["craving"].notna()
    if not_number.any():
        i = int(np.flatnonzero(not_number.to_numpy())[0])
        raise ValueError(
            f"{path}, line {i + 2}, column 'craving': {ratings['craving'].iloc[i]!r} is not a number; write the "
            "rating as a number, or n/a if it is missing."
        )
    low, high = value_range
    outside = values.notna() & ((values < low) | (values > high))
    if outside.any():
        i = int(np.flatnonzero(outside.to_numpy())[0])
        raise ValueError(
            f"{path}, line {i + 2}, column 'craving': {values.iloc[i]:g} is outside the scale "
            f"{low:g}-{high:g}; correct it, or write n/a if it is unknown."
        )
    ratings = ratings.assign(craving=values)
    unknown = sorted(set(ratings["participant_id"]) - set(participants["participant_id"].astype(str)))
    if unknown:
        raise ValueError(f"{path}: ratings of {unknown}, who are not in participants.tsv; add them or remove the rows.")
    lacking = ratings["craving"].isna()
    exclusions = [
        {
            "participant_id": pid,
            "session_id": ",".join(sorted(set(sub["session_id"]))),
            "state": "craving",
            "stage": "craving ratings",
            "file": str(path),
            "reason": f"craving missing (n/a or empty) on line(s) {[int(i) + 2 for i in sub.index]}",
        }
        for pid, sub in ratings[lacking].groupby("participant_id", sort=True)
    ]
    dropped = {e["participant_id"] for e in exclusions}
    kept = ratings[~ratings["participant_id"].isin(dropped)].reset_index(drop=True)
    return kept, pd.DataFrame(exclusions, columns=EXCLUSION_COLUMNS)


#: Words of session labels that mean "before" and "after" (lower case), for the hint of a wrong ``sessions``.
_BEFORE = ("pre", "base", "bl", "before", "t1", "t0", "01", "1", "screen")
_AFTER = ("post", "follow", "fu", "after", "t2", "02", "2", "end")


def likely_session_order(found) -> tuple:
    """Two of the session labels found, the one that reads as "before" first (a hint, not a decision).

    ``("ses-post", "ses-pre")`` sorted by name would put "after" first; labels
    with words such as pre/baseline/T1 go first and post/follow-up/T2 second.
    Labels that say neither keep their sorted order.

    Parameters
    ----------
    found : sequence of str
        Session labels (``ses-<label>``).

    Returns
    -------
    tuple of str, at most two
    """

    def rank(label: str) -> int:
        word = label.removeprefix("ses-").lower()
        if any(word.startswith(w) or word.endswith(w) for w in _BEFORE):
            return 0
        if any(word.startswith(w) or word.endswith(w) for w in _AFTER):
            return 2
        return 1

    return tuple(sorted(sorted(found), key=rank)[:2])


def collect_asl_runs(bids_dir: str | Path, sessions=SESSIONS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every pCASL run of a study with its files; incomplete runs listed, not dropped.

    Parameters
    ----------
    bids_dir : path
    sessions : (str, str)
        The BIDS session labels before and after randomisation.

    Returns
    -------
    runs : pandas.DataFrame
        Columns :data:`RUN_COLUMNS`, sorted by participant and session (before, after);
        ``m0`` is empty for runs whose M0 is not a separate scan
        (``M0Type`` ``Included`` or ``Estimate``).
    exclusions : pandas.DataFrame
        Runs left out with their reason (a missing companion file, a
        participant absent from ``participants.tsv``, or a session other than
        the two of ``sessions``).

    Raises
    ------
    FileNotFoundError
        If the folder or its ``participants.tsv`` is missing.
    ValueError
        If ``participants.tsv`` is invalid (:func:`read_participants`), the
        ``perf/`` folders are not in sessions, or one of ``sessions`` has no
        ASL run (naming the sessions found and the parameter to set).
    """
    bids_dir = Path(bids_dir)
    first, second = _check_sessions(sessions)
    participants = read_participants(bids_dir)
    groups = participants.set_index("participant_id")["group"]
    unsessioned = sorted(bids_dir.glob("sub-*/perf/*_asl.nii.gz"))
    if unsessioned:
        raise ValueError(
            f"{unsessioned[0].parent} (and {len(unsessioned) - 1} more run(s)) is a perf/ folder without a "
            f"session; the longitudinal CBF chapter needs sub-*/{first}/perf/ and sub-*/{second}/perf/ "
            "(one session folder before and one after randomisation)."
        )
    found = sorted({p.parts[-3] for p in bids_dir.glob("sub-*/ses-*/perf/*_asl.nii.gz")})
    absent_sessions = [s for s in (first, second) if s not in found]
    if absent_sessions:
        raise ValueError(
            f"{bids_dir}: no ASL run in {absent_sessions}; the perf/ folders are in the sessions {found}. "
            "Set the parameter sessions to your study's labels (before, after), "
            f"e.g. sessions={likely_session_order(found)!r}."
        )
    rows, exclusions = [], []
    for asl in sorted(bids_dir.glob("sub-*/ses-*/perf/*_asl.nii.gz")):
        pid, ses = asl.parts[-4], asl.parts[-3]
        stem = asl.name.removesuffix("_asl.nii.gz")
        files = {
            "asl": asl,
            "asl_json": asl.with_name(f"{stem}_asl.json"),
            "aslcontext": asl.with_name(f"{stem}_aslcontext.tsv"),
            "m0": asl.with_name(f"{stem}_m0scan.nii.gz"),
        }
        if not files["m0"].is_file() and files["asl_json"].is_file():
            if read_json(files["asl_json"], "ASL sidecar").get("M0Type") in ("Included", "Estimate"):
                files["m0"] = ""  # M0 inside the series or in the sidecar
        absent = [str(p) for p in files.values() if p and not p.is_file()]
        reason = _run_reason(pid, ses, (first, second), groups) or ("missing " + ", ".join(absent) if absent else None)
        if reason:
            exclusions.append(
                {
                    "participant_id": pid,
                    "session_id": ses,
                    "state": "rest",
                    "stage": "collect",
                    "file": str(asl),
                    "reason": reason,
                }
            )
            continue
        rows.append(
            {"participant_id": pid, "group": groups[pid], "session_id": ses, **{k: str(v) for k, v in files.items()}}
        )
    order = {first: 0, second: 1}
    runs = pd.DataFrame(rows, columns=ASL_RUN_COLUMNS).sort_values(
        ["participant_id", "session_id"], key=lambda c: c.map(order) if c.name == "session_id" else c, ignore_index=True
    )
    return runs, pd.DataFrame(exclusions, columns=EXCLUSION_COLUMNS)


def collect_aslprep_cbf(
    aslprep_dir: str | Path, bids_dir: str | Path, sessions=SESSIONS, space: str = SPACE
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ASLPrep's CBF maps (already quantified, in ``space``) by BIDS derivative naming, with their QC tables.

    Looks for ``sub-*/ses-*/perf/*_space-<space>_cbf.nii.gz`` (or
    ``*_space-<space>_desc-mean_cbf.nii.gz``) under ``aslprep_dir`` and, next
    to each, a QC table ``*_desc-qc_cbf.tsv`` (or ASLPrep's
    ``*_desc-qualitycontrol_cbf.tsv``).

    Returns
    -------
    runs : pandas.DataFrame
        :data:`DERIVED_CBF_COLUMNS` (``qc`` empty when no QC table was found),
        sorted by participant and session (before, after).
    exclusions : pandas.DataFrame
        Maps of participants absent from ``participants.tsv`` or of other
        sessions, with their reason.

    Raises
    ------
    FileNotFoundError
        If ``aslprep_dir`` has no CBF map in ``space``.
    ValueError
        As :func:`collect_asl_runs` for ``participants.tsv`` and the sessions.
    """
    aslprep_dir = Path(aslprep_dir)
    first, second = _check_sessions(sessions)
    groups = read_participants(bids_dir).set_index("participant_id")["group"]
    maps = sorted(
        {
            *aslprep_dir.glob(f"sub-*/ses-*/perf/*_space-{space}_cbf.nii.gz"),
            *aslprep_dir.glob(f"sub-*/ses-*/perf/*_space-{space}_desc-mean_cbf.nii.gz"),
        }
    )
    if not maps:
        raise FileNotFoundError(
            f"{aslprep_dir}: no CBF map sub-*/ses-*/perf/*_space-{space}_cbf.nii.gz; point aslprep_dir at ASLPrep's "
            "output folder (BIDS derivative naming), or give the raw perf/ data instead."
        )
    found = sorted({p.parts[-3] for p in maps})
    if first not in found or second not in found:
        raise ValueError(
            f"{aslprep_dir}: CBF maps are in the sessions {found}, not both of {[first, second]}; set the "
            "parameter sessions to your study's labels (before, after)."
        )
    rows, exclusions = [], []
    for path in maps:
        pid, ses = path.parts[-4], path.parts[-3]
        stem = path.name.split("_space-")[0]
        qc = [p for p in path.parent.glob(f"{stem}*_desc-q*_cbf.tsv") if "_desc-qc_" in p.name or "quality" in p.name]
        reason = _run_reason(pid, ses, (first, second), groups)
        if reason:
            exclusions.append(
                {"participant_id": pid, "session_id": ses, "state": "rest", "stage": "collect", "file": str(path)}
                | {"reason": reason}
            )
            continue
        rows.append(
            {
                "participant_id": pid,
                "group": groups[pid],
                "session_id": ses,
                "cbf": str(path),
                "qc": str(sorted(qc)[0]) if qc else "",
            }
        )
    order = {first: 0, second: 1}
    runs = pd.DataFrame(rows, columns=DERIVED_CBF_COLUMNS).sort_values(
        ["participant_id", "session_id"], key=lambda c: c.map(order) if c.name == "session_id" else c, ignore_index=True
    )
    return runs, pd.DataFrame(exclusions, columns=EXCLUSION_COLUMNS)


def collect_task_runs(
    bids_dir: str | Path,
    fmriprep_dir: str | Path | None = None,
    task: str = "smokingcue",
    sessions=SESSIONS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every cue-task run with its files; incomplete runs are listed, not dropped.

    Returns
    -------
    runs : pandas.DataFrame
        Columns :data:`TASK_RUN_COLUMNS`.
    exclusions : pandas.DataFrame
        Runs left out, with the missing file.

    Raises
    ------
    ValueError
        If ``participants.tsv`` is invalid (:func:`read_participants`), or one
        of ``sessions`` has no run of ``task`` while other sessions have
        (naming the sessions found and the parameter to set).
    """
    bids_dir = Path(bids_dir)
    fmriprep_dir = Path(fmriprep_dir) if fmriprep_dir else bids_dir / "derivatives" / "fmriprep"
    sessions = _check_sessions(sessions)
    participants = read_participants(bids_dir)
    found = sorted({p.parts[-3] for p in fmriprep_dir.glob(f"sub-*/ses-*/func/*_task-{task}_*_bold.nii.gz")})
    absent_sessions = [s for s in sessions if s not in found]
    if found and absent_sessions:
        raise ValueError(
            f"{fmriprep_dir}: no run of the task {task} in {absent_sessions}; the runs are in the sessions {found}. "
            "Set the parameter sessions to your study's labels (before, after), "
            f"e.g. sessions={likely_session_order(found)!r}."
        )
    rows, exclusions = [], []
    for p in participants.itertuples(index=False):
        for session in sessions:
            files = run_files(fmriprep_dir, p.participant_id, session, task, SPACE)
            events = (
                bids_dir / p.participant_id / session / "func" / f"{p.participant_id}_{session}_task-{task}_events.tsv"
            )
            needed = {"bold": files.bold, "bold_json": files.bold_json, "confounds": files.confounds, "events": events}
            absent = [str(v) for v in needed.values() if not v.is_file()]
            if absent:
                exclusions.append(
                    {
                        "participant_id": p.participant_id,
                        "session_id": session,
                        "state": task,
                        "stage": "collect",
                        "file": absent[0],
                        "reason": "missing " + ", ".join(absent),
                    }
                )
                continue
            meta = read_json(files.bold_json, "BOLD sidecar")
            if "RepetitionTime" not in meta:
                raise ValueError(f"{files.bold_json} lacks RepetitionTime; add it (seconds).")
            rows.append(
                {
                    "participant_id": p.participant_id,
                    "group": p.group,
                    "session_id": session,
                    "bold": str(files.bold),
                    "confounds": str(files.confounds),
                    "events": str(events),
                    "t_r": float(meta["RepetitionTime"]),
                }
            )
    return pd.DataFrame(rows, columns=TASK_RUN_COLUMNS), pd.DataFrame(exclusions, columns=EXCLUSION_COLUMNS)


def simulated_study(
    preset: str = "paper", data_dir: str | Path = "data", n_jobs: int = 1, progress: bool = False, **overrides
) -> Path:
    """The simulated baclofen study of a preset (``<data_dir>/baclofen-<preset>[-<hash>]``), simulated on first use.

    Returns
    -------
    root : pathlib.Path
        The BIDS root.
    """

    name = f"baclofen-{preset}" + (f"-{short_hash(overrides)}" if overrides else "")
    return simulate_baclofen_study(
        Path(data_dir) / name, preset, n_jobs=n_jobs, replace=True, progress=progress, **overrides
    )
