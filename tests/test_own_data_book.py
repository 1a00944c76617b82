"""The book on one's own data: which chapters can run, the plan that runs them, and the whole book built on
a plain BIDS copy of a simulated study without its ground truth."""

import json
import re
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from craving_circuits.book import cli, owndata, pages
from craving_circuits.book.execute import load_plan
from craving_circuits.io.bids import SPACE
from craving_circuits.verdict import claims as registry
from craving_circuits.verdict import ledger
from test_book import _copy_book

ROOT = Path(__file__).resolve().parents[1]


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def _bold(bids: Path, task: str, sub: str = "01", ses: str = "1") -> Path:
    name = f"sub-{sub}_ses-{ses}_task-{task}_space-{SPACE}_desc-preproc_bold.nii.gz"
    return _touch(bids / "derivatives" / "fmriprep" / f"sub-{sub}" / f"ses-{ses}" / "func" / name)


def test_a_chapter_runs_when_its_inputs_are_there(tmp_path):
    bids = tmp_path / "bids"
    bids.mkdir()
    p = {"bids_dir": str(bids)}
    # nothing there: every study chapter names what it lacks and where it looked
    for notebook in ("data", "nacc_seed_fc", "nac_null_effect", "multiverse"):
        missing = owndata.missing_inputs(f"notebooks/{notebook}.ipynb", p)
        assert "restcue, restneutral" in missing and str(bids / "derivatives" / "fmriprep") in missing
    assert "nacc_metabolites.tsv" in owndata.missing_inputs("notebooks/thalamus_glutamate.ipynb", p)
    assert "perf/" in owndata.missing_inputs("notebooks/baclofen_cbf.ipynb", p)
    assert "smokingcue" in owndata.missing_inputs("notebooks/baclofen_mediation.ipynb", p)
    # one state only: the other is named
    _bold(bids, "restneutral")
    missing = owndata.missing_inputs("notebooks/nacc_seed_fc.ipynb", p)
    assert "restcue" in missing and "restneutral" not in missing
    _bold(bids, "restcue", ses="2")
    assert owndata.missing_inputs("notebooks/nacc_seed_fc.ipynb", p) is None
    # the glutamate chapter needs the MRS table too
    missing = owndata.missing_inputs("notebooks/thalamus_glutamate.ipynb", p)
    assert missing == f"no MRS table `nacc_metabolites.tsv` in `{bids / 'derivatives' / 'mrs'}`"
    _touch(bids / "derivatives" / "mrs" / "nacc_metabolites.tsv")
    assert owndata.missing_inputs("notebooks/thalamus_glutamate.ipynb", p) is None
    # other task labels (the notebooks' state_tasks) and another fMRIPrep folder are followed
    tasks = {"neutral": "restA", "craving": "restB"}
    assert "restA, restB" in owndata.missing_inputs("notebooks/data.ipynb", {**p, "state_tasks": tasks})
    elsewhere = {**p, "fmriprep_dir": str(tmp_path / "fmriprep")}
    assert str(tmp_path / "fmriprep") in owndata.missing_inputs("notebooks/data.ipynb", elsewhere)
    # perfusion: a raw ASL series, or ASLPrep's CBF maps in aslprep_dir
    aslprep = tmp_path / "aslprep"
    _touch(aslprep / "sub-01" / "ses-1" / "perf" / f"sub-01_ses-1_space-{SPACE}_cbf.nii.gz")
    assert owndata.missing_inputs("notebooks/baclofen_cbf.ipynb", {**p, "aslprep_dir": str(aslprep)}) is None
    _touch(bids / "sub-01" / "ses-1" / "perf" / "sub-01_ses-1_asl.nii.gz")
    assert owndata.missing_inputs("notebooks/baclofen_cbf.ipynb", p) is None
    # the cue chapter: its task's runs
    _bold(bids, "smokingcue")
    assert owndata.missing_inputs("notebooks/baclofen_mediation.ipynb", p) is None
    assert "cuetask" in owndata.missing_inputs("notebooks/baclofen_mediation.ipynb", {**p, "task": "cuetask"})
    # a simulated run (no bids_dir) and a notebook that analyses no study are never skipped
    assert owndata.missing_inputs("notebooks/baclofen_cbf.ipynb", {"bids_dir": None}) is None
    assert owndata.missing_inputs("notebooks/calibration.ipynb", {"bids_dir": str(tmp_path / "none")}) is None


def test_the_own_data_plan_points_the_study_chapters_at_the_dataset(tmp_path):
    plan = load_plan(ROOT / "book" / "runs.yml", preset="paper", null_preset="null")
    own = owndata.own_data_plan(plan, tmp_path, fmriprep_dir=tmp_path / "fp", null_preset="null")
    by_name = {e["name"]: e for e in own}
    assert [e["name"] for e in own] == [e["name"] for e in plan]
    pointed = {e["name"] for e in own if "own_data" in e}
    chapters = {"data", "nacc_seed_fc", "thalamus_glutamate", "nac_null_effect", "multiverse"}
    assert pointed == chapters | {"baclofen_cbf", "baclofen_mediation"}
    assert by_name["nacc_seed_fc"]["own_data"] == {"bids_dir": str(tmp_path), "fmriprep_dir": str(tmp_path / "fp")}
    assert by_name["data"]["title"] == "The dataset"  # not "The simulated study"
    # the null runs, the positive control (a planted effect of its own) and the other chapters stay as they are
    for name in ("nacc_seed_fc_null", "thalamus_glutamate_null", "calibration", "claims_ledger", "reproducibility"):
        assert by_name[name] == next(e for e in plan if e["name"] == name), name
    control = by_name["nac_positive_control"]
    assert control["parameters"]["simulation"]["nac_effect"] < 0 and "own_data" not in control
    # ... but it no longer compares itself with (or waits for) the run on one's own data
    assert "compare_dir" not in control["parameters"] and control["needs"] == []
    assert control["parameters"]["firstlevel_dir"] == "{results_dir}/nac_positive_control/firstlevel"
    assert "compare_dir" in next(e for e in plan if e["name"] == "nac_positive_control")["parameters"]
    with pytest.raises(FileNotFoundError, match="BIDS folder not found"):
        owndata.own_data_plan(plan, tmp_path / "absent")


def _notebook(path: Path, parameters: str, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(parameters), nbformat.v4.new_code_cell(body)]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


WRITE = (
    "import json, os\nos.makedirs(output_dir, exist_ok=True)\n"
    "json.dump(dict(globals_), open(f'{output_dir}/p.json', 'w'))"
)


def test_chapters_without_their_inputs_are_skipped_with_a_page_saying_why(tmp_path, capsys):
    """Stand-in notebooks named like the chapters: the runner gives each the folders it declares, skips the
    chapters whose inputs are absent (and those that need them) and runs the rest."""
    for name, extra in (
        ("nacc_seed_fc", ""),
        ("baclofen_cbf", "\naslprep_dir = None"),
        ("baclofen_mediation", ""),
        ("claims_ledger", ""),
    ):
        declared = ("bids_dir = None\nfmriprep_dir = None\n" if name != "claims_ledger" else "") + "output_dir = 'o'"
        _notebook(
            tmp_path / "notebooks" / f"{name}.ipynb",
            declared + extra,
            "globals_ = {k: v for k, v in dict(globals()).items() if k.endswith('_dir')}\n" + WRITE,
        )
    (tmp_path / "plan.yml").write_text(
        "- {name: nacc_seed_fc, notebook: notebooks/nacc_seed_fc.ipynb}\n"
        "- {name: baclofen_cbf, title: Baclofen and resting perfusion, notebook: notebooks/baclofen_cbf.ipynb}\n"
        "- {name: baclofen_mediation, notebook: notebooks/baclofen_mediation.ipynb, needs: [baclofen_cbf]}\n"
        "- {name: claims_ledger, notebook: notebooks/claims_ledger.ipynb, needs: [nacc_seed_fc, baclofen_mediation]}\n"
    )
    bids = tmp_path / "bids"
    _bold(bids, "restneutral")
    _bold(bids, "restcue")
    _bold(bids, "smokingcue")  # the cue runs are there, but the CBF chapter it needs is not
    aslprep = tmp_path / "aslprep"
    aslprep.mkdir()
    stale = _touch(tmp_path / "results" / "baclofen_cbf" / "dlpfc_change.tsv")  # of an earlier, simulated build
    args = ["execute", "--plan", str(tmp_path / "plan.yml"), "--root", str(tmp_path), "--bids-dir", str(bids)]
    assert cli.main(args + ["--aslprep-dir", str(aslprep)]) == 0
    out = capsys.readouterr().out
    assert "baclofen_cbf: skipped: no ASL series" in out and "baclofen_mediation: skipped: it reads" in out
    results, executed = tmp_path / "results", tmp_path / "book" / "executed"
    ran = json.loads((results / "nacc_seed_fc" / "p.json").read_text())
    assert ran["bids_dir"] == str(bids.resolve()) and ran["fmriprep_dir"] is None
    assert json.loads((results / "claims_ledger" / "p.json").read_text()) == {
        "output_dir": str(results / "claims_ledger")
    }
    for name, absent in (
        ("baclofen_cbf", f"and no ASLPrep CBF map in `{aslprep.resolve()}`"),
        ("baclofen_mediation", "baclofen_cbf"),
    ):
        record = json.loads((results / name / "run.json").read_text())
        assert record["status"] == "skipped" and absent in record["reason"]
        assert sorted(p.name for p in (results / name).iterdir()) == ["run.json"]
        page = nbformat.read(executed / f"{name}.ipynb", as_version=4)
        nbformat.validate(page)
        assert [c.cell_type for c in page.cells] == ["markdown"] and absent in page.cells[0].source
    assert (
        nbformat.read(executed / "baclofen_cbf.ipynb", as_version=4)
        .cells[0]
        .source.startswith("# Baclofen and resting perfusion\n")
    )
    assert not stale.exists()
    assert json.loads((results / "baclofen_cbf" / "run.json").read_text())["parameters"]["aslprep_dir"] == str(
        aslprep.resolve()
    )
    log = json.loads((executed / "runs.json").read_text())["runs"]
    assert {r["name"]: r["status"] for r in log} == {
        "nacc_seed_fc": "ok",
        "baclofen_cbf": "skipped",
        "baclofen_mediation": "skipped",
        "claims_ledger": "ok",
    }
    # derivatives folders without a dataset are refused
    assert cli.main(["execute", "--plan", str(tmp_path / "plan.yml"), "--fmriprep-dir", str(bids)]) == 2
    assert "need --bids-dir" in capsys.readouterr().err


#: The runs of the plan that analyse the dataset, and the ledger that reads them; the calibration, simulated by
#: nature, runs as it does in every build. Left out here to keep the test short: the runs simulated by nature
#: that compare nothing with the dataset (the null runs, the positive control; the plan test above shows that
#: they stay as they are), the appendix, and the multiverse, which reads the dataset as the seed chapter does.
OWN_DATA_RUNS = [
    "calibration",
    "nacc_seed_fc",
    "baclofen_cbf",
    "nac_null_effect",
    "baclofen_mediation",
    "thalamus_glutamate",
    "data",
    "claims_ledger",
]

TRUTH_HEADER = re.compile(r"<th[^>]*>\s*(planted|planted_present|agree|n_agree)\s*</th>")


def _outputs(page: Path) -> list[dict]:
    nb = nbformat.read(page, as_version=4)
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


@pytest.mark.book
def test_the_book_builds_on_a_plain_bids_copy_without_its_truth(tiny_study_dir, tmp_path):
    bids = tmp_path / "my_study"
    shutil.copytree(tiny_study_dir, bids)
    shutil.rmtree(bids / "derivatives" / "simulation")  # the ground truth: real data carry none
    assert not list(bids.rglob("*ground_truth*")) and not list(bids.rglob("perf"))
    root = _copy_book(tmp_path / "book_root")
    args = ["execute", "--plan", str(root / "book" / "runs.yml"), "--root", str(root), "--n-jobs", "2"]
    args += ["--preset", "tiny", "--null-preset", "tiny_null", "--data-dir", str(tmp_path / "data")]
    args += ["--bids-dir", str(bids), "--only", *OWN_DATA_RUNS]
    args += ["--set", "n_permutations=100", "n_bootstrap=200", "n_sims=3", "n_voxel_sims=2", "n_bound_sims=5"]
    assert cli.main(args) == 0
    results, executed = root / "results", root / "book" / "executed"
    records = {r["name"]: r for r in json.loads((executed / "runs.json").read_text())["runs"]}
    assert sorted(records) == sorted(OWN_DATA_RUNS)  # nothing else ran: the --only above was deliberate
    # the cocaine chapters ran on the copy, and nothing simulated the main study
    for name in ("data", "nacc_seed_fc", "thalamus_glutamate", "nac_null_effect"):
        assert records[name]["status"] == "ok", name
        assert records[name]["parameters"]["bids_dir"] == str(bids.resolve()), name
        assert json.loads((results / name / "run.json").read_text())["parameters"]["bids_dir"] == str(bids.resolve())
        outputs = _outputs(executed / f"{name}.ipynb")
        assert not [o for o in outputs if o.get("output_type") == "error"], name
        # the recovered-vs-planted section says that there is no truth, and no table shows a truth column
        shown = [o.get("data", {}).get("text/markdown", "") for o in outputs]
        assert any(pages.NO_TRUTH in text for text in shown), name
        assert not [o for o in outputs if TRUTH_HEADER.search(o.get("data", {}).get("text/html", ""))], name
        assert f"the BIDS dataset at `{bids.resolve()}`" in "".join(shown), name
    assert not (tmp_path / "data" / "cocaine-tiny").exists()
    # the baclofen chapters: the copy has neither ASL nor cue-task runs, so their pages say so
    for name, absent in (("baclofen_cbf", "no ASL series"), ("baclofen_mediation", "smokingcue")):
        assert records[name]["status"] == "skipped" and absent in records[name]["reason"]
        text = nbformat.read(executed / f"{name}.ipynb", as_version=4).cells[0].source
        assert absent in text and str(bids.resolve()) in text
    # the calibration is simulated by nature and ran as usual
    assert records["calibration"]["status"] == "ok" and "bids_dir" not in records["calibration"]["parameters"]
    assert (results / "calibration" / "claims.tsv").is_file()
    # the ledger: verdicts of the cocaine claims without a truth column, the baclofen claims listed as not tested
    claims = pd.read_csv(results / "claims_ledger" / "claims_ledger.tsv", sep="\t")
    assert not set(claims.columns) & {"planted", "planted_present", "agree"}
    assert list(claims["claim_id"]) == [c.claim_id for c in registry.CLAIMS if c.study == "cocaine"]
    assert claims["verdict"].isin(ledger.VERDICTS).all()
    untested = pd.read_csv(results / "claims_ledger" / "claims_not_tested.tsv", sep="\t")
    assert list(untested["claim_id"]) == [c.claim_id for c in registry.CLAIMS if c.study == "baclofen"]
    assert set(untested["chapter"]) == {"baclofen_cbf", "baclofen_mediation"}
    ledger_outputs = _outputs(executed / "claims_ledger.ipynb")
    assert not [o for o in ledger_outputs if TRUTH_HEADER.search(o.get("data", {}).get("text/html", ""))]
    glued = json.dumps(ledger_outputs)  # the sentences glued for the prose
    assert "The data carry no planted truth" in glued and "agree with it" not in glued
    assert "claims are not tested: the dataset lacks the inputs of baclofen_cbf, baclofen_mediation" in glued
    assert any(pages.NO_TRUTH in o.get("data", {}).get("text/markdown", "") for o in ledger_outputs)
