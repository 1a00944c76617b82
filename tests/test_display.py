"""The book's table views: decision columns first, formatted numbers, nothing cut, the full table downloadable."""

import base64
import io
import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from craving_circuits.book.display import MISSING, captioned_figure, format_column, show_table, table_columns


def _cells(html_text: str) -> list[list[str]]:
    rows = re.findall(r"<tr>(.*?)</tr>", html_text)
    return [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row) for row in rows]


def test_columns_formatted_with_the_same_decimals_and_p_values_and_missing_as_a_dash():
    assert format_column(pd.Series([0.1234, -0.04567, np.nan], name="estimate")) == ["0.123", "-0.046", MISSING]
    assert format_column(pd.Series([12.345, 3.1], name="t")) == ["12.3", "3.1"]
    assert format_column(pd.Series([0.0004, 0.0312, 0.5], name="p")) == ["<0.001", "0.031", "0.500"]
    assert format_column(pd.Series([0.0004, 0.2], name="p_fwe")) == ["<0.001", "0.200"]
    assert format_column(pd.Series([3.0, 12.0], name="n")) == ["3", "12"]
    assert format_column(pd.Series([True, False, None], name="agree", dtype=object)) == ["yes", "no", MISSING]
    assert format_column(pd.Series(["a long reason", None], name="reason")) == ["a long reason", MISSING]
    assert format_column(pd.Series([1234567.0, 2.4], name="voxels")) == ["1\u2009234\u2009567", "2"]
    assert format_column(pd.Series([12.3, 0.0004], name="rate")) == ["12.3000", "0.0004"]


def test_decision_columns_come_first_and_what_does_not_fit_is_named():
    table = pd.DataFrame(
        {
            "se": [0.1, 0.2],
            "p": [0.01, 0.4],
            "estimate": [0.5, 0.1],
            "term": ["craving | CUD", "craving | control"],
            "verdict": ["supported", "not supported"],
            **{f"extra_column_{i}": [1.5, 2.5] for i in range(12)},
        }
    )
    assert table_columns(table)[:4] == ["term", "verdict", "estimate", "p"]
    html_text = show_table(table, tsv_name="roi_tests.tsv").data
    cells = _cells(html_text)
    assert cells[0][:4] == ["term", "verdict", "estimate", "p"]
    assert cells[1][:4] == ["craving | CUD", "supported", "0.500", "0.010"]
    assert len(cells[0]) < len(table.columns)  # the column is too narrow for all of them
    note = re.search(r'<p class="cc-note">(.*)</p>', html_text).group(1)
    assert "not shown here: " in note and "extra_column_11" in note
    with pytest.raises(ValueError, match="no column"):
        show_table(table, columns=["term", "nothing"])


def test_every_row_is_shown_and_the_download_is_the_full_table():
    table = pd.DataFrame({"file": [f"results/run/{i}.tsv" for i in range(81)], "sha256": ["ab" * 8] * 81})
    table.loc[3, "sha256"] = np.nan
    html_text = show_table(table, tsv_name="hashes.tsv").data
    assert len(_cells(html_text)) == 82 and "..." not in html_text
    uri = re.search(r'href="data:text/tab-separated-values;base64,([^"]+)"', html_text).group(1)
    back = pd.read_csv(io.StringIO(base64.b64decode(uri).decode()), sep="\t", na_values=["n/a"])
    pd.testing.assert_frame_equal(back, table)
    assert f"{MISSING} : no value" in html_text
    assert "http" not in html_text


def test_an_empty_table_is_a_sentence():
    empty = pd.DataFrame(columns=["participant_id", "reason"])
    html_text = show_table(empty, empty="No run or participant was excluded.").data
    assert "No run or participant was excluded." in html_text and "<table" not in html_text


def test_runs_side_by_side_are_flattened_and_a_captioned_figure_is_inline():
    wide = pd.DataFrame(
        [[0.1, "equivalent", 0.3, "not equivalent"]],
        index=pd.Index(["drug x state | CUD"], name="term"),
        columns=pd.MultiIndex.from_product([["run a", "run b"], ["estimate", "verdict"]]),
    )
    cells = _cells(show_table(wide).data)
    assert cells[0] == ["term", "run a: estimate", "run a: verdict", "run b: estimate", "run b: verdict"]
    assert cells[1] == ["drug x state | CUD", "0.100", "equivalent", "0.300", "not equivalent"]
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1])
    out = captioned_figure(fig, caption="A line.", alt="A rising line").data
    assert out.startswith('<figure class="cc-figure"><img src="data:image/png;base64,')
    assert 'alt="A rising line"' in out and "<figcaption>A line.</figcaption>" in out
