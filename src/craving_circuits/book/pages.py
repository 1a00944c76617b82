"""Small pieces of the chapter pages: the data banner, runs side by side, and the tables against the truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from myst_nb import glue

from craving_circuits.baclofen.chapters import coverage_note
from craving_circuits.book.display import show_table

__all__ = [
    "side_by_side",
    "study_banner",
    "baclofen_banner",
    "show_coverage",
    "against_truth",
    "NO_TRUTH",
    "glue_values",
    "glue_table",
]

#: What a recovered-vs-planted section says on data without a ground truth.
NO_TRUTH = (
    "Real data carry no truth: nothing was planted in this dataset, so there is nothing to recover and no "
    "planted value to compare with. The estimates and verdicts above stand on their own; how often each test "
    "finds an effect of a given size, and how often it fires when there is none, is the subject of the "
    "calibration chapter, on simulated studies."
)


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
        return (
            f"**Data**: the BIDS dataset at `{study.bids_dir}` (no ground truth: real data carry no planted "
            "truth, and the sections that compare with it say so)."
        )
    p = truth["parameters"]
    planted = [e["effect"] for e in truth["effects"] if e["present"]]
    what = "every planted effect is zero" if not planted else f"{len(planted)} planted effects"
    return (
        f"**Data**: simulated study, preset `{p['preset']}` (seed {p['seed']}; {p['n_cud']} CUD, "
        f"{p['n_control']} controls; {p['n_volumes']} volumes, TR {p['repetition_time']} s, "
        f"{p['voxel_size_mm']} mm voxels); {what}."
    )


def baclofen_banner(root, truth: dict | None) -> str:
    """One Markdown line saying which baclofen study a notebook analysed, and whether anything was planted.

    Parameters
    ----------
    root : path
        The study's BIDS root.
    truth : dict or None
        Its ground truth (:func:`craving_circuits.verdict.planted.load_ground_truth`); None for real data.
    """
    if truth is None:
        return f"**Data**: the BIDS dataset at `{root}` (no ground truth: planted columns stay empty)."
    p = truth["parameters"]
    planted = [e["effect"] for e in truth["effects"] if e["present"]]
    effects = truth["effects"]
    if not planted:
        what = "every planted effect is zero, so any effect reported below is a false positive"
    elif len(planted) == len(effects):
        what = f"all {len(effects)} effects planted"
    else:
        what = (
            f"{len(planted)} of {len(effects)} effects planted ({', '.join(f'`{e}`' for e in planted)}); the others "
            "are zero, so an effect found there is a false positive"
        )
    return (
        f"**Data**: simulated baclofen study `{root}`, preset `{p['preset']}` (seed {p['seed']}; "
        f"{p['n_baclofen']} baclofen, {p['n_placebo']} placebo; {p['voxel_size_mm']} mm voxels); {what}."
    )


def show_coverage(coverage: pd.DataFrame) -> None:
    """Show the CBF chapter's coverage: the sentence of :func:`~craving_circuits.baclofen.chapters.coverage_note`,
    then, when some run lacks part of the mask, the loss per run (voxels and percentage of the mask)."""
    display(Markdown(coverage_note(coverage)))
    if not coverage.empty:
        display(coverage.drop(columns="file").round(2))


def glue_values(values: dict) -> dict:
    """Glue every value of ``values`` under its key for the page's prose (``{glue:text}`key```), hidden.

    Returns the values (numpy scalars as Python numbers), so a cell shows what the prose will say.
    """
    plain = {key: value.item() if isinstance(value, np.generic) else value for key, value in values.items()}
    for key, value in plain.items():
        glue(key, value, display=False)
    return plain


def against_truth(
    table: pd.DataFrame | None,
    truth: dict | bool | None = True,
    columns=None,
    tsv_name: str | None = None,
    empty: str = "The table is empty.",
):
    """A table that compares with the planted truth, or on data without one, a sentence saying there is none.

    Parameters
    ----------
    table : pandas.DataFrame or None
        A recovered-vs-planted table (or any table about the simulation's
        truth); None where it cannot be made for want of a truth (e.g.
        :func:`craving_circuits.verdict.ledger.recovery_table`).
    truth : dict or None
        From :func:`craving_circuits.verdict.planted.load_ground_truth` (None: real data).
    columns, tsv_name, empty
        As for :func:`craving_circuits.book.display.show_table`.

    Returns
    -------
    view : IPython.display.HTML or IPython.display.Markdown
        The curated table with a truth; :data:`NO_TRUTH` as Markdown without one.
    """
    if truth is None or table is None:
        return Markdown(NO_TRUTH)
    return show_table(table, columns=columns, tsv_name=tsv_name, empty=empty)


def glue_table(key: str, table: pd.DataFrame, tsv_name: str | None = None):
    """Glue ``table``'s curated view for another page to paste, hidden, and return the view to show here.

    Another page pastes it with the ``glue`` directive and its ``:doc:`` option
    naming this notebook (the landing page shows the ledger's overview so).
    The view is :func:`craving_circuits.book.display.show_table`'s.
    """
    view = show_table(table, columns=list(table.columns), tsv_name=tsv_name)  # the table's own order
    glue(key, view, display=False)
    return view
