"""The engines: joblib's local processes and a Dask LocalCluster give the same tables, table by table."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from joblib.parallel import get_active_backend

from craving_circuits.book import cli
from craving_circuits.cocaine import denoise, firstlevel, layout, secondlevel
from craving_circuits.io import compute
from craving_circuits.io.files import read_tsv
from craving_circuits.simulate import simulate_cocaine_study
from craving_circuits.stats.permutation import cluster_permutation_test
from craving_circuits.stats.voxelwise import smooth_maps
from craving_circuits.verdict import calibration


def _backend_name() -> str:
    return type(get_active_backend()[0]).__name__


def test_engine_arguments_are_checked():
    with pytest.raises(ValueError, match="Unknown engine"):
        compute.start("spark")
    with pytest.raises(ValueError, match="engine='dask'"):
        compute.start("local", scheduler_address="tcp://localhost:8786")
    with pytest.raises(ValueError, match="positive integer"):
        compute.start("dask", n_workers=0)
    local = compute.start("local", n_workers=3)
    assert local.n_workers == 3 and local.client is None and "local" in local.describe()


def test_dask_engine_is_joblibs_backend_until_closed():
    before = _backend_name()
    with compute.start("dask", n_workers=2) as engine:
        assert _backend_name() == "DaskDistributedBackend"
        assert engine.n_workers == 2 and "Dask" in engine.describe()
        # a second client on the same scheduler, as with a remote address
        with compute.start("dask", engine.client.scheduler.address) as remote:
            assert remote.cluster is None and remote.n_workers == 2
    assert _backend_name() == before
    assert engine.client is None and engine.cluster is None


def _maps(rng, n, mask):
    from scipy import ndimage

    vol = ndimage.gaussian_filter(rng.standard_normal((n, *mask.shape)), (0, 1, 1, 1))
    return vol[:, mask] / vol[:, mask].std()


def test_permutation_null_is_the_same_on_dask():
    rng = np.random.default_rng(0)
    mask = np.ones((8, 8, 8), bool)
    tested = np.r_[np.zeros(7), np.ones(7)]
    y = _maps(rng, 14, mask) + 0.8 * tested[:, None]
    kwargs = dict(cluster_forming_p=0.01, n_perm=400, chunk_size=64, rng=3, variance_groups=tested)
    local = cluster_permutation_test(y, tested, mask, **kwargs)
    with compute.start("dask", n_workers=2):
        dask = cluster_permutation_test(y, tested, mask, **kwargs)
    for key in ("t", "labels", "p_fwe_voxel", "h0_max_size", "h0_max_mass", "h0_max_t"):
        np.testing.assert_array_equal(getattr(dask, key), getattr(local, key), err_msg=key)
    pd.testing.assert_frame_equal(dask.clusters, local.clusters)


def _seed_chapter(study_dir: Path, out: Path, n_jobs: int) -> dict[str, pd.DataFrame]:
    """The seed chapter's per-run and voxelwise stages on a study; its result tables."""
    study = layout.open_study(study_dir)
    runs, exclusions = layout.collect_runs(study)
    analysis, mask_img, _ = firstlevel.seed_analysis(runs, denoise.parse_strategy("conn"))
    first = firstlevel.first_level(runs, analysis, mask_img, out / "firstlevel", n_jobs=n_jobs)
    diff, table, _ = secondlevel.state_difference_maps(first.runs, first.maps)
    tests = secondlevel.group_tests(smooth_maps(diff, mask_img, 6.0), table, mask_img, n_perm=300, rng=0, n_jobs=n_jobs)
    tables = {
        "runs": first.runs.drop(columns=[c for c in first.runs.columns if c in ("bold", "confounds", "mask")]),
        "roi": first.roi,
        "exclusions": pd.concat([exclusions, first.exclusions], ignore_index=True),
        "maps": pd.DataFrame(first.maps),
    }
    for name, result in tests.items():
        tables[f"clusters_{name}"] = result.clusters
        tables[f"null_{name}"] = pd.DataFrame({"size": result.h0_max_size, "mass": result.h0_max_mass})
    return tables


@pytest.mark.slow
def test_simulation_first_level_permutations_and_calibration_are_the_same_on_dask(tiny_study_dir, tmp_path):
    """Every stage the engine runs: the simulator's runs, the first level, the permutation nulls, the Monte Carlo."""
    with compute.start("dask", n_workers=2):
        study_dir = simulate_cocaine_study(tmp_path / "dask" / "study", "tiny", n_jobs=2)
        on_dask = _seed_chapter(study_dir, tmp_path / "dask", n_jobs=2)
        voxel_dask = calibration.voxelwise_null(2, n_perm=50, n_jobs=2, progress=False)
        roi_dask = calibration.monte_carlo(
            2, conditions=("null", "paper"), studies=("cocaine",), n_boot=50, n_jobs=2, progress=False
        )
    # the simulated study: the same files with the same values
    local_files = sorted(p.relative_to(tiny_study_dir) for p in Path(tiny_study_dir).rglob("*") if p.is_file())
    dask_files = sorted(p.relative_to(study_dir) for p in Path(study_dir).rglob("*") if p.is_file())
    assert local_files == dask_files
    for rel in local_files:
        a, b = Path(tiny_study_dir) / rel, Path(study_dir) / rel
        if rel.name.endswith(".nii.gz"):
            np.testing.assert_array_equal(np.asarray(nib.load(a).dataobj), np.asarray(nib.load(b).dataobj), str(rel))
        elif rel.suffix == ".tsv":
            pd.testing.assert_frame_equal(read_tsv(a), read_tsv(b), obj=str(rel))
    local = _seed_chapter(tiny_study_dir, tmp_path / "local", n_jobs=1)
    assert set(local) == set(on_dask)
    for name, table in local.items():
        pd.testing.assert_frame_equal(on_dask[name], table, obj=name)
    assert len(local["clusters_craving_cud"]) > 0, "the planted rise forms clusters"
    pd.testing.assert_frame_equal(voxel_dask, calibration.voxelwise_null(2, n_perm=50, n_jobs=1, progress=False))
    roi_local = calibration.monte_carlo(
        2, conditions=("null", "paper"), studies=("cocaine",), n_boot=50, n_jobs=1, progress=False
    )
    pd.testing.assert_frame_equal(roi_dask, roi_local)


@pytest.mark.slow
def test_calibrate_command_writes_the_same_tables_locally_and_on_a_local_cluster(tmp_path, capsys):
    """``craving-circuits calibrate``: every condition of both studies, summarised, the same on either engine."""
    common = ["calibrate", "--replicates", "2", "--bound-replicates", "3", "--n-bootstrap", "20", "--batch-size", "1"]
    assert cli.main([*common, "--output-dir", str(tmp_path / "local")]) == 0
    assert cli.main([*common, "--output-dir", str(tmp_path / "dask"), "--engine", "dask", "--n-jobs", "2"]) == 0
    assert "ROI-level claims calibrated, 2 replicates per condition" in capsys.readouterr().out
    local, on_dask = (
        calibration.read_roi_calibration(tmp_path / "local"),
        calibration.read_roi_calibration(tmp_path / "dask"),
    )
    assert set(local) == set(calibration.ROI_CALIBRATION_TABLES)
    for name, table in local.items():
        pd.testing.assert_frame_equal(on_dask[name], table, obj=name)
    summary = local["summary"]
    conditions = {s: set(calibration.study_conditions(s, local["bounds"])) for s in ("cocaine", "baclofen")}
    for study, names in conditions.items():
        assert set(summary.loc[summary["study"] == study, "condition"]) == names
    assert (summary["n"] == 2).all()
    # a rerun replaces the folder whole; a folder with only part of the tables is refused
    assert calibration.read_roi_calibration(tmp_path / "none") is None
    (tmp_path / "local" / "claims.tsv").unlink()
    with pytest.raises(FileNotFoundError, match="only part"):
        calibration.read_roi_calibration(tmp_path / "local")
    assert list(calibration.engine_table(tmp_path / "none").columns) == ["not run"]
