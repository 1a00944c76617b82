"""The baclofen study at the published group sizes, run through both chapters as the notebooks run
it: the group x time rise of right-dlPFC CBF is found from the data, and the cue-response association,
the craving group x time effect and the mediation are recovered."""

import numpy as np
import pytest

from baclofen_recovery import CUE_ROIS, _analyse
from conftest import RECOVERY_ALPHA as ALPHA
from conftest import underpowered_estimands
from craving_circuits.verdict import claims

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """Both chapters on the ``paper`` study, once for the module."""
    return _analyse("paper", tmp_path_factory.mktemp("baclofen_paper"))


@pytest.fixture(scope="module")
def underpowered():
    """The ROI-level claims whose test has power below MIN_POWER at the paper preset (the calibration's)."""
    return underpowered_estimands("baclofen")


def test_group_by_time_cluster_in_right_dlpfc(out):
    significant = out["clusters"][out["clusters"]["significant"]]
    assert len(significant) >= 1
    best = significant.iloc[0]
    assert best["sign"] > 0 and best["overlap_dlpfc_right"] > 0 and best["peak_x"] > 0, significant
    assert (significant["overlap_dlpfc_right"] > 0).all(), significant  # nothing elsewhere
    table = out["contrasts"].set_index(["region", "term"]).loc["dlpfc_right"]
    assert table.loc["group x time", "estimate"] > 0 and table.loc["group x time", "p"] < ALPHA
    assert table.loc["T2 - T1 | baclofen", "estimate"] > table.loc["T2 - T1 | placebo", "estimate"]


def test_cue_association_craving_and_mediation_recovered(out, underpowered):
    """Each effect on its planted side; significant where its test's power at the paper preset is at least
    MIN_POWER (the cue associations and the craving effect have about 0.85-0.97: one study may miss them)."""
    associations = out["associations"].set_index("term")
    for roi in CUE_ROIS:  # a larger CBF rise goes with a smaller cue response
        row = associations.loc[f"cue change ~ dlPFC CBF change ({roi})"]
        assert row["estimate"] < 0, associations
        if claims.claim(f"cbf_rise_{roi.split('_')[0]}").estimand.id not in underpowered:
            assert row["ci_high"] < 0 and row["p"] < ALPHA, associations
    hit = out["voxel_clusters"][out["voxel_clusters"]["significant"]]
    assert (hit["sign"] < 0).any() and (hit[[f"overlap_{roi}" for roi in CUE_ROIS]] > 0).any(axis=None), hit
    craving = out["craving"].set_index("term").loc["group x time"]
    assert craving["estimate"] < 0, craving  # baclofen lowers cue-induced craving
    if claims.claim("baclofen_craving").estimand.id not in underpowered:
        assert craving["ci_high"] < 0, craving
    indirect = out["mediation"].set_index("term").loc["indirect effect (a b)"]
    assert indirect["ci_high"] < 0 and indirect["ci_high_bc"] < 0, indirect


def test_every_planted_effect_agrees_at_the_paper_preset(out, underpowered):
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
    # An ROI-level test whose power at this preset is below MIN_POWER (the calibration's) misses its effect in
    # one study of several; of those only the planted side is required.
    weak = recovery["estimand"].isin(list(underpowered))
    required = recovery[~voxelwise_coupling & ~weak]
    assert required["agree"].all(), required[~required["agree"].astype(bool)][["effect", "test", "estimate", "p"]]
    sides = recovery[weak]
    assert (np.sign(sides["estimate"]) == np.sign(sides["planted"])).all(), sides
