"""Craving ratings: the cue-induced change and how it differs between groups and drugs.

Data conventions
----------------
Ratings are a long table with one row per participant, session and state:
``participant_id, group, session_id, drug, state, craving_vas`` (visual
analogue scale 0-100; states ``neutral`` and ``craving``; drugs ``placebo`` and
``NAC``). The cue-induced change is ``craving - neutral`` within a session.
"""

from __future__ import annotations

import pandas as pd
from scipy import stats

from craving_circuits.cocaine.drug import drug_differences, drug_samples
from craving_circuits.io.schemas import RESULT_COLUMNS
from craving_circuits.stats.contrasts import contrast_row, one_sample

__all__ = ["rating_changes", "rating_tests", "RESULT_COLUMNS"]


def rating_changes(ratings: pd.DataFrame) -> pd.DataFrame:
    """Craving - neutral rating per participant and session.

    Returns
    -------
    changes : pandas.DataFrame
        ``participant_id, group, session_id, drug, neutral, craving, delta``.

    Raises
    ------
    ValueError
        If a participant-session lacks one of the two states or has it twice.
    """
    counts = ratings.groupby(["participant_id", "session_id", "state"]).size()
    if (counts > 1).any():
        raise ValueError(f"Duplicate ratings for {counts[counts > 1].index.tolist()}; keep one per state.")
    wide = ratings.pivot_table(
        index=["participant_id", "group", "session_id", "drug"], columns="state", values="craving_vas", aggfunc="first"
    ).reset_index()
    wide.columns.name = None
    missing = wide[wide[["neutral", "craving"]].isna().any(axis=1)]
    if len(missing):
        raise ValueError(
            f"{len(missing)} session(s) lack a neutral or a craving rating, e.g. "
            f"{missing[['participant_id', 'session_id']].iloc[0].tolist()}; complete or remove them."
        )
    wide["delta"] = wide["craving"] - wide["neutral"]
    return wide


def _row(term: str, result, estimate: float, alpha: float) -> dict:
    ci = result.confidence_interval(1 - alpha)
    se = (ci.high - ci.low) / (2 * stats.t.ppf(1 - alpha / 2, result.df))
    return {
        "term": term,
        "estimate": float(estimate),
        "se": float(se),
        "ci_low": float(ci.low),
        "ci_high": float(ci.high),
        "p": float(result.pvalue),
    }


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
        Columns :data:`RESULT_COLUMNS`.
    """
    changes = rating_changes(ratings)
    per_person = changes.groupby(["participant_id", "group"], as_index=False)["delta"].mean()
    rows = []
    for group in ("CUD", "control"):
        d = per_person.loc[per_person["group"] == group, "delta"].to_numpy()
        if len(d) >= 2:
            rows.append(_row(f"craving - neutral | {group}", stats.ttest_1samp(d, 0.0), d.mean(), alpha))
    cud = per_person.loc[per_person["group"] == "CUD", "delta"].to_numpy()
    ctl = per_person.loc[per_person["group"] == "control", "delta"].to_numpy()
    if len(cud) >= 2 and len(ctl) >= 2:
        rows.append(_row("group x state", stats.ttest_ind(cud, ctl, equal_var=False), cud.mean() - ctl.mean(), alpha))
    dd, _ = drug_differences(changes[changes["group"] == "CUD"], by=())
    if len(dd) >= 3:
        term = "drug x state | CUD"
        sample = drug_samples(dd, by=None, groups=("CUD",), period=period)[term]
        row = contrast_row(term, sample if period else one_sample(sample), alpha)
        rows.append({column: row[column] for column in RESULT_COLUMNS})
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)
