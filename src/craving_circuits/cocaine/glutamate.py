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
* Stacked replicates: tables with a ``replicate`` column
  (:data:`~craving_circuits.io.schemas.REPLICATE`) hold several replicates of
  the study; :func:`participant_changes`, :func:`coupling_table`,
  :func:`compare_couplings`, :func:`coupling_equivalence`,
  :func:`predictor_model` and :func:`predictor_table` analyse every replicate
  at once (its rows equal those of the replicate alone) and keep the column in
  front. Their random number generator is then one per replicate (see
  :func:`craving_circuits.stats.contrasts.generators`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from craving_circuits.cocaine.mrs import quality_control, session_changes
from craving_circuits.io.schemas import REPLICATE, RESULT_COLUMNS
from craving_circuits.stats.contrasts import (
    generators,
    replicate_ids,
    replicate_major,
    row_frame,
    row_quantiles,
    stack_columns,
)
from craving_circuits.stats.correlation import (
    bootstrap_correlations,
    check_pairs,
    correlation,
    least_squares,
    robust_regression,
    row_correlations,
    steiger_test,
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
    "predictor_exclusions",
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
    stacked = REPLICATE in fc_changes.columns
    rep = [REPLICATE] if stacked else []
    session_keys = [*rep, "participant_id", "session_id"]
    fc = fc_changes.pivot_table(index=session_keys, columns="target", values="delta", aggfunc="first")
    fc.columns = [f"dfc_{c}" for c in fc.columns]
    glu = glu_changes.set_index(session_keys)[[glu_column]].rename(columns={glu_column: "dglu"})
    both = fc.join(glu, how="inner").reset_index()
    both = both.merge(drugs[[*session_keys, "drug"]], on=session_keys, how="left")
    if sessions != "both":
        both = both[both["drug"] == sessions]
    value_columns = [c for c in both.columns if c.startswith("dfc_")] + ["dglu"]
    both = both.dropna(subset=value_columns)
    person = [*rep, "participant_id"]
    per_person = both.groupby(person)[value_columns].mean()
    per_person["n_sessions"] = both.groupby(person).size()
    table = participants.merge(per_person.reset_index(), on=person, how="inner")
    front = [*rep, "participant_id", "group", "n_sessions"] + value_columns
    table = table[front + [c for c in table.columns if c not in front]]
    missing = participants[person].merge(table[person], on=person, how="left", indicator=True)
    missing = missing.loc[missing["_merge"] == "left_only", person].sort_values(person, ignore_index=True)
    where = "in any session" if sessions == "both" else f"in the {sessions} session"
    exclusions = missing.assign(reason=f"no session with a connectivity change and a usable glutamate change {where}")
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
    picked = couplings[couplings["method"] == method]
    n = picked["n"].to_numpy(dtype=int)
    estimate, p = picked["estimate"].to_numpy(dtype=float), picked["p"].to_numpy(dtype=float)
    result = tost_correlation(estimate, n, bound_r, alpha) if len(picked) else {"ci_low": [], "ci_high": [], "p": []}
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
    table = pd.DataFrame(
        {
            "target": picked["target"].to_numpy(),
            "sample": picked["sample"].to_numpy(),
            "n": n,
            "estimate": estimate,
            "p": p,
            "bound": float(bound_r),
            "ci90_low": np.asarray(result["ci_low"], dtype=float),
            "ci90_high": np.asarray(result["ci_high"], dtype=float),
            "p_equivalence": np.asarray(result["p"], dtype=float),
            "verdict": verdict(p, np.asarray(result["p"], dtype=float), alpha) if len(picked) else [],
            "detectable_r": np.tanh((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(0.8)) / np.sqrt(n - 3)),
        },
        columns=columns,
    )
    if REPLICATE in couplings.columns:
        table.insert(0, REPLICATE, picked[REPLICATE].to_numpy())
    return table


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
        ``target, sample, method, n`` and :data:`RESULT_COLUMNS` (after
        ``replicate`` for stacked replicates, each replicate's rows together).
    """
    replicates = replicate_ids(table)
    rngs = generators(rng, replicates)
    samples = samples or {"CUD": ["CUD"], "all": ["CUD", "control"]}
    frames = []
    for sample, groups in samples.items():
        sub = table[table["group"].isin(groups)]
        for target in targets:
            x, y = stack_columns(sub, [f"dfc_{target}", glu], replicates)
            for method in methods:
                row = correlation(x, y, method, n_boot, rngs if replicates is not None else rngs[0], alpha)
                row = {"target": target, "sample": sample, "method": method, "n": row.pop("n"), **row}
                row["term"] = f"{method} r"
                frames.append(row_frame(row, replicates, ["target", "sample", "method", "n"] + RESULT_COLUMNS))
    return replicate_major(pd.concat(frames, ignore_index=True))


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
        ``r(a, glu) - r(b, glu)`` (one per replicate, after ``replicate``, for
        stacked replicates).
    """
    replicates = replicate_ids(table)
    a, b, g = stack_columns(table, [f"dfc_{target_a}", f"dfc_{target_b}", glu], replicates)
    check_pairs(a, g)
    check_pairs(b, g)
    a2, b2, g2 = np.atleast_2d(a), np.atleast_2d(b), np.atleast_2d(g)
    n = np.isfinite(g2).sum(axis=1)
    r_a, r_b, r_ab = row_correlations(g2, a2), row_correlations(g2, b2), row_correlations(a2, b2)
    z, p = steiger_test(r_a, r_b, r_ab, n)
    rngs = generators(rng, replicates)
    rngs = rngs if replicates is not None else rngs[0]
    boot = bootstrap_correlations({"a": a, "b": b, "g": g}, [("g", "a"), ("g", "b")], "pearson", n_boot, rngs)
    boot = boot.reshape(len(n), n_boot, 2)
    diff = boot[..., 0] - boot[..., 1]
    ci = row_quantiles(diff, [alpha / 2, 1 - alpha / 2])
    row = {
        "n": n,
        "statistic": z,
        "term": f"r(dfc_{target_a}, {glu}) - r(dfc_{target_b}, {glu})",
        "estimate": r_a - r_b,
        "se": np.nanstd(np.where(np.isfinite(diff), diff, np.nan), axis=1, ddof=1),
        "ci_low": ci[:, 0],
        "ci_high": ci[:, 1],
        "p": p,
    }
    if replicates is None:
        row = {k: v if isinstance(v, str) else np.asarray(v).reshape(-1)[0].item() for k, v in row.items()}
    return row_frame(row, replicates)


# --------------------------------------------------------------------------- regressions


def predictor_model(
    table: pd.DataFrame, outcome: str, predictors, log_columns=("cocaine_g_per_week",), alpha: float = 0.05
) -> tuple[pd.DataFrame, dict]:
    """Standardised regression of a change score on clinical predictors.

    Outcome and predictors are z-scored (columns in ``log_columns`` are
    log-transformed first), so the slopes are standardised betas. Least
    squares with statsmodels' OLS statistics (:func:`craving_circuits.stats.correlation.least_squares`).

    Returns
    -------
    coefficients : pandas.DataFrame
        :data:`RESULT_COLUMNS` for each predictor (the intercept, zero by
        construction, is left out); with stacked replicates, a ``replicate``
        column in front and each replicate's rows together.
    fit : dict
        ``n, r2, adj_r2, f, p_f``, and residual diagnostics: ``shapiro_w,
        shapiro_p`` (normality), ``breusch_pagan_p`` (constant variance; the
        studentised Koenker test, as statsmodels' ``het_breuschpagan``),
        ``max_cooks_distance``. With stacked replicates, arrays
        (n_replicates,) and the replicates' labels under ``replicate``.
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
    replicates = replicate_ids(table)
    if replicates is not None:
        data[REPLICATE] = table[REPLICATE].to_numpy()
    values = np.stack([np.atleast_2d(v) for v in stack_columns(data, cols, replicates)], axis=-1)  # (R, n, 1 + p)
    present = np.isfinite(values[..., 0])
    n = present.sum(axis=1)
    if (n < len(predictors) + 3).any():
        raise ValueError(f"{int(n.min())} participants are too few for {len(predictors)} predictors.")
    mean = np.nansum(values, axis=1) / n[:, None]
    sd = np.sqrt(np.nansum((values - mean[:, None]) ** 2, axis=1) / (n[:, None] - 1))
    z = (values - mean[:, None]) / sd[:, None]
    design = np.concatenate([np.ones_like(z[..., :1]), z[..., 1:]], axis=-1)
    fit = least_squares(design, z[..., 0])
    df_resid, k = fit["df_resid"], design.shape[-1]
    params, bse = fit["params"][:, 1:], fit["bse"][:, 1:]
    half = stats.t.ppf(1 - alpha / 2, df_resid)[:, None] * bse
    coefficients = pd.DataFrame(
        {
            "term": np.tile(predictors, len(n)),
            "estimate": params.ravel(),
            "se": bse.ravel(),
            "ci_low": (params - half).ravel(),
            "ci_high": (params + half).ravel(),
            "p": (2 * stats.t.sf(np.abs(params / bse), df_resid[:, None])).ravel(),
        }
    )
    df_model = fit["rank"] - 1
    ess = fit["centered_tss"] - fit["ssr"]
    f_value = (ess / df_model) / (fit["ssr"] / df_resid)
    resid, hat = fit["resid"], fit["hat"]
    shapiro = stats.shapiro(resid, axis=-1, nan_policy="omit")
    # Koenker's studentised Breusch-Pagan test: n R^2 of the squared residuals on the regressors
    auxiliary = least_squares(design, resid**2)
    lm = n * auxiliary["rsquared"]
    cooks = resid**2 / (k * fit["sigma2"][:, None] * (1 - hat)) * hat / (1 - hat)
    fits = {
        "n": n,
        "r2": fit["rsquared"],
        "adj_r2": 1 - (n - 1) / df_resid * (1 - fit["rsquared"]),
        "f": f_value,
        "p_f": stats.f.sf(f_value, df_model, df_resid),
        "shapiro_w": np.atleast_1d(shapiro.statistic),
        "shapiro_p": np.atleast_1d(shapiro.pvalue),
        "breusch_pagan_p": stats.chi2.sf(lm, k - 1),
        "max_cooks_distance": np.nanmax(cooks, axis=1),
    }
    if replicates is None:
        fits = {key: (int(v[0]) if key == "n" else float(v[0])) for key, v in fits.items()}
        return coefficients, fits
    coefficients.insert(0, REPLICATE, np.repeat(replicates, len(predictors)))
    return coefficients, {REPLICATE: replicates, **fits}


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


def _model_columns(target: str, predictors) -> list[str]:
    return [f"dfc_{target}", *predictors]


def predictor_exclusions(table: pd.DataFrame, targets, predictors) -> pd.DataFrame:
    """Participants left out of :func:`predictor_table`'s models for a missing value.

    A participant with a missing outcome or predictor (``n/a`` in
    participants.tsv, e.g. an OCDUS score not taken) is left out of the
    models that use that column only, and listed here once per model.

    Returns
    -------
    exclusions : pandas.DataFrame
        ``participant_id, reason`` (after ``replicate`` for stacked
        replicates), the format of :func:`participant_changes`' exclusions.
    """
    rep = [REPLICATE] if REPLICATE in table.columns else []
    rows = []
    for t in targets:
        columns = _model_columns(t, predictors)
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise ValueError(f"Columns {missing} are missing; available: {sorted(table.columns)}.")
        values = table[columns].astype(float)
        for i in np.flatnonzero(~np.isfinite(values.to_numpy()).all(axis=1)):
            lacking = [c for c in columns if not np.isfinite(values.iloc[i][c])]
            rows.append(
                {
                    **{r: table.iloc[i][r] for r in rep},
                    "participant_id": table.iloc[i]["participant_id"],
                    "reason": f"missing {', '.join(lacking)}: left out of the predictor model of dfc_{t}",
                }
            )
    return pd.DataFrame(rows, columns=[*rep, "participant_id", "reason"])


def predictor_table(
    table: pd.DataFrame, targets, predictors, log_columns=("cocaine_g_per_week",), alpha: float = 0.05
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`predictor_model` of each ``dfc_<target>`` on the same predictors.

    A participant with a missing outcome or predictor is left out of that
    target's model only; :func:`predictor_exclusions` lists them.

    Returns
    -------
    coefficients : pandas.DataFrame
        ``target`` and :data:`RESULT_COLUMNS`.
    fits : pandas.DataFrame
        One row per target with the fit statistics and residual diagnostics.
    """
    coefs, fits = [], []
    rep = [REPLICATE] if REPLICATE in table.columns else []
    predictors = list(predictors)
    for t in targets:
        columns = _model_columns(t, predictors)
        complete = table.dropna(subset=[c for c in columns if c in table.columns])
        c, f = predictor_model(complete, f"dfc_{t}", predictors, log_columns, alpha)
        coefs.append(c.assign(target=t))
        fits.append(pd.DataFrame({"target": t, **f}, index=None if rep else [0]))
    out = replicate_major(pd.concat(coefs, ignore_index=True))
    fits = replicate_major(pd.concat(fits, ignore_index=True))
    return out[rep + ["target"] + RESULT_COLUMNS], fits[rep + [c for c in fits.columns if c not in rep]]


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
