"""Planted regions (craving_circuits.simulate.regions): defined apart from the analysis ROIs.

Oracles: the Gaussian's own geometry on synthetic grids (centre, half maximum
at FWHM / 2), grey-matter weighting checked voxel by voxel, the jitter's
generator re-seeded independently, and Dice counted by hand from the masks.
"""

from __future__ import annotations

import pickle

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from craving_circuits.io import atlas
from craving_circuits.simulate import regions
from craving_circuits.simulate.baclofen import CUE_ROIS, baclofen_params
from craving_circuits.simulate.cocaine import SOURCES, build_geometry, cocaine_params
from craving_circuits.simulate.regions import (
    JITTER_SD_MM,
    PLANTED_REGIONS,
    STUDY_REGIONS,
    PlantedFootprints,
    PlantedRegion,
    blob,
    participant_shifts,
    region_masks,
)
from craving_circuits.verdict import planted


def _cube(half_width_mm: float, step_mm: float = 1.0, centre=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Voxel centres of a cube around ``centre``, shape (n, 3)."""
    axis = np.arange(-half_width_mm, half_width_mm + step_mm / 2, step_mm)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    return grid + np.asarray(centre)


# --------------------------------------------------------------------------- the table


def test_every_study_plants_a_region_for_each_of_its_analysis_rois():
    assert tuple(STUDY_REGIONS["cocaine"]) == SOURCES
    assert set(CUE_ROIS) | {"dlpfc_right"} == set(STUDY_REGIONS["baclofen"])
    for study, mapping in STUDY_REGIONS.items():
        for roi, name in mapping.items():
            assert roi in atlas.ROIS and name in PLANTED_REGIONS, (study, roi, name)
    table = regions.regions_table()
    assert list(table.columns) == ["region", "description", "peak", "x_mm", "y_mm", "z_mm", "fwhm_mm", "note"]
    assert len(table) == sum(len(r.peaks_mm) for r in PLANTED_REGIONS.values())
    assert table["note"].str.contains("approximate").all()  # typical coordinates, not the source studies' peaks
    # no planted region is one of the analysis ROIs' own spheres
    for name, region in PLANTED_REGIONS.items():
        for spec in atlas.ROIS.values():
            assert not set(region.peaks_mm) & set(spec.spheres_mm), (name, spec.name)


# --------------------------------------------------------------------------- one blob


def test_a_blob_is_centred_where_stated_with_its_fwhm():
    region = PlantedRegion("one", "", ((10.0, -20.0, 30.0),), 12.0, "")
    xyz = _cube(20.0, centre=(10.0, -20.0, 30.0))
    w = blob(region, xyz, np.ones(len(xyz)))
    np.testing.assert_allclose(xyz[w.argmax()], (10.0, -20.0, 30.0))
    np.testing.assert_allclose((xyz * w[:, None]).sum(axis=0) / w.sum(), (10.0, -20.0, 30.0), atol=1e-9)
    assert w.max() == pytest.approx(1.0)
    # half the maximum at FWHM / 2 from the centre, along any axis
    for offset in ([6.0, 0, 0], [0, -6.0, 0], [0, 0, 6.0]):
        at = np.flatnonzero(np.all(np.isclose(xyz, np.add((10.0, -20.0, 30.0), offset)), axis=1))
        assert w[at[0]] == pytest.approx(0.5)
    # a shift moves the centre by exactly the shift
    shifted = blob(region, xyz, np.ones(len(xyz)), shift=np.array([[2.0, -3.0, 1.0]]))
    np.testing.assert_allclose(xyz[shifted.argmax()], (12.0, -23.0, 31.0))


def test_each_hemisphere_blob_peaks_at_one_whatever_its_grey_matter():
    region = PlantedRegion("pair", "", ((-20.0, 0.0, 0.0), (20.0, 0.0, 0.0)), 8.0, "")
    xyz = _cube(32.0, step_mm=2.0)
    gm = np.where(xyz[:, 0] < 0, 0.4, 0.9)
    w = blob(region, xyz, gm)
    left, right = xyz[:, 0] < 0, xyz[:, 0] > 0
    assert w[left].max() == pytest.approx(1.0) and w[right].max() == pytest.approx(1.0)
    np.testing.assert_allclose(xyz[left][w[left].argmax()], (-20.0, 0.0, 0.0))
    masks = region_masks(w)
    assert masks[left].sum() == masks[right].sum() > 0  # both halves survive the half-maximum threshold


def test_footprints_are_restricted_to_grey_matter():
    region = PLANTED_REGIONS["medial_thalamus"]
    rng = np.random.default_rng(7)
    xyz = _cube(24.0, step_mm=3.0, centre=(0.0, -14.0, 6.0))
    gm = rng.uniform(0, 1, len(xyz)) * (rng.random(len(xyz)) < 0.7)
    w = blob(region, xyz, gm)
    assert (w[gm == 0] == 0).all()
    # within a hemisphere the footprint is the Gaussian times grey matter, up to that blob's scale
    flat = blob(region, xyz, np.ones(len(xyz)))
    for side in (xyz[:, 0] <= -6, xyz[:, 0] >= 6):
        near = side & (gm > 0) & (flat > 0.6)  # near this side's peak, where its own blob is the largest
        assert near.sum() > 5
        ratio = w[near] / (flat[near] * gm[near])
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)
    with pytest.raises(ValueError, match="no grey matter"):
        blob(region, xyz, np.zeros(len(xyz)))


# --------------------------------------------------------------------------- jitter


def test_jitter_is_reproducible_per_participant_and_independent_of_order():
    forward = [participant_shifts("cocaine", 2023, i) for i in range(5)]
    backward = [participant_shifts("cocaine", 2023, i) for i in reversed(range(5))][::-1]
    for a, b in zip(forward, backward):
        assert list(a) == list(STUDY_REGIONS["cocaine"].values())
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])
            assert a[name].shape == (len(PLANTED_REGIONS[name].peaks_mm), 3)
    # the oracle: the documented generator, re-seeded here
    expected = np.random.default_rng([2023, 40, 3]).normal(0, JITTER_SD_MM, (12, 3))
    np.testing.assert_array_equal(np.concatenate(list(forward[3].values())), expected)
    assert not np.array_equal(forward[0]["dlpfc"], forward[1]["dlpfc"])
    assert not np.array_equal(forward[0]["dlpfc"], participant_shifts("cocaine", 2024, 0)["dlpfc"])
    # the two studies draw from streams of their own
    assert not np.array_equal(participant_shifts("baclofen", 2023, 0)["dlpfc_right"], forward[0]["dlpfc"][1:])
    many = np.concatenate([participant_shifts("baclofen", 1, i)["vmpfc"] for i in range(1500)])
    assert many.std() == pytest.approx(JITTER_SD_MM, rel=0.05) and abs(many.mean()) < 0.2
    with pytest.raises(ValueError, match="Unknown study"):
        participant_shifts("alcohol", 1, 0)


@pytest.fixture(scope="module")
def grid8():
    mask_img = atlas.brain_mask(8)
    mask = np.asarray(mask_img.dataobj) > 0
    gm = atlas.tissue_probabilities(mask_img)["gm"][mask]
    return mask_img, mask, gm


def test_participant_footprints_are_cached_and_rebuilt_alike(grid8):
    mask_img, mask, gm = grid8
    planted_a = PlantedFootprints("cocaine", mask, mask_img.affine, gm, seed=5, cache_size=2)
    planted_b = PlantedFootprints("cocaine", mask, mask_img.affine, gm, seed=5, cache_size=2)
    order_a = {i: planted_a.participant(i) for i in (0, 1, 2, 3)}
    order_b = {i: planted_b.participant(i) for i in (3, 1, 0, 2)}
    for i in order_a:
        np.testing.assert_array_equal(order_a[i], order_b[i])
    assert planted_a.participant(3) is order_a[3]  # still cached
    xyz = nib.affines.apply_affine(mask_img.affine, np.argwhere(mask))
    shifts = participant_shifts("cocaine", 5, 2)
    for k, (roi, name) in enumerate(STUDY_REGIONS["cocaine"].items()):
        np.testing.assert_allclose(order_a[2][k], blob(name, xyz, gm, shifts[name]), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(planted_a.of(roi, 2), order_a[2][k])
    assert order_a[2].shape == (len(SOURCES), mask.sum()) and order_a[2].dtype == np.float32
    assert not order_a[2].flags.writeable
    assert not np.array_equal(planted_a.template(), order_a[0])
    copy = pickle.loads(pickle.dumps(planted_a))  # what a worker process gets: no cache, the same footprints
    assert len(copy._cache) == 0
    np.testing.assert_array_equal(copy.participant(1), order_a[1])
    with pytest.raises(ValueError, match="plants no region"):
        planted_a.of("dlpfc_right")


def test_a_simulated_run_uses_its_participants_regions():
    params = cocaine_params("tiny", n_volumes=30)
    geometry = build_geometry(params)
    np.testing.assert_array_equal(geometry.footprints(4), geometry.planted.participant(4))
    fresh = build_geometry(params)
    for i in (6, 2, 4):  # another order, another object
        fresh.footprints(i)
    np.testing.assert_array_equal(fresh.footprints(4), geometry.footprints(4))


# --------------------------------------------------------------------------- against the analysis ROIs


@pytest.fixture(scope="module")
def tiny_overlap():
    return planted.planted_regions_vs_rois("tiny")


def test_each_planted_region_overlaps_its_roi_but_is_not_it(tiny_overlap):
    table = tiny_overlap
    expected = [(s, roi, name) for s, mapping in STUDY_REGIONS.items() for roi, name in mapping.items()]
    assert list(zip(table["study"], table["roi"], table["region"])) == expected
    assert ((table["dice"] > 0) & (table["dice"] < 1)).all(), table
    assert (table["dice_max"] < 1).all() and (table["dice_min"] >= 0).all(), table
    assert (table["distance_mm"] > 0).all() and np.isfinite(table["distance_mm"]).all()
    assert ((table["roi_mean_weight"] > 0) & (table["roi_mean_weight"] < 1)).all()
    tiny = cocaine_params("tiny"), baclofen_params("tiny")
    assert table.groupby("study")["n_participants"].first().to_dict() == {
        "cocaine": tiny[0].n_participants,
        "baclofen": tiny[1].n_baclofen + tiny[1].n_placebo,
    }
    assert (table["voxel_size_mm"] == 8).all()
    assert table.loc[table["region"] == "dlpfc", "peaks_mm"].item() == "(-40, 34, 30); (40, 34, 30)"


def test_the_dice_of_the_table_counted_by_hand(tiny_overlap, grid8):
    mask_img, mask, gm = grid8
    xyz = nib.affines.apply_affine(mask_img.affine, np.argwhere(mask))
    row = tiny_overlap.set_index(["study", "roi"]).loc[("baclofen", "dlpfc_right")]
    footprint = blob("dlpfc_right", xyz, gm)
    region = footprint >= 0.5 * footprint.max()
    roi = atlas.roi_mask("dlpfc_right", mask_img)[mask]
    both = sum(1 for r, t in zip(region, roi) if r and t)
    assert row["dice"] == pytest.approx(2 * both / (region.sum() + roi.sum()))
    assert row["distance_mm"] == pytest.approx(np.linalg.norm(xyz[region].mean(0) - xyz[roi].mean(0)))
    assert row["roi_mean_weight"] == pytest.approx(footprint[roi].mean(), rel=1e-5)


def test_overlap_refuses_bad_arguments():
    with pytest.raises(ValueError, match="n_participants"):
        regions.region_overlap("cocaine", 8, 1, 0)
    with pytest.raises(ValueError, match="level"):
        region_masks(np.ones(3), level=0.0)
    assert isinstance(regions.study_regions("baclofen"), list)
    assert pd.DataFrame(regions.study_regions("baclofen"))["roi"].tolist() == list(STUDY_REGIONS["baclofen"])
