"""CBF quantification: the white paper's unit check, exact inversions, and sidecar errors naming the file."""

import json

import numpy as np
import pytest

from craving_circuits.baclofen import asl
from craving_circuits.io import bids


def test_unit_check_of_the_white_paper_equation():
    # dM/M0 = 0.006 with tau = PLD = 1.8 s, lambda 0.9, T1 blood 1.65 s, alpha 0.85: 51.78 ml/100 g/min
    constants = bids.AslConstants(post_labeling_delay=1.8, labeling_duration=1.8)
    cbf = asl.quantify_cbf(np.array([0.006]), np.array([1.0]), constants)
    assert cbf[0] == pytest.approx(51.78, abs=0.005)
    # the equation is linear in dM / M0
    assert asl.quantify_cbf(np.array([6.0]), np.array([1000.0]), constants)[0] == pytest.approx(cbf[0])


def test_background_suppression_lowers_the_efficiency_per_pulse():
    plain = bids.AslConstants(1.8, 1.8)
    suppressed = bids.AslConstants(1.8, 1.8, n_background_pulses=4, background_pulse_efficiency=0.95)
    assert suppressed.effective_efficiency == pytest.approx(0.85 * 0.95**4)
    ratio = (
        asl.quantify_cbf(np.array([0.006]), np.array([1.0]), suppressed)[0]
        / asl.quantify_cbf(np.array([0.006]), np.array([1.0]), plain)[0]
    )
    assert ratio == pytest.approx(1 / 0.95**4)


def test_cbf_is_recovered_from_signals_generated_by_the_model():
    rng = np.random.default_rng(0)
    c = bids.AslConstants(post_labeling_delay=1.5, labeling_duration=1.65, t1_blood=1.65)
    cbf = rng.uniform(10, 90, 50)
    m0 = rng.uniform(500, 1500, 50)
    # forward model (white paper eq. 1 solved for dM)
    dm = (
        cbf
        * m0
        * 2
        * c.effective_efficiency
        * c.t1_blood
        * (1 - np.exp(-c.labeling_duration / c.t1_blood))
        / (6000 * c.blood_brain_partition * np.exp(c.post_labeling_delay / c.t1_blood))
    )
    control = m0 * 0.8 + rng.normal(0, 1, 50)
    series = np.vstack([control - dm, control, control - dm, control])  # label, control pairs
    types = np.array(["label", "control", "label", "control"])
    np.testing.assert_allclose(asl.mean_difference(series, types), dm, rtol=1e-10)
    np.testing.assert_allclose(asl.quantify_cbf(asl.mean_difference(series, types), m0, c), cbf, rtol=1e-10)


def test_mean_difference_and_m0_errors():
    series = np.ones((3, 4))
    with pytest.raises(ValueError, match="as many label as control"):
        asl.mean_difference(series, np.array(["label", "control", "control"]))
    with pytest.raises(ValueError, match="volume types"):
        asl.mean_difference(series, np.array(["label", "control"]))
    deltam = asl.mean_difference(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array(["deltam", "deltam"]))
    np.testing.assert_allclose(deltam, [2.0, 3.0])
    c = bids.AslConstants(1.8, 1.8)
    with pytest.raises(ValueError, match="M0 is zero"):
        asl.quantify_cbf(np.ones(3), np.array([1.0, 0.0, 2.0]), c)
    with pytest.raises(ValueError, match="same voxels"):
        asl.quantify_cbf(np.ones(3), np.ones(4), c)
    with pytest.raises(ValueError, match="labeling_efficiency"):
        bids.AslConstants(1.8, 1.8, labeling_efficiency=1.5)


def _sidecar(path, **fields):
    meta = {
        "ArterialSpinLabelingType": "PCASL",
        "PostLabelingDelay": 1.8,
        "LabelingDuration": 1.8,
        "M0Type": "Separate",
        "BackgroundSuppression": False,
    }
    meta.update(fields)
    meta = {k: v for k, v in meta.items() if v is not None}
    path.write_text(json.dumps(meta))
    return path


def test_read_constants_from_the_sidecar(tmp_path):
    c = asl.read_asl_constants(
        _sidecar(
            tmp_path / "a_asl.json",
            PostLabelingDelay=[1.5, 1.5],
            BackgroundSuppression=True,
            BackgroundSuppressionNumberPulses=2,
            LabelingEfficiency=0.8,
        )
    )
    assert (c.post_labeling_delay, c.n_background_pulses, c.labeling_efficiency) == (1.5, 2, 0.8)
    record = asl.quantification_record(c)
    assert record["constants"]["t1_blood"] == 1.65 and record["constants"]["effective_efficiency"] == pytest.approx(
        0.8 * 0.95**2
    )
    json.dumps(record)  # serialisable next to the map


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"LabelingDuration": None}, "lacks \\['LabelingDuration'\\]"),
        ({"ArterialSpinLabelingType": "PASL"}, "only single-delay PCASL"),
        ({"PostLabelingDelay": [1.5, 2.0]}, "several values"),
        ({"BackgroundSuppression": True}, "BackgroundSuppressionNumberPulses is missing"),
    ],
)
def test_sidecar_errors_name_the_file(tmp_path, fields, message):
    path = _sidecar(tmp_path / "sub-01_asl.json", **fields)
    with pytest.raises(ValueError, match=message) as err:
        asl.read_asl_constants(path)
    assert str(path) in str(err.value)


def test_aslcontext_checks(tmp_path):
    path = tmp_path / "sub-01_aslcontext.tsv"
    path.write_text("volume_type\nlabel\ncontrol\nm0scan\n")
    assert asl.read_aslcontext(path, 3).tolist() == ["label", "control", "m0scan"]
    with pytest.raises(ValueError, match="lists 3 volumes but the ASL run has 4") as err:
        asl.read_aslcontext(path, 4)
    assert str(path) in str(err.value)
    path.write_text("volume_type\nlabel\nctrl\n")
    with pytest.raises(ValueError, match="unknown volume types \\['ctrl'\\]"):
        asl.read_aslcontext(path, 2)
    with pytest.raises(FileNotFoundError, match="other_aslcontext.tsv"):
        asl.read_aslcontext(tmp_path / "other_aslcontext.tsv", 2)


def test_cbf_qc_exact():
    cbf = np.array([60.0, -5.0, 55.0, 20.0, 22.0, 40.0])
    gm = np.array([0.9, 0.8, 0.95, 0.1, 0.0, 0.5])
    wm = np.array([0.05, 0.1, 0.0, 0.9, 0.95, 0.4])
    qc = asl.cbf_qc(cbf, gm, wm)
    assert qc["mean_gm_cbf"] == pytest.approx((60 - 5 + 55) / 3)
    assert qc["mean_wm_cbf"] == pytest.approx(21.0)
    assert qc["gm_wm_ratio"] == pytest.approx((110 / 3) / 21)
    assert qc["pct_negative_gm"] == pytest.approx(100 / 3)
    assert (qc["n_gm"], qc["n_wm"]) == (3, 2)
    with pytest.raises(ValueError, match="grid"):
        asl.cbf_qc(cbf, gm * 0, wm)


def test_m0_must_be_on_the_asl_grid(tmp_path):
    import nibabel as nib

    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    asl_img = nib.Nifti1Image(np.ones((4, 4, 3, 6), np.float32), affine)
    good = tmp_path / "sub-01_m0scan.nii.gz"
    nib.save(nib.Nifti1Image(np.full((4, 4, 3, 2), 7.0, np.float32), affine), good)
    assert asl.load_m0(good, asl_img).shape == (4, 4, 3) and asl.load_m0(good, asl_img).mean() == 7.0
    other = tmp_path / "sub-02_m0scan.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), affine), other)
    with pytest.raises(ValueError, match="sub-02_m0scan.nii.gz has shape"):
        asl.load_m0(other, asl_img)
    with pytest.raises(FileNotFoundError, match="sub-03_m0scan"):
        asl.load_m0(tmp_path / "sub-03_m0scan.nii.gz", asl_img)
    with pytest.raises(FileNotFoundError, match="ASL sidecar not found"):
        asl.read_asl_constants(tmp_path / "sub-01_asl.json")
