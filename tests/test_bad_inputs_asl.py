"""The baclofen study's inputs as users have them: session labels, ASL timing units, the three M0 types,
perf/ folders without sessions, duplicate participants and bad craving ratings. Each case is a copy of
the tiny simulated study rewritten into that form; each gives a clear error (file, row, column, what to
do) or a listed exclusion, and the input tree is never modified."""

import hashlib
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from craving_circuits.baclofen import chapters, cue, perfusion
from craving_circuits.baclofen import layout as baclofen_layout
from craving_circuits.baclofen.asl import read_asl_constants, run_m0
from craving_circuits.simulate.baclofen import simulate_baclofen_study


@pytest.fixture(scope="module")
def source_study(tmp_path_factory):
    return simulate_baclofen_study(tmp_path_factory.mktemp("baclofen_bad") / "study", "tiny", n_jobs=1)


@pytest.fixture()
def study(source_study, tmp_path):
    """A fresh copy of the tiny study, to be rewritten by the test."""
    return Path(shutil.copytree(source_study, tmp_path / "study"))


def tree_checksum(root: Path) -> str:
    """SHA-256 over every file's relative path and bytes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def rename_sessions(root: Path, mapping: dict) -> None:
    """Rename session folders and files (``ses-T1`` -> ``ses-pre`` ...) and the ratings' session column."""
    for old, new in mapping.items():
        for path in sorted(root.rglob(f"*{old}*"), key=lambda p: -len(p.parts)):
            path.rename(path.with_name(path.name.replace(old, new)))
    ratings = root / "phenotype" / "craving_ratings.tsv"
    table = pd.read_csv(ratings, sep="\t", dtype=str)
    table["session_id"] = table["session_id"].replace(mapping)
    table.to_csv(ratings, sep="\t", index=False)


def perf_files(root: Path, pid: str = "sub-01", session: str = "ses-T1") -> dict:
    stem = root / pid / session / "perf" / f"{pid}_{session}"
    return {
        "asl": Path(f"{stem}_asl.nii.gz"),
        "asl_json": Path(f"{stem}_asl.json"),
        "aslcontext": Path(f"{stem}_aslcontext.tsv"),
        "m0": Path(f"{stem}_m0scan.nii.gz"),
        "m0_json": Path(f"{stem}_m0scan.json"),
    }


def update_sidecar(path: Path, **fields) -> None:
    meta = json.loads(path.read_text())
    meta.update(fields)
    for key in [k for k, v in fields.items() if v is None]:
        del meta[key]
    path.write_text(json.dumps(meta, indent=2))


def to_included(files: dict) -> None:
    """M0Type Included: the M0 volumes appended to the ASL series, marked m0scan in aslcontext."""
    asl, m0 = nib.load(files["asl"]), nib.load(files["m0"])
    m0_data = np.asarray(m0.dataobj)
    m0_data = m0_data[..., None] if m0_data.ndim == 3 else m0_data
    series = np.concatenate([m0_data.astype(asl.get_data_dtype()), np.asarray(asl.dataobj)], axis=3)
    nib.save(nib.Nifti1Image(series, asl.affine, asl.header), files["asl"])
    context = pd.read_csv(files["aslcontext"], sep="\t")
    m0_rows = pd.DataFrame({"volume_type": ["m0scan"] * m0_data.shape[3]})
    pd.concat([m0_rows, context], ignore_index=True).to_csv(files["aslcontext"], sep="\t", index=False)
    update_sidecar(files["asl_json"], M0Type="Included")
    files["m0"].unlink()
    files["m0_json"].unlink()


def to_estimate(files: dict, value: float) -> None:
    """M0Type Estimate: no M0 scan, one M0 value in the sidecar."""
    update_sidecar(files["asl_json"], M0Type="Estimate", M0Estimate=value)
    files["m0"].unlink()
    files["m0_json"].unlink()


def one_run(root: Path, pid: str = "sub-01", session: str = "ses-T1") -> dict:
    runs, _ = baclofen_layout.collect_asl_runs(root)
    return runs[(runs["participant_id"] == pid) & (runs["session_id"] == session)].iloc[0].to_dict()


# ---------------------------------------------------------------- session labels


def test_sessions_named_otherwise_need_the_parameter(study):
    rename_sessions(study, {"ses-T1": "ses-pre", "ses-T2": "ses-post"})
    before = tree_checksum(study)
    with pytest.raises(
        ValueError, match=r"no ASL run in \['ses-T1', 'ses-T2'\].*\['ses-post', 'ses-pre'\].*sessions"
    ) as err:
        baclofen_layout.collect_asl_runs(study)
    # the hint puts the label that reads as "before" first, not the alphabetical order
    assert "e.g. sessions=('ses-pre', 'ses-post')" in str(err.value)
    with pytest.raises(ValueError, match="two different BIDS session labels"):
        baclofen_layout.collect_asl_runs(study, sessions=("ses-pre", "ses-pre"))
    runs, exclusions = baclofen_layout.collect_asl_runs(study, sessions=("ses-pre", "ses-post"))
    assert exclusions.empty and len(runs) == 2 * len(pd.read_csv(study / "participants.tsv", sep="\t"))
    assert set(runs["session_id"]) == {"ses-pre", "ses-post"}
    # the pairing steps name the sessions they miss instead of a bare KeyError
    values = runs[["participant_id", "group", "session_id"]].assign(cbf=1.0)
    with pytest.raises(ValueError, match=r"session\(s\) \['ses-T1', 'ses-T2'\].*sessions"):
        perfusion.participant_change(values)
    with pytest.raises(ValueError, match=r"session\(s\) \['ses-T1', 'ses-T2'\]"):
        perfusion.time_difference_maps(runs, np.zeros((len(runs), 3), np.float32))
    assert tree_checksum(study) == before


def test_renamed_sessions_give_the_same_results_as_the_defaults(source_study, study, tmp_path):
    """The CBF chain on ses-pre/ses-post with the labels given equals the chain on ses-T1/ses-T2."""
    rename_sessions(study, {"ses-T1": "ses-pre", "ses-T2": "ses-post"})
    before = tree_checksum(study)

    def chain(root, out, sessions):
        runs, _ = baclofen_layout.collect_asl_runs(root, sessions)
        cbf = perfusion.cbf_maps(runs, out)
        diff, table, excluded = perfusion.time_difference_maps(cbf.runs, cbf.maps, sessions)
        change = perfusion.global_change(cbf.runs, table, sessions=sessions)
        values = cbf.runs[["participant_id", "group", "session_id"]].assign(region="all", cbf=cbf.maps.mean(axis=1))
        tests = perfusion.region_change_tests(values, sessions=sessions)
        global_test = perfusion.global_change_test(cbf.runs, sessions=sessions)
        return cbf.maps, diff, table, excluded, change, tests, global_test

    default = chain(source_study, tmp_path / "out_default", baclofen_layout.SESSIONS)
    renamed = chain(study, tmp_path / "out_renamed", ("ses-pre", "ses-post"))
    np.testing.assert_array_equal(default[0], renamed[0])
    np.testing.assert_array_equal(default[1], renamed[1])
    pd.testing.assert_frame_equal(default[2], renamed[2])
    assert default[3].empty and renamed[3].empty
    np.testing.assert_array_equal(default[4], renamed[4])
    pd.testing.assert_frame_equal(default[5], renamed[5])
    pd.testing.assert_frame_equal(default[6], renamed[6])
    assert tree_checksum(study) == before


def test_a_missing_session_is_named(study):
    for folder in study.glob("sub-*/ses-T2/perf"):
        shutil.rmtree(folder)
    before = tree_checksum(study)
    with pytest.raises(ValueError, match=r"no ASL run in \['ses-T2'\].*sessions \['ses-T1'\]"):
        baclofen_layout.collect_asl_runs(study)
    assert tree_checksum(study) == before


def test_an_extra_session_is_listed_not_used(study):
    shutil.copytree(study / "sub-01" / "ses-T2", study / "sub-01" / "ses-T3")
    for path in (study / "sub-01" / "ses-T3").rglob("*ses-T2*"):
        path.rename(path.with_name(path.name.replace("ses-T2", "ses-T3")))
    before = tree_checksum(study)
    runs, exclusions = baclofen_layout.collect_asl_runs(study)
    assert set(runs["session_id"]) == {"ses-T1", "ses-T2"}
    assert len(exclusions) == 1
    row = exclusions.iloc[0]
    assert row["participant_id"] == "sub-01" and row["session_id"] == "ses-T3" and row["stage"] == "collect"
    assert "ses-T3 is not one of sessions" in row["reason"] and row["file"].endswith("sub-01_ses-T3_asl.nii.gz")
    assert tree_checksum(study) == before


def test_perf_without_sessions_is_refused(study):
    for subject in study.glob("sub-*"):
        shutil.move(subject / "ses-T1" / "perf", subject / "perf")
        shutil.rmtree(subject / "ses-T1")
        shutil.rmtree(subject / "ses-T2")
    before = tree_checksum(study)
    with pytest.raises(ValueError, match=r"perf/ folder without a session.*sub-\*/ses-T1/perf/"):
        baclofen_layout.collect_asl_runs(study)
    assert tree_checksum(study) == before


# ---------------------------------------------------------------- timing units


@pytest.mark.parametrize("field", ["PostLabelingDelay", "LabelingDuration"])
def test_timing_in_milliseconds_is_refused_before_quantification(study, field):
    files = perf_files(study)
    update_sidecar(files["asl_json"], **{field: 1800})
    before = tree_checksum(study)
    with pytest.raises(ValueError, match=rf"{files['asl_json']}: {field} is 1800.*looks like milliseconds.*seconds"):
        read_asl_constants(files["asl_json"])
    runs, _ = baclofen_layout.collect_asl_runs(study)
    mask_img = perfusion.perfusion_mask(runs)
    with pytest.raises(ValueError, match=f"{field} is 1800.*milliseconds"):
        perfusion.asl_run_cbf(one_run(study), np.asarray(mask_img.dataobj) > 0, mask_img.affine)
    assert tree_checksum(study) == before


def test_a_list_of_delays_in_milliseconds_is_refused(study):
    files = perf_files(study)
    update_sidecar(files["asl_json"], PostLabelingDelay=[1800, 1800])
    with pytest.raises(ValueError, match="PostLabelingDelay is 1800.*milliseconds"):
        read_asl_constants(files["asl_json"])


# ---------------------------------------------------------------- M0 types


def _cbf(root: Path, mask_img, pid="sub-01", session="ses-T1") -> np.ndarray:
    return perfusion.asl_run_cbf(one_run(root, pid, session), np.asarray(mask_img.dataobj) > 0, mask_img.affine)["cbf"]


def test_m0_included_in_the_series_gives_the_separate_maps(source_study, study):
    runs, _ = baclofen_layout.collect_asl_runs(source_study)
    mask_img = perfusion.perfusion_mask(runs)
    separate = _cbf(source_study, mask_img)
    files = perf_files(study)
    to_included(files)
    before = tree_checksum(study)
    run = one_run(study)
    assert run["m0"] == ""  # no separate scan needed
    included = _cbf(study, mask_img)
    np.testing.assert_array_equal(included, separate)
    assert tree_checksum(study) == before


def test_m0_estimate_scales_the_separate_maps(source_study, study):
    runs, _ = baclofen_layout.collect_asl_runs(source_study)
    mask_img = perfusion.perfusion_mask(runs)
    mask = np.asarray(mask_img.dataobj) > 0
    separate = _cbf(source_study, mask_img)
    files = perf_files(study)
    m0 = np.asarray(nib.load(files["m0"]).dataobj, dtype=float).mean(axis=3)[mask]
    estimate_value = float(np.median(m0))
    to_estimate(files, estimate_value)
    before = tree_checksum(study)
    assert one_run(study)["m0"] == ""
    estimate = _cbf(study, mask_img)
    # CBF is proportional to 1 / M0: a scalar M0 rescales each voxel by its own M0 over the scalar
    np.testing.assert_allclose(estimate, separate * m0 / estimate_value, rtol=1e-5)
    assert abs(np.median(estimate) / np.median(separate) - 1) < 0.25
    assert tree_checksum(study) == before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"M0Type": "Absent"}, r"M0Type is 'Absent'.*\['Separate', 'Included', 'Estimate'\]"),
        ({"M0Type": "Somewhere"}, r"M0Type is 'Somewhere'"),
        ({"M0Type": None}, r"lacks \['M0Type'\]"),
        ({"M0Type": "Estimate"}, r"M0Type is 'Estimate' but M0Estimate is None"),
        ({"M0Type": "Estimate", "M0Estimate": -3}, r"M0Estimate is -3"),
        ({"M0Type": "Included"}, r"M0Type is 'Included' but the run's aslcontext.tsv lists no m0scan"),
    ],
)
def test_unknown_or_absent_m0_is_a_clear_error(source_study, study, change, message):
    runs, _ = baclofen_layout.collect_asl_runs(source_study)
    mask_img = perfusion.perfusion_mask(runs)
    files = perf_files(study)
    update_sidecar(files["asl_json"], **change)
    before = tree_checksum(study)
    with pytest.raises(ValueError, match=message) as err:
        _cbf(study, mask_img)
    assert str(files["asl_json"]) in str(err.value)
    assert tree_checksum(study) == before


def test_separate_m0_without_its_scan_is_listed(study):
    files = perf_files(study)
    files["m0"].unlink()
    runs, exclusions = baclofen_layout.collect_asl_runs(study)
    assert len(exclusions) == 1 and str(files["m0"]) in exclusions.iloc[0]["reason"]
    assert not ((runs["participant_id"] == "sub-01") & (runs["session_id"] == "ses-T1")).any()


def test_run_m0_separate_equals_the_scan(source_study):
    files = perf_files(source_study)
    img = nib.load(files["asl"])
    context = pd.read_csv(files["aslcontext"], sep="\t")["volume_type"]
    m0 = run_m0(files["asl_json"], img, context, files["m0"])
    np.testing.assert_array_equal(m0, np.asarray(nib.load(files["m0"]).dataobj, dtype=float).mean(axis=3))


# ---------------------------------------------------------------- tables


def test_duplicate_participant_row_is_refused(study):
    path = study / "participants.tsv"
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    pd.concat([table, table.iloc[[2]]], ignore_index=True).to_csv(path, sep="\t", index=False)
    before = tree_checksum(study)
    pid = table["participant_id"].iloc[2]
    expected = rf"{path}: participant\(s\) on several rows \(file lines \{{'{pid}': \[4, {len(table) + 2}\]\}}\)"
    with pytest.raises(ValueError, match=expected):
        baclofen_layout.collect_asl_runs(study)
    with pytest.raises(ValueError, match="on several rows"):
        baclofen_layout.collect_task_runs(study)
    assert tree_checksum(study) == before


def test_empty_participants_is_refused(study):
    path = study / "participants.tsv"
    path.write_text("participant_id\tgroup\n")
    with pytest.raises(ValueError, match=f"{path} has no participant rows"):
        baclofen_layout.collect_asl_runs(study)


def _set_rating(root: Path, row: int, value: str) -> Path:
    path = root / "phenotype" / "craving_ratings.tsv"
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    table.loc[row, "craving"] = value
    table.to_csv(path, sep="\t", index=False)
    return path


@pytest.mark.parametrize(
    ("value", "message"),
    [("NA", "'NA' is not a number"), ("seven", "'seven' is not a number"), ("150", "150 is outside the scale 0-100")],
)
def test_bad_ratings_name_file_line_and_column(study, value, message):
    path = _set_rating(study, 5, value)
    before = tree_checksum(study)
    participants = baclofen_layout.read_participants(study)
    with pytest.raises(ValueError, match=rf"{path}, line 7, column 'craving': {message}"):
        baclofen_layout.read_craving_ratings(path, participants)
    assert tree_checksum(study) == before


@pytest.mark.parametrize("value", ["n/a", ""])
def test_missing_ratings_exclude_the_participant_and_list_it(study, value):
    path = _set_rating(study, 5, value)
    before = tree_checksum(study)
    participants = baclofen_layout.read_participants(study)
    ratings, exclusions = baclofen_layout.read_craving_ratings(path, participants)
    pid = pd.read_csv(path, sep="\t", dtype=str)["participant_id"].iloc[5]
    assert exclusions[["participant_id", "stage", "file"]].values.tolist() == [[pid, "craving ratings", str(path)]]
    assert "line(s) [7]" in exclusions.iloc[0]["reason"]
    assert pid not in set(ratings["participant_id"])
    craving = cue.cue_craving(ratings, participants)  # the chapter goes on without them
    assert set(craving["participant_id"]) == set(participants["participant_id"]) - {pid}
    assert tree_checksum(study) == before


def test_valid_ratings_are_read_unchanged(source_study):
    path = source_study / "phenotype" / "craving_ratings.tsv"
    participants = baclofen_layout.read_participants(source_study)
    ratings, exclusions = baclofen_layout.read_craving_ratings(path, participants)
    assert exclusions.empty
    plain = pd.read_csv(path, sep="\t")
    pd.testing.assert_frame_equal(ratings, plain)


# ---------------------------------------------------------------- partial coverage


def test_partial_coverage_is_analysed_on_the_common_coverage(source_study, study, tmp_path):
    """A run whose field of view misses the top slices: the study keeps the voxels every run covers, listed."""
    files = perf_files(study, "sub-02", "ses-T2")
    img = nib.load(files["m0"])
    data = np.asarray(img.dataobj).copy()
    data[:, :, -6:] = 0  # no signal above the field of view
    nib.save(nib.Nifti1Image(data, img.affine, img.header), files["m0"])
    before = tree_checksum(study)
    full = perfusion.cbf_maps(baclofen_layout.collect_asl_runs(source_study)[0], tmp_path / "full")
    partial = perfusion.cbf_maps(baclofen_layout.collect_asl_runs(study)[0], tmp_path / "partial")
    assert full.coverage.empty and partial.exclusions.empty and len(partial.runs) == len(full.runs)
    full_mask = np.asarray(full.mask_img.dataobj) > 0
    kept = np.asarray(partial.mask_img.dataobj) > 0
    lost = int(full_mask[:, :, -6:].sum())
    assert lost > 0 and kept.sum() == full_mask.sum() - lost and not kept[:, :, -6:].any()
    row = partial.coverage.iloc[0]
    assert len(partial.coverage) == 1 and (row["participant_id"], row["session_id"]) == ("sub-02", "ses-T2")
    assert row["n_uncovered"] == row["n_mask_lost"] == lost
    assert row["pct_mask_lost"] == pytest.approx(100 * lost / full_mask.sum())
    # the covered voxels keep their values; only sub-02's T2 QC changes (computed over its coverage)
    np.testing.assert_array_equal(partial.maps, full.maps[:, kept[full_mask]])
    assert np.isfinite(partial.maps).all()
    other = ~((partial.runs["participant_id"] == "sub-02") & (partial.runs["session_id"] == "ses-T2"))
    pd.testing.assert_series_equal(partial.runs.loc[other, "mean_gm_cbf"], full.runs.loc[other, "mean_gm_cbf"])
    assert tree_checksum(study) == before


def test_a_run_covering_too_little_is_named(study):
    files = perf_files(study)
    img = nib.load(files["m0"])
    data = np.asarray(img.dataobj).copy()
    data[:, :, 4:] = 0
    nib.save(nib.Nifti1Image(data, img.affine, img.header), files["m0"])
    runs, _ = baclofen_layout.collect_asl_runs(study)
    mask_img = perfusion.perfusion_mask(runs)
    with pytest.raises(ValueError, match=rf"{files['m0']}: M0 is zero or negative in \d+ voxel\(s\).*% a partial"):
        perfusion.asl_run_cbf(one_run(study), np.asarray(mask_img.dataobj) > 0, mask_img.affine)


# ---------------------------------------------------------------- ASLPrep derivatives


def to_aslprep(cbf, root: Path, out: Path) -> None:
    """Write a study's CBF maps as ASLPrep names them, each with a QC table."""
    for run in cbf.runs.to_dict("records"):
        pid, ses = run["participant_id"], run["session_id"]
        folder = out / pid / ses / "perf"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(run["cbf_map"], folder / f"{pid}_{ses}_space-MNI152NLin2009cAsym_cbf.nii.gz")
        pd.DataFrame({"FD": [0.1], "cbfQEI": [0.8]}).to_csv(
            folder / f"{pid}_{ses}_space-MNI152NLin2009cAsym_desc-qc_cbf.tsv", sep="\t", index=False
        )


def test_aslprep_maps_are_read_not_quantified(source_study, tmp_path):
    raw = perfusion.cbf_maps(baclofen_layout.collect_asl_runs(source_study)[0], tmp_path / "cbf")
    aslprep = tmp_path / "aslprep"
    to_aslprep(raw, source_study, aslprep)
    before = tree_checksum(aslprep)
    runs, exclusions = baclofen_layout.collect_aslprep_cbf(aslprep, source_study)
    assert exclusions.empty and len(runs) == len(raw.runs) and (runs["qc"] != "").all()
    derived = perfusion.derived_cbf_maps(runs)
    assert derived.exclusions.empty and not derived.runs["quantified"].any()
    assert derived.runs["qc_table"].str.endswith("_desc-qc_cbf.tsv").all()
    np.testing.assert_array_equal(derived.maps, raw.maps)
    for column in ("mean_gm_cbf", "mean_wm_cbf", "gm_wm_ratio", "pct_negative_gm"):
        np.testing.assert_array_equal(derived.runs[column], raw.runs[column])
    assert tree_checksum(aslprep) == before
    # a map with infinities is listed, the others go on
    bad = Path(runs.iloc[3]["cbf"])
    img = nib.load(bad)
    data = np.asarray(img.dataobj, dtype=np.float32)
    data[np.asarray(derived.mask_img.dataobj) > 0] = np.inf
    nib.save(nib.Nifti1Image(data, img.affine), bad)
    again = perfusion.derived_cbf_maps(runs)
    assert len(again.runs) == len(runs) - 1
    assert again.exclusions.iloc[0]["file"] == str(bad) and "non-finite" in again.exclusions.iloc[0]["reason"]
    with pytest.raises(FileNotFoundError, match="no CBF map"):
        baclofen_layout.collect_aslprep_cbf(tmp_path / "cbf", source_study)


def test_the_session_hint_orders_before_and_after():
    order = baclofen_layout.likely_session_order
    assert order(["ses-post", "ses-pre"]) == ("ses-pre", "ses-post")
    assert order(["ses-followup", "ses-baseline"]) == ("ses-baseline", "ses-followup")
    assert order(["ses-T2", "ses-T1"]) == ("ses-T1", "ses-T2")
    assert order(["ses-b", "ses-a"]) == ("ses-a", "ses-b")  # neither says: sorted


def test_m0_in_the_series_and_sessions_named_pre_post_run_through_the_cbf_chapter(source_study, study, tmp_path):
    """Every run with its M0 inside the ASL series and the sessions named ses-pre/ses-post: the CBF chapter's
    steps (inputs, maps, T2 - T1 maps, global change) give what they give on the study as simulated."""
    participants = pd.read_csv(study / "participants.tsv", sep="\t")["participant_id"]
    for pid in participants:
        for session in ("ses-T1", "ses-T2"):
            to_included(perf_files(study, pid, session))
    rename_sessions(study, {"ses-T1": "ses-pre", "ses-T2": "ses-post"})
    before = tree_checksum(study)

    def chapter(root, out, sessions):
        runs, exclusions = chapters.cbf_inputs(root, sessions)
        cbf = chapters.chapter_cbf_maps(runs, out)
        diff, table, _ = perfusion.time_difference_maps(cbf.runs, cbf.maps, sessions)
        return exclusions, cbf.maps, diff, table, perfusion.global_change(cbf.runs, table, sessions=sessions)

    default = chapter(source_study, tmp_path / "default", baclofen_layout.SESSIONS)
    mine = chapter(study, tmp_path / "mine", ("ses-pre", "ses-post"))
    assert default[0].empty and mine[0].empty
    assert (mine[3]["participant_id"] == default[3]["participant_id"]).all()
    np.testing.assert_allclose(mine[1], default[1], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(mine[2], default[2], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(mine[4], default[4], rtol=1e-6, atol=1e-6)
    assert tree_checksum(study) == before
