"""The claims ledger: each claim of the two source studies against this book's result files.

Every row of the ledger is read from a result table that a notebook of the book
wrote (``results/<run>/<table>.tsv``); nothing is typed in by hand. The claims
are those of the registry (:data:`craving_circuits.verdict.claims.CLAIMS`):
each names its estimand, whose row the ledger reads from its chapter's
``recovered_vs_planted`` table by the estimand's id (that table carries the
test, the estimate, its interval or corrected p, and the planted truth of a
simulated study); a claim of absence also names the row of its equivalence
test.

Verdicts
--------
* A claimed effect is **supported** when its test has ``p < alpha`` in the
  claimed direction, and **not supported** otherwise (the ``detail`` column says
  whether nothing was found or the effect went the other way).
* A claim of absence is **evidence of absence** when its equivalence test
  declares equivalence and the test of no difference does not reject; it is
  **not supported** when an effect is found, or when neither test decides
  (``detail``: inconclusive). A non-significant test alone is not evidence of
  absence.

``agree`` compares the test's decision (an effect found or not) with the
planted truth, as the chapters' "recovered vs planted" tables do; for a claim
of absence whose effect is not planted, it agrees only when equivalence was
shown (an inconclusive test does not recover an absence). It is empty for a
study without ground truth. Verdicts on claims of absence name what their
equivalence test rules out (the claim's ``bound``), and the size the test of
no difference detects at the study's n.

On one's own data (no ground truth in any row) the ledger has no truth
columns (``planted``, ``planted_present``, ``agree``): the verdicts stand
alone. A chapter that the build skipped because the dataset lacks its inputs
(its ``run.json`` says ``"status": "skipped"``) answers none of its claims:
they are left out of the ledger and listed by :func:`not_tested` with the
reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from craving_circuits.io.files import read_json
from craving_circuits.io.schemas import LEDGER_COLUMNS
from craving_circuits.io.tables import read_table
from craving_circuits.verdict.claims import CLAIMS, Claim, Estimand

__all__ = [
    "LEDGER_COLUMNS",
    "TRUTH_COLUMNS",
    "VERDICTS",
    "claim_verdict",
    "claims_ledger",
    "ledger_overview",
    "ledger_summary",
    "not_tested",
    "recovery_table",
]

VERDICTS = ("supported", "not supported", "evidence of absence")

#: The ledger's columns about the planted truth, absent on data without one.
TRUTH_COLUMNS = ["planted", "planted_present", "agree"]


def _skip_reason(results_dir: Path, chapter: str) -> str | None:
    """Why the build skipped a chapter (its run record), or None when it was not skipped."""
    record = results_dir / chapter / "run.json"
    if not record.is_file():
        return None
    run = read_json(record, "run record")
    if run.get("status") != "skipped":
        return None
    return run.get("reason") or "skipped"


def not_tested(results_dir: str | Path = "results", claims: tuple[Claim, ...] = CLAIMS) -> pd.DataFrame:
    """The claims whose chapter the build skipped (its inputs were absent from the dataset).

    Returns
    -------
    table : pandas.DataFrame
        ``claim_id, claim, chapter, reason``, one row per claim left out of the ledger.
    """
    results_dir = Path(results_dir)
    rows = []
    for claim in claims:
        for chapter in dict.fromkeys(e.chapter for e in (claim.estimand, claim.equivalence) if e is not None):
            reason = _skip_reason(results_dir, chapter)
            if reason is not None:
                rows.append({"claim_id": claim.claim_id, "claim": claim.text, "chapter": chapter, "reason": reason})
                break
    return pd.DataFrame(rows, columns=["claim_id", "claim", "chapter", "reason"])


def _recovery_row(results_dir: Path, e: Estimand) -> tuple[pd.Series, str]:
    table = read_table(results_dir / e.chapter, "recovered_vs_planted")
    source = f"{e.chapter}/recovered_vs_planted.tsv"
    if "estimand" not in table.columns:
        raise ValueError(
            f"{results_dir / source} has no estimand column; re-run the notebook {e.chapter} with this "
            "version of the book."
        )
    picked = table[table["estimand"] == e.id]
    if len(picked) != 1:
        raise ValueError(
            f"{results_dir / source}: {len(picked)} rows of estimand {e.id!r} (expected exactly one); "
            f"re-run the notebook {e.chapter}."
        )
    return picked.iloc[0], source


def _equivalence_row(results_dir: Path, e: Estimand) -> tuple[pd.Series, str]:
    source = f"{e.chapter}/{e.table}.tsv"
    picked = e._rows(read_table(results_dir / e.chapter, e.table), str(results_dir / source))
    if len(picked) != 1:
        raise ValueError(
            f"{results_dir / source}: {len(picked)} rows match {dict(e.match)} (expected exactly one); "
            f"re-run the notebook {e.chapter}."
        )
    return picked.iloc[0], source


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


def claim_verdict(claim: Claim, row: pd.Series, equivalence: pd.Series | None, alpha: float) -> tuple[str, str]:
    """The verdict on one claim and what it rests on (see the module docstring).

    Parameters
    ----------
    claim : Claim
    row : pandas.Series
        The claim's test: ``estimate`` and ``p``.
    equivalence : pandas.Series or None
        For a claim of absence, its equivalence row (``p_equivalence``, ``bound``).
    alpha : float

    Returns
    -------
    verdict : str
        One of :data:`VERDICTS`.
    detail : str
    """
    p, estimate = _number(row["p"]), _number(row["estimate"])
    significant = bool(np.isfinite(p) and p < alpha)
    if claim.direction is not None:
        if significant and np.sign(estimate) == claim.direction:
            return "supported", f"p < {alpha:g} in the claimed direction"
        if significant:
            return "not supported", "an effect in the opposite direction"
        return "not supported", "no effect found (absence not tested)"
    p_eq = _number(equivalence["p_equivalence"])
    shown = (claim.bound or "no effect beyond the bound {bound:.3g}").format(**equivalence.to_dict())
    if significant:
        return "not supported", "an effect was found"
    if np.isfinite(p_eq) and p_eq < alpha:
        return "evidence of absence", f"{shown} (equivalence test p = {p_eq:.3g})"
    return "not supported", f"inconclusive: no effect found, but not shown: {shown} (equivalence test p = {p_eq:.3g})"


def _calibration_status(calibration: pd.DataFrame | None, claim_id: str) -> str | None:
    """``"calibrated"``, ``"not calibrated"`` or None (not in the calibration) for one claim."""
    if calibration is None:
        return None
    missing = {"claim_id", "calibrated"} - set(calibration.columns)
    if missing:
        raise ValueError(
            f"The calibration table lacks the column(s) {sorted(missing)}; pass the calibration chapter's "
            "claims table (results/calibration/claims.tsv) of this version of the book."
        )
    row = calibration[calibration["claim_id"] == claim_id]
    if row.empty or pd.isna(row["calibrated"].iloc[0]):
        return None
    return "calibrated" if str(row["calibrated"].iloc[0]) == "True" else "not calibrated"


def claims_ledger(
    results_dir: str | Path = "results",
    claims: tuple[Claim, ...] = CLAIMS,
    alpha: float = 0.05,
    calibration: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per claim, read from the result tables of the book's runs.

    Parameters
    ----------
    results_dir : str or Path
        Folder holding one subfolder per run of ``book/runs.yml``.
    claims : sequence of Claim
        From the registry (:data:`craving_circuits.verdict.claims.CLAIMS`).
    alpha : float
        Level of every decision.
    calibration : pandas.DataFrame, optional
        The calibration chapter's per-claim table
        (:func:`craving_circuits.verdict.calibration.claims_table`, written as
        ``calibration/claims.tsv``): the ``calibration`` column says whether
        each claim's test holds its level under every simulated condition
        (``"calibrated"``), does not (``"not calibrated"``; the calibration
        chapter says why), or was not calibrated (empty).

    Returns
    -------
    ledger : pandas.DataFrame
        Columns :data:`LEDGER_COLUMNS`; ``source`` names the file relative to
        ``results_dir`` (and for a claim of absence, the equivalence file too).

    Raises
    ------
    FileNotFoundError
        When a result table is missing (naming it and the run that writes it).
    ValueError
        When a table does not hold exactly one row for a claim's test.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}.")
    results_dir = Path(results_dir)
    skipped = set(not_tested(results_dir, claims)["claim_id"])
    rows = []
    for claim in claims:
        if claim.claim_id in skipped:
            continue
        row, source = _recovery_row(results_dir, claim.estimand)
        equivalence, sources = None, [source]
        if claim.direction is None:
            equivalence, eq_source = _equivalence_row(results_dir, claim.equivalence)
            if eq_source not in sources:
                sources.append(eq_source)
        verdict, detail = claim_verdict(claim, row, equivalence, alpha)
        present = row.get("planted_present")
        has_truth = isinstance(present, (bool, np.bool_)) or str(present) in ("True", "False")
        present = (str(present) == "True") if has_truth else None
        if has_truth:
            p = _number(row["p"])
            found = bool(np.isfinite(p) and p < alpha)
            if present and claim.direction is not None:
                found = found and np.sign(_number(row["estimate"])) == claim.direction
            if claim.direction is None and not present:
                # a planted absence is recovered only when it was shown, never by a test that did not decide
                agree = verdict == "evidence of absence"
            else:
                agree = found == present
        else:
            agree = None
        rows.append(
            {
                "claim_id": claim.claim_id,
                "study": claim.study,
                "claim": claim.text,
                "test": row["test"],
                "statistic": claim.statistic,
                "estimate": _number(row["estimate"]),
                "ci_low": _number(row["ci_low"]),
                "ci_high": _number(row["ci_high"]),
                "p": _number(row["p"]),
                "verdict": verdict,
                "detail": detail,
                "planted": _number(row.get("planted")) if has_truth else np.nan,
                "planted_present": present,
                "agree": agree,
                "calibration": _calibration_status(calibration, claim.claim_id),
                "source": "; ".join(sources),
            }
        )
    table = pd.DataFrame(rows, columns=LEDGER_COLUMNS)
    if table["agree"].isna().all():  # no planted truth anywhere: verdicts without a truth column
        table = table.drop(columns=TRUTH_COLUMNS)
    return table


def recovery_table(ledger: pd.DataFrame) -> pd.DataFrame | None:
    """The ledger's verdicts next to the planted truth; None when the data carry no truth.

    Returns
    -------
    table : pandas.DataFrame or None
        ``claim_id, verdict, planted, planted_present, estimate, p, agree``.
    """
    if not set(TRUTH_COLUMNS) <= set(ledger.columns) or ledger["agree"].isna().all():
        return None
    return ledger[["claim_id", "verdict", "planted", "planted_present", "estimate", "p", "agree"]]


def ledger_summary(ledger: pd.DataFrame, untested: pd.DataFrame | None = None) -> dict:
    """Counts and sentences for the prose: claims, each verdict, agreement with the planted truth.

    Parameters
    ----------
    ledger : pandas.DataFrame
        From :func:`claims_ledger`.
    untested : pandas.DataFrame, optional
        From :func:`not_tested`.

    Returns
    -------
    summary : dict
        ``n_claims`` (claims in the ledger), ``n_supported``,
        ``n_not_supported``, ``n_evidence_of_absence``, ``n_with_truth`` and
        ``n_agree``; ``truth_agreement``, a sentence on the agreement with the
        planted truth, or saying that the data carry none; ``n_not_tested`` and
        ``not_tested``, a sentence naming the chapters that did not run (empty
        when every chapter ran).
    """
    verdicts = ledger["verdict"].value_counts()
    with_truth = ledger["agree"].notna() if "agree" in ledger.columns else pd.Series(False, index=ledger.index)
    n_with_truth = int(with_truth.sum())
    n_agree = int(ledger.loc[with_truth, "agree"].astype(bool).sum()) if n_with_truth else 0
    if n_with_truth:
        agreement = (
            f"Where the data carry a planted truth, the tests' decisions agree with it for {n_agree} of "
            f"{n_with_truth} claims."
        )
    else:
        agreement = (
            "The data carry no planted truth: the verdicts are the tests' decisions on these data, and none is "
            "compared with a truth."
        )
    untested = untested if untested is not None else pd.DataFrame(columns=["claim_id", "chapter"])
    chapters = list(dict.fromkeys(untested["chapter"]))
    missing = (
        f"{len(untested)} {'claim is' if len(untested) == 1 else 'claims are'} not tested: the dataset lacks "
        f"the inputs of {', '.join(chapters)} (listed below)."
        if len(untested)
        else ""
    )
    return {
        "n_claims": len(ledger),
        "n_supported": int(verdicts.get("supported", 0)),
        "n_not_supported": int(verdicts.get("not supported", 0)),
        "n_evidence_of_absence": int(verdicts.get("evidence of absence", 0)),
        "n_with_truth": n_with_truth,
        "n_agree": n_agree,
        "truth_agreement": agreement,
        "n_not_tested": len(untested),
        "not_tested": missing,
    }


def ledger_overview(ledger: pd.DataFrame) -> pd.DataFrame:
    """The ledger in one small table: per study and in all, the claims, each verdict and the agreement.

    Parameters
    ----------
    ledger : pandas.DataFrame
        From :func:`claims_ledger` (``study``, ``verdict``, ``calibration``, and ``agree``
        unless the data carry no truth).

    Returns
    -------
    overview : pandas.DataFrame, shape (n_studies + 1, 8)
        One row per study in ledger order, then ``all``: ``study``,
        ``claims``, one count column per verdict of :data:`VERDICTS`,
        ``calibrated`` (claims whose test holds its level in the calibration),
        ``with_truth`` (claims a planted truth can check; 0 on real data) and
        ``agree`` (of those, the decisions that agree with it).
    """
    rows = []
    for study, part in [*ledger.groupby("study", sort=False), ("all", ledger)]:
        verdicts = part["verdict"].value_counts()
        agree = part["agree"] if "agree" in part.columns else pd.Series(None, index=part.index, dtype=object)
        with_truth = agree.notna()  # no truth column at all on real data
        rows.append(
            {
                "study": study,
                "claims": len(part),
                **{verdict: int(verdicts.get(verdict, 0)) for verdict in VERDICTS},
                "calibrated": int((part["calibration"] == "calibrated").sum()),
                "with_truth": int(with_truth.sum()),
                "agree": int(agree[with_truth].astype(bool).sum()),
            }
        )
    return pd.DataFrame(rows)
