"""What one chapter finds: the verdict on each claim whose test the chapter computes, from its own tables.

The claims ledger (:mod:`craving_circuits.verdict.ledger`) reads every claim
from the result files of all runs once the book is built. A chapter's page
opens with the same verdicts for its own claims, computed from the tables the
chapter has just made (in memory), with the ledger's rules
(:func:`craving_circuits.verdict.ledger.claim_verdict`), so that the box at the
top of a page and the ledger cannot disagree. Run on the null study, the same
chapter says what it found there.

Data conventions
----------------
* ``tables``: the chapter's result tables by name, as the notebook writes them
  (``results/<run>/<name>.tsv``), including ``recovered_vs_planted`` when the
  chapter computes it.
* The returned table has the columns :data:`FINDING_COLUMNS`, one row per claim
  of the registry whose test is in ``chapter``, in the registry's order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from craving_circuits.verdict.claims import CLAIMS, Claim
from craving_circuits.verdict.ledger import claim_verdict

__all__ = ["FINDING_COLUMNS", "chapter_findings"]

#: Columns of :func:`chapter_findings`.
FINDING_COLUMNS = ["claim_id", "claim", "test", "statistic", "estimate", "ci_low", "ci_high", "p", "verdict", "detail"]


def _equivalence_row(claim: Claim, tables: dict, chapter: str) -> pd.Series | None:
    e = claim.equivalence
    if e is None or e.table not in tables:
        return None
    picked = e._rows(tables[e.table], f"{chapter}/{e.table}")
    return picked.iloc[0] if len(picked) == 1 else None


def chapter_findings(
    chapter: str, tables: dict, alpha: float = 0.05, claims: tuple[Claim, ...] = CLAIMS
) -> pd.DataFrame:
    """The verdict on each claim tested in ``chapter``, from the chapter's result tables.

    Parameters
    ----------
    chapter : str
        The registry's chapter name (e.g. ``"nacc_seed_fc"``; a variant run of
        a notebook, such as the null study, uses its notebook's chapter).
    tables : dict of str -> pandas.DataFrame
        The chapter's result tables by name.
    alpha : float
    claims : sequence of Claim

    Returns
    -------
    findings : pandas.DataFrame
        Columns :data:`FINDING_COLUMNS`. A claim whose test the data could not
        estimate has the verdict ``"not estimated"``; a claim of absence whose
        equivalence table is not among ``tables`` gets its test only, with the
        verdict ``"not supported"`` when an effect was found and ``"not
        decided here"`` otherwise (the ledger decides it).
    """
    rows = []
    for claim in claims:
        if claim.estimand.chapter != chapter:
            continue
        read = claim.estimand.read(tables, f"{chapter}/")
        if not read:
            rows.append(
                {
                    "claim_id": claim.claim_id,
                    "claim": claim.text,
                    "statistic": claim.statistic,
                    "verdict": "not estimated",
                    "detail": "the data could not estimate this test",
                }
            )
            continue
        row = pd.Series(read[0])
        equivalence = _equivalence_row(claim, tables, chapter) if claim.direction is None else None
        if claim.direction is None and equivalence is None:
            p = float(row["p"])
            found = bool(np.isfinite(p) and p < alpha)
            verdict, detail = (
                ("not supported", "an effect was found")
                if found
                else (
                    "not decided here",
                    "no effect found; the equivalence test is in another chapter (see the ledger)",
                )
            )
        else:
            verdict, detail = claim_verdict(claim, row, equivalence, alpha)
        rows.append(
            {
                "claim_id": claim.claim_id,
                "claim": claim.text,
                "test": row["test"],
                "statistic": claim.statistic,
                "estimate": row["estimate"],
                "ci_low": row["ci_low"],
                "ci_high": row["ci_high"],
                "p": row["p"],
                "verdict": verdict,
                "detail": detail,
            }
        )
    return pd.DataFrame(rows, columns=FINDING_COLUMNS)
