"""Does the drug change the craving effect? Double differences, interaction checks, evidence.

Data conventions
----------------
* Input is a long table of state contrasts, one row per participant, session
  and outcome: ``participant_id, group, drug, <by columns>, delta`` where
  ``delta`` is craving minus neutral in that session (Fisher z for the NAcc
  couplings from :func:`craving_circuits.cocaine.secondlevel.roi_state_differences`,
  VAS points for the ratings from
  :func:`craving_circuits.cocaine.ratings.rating_changes`).
* The drug contrast of a participant is the double difference
  ``dd = delta(NAC) - delta(placebo)``: positive when the craving rise is
  larger under NAC. In the crossover design each participant gives one, so the
  drug x state interaction within a group is a one-sample (paired) test of
  ``dd`` and the group x state x drug interaction a two-sample test of ``dd``
  between CUD and controls.
* Period. In the two-period crossover the craving rise may differ between the
  first and the second session whatever the drug (habituation to the films,
  familiarity with the scanner). The order of a participant's sessions is the
  natural order of their ``session_id`` labels (``ses-2`` before ``ses-10``);
  ``sequence`` is ``"NAC-placebo"`` (NAC first) or ``"placebo-NAC"``. Every drug
  contrast is adjusted for period by default: within a group it is the average
  of the two sequences' mean double differences (:func:`craving_circuits.stats.contrasts.crossover`),
  which a period effect does not bias even when the sequences are unequal
  (dropouts, exclusions); the plain mean of ``dd`` is biased by the period
  effect times the imbalance. :func:`period_tests` reports the period effect
  itself.
* Participants without both sessions' contrasts are listed in the exclusions,
  never dropped silently.
* Stacked replicates: a change table with a ``replicate`` column
  (:data:`~craving_circuits.io.schemas.REPLICATE`) holds several replicates of
  the study; every function here treats each replicate as its own study, all
  at once, and keeps the column in front of its tables. A contrast is tested
  when every replicate has the participants it needs.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from craving_circuits.io.schemas import EXCLUSION_COLUMNS, REPLICATE, RESULT_COLUMNS
from craving_circuits.stats.contrasts import (
    contrast_row,
    crossover,
    crossover_difference,
    crossover_period,
    replicate_ids,
    replicate_major,
    row_frame,
    stack_columns,
)
from craving_circuits.stats.equivalence import DEFAULT_PRIOR_SCALE, DRUG_SESOI_DZ, evidence_table

__all__ = [
    "DRUGS",
    "DRUG_TERMS",
    "drug_differences",
    "drug_samples",
    "drug_evidence",
    "period_tests",
    "session_order",
    "PERIOD_COLUMNS",
]

#: Columns of :func:`period_tests`.
PERIOD_COLUMNS = ["outcome", "group", *RESULT_COLUMNS, "df", "n"]

#: (active, reference)
DRUGS = ("NAC", "placebo")

#: The drug contrasts, within each group and between them.
DRUG_TERMS = ("drug x state | CUD", "drug x state | control", "group x state x drug")


def _natural_key(label: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(label))]


def session_order(session_ids) -> dict:
    """Rank (0, 1, ...) of each session label in natural order (``ses-2`` before ``ses-10``)."""
    labels = sorted(set(session_ids), key=_natural_key)
    return {label: rank for rank, label in enumerate(labels)}


def drug_differences(
    changes: pd.DataFrame, value: str = "delta", by=("target",), drugs=DRUGS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """NAC minus placebo of the craving - neutral change, per participant (and outcome).

    Parameters
    ----------
    changes : pandas.DataFrame
        ``participant_id, group, drug, *by, value``; one row per participant,
        drug and outcome.
    value : str
        The column holding the state contrast.
    by : sequence of str
        Columns naming the outcome (e.g. ``("target",)``; ``()`` for one).
    drugs : (str, str)
        ``(active, reference)``.

    Returns
    -------
    table : pandas.DataFrame
        ``participant_id, group, *by, <reference>, <active>, dd`` with
        ``dd = active - reference``, and ``sequence`` (``"<active>-<reference>"``
        when the active drug's session comes first) if ``changes`` has a
        ``session_id`` column.
    exclusions : pandas.DataFrame
        Participants (per outcome) lacking one of the two drugs, columns
        :data:`craving_circuits.io.schemas.EXCLUSION_COLUMNS`, stage ``"drug contrast"``.

    Raises
    ------
    ValueError
        If columns are missing, a drug is unknown, or a participant has two
        rows for the same drug and outcome.
    """
    by = list(by)
    needed = {"participant_id", "group", "drug", value, *by}
    missing = needed - set(changes.columns)
    if missing:
        raise ValueError(f"The change table lacks the column(s) {sorted(missing)}; it needs {sorted(needed)}.")
    active, reference = drugs
    unknown = set(changes["drug"].unique()) - {active, reference}
    if unknown:
        raise ValueError(f"Unknown drug label(s) {sorted(unknown)}; expected {active!r} and {reference!r}.")
    rep = [REPLICATE] if REPLICATE in changes.columns else []
    keys = [*rep, "participant_id", "group", *by]
    counts = changes.groupby(keys + ["drug"], dropna=False).size()
    if (counts > 1).any():
        raise ValueError(
            f"Several rows per participant, drug and outcome, e.g. {counts[counts > 1].index[0]}; "
            "combine sessions of the same drug first."
        )
    # groupby/unstack keeps only combinations that occur (pivot_table(dropna=False) would add
    # every participant x group x outcome combination)
    wide = changes.groupby(keys + ["drug"], sort=True)[value].first().unstack("drug").reset_index()
    wide.columns.name = None
    for drug in drugs:
        if drug not in wide:
            wide[drug] = np.nan
    lacking = wide[[active, reference]].isna().any(axis=1)
    exclusions = pd.DataFrame(
        [
            {
                **{r: row[r] for r in rep},
                "participant_id": row["participant_id"],
                "session_id": "",
                "state": "",
                "stage": "drug contrast",
                "file": "",
                "reason": "no craving - neutral change under "
                + " and ".join(d for d in drugs if pd.isna(row[d]))
                + (f" ({', '.join(str(row[b]) for b in by)})" if by else ""),
            }
            for _, row in wide[lacking].iterrows()
        ],
        columns=rep + EXCLUSION_COLUMNS,
    )
    table = wide[~lacking].copy()
    table["dd"] = table[active] - table[reference]
    columns = keys + [reference, active, "dd"]
    if "session_id" in changes and len(table):
        person = [*rep, "participant_id"]
        sessions = changes.groupby(person + ["drug"])["session_id"].first().unstack("drug")
        same = sessions[active] == sessions[reference]
        if same.any():
            raise ValueError(
                f"{same[same].index[0]} took {active} and {reference} in the same session "
                f"({sessions.loc[same[same].index[0], active]}); each drug has its own session in a crossover."
            )
        rank = session_order(changes["session_id"].unique())
        first = sessions[active].map(rank) < sessions[reference].map(rank)
        order = pd.Series(
            np.where(first, f"{active}-{reference}", f"{reference}-{active}"), index=sessions.index, name="sequence"
        )
        index = pd.MultiIndex.from_frame(table[person]) if rep else table["participant_id"]
        table["sequence"] = order.reindex(index).to_numpy()
        columns.append("sequence")
    return table[columns].reset_index(drop=True), exclusions


def _by_sequence(sub: pd.DataFrame, drugs, replicates=None) -> tuple[np.ndarray, np.ndarray]:
    """``dd`` of the two sequences (active first, then second): 1-D, or NaN-padded stacks of ``replicates``."""
    active, reference = drugs
    first = sub[sub["sequence"] == f"{active}-{reference}"]
    second = sub[sub["sequence"] == f"{reference}-{active}"]
    return stack_columns(first, ["dd"], replicates)[0], stack_columns(second, ["dd"], replicates)[0]


def _sizes(values: np.ndarray) -> np.ndarray:
    """Values per replicate (one entry for 1-D values)."""
    return np.isfinite(np.atleast_2d(values)).sum(axis=1)


def _group_counts(sub: pd.DataFrame, group: str, replicates) -> np.ndarray:
    """Participants of a group, per replicate (one entry without replicates)."""
    rows = sub[sub["group"] == group]
    if replicates is None:
        return np.array([len(rows)])
    return rows.groupby(REPLICATE).size().reindex(replicates, fill_value=0).to_numpy()


def _present(sub: pd.DataFrame, groups, replicates) -> list[str]:
    """Groups with 3 or more participants; an error when replicates disagree."""
    present = []
    for g in groups:
        enough = _group_counts(sub, g, replicates) >= 3
        if enough.all():
            present.append(g)
        elif enough.any():
            raise ValueError(
                f"{g} has 3 or more participants in some replicates and not in others; analyse them separately."
            )
    return present


def _check_sequences(table: pd.DataFrame, drugs, groups, what: str, replicates=None) -> None:
    if "sequence" not in table:
        raise ValueError(
            f"The {what} need the session order to adjust for period: build them with drug_differences from a "
            "change table with session_id, or pass period=False to test without the adjustment."
        )
    known = {f"{drugs[0]}-{drugs[1]}", f"{drugs[1]}-{drugs[0]}"}
    unknown = set(table["sequence"].dropna().unique()) - known
    if unknown or table["sequence"].isna().any():
        raise ValueError(
            f"The sequence column holds {sorted(unknown) or 'missing values'}; each participant's sequence must be "
            f"one of {sorted(known)} (from drug_differences)."
        )
    for group in groups:
        sub = table[table["group"] == group]
        if sub.empty:
            continue
        first, second = (_sizes(v) for v in _by_sequence(sub, drugs, replicates))
        bad = (np.minimum(first, second) < 1) | (np.maximum(first, second) < 2)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{group}: {first[i]} participant(s) took {drugs[0]} first and {second[i]} took it second; "
                "the period adjustment needs both orders (and 3 or more participants). With a single order the "
                "drug effect cannot be told apart from the period effect; pass period=False only if a period "
                "effect can be ruled out."
            )


def drug_samples(
    table: pd.DataFrame,
    by: str | None = "target",
    groups=("CUD", "control"),
    name: str | None = None,
    period: bool = True,
    drugs=DRUGS,
) -> dict:
    """The samples of every drug contrast, named by term.

    Per outcome: the drug effect of each group (``"drug x state | <group>
    (<outcome>)"``) and, with two groups, its difference between them
    (``"group x state x drug (<outcome>)"``). Groups with fewer than 3
    participants are skipped.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`drug_differences`.
    by : str or None
        The outcome column (None: the table holds one outcome).
    groups : sequence of str
        One or two group labels; the two-sample contrast is first minus second.
    name : str, optional
        The outcome's name when ``by`` is None (no suffix in the terms without it).
    period : bool
        Adjust for period (default): each group's effect is a
        :func:`craving_circuits.stats.contrasts.crossover` of its two sequences
        and the group difference a
        :func:`craving_circuits.stats.contrasts.crossover_difference`. Without:
        the double differences themselves (one-sample, and Welch's two-sample
        test between groups).
    drugs : (str, str)
        ``(active, reference)``, naming the sequences.

    Returns
    -------
    samples : dict of term -> CellContrast, array (n,) or (array (n1,), array (n2,))
        The input of :func:`craving_circuits.stats.equivalence.evidence_table`;
        with stacked replicates, stacks (n_replicates, n_max) in the order of
        the sorted replicate labels.

    Raises
    ------
    ValueError
        With ``period=True``, if the table has no ``sequence`` or a group has
        only one order.
    """
    replicates = replicate_ids(table)
    outcomes = [(name, table)] if by is None else list(table.groupby(by, sort=False))
    samples = {}
    for outcome, sub in outcomes:
        suffix = f" ({outcome})" if outcome is not None else ""
        present = _present(sub, groups, replicates)
        if period:
            _check_sequences(sub, drugs, present, "double differences", replicates)
        values = {}
        for g in present:
            part = sub[sub["group"] == g]
            term = f"drug x state | {g}{suffix}"
            if period:
                values[g] = _by_sequence(part, drugs, replicates)
                samples[term] = crossover(*values[g], label=term)
            else:
                values[g] = stack_columns(part, ["dd"], replicates)[0]
                samples[term] = values[g]
        if len(groups) == 2 and len(present) == 2:
            term = f"group x state x drug{suffix}"
            pair = (values[groups[0]], values[groups[1]])
            samples[term] = crossover_difference(*pair, label=term) if period else pair
    if not samples:
        raise ValueError("No group has 3 or more participants with both drug contrasts; nothing to test.")
    return samples


def period_tests(
    table: pd.DataFrame,
    by: str | None = "target",
    groups=("CUD", "control"),
    name: str = "",
    alpha: float = 0.05,
    drugs=DRUGS,
) -> pd.DataFrame:
    """The period effect on the craving rise: second session minus first, whatever the drug.

    Half the difference of the two sequences' mean double differences
    (:func:`craving_circuits.stats.contrasts.crossover_period`); negative when
    the rise habituates.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`drug_differences` (with ``sequence``).
    by, groups, drugs
        See :func:`drug_samples`.
    name : str
        The outcome's name when ``by`` is None.
    alpha : float

    Returns
    -------
    periods : pandas.DataFrame
        Columns :data:`PERIOD_COLUMNS`; ``term`` is ``"period | <group>"``.
    """
    replicates = replicate_ids(table)
    outcomes = [(name, table)] if by is None else list(table.groupby(by, sort=False))
    frames = []
    for outcome, sub in outcomes:
        present = _present(sub, groups, replicates)
        _check_sequences(sub, drugs, present, "double differences", replicates)
        for g in present:
            first, second = _by_sequence(sub[sub["group"] == g], drugs, replicates)
            term = f"period | {g}"
            row = contrast_row(term, crossover_period(first, second, label=term), alpha)
            frames.append(row_frame({"outcome": outcome, "group": g, **row}, replicates, PERIOD_COLUMNS))
    columns = PERIOD_COLUMNS if replicates is None else [REPLICATE, *PERIOD_COLUMNS]
    if not frames:
        return pd.DataFrame(columns=columns)
    return replicate_major(pd.concat(frames, ignore_index=True))[columns]


def drug_evidence(
    table: pd.DataFrame,
    by: str | None = "target",
    sesoi_dz: float = DRUG_SESOI_DZ,
    alpha: float = 0.05,
    r: float = DEFAULT_PRIOR_SCALE,
    power: float = 0.8,
    groups=("CUD", "control"),
    name: str | None = None,
    period: bool = True,
) -> pd.DataFrame:
    """Difference, equivalence, Bayes factor and sensitivity for every drug contrast.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`drug_differences`.
    by, groups, name, period
        See :func:`drug_samples`.
    sesoi_dz, alpha, r, power
        See :func:`craving_circuits.stats.equivalence.evidence_table`; with the
        period adjustment the SESOI is in units of the within-sequence SD of
        the double differences.

    Returns
    -------
    evidence : pandas.DataFrame
        The columns of :data:`craving_circuits.stats.equivalence.EVIDENCE_COLUMNS`
        plus ``outcome`` and ``contrast`` (``"drug x state | <group>"`` or
        ``"group x state x drug"``), one row per term of :func:`drug_samples`.
    """
    samples = drug_samples(table, by, groups, name, period=period)
    evidence = evidence_table(
        samples, sesoi_dz=sesoi_dz, alpha=alpha, r=r, power=power, replicates=replicate_ids(table)
    )
    parts = evidence["term"].str.extract(r"^(?P<contrast>.+?)(?: \((?P<outcome>[^()]*)\))?$")
    evidence["outcome"] = parts["outcome"].fillna("").to_numpy()
    evidence["contrast"] = parts["contrast"].to_numpy()
    return replicate_major(evidence)
