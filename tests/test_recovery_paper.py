"""The default scenario (`paper` preset) recovers the planted effects.

The study (164 runs) is simulated and analysed once per test session by the
``paper_analysis`` fixture, through the functions the notebook calls, with 1000
permutations. ``make test`` distributes test files over workers
(``--dist loadfile``), so this file and ``test_recovery_null.py`` run side by side.
"""

import pytest

from conftest import RECOVERY_ALPHA as ALPHA

pytestmark = pytest.mark.slow

PLANTED = 0.45  # craving_nacc_dlpfc and craving_nacc_thalamus of the paper preset
TARGETS = ("dlpfc", "thalamus_midline")


def test_roi_craving_rise_in_cud_only(paper_analysis):
    contrasts, _, _ = paper_analysis
    for target in TARGETS:
        cud = contrasts.loc[(target, "craving - neutral | CUD")]
        assert cud["p"] < ALPHA and cud["estimate"] > 0, target
        # ROI-level Fisher z of mean time series land near the source-level planted value
        assert 0.4 * PLANTED < cud["estimate"] < 1.6 * PLANTED, target
        assert contrasts.loc[(target, "craving - neutral | control"), "p"] > ALPHA, target


def test_roi_group_by_state_interaction(paper_analysis):
    contrasts, _, _ = paper_analysis
    for target in TARGETS:
        row = contrasts.loc[(target, "group x state")]
        assert row["p"] < ALPHA and row["estimate"] > 0, target


def test_roi_no_nac_effect(paper_analysis):
    contrasts, _, _ = paper_analysis
    for target in TARGETS:
        assert contrasts.loc[(target, "drug x state | CUD"), "p"] > ALPHA, target


def test_voxelwise_clusters_on_both_targets_in_cud(paper_analysis):
    _, clusters, _ = paper_analysis
    table = clusters["craving_cud"]
    for target in TARGETS:
        hits = table[table["significant"] & (table["sign"] > 0) & (table[f"overlap_{target}"] > 0)]
        assert len(hits) >= 1, (target, table.head())


def test_voxelwise_nothing_in_controls_or_off_target(paper_analysis):
    _, clusters, _ = paper_analysis
    assert not clusters["craving_control"]["significant"].any()
    for test in ("craving_cud", "group_x_state"):
        table = clusters[test]
        off = table[table["significant"] & (table[[f"overlap_{t}" for t in TARGETS]].sum(axis=1) == 0)]
        assert off.empty, (test, off)
