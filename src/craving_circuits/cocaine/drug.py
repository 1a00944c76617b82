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
* Participants without both sessions' contrasts are listed in the exclusions,
  never dropped silently.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from statsmodels.stats.anova import AnovaRM, anova_lm

from craving_circuits.io.schemas import DRUG_CHECK_COLUMNS as CHECK_COLUMNS
from craving_circuits.io.schemas import EXCLUSION_COLUMNS
from craving_circuits.stats.equivalence import DEFAULT_PRIOR_SCALE, evidence_table

__all__ = [
    "DRUGS",
    "DRUG_TERMS",
    "drug_differences",
    "drug_samples",
    "drug_evidence",
    "interaction_checks",
    "CHECK_COLUMNS",
]

#: (active, reference)
DRUGS = ("NAC", "placebo")

#: The drug contrasts of :func:`craving_circuits.stats.models.factorial_contrasts`.
DRUG_TERMS = ("drug x state | CUD", "drug x state | control", "group x state x drug")


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
        ``dd = active - reference``.
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
    unknown = set(changes["drug"]) - {active, reference}
    if unknown:
        raise ValueError(f"Unknown drug label(s) {sorted(unknown)}; expected {active!r} and {reference!r}.")
    keys = ["participant_id", "group", *by]
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
        columns=EXCLUSION_COLUMNS,
    )
    table = wide[~lacking].copy()
    table["dd"] = table[active] - table[reference]
    return table[keys + [reference, active, "dd"]].reset_index(drop=True), exclusions


def drug_samples(
    table: pd.DataFrame, by: str | None = "target", groups=("CUD", "control"), name: str | None = None
) -> dict:
    """The samples of every drug contrast, named by term.

    Per outcome: the double differences of each group (a one-sample test each:
    ``"drug x state | <group> (<outcome>)"``) and, with two groups, the pair of
    them (a two-sample test: ``"group x state x drug (<outcome>)"``). Groups
    with fewer than 3 participants are skipped.

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

    Returns
    -------
    samples : dict of term -> array (n,) or (array (n1,), array (n2,))
    """
    outcomes = [(name, table)] if by is None else list(table.groupby(by, sort=False))
    samples = {}
    for outcome, sub in outcomes:
        suffix = f" ({outcome})" if outcome is not None else ""
        values = {g: sub.loc[sub["group"] == g, "dd"].to_numpy(dtype=float) for g in groups}
        for g in groups:
            if values[g].size >= 3:
                samples[f"drug x state | {g}{suffix}"] = values[g]
        if len(groups) == 2 and all(values[g].size >= 3 for g in groups):
            samples[f"group x state x drug{suffix}"] = (values[groups[0]], values[groups[1]])
    if not samples:
        raise ValueError("No group has 3 or more participants with both drug contrasts; nothing to test.")
    return samples


def drug_evidence(
    table: pd.DataFrame,
    by: str | None = "target",
    sesoi_dz: float = 0.8,
    alpha: float = 0.05,
    r: float = DEFAULT_PRIOR_SCALE,
    power: float = 0.8,
    groups=("CUD", "control"),
    name: str | None = None,
) -> pd.DataFrame:
    """Difference, equivalence, Bayes factor and sensitivity for every drug contrast.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`drug_differences`.
    by, groups, name
        See :func:`drug_samples`.
    sesoi_dz, alpha, r, power
        See :func:`craving_circuits.stats.equivalence.evidence_table`.

    Returns
    -------
    evidence : pandas.DataFrame
        The columns of :data:`craving_circuits.stats.equivalence.EVIDENCE_COLUMNS`
        plus ``outcome`` and ``contrast`` (``"drug x state | <group>"`` or
        ``"group x state x drug"``), one row per term of :func:`drug_samples`.
    """
    samples = drug_samples(table, by, groups, name)
    evidence = evidence_table(samples, sesoi_dz=sesoi_dz, alpha=alpha, r=r, power=power)
    parts = evidence["term"].str.extract(r"^(?P<contrast>.+?)(?: \((?P<outcome>[^()]*)\))?$")
    evidence["outcome"] = parts["outcome"].fillna("").to_numpy()
    evidence["contrast"] = parts["contrast"].to_numpy()
    return evidence


def interaction_checks(
    roi: pd.DataFrame, strategy: str, contrasts: pd.DataFrame, group: str = "CUD", other: str = "control"
) -> pd.DataFrame:
    """The mixed model's drug interactions next to classical ANOVAs of the same table.

    For each target ROI:

    * ``drug x state | <group>``: the mixed-model contrast (Wald z, reported as
      chi-square with 1 df) against statsmodels' ``AnovaRM`` (state x drug
      within participants of ``group`` with complete data, F of the
      interaction) and the paired t-test of the double differences (t squared,
      equal to the ANOVA F);
    * ``group x state x drug``: the mixed-model contrast against the mixed
      ANOVA's three-way interaction, computed as the one-way ANOVA of the double
      differences between groups (statsmodels OLS; with two groups and complete
      data this F equals the split-plot F).

    The estimates agree exactly on complete, balanced data; the p-values differ
    only through the error term (the random-intercept model pools its residual
    variance over all within-participant effects, the ANOVA uses the
    interaction's own error).

    Parameters
    ----------
    roi : pandas.DataFrame
        Long ROI table (:data:`craving_circuits.io.schemas.ROI_COLUMNS`).
    strategy : str
        Strategy name whose values are used.
    contrasts : pandas.DataFrame
        ``RoiModels.contrasts`` of the same table (``target, term, estimate,
        se, p``).

    Returns
    -------
    checks : pandas.DataFrame
        Columns :data:`CHECK_COLUMNS`.
    """

    data = roi[roi["strategy"] == strategy]
    if data.empty:
        raise ValueError(f"No ROI values for strategy {strategy!r}; available: {sorted(roi['strategy'].unique())}.")
    rows = []
    for target, sub in data.groupby("target", sort=False):
        cells = sub.groupby(["participant_id", "group", "drug", "state"], as_index=False)["fisher_z"].mean()
        n_cells = cells.groupby("participant_id")["fisher_z"].transform("size")
        complete = cells[n_cells == 4]
        mm = contrasts[contrasts["target"] == target].set_index("term")
        for term in (f"drug x state | {group}", "group x state x drug"):
            if term in mm.index:
                z = mm.loc[term, "estimate"] / mm.loc[term, "se"]
                rows.append(
                    {
                        "target": target,
                        "term": term,
                        "method": "mixed model (Wald chi2)",
                        "estimate": mm.loc[term, "estimate"],
                        "statistic": z**2,
                        "df_num": 1.0,
                        "df_den": np.inf,
                        "p": mm.loc[term, "p"],
                    }
                )
        within = complete[complete["group"] == group]
        if within["participant_id"].nunique() >= 3:
            fit = AnovaRM(within, depvar="fisher_z", subject="participant_id", within=["state", "drug"]).fit()
            line = fit.anova_table.loc["state:drug"]
            wide = within.pivot_table(index="participant_id", columns=["drug", "state"], values="fisher_z")
            dd = (wide[("NAC", "craving")] - wide[("NAC", "neutral")]) - (
                wide[("placebo", "craving")] - wide[("placebo", "neutral")]
            )
            rows.append(
                {
                    "target": target,
                    "term": f"drug x state | {group}",
                    "method": "RM ANOVA (AnovaRM F)",
                    "estimate": float(dd.mean()),
                    "statistic": float(line["F Value"]),
                    "df_num": float(line["Num DF"]),
                    "df_den": float(line["Den DF"]),
                    "p": float(line["Pr > F"]),
                }
            )
        both = complete[complete["group"].isin([group, other])]
        wide = both.pivot_table(
            index=["participant_id", "group"], columns=["drug", "state"], values="fisher_z"
        ).reset_index()
        if len(wide) and wide["group"].nunique() == 2:
            dd = (wide[("NAC", "craving")] - wide[("NAC", "neutral")]) - (
                wide[("placebo", "craving")] - wide[("placebo", "neutral")]
            )
            frame = pd.DataFrame({"dd": dd.to_numpy(), "group": wide["group"].to_numpy()})
            table = anova_lm(smf.ols("dd ~ C(group)", data=frame).fit())
            means = frame.groupby("group")["dd"].mean()
            rows.append(
                {
                    "target": target,
                    "term": "group x state x drug",
                    "method": "mixed ANOVA (F)",
                    "estimate": float(means[group] - means[other]),
                    "statistic": float(table.loc["C(group)", "F"]),
                    "df_num": float(table.loc["C(group)", "df"]),
                    "df_den": float(table.loc["Residual", "df"]),
                    "p": float(table.loc["C(group)", "PR(>F)"]),
                }
            )
    return pd.DataFrame(rows, columns=CHECK_COLUMNS)
