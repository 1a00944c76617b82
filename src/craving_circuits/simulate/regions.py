"""Where the simulators plant their effects: smooth regions defined apart from the analysis ROIs.

The analyses look for effects in the atlas ROIs of
:data:`craving_circuits.io.atlas.ROIS`. If the simulators planted their
effects on those very ROIs, every ROI analysis would find its signal exactly
where it looks, and recovery would be circular. The simulators therefore plant
each regional source (cocaine study) or effect (baclofen study) in a region of
its own: a 3D Gaussian blob around peak coordinates typical of the literature
for that region, weighted by grey matter, and shifted in every participant by
an anatomical jitter. Each planted region *stands for* an analysis ROI, which
overlaps it only in part (:func:`region_overlap` measures how much).

Data conventions
----------------
* Coordinates are MNI152 millimetres, RAS+ (as in :mod:`craving_circuits.io.atlas`).
* :data:`PLANTED_REGIONS` is the one table of planted regions: for each, its
  peak coordinates (one per hemisphere), its size as the
  full width at half maximum (FWHM) of the Gaussian, and a note on where the
  coordinates come from. They are *typical coordinates from the literature*,
  rounded and approximate, not the peaks reported by the two source studies.
* :data:`STUDY_REGIONS` lists, per study, the analysis ROI that each planted
  region stands for (the simulators name their sources and effects by that ROI).
* A footprint is an array of shape ``(n_voxels,)`` over the brain mask's voxels
  (C order of ``np.argwhere(mask)``): each peak's Gaussian times the
  grey-matter probability, scaled to a maximum of 1, and at each voxel the
  largest of these (:func:`blob`).
* Anatomical jitter: in participant ``i`` every peak of a study's regions is
  shifted by an independent draw of ``N(0, JITTER_SD_MM^2)`` per axis, from a
  generator seeded by the study's seed, a stream number of the study and ``i``
  only (:func:`participant_shifts`). Any participant's footprints can thus be
  rebuilt alone and in any order.
* A planted region *as a mask* is its footprint thresholded at
  :data:`OVERLAP_LEVEL` (half) of its maximum; this is what :func:`region_overlap`
  compares with the ROI masks.

Shared with the analysis
------------------------
Nothing from the analysis layers. From :mod:`craving_circuits.io`: the MNI
brain mask, the grey-matter probability and, in :func:`region_overlap` only,
the analysis ROIs that the planted regions are compared with.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import nibabel as nib
import numpy as np
import pandas as pd

from craving_circuits.io.atlas import brain_mask, get_roi, roi_mask, tissue_probabilities

__all__ = [
    "PlantedRegion",
    "PLANTED_REGIONS",
    "STUDY_REGIONS",
    "JITTER_SD_MM",
    "OVERLAP_LEVEL",
    "regions_table",
    "study_regions",
    "participant_shifts",
    "blob",
    "PlantedFootprints",
    "region_masks",
    "region_overlap",
]

#: SD of the per-participant shift of every peak, per axis (mm).
JITTER_SD_MM = 3.0

#: A planted region as a mask: its footprint at or above this share of its maximum.
OVERLAP_LEVEL = 0.5

#: Stream numbers of the jitter generators, ``default_rng([seed, stream, participant_index])``
#: (the simulators' other streams are 0-4 and 20-23; the ROI-level twin uses 31-32).
_JITTER_STREAMS = {"cocaine": 40, "baclofen": 41}


@dataclass(frozen=True)
class PlantedRegion:
    """A planted region: Gaussian blobs of one size around one or two peaks.

    Attributes
    ----------
    name : str
    description : str
    peaks_mm : tuple of (x, y, z)
        Peak coordinates (MNI mm), one per blob.
    fwhm_mm : float
        Full width at half maximum of each Gaussian (mm).
    note : str
        Where the coordinates come from.
    """

    name: str
    description: str
    peaks_mm: tuple[tuple[float, float, float], ...]
    fwhm_mm: float
    note: str

    @property
    def sigma_mm(self) -> float:
        """The Gaussian's SD, ``fwhm / sqrt(8 ln 2)``."""
        return self.fwhm_mm / np.sqrt(8 * np.log(2))


_TYPICAL = "typical coordinates from the literature, rounded (approximate; not the source studies' peaks)"

PLANTED_REGIONS: dict[str, PlantedRegion] = {
    r.name: r
    for r in [
        PlantedRegion(
            "ventral_striatum",
            "Ventral striatum / nucleus accumbens, both hemispheres",
            ((-12.0, 10.0, -8.0), (12.0, 10.0, -8.0)),
            14.0,
            f"Ventral-striatal peak of reward-anticipation and drug-cue fMRI; {_TYPICAL}",
        ),
        PlantedRegion(
            "dlpfc",
            "Dorsolateral prefrontal cortex (middle frontal gyrus), both hemispheres",
            ((-40.0, 34.0, 30.0), (40.0, 34.0, 30.0)),
            16.0,
            f"Middle frontal gyrus (BA 9/46) peak of executive-control and cue-regulation fMRI; {_TYPICAL}",
        ),
        PlantedRegion(
            "dlpfc_right",
            "Right dorsolateral prefrontal cortex (middle frontal gyrus), a perfusion change",
            ((40.0, 34.0, 30.0),),
            20.0,
            f"The right peak of 'dlpfc', broader: ASL's coarse effective resolution, whose readout blurring "
            f"the simulator does not model otherwise; {_TYPICAL}",
        ),
        PlantedRegion(
            "medial_thalamus",
            "Medial (mediodorsal) thalamus, both hemispheres",
            ((-6.0, -14.0, 6.0), (6.0, -14.0, 6.0)),
            16.0,
            f"Mediodorsal thalamic peak of craving and cue-reactivity fMRI; {_TYPICAL}",
        ),
        PlantedRegion(
            "anterior_insula",
            "Anterior insula, both hemispheres",
            ((-36.0, 16.0, -2.0), (36.0, 16.0, -2.0)),
            14.0,
            f"Anterior insular peak of drug-cue and interoception fMRI; {_TYPICAL}",
        ),
        PlantedRegion(
            "vmpfc",
            "Ventromedial prefrontal cortex, both hemispheres next to the midline",
            ((-4.0, 46.0, -12.0), (4.0, 46.0, -12.0)),
            14.0,
            f"Ventromedial prefrontal peak of value and drug-cue fMRI; {_TYPICAL}",
        ),
        PlantedRegion(
            "pcc",
            "Posterior cingulate cortex / precuneus, both hemispheres next to the midline",
            ((-4.0, -56.0, 30.0), (4.0, -56.0, 30.0)),
            14.0,
            f"Posterior cingulate hub of the default-mode network in resting-state fMRI; {_TYPICAL}",
        ),
    ]
}

#: Per study: the analysis ROI (a key of :data:`craving_circuits.io.atlas.ROIS`) -> the planted region
#: that stands for it. The cocaine study's keys are its sources, in the order of
#: :data:`craving_circuits.simulate.cocaine.SOURCES`.
STUDY_REGIONS: dict[str, dict[str, str]] = {
    "cocaine": {
        "nacc": "ventral_striatum",
        "dlpfc": "dlpfc",
        "thalamus_midline": "medial_thalamus",
        "insula": "anterior_insula",
        "vmpfc": "vmpfc",
        "pcc": "pcc",
    },
    "baclofen": {
        "dlpfc_right": "dlpfc_right",
        "insula_anterior_ventral": "anterior_insula",
        "vmpfc": "vmpfc",
    },
}


def _check_study(study: str) -> dict[str, str]:
    if study not in STUDY_REGIONS:
        raise ValueError(f"Unknown study {study!r}; known: {', '.join(STUDY_REGIONS)}.")
    return STUDY_REGIONS[study]


def regions_table() -> pd.DataFrame:
    """The planted regions, one row per peak.

    Returns
    -------
    table : pandas.DataFrame
        ``region, description, peak, x_mm, y_mm, z_mm, fwhm_mm, note``.
    """
    rows = [
        {
            "region": r.name,
            "description": r.description,
            "peak": i,
            "x_mm": x,
            "y_mm": y,
            "z_mm": z,
            "fwhm_mm": r.fwhm_mm,
            "note": r.note,
        }
        for r in PLANTED_REGIONS.values()
        for i, (x, y, z) in enumerate(r.peaks_mm)
    ]
    return pd.DataFrame(rows)


def study_regions(study: str) -> list[dict]:
    """A study's planted regions as records, for its ground truth.

    Returns
    -------
    records : list of dict
        Per analysis ROI of :data:`STUDY_REGIONS`: ``roi, region, peaks_mm,
        fwhm_mm, jitter_sd_mm, note``.
    """
    return [
        {
            "roi": roi,
            "region": name,
            "peaks_mm": [list(peak) for peak in PLANTED_REGIONS[name].peaks_mm],
            "fwhm_mm": PLANTED_REGIONS[name].fwhm_mm,
            "jitter_sd_mm": JITTER_SD_MM,
            "note": PLANTED_REGIONS[name].note,
        }
        for roi, name in _check_study(study).items()
    ]


def participant_shifts(study: str, seed: int, participant_index: int) -> dict[str, np.ndarray]:
    """The anatomical jitter of one participant: a shift of every peak of the study's regions.

    Parameters
    ----------
    study : str
        A key of :data:`STUDY_REGIONS`.
    seed : int
        The study's seed.
    participant_index : int
        Row of the participant in the study's participants table (0-based).

    Returns
    -------
    shifts : dict of str -> ndarray, shape (n_peaks, 3)
        Per planted region of the study (in the order of :data:`STUDY_REGIONS`),
        the shift of each peak in mm. The same arguments give the same shifts,
        whatever else was drawn before.
    """
    names = list(_check_study(study).values())
    rng = np.random.default_rng([int(seed), _JITTER_STREAMS[study], int(participant_index)])
    n_peaks = [len(PLANTED_REGIONS[name].peaks_mm) for name in names]
    draws = rng.normal(0.0, JITTER_SD_MM, (sum(n_peaks), 3))
    bounds = np.cumsum([0, *n_peaks])
    return {name: draws[a:b] for name, a, b in zip(names, bounds[:-1], bounds[1:])}


def blob(region: PlantedRegion | str, xyz: np.ndarray, gm: np.ndarray, shift: np.ndarray | None = None) -> np.ndarray:
    """Footprint of a planted region: each peak's Gaussian times grey matter, scaled to a maximum of 1.

    Parameters
    ----------
    region : PlantedRegion or str
        A region or a key of :data:`PLANTED_REGIONS`.
    xyz : ndarray, shape (n_voxels, 3)
        World coordinates (mm) of the voxels.
    gm : ndarray, shape (n_voxels,)
        Grey-matter probability of the voxels.
    shift : ndarray, shape (n_peaks, 3), optional
        Shift of each peak (mm); none by default.

    Returns
    -------
    weights : ndarray of float64, shape (n_voxels,)
        For each peak, its Gaussian times the voxels' grey matter, divided by
        its own maximum over the voxels (so each blob, one per hemisphere say,
        peaks at 1 whatever the grey matter under it); at each voxel the
        largest of these.
    """
    region = PLANTED_REGIONS[region] if isinstance(region, str) else region
    peaks = np.asarray(region.peaks_mm, dtype=float)
    if shift is not None:
        peaks = peaks + np.asarray(shift, dtype=float).reshape(peaks.shape)
    xyz = np.asarray(xyz, dtype=float)
    gm = np.asarray(gm, dtype=float)
    weights = np.zeros(len(xyz))
    for peak in peaks:
        one = np.exp(-((xyz - peak) ** 2).sum(axis=1) / (2 * region.sigma_mm**2)) * gm
        top = one.max()
        if not top > 0:
            raise ValueError(f"The planted region {region.name!r} has no grey matter near {peak} on this grid.")
        weights = np.maximum(weights, one / top)
    return weights


class PlantedFootprints:
    """The footprints of a study's planted regions on one grid, per participant.

    Parameters
    ----------
    study : str
        A key of :data:`STUDY_REGIONS`.
    mask : ndarray of bool, shape (nx, ny, nz)
    affine : ndarray, shape (4, 4)
    gm : ndarray, shape (n_voxels,)
        Grey-matter probability of the mask's voxels.
    seed : int
        The study's seed (of the jitter).
    cache_size : int
        Participants whose footprints are kept (the runs of a participant reuse them).

    Attributes
    ----------
    rois : tuple of str
        The analysis ROIs the regions stand for, in the order of the rows of
        :meth:`participant` and :meth:`template`.
    """

    def __init__(self, study: str, mask: np.ndarray, affine: np.ndarray, gm: np.ndarray, seed: int, cache_size=8):
        self.study = study
        self.regions = dict(_check_study(study))
        self.rois = tuple(self.regions)
        self.seed = int(seed)
        self.xyz = nib.affines.apply_affine(affine, np.argwhere(mask)).astype(np.float32)
        self.gm = np.asarray(gm, dtype=np.float32)
        if self.gm.shape != (len(self.xyz),):
            raise ValueError(f"gm has shape {self.gm.shape}; expected ({len(self.xyz)},), one value per mask voxel.")
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def __getstate__(self):  # the cache stays behind when the object goes to a worker process
        state = dict(self.__dict__)
        state["_cache"] = OrderedDict()
        return state

    def _stack(self, shifts: dict | None) -> np.ndarray:
        rows = [
            blob(name, self.xyz, self.gm, None if shifts is None else shifts[name]) for name in self.regions.values()
        ]
        out = np.asarray(rows, dtype=np.float32)
        out.setflags(write=False)
        return out

    def template(self) -> np.ndarray:
        """Footprints without jitter (every peak where the table puts it).

        Returns
        -------
        footprints : ndarray of float32, shape (n_regions, n_voxels), read-only
        """
        return self._stack(None)

    def participant(self, participant_index: int) -> np.ndarray:
        """Footprints of one participant, with their anatomical jitter (cached).

        Returns
        -------
        footprints : ndarray of float32, shape (n_regions, n_voxels), read-only
            Rows in the order of :attr:`rois`.
        """
        key = int(participant_index)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        out = self._stack(participant_shifts(self.study, self.seed, key))
        self._cache[key] = out
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return out

    def of(self, roi: str, participant_index: int | None = None) -> np.ndarray:
        """The footprint of the region that stands for ``roi`` (template when no participant is given).

        Returns
        -------
        footprint : ndarray of float32, shape (n_voxels,)
        """
        if roi not in self.regions:
            raise ValueError(f"The {self.study} study plants no region for the ROI {roi!r}; it has {self.rois}.")
        stack = self.template() if participant_index is None else self.participant(participant_index)
        return stack[self.rois.index(roi)]


def region_masks(footprints: np.ndarray, level: float = OVERLAP_LEVEL) -> np.ndarray:
    """Planted regions as masks: each footprint at or above ``level`` times its maximum.

    Parameters
    ----------
    footprints : ndarray, shape (n_regions, n_voxels) or (n_voxels,)
    level : float
        Share of the maximum, in (0, 1].

    Returns
    -------
    masks : ndarray of bool, the shape of ``footprints``
    """
    if not 0 < level <= 1:
        raise ValueError(f"level must lie in (0, 1], got {level}.")
    footprints = np.asarray(footprints)
    return footprints >= level * footprints.max(axis=-1, keepdims=True)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.logical_and(a, b).sum() / (a.sum() + b.sum()))


def _compare(
    footprint: np.ndarray, target: np.ndarray, xyz: np.ndarray, level: float, bilateral: bool
) -> tuple[float, float]:
    """Dice of a thresholded footprint with a boolean ROI, and the distance (mm) between their centres of mass.

    For a bilateral region the distance is the mean of the two hemispheres' (``x < 0`` and ``x >= 0``).
    """
    region = region_masks(footprint, level)
    sides = [xyz[:, 0] < 0, xyz[:, 0] >= 0] if bilateral else [np.ones(len(xyz), bool)]
    distances = [
        np.linalg.norm(xyz[region & side].mean(axis=0) - xyz[target & side].mean(axis=0))
        for side in sides
        if (region & side).any() and (target & side).any()
    ]
    return _dice(region, target), float(np.mean(distances)) if distances else np.nan


def region_overlap(
    study: str, voxel_size_mm: int, seed: int, n_participants: int, level: float = OVERLAP_LEVEL
) -> pd.DataFrame:
    """How far each planted region of a study is from the analysis ROI it stands for.

    On the study's grid (the MNI brain mask at ``voxel_size_mm``), each planted
    region is thresholded at ``level`` of its maximum (:func:`region_masks`)
    and compared with the boolean ROI (:func:`craving_circuits.io.atlas.roi_mask`):
    the Dice coefficient ``2 |A and B| / (|A| + |B|)`` and the distance between
    the two masks' centres of mass (unweighted; for a region with a peak in each
    hemisphere, the mean of the two hemispheres' distances). Both are given for
    the template (no jitter) and as the range over the participants' jittered
    regions.

    Parameters
    ----------
    study : str
        A key of :data:`STUDY_REGIONS`.
    voxel_size_mm : int
        The study's voxel size.
    seed : int
        The study's seed (of the jitter).
    n_participants : int
        Participants of the study (indices ``0 .. n_participants - 1``).
    level : float
        Threshold of a planted region, as a share of its maximum.

    Returns
    -------
    table : pandas.DataFrame, one row per planted region
        ``study, roi, region, fwhm_mm, voxel_size_mm, n_participants, dice,
        dice_min, dice_max, distance_mm, distance_min_mm, distance_max_mm,
        roi_mean_weight, roi_mean_weight_jittered``: ``dice`` and
        ``distance_mm`` of the template, ``*_min`` and ``*_max`` their range
        over the participants; ``roi_mean_weight`` is the mean of the template
        footprint over the ROI, the share of a region's peak effect that the
        ROI's mean carries, and ``roi_mean_weight_jittered`` the same averaged
        over the participants.
    """
    regions = _check_study(study)
    if int(n_participants) < 1:
        raise ValueError(f"n_participants must be at least 1, got {n_participants}.")
    mask_img = brain_mask(voxel_size_mm)
    mask = np.asarray(mask_img.dataobj) > 0
    gm = tissue_probabilities(mask_img)["gm"][mask]
    planted = PlantedFootprints(study, mask, mask_img.affine, gm, seed, cache_size=1)
    xyz = planted.xyz.astype(float)
    template = planted.template()
    targets = [roi_mask(get_roi(roi), mask_img)[mask] for roi in regions]
    bilateral = [len({np.sign(x) for x, _, _ in PLANTED_REGIONS[name].peaks_mm}) == 2 for name in regions.values()]
    n = int(n_participants)
    each = np.empty((n, len(regions), 3))  # dice, distance, ROI mean weight; one participant at a time
    for i in range(n):
        footprints = planted.participant(i)
        for k, target in enumerate(targets):
            each[i, k] = (*_compare(footprints[k], target, xyz, level, bilateral[k]), footprints[k][target].mean())
    rows = []
    for k, ((roi, name), target) in enumerate(zip(regions.items(), targets)):
        dice, distance = _compare(template[k], target, xyz, level, bilateral[k])
        rows.append(
            {
                "study": study,
                "roi": roi,
                "region": name,
                "fwhm_mm": PLANTED_REGIONS[name].fwhm_mm,
                "voxel_size_mm": int(voxel_size_mm),
                "n_participants": n,
                "dice": dice,
                "dice_min": each[:, k, 0].min(),
                "dice_max": each[:, k, 0].max(),
                "distance_mm": distance,
                "distance_min_mm": each[:, k, 1].min(),
                "distance_max_mm": each[:, k, 1].max(),
                "roi_mean_weight": float(template[k][target].mean()),
                "roi_mean_weight_jittered": float(each[:, k, 2].mean()),
            }
        )
    return pd.DataFrame(rows)
