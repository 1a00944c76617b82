"""The baclofen study without planted effects (`null` preset), run through both chapters: no voxelwise
cluster, and no ROI-level test of an absent effect fires at the family's level."""

import numpy as np
import pytest

from baclofen_recovery import _analyse
from conftest import RECOVERY_ALPHA as ALPHA

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """Both chapters on the ``null`` study, once for the module."""
    return _analyse("null", tmp_path_factory.mktemp("baclofen_null"))


def test_null_preset_finds_none_of_the_effects(out):
    # voxelwise tests are FWE-controlled: no cluster at all, at the usual level
    assert not out["clusters"]["significant"].any(), out["clusters"].head()
    assert not out["voxel_clusters"]["significant"].any(), out["voxel_clusters"].head()
    assert np.isfinite(out["clusters"]["peak_t"]).all()
    recovery = out["recovery"]
    # everything but the T1 cue response itself (smokers react to cues in both presets) is absent
    assert set(recovery.loc[recovery["planted_present"] == True, "effect"]) == {"cue_response_t1"}  # noqa: E712
    absent = recovery[recovery["planted_present"] == False]  # noqa: E712 (None for unplanted rows)
    # Each ROI-level row is a test at ALPHA, so one of this family fires in about 1 - 0.95^k of
    # simulated studies; the family is asserted at ALPHA (Bonferroni). The false-positive rate of each
    # test on its own is measured by the calibration chapter over many simulated studies.
    level = ALPHA / len(absent)
    fired = absent[absent["p"] < level]
    assert fired.empty, fired[["effect", "test", "estimate", "p"]]
