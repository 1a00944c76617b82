"""The claims ledger: each claim of the two source studies against this book's result files.

Every row of the ledger is read from a result table that a notebook of the book
wrote (``results/<run>/<table>.tsv``); nothing is typed in by hand. A claim is
declared once, in :data:`CLAIMS`, by where its test lives:

* ``source``: ``"<run>/<table>"``, a ``recovered_vs_planted`` table (which
  carries the test, the estimate, its interval or corrected p, and the planted
  truth of a simulated study);
* ``effect`` and ``test``: the row of that table (``test`` is matched exactly);
* ``direction``: +1 or -1 for a claimed rise or fall; ``None`` for a claim of
  absence;
* ``equivalence``: for claims of absence, ``"<run>/<table>"`` and the column
  values that pick the equivalence test of the same quantity.

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
planted truth, as the chapters' "recovered vs planted" tables do; it is empty
for a study without ground truth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from craving_circuits.io.schemas import LEDGER_COLUMNS
from craving_circuits.io.tables import read_table

__all__ = ["CLAIMS", "LEDGER_COLUMNS", "VERDICTS", "claims_ledger", "ledger_summary"]


VERDICTS = ("supported", "not supported", "evidence of absence")

_SEED = "nacc_seed_fc/recovered_vs_planted"
_GLU = "thalamus_glutamate/recovered_vs_planted"
_NAC = "nac_null_effect/recovered_vs_planted"
_NAC_EVIDENCE = "nac_null_effect/evidence"
_CBF = "baclofen_cbf/recovered_vs_planted"
_CUE = "baclofen_mediation/recovered_vs_planted"


def _nac(outcome: str, label: str, test: str) -> dict:
    term = f"drug x state | CUD ({outcome})"
    return {"claim_id": f"nac_no_effect_{outcome}", "study": "cocaine",
            "claim": f"NAC does not change the craving rise of {label} in CUD",
            "source": _NAC, "effect": "nac_rating_effect_cud" if outcome == "rating" else "drug_x_state_cud",
            "test": test, "statistic": "mean difference", "direction": None,
            "equivalence": (_NAC_EVIDENCE, {"term": term})}


#: The claims of the two abstracts, paraphrased, each with the test of this book that answers it.
CLAIMS: tuple[dict, ...] = (
    {"claim_id": "craving_nacc_dlpfc", "study": "cocaine",
     "claim": "Craving raises NAcc-dlPFC connectivity in CUD", "source": _SEED,
     "effect": "craving_nacc_dlpfc_cud", "test": "voxelwise cluster FWE: craving_cud, positive cluster on dlpfc",
     "statistic": "peak t", "direction": 1},
    {"claim_id": "craving_nacc_thalamus", "study": "cocaine",
     "claim": "Craving raises NAcc-midline thalamus connectivity in CUD", "source": _SEED,
     "effect": "craving_nacc_thalamus_cud",
     "test": "voxelwise cluster FWE: craving_cud, positive cluster on thalamus_midline",
     "statistic": "peak t", "direction": 1},
    {"claim_id": "dlpfc_not_glu", "study": "cocaine",
     "claim": "The NAcc-dlPFC rise is not linked to the NAcc glutamate rise", "source": _GLU,
     "effect": "dlpfc_glu_coupling_cud", "test": "Pearson r within CUD (dlpfc)", "statistic": "Pearson r",
     "direction": None,
     "equivalence": ("thalamus_glutamate/coupling_equivalence", {"target": "dlpfc", "sample": "CUD"})},
    {"claim_id": "ocdus_predicts_thalamus", "study": "cocaine",
     "claim": "OCDUS obsessive thinking predicts the NAcc-thalamus rise", "source": _GLU,
     "effect": "ocdus_predicts_thalamus_cud", "test": "standardised beta of ocdus_obsessive (thalamus_midline)",
     "statistic": "standardised beta", "direction": 1},
    {"claim_id": "use_predicts_thalamus", "study": "cocaine",
     "claim": "Cocaine use intensity predicts the NAcc-thalamus rise", "source": _GLU,
     "effect": "use_predicts_thalamus_cud", "test": "standardised beta of cocaine_g_per_week (thalamus_midline)",
     "statistic": "standardised beta", "direction": 1},
    {"claim_id": "thalamus_glu", "study": "cocaine",
     "claim": "The NAcc-thalamus rise is coupled with the NAcc glutamate rise", "source": _GLU,
     "effect": "thalamus_glu_coupling_cud", "test": "Pearson r within CUD (thalamus_midline)",
     "statistic": "Pearson r", "direction": 1},
    _nac("dlpfc", "NAcc-dlPFC connectivity", "ROI mixed model: drug x state | CUD (dlpfc)"),
    _nac("thalamus_midline", "NAcc-thalamus connectivity", "ROI mixed model: drug x state | CUD (thalamus_midline)"),
    _nac("rating", "the craving rating", "paired t on ratings: drug x state | CUD"),
    {"claim_id": "baclofen_dlpfc_cbf", "study": "baclofen",
     "claim": "Baclofen raises right dlPFC resting CBF (group x time, FWE)", "source": _CBF,
     "effect": "group_x_time_dlpfc_cbf", "test": "voxelwise cluster FWE: group x time, positive cluster on dlpfc_right",
     "statistic": "peak t", "direction": 1},
    {"claim_id": "cbf_rise_insula", "study": "baclofen",
     "claim": "A larger dlPFC CBF rise goes with a smaller cue response in anterior ventral insula",
     "source": _CUE, "effect": "dlpfc_rise_cue_change",
     "test": "Pearson r: cue change ~ dlPFC CBF change (insula_anterior_ventral)", "statistic": "Pearson r",
     "direction": -1},
    {"claim_id": "cbf_rise_vmpfc", "study": "baclofen",
     "claim": "A larger dlPFC CBF rise goes with a smaller cue response in vmPFC", "source": _CUE,
     "effect": "dlpfc_rise_cue_change", "test": "Pearson r: cue change ~ dlPFC CBF change (vmpfc)",
     "statistic": "Pearson r", "direction": -1},
    {"claim_id": "baclofen_craving", "study": "baclofen",
     "claim": "Baclofen, not placebo, lowers cue-induced craving", "source": _CUE, "effect": "group_x_time_craving",
     "test": "mixed model on cue-induced craving: group x time", "statistic": "difference of T2 - T1 changes",
     "direction": -1},
)


def _table(results_dir: Path, source: str) -> tuple[pd.DataFrame, Path]:
    run, name = source.split("/")
    return read_table(results_dir / run, name), results_dir / run / f"{name}.tsv"


def _relative(path: Path, results_dir: Path) -> str:
    return path.relative_to(results_dir).as_posix()


def _one_row(table: pd.DataFrame, path: Path, match: dict) -> pd.Series:
    picked = table
    for column, value in match.items():
        if column not in table.columns:
            raise ValueError(f"{path} has no column {column!r}; was it written by this version of the book?")
        picked = picked[picked[column] == value]
    if len(picked) != 1:
        raise ValueError(f"{path}: {len(picked)} rows match {match} (expected exactly one); re-run the notebook "
                         "that writes it.")
    return picked.iloc[0]


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


def _verdict(claim: dict, row: pd.Series, equivalence: pd.Series | None, alpha: float) -> tuple[str, str]:
    p, estimate = _number(row["p"]), _number(row["estimate"])
    significant = bool(np.isfinite(p) and p < alpha)
    if claim["direction"] is not None:
        if significant and np.sign(estimate) == claim["direction"]:
            return "supported", f"p < {alpha:g} in the claimed direction"
        if significant:
            return "not supported", "an effect in the opposite direction"
        return "not supported", "no effect found (absence not tested)"
    p_eq = _number(equivalence["p_equivalence"])
    if significant:
        return "not supported", "an effect was found"
    if np.isfinite(p_eq) and p_eq < alpha:
        return "evidence of absence", f"equivalence shown (TOST p = {p_eq:.3g}, bound {equivalence['bound']:.3g})"
    return "not supported", f"inconclusive: no effect found, equivalence not shown (TOST p = {p_eq:.3g})"


def claims_ledger(results_dir: str | Path = "results", claims=CLAIMS, alpha: float = 0.05) -> pd.DataFrame:
    """One row per claim, read from the result tables of the book's runs.

    Parameters
    ----------
    results_dir : str or Path
        Folder holding one subfolder per run of ``book/runs.yml``.
    claims : sequence of dict
        Claim declarations (see :data:`CLAIMS` and the module docstring).
    alpha : float
        Level of every decision.

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
    rows = []
    for claim in claims:
        table, path = _table(results_dir, claim["source"])
        row = _one_row(table, path, {"effect": claim["effect"], "test": claim["test"]})
        equivalence, sources = None, [_relative(path, results_dir)]
        if claim["direction"] is None:
            eq_source, match = claim["equivalence"]
            eq_table, eq_path = _table(results_dir, eq_source)
            equivalence = _one_row(eq_table, eq_path, match)
            sources.append(_relative(eq_path, results_dir))
        verdict, detail = _verdict(claim, row, equivalence, alpha)
        present = row.get("planted_present")
        has_truth = isinstance(present, (bool, np.bool_)) or str(present) in ("True", "False")
        present = (str(present) == "True") if has_truth else None
        if has_truth:
            p = _number(row["p"])
            found = bool(np.isfinite(p) and p < alpha)
            if present and claim["direction"] is not None:
                found = found and np.sign(_number(row["estimate"])) == claim["direction"]
            agree = found == present
        else:
            agree = None
        rows.append({"claim_id": claim["claim_id"], "study": claim["study"], "claim": claim["claim"],
                     "test": claim["test"], "statistic": claim["statistic"], "estimate": _number(row["estimate"]),
                     "ci_low": _number(row["ci_low"]), "ci_high": _number(row["ci_high"]), "p": _number(row["p"]),
                     "verdict": verdict, "detail": detail,
                     "planted": _number(row.get("planted")) if has_truth else np.nan,
                     "planted_present": present, "agree": agree, "source": "; ".join(sources)})
    return pd.DataFrame(rows, columns=LEDGER_COLUMNS)


def ledger_summary(ledger: pd.DataFrame) -> dict:
    """Counts for the prose: claims, each verdict, and agreement with the planted truth.

    Returns
    -------
    summary : dict
        ``n_claims``, ``n_supported``, ``n_not_supported``,
        ``n_evidence_of_absence``, ``n_with_truth`` and ``n_agree``.
    """
    verdicts = ledger["verdict"].value_counts()
    with_truth = ledger["agree"].notna()
    return {"n_claims": len(ledger), "n_supported": int(verdicts.get("supported", 0)),
            "n_not_supported": int(verdicts.get("not supported", 0)),
            "n_evidence_of_absence": int(verdicts.get("evidence of absence", 0)),
            "n_with_truth": int(with_truth.sum()), "n_agree": int(ledger.loc[with_truth, "agree"].astype(bool).sum())}
