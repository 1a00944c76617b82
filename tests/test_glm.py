"""The AR(1) first-level GLM against nilearn's ``run_glm`` on the same input."""

import numpy as np
import pytest
from nilearn.glm.first_level.first_level import _yule_walker, run_glm

from craving_circuits.stats.glm import ar1_coefficients, ar1_glm


def _data(rng, n=120, v=400, rho=0.4):
    X = np.column_stack([rng.standard_normal((n, 4)), np.linspace(-1, 1, n), np.ones(n)])
    e = rng.standard_normal((n, v))
    for t in range(1, n):  # AR(1) noise whose coefficient varies over voxels
        e[t] += np.linspace(0, rho, v) * e[t - 1]
    return X @ rng.standard_normal((X.shape[1], v)) + e, X


def test_estimates_equal_nilearns_run_glm():
    Y, X = _data(np.random.default_rng(3))
    theta, rho = ar1_glm(Y, X)
    labels, results = run_glm(Y, X, noise_model="ar1", bins=100)
    expected = np.empty_like(theta)
    for label, result in results.items():
        expected[:, labels == label] = result.theta
    np.testing.assert_allclose(theta, expected, rtol=1e-10, atol=1e-12)
    assert len(np.unique(rho)) > 10  # several bins were fitted, not one
    np.testing.assert_array_equal(np.array([str(r) for r in rho]), labels)


def test_coefficients_are_nilearns_yule_walker_truncated_to_the_bins():
    rng = np.random.default_rng(4)
    residuals = rng.standard_normal((80, 50)).cumsum(axis=0) * 0.1 + rng.standard_normal((80, 50))
    rho = ar1_coefficients(residuals, bins=100)
    exact = _yule_walker(residuals.T, 1)[:, 0]
    np.testing.assert_allclose(rho, np.trunc(exact * 100) / 100)
    assert (np.abs(rho - exact) < 0.01).all() and len(np.unique(rho)) > 20


def test_white_noise_gives_the_ordinary_least_squares_fit_where_the_coefficient_is_zero():
    rng = np.random.default_rng(5)
    X = np.column_stack([rng.standard_normal(200), np.ones(200)])
    Y = X @ [[2.0], [1.0]] + rng.standard_normal((200, 1)) * 0.01
    theta, rho = ar1_glm(Y, X, bins=1)  # one bin of width 1: every |rho| < 1 truncates to 0
    assert rho[0] == 0
    np.testing.assert_allclose(theta, np.linalg.lstsq(X, Y, rcond=None)[0], rtol=1e-10)


def test_mismatched_rows_are_refused():
    with pytest.raises(ValueError, match="must match"):
        ar1_glm(np.zeros((10, 3)), np.zeros((9, 2)))
