"""Linear mixed models on long-format tables, with tidy result tables.

Data conventions
----------------
* Tables are in *long* format: one row per observation (for the book, one
  row per participant x state x drug scan, with the outcome e.g. a seed-to-ROI
  Fisher z in a column such as ``fisher_z``).
* ``groups`` names the column identifying the unit that gets a random
  intercept - the participant. It is not the diagnostic group: that is the
  fixed factor ``group``.
* The book's 2 x 2 x 2 design uses these column names and level names
  exactly::

      group in {"CUD", "control"}      between participants
      state in {"neutral", "craving"}  within participants
      drug  in {"placebo", "NAC"}      within participants

* Formulas are written out in full for readers, with explicit reference
  levels, e.g.::

      fisher_z ~ C(group, Treatment('control'))
                 * C(state, Treatment('neutral'))
                 * C(drug, Treatment('placebo'))

  Contrasts of cell means (:func:`cell_contrast`, :func:`factorial_contrasts`)
  are computed from the fitted model's own design, so they do not depend on how
  the formula codes the factors (treatment, sum, ...).
* Rows with missing values are never dropped here: :func:`fit_mixed_model`
  refuses them, and the caller drops them explicitly and reports which.

Every result table has the columns :data:`RESULT_COLUMNS`, in that order:
``term, estimate, se, ci_low, ci_high, p``. Inference is the Wald
(normal, z-based) inference that statsmodels reports for ``MixedLM``.

Works with either formula engine of statsmodels (patsy or formulaic): the
fitted model's design is ``result.model.data.model_spec``, a
``patsy.DesignInfo`` or a ``formulaic.ModelSpec``, and is evaluated at new
rows with that engine's own API.
"""

from __future__ import annotations

import io
import itertools
import keyword
import re
import tokenize
from ast import literal_eval

import numpy as np
import pandas as pd
import patsy
import statsmodels.formula.api as smf
from scipy import stats

from craving_circuits.io.schemas import RESULT_COLUMNS

__all__ = [
    "RESULT_COLUMNS",
    "FACTOR_LEVELS",
    "FACTORIAL_CONTRASTS",
    "formula_variables",
    "fit_mixed_model",
    "tidy_fixed_effects",
    "cell_contrast",
    "factorial_contrasts",
    "random_effects_summary",
]


#: Factor and level names of the book's 2 x 2 x 2 design.
FACTOR_LEVELS = {
    "group": ("CUD", "control"),
    "state": ("neutral", "craving"),
    "drug": ("placebo", "NAC"),
}

#: Rows of :func:`factorial_contrasts`, in order.
FACTORIAL_CONTRASTS = (
    "craving - neutral | CUD",
    "craving - neutral | control",
    "group x state",
    "drug x state | CUD",
    "drug x state | control",
    "group x state x drug",
)

# Names a formula may use bare (not called) that are not columns: contrast
# codings passed to C(), e.g. ``C(drug, Sum)``.
_NON_COLUMN_NAMES = frozenset({"Treatment", "Sum", "Diff", "Helmert", "Poly"})


# ----------------------------------------------------------------------------
# formula parsing and input checks
# ----------------------------------------------------------------------------


def formula_variables(formula: str, columns=()) -> tuple[list[str], list[str]]:
    """Variables (data columns) used on each side of a model formula.

    A variable is a bare name that is not called (``C``, ``np.log``, ``I`` are
    functions), not an attribute, not a keyword argument name (``df=3``) and
    not a Python keyword; ``Q("name")`` and ```name``` quote a column name.
    Bare contrast names (``Treatment``, ``Sum``, ...) count as variables only
    if they are in ``columns``.

    Parameters
    ----------
    formula : str
        ``"outcome ~ terms"``.
    columns : iterable of str, optional
        Column names of the data, to tell a column called e.g. ``Sum`` from
        the contrast of that name.

    Returns
    -------
    lhs, rhs : list of str
        Variables of the left (outcome) and right side, each in order of first
        appearance.
    """
    if not isinstance(formula, str) or "~" not in formula:
        raise ValueError(f"formula must be a string 'outcome ~ terms', got {formula!r}.")
    columns = set(columns)
    quoted: list[str] = []

    def _placeholder(match: re.Match) -> str:
        quoted.append(match.group(1))
        return f"__quoted_column_{len(quoted) - 1}__"

    text = re.sub(r"`([^`]*)`", _placeholder, formula.strip())
    try:
        toks = [
            t
            for t in tokenize.generate_tokens(io.StringIO(text).readline)
            if t.type in (tokenize.NAME, tokenize.OP, tokenize.STRING, tokenize.NUMBER)
        ]
    except (tokenize.TokenError, SyntaxError) as exc:
        raise ValueError(f"could not parse formula {formula!r}: {exc}") from exc

    sides: tuple[list[str], list[str]] = ([], [])
    side = 0
    for i, tok in enumerate(toks):
        if tok.type == tokenize.OP and tok.string == "~":
            side = 1
            continue
        if tok.type != tokenize.NAME or keyword.iskeyword(tok.string):
            continue
        prev = toks[i - 1].string if i > 0 else ""
        nxt = toks[i + 1].string if i + 1 < len(toks) else ""
        name = None
        if tok.string == "Q" and nxt == "(" and i + 2 < len(toks) and toks[i + 2].type == tokenize.STRING:
            name = literal_eval(toks[i + 2].string)
        elif prev == "." or nxt in ("(", ".", "="):
            continue
        elif tok.string.startswith("__quoted_column_"):
            name = quoted[int(tok.string.removeprefix("__quoted_column_").rstrip("_"))]
        elif tok.string in _NON_COLUMN_NAMES and tok.string not in columns:
            continue
        else:
            name = tok.string
        if name not in sides[side]:
            sides[side].append(name)
    if not sides[0]:
        raise ValueError(f"formula {formula!r} has no outcome left of '~'.")
    return sides[0], sides[1]


def _missing_message(what: str, missing: list[str], available) -> str:
    return (
        f"{what} missing column(s) {missing}; available columns are "
        f"{list(available)}. Rename the columns or fix the formula."
    )


def _count_missing(frame: pd.DataFrame, used: list[str]) -> tuple[int, dict[str, int]]:
    na = frame[used].isna()
    per_column = {c: int(n) for c, n in na.sum().items() if n}
    return int(na.any(axis=1).sum()), per_column


def _check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}.")
    return alpha


def _check_result(result) -> None:
    if not all(hasattr(result, a) for a in ("fe_params", "cov_params", "model")):
        raise ValueError(
            f"result must be a fitted statsmodels MixedLM result (from fit_mixed_model), got {type(result).__name__}."
        )


# ----------------------------------------------------------------------------
# fitting
# ----------------------------------------------------------------------------


def fit_mixed_model(data: pd.DataFrame, formula: str, groups: str, reml: bool = True):
    """Fit a linear mixed model with a random intercept per level of ``groups``.

    statsmodels ``MixedLM.from_formula(formula, data, groups=groups)`` fitted
    by REML (default) or ML.

    Parameters
    ----------
    data : DataFrame
        Long format, one row per observation. Not modified.
    formula : str
        Fixed-effects formula, ``"outcome ~ terms"`` (patsy / formulaic
        syntax, whichever engine statsmodels is set to use).
    groups : str
        Column identifying the units with a random intercept (participants).
    reml : bool, default True
        REML (True) or maximum likelihood (False, needed to compare models
        with different fixed effects by likelihood).

    Returns
    -------
    statsmodels.regression.mixed_linear_model.MixedLMResults
        statsmodels warns (``ConvergenceWarning``) if the optimiser did not
        converge or the random-intercept variance is on the boundary.

    Raises
    ------
    ValueError
        If a column used by the formula, or ``groups``, is absent (the message
        names them); if any used column has missing values (the message gives
        the number of rows - they are never dropped silently: drop them
        explicitly and list them); if there are fewer than two groups; or if
        the formula cannot be built on the data.
    """
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"data must be a pandas DataFrame, got {type(data).__name__}.")
    if not isinstance(groups, str):
        raise ValueError(f"groups must be a column name (str), got {groups!r}.")
    lhs, rhs = formula_variables(formula, data.columns)
    used = list(dict.fromkeys(lhs + rhs + [groups]))
    missing = [c for c in used if c not in data.columns]
    if missing:
        raise ValueError(_missing_message(f"formula {formula!r} / groups {groups!r} use", missing, data.columns))
    n_rows, per_column = _count_missing(data, used)
    if n_rows:
        raise ValueError(
            f"{n_rows} of {len(data)} rows have missing values in the columns used by "
            f"the model (missing per column: {per_column}). Rows are not dropped "
            "silently: drop them explicitly (e.g. data.dropna(subset=[...])) and "
            "report which rows were excluded."
        )
    n_groups = data[groups].nunique()
    if n_groups < 2:
        raise ValueError(
            f"groups column {groups!r} has {n_groups} distinct value(s); a random intercept needs at least two groups."
        )
    frame = data.copy()
    try:
        model = smf.mixedlm(formula, frame, groups=groups, missing="raise")
    except Exception as exc:  # the engine's own error type (PatsyError, ...)
        raise ValueError(f"could not build the model {formula!r} on the data: {exc}") from exc
    result = model.fit(reml=reml)
    if result.nobs != len(data):  # guard: the engine must not drop rows
        raise ValueError(
            f"the model used {result.nobs} of {len(data)} rows; check the formula's variables for missing values."
        )
    return result


# ----------------------------------------------------------------------------
# tidy tables
# ----------------------------------------------------------------------------


def _wald_table(terms, estimate, se, alpha: float) -> pd.DataFrame:
    estimate = np.asarray(estimate, dtype=float)
    se = np.asarray(se, dtype=float)
    q = stats.norm.ppf(1 - alpha / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 2 * stats.norm.sf(np.abs(estimate / se))
    return pd.DataFrame(
        {
            "term": list(terms),
            "estimate": estimate,
            "se": se,
            "ci_low": estimate - q * se,
            "ci_high": estimate + q * se,
            "p": p,
        },
        columns=RESULT_COLUMNS,
    )


def _cov_fe(result) -> np.ndarray:
    k_fe = len(result.fe_params)
    return np.asarray(result.cov_params())[:k_fe, :k_fe]


def tidy_fixed_effects(result, alpha: float = 0.05) -> pd.DataFrame:
    """One row per fixed-effect coefficient of a fitted mixed model.

    Parameters
    ----------
    result : MixedLMResults
        From :func:`fit_mixed_model`.
    alpha : float, default 0.05
        ``1 - alpha`` confidence intervals.

    Returns
    -------
    DataFrame
        Columns :data:`RESULT_COLUMNS`; ``term`` is the coefficient name as
        statsmodels reports it (so its meaning depends on the formula's
        coding). Random-effect variances are not included (see
        :func:`random_effects_summary`). ``se``, CI and ``p`` are the Wald
        z-based values statsmodels reports (``bse_fe``, ``conf_int``,
        ``pvalues``).
    """
    _check_result(result)
    alpha = _check_alpha(alpha)
    names = list(result.fe_params.index)
    ci = result.conf_int(alpha=alpha)
    table = pd.DataFrame(
        {
            "term": names,
            "estimate": np.asarray(result.fe_params, dtype=float),
            "se": np.asarray(result.bse_fe, dtype=float),
            "ci_low": np.asarray(ci.loc[names].iloc[:, 0], dtype=float),
            "ci_high": np.asarray(ci.loc[names].iloc[:, 1], dtype=float),
            "p": np.asarray(result.pvalues.loc[names], dtype=float),
        },
        columns=RESULT_COLUMNS,
    )
    return table


def _model_rhs_variables(result) -> list[str]:
    formula = getattr(result.model, "formula", None)
    if formula is None:
        raise ValueError("the model was not fitted from a formula; fit it with fit_mixed_model.")
    frame = getattr(result.model.data, "frame", None)
    columns = frame.columns if frame is not None else ()
    return formula_variables(formula, columns)[1]


def _design_rows(result, cells: pd.DataFrame) -> pd.DataFrame:
    """Fixed-effects design matrix of the fitted model evaluated at ``cells``."""
    spec = getattr(result.model, "model_spec", None) or getattr(result.model.data, "model_spec", None)
    if spec is None:
        raise ValueError("the model has no formula design; fit it with fit_mixed_model.")
    frame = cells.copy()
    for col in frame.columns:  # the engines expect object, not pandas string, columns
        if isinstance(frame[col].dtype, pd.StringDtype):
            frame[col] = frame[col].astype(object)
    try:
        if type(spec).__module__.startswith("patsy"):
            (design,) = patsy.build_design_matrices([spec], frame, NA_action="raise", return_type="dataframe")
        else:  # formulaic.ModelSpec
            design = pd.DataFrame(spec.get_model_matrix(frame))
    except Exception as exc:  # unknown factor level, wrong type, ...
        raise ValueError(
            f"could not evaluate the model's design at the given cells: {exc}. "
            "Use factor levels and variable types as in the fitted data."
        ) from exc
    names = list(result.fe_params.index)
    if len(design) != len(cells) or sorted(design.columns) != sorted(names):
        raise ValueError(
            "the model's design evaluated at the cells does not match the fitted "
            f"coefficients ({len(design)} rows for {len(cells)} cells; columns "
            f"{list(design.columns)} vs {names})."
        )
    return design[names]


def cell_contrast(result, cells: pd.DataFrame, weights, term: str, alpha: float = 0.05) -> pd.DataFrame:
    """A weighted sum of model-predicted cell means, with Wald inference.

    The model's fixed-effects design is evaluated at each row of ``cells``
    (giving the row ``x_c`` whose product with the coefficients is that cell's
    predicted mean), and the contrast vector is ``L = sum_c w_c x_c``. Then
    ``estimate = L @ fe_params``, ``se = sqrt(L @ cov_fe @ L)``, and the
    p-value and CI are Wald z-based, as statsmodels reports for the
    coefficients.

    Parameters
    ----------
    result : MixedLMResults
        From :func:`fit_mixed_model`, fitted from a formula.
    cells : DataFrame
        One row per cell, with a value for every variable on the right side of
        the formula (factor levels as in the data; numeric covariates at the
        value wanted). Not modified.
    weights : array-like of float
        One weight per row of ``cells``. Weights summing to zero make a
        contrast (e.g. ``[1, -1]``: difference of two cells). Weights with a
        non-zero sum give a weighted combination of predicted means instead -
        e.g. ``1/k`` on each of ``k`` cells is their average, an estimated
        marginal mean - and ``p`` then tests that combination against zero.
    term : str
        Label of the row.
    alpha : float, default 0.05
        ``1 - alpha`` confidence interval.

    Returns
    -------
    DataFrame
        One row, columns :data:`RESULT_COLUMNS`, ``term=term``.

    Raises
    ------
    ValueError
        If ``cells`` lacks a formula variable (named) or has missing values in
        one, if the number of weights differs from the number of cells or a
        weight is not finite, or if the design cannot be evaluated at the
        cells (e.g. a level not in the fitted data).
    """
    _check_result(result)
    alpha = _check_alpha(alpha)
    if not isinstance(cells, pd.DataFrame) or len(cells) == 0:
        raise ValueError("cells must be a non-empty DataFrame, one row per cell.")
    rhs = _model_rhs_variables(result)
    missing = [c for c in rhs if c not in cells.columns]
    if missing:
        raise ValueError(_missing_message("cells lack the formula's", missing, cells.columns))
    if rhs:
        n_rows, per_column = _count_missing(cells, rhs)
        if n_rows:
            raise ValueError(
                f"{n_rows} cell row(s) have missing values ({per_column}); give every "
                "cell a value for each formula variable."
            )
    w = np.asarray(weights, dtype=float).ravel()
    if w.size != len(cells):
        raise ValueError(f"got {w.size} weights for {len(cells)} cells; give one weight per cell.")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"weights must be finite, got {w.tolist()}.")
    design = _design_rows(result, cells)
    L = w @ design.to_numpy(dtype=float)
    estimate = float(L @ np.asarray(result.fe_params, dtype=float))
    se = float(np.sqrt(L @ _cov_fe(result) @ L))
    return _wald_table([term], [estimate], [se], alpha)


def _factorial_cells(result) -> pd.DataFrame:
    """The 8 cells of the 2 x 2 x 2 design, other covariates at their mean."""
    rhs = _model_rhs_variables(result)
    absent = [f for f in FACTOR_LEVELS if f not in rhs]
    if absent:
        raise ValueError(
            f"factorial_contrasts needs the factors {list(FACTOR_LEVELS)} in the formula; "
            f"{absent} are not in {result.model.formula!r}."
        )
    frame = result.model.data.frame
    for factor, levels in FACTOR_LEVELS.items():
        found = set(pd.unique(frame[factor]).tolist())
        if found != set(levels):
            raise ValueError(
                f"factor {factor!r} has levels {sorted(map(str, found))} in the fitted data; "
                f"the 2x2x2 design expects exactly {list(levels)}."
            )
    cells = pd.DataFrame(list(itertools.product(*FACTOR_LEVELS.values())), columns=list(FACTOR_LEVELS))
    for var in rhs:
        if var in FACTOR_LEVELS:
            continue
        if not pd.api.types.is_numeric_dtype(frame[var]):
            raise ValueError(
                f"the formula has the non-numeric variable {var!r} besides group, state "
                "and drug; choose its level yourself and use cell_contrast."
            )
        cells[var] = float(frame[var].mean())
    return cells


def factorial_contrasts(result, alpha: float = 0.05) -> pd.DataFrame:
    """The contrasts of interest of the 2 x 2 x 2 (group x state x drug) design.

    Each is a :func:`cell_contrast` of the model-predicted cell means, so it
    does not depend on how the formula codes the factors. Each averages (with
    equal weights) over the factor it does not name:

    ``craving - neutral | CUD``, ``craving - neutral | control``
        craving minus neutral within the group, averaged over drug;
    ``group x state``
        (craving - neutral) in CUD minus the same in controls, averaged over
        drug;
    ``drug x state | CUD``, ``drug x state | control``
        (craving - neutral) under NAC minus the same under placebo, within the
        group;
    ``group x state x drug``
        ``drug x state | CUD`` minus ``drug x state | control``.

    Parameters
    ----------
    result : MixedLMResults
        Fitted from a formula containing the factors ``group``, ``state`` and
        ``drug`` (levels as in :data:`FACTOR_LEVELS`). Other numeric
        covariates in the formula are held at their mean in the fitted data.
    alpha : float, default 0.05
        ``1 - alpha`` confidence intervals.

    Returns
    -------
    DataFrame
        Six rows in the order above (:data:`FACTORIAL_CONTRASTS`), columns
        :data:`RESULT_COLUMNS`.

    Raises
    ------
    ValueError
        If a factor is absent from the formula, its levels in the fitted data
        are not exactly the expected ones, or the formula has another
        non-numeric variable.
    """
    cells = _factorial_cells(result)
    g = np.where(cells["group"] == "CUD", 1.0, -1.0)
    s = np.where(cells["state"] == "craving", 1.0, -1.0)
    d = np.where(cells["drug"] == "NAC", 1.0, -1.0)
    cud = (g > 0).astype(float)
    ctl = (g < 0).astype(float)
    weights = {
        "craving - neutral | CUD": cud * s / 2,
        "craving - neutral | control": ctl * s / 2,
        "group x state": g * s / 2,
        "drug x state | CUD": cud * s * d,
        "drug x state | control": ctl * s * d,
        "group x state x drug": g * s * d,
    }
    rows = [cell_contrast(result, cells, weights[t], t, alpha=alpha) for t in FACTORIAL_CONTRASTS]
    return pd.concat(rows, ignore_index=True)


def random_effects_summary(result) -> pd.DataFrame:
    """Variance components of a random-intercept model.

    Parameters
    ----------
    result : MixedLMResults
        From :func:`fit_mixed_model` (one random intercept per group).

    Returns
    -------
    DataFrame
        Columns ``component, variance, sd``; rows ``"<groups> intercept"``
        (between-unit variance of the intercept, ``cov_re``) and
        ``"residual"`` (within-unit residual variance, ``scale``).
    """
    _check_result(result)
    model = result.model
    if getattr(model, "k_re", 1) != 1 or getattr(model, "k_vc", 0) != 0:
        raise ValueError(
            "random_effects_summary describes random-intercept models only "
            f"(this model has {model.k_re} random effects and {model.k_vc} variance components)."
        )
    names = getattr(model.data, "exog_re_names", None) or ["group"]
    tau2 = float(np.asarray(result.cov_re)[0, 0])
    sigma2 = float(result.scale)
    return pd.DataFrame(
        {
            "component": [f"{names[0]} intercept", "residual"],
            "variance": [tau2, sigma2],
            "sd": [np.sqrt(tau2), np.sqrt(sigma2)],
        }
    )
