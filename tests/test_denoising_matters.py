"""Under the ``null`` preset, weak denoising fakes a craving rise that the book's default does not.

Nothing is planted, but motion, the global signal and the physiological noise grow after the cue film
(:mod:`craving_circuits.simulate.cocaine`). Several small null studies (reduced size and resolution, seeds
fixed in advance: 1 to 4) go through the seed chapter's first level and ROI state tests under no confound
regression (``none``), nilearn's ``simple`` preset and the default (``conn``). Two statistics per strategy:

* the mean of the studies' one-sample t statistics of the craving - neutral change (two groups, two targets:
  16 statistics), which is 0 under a test that holds its level;
* the pooled t of every participant's craving - neutral change (all studies, groups and targets averaged
  per participant), approximately N(0, 1) under the null because participants are independent.
"""

import numpy as np
import pandas as pd
import pytest

from craving_circuits.cocaine import denoise, firstlevel, layout, secondlevel
from craving_circuits.simulate import simulate_cocaine_study

pytestmark = pytest.mark.slow

SMALL = dict(n_cud=12, n_control=12, voxel_size_mm=8, n_volumes=120, smooth_noise_fwhm_mm=16.0)
SEEDS = (1, 2, 3, 4)
STRATEGIES = ("none", "simple", "conn")
STATE_TERMS = ("craving - neutral | CUD", "craving - neutral | control")


@pytest.fixture(scope="module")
def null_statistics(tmp_path_factory):
    """Per strategy: the studies' state t statistics and every participant's mean state change."""
    root = tmp_path_factory.mktemp("denoising")
    specs = [denoise.parse_strategy(s) for s in STRATEGIES]
    label = {s.name: name for s, name in zip(specs, STRATEGIES)}
    tests, changes = [], []
    for seed in SEEDS:
        study = simulate_cocaine_study(root / f"study{seed}", "null", seed=seed, n_jobs=2, **SMALL)
        runs, _ = layout.collect_runs(layout.open_study(study))
        analysis, mask_img, _ = firstlevel.seed_analysis(runs, specs[-1], comparison_strategies=specs[:-1])
        first = firstlevel.first_level(runs, analysis, mask_img, root / f"first{seed}", n_jobs=2)
        diff = secondlevel.roi_state_differences(first.roi)
        diff["strategy"] = diff["strategy"].map(label)
        for name in STRATEGIES:
            t = secondlevel.roi_state_tests(diff[diff["strategy"] == name])
            t = t[t["term"].isin(STATE_TERMS)]
            tests.append(t.assign(strategy=name, seed=seed, t=t["estimate"] / t["se"]))
        per = diff.groupby(["strategy", "participant_id"])["delta"].mean().reset_index()
        changes.append(per.assign(seed=seed))
    return pd.concat(tests, ignore_index=True), pd.concat(changes, ignore_index=True)


def _pooled_t(changes, strategy):
    d = changes.loc[changes["strategy"] == strategy, "delta"].to_numpy()
    return d.mean() / (d.std(ddof=1) / np.sqrt(len(d)))


def test_weak_denoising_fakes_a_craving_rise_that_the_default_does_not(null_statistics):
    tests, changes = null_statistics
    mean_t = tests.groupby("strategy")["t"].mean()
    pooled = {s: _pooled_t(changes, s) for s in STRATEGIES}
    summary = f"mean t {mean_t.round(2).to_dict()}, pooled t { {k: round(v, 2) for k, v in pooled.items()} }"
    assert len(tests) == len(SEEDS) * len(STRATEGIES) * 4
    # no denoising: a clear spurious rise (a pooled t above 4 has p < 1e-4 under the null)
    assert pooled["none"] > 4 and mean_t["none"] > 1.5, summary
    # nilearn's simple preset removes part of it only (a pooled t above 2.5 has p < 0.01)
    assert pooled["simple"] > 2.5 and mean_t["simple"] > 0.5, summary
    # the default holds: its pooled t is what a null gives (|t| < 2.5, p > 0.01), and far below none's
    assert abs(pooled["conn"]) < 2.5 and abs(mean_t["conn"]) < 0.8, summary
    assert pooled["conn"] < pooled["none"] / 2, summary
