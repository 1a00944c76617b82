"""Small pieces of the chapter pages: the data banner and runs side by side."""

from __future__ import annotations

import numpy as np
import pandas as pd
from myst_nb import glue

__all__ = ["side_by_side", "study_banner", "glue_values", "glue_table"]


def side_by_side(tables: dict[str, pd.DataFrame], on: str = "term", columns=("estimate", "p")) -> pd.DataFrame:
    """Tables of several runs next to each other, matched on one column.

    Parameters
    ----------
    tables : dict of label -> DataFrame
        Each with the column ``on`` (unique) and ``columns``.
    on : str
    columns : sequence of str

    Returns
    -------
    wide : pandas.DataFrame
        Indexed by ``on`` (in the order of first appearance), columns
        ``(label, column)``; a row missing from a run is empty there.
    """
    parts = []
    for label, table in tables.items():
        missing = ({on} | set(columns)) - set(table.columns)
        if missing:
            raise ValueError(f"Table {label!r} lacks the column(s) {sorted(missing)}.")
        if table[on].duplicated().any():
            raise ValueError(f"Table {label!r} repeats values of {on!r}; they must be unique to match rows.")
        part = table.set_index(on)[list(columns)]
        part.columns = pd.MultiIndex.from_product([[label], list(columns)])
        parts.append(part)
    order = list(dict.fromkeys(v for t in tables.values() for v in t[on]))
    return pd.concat(parts, axis=1).reindex(order)


def study_banner(study, truth: dict | None) -> str:
    """One Markdown line saying which data a notebook analysed."""
    if truth is None:
        return f"**Data**: the BIDS dataset at `{study.bids_dir}` (no ground truth: planted columns stay empty)."
    p = truth["parameters"]
    planted = [e["effect"] for e in truth["effects"] if e["present"]]
    what = "every planted effect is zero" if not planted else f"{len(planted)} planted effects"
    return (
        f"**Data**: simulated study, preset `{p['preset']}` (seed {p['seed']}; {p['n_cud']} CUD, "
        f"{p['n_control']} controls; {p['n_volumes']} volumes, TR {p['repetition_time']} s, "
        f"{p['voxel_size_mm']} mm voxels); {what}."
    )


def glue_values(values: dict) -> dict:
    """Glue every value of ``values`` under its key for the page's prose (``{glue:text}`key```), hidden.

    Returns the values (numpy scalars as Python numbers), so a cell shows what the prose will say.
    """
    plain = {key: value.item() if isinstance(value, np.generic) else value for key, value in values.items()}
    for key, value in plain.items():
        glue(key, value, display=False)
    return plain


def glue_table(key: str, table: pd.DataFrame) -> pd.DataFrame:
    """Glue ``table`` (without its index) for another page to paste, hidden, and return it to show here.

    Another page pastes it with the ``glue`` directive and its ``:doc:`` option
    naming this notebook (the landing page shows the ledger's overview so).
    """
    glue(key, table.style.hide(axis="index"), display=False)
    return table
