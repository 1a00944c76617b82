"""Named parameter sets (presets) for the simulated studies.

A study is simulated from a frozen dataclass of parameters. Presets are named
dictionaries of overrides of the dataclass defaults; a user picks a preset and
may override any field by name. Unknown presets, unknown fields and values out
of range are refused with a :class:`ValueError` that lists what is allowed.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, TypeVar

import numpy as np

__all__ = ["resolve_params", "params_to_dict", "describe_params"]

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
            raise ValueError(
                f"Unknown simulation parameter {key!r}; valid parameters are: {', '.join(sorted(names))}."
            )
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
