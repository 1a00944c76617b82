"""Reading and atomic writing of the files the book exchanges.

Conventions
-----------
* Every file this package writes goes through :func:`atomic_path`: it is written
  under a hidden temporary name in the destination folder and renamed into place
  only when complete, so an interrupted run never leaves a half-written file
  under a final name.
* Tabular files are BIDS-style TSV: tab-separated, ``n/a`` for missing values.
* Inputs are only ever opened for reading.
* Gzipped NIfTI-1 images (``.nii.gz``) are compressed and decompressed in one
  call with ISA-L (:mod:`isal.igzip`, level 1, no time stamp, so that the
  same image gives the same bytes), several times faster than the ``gzip``
  stream nibabel uses; the files are ordinary gzip files, and
  anything else (plain ``.nii``, NIfTI-2, other formats) goes through nibabel.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
from isal import igzip
from nibabel.volumeutils import apply_read_scaling

__all__ = [
    "atomic_path",
    "write_json",
    "write_tsv",
    "write_nifti",
    "read_nifti",
    "read_masked_run",
    "write_text",
    "read_json",
    "read_tsv",
    "read_bids_table",
]

BIDS_NA = "n/a"

#: Cells that BIDS reads as missing values: ``n/a`` and empty cells.
MISSING_CELLS = (BIDS_NA, "")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path that replaces ``path`` when the block succeeds.

    The temporary file lives in the destination folder (so the final
    :func:`os.replace` is atomic on POSIX), is hidden (leading dot) and keeps the
    extension of ``path`` (so writers that infer the format from it, such as
    nibabel, work). If the block raises, the temporary file is removed and
    ``path`` is left as it was.

    Parameters
    ----------
    path : str or path-like
        Final destination. Parent folders are created.

    Yields
    ------
    tmp : pathlib.Path
        Where to write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{secrets.token_hex(4)}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _to_jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _to_jsonable(obj.item())
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON (numpy scalars and arrays converted)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_to_jsonable(obj), indent=2, sort_keys=False) + "\n")
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_tsv(path: str | os.PathLike, df: pd.DataFrame, float_format: str = "%.6g") -> Path:
    """Write a DataFrame as a BIDS-style TSV (no index, ``n/a`` for missing)."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=False, na_rep=BIDS_NA, float_format=float_format)
    return Path(path)


#: Size of a NIfTI-1 header, its first four bytes.
_NIFTI1_HEADER_SIZE = 348


def write_nifti(path: str | os.PathLike, img) -> Path:
    """Write a nibabel image atomically (format from the extension of ``path``; ``.nii.gz`` NIfTI-1 by ISA-L)."""
    with atomic_path(path) as tmp:
        if str(path).endswith(".nii.gz") and isinstance(img, nib.Nifti1Image):
            Path(tmp).write_bytes(igzip.compress(img.to_bytes(), compresslevel=1, mtime=0))
        else:
            img.to_filename(tmp)
    return Path(path)


def read_nifti(path: str | os.PathLike):
    """Load an image; a gzipped NIfTI-1 is decompressed in one ISA-L call and read from memory.

    Returns what :func:`nibabel.load` returns for the file (for ``.nii.gz``
    NIfTI-1, a :class:`nibabel.Nifti1Image` whose data are in memory). A file
    that is not a gzipped NIfTI-1, or that fails to decompress, is handed to
    :func:`nibabel.load`, which raises its usual errors.
    """
    path = Path(path)
    if path.name.endswith(".nii.gz"):
        try:
            raw = igzip.decompress(path.read_bytes())
        except (OSError, EOFError, ValueError):
            raw = b""
        if len(raw) >= 4 and int.from_bytes(raw[:4], "little") == _NIFTI1_HEADER_SIZE:
            return nib.Nifti1Image.from_bytes(raw)
    return nib.load(path)


def read_masked_run(bold_path: str | Path, mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Read a 4D BOLD image and return its in-mask data.

    Parameters
    ----------
    bold_path : path
    mask : ndarray of bool, shape (nx, ny, nz)
    affine : ndarray, shape (4, 4)
        Expected affine; the image must match it and the mask's shape.

    Returns
    -------
    data : ndarray of float32, shape (n_volumes, n_voxels)

    Raises
    ------
    ValueError
        If the image is not 4D, is on another grid, is shorter than its header
        says, or has non-finite values in the mask (the message names the file).
    """
    img = read_nifti(bold_path)
    if img.ndim != 4:
        raise ValueError(f"{bold_path} is {img.ndim}D; a preprocessed BOLD run must be 4D.")
    if img.shape[:3] != mask.shape or not np.allclose(img.affine, affine, atol=1e-3):
        raise ValueError(
            f"{bold_path} is on another grid (shape {img.shape[:3]}) than the study's reference "
            f"(shape {mask.shape}); resample it with nilearn.image.resample_to_img or exclude it."
        )
    # NIfTI data are Fortran-ordered, time slowest: in memory they are (n_volumes,
    # n_voxels_total) rows in C order, so the mask's voxels (listed in C order) are
    # gathered by their Fortran-order positions along each row; the header's scaling
    # is then applied to those voxels only, by nibabel's own function (what
    # np.asanyarray(img.dataobj) applies to the whole volume)
    proxy = img.dataobj
    columns = np.ravel_multi_index(np.nonzero(mask), mask.shape, order="F")
    raw = _unscaled_in_memory(img)
    if raw is None:
        try:
            raw = proxy.get_unscaled() if hasattr(proxy, "get_unscaled") else np.asanyarray(proxy)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(
                f"{bold_path} could not be read ({err}); the file is probably truncated: "
                f"copy or preprocess it again, or exclude the run."
            ) from err
    flat = raw.reshape(-1, raw.shape[-1], order="F").T  # a view: (n_volumes, n_voxels_total)
    gathered = flat[:, columns]
    if hasattr(proxy, "get_unscaled"):
        gathered = apply_read_scaling(gathered, proxy.slope, proxy.inter)
    data = np.asarray(gathered, dtype=np.float32)
    n_bad = int(np.count_nonzero(~np.isfinite(data).all(axis=0)))
    if n_bad:
        raise ValueError(
            f"{bold_path} has NaN or infinite values in {n_bad} voxels of the brain mask; "
            f"check the preprocessing of this run or exclude it."
        )
    return np.ascontiguousarray(data)


def _unscaled_in_memory(img) -> np.ndarray | None:
    """The unscaled data of an image read by :func:`read_nifti`, as a view of its bytes in memory.

    nibabel would copy the bytes into a new array; for a NIfTI-1 image held in
    memory the array is a read-only view on the decompressed bytes instead.
    None for anything else (a file on disk, a non-native byte order).
    """
    proxy = getattr(img, "dataobj", None)
    fileobj = getattr(getattr(proxy, "file_like", None), "getbuffer", None)
    if fileobj is None or not isinstance(img, nib.Nifti1Image):
        return None
    dtype = img.get_data_dtype()
    if not dtype.isnative or getattr(proxy, "order", "F") != "F":
        return None
    count = int(np.prod(img.shape))
    buffer = fileobj()
    if buffer.nbytes < int(proxy.offset) + count * dtype.itemsize:
        return None  # shorter than its header says: nibabel reads it and raises its own error
    return np.frombuffer(buffer, dtype=dtype, count=count, offset=int(proxy.offset)).reshape(img.shape, order="F")


def read_json(path: str | os.PathLike, what: str = "JSON file") -> dict:
    """Read a JSON file, naming the file in the error if it is missing or invalid."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); fix or regenerate the file.") from err


def read_tsv(path: str | os.PathLike, what: str = "TSV file", **kwargs) -> pd.DataFrame:
    """Read a BIDS-style TSV (``n/a`` is missing), naming the file on error.

    Raises
    ------
    FileNotFoundError
        If the file is missing.
    ValueError
        Naming the file: it is empty (0 bytes) or not a readable tab-separated table.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} ({what}) is empty (0 bytes); write a header line and one row per entry.")
    try:
        return pd.read_csv(path, sep="\t", na_values=[BIDS_NA, ""], keep_default_na=False, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} ({what}) cannot be read as a tab-separated table ({err}); fix the file.") from err


def short_hash(obj) -> str:
    """The first 10 hex digits of the SHA-256 of an object's sorted JSON (names variants of a study)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


#: The BIDS entity of each label column.
_ENTITIES = {"participant_id": "sub", "session_id": "ses"}


def _lines(rows) -> str:
    """File line numbers of 0-based data rows (the header is line 1), at most five."""
    lines = [int(r) + 2 for r in rows]
    more = f" and {len(lines) - 5} more" if len(lines) > 5 else ""
    return ", ".join(str(n) for n in lines[:5]) + more


def read_bids_table(
    path: str | os.PathLike,
    what: str,
    columns=(),
    numeric: dict | None = None,
    levels: dict | None = None,
    unique=(),
    fix: str = "",
    labels=(),
) -> pd.DataFrame:
    """Read a BIDS TSV and check it, naming the file, line and column of every problem.

    Line numbers are those of the file: the header is line 1, the first data
    row line 2. ``n/a`` and empty cells are missing values (BIDS); every other
    cell of a numeric column must be a number.

    Parameters
    ----------
    path : path-like
    what : str
        What the file holds, for the messages ("participants table").
    columns : sequence of str
        Required columns.
    numeric : dict of str -> (low, high), optional
        Numeric columns (checked where present) and their allowed closed
        range; None for an open side. A value outside the range is an error.
    levels : dict of str -> set, optional
        Columns (checked where present) whose values must be one of the set;
        a missing value is refused too.
    unique : sequence of str
        Columns that identify a row: two rows with the same values are refused.
    fix : str
        What the file should look like, added to the messages.
    labels : sequence of str
        BIDS label columns (``participant_id`` or ``session_id``; checked where
        present): each value must be ``<entity>-<alphanumeric label>``, e.g.
        ``sub-01``.

    Returns
    -------
    table : pandas.DataFrame
        As :func:`read_tsv` reads it (numeric columns as numbers, missing
        values NaN). The file is only read.

    Raises
    ------
    FileNotFoundError
        If the file is absent.
    ValueError
        If the file is empty, has a header but no rows, cannot be parsed as
        TSV, lacks a column, has a non-numeric cell in a numeric column, a
        value out of range or not among the levels, or repeats a row.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}. {fix}".strip())
    hint = f" {fix}" if fix else ""
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes); write a header line and one row per entry.{hint}")
    try:
        text = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_values=[])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} cannot be read as a tab-separated table ({err}); fix the file.{hint}") from err
    missing = [c for c in columns if c not in text.columns]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {missing}; add them.{hint}")
    if not len(text):
        raise ValueError(f"{path} has a header but no rows; add one row per entry.{hint}")
    for column, (low, high) in (numeric or {}).items():
        if column not in text.columns:
            continue
        cells = text[column].str.strip()
        present = ~cells.isin(MISSING_CELLS)
        values = pd.to_numeric(cells.where(present), errors="coerce")
        bad = present & values.isna()
        if bad.any():
            shown = sorted(set(cells[bad]))[:5]
            raise ValueError(
                f"{path}, column {column!r}, line(s) {_lines(np.flatnonzero(bad))}: {shown} is not a number; "
                f"write a number, or n/a for a missing value (BIDS).{hint}"
            )
        out = present & (
            ((values < low) if low is not None else False) | ((values > high) if high is not None else False)
        )
        if out.any():
            shown = cells[out].tolist()[:5]
            lo = "-inf" if low is None else f"{low:g}"
            hi = "inf" if high is None else f"{high:g}"
            raise ValueError(
                f"{path}, column {column!r}, line(s) {_lines(np.flatnonzero(out))}: {shown} outside the allowed "
                f"range [{lo}, {hi}]; correct the value(s), or write n/a if unknown.{hint}"
            )
    for column in labels:
        if column not in text.columns:
            continue
        entity = _ENTITIES[column]
        bad = ~text[column].str.fullmatch(rf"{entity}-[A-Za-z0-9]+")
        if bad.any():
            shown = sorted(set(text.loc[bad, column]))[:5]
            raise ValueError(
                f"{path}, column {column!r}, line(s) {_lines(np.flatnonzero(bad))}: {shown} are not BIDS labels; "
                f"write {entity}-<label> (letters and digits only), as in the folder names.{hint}"
            )
    for column, allowed in (levels or {}).items():
        if column not in text.columns:
            continue
        bad = ~text[column].isin(allowed)
        if bad.any():
            shown = sorted(set(text.loc[bad, column]))[:5]
            raise ValueError(
                f"{path}, column {column!r}, line(s) {_lines(np.flatnonzero(bad))}: {shown} not recognised; "
                f"use {' or '.join(sorted(allowed))}.{hint}"
            )
    unique = list(unique)
    if unique:
        repeated = text.duplicated(unique, keep=False)
        if repeated.any():
            first = text.loc[repeated, unique].iloc[0].tolist()
            raise ValueError(
                f"{path}, line(s) {_lines(np.flatnonzero(repeated))}: rows repeat the same {', '.join(unique)} "
                f"(e.g. {first}); keep one row per {', '.join(unique)}.{hint}"
            )
    return read_tsv(path, what)
