"""The dataset check: runs found, exclusions and errors of every chapter in one pass, nothing analysed.

Each test copies a tiny simulated study, corrupts it in several ways at once
where it says so, runs :func:`check_dataset` (and the ``check`` command), and
checks that each problem is reported, that the input tree is byte for byte
what it was, and that nothing was written anywhere (no results folder).
"""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from craving_circuits.book import check, cli
from craving_circuits.simulate import cocaine_params
from craving_circuits.simulate.baclofen import simulate_baclofen_study
from test_bad_inputs_tables import tree_checksum

TINY = cocaine_params("tiny")


@pytest.fixture(scope="module")
def baclofen_source(tmp_path_factory):
    return simulate_baclofen_study(tmp_path_factory.mktemp("baclofen_check") / "study", "tiny", n_jobs=1)


@pytest.fixture()
def cocaine_copy(tiny_study_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything written to the working folder would show
    return Path(shutil.copytree(tiny_study_dir, tmp_path / "cocaine"))


@pytest.fixture()
def baclofen_copy(baclofen_source, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return Path(shutil.copytree(baclofen_source, tmp_path / "baclofen"))


def _files_under(folder: Path) -> set:
    return {p.relative_to(folder) for p in folder.rglob("*")}


def _checked(root: Path, folder: Path, **options):
    """``check_dataset`` on ``root``; asserts that it changed nothing under ``folder`` (the test's tmp folder)."""
    before, listing = tree_checksum(root), _files_under(folder)
    report = check.check_dataset(root, **options)
    assert tree_checksum(root) == before and _files_under(folder) == listing
    return report


def _errors_about(report, name: str) -> pd.DataFrame:
    return report.errors[report.errors["file"].str.endswith(name)]


# ---------------------------------------------------------------- a valid study


def test_a_valid_cocaine_study_passes_and_lists_its_runs(cocaine_copy, tmp_path, capsys):
    report = _checked(cocaine_copy, tmp_path)
    assert report.ok and report.exclusions.empty
    assert len(report.runs) == TINY.n_participants * 4
    assert (report.runs["inputs"] == "rest_bold").all()
    counts = report.run_counts()
    assert len(counts) == TINY.n_participants * 4 and (counts["n_runs"] == 1).all()
    chapters = report.chapters.set_index("chapter")
    assert list(chapters.index) == list(check.STUDIES["cocaine"])  # the baclofen chapters' inputs are absent
    assert chapters["runnable"].all() and (chapters["n_runs"] == len(report.runs)).all()
    assert report.summary().startswith(f"{len(report.runs)} run(s) of {TINY.n_participants} participant(s), 0 ")

    before = tree_checksum(cocaine_copy)
    assert cli.main(["check", "--bids-dir", str(cocaine_copy)]) == 0
    out = capsys.readouterr().out
    assert "rest_bold         sub-01      ses-1 craving       1" in out
    assert "Exclusions (0)" in out and "Errors (0)" in out
    assert f"{cocaine_copy}: {report.summary()}" in out
    assert tree_checksum(cocaine_copy) == before and _files_under(tmp_path) == _files_under(tmp_path)


def test_a_valid_baclofen_study_passes(baclofen_copy, tmp_path):
    report = _checked(baclofen_copy, tmp_path)
    n = len(pd.read_csv(baclofen_copy / "participants.tsv", sep="\t"))
    assert report.ok and report.exclusions.empty
    assert report.runs["inputs"].value_counts().to_dict() == {"asl": 2 * n, "cue_bold": 2 * n}
    assert list(report.chapters["chapter"]) == list(check.STUDIES["baclofen"]) and report.chapters["runnable"].all()


def test_available_chapters_names_what_is_missing(cocaine_copy):
    table = check.available_chapters(cocaine_copy).set_index("chapter")
    assert table.loc[list(check.STUDIES["cocaine"]), "present"].all()
    assert not table.loc["baclofen_cbf", "present"] and "perf/" in table.loc["baclofen_cbf", "missing"]
    (cocaine_copy / "derivatives" / "mrs" / "nacc_metabolites.tsv").unlink()
    table = check.available_chapters(cocaine_copy).set_index("chapter")
    assert table.loc["nacc_seed_fc", "present"] and not table.loc["thalamus_glutamate", "present"]
    assert "nacc_metabolites.tsv" in table.loc["thalamus_glutamate", "missing"]


def test_asking_for_a_chapter_whose_inputs_are_absent_is_an_error(cocaine_copy, tmp_path):
    report = _checked(cocaine_copy, tmp_path, chapter="baclofen_cbf")
    assert not report.ok and report.runs.empty
    assert "inputs of the chapter baclofen_cbf not found" in report.errors["error"].iloc[0]
    wrong = tmp_path / "fmriprep"
    report = _checked(cocaine_copy, tmp_path, fmriprep_dir=wrong)  # a folder that is not there: not a silent pass
    assert report.errors["error"].tolist()[:2] == [
        f"fMRIPrep folder not found: {wrong}; pass the folder that holds sub-*/ses-*/.",
        f"no chapter's inputs found under {cocaine_copy}: looked for {'; '.join(check.INPUTS.values())}.",
    ]
    assert report.chapters.empty and report.runs.empty
    with pytest.raises(ValueError, match="Unknown chapter 'nacc_seed'"):
        check.check_dataset(cocaine_copy, chapter="nacc_seed")


# ---------------------------------------------------------------- every problem in one pass


def _append_line(path: Path, line: str) -> int:
    """Append ``line``; returns its file line number."""
    text = path.read_text()
    path.write_text(text + line + "\n")
    return len(text.splitlines()) + 1


def _set_cell(path: Path, row: int, column: str, value: str) -> int:
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    table.loc[row, column] = value
    table.to_csv(path, sep="\t", index=False)
    return row + 2


def test_a_corrupted_cocaine_study_reports_each_problem_in_one_pass(cocaine_copy, tmp_path, capsys):
    participants = cocaine_copy / "participants.tsv"
    duplicate = _append_line(participants, participants.read_text().splitlines()[1])  # sub-01 twice
    sessions = cocaine_copy / "sub-03" / "sub-03_sessions.tsv"
    _append_line(sessions, "ses-1\tNAC")  # ses-1 was placebo
    confounds = next((cocaine_copy / "derivatives" / "fmriprep" / "sub-02" / "ses-2" / "func").glob("*confounds*.tsv"))
    confounds.write_text("<!DOCTYPE html>\n<html><body>Not found</body></html>\n")
    ratings = cocaine_copy / "phenotype" / "craving_ratings.tsv"
    rating_line = _set_cell(ratings, 4, "craving_vas", "seven")
    metabolites = cocaine_copy / "derivatives" / "mrs" / "nacc_metabolites.tsv"
    mrs_line = _set_cell(metabolites, 2, "value_water", "NA")

    report = _checked(cocaine_copy, tmp_path)
    assert not report.ok
    assert (
        _errors_about(report, "participants.tsv")["error"]
        .str.contains(rf"line\(s\) 2, {duplicate}: rows repeat the same participant_id")
        .all()
    )
    assert _errors_about(report, "sub-03_sessions.tsv")["error"].str.contains("rows repeat the same session_id").all()
    assert (
        _errors_about(report, "craving_ratings.tsv")["error"]
        .str.contains(rf"column 'craving_vas', line\(s\) {rating_line}: \['seven'\] is not a number")
        .all()
    )
    assert (
        _errors_about(report, "nacc_metabolites.tsv")["error"]
        .str.contains(rf"column 'value_water', line\(s\) {mrs_line}: \['NA'\] is not a number")
        .all()
    )
    assert len(report.errors) == 4
    # the runs are still checked, against the tables' valid rows: the HTML confounds run is listed
    html = report.exclusions[report.exclusions["file"] == str(confounds)]
    assert len(html) == 1 and "lacks the motion column(s)" in html["reason"].iloc[0]
    assert html["participant_id"].iloc[0] == "sub-02" and html["session_id"].iloc[0] == "ses-2"
    # the rows the tables refuse leave their runs out, listed (paths are the dataset's own)
    left_out = report.exclusions[report.exclusions["participant_id"].isin(["sub-01", "sub-03"])]
    assert set(left_out["participant_id"]) == {"sub-01", "sub-03"}
    assert left_out["reason"].str.contains(r"left out of this check: its row\(s\) in .* are refused").all()
    assert set(left_out.loc[left_out["participant_id"] == "sub-03", "session_id"]) == {"ses-1"}
    assert all(str(tmp_path) in f for f in report.exclusions["file"])
    assert not report.runs["participant_id"].isin(["sub-01"]).any()
    assert len(report.runs) == (TINY.n_participants - 1) * 4 - 1 - 2  # sub-01 out, one HTML run, sub-03's ses-1
    assert not report.chapters["runnable"].any()

    before = tree_checksum(cocaine_copy)
    assert cli.main(["check", "--bids-dir", str(cocaine_copy)]) == 1
    out = capsys.readouterr().out
    assert "Errors (4):" in out and f"{confounds}: " in out
    for path in (participants, sessions, ratings, metabolites):
        assert f"\n  {path}" in out
    assert tree_checksum(cocaine_copy) == before


def test_a_corrupted_baclofen_study_reports_each_problem_in_one_pass(baclofen_copy, tmp_path, capsys):
    participants = baclofen_copy / "participants.tsv"
    duplicate = _append_line(participants, participants.read_text().splitlines()[3])  # the third participant twice
    pid = participants.read_text().splitlines()[3].split("\t")[0]
    sidecar = baclofen_copy / "sub-01" / "ses-T1" / "perf" / "sub-01_ses-T1_asl.json"
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps(meta | {"PostLabelingDelay": 1800}))
    ratings = baclofen_copy / "phenotype" / "craving_ratings.tsv"
    _set_cell(ratings, 5, "craving", "seven")
    other = baclofen_copy / "sub-02" / "ses-T1" / "perf" / "sub-02_ses-T1_asl.json"
    other.write_text(json.dumps(json.loads(other.read_text()) | {"M0Type": "Absent"}))
    cue_confounds = next(
        (baclofen_copy / "derivatives" / "fmriprep" / "sub-02" / "ses-T2" / "func").glob("*confounds*.tsv")
    )
    cue_confounds.write_bytes(bytes(range(256)) * 8)

    report = _checked(baclofen_copy, tmp_path)
    errors = report.errors.set_index("file")["error"]
    assert f"file lines {{'{pid}': [4, {duplicate}]}}" in errors[str(participants)]
    assert "PostLabelingDelay is 1800" in errors[str(sidecar)] and "milliseconds" in errors[str(sidecar)]
    assert "M0Type is 'Absent'" in errors[str(other)]
    assert len(report.errors) == 3  # the ratings are read once participants.tsv is valid
    cue = report.exclusions[report.exclusions["file"] == str(cue_confounds)]
    assert len(cue) == 1 and "is not a readable tab-separated table" in cue["reason"].iloc[0]
    assert not report.runs["participant_id"].eq(pid).any()  # a participant on two rows is not used
    asl = report.runs[report.runs["inputs"] == "asl"]
    assert not ((asl["participant_id"] == "sub-01") & (asl["session_id"] == "ses-T1")).any()

    # with participants.tsv repaired, the next check names the rating
    lines = participants.read_text().splitlines()
    participants.write_text("\n".join(lines[:-1]) + "\n")
    report = _checked(baclofen_copy, tmp_path)
    assert f"{ratings}, line 7, column 'craving': 'seven' is not a number" in " ".join(report.errors["error"])
    before = tree_checksum(baclofen_copy)
    assert cli.main(["check", "--bids-dir", str(baclofen_copy), "--chapter", "baclofen"]) == 1
    out = capsys.readouterr().out
    assert f"\n  {sidecar}" in out and f"\n  {other}" in out and "Errors (3):" in out
    assert tree_checksum(baclofen_copy) == before


def test_sessions_named_otherwise_are_named_and_the_parameter_fixes_them(baclofen_copy, tmp_path, capsys):
    from test_bad_inputs_asl import rename_sessions

    rename_sessions(baclofen_copy, {"ses-T1": "ses-pre", "ses-T2": "ses-post"})
    report = _checked(baclofen_copy, tmp_path, chapter="baclofen_cbf")
    assert len(report.errors) == 1
    assert "no ASL run in ['ses-T1', 'ses-T2']" in report.errors["error"].iloc[0]
    assert "sessions=" in report.errors["error"].iloc[0]
    args = ["check", "--bids-dir", str(baclofen_copy), "--chapter", "baclofen_cbf", "--sessions", "ses-pre", "ses-post"]
    assert cli.main(args) == 0
    assert "Errors (0)" in capsys.readouterr().out


def test_the_check_reads_headers_only(cocaine_copy, tmp_path):
    """A BOLD run truncated after its header passes the check: its data are never read (no analysis)."""
    bold = next((cocaine_copy / "derivatives" / "fmriprep" / "sub-03" / "ses-1" / "func").glob("*restcue*bold.nii.gz"))
    bold.write_bytes(bold.read_bytes()[:1000])
    report = _checked(cocaine_copy, tmp_path)
    assert report.ok and str(bold) in set(report.runs["file"])
