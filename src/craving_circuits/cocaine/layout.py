"""Where the files of a study live: BIDS raw data plus fMRIPrep derivatives.

Data conventions
----------------
The code expects (and the simulator writes) this layout::

    <bids_dir>/
        dataset_description.json
        participants.tsv, participants.json      # participant_id, group, ...
        sub-<label>/sub-<label>_sessions.tsv     # session_id, drug
        phenotype/craving_ratings.tsv            # participant_id, session_id, state, craving_vas
        derivatives/fmriprep/sub-<label>/ses-<label>/func/
            sub-<label>_ses-<label>_task-<task>_space-<space>_desc-preproc_bold.nii.gz (+ .json)
            sub-<label>_ses-<label>_task-<task>_space-<space>_desc-brain_mask.nii.gz
            sub-<label>_ses-<label>_task-<task>_desc-confounds_timeseries.tsv (+ .json)
        derivatives/mrs/nacc_metabolites.tsv      # long format, one row per metabolite
        derivatives/simulation/ground_truth.json # simulated studies only

The two resting-state conditions of a session are told apart by the BIDS
``task`` entity; which task means which state is a parameter
(``state_tasks``, default ``{"neutral": "restneutral", "craving": "restcue"}``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nilearn.datasets import load_mni152_brain_mask
from nilearn.image import resample_to_img

from craving_circuits.io.bids import DEFAULT_STATE_TASKS, SPACE, parse_entities, run_files, run_label, sibling_files
from craving_circuits.io.files import read_bids_table, read_json, short_hash
from craving_circuits.io.runs import confounds_problem
from craving_circuits.io.schemas import EXCLUSION_COLUMNS
from craving_circuits.simulate.cocaine import simulate_cocaine_study

__all__ = [
    "Study",
    "open_study",
    "read_participants",
    "read_sessions",
    "collect_runs",
    "MULTIPLE_RUNS",
    "reference_grid",
    "analysis_mask",
    "design_summary",
    "read_craving_ratings",
    "simulated_study",
]

# --------------------------------------------------------------------------- collecting a study


@dataclass(frozen=True)
class Study:
    """Paths and conventions of one study on disk.

    Attributes
    ----------
    bids_dir : Path
        BIDS root (``participants.tsv``, ``sub-*/sub-*_sessions.tsv``, ``phenotype/``).
    fmriprep_dir : Path
        fMRIPrep derivatives (``sub-*/ses-*/func``).
    state_tasks : dict
        ``{"neutral": task_label, "craving": task_label}``.
    space : str
        Output space entity of the preprocessed BOLD files.
    """

    bids_dir: Path
    fmriprep_dir: Path
    state_tasks: tuple = tuple(DEFAULT_STATE_TASKS.items())
    space: str = SPACE

    @property
    def participants_file(self) -> Path:
        return self.bids_dir / "participants.tsv"

    @property
    def mrs_file(self) -> Path:
        return self.bids_dir / "derivatives" / "mrs" / "nacc_metabolites.tsv"

    @property
    def ratings_file(self) -> Path:
        return self.bids_dir / "phenotype" / "craving_ratings.tsv"

    @property
    def ground_truth_file(self) -> Path:
        return self.bids_dir / "derivatives" / "simulation" / "ground_truth.json"

    @property
    def is_simulated(self) -> bool:
        return self.ground_truth_file.is_file()


def open_study(
    bids_dir: str | Path,
    fmriprep_dir: str | Path | None = None,
    state_tasks: dict | None = None,
    space: str = SPACE,
) -> Study:
    """Check that a study's folders exist and describe them.

    Parameters
    ----------
    bids_dir : path
        BIDS root.
    fmriprep_dir : path, optional
        fMRIPrep derivatives; default ``<bids_dir>/derivatives/fmriprep``.
    state_tasks : dict, optional
        Task label of each state; default :data:`DEFAULT_STATE_TASKS`.
    space : str

    Raises
    ------
    FileNotFoundError
        Naming the missing folder or file and what it should contain.
    ValueError
        If ``state_tasks`` does not map exactly the states ``neutral`` and ``craving``.
    """
    bids_dir = Path(bids_dir)
    fmriprep_dir = Path(fmriprep_dir) if fmriprep_dir is not None else bids_dir / "derivatives" / "fmriprep"
    state_tasks = dict(state_tasks or DEFAULT_STATE_TASKS)
    if set(state_tasks) != {"neutral", "craving"}:
        raise ValueError(
            f"state_tasks must map the states 'neutral' and 'craving' to BIDS task labels, got {state_tasks}."
        )
    if not bids_dir.is_dir():
        raise FileNotFoundError(f"BIDS folder not found: {bids_dir}. Pass the root of your BIDS dataset.")
    if not (bids_dir / "participants.tsv").is_file():
        raise FileNotFoundError(
            f"{bids_dir / 'participants.tsv'} not found: the BIDS root must list participants with at least "
            f"the columns participant_id and group (CUD or control)."
        )
    if not fmriprep_dir.is_dir():
        raise FileNotFoundError(
            f"fMRIPrep folder not found: {fmriprep_dir}. Pass fmriprep_dir= the folder that holds sub-*/ses-*/func."
        )
    return Study(bids_dir, fmriprep_dir, tuple(sorted(state_tasks.items())), space)


#: Allowed ranges of the numeric columns of participants.tsv (checked where present).
PARTICIPANT_RANGES = {"age": (0, 120), "cocaine_g_per_week": (0, None), "ocdus_obsessive": (0, None)}

#: Visual analogue scale of the craving ratings.
VAS_RANGE = (0, 100)


def read_participants(study: Study) -> pd.DataFrame:
    """participants.tsv with the columns the analyses need validated.

    Missing clinical values (``n/a``) are allowed: the models that use the
    column leave the participant out and list it.

    Raises
    ------
    ValueError
        Naming the file, line(s) and column: the file is empty or has no rows,
        ``participant_id`` or ``group`` is missing, an id repeats, a group is
        neither ``CUD`` nor ``control``, or a numeric column
        (:data:`PARTICIPANT_RANGES`) holds a non-number or a value out of range.
    """
    return read_bids_table(
        study.participants_file,
        "participants.tsv",
        columns=["participant_id", "group"],
        numeric=PARTICIPANT_RANGES,
        levels={"group": {"CUD", "control"}},
        unique=["participant_id"],
        labels=["participant_id"],
        fix="participants.tsv lists each participant once, with participant_id and group (CUD or control).",
    )


def read_sessions(study: Study, participant_id: str) -> pd.DataFrame | None:
    """A participant's sessions.tsv (``session_id, drug``), or None if absent.

    Raises
    ------
    ValueError
        Naming the file and line(s): no rows, a missing column, a drug other
        than ``NAC`` or ``placebo``, or a session listed twice.
    """
    path = study.bids_dir / participant_id / f"{participant_id}_sessions.tsv"
    if not path.is_file():
        return None
    return read_bids_table(
        path,
        "sessions file",
        columns=["session_id", "drug"],
        levels={"drug": {"NAC", "placebo"}},
        unique=["session_id"],
        labels=["session_id"],
        fix="A sessions file gives the drug (NAC or placebo) of each session, one row per session.",
    )


#: What :func:`collect_runs` does with several runs of one state in one session.
MULTIPLE_RUNS = ("average", "first", "error")


def _natural_key(path: Path) -> list:
    """Sort key that puts run-2 before run-10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def collect_runs(study: Study, multiple_runs: str = "average") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Find every resting-state run of the study and check it can be analysed.

    Checks, for each run: the participant is in ``participants.tsv``; the
    session's drug is known; the JSON sidecar gives ``RepetitionTime``; the
    image is 4D on the study's reference grid (the most common shape and
    affine) with the study's repetition time (the most common); its confounds
    TSV exists and is an fMRIPrep confounds table with one row per volume and
    numbers in every cell after the first row
    (:func:`~craving_circuits.io.runs.confounds_problem`). Runs failing a
    check are not analysed and are listed, with the reason and the file, in
    the exclusions table. Runs expected from the sessions files but absent are
    listed too.

    File names may carry the entities ``acq-``, ``ce-``, ``rec-``, ``dir-``,
    ``run-`` and ``echo-`` (as fMRIPrep keeps them); each run's sidecar, mask
    and confounds are those of its own name. Several runs of one state in one
    session (``run-1``, ``run-2``) are handled as ``multiple_runs`` says.

    Parameters
    ----------
    study : Study
    multiple_runs : {"average", "first", "error"}
        ``"average"`` (default): every run is analysed and the second level
        averages the runs of a state within the session
        (:func:`craving_circuits.cocaine.secondlevel.roi_state_differences`,
        :func:`~craving_circuits.cocaine.secondlevel.state_difference_maps`);
        ``"first"``: the first usable run in name order (run-1 before run-2)
        is kept and the others are listed as exclusions; ``"error"``: such a
        session is an error naming its files.

    Returns
    -------
    runs : pandas.DataFrame
        One row per usable run: ``participant_id, group, session_id, drug,
        state, task, run_label, bold, mask, confounds, t_r, n_volumes``
        (``run_label``: the run entities of the file name, ``""`` without any).
    exclusions : pandas.DataFrame
        Columns :data:`EXCLUSION_COLUMNS`, stage ``"inputs"``.

    Raises
    ------
    ValueError
        For an unknown ``multiple_runs``, or with ``"error"`` for a session with
        several runs of one state.
    """
    if multiple_runs not in MULTIPLE_RUNS:
        raise ValueError(f"multiple_runs must be one of {MULTIPLE_RUNS}, got {multiple_runs!r}.")
    participants = read_participants(study).set_index("participant_id")
    task_state = {task: state for state, task in study.state_tasks}
    pattern = f"sub-*/ses-*/func/*_space-{study.space}_desc-preproc_bold.nii.gz"
    found: dict[tuple, list[Path]] = {}
    for path in sorted(study.fmriprep_dir.glob(pattern), key=_natural_key):
        entities = parse_entities(path.name)
        if entities.get("space") != study.space or entities.get("task") not in task_state:
            continue
        key = (f"sub-{entities.get('sub')}", f"ses-{entities.get('ses')}", task_state[entities["task"]])
        found.setdefault(key, []).append(path)
    candidates, exclusions = [], []

    def exclude(pid, ses, state, file, reason):
        exclusions.append(
            dict(participant_id=pid, session_id=ses, state=state, stage="inputs", file=str(file), reason=reason)
        )

    expected = set()
    sessions_cache = {}
    for pid in participants.index:
        sessions = read_sessions(study, pid)
        sessions_cache[pid] = sessions
        if sessions is None:
            continue
        for ses in sessions["session_id"]:
            for state in ("neutral", "craving"):
                expected.add((pid, ses, state))
    for pid, ses, state in sorted(expected - set(found)):
        task = dict(study.state_tasks)[state]
        path = run_files(study.fmriprep_dir, pid, ses, task, study.space).bold
        exclude(pid, ses, state, path, "preprocessed BOLD not found")

    for (pid, ses, state), bold in [(key, b) for key, paths in sorted(found.items()) for b in paths]:
        task = dict(study.state_tasks)[state]
        files = sibling_files(bold)
        if pid not in participants.index:
            exclude(
                pid,
                ses,
                state,
                bold,
                f"{pid} has fMRIPrep outputs but no row in {study.participants_file}; add the row or "
                f"remove the participant's folder",
            )
            continue
        sessions = sessions_cache.get(pid)
        drug = None
        if sessions is not None:
            match = sessions.loc[sessions["session_id"] == ses, "drug"]
            drug = match.iloc[0] if len(match) else None
        if drug is None or pd.isna(drug):
            exclude(
                pid,
                ses,
                state,
                study.bids_dir / pid / f"{pid}_sessions.tsv",
                f"no drug recorded for {ses}; add a row 'session_id drug' (NAC or placebo)",
            )
            continue
        if not files.confounds.is_file():
            exclude(
                pid,
                ses,
                state,
                files.confounds,
                "confounds file missing; copy fMRIPrep's desc-confounds_timeseries.tsv (fMRIPrep 1.x: "
                "desc-confounds_regressors.tsv) next to the BOLD run",
            )
            continue
        try:
            t_r = float(read_json(files.bold_json, "BOLD sidecar")["RepetitionTime"])
        except (FileNotFoundError, KeyError, ValueError, TypeError):
            exclude(
                pid,
                ses,
                state,
                files.bold_json,
                "JSON sidecar missing or without RepetitionTime; restore fMRIPrep's sidecar",
            )
            continue
        try:
            header = nib.load(str(bold))
        except Exception as err:  # nibabel raises several types for unreadable files
            exclude(pid, ses, state, bold, f"image cannot be read ({err})")
            continue
        if header.ndim != 4:
            exclude(pid, ses, state, bold, f"image is {header.ndim}D, not 4D")
            continue
        problem = confounds_problem(files.confounds, int(header.shape[3]))
        if problem is not None:
            exclude(pid, ses, state, files.confounds, problem)
            continue
        candidates.append(
            dict(
                participant_id=pid,
                group=participants.loc[pid, "group"],
                session_id=ses,
                drug=drug,
                state=state,
                task=task,
                run_label=run_label(bold.name),
                bold=str(bold),
                mask=str(files.mask) if files.mask.is_file() else None,
                confounds=str(files.confounds),
                t_r=t_r,
                n_volumes=int(header.shape[3]),
                grid_key=(header.shape[:3], tuple(np.round(header.affine, 3).ravel())),
            )
        )
    runs = pd.DataFrame(candidates)
    if len(runs):
        grid = runs["grid_key"].value_counts().idxmax()
        t_r = runs["t_r"].value_counts().idxmax()
        keep = np.ones(len(runs), bool)
        for i, row in enumerate(runs.itertuples(index=False)):
            if row.grid_key != grid:
                keep[i] = False
                exclude(
                    row.participant_id,
                    row.session_id,
                    row.state,
                    row.bold,
                    f"grid (shape {row.grid_key[0]}) or affine differs from the study's reference grid "
                    f"(shape {grid[0]}); resample with nilearn.image.resample_to_img",
                )
            elif not np.isclose(row.t_r, t_r):
                keep[i] = False
                exclude(
                    row.participant_id,
                    row.session_id,
                    row.state,
                    row.bold,
                    f"repetition time {row.t_r} s differs from the study's {t_r} s",
                )
        runs = runs[keep].drop(columns="grid_key").reset_index(drop=True)
    else:
        runs = pd.DataFrame(
            columns=[
                "participant_id",
                "group",
                "session_id",
                "drug",
                "state",
                "task",
                "run_label",
                "bold",
                "mask",
                "confounds",
                "t_r",
                "n_volumes",
            ]
        )
    runs = _one_choice_of_runs(runs, multiple_runs, exclude)
    return runs, pd.DataFrame(exclusions, columns=EXCLUSION_COLUMNS)


def _one_choice_of_runs(runs: pd.DataFrame, multiple_runs: str, exclude) -> pd.DataFrame:
    """Apply the ``multiple_runs`` choice to the usable runs (rows in name order within a session and state)."""
    if runs.empty or multiple_runs == "average":
        return runs
    keys = ["participant_id", "session_id", "state"]
    repeated = runs[runs.duplicated(keys, keep=False)]
    if repeated.empty:
        return runs
    if multiple_runs == "error":
        groups = [
            f"{pid} {ses} {state}: {list(sub['bold'])}" for (pid, ses, state), sub in repeated.groupby(keys, sort=True)
        ]
        raise ValueError(
            f"Several runs of one state in a session: {'; '.join(groups)}. Pass multiple_runs='average' to "
            f"average them per session, or 'first' to keep the first."
        )
    later = runs.duplicated(keys, keep="first")
    first = runs[~later].set_index(keys)["bold"]
    for row in runs[later].itertuples(index=False):
        kept = first.loc[(row.participant_id, row.session_id, row.state)]
        exclude(
            row.participant_id,
            row.session_id,
            row.state,
            row.bold,
            f"another run of this state in the session; multiple_runs='first' keeps {kept}",
        )
    return runs[~later].reset_index(drop=True)


def reference_grid(runs: pd.DataFrame) -> nib.Nifti1Image:
    """A 3D image on the grid of the study's runs (the first run's first volume header)."""
    if runs.empty:
        raise ValueError("No usable run: see the exclusions table for the reasons.")
    img = nib.load(runs["bold"].iloc[0])
    return nib.Nifti1Image(np.zeros(img.shape[:3], dtype=np.uint8), img.affine)


def analysis_mask(runs: pd.DataFrame) -> tuple[nib.Nifti1Image, dict]:
    """Group analysis mask: MNI152 brain mask on the study grid, within every run's brain mask.

    Returns
    -------
    mask_img : nibabel.Nifti1Image
        uint8 mask on the reference grid.
    info : dict
        ``n_voxels_template`` (template mask on the grid), ``n_voxels`` (final),
        ``n_runs_with_mask``.
    """

    grid = reference_grid(runs)
    template = resample_to_img(
        load_mni152_brain_mask(resolution=2), grid, interpolation="nearest", force_resample=True, copy_header=True
    )
    mask = np.asarray(template.dataobj) > 0
    n_template = int(mask.sum())
    n_masks = 0
    for path in runs["mask"].dropna().unique():
        mask &= np.asarray(nib.load(path).dataobj) > 0
        n_masks += 1
    if not mask.any():
        raise ValueError("The run brain masks do not overlap the MNI152 brain mask; check the space of the runs.")
    info = {"n_voxels_template": n_template, "n_voxels": int(mask.sum()), "n_runs_with_mask": n_masks}
    return nib.Nifti1Image(mask.astype(np.uint8), grid.affine), info


def design_summary(participants: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Participants and analysable runs per group.

    Returns
    -------
    summary : pandas.DataFrame
        One row per group: ``participants``, ``placebo_first``, ``nac_first``,
        ``runs_neutral``, ``runs_craving``.
    """
    rows = []
    for group in ("CUD", "control"):
        p = participants[participants["group"] == group]
        r = runs[runs["group"] == group] if len(runs) else runs
        order = p["drug_order"] if "drug_order" in p else pd.Series(dtype=object)
        rows.append(
            {
                "group": group,
                "participants": len(p),
                "placebo_first": int((order == "placebo-NAC").sum()),
                "nac_first": int((order == "NAC-placebo").sum()),
                "runs_neutral": int((r["state"] == "neutral").sum()) if len(r) else 0,
                "runs_craving": int((r["state"] == "craving").sum()) if len(r) else 0,
            }
        )
    return pd.DataFrame(rows)


def read_craving_ratings(study: Study) -> pd.DataFrame:
    """Craving ratings (``participant_id, session_id, drug, state, craving_vas``) with the group added.

    ``n/a`` or an empty cell is a missing rating: the rating analyses leave
    that session out and list it
    (:func:`craving_circuits.cocaine.ratings.rating_exclusions`). A rating
    outside the scale (:data:`VAS_RANGE`, 0-100) is an error, as is any other
    non-numeric rating.

    Raises
    ------
    FileNotFoundError
        If ``phenotype/craving_ratings.tsv`` is absent.
    ValueError
        Naming the file, line(s) and column: columns are missing, a rating is
        not a number or outside 0-100, a state or drug is unknown, a
        participant, session and state is rated twice, or a participant is not
        in participants.tsv.
    """
    path = study.ratings_file
    df = read_bids_table(
        path,
        "craving ratings",
        columns=["participant_id", "session_id", "drug", "state", "craving_vas"],
        numeric={"craving_vas": VAS_RANGE},
        levels={"state": {"neutral", "craving"}, "drug": {"NAC", "placebo"}},
        unique=["participant_id", "session_id", "state"],
        labels=["participant_id", "session_id"],
        fix="The ratings table has one row per participant, session and state (neutral, craving), VAS 0-100.",
    )
    groups = read_participants(study).set_index("participant_id")["group"]
    unknown = sorted(set(df["participant_id"]) - set(groups.index))
    if unknown:
        raise ValueError(f"{path} has ratings of {unknown}, who are not in {study.participants_file}; add them.")
    return df.assign(group=df["participant_id"].map(groups))


def simulated_study(
    preset: str = "paper", data_dir: str | Path = "data", n_jobs: int = 1, progress: bool = False, **overrides
) -> Study:
    """The simulated cocaine-craving study of a preset, simulated on first use.

    The data go to ``<data_dir>/cocaine-<preset>`` (plus a hash of the
    overrides, if any), so presets and variants never overwrite each other.

    Parameters
    ----------
    preset : str
        A preset of :data:`craving_circuits.simulate.cocaine.PRESETS`.
    data_dir : path
    n_jobs : int
        Processes used to simulate.
    **overrides
        Simulation parameters that replace the preset's.
    """

    name = f"cocaine-{preset}" + (f"-{short_hash(overrides)}" if overrides else "")
    root = simulate_cocaine_study(
        Path(data_dir) / name, preset, n_jobs=n_jobs, replace=True, progress=progress, **overrides
    )
    return open_study(root)
