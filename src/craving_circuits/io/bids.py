"""BIDS naming shared by the simulators (which write files) and the analyses (which read them).

* :func:`bids_filename` builds a file name with its entities in BIDS order.
* :func:`run_files` gives the expected fMRIPrep outputs of one functional run;
  :func:`parse_entities` reads the entities of a file name and
  :func:`sibling_files` gives the outputs that go with a preprocessed BOLD
  file found on disk (whatever its ``acq-``, ``rec-``, ``dir-``, ``run-`` or
  ``echo-`` entities).
* :data:`SPACE` is the template space of every derivative the book reads and
  writes; :data:`DEFAULT_STATE_TASKS` maps the cocaine study's two resting
  states to their BIDS ``task`` labels (a notebook parameter; this is the
  default that the simulator writes).
* :class:`AslConstants` holds what a BIDS ``*_asl.json`` sidecar says about
  the labelling (post-labelling delay, labelling duration, background
  suppression) and the single-compartment constants of quantification.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "SPACE",
    "DEFAULT_STATE_TASKS",
    "ENTITY_ORDER",
    "RUN_ENTITIES",
    "bids_filename",
    "parse_entities",
    "run_label",
    "RunFiles",
    "run_files",
    "sibling_files",
    "AslConstants",
]

SPACE = "MNI152NLin2009cAsym"
DEFAULT_STATE_TASKS = {"neutral": "restneutral", "craving": "restcue"}
ENTITY_ORDER = ("sub", "ses", "task", "acq", "ce", "rec", "dir", "run", "echo", "space", "desc")
#: The entities that tell apart several runs of one task in one session (BIDS order).
RUN_ENTITIES = ("acq", "ce", "rec", "dir", "run", "echo")


def bids_filename(entities: dict[str, str], suffix: str, extension: str) -> str:
    """BIDS file name with entities in the standard order.

    >>> bids_filename({"sub": "01", "ses": "1", "task": "rest"}, "bold", ".nii.gz")
    'sub-01_ses-1_task-rest_bold.nii.gz'
    """
    unknown = set(entities) - set(ENTITY_ORDER)
    if unknown:
        raise ValueError(f"Unknown BIDS entities {sorted(unknown)}; known: {ENTITY_ORDER}.")
    parts = [f"{key}-{entities[key]}" for key in ENTITY_ORDER if entities.get(key) is not None]
    return "_".join(parts + [suffix]) + extension


def parse_entities(name: str) -> dict[str, str]:
    """The ``key-value`` entities of a BIDS file name, in their order (suffix and extension left out).

    >>> parse_entities("sub-01_ses-1_task-rest_run-2_desc-preproc_bold.nii.gz")
    {'sub': '01', 'ses': '1', 'task': 'rest', 'run': '2', 'desc': 'preproc'}
    """
    out = {}
    for part in Path(name).name.split("_"):
        key, sep, value = part.partition("-")
        if sep and key and "." not in key:
            out[key] = value.split(".")[0] if "." in value else value
    return out


def run_label(name: str) -> str:
    """The run-distinguishing entities of a file name (:data:`RUN_ENTITIES`), joined; ``""`` when it has none.

    >>> run_label("sub-01_ses-1_task-rest_acq-mb4_run-2_space-MNI_desc-preproc_bold.nii.gz")
    'acq-mb4_run-2'
    """
    entities = parse_entities(name)
    return "_".join(f"{key}-{entities[key]}" for key in RUN_ENTITIES if key in entities)


@dataclass(frozen=True)
class RunFiles:
    """The fMRIPrep outputs of one functional run."""

    bold: Path
    bold_json: Path
    mask: Path
    confounds: Path
    confounds_json: Path


def run_files(
    fmriprep_dir: str | Path, participant_id: str, session_id: str, task: str, space: str = SPACE
) -> RunFiles:
    """Expected paths of one run's fMRIPrep outputs.

    Parameters
    ----------
    fmriprep_dir : path
        The fMRIPrep derivatives folder (contains ``sub-*``).
    participant_id, session_id : str
        With their prefixes, e.g. ``"sub-01"`` and ``"ses-1"``.
    task : str
        BIDS task label, e.g. ``"restcue"``.
    """
    sub = participant_id.removeprefix("sub-")
    ses = session_id.removeprefix("ses-")
    func = Path(fmriprep_dir) / f"sub-{sub}" / f"ses-{ses}" / "func"
    base = {"sub": sub, "ses": ses, "task": task}
    spaced = {**base, "space": space}
    return RunFiles(
        bold=func / bids_filename({**spaced, "desc": "preproc"}, "bold", ".nii.gz"),
        bold_json=func / bids_filename({**spaced, "desc": "preproc"}, "bold", ".json"),
        mask=func / bids_filename({**spaced, "desc": "brain"}, "mask", ".nii.gz"),
        confounds=func / bids_filename({**base, "desc": "confounds"}, "timeseries", ".tsv"),
        confounds_json=func / bids_filename({**base, "desc": "confounds"}, "timeseries", ".json"),
    )


def sibling_files(bold: str | Path) -> RunFiles:
    """The fMRIPrep outputs that go with a preprocessed BOLD file found on disk.

    fMRIPrep names them after the BOLD file: the sidecar and the brain mask
    keep every entity, the confounds drop ``space-`` (and what follows) and the
    ``echo-`` entity (one confounds file per multi-echo run), as
    :func:`nilearn.interfaces.fmriprep.load_confounds` expects. The confounds
    are ``desc-confounds_timeseries.tsv``, or fMRIPrep 1.x's
    ``desc-confounds_regressors.tsv`` where only that one exists.

    Parameters
    ----------
    bold : path
        A ``*_desc-preproc_bold.nii.gz`` file.
    """
    bold = Path(bold)
    name = bold.name
    if not name.endswith("_desc-preproc_bold.nii.gz"):
        raise ValueError(f"{bold} is not an fMRIPrep preprocessed BOLD file (*_desc-preproc_bold.nii.gz).")
    stem = name.removesuffix("_desc-preproc_bold.nii.gz")
    raw = "_".join(p for p in stem.split("_space-")[0].split("_") if not p.startswith("echo-"))
    suffix = "timeseries"
    if not bold.with_name(f"{raw}_desc-confounds_timeseries.tsv").is_file():
        if bold.with_name(f"{raw}_desc-confounds_regressors.tsv").is_file():
            suffix = "regressors"  # fMRIPrep 1.x's name, which nilearn reads too
    return RunFiles(
        bold=bold,
        bold_json=bold.with_name(f"{stem}_desc-preproc_bold.json"),
        mask=bold.with_name(f"{stem}_desc-brain_mask.nii.gz"),
        confounds=bold.with_name(f"{raw}_desc-confounds_{suffix}.tsv"),
        confounds_json=bold.with_name(f"{raw}_desc-confounds_{suffix}.json"),
    )


@dataclass(frozen=True)
class AslConstants:
    """The constants of single-delay pCASL quantification.

    Attributes
    ----------
    post_labeling_delay : float
        PLD (s).
    labeling_duration : float
        τ (s).
    labeling_efficiency : float
        α before background suppression (0.85 for pCASL).
    blood_brain_partition : float
        λ (ml/g), 0.9.
    t1_blood : float
        T1 of arterial blood (s), 1.65 at 3 T.
    n_background_pulses : int
        Background-suppression inversion pulses (0 without suppression).
    background_pulse_efficiency : float
        η_BS, the fraction of label that survives one suppression pulse.
    """

    post_labeling_delay: float
    labeling_duration: float
    labeling_efficiency: float = 0.85
    blood_brain_partition: float = 0.9
    t1_blood: float = 1.65
    n_background_pulses: int = 0
    background_pulse_efficiency: float = 0.95

    @property
    def effective_efficiency(self) -> float:
        """α · η_BS ** n_pulses."""
        return self.labeling_efficiency * self.background_pulse_efficiency**self.n_background_pulses

    def __post_init__(self):
        for name in ("post_labeling_delay", "labeling_duration", "t1_blood", "blood_brain_partition"):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}.")
        for name in ("labeling_efficiency", "background_pulse_efficiency"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {value!r}.")
        if self.n_background_pulses < 0:
            raise ValueError(f"n_background_pulses must be >= 0, got {self.n_background_pulses}.")
