"""Figures: each function draws what it is given (one axis per target, points per participant)."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from craving_circuits import plotting  # noqa: E402


def _changes(seed=0):
    rng = np.random.default_rng(seed)
    n = 12
    return pd.DataFrame({"participant_id": [f"s{i}" for i in range(n)], "group": ["CUD"] * 7 + ["control"] * 5,
                         "dglu": rng.normal(5, 10, n), "dfc_thalamus_midline": rng.normal(0.5, 0.3, n),
                         "dfc_dlpfc": rng.normal(0.3, 0.3, n), "ocdus_obsessive": rng.integers(2, 20, n),
                         "cocaine_g_per_week": rng.uniform(0.5, 8, n)})


def test_coupling_and_predictor_figures():
    table = _changes()
    fig = plotting.plot_coupling(table, ("thalamus_midline", "dlpfc"))
    assert len(fig.axes) == 2
    # every participant is drawn once per panel, CUD and controls in their own colours
    assert sum(len(c.get_offsets()) for c in fig.axes[0].collections if hasattr(c, "get_offsets")) >= len(table)
    assert "CUD r =" in fig.axes[0].get_title()
    fig = plotting.plot_predictors(table[table["group"] == "CUD"], "dfc_thalamus_midline")
    assert len(fig.axes) == 2 and fig.axes[1].get_xlabel() == "log cocaine_g_per_week"


def test_crlb_figure_marks_spectra_over_the_limit():
    mrs = pd.DataFrame({"metabolite": ["Glu"] * 4 + ["Gln"], "value_water": [8, 9, 5, 7, 3],
                        "crlb_percent": [6, 7, 25, 30, 40]})
    fig = plotting.plot_crlb(mrs, "Glu", 20)
    points = [c.get_offsets() for c in fig.axes[0].collections]
    assert [len(p) for p in points] == [2, 2]  # kept, over the limit
