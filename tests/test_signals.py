"""Building blocks of the simulated BOLD data (craving_circuits.simulate.signals).

Exact answers come from hand-made inputs (motion traces, linear images) or
from a direct Python loop; the statistical properties (correlations, spectra,
smoothness) are checked on long fixed-seed draws with tolerances of several
standard errors, stated next to each assertion.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal as sp_signal

from craving_circuits.simulate.signals import (
    SmoothNoiseField,
    ar1_filter,
    band_limited_noise,
    correlated_sources,
    framewise_displacement,
    motion_loadings,
    random_motion,
)

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))  # 1 / 2.3548

# --------------------------------------------------------------------------- framewise displacement


def test_framewise_displacement_by_hand():
    motion = np.zeros((4, 6))
    motion[1, 0] = 1.0  # trans_x +1 mm
    motion[1, 5] = 0.01  # rot_z +0.01 rad
    motion[2] = motion[1]
    motion[2, 1] = -0.5  # trans_y -0.5 mm
    motion[3] = motion[2]
    motion[3, 3] = -0.002  # rot_x
    motion[3, 2] = 0.25  # trans_z
    fd = framewise_displacement(motion)
    assert fd.shape == (4,)
    assert np.isnan(fd[0])
    # Power 2012: sum of |translation steps| + 50 mm * sum of |rotation steps|
    np.testing.assert_allclose(fd[1:], [1.0 + 50 * 0.01, 0.5, 0.25 + 50 * 0.002], rtol=0, atol=1e-12)


def test_framewise_displacement_radius_and_sign():
    motion = np.zeros((3, 6))
    motion[1, 3:] = [0.01, -0.02, 0.0]
    motion[2, :3] = [-1.0, 2.0, -3.0]  # rotations back to 0 as well
    fd = framewise_displacement(motion, radius_mm=80.0)
    np.testing.assert_allclose(fd[1:], [80 * 0.03, 6.0 + 80 * 0.03], atol=1e-12)


@pytest.mark.parametrize("shape", [(10, 5), (10,), (2, 10, 6), (10, 7)])
def test_framewise_displacement_rejects_wrong_shape(shape):
    with pytest.raises(ValueError, match="n_volumes, 6"):
        framewise_displacement(np.zeros(shape))


# --------------------------------------------------------------------------- AR(1)


def test_ar1_filter_follows_the_recursion_exactly():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 3))
    phi = 0.7
    y = ar1_filter(x, phi)
    expected = np.empty_like(x)
    expected[0] = x[0]
    for t in range(1, len(x)):
        expected[t] = phi * expected[t - 1] + np.sqrt(1 - phi**2) * x[t]
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    assert np.array_equal(y[0], x[0])


@pytest.mark.parametrize("phi", [0.6, -0.3])
def test_ar1_filter_is_stationary_unit_variance(phi):
    # 100 series of 2,000 samples: SE of the pooled lag-1 estimate ~ sqrt((1-phi^2)/2e5) < 0.002,
    # SE of the pooled variance ~ sqrt(2 (1+phi^2)/(1-phi^2) / 2e5) < 0.006
    x = np.random.default_rng(1).standard_normal((2000, 100))
    y = ar1_filter(x, phi)
    assert abs(y.var() - 1) < 0.03
    assert abs(np.mean(y[1:] * y[:-1]) / np.mean(y * y) - phi) < 0.01
    # stationary from the first sample: the variance across series at t=0 and t=1 is already 1
    # (100 series: SE of a variance ~ 0.14)
    assert abs(y[:2].var() - 1) < 0.45


@pytest.mark.parametrize("phi", [1.0, -1.0, 1.5, -2.0])
def test_ar1_filter_rejects_nonstationary_phi(phi):
    with pytest.raises(ValueError, match="AR"):
        ar1_filter(np.zeros((10, 1)), phi)


# --------------------------------------------------------------------------- band-limited sources


def test_band_limited_noise_unit_variance_and_spectrum():
    t_r = 2.0
    x = band_limited_noise(np.random.default_rng(2), 20000, 4, t_r)
    assert x.shape == (20000, 4)
    np.testing.assert_allclose(x.std(axis=0), 1.0, rtol=1e-12)
    freq, psd = sp_signal.welch(x, fs=1 / t_r, axis=0, nperseg=512)
    psd = psd.mean(axis=1)
    total = psd.sum()
    # A 2nd-order Butterworth band-pass keeps most power in 0.01-0.1 Hz (its noise bandwidth
    # is ~1.1x the pass band) and almost none an octave above the upper edge.
    assert 0.01 <= freq[np.argmax(psd)] <= 0.1
    assert psd[(freq >= 0.01) & (freq <= 0.1)].sum() / total > 0.75
    assert psd[freq > 0.2].sum() / total < 0.01


def test_band_limited_noise_long_tr_clips_band_below_nyquist():
    # TR 6 s: Nyquist 0.083 Hz is below the requested 0.1 Hz edge
    x = band_limited_noise(np.random.default_rng(3), 500, 2, 6.0)
    assert x.shape == (500, 2) and np.all(np.isfinite(x))


def test_correlated_sources_reproduce_requested_correlation():
    corr = np.array([[1.0, 0.6, -0.3], [0.6, 1.0, 0.2], [-0.3, 0.2, 1.0]])
    x = correlated_sources(np.random.default_rng(4), corr, 40000, 2.0)
    assert x.shape == (40000, 3)
    # band-limited series: ~0.36 * 40,000 effective samples, SE of r <= 1/sqrt(14,000) ~ 0.009
    np.testing.assert_allclose(np.corrcoef(x, rowvar=False), corr, atol=0.04)
    # each source is a unit-variance mixture in expectation
    np.testing.assert_allclose(x.var(axis=0), 1.0, atol=0.05)


def test_correlated_sources_rejects_impossible_correlations():
    corr = np.array([[1.0, 0.9, 0.9], [0.9, 1.0, -0.9], [0.9, -0.9, 1.0]])
    assert np.linalg.eigvalsh(corr).min() < 0  # independently: not a correlation matrix
    with pytest.raises(ValueError, match="positive"):
        correlated_sources(np.random.default_rng(0), corr, 100, 2.0)


# --------------------------------------------------------------------------- smooth noise


def _neighbour_correlation(noise: np.ndarray, mask: np.ndarray) -> float:
    """Mean correlation of face-adjacent voxel pairs (noise has unit variance, zero mean)."""
    index = -np.ones(mask.shape, dtype=int)
    index[mask] = np.arange(mask.sum())
    pairs = []
    for axis in range(3):
        a = np.moveaxis(index, axis, 0)[:-1].ravel()
        b = np.moveaxis(index, axis, 0)[1:].ravel()
        keep = (a >= 0) & (b >= 0)
        pairs.append((a[keep], b[keep]))
    a = np.concatenate([p[0] for p in pairs])
    b = np.concatenate([p[1] for p in pairs])
    return float(np.mean(np.mean(noise[:, a] * noise[:, b], axis=0)))


@pytest.mark.parametrize(
    "voxel_mm, fwhm_mm",
    [
        (4, 8),  # the paper preset
        (8, 12),  # the tiny preset
        (4, 12),
        (2, 8),
        (3, 8),
        (4, 10),
    ],
)
def test_smooth_noise_field_has_requested_smoothness(voxel_mm, fwhm_mm):
    """FWHM estimated from the lag-1 spatial correlation, as AFNI's classic 3dFWHMx does.

    For Gaussian-smoothed white noise with kernel sigma s, the correlation at
    distance d is exp(-d^2 / (4 s^2)), so s = d / (2 sqrt(-ln r)). The tolerance
    (12 % of the FWHM) covers two known approximations: sampling the kernel on a
    lattice coarser than it (FWHM 1.5 voxels: lag-1 correlation 0.50 instead of
    the continuous 0.54, i.e. 6 % in FWHM) and the non-stationarity of trilinear
    interpolation; the estimate's own sampling error is < 1 %.
    """
    mask = np.ones((16, 16, 16), dtype=bool)
    field = SmoothNoiseField(mask, voxel_mm, fwhm_mm)
    noise = field.sample(np.random.default_rng(5), 300)
    r = _neighbour_correlation(noise, mask)
    fwhm_est = voxel_mm / (2 * np.sqrt(-np.log(r))) / FWHM_TO_SIGMA
    assert abs(fwhm_est / fwhm_mm - 1) < 0.12, (
        f"voxel {voxel_mm} mm, requested FWHM {fwhm_mm} mm: neighbour correlation {r:.3f} "
        f"(Gaussian prediction {np.exp(-(voxel_mm**2) / (4 * (fwhm_mm * FWHM_TO_SIGMA) ** 2)):.3f}), "
        f"estimated FWHM {fwhm_est:.2f} mm"
    )


def test_smooth_noise_field_unit_variance_in_every_voxel_of_an_irregular_mask():
    grid = np.indices((11, 12, 13)) - np.array([5, 6, 6])[:, None, None, None]
    mask = (grid**2).sum(axis=0) <= 36  # a ball touching the edges of the array
    field = SmoothNoiseField(mask, 4.0, 8.0)
    noise = field.sample(np.random.default_rng(6), 40)
    assert noise.shape == (40, mask.sum()) and noise.dtype == np.float32
    np.testing.assert_allclose(noise.std(axis=0), 1.0, atol=1e-5)
    np.testing.assert_allclose(noise.mean(axis=0), 0.0, atol=1e-5)


def test_smooth_noise_field_temporal_ar1_and_reproducibility():
    mask = np.ones((6, 6, 6), dtype=bool)
    field = SmoothNoiseField(mask, 4.0, 8.0)
    a = field.sample(np.random.default_rng(7), 3000, ar1=0.4)
    b = field.sample(np.random.default_rng(7), 3000, ar1=0.4)
    np.testing.assert_array_equal(a, b)
    # SE of one voxel's lag-1 estimate from 3000 volumes: sqrt((1 - 0.4^2) / 3000) ~ 0.017;
    # pooling 216 voxels (built from several independent coarse nodes) only tightens it
    lag1 = np.mean(a[1:] * a[:-1]) / np.mean(a * a)
    assert abs(lag1 - 0.4) < 0.03
    white = field.sample(np.random.default_rng(7), 3000)
    assert abs(np.mean(white[1:] * white[:-1])) < 0.03


def test_smooth_noise_field_rejects_nonpositive_fwhm():
    with pytest.raises(ValueError, match="fwhm"):
        SmoothNoiseField(np.ones((3, 3, 3), bool), 4.0, 0.0)


# --------------------------------------------------------------------------- head motion


def test_random_motion_without_steps_or_spikes_is_still():
    motion = random_motion(np.random.default_rng(8), 30, step_mm=0.0, n_spikes=0)
    assert motion.shape == (30, 6)
    assert np.all(motion == 0)


def test_random_motion_step_sizes():
    motion = random_motion(np.random.default_rng(9), 20001, step_mm=0.05, n_spikes=0, radius_mm=40.0)
    np.testing.assert_array_equal(motion[0], 0.0)
    steps = np.diff(motion, axis=0)
    # 20,000 Gaussian steps per axis: SE of an SD ~ 0.5 %
    np.testing.assert_allclose(steps[:, :3].std(axis=0), 0.05, rtol=0.03)
    # rotations move a point at radius_mm by as much as a translation step
    np.testing.assert_allclose(steps[:, 3:].std(axis=0) * 40.0, 0.05, rtol=0.03)


def test_random_motion_spikes_are_the_only_movements_without_drift():
    rng = np.random.default_rng(10)
    motion = random_motion(rng, 200, step_mm=0.0, n_spikes=3, spike_mm=0.5)
    moved = np.flatnonzero(np.any(np.diff(motion, axis=0) != 0, axis=1)) + 1
    # three jumps, each possibly followed by a return: between 1 and 6 frames move
    # (two spikes can land on the same frame)
    assert 1 <= len(moved) <= 6
    fd = framewise_displacement(motion)
    assert np.count_nonzero(fd[1:]) == len(moved)


# --------------------------------------------------------------------------- motion loadings


def _box_ramp(affine, a=1000.0, b=5.0, axis=0):
    """Intensity a + b * (world coordinate along `axis`) in a box, zero outside."""
    shape = (9, 10, 11)
    mask = np.zeros(shape, dtype=bool)
    mask[1:-1, 1:-1, 1:-1] = True
    ijk = np.indices(shape).reshape(3, -1).T
    xyz = (ijk @ affine[:3, :3].T + affine[:3, 3]).reshape(shape + (3,))
    baseline = np.where(mask, a + b * xyz[..., axis], 0.0)
    interior = np.zeros(shape, dtype=bool)
    interior[2:-2, 2:-2, 2:-2] = True  # central differences stay inside the box
    return baseline, mask, interior, xyz


@pytest.mark.parametrize(
    "affine",
    [
        np.array([[3.0, 0, 0, -12], [0, 3.0, 0, -15], [0, 0, 3.0, -6], [0, 0, 0, 1]]),  # RAS
        np.array([[-2.0, 0, 0, 10], [0, 2.0, 0, -8], [0, 0, -4.0, 20], [0, 0, 0, 1]]),  # LAS, z flipped
    ],
    ids=["RAS", "flipped"],
)
def test_motion_loadings_of_a_linear_ramp_in_x(affine):
    """I = a + b x: a shift by t along world x changes a voxel by -b t, i.e. -b/I*100 %.

    A rotation w about z displaces r (relative to the centre) by w x r = (-w r_y, w r_x, 0),
    so the change is -grad(I).(w x r) = b w r_y: rot_z loading b r_y / I * 100; likewise
    rot_y loading -b r_z / I * 100 and rot_x loading 0. The voxel axes may point either
    way in world space; the loadings are in world (RAS) axes.
    """
    a, b = 1000.0, 5.0
    centre = np.array([1.0, -2.0, 3.0])
    baseline, mask, interior, xyz = _box_ramp(affine, a, b, axis=0)
    loadings = motion_loadings(baseline, mask, affine, centre_mm=centre)
    assert loadings.shape == (6, mask.sum()) and loadings.dtype == np.float32
    sel = interior[mask]
    intensity = baseline[mask][sel]
    r = xyz[mask][sel] - centre
    expected = np.stack(
        [
            -b / intensity * 100,
            np.zeros_like(intensity),
            np.zeros_like(intensity),
            np.zeros_like(intensity),
            -b * r[:, 2] / intensity * 100,
            b * r[:, 1] / intensity * 100,
        ]
    )
    np.testing.assert_allclose(loadings[:, sel], expected, rtol=1e-5, atol=1e-6)


def test_motion_loadings_of_a_ramp_in_z_match_a_small_shift():
    """Oracle: the image actually shifted by a small amount, compared voxel by voxel."""
    affine = np.array([[2.0, 0, 0, 0], [0, -2.0, 0, 0], [0, 0, 2.0, 0], [0, 0, 0, 1]])
    a, b = 800.0, -3.0
    baseline, mask, interior, xyz = _box_ramp(affine, a, b, axis=2)
    loadings = motion_loadings(baseline, mask, affine)
    t = 0.01  # mm along world z
    shifted = a + b * (xyz[interior][:, 2] - t)  # I(x - d) for a displacement d = (0, 0, t)
    change_pct = (shifted - baseline[interior]) / baseline[interior] * 100
    np.testing.assert_allclose(loadings[2][interior[mask]] * t, change_pct, rtol=1e-5)
    np.testing.assert_allclose(loadings[:2][:, interior[mask]], 0.0, atol=1e-6)


def test_correlated_sources_mix_given_series_like_drawn_ones():
    from craving_circuits.simulate.signals import band_limited_noise, correlated_sources

    corr = np.array([[1.0, 0.5], [0.5, 1.0]])
    drawn = correlated_sources(np.random.default_rng(3), corr, 120, 2.0)
    given = correlated_sources(
        None, corr, 120, 2.0, independent=band_limited_noise(np.random.default_rng(3), 120, 2, 2.0)
    )
    np.testing.assert_array_equal(drawn, given)
    with pytest.raises(ValueError, match="shape"):
        correlated_sources(None, corr, 120, 2.0, independent=np.zeros((100, 2)))


# --------------------------------------------------------------------------- HRFs and task-correlated motion


def test_double_gamma_hrf_is_nilearns_glover_and_spm_at_their_parameters():
    from nilearn.glm.first_level import glover_hrf, spm_hrf

    from craving_circuits.simulate.signals import double_gamma_hrf

    np.testing.assert_allclose(double_gamma_hrf(2.0), glover_hrf(2.0), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(double_gamma_hrf(0.8, 16, 24.0), glover_hrf(0.8, 16, 24.0), rtol=1e-12, atol=1e-15)
    spm = dict(delay=6.0, undershoot=16.0, dispersion=1.0, u_dispersion=1.0, ratio=0.167)
    np.testing.assert_allclose(double_gamma_hrf(2.0, **spm), spm_hrf(2.0), rtol=1e-12, atol=1e-15)


def test_double_gamma_hrf_peaks_later_with_a_longer_delay_and_keeps_unit_area():
    from craving_circuits.simulate.signals import double_gamma_hrf

    dt = 2.0 / 50
    peaks = [np.argmax(double_gamma_hrf(2.0, delay=d, undershoot=d + 6)) * dt for d in (5.0, 6.0, 7.0)]
    # the peak gamma's mode is delay - dispersion (the undershoot pulls the peak a little earlier)
    np.testing.assert_allclose(peaks, np.array([5.0, 6.0, 7.0]) - 0.9, atol=0.2)
    assert np.all(np.diff(peaks) > 0.85)
    wide = double_gamma_hrf(2.0, dispersion=1.3)
    assert wide.sum() == pytest.approx(1.0) and wide.max() < double_gamma_hrf(2.0).max()
    with pytest.raises(ValueError, match="delay"):
        double_gamma_hrf(2.0, delay=0.0)


def test_random_motion_places_abrupt_movements_by_weight():
    weights = np.zeros(200)
    weights[50:60] = 1.0
    motion = random_motion(np.random.default_rng(3), 200, step_mm=0.0, n_spikes=20, spike_weights=weights)
    moved = np.flatnonzero(np.abs(np.diff(motion[:, 0], prepend=0.0)) > 0) if motion.any() else []
    # every jump is in the window, or a return one to three volumes after it
    assert len(moved) > 0 and all(50 <= t < 63 for t in moved), moved
    with pytest.raises(ValueError, match="spike_weights"):
        random_motion(np.random.default_rng(0), 10, 0.1, 2, spike_weights=np.zeros(10))
    # without weights, the draws are those of the uniform placement (the cocaine study's)
    a = random_motion(np.random.default_rng(5), 100, 0.05, 3)
    b = random_motion(np.random.default_rng(5), 100, 0.05, 3, spike_weights=None)
    np.testing.assert_array_equal(a, b)
