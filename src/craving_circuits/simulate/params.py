"""Named parameter sets (presets) for the simulated studies.

A study is simulated from a frozen dataclass of parameters. Presets are named
dictionaries of overrides of the dataclass defaults; a user picks a preset and
may override any field by name. Unknown presets, unknown fields and values out
of range are refused with a :class:`ValueError` that lists what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from craving_circuits.io.files import read_json

__all__ = ["resolve_params", "params_to_dict", "describe_params", "claim_output_folder"]

P = TypeVar("P")


def resolve_params(
    cls: type[P], presets: Mapping[str, Mapping[str, Any]], preset: str, overrides: Mapping[str, Any] | None = None
) -> P:
    """Build parameters from a preset name plus field overrides.

    Parameters
    ----------
    cls : dataclass type
    presets : mapping of preset name to field overrides
    preset : str
        One of ``presets``.
    overrides : mapping, optional
        Field values that replace the preset's.

    Returns
    -------
    params : instance of ``cls``

    Raises
    ------
    ValueError
        For an unknown preset or field, or a value the dataclass rejects.
    """
    if preset not in presets:
        raise ValueError(f"Unknown preset {preset!r}; choose one of: {', '.join(presets)}.")
    names = {f.name for f in dataclasses.fields(cls)}
    values = dict(presets[preset])
    for key, value in (overrides or {}).items():
        if key not in names:
            raise ValueError(f"Unknown simulation parameter {key!r}; valid parameters are: {', '.join(sorted(names))}.")
        values[key] = value
    values["preset"] = preset
    return cls(**values)


def params_to_dict(params) -> dict[str, Any]:
    """Plain dictionary of a parameter dataclass (JSON-serialisable values)."""
    return dataclasses.asdict(params)


def describe_params(cls) -> list[dict[str, Any]]:
    """One row per field: name, default and the help text from the field metadata."""
    return [
        {"parameter": f.name, "default": f.default, "description": f.metadata.get("help", "")}
        for f in dataclasses.fields(cls)
    ]


def check_range(name: str, value, low=None, high=None, integer: bool = False) -> None:
    """Raise ValueError unless ``low <= value <= high`` (and whole when ``integer``)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"Parameter {name} must be a number, got {value!r}.") from None
    if isinstance(value, bool) or not np.isfinite(number):
        raise ValueError(f"Parameter {name} must be a finite number, got {value!r}.")
    if integer and not number.is_integer():
        raise ValueError(f"Parameter {name} must be a whole number, got {value!r}.")
    if low is not None and value < low:
        raise ValueError(f"Parameter {name} must be at least {low}, got {value!r}.")
    if high is not None and value > high:
        raise ValueError(f"Parameter {name} must be at most {high}, got {value!r}.")


def _written_by(out, generator_name: str) -> bool:

    path = Path(out) / "dataset_description.json"
    if not path.is_file():
        return False
    try:
        description = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    generated = description.get("GeneratedBy") if isinstance(description, dict) else None
    if not isinstance(generated, list):
        return False
    return any(isinstance(g, dict) and g.get("Name") == generator_name for g in generated)


def claim_output_folder(out, wanted: dict, generator_name: str, replace: bool) -> bool:
    """Make ``out`` ready for a simulated study, or say it already holds it.

    Parameters
    ----------
    out : pathlib.Path
        Dataset root.
    wanted : dict
        What ``derivatives/simulation/ground_truth.json`` must record (simulator
        version and parameters) for the study to count as done.
    generator_name : str
        The simulator's ``GeneratedBy`` name in ``dataset_description.json``.
    replace : bool
        Delete a study of this simulator with other parameters (or an
        unfinished one). Folders the simulator did not write are never deleted.

    Returns
    -------
    done : bool
        True if ``out`` already holds the complete wanted study (nothing to do);
        otherwise ``out`` now exists and is empty.

    Raises
    ------
    ValueError
        If ``out`` holds other data, or another study and ``replace`` is False.
    """

    truth_path = out / "derivatives" / "simulation" / "ground_truth.json"
    if truth_path.is_file():
        existing = read_json(truth_path)
        if {k: existing.get(k) for k in wanted} == wanted:
            return True
    if out.exists() and any(out.iterdir()):
        if not _written_by(out, generator_name):
            raise ValueError(
                f"{out} exists and is not a study written by this simulator; choose an empty or new folder."
            )
        if not replace:
            raise ValueError(
                f"{out} holds a simulated study with other parameters or an unfinished one; pass "
                "replace=True (command line: --replace) to rewrite it, or choose another folder."
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return False
