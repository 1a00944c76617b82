"""Bad runs are listed and never stop the others; runs with entities; unknown parameters are refused.

Each test corrupts a copy of the tiny simulated study the way a user's data can
be corrupted, checks the error or the exclusion row (file and reason), and
checks that the analysis wrote nothing into the input tree.
"""

import os
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

import test_layout
from craving_circuits.book import cli
from craving_circuits.book.execute import execute_plan, load_plan
from craving_circuits.cocaine import denoise, firstlevel, layout, secondlevel
from craving_circuits.io import bids
from craving_circuits.io.runs import confounds_problem
from craving_circuits.simulate import cocaine_params
from craving_circuits.simulate.cocaine import simulate_cocaine_study
from test_layout import _digest, _excluded, _files

TINY = cocaine_params("tiny")
study_copy = test_layout.study_copy  # the fixture: a writable copy of the tiny study


def _has_run(runs, pid, ses, state):
    return bool(((runs["participant_id"] == pid) & (runs["session_id"] == ses) & (runs["state"] == state)).any())


# --------------------------------------------------------------------------- case 1: confounds files


def _short_confounds(path):
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:41]))  # header and 40 of the run's rows


def _na_in_motion(path):
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    table.loc[30, "trans_x"] = "n/a"
    table.to_csv(path, sep="\t", index=False)


def _html(path):
    path.write_text("<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n<body>Not found</body></html>\n")


def _binary(path):
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())


@pytest.mark.parametrize(
    "corrupt, expected",
    [
        (_short_confounds, "has 40 rows but the run has 60 volumes"),
        (_na_in_motion, "column 'trans_x', row 31: a missing value after the first row"),
        (_html, "lacks the motion column(s)"),
        (_binary, "is not a readable tab-separated table"),
    ],
    ids=["fewer_rows", "na_in_motion_column", "html", "binary"],
)
def test_bad_confounds_file_excludes_the_run_and_the_chapter_goes_on(study_copy, corrupt, expected):
    files = _files(study_copy, "sub-02", "ses-2", "restneutral")
    corrupt(files.confounds)
    before = _digest(study_copy)
    runs, exclusions = layout.collect_runs(layout.open_study(study_copy))
    row = _excluded(exclusions, "sub-02", "ses-2", "neutral")
    assert row["stage"] == "inputs" and row["file"] == str(files.confounds)
    assert str(files.confounds) in row["reason"] and expected in row["reason"], row["reason"]
    assert len(exclusions) == 1 and len(runs) == TINY.n_participants * 4 - 1
    assert not _has_run(runs, "sub-02", "ses-2", "neutral")
    # the data chapter's head-motion summary reads every listed run's confounds
    motion = denoise.motion_summary(runs)
    assert len(motion) == len(runs) and np.isfinite(motion["mean_fd"]).all()
    assert _digest(study_copy) == before


def test_confounds_problem_accepts_fmriprep_n_a_in_the_first_row(tmp_path):
    path = tmp_path / "conf.tsv"
    table = pd.DataFrame({c: np.arange(5.0) for c in ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")})
    table["framewise_displacement"] = [np.nan, 0.1, 0.2, 0.1, 0.3]
    table.to_csv(path, sep="\t", index=False, na_rep="n/a")
    assert confounds_problem(path, 5) is None
    table = table.astype(object)
    table.loc[3, "rot_y"] = "seven"
    table.to_csv(path, sep="\t", index=False, na_rep="n/a")
    assert "column 'rot_y', row 4: 'seven' is not a number" in confounds_problem(path, 5)


# --------------------------------------------------------------------------- case 2: a truncated BOLD run


def test_truncated_bold_is_excluded_at_the_first_level_and_the_others_go_on(study_copy, tmp_path):
    files = _files(study_copy, "sub-03", "ses-1", "restcue")
    files.bold.write_bytes(files.bold.read_bytes()[:1000])  # the header survives, the data do not
    before = _digest(study_copy)
    runs, exclusions = layout.collect_runs(layout.open_study(study_copy))
    assert exclusions.empty  # the header reads: the damage shows when the data are read
    some = runs[runs["participant_id"].isin(["sub-03", "sub-04"])].reset_index(drop=True)
    analysis, mask_img, _ = firstlevel.seed_analysis(runs, denoise.parse_strategy("simple"))
    first = firstlevel.first_level(some, analysis, mask_img, tmp_path / "fl")
    row = _excluded(first.exclusions, "sub-03", "ses-1", "craving")
    assert row["stage"] == "first level" and row["file"] == str(files.bold)
    assert str(files.bold) in row["reason"] and "truncated" in row["reason"]
    assert len(first.runs) == len(some) - 1 == len(first.maps) and np.isfinite(first.maps).any()
    assert _digest(study_copy) == before


# --------------------------------------------------------------------------- case 3: run entities


def test_entities_of_a_file_name_are_recognised():
    name = "sub-01_ses-1_task-restcue_acq-mb4_ce-gd_rec-norm_dir-AP_run-2_echo-1_space-MNI_desc-preproc_bold.nii.gz"
    entities = bids.parse_entities(name)
    assert entities == {
        "sub": "01",
        "ses": "1",
        "task": "restcue",
        "acq": "mb4",
        "ce": "gd",
        "rec": "norm",
        "dir": "AP",
        "run": "2",
        "echo": "1",
        "space": "MNI",
        "desc": "preproc",
    }
    assert bids.run_label(name) == "acq-mb4_ce-gd_rec-norm_dir-AP_run-2_echo-1"
    assert bids.bids_filename({k: v for k, v in entities.items()}, "bold", ".nii.gz") == name
    files = bids.sibling_files(f"/d/{name}")
    stem = name.removesuffix("_desc-preproc_bold.nii.gz")
    assert files.mask.name == f"{stem}_desc-brain_mask.nii.gz"
    assert files.bold_json.name == f"{stem}_desc-preproc_bold.json"
    # confounds: no space, no echo (one confounds file per multi-echo run)
    assert (
        files.confounds.name
        == "sub-01_ses-1_task-restcue_acq-mb4_ce-gd_rec-norm_dir-AP_run-2_desc-confounds_timeseries.tsv"
    )
    # a plain name gives the paths run_files expects
    plain = bids.run_files("/d", "sub-01", "ses-1", "restcue")
    assert bids.sibling_files(plain.bold) == plain


def _split_into_two_runs(root, pid="sub-01", ses="ses-1", task="restcue"):
    """Rename a run as run-1 and copy it as run-2 (every fMRIPrep file of the run)."""
    files = _files(root, pid, ses, task)
    copies = {}
    for label in ("run-1", "run-2"):
        for path in (files.bold, files.bold_json, files.mask, files.confounds, files.confounds_json):
            name = path.name.replace(f"_task-{task}_", f"_task-{task}_{label}_")
            shutil.copy2(path, path.with_name(name))
            copies.setdefault(label, []).append(path.with_name(name))
    for path in (files.bold, files.bold_json, files.mask, files.confounds, files.confounds_json):
        path.unlink()
    return copies


def test_two_runs_of_a_state_are_each_analysed_and_averaged_per_session(study_copy, tiny_study_dir, tmp_path):
    copies = _split_into_two_runs(study_copy)
    before = _digest(study_copy)
    study = layout.open_study(study_copy)
    runs, exclusions = layout.collect_runs(study)
    assert exclusions.empty, exclusions  # neither lost nor "confounds file missing"
    mine = runs[(runs["participant_id"] == "sub-01") & (runs["session_id"] == "ses-1") & (runs["state"] == "craving")]
    assert list(mine["run_label"]) == ["run-1", "run-2"]
    assert list(mine["bold"]) == [str(copies["run-1"][0]), str(copies["run-2"][0])]
    assert list(mine["confounds"]) == [str(copies["run-1"][3]), str(copies["run-2"][3])]
    assert len(runs) == TINY.n_participants * 4 + 1

    # the same participant in the original study (one run) and in the copy (two identical runs)
    original, _ = layout.collect_runs(layout.open_study(tiny_study_dir))
    pick = ["sub-01", "sub-02"]
    strategy = denoise.parse_strategy("simple")
    results = {}
    for name, table in (("one", original), ("two", runs)):
        table = table[table["participant_id"].isin(pick)].reset_index(drop=True)
        analysis, mask_img, _ = firstlevel.seed_analysis(runs, strategy)
        results[name] = firstlevel.first_level(table, analysis, mask_img, tmp_path / name)
    two = results["two"]
    assert len(two.runs) == len(results["one"].runs) + 1 and two.exclusions.empty
    # each run has its own outputs, none overwritten
    assert len(list((tmp_path / "two" / "sub-01" / "ses-1").rglob("*.json"))) == 3
    diff = {k: secondlevel.roi_state_differences(r.roi).reset_index(drop=True) for k, r in results.items()}
    pd.testing.assert_frame_equal(diff["one"], diff["two"], rtol=1e-12)
    maps = {k: secondlevel.state_difference_maps(r.runs, r.maps) for k, r in results.items()}
    np.testing.assert_allclose(maps["two"][0], maps["one"][0], rtol=1e-6, atol=1e-7)
    pd.testing.assert_frame_equal(maps["two"][1], maps["one"][1])
    drug = {k: secondlevel.drug_difference_maps(r.runs, r.maps) for k, r in results.items()}
    np.testing.assert_allclose(drug["two"][0], drug["one"][0], rtol=1e-6, atol=1e-7)
    assert _digest(study_copy) == before


def test_multiple_runs_first_lists_the_others_and_error_names_the_files(study_copy):
    copies = _split_into_two_runs(study_copy)
    study = layout.open_study(study_copy)
    runs, exclusions = layout.collect_runs(study, multiple_runs="first")
    row = _excluded(exclusions, "sub-01", "ses-1", "craving")
    assert row["file"] == str(copies["run-2"][0]) and "multiple_runs='first' keeps" in row["reason"]
    assert str(copies["run-1"][0]) in row["reason"] and len(runs) == TINY.n_participants * 4
    with pytest.raises(ValueError, match="Several runs of one state in a session") as err:
        layout.collect_runs(study, multiple_runs="error")
    assert str(copies["run-1"][0]) in str(err.value) and str(copies["run-2"][0]) in str(err.value)
    with pytest.raises(ValueError, match="multiple_runs must be one of"):
        layout.collect_runs(study, multiple_runs="mean")


def test_every_chapter_that_collects_runs_takes_multiple_runs_as_a_parameter():
    """The notebook parameter reaches collect_runs in every cocaine chapter (default: average)."""
    notebooks = sorted(Path(__file__).resolve().parents[1].joinpath("notebooks").glob("*.ipynb"))
    collecting = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        code = [c.source for c in nb.cells if c.cell_type == "code"]
        calls = [line for cell in code for line in cell.splitlines() if "collect_runs(" in line]
        if not calls:
            continue
        collecting.append(path.stem)
        values = {}
        exec(next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", [])), {}, values)
        assert values["multiple_runs"] == "average", path.name
        assert all("layout.collect_runs(study, multiple_runs)" in line for line in calls), (path.name, calls)
    assert set(collecting) >= {"data", "multiverse", "nac_null_effect", "nacc_seed_fc", "thalamus_glutamate"}


# --------------------------------------------------------------------------- case 4: unknown parameters


def test_python_entry_points_refuse_an_unknown_simulation_parameter(tmp_path):
    with pytest.raises(ValueError, match="Unknown simulation parameter 'n_cdu'; valid parameters are: .*n_cud"):
        cocaine_params("tiny", n_cdu=3)
    with pytest.raises(ValueError, match="Unknown simulation parameter 'n_cdu'"):
        simulate_cocaine_study(tmp_path / "sim", "tiny", n_cdu=3)
    assert not (tmp_path / "sim").exists()


def test_cli_simulate_refuses_an_unknown_set_key(tmp_path, capsys):
    args = ["simulate", "--preset", "tiny", "--data-dir", str(tmp_path / "data"), "--set", "n_cdu=3"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "Unknown simulation parameter 'n_cdu'" in err and "n_cud" in err
    assert not any((tmp_path / "data").rglob("*.nii.gz"))


def _plan(tmp_path, parameters: str = "", name: str = "plan.yml"):
    (tmp_path / "notebooks").mkdir(exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("sleep = 0.0\noutput_dir = 'out'"),
        nbformat.v4.new_code_cell("import os\nos.makedirs(output_dir, exist_ok=True)"),
    ]
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "notebooks" / "one.ipynb")
    path = tmp_path / name
    path.write_text(f"- {{name: one, notebook: notebooks/one.ipynb{parameters}}}\n")
    return path


def test_execute_refuses_an_unknown_set_key_a_plan_typo_and_an_unknown_only(tmp_path, capsys):
    plan = _plan(tmp_path)
    base = ["execute", "--plan", str(plan), "--root", str(tmp_path)]
    assert cli.main(base + ["--set", "sleeep=1"]) == 2
    err = capsys.readouterr().err
    assert "parameter(s) ['sleeep']" in err and "'sleep'" in err and "'output_dir'" in err
    assert cli.main(base + ["--only", "onne", "--set", "sleeep=1"]) == 2
    assert "No plan entry named ['onne']" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()  # nothing ran
    with pytest.raises(ValueError, match=r"sets \['sleeep'\], which one.ipynb does not declare.*'sleep'"):
        execute_plan(load_plan(_plan(tmp_path, ", parameters: {sleeep: 1}", "typo.yml")), tmp_path)
    assert not (tmp_path / "results").exists()
    # a declared key still goes through
    assert cli.main(base + ["--set", "sleep=0.01"]) == 0
    assert os.path.isdir(tmp_path / "results" / "one")
