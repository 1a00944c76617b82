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

import pandas as pd

from craving_circuits.io.bids import SPACE, run_files
from craving_circuits.io.files import read_json, read_tsv, short_hash
from craving_circuits.io.schemas import (
    ASL_RUN_COLUMNS,
    EXCLUSION_COLUMNS,
    TASK_RUN_COLUMNS,
)
from craving_circuits.simulate.baclofen import simulate_baclofen_study

__all__ = ["GROUPS", "SESSIONS", "simulated_study", "collect_asl_runs", "collect_task_runs"]


#: Groups of the baclofen study.
GROUPS = ("baclofen", "placebo")
#: Sessions: before (T1) and after (T2) three weeks of baclofen or placebo.
SESSIONS = ("ses-T1", "ses-T2")


def collect_asl_runs(bids_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every pCASL run of a study with its files; incomplete runs listed, not dropped.

    Returns
    -------
    runs : pandas.DataFrame
        Columns :data:`RUN_COLUMNS`, sorted by participant and session.
    exclusions : pandas.DataFrame
        Runs left out with their reason (a missing companion file, or a
        participant absent from ``participants.tsv``).

    Raises
    ------
    FileNotFoundError
        If the folder or its ``participants.tsv`` is missing.
    ValueError
        If ``participants.tsv`` lacks ``participant_id``/``group`` or has
        another group than baclofen or placebo.
    """
    bids_dir = Path(bids_dir)
    path = bids_dir / "participants.tsv"
    participants = read_tsv(path, "participants.tsv")
    missing = {"participant_id", "group"} - set(participants.columns)
    if missing:
        raise ValueError(f"{path} lacks the column(s) {sorted(missing)}; add them (group: baclofen or placebo).")
    bad = sorted(set(participants["group"].astype(str)) - set(GROUPS))
    if bad:
        raise ValueError(f"{path}: group values {bad} are not recognised; use baclofen or placebo.")
    groups = participants.set_index("participant_id")["group"]
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
        absent = [str(p) for p in files.values() if not p.is_file()]
        reason = None
        if pid not in groups.index:
            reason = f"{pid} is not in participants.tsv; add it with its group"
        elif absent:
            reason = "missing " + ", ".join(absent)
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
    return (
        pd.DataFrame(rows, columns=ASL_RUN_COLUMNS).sort_values(["participant_id", "session_id"], ignore_index=True),
        pd.DataFrame(exclusions, columns=EXCLUSION_COLUMNS),
    )


def collect_task_runs(
    bids_dir: str | Path,
    fmriprep_dir: str | Path | None = None,
    task: str = "smokingcue",
    sessions=("ses-T1", "ses-T2"),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every cue-task run with its files; incomplete runs are listed, not dropped.

    Returns
    -------
    runs : pandas.DataFrame
        Columns :data:`TASK_RUN_COLUMNS`.
    exclusions : pandas.DataFrame
        Runs left out, with the missing file.
    """
    bids_dir = Path(bids_dir)
    fmriprep_dir = Path(fmriprep_dir) if fmriprep_dir else bids_dir / "derivatives" / "fmriprep"
    participants = read_tsv(bids_dir / "participants.tsv", "participants.tsv")
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
