"""Executed notebooks made ready for the book: no machine paths, the run's parameters labelled.

Papermill writes the parameters a run was given into a cell of its own (tagged
``injected-parameters``) after the notebook's ``parameters`` cell, with the
values the runner passed, often absolute paths of the build machine. A reader
of the book should see which parameters *this* run changed, named relative to
the book's root, and no path of the machine that built it.

Data conventions
----------------
* Notebooks are :class:`nbformat.NotebookNode` (version 4), changed in a copy.
* ``root`` is the repository root the notebooks ran in (their working
  directory); a path below it is shown relative to it (``results/x``), the
  root itself as ``.``. Paths outside it (a user's BIDS folder) are kept.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import nbformat

__all__ = ["INJECTED_HEADER", "relative_to_root", "book_ready"]

#: First line of the cell with the parameters a run was given.
INJECTED_HEADER = "# Parameters of this run (book/runs.yml), replacing the defaults above"


def _root_pattern(root: str | Path) -> re.Pattern:
    """The root folder as it may appear in text: resolved or as given, followed by a separator or the end."""
    forms = {os.fspath(Path(root)), os.fspath(Path(root).resolve())}
    forms = sorted((f.rstrip("/") for f in forms if f not in ("", ".", "/")), key=len, reverse=True)
    alternatives = "|".join(re.escape(f) for f in forms)
    return re.compile(rf"(?:{alternatives})(/|(?![\w.\-]))")


def relative_to_root(text: str, root: str | Path) -> str:
    """``text`` with every path below ``root`` written relative to it (``root/a/b`` -> ``a/b``, ``root`` -> ``.``).

    Parameters
    ----------
    text : str
    root : path

    Returns
    -------
    str
    """
    pattern = _root_pattern(root)
    return pattern.sub(lambda m: "" if m.group(1) == "/" else ".", text)


def _walk_strings(value, change):
    """Apply ``change`` to every string inside nested lists and dicts (output data and text)."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, list):
        return [_walk_strings(v, change) for v in value]
    if isinstance(value, dict):
        return type(value)({k: _walk_strings(v, change) for k, v in value.items()})
    return value


def book_ready(
    nb: nbformat.NotebookNode, root: str | Path, title: str | None = None, run: str | None = None
) -> nbformat.NotebookNode:
    """A copy of an executed notebook for the book: paths relative to ``root``, the injected cell labelled.

    * Every cell source and every text output (stream, plain text, HTML,
      Markdown, error tracebacks, JSON) has the paths below ``root`` rewritten
      relative to it; images (base64) are left as they are.
    * The ``injected-parameters`` cell starts with :data:`INJECTED_HEADER`
      instead of papermill's comment, so the page does not seem to contradict
      the defaults shown above it.
    * With ``run``, the page's figure and table labels and the references to
      them are made unique to the run.
    * With ``title``, the page's title (the first ``# `` heading of the first
      Markdown cell) is the run's, so that a variant run of a notebook (the
      null study, a positive control) is not titled as the main chapter.

    Parameters
    ----------
    nb : nbformat.NotebookNode
    root : path
    title : str, optional
    run : str, optional
        The run's name: the labels the page's Markdown defines (``:name:`` of
        its figures, ``(label)=`` targets of its tables) and its references to
        them get ``-<run>``, so that two runs of one notebook (main and null
        study) each refer to their own figures and tables (Sphinx labels are
        global to the book).

    Returns
    -------
    nbformat.NotebookNode
    """
    out = copy.deepcopy(nb)

    def change(text: str) -> str:
        return relative_to_root(text, root)

    if title:
        _retitle(out, title)
    if run:
        _suffix_labels(out, run)
    for cell in out.cells:
        cell.source = change(cell.source)
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            lines = [line for line in cell.source.splitlines() if not line.startswith("# Parameters")]
            cell.source = "\n".join([INJECTED_HEADER, *lines])
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = change(output["text"])
            if "traceback" in output:
                output["traceback"] = [change(line) for line in output["traceback"]]
            if "evalue" in output:
                output["evalue"] = change(output["evalue"])
            for mime, data in output.get("data", {}).items():
                if mime.startswith("text/") or mime.endswith("json") or mime.endswith("+json"):
                    output["data"][mime] = _walk_strings(data, change)
    return out


def _retitle(nb: nbformat.NotebookNode, title: str) -> None:
    """Replace the first level-1 heading of the first Markdown cell (in place); add one if there is none."""
    first = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    if first is None:
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(f"# {title}"))
        return
    lines = first.source.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("# "):
            lines[i] = f"# {title}"
            first.source = "\n".join(lines)
            return
    first.source = f"# {title}\n\n{first.source}"


#: A label a Markdown cell defines: a figure's ``:name:`` or a MyST target ``(label)=`` (e.g. before a table).
_LABEL = re.compile(r"^(?::name:\s*(\S+)|\(([\w-]+)\)=)\s*$", re.MULTILINE)


def _suffix_labels(nb: nbformat.NotebookNode, run: str) -> None:
    """Append ``-<run>`` to every label a Markdown cell defines and to every use of it (in place)."""
    markdown = [c for c in nb.cells if c.cell_type == "markdown"]
    labels = {m.group(1) or m.group(2) for c in markdown for m in _LABEL.finditer(c.source)}
    labels = {label for label in labels if not label.endswith(f"-{run}")}
    if not labels:
        return
    pattern = re.compile(
        r"(?<![\w-])(" + "|".join(re.escape(x) for x in sorted(labels, key=len, reverse=True)) + r")(?![\w-])"
    )
    for cell in markdown:
        cell.source = pattern.sub(lambda m: f"{m.group(1)}-{run}", cell.source)
