"""The denoising multiverse: do the NAcc connectivity findings survive other reasonable choices?

A specification is one denoising strategy (:class:`craving_circuits.cocaine.denoise.Strategy`):
a confound set (none, one of nilearn's ``load_confounds_strategy`` presets, or the
book's default ``conn``), with or without global signal regression, and a
band-pass. ``none`` is in the multiverse on purpose: it is the specification that
shows what denoising changes. :func:`specifications`
crosses the choices; the first level computes every specification's ROI
couplings in one pass over the runs (as comparison strategies, see
:func:`craving_circuits.cocaine.firstlevel.seed_analysis`); :func:`multiverse_table`
repeats the seed chapter's ROI state tests (summary statistics) under each
specification and keeps the contrasts that carry the claims; :func:`specification_conclusions`
(and its display, :func:`conclusion_matrix`) says which specification draws which conclusion,
and :func:`robust_conclusions` which conclusions hold under all of them (Steegen et al. 2016; Simonsohn et al. 2020).

Data conventions
----------------
ROI couplings in the long format of :data:`craving_circuits.io.schemas.ROI_COLUMNS`,
one ``strategy`` per specification (its ``name``). Result tables have the
columns :data:`MULTIVERSE_COLUMNS`: the specification's choices, the target and
term, and :data:`craving_circuits.io.schemas.RESULT_COLUMNS`-style statistics.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from craving_circuits.cocaine.denoise import Strategy
from craving_circuits.cocaine.secondlevel import roi_state_differences, roi_state_tests
from craving_circuits.io.schemas import MULTIVERSE_COLUMNS

__all__ = [
    "CLAIM_TERMS",
    "MULTIVERSE_COLUMNS",
    "specifications",
    "multiverse_table",
    "robust_conclusions",
    "specification_matrix",
    "specification_conclusions",
    "conclusion_matrix",
    "DEFAULT_CONFOUND_SETS",
    "CONCLUSIONS",
]

#: The contrasts of the seed chapter's ROI model that carry the connectivity claims.
CLAIM_TERMS = ("craving - neutral | CUD", "craving - neutral | control", "group x state")


#: The confound sets crossed by default: no confound regression (the weakest choice, kept so that the
#: multiverse shows what denoising changes), nilearn's presets and the book's default (``conn``).
DEFAULT_CONFOUND_SETS = ("none", "simple", "scrubbing", "compcor", "conn")

#: The conclusion of one contrast under one specification.
CONCLUSIONS = ("rise", "fall", "no evidence of a change")


def specifications(
    confounds=DEFAULT_CONFOUND_SETS, gsr=(False, True), band_passes=((0.008, 0.09), (0.01, 0.1))
) -> list[Strategy]:
    """Every combination of the choices, in a fixed order.

    Parameters
    ----------
    confounds : sequence of str
        Confound sets (:data:`craving_circuits.cocaine.denoise.CONFOUND_SETS`).
    gsr : sequence of bool
        Without and/or with global signal regression.
    band_passes : sequence of (float or None, float or None)
        High-pass and low-pass edges (Hz).

    Returns
    -------
    strategies : list of Strategy
        ``len(confounds) * len(gsr) * len(band_passes)`` distinct strategies.
    """
    specs = [
        Strategy(confounds=c, global_signal=bool(g), high_pass=b[0], low_pass=b[1])
        for c, g, b in itertools.product(confounds, gsr, [tuple(b) for b in band_passes])
    ]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"The choices repeat a specification: {names}.")
    if not specs:
        raise ValueError("No specification: give at least one confound set, GSR choice and band-pass.")
    return specs


def multiverse_table(roi: pd.DataFrame, strategies, alpha: float = 0.05, terms=CLAIM_TERMS) -> pd.DataFrame:
    """The seed chapter's ROI tests (:func:`craving_circuits.cocaine.secondlevel.roi_state_tests`) under every
    specification.

    Parameters
    ----------
    roi : pandas.DataFrame
        ROI couplings (:data:`craving_circuits.io.schemas.ROI_COLUMNS`) holding
        every strategy of ``strategies``.
    strategies : sequence of Strategy
    alpha : float
    terms : sequence of str
        Terms of :func:`craving_circuits.cocaine.secondlevel.roi_state_tests` to keep.

    Returns
    -------
    table : pandas.DataFrame
        Columns :data:`MULTIVERSE_COLUMNS`, one row per specification, target
        and term.

    Raises
    ------
    ValueError
        If a specification has no ROI values (the first level was run without
        it).
    """

    available = set(roi["strategy"])
    missing = [s.name for s in strategies if s.name not in available]
    if missing:
        raise ValueError(
            f"No ROI couplings for {missing}; run the first level with these as comparison "
            "strategies (pipeline.seed_analysis(..., comparison_strategies=...))."
        )
    frames = []
    for spec in strategies:
        contrasts = roi_state_tests(roi_state_differences(roi, spec.name), alpha=alpha)
        kept = contrasts[contrasts["term"].isin(terms)].copy()
        kept["strategy"], kept["confounds"], kept["gsr"] = spec.name, spec.confounds, spec.global_signal
        kept["band_pass"] = f"{spec.high_pass or 0:g}-{spec.low_pass or 'inf'} Hz"
        kept["significant"] = kept["p"] < alpha
        frames.append(kept)
    return pd.concat(frames, ignore_index=True)[MULTIVERSE_COLUMNS]


def _check_table(table: pd.DataFrame, columns=("target", "term", "estimate", "significant")) -> None:
    missing = set(columns) - set(table.columns)
    if missing:
        raise ValueError(f"The table lacks the column(s) {sorted(missing)}; pass multiverse_table's output.")


def specification_conclusions(table: pd.DataFrame) -> pd.DataFrame:
    """The conclusion that each specification draws on each contrast.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`multiverse_table`.

    Returns
    -------
    conclusions : pandas.DataFrame
        One row per specification, target and term: ``strategy, confounds,
        gsr, band_pass, target, term, estimate, p`` and ``conclusion``, one of
        :data:`CONCLUSIONS` (``"rise"``: significant and positive; ``"fall"``:
        significant and negative; otherwise no evidence of a change, which is
        not evidence of its absence).
    """
    _check_table(table, ("strategy", "target", "term", "estimate", "p", "significant"))
    sig = table["significant"].astype(bool)
    conclusion = np.where(sig & (table["estimate"] > 0), CONCLUSIONS[0], np.where(sig, CONCLUSIONS[1], CONCLUSIONS[2]))
    keep = [c for c in ("strategy", "confounds", "gsr", "band_pass", "target", "term", "estimate", "p") if c in table]
    return table[keep].assign(conclusion=conclusion).reset_index(drop=True)


def conclusion_matrix(table: pd.DataFrame) -> pd.DataFrame:
    """Specification by contrast: which specification draws which conclusion (for display).

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`multiverse_table`, or its :func:`specification_conclusions`.

    Returns
    -------
    matrix : pandas.DataFrame
        One row per specification (index ``strategy``, in the table's order),
        one column per ``"<term> (<target>)"``, values from :data:`CONCLUSIONS`.
    """
    long = table.copy() if "conclusion" in table.columns else specification_conclusions(table)
    long["contrast"] = long["term"] + " (" + long["target"] + ")"
    matrix = long.pivot(index="strategy", columns="contrast", values="conclusion")
    return matrix.loc[list(dict.fromkeys(long["strategy"])), list(dict.fromkeys(long["contrast"]))]


def robust_conclusions(table: pd.DataFrame) -> pd.DataFrame:
    """Which conclusions hold under every specification?

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`multiverse_table`.

    Returns
    -------
    conclusions : pandas.DataFrame
        Per ``target, term``: ``conclusion`` (``"significant with one sign in
        all specifications"``; ``"not significant in any specification"``,
        which shows no absence of the effect; or ``"depends on the
        specification"``), ``n_significant`` of ``n_specs``, the range of the
        estimates (``estimate_min, estimate_max``), the significant ones by
        sign (``n_positive``, ``n_negative``), ``summary`` (e.g. ``"7 of 20
        specifications find a rise, 0 a fall"``) and ``no_evidence_under``, the
        specifications that find no change when others do (empty otherwise).
    """
    _check_table(table)
    rows = []
    for (target, term), sub in table.groupby(["target", "term"], sort=False):
        sig = sub["significant"].astype(bool)
        positive = int((sig & (sub["estimate"] > 0)).sum())
        negative = int((sig & (sub["estimate"] < 0)).sum())
        n = len(sub)
        if positive == n or negative == n:
            conclusion = "significant with one sign in all specifications"
        elif positive + negative == 0:
            conclusion = "not significant in any specification"
        else:
            conclusion = "depends on the specification"
        rows.append(
            {
                "target": target,
                "term": term,
                "conclusion": conclusion,
                "n_significant": positive + negative,
                "n_specs": n,
                "estimate_min": float(sub["estimate"].min()),
                "estimate_max": float(sub["estimate"].max()),
                "n_positive": positive,
                "n_negative": negative,
                "summary": f"{positive} of {n} specifications find a rise, {negative} a fall",
                "no_evidence_under": "; ".join(sub.loc[~sig, "strategy"]) if 0 < positive + negative < n else "",
            }
        )
    return pd.DataFrame(rows)


def _spec_order(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values("estimate", kind="stable").reset_index(drop=True)


def specification_matrix(table: pd.DataFrame) -> pd.DataFrame:
    """Indicator matrix of the choices of each row of a specification curve (sorted by estimate).

    Returns
    -------
    matrix : pandas.DataFrame
        One column per choice (``confounds: simple``, ``GSR: yes``,
        ``band: 0.01-0.1 Hz``...), rows in the curve's order, values 0/1.
    """
    ordered = _spec_order(table)
    columns = {}
    for value in dict.fromkeys(ordered["confounds"]):
        columns[f"confounds: {value}"] = (ordered["confounds"] == value).astype(int)
    for value in (False, True):
        columns[f"GSR: {'yes' if value else 'no'}"] = (ordered["gsr"].astype(bool) == value).astype(int)
    for value in dict.fromkeys(ordered["band_pass"]):
        columns[f"band: {value}"] = (ordered["band_pass"] == value).astype(int)
    return pd.DataFrame(columns, index=np.arange(len(ordered)))
