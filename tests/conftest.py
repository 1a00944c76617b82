"""Shared fixtures: small simulated studies, written once per test session.

The ``tiny`` preset (4 CUD + 4 controls, 8 mm voxels, 60 volumes) takes about
15 s, mostly loading the 1 mm Harvard-Oxford atlas; ``tiny_null`` is the same
study with every planted effect set to zero. Both are created lazily: a test
session that never asks for one does not pay for it. Tests must treat these
folders as read-only (copy them to ``tmp_path`` before changing anything).
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_study_dir(tmp_path_factory):
    """Root of a simulated study written with the ``tiny`` preset."""
    from craving_circuits.simulate import simulate_cocaine_study

    return simulate_cocaine_study(tmp_path_factory.mktemp("tiny") / "study", "tiny", n_jobs=1)


@pytest.fixture(scope="session")
def tiny_null_study_dir(tmp_path_factory):
    """Root of a simulated study written with the ``tiny_null`` preset (no planted effects)."""
    from craving_circuits.simulate import simulate_cocaine_study

    return simulate_cocaine_study(tmp_path_factory.mktemp("tiny_null") / "study", "tiny_null", n_jobs=1)
