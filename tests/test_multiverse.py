"""The denoising multiverse: the crossed specifications, per-specification ROI tests equal to the
seed chapter's tests on that strategy alone, and the conclusions on tables with known answers."""

import numpy as np
import pandas as pd
import pytest

from craving_circuits.book import plotting
from craving_circuits.cocaine import multiverse, secondlevel
from craving_circuits.cocaine.denoise import Strategy
from craving_circuits.io.schemas import ROI_COLUMNS
from craving_circuits.verdict import claims, planted
from figure_checks import assert_book_figure


def test_specifications_cross_every_choice():
    specs = multiverse.specifications()
    assert len(specs) == 20 and len({s.name for s in specs}) == 20
    # no denoising and the book's default are specifications too
    assert {s.confounds for s in specs} == {"none", "simple", "scrubbing", "compcor", "conn"}
    assert sum(s.global_signal for s in specs) == 10
    assert {(s.high_pass, s.low_pass) for s in specs} == {(0.008, 0.09), (0.01, 0.1)}
    with pytest.raises(ValueError, match="repeat"):
        multiverse.specifications(["simple", "simple"])
    with pytest.raises(ValueError, match="Unknown confound strategy"):
        multiverse.specifications(["fancy"])


def _roi_table(strategies, rise, seed=0):
    """Two groups, two sessions, two states; CUD rise ``rise[strategy]`` on both targets."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(20):
        group = "CUD" if p < 10 else "control"
        for s_idx, drug in enumerate(("placebo", "NAC")):
            for state in ("neutral", "craving"):
                for target in ("dlpfc", "thalamus_midline"):
                    base = 0.2 + rng.normal(0, 0.1)
                    for name in strategies:
                        shift = rise[name] if (group == "CUD" and state == "craving") else 0.0
                        rows.append(
                            (
                                f"sub-{p:02d}",
                                group,
                                f"ses-{s_idx + 1}",
                                drug,
                                state,
                                name,
                                "nacc",
                                target,
                                base + shift + rng.normal(0, 0.05),
                            )
                        )
    return pd.DataFrame(rows, columns=ROI_COLUMNS)


def test_table_is_the_chapter_model_per_specification_and_conclusions():
    specs = multiverse.specifications(["simple", "compcor"], [False], [(0.01, 0.1)])
    names = [s.name for s in specs]
    roi = _roi_table(names, {names[0]: 0.5, names[1]: 0.02})
    table = multiverse.multiverse_table(roi, specs)
    assert list(table.columns) == multiverse.MULTIVERSE_COLUMNS
    assert len(table) == 2 * 2 * len(multiverse.CLAIM_TERMS)
    # each row is the seed chapter's ROI test on that strategy alone
    alone = secondlevel.roi_state_tests(secondlevel.roi_state_differences(roi, names[0]))
    alone = alone.set_index(["target", "term"])
    mine = table[table["strategy"] == names[0]].set_index(["target", "term"])
    for key in mine.index:
        assert mine.loc[key, "estimate"] == pytest.approx(alone.loc[key, "estimate"])
        assert mine.loc[key, "p"] == pytest.approx(alone.loc[key, "p"])
    conclusions = multiverse.robust_conclusions(table).set_index(["target", "term"])
    # a rise under one specification only depends on the specification; controls stay flat everywhere
    assert conclusions.loc[("dlpfc", "craving - neutral | CUD"), "conclusion"] == "depends on the specification"
    assert (
        conclusions.loc[("dlpfc", "craving - neutral | control"), "conclusion"]
        == "not significant in any specification"
    )
    both = multiverse.multiverse_table(_roi_table(names, {names[0]: 0.5, names[1]: 0.4}), specs)
    assert (
        multiverse.robust_conclusions(both).set_index("term").loc["craving - neutral | CUD", "conclusion"]
        == "significant with one sign in all specifications"
    ).all()
    matrix = multiverse.specification_matrix(table[(table["target"] == "dlpfc") & (table["term"] == "group x state")])
    assert matrix.sum(axis=1).tolist() == [3, 3]  # one confound set, one GSR choice, one band each
    estimates = claims.estimates("multiverse", {"multiverse": table})
    assert len(estimates) == len(table) and set(estimates["effect"]) >= {"craving_nacc_dlpfc_cud"}


def test_missing_specification_is_named():
    specs = multiverse.specifications(["simple"], [False], [(0.01, 0.1)])
    roi = _roi_table(["something else"], {"something else": 0.0})
    with pytest.raises(ValueError, match="comparison strategies"):
        multiverse.multiverse_table(roi, specs)
    with pytest.raises(ValueError, match="lacks the column"):
        multiverse.robust_conclusions(pd.DataFrame({"target": []}))


def test_specification_curve_figure():

    specs = [Strategy("simple", False, 0.01, 0.1), Strategy("simple", True, 0.01, 0.1)]
    names = [s.name for s in specs]
    table = multiverse.multiverse_table(_roi_table(names, {names[0]: 0.3, names[1]: 0.3}), specs)
    fig = plotting.plot_specification_curve(table, "dlpfc", "craving - neutral | CUD")
    assert len(fig.axes) == 2
    assert_book_figure(fig)
    with pytest.raises(ValueError, match="No rows"):
        plotting.plot_specification_curve(table, "dlpfc", "nothing")
    recovery = pd.DataFrame(
        {
            "effect": ["a", "a", "b"],
            "test": ["x", "y", "z"],
            "planted": [1.0, 1.0, 0.0],
            "found": [True, False, False],
            "agree": [True, False, True],
        }
    )
    summary = planted.agreement_by_effect(recovery).set_index("effect")
    assert summary.loc["a", "n_tests"] == 2 and summary.loc["a", "n_found"] == 1 and summary.loc["b", "n_agree"] == 1


def test_each_specification_conclusion_and_the_count_of_specifications_that_find_it():
    """A rise under one specification only: the tidy table and the matrix name it, the summary counts 1 of 2,
    and the specification without evidence is listed."""
    specs = multiverse.specifications(["none", "compcor"], [False], [(0.01, 0.1)])
    names = [s.name for s in specs]
    table = multiverse.multiverse_table(_roi_table(names, {names[0]: 0.5, names[1]: 0.0}), specs)
    long = multiverse.specification_conclusions(table).set_index(["strategy", "target", "term"])
    assert len(long) == len(table)
    assert set(long["conclusion"]) <= set(multiverse.CONCLUSIONS)
    assert long.loc[(names[0], "dlpfc", "craving - neutral | CUD"), "conclusion"] == "rise"
    assert long.loc[(names[1], "dlpfc", "craving - neutral | CUD"), "conclusion"] == "no evidence of a change"
    # controls fell by construction nowhere: a CUD rise makes the group x state term positive under none
    assert long.loc[(names[0], "dlpfc", "group x state"), "conclusion"] == "rise"
    matrix = multiverse.conclusion_matrix(table)
    pd.testing.assert_frame_equal(multiverse.conclusion_matrix(multiverse.specification_conclusions(table)), matrix)
    assert list(matrix.index) == names and matrix.shape == (2, 2 * len(multiverse.CLAIM_TERMS))
    assert matrix.loc[names[0], "craving - neutral | CUD (dlpfc)"] == "rise"
    summary = multiverse.robust_conclusions(table).set_index(["target", "term"])
    row = summary.loc[("dlpfc", "craving - neutral | CUD")]
    assert row["summary"] == "1 of 2 specifications find a rise, 0 a fall"
    assert row["no_evidence_under"] == names[1]
    # a conclusion shared by every specification lists none
    assert summary.loc[("dlpfc", "craving - neutral | control"), "no_evidence_under"] == ""
    falling = multiverse.multiverse_table(_roi_table(names, {names[0]: -0.5, names[1]: -0.5}), specs)
    assert (
        multiverse.specification_conclusions(falling).query("term == 'craving - neutral | CUD'")["conclusion"] == "fall"
    ).all()
