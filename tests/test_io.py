"""Reading and atomic writing of files (craving_circuits.io.files)."""

from __future__ import annotations

import gzip
import json
import os

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from craving_circuits.io.files import (
    atomic_path,
    read_json,
    read_nifti,
    read_tsv,
    write_json,
    write_nifti,
    write_text,
    write_tsv,
)


def _strict_json(text: str):
    """Parse JSON as the standard defines it (no NaN / Infinity tokens)."""

    def reject(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=reject)


# --------------------------------------------------------------------------- atomic_path


def test_atomic_path_leaves_nothing_when_the_block_raises(tmp_path):
    target = tmp_path / "sub" / "out.tsv"
    seen = {}
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            seen["tmp"] = tmp
            tmp.write_text("half-written")
            assert tmp.exists()
            raise RuntimeError("boom")
    assert not target.exists()
    assert not seen["tmp"].exists()
    assert list(target.parent.iterdir()) == []


def test_atomic_path_keeps_the_old_file_when_the_block_raises(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("new")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_atomic_path_replaces_on_success_with_a_hidden_sibling(tmp_path):
    target = tmp_path / "deep" / "er" / "image.nii.gz"
    with atomic_path(target) as tmp:
        # hidden, in the destination folder, same extension (nibabel infers the format from it)
        assert tmp.parent == target.parent
        assert tmp.name.startswith(".")
        assert tmp.name.endswith(".nii.gz")
        assert not target.exists()  # nothing under the final name while writing
        tmp.write_text("complete")
    assert target.read_text() == "complete"
    assert [p.name for p in target.parent.iterdir()] == ["image.nii.gz"]


def test_atomic_path_overwrites_an_existing_file(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    inode_before = os.stat(target).st_ino
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    # replaced by rename (a new file), not rewritten in place
    assert os.stat(target).st_ino != inode_before


# --------------------------------------------------------------------------- TSV


def test_write_tsv_writes_n_a_and_read_tsv_reads_nan(tmp_path):
    df = pd.DataFrame(
        {
            "participant_id": ["sub-01", "sub-02", "sub-03"],
            "score": [1.5, np.nan, 3.0],
            "group": ["CUD", None, "control"],
        }
    )
    path = write_tsv(tmp_path / "t.tsv", df)
    lines = path.read_text().splitlines()
    assert lines[0] == "participant_id\tscore\tgroup"
    assert lines[1] == "sub-01\t1.5\tCUD"
    assert lines[2] == "sub-02\tn/a\tn/a"
    back = read_tsv(path)
    assert list(back.columns) == ["participant_id", "score", "group"]
    assert np.isnan(back.loc[1, "score"]) and pd.isna(back.loc[1, "group"])
    assert back.loc[2, "score"] == 3.0 and back.loc[0, "group"] == "CUD"


def test_write_tsv_float_format(tmp_path):
    df = pd.DataFrame({"x": [1 / 3, 123456789.0]})
    assert write_tsv(tmp_path / "a.tsv", df).read_text().splitlines()[1:] == ["0.333333", "1.23457e+08"]
    assert write_tsv(tmp_path / "b.tsv", df, float_format="%.3f").read_text().splitlines()[1] == "0.333"


def test_read_tsv_missing_file_names_it(tmp_path):
    path = tmp_path / "nowhere" / "participants.tsv"
    with pytest.raises(FileNotFoundError, match="participants table") as err:
        read_tsv(path, what="participants table")
    assert str(path) in str(err.value)


# --------------------------------------------------------------------------- JSON


def test_write_json_converts_numpy_and_paths(tmp_path):
    obj = {
        "int": np.int64(3),
        "float": np.float32(0.5),
        "array": np.arange(3),
        "nested": {1: (np.float64(1.25), tmp_path)},
        "missing": float("nan"),
        "array_with_nan": np.array([1.0, np.nan, np.inf]),
    }
    path = write_json(tmp_path / "a.json", obj)
    data = _strict_json(path.read_text())
    assert data == {
        "int": 3,
        "float": 0.5,
        "array": [0, 1, 2],
        "nested": {"1": [1.25, str(tmp_path)]},
        "missing": None,
        "array_with_nan": [1.0, None, None],
    }


def test_write_json_numpy_scalar_nan_is_valid_json(tmp_path):
    """Non-finite numbers become null whatever their type (NaN is not valid JSON).

    Python floats and numpy arrays are converted, but numpy scalars such as the
    result of ``np.nanmean`` are not: ``np.float64('nan')`` is written as the bare
    token ``NaN``.
    """
    path = write_json(tmp_path / "a.json", {"mean_fd": np.float64("nan"), "max": np.float32("inf")})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text, f"invalid JSON written:\n{text}"
    assert _strict_json(text) == {"mean_fd": None, "max": None}


def test_read_json_missing_and_invalid(tmp_path):
    missing = tmp_path / "ground_truth.json"
    with pytest.raises(FileNotFoundError, match="ground truth") as err:
        read_json(missing, what="ground truth")
    assert str(missing) in str(err.value)

    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1,,}')
    with pytest.raises(ValueError) as err:
        read_json(bad)
    assert str(bad) in str(err.value)

    good = tmp_path / "good.json"
    good.write_text('{"a": [1, 2]}')
    assert read_json(good) == {"a": [1, 2]}


# --------------------------------------------------------------------------- text and NIfTI


def test_write_text_round_trip(tmp_path):
    path = write_text(tmp_path / "x" / "README", "line 1\nline 2\n")
    assert path.read_text() == "line 1\nline 2\n"
    assert [p.name for p in path.parent.iterdir()] == ["README"]


def test_write_nifti_keeps_format_from_final_extension(tmp_path):
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    path = write_nifti(tmp_path / "img.nii.gz", nib.Nifti1Image(data, affine))
    with open(path, "rb") as fh:
        assert fh.read(2) == b"\x1f\x8b"  # gzip magic: compressed because of .nii.gz
    with gzip.open(path) as fh:
        assert fh.read(348)[344:348] == b"n+1\x00"  # NIfTI-1 single-file magic
    img = nib.load(path)
    np.testing.assert_array_equal(np.asarray(img.dataobj), data)
    np.testing.assert_array_equal(img.affine, affine)
    assert [p.name for p in tmp_path.iterdir()] == ["img.nii.gz"]


@pytest.mark.parametrize("dtype", [np.float32, np.int16])
def test_gzipped_nifti_is_an_ordinary_gzip_file_and_reads_back_exactly(tmp_path, dtype):
    rng = np.random.default_rng(0)
    data = (rng.standard_normal((6, 7, 5, 4)) * 100).astype(dtype)
    img = nib.Nifti1Image(data, np.diag([3.0, 3.0, 3.0, 1.0]))
    img.header.set_xyzt_units("mm", "sec")
    write_nifti(tmp_path / "ours.nii.gz", img)
    img.to_filename(tmp_path / "nibabel.nii.gz")
    with gzip.open(tmp_path / "ours.nii.gz") as f:  # any gzip reader can open it
        assert len(f.read()) == 352 + data.nbytes
    # the same image gives the same bytes (no time stamp in the gzip header)
    write_nifti(tmp_path / "again.nii.gz", img)
    assert (tmp_path / "again.nii.gz").read_bytes() == (tmp_path / "ours.nii.gz").read_bytes()
    for name in ("ours.nii.gz", "nibabel.nii.gz"):
        ours, theirs = read_nifti(tmp_path / name), nib.load(tmp_path / name)
        np.testing.assert_array_equal(np.asarray(ours.dataobj), data)
        np.testing.assert_array_equal(ours.affine, theirs.affine)
        assert ours.header == theirs.header
    # a plain .nii, a NIfTI-2 and a broken file go through nibabel
    write_nifti(tmp_path / "plain.nii", img)
    np.testing.assert_array_equal(np.asarray(read_nifti(tmp_path / "plain.nii").dataobj), data)
    nib.Nifti2Image(data, img.affine).to_filename(tmp_path / "two.nii.gz")
    assert isinstance(read_nifti(tmp_path / "two.nii.gz"), nib.Nifti2Image)
    (tmp_path / "broken.nii.gz").write_bytes(gzip.compress(b"not an image")[:12])
    with pytest.raises(Exception, match="broken.nii.gz"):
        read_nifti(tmp_path / "broken.nii.gz")
