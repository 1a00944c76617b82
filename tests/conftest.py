"""Shared fixtures: small simulated studies, written once per test session.

The ``tiny`` preset (8 CUD + 6 controls, 8 mm voxels, 60 volumes) takes about
15 s, mostly loading the 1 mm Harvard-Oxford atlas; ``tiny_null`` is the same
study with every planted effect set to zero. Both are created lazily: a test
session that never asks for one does not pay for it. Tests must treat these
folders as read-only (copy them to ``tmp_path`` before changing anything).

Every test runs with Matplotlib's Agg backend (no display) and has its figures
closed afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from filelock import FileLock  # noqa: E402

from craving_circuits.cocaine import (  # noqa: E402
    chapters,
    denoise,
    firstlevel,
    layout,
    mrs,
    secondlevel,
)
from craving_circuits.io import atlas  # noqa: E402
from craving_circuits.simulate import roi_level, simulate_cocaine_study  # noqa: E402
from craving_circuits.stats import voxelwise  # noqa: E402
from craving_circuits.verdict import calibration, claims, planted  # noqa: E402

RECOVERY_ALPHA = 0.05

#: Power below which one simulated study is not required to detect a claim's planted effect.
MIN_POWER = 0.95


def underpowered_estimands(study: str, condition: str = "paper", n_sims: int = 1000) -> dict[str, float]:
    """The registry estimands of ``study``'s ROI-level claims whose own test detects the condition's planted
    effect with power below :data:`MIN_POWER`, and that power.

    The power is the calibration's (the claims' own tests on ``n_sims`` ROI-level studies of the condition).
    One simulated study misses such an effect too often for a test to require it: a recovery test asks of
    these only the planted sign, and the power is what the calibration chapter reports.
    """
    results = calibration.monte_carlo(n_sims, conditions=[condition], studies=(study,), progress=False)
    summary = calibration.calibration_summary(results, alpha=RECOVERY_ALPHA)
    low = summary[(summary["measure"] == "power") & (summary["rate"] < MIN_POWER)]
    return {claims.claim(c).estimand.id: float(rate) for c, rate in zip(low["claim_id"], low["rate"])}


#: A hand-made ROI model of the baclofen study, for tests of the ROI-level tests that need no maps.
BACLOFEN_ROI_MODEL = roi_level.BaclofenRoiModel(
    dlpfc_base=40.0,
    dlpfc_weight=0.5,
    gm_base=50.0,
    regional_sd=1.0,
    thermal_sd=1.0,
    cue_weights={"insula_anterior_ventral": 0.6, "vmpfc": 0.4},
)


#: The longest test files, longest first (seconds on two workers): pytest-xdist's ``loadfile``
#: distribution hands out files in collection order, so these start first, side by side, and the
#: short files fill the gaps instead of leaving one worker idle at the end.
LONGEST_FIRST = (
    "test_recovery_paper.py",  # 250: the paper study, its positive control
    "test_book.py",  # 190: the whole book on the tiny presets
    "test_recovery_baclofen.py",  # 180
    "test_recovery_baclofen_null.py",  # 160
    "test_reliability.py",  # 80
    "test_own_data_book.py",  # 85: the book's chapters on a plain BIDS copy of the tiny study
    "test_recovery_null.py",  # 70: links the paper study's runs
    "test_compute.py",  # 30
)


def pytest_collection_modifyitems(config, items):
    """Collect the longest files first (a stable sort: each file keeps its own order)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(autouse=True)
def _close_figures():
    """Close every figure a test opened."""
    yield
    plt.close("all")


@pytest.fixture(scope="session")
def tiny_study_dir(tmp_path_factory):
    """Root of a simulated study written with the ``tiny`` preset."""

    return simulate_cocaine_study(tmp_path_factory.mktemp("tiny") / "study", "tiny", n_jobs=1)


@pytest.fixture(scope="session")
def tiny_null_study_dir(tmp_path_factory):
    """Root of a simulated study written with the ``tiny_null`` preset (no planted effects)."""

    return simulate_cocaine_study(tmp_path_factory.mktemp("tiny_null") / "study", "tiny_null", n_jobs=1)


def _shared_data_dir(tmp_path_factory) -> Path:
    """One folder for the paper-sized cocaine studies of every test worker (pytest-xdist's share a parent)."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "cocaine-data"


def _paper_sized_study(tmp_path_factory, preset: str, **overrides):
    """A paper-sized cocaine study in the shared folder, simulated by whichever worker asks first.

    The ``paper`` study is simulated first (under a lock that the other workers
    wait on): the ``null`` study and the NAC positive control then link every
    run they share with it instead of simulating it again.
    """
    data = _shared_data_dir(tmp_path_factory)
    data.mkdir(parents=True, exist_ok=True)
    with FileLock(str(data) + ".lock"):
        study = layout.simulated_study("paper", data, n_jobs=2)
        if preset != "paper" or overrides:
            study = layout.simulated_study(preset, data, n_jobs=2, **overrides)
    return study


def _analyse(preset, tmp_path_factory, n_perm=1000):
    """The seed and glutamate chapters' analyses of a paper-sized simulated study, through the package.

    Returns a namespace with ``contrasts`` (ROI contrasts indexed by target and
    term), ``clusters`` (voxelwise cluster tables), ``changes`` (per-session ROI
    state changes, default and ``none`` strategies), ``couplings``,
    ``comparison``, ``betas``, ``fits`` and ``voxel_clusters`` (glutamate
    coupling), the NAC chapter's results (see :func:`_analyse_drug`) and
    ``data_dir``, the folder of the simulated study.
    """

    from craving_circuits.stats import voxelwise

    root = tmp_path_factory.mktemp(preset)
    study = _paper_sized_study(tmp_path_factory, preset)
    runs, exclusions = layout.collect_runs(study)
    assert exclusions.empty
    analysis, mask_img, _ = firstlevel.seed_analysis(
        runs, denoise.parse_strategy("conn"), comparison_strategies=[denoise.parse_strategy("none")]
    )
    first = firstlevel.first_level(runs, analysis, mask_img, root / "firstlevel", n_jobs=2)
    diff, table, _ = secondlevel.state_difference_maps(first.runs, first.maps)
    smoothed = voxelwise.smooth_maps(diff, mask_img, 6.0)
    tests = secondlevel.group_tests(smoothed, table, mask_img, n_perm=n_perm, rng=0)
    targets = ["dlpfc", "thalamus_midline"]
    rois = atlas.roi_masks(targets, mask_img)
    clusters = voxelwise.cluster_tables(tests, mask_img, rois, alpha=RECOVERY_ALPHA)

    fc_changes = secondlevel.roi_state_differences(first.roi, analysis.strategy.name)
    drugs = runs[["participant_id", "session_id", "drug"]].drop_duplicates()
    glu = chapters.glutamate_tests(
        fc_changes,
        mrs.read_mrs(study.mrs_file),
        layout.read_participants(study),
        drugs,
        n_bootstrap=500,
        alpha=RECOVERY_ALPHA,
        rng=0,
    )
    changes_table = glu["changes"]
    voxel, _, _ = voxelwise.covariate_test(
        smoothed, table, changes_table.set_index("participant_id")["dglu"], mask_img, n_perm=n_perm, rng=0
    )
    return SimpleNamespace(
        data_dir=study.bids_dir.parent,
        drug=_analyse_drug(study, first, mask_img, n_perm),
        contrasts=secondlevel.roi_state_tests(fc_changes, alpha=RECOVERY_ALPHA).set_index(["target", "term"]),
        participant_changes=secondlevel.participant_state_changes(fc_changes),
        clusters=clusters,
        changes=secondlevel.roi_state_differences(first.roi),
        couplings=glu["couplings"].set_index(["target", "sample", "method"]),
        comparison=glu["coupling_difference"].iloc[0],
        betas=glu["predictor_betas"].set_index(["target", "term"]),
        fits=glu["predictor_fits"].set_index("target"),
        voxel_clusters=voxelwise.cluster_table(voxel, mask_img, rois, alpha=RECOVERY_ALPHA),
    )


def _analyse_drug(study, first, mask_img, n_perm=1000):
    """The NAC chapter's analyses, through the package.

    Returns a namespace with ``evidence`` (connectivity and rating evidence
    tables, indexed by term), ``periods`` (the period effects, indexed by
    outcome and term), ``truth`` (the planted effects by name) and
    ``clusters`` (the voxelwise drug tests).
    """

    from craving_circuits.io import atlas

    strategy = first.analysis.strategy.name
    nac = chapters.nac_tests(
        secondlevel.roi_state_differences(first.roi, strategy),
        layout.read_craving_ratings(study),
        sesoi_dz=0.8,
        alpha=RECOVERY_ALPHA,
    )
    maps, table, _ = secondlevel.drug_difference_maps(first.runs, first.maps)
    smoothed = voxelwise.smooth_maps(maps, mask_img, 6.0)
    tests = secondlevel.group_tests(
        smoothed, table, mask_img, tests=tuple(secondlevel.DRUG_TESTS), n_perm=n_perm, rng=0
    )
    rois = atlas.roi_masks(["dlpfc", "thalamus_midline"], mask_img)
    truth = planted.load_ground_truth(study)
    return SimpleNamespace(
        evidence=nac["evidence"].set_index("term"),
        periods=nac["periods"].set_index(["outcome", "term"]),
        truth={e["effect"]: e["planted"] for e in truth["effects"]},
        clusters=voxelwise.cluster_tables(tests, mask_img, rois, alpha=RECOVERY_ALPHA),
    )


@pytest.fixture(scope="session")
def paper_analysis(tmp_path_factory):
    """The analyses of the ``paper`` preset (about four minutes on two cores)."""
    return _analyse("paper", tmp_path_factory)


@pytest.fixture(scope="session")
def null_analysis(tmp_path_factory):
    """The analyses of the ``null`` preset (about four minutes on two cores)."""
    return _analyse("null", tmp_path_factory)


#: The positive control of the NAC chapter (as in book/runs.yml).
NAC_CONTROL = {"nac_effect": -0.5, "nac_rating_effect": -10}


@pytest.fixture(scope="session")
def nac_control_analysis(paper_analysis, tmp_path_factory):
    """The NAC chapter on the ``paper`` study with a planted NAC effect (shares the unchanged runs)."""

    study = _paper_sized_study(tmp_path_factory, "paper", **NAC_CONTROL)
    runs, _ = layout.collect_runs(study)
    analysis, mask_img, _ = firstlevel.seed_analysis(runs, denoise.parse_strategy("conn"))
    first = firstlevel.first_level(runs, analysis, mask_img, tmp_path_factory.mktemp("firstlevel_nac"), n_jobs=2)
    return _analyse_drug(study, first, mask_img)
