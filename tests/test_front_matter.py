"""The book's front matter: landing page, citation metadata, licence, footer, references, no stale Binder.

Oracles: cffconvert 2.0.0 (``requirements-citation.txt``), run as a reader would run
``cffconvert --validate``,
``_toc.yml`` for what the landing page must name, Jupyter Book's own
configuration reader for the extensions a build loads, git for the commit.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from jupyter_book.config import get_final_config
from pybtex.database import parse_file
from pybtex.plugin import find_plugin
from pybtex.richtext import Text

import craving_circuits
from craving_circuits.book import sphinx_ext
from craving_circuits.verdict import ledger

ROOT = Path(__file__).resolve().parents[1]
CFFCONVERT = Path(sys.executable).with_name("cffconvert")


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""


def _unique_mapping(loader, node, deep=False):
    keys = [loader.construct_object(key, deep=deep) for key, _ in node.value]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise yaml.constructor.ConstructorError(None, None, f"repeated key(s) {repeated}", node.start_mark)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def _config() -> dict:
    return yaml.load((ROOT / "_config.yml").read_text(), Loader=_UniqueKeyLoader)


def _citation() -> dict:
    return yaml.safe_load((ROOT / "CITATION.cff").read_text())


def _cffconvert_validate(path: Path) -> tuple[int, str]:
    """``cffconvert --validate`` on a file: its exit status and the output's last error line (or its message)."""
    done = subprocess.run([str(CFFCONVERT), "--validate", "-i", str(path)], capture_output=True, text=True)
    lines = (done.stdout + done.stderr).splitlines()
    errors = [line for line in lines if "Error:" in line]
    return done.returncode, errors[-1] if errors else "\n".join(lines[-3:])


# --------------------------------------------------------------------------- CITATION.cff and licence


def test_citation_file_is_valid_cff():
    status, message = _cffconvert_validate(ROOT / "CITATION.cff")
    assert status == 0 and "valid according to schema version 1.2.0" in message, message


@pytest.mark.parametrize(
    "break_it, expected",
    [
        (lambda c: c.pop("authors"), "'authors' is a required property"),
        (lambda c: c.update({"cff-version": "1.2"}), 'Unrecognized value for key "cff-version"'),
        (lambda c: c.update({"licence": "MIT"}), "Additional properties are not allowed"),
    ],
    ids=["no_authors", "bad_version", "misspelt_key"],
)
def test_the_cff_check_refuses_a_broken_citation_file(break_it, expected, tmp_path):
    citation = _citation()
    break_it(citation)
    (tmp_path / "CITATION.cff").write_text(yaml.safe_dump(citation))
    status, message = _cffconvert_validate(tmp_path / "CITATION.cff")
    assert status != 0 and expected in message, message


def test_citation_file_agrees_with_the_package_config_licence_and_bibliography():
    citation = _citation()
    assert citation["version"] == craving_circuits.__version__
    assert citation["repository-code"] == _config()["repository"]["url"]
    assert citation["license"] == "MIT" and (ROOT / "LICENSE").read_text().startswith("MIT License")
    bib = parse_file(ROOT / "book" / "references.bib")
    for key in ("engeli2023", "ketcherside2020"):
        entry = bib.entries[key]
        cited = next(r for r in citation["references"] if r["doi"] == entry.fields["doi"])
        assert cited["year"] == int(entry.fields["year"])
        assert [a["family-names"] for a in cited["authors"]] == [
            " ".join(p.last_names) for p in entry.persons["author"]
        ]


# --------------------------------------------------------------------------- _config.yml


def test_config_has_no_repeated_key_and_no_binder_or_thebe():
    config = _config()  # the loader refuses a repeated key
    settings = json.dumps(config).lower()  # the settings, not the comments that say why
    assert "launch_buttons" not in config and "binder" not in settings and "thebe" not in settings
    final, _ = get_final_config(
        user_yaml=ROOT / "_config.yml", sourcedir=ROOT, cli_config={"latex_individualpages": False}
    )
    assert "sphinx_thebe" not in final["extensions"] and "thebe_config" not in final
    assert "craving_circuits.book.sphinx_ext" in final["extensions"]
    assert "sphinxcontrib.bibtex" in final["extensions"]
    assert final["html_theme_options"]["repository_url"] == config["repository"]["url"]
    assert not final["html_theme_options"]["launch_buttons"]["thebe"]
    assert not final["html_theme_options"]["launch_buttons"]["binderhub_url"]
    assert final["bibtex_reference_style"] == "author_year"
    assert final["bibtex_default_style"] == sphinx_ext.BIBLIOGRAPHY_STYLE


def test_the_broken_config_check_sees_a_repeated_key():
    with pytest.raises(yaml.constructor.ConstructorError, match="repeated key"):
        yaml.load("html:\n  a: 1\nsphinx: {}\nhtml:\n  b: 2\n", Loader=_UniqueKeyLoader)


# --------------------------------------------------------------------------- landing page


def test_the_landing_page_has_a_section_for_every_part_of_the_book():
    # that it links every chapter: tests/test_prose_numbers.py::test_landing_page_lists_every_chapter
    intro = (ROOT / "book" / "intro.md").read_text()
    captions = [part["caption"] for part in yaml.safe_load((ROOT / "_toc.yml").read_text())["parts"]]
    headings = re.findall(r"^#+ (.+)$", intro, flags=re.MULTILINE)
    assert set(captions) <= set(headings), set(captions) - set(headings)


def test_the_landing_page_links_repository_licence_and_citation():
    intro = (ROOT / "book" / "intro.md").read_text()
    assert f"]({_config()['repository']['url']})" in intro
    for name in ("LICENSE", "CITATION.cff"):
        assert f"<../{name}>`" in intro and (ROOT / name).is_file()


def test_the_landing_page_pastes_what_the_ledger_notebook_glues():
    intro = (ROOT / "book" / "intro.md").read_text()
    pasted = re.findall(r"executed/claims_ledger\.ipynb::(\w+)", intro)
    pasted += re.findall(r"```\{glue\} (\w+)\n:doc: executed/claims_ledger\.ipynb", intro)
    assert "ledger_overview" in pasted and "n_claims" in pasted
    notebook = json.loads((ROOT / "notebooks" / "claims_ledger.ipynb").read_text())
    code = "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code")
    assert 'pages.glue_table("ledger_overview", ledger.ledger_overview(claims))' in code
    assert "ledger.ledger_summary(claims" in code
    summary_keys = set(ledger.ledger_summary(_ledger([("a", "supported", True, "calibrated")])))
    assert set(pasted) - {"ledger_overview"} <= summary_keys


def _ledger(rows) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"claim_id": f"c{i}", "study": study, "verdict": verdict, "agree": agree, "calibration": calibration}
            for i, (study, verdict, agree, calibration) in enumerate(rows)
        ]
    )


def test_ledger_overview_counts_by_hand():
    table = _ledger(
        [
            ("cocaine", "supported", True, "calibrated"),
            ("cocaine", "not supported", False, "not calibrated"),
            ("cocaine", "evidence of absence", True, None),
            ("baclofen", "supported", None, "calibrated"),
            ("baclofen", "supported", False, "calibrated"),
        ]
    )
    overview = ledger.ledger_overview(table)
    assert list(overview.columns) == [
        "study",
        "claims",
        "supported",
        "not supported",
        "evidence of absence",
        "calibrated",
        "with_truth",
        "agree",
    ]
    assert overview.to_dict("records") == [
        {
            "study": "cocaine",
            "claims": 3,
            "supported": 1,
            "not supported": 1,
            "evidence of absence": 1,
            "calibrated": 1,
            "with_truth": 3,
            "agree": 2,
        },
        {
            "study": "baclofen",
            "claims": 2,
            "supported": 2,
            "not supported": 0,
            "evidence of absence": 0,
            "calibrated": 2,
            "with_truth": 1,
            "agree": 0,
        },
        {
            "study": "all",
            "claims": 5,
            "supported": 3,
            "not supported": 1,
            "evidence of absence": 1,
            "calibrated": 3,
            "with_truth": 4,
            "agree": 2,
        },
    ]
    # the totals are those of the prose's summary
    summary = ledger.ledger_summary(table)
    total = overview.iloc[-1]
    assert (total["claims"], total["with_truth"], total["agree"]) == (
        summary["n_claims"],
        summary["n_with_truth"],
        summary["n_agree"],
    )


# --------------------------------------------------------------------------- footer: version and commit


def _git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def test_git_commit_names_the_checkout_and_its_local_changes(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "page.md").write_text("one\n")
    _git(tmp_path, "add", "page.md")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = _git(tmp_path, "rev-parse", "--short", "HEAD")
    assert sphinx_ext.git_commit(tmp_path) == head
    (tmp_path / "page.md").write_text("two\n")
    assert sphinx_ext.git_commit(tmp_path) == f"{head}+local changes"
    (tmp_path / "new.md").write_text("untracked files do not count\n")
    (tmp_path / "page.md").write_text("one\n")
    assert sphinx_ext.git_commit(tmp_path) == head


def test_git_commit_is_unknown_outside_a_checkout_or_without_git(tmp_path, monkeypatch):
    outside = tmp_path / "not_a_checkout"
    outside.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # git must not find a repository above
    assert sphinx_ext.git_commit(outside) == "unknown"
    monkeypatch.setenv("PATH", str(outside))  # no git on the PATH
    assert sphinx_ext.git_commit(ROOT) == "unknown"


def test_footer_line_names_version_commit_and_repository():
    line = sphinx_ext.footer_html("0.1.0", "abc1234", "https://example.org/repo")
    assert "craving-circuits 0.1.0" in line and "<code>abc1234</code>" in line
    assert '<a href="https://example.org/repo">repository</a>' in line
    assert "<script" not in sphinx_ext.footer_html("<script>", "unknown")


class _Config:
    html_theme_options = {"extra_footer": "<p>before</p>", "repository_url": "https://example.org/repo"}
    html_context = {}


class _App:
    def __init__(self, srcdir):
        self.srcdir = srcdir
        self.connected = []

    def connect(self, event, handler):
        self.connected.append((event, handler))


def test_the_extension_appends_the_footer_when_sphinx_reads_the_config(tmp_path):
    app = _App(tmp_path)
    metadata = sphinx_ext.setup(app)
    assert metadata["parallel_read_safe"] and [event for event, _ in app.connected] == ["config-inited"]
    config = _Config()
    app.connected[0][1](app, config)
    footer = config.html_theme_options["extra_footer"]
    assert footer.startswith("<p>before</p>") and f"craving-circuits {craving_circuits.__version__}" in footer
    assert "https://example.org/repo" in footer
    assert config.html_context["default_mode"] == "auto"  # the theme's light/dark mode from the reader's setting


# --------------------------------------------------------------------------- references


def test_references_are_labelled_author_year_as_the_text_cites_them():
    sphinx_ext.register_styles()
    style = find_plugin("pybtex.style.formatting", sphinx_ext.BIBLIOGRAPHY_STYLE)()
    bib = parse_file(ROOT / "book" / "references.bib")
    formatted = list(style.format_bibliography(bib))
    labels = {entry.key: entry.label for entry in formatted}
    assert len(set(labels.values())) == len(labels)
    assert labels["engeli2023"] == "Engeli et al., 2023"
    assert labels["altman1995"] == "Altman and Bland, 1995"
    assert labels["cohen1988"] == "Cohen, 1988"
    for key, label in labels.items():
        first = Text(*bib.entries[key].persons["author"][0].rich_last_names).render_as("text")
        assert label.startswith(first) and label.endswith(bib.entries[key].fields["year"]), label
        assert not re.search(r"[{}\\]", label), label
    # sorted by first author, as a reader looks a reference up
    firsts = [" ".join(bib.entries[e.key].persons["author"][0].last_names).lower() for e in formatted]
    assert firsts == sorted(firsts)


def test_labels_that_would_be_the_same_get_a_letter(tmp_path):
    bib = tmp_path / "two.bib"
    bib.write_text(
        "@article{a, author={Smith, Ann and Jones, Bob and Lee, Cy}, title={One}, journal={J}, year={2020}}\n"
        "@article{b, author={Smith, Ann and Brown, Dan and Wu, Eve}, title={Two}, journal={J}, year={2020}}\n"
        "@article{c, author={Smith, Ann}, title={Three}, journal={J}, year={2020}}\n"
    )
    labels = list(sphinx_ext.AuthorYearLabels().format_labels(parse_file(bib).entries.values()))
    assert labels == ["Smith et al., 2020a", "Smith et al., 2020b", "Smith, 2020"]
