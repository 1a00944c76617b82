"""Result tables as the book shows them: curated, fitting the text column, the full table one click away.

A chapter's result tables are tidy and wide (every column a later step or a
reader may need). On the page a reader needs the decision first: which test,
which verdict, the estimate and its interval, the p-value. :func:`show_table`
draws such a view of a table as HTML:

* the columns asked for, in that order (by default the identifying columns,
  then the decision columns, then estimate, interval and p), as many as fit
  the text column; the others are named under the table;
* numbers formatted per column with the same decimals down a column, p-values
  as ``<0.001`` below 0.001, booleans as ``yes``/``no``, missing values as a
  dash with a note saying so; no cell is cut;
* long tables scroll inside a box rather than being truncated;
* the full tidy table as a TSV download (a ``data:`` link inside the page,
  so it works offline and with the book on any server);
* an empty table as one sentence (e.g. "No run or participant was excluded.").

The look (padding, light and dark mode) comes from the book's stylesheet
(``book/static/craving.css``), keyed on the ``cc-table`` class.

Data conventions
----------------
* ``table`` is a pandas DataFrame with a default or meaningful index (the
  index is not shown; reset it first to show it).
* Widths are estimated from the formatted text (about 7.5 pixels per
  character at the book's table font, plus padding), against
  :data:`COLUMN_WIDTH_PX`.
"""

from __future__ import annotations

import base64
import html
import io
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import HTML
from myst_nb import glue

__all__ = [
    "COLUMN_WIDTH_PX",
    "DECISION_COLUMNS",
    "captioned_figure",
    "figure",
    "findings_box",
    "format_column",
    "show_table",
    "table_columns",
]

#: Width of the book's text column in CSS pixels.
COLUMN_WIDTH_PX = 688

#: Columns that identify a row, shown first when present (in this order).
IDENTIFYING_COLUMNS = (
    "claim_id",
    "claim",
    "effect",
    "study",
    "chapter",
    "test",
    "term",
    "target",
    "contrast",
    "group",
    "condition",
    "measure",
    "strategy",
    "participant_id",
    "session_id",
    "run",
    "file",
    "stage",
)

#: Columns that carry a decision, shown right after the identifying ones.
DECISION_COLUMNS = (
    "verdict",
    "found",
    "agree",
    "holds",
    "calibrated",
    "significant",
    "reason",
)

#: The numbers of a test, shown after the decision.
RESULT_COLUMNS = ("estimate", "ci_low", "ci_high", "p", "p_fwe", "rate", "planted", "present")

#: A dash for a missing value.
MISSING = "\u2013"

_PX_PER_CHAR = 7.5
_PADDING_PX = 18
_MAX_DOWNLOAD_BYTES = 2_000_000


def _is_p_column(name: str) -> bool:
    return name == "p" or name.startswith("p_") or name.endswith("_p")


def format_column(values: pd.Series) -> list[str]:
    """Each value of a column as the page shows it.

    Floats get the same decimals down the column (three significant digits of
    the largest magnitude, and at least one of the smallest below 1, between 0
    and 4 decimals; integral floats none),
    p-value columns (``p``, ``p_*``, ``*_p``) three decimals or ``<0.001``,
    booleans ``yes``/``no``; missing values a dash.

    Parameters
    ----------
    values : pandas.Series

    Returns
    -------
    list of str, one per value
    """
    name = str(values.name)
    missing = values.isna().to_numpy()
    if values.dtype == bool or values.dropna().map(type).isin([bool, np.bool_]).all() and len(values.dropna()):
        return [MISSING if m else ("yes" if bool(v) else "no") for v, m in zip(values, missing)]
    numeric = pd.to_numeric(values, errors="coerce")
    is_number = values.map(lambda v: isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool))
    if len(values) and is_number[~missing].all() and (~missing).any():
        finite = numeric[np.isfinite(numeric)]
        if _is_p_column(name):
            return [MISSING if m else ("<0.001" if x < 0.001 else f"{x:.3f}") for x, m in zip(numeric, missing)]
        if len(finite) and (finite == np.round(finite)).all():
            decimals = 0
        else:
            largest = float(finite.abs().max()) if len(finite) else 0.0
            decimals = 3 if largest == 0 else int(np.clip(2 - math.floor(math.log10(largest)), 0, 4))
            nonzero = finite[finite != 0].abs()
            if len(nonzero) and float(nonzero.min()) < 1:  # a small value keeps one significant digit
                decimals = max(decimals, min(4, -math.floor(math.log10(float(nonzero.min())))))
        return [MISSING if m else _number(x, decimals) for x, m in zip(numeric, missing)]
    return [MISSING if m else str(v) for v, m in zip(values, missing)]


def _number(x: float, decimals: int) -> str:
    if not np.isfinite(x):
        return "inf" if x > 0 else ("-inf" if x < 0 else MISSING)
    text = f"{x:,.{decimals}f}".replace(",", "\u2009")  # thin space between thousands
    return "0" if decimals == 0 and text in ("-0",) else text


def table_columns(table: pd.DataFrame, columns=None) -> list[str]:
    """The columns a view of ``table`` starts from: ``columns`` as given, or the identifying,
    decision and result columns present, in that order, then the others."""
    if columns is not None:
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise ValueError(f"The table has no column(s) {missing}; it has {list(table.columns)}.")
        return list(columns)
    first = [c for c in (*IDENTIFYING_COLUMNS, *DECISION_COLUMNS, *RESULT_COLUMNS) if c in table.columns]
    return first + [c for c in table.columns if c not in first]


def _width_px(header: str, cells: list[str]) -> float:
    longest_word = max([len(w) for c in cells for w in c.split()] or [0])
    widest = max([len(c) for c in cells] or [0])
    # text columns wrap at spaces: a cell needs its longest word, or up to 24 characters when it can wrap
    chars = max(len(header), min(widest, max(longest_word, 24)))
    return chars * _PX_PER_CHAR + _PADDING_PX


def show_table(
    table: pd.DataFrame,
    columns=None,
    labels: dict | None = None,
    tsv_name: str | None = None,
    empty: str = "The table is empty.",
    caption: str | None = None,
    max_height_px: int = 420,
    width_px: int = COLUMN_WIDTH_PX,
) -> HTML:
    """A curated HTML view of a result table for the book's page.

    Parameters
    ----------
    table : pandas.DataFrame
        The full tidy table (downloadable as it is).
    columns : sequence of str, optional
        Columns to show, in order (default: :func:`table_columns`). Columns
        that do not fit ``width_px`` are left out of the view and named in a
        note; the first column is always shown.
    labels : dict, optional
        Header text per column (default: the column name with ``_`` as spaces).
    tsv_name : str, optional
        File name of the download (default: no download link).
    empty : str
        The sentence shown instead of an empty table.
    caption : str, optional
        Shown above the table.
    max_height_px : int
        Taller tables scroll inside their box.
    width_px : int

    Returns
    -------
    IPython.display.HTML
    """
    labels = labels or {}
    if isinstance(table.columns, pd.MultiIndex):  # e.g. runs side by side: "run: column"
        table = table.copy()
        table.columns = [": ".join(str(level) for level in col) for col in table.columns]
    if table.index.name is not None or isinstance(table.index, pd.MultiIndex):
        table = table.reset_index()  # a named index is a column of the view
    parts = ['<div class="cc-table">']
    if caption:
        parts.append(f'<p class="cc-caption">{html.escape(caption)}</p>')
    if table.empty:
        parts.append(f'<p class="cc-empty">{html.escape(empty)}</p></div>')
        return HTML("".join(parts))
    wanted = table_columns(table, columns)
    shown, left_out, used = [], [], 0.0
    formatted = {c: format_column(table[c].reset_index(drop=True)) for c in wanted}
    for c in wanted:
        header = labels.get(c, str(c).replace("_", " "))
        width = _width_px(header, formatted[c])
        if shown and used + width > width_px:
            left_out.append(c)
            continue
        shown.append((c, header))
        used += width
    any_missing = any(MISSING in formatted[c] for c, _ in shown)
    parts.append(f'<div class="cc-table-scroll" style="max-height: {int(max_height_px)}px">')
    parts.append("<table><thead><tr>")
    for c, header in shown:
        align = "num" if _numeric(table[c]) else "text"
        parts.append(f'<th class="cc-{align}">{html.escape(header)}</th>')
    parts.append("</tr></thead><tbody>")
    for i in range(len(table)):
        parts.append("<tr>")
        for c, _ in shown:
            cell = formatted[c][i]
            cls = "num" if _numeric(table[c]) else "text"
            verdict = f" cc-value-{_slug(cell)}" if c in DECISION_COLUMNS and len(cell) < 40 else ""
            parts.append(f'<td class="cc-{cls}{verdict}">{html.escape(cell)}</td>')
        parts.append("</tr>")
    parts.append("</tbody></table></div>")
    notes = [f"{len(table)} row{'s' if len(table) != 1 else ''}"]
    if any_missing:
        notes.append(f"{MISSING} : no value (not applicable or not estimated)")
    if left_out:
        notes.append("not shown here: " + ", ".join(left_out))
    if tsv_name:
        notes.append(_download(table, tsv_name))
    parts.append(f'<p class="cc-note">{"; ".join(notes)}</p></div>')
    return HTML("".join(parts))


def _numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-")


def _download(table: pd.DataFrame, name: str) -> str:
    data = table.to_csv(sep="\t", index=False, na_rep="n/a").encode()
    if len(data) > _MAX_DOWNLOAD_BYTES:
        return f"the full table is in the run's results as <code>{html.escape(name)}</code>"
    uri = "data:text/tab-separated-values;base64," + base64.b64encode(data).decode()
    return f'<a class="cc-download" download="{html.escape(name)}" href="{uri}">full table ({html.escape(name)})</a>'


def _value(x) -> str:
    """One number for a sentence: three significant digits."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return MISSING
    return MISSING if not np.isfinite(x) else f"{x:.3g}"


def _p_text(p) -> str:
    try:
        p = float(p)
    except (TypeError, ValueError):
        return ""
    if not np.isfinite(p):
        return ""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def findings_box(findings: pd.DataFrame, title: str = "What this chapter finds", data: str | None = None) -> HTML:
    """The box a chapter opens with: each of its claims, the verdict and the numbers it rests on.

    Parameters
    ----------
    findings : pandas.DataFrame
        From :func:`craving_circuits.verdict.findings.chapter_findings`.
    title : str
    data : str, optional
        One sentence on the data the verdicts are about (e.g. the study banner's).

    Returns
    -------
    IPython.display.HTML
        An admonition (the theme's ``tip`` style), one item per claim.
    """
    items = []
    for row in findings.itertuples(index=False):
        numbers = ""
        if _value(row.estimate) != MISSING:
            interval = ""
            if _value(row.ci_low) != MISSING and _value(row.ci_high) != MISSING:
                interval = f", 95 % CI {_value(row.ci_low)} to {_value(row.ci_high)}"
            p = _p_text(row.p)
            numbers = f" {html.escape(str(row.test))}: {html.escape(str(row.statistic))} {_value(row.estimate)}"
            numbers += f"{interval}{', ' + html.escape(p) if p else ''}."
        items.append(
            f"<li><strong>{html.escape(str(row.claim))}</strong>: "
            f'<span class="cc-verdict cc-value-{_slug(str(row.verdict))}">{html.escape(str(row.verdict))}</span> '
            f"({html.escape(str(row.detail))}).{numbers}</li>"
        )
    body = f"<ul>{''.join(items)}</ul>" if items else "<p>This chapter tests none of the claims of the ledger.</p>"
    lead = f"<p>{html.escape(data)}</p>" if data else ""
    return HTML(
        f'<div class="admonition tip cc-findings"><p class="admonition-title">{html.escape(title)}</p>'
        f"{lead}{body}</div>"
    )


def figure(key: str, fig) -> None:
    """Glue a figure under ``key`` for the page's numbered, captioned ``{glue:figure}`` (not shown here).

    The Markdown cell after the call places it with a caption and alt text::

        ```{glue:figure} key
        :name: fig-key
        :alt: what the figure shows

        Caption.
        ```

    Parameters
    ----------
    key : str
    fig : matplotlib.figure.Figure
    """
    glue(key, fig, display=False)
    plt.close(fig)


def captioned_figure(fig, caption: str, alt: str) -> HTML:
    """A figure with its caption and alt text, inline (for a figure a page shows only on some runs).

    A figure every run of a page has is glued and placed by ``{glue:figure}``
    (numbered, cross-referenced; :func:`figure`). One that only some runs draw
    (e.g. the comparison with another run) would leave that directive without
    its figure on the others; it is drawn here instead, at the notebook's 100
    pixels per inch shown at its size from a 200 dpi PNG.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    caption, alt : str

    Returns
    -------
    IPython.display.HTML
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=2 * fig.dpi, bbox_inches="tight")
    width = int(round(fig.get_tightbbox(fig.canvas.get_renderer()).width * fig.dpi))
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    return HTML(
        f'<figure class="cc-figure"><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}" '
        f'style="width: {width}px; max-width: 100%"><figcaption>{html.escape(caption)}</figcaption></figure>'
    )
