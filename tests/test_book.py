"""The book end to end on the tiny presets: papermill runs every notebook, Jupyter Book renders them."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml

from browser_checks import check_book
from craving_circuits.baclofen import chapters as baclofen_chapters
from craving_circuits.baclofen import cue, perfusion
from craving_circuits.baclofen import layout as baclofen_layout
from craving_circuits.book import cli
from craving_circuits.book.execute import (
    NotebookFailed,
    execute_plan,
    install_mathjax,
    load_plan,
)
from craving_circuits.cocaine import chapters as cocaine_chapters
from craving_circuits.cocaine import denoise, firstlevel, layout, mrs, secondlevel
from craving_circuits.io import atlas
from craving_circuits.io.files import read_tsv
from craving_circuits.io.tables import write_table
from craving_circuits.verdict import claims as registry
from craving_circuits.verdict import ledger
from craving_circuits.verdict.calibration import study_conditions

ROOT = Path(__file__).resolve().parents[1]


def _copy_book(dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml", "LICENSE", "CITATION.cff"):
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


def _parameters(root: Path, name: str) -> dict:
    """A run's notebook parameters: the defaults of its parameters cell, updated by those it was given."""
    record = json.loads((root / "results" / name / "run.json").read_text())
    nb = nbformat.read(root / record["notebook"], as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    values = {}
    exec(cell.source, {}, values)
    return {**values, **record["parameters"]}


def _same_files(tables: dict, results: Path, out: Path) -> list[str]:
    """Write each table as the notebooks do and compare it byte for byte with the run's file of that name."""
    compared = []
    for name, table in tables.items():
        if (results / f"{name}.tsv").is_file():
            assert write_table(table, out, name).read_bytes() == (results / f"{name}.tsv").read_bytes(), name
            compared.append(name)
    return compared


def _assert_chains_equal_notebooks(root: Path, out: Path) -> None:
    results = root / "results"
    p = _parameters(root, "thalamus_glutamate")
    study = layout.simulated_study(p["preset"], p["data_dir"], **p["simulation"])
    runs, _ = layout.collect_runs(study)
    chosen = denoise.parse_strategy(p["strategy"], p["band_pass"])
    analysis, mask_img, _ = firstlevel.seed_analysis(runs, chosen)
    first = firstlevel.first_level(runs, analysis, mask_img, p["firstlevel_dir"])
    assert first.n_cached == len(runs)  # the seed chapter's first level, not a new one
    fc = secondlevel.roi_state_differences(first.roi, chosen.name)
    drugs = runs[["participant_id", "session_id", "drug"]].drop_duplicates()
    glu = cocaine_chapters.glutamate_tests(
        fc,
        mrs.read_mrs(study.mrs_file),
        layout.read_participants(study),
        drugs,
        metabolite=p["metabolite"],
        scale=p["scale"],
        change=p["change"],
        max_crlb=p["max_crlb"],
        max_fwhm_hz=p["max_fwhm_hz"],
        min_snr=p["min_snr"],
        sessions=p["sessions"],
        n_bootstrap=p["n_bootstrap"],
        sesoi_r=p["sesoi_r"],
        alpha=p["alpha"],
        rng=np.random.default_rng(p["seed"]),
    )
    compared = _same_files(glu, results / "thalamus_glutamate", out / "glutamate")
    assert {"couplings", "coupling_equivalence", "predictor_betas", "glutamate_rise"} <= set(compared)

    p = _parameters(root, "nac_null_effect")
    nac = cocaine_chapters.nac_tests(
        fc,
        layout.read_craving_ratings(study),
        sesoi_dz=p["sesoi_dz"],
        prior_scale=p["prior_scale"],
        power=p["power"],
        alpha=p["alpha"],
    )
    assert {"double_differences", "evidence", "rating_tests"} <= set(
        _same_files(nac, results / "nac_null_effect", out / "nac")
    )

    p = _parameters(root, "baclofen_mediation")
    bids = baclofen_layout.simulated_study(p["preset"], p["data_dir"], **p["simulation"])
    task_runs, _ = baclofen_layout.collect_task_runs(bids, p["fmriprep_dir"], p["task"])
    mask_img = perfusion.perfusion_mask(baclofen_layout.collect_asl_runs(bids)[0])
    maps = cue.cue_maps(
        task_runs, mask_img, f"{p['output_dir']}/firstlevel", confounds=p["confounds"], high_pass=p["high_pass"]
    )
    assert maps.n_cached == len(task_runs)
    rois = atlas.roi_masks(["insula_anterior_ventral", "vmpfc"], mask_img)
    roi_effects = cue.roi_means(maps.maps, mask_img, rois, maps.runs[["participant_id", "group", "session_id"]])
    tables = baclofen_chapters.cue_tests(
        roi_effects,
        read_tsv(f"{p['cbf_dir']}/dlpfc_change.tsv"),
        read_tsv(bids / "phenotype" / "craving_ratings.tsv"),
        read_tsv(bids / "participants.tsv"),
        n_bootstrap=p["n_bootstrap"],
        alpha=p["alpha"],
        rng=np.random.default_rng(p["seed"]),
    )
    assert {"t1_response", "associations", "craving_test", "mediation_cue", "mediation_craving"} <= set(
        _same_files(tables, results / "baclofen_mediation", out / "cue")
    )


@pytest.mark.book
def test_book_builds_from_executed_notebooks(tmp_path):
    root = _copy_book(tmp_path / "book_root")
    plan = load_plan(root / "book" / "runs.yml", preset="tiny", null_preset="tiny_null")
    records = execute_plan(
        plan,
        root,
        data_dir=tmp_path / "data",
        n_jobs=2,
        overrides={"n_permutations": 200, "n_bootstrap": 500, "n_sims": 3, "n_voxel_sims": 2, "n_bound_sims": 5},
    )
    assert [r["name"] for r in records] == [entry["name"] for entry in plan]
    assert all(r["status"] == "ok" for r in records)
    executed = root / "book" / "executed"
    for record in records:
        nb = nbformat.read(executed / f"{record['name']}.ipynb", as_version=4)
        errors = [
            o
            for c in nb.cells
            if c.cell_type == "code"
            for o in c.get("outputs", [])
            if o.get("output_type") == "error"
        ]
        assert not errors, record["name"]
        assert (
            json.loads((root / "results" / record["name"] / "run.json").read_text())["parameters"]
            == record["parameters"]
        )
    by_name = {r["name"]: r for r in records}
    for name in ("nacc_seed_fc_null", "thalamus_glutamate_null", "baclofen_cbf_null", "baclofen_mediation_null"):
        assert by_name[name]["parameters"]["preset"] == "tiny_null", name
    assert by_name["baclofen_mediation_null"]["parameters"]["cbf_dir"].endswith("results/baclofen_cbf_null")
    assert by_name["nacc_seed_fc"]["parameters"]["n_permutations"] == 200
    for name in (
        "data",
        "nacc_seed_fc",
        "nacc_seed_fc_null",
        "thalamus_glutamate",
        "nac_null_effect",
        "nac_positive_control",
        "baclofen_cbf",
        "baclofen_mediation",
        "baclofen_cbf_null",
        "baclofen_mediation_null",
    ):
        assert (root / "results" / name / "recovered_vs_planted.tsv").is_file(), name
    # the positive control is the same notebook with a planted NAC effect, compared with the default run
    control = next(r for r in records if r["name"] == "nac_positive_control")
    assert control["notebook"] == "notebooks/nac_null_effect.ipynb"
    assert control["parameters"]["simulation"]["nac_effect"] < 0
    assert control["parameters"]["compare_dir"].endswith("results/nac_null_effect")
    assert not list(executed.glob(".tmp-*")) and not list(executed.glob("*.failed.ipynb"))
    # the ledger reads every declared claim from the runs' result files
    claims = pd.read_csv(root / "results" / "claims_ledger" / "claims_ledger.tsv", sep="\t")
    assert list(claims["claim_id"]) == [c.claim_id for c in registry.CLAIMS]
    assert claims["verdict"].isin(ledger.VERDICTS).all() and claims["agree"].notna().all()
    # the calibration ran at its tiny size, every ROI-level claim's test under every condition of its study
    calibration = pd.read_csv(root / "results" / "calibration" / "results.tsv", sep="\t", keep_default_na=False)
    bounds = pd.read_csv(root / "results" / "calibration" / "bounds.tsv", sep="\t")
    conditions = {s: study_conditions(s, bounds) for s in ("cocaine", "baclofen")}
    assert len(calibration) == sum(3 * len(conditions[s]) * len(registry.claims(s, "roi")) for s in conditions)
    assert set(calibration["condition"]) == set(conditions["cocaine"]) | set(conditions["baclofen"])
    # the ledger marks every claim that the calibration covered as calibrated or not
    roi = claims[claims["claim_id"].isin([c.claim_id for c in registry.claims(level="roi")])]
    assert roi["calibration"].isin(["calibrated", "not calibrated"]).all()
    # each chapter's ROI-level chain exists once: the notebooks wrote what the chain functions return
    _assert_chains_equal_notebooks(root, tmp_path / "direct")

    install_mathjax(root / "_mathjax_static" / "mathjax")
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    build = subprocess.run([str(jupyter_book), "build", str(root), "--builder", "html"], capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    html = root / "_build" / "html"
    for page in (
        "book/intro",
        "book/cocaine_design",
        "book/methods_connectivity",
        "book/executed/data",
        "book/executed/nacc_seed_fc",
        "book/executed/nacc_seed_fc_null",
        "book/executed/reproducibility",
        "book/bibliography",
        "book/methods_glutamate",
        "book/executed/thalamus_glutamate",
        "book/methods_null_effects",
        "book/executed/nac_null_effect",
        "book/executed/nac_positive_control",
        "book/methods_baclofen",
        "book/executed/baclofen_cbf",
        "book/executed/baclofen_mediation",
        "book/executed/baclofen_cbf_null",
        "book/executed/baclofen_mediation_null",
        "book/executed/claims_ledger",
        "book/executed/calibration",
    ):
        assert (html / f"{page}.html").is_file(), page
    null_page = (html / "book" / "executed" / "nacc_seed_fc_null.html").read_text()
    assert "every planted effect is zero" in null_page
    assert "Recovered vs planted" in null_page
    # a table's target and the prose's link to it carry each run's own suffix, on a main and on a null page
    main_page = (html / "book" / "executed" / "nacc_seed_fc.html").read_text()
    for page, label in ((main_page, "tbl-seed-roi-nacc-seed-fc"), (null_page, "tbl-seed-roi-nacc-seed-fc-null")):
        assert f'href="#{label}"' in page and f'id="{label}"' in page, label
    for name in ("baclofen_cbf_null", "baclofen_mediation_null"):
        assert "the others are zero" in (html / "book" / "executed" / f"{name}.html").read_text(), name
    ledger_page = (html / "book" / "executed" / "claims_ledger.html").read_text()
    assert re.search(rf"Of the (<[^>]*>)*{len(registry.CLAIMS)}(<[^>]*>)* claims", ledger_page)
    # the landing page pastes the ledger's overview; every page names the version and commit; no Thebe
    intro = (html / "book" / "intro.html").read_text()
    assert "evidence of absence</th>" in intro and re.search(rf">all</td>\s*<td[^>]*>{len(registry.CLAIMS)}<", intro)
    for page in [*(html / "book").rglob("*.html"), html / "search.html", html / "genindex.html"]:
        text = page.read_text()
        assert "build-version" in text and "thebe" not in text.lower(), page
    references = (html / "book" / "bibliography.html").read_text()
    assert "Engeli et al., 2023" in references and "APE+14" not in references
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
    # read as a reader's browser reads it: every page, with a screenshot of each kept as an artifact
    problems = check_book(html, forbidden=[str(root)], screenshot_dir=ROOT / "test-artifacts" / "book-screenshots")
    problems = {page: found for page, found in problems.items() if found}
    assert not problems, "\n".join(f"{page}: {found}" for page, found in problems.items())


def test_the_plan_and_the_table_of_contents_list_the_same_runs():
    plan = load_plan(ROOT / "book" / "runs.yml", preset="paper", null_preset="null")
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    chapters = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    executed = [f.removeprefix("book/executed/") for f in chapters if f.startswith("book/executed/")]
    assert sorted(executed) == sorted(entry["name"] for entry in plan)
    by_name = {entry["name"]: entry for entry in plan}
    # both studies have a null run of every chapter that has a default run, at the null preset
    for name in ("nacc_seed_fc", "thalamus_glutamate", "baclofen_cbf", "baclofen_mediation"):
        null = by_name[f"{name}_null"]
        assert null["notebook"] == by_name[name]["notebook"] and null["parameters"]["preset"] == "null"
        assert by_name[name]["parameters"]["preset"] == "paper"
        assert f"{name}_null" in by_name["reproducibility"]["needs"]
        assert chapters.index(f"book/executed/{name}_null") == chapters.index(f"book/executed/{name}") + 1
    assert by_name["baclofen_mediation_null"]["needs"] == ["baclofen_cbf_null"]
    assert by_name["baclofen_mediation_null"]["parameters"]["cbf_dir"] == "{results_dir}/baclofen_cbf_null"
    # the ledger judges the default runs only
    assert not [n for n in by_name["claims_ledger"]["needs"] if n.endswith("_null")]


def test_failing_notebook_stops_the_build_with_the_cell(tmp_path):
    (tmp_path / "notebooks").mkdir()
    _notebook(tmp_path / "notebooks" / "ok.ipynb", ["value = 1", "print(value)"])
    _notebook(tmp_path / "notebooks" / "bad.ipynb", ["value = 1", "raise ValueError(f'boom {value}')"])
    (tmp_path / "plan.yml").write_text(
        "- {name: first, notebook: notebooks/ok.ipynb, parameters: {value: 2}}\n"
        "- {name: second, notebook: notebooks/bad.ipynb}\n"
        "- {name: third, notebook: notebooks/ok.ipynb}\n"
    )
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


def test_notebook_kernels_run_quietly(tmp_path, capfd):
    """The kernels of a build log only errors: no per-start warnings between the build's progress lines."""
    (tmp_path / "notebooks").mkdir()
    _notebook(tmp_path / "notebooks" / "ok.ipynb", ["value = 1", "print(value)"])
    (tmp_path / "plan.yml").write_text("- {name: first, notebook: notebooks/ok.ipynb}\n")
    execute_plan(load_plan(tmp_path / "plan.yml"), tmp_path)
    err = capfd.readouterr().err
    assert "IPKernelApp" not in err and "WARNING" not in err, err
    assert (tmp_path / "book" / "executed" / "first.ipynb").is_file()


def _timed_plan(tmp_path: Path, sleep: float) -> None:
    """Three entries: ``a`` and ``b`` independent (each sleeps), ``c`` needs both; each records when it ran."""
    (tmp_path / "notebooks").mkdir()
    _notebook(
        tmp_path / "notebooks" / "timed.ipynb",
        [
            "name = 'x'\nsleep = 0.0\nn_jobs = 0\noutput_dir = 'out'",
            "import json, os, time\nstart = time.time()\ntime.sleep(sleep)\nos.makedirs(output_dir, exist_ok=True)\n"
            "times = {'start': start, 'end': time.time(), 'n_jobs': n_jobs}\n"
            "times['blas_threads'] = os.environ.get('OPENBLAS_NUM_THREADS')\n"
            "json.dump(times, open(f'{output_dir}/times.json', 'w'))",
        ],
    )
    (tmp_path / "plan.yml").write_text(
        f"- {{name: a, notebook: notebooks/timed.ipynb, parameters: {{sleep: {sleep}}}}}\n"
        f"- {{name: b, notebook: notebooks/timed.ipynb, parameters: {{sleep: {sleep}}}}}\n"
        "- {name: c, notebook: notebooks/timed.ipynb, needs: [a, b]}\n"
    )


def test_independent_notebooks_run_side_by_side_and_wait_for_what_they_need(tmp_path):
    _timed_plan(tmp_path, sleep=3.0)
    lines = []
    records = execute_plan(load_plan(tmp_path / "plan.yml"), tmp_path, n_jobs=2, progress=lines.append)
    assert [r["name"] for r in records] == ["a", "b", "c"]
    assert sorted(r["name"] for r in lines[:2]) == ["a", "b"] and lines[2]["name"] == "c"
    times = {n: json.loads((tmp_path / "results" / n / "times.json").read_text()) for n in "abc"}
    # a and b overlap in time; c starts only after both have ended
    assert max(times["a"]["start"], times["b"]["start"]) < min(times["a"]["end"], times["b"]["end"])
    assert times["c"]["start"] >= max(times["a"]["end"], times["b"]["end"])
    # two notebooks side by side on two workers: one worker each, and one thread for their numerical libraries
    assert {t["n_jobs"] for t in times.values()} == {1}
    assert {t["blas_threads"] for t in times.values()} == {"1"}


def test_one_notebook_at_a_time_keeps_the_plan_order(tmp_path):
    _timed_plan(tmp_path, sleep=0.5)
    records = execute_plan(load_plan(tmp_path / "plan.yml"), tmp_path, n_jobs=2, max_parallel=1)
    times = {n: json.loads((tmp_path / "results" / n / "times.json").read_text()) for n in "abc"}
    assert times["a"]["end"] <= times["b"]["start"] and times["b"]["end"] <= times["c"]["start"]
    assert {t["n_jobs"] for t in times.values()} == {2} and [r["name"] for r in records] == ["a", "b", "c"]
    assert {t["blas_threads"] for t in times.values()} == {os.environ.get("OPENBLAS_NUM_THREADS")}


def test_command_line_executes_the_plan_with_one_line_per_notebook(tmp_path, capsys):
    _timed_plan(tmp_path, sleep=0.0)
    args = ["execute", "--plan", str(tmp_path / "plan.yml"), "--root", str(tmp_path), "--n-jobs", "2"]
    assert cli.main(args + ["--set", "sleep=0.2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[2].startswith("[3/3] c: ok in ")
    assert sorted(line.split()[1] for line in lines[:2]) == ["a:", "b:"]
    record = json.loads((tmp_path / "results" / "c" / "run.json").read_text())
    assert record["parameters"]["sleep"] == 0.2 and record["parameters"]["n_jobs"] == 1
    # a failing notebook: exit status 1 and the failing cell on stderr
    _notebook(tmp_path / "notebooks" / "bad.ipynb", ["value = 1", "raise RuntimeError('broken input')"])
    (tmp_path / "bad.yml").write_text("- {name: bad, notebook: notebooks/bad.ipynb}\n")
    assert cli.main(["execute", "--plan", str(tmp_path / "bad.yml"), "--root", str(tmp_path)]) == 1
    assert "RuntimeError: broken input" in capsys.readouterr().err
    # a name that is not in the plan: exit status 2 and the plan's names
    assert cli.main(["execute", "--plan", str(tmp_path / "bad.yml"), "--root", str(tmp_path), "--only", "badd"]) == 2
    assert "No plan entry named ['badd']" in capsys.readouterr().err


def test_kernel_streams_go_to_the_run_log_not_the_terminal(tmp_path, capfd):
    """What a kernel process prints outside cells (worker pools' warnings at exit) lands in the run's log."""
    (tmp_path / "notebooks").mkdir()
    _notebook(
        tmp_path / "notebooks" / "noisy.ipynb",
        ["value = 1", "import os\nos.write(2, b'resource_tracker: leaked semlock objects\\n')"],
    )
    (tmp_path / "plan.yml").write_text("- {name: noisy, notebook: notebooks/noisy.ipynb}\n")
    execute_plan(load_plan(tmp_path / "plan.yml"), tmp_path)
    captured = capfd.readouterr()
    assert "semlock" not in captured.err + captured.out
    assert "leaked semlock" in (tmp_path / "book" / "executed" / "logs" / "noisy.log").read_text()


def test_plan_errors(tmp_path):
    (tmp_path / "notebooks").mkdir()
    _notebook(tmp_path / "notebooks" / "ok.ipynb", ["value = 1"])
    (tmp_path / "plan.yml").write_text("- {name: a, notebook: notebooks/ok.ipynb, parameters: {other: 1}}\n")
    with pytest.raises(ValueError, match="does not declare"):
        execute_plan(load_plan(tmp_path / "plan.yml"), tmp_path)
    with pytest.raises(ValueError, match="No plan entry named"):
        execute_plan(load_plan(tmp_path / "plan.yml"), tmp_path, only=["b"])
    (tmp_path / "dup.yml").write_text("- {name: a, notebook: x.ipynb}\n- {name: a, notebook: y.ipynb}\n")
    with pytest.raises(ValueError, match="used twice"):
        load_plan(tmp_path / "dup.yml")
    with pytest.raises(FileNotFoundError):
        load_plan(tmp_path / "none.yml")
    (tmp_path / "later.yml").write_text("- {name: a, notebook: x.ipynb, needs: [b]}\n- {name: b, notebook: y.ipynb}\n")
    with pytest.raises(ValueError, match="not an earlier entry"):
        load_plan(tmp_path / "later.yml")
    (tmp_path / "needs.yml").write_text("- {name: a, notebook: x.ipynb, needs: b}\n")
    with pytest.raises(ValueError, match="list of entry names"):
        load_plan(tmp_path / "needs.yml")
