"""Regions of interest in MNI space (craving_circuits.io.atlas).

Anatomical oracles are published coordinates and textbook anatomy; geometric
oracles (sphere ROIs, centroids, coordinates) are enumerated independently
here from the grid's affine.
"""

from __future__ import annotations

import gzip
import itertools

import nibabel as nib
import numpy as np
import pytest

from craving_circuits.io import atlas
from craving_circuits.io.atlas import (
    ROIS,
    RoiSpec,
    brain_mask,
    centroid_mm,
    get_roi,
    harvard_oxford_files,
    harvard_oxford_labels,
    label_coordinates,
    roi_mask,
    roi_masks,
    roi_weights,
    tissue_probabilities,
    voxel_coordinates_mm,
)


@pytest.fixture(scope="module")
def mask4():
    return brain_mask(4)


def _world(mask_img):
    ijk = np.indices(mask_img.shape[:3]).reshape(3, -1).T
    return nib.affines.apply_affine(mask_img.affine, ijk).reshape(mask_img.shape[:3] + (3,))


def _lattice_ball(radius_vox: float) -> list[tuple[int, int, int]]:
    """Integer offsets (i, j, k) with i^2 + j^2 + k^2 <= radius^2, by brute force."""
    n = int(np.ceil(radius_vox))
    return [
        (i, j, k) for i, j, k in itertools.product(range(-n, n + 1), repeat=3) if i * i + j * j + k * k <= radius_vox**2
    ]


# --------------------------------------------------------------------------- grids


def test_brain_mask_grids():
    m4 = brain_mask(4)
    assert m4.shape == (50, 59, 48)
    np.testing.assert_array_equal(np.diag(m4.affine)[:3], [4, 4, 4])
    data = np.asarray(m4.dataobj)
    assert data.dtype == np.uint8 and set(np.unique(data)) == {0, 1}
    # the MNI origin (anterior commissure region) is inside the brain; a corner is not
    inv = np.linalg.inv(m4.affine)
    origin = tuple(np.rint(nib.affines.apply_affine(inv, [2, 2, 0])).astype(int))
    assert data[origin] == 1 and data[0, 0, 0] == 0


@pytest.mark.parametrize("size", [0, -4, 2.5])
def test_brain_mask_rejects_bad_voxel_size(size):
    with pytest.raises(ValueError, match="voxel_size_mm"):
        brain_mask(size)


def test_voxel_coordinates_follow_the_affine():
    affine = np.array([[-2.0, 0, 0, 90], [0, 3.0, 0, -126], [0, 0, 4.0, -72], [0, 0, 0, 1]])
    xyz = voxel_coordinates_mm((4, 5, 6), affine)
    assert xyz.shape == (4, 5, 6, 3)
    np.testing.assert_array_equal(xyz[0, 0, 0], [90, -126, -72])
    np.testing.assert_array_equal(xyz[3, 4, 5], [90 - 6, -126 + 12, -72 + 20])
    np.testing.assert_array_equal(xyz[1, 2, 3], [88, -120, -60])


def test_centroid_mm_uniform_and_weighted():
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-10, 0, 4]
    mask = np.zeros((5, 5, 5), dtype=bool)
    mask[1, 1, 1] = mask[3, 1, 1] = True
    np.testing.assert_allclose(centroid_mm(mask, affine), [-6, 2, 6])
    weights = np.zeros(mask.shape)
    weights[1, 1, 1], weights[3, 1, 1] = 1.0, 3.0
    # world x of the voxels: -8 and -4; weighted mean (1 * -8 + 3 * -4) / 4 = -5
    np.testing.assert_allclose(centroid_mm(mask, affine, weights), [-5, 2, 6])
    with pytest.raises(ValueError, match="empty"):
        centroid_mm(np.zeros((2, 2, 2), bool), affine)


def test_tissue_probabilities_partition_the_brain():
    m8 = brain_mask(8)
    tissue = tissue_probabilities(m8)
    inside = np.asarray(m8.dataobj) > 0
    assert set(tissue) == {"gm", "wm", "csf"}
    for value in tissue.values():
        assert value.shape == m8.shape
        assert value.min() >= 0 and value.max() <= 1
        assert np.all(value[~inside] == 0)
    total = tissue["gm"] + tissue["wm"] + tissue["csf"]
    np.testing.assert_allclose(total[inside], 1.0, atol=1e-12)  # CSF is the remainder
    inv = np.linalg.inv(m8.affine)

    def at(xyz):
        return tuple(np.rint(nib.affines.apply_affine(inv, xyz)).astype(int))

    # centrum semiovale (deep white matter, both hemispheres), lateral temporal cortex
    for point in [(-26, -14, 32), (26, -14, 32)]:
        assert tissue["wm"][at(point)] > 0.9, point
    assert tissue["gm"][at((-50, -30, 0))] > 0.5


# --------------------------------------------------------------------------- ROI definitions


def test_unknown_roi_lists_the_known_ones(mask4):
    with pytest.raises(ValueError, match="amygdala") as err:
        get_roi("amygdala")
    for name in ROIS:
        assert name in str(err.value)
    with pytest.raises(ValueError, match="known ROIs"):
        roi_mask("amygdala", mask4)


def test_atlas_labels_used_by_rois_exist():
    labels = harvard_oxford_labels()
    image, _ = harvard_oxford_files()
    # one label per volume of the 4D probability image
    assert len(labels) == nib.load(image).shape[3] == 113
    assert labels[0] == "Left_Frontal_Pole"
    for spec in ROIS.values():
        for label in spec.atlas_labels:
            assert label in labels, (spec.name, label)


def test_nacc_centroids_match_published_ventral_striatum_seeds(mask4):
    """Each hemisphere's NAcc lies within 5 mm of the inferior ventral striatum / NAcc seed.

    Di Martino A, et al. (2008) Functional connectivity of human striatum: a resting
    state fMRI study. Cerebral Cortex 18:2735-2747: seed VSi at (+/-9, 9, -8) MNI.
    """
    nacc = roi_mask("nacc", mask4)
    x = _world(mask4)[..., 0]
    assert not np.any(nacc & (x == 0))
    for sign in (-1, 1):
        hemi = nacc & (np.sign(x) == sign)
        assert hemi.sum() >= 5
        centroid = centroid_mm(hemi, mask4.affine)
        distance = np.linalg.norm(centroid - np.array([sign * 9.0, 9.0, -8.0]))
        assert distance < 5.0, (sign, centroid)


def test_atlas_roi_weights_are_thresholded_probabilities(mask4):
    w = roi_weights("nacc", mask4)
    assert w.shape == mask4.shape
    nonzero = w[w > 0]
    assert nonzero.min() >= 0.25 and nonzero.max() <= 1.0  # min_probability 25 %
    np.testing.assert_array_equal(roi_mask("nacc", mask4), w > 0)
    assert np.all(w[np.asarray(mask4.dataobj) == 0] == 0)


def test_midline_thalamus(mask4):
    thal = roi_mask("thalamus_midline", mask4)
    xyz = _world(mask4)
    assert np.all(np.abs(xyz[thal][:, 0]) <= 8.0)
    centroid = centroid_mm(thal, mask4.affine)
    assert abs(centroid[0]) < 2.0
    # thalamus: behind the anterior commissure, above the AC-PC plane
    assert -25 < centroid[1] < -5 and 0 < centroid[2] < 15
    # the cut keeps exactly the near-midline part of the whole (bilateral) thalamus
    whole = roi_mask(RoiSpec("thalamus", "both thalami", atlas_labels=("Left_Thalamus", "Right_Thalamus")), mask4)
    np.testing.assert_array_equal(thal, whole & (np.abs(xyz[..., 0]) <= 8.0))
    assert whole.sum() > thal.sum()


def test_roi_masks_returns_every_requested_roi(mask4):
    masks = roi_masks(["pcc", "dlpfc_right"], mask4)
    assert list(masks) == ["pcc", "dlpfc_right"]
    assert all(m.dtype == bool and m.shape == mask4.shape and m.any() for m in masks.values())
    # right dlPFC sphere only in the right hemisphere
    assert np.all(_world(mask4)[masks["dlpfc_right"]][:, 0] > 0)


# --------------------------------------------------------------------------- spheres


def test_sphere_on_the_mni_grid_contains_the_enumerated_lattice_points():
    """PCC sphere (10 mm at (0, -52, 26)) on the 2 mm grid: (0, -52, 26) is a voxel centre."""
    m2 = brain_mask(2)
    inv = np.linalg.inv(m2.affine)
    centre_ijk = nib.affines.apply_affine(inv, [0, -52, 26])
    assert np.allclose(centre_ijk, np.rint(centre_ijk))
    offsets = _lattice_ball(10 / 2)
    assert len(offsets) == 515  # OEIS A000605: lattice points in a ball of radius 5
    expected = np.zeros(m2.shape, dtype=bool)
    for off in offsets:
        expected[tuple(np.rint(centre_ijk).astype(int) + np.array(off))] = True
    expected &= np.asarray(m2.dataobj) > 0
    np.testing.assert_array_equal(roi_mask("pcc", m2), expected)
    assert expected.sum() == 515  # the whole ball lies in the brain


def test_sphere_on_a_flipped_synthetic_grid_and_field_of_view_cut():
    affine = np.array([[-4.0, 0, 0, 40], [0, 4.0, 0, -20], [0, 0, 4.0, 0], [0, 0, 0, 1]])
    grid = nib.Nifti1Image(np.ones((20, 12, 10), dtype=np.uint8), affine)
    # centre at voxel (5, 5, 5) = (20, 0, 20) mm, radius 8 mm = 2 voxels
    spec = RoiSpec("ball", "test ball", spheres_mm=((20.0, 0.0, 20.0),), radius_mm=8.0)
    mask = roi_mask(spec, grid)
    assert mask.sum() == len(_lattice_ball(2)) == 33  # OEIS A000605
    assert mask[5, 5, 5] and mask[7, 5, 5] and mask[3, 5, 5] and not mask[8, 5, 5]
    # a ball centred on the last slice keeps only the half (plus the slice) inside the grid
    edge = RoiSpec("edge", "cut ball", spheres_mm=(tuple(affine[:3, :3] @ [5, 5, 9] + affine[:3, 3]),), radius_mm=8.0)
    expected = sum(1 for i, j, k in _lattice_ball(2) if k <= 0)
    assert roi_mask(edge, grid).sum() == expected == 13 + 9 + 1  # slices k = 0, -1, -2


def test_roi_that_misses_the_grid_is_an_error():
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = [100, 100, 100]  # a field of view far from the brain
    grid = nib.Nifti1Image(np.ones((5, 5, 5), dtype=np.uint8), affine)
    with pytest.raises(ValueError, match="'pcc' has no voxel"):
        roi_mask("pcc", grid)
    # atlas ROIs: the atlas does not reach this field of view (nilearn's resampling says so)
    with pytest.raises(ValueError):
        roi_mask("nacc", grid)
    # a grid that covers the ROI but whose brain mask is empty there
    empty = nib.Nifti1Image(np.zeros((50, 59, 48), dtype=np.uint8), brain_mask(4).affine)
    with pytest.raises(ValueError, match="no voxel"):
        roi_mask("pcc", empty)


# --------------------------------------------------------------------------- labels


def test_label_coordinates_of_well_known_points():
    # The atlas image is stored left-right flipped (negative x voxel axis): a wrong
    # handling of the affine would swap every hemisphere below.
    points = [
        (10, 12, -8),  # right nucleus accumbens
        (-10, 12, -8),  # left nucleus accumbens
        (-10, -18, 8),  # left thalamus
        (12, -18, 8),  # right thalamus
        (70, 75, 80),  # inside the atlas box, outside the head
        (0, 0, 100),  # above the atlas box
        (-80, 0, 0),  # left of the atlas box
    ]
    labels = label_coordinates(points)
    assert labels == [
        "Right Accumbens",
        "Left Accumbens",
        "Left Thalamus",
        "Right Thalamus",
        "no label (<25 %)",
        "no label (<25 %)",
        "no label (<25 %)",
    ]
    # a single point, and a threshold no probability reaches
    assert label_coordinates([10, 12, -8]) == ["Right Accumbens"]
    assert label_coordinates(points[:2], min_probability=101) == ["no label (<101 %)"] * 2


def test_label_coordinates_agree_with_the_nacc_roi(mask4):
    """Every NAcc ROI voxel centre with >= 50 % accumbens probability is labelled accumbens."""
    w = atlas.roi_weights("nacc", mask4)
    core = np.argwhere(w >= 0.5)
    assert len(core) > 0
    xyz = nib.affines.apply_affine(mask4.affine, core)
    labels = label_coordinates(xyz)
    expected = ["Right Accumbens" if x > 0 else "Left Accumbens" for x in xyz[:, 0]]
    assert labels == expected


def test_atlas_volumes_streamed_one_at_a_time_equal_nibabels(tmp_path):
    image, _ = atlas.harvard_oxford_files()
    proxy = nib.load(image).dataobj
    volumes = atlas._atlas_volumes(image)
    first = next(volumes)
    np.testing.assert_array_equal(first, np.asarray(proxy[..., 0]))
    for i, volume in enumerate(volumes, start=1):
        if i in (56, 112):
            np.testing.assert_array_equal(volume, np.asarray(proxy[..., i]))
    assert i == 112
    # an image that ends early is an error that names it
    img = nib.Nifti1Image(np.zeros((3, 3, 3, 2), np.uint8), np.eye(4))
    img.header.set_data_dtype(np.uint8)
    full = tmp_path / "atlas.nii.gz"
    nib.save(img, full)
    short = tmp_path / "short.nii.gz"
    short.write_bytes(gzip.compress(gzip.decompress(full.read_bytes())[:-5]))
    assert len(list(atlas._atlas_volumes(full))) == 2
    with pytest.raises(ValueError, match="short.nii.gz ends early"):
        list(atlas._atlas_volumes(short))


# --------------------------------------------------------------------------- the disk cache of resampled volumes


def _everything(mask_img):
    """What the cache serves: the ROI weights of every ROI, the brain mask and the tissue probabilities."""
    weights = {name: roi_weights(name, mask_img) for name in ROIS}
    return weights, brain_mask(8), tissue_probabilities(mask_img)


def _assert_same(a, b):
    weights_a, mask_a, tissue_a = a
    weights_b, mask_b, tissue_b = b
    for name in weights_a:
        assert weights_a[name].dtype == weights_b[name].dtype and np.array_equal(weights_a[name], weights_b[name])
    assert np.array_equal(mask_a.get_fdata(), mask_b.get_fdata()) and np.array_equal(mask_a.affine, mask_b.affine)
    for key in tissue_a:
        assert np.array_equal(tissue_a[key], tissue_b[key])


def test_cached_volumes_equal_the_computed_ones_bit_for_bit_and_are_read_back(tmp_path, monkeypatch):
    monkeypatch.setenv("CRAVING_CIRCUITS_CACHE", "off")
    assert atlas.cache_dir() is None
    mask_img = brain_mask(8)
    computed = _everything(mask_img)
    assert not list(tmp_path.iterdir())

    monkeypatch.setenv("CRAVING_CIRCUITS_CACHE", str(tmp_path / "cache"))
    first = _everything(mask_img)  # computed and written
    files = sorted((tmp_path / "cache").glob("*.npy"))
    labels = {label for spec in ROIS.values() for label in spec.atlas_labels}
    assert len(files) == len(labels) + 2 + 2  # one per atlas label, the mask and its affine, GM and WM
    _assert_same(first, computed)

    # read back: nothing is resampled again
    def refuse(*args, **kwargs):
        raise AssertionError("resampled although the cache holds the volume")

    monkeypatch.setattr(atlas, "resample_to_img", refuse)
    monkeypatch.setattr(atlas, "load_mni152_brain_mask", refuse)
    _assert_same(_everything(mask_img), computed)
    # another grid is another key
    with pytest.raises(AssertionError, match="resampled although"):
        roi_weights(next(name for name, spec in ROIS.items() if spec.atlas_labels), brain_mask(4))


def test_an_unreadable_or_misshapen_cache_file_is_computed_again(tmp_path, monkeypatch):
    monkeypatch.setenv("CRAVING_CIRCUITS_CACHE", str(tmp_path))
    mask_img = brain_mask(8)
    name = next(name for name, spec in ROIS.items() if len(spec.atlas_labels) >= 1)
    expected = roi_weights(name, mask_img)
    files = sorted(tmp_path.glob("harvard-oxford-*.npy"))
    assert len(files) == len(ROIS[name].atlas_labels)
    files[0].write_bytes(files[0].read_bytes()[:100])  # cut short
    for path in files[1:]:
        np.save(path, np.zeros((2, 2)))  # readable, wrong shape
    assert np.array_equal(roi_weights(name, mask_img), expected)
    assert all(np.load(path).shape == mask_img.shape for path in files)  # replaced


def test_a_cache_folder_that_cannot_be_written_only_costs_time(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("CRAVING_CIRCUITS_CACHE", str(blocked / "cache"))
    mask_img = brain_mask(8)
    name = next(name for name, spec in ROIS.items() if spec.atlas_labels)
    monkeypatch.setenv("CRAVING_CIRCUITS_CACHE", "off")
    expected = roi_weights(name, mask_img)
    monkeypatch.setenv("CRAVING_CIRCUITS_CACHE", str(blocked / "cache"))
    assert np.array_equal(roi_weights(name, mask_img), expected)
    assert not (blocked / "cache").exists()
