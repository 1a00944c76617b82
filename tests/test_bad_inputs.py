"""Every bad input of the issue "your own data in, every bad input named", and the test that shows what it gives.

:data:`CASES` maps each case, in the issue's words, to the tests that cover it
(``file::test``, with ``[...]`` naming the parametrisation when only one of
several cases is meant). Most tests live in ``test_bad_inputs_tables.py``
(the cocaine study's tables), ``test_bad_inputs_runs.py`` (runs, run entities
and unknown parameters), ``test_bad_inputs_asl.py`` (the baclofen study) and
``test_check.py`` (the dataset check); this file adds the cases none of them
covered. Each test corrupts a copy of a tiny simulated study, asserts the
error message (the file, and the line and column of a table) or the exclusion
row, and checks that the input tree is byte for byte what it was.
"""

import ast
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import test_bad_inputs_asl
import test_layout
from craving_circuits.baclofen import layout as baclofen_layout
from craving_circuits.book import check, cli
from craving_circuits.cocaine import denoise, layout
from test_bad_inputs_asl import rename_sessions
from test_bad_inputs_runs import _plan
from test_bad_inputs_tables import tree_checksum

TESTS = Path(__file__).parent
ROOT = TESTS.parent
study_copy = test_layout.study_copy  # the fixture: a writable copy of the tiny cocaine study
source_study = test_bad_inputs_asl.source_study  # the tiny baclofen study, simulated once for the module
study = test_bad_inputs_asl.study  # and a writable copy of it

R = "test_bad_inputs_runs.py::"
T = "test_bad_inputs_tables.py::"
A = "test_bad_inputs_asl.py::"
H = "test_bad_inputs.py::"
C = "test_check.py::"

#: (kind, the case in the issue's words, the tests that show what it gives).
CASES = [
    # crashes deep in numpy/pandas/nibabel, without naming the file
    (
        "crash",
        "a confounds TSV with fewer rows than the run",
        [R + "test_bad_confounds_file_excludes_the_run_and_the_chapter_goes_on[fewer_rows]"],
    ),
    (
        "crash",
        '"n/a" in the middle of a motion column',
        [R + "test_bad_confounds_file_excludes_the_run_and_the_chapter_goes_on[na_in_motion_column]"],
    ),
    (
        "crash",
        "a confounds file that is HTML or binary",
        [
            R + "test_bad_confounds_file_excludes_the_run_and_the_chapter_goes_on[html]",
            R + "test_bad_confounds_file_excludes_the_run_and_the_chapter_goes_on[binary]",
        ],
    ),
    (
        "crash",
        "a BOLD .nii.gz truncated after its header (one bad run stops the whole first level)",
        [R + "test_truncated_bold_is_excluded_at_the_first_level_and_the_others_go_on"],
    ),
    (
        "crash",
        '"NA" or "seven" as a craving rating',
        [
            T + "test_one_bad_cell_names_file_line_and_column[seven]",
            A + "test_bad_ratings_name_file_line_and_column[seven]",
        ],
    ),
    ("crash", '"NA" in an MRS value', [T + "test_bad_mrs_values_are_errors[NA]"]),
    (
        "crash",
        "an empty participants.tsv",
        [
            T + "test_empty_participants_file_is_named",
            H + "test_empty_participants_file_of_the_baclofen_study_is_named",
        ],
    ),
    (
        "crash",
        "a garbage confounds file reaching the data chapter's motion summary",
        [
            R + "test_bad_confounds_file_excludes_the_run_and_the_chapter_goes_on[html]",
            H + "test_garbage_confounds_never_reach_the_data_chapters_motion_summary",
            H + "test_the_data_chapter_summarises_the_motion_of_the_checked_runs_only",
        ],
    ),
    (
        "crash",
        "ASL sessions named ses-pre/ses-post instead of ses-T1/ses-T2 (a bare `KeyError: 'ses-T2'`)",
        [
            A + "test_sessions_named_otherwise_need_the_parameter",
            A + "test_renamed_sessions_give_the_same_results_as_the_defaults",
            H + "test_cue_task_sessions_named_otherwise_need_the_parameter",
            C + "test_sessions_named_otherwise_are_named_and_the_parameter_fixes_them",
        ],
    ),
    ("crash", "a duplicate participant row in the baclofen study", [A + "test_duplicate_participant_row_is_refused"]),
    # silent drops
    (
        "silent drop",
        "a second run of the same task in a session (run-1/run-2, fMRIPrep's naming) replaces or loses both under "
        'a false "confounds file missing" reason',
        [
            R + "test_two_runs_of_a_state_are_each_analysed_and_averaged_per_session",
            R + "test_multiple_runs_first_lists_the_others_and_error_names_the_files",
        ],
    ),
    (
        "silent drop",
        "`execute --only <typo> --set <typo>` runs nothing, prints nothing and exits 0",
        [R + "test_execute_refuses_an_unknown_set_key_a_plan_typo_and_an_unknown_only"],
    ),
    (
        "silent drop",
        "a typo in `--set` is dropped",
        [
            R + "test_execute_refuses_an_unknown_set_key_a_plan_typo_and_an_unknown_only",
            R + "test_cli_simulate_refuses_an_unknown_set_key",
        ],
    ),
    # wrong results
    (
        "wrong result",
        "a duplicate row in sessions.tsv with the other drug is used as if valid",
        [T + "test_duplicate_session_with_the_other_drug_is_refused"],
    ),
    (
        "wrong result",
        "a rating of 150 on the 0-100 scale is analysed",
        [
            T + "test_one_bad_cell_names_file_line_and_column[150]",
            A + "test_bad_ratings_name_file_line_and_column[150]",
        ],
    ),
    (
        "wrong result",
        "a PostLabelingDelay written in ms (1800) gives a CBF map of inf with only numpy overflow warnings",
        [
            A + "test_timing_in_milliseconds_is_refused_before_quantification[PostLabelingDelay]",
            A + "test_a_list_of_delays_in_milliseconds_is_refused",
        ],
    ),
    # unclear errors
    (
        "unclear error",
        '"n/a" ratings',
        [
            T + "test_missing_rating_leaves_out_that_session_listed",
            A + "test_missing_ratings_exclude_the_participant_and_list_it",
        ],
    ),
    (
        "unclear error",
        "a missing OCDUS value (the whole glutamate chapter stops)",
        [T + "test_missing_ocdus_drops_the_participant_from_the_predictor_models_only"],
    ),
    (
        "unclear error",
        "a header-only participants.tsv",
        [T + "test_header_only_participants_file_is_named", A + "test_empty_participants_is_refused"],
    ),
    # the rules of part 1
    (
        "rule",
        '"n/a" and empty cells are missing values (BIDS), anything else non-numeric is an error',
        [
            T + "test_missing_mrs_value_removes_that_spectrum_listed",
            T + "test_one_bad_cell_names_file_line_and_column[lots]",
            R + "test_confounds_problem_accepts_fmriprep_n_a_in_the_first_row",
        ],
    ),
    (
        "rule",
        "values outside a declared range (VAS 0-100, CRLB, FD) are errors or listed exclusions",
        [
            T + "test_bad_mrs_values_are_errors[1200]",
            H + "test_garbage_confounds_never_reach_the_data_chapters_motion_summary[negative_fd]",
        ],
    ),
    (
        "rule",
        "a unit that is off by 1000 (ms for s in ASL timing fields) is refused with the likely cause named",
        [A + "test_timing_in_milliseconds_is_refused_before_quantification"],
    ),
    (
        "rule",
        "duplicate rows are refused",
        [
            T + "test_duplicate_participant_row_names_its_lines",
            T + "test_repeated_rating_of_a_state_is_refused",
            A + "test_duplicate_participant_row_is_refused",
        ],
    ),
    (
        "rule",
        "a missing covariate drops that participant from that model only, listed",
        [T + "test_missing_ocdus_drops_the_participant_from_the_predictor_models_only"],
    ),
    (
        "rule",
        "a run that cannot be read or cleaned is excluded and listed, never stopping the others",
        [
            R + "test_truncated_bold_is_excluded_at_the_first_level_and_the_others_go_on",
            R + "test_bad_confounds_file_excludes_the_run_and_the_chapter_goes_on",
        ],
    ),
    (
        "rule",
        "an unknown parameter is refused by every entry point (Python, CLI `simulate`/`execute`/`--set`, run plan)",
        [
            R + "test_python_entry_points_refuse_an_unknown_simulation_parameter",
            R + "test_cli_simulate_refuses_an_unknown_set_key",
            R + "test_execute_refuses_an_unknown_set_key_a_plan_typo_and_an_unknown_only",
        ],
    ),
    (
        "rule",
        "`execute --only` with a name not in the plan is an error",
        [H + "test_execute_only_with_a_name_not_in_the_plan_is_an_error"],
    ),
    (
        "check",
        "the check command reports a corrupted dataset's problems without analysing",
        [
            C + "test_a_corrupted_cocaine_study_reports_each_problem_in_one_pass",
            C + "test_a_corrupted_baclofen_study_reports_each_problem_in_one_pass",
            C + "test_the_check_reads_headers_only",
        ],
    ),
]


def _test_functions(path: Path) -> dict:
    """``{test name: source text of its decorators}``, with that of the module-level lists they name."""
    source = path.read_text()
    tree = ast.parse(source)
    assigned = {
        target.id: ast.get_source_segment(source, node)
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    out = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            text = "".join(ast.get_source_segment(source, d) or "" for d in node.decorator_list)
            names = {n.id for d in node.decorator_list for n in ast.walk(d) if isinstance(n, ast.Name)}
            out[node.name] = text + "".join(assigned.get(n, "") for n in names)
    return out


def test_every_listed_test_exists():
    """Each ``file::test[param]`` of the index names a test function, and ``param`` is one of its parameters."""
    functions = {}
    for _, _, tests in CASES:
        for ref in tests:
            file, name = ref.split("::")
            name, _, param = name.partition("[")
            if file not in functions:
                functions[file] = _test_functions(TESTS / file)
            assert name in functions[file], f"{ref}: no test {name} in {file}"
            if param:
                param = param.rstrip("]")
                decorators = functions[file][name]
                assert decorators, f"{ref}: {name} is not parametrised"
                assert re.search(rf"""["']{re.escape(param)}["']""", decorators), (
                    f"{ref}: {param!r} is not among the parameters of {name}"
                )


def test_the_index_covers_every_kind_of_case_once():
    kinds = [kind for kind, _, _ in CASES]
    assert kinds.count("crash") == 10 and kinds.count("silent drop") == 3
    assert kinds.count("wrong result") == 3 and kinds.count("unclear error") == 3
    cases = [case for _, case, _ in CASES]
    assert len(cases) == len(set(cases)) and all(tests for _, _, tests in CASES)
    # every test of this file is in the index
    listed = {ref.split("::")[1].partition("[")[0] for _, _, tests in CASES for ref in tests if ref.startswith(H)}
    own = set(_test_functions(Path(__file__))) - {
        "test_every_listed_test_exists",
        "test_the_index_covers_every_kind_of_case_once",
    }
    assert own == listed


# ---------------------------------------------------------------- the baclofen study


def test_empty_participants_file_of_the_baclofen_study_is_named(study):
    path = study / "participants.tsv"
    path.write_bytes(b"")
    before = tree_checksum(study)
    message = rf"{re.escape(str(path))} \(participants.tsv\) is empty \(0 bytes\); write a header line"
    for call in (
        lambda: baclofen_layout.read_participants(study),
        lambda: baclofen_layout.collect_asl_runs(study),
        lambda: baclofen_layout.collect_task_runs(study),
    ):
        with pytest.raises(ValueError, match=message):
            call()
    report = check.check_dataset(study)
    assert report.errors["file"].tolist() == [str(path)] and report.runs.empty
    assert tree_checksum(study) == before


def test_cue_task_sessions_named_otherwise_need_the_parameter(study):
    """With the default sessions, cue-task runs in ses-pre/ses-post are named, not every one listed as missing."""
    rename_sessions(study, {"ses-T1": "ses-pre", "ses-T2": "ses-post"})
    before = tree_checksum(study)
    fmriprep = study / "derivatives" / "fmriprep"
    with pytest.raises(
        ValueError,
        match=rf"{re.escape(str(fmriprep))}: no run of the task smokingcue in \['ses-T1', 'ses-T2'\]; the runs are in "
        r"the sessions \['ses-post', 'ses-pre'\]\. Set the parameter sessions",
    ):
        baclofen_layout.collect_task_runs(study)
    runs, exclusions = baclofen_layout.collect_task_runs(study, sessions=("ses-pre", "ses-post"))
    n = len(pd.read_csv(study / "participants.tsv", sep="\t"))
    assert exclusions.empty and len(runs) == 2 * n and set(runs["session_id"]) == {"ses-pre", "ses-post"}
    assert tree_checksum(study) == before


# ---------------------------------------------------------------- the data chapter's motion summary


def _without_fd(path: Path) -> None:
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    table.drop(columns="framewise_displacement").to_csv(path, sep="\t", index=False)


def _negative_fd(path: Path) -> None:
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    table.loc[11, "framewise_displacement"] = "-0.4"
    table.to_csv(path, sep="\t", index=False)


def _html(path: Path) -> None:
    path.write_text("<!DOCTYPE html>\n<html><body>404</body></html>\n")


def _empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        (_without_fd, "lacks the motion column(s) ['framewise_displacement']"),
        (_negative_fd, "column 'framewise_displacement', row 12: '-0.4' is negative"),
        (_html, "lacks the motion column(s)"),
        (_empty, "is not a readable tab-separated table"),
    ],
    ids=["no_fd_column", "negative_fd", "html", "empty"],
)
def test_garbage_confounds_never_reach_the_data_chapters_motion_summary(study_copy, corrupt, expected):
    """A confounds file the motion summary cannot use is an exclusion of the run check, and the summary goes on."""
    files = test_layout._files(study_copy, "sub-04", "ses-1", "restneutral")
    corrupt(files.confounds)
    before = tree_checksum(study_copy)
    runs, exclusions = layout.collect_runs(layout.open_study(study_copy))
    row = test_layout._excluded(exclusions, "sub-04", "ses-1", "neutral")
    assert row["file"] == str(files.confounds) and expected in row["reason"], row["reason"]
    assert str(files.confounds) in row["reason"] and len(exclusions) == 1
    motion = denoise.motion_summary(runs)
    assert len(motion) == len(runs) and np.isfinite(motion[["mean_fd", "max_fd"]].to_numpy()).all()
    assert (motion["mean_fd"] >= 0).all()
    assert tree_checksum(study_copy) == before


def test_the_data_chapter_summarises_the_motion_of_the_checked_runs_only():
    """In the data chapter, the motion summary reads the runs collect_runs accepted, and the exclusions are shown."""
    cells = [
        "".join(c["source"])
        for c in json.loads((ROOT / "notebooks" / "data.ipynb").read_text())["cells"]
        if c["cell_type"] == "code"
    ]
    collected = [i for i, c in enumerate(cells) if "runs, exclusions = layout.collect_runs(" in c]
    summary = [i for i, c in enumerate(cells) if "denoise.motion_summary(runs)" in c]
    assert len(collected) == 1 and len(summary) == 1 and collected[0] < summary[0]
    assigned = re.compile(r"^\s*(runs|runs\s*,.*)\s*=", re.M)
    assert not any(assigned.search(c) for c in cells[collected[0] + 1 : summary[0] + 1])
    shown = re.compile(r"show_table\(\s*exclusions\s*,")  # the exclusions table is shown on the page
    assert any(c.strip() == "exclusions" or shown.search(c) for c in cells[collected[0] + 1 :])


# ---------------------------------------------------------------- execute --only


def test_execute_only_with_a_name_not_in_the_plan_is_an_error(tmp_path, capsys):
    plan = _plan(tmp_path)
    base = ["execute", "--plan", str(plan), "--root", str(tmp_path)]
    assert cli.main(base + ["--only", "onne"]) == 2
    err = capsys.readouterr().err
    assert "No plan entry named ['onne']" in err and "one" in err.split("['onne']", 1)[1]
    assert cli.main(base + ["--only", "one", "onne"]) == 2  # one typo among valid names is still an error
    assert not (tmp_path / "results").exists()  # nothing ran
    assert cli.main(base + ["--only", "one"]) == 0
    assert (tmp_path / "results" / "one").is_dir()
