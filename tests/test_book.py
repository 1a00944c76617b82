"""The book end to end on the tiny presets: papermill runs every notebook, Jupyter Book renders them."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from craving_circuits.book.execute import (
    NotebookFailed,
    execute_plan,
    install_mathjax,
    load_plan,
)
from craving_circuits.verdict import ledger

ROOT = Path(__file__).resolve().parents[1]


def _copy_book(dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, dest / name)
    shutil.copytree(ROOT / "notebooks", dest / "notebooks")
    shutil.copytree(ROOT / "book", dest / "book", ignore=shutil.ignore_patterns("executed"))
    return dest


def _notebook(path: Path, cells: list[str]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.mark.book
def test_book_builds_from_executed_notebooks(tmp_path):
    root = _copy_book(tmp_path / "book_root")
    plan = load_plan(root / "book" / "runs.yml", preset="tiny", null_preset="tiny_null")
    records = execute_plan(plan, root, data_dir=tmp_path / "data", n_jobs=2,
                           overrides={"n_permutations": 200, "n_bootstrap": 500, "n_sims": 3, "n_voxel_sims": 2})
    assert [r["name"] for r in records] == [entry["name"] for entry in plan]
    assert all(r["status"] == "ok" for r in records)
    executed = root / "book" / "executed"
    for record in records:
        nb = nbformat.read(executed / f"{record['name']}.ipynb", as_version=4)
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors, record["name"]
        assert json.loads((root / "results" / record["name"] / "run.json").read_text())["parameters"] == \
            record["parameters"]
    assert records[2]["parameters"]["preset"] == "tiny_null"
    assert records[1]["parameters"]["n_permutations"] == 200
    for name in ("data", "nacc_seed_fc", "nacc_seed_fc_null", "thalamus_glutamate", "nac_null_effect",
                 "nac_positive_control", "baclofen_cbf", "baclofen_mediation"):
        assert (root / "results" / name / "recovered_vs_planted.tsv").is_file(), name
    # the positive control is the same notebook with a planted NAC effect, compared with the default run
    control = next(r for r in records if r["name"] == "nac_positive_control")
    assert control["notebook"] == "notebooks/nac_null_effect.ipynb"
    assert control["parameters"]["simulation"]["nac_effect"] < 0
    assert control["parameters"]["compare_dir"].endswith("results/nac_null_effect")
    assert not list(executed.glob(".tmp-*")) and not list(executed.glob("*.failed.ipynb"))
    # the ledger reads every declared claim from the runs' result files
    claims = pd.read_csv(root / "results" / "claims_ledger" / "claims_ledger.tsv", sep="\t")
    assert list(claims["claim_id"]) == [c["claim_id"] for c in ledger.CLAIMS]
    assert claims["verdict"].isin(ledger.VERDICTS).all() and claims["agree"].notna().all()
    # the calibration ran at its tiny size, every claim's test under every condition
    calibration = pd.read_csv(root / "results" / "calibration" / "results.tsv", sep="\t", keep_default_na=False)
    assert len(calibration) == 3 * 4 * 14 and set(calibration["condition"]) == {"null", "half", "paper", "double"}

    install_mathjax(root / "_mathjax_static" / "mathjax")
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    build = subprocess.run([str(jupyter_book), "build", str(root), "--builder", "html"], capture_output=True,
                           text=True)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    html = root / "_build" / "html"
    for page in ("book/intro", "book/cocaine_design", "book/methods_connectivity", "book/executed/data",
                 "book/executed/nacc_seed_fc", "book/executed/nacc_seed_fc_null", "book/executed/reproducibility",
                 "book/bibliography", "book/methods_glutamate", "book/executed/thalamus_glutamate",
                 "book/methods_null_effects", "book/executed/nac_null_effect", "book/executed/nac_positive_control",
                 "book/methods_baclofen", "book/executed/baclofen_cbf", "book/executed/baclofen_mediation",
                 "book/executed/claims_ledger", "book/executed/calibration"):
        assert (html / f"{page}.html").is_file(), page
    null_page = (html / "book" / "executed" / "nacc_seed_fc_null.html").read_text()
    assert "every planted effect is zero" in null_page
    assert "Recovered vs planted" in null_page
    ledger_page = (html / "book" / "executed" / "claims_ledger.html").read_text()
    assert re.search(rf"Of the (<[^>]*>)*{len(ledger.CLAIMS)}(<[^>]*>)* claims", ledger_page)
    control_page = (html / "book" / "executed" / "nac_positive_control.html").read_text()
    assert "Positive control: NAC dampens craving" in control_page and "NAC has no effect" in control_page
    # the pages load nothing from a CDN: MathJax comes with the book, loaded once per page
    for page in html.rglob("*.html"):
        text = page.read_text()
        remote = re.findall(r'<(?:script|link)[^>]+(?:src|href)="(https?://[^"]+)"', text)
        assert not remote, (page, remote)
    methods = (html / "book" / "methods_connectivity.html").read_text()
    assert len(re.findall(r'<script[^>]+src="[^"]*mathjax/', methods)) == 1
    assert (html / "_static" / "mathjax" / "MathJax.js").is_file()


def test_failing_notebook_stops_the_build_with_the_cell(tmp_path):
    (tmp_path / "notebooks").mkdir()
    _notebook(tmp_path / "notebooks" / "ok.ipynb", ["value = 1", "print(value)"])
    _notebook(tmp_path / "notebooks" / "bad.ipynb", ["value = 1", "raise ValueError(f'boom {value}')"])
    (tmp_path / "plan.yml").write_text(
        "- {name: first, notebook: notebooks/ok.ipynb, parameters: {value: 2}}\n"
        "- {name: second, notebook: notebooks/bad.ipynb}\n"
        "- {name: third, notebook: notebooks/ok.ipynb}\n")
    plan = load_plan(tmp_path / "plan.yml")
    with pytest.raises(NotebookFailed) as err:
        execute_plan(plan, tmp_path)
    message = str(err.value)
    assert "raise ValueError(f'boom {value}')" in message and "ValueError: boom 1" in message
    executed = tmp_path / "book" / "executed"
    assert (executed / "first.ipynb").is_file()
    assert (executed / "second.failed.ipynb").is_file() and not (executed / "second.ipynb").exists()
    assert not (executed / "third.ipynb").exists()
    log = json.loads((executed / "runs.json").read_text())["runs"]
    assert [(r["name"], r["status"]) for r in log] == [("first", "ok"), ("second", "failed")]
    assert not list(executed.glob(".tmp-*"))


def test_plan_errors(tmp_path):
    (tmp_path / "notebooks").mkdir()
    _notebook(tmp_path / "notebooks" / "ok.ipynb", ["value = 1"])
    (tmp_path / "plan.yml").write_text("- {name: a, notebook: notebooks/ok.ipynb, parameters: {other: 1}}\n")
    with pytest.raises(ValueError, match="does not declare"):
        execute_plan(load_plan(tmp_path / "plan.yml"), tmp_path)
    (tmp_path / "dup.yml").write_text("- {name: a, notebook: x.ipynb}\n- {name: a, notebook: y.ipynb}\n")
    with pytest.raises(ValueError, match="used twice"):
        load_plan(tmp_path / "dup.yml")
    with pytest.raises(FileNotFoundError):
        load_plan(tmp_path / "none.yml")
