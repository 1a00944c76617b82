"""The baclofen study at the published group sizes, run through both chapters as the notebooks run
it: the group x time rise of right-dlPFC CBF is found from the data, and the cue-response association,
the craving group x time effect and the mediation are recovered."""

import pytest

from baclofen_recovery import CUE_ROIS, _analyse
from conftest import RECOVERY_ALPHA as ALPHA

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """Both chapters on the ``paper`` study, once for the module."""
    return _analyse("paper", tmp_path_factory.mktemp("baclofen_paper"))


def test_group_by_time_cluster_in_right_dlpfc(out):
    significant = out["clusters"][out["clusters"]["significant"]]
    assert len(significant) >= 1
    best = significant.iloc[0]
    assert best["sign"] > 0 and best["overlap_dlpfc_right"] > 0 and best["peak_x"] > 0, significant
    assert (significant["overlap_dlpfc_right"] > 0).all(), significant  # nothing elsewhere
    table = out["contrasts"].set_index(["region", "term"]).loc["dlpfc_right"]
    assert table.loc["group x time", "estimate"] > 0 and table.loc["group x time", "p"] < ALPHA
    assert table.loc["T2 - T1 | baclofen", "estimate"] > table.loc["T2 - T1 | placebo", "estimate"]


def test_cue_association_craving_and_mediation_recovered(out):
    associations = out["associations"].set_index("term")
    for roi in CUE_ROIS:  # a larger CBF rise goes with a smaller cue response
        row = associations.loc[f"cue change ~ dlPFC CBF change ({roi})"]
        assert row["estimate"] < 0 and row["ci_high"] < 0 and row["p"] < ALPHA, associations
    hit = out["voxel_clusters"][out["voxel_clusters"]["significant"]]
    assert (hit["sign"] < 0).any() and (hit[[f"overlap_{roi}" for roi in CUE_ROIS]] > 0).any(axis=None), hit
    craving = out["craving"].set_index("term").loc["group x time"]
    assert craving["estimate"] < 0 and craving["ci_high"] < 0, craving  # baclofen lowers cue-induced craving
    indirect = out["mediation"].set_index("term").loc["indirect effect (a b)"]
    assert indirect["ci_high"] < 0 and indirect["ci_high_bc"] < 0, indirect


def test_every_planted_effect_agrees_at_the_paper_preset(out):
    recovery = out["recovery"]
    # The voxelwise clusters of the cue coupling are the least sensitive tests of the book (the chapter says
    # so): on paper studies with seeds 2020-2024, when the simulator still made its data with the analysis's
    # own models, the insula cluster was found in 2 of 5 and the vmPFC cluster in 4 of 5; since it uses
    # Buxton's kinetic model (the dlPFC CBF change is measured at 80 % of its size, with the same noise),
    # participants' own HRFs and task-correlated motion, on seeds 2020-2026, in 0 of 7 and 5 of 7. So neither
    # is required row by row: a cluster on one of the two ROIs is (test above), and the ROI tests of the
    # same effect, significant in every one of those studies, are required here.
    voxelwise_coupling = recovery["estimand"].str.startswith("cue/voxel/") & (
        recovery["effect"] == "dlpfc_rise_cue_change"
    )
    required = recovery[~voxelwise_coupling]
    assert required["agree"].all(), required[~required["agree"].astype(bool)][["effect", "test", "estimate", "p"]]
