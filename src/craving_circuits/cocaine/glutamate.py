"""Coupling of craving-related changes: connectivity with glutamate, and clinical predictors.

Data conventions
----------------
* Session-level changes come in long tables: connectivity changes from
  :func:`craving_circuits.cocaine.secondlevel.roi_state_differences` (``participant_id,
  group, session_id, drug, target, delta``) and glutamate changes from
  :func:`craving_circuits.cocaine.mrs.session_changes` (``participant_id, session_id,
  delta, delta_pct``).
* :func:`participant_changes` turns them into one row per participant: ``dfc_<target>``
  (Fisher z change) and ``dglu`` (the glutamate change, by default in percent
  of the neutral value), each averaged over the sessions in which *both* the
  connectivity change and the glutamate change exist (``sessions="both"``), or
  taken from one drug's session only (``sessions="placebo"`` or ``"NAC"``).
* Every result table has the columns ``term, estimate, se, ci_low, ci_high, p``,
  with identifying columns (``target``, ``sample``, ``method``, ``n``) in front.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.diagnostic import het_breuschpagan

from craving_circuits.cocaine.mrs import quality_control, session_changes
from craving_circuits.io.schemas import RESULT_COLUMNS
from craving_circuits.stats.correlation import (
    bootstrap_correlations,
    check_pairs,
    correlation,
    robust_regression,
    steiger_test,
    tidy_fit,
)
from craving_circuits.stats.equivalence import tost_correlation, verdict

__all__ = [
    "RESULT_COLUMNS",
    "participant_changes",
    "coupling_equivalence",
    "coupling_table",
    "compare_couplings",
    "predictor_model",
    "robust_table",
    "predictor_table",
    "qc_sensitivity",
]


# --------------------------------------------------------------------------- change scores


def participant_changes(
    fc_changes: pd.DataFrame,
    glu_changes: pd.DataFrame,
    participants: pd.DataFrame,
    drugs: pd.DataFrame,
    sessions: str = "both",
    glu_column: str = "delta_pct",
):
    """One row per participant with connectivity and glutamate changes.

    Parameters
    ----------
    fc_changes : pandas.DataFrame
        Session-level connectivity changes for one strategy.
    glu_changes : pandas.DataFrame
        Session-level glutamate changes.
    participants : pandas.DataFrame
        ``participant_id, group`` and any clinical columns, which are carried
        over.
    drugs : pandas.DataFrame
        ``participant_id, session_id, drug``.
    sessions : {"both", "placebo", "NAC"}
        ``both``: average over the sessions that have both changes; otherwise
        the session of that drug only.
    glu_column : {"delta_pct", "delta"}

    Returns
    -------
    table : pandas.DataFrame
        ``participant_id, group, n_sessions, dfc_<target>..., dglu`` and the
        clinical columns of ``participants``.
    exclusions : pandas.DataFrame
        ``participant_id, reason`` for participants without a usable session.
    """
    if sessions not in ("both", "placebo", "NAC"):
        raise ValueError(f"sessions must be 'both', 'placebo' or 'NAC', got {sessions!r}.")
    if glu_column not in ("delta_pct", "delta"):
        raise ValueError(f"glu_column must be 'delta_pct' or 'delta', got {glu_column!r}.")
    fc = fc_changes.pivot_table(
        index=["participant_id", "session_id"], columns="target", values="delta", aggfunc="first"
    )
    fc.columns = [f"dfc_{c}" for c in fc.columns]
    glu = glu_changes.set_index(["participant_id", "session_id"])[[glu_column]].rename(columns={glu_column: "dglu"})
    both = fc.join(glu, how="inner").reset_index()
    both = both.merge(drugs[["participant_id", "session_id", "drug"]], on=["participant_id", "session_id"], how="left")
    if sessions != "both":
        both = both[both["drug"] == sessions]
    value_columns = [c for c in both.columns if c.startswith("dfc_")] + ["dglu"]
    both = both.dropna(subset=value_columns)
    per_person = both.groupby("participant_id")[value_columns].mean()
    per_person["n_sessions"] = both.groupby("participant_id").size()
    table = participants.merge(per_person.reset_index(), on="participant_id", how="inner")
    front = ["participant_id", "group", "n_sessions"] + value_columns
    table = table[front + [c for c in table.columns if c not in front]]
    missing = sorted(set(participants["participant_id"]) - set(table["participant_id"]))
    where = "in any session" if sessions == "both" else f"in the {sessions} session"
    exclusions = pd.DataFrame(
        {
            "participant_id": missing,
            "reason": f"no session with a connectivity change and a usable glutamate change {where}",
        }
    )
    return table.reset_index(drop=True), exclusions


# --------------------------------------------------------------------------- correlations


def coupling_equivalence(
    couplings: pd.DataFrame, bound_r: float, alpha: float = 0.05, method: str = "pearson"
) -> pd.DataFrame:
    """Is a coupling absent? Equivalence of each correlation of :func:`coupling_table` with zero.

    Parameters
    ----------
    couplings : pandas.DataFrame
        From :func:`coupling_table` (columns ``target, sample, method, n,
        estimate, p``).
    bound_r : float
        Smallest correlation of interest, in (0, 1).
    alpha : float
    method : str
        Which rows of ``couplings`` to test (the Fisher-z test is for Pearson r).

    Returns
    -------
    table : pandas.DataFrame
        ``target, sample, n, estimate, p`` (the test of r = 0, from
        ``couplings``), ``bound``, ``ci90_low, ci90_high`` (the ``1 - 2 alpha``
        interval), ``p_equivalence``, ``verdict`` (see
        :func:`craving_circuits.stats.equivalence.verdict`) and ``detectable_r``,
        the correlation the two-sided test of r = 0 detects with power 0.8 at
        this ``n`` (Fisher z approximation), to set beside the bound.
    """

    missing = {"target", "sample", "method", "n", "estimate", "p"} - set(couplings.columns)
    if missing:
        raise ValueError(f"The coupling table lacks the column(s) {sorted(missing)}; pass coupling_table's output.")
    rows = []
    for row in couplings[couplings["method"] == method].itertuples(index=False):
        result = tost_correlation(row.estimate, int(row.n), bound_r, alpha)
        rows.append(
            {
                "target": row.target,
                "sample": row.sample,
                "n": int(row.n),
                "estimate": row.estimate,
                "p": row.p,
                "bound": bound_r,
                "ci90_low": result["ci_low"],
                "ci90_high": result["ci_high"],
                "p_equivalence": result["p"],
                "verdict": verdict(row.p, result["p"], alpha),
                "detectable_r": float(
                    np.tanh((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(0.8)) / np.sqrt(int(row.n) - 3))
                ),
            }
        )
    columns = [
        "target",
        "sample",
        "n",
        "estimate",
        "p",
        "bound",
        "ci90_low",
        "ci90_high",
        "p_equivalence",
        "verdict",
        "detectable_r",
    ]
    return pd.DataFrame(rows, columns=columns)


def coupling_table(
    table: pd.DataFrame,
    targets,
    glu: str = "dglu",
    samples: dict | None = None,
    methods=("pearson", "spearman"),
    n_boot: int = 5000,
    rng=None,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Correlations of each connectivity change with the glutamate change.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`participant_changes`.
    targets : list of str
        Target ROI names (columns ``dfc_<target>``).
    samples : dict of name -> list of groups
        Default ``{"CUD": ["CUD"], "all": ["CUD", "control"]}``.

    Returns
    -------
    table : pandas.DataFrame
        ``target, sample, method, n`` and :data:`RESULT_COLUMNS`.
    """
    rng = np.random.default_rng(rng)
    samples = samples or {"CUD": ["CUD"], "all": ["CUD", "control"]}
    rows = []
    for sample, groups in samples.items():
        sub = table[table["group"].isin(groups)]
        for target in targets:
            for method in methods:
                row = correlation(sub[f"dfc_{target}"], sub[glu], method, n_boot, rng, alpha)
                rows.append({"target": target, "sample": sample, "method": method, "n": row.pop("n"), **row})
    out = pd.DataFrame(rows)
    out["term"] = [f"{m} r" for m in out["method"]]
    return out[["target", "sample", "method", "n"] + RESULT_COLUMNS]


def compare_couplings(
    table: pd.DataFrame,
    target_a: str,
    target_b: str,
    glu: str = "dglu",
    n_boot: int = 5000,
    rng=None,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Do two connectivity changes differ in their correlation with the glutamate change?

    The correlations share the glutamate change, so they are dependent:
    Steiger's test gives the p-value and a bootstrap of the participants
    (resampled together) the CI of the difference.

    Returns
    -------
    row : pandas.DataFrame
        One row: ``n, statistic`` and :data:`RESULT_COLUMNS`, term
        ``r(a, glu) - r(b, glu)``.
    """
    a, b, g = (table[c].to_numpy(float) for c in (f"dfc_{target_a}", f"dfc_{target_b}", glu))
    check_pairs(a, g)
    check_pairs(b, g)
    r_a, r_b, r_ab = stats.pearsonr(g, a).statistic, stats.pearsonr(g, b).statistic, stats.pearsonr(a, b).statistic
    z, p = steiger_test(r_a, r_b, r_ab, len(g))
    boot = bootstrap_correlations({"a": a, "b": b, "g": g}, [("g", "a"), ("g", "b")], "pearson", n_boot, rng)
    diff = boot[:, 0] - boot[:, 1]
    diff = diff[np.isfinite(diff)]
    return pd.DataFrame(
        [
            {
                "n": len(g),
                "statistic": z,
                "term": f"r(dfc_{target_a}, {glu}) - r(dfc_{target_b}, {glu})",
                "estimate": r_a - r_b,
                "se": diff.std(ddof=1),
                "ci_low": np.quantile(diff, alpha / 2),
                "ci_high": np.quantile(diff, 1 - alpha / 2),
                "p": p,
            }
        ]
    )


# --------------------------------------------------------------------------- regressions


def predictor_model(
    table: pd.DataFrame, outcome: str, predictors, log_columns=("cocaine_g_per_week",), alpha: float = 0.05
) -> tuple[pd.DataFrame, dict]:
    """Standardised regression of a change score on clinical predictors.

    Outcome and predictors are z-scored (columns in ``log_columns`` are
    log-transformed first), so the slopes are standardised betas.

    Returns
    -------
    coefficients : pandas.DataFrame
        :data:`RESULT_COLUMNS` for each predictor (the intercept, zero by
        construction, is left out).
    fit : dict
        ``n, r2, adj_r2, f, p_f``, and residual diagnostics: ``shapiro_w,
        shapiro_p`` (normality), ``breusch_pagan_p`` (constant variance),
        ``max_cooks_distance``.
    """

    predictors = list(predictors)
    cols = [outcome] + predictors
    missing = [c for c in cols if c not in table.columns]
    if missing:
        raise ValueError(f"Columns {missing} are missing; available: {sorted(table.columns)}.")
    data = table[cols].astype(float)
    bad = ~np.isfinite(data).all(axis=1)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} participants have a missing value in {cols}; drop them explicitly.")
    for c in log_columns:
        if c in data:
            if (data[c] <= 0).any():
                raise ValueError(f"{c} must be positive to be log-transformed.")
            data[c] = np.log(data[c])
    z = (data - data.mean()) / data.std(ddof=1)
    if len(z) < len(predictors) + 3:
        raise ValueError(f"{len(z)} participants are too few for {len(predictors)} predictors.")
    result = sm.OLS(z[outcome].to_numpy(), sm.add_constant(z[predictors].to_numpy())).fit()
    coefficients = tidy_fit(result, alpha, ["intercept"] + predictors).iloc[1:].reset_index(drop=True)
    shapiro = stats.shapiro(result.resid)
    bp = het_breuschpagan(result.resid, result.model.exog)
    fit = {
        "n": int(result.nobs),
        "r2": float(result.rsquared),
        "adj_r2": float(result.rsquared_adj),
        "f": float(result.fvalue),
        "p_f": float(result.f_pvalue),
        "shapiro_w": float(shapiro.statistic),
        "shapiro_p": float(shapiro.pvalue),
        "breusch_pagan_p": float(bp[1]),
        "max_cooks_distance": float(result.get_influence().cooks_distance[0].max()),
    }
    return coefficients, fit


def robust_table(table: pd.DataFrame, targets, glu: str = "dglu", alpha: float = 0.05) -> pd.DataFrame:
    """:func:`robust_regression` of each ``dfc_<target>`` on the glutamate change.

    Returns
    -------
    table : pandas.DataFrame
        ``target`` and :data:`RESULT_COLUMNS` (slope rows only).
    """
    rows = [robust_regression(table, f"dfc_{t}", glu, alpha).iloc[[1]].assign(target=t) for t in targets]
    out = pd.concat(rows, ignore_index=True)
    return out[["target"] + RESULT_COLUMNS]


def predictor_table(
    table: pd.DataFrame, targets, predictors, log_columns=("cocaine_g_per_week",), alpha: float = 0.05
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`predictor_model` of each ``dfc_<target>`` on the same predictors.

    Returns
    -------
    coefficients : pandas.DataFrame
        ``target`` and :data:`RESULT_COLUMNS`.
    fits : pandas.DataFrame
        One row per target with the fit statistics and residual diagnostics.
    """
    coefs, fits = [], []
    for t in targets:
        c, f = predictor_model(table, f"dfc_{t}", predictors, log_columns, alpha)
        coefs.append(c.assign(target=t))
        fits.append({"target": t, **f})
    out = pd.concat(coefs, ignore_index=True)
    return out[["target"] + RESULT_COLUMNS], pd.DataFrame(fits)


def qc_sensitivity(
    mrs_table: pd.DataFrame,
    fc_changes: pd.DataFrame,
    participants: pd.DataFrame,
    drugs: pd.DataFrame,
    targets,
    settings: dict,
    metabolite: str = "Glu",
    scale: str = "value_water",
    glu_column: str = "delta_pct",
    sessions: str = "both",
    group: str = "CUD",
) -> pd.DataFrame:
    """The coupling result under several MRS quality-control settings.

    Parameters
    ----------
    mrs_table : pandas.DataFrame
        From :func:`craving_circuits.cocaine.mrs.read_mrs`.
    settings : dict of name -> dict
        Keyword arguments of :func:`craving_circuits.cocaine.mrs.quality_control`, e.g.
        ``{"CRLB <= 20 %": {"max_crlb": 20}, "no CRLB limit": {"max_crlb": None}}``.

    Returns
    -------
    table : pandas.DataFrame
        ``setting, target, n, r, p, mean_dglu`` (Pearson r within ``group``).
    """

    rows = []
    for name, kwargs in settings.items():
        kept, _ = quality_control(mrs_table, metabolite, **kwargs)
        changes, _ = session_changes(kept, scale)
        table, _ = participant_changes(fc_changes, changes, participants, drugs, sessions, glu_column)
        sub = table[table["group"] == group]
        for t in targets:
            x, y = check_pairs(sub[f"dfc_{t}"], sub["dglu"])
            test = stats.pearsonr(y, x)
            rows.append(
                {
                    "setting": name,
                    "target": t,
                    "n": len(x),
                    "r": test.statistic,
                    "p": test.pvalue,
                    "mean_dglu": float(np.mean(y)),
                }
            )
    return pd.DataFrame(rows)
