"""The claims ledger: verdicts from tiny result folders with known answers, exact errors for missing or
ambiguous rows, and the declared claims against the runs of the book."""

import inspect
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from craving_circuits.io.schemas import RECOVERY_COLUMNS
from craving_circuits.io.tables import write_table
from craving_circuits.verdict import claims as registry
from craving_circuits.verdict import ledger
from craving_circuits.verdict.claims import Claim, Estimand

ROOT = Path(__file__).resolve().parents[1]


def _recovery(rows):
    return pd.DataFrame(
        [dict(zip(RECOVERY_COLUMNS, (f"run/{row[0]}", *row))) for row in rows], columns=RECOVERY_COLUMNS
    )


def _claim(claim_id, effect, direction, equivalence=None, chapter="run"):
    estimand = Estimand(f"{chapter}/{effect}", chapter, effect, f"test of {effect}", "t")
    eq = (
        Estimand(f"{chapter}/eq/{equivalence}", chapter, effect, "TOST", "evidence", match=(("term", equivalence),))
        if equivalence
        else None
    )
    return Claim(
        claim_id=claim_id,
        study="s",
        text=f"claim {claim_id}",
        estimand=estimand,
        statistic="r",
        direction=direction,
        test=len,
        level="roi",
        equivalence=eq,
    )


@pytest.fixture
def results(tmp_path):
    write_table(
        _recovery(
            [
                ("up", "test of up", 0.5, 0.4, 0.1, 0.7, 0.001, True, True, True),
                ("down", "test of down", -0.5, 0.4, 0.1, 0.7, 0.001, True, True, False),  # wrong sign
                ("missed", "test of missed", 0.5, 0.1, -0.2, 0.4, 0.30, True, False, False),
                ("zero", "test of zero", 0.0, 0.02, -0.1, 0.14, 0.70, False, False, True),
                ("vague", "test of vague", 0.0, 0.1, -0.3, 0.5, 0.40, False, False, True),
                ("spurious", "test of spurious", 0.0, 0.3, 0.1, 0.5, 0.01, False, True, False),
            ]
        ),
        tmp_path / "run",
        "recovered_vs_planted",
    )
    write_table(
        pd.DataFrame({"term": ["zero", "vague", "spurious"], "p_equivalence": [0.001, 0.2, 0.6], "bound": 0.3}),
        tmp_path / "run",
        "evidence",
    )
    return tmp_path


def test_verdicts_and_agreement_with_the_planted_truth(results):
    claims = [
        _claim("a", "up", 1),
        _claim("b", "down", -1),
        _claim("c", "missed", 1),
        _claim("d", "zero", None, "zero"),
        _claim("e", "vague", None, "vague"),
        _claim("f", "spurious", None, "spurious"),
    ]
    table = ledger.claims_ledger(results, claims).set_index("claim_id")
    assert list(table.columns) == ledger.LEDGER_COLUMNS[1:]
    assert list(table["verdict"]) == [
        "supported",
        "not supported",
        "not supported",
        "evidence of absence",
        "not supported",
        "not supported",
    ]
    assert "opposite direction" in table.loc["b", "detail"]
    assert table.loc["e", "detail"].startswith("inconclusive")
    assert table.loc["f", "detail"] == "an effect was found"
    # a planted fall found as a rise is no agreement; a planted absence agrees only when equivalence is shown
    assert list(table["agree"]) == [True, False, False, True, False, False]
    # an inconclusive test of a planted absence does not recover it; the bound is named
    assert table.loc["e", "detail"] == (
        "inconclusive: no effect found, but not shown: no effect beyond the bound 0.3 (equivalence test p = 0.2)"
    )
    assert table.loc["d", "source"] == "run/recovered_vs_planted.tsv; run/evidence.tsv"
    assert table.loc["d", "detail"].startswith("no an effect beyond the bound 0.3") is False
    bounded = ledger.claims_ledger(
        results, [replace(_claim("d", "zero", None, "zero"), bound="no effect as large as {bound:g}")]
    )
    assert bounded.loc[0, "detail"] == "no effect as large as 0.3 (equivalence test p = 0.001)"
    summary = ledger.ledger_summary(table.reset_index())
    assert summary == {
        "n_claims": 6,
        "n_supported": 1,
        "n_not_supported": 4,
        "n_evidence_of_absence": 1,
        "n_with_truth": 6,
        "n_agree": 2,
        "truth_agreement": (
            "Where the data carry a planted truth, the tests' decisions agree with it for 2 of 6 claims."
        ),
        "n_not_tested": 0,
        "not_tested": "",
    }
    assert list(ledger.recovery_table(table.reset_index())["agree"]) == list(table["agree"])


def test_a_stricter_alpha_changes_the_decisions(results):
    table = ledger.claims_ledger(results, [_claim("a", "up", 1)], alpha=0.0005)
    assert table.loc[0, "verdict"] == "not supported"


def test_without_ground_truth_the_verdicts_stand_without_a_truth_column(results):
    path = results / "run" / "recovered_vs_planted.tsv"
    plain = pd.read_csv(path, sep="\t").assign(planted=np.nan, planted_present=None)
    write_table(plain, results / "run", "recovered_vs_planted")
    table = ledger.claims_ledger(results, [_claim("a", "up", 1), _claim("d", "zero", None, "zero")])
    assert list(table.columns) == [c for c in ledger.LEDGER_COLUMNS if c not in ledger.TRUTH_COLUMNS]
    assert list(table["verdict"]) == ["supported", "evidence of absence"]
    assert ledger.recovery_table(table) is None
    summary = ledger.ledger_summary(table)
    assert summary["n_with_truth"] == 0 and summary["n_agree"] == 0
    assert "no planted truth" in summary["truth_agreement"] and "agree" not in summary["truth_agreement"]
    overview = ledger.ledger_overview(table).set_index("study")
    assert overview.loc["all", "claims"] == 2 and overview.loc["all", "with_truth"] == 0
    assert overview.loc["all", "agree"] == 0 and overview.loc["all", "evidence of absence"] == 1


def test_claims_of_a_skipped_chapter_are_listed_not_tested(results):
    """A chapter the build skipped (its inputs absent) answers none of its claims, even with old tables there."""
    claims = [_claim("a", "up", 1), _claim("g", "up", 1, chapter="other")]
    write_table(_recovery([("up", "test of up", 0.5, 0.4, 0.1, 0.7, 0.001, True, True, True)]), results / "other", "x")
    (results / "other" / "run.json").write_text('{"status": "skipped", "reason": "no ASL series in /data"}')
    table = ledger.claims_ledger(results, claims)
    assert list(table["claim_id"]) == ["a"]
    untested = ledger.not_tested(results, claims)
    assert untested.to_dict("records") == [
        {"claim_id": "g", "claim": "claim g", "chapter": "other", "reason": "no ASL series in /data"}
    ]
    summary = ledger.ledger_summary(table, untested)
    assert summary["n_claims"] == 1 and summary["n_not_tested"] == 1
    assert summary["not_tested"] == "1 claim is not tested: the dataset lacks the inputs of other (listed below)."
    # a chapter that ran (status ok) is read as always
    (results / "other" / "run.json").write_text('{"status": "ok"}')
    assert ledger.not_tested(results, claims).empty
    with pytest.raises(FileNotFoundError, match="recovered_vs_planted"):
        ledger.claims_ledger(results, claims)


def test_missing_files_and_ambiguous_rows_are_named(results):
    with pytest.raises(FileNotFoundError, match="other_run"):
        ledger.claims_ledger(results, [_claim("a", "up", 1, chapter="other_run")])
    with pytest.raises(ValueError, match="0 rows of estimand 'run/nothing'"):
        ledger.claims_ledger(results, [_claim("a", "nothing", 1)])
    with pytest.raises(ValueError, match="0 rows match"):
        ledger.claims_ledger(results, [_claim("d", "zero", None, "other")])
    table = pd.read_csv(results / "run" / "recovered_vs_planted.tsv", sep="\t")
    write_table(pd.concat([table, table.iloc[:1]]), results / "run", "recovered_vs_planted")
    with pytest.raises(ValueError, match="2 rows of estimand"):
        ledger.claims_ledger(results, [_claim("a", "up", 1)])
    write_table(table.drop(columns="estimand"), results / "run", "recovered_vs_planted")
    with pytest.raises(ValueError, match="no estimand column"):
        ledger.claims_ledger(results, [_claim("a", "up", 1)])
    with pytest.raises(ValueError, match="alpha"):
        ledger.claims_ledger(results, [], alpha=1.5)


def test_the_ledger_reads_the_registry():
    """The book build runs the ledger notebook on every declared claim (test_book); here, the defaults."""
    assert inspect.signature(ledger.claims_ledger).parameters["claims"].default is registry.CLAIMS
    runs = {entry["name"] for entry in yaml.safe_load((ROOT / "book" / "runs.yml").read_text())}
    assert {c.estimand.chapter for c in registry.CLAIMS} <= runs


def test_the_calibration_column_is_read_from_the_calibration_table(results):
    claims = [_claim("a", "up", 1), _claim("b", "down", -1), _claim("c", "missed", 1)]
    assert ledger.claims_ledger(results, claims)["calibration"].isna().all()  # no calibration given
    # as read back from calibration/claims.tsv: booleans, and an empty cell for a claim not calibrated at all
    write_table(pd.DataFrame({"claim_id": ["a", "b", "c"], "calibrated": [True, False, None]}), results, "claims")
    calibration = pd.read_csv(results / "claims.tsv", sep="\t")
    table = ledger.claims_ledger(results, claims, calibration=calibration)
    assert list(table["calibration"].fillna("")) == ["calibrated", "not calibrated", ""]
    with pytest.raises(ValueError, match="calibrated"):
        ledger.claims_ledger(results, claims, calibration=calibration.drop(columns="calibrated"))
    # the book runs the ledger after the calibration, whose table it reads
    plan = {entry["name"]: entry for entry in yaml.safe_load((ROOT / "book" / "runs.yml").read_text())}
    assert "calibration" in plan["claims_ledger"]["needs"]
