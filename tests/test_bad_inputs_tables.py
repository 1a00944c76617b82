"""Bad tables of a cocaine study: each gets an error naming file, line and column, or a listed exclusion.

Every case corrupts a copy of the ``tiny`` simulated study, checks what the
readers or the chapter chains do with it, and checks that the input tree is
byte for byte what it was before the call (inputs are only read). Line
numbers in the messages are those of the file (the header is line 1).
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from craving_circuits.cocaine import chapters, layout, mrs, ratings, secondlevel
from craving_circuits.simulate import roi_level
from craving_circuits.simulate.cocaine import cocaine_params


def tree_checksum(root: Path) -> str:
    """SHA-256 over the relative paths and bytes of every file under ``root``."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture
def study_copy(tiny_study_dir, tmp_path):
    """A writable copy of the tiny study."""
    root = tmp_path / "study"
    shutil.copytree(tiny_study_dir, root)
    return root


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n")


def _set_cell(path: Path, line: int, column: str, value: str) -> None:
    """Write ``value`` into ``column`` of file line ``line`` (the header is line 1)."""
    lines = _lines(path)
    header = lines[0].split("\t")
    cells = lines[line - 1].split("\t")
    cells[header.index(column)] = value
    lines[line - 1] = "\t".join(cells)
    _write_lines(path, lines)


def _raises_unmodified(root: Path, call, error, match: str):
    """``call()`` raises ``error`` matching ``match`` and leaves the tree under ``root`` as it was."""
    before = tree_checksum(root)
    with pytest.raises(error, match=match) as info:
        call()
    assert tree_checksum(root) == before
    return str(info.value)


def _unmodified(root: Path, call):
    before = tree_checksum(root)
    result = call()
    assert tree_checksum(root) == before
    return result


# --------------------------------------------------------------------------- participants.tsv


def test_empty_participants_file_is_named(study_copy):
    (study_copy / "participants.tsv").write_bytes(b"")
    study = layout.open_study(study_copy)
    message = _raises_unmodified(
        study_copy, lambda: layout.read_participants(study), ValueError, r"participants\.tsv is empty \(0 bytes\)"
    )
    assert "participant_id and group" in message


def test_header_only_participants_file_is_named(study_copy):
    path = study_copy / "participants.tsv"
    _write_lines(path, _lines(path)[:1])
    study = layout.open_study(study_copy)
    _raises_unmodified(
        study_copy, lambda: layout.read_participants(study), ValueError, r"participants\.tsv has a header but no rows"
    )


def test_duplicate_participant_row_names_its_lines(study_copy):
    path = study_copy / "participants.tsv"
    lines = _lines(path)
    _write_lines(path, lines + [lines[1]])  # sub-01 again, as the last line
    study = layout.open_study(study_copy)
    message = _raises_unmodified(
        study_copy,
        lambda: layout.read_participants(study),
        ValueError,
        rf"participants\.tsv, line\(s\) 2, {len(lines) + 1}: rows repeat the same participant_id",
    )
    assert "sub-01" in message and "keep one row per participant_id" in message


# --------------------------------------------------------------------------- sessions.tsv


def test_duplicate_session_with_the_other_drug_is_refused(study_copy):
    path = study_copy / "sub-01" / "sub-01_sessions.tsv"
    lines = _lines(path)
    assert lines[1].split("\t")[1] == "placebo"
    _write_lines(path, lines + ["ses-1\tNAC"])
    study = layout.open_study(study_copy)
    message = _raises_unmodified(
        study_copy,
        lambda: layout.read_sessions(study, "sub-01"),
        ValueError,
        rf"sub-01_sessions\.tsv, line\(s\) 2, {len(lines) + 1}: rows repeat the same session_id",
    )
    assert "NAC or placebo" in message


# --------------------------------------------------------------------------- one bad cell

_READERS = {
    "participants": lambda study: layout.read_participants(study),
    "sessions": lambda study: layout.read_sessions(study, "sub-02"),
    "ratings": lambda study: layout.read_craving_ratings(study),
}

_BAD_CELLS = [
    # file, reader, line, column, value, what the message says after "line(s) N: "
    ("participants.tsv", "participants", 3, "group", "patient", r"\['patient'\] not recognised; use CUD or control"),
    ("participants.tsv", "participants", 4, "cocaine_g_per_week", "lots", r"\['lots'\] is not a number"),
    ("participants.tsv", "participants", 6, "participant_id", "05", r"\['05'\] are not BIDS labels; write sub-<label>"),
    ("phenotype/craving_ratings.tsv", "ratings", 4, "session_id", "ses_1", r"\['ses_1'\] are not BIDS labels"),
    ("participants.tsv", "participants", 5, "age", "-4", r"\['-4'\] outside the allowed range \[0, 120\]"),
    (
        "sub-02/sub-02_sessions.tsv",
        "sessions",
        3,
        "drug",
        "aspirin",
        r"\['aspirin'\] not recognised; use NAC or placebo",
    ),
    ("phenotype/craving_ratings.tsv", "ratings", 5, "craving_vas", "NA", r"\['NA'\] is not a number; .*n/a for a"),
    ("phenotype/craving_ratings.tsv", "ratings", 5, "craving_vas", "seven", r"\['seven'\] is not a number"),
    (
        "phenotype/craving_ratings.tsv",
        "ratings",
        7,
        "craving_vas",
        "150",
        r"\['150'\] outside the allowed range \[0, 100\]",
    ),
    ("phenotype/craving_ratings.tsv", "ratings", 6, "state", "relaxed", r"\['relaxed'\] not recognised"),
    ("phenotype/craving_ratings.tsv", "ratings", 6, "drug", "nac", r"\['nac'\] not recognised; use NAC or placebo"),
]


@pytest.mark.parametrize(("file", "reader", "line", "column", "value", "says"), _BAD_CELLS)
def test_one_bad_cell_names_file_line_and_column(study_copy, file, reader, line, column, value, says):
    _set_cell(study_copy / file, line, column, value)
    study = layout.open_study(study_copy)
    name = re.escape(Path(file).name)
    _raises_unmodified(
        study_copy,
        lambda: _READERS[reader](study),
        ValueError,
        rf"{name}, column '{column}', line\(s\) {line}: {says}",
    )


# --------------------------------------------------------------------------- craving ratings


def test_repeated_rating_of_a_state_is_refused(study_copy):
    path = study_copy / "phenotype" / "craving_ratings.tsv"
    lines = _lines(path)
    _write_lines(path, lines + [lines[2]])
    study = layout.open_study(study_copy)
    _raises_unmodified(
        study_copy,
        lambda: layout.read_craving_ratings(study),
        ValueError,
        rf"line\(s\) 3, {len(lines) + 1}: rows repeat the same participant_id, session_id, state",
    )


@pytest.mark.parametrize("missing", ["n/a", ""])
def test_missing_rating_leaves_out_that_session_listed(study_copy, missing):
    path = study_copy / "phenotype" / "craving_ratings.tsv"
    line = 5
    pid, ses, _, state = _lines(path)[line - 1].split("\t")[:4]
    _set_cell(path, line, "craving_vas", missing)
    study = layout.open_study(study_copy)
    table = _unmodified(study_copy, lambda: layout.read_craving_ratings(study))
    assert table["craving_vas"].isna().sum() == 1

    listed = ratings.rating_exclusions(table)
    assert listed[["participant_id", "session_id", "state", "stage"]].values.tolist() == [[pid, ses, state, "ratings"]]
    assert "rating missing" in listed["reason"].iloc[0]
    changes = ratings.rating_changes(table)
    complete = ratings.rating_changes(table[table["participant_id"] != pid])
    assert len(changes) == len(complete) + 1  # the participant's other session stays
    assert not ((changes["participant_id"] == pid) & (changes["session_id"] == ses)).any()
    tests = ratings.rating_tests(table)
    assert tests["p"].notna().all()

    fc = secondlevel.roi_state_differences(roi_level.cocaine_roi_study(cocaine_params("tiny"))["roi"])
    nac = chapters.nac_tests(fc, table)
    excluded = nac["rating_exclusions"]
    assert excluded.iloc[0][["participant_id", "session_id", "state", "stage"]].tolist() == [
        pid,
        ses,
        state,
        "ratings",
    ]
    contrast = excluded[excluded["stage"] == "drug contrast"]
    assert contrast["participant_id"].tolist() == [pid]
    assert pid not in set(nac["rating_double_differences"]["participant_id"])


# --------------------------------------------------------------------------- MRS table


def _mrs_line(path: Path, metabolite: str = "Glu") -> int:
    """File line of the first row of ``metabolite`` after the first spectrum."""
    lines = _lines(path)
    header = lines[0].split("\t")
    rows = [
        i + 1 for i, line in enumerate(lines[1:], start=1) if line.split("\t")[header.index("metabolite")] == metabolite
    ]
    return rows[2]


def test_missing_mrs_value_removes_that_spectrum_listed(study_copy):
    path = study_copy / "derivatives" / "mrs" / "nacc_metabolites.tsv"
    line = _mrs_line(path)
    pid, ses, state = _lines(path)[line - 1].split("\t")[:3]
    _set_cell(path, line, "value_water", "n/a")
    study = layout.open_study(study_copy)
    table = _unmodified(study_copy, lambda: mrs.read_mrs(study.mrs_file))
    kept, excluded = mrs.quality_control(table, "Glu", max_crlb=None, max_fwhm_hz=None)
    invalid = excluded[excluded["criterion"] == "invalid value"]
    assert invalid[["participant_id", "session_id", "state"]].values.tolist() == [[pid, ses, state]]
    assert len(kept) == (table["metabolite"] == "Glu").sum() - 1


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("value_water", "NA", r"\['NA'\] is not a number"),
        ("value_tcr", "high", r"\['high'\] is not a number"),
        ("crlb_percent", "1200", r"\['1200'\] outside the allowed range \[0, 999\]"),
        ("crlb_percent", "-3", r"\['-3'\] outside the allowed range \[0, 999\]"),
        ("fwhm_hz", "-1.5", r"\['-1.5'\] outside the allowed range \[0, inf\]"),
        ("snr", "-2", r"\['-2'\] outside the allowed range \[0, inf\]"),
    ],
)
def test_bad_mrs_values_are_errors(study_copy, column, value, expected):
    path = study_copy / "derivatives" / "mrs" / "nacc_metabolites.tsv"
    line = _mrs_line(path)
    _set_cell(path, line, column, value)
    study = layout.open_study(study_copy)
    _raises_unmodified(
        study_copy,
        lambda: mrs.read_mrs(study.mrs_file),
        ValueError,
        rf"nacc_metabolites\.tsv, column '{column}', line\(s\) {line}: {expected}",
    )


# --------------------------------------------------------------------------- a missing covariate


def test_missing_ocdus_drops_the_participant_from_the_predictor_models_only(study_copy):
    path = study_copy / "participants.tsv"
    table = pd.read_csv(path, sep="\t")
    line = int(np.flatnonzero(table["group"] == "CUD")[0]) + 2
    pid = table.loc[line - 2, "participant_id"]
    _set_cell(path, line, "ocdus_obsessive", "n/a")
    study = layout.open_study(study_copy)
    participants = _unmodified(study_copy, lambda: layout.read_participants(study))
    assert participants["ocdus_obsessive"].isna().sum() == (participants["group"] == "control").sum() + 1
    mrs_table = _unmodified(study_copy, lambda: mrs.read_mrs(study.mrs_file))
    fc = secondlevel.roi_state_differences(roi_level.cocaine_roi_study(cocaine_params("tiny"))["roi"])
    assert set(fc["participant_id"]) == set(participants["participant_id"])
    drugs = fc[["participant_id", "session_id", "drug"]].drop_duplicates()

    def chain(people):
        return chapters.glutamate_tests(fc, mrs_table, people, drugs, n_bootstrap=200, rng=np.random.default_rng(1))

    out = chain(participants)
    filled = participants.copy()
    filled.loc[filled["participant_id"] == pid, "ocdus_obsessive"] = 5.0
    full = chain(filled)
    cud = out["changes"][out["changes"]["group"] == "CUD"]
    assert pid in set(cud["participant_id"])  # still in the couplings
    assert out["couplings"].equals(full["couplings"])
    listed = out["change_exclusions"]
    rows = listed[listed["participant_id"] == pid]
    assert len(rows) == 2  # one per predictor model
    assert all(
        re.search(r"missing ocdus_obsessive: left out of the predictor model of dfc_", r) for r in rows["reason"]
    )
    assert (out["predictor_fits"]["n"] == len(cud) - 1).all()
    alone = chapters.glutamate.predictor_table(
        cud[cud["participant_id"] != pid], list(chapters.GLUTAMATE_TARGETS), list(chapters.CLINICAL_PREDICTORS)
    )[0]
    pd.testing.assert_frame_equal(out["predictor_betas"], alone)
