"""Figures: each function draws what it is given (one axis per target, points per participant)."""

import base64
import html as html_module
import re

import matplotlib as mpl
import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from craving_circuits.book import plotting
from craving_circuits.io.atlas import brain_mask
from craving_circuits.verdict import claims as registry
from craving_circuits.verdict.calibration import CONDITIONS, threats
from figure_checks import assert_book_figure, colorbar_titles


@pytest.fixture(autouse=True)
def every_figure_fits_the_column():
    """Each figure a test of this file draws must fit the text column with legible fonts."""
    plt.close("all")
    yield
    figures = [plt.figure(n) for n in plt.get_fignums()]
    try:
        for fig in figures:
            assert_book_figure(fig)
    finally:
        plt.close("all")


def _changes(seed=0):
    rng = np.random.default_rng(seed)
    n = 12
    return pd.DataFrame(
        {
            "participant_id": [f"s{i}" for i in range(n)],
            "group": ["CUD"] * 7 + ["control"] * 5,
            "dglu": rng.normal(5, 10, n),
            "dfc_thalamus_midline": rng.normal(0.5, 0.3, n),
            "dfc_dlpfc": rng.normal(0.3, 0.3, n),
            "ocdus_obsessive": rng.integers(2, 20, n),
            "cocaine_g_per_week": rng.uniform(0.5, 8, n),
        }
    )


def test_coupling_and_predictor_figures():
    table = _changes()
    fig = plotting.plot_coupling(table, ("thalamus_midline", "dlpfc"))
    assert len(fig.axes) == 2
    # every participant is drawn once per panel, CUD and controls in their own colours
    assert sum(len(c.get_offsets()) for c in fig.axes[0].collections if hasattr(c, "get_offsets")) >= len(table)
    assert "CUD r =" in fig.axes[0].get_title()
    fig = plotting.plot_predictors(table[table["group"] == "CUD"], "dfc_thalamus_midline")
    assert len(fig.axes) == 2 and fig.axes[1].get_xlabel() == "log cocaine_g_per_week"
    # a missing score (n/a in participants.tsv) leaves that participant's point and the fit out, not the figure
    cud = table[table["group"] == "CUD"].copy()
    cud.iloc[0, cud.columns.get_loc("ocdus_obsessive")] = np.nan
    fig = plotting.plot_predictors(cud, "dfc_thalamus_midline")
    line = fig.axes[0].lines[0].get_ydata()
    assert len(line) and np.isfinite(line).all()  # the fit line, from the complete pairs


def test_crlb_figure_marks_spectra_over_the_limit():
    mrs = pd.DataFrame(
        {"metabolite": ["Glu"] * 4 + ["Gln"], "value_water": [8, 9, 5, 7, 3], "crlb_percent": [6, 7, 25, 30, 40]}
    )
    fig = plotting.plot_crlb(mrs, "Glu", 20)
    points = [c.get_offsets() for c in fig.axes[0].collections]
    assert [len(p) for p in points] == [2, 2]  # kept, over the limit


def test_drug_figures():
    from craving_circuits.stats import equivalence

    rng = np.random.default_rng(1)
    changes = pd.DataFrame(
        [
            {"participant_id": f"{g}{i}", "group": g, "drug": d, "target": t, "delta": rng.normal()}
            for g in ("CUD", "control")
            for i in range(6)
            for d in ("placebo", "NAC")
            for t in ("dlpfc", "thalamus_midline")
        ]
    )
    fig = plotting.plot_drug_interaction(changes)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) >= 2  # one line per group
    fig = plotting.plot_drug_interaction(changes[changes["target"] == "dlpfc"], by=None)
    assert len(fig.axes) == 1
    samples = {"a": rng.normal(0, 1, 12), "b": (rng.normal(0, 1, 10), rng.normal(0, 1, 11))}
    evidence = equivalence.evidence_table(samples, sesoi_dz=0.8)
    fig = plotting.plot_equivalence(evidence, title="run")
    ticks = {t.get_text(): y for t, y in zip(fig.axes[0].get_yticklabels(), fig.axes[0].get_yticks())}
    assert ticks["a"] > ticks["b"]  # rows from top to bottom in table order
    assert fig.get_suptitle().startswith("run: SESOI ± 0.8")
    # two runs overlaid on one axis, each named; with the book's long row and run labels the verdicts
    # beside the axes still lie inside the figure (the fixture checks its saved width)
    long_terms = {f"drug x state | control (thalamus_midline) {i}": rng.normal(0, 1, 12) for i in range(7)}
    long_evidence = equivalence.evidence_table(long_terms, sesoi_dz=0.8)
    # a long run title with long row labels still fits (the fixture checks the saved width)
    fig = plotting.plot_equivalence(long_evidence, title="Positive control: NAC dampens craving")
    runs = {"NAC has no effect": long_evidence, "Positive control: NAC dampens craving": long_evidence}
    fig = plotting.plot_equivalence(runs)
    assert len(fig.axes) == 1
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == list(runs)
    verdicts = [t for t in fig.axes[0].texts if t.get_text() in set(long_evidence["verdict"])]
    assert len(verdicts) == 2 * len(long_evidence)
    assert fig.axes[0].get_legend().get_title().get_text() == "SESOI ± 0.8 (shaded)"
    with pytest.raises(ValueError, match="different equivalence bounds"):
        plotting.plot_equivalence({"a": evidence, "b": equivalence.evidence_table(samples, sesoi_dz=0.5)})
    fig = plotting.plot_bf_robustness(equivalence.robustness_curves(samples))
    assert len(fig.axes[0].get_lines()) >= 2 and fig.axes[0].get_yscale() == "log"


def test_baclofen_figures():
    rng = np.random.default_rng(2)
    values = pd.DataFrame(
        [
            {
                "participant_id": f"s{i}",
                "group": g,
                "session_id": s,
                "region": r,
                "cbf": rng.normal(50, 5),
                "mean_gm_cbf": rng.normal(55, 5),
                "mean_wm_cbf": rng.normal(22, 2),
            }
            for i, g in enumerate(["baclofen"] * 4 + ["placebo"] * 4)
            for s in ("ses-T1", "ses-T2")
            for r in ("roi", "cluster")
        ]
    )
    fig = plotting.plot_group_time(values, "cbf", by="region")
    assert len(fig.axes) == 2 and [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["T1", "T2"]
    fig = plotting.plot_cbf_qc(values)
    assert sum(len(c.get_offsets()) for c in fig.axes[0].collections) == len(values)
    table = pd.DataFrame(
        {"group": ["baclofen"] * 5 + ["placebo"] * 5, "x": rng.normal(size=10), "y": rng.normal(size=10)}
    )
    fig = plotting.plot_association(table, "x", "y", "dlPFC", "cue")
    assert fig.axes[0].get_xlabel() == "dlPFC" and len(fig.axes[0].lines) >= 1


def test_brain_figures_fit_the_column_and_name_their_colour_bar():
    mask_img = brain_mask(8)
    n = int((np.asarray(mask_img.dataobj) > 0).sum())
    values = np.random.default_rng(3).normal(0, 2, n)
    for glass in (False, True):
        fig = plotting.plot_stat(values, mask_img, "a t map", threshold=1.0, glass=glass, colorbar_label="t")
        assert colorbar_titles(fig) == ["t"]
    fig = plotting.plot_stat(values, mask_img, "z", display_mode="z", cut_coords=(-8, 12), colorbar_label="z")
    assert colorbar_titles(fig) == ["z"]
    # a map of a positive quantity (CBF) on a sequential scale from 0, in its unit
    cbf = np.abs(values) * 20
    for glass in (False, True):
        fig = plotting.plot_stat(
            cbf,
            mask_img,
            "mean CBF",
            glass=glass,
            display_mode="z",
            cut_coords=(-8, 12),
            colorbar_label="ml/100 g/min",
            sequential=True,
        )
        assert colorbar_titles(fig) == ["ml/100 g/min"]
        bar = next(ax for ax in fig.axes if ax.get_title(loc="right") == "ml/100 g/min")
        low, high = bar.get_ylim()
        assert low == pytest.approx(0.0, abs=1e-6) and high >= cbf.max(), glass
    long = "NAcc map change ~ glutamate change (CUD), FWE clusters: no significant cluster at this threshold"
    for glass in (False, True):  # a long title wraps within the figure (checked by the fixture)
        plotting.plot_stat(values, mask_img, long, threshold=1.0, glass=glass)
    inside = np.asarray(mask_img.dataobj) > 0
    rois = {}
    for name, keep in (("a", values > 2), ("b", values < -2)):
        volume = np.zeros(inside.shape, bool)
        volume[inside] = keep
        rois[name] = volume
    plotting.plot_rois(mask_img, rois, cut_coords=(0, 10))


def test_book_style_sets_the_fonts_and_leaves_the_figures_fitting():
    with mpl.rc_context():
        mpl.rcParams["font.size"] = 5  # a caller's tiny default does not reach the book's figures
        fig = plotting.plot_association(
            pd.DataFrame({"group": ["baclofen", "placebo"] * 3, "x": np.arange(6.0), "y": np.arange(6.0)[::-1]}),
            "x",
            "y",
        )
        assert min(t.get_fontsize() for t in fig.axes[0].get_xticklabels()) >= plotting.MIN_FONT_PT
        plotting.use_book_style()  # outside IPython: only the matplotlib settings
        assert mpl.rcParams["xtick.labelsize"] == plotting.MIN_FONT_PT


def test_interactive_map_is_offline_and_writes_the_nifti(tmp_path):
    mask_img = brain_mask(8)
    n = int((np.asarray(mask_img.dataobj) > 0).sum())
    values = np.random.default_rng(4).normal(0, 2, n)
    out = plotting.interactive_map(
        values, mask_img, "CUD: craving - neutral", threshold=2.0, nifti_path=tmp_path / "maps" / "t.nii.gz"
    )
    page = out.data
    # the title in the page above the viewer (a long one is not cut under the viewer's colour bar)
    assert page.startswith('<p class="cc-map-title">CUD: craving - neutral (t)</p><iframe') and "srcdoc=" in page
    inner = html_module.unescape(page.split('srcdoc="', 1)[1].split('" style=', 1)[0])
    # nothing the browser would fetch: no src or href pointing to the network
    assert not re.findall(r"(?:src|href)\s*=\s*[\"']https?://", inner, re.IGNORECASE)
    assert "brainsprite" in inner.lower()  # the viewer itself is inline
    written = nib.load(tmp_path / "maps" / "t.nii.gz")
    inside = np.asarray(mask_img.dataobj) > 0
    np.testing.assert_allclose(np.asarray(written.dataobj)[inside], values, rtol=1e-6)
    assert "maps/t.nii.gz" in page
    uri = re.search(r'download="t.nii.gz" href="data:application/gzip;base64,([^"]+)"', page).group(1)
    assert base64.b64decode(uri) == (tmp_path / "maps" / "t.nii.gz").read_bytes()


def test_the_calibration_figure_fits_the_column_at_the_books_size():
    """Every ROI-level claim of the registry under every condition of its study, with the equivalence
    conditions' long names (the book's calibration has about seventy error rates)."""
    rng = np.random.default_rng(5)
    rows = []
    for claim in registry.claims(level="roi"):
        conditions = [
            *CONDITIONS,
            *threats(claim.study),
            *(f"at_bound_{c.claim_id}" for c in registry.claims(claim.study, "roi") if c.direction is None),
        ]
        for condition in conditions:
            rate = rng.uniform(0, 0.08)
            absent = CONDITIONS.get(condition, 0) == 0
            rows.append(
                {
                    "claim_id": claim.claim_id,
                    "condition": condition,
                    "measure": "false-positive rate" if absent else "power",
                    "rate": rate,
                    "ci_low": rate / 2,
                    "ci_high": rate * 1.5,
                    "criterion": 0.075,
                    "holds": rate < 0.06 if absent else None,
                }
            )
    summary = pd.DataFrame(rows)
    assert (summary["measure"] == "false-positive rate").sum() > 60
    plotting.plot_calibration(summary)  # checked by the fixture: width and fonts


def test_texts_annotated_beside_the_axes_are_moved_inside_the_figure():
    # a layout that leaves no room for them (tight_layout cannot make room on crowded panels): saved with
    # bbox_inches="tight" the figure would grow past the column and be shown shrunk
    fig, ax = plt.subplots(figsize=(plotting.COLUMN_WIDTH_IN, 3))
    ax.set_yticks([0, 1], ["a row label", "another row label"])
    ax.annotate("a verdict written beside the axes", (1.02, 0.5), xycoords="axes fraction")
    fig.subplots_adjust(left=0.05, right=0.95)
    width = fig.get_tightbbox(fig.canvas.get_renderer()).width
    assert width > plotting.COLUMN_WIDTH_IN + 0.5
    plotting._keep_inside(fig)
    box = fig.get_tightbbox(fig.canvas.get_renderer())
    assert box.x0 >= 0 and box.x1 <= fig.get_figwidth() + 0.01
