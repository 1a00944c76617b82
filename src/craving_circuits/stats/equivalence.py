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
* Stacked replicates (:mod:`craving_circuits.stats.contrasts`): the samples of
  :func:`evidence_table` may be stacks of replicates, and the tests, the Bayes
  factor and the detectable effect take arrays, so that many replicates are
  computed at once; each replicate's result equals its result alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize, stats
from scipy.special import logsumexp
from statsmodels.stats.power import TTestIndPower, TTestPower

from craving_circuits.io.schemas import EVIDENCE_COLUMNS, REPLICATE, RESULT_COLUMNS
from craving_circuits.stats.contrasts import (
    CellContrast,
    ContrastMoments,
    contrast_moments,
    one_sample,
    participant_values,
    row_frame,
    two_sample,
)

__all__ = [
    "RESULT_COLUMNS",
    "EVIDENCE_COLUMNS",
    "DEFAULT_PRIOR_SCALE",
    "DRUG_SESOI_DZ",
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

#: The smallest effect of interest of the drug contrasts of the NAC chapter (d_z of the double
#: differences): the default of :func:`craving_circuits.cocaine.drug.drug_evidence` and the chapter's
#: ``sesoi_dz``; the simulator's ``threat_nac_at_bound`` preset plants an NAC effect exactly this large.
DRUG_SESOI_DZ = 0.8


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


def _plain(value):
    """A 0-d result as a float; arrays stay arrays."""
    value = np.asarray(value, dtype=float)
    return float(value) if value.ndim == 0 else value


def _tost(m: ContrastMoments, bound, alpha: float) -> dict:
    """TOST of a contrast's moments against ``(-bound, +bound)`` (floats, or arrays for stacked moments)."""
    alpha = _check_alpha(alpha)
    bound = np.asarray(bound, dtype=float)
    if not np.all(np.isfinite(bound)) or np.any(bound <= 0):
        raise ValueError(f"The equivalence bound must be a positive number, got {_plain(bound)}.")
    if np.any(np.asarray(m.se) == 0):
        raise ValueError("The sample has no variance; a t-based equivalence test is undefined.")
    t_lower = (m.estimate + bound) / m.se
    t_upper = (m.estimate - bound) / m.se
    p_lower = stats.t.sf(t_lower, m.df)
    p_upper = stats.t.cdf(t_upper, m.df)
    half = stats.t.ppf(1 - alpha, m.df) * m.se
    return {
        "estimate": _plain(m.estimate),
        "se": _plain(m.se),
        "df": _plain(m.df),
        "t_lower": _plain(t_lower),
        "p_lower": _plain(p_lower),
        "t_upper": _plain(t_upper),
        "p_upper": _plain(p_upper),
        "p": _plain(np.maximum(p_lower, p_upper)),
        "ci_low": _plain(m.estimate - half),
        "ci_high": _plain(m.estimate + half),
    }


def tost_correlation(r, n, bound_r: float, alpha: float = 0.05) -> dict:
    """Two one-sided tests of a Pearson correlation lying within ``(-bound_r, +bound_r)``.

    Parameters
    ----------
    r : float or array
        Observed correlation, in (-1, 1) (an array: one per replicate).
    n : int or array of int
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
        Floats, or arrays for array input.
    """
    alpha = _check_alpha(alpha)
    r_arr, n_arr = np.asarray(r, dtype=float), np.asarray(n, dtype=float)
    if not (np.all(np.isfinite(r_arr)) and np.all((-1 < r_arr) & (r_arr < 1))):
        raise ValueError(f"A correlation must lie strictly between -1 and 1, got {_plain(r_arr)}.")
    if np.any(np.round(n_arr) != n_arr) or np.any(n_arr < 4):
        raise ValueError(f"The Fisher-z test needs at least 4 pairs, got n = {_plain(n_arr)}.")
    if not (np.isfinite(bound_r) and 0 < bound_r < 1):
        raise ValueError(f"The equivalence bound on r must lie in (0, 1), got {bound_r}.")
    z, se, bound = np.arctanh(r_arr), 1 / np.sqrt(n_arr - 3), float(np.arctanh(bound_r))
    z_lower, z_upper = (z + bound) / se, (z - bound) / se
    p_lower, p_upper = stats.norm.sf(z_lower), stats.norm.cdf(z_upper)
    half = stats.norm.ppf(1 - alpha) * se
    return {
        "estimate": _plain(r_arr),
        "z": _plain(z),
        "se": _plain(se),
        "z_lower": _plain(z_lower),
        "p_lower": _plain(p_lower),
        "z_upper": _plain(z_upper),
        "p_upper": _plain(p_upper),
        "p": _plain(np.maximum(p_lower, p_upper)),
        "ci_low": _plain(np.tanh(z - half)),
        "ci_high": _plain(np.tanh(z + half)),
    }


#: Nodes of the trapezoidal rule over ``log g`` of :func:`_jzs_bf10`.
_BF_NODES = 200


def jzs_bf10(t: float, n: int, n2: int | None = None, r: float = DEFAULT_PRIOR_SCALE) -> float:
    """Default (JZS) Bayes factor BF10 of a t statistic (Rouder et al. 2009, eq. 1).

    The alternative puts a Cauchy(0, ``r``) prior on the standardised effect
    (d_z for one sample, d for two) and Jeffreys' prior on the variance; the
    null fixes the effect at 0. The one-dimensional integral over the
    Zellner-Siow ``g`` is computed by the trapezoidal rule in ``log g``
    (:func:`_jzs_bf10`).

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


def _jzs_bf10(t, n_eff, df, r: float):
    """JZS BF10 of a t with ``df`` degrees of freedom whose noncentrality is ``delta * sqrt(n_eff)``.

    One sample: ``n_eff = n``, ``df = n - 1``; two samples: ``n1 n2 / (n1 + n2)``
    and ``n1 + n2 - 2``; any single contrast of a linear model with one
    variance and flat priors on the other coefficients (e.g. the crossover's
    period): ``1 / c'(X'X)^-1 c`` and the residual degrees of freedom.

    The integral over the Zellner-Siow ``g`` is taken over ``u = log g`` by the
    trapezoidal rule on :data:`_BF_NODES` nodes from ``u = -6`` to 40 above the
    integrand's peak (``g ~ t^2 / (n_eff r^2)``). The integrand is analytic in
    a strip of half-width pi around the real axis and negligible at both ends,
    so the rule converges geometrically: it agrees with adaptive quadrature to
    about 1e-9 (relative) over t in [0, 35], n_eff in [2, 1000], df in [1, 200]
    and r in [0.1, 1.5].

    Parameters
    ----------
    t, n_eff, df : float or array
        Broadcast together (one Bayes factor per element).
    r : float
        Prior scale.

    Returns
    -------
    bf10 : float, or ndarray of the broadcast shape
    """
    t, n_eff, df = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (t, n_eff, df)))
    if not np.all(np.isfinite(t)):
        raise ValueError(f"t must be finite, got {_plain(t)}.")
    if not r > 0:
        raise ValueError(f"The prior scale r must be positive, got {r}.")
    peak = np.log(np.maximum(t**2 / (n_eff * r**2), 1.0))
    low, high = -6.0, peak + 40.0
    step = (high - low) / (_BF_NODES - 1)
    u = low + step[..., None] * np.arange(_BF_NODES)
    g = np.exp(u)
    tt, nn, dd = t[..., None], n_eff[..., None], df[..., None]
    a = 1.0 + nn * g * r**2
    # log of the integrand over the null's likelihood, times the Jacobian g of u = log g
    log_f = (
        -0.5 * np.log(a)
        - (dd + 1) / 2 * (np.log1p(tt**2 / (a * dd)) - np.log1p(tt**2 / dd))
        - 0.5 * np.log(2 * np.pi)
        - 0.5 * u
        - 0.5 / g
    )
    with np.errstate(over="ignore"):
        return _plain(np.exp(logsumexp(log_f, axis=-1) + np.log(step)))


def contrast_bf10(sample, r: float = DEFAULT_PRIOR_SCALE):
    """JZS BF10 of an evidence-table sample (array, pair of arrays or :class:`CellContrast`).

    The JZS model has one variance, so the Bayes factor uses the contrast's
    pooled-variance t (Student for two groups, whatever the difference test
    uses) and the ``n_eff`` and degrees of freedom of that model. An array
    (n_replicates,) for a stacked sample.
    """
    m = contrast_moments(_contrast(sample, "sample"), pooled=True)
    if np.any(np.asarray(m.se) == 0):
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


def _detectable_one(n_eff: float, df: float, alpha: float, power: float) -> float:
    """Smallest standardised effect a two-sided t-test detects with ``power`` (one design)."""
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


def _detectable(n_eff, df, alpha: float, power: float):
    """Smallest standardised effect a two-sided t-test detects with ``power``.

    The t has ``df`` degrees of freedom and noncentrality ``delta * sqrt(n_eff)``.
    ``n_eff`` and ``df`` may be arrays (one design per element): the effect is
    a property of the design, so it is solved once per distinct design.
    """
    n_eff, df = np.broadcast_arrays(np.asarray(n_eff, dtype=float), np.asarray(df, dtype=float))
    designs, where = np.unique(np.stack([n_eff.ravel(), df.ravel()], axis=1), axis=0, return_inverse=True)
    solved = np.array([_detectable_one(n, d, alpha, power) for n, d in designs])
    return _plain(solved[where.ravel()].reshape(n_eff.shape))


def verdict(p, p_equivalence, alpha: float = 0.05):
    """Combine the test of no difference and the equivalence test (Lakens 2017, fig. 1).

    Returns
    -------
    str, or ndarray of str for array input
        ``"effect"`` (different from 0, not shown to be small), ``"equivalent"``
        (not different from 0 and inside the bounds), ``"trivial effect"``
        (different from 0 but inside the bounds) or ``"inconclusive"``
        (neither).
    """
    different, equivalent = np.asarray(p) < alpha, np.asarray(p_equivalence) < alpha
    out = np.select(
        [different & equivalent, different, equivalent],
        ["trivial effect", "effect", "equivalent"],
        "inconclusive",
    )
    return str(out) if out.ndim == 0 else out.astype(object)


def bf_label(bf01):
    """Verbal label of a Bayes factor (Lee & Wagenmakers 2013 categories, symmetric in BF01 and BF10).

    A string, or an array of strings for array input.
    """
    bf01 = np.asarray(bf01, dtype=float)
    if not np.all(np.isfinite(bf01)) or np.any(bf01 <= 0):
        raise ValueError(f"A Bayes factor must be positive and finite, got {_plain(bf01)}.")
    side = np.where(bf01 >= 1, "for no effect", "for an effect")
    size = np.where(bf01 >= 1, bf01, 1 / bf01)
    word = np.select(
        [size < limit for limit in (3, 10, 30, 100)], ["anecdotal", "moderate", "strong", "very strong"], "extreme"
    )
    out = np.char.add(np.char.add(word.astype(str), " "), side)
    return str(out) if out.ndim == 0 else out.astype(object)


def evidence_table(
    samples: dict,
    sesoi_dz: float = 0.5,
    alpha: float = 0.05,
    r: float = DEFAULT_PRIOR_SCALE,
    power: float = 0.8,
    replicates=None,
) -> pd.DataFrame:
    """Difference test, equivalence test, Bayes factor and sensitivity for several outcomes.

    Parameters
    ----------
    samples : dict of term -> array, (array, array) or CellContrast
        One array: a one-sample / paired test of its mean; a pair: two
        independent groups, first minus second, with Welch's t; a
        :class:`~craving_circuits.stats.contrasts.CellContrast`: any contrast of
        cell means (e.g. a crossover's treatment effect, adjusted for period).
        Stacks of replicates (2-D, NaN-padded; see
        :mod:`craving_circuits.stats.contrasts`) give one row per replicate.
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
    replicates : array, shape (n_replicates,), optional
        Labels of the replicates of stacked samples (the ``replicate`` column).

    Returns
    -------
    table : pandas.DataFrame
        Columns :data:`EVIDENCE_COLUMNS`, one row per term (per replicate and
        term for stacks, each term's replicates in order, after a ``replicate``
        column): the mean (or
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
    frames = []
    for term, sample in samples.items():
        contrast = _contrast(sample, term)
        if contrast.stacked != (replicates is not None) or (
            contrast.stacked and contrast.cells[0].shape[0] != len(replicates)
        ):
            raise ValueError(f"{term}: give the replicates' labels exactly for stacked samples, one per row.")
        m = contrast_moments(contrast)
        if np.any(np.asarray(m.se) == 0):
            raise ValueError(f"{term}: the sample has no variance; the tests are undefined.")
        t = m.estimate / m.se
        p = 2 * stats.t.sf(np.abs(t), m.df)
        half = stats.t.ppf(1 - alpha / 2, m.df) * m.se
        bound = sesoi_dz * m.sd
        eq = _tost(m, bound, alpha)
        bf10 = contrast_bf10(contrast, r)
        design = contrast_moments(contrast, pooled=True)
        row = {
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
            "equivalent_within_dz": np.maximum(np.abs(eq["ci_low"]), np.abs(eq["ci_high"])) / m.sd,
            "bf01": 1 / bf10,
            "prior_scale": r,
            "detectable_dz": _detectable(design.n_eff, design.df, alpha, power),
            "verdict": verdict(p, eq["p"], alpha),
            "bayes_factor": bf_label(1 / bf10),
        }
        frames.append(row_frame(row, replicates, EVIDENCE_COLUMNS))
    columns = EVIDENCE_COLUMNS if replicates is None else [REPLICATE, *EVIDENCE_COLUMNS]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]
