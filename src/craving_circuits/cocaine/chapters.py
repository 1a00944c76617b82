"""The ROI-level statistics of the cocaine chapters, each chain written once.

Each function takes the tidy tables a chapter starts from and returns the
result tables it writes, by calling the chapter's steps in the chapter's
order. The notebook calls the same steps cell by cell (so a reader sees each
one); the claims registry (:mod:`craving_circuits.verdict.claims`) names these
functions as the tests of the claims; the calibration calls them on every
simulated replicate; and a test checks that the tables a notebook writes equal
what these functions return on the same input.

Data conventions
----------------
* ``fc_changes``: per-session craving - neutral Fisher z changes, from
  :func:`craving_circuits.cocaine.secondlevel.roi_state_differences`
  (``participant_id, group, session_id, drug, target, delta``, one strategy).
* ``mrs_table``: the long MRS table (:data:`~craving_circuits.io.schemas.MRS_COLUMNS`).
* ``participants``: ``participant_id, group`` and the clinical columns.
* ``drugs``: ``participant_id, session_id, drug``.
* ``ratings_table``: ``participant_id, session_id, drug, state, craving_vas``
  (and ``group``), as :func:`craving_circuits.cocaine.layout.read_craving_ratings`
  returns it.
* The returned dict maps a result table's name (the file the chapter writes,
  ``results/<run>/<name>.tsv``) to the table.
* Stacked replicates: when the input tables have a ``replicate`` column
  (:data:`~craving_circuits.io.schemas.REPLICATE`; the simulated studies of the
  calibration), every replicate goes through the chain at once and every
  returned table has the column in front, each replicate's rows equal to what
  the chain returns on that replicate alone (with the same Generator).
"""

from __future__ import annotations

import pandas as pd

from craving_circuits.cocaine import drug, glutamate, mrs, ratings, secondlevel
from craving_circuits.io.tables import combine_tables
from craving_circuits.stats.contrasts import (
    replicate_generators,
    replicate_ids,
    replicate_major,
    stack_columns,
    with_replicates,
)
from craving_circuits.stats.correlation import mean_change
from craving_circuits.stats.equivalence import DEFAULT_PRIOR_SCALE, DRUG_SESOI_DZ

__all__ = ["GLUTAMATE_TARGETS", "CLINICAL_PREDICTORS", "glutamate_tests", "nac_tests", "nac_sensitivity"]

#: The two NAcc couplings of the glutamate chapter; the first is the one claimed to follow glutamate.
GLUTAMATE_TARGETS = ("thalamus_midline", "dlpfc")

#: The clinical predictors of the connectivity rises.
CLINICAL_PREDICTORS = ("ocdus_obsessive", "cocaine_g_per_week")


def _listed(first: pd.DataFrame, then: pd.DataFrame) -> pd.DataFrame:
    """Two exclusion tables of the same columns, one after the other (either as it is when the other is empty)."""
    if not len(first):
        return then
    if not len(then):
        return first
    return pd.concat([first, then], ignore_index=True)


def glutamate_tests(
    fc_changes: pd.DataFrame,
    mrs_table: pd.DataFrame,
    participants: pd.DataFrame,
    drugs: pd.DataFrame,
    metabolite: str = "Glu",
    scale: str = "value_water",
    change: str = "delta_pct",
    max_crlb: float | None = 20.0,
    max_fwhm_hz: float | None = 12.8,
    min_snr: float | None = None,
    sessions: str = "both",
    targets=GLUTAMATE_TARGETS,
    predictors=CLINICAL_PREDICTORS,
    n_bootstrap: int = 5000,
    sesoi_r: float = 0.5,
    alpha: float = 0.05,
    rng=None,
) -> dict[str, pd.DataFrame]:
    """The glutamate chapter at ROI level: QC, change scores, couplings, their comparison, equivalence, predictors.

    Parameters
    ----------
    fc_changes, mrs_table, participants, drugs : pandas.DataFrame
        See the module docstring.
    metabolite, scale, change, max_crlb, max_fwhm_hz, min_snr, sessions
        As in :func:`craving_circuits.cocaine.mrs.quality_control`,
        :func:`craving_circuits.cocaine.mrs.session_changes` and
        :func:`craving_circuits.cocaine.glutamate.participant_changes`.
    targets : pair of str
        The coupling claimed (first) and the one compared with it (second).
    predictors : sequence of str
        Clinical predictors of each connectivity change (CUD only).
    n_bootstrap : int
        Resamples of the correlations' intervals and of their difference.
    sesoi_r : float
        Equivalence bound of a correlation.
    alpha : float
    rng : numpy Generator, int or None
        Consumed by the couplings, then by their comparison. For stacked
        replicates, one Generator per replicate: a mapping from replicate
        label to Generator, or a sequence in the order of the sorted labels
        (see :func:`craving_circuits.stats.contrasts.generators`).

    Returns
    -------
    tables : dict of str -> DataFrame
        ``mrs_exclusions``, ``glutamate_exclusions``, ``change_exclusions`` (with the
        participants left out of a predictor model for a missing value, after those without a
        usable session),
        ``changes`` (one row per participant), ``glutamate_rise``, ``couplings``,
        ``coupling_difference``, ``coupling_equivalence``, ``predictor_betas``,
        ``predictor_fits``.
    """
    replicates = replicate_ids(fc_changes)
    rng = replicate_generators(rng, replicates)
    targets = list(targets)
    kept, qc_exclusions = mrs.quality_control(
        mrs_table, metabolite, max_crlb=max_crlb, max_fwhm_hz=max_fwhm_hz, min_snr=min_snr
    )
    glu_changes, glu_exclusions = mrs.session_changes(kept, scale)
    table, change_exclusions = glutamate.participant_changes(
        fc_changes, glu_changes, participants, drugs, sessions, change
    )
    cud = table[table["group"] == "CUD"]
    glu_rise = with_replicates(
        mean_change(stack_columns(cud, ["dglu"], replicates)[0], "glutamate change in CUD (%)", alpha), replicates
    )
    couplings = glutamate.coupling_table(table, targets, n_boot=n_bootstrap, rng=rng, alpha=alpha)
    comparison = glutamate.compare_couplings(cud, targets[0], targets[1], n_boot=n_bootstrap, rng=rng, alpha=alpha)
    equivalence = glutamate.coupling_equivalence(couplings, sesoi_r, alpha=alpha)
    betas, fits = glutamate.predictor_table(cud, targets, list(predictors), alpha=alpha)
    change_exclusions = _listed(change_exclusions, glutamate.predictor_exclusions(cud, targets, list(predictors)))
    return {
        "mrs_exclusions": qc_exclusions,
        "glutamate_exclusions": glu_exclusions,
        "change_exclusions": change_exclusions,
        "changes": table,
        "glutamate_rise": glu_rise,
        "couplings": couplings,
        "coupling_difference": comparison,
        "coupling_equivalence": equivalence,
        "predictor_betas": betas,
        "predictor_fits": fits,
    }


def nac_tests(
    fc_changes: pd.DataFrame,
    ratings_table: pd.DataFrame,
    sesoi_dz: float = DRUG_SESOI_DZ,
    prior_scale: float = DEFAULT_PRIOR_SCALE,
    power: float = 0.8,
    alpha: float = 0.05,
    period: bool = True,
) -> dict[str, pd.DataFrame]:
    """The NAC chapter at ROI level: double differences, period, difference and equivalence tests, Bayes factors.

    Parameters
    ----------
    fc_changes, ratings_table : pandas.DataFrame
        See the module docstring.
    sesoi_dz : float
        Equivalence bound in standard deviations of the double difference.
    prior_scale : float
        Cauchy scale of the default Bayes factor.
    power : float
        Power of the sensitivity analysis (the detectable effect).
    alpha : float
    period : bool
        Adjust every drug contrast for the session order (period), as in
        :func:`craving_circuits.cocaine.drug.drug_samples`.

    Returns
    -------
    tables : dict of str -> DataFrame
        ``double_differences`` (connectivity), ``double_difference_exclusions``,
        ``rating_double_differences``, ``rating_exclusions`` (sessions with a
        missing rating, then participants without a change under both drugs), ``periods`` (the
        period effect of each outcome and group; only with ``period``),
        ``evidence`` (connectivity rows by target, then the rating row:
        difference test, TOST, Bayes factor, verdict) and ``rating_tests`` (the
        rating chapter's tests).
    """
    fc_dd, fc_dd_exclusions = drug.drug_differences(fc_changes, by=("target",))
    fc_evidence = drug.drug_evidence(
        fc_dd, by="target", sesoi_dz=sesoi_dz, alpha=alpha, r=prior_scale, power=power, period=period
    )
    rating_changes = ratings.rating_changes(ratings_table)
    rating_dd, rating_dd_exclusions = drug.drug_differences(rating_changes, by=())
    rating_dd_exclusions = _listed(ratings.rating_exclusions(ratings_table), rating_dd_exclusions)
    rating_evidence = drug.drug_evidence(
        rating_dd,
        by=None,
        sesoi_dz=sesoi_dz,
        alpha=alpha,
        r=prior_scale,
        power=power,
        groups=("CUD",),
        name="rating",
        period=period,
    )
    tables = {
        "double_differences": fc_dd,
        "double_difference_exclusions": fc_dd_exclusions,
        "rating_double_differences": rating_dd,
        "rating_exclusions": rating_dd_exclusions,
    }
    if period:
        tables["periods"] = replicate_major(
            combine_tables(
                drug.period_tests(fc_dd, by="target", alpha=alpha),
                drug.period_tests(rating_dd, by=None, groups=("CUD",), name="rating", alpha=alpha),
            )
        )
    return {
        **tables,
        "evidence": replicate_major(combine_tables(fc_evidence, rating_evidence)),
        "rating_tests": ratings.rating_tests(ratings_table, alpha=alpha, period=period),
    }


def nac_sensitivity(fc_evidence: pd.DataFrame, fc_changes: pd.DataFrame, targets=GLUTAMATE_TARGETS) -> dict:
    """The numbers the NAC chapter's prose gives about its bound and its design's sensitivity.

    Parameters
    ----------
    fc_evidence : pandas.DataFrame
        The connectivity rows of :func:`nac_tests`' ``evidence``.
    fc_changes : pandas.DataFrame
        See the module docstring.
    targets : sequence of str
        The couplings whose bound and craving rise are reported.

    Returns
    -------
    facts : dict
        ``nac_n_cud`` and ``nac_detectable_cud`` (participants and the d_z the
        CUD test detects), ``nac_n_between`` and ``nac_detectable_between`` (the
        group comparison), and per target ``nac_bound_<target>`` (the raw
        equivalence bound of the CUD test, Fisher z) and ``nac_rise_<target>``
        (the mean craving rise in CUD).
    """
    rows = fc_evidence.set_index("term")
    first = targets[0]
    rises = secondlevel.participant_state_changes(fc_changes)
    cud_rises = rises[rises["group"] == "CUD"].groupby("target")["delta"].mean()
    facts = {
        "nac_n_cud": int(rows.loc[f"drug x state | CUD ({first})", "n"]),
        "nac_detectable_cud": float(rows.loc[f"drug x state | CUD ({first})", "detectable_dz"]),
        "nac_n_between": int(rows.loc[f"group x state x drug ({first})", "n"]),
        "nac_detectable_between": float(rows.loc[f"group x state x drug ({first})", "detectable_dz"]),
    }
    for target in targets:
        facts[f"nac_bound_{target}"] = float(rows.loc[f"drug x state | CUD ({target})", "bound"])
        facts[f"nac_rise_{target}"] = float(cud_rises[target])
    return facts
