"""Building blocks of simulated BOLD data.

Data conventions
----------------
* Time series are arrays of shape ``(n_volumes, n_series)``: time on axis 0,
  as in :func:`nilearn.signal.clean`.
* Voxel data are restricted to the brain mask: ``(n_volumes, n_voxels)``, voxels
  in the C order of ``np.argwhere(mask)``.
* Head motion is ``(n_volumes, 6)``: ``trans_x, trans_y, trans_z`` in mm and
  ``rot_x, rot_y, rot_z`` in radians, fMRIPrep's column order.
* Every function that draws random numbers takes a :class:`numpy.random.Generator`.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage, stats
from scipy import signal as sp_signal

__all__ = [
    "band_limited_noise",
    "correlated_sources",
    "source_cholesky",
    "ar1_filter",
    "SmoothNoiseField",
    "random_motion",
    "framewise_displacement",
    "motion_loadings",
    "double_gamma_hrf",
    "spike_artifact",
    "distance_artifact",
    "fisher_z_sampling_sd",
]


@functools.lru_cache(maxsize=64)
def _band_sos(low_hz: float, high_hz: float, t_r: float) -> np.ndarray:
    """Second-order sections of the Butterworth band-pass (designed once per band and TR)."""
    high = min(high_hz, 0.95 * 0.5 / t_r)
    sos = sp_signal.butter(2, [low_hz, high], btype="band", output="sos", fs=1.0 / t_r)
    return sos


def band_limited_noise(
    rng: np.random.Generator,
    n_volumes: int,
    n_series: int,
    t_r: float,
    low_hz: float = 0.01,
    high_hz: float = 0.1,
) -> np.ndarray:
    """Gaussian noise band-passed to ``[low_hz, high_hz]``, unit variance per series.

    Returns
    -------
    x : ndarray, shape (n_volumes, n_series)
    """
    sos = _band_sos(float(low_hz), float(high_hz), float(t_r)).copy()  # sosfilt needs a writable array
    pad = 200  # burn-in so that the start of the series is stationary
    white = rng.standard_normal((n_volumes + pad, n_series))
    x = sp_signal.sosfilt(sos, white, axis=0)[pad:]
    return x / x.std(axis=0, keepdims=True)


def source_cholesky(corr: np.ndarray) -> np.ndarray:
    """Cholesky factors of source correlation matrices, ``(..., k, k)``.

    Raises
    ------
    ValueError
        If a matrix is not positive definite (the requested couplings cannot coexist).
    """
    try:
        return np.linalg.cholesky(corr)
    except np.linalg.LinAlgError:
        raise ValueError(
            "The requested source correlations are not jointly possible (matrix not positive "
            "definite); lower the planted connectivity effects or the subject variability."
        ) from None


def correlated_sources(
    rng: np.random.Generator, corr: np.ndarray, n_volumes: int, t_r: float, independent: np.ndarray | None = None
) -> np.ndarray:
    """Band-limited sources whose population correlation matrix is ``corr``.

    Independent band-limited series are mixed with the Cholesky factor of
    ``corr``; since all series share one spectrum, the mixture has exactly the
    requested correlations in expectation (the realised sample correlations
    scatter around them, as in real data).

    Parameters
    ----------
    corr : ndarray, shape (n_sources, n_sources)
        Symmetric, unit diagonal, positive definite.
    independent : ndarray, shape (n_volumes, n_sources), optional
        Unit-variance band-limited series to mix (from
        :func:`band_limited_noise`); drawn with ``rng`` when not given. Passing
        them lets many runs share one filtering call.

    Returns
    -------
    sources : ndarray, shape (n_volumes, n_sources)

    Raises
    ------
    ValueError
        If ``corr`` is not positive definite (the requested couplings cannot
        coexist).
    """
    chol = source_cholesky(corr)
    if independent is None:
        independent = band_limited_noise(rng, n_volumes, corr.shape[0], t_r)
    elif independent.shape != (n_volumes, corr.shape[0]):
        raise ValueError(f"independent has shape {independent.shape}; expected {(n_volumes, corr.shape[0])}.")
    return independent @ chol.T


def ar1_filter(x: np.ndarray, phi: float) -> np.ndarray:
    """Filter along axis 0 with ``y[t] = phi * y[t-1] + sqrt(1 - phi**2) * x[t]``.

    The first sample is scaled so that unit-variance white input gives a
    stationary unit-variance AR(1) output.
    """
    if not -1 < phi < 1:
        raise ValueError(f"AR(1) coefficient must lie in (-1, 1), got {phi}.")
    scale = np.sqrt(1 - phi**2)
    # initial state chosen so that y[0] = x[0]: stationary from the first sample
    zi = (1 - scale) * x[:1]
    y, _ = sp_signal.lfilter([scale], [1.0, -phi], x, axis=0, zi=zi)
    return y


class SmoothNoiseField:
    """Spatially smooth Gaussian noise, drawn cheaply on a coarse grid.

    When ``fwhm_mm`` is a whole multiple ``factor`` (at least 2) of the voxel size,
    white noise is drawn on a grid ``factor`` times coarser than the data grid, then
    trilinearly interpolated at the voxel centres of the mask (the interpolation kernel
    alone has a FWHM of one coarse voxel); otherwise it is drawn and Gaussian-smoothed
    on the data grid itself. Each voxel is then
    scaled to unit variance. The resulting noise has a smoothness of about
    ``fwhm_mm`` (not exactly stationary: smoothest midway between coarse grid
    points) and costs a small fraction of smoothing full-resolution noise.

    Parameters
    ----------
    mask : ndarray of bool, shape (nx, ny, nz)
    voxel_size_mm : float
    fwhm_mm : float
    """

    def __init__(self, mask: np.ndarray, voxel_size_mm: float, fwhm_mm: float):
        if fwhm_mm <= 0:
            raise ValueError(f"fwhm_mm must be positive, got {fwhm_mm}.")
        ratio = fwhm_mm / voxel_size_mm
        # a coarse grid only when the FWHM is a whole number of voxels: otherwise the
        # residual Gaussian would be too narrow to smooth on the coarse grid
        self.factor = int(ratio) if ratio >= 2 and float(ratio).is_integer() else 1
        spacing = self.factor * voxel_size_mm
        # trilinear interpolation smooths by one coarse voxel, except when factor is 1
        interp_fwhm = spacing if self.factor > 1 else 0.0
        extra_fwhm = np.sqrt(max(fwhm_mm**2 - interp_fwhm**2, 0.0)) / spacing  # coarse voxels
        self.sigma = extra_fwhm / 2.3548 if extra_fwhm > 0.5 else 0.0
        ijk = np.argwhere(mask).astype(float) / self.factor
        self.coarse_shape = tuple(int(np.ceil(n / self.factor)) + 2 for n in mask.shape)
        base = np.floor(ijk).astype(int)
        frac = ijk - base
        corners, weights = [], []
        for dx in (0, 1):
            for dy in (0, 1):
                for dz in (0, 1):
                    idx = base + np.array([dx, dy, dz])
                    corners.append(np.ravel_multi_index(idx.T, self.coarse_shape))
                    w = (
                        (frac[:, 0] if dx else 1 - frac[:, 0])
                        * (frac[:, 1] if dy else 1 - frac[:, 1])
                        * (frac[:, 2] if dz else 1 - frac[:, 2])
                    )
                    weights.append(w)
        self.corners = np.stack(corners)  # (8, n_voxels)
        self.weights = np.stack(weights).astype(np.float32)  # (8, n_voxels)
        self.n_voxels = int(mask.sum())

    def sample(self, rng: np.random.Generator, n_volumes: int, ar1: float = 0.0) -> np.ndarray:
        """Draw ``n_volumes`` volumes, optionally AR(1)-correlated in time.

        Returns
        -------
        noise : ndarray of float32, shape (n_volumes, n_voxels)
            Unit variance in every voxel.
        """
        out = self._interpolated(rng, n_volumes, ar1)
        out -= out.mean(axis=0)
        out /= out.std(axis=0)
        return out

    def _interpolated(self, rng: np.random.Generator, n_volumes: int, ar1: float = 0.0) -> np.ndarray:
        """Smooth volumes before any scaling: (n_volumes, n_voxels) float32."""
        # time last, so that gathering a coarse voxel reads one contiguous row
        coarse = rng.standard_normal(self.coarse_shape + (n_volumes,), dtype=np.float32)
        if self.sigma > 0:
            coarse = ndimage.gaussian_filter(coarse, sigma=(self.sigma,) * 3 + (0,), truncate=3.0)
        if ar1:
            coarse = ar1_filter(np.moveaxis(coarse, -1, 0), ar1).astype(np.float32)
            coarse = np.ascontiguousarray(np.moveaxis(coarse, 0, -1))
        flat = coarse.reshape(-1, n_volumes)
        acc = np.zeros((self.n_voxels, n_volumes), dtype=np.float32)
        for corner, weight in zip(self.corners, self.weights):
            acc += flat[corner] * weight[:, None]
        return np.ascontiguousarray(acc.T)

    def independent(self, rng: np.random.Generator, n_maps: int) -> np.ndarray:
        """Draw ``n_maps`` independent volumes (e.g. one per participant) of unit expected variance.

        Unlike :meth:`sample`, which standardises each voxel over the volumes it
        draws (a time series of mean zero), the maps are not scaled by their
        own mean and SD, so their mean over the maps varies as a sample mean
        does; each voxel is divided by its SD, estimated once per field from
        500 volumes (seed 0).

        Returns
        -------
        maps : ndarray of float32, shape (n_maps, n_voxels)
        """
        if not hasattr(self, "_sd"):
            self._sd = self._interpolated(np.random.default_rng(0), 500).std(axis=0)
        return self._interpolated(rng, n_maps) / self._sd


def random_motion(
    rng: np.random.Generator,
    n_volumes: int,
    step_mm: float,
    n_spikes: int,
    spike_mm: float = 0.5,
    radius_mm: float = 50.0,
    spike_weights: np.ndarray | None = None,
) -> np.ndarray:
    """Head motion: a slow random walk plus abrupt movements.

    Parameters
    ----------
    step_mm : float
        Standard deviation of the per-volume step of each translation; rotation
        steps are scaled so that they move a point at ``radius_mm`` by as much.
    n_spikes : int
        Number of abrupt movements; half of them are followed by a return to
        the previous position one to three volumes later.
    spike_mm : float
        Standard deviation of an abrupt movement along each axis.
    spike_weights : ndarray, shape (n_volumes,), optional
        Relative probability of an abrupt movement at each volume (e.g. higher
        during a task condition that makes participants move); the first
        volume's weight is ignored. None: every volume but the first equally
        likely (the draws of earlier versions).

    Returns
    -------
    motion : ndarray, shape (n_volumes, 6)
        Translations (mm) then rotations (rad), relative to the first volume.
    """
    steps = rng.standard_normal((n_volumes, 6)) * step_mm
    steps[:, 3:] /= radius_mm
    steps[0] = 0
    if spike_weights is not None:
        w = np.asarray(spike_weights, dtype=float)
        if w.shape != (n_volumes,) or not (np.isfinite(w).all() and (w >= 0).all()) or w[1:].sum() <= 0:
            raise ValueError(
                f"spike_weights must be {n_volumes} non-negative numbers, not all zero after the first volume."
            )
        p = w[1:] / w[1:].sum()
    for _ in range(int(n_spikes)):
        t = int(rng.integers(1, n_volumes)) if spike_weights is None else 1 + int(rng.choice(n_volumes - 1, p=p))
        jump = rng.standard_normal(6) * spike_mm
        jump[3:] /= radius_mm
        steps[t] += jump
        if rng.random() < 0.5:
            back = t + int(rng.integers(1, 4))
            if back < n_volumes:
                steps[back] -= jump
    return np.cumsum(steps, axis=0)


def framewise_displacement(motion: np.ndarray, radius_mm: float = 50.0) -> np.ndarray:
    """Framewise displacement of Power et al. (2012), as fMRIPrep reports it.

    ``FD[t] = sum(|d trans[t]|) + radius_mm * sum(|d rot[t]|)``; ``FD[0]`` is NaN
    (fMRIPrep writes ``n/a``).

    Parameters
    ----------
    motion : ndarray, shape (n_volumes, 6)

    Returns
    -------
    fd : ndarray, shape (n_volumes,)
    """
    motion = np.asarray(motion, dtype=float)
    if motion.ndim != 2 or motion.shape[1] != 6:
        raise ValueError(f"motion must have shape (n_volumes, 6), got {motion.shape}.")
    diff = np.abs(np.diff(motion, axis=0))
    fd = diff[:, :3].sum(axis=1) + radius_mm * diff[:, 3:].sum(axis=1)
    return np.concatenate([[np.nan], fd])


def motion_loadings(
    baseline: np.ndarray, mask: np.ndarray, affine: np.ndarray, centre_mm=(0.0, -18.0, 18.0)
) -> np.ndarray:
    """Percent signal change per unit of each motion parameter, per voxel.

    Residual misregistration by a displacement ``d`` changes the intensity of a
    voxel by about ``-grad(I) . d``; a rotation ``w`` about ``centre_mm`` displaces
    a voxel at ``r`` by ``w x r``, so its loading is ``r x grad(I)``.

    Parameters
    ----------
    baseline : ndarray, shape (nx, ny, nz)
        Mean image (zero outside the brain).
    mask : ndarray of bool, shape (nx, ny, nz)
    affine : ndarray, shape (4, 4)
        Voxel-to-mm affine (assumed axis-aligned).

    Returns
    -------
    loadings : ndarray of float32, shape (6, n_voxels)
    """
    zooms = np.abs(np.diag(affine)[:3])
    grads = np.stack(np.gradient(baseline.astype(float), *zooms), axis=-1)  # per mm
    grads *= np.sign(np.diag(affine)[:3])  # to world axes
    ijk = np.argwhere(mask)
    xyz = ijk * np.diag(affine)[:3] + affine[:3, 3] - np.asarray(centre_mm)
    g = grads[mask]
    intensity = baseline[mask][:, None]
    trans = -g / intensity * 100.0
    rot = -np.cross(xyz, g) / intensity * 100.0
    return np.concatenate([trans, rot], axis=1).T.astype(np.float32)


def double_gamma_hrf(
    t_r: float,
    oversampling: int = 50,
    time_length: float = 32.0,
    onset: float = 0.0,
    *,
    delay: float = 6.0,
    undershoot: float = 12.0,
    dispersion: float = 0.9,
    u_dispersion: float = 0.9,
    ratio: float = 0.48,
) -> np.ndarray:
    """A haemodynamic response as the difference of two gamma densities, on nilearn's oversampled grid.

    The parametrisation of nilearn's HRF kernels: the response is
    ``gamma(delay / dispersion, scale=dispersion) - ratio * gamma(undershoot /
    u_dispersion, scale=u_dispersion)`` (each gamma's mean is its delay),
    sampled every ``t_r / oversampling`` s over ``time_length`` s and scaled to
    unit sum. The defaults are Glover's, for which the kernel equals
    :func:`nilearn.glm.first_level.glover_hrf`; other values give a
    participant's or a region's own response (a later or earlier peak, a
    wider or narrower one). The signature is that of nilearn's HRF models, so
    a closure over the keyword arguments can be given to
    :func:`nilearn.glm.first_level.compute_regressor` as ``hrf_model``.

    Parameters
    ----------
    t_r : float
        Sampling period (s).
    oversampling : int
        Samples per ``t_r``.
    time_length : float
        Length of the kernel (s).
    onset : float
        Shift of the response (s).
    delay, undershoot : float
        Means of the peak and undershoot gamma densities (s).
    dispersion, u_dispersion : float
        Their scales (s): larger is wider.
    ratio : float
        Size of the undershoot relative to the peak.

    Returns
    -------
    hrf : ndarray, shape (round(time_length * oversampling / t_r),)
    """
    for name, value in (("delay", delay), ("undershoot", undershoot), ("dispersion", dispersion)):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number, got {value!r}.")
    if not (np.isfinite(u_dispersion) and u_dispersion > 0):
        raise ValueError(f"u_dispersion must be a positive number, got {u_dispersion!r}.")
    dt = t_r / oversampling
    times = np.linspace(0, time_length, np.rint(float(time_length) / dt).astype(int)) - onset
    peak = stats.gamma.pdf(times, delay / dispersion, loc=dt, scale=dispersion)
    trough = stats.gamma.pdf(times, undershoot / u_dispersion, loc=dt, scale=u_dispersion)
    hrf = peak - ratio * trough
    return hrf / hrf.sum()


def spike_artifact(
    fd: np.ndarray,
    jumps: np.ndarray,
    loadings: np.ndarray,
    threshold_mm: float,
    pct_per_mm2: float,
    tail=(1.0, 0.6, 0.3),
) -> np.ndarray:
    """Signal drops at high-motion volumes, growing with the square of the framewise displacement over a threshold.

    A volume whose framewise displacement ``fd[t]`` exceeds ``threshold_mm``
    loses ``pct_per_mm2 * (fd[t] - threshold_mm)**2`` percent of its signal,
    on average over the brain, and the drop decays over the next volumes by
    ``tail``. Its spatial pattern follows the image gradient along that
    volume's movement: voxel ``v`` drops by ``0.5 + 0.5 * |L_v . j_t| / mean(|L . j_t|)``
    times the average, ``L_v`` its motion loadings and ``j_t`` the movement
    ``motion[t] - motion[t - 1]``, so edges and the direction of the jump
    matter. Neither the size (quadratic above a threshold) nor the pattern
    (an absolute value) is linear in the motion estimates.

    Parameters
    ----------
    fd : ndarray, shape (n_volumes,)
        Framewise displacement (mm); NaN (the first volume) counts as 0.
    jumps : ndarray, shape (n_volumes, 6)
        Volume-to-volume movement (translations in mm, rotations in rad).
    loadings : ndarray, shape (6, n_voxels)
        From :func:`motion_loadings`.
    threshold_mm : float
    pct_per_mm2 : float
    tail : sequence of float
        Weights of the drop at the volume and the ones after it.

    Returns
    -------
    artifact : ndarray of float32, shape (n_volumes, n_voxels)
        Percent signal change (negative where there are spikes, 0 elsewhere).
    """
    fd = np.nan_to_num(np.asarray(fd, dtype=float))
    n_t, n_v = fd.shape[0], loadings.shape[1]
    if jumps.shape != (n_t, 6):
        raise ValueError(f"jumps has shape {jumps.shape}; expected {(n_t, 6)}.")
    out = np.zeros((n_t, n_v), dtype=np.float32)
    excess = np.clip(fd - threshold_mm, 0.0, None)
    for t in np.flatnonzero(excess > 0):
        g = np.abs(jumps[t] @ loadings)
        pattern = 0.5 + 0.5 * g / max(float(g.mean()), 1e-12)
        size = pct_per_mm2 * excess[t] ** 2
        for k, weight in enumerate(tail):
            if t + k < n_t:
                out[t + k] -= (weight * size) * pattern.astype(np.float32)
    return out


def distance_artifact(
    rng: np.random.Generator,
    xyz_mm: np.ndarray,
    fd: np.ndarray,
    t_r: float,
    pct_per_mm: float,
    length_mm: float,
    threshold_mm: float = 0.3,
    n_foci: int = 2,
    decay=(1.0, 0.7, 0.5, 0.35),
) -> np.ndarray:
    """A signal shared by nearby voxels after each abrupt movement: it raises short-distance correlations most.

    Each of ``n_foci`` foci (random voxels) carries its own band-limited
    (0.01-0.1 Hz) series, switched on by movements: it is multiplied by the
    framewise displacement above ``threshold_mm``, convolved with ``decay``
    (so it lasts a few volumes after the movement), and reaches voxel ``v``
    with the weight ``exp(-d_v**2 / (2 * length_mm**2))``, ``d_v`` its distance
    from the focus. Two voxels share more of it the closer they are, as motion
    artefact inflates short-distance correlations more than long-distance
    ones (Power et al., 2012); the series are not functions of the motion
    estimates, and their size is not linear in them.

    Parameters
    ----------
    xyz_mm : ndarray, shape (n_voxels, 3)
        Voxel coordinates (mm).
    fd : ndarray, shape (n_volumes,)
        Framewise displacement (mm); NaN counts as 0.
    t_r : float
    pct_per_mm : float
        SD of the series at a focus per mm of displacement above the threshold (%).
    length_mm : float
        Spatial scale of the fall-off (mm).
    threshold_mm : float
    n_foci : int
    decay : sequence of float
        Weights of the volume of the movement and the ones after it.

    Returns
    -------
    artifact : ndarray of float32, shape (n_volumes, n_voxels)
        Zero until the first movement above the threshold.
    """
    fd = np.nan_to_num(np.asarray(fd, dtype=float))
    n_t = fd.shape[0]
    envelope = np.convolve(np.clip(fd - threshold_mm, 0.0, None), decay)[:n_t]
    series = band_limited_noise(rng, n_t, n_foci, t_r) * envelope[:, None] * pct_per_mm
    foci = xyz_mm[rng.integers(0, len(xyz_mm), n_foci)]
    d2 = ((xyz_mm[None, :, :] - foci[:, None, :]) ** 2).sum(axis=-1)
    weights = np.exp(-d2 / (2.0 * length_mm**2))
    return (series @ weights).astype(np.float32)


def fisher_z_sampling_sd(n_volumes: int, t_r: float, low_hz: float = 0.01, high_hz: float = 0.1) -> float:
    """Sampling SD of the Fisher z of the correlation of two independent series of :func:`band_limited_noise`.

    Bartlett's formula for autocorrelated series: the variance of a sample
    correlation of two independent series with autocorrelation ``rho`` is
    ``sum_k (1 - |k| / n) rho(k)**2 / n``; ``rho`` is that of the band-pass
    filter (from its impulse response), and the effective number of volumes
    ``n / sum(...)`` then gives ``1 / sqrt(n_eff - 3)`` as for white series.

    Returns
    -------
    sd : float
    """
    sos = _band_sos(float(low_hz), float(high_hz), float(t_r))
    impulse = np.zeros(4 * int(n_volumes) + 400)
    impulse[0] = 1.0
    h = sp_signal.sosfilt(sos, impulse)
    acf = np.correlate(h, h, mode="full")[len(h) - 1 :][:n_volumes]
    rho = acf / acf[0]
    lags = np.arange(1, n_volumes)
    factor = 1.0 + 2.0 * np.sum((1 - lags / n_volumes) * rho[1:] ** 2)
    n_eff = n_volumes / factor
    if n_eff <= 4:
        raise ValueError(f"{n_volumes} volumes at TR {t_r} s are too few for a correlation.")
    return float(1.0 / np.sqrt(n_eff - 3.0))
