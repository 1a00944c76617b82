"""Craving ratings: the cue-induced change and how it differs between groups and drugs.

Data conventions
----------------
Ratings are a long table with one row per participant, session and state:
``participant_id, group, session_id, drug, state, craving_vas`` (visual
analogue scale 0-100; states ``neutral`` and ``craving``; drugs ``placebo`` and
``NAC``). The cue-induced change is ``craving - neutral`` within a session.
With a ``replicate`` column (:data:`~craving_circuits.io.schemas.REPLICATE`)
the table holds stacked replicates of the study, each analysed as alone, all
at once; the tables keep the column in front.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from craving_circuits.cocaine.drug import drug_differences, drug_samples
from craving_circuits.io.schemas import EXCLUSION_COLUMNS, REPLICATE, RESULT_COLUMNS
from craving_circuits.stats.contrasts import (
    contrast_row,
    one_sample,
    replicate_ids,
    replicate_major,
    row_frame,
    stack_columns,
    two_sample,
)

__all__ = ["rating_changes", "rating_exclusions", "rating_tests", "RESULT_COLUMNS"]


def rating_exclusions(ratings: pd.DataFrame) -> pd.DataFrame:
    """Sessions left out of the rating analyses because a rating is missing.

    A session is left out when its neutral or its craving rating is missing
    (``n/a`` or an empty cell in the ratings file, or no row for the state).

    Returns
    -------
    exclusions : pandas.DataFrame
        Columns :data:`~craving_circuits.io.schemas.EXCLUSION_COLUMNS` (after
        ``replicate`` for stacked replicates), stage ``"ratings"``, one row per
        session and missing state.
    """
    rep = [REPLICATE] if REPLICATE in ratings.columns else []
    keys = [*rep, "participant_id", "session_id"]
    sessions = ratings[keys].drop_duplicates()
    rows = []
    for state in ("neutral", "craving"):
        rated = ratings.loc[(ratings["state"] == state) & ratings["craving_vas"].notna(), keys].drop_duplicates()
        lacking = sessions.merge(rated, how="left", indicator=True).query("_merge == 'left_only'")[keys]
        rows.append(
            lacking.assign(
                state=state,
                stage="ratings",
                file="",
                reason=f"{state} craving rating missing: session left out of the rating analyses",
            )
        )
    columns = rep + EXCLUSION_COLUMNS
    table = pd.concat(rows, ignore_index=True)
    return table.sort_values(keys + ["state"], ignore_index=True)[columns]


def rating_changes(ratings: pd.DataFrame) -> pd.DataFrame:
    """Craving - neutral rating per participant and session.

    Sessions lacking one of the two ratings (missing value or no row) are
    left out; :func:`rating_exclusions` lists them.

    Returns
    -------
    changes : pandas.DataFrame
        ``participant_id, group, session_id, drug, neutral, craving, delta``.

    Raises
    ------
    ValueError
        If a participant-session has a state twice.
    """
    rep = [REPLICATE] if REPLICATE in ratings.columns else []
    counts = ratings.groupby([*rep, "participant_id", "session_id", "state"]).size()
    if (counts > 1).any():
        raise ValueError(f"Duplicate ratings for {counts[counts > 1].index.tolist()}; keep one per state.")
    wide = ratings.pivot_table(
        index=[*rep, "participant_id", "group", "session_id", "drug"],
        columns="state",
        values="craving_vas",
        aggfunc="first",
    ).reset_index()
    wide.columns.name = None
    for state in ("neutral", "craving"):
        if state not in wide:
            wide[state] = np.nan
    wide = wide.dropna(subset=["neutral", "craving"]).reset_index(drop=True)
    wide["delta"] = wide["craving"] - wide["neutral"]
    return wide


def _enough(values: np.ndarray, size: int, what: str) -> bool:
    """Whether every replicate has ``size`` values or more; an error when only some have."""
    sizes = np.isfinite(np.atleast_2d(values)).sum(axis=1)
    if (sizes >= size).all():
        return True
    if (sizes >= size).any():
        raise ValueError(f"Some replicates have {size} or more {what} and others not; analyse them separately.")
    return False


def rating_tests(ratings: pd.DataFrame, alpha: float = 0.05, period: bool = True) -> pd.DataFrame:
    """t-tests of the cue-induced rating change.

    Rows: ``craving - neutral | CUD`` and ``| control`` (one-sample t of each
    participant's change averaged over sessions), ``group x state`` (Welch
    two-sample t, CUD minus control), ``drug x state | CUD`` (NAC minus placebo
    change, CUD participants with both sessions: adjusted for period as in
    :func:`craving_circuits.cocaine.drug.drug_samples`, or the paired t with
    ``period=False``).

    Returns
    -------
    table : pandas.DataFrame
        Columns :data:`RESULT_COLUMNS` (after ``replicate`` for stacked replicates).
    """
    changes = rating_changes(ratings)
    replicates = replicate_ids(changes)
    rep = [] if replicates is None else [REPLICATE]
    per_person = changes.groupby([*rep, "participant_id", "group"], as_index=False)["delta"].mean()
    by_group = {
        g: stack_columns(per_person[per_person["group"] == g], ["delta"], replicates)[0] for g in ("CUD", "control")
    }
    enough = {g: _enough(v, 2, f"{g} ratings") for g, v in by_group.items()}
    frames = []
    for group in ("CUD", "control"):
        if enough[group]:
            term = f"craving - neutral | {group}"
            frames.append(row_frame(contrast_row(term, one_sample(by_group[group], term), alpha), replicates))
    if enough["CUD"] and enough["control"]:
        contrast = two_sample(by_group["CUD"], by_group["control"], equal_var=False, label="group x state")
        frames.append(row_frame(contrast_row("group x state", contrast, alpha), replicates))
    dd, _ = drug_differences(changes[changes["group"] == "CUD"], by=())
    if len(dd) and _enough(stack_columns(dd, ["dd"], replicates)[0], 3, "CUD drug contrasts"):
        term = "drug x state | CUD"
        sample = drug_samples(dd, by=None, groups=("CUD",), period=period)[term]
        frames.append(row_frame(contrast_row(term, sample if period else one_sample(sample), alpha), replicates))
    columns = rep + RESULT_COLUMNS
    if not frames:
        return pd.DataFrame(columns=columns)
    return replicate_major(pd.concat(frames, ignore_index=True)[columns])
