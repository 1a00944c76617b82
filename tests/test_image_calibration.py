"""Image-level calibration: full-pipeline null replicates, the same on every engine, and the chapter's table."""

import numpy as np
import pandas as pd
import pytest
from IPython.display import Markdown

from craving_circuits.book import cli
from craving_circuits.io import atlas, compute
from craving_circuits.io.files import read_tsv, write_tsv
from craving_circuits.simulate import baclofen_params, cocaine_params
from craving_circuits.simulate.signals import SmoothNoiseField
from craving_circuits.verdict import calibration, image_calibration, twin

MAP_KINDS = {test: spec["maps"] for test, spec in calibration.VOXEL_TESTS.items()}


@pytest.fixture(scope="module")
def local_replicates(tmp_path_factory):
    """Two full-pipeline null replicates of both tiny studies, in this process."""
    tmp_path = tmp_path_factory.mktemp("image")
    return image_calibration.image_null(2, tmp_path / "local", n_jobs=1, n_perm=20), tmp_path


def _smoothness(local: pd.DataFrame, kind: str, noise: dict) -> tuple[float, float]:
    """Mean FWHM (mm) of the pipeline's participant maps of one kind, and of drawn maps of the same parameters."""
    spec = noise[kind]
    mask_img = atlas.brain_mask(8)
    mask = np.asarray(mask_img.dataobj) > 0
    fields = {(spec.voxel_size_mm, spec.fwhm_mm): SmoothNoiseField(mask, spec.voxel_size_mm, spec.fwhm_mm)}
    drawn = calibration._null_maps(fields, spec, 40, np.random.default_rng(0))
    expected = float(np.mean(calibration.map_fwhm(drawn, mask_img, scale=image_calibration.MAP_SCALES[kind])))
    tests = [t for t, k in MAP_KINDS.items() if k == kind]
    return float(local.loc[local["test"].isin(tests), "map_fwhm_mm"].mean()), expected


@pytest.mark.slow
def test_two_replicates_are_the_same_locally_and_on_a_local_dask_cluster(local_replicates):
    """Two full-pipeline replicates of both tiny null studies, once in this process and once as tasks of a
    LocalCluster of two workers: the same table. The baclofen participant maps the pipeline makes have the
    smoothness of the voxelwise calibration's drawn maps for the same simulator parameters."""
    options = dict(n_perm=20)
    local, tmp_path = local_replicates
    with compute.start("dask", n_workers=2) as engine:
        assert engine.n_workers == 2
        path, seconds = image_calibration.run_image_calibration(
            2, tmp_path / "results", tmp_path / "dask", n_jobs=engine.n_workers, **options
        )
    on_dask = read_tsv(path)
    assert path == tmp_path / "results" / "calibration" / "image_level.tsv" and seconds > 0
    assert not (tmp_path / "dask").exists() and not (tmp_path / "local" / "replicate-0").exists()
    assert list(local.columns) == image_calibration.IMAGE_COLUMNS
    assert set(local["test"]) == set(calibration.VOXEL_TESTS) and len(local) == 2 * len(calibration.VOXEL_TESTS)
    pd.testing.assert_frame_equal(on_dask, read_tsv(write_tsv(tmp_path / "local.tsv", local)))
    assert local["min_p_fwe"].between(0, 1).all() and (local["n_clusters"] >= 0).all()
    # the pipeline's maps against the drawn maps of the same parameters (tiny presets, 8 mm)
    noise = calibration.map_noise("baclofen", baclofen_params("tiny_null"))
    for kind in noise:
        made, expected = _smoothness(local, kind, noise)
        assert made == pytest.approx(expected, rel=0.2), (kind, made, expected)
    summary = image_calibration.image_level_table(tmp_path / "results" / "calibration")
    assert set(summary["test"]) == set(calibration.VOXEL_TESTS) and (summary["n"] == 2).all()


@pytest.mark.slow
def test_cocaine_state_maps_have_the_smoothness_of_the_drawn_null_maps(local_replicates):
    """The cocaine maps' noise is derived from the image pipeline's null maps (map_noise reads it): the tiny
    pipeline maps of these two replicates (other seeds than the derivation's) measure as smooth as the drawn
    maps, within the baclofen maps' tolerance."""
    noise = calibration.map_noise("cocaine", cocaine_params("tiny_null"))
    assert set(noise) == set(image_calibration.KINDS)
    for kind in noise:
        made, expected = _smoothness(local_replicates[0], kind, noise)
        assert made == pytest.approx(expected, rel=0.2), (kind, made, expected)


def test_the_cocaine_map_noise_is_derived_from_this_code():
    stored = calibration.read_map_noise()
    assert stored["code_hash"] == twin.code_hash(image_calibration.MAP_NOISE_SOURCES), (
        "The image simulator, the first level or the second level changed since the cocaine map noise was "
        "derived; run `python -m craving_circuits.verdict.image_calibration 2` and commit "
        "simulate/data/cocaine_map_noise.json."
    )
    assert set(stored["presets"]) == set(image_calibration.MAP_NOISE_DESIGNS)
    for preset, entry in stored["presets"].items():
        params = cocaine_params(preset, voxel_size_mm=entry["voxel_size_mm"])
        assert entry["noise_parameters"] == calibration.noise_signature(params), preset
        assert entry["design"]["n_replicates"] == image_calibration.MAP_NOISE_DESIGNS[preset]["n_replicates"]
        noise = calibration.map_noise("cocaine", params)
        for kind, derived in entry["kinds"].items():
            # the matched noise's drawn maps measure as the pipeline's maps, and map_noise returns it
            assert derived["drawn_fwhm_mm"] == pytest.approx(derived["pipeline_fwhm_mm"], rel=0.01), (preset, kind)
            assert noise[kind] == calibration.MapNoise(
                derived["fwhm_mm"], derived["smooth_share"], params.voxel_size_mm
            )
            assert 0 <= derived["smooth_share"] <= 1 and derived["fwhm_mm"] >= params.smooth_noise_fwhm_mm
    # the calibration's grid and noise use the null preset's derivation (the paper preset's noise); another
    # grid, the same share and field; noise parameters with no derivation are refused
    paper = calibration.map_noise("cocaine", cocaine_params("paper", voxel_size_mm=8))
    assert paper["state"].smooth_share == stored["presets"]["null"]["kinds"]["state"]["smooth_share"]
    fine = calibration.map_noise("cocaine", cocaine_params("paper"))
    assert fine["state"].smooth_share == paper["state"].smooth_share and fine["state"].voxel_size_mm == 4
    with pytest.raises(ValueError, match="No derived map noise"):
        calibration.map_noise("cocaine", cocaine_params("threat_state_motion"))


@pytest.mark.slow
def test_stored_map_noise_agrees_with_a_fresh_small_derivation(tmp_path):
    """One tiny null study with another seed: its maps' smoothness is within the stored replicates' spread of
    the stored mean, and the map noise matched to it draws maps that measure as its own."""
    stored = calibration.read_map_noise()["presets"]["tiny_null"]
    fresh = image_calibration.derive_map_noise("tiny_null", 1, seed=777, work_dir=tmp_path, n_maps=100)
    assert not any(tmp_path.iterdir())  # each replicate's study is deleted
    assert fresh["noise_parameters"] == stored["noise_parameters"]
    for kind in image_calibration.KINDS:
        new, old = fresh["kinds"][kind], stored["kinds"][kind]
        n = len(old["replicate_fwhm_mm"])
        spread = old["pipeline_fwhm_sd"] * np.sqrt(1 + 1 / n)  # one replicate against the mean of n
        assert abs(new["pipeline_fwhm_mm"] - old["pipeline_fwhm_mm"]) < 3 * spread + 0.05, (kind, new, old)
        assert new["drawn_fwhm_mm"] == pytest.approx(new["pipeline_fwhm_mm"], rel=0.01)


def test_the_chapter_shows_the_table_when_it_exists_and_the_command_when_not(tmp_path):
    shown = image_calibration.image_level_table(tmp_path)
    assert isinstance(shown, Markdown) and "craving-circuits calibrate-images --replicates" in shown.data
    rows = [
        {
            "replicate": i,
            "condition": image_calibration.IMAGE_CONDITION,
            "study": spec["study"],
            "test": test,
            "cluster_forming_p": spec["cluster_forming_p"],
            "n_clusters": 1,
            "min_p_fwe": 0.01 if (i == 0 and test == "craving_cud") else 0.5,
            "found": i == 0 and test == "craving_cud",
            "map_fwhm_mm": 8.0 + i,
        }
        for i in range(4)
        for test, spec in calibration.VOXEL_TESTS.items()
    ]
    write_tsv(tmp_path / "image_level.tsv", pd.DataFrame(rows))
    summary = image_calibration.image_level_table(tmp_path).set_index("test")
    assert summary.loc["craving_cud", "count"] == 1 and summary.loc["craving_cud", "rate"] == 0.25
    assert summary.loc["group_x_time_cbf", "count"] == 0 and (summary["n"] == 4).all()
    assert summary.loc["craving_cud", "map_fwhm_mm"] == pytest.approx(9.5)
    assert summary.loc["craving_cud", "ci_high"] > 0.25
    write_tsv(tmp_path / "image_level.tsv", pd.DataFrame(rows).drop(columns="map_fwhm_mm"))
    with pytest.raises(ValueError, match="calibrate-images"):
        image_calibration.image_level_table(tmp_path)


def test_the_command_needs_a_replicate_count(capsys):
    with pytest.raises(SystemExit):
        cli.main(["calibrate-images"])
    assert "--replicates" in capsys.readouterr().err
    with pytest.raises(ValueError, match="positive integer"):
        image_calibration.image_null(0, "unused")
