"""The book's Sphinx extension: version and commit on every page's footer, author-year bibliography labels.

Jupyter Book loads it from ``_config.yml`` (``sphinx.config.extensions``). At
``config-inited`` it appends to the theme's ``extra_footer`` one line naming
the version of :mod:`craving_circuits` and the git commit of the book's folder
(``git rev-parse --short HEAD``, with "local changes" when tracked files
differ from it), so a reader of any page knows which code made it. A build
outside a git checkout, or without git, says "unknown" instead of failing.

It sets the theme's ``default_mode`` (page context) to ``auto`` (the reader's light or dark
setting) unless the configuration names one. It also registers the pybtex
style :data:`BIBLIOGRAPHY_STYLE` (``_config.yml``:
``bibtex_default_style``): the references page lists the works sorted by
author and year and labelled as the text cites them ("Engeli et al., 2023",
as sphinxcontrib-bibtex's ``author_year`` citations read), not with pybtex's
alpha keys ("[APE+14]").
"""

from __future__ import annotations

import html
import subprocess
from collections import Counter
from pathlib import Path

from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle

import craving_circuits

__all__ = [
    "BIBLIOGRAPHY_STYLE",
    "AuthorYearLabels",
    "AuthorYearStyle",
    "register_styles",
    "git_commit",
    "footer_html",
    "setup",
]

#: The pybtex formatting style of the references page (``bibtex_default_style`` in ``_config.yml``).
BIBLIOGRAPHY_STYLE = "author_year_book"


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_commit(root: str | Path) -> str:
    """Short hash of the commit checked out at ``root``, with ``+local changes`` when tracked files differ,
    or ``"unknown"`` (no git, not a checkout)."""
    commit = _git(Path(root), "rev-parse", "--short", "HEAD")
    if not commit:
        return "unknown"
    changes = _git(Path(root), "status", "--porcelain", "--untracked-files=no")
    return f"{commit}+local changes" if changes else commit


def footer_html(version: str, commit: str, repository_url: str | None = None) -> str:
    """The footer line: version, commit and, when known, a link to the repository."""
    text = f"craving-circuits {html.escape(version)}, commit <code>{html.escape(commit)}</code>"
    if repository_url:
        url = html.escape(repository_url, quote=True)
        text += f' (<a href="{url}">repository</a>)'
    return f'<p class="build-version">Built with {text}.</p>'


def _add_footer(app, config) -> None:
    options = dict(config.html_theme_options or {})
    line = footer_html(craving_circuits.__version__, git_commit(app.srcdir), options.get("repository_url"))
    options["extra_footer"] = (options.get("extra_footer") or "") + line
    config.html_theme_options = options
    # the theme's light/dark switch starts from the reader's system setting (pydata-sphinx-theme reads
    # default_mode from the page context; left empty, its script reports an invalid mode on every page)
    context = dict(getattr(config, "html_context", None) or {})
    context["default_mode"] = context.get("default_mode") or "auto"
    config.html_context = context


class AuthorYearLabels(BaseLabelStyle):
    """Labels as the text cites: "Cohen, 1988", "Altman and Bland, 1995", "Engeli et al., 2023"; a letter
    after the year tells apart works whose labels would be the same."""

    def format_labels(self, sorted_entries):
        labels = [self._label(entry) for entry in sorted_entries]
        counts, seen = Counter(labels), Counter()
        for label in labels:
            if counts[label] == 1:
                yield label
            else:
                yield label + "abcdefghijklmnopqrstuvwxyz"[seen[label]]
                seen[label] += 1

    @staticmethod
    def _label(entry) -> str:
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [Text(*person.rich_last_names).render_as("text") for person in people]
        if not names:
            who = entry.fields.get("organization") or entry.fields.get("title", "Anon.")
        elif len(names) == 1:
            who = names[0]
        elif len(names) == 2:
            who = f"{names[0]} and {names[1]}"
        else:
            who = f"{names[0]} et al."
        return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearStyle(PlainStyle):
    """pybtex's ``plain`` (sorted by author, year, title) with :class:`AuthorYearLabels`."""

    default_label_style = BIBLIOGRAPHY_STYLE


def register_styles() -> None:
    """Make :data:`BIBLIOGRAPHY_STYLE` known to pybtex (as a formatting and a label style)."""
    register_plugin("pybtex.style.labels", BIBLIOGRAPHY_STYLE, AuthorYearLabels, force=True)
    register_plugin("pybtex.style.formatting", BIBLIOGRAPHY_STYLE, AuthorYearStyle, force=True)


def setup(app) -> dict:
    """Register the footer and the bibliography style with Sphinx."""
    register_styles()
    app.connect("config-inited", _add_footer)
    return {"version": craving_circuits.__version__, "parallel_read_safe": True, "parallel_write_safe": True}
