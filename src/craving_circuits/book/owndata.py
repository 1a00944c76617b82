"""The book on one's own data: which chapters can run, and the run plan that runs them.

``craving-circuits execute --bids-dir D [--fmriprep-dir F] [--aslprep-dir A]``
(``make book BIDS_DIR=D ...``) builds the whole book on a BIDS dataset:

* :func:`own_data_plan` gives every chapter of the plan that analyses a study
  the dataset's folders (the parameters ``bids_dir``, ``fmriprep_dir`` and
  ``aslprep_dir``, to the notebooks that declare them); the runs that are
  simulated by nature keep their simulated study: those on the null preset
  (``preset: "{null_preset}"``) and those that plant an effect of their own
  (``simulation``, e.g. the positive control), and the chapters that analyse no
  study (calibration, ledger, appendix) run as they are;
* :func:`missing_inputs` says, from the files present, whether a chapter's
  inputs are there (:data:`CHAPTER_INPUTS`: the resting-state runs of the two
  state tasks for the cocaine chapters, with the MRS table for the glutamate
  chapter; ``perf/`` ASL series or ASLPrep CBF maps for the CBF chapter; the
  cue-task runs for the mediation chapter); a chapter whose inputs are absent is
  not run: :func:`skipped_page` writes its page, a title and the inputs that
  were missing from which folder, and a chapter that needs a skipped one is
  skipped too.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from craving_circuits.io.bids import DEFAULT_STATE_TASKS, SPACE

__all__ = ["OWN_DATA_PARAMETERS", "CHAPTER_INPUTS", "missing_inputs", "own_data_plan", "skipped_page"]

#: The parameters that point a notebook at one's own dataset.
OWN_DATA_PARAMETERS = ("bids_dir", "fmriprep_dir", "aslprep_dir")

#: Default task label of the baclofen cue task (the mediation notebook's ``task``).
CUE_TASK = "smokingcue"


def _fmriprep_dir(parameters: dict) -> Path:
    bids_dir = Path(parameters["bids_dir"])
    return Path(parameters.get("fmriprep_dir") or bids_dir / "derivatives" / "fmriprep")


def _bold(folder: Path, task: str) -> list[Path]:
    return sorted(folder.glob(f"sub-*/ses-*/func/*_task-{task}_*space-{SPACE}*_desc-preproc_bold.nii.gz"))


def _rest_runs(parameters: dict) -> str | None:
    folder = _fmriprep_dir(parameters)
    tasks = dict(parameters.get("state_tasks") or DEFAULT_STATE_TASKS)
    absent = [task for task in sorted(tasks.values()) if not _bold(folder, task)]
    if not absent:
        return None
    return (
        f"no preprocessed resting-state BOLD of the task(s) {', '.join(absent)} "
        f"(`sub-*/ses-*/func/*_task-<task>_space-{SPACE}_desc-preproc_bold.nii.gz`) in `{folder}`"
    )


def _rest_runs_and_mrs(parameters: dict) -> str | None:
    missing = _rest_runs(parameters)
    mrs = Path(parameters["bids_dir"]) / "derivatives" / "mrs" / "nacc_metabolites.tsv"
    if not mrs.is_file():
        return "; ".join(filter(None, [missing, f"no MRS table `{mrs.name}` in `{mrs.parent}`"]))
    return missing


def _perfusion(parameters: dict) -> str | None:
    bids_dir = Path(parameters["bids_dir"])
    if any(bids_dir.glob("sub-*/ses-*/perf/*_asl.nii*")) or any(bids_dir.glob("sub-*/perf/*_asl.nii*")):
        return None
    aslprep_dir = parameters.get("aslprep_dir")
    if aslprep_dir and any(Path(aslprep_dir).glob(f"sub-*/ses-*/perf/*_space-{SPACE}*_cbf.nii.gz")):
        return None
    where = f"in `{bids_dir}`" + (f", and no ASLPrep CBF map in `{aslprep_dir}`" if aslprep_dir else "")
    return f"no ASL series (`sub-*/ses-*/perf/*_asl.nii.gz`) {where}"


def _cue_runs(parameters: dict) -> str | None:
    folder = _fmriprep_dir(parameters)
    task = parameters.get("task") or CUE_TASK
    if _bold(folder, task):
        return None
    return f"no preprocessed BOLD of the cue task {task} (`sub-*/ses-*/func/*_task-{task}_*_bold.nii.gz`) in `{folder}`"


#: Per notebook (file stem): a function of its parameters giving what is absent (None: all there).
CHAPTER_INPUTS = {
    "data": _rest_runs,
    "nacc_seed_fc": _rest_runs,
    "nac_null_effect": _rest_runs,
    "multiverse": _rest_runs,
    "thalamus_glutamate": _rest_runs_and_mrs,
    "baclofen_cbf": _perfusion,
    "baclofen_mediation": _cue_runs,
}


def missing_inputs(notebook: str | Path, parameters: dict) -> str | None:
    """What a chapter lacks in one's own dataset, or None when its inputs are present.

    Parameters
    ----------
    notebook : str or Path
        The chapter's notebook (its file stem selects the rule of :data:`CHAPTER_INPUTS`).
    parameters : dict
        The parameters it would run with: ``bids_dir`` and, where given,
        ``fmriprep_dir`` (default ``<bids_dir>/derivatives/fmriprep``),
        ``aslprep_dir``, ``state_tasks`` and ``task``.

    Returns
    -------
    missing : str or None
        A sentence naming the absent files and the folder searched; None when
        the inputs are there, when ``bids_dir`` is not set (a simulated run) or
        for a notebook without a rule.
    """
    rule = CHAPTER_INPUTS.get(Path(notebook).stem)
    if rule is None or not parameters.get("bids_dir"):
        return None
    return rule(parameters)


def _simulated_by_nature(entry: dict, null_preset: str) -> bool:
    parameters = entry["parameters"]
    return parameters.get("preset") == null_preset or bool(parameters.get("simulation"))


def own_data_plan(
    plan: list[dict],
    bids_dir: str | Path,
    fmriprep_dir: str | Path | None = None,
    aslprep_dir: str | Path | None = None,
    null_preset: str = "null",
) -> list[dict]:
    """The run plan with every study chapter pointed at one's own dataset.

    Parameters
    ----------
    plan : list of dict
        From :func:`craving_circuits.book.execute.load_plan` (its presets filled).
    bids_dir, fmriprep_dir, aslprep_dir : path
        The dataset; the folders that are not given are left to the notebooks'
        defaults.
    null_preset : str
        The preset that the plan's null runs use (they stay simulated).

    Returns
    -------
    plan : list of dict
        New entries: an entry whose notebook analyses a study gets ``own_data``
        (the folders, given to the notebook where it declares them); an entry
        simulated by nature (on ``null_preset``, or with ``simulation``
        parameters) is kept, without the needs and parameters that point at the
        results of an own-data run (it does not compare itself with one's own
        data). The others (calibration, ledger, appendix) are kept as they are.
    """
    folders = {"bids_dir": str(Path(bids_dir).resolve())}
    for key, value in (("fmriprep_dir", fmriprep_dir), ("aslprep_dir", aslprep_dir)):
        if value is not None:
            folders[key] = str(Path(value).resolve())
    if not Path(folders["bids_dir"]).is_dir():
        raise FileNotFoundError(f"BIDS folder not found: {bids_dir}. Pass the root of your BIDS dataset.")
    own = {
        e["name"]
        for e in plan
        if Path(e["notebook"]).stem in CHAPTER_INPUTS and not _simulated_by_nature(e, null_preset)
    }
    out = []
    for entry in plan:
        entry = {**entry, "parameters": dict(entry["parameters"]), "needs": list(entry["needs"])}
        if entry["name"] in own:
            entry["own_data"] = dict(folders)
            if entry["name"] == "data":  # the data chapter describes the dataset, not a simulation
                entry["title"] = "The dataset"
        elif Path(entry["notebook"]).stem in CHAPTER_INPUTS:
            entry["needs"] = [n for n in entry["needs"] if n not in own]
            entry["parameters"] = {
                k: v
                for k, v in entry["parameters"].items()
                if not (isinstance(v, str) and v.startswith("{results_dir}/") and v.split("/")[1] in own)
            }
        out.append(entry)
    return out


def skipped_page(path: str | Path, title: str, reason: str) -> Path:
    """Write the page of a chapter that was not run: its title and why (a valid notebook, no code).

    Parameters
    ----------
    path : path
        The executed notebook to write (``book/executed/<name>.ipynb``).
    title : str
    reason : str
        What was absent, from which folder (Markdown: file patterns and paths in backticks).

    Returns
    -------
    path : Path
    """
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            f"# {title}\n\nThis chapter was not run on this dataset: {reason}. "
            "Its analyses need these inputs; the other chapters ran on what the dataset holds."
        )
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.validate(nb)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path
