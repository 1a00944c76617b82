"""Evidence of absence: equivalence tests, default Bayes factors and sensitivity.

A non-significant test says only that the data did not reject "no effect". To
say that an effect is absent, or too small to matter, this module offers three
complementary answers for a mean difference (one-sample or paired), a
difference of means (two independent groups, Welch), or any contrast of cell
means (:mod:`craving_circuits.stats.contrasts`, e.g. a crossover's treatment
effect adjusted for period), and the equivalence test for a correlation:

* **Equivalence (TOST)**: two one-sided t-tests against the bounds
  ``-bound`` and ``+bound`` of the smallest effect of interest (SESOI)
  (Schuirmann 1987; Lakens 2017). Equivalence is declared when both reject,
  which is the same as the ``1 - 2 alpha`` confidence interval lying inside the
  bounds.
* **Default Bayes factor**: the JZS Bayes factor of Rouder et al. (2009), a
  Cauchy prior of scale ``r`` on the standardised effect against the point
  null, reported as BF01 (evidence for the null). Its robustness to ``r`` is a
  curve, not one number.
* **Equivalence of a correlation**: the same two one-sided tests on Fisher's
  ``z = atanh(r)`` with its large-sample standard error ``1 / sqrt(n - 3)``,
  against the bounds ``atanh(-bound_r)`` and ``atanh(bound_r)``
  (:func:`tost_correlation`).
* **Sensitivity**: the smallest standardised effect the design detects with
  a given power (statsmodels' power solvers); an equivalence bound below it
  can rarely be shown.

Data conventions
----------------
* Samples are 1-D float arrays of participant values: for a paired design,
  the per-participant differences (``(n,)``); for two groups, two arrays
  ``(n1,)`` and ``(n2,)``; or a
  :class:`~craving_circuits.stats.contrasts.CellContrast` of such arrays.
  Non-finite values are an error, never dropped.
* Bounds are symmetric, ``(-bound, +bound)``, in the units of the data; a
  standardised SESOI (Cohen's d_z for one sample, d with the pooled SD for two)
  is turned into raw units with the sample's SD by :func:`evidence_table`.
* Result tables start with the columns :data:`RESULT_COLUMNS`
  (``estimate`` is the mean or the difference of means, ``ci`` the ``1 - alpha``
  interval, ``p`` the two-sided t-test of no difference).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import integrate, optimize, stats
from statsmodels.stats.power import TTestIndPower, TTestPower

from craving_circuits.io.schemas import EVIDENCE_COLUMNS, RESULT_COLUMNS
from craving_circuits.stats.contrasts import (
    CellContrast,
    ContrastMoments,
    contrast_moments,
    one_sample,
    participant_values,
    two_sample,
)

__all__ = [
    "RESULT_COLUMNS",
    "EVIDENCE_COLUMNS",
    "DEFAULT_PRIOR_SCALE",
    "tost",
    "tost_correlation",
    "jzs_bf10",
    "bayes_factor_robustness",
    "robustness_curves",
    "detectable_effect",
    "verdict",
    "bf_label",
    "evidence_table",
    "contrast_bf10",
]


#: The "medium" Cauchy prior scale on the standardised effect (BayesFactor, JASP).
DEFAULT_PRIOR_SCALE = float(np.sqrt(2) / 2)


def _sample(x, name: str) -> np.ndarray:
    return participant_values(x, name, min_size=2)


def _check_alpha(alpha: float) -> float:
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}.")
    return float(alpha)


def _contrast(sample, term: str, equal_var: bool = False) -> CellContrast:
    """The :class:`CellContrast` of an evidence-table sample (array, pair of arrays or contrast)."""
    if isinstance(sample, CellContrast):
        return sample
    if isinstance(sample, tuple):
        x, y = _sample(sample[0], f"{term} (first group)"), _sample(sample[1], f"{term} (second group)")
        return two_sample(x, y, equal_var=equal_var, label=term)
    return one_sample(_sample(sample, term), label=term)


def tost(x, bound: float, y=None, alpha: float = 0.05, equal_var: bool = True) -> dict:
    """Two one-sided t-tests of equivalence within ``(-bound, +bound)``.

    Parameters
    ----------
    x : array, shape (n,)
        One sample, or the paired differences.
    bound : float
        Positive equivalence bound in the units of ``x``.
    y : array, shape (n2,), optional
        Second independent sample; then the difference of means ``x - y`` is
        tested with the pooled-variance t (Student) or, with
        ``equal_var=False``, Welch's t.
    alpha : float
        Level of each one-sided test.
    equal_var : bool
        Two samples only: one pooled variance (True) or one per group.

    Returns
    -------
    result : dict
        ``estimate, se, df, t_lower, p_lower, t_upper, p_upper, p`` (the larger
        of the two one-sided p-values) and ``ci_low, ci_high``, the
        ``1 - 2 alpha`` interval that lies inside the bounds exactly when
        ``p < alpha``.
    """
    x = _sample(x, "x")
    sample = x if y is None else (x, _sample(y, "y"))
    return _tost(contrast_moments(_contrast(sample, "x", equal_var=equal_var)), bound, alpha)


def _tost(m: ContrastMoments, bound: float, alpha: float) -> dict:
    """TOST of a contrast's moments against ``(-bound, +bound)``."""
    alpha = _check_alpha(alpha)
    if not np.isfinite(bound) or bound <= 0:
        raise ValueError(f"The equivalence bound must be a positive number, got {bound}.")
    if m.se == 0:
        raise ValueError("The sample has no variance; a t-based equivalence test is undefined.")
    t_lower = (m.estimate + bound) / m.se
    t_upper = (m.estimate - bound) / m.se
    p_lower = float(stats.t.sf(t_lower, m.df))
    p_upper = float(stats.t.cdf(t_upper, m.df))
    half = stats.t.ppf(1 - alpha, m.df) * m.se
    return {
        "estimate": m.estimate,
        "se": m.se,
        "df": float(m.df),
        "t_lower": float(t_lower),
        "p_lower": p_lower,
        "t_upper": float(t_upper),
        "p_upper": p_upper,
        "p": max(p_lower, p_upper),
        "ci_low": m.estimate - half,
        "ci_high": m.estimate + half,
    }


def tost_correlation(r: float, n: int, bound_r: float, alpha: float = 0.05) -> dict:
    """Two one-sided tests of a Pearson correlation lying within ``(-bound_r, +bound_r)``.

    Parameters
    ----------
    r : float
        Observed correlation, in (-1, 1).
    n : int
        Number of pairs (at least 4).
    bound_r : float
        Equivalence bound on the correlation scale, in (0, 1).
    alpha : float
        Level of each one-sided test.

    Returns
    -------
    result : dict
        ``estimate`` (r), ``z`` (Fisher z), ``se`` (of z), ``z_lower, p_lower,
        z_upper, p_upper``, ``p`` (the larger one-sided p; equivalence when
        ``p < alpha``) and ``ci_low, ci_high``, the ``1 - 2 alpha`` interval of
        r (back-transformed), inside the bounds exactly when ``p < alpha``.
    """
    alpha = _check_alpha(alpha)
    if not (np.isfinite(r) and -1 < r < 1):
        raise ValueError(f"A correlation must lie strictly between -1 and 1, got {r}.")
    if int(n) != n or n < 4:
        raise ValueError(f"The Fisher-z test needs at least 4 pairs, got n = {n}.")
    if not (np.isfinite(bound_r) and 0 < bound_r < 1):
        raise ValueError(f"The equivalence bound on r must lie in (0, 1), got {bound_r}.")
    z, se, bound = float(np.arctanh(r)), 1 / np.sqrt(n - 3), float(np.arctanh(bound_r))
    z_lower, z_upper = (z + bound) / se, (z - bound) / se
    p_lower, p_upper = float(stats.norm.sf(z_lower)), float(stats.norm.cdf(z_upper))
    half = stats.norm.ppf(1 - alpha) * se
    return {
        "estimate": float(r),
        "z": z,
        "se": float(se),
        "z_lower": float(z_lower),
        "p_lower": p_lower,
        "z_upper": float(z_upper),
        "p_upper": p_upper,
        "p": max(p_lower, p_upper),
        "ci_low": float(np.tanh(z - half)),
        "ci_high": float(np.tanh(z + half)),
    }


def _log_bf10_integrand(g: float, t: float, n_eff: float, df: float, r: float) -> float:
    a = 1.0 + n_eff * g * r**2
    return (
        -0.5 * np.log(a)
        - (df + 1) / 2 * np.log1p(t**2 / (a * df))
        - 0.5 * np.log(2 * np.pi)
        - 1.5 * np.log(g)
        - 1 / (2 * g)
    )


def jzs_bf10(t: float, n: int, n2: int | None = None, r: float = DEFAULT_PRIOR_SCALE) -> float:
    """Default (JZS) Bayes factor BF10 of a t statistic (Rouder et al. 2009, eq. 1).

    The alternative puts a Cauchy(0, ``r``) prior on the standardised effect
    (d_z for one sample, d for two) and Jeffreys' prior on the variance; the
    null fixes the effect at 0. The one-dimensional integral over the
    Zellner-Siow ``g`` is computed by quadrature.

    Parameters
    ----------
    t : float
        One-sample / paired t, or the two-sample (pooled-variance) t.
    n : int
        Sample size (one sample), or the first group's size.
    n2 : int, optional
        The second group's size (two independent samples).
    r : float
        Prior scale (default sqrt(2)/2, "medium").

    Returns
    -------
    bf10 : float
        Evidence for an effect; BF01 = 1 / BF10 is evidence for none.
    """
    if n2 is None:
        if n < 2:
            raise ValueError(f"A one-sample Bayes factor needs n >= 2, got {n}.")
        n_eff, df = float(n), float(n - 1)
    else:
        if n < 2 or n2 < 2:
            raise ValueError(f"A two-sample Bayes factor needs both groups >= 2, got {n} and {n2}.")
        n_eff, df = n * n2 / (n + n2), float(n + n2 - 2)
    return _jzs_bf10(t, n_eff, df, r)


def _jzs_bf10(t: float, n_eff: float, df: float, r: float) -> float:
    """JZS BF10 of a t with ``df`` degrees of freedom whose noncentrality is ``delta * sqrt(n_eff)``.

    One sample: ``n_eff = n``, ``df = n - 1``; two samples: ``n1 n2 / (n1 + n2)``
    and ``n1 + n2 - 2``; any single contrast of a linear model with one
    variance and flat priors on the other coefficients (e.g. the crossover's
    period): ``1 / c'(X'X)^-1 c`` and the residual degrees of freedom.
    """
    if not np.isfinite(t):
        raise ValueError(f"t must be finite, got {t}.")
    if not r > 0:
        raise ValueError(f"The prior scale r must be positive, got {r}.")
    log_null = -(df + 1) / 2 * np.log1p(t**2 / df)

    def integrand(g):
        return np.exp(_log_bf10_integrand(g, t, n_eff, df, r) - log_null)

    # the integrand peaks near g ~ t^2 / n; splitting there keeps quad accurate
    peak = max(t**2 / n_eff, 1e-3)
    value = sum(
        integrate.quad(integrand, lo, hi, limit=200)[0]
        for lo, hi in ((0.0, peak), (peak, 100 * peak + 1.0), (100 * peak + 1.0, np.inf))
    )
    return float(value)


def contrast_bf10(sample, r: float = DEFAULT_PRIOR_SCALE) -> float:
    """JZS BF10 of an evidence-table sample (array, pair of arrays or :class:`CellContrast`).

    The JZS model has one variance, so the Bayes factor uses the contrast's
    pooled-variance t (Student for two groups, whatever the difference test
    uses) and the ``n_eff`` and degrees of freedom of that model.
    """
    m = contrast_moments(_contrast(sample, "sample"), pooled=True)
    if m.se == 0:
        raise ValueError("The sample has no variance; the Bayes factor is undefined.")
    return _jzs_bf10(m.estimate / m.se, m.n_eff, m.df, r)


def bayes_factor_robustness(t: float, n: int, n2: int | None = None, scales=None) -> pd.DataFrame:
    """BF01 over a range of prior scales.

    Parameters
    ----------
    scales : array of float, optional
        Default 0.1 to 1.5, plus the named scales 1/2, sqrt(2)/2, 1 and sqrt(2).

    Returns
    -------
    curve : pandas.DataFrame
        ``prior_scale, bf10, bf01`` sorted by scale.
    """
    if scales is None:
        scales = np.union1d(np.round(np.linspace(0.1, 1.5, 29), 3), [0.5, DEFAULT_PRIOR_SCALE, 1.0, np.sqrt(2)])
    scales = np.asarray(scales, dtype=float)
    bf10 = np.array([jzs_bf10(t, n, n2, r) for r in scales])
    return pd.DataFrame({"prior_scale": scales, "bf10": bf10, "bf01": 1 / bf10}).sort_values(
        "prior_scale", ignore_index=True
    )


def robustness_curves(samples: dict, scales=None) -> dict:
    """BF01 over prior scales (as :func:`bayes_factor_robustness`) for every sample of an :func:`evidence_table` input.

    Returns
    -------
    curves : dict of term -> DataFrame
        ``prior_scale, bf10, bf01`` sorted by scale.
    """
    if scales is None:
        scales = np.union1d(np.round(np.linspace(0.1, 1.5, 29), 3), [0.5, DEFAULT_PRIOR_SCALE, 1.0, np.sqrt(2)])
    scales = np.asarray(scales, dtype=float)
    curves = {}
    for term, sample in samples.items():
        bf10 = np.array([contrast_bf10(_contrast(sample, term), r) for r in scales])
        curves[term] = pd.DataFrame({"prior_scale": scales, "bf10": bf10, "bf01": 1 / bf10}).sort_values(
            "prior_scale", ignore_index=True
        )
    return curves


def detectable_effect(n: int, n2: int | None = None, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest standardised effect a two-sided t-test detects with ``power``.

    Parameters
    ----------
    n : int
        Sample size (one sample / pairs), or the first group's size.
    n2 : int, optional
        Second group's size (two independent samples, pooled-variance t).

    Returns
    -------
    effect : float
        d_z (one sample) or d (two samples), from statsmodels' power solvers.
    """

    alpha = _check_alpha(alpha)
    if not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), got {power}.")
    if n2 is None:
        if n < 2:
            raise ValueError(f"n must be at least 2, got {n}.")
        return float(TTestPower().solve_power(nobs=n, alpha=alpha, power=power, alternative="two-sided"))
    if n < 2 or n2 < 2:
        raise ValueError(f"Both groups need at least 2 participants, got {n} and {n2}.")
    return float(TTestIndPower().solve_power(nobs1=n, ratio=n2 / n, alpha=alpha, power=power, alternative="two-sided"))


def _detectable(n_eff: float, df: float, alpha: float, power: float) -> float:
    """Smallest standardised effect a two-sided t-test detects with ``power``.

    The t has ``df`` degrees of freedom and noncentrality ``delta * sqrt(n_eff)``.
    """
    crit = stats.t.isf(alpha / 2, df)

    def shortfall(delta):
        ncp = delta * np.sqrt(n_eff)
        # the lower tail is negligible for positive effects (scipy returns NaN when it underflows)
        lower = np.nan_to_num(stats.nct.cdf(-crit, df, ncp), nan=0.0)
        return stats.nct.sf(crit, df, ncp) + lower - power

    high = 1.0
    while shortfall(high) < 0:
        high *= 2
    return float(optimize.brentq(shortfall, 0.0, high, xtol=1e-10))


def verdict(p: float, p_equivalence: float, alpha: float = 0.05) -> str:
    """Combine the test of no difference and the equivalence test (Lakens 2017, fig. 1).

    Returns
    -------
    str
        ``"effect"`` (different from 0, not shown to be small), ``"equivalent"``
        (not different from 0 and inside the bounds), ``"trivial effect"``
        (different from 0 but inside the bounds) or ``"inconclusive"``
        (neither).
    """
    different, equivalent = p < alpha, p_equivalence < alpha
    if different and equivalent:
        return "trivial effect"
    if different:
        return "effect"
    if equivalent:
        return "equivalent"
    return "inconclusive"


def bf_label(bf01: float) -> str:
    """Verbal label of a Bayes factor (Lee & Wagenmakers 2013 categories, symmetric in BF01 and BF10)."""
    if not np.isfinite(bf01) or bf01 <= 0:
        raise ValueError(f"A Bayes factor must be positive and finite, got {bf01}.")
    side = "for no effect" if bf01 >= 1 else "for an effect"
    size = bf01 if bf01 >= 1 else 1 / bf01
    for limit, word in ((3, "anecdotal"), (10, "moderate"), (30, "strong"), (100, "very strong")):
        if size < limit:
            return f"{word} {side}"
    return f"extreme {side}"


def evidence_table(
    samples: dict, sesoi_dz: float = 0.5, alpha: float = 0.05, r: float = DEFAULT_PRIOR_SCALE, power: float = 0.8
) -> pd.DataFrame:
    """Difference test, equivalence test, Bayes factor and sensitivity for several outcomes.

    Parameters
    ----------
    samples : dict of term -> array, (array, array) or CellContrast
        One array: a one-sample / paired test of its mean; a pair: two
        independent groups, first minus second, with Welch's t; a
        :class:`~craving_circuits.stats.contrasts.CellContrast`: any contrast of
        cell means (e.g. a crossover's treatment effect, adjusted for period).
    sesoi_dz : float
        Smallest effect of interest, standardised (d_z for one sample, d for
        two); the raw bound is ``sesoi_dz`` times the contrast's standardiser
        (the SD for one sample, the within-sequence SD of a crossover, the root
        mean square of the two groups' SDs for Welch).
    alpha : float
        Level of the two-sided difference test and of each one-sided
        equivalence test.
    r : float
        Prior scale of the Bayes factor.
    power : float
        Power of the sensitivity analysis.

    Returns
    -------
    table : pandas.DataFrame
        Columns :data:`EVIDENCE_COLUMNS`, one row per term: the mean (or
        difference) with its ``1 - alpha`` CI and two-sided p; ``n``
        (participants; ``n1+n2`` for two groups), ``dz`` (observed standardised
        effect), the raw ``bound``, ``ci90_low/high`` (the ``1 - 2 alpha``
        interval), ``p_equivalence`` (TOST), ``equivalent_within_dz`` (the
        smallest standardised bound the data would show equivalence for: the
        largest absolute end of the ``1 - 2 alpha`` interval over the SD),
        ``bf01``, ``detectable_dz``, the :func:`verdict` and the :func:`bf_label`.
        The difference and equivalence tests use the contrast's own variance
        model (Welch for two groups); the Bayes factor and the detectable
        effect use the one-variance model of the same contrast (the JZS model,
        and a property of the design rather than of the observed variances).
    """
    if not np.isfinite(sesoi_dz) or sesoi_dz <= 0:
        raise ValueError(f"sesoi_dz must be a positive number, got {sesoi_dz}.")
    alpha = _check_alpha(alpha)
    rows = []
    for term, sample in samples.items():
        contrast = _contrast(sample, term)
        m = contrast_moments(contrast)
        if m.se == 0:
            raise ValueError(f"{term}: the sample has no variance; the tests are undefined.")
        t = m.estimate / m.se
        p = float(2 * stats.t.sf(abs(t), m.df))
        half = stats.t.ppf(1 - alpha / 2, m.df) * m.se
        bound = sesoi_dz * m.sd
        eq = _tost(m, bound, alpha)
        bf10 = contrast_bf10(contrast, r)
        design = contrast_moments(contrast, pooled=True)
        rows.append(
            {
                "term": term,
                "estimate": m.estimate,
                "se": m.se,
                "ci_low": m.estimate - half,
                "ci_high": m.estimate + half,
                "p": p,
                "n": m.n,
                "dz": m.estimate / m.sd,
                "bound": bound,
                "bound_dz": sesoi_dz,
                "ci90_low": eq["ci_low"],
                "ci90_high": eq["ci_high"],
                "p_equivalence": eq["p"],
                "equivalent_within_dz": max(abs(eq["ci_low"]), abs(eq["ci_high"])) / m.sd,
                "bf01": 1 / bf10,
                "prior_scale": r,
                "detectable_dz": _detectable(design.n_eff, design.df, alpha, power),
                "verdict": verdict(p, eq["p"], alpha),
                "bayes_factor": bf_label(1 / bf10),
            }
        )
    return pd.DataFrame(rows, columns=EVIDENCE_COLUMNS)
