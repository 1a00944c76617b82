"""A chapter's "what this chapter finds" box: the ledger's verdicts on its claims, from its own tables."""

import numpy as np
import pandas as pd

from craving_circuits.book.display import findings_box
from craving_circuits.simulate import roi_level
from craving_circuits.simulate.cocaine import cocaine_params
from craving_circuits.verdict import calibration
from craving_circuits.verdict import claims as registry
from craving_circuits.verdict.findings import FINDING_COLUMNS, chapter_findings


def _chapters(preset: str, seed: int = 0) -> dict:
    params = cocaine_params(preset, seed=seed)
    tables = roi_level.cocaine_roi_study(params)
    return calibration._cocaine_chapters(tables, 0.05, 0.5, 0.8, 200, np.random.default_rng(seed))


def test_findings_decide_as_the_calibration_reads_the_same_tables():
    for preset in ("paper", "null"):
        chapters = _chapters(preset)
        decided = calibration._claims_table("cocaine", chapters, 0.05).set_index("claim_id")
        for chapter, tables in chapters.items():
            findings = chapter_findings(chapter, tables)
            assert list(findings.columns) == FINDING_COLUMNS
            expected = [c.claim_id for c in registry.CLAIMS if c.estimand.chapter == chapter]
            assert list(findings["claim_id"]) == expected and expected
            for row in findings.itertuples(index=False):
                other = decided.loc[row.claim_id]
                assert row.estimate == other["estimate"] and row.p == other["p"]
                claim = registry.claim(row.claim_id)
                if claim.direction is not None:
                    assert (row.verdict == "supported") == bool(other["found"]), row
                else:
                    shown = bool(other["equivalent"]) and not bool(other["found"])
                    assert (row.verdict == "evidence of absence") == shown, row


def test_a_chapter_without_claims_and_a_test_that_could_not_be_estimated():
    assert chapter_findings("no_such_chapter", {}).empty
    chapters = _chapters("paper")
    tables = {name: table.iloc[0:0] for name, table in chapters["thalamus_glutamate"].items()}
    findings = chapter_findings("thalamus_glutamate", tables)
    assert (findings["verdict"] == "not estimated").all()


def test_the_box_lists_each_claim_with_its_verdict_and_numbers():
    findings = pd.DataFrame(
        [
            {
                "claim_id": "a",
                "claim": "Craving raises X",
                "test": "one-sample t",
                "statistic": "mean change",
                "estimate": 0.1234,
                "ci_low": 0.05,
                "ci_high": 0.2,
                "p": 0.0004,
                "verdict": "supported",
                "detail": "p < 0.05 in the claimed direction",
            },
            {
                "claim_id": "b",
                "claim": "NAC changes nothing",
                "test": "drug x state",
                "statistic": "d_z",
                "estimate": np.nan,
                "ci_low": np.nan,
                "ci_high": np.nan,
                "p": np.nan,
                "verdict": "not estimated",
                "detail": "the data could not estimate this test",
            },
        ]
    )
    html_text = findings_box(findings, data="Simulated study, preset null.").data
    assert "What this chapter finds" in html_text and "Simulated study, preset null." in html_text
    assert "<strong>Craving raises X</strong>" in html_text
    assert "mean change 0.123, 95 % CI 0.05 to 0.2, p &lt; 0.001." in html_text
    assert html_text.count("<li>") == 2 and "not estimated" in html_text
    assert "tests none of the claims" in findings_box(findings.iloc[0:0]).data
