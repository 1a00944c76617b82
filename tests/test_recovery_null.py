"""The `null` preset (same study, every planted effect zero) finds nothing, and denoising matters.

The study is simulated and analysed once per test session by the
``null_analysis`` fixture (see ``test_recovery_paper.py``).
"""

import numpy as np
import pytest

from conftest import RECOVERY_ALPHA as ALPHA
from craving_circuits.cocaine import denoise

pytestmark = pytest.mark.slow


def test_no_roi_effect(null_analysis):
    contrasts = null_analysis.contrasts
    for target in ("dlpfc", "thalamus_midline"):
        for term in ("craving - neutral | CUD", "craving - neutral | control", "group x state"):
            assert contrasts.loc[(target, term), "p"] > ALPHA, (target, term)
        assert null_analysis.drug.evidence.loc[f"drug x state | CUD ({target})", "p"] > ALPHA, target


def test_no_voxelwise_cluster(null_analysis):
    clusters = null_analysis.clusters
    for test, table in clusters.items():
        assert not table["significant"].any(), (test, table.head())


def test_motion_would_fake_effects_without_denoising(null_analysis):
    """Motion rises in the craving state: with no confound regression, controls show a 'rise' that denoising removes."""
    changes = null_analysis.changes
    controls = changes[changes["group"] == "control"]
    per_person = controls.groupby(["strategy", "participant_id"])["delta"].mean()
    raw = per_person.loc[denoise.parse_strategy("none").name].to_numpy()
    cleaned = per_person.loc[denoise.parse_strategy("conn").name].to_numpy()
    t_raw = raw.mean() / (raw.std(ddof=1) / np.sqrt(len(raw)))
    assert t_raw > 3  # a spurious craving effect from motion alone
    assert abs(cleaned.mean()) < raw.mean() / 2


def test_no_glutamate_coupling(null_analysis):
    for target in ("thalamus_midline", "dlpfc"):
        assert null_analysis.couplings.loc[(target, "CUD", "pearson"), "p"] > ALPHA, target
    assert not null_analysis.voxel_clusters["significant"].any()


def test_no_clinical_prediction(null_analysis):
    assert (null_analysis.fits["p_f"] > ALPHA).all()


def test_nac_equivalence_in_cud_and_no_drug_cluster(null_analysis):
    evidence = null_analysis.drug.evidence
    for term in ("drug x state | CUD (dlpfc)", "drug x state | CUD (thalamus_midline)", "drug x state | CUD (rating)"):
        assert evidence.loc[term, "verdict"] == "equivalent", (term, evidence.loc[term])
    for test, table in null_analysis.drug.clusters.items():
        assert not table["significant"].any(), test
