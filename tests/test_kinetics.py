"""Buxton's kinetic model of pCASL (craving_circuits.simulate.kinetics): exact values by hand, the white
paper's equation as its limit, no signal before the bolus arrives, and the fall once it arrives after the
post-labelling delay."""

from __future__ import annotations

import numpy as np
import pytest

from craving_circuits.baclofen.asl import quantify_cbf
from craving_circuits.io.bids import AslConstants
from craving_circuits.simulate.kinetics import apparent_t1, buxton_pcasl_difference

PLD, TAU, T1B, LAMBDA = 1.8, 1.8, 1.65, 0.9


def _model(cbf, att, **kw):
    kw = {"t1_tissue": 1.33, "t1_blood": T1B, "efficiency": 0.85, "m0_blood": 1.0, "partition": LAMBDA, **kw}
    return buxton_pcasl_difference(cbf, att, PLD, TAU, **kw)


def test_apparent_t1_by_hand():
    # 60 ml/100 g/min = 0.01 ml/g/s; 1 / (1 / 1.33 + 0.01 / 0.9)
    assert apparent_t1(1.33, 60.0, 0.9) == pytest.approx(1 / (1 / 1.33 + 0.01 / 0.9), rel=1e-14)
    assert apparent_t1(1.33, 0.0) == 1.33
    with pytest.raises(ValueError, match="t1_tissue"):
        apparent_t1(0.0, 60.0)


def test_value_by_hand_in_each_regime():
    t1p = 1 / (1 / 1.33 + 0.01 / LAMBDA)
    scale = 2 * 0.85 * 1.0 * 0.01 * t1p * np.exp(-1.2 / T1B)
    # arrival 1.2 s before the 1.8 s delay: the whole bolus has arrived and relaxed 0.6 s in tissue
    expected = scale * np.exp(-0.6 / t1p) * (1 - np.exp(-TAU / t1p))
    assert _model(60.0, 1.2) == pytest.approx(expected, rel=1e-13)
    # arrival 2.5 s: 1.1 s of the bolus has arrived by the readout at 3.6 s
    scale = 2 * 0.85 * 0.01 * t1p * np.exp(-2.5 / T1B)
    assert _model(60.0, 2.5) == pytest.approx(scale * (1 - np.exp(-1.1 / t1p)), rel=1e-13)


def test_white_paper_is_the_limit_of_no_transit_and_blood_t1():
    """With Δt = 0 and T1' = T1b (tissue T1 chosen so that flow brings it to the blood's), the difference is
    the white paper's, so quantifying it with M0 = λ M0b returns the CBF exactly."""
    cbf = np.array([5.0, 20.0, 60.0, 110.0])
    t1_tissue = 1 / (1 / T1B - cbf / 6000 / LAMBDA)  # so that 1/T1' = 1/T1b
    m0_blood = 1234.5
    delta_m = _model(cbf, 0.0, t1_tissue=t1_tissue, m0_blood=m0_blood, efficiency=0.85 * 0.95**2)
    constants = AslConstants(post_labeling_delay=PLD, labeling_duration=TAU, n_background_pulses=2)
    np.testing.assert_allclose(quantify_cbf(delta_m, np.full(4, LAMBDA * m0_blood), constants), cbf, rtol=1e-12)


def test_nothing_before_the_bolus_arrives():
    # the readout is at τ + PLD = 3.6 s: a bolus arriving then or later has left no label yet
    assert np.all(_model(60.0, np.array([3.6, 3.7, 5.0])) == 0.0)
    assert _model(60.0, 3.5) > 0


def test_arrival_after_the_delay_loses_label_and_before_it_gains_with_faster_tissue_relaxation():
    att = np.linspace(PLD, PLD + TAU, 50)
    beyond = _model(60.0, att)
    assert np.all(np.diff(beyond) < 0) and beyond[-1] == 0.0
    # continuous where the two regimes meet (Δt = PLD)
    assert _model(60.0, PLD - 1e-9) == pytest.approx(_model(60.0, PLD + 1e-9), rel=1e-7)
    # before the delay, the label waits in blood (T1b) rather than tissue (T1' < T1b): exp(Δt (1/T1' - 1/T1b))
    t1p = apparent_t1(1.33, 60.0, LAMBDA)
    early = np.array([0.0, 0.5, 1.0, 1.5])
    ratio = _model(60.0, early) / _model(60.0, 0.0)
    np.testing.assert_allclose(ratio, np.exp(early * (1 / t1p - 1 / T1B)), rtol=1e-12)


def test_linear_in_efficiency_and_m0_and_broadcasts_over_voxels():
    cbf = np.array([[20.0], [60.0]])
    att = np.array([0.8, 1.4, 2.0])
    out = _model(cbf, att, efficiency=0.5, m0_blood=3.0)
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out, _model(cbf, att) * 0.5 / 0.85 * 3.0, rtol=1e-13)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(arrival_time=-0.1), "arrival_time"),
        (dict(post_labeling_delay=-1.0), "post_labeling_delay"),
        (dict(labeling_duration=0.0), "labeling_duration"),
        (dict(efficiency=1.2), "efficiency"),
        (dict(t1_blood=0.0), "t1_blood"),
        (dict(t1_tissue=-1.0), "t1_tissue"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    args = dict(cbf=60.0, arrival_time=1.0, post_labeling_delay=PLD, labeling_duration=TAU, t1_tissue=1.33)
    with pytest.raises(ValueError, match=message):
        buxton_pcasl_difference(**{**args, **kwargs})
