"""Figures of the notebooks. Each function returns a matplotlib Figure.

Brain figures use nilearn's plotting on its bundled MNI152 template (no
download); tables in are the long/tidy tables of the other modules. The
matplotlib backend is left to the caller (inline in notebooks, Agg on a
machine without a display).

Figure conventions
------------------
* Every figure is drawn for the book's text column: at most
  :data:`COLUMN_WIDTH_IN` inches wide, legends included, so that at the
  notebook's 100 pixels per inch it is shown at its own size, never shrunk.
* Every text is at least :data:`MIN_FONT_PT` points at that size
  (:data:`FIGURE_STYLE`, applied while each function draws).
* :func:`use_book_style` (called once by each chapter) renders figures as
  "retina" PNGs: twice the pixels, shown at the figure's size (200 dpi).
* Colour bars carry the name of what they show; legends sit outside the data.
"""

from __future__ import annotations

import base64
import functools
import html
import re
import textwrap
import warnings
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pandas as pd
import statsmodels.api as sm
from IPython.display import HTML
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from nilearn.plotting import plot_anat, plot_glass_brain, plot_stat_map, view_img
from nilearn.plotting import plot_carpet as nl_carpet
from scipy import stats
from scipy import stats as st

from craving_circuits.cocaine.multiverse import _spec_order, specification_matrix
from craving_circuits.io.files import write_nifti
from craving_circuits.stats.voxelwise import to_img
from craving_circuits.verdict.calibration import CONDITIONS

__all__ = [
    "COLUMN_WIDTH_IN",
    "FIGURE_STYLE",
    "MIN_FONT_PT",
    "use_book_style",
    "interactive_map",
    "plot_motion",
    "plot_carpet",
    "plot_rois",
    "plot_stat",
    "plot_test",
    "plot_roi_deltas",
    "plot_strategy_comparison",
    "plot_crlb",
    "plot_coupling",
    "plot_predictors",
    "plot_drug_interaction",
    "plot_equivalence",
    "plot_bf_robustness",
    "plot_group_time",
    "plot_association",
    "plot_cbf_qc",
    "plot_calibration",
    "plot_specification_curve",
]

#: Width of a figure in the book's text column at the notebooks' 100 pixels per inch (a captioned figure's
#: box is 672 CSS pixels wide; the margin keeps a tight bounding box inside it).
COLUMN_WIDTH_IN = 6.6

#: The smallest font of any figure, in points at the size the figure is shown.
MIN_FONT_PT = 9

#: Matplotlib settings of every figure of the book.
FIGURE_STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 200,
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "xtick.labelsize": MIN_FONT_PT,
    "ytick.labelsize": MIN_FONT_PT,
    "legend.fontsize": MIN_FONT_PT,
    "legend.title_fontsize": MIN_FONT_PT,
    "figure.titlesize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def use_book_style() -> None:
    """Render the chapter's figures in the book's style: :data:`FIGURE_STYLE`, and "retina" PNGs inline.

    Called once at the top of a notebook; outside IPython only the matplotlib
    settings change.
    """
    mpl.rcParams.update(FIGURE_STYLE)
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:  # pragma: no cover - IPython is in the requirements
        return
    if get_ipython() is not None:
        set_matplotlib_formats("retina")


def _book_figure(draw):
    """Draw ``draw``'s figure under :data:`FIGURE_STYLE` (font sizes are fixed when text is created)."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with plt.rc_context(FIGURE_STYLE):
            drawn = draw(*args, **kwargs)
            if isinstance(drawn, Figure):
                _keep_inside(drawn)
            return drawn

    return wrapper


def _keep_inside(fig: Figure, n_iter: int = 3) -> None:
    """Move a figure's subplots in until every text (e.g. labels annotated beside the axes, which
    ``tight_layout`` leaves out) lies inside it, so that it is saved at the width it was drawn for."""
    margin = 0.03  # inches
    for _ in range(n_iter):
        box = fig.get_tightbbox(fig.canvas.get_renderer())  # inches
        width = fig.get_figwidth()
        over_left, over_right = -box.x0, box.x1 - width
        if max(over_left, over_right) <= 0.01:
            return
        pars = fig.subplotpars
        left = pars.left + max(over_left + margin, 0) / width if over_left > 0 else pars.left
        right = pars.right - max(over_right + margin, 0) / width if over_right > 0 else pars.right
        if right - left < 0.2:  # nothing sensible left to draw in
            return
        fig.subplots_adjust(left=left, right=right)


def _panel_width(n_panels: int, per_panel: float, extra: float = 0.0) -> float:
    """Figure width for ``n_panels`` side by side, capped at the text column."""
    return min(COLUMN_WIDTH_IN, n_panels * per_panel + extra)


def _label_colorbar(display, label: str) -> None:
    """Name what a nilearn display's colour bar shows (nothing to do when it has none)."""
    cbar = getattr(display, "_cbar", None)
    if cbar is not None:
        # ending at the bar's right edge, so that a unit wider than the bar stays inside the figure
        cbar.ax.set_title(label, fontsize=MIN_FONT_PT, color="black", pad=9, loc="right")


#: Largest NIfTI map offered as a download inside the page (bytes); larger ones are named by their path.
_MAX_INLINE_NIFTI = 4_000_000

#: nilearn's viewer page links a favicon on the network; the book loads nothing from it.
_NETWORK_LINK = re.compile(r"<link[^>]*href=[\"']https?://[^>]*>", re.IGNORECASE)


def interactive_map(
    values: np.ndarray,
    mask_img: nib.Nifti1Image,
    title: str,
    threshold: float | None = None,
    nifti_path: str | Path | None = None,
    colorbar_label: str = "t",
    height: int = 300,
) -> HTML:
    """An interactive slice viewer of a statistic map that works offline (nilearn's ``view_img``).

    The viewer's page is self-contained (its scripts and images inline); the
    favicon link nilearn adds is removed, so it requests nothing from the
    network. With ``nifti_path`` the map is also written there as NIfTI and a
    download link is shown under the viewer.

    Parameters
    ----------
    values : ndarray, shape (n_voxels,)
        The map on the mask's voxels.
    mask_img : nibabel.Nifti1Image
    title : str
    threshold : float, optional
        Values of smaller magnitude are transparent.
    nifti_path : path, optional
        Where to write the map (``.nii.gz``), relative to the notebook's working directory.
    colorbar_label : str
        What the values are (shown in the title, above the viewer).
    height : int
        Viewer height in pixels (its width follows the text column).

    Returns
    -------
    IPython.display.HTML
    """
    img = to_img(np.asarray(values, dtype=np.float32), mask_img)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # masked-array notes from nilearn's colour scaling
        view = view_img(
            img,
            threshold=threshold,
            title=None,  # above the viewer, in the page: the viewer's canvas cuts a long title under its bar
            symmetric_cmap=True,
            black_bg=False,
            colorbar=True,
        )
    page = _NETWORK_LINK.sub("", view.get_standalone())
    frame = (
        f'<p class="cc-map-title">{html.escape(f"{title} ({colorbar_label})")}</p>'
        f'<iframe class="cc-map" title="{html.escape(title)}" srcdoc="{html.escape(page)}" '
        f'style="width: 100%; height: {int(height)}px; border: none;"></iframe>'
    )
    if nifti_path is not None:
        path = write_nifti(nifti_path, img)
        data = Path(path).read_bytes()
        link = f"<code>{html.escape(path.as_posix())}</code>"
        if len(data) <= _MAX_INLINE_NIFTI:  # one click from the page, offline too
            uri = "data:application/gzip;base64," + base64.b64encode(data).decode()
            link = f'<a download="{html.escape(path.name)}" href="{uri}">{html.escape(path.name)}</a> ({link})'
        frame += f'<p class="cc-download">The map as NIfTI: {link}</p>'
    return HTML(frame)


BACLOFEN_COLORS = {"baclofen": "#7b3294", "placebo": "#808080"}

GROUP_COLORS = {"CUD": "#c0392b", "control": "#2c7fb8"}


def _mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    n = len(values)
    mean = values.mean() if n else np.nan
    if n < 2:
        return mean, np.nan, np.nan
    half = stats.t.ppf(0.5 + level / 2, n - 1) * values.std(ddof=1) / np.sqrt(n)
    return mean, mean - half, mean + half


@_book_figure
def plot_motion(motion: pd.DataFrame, value: str = "mean_fd"):
    """Per-run head motion by group and state (points and group means).

    Parameters
    ----------
    motion : pandas.DataFrame
        ``group, state`` and the column ``value`` (e.g. mean framewise displacement).
    """
    fig, ax = plt.subplots(figsize=(5.4, 3.3))
    states = ["neutral", "craving"]
    rng = np.random.default_rng(0)  # jitter only
    for g_i, (group, color) in enumerate(GROUP_COLORS.items()):
        for s_i, state in enumerate(states):
            vals = motion.loc[(motion["group"] == group) & (motion["state"] == state), value].to_numpy()
            x = s_i * 3 + g_i
            ax.scatter(x + rng.uniform(-0.2, 0.2, len(vals)), vals, s=10, color=color, alpha=0.5)
            mean, lo, hi = _mean_ci(vals)
            ax.errorbar(x, mean, yerr=[[mean - lo], [hi - mean]], fmt="o", color="black", capsize=4)
    ax.set_xticks([0.5, 3.5], states)
    ax.set_ylabel(value.replace("_", " ") + (" (mm)" if "fd" in value else ""))
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=g) for g, c in GROUP_COLORS.items()]
    ax.legend(handles=handles, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("Head motion per run (mean ± 95 % CI)")
    fig.tight_layout()
    return fig


@_book_figure
def plot_carpet(bold_path, mask_img: nib.Nifti1Image, t_r: float, title: str | None = None):
    """Carpet plot of one run (nilearn ``plot_carpet``)."""

    fig = plt.figure(figsize=(COLUMN_WIDTH_IN, 3.6))
    nl_carpet(str(bold_path), mask_img=mask_img, t_r=t_r, figure=fig, title=title, standardize="zscore_sample")
    return fig


@_book_figure
def plot_rois(
    mask_img: nib.Nifti1Image, rois: dict[str, np.ndarray], title: str = "ROIs", cut_coords=(-14, -6, 4, 16, 32)
):
    """ROIs as filled contours on the MNI template, one colour per ROI, on axial slices."""

    colors = plt.get_cmap("tab10").colors
    fig = plt.figure(figsize=(COLUMN_WIDTH_IN, 2.2))
    display = plot_anat(
        figure=fig,
        display_mode="z",
        cut_coords=list(cut_coords),
        title=title,
        draw_cross=False,
        dim=-0.5,
        colorbar=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # masked-contour notes from matplotlib
        for color, roi in zip(colors, rois.values()):
            display.add_contours(
                nib.Nifti1Image(roi.astype(np.float32), mask_img.affine),
                levels=[0.5],
                filled=True,
                colors=[color],
                transparency=0.8,
            )
    fig.legend(
        handles=[Patch(color=c, label=name) for c, name in zip(colors, rois)],
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=min(len(rois), 4),
        frameon=False,
    )
    return fig


@_book_figure
def plot_stat(
    values: np.ndarray,
    mask_img: nib.Nifti1Image,
    title: str,
    threshold: float | None = None,
    glass: bool = False,
    keep: np.ndarray | None = None,
    vmax: float | None = None,
    display_mode: str = "ortho",
    cut_coords=(0, 14, 2),
    colorbar_label: str = "t",
    sequential: bool = False,
):
    """A statistic map (stat map or glass brain).

    Parameters
    ----------
    values : ndarray, shape (n_voxels,)
    threshold : float, optional
        Values with smaller magnitude are not shown.
    glass : bool
        Glass brain instead of orthogonal slices.
    keep : ndarray of bool, shape (n_voxels,), optional
        Show only these voxels (e.g. FWE-significant clusters).
    display_mode, cut_coords
        Slices of the stat map (not used for the glass brain), as in nilearn.
    colorbar_label : str
        What the colour bar shows.
    sequential : bool
        A map of positive quantities (e.g. CBF) on a sequential colour scale from 0, rather than a
        signed statistic on a diverging one.
    """

    shown = np.where(keep, values, 0.0) if keep is not None else values
    if sequential and threshold is None:
        threshold = 1e-6  # outside the brain (zero) stays transparent over the template
    img = to_img(shown, mask_img)
    fig = plt.figure(figsize=(COLUMN_WIDTH_IN, 2.9))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="empty mask")  # nothing to show is a valid result
        display = _draw_stat(img, fig, None, threshold, glass, vmax, display_mode, cut_coords, sequential)
    # the title above the slices, wrapped to the figure's width (nilearn's own title box runs past a long one)
    fig.suptitle("\n".join(textwrap.wrap(title, 80)), fontsize=10, y=0.99, va="top")
    _label_colorbar(display, colorbar_label)
    return fig


def _draw_stat(img, fig, title, threshold, glass, vmax, display_mode, cut_coords, sequential=False):

    axes = (0.0, 0.0, 1.0, 0.84)  # the top of the figure is the title's
    scale = {"cmap": "inferno", "symmetric_cbar": False, "vmin": 0.0} if sequential else {}
    if glass:
        return plot_glass_brain(
            img,
            threshold=threshold,
            figure=fig,
            axes=axes,
            title=title,
            colorbar=True,
            plot_abs=False,
            vmax=vmax,
            **scale,
        )
    return plot_stat_map(
        img,
        threshold=threshold,
        figure=fig,
        axes=axes,
        title=title,
        display_mode=display_mode,
        cut_coords=cut_coords,
        vmax=vmax,
        **scale,
    )


@_book_figure
def plot_test(result, mask_img: nib.Nifti1Image, title: str, alpha: float = 0.05):
    """Glass brain of the t map of a permutation test, showing FWE-significant clusters only.

    When no cluster is significant, the figure says so over an empty brain.
    """
    significant = result.clusters.loc[result.clusters["p_fwe_size"] < alpha, "cluster_id"].to_numpy()
    keep = np.isin(result.labels, significant)
    if not keep.any():
        title = f"{title}: no significant cluster"
    vmax = float(np.max(np.abs(result.t))) if keep.any() else None
    return plot_stat(result.t, mask_img, title, threshold=result.threshold, glass=True, keep=keep, vmax=vmax)


@_book_figure
def plot_roi_deltas(diff: pd.DataFrame, targets=("dlpfc", "thalamus_midline")):
    """Craving - neutral NAcc coupling per participant (mean over sessions), by group.

    Parameters
    ----------
    diff : pandas.DataFrame
        From :func:`craving_circuits.cocaine.secondlevel.roi_state_differences` for one strategy.
    """
    per_person = diff.groupby(["participant_id", "group", "target"], as_index=False)["delta"].mean()
    fig, axes = plt.subplots(1, len(targets), figsize=(_panel_width(len(targets), 3.2), 3.3), sharey=True)
    rng = np.random.default_rng(0)  # jitter only
    for ax, target in zip(np.atleast_1d(axes), targets):
        for g_i, (group, color) in enumerate(GROUP_COLORS.items()):
            vals = per_person.loc[(per_person["group"] == group) & (per_person["target"] == target), "delta"]
            ax.scatter(g_i + rng.uniform(-0.15, 0.15, len(vals)), vals, s=14, color=color, alpha=0.6)
            mean, lo, hi = _mean_ci(vals.to_numpy())
            ax.errorbar(g_i + 0.3, mean, yerr=[[mean - lo], [hi - mean]], fmt="o", color="black", capsize=4)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xticks(range(len(GROUP_COLORS)), list(GROUP_COLORS))
        ax.set_title(f"NAcc - {target}")
    np.atleast_1d(axes)[0].set_ylabel("craving - neutral (Fisher z)")
    fig.tight_layout()
    return fig


@_book_figure
def plot_strategy_comparison(diff: pd.DataFrame, targets=("dlpfc", "thalamus_midline")):
    """Mean craving - neutral change (± 95 % CI) by denoising strategy and group."""
    per_person = diff.groupby(["participant_id", "group", "strategy", "target"], as_index=False)["delta"].mean()
    strategies = list(dict.fromkeys(per_person["strategy"]))
    fig, axes = plt.subplots(
        1, len(targets), figsize=(_panel_width(len(targets), 3.4), 0.5 * len(strategies) + 1.8), sharex=True
    )
    for ax, target in zip(np.atleast_1d(axes), targets):
        for g_i, (group, color) in enumerate(GROUP_COLORS.items()):
            for s_i, strategy in enumerate(strategies):
                vals = per_person.loc[
                    (per_person["group"] == group)
                    & (per_person["strategy"] == strategy)
                    & (per_person["target"] == target),
                    "delta",
                ].to_numpy()
                mean, lo, hi = _mean_ci(vals)
                y = s_i + (0.15 if g_i else -0.15)
                ax.errorbar(
                    mean,
                    y,
                    xerr=[[mean - lo], [hi - mean]],
                    fmt="o",
                    color=color,
                    capsize=3,
                    label=group if s_i == 0 else None,
                )
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks(range(len(strategies)), strategies)
        ax.set_title(f"NAcc - {target}")
        ax.set_xlabel("craving - neutral (Fisher z)")
    handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
    fig.tight_layout()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, frameon=False)
    return fig


@_book_figure
def plot_crlb(mrs: pd.DataFrame, metabolite: str = "Glu", max_crlb: float | None = 20.0):
    """Reported CRLB against the measured concentration of every spectrum of one metabolite.

    Low readings get high CRLBs (the CRLB is relative to the fitted value), so a
    CRLB threshold removes low readings more often than high ones.
    """
    sub = mrs[mrs["metabolite"] == metabolite]
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    over = sub["crlb_percent"] > max_crlb if max_crlb is not None else np.zeros(len(sub), bool)
    ax.scatter(
        sub.loc[~over, "value_water"], sub.loc[~over, "crlb_percent"], s=12, color="#2c7fb8", alpha=0.6, label="kept"
    )
    ax.scatter(
        sub.loc[over, "value_water"],
        sub.loc[over, "crlb_percent"],
        s=14,
        color="#c0392b",
        alpha=0.8,
        label=f"CRLB > {max_crlb:g} %" if max_crlb is not None else None,
    )
    if max_crlb is not None:
        ax.axhline(max_crlb, color="grey", lw=0.8, ls="--")
    ax.set_xlabel(f"{metabolite} (water-scaled, i.u.)")
    ax.set_ylabel("CRLB (%)")
    ax.set_title(f"{metabolite}: CRLB against the measured value")
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def _fit_band(ax, x, y, color):
    """Least-squares line and its 95 % band, on the pairs where both values are present."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    present = np.isfinite(x) & np.isfinite(y)
    if present.sum() < 3:
        return
    x, y = x[present], y[present]
    fit = sm.OLS(y, sm.add_constant(x)).fit()
    grid = np.linspace(x.min(), x.max(), 50)
    pred = fit.get_prediction(sm.add_constant(grid)).summary_frame(alpha=0.05)
    ax.plot(grid, pred["mean"], color=color)
    ax.fill_between(grid, pred["mean_ci_lower"], pred["mean_ci_upper"], color=color, alpha=0.2, lw=0)


@_book_figure
def plot_coupling(
    table: pd.DataFrame,
    targets=("thalamus_midline", "dlpfc"),
    glu: str = "dglu",
    glu_label: str = "glutamate change (%)",
):
    """Connectivity change against glutamate change, with the CUD least-squares fit and its 95 % band.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`craving_circuits.cocaine.glutamate.participant_changes`.
    """

    fig, axes = plt.subplots(1, len(targets), figsize=(_panel_width(len(targets), 3.4), 3.6), sharex=True)
    for ax, target in zip(np.atleast_1d(axes), targets):
        for group, color in GROUP_COLORS.items():
            sub = table[table["group"] == group]
            ax.scatter(sub[glu], sub[f"dfc_{target}"], s=18, color=color, alpha=0.7, label=group)
        cud = table[table["group"] == "CUD"]
        x, y = cud[glu].to_numpy(float), cud[f"dfc_{target}"].to_numpy(float)
        if len(x) >= 4:
            _fit_band(ax, x, y, GROUP_COLORS["CUD"])
            r = st.pearsonr(x, y)
            ax.set_title(f"NAcc - {target}\nCUD r = {r.statistic:.2f}, p = {r.pvalue:.3g}")
        ax.axhline(0, color="grey", lw=0.6)
        ax.axvline(0, color="grey", lw=0.6)
        ax.set_xlabel(glu_label)
        ax.set_ylabel("connectivity change (Fisher z)")
    np.atleast_1d(axes)[0].legend(frameon=False, loc="upper left")
    fig.tight_layout()
    return fig


@_book_figure
def plot_predictors(
    table: pd.DataFrame,
    outcome: str,
    predictors=("ocdus_obsessive", "cocaine_g_per_week"),
    log_columns=("cocaine_g_per_week",),
):
    """The outcome against each predictor (CUD), with least-squares fits and 95 % bands."""
    fig, axes = plt.subplots(1, len(predictors), figsize=(_panel_width(len(predictors), 3.4), 3.3), sharey=True)
    y = table[outcome].to_numpy(float)
    for ax, name in zip(np.atleast_1d(axes), predictors):
        x = table[name].to_numpy(float)
        label = name
        if name in log_columns:
            x, label = np.log(x), f"log {name}"
        ax.scatter(x, y, s=18, color=GROUP_COLORS["CUD"], alpha=0.7)
        _fit_band(ax, x, y, GROUP_COLORS["CUD"])
        ax.set_xlabel(label)
    np.atleast_1d(axes)[0].set_ylabel(outcome)
    fig.tight_layout()
    return fig


@_book_figure
def plot_drug_interaction(
    changes: pd.DataFrame,
    by: str | None = "target",
    value: str = "delta",
    ylabel: str = "craving - neutral (Fisher z)",
    drugs=("placebo", "NAC"),
):
    """Interaction plot: the craving - neutral change under each drug, per group (mean ± 95 % CI).

    Parameters
    ----------
    changes : pandas.DataFrame
        One row per participant and session: ``group, drug, value`` and the
        outcome column ``by`` (one panel each; None: one panel).
    """
    outcomes = [None] if by is None else list(dict.fromkeys(changes[by]))
    fig, axes = plt.subplots(
        1, len(outcomes), figsize=(_panel_width(len(outcomes), 3.3), 3.3), sharey=True, squeeze=False
    )
    for ax, outcome in zip(axes[0], outcomes):
        sub = changes if outcome is None else changes[changes[by] == outcome]
        for g_i, (group, color) in enumerate(GROUP_COLORS.items()):
            stats_ = [_mean_ci(sub.loc[(sub["group"] == group) & (sub["drug"] == d), value].to_numpy()) for d in drugs]
            if all(np.isnan(m) for m, _, _ in stats_):
                continue
            x = np.arange(len(drugs)) + (g_i - 0.5) * 0.08
            means = np.array([m for m, _, _ in stats_])
            err = np.array([[m - lo, hi - m] for m, lo, hi in stats_]).T
            ax.errorbar(x, means, yerr=err, fmt="-o", color=color, capsize=4, label=group)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xticks(range(len(drugs)), drugs)
        ax.set_xlim(-0.5, len(drugs) - 0.5)
        if outcome is not None:
            ax.set_title(f"NAcc - {outcome}" if by == "target" else str(outcome))
    axes[0][0].set_ylabel(ylabel)
    axes[0][0].legend(frameon=False)
    fig.tight_layout()
    return fig


@_book_figure
def plot_equivalence(evidence, title: str | None = None):
    """Equivalence-bounds plot: each contrast's 90 % and 95 % CIs against the SESOI bounds.

    Effects are on the standardised scale (d_z within a group, d between
    groups), so that one pair of bounds, ± ``bound_dz``, serves every row.
    Equivalence at level alpha is shown when the thick 90 % interval lies inside
    the shaded band; a difference when the thin 95 % interval excludes 0.

    Parameters
    ----------
    evidence : pandas.DataFrame or dict of label -> DataFrame
        From :func:`craving_circuits.stats.equivalence.evidence_table` (or
        :func:`craving_circuits.cocaine.drug.drug_evidence`); a dict of runs
        overlays them row by row, one colour per run (named in a legend above).
    title : str, optional
        Named in the heading of a single table.
    """
    tables = evidence if isinstance(evidence, dict) else {title or "": evidence}
    terms = list(dict.fromkeys(t for table in tables.values() for t in table["term"]))
    n_runs = len(tables)
    # the runs overlaid row by row (one set of row labels, one scale), each in its own colour
    offsets = np.linspace(0.22, -0.22, n_runs) if n_runs > 1 else np.zeros(1)
    colours = ["black", "#d95f02", "#7570b3", "#1b9e77"]
    row_height = 0.45 if n_runs == 1 else 0.3 + 0.2 * n_runs
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH_IN, row_height * len(terms) + 1.6))
    bounds = {float(table["bound_dz"].iloc[0]) for table in tables.values()}
    if len(bounds) > 1:  # one shaded band serves every run
        raise ValueError(f"The runs have different equivalence bounds (d_z {sorted(bounds)}); draw them one at a time.")
    bound = bounds.pop()
    ax.axvspan(-bound, bound, color="#2ca25f", alpha=0.15, lw=0)
    ax.axvline(0, color="grey", lw=0.8)
    row_of = {term: len(terms) - 1 - i for i, term in enumerate(terms)}  # first term on top
    for (label, table), offset, colour in zip(tables.items(), offsets, colours * n_runs):
        scale = (table["bound"] / table["bound_dz"]).to_numpy(float)  # the SD that standardises each row
        for row, sd in zip(table.itertuples(index=False), scale):
            yi = row_of[row.term] + offset
            ax.plot([row.ci_low / sd, row.ci_high / sd], [yi, yi], color=colour, lw=1)
            ax.plot([row.ci90_low / sd, row.ci90_high / sd], [yi, yi], color=colour, lw=4, solid_capstyle="butt")
            ax.plot(row.estimate / sd, yi, "o", color="white", mec=colour, ms=6)
            ax.annotate(row.verdict, (1.02, yi), xycoords=("axes fraction", "data"), va="center", color=colour)
        if n_runs > 1:
            ax.plot([], [], color=colour, lw=4, label=label)
    ax.set_yticks([row_of[t] for t in terms], terms)
    ax.set_ylim(-0.6, len(terms) - 0.4)
    ax.set_xlabel("standardised effect (d_z; d between groups)")
    heading = f"SESOI ± {bound:g} (shaded)"
    if n_runs > 1:  # the runs named above the axes, outside the data, under the heading
        ax.legend(
            loc="lower left",
            bbox_to_anchor=(0, 1.02),
            frameon=False,
            borderaxespad=0,
            title=heading,
            title_fontsize=plt.rcParams["axes.titlesize"],
            alignment="left",
        )
    else:  # from the figure's left edge, so that a long run title is not pushed out by the row labels
        fig.suptitle(
            f"{title}: {heading}" if title else heading, x=0.01, ha="left", fontsize=plt.rcParams["axes.titlesize"]
        )
    fig.tight_layout()
    return fig


@_book_figure
def plot_bf_robustness(curves: dict, default_scale: float = float(np.sqrt(2) / 2)):
    """BF01 as a function of the Cauchy prior scale, one line per contrast (log axis).

    Parameters
    ----------
    curves : dict of label -> DataFrame
        From :func:`craving_circuits.stats.equivalence.bayes_factor_robustness`.
    """
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for label, curve in curves.items():
        ax.plot(curve["prior_scale"], curve["bf01"], label=label)
    for level, text in (
        (1, ""),
        (3, "moderate for no effect"),
        (10, "strong for no effect"),
        (1 / 3, "moderate for an effect"),
    ):
        ax.axhline(level, color="grey", lw=0.6, ls=":" if level != 1 else "-")
        if text:
            ax.annotate(
                text,
                (1.0, level),
                xycoords=("axes fraction", "data"),
                ha="right",
                va="bottom",
                color="grey",
            )
    ax.axvline(default_scale, color="grey", lw=0.8, ls="--")
    ax.set_yscale("log")
    ax.set_xlabel("Cauchy prior scale r")
    ax.set_ylabel("BF01 (evidence for no effect)")
    ax.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    fig.tight_layout()
    return fig


@_book_figure
def plot_group_time(
    values: pd.DataFrame, value: str, by: str | None = None, ylabel: str | None = None, sessions=("ses-T1", "ses-T2")
):
    """Group x time interaction plot: mean ± 95 % CI per session, one line per group (baclofen study).

    Parameters
    ----------
    values : pandas.DataFrame
        ``group, session_id, value`` (and ``by``, one panel per level).
    """
    panels = [None] if by is None else list(dict.fromkeys(values[by]))
    fig, axes = plt.subplots(1, len(panels), figsize=(_panel_width(len(panels), 3.3), 3.3), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        sub = values if panel is None else values[values[by] == panel]
        for g_i, (group, color) in enumerate(BACLOFEN_COLORS.items()):
            stats_ = [
                _mean_ci(sub.loc[(sub["group"] == group) & (sub["session_id"] == s), value].to_numpy())
                for s in sessions
            ]
            x = np.arange(len(sessions)) + (g_i - 0.5) * 0.08
            means = np.array([m for m, _, _ in stats_])
            err = np.array([[m - lo, hi - m] for m, lo, hi in stats_]).T
            ax.errorbar(x, means, yerr=err, fmt="-o", color=color, capsize=4, label=group)
        ax.set_xticks(range(len(sessions)), [s.removeprefix("ses-") for s in sessions])
        ax.set_xlim(-0.5, len(sessions) - 0.5)
        if panel is not None:
            ax.set_title(str(panel))
        ax.set_ylabel(ylabel or value)
    axes[0][0].legend(frameon=False)
    fig.tight_layout()
    return fig


@_book_figure
def plot_association(table: pd.DataFrame, x: str, y: str, xlabel: str | None = None, ylabel: str | None = None):
    """Scatter of two participant-level changes by group, with the least-squares fit over everyone and its band."""
    fig, ax = plt.subplots(figsize=(5, 3.8))
    for group, color in BACLOFEN_COLORS.items():
        sub = table[table["group"] == group]
        ax.scatter(sub[x], sub[y], s=20, color=color, alpha=0.8, label=group)
    if len(table) >= 4:
        _fit_band(ax, table[x].to_numpy(float), table[y].to_numpy(float), "black")
    ax.axhline(0, color="grey", lw=0.6)
    ax.axvline(0, color="grey", lw=0.6)
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


@_book_figure
def plot_cbf_qc(runs: pd.DataFrame):
    """Mean grey- against white-matter CBF of every run (QC), by group and session."""
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    for group, color in BACLOFEN_COLORS.items():
        for session, marker in (("ses-T1", "o"), ("ses-T2", "s")):
            sub = runs[(runs["group"] == group) & (runs["session_id"] == session)]
            ax.scatter(
                sub["mean_wm_cbf"],
                sub["mean_gm_cbf"],
                s=18,
                color=color,
                marker=marker,
                alpha=0.7,
                label=f"{group}, {session.removeprefix('ses-')}",
            )
    ax.set_xlabel("mean white-matter CBF (ml/100 g/min)")
    ax.set_ylabel("mean grey-matter CBF (ml/100 g/min)")
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


@_book_figure
def plot_calibration(summary: pd.DataFrame, alpha: float = 0.05):
    """Every error rate (false positives where a claim's effect is absent, equivalence at the bound) with its
    interval, and power against the effect size.

    Parameters
    ----------
    summary : pandas.DataFrame
        From :func:`craving_circuits.verdict.calibration.calibration_summary`.
    """

    fpr = summary[summary["holds"].notna()]
    power = summary[summary["measure"] == "power"]
    n_power = power["claim_id"].nunique()
    height = max(2.5, 0.17 * len(fpr) + 1.0)
    legend_rows = n_power  # the power panel's legend, one column under it (two would run past the column)
    lower = 2.4 + 0.2 * legend_rows + 0.6
    fig, (left, right) = plt.subplots(
        2, 1, figsize=(COLUMN_WIDTH_IN, height + lower), gridspec_kw={"height_ratios": [height, lower]}
    )
    first_of_claim = ~fpr["claim_id"].duplicated().to_numpy()
    labels = [_calibration_label(row, first) for row, first in zip(fpr.itertuples(), first_of_claim)]
    y = np.arange(len(fpr))[::-1]
    colors = ["#2c7fb8" if w else "#c0392b" for w in fpr["holds"]]
    left.errorbar(
        fpr["rate"],
        y,
        xerr=[fpr["rate"] - fpr["ci_low"], fpr["ci_high"] - fpr["rate"]],
        fmt="none",
        ecolor="0.6",
        lw=1.2,
    )
    left.scatter(fpr["rate"], y, c=colors, zorder=3)
    left.axvline(alpha, color="k", ls="--", lw=0.8)
    left.axvline(float(fpr["criterion"].max()), color="#c0392b", ls=":", lw=0.8)
    left.set_yticks(y, labels)
    left.set_xlabel(
        "error rate, 95 % Clopper-Pearson interval\n(dashed: alpha; dotted: the criterion of the upper end)"
    )
    left.set_title("Does each test hold its level?")
    factors = {c: f for c, f in CONDITIONS.items() if f > 0}
    for claim_id, sub in power.groupby("claim_id", sort=False):
        sub = sub[sub["condition"].isin(factors)]
        x = sub["condition"].map(factors)
        right.plot(x, sub["rate"], marker="o", lw=1, label=claim_id)
    right.axhline(0.8, color="0.5", ls=":", lw=0.8)
    right.set_xscale("log", base=2)
    right.set_xticks(list(factors.values()), [f"{c}\n(x{f:g})" for c, f in factors.items()])
    right.set_ylim(-0.02, 1.02)
    right.set_xlabel("planted effects")
    right.set_ylabel("power")
    right.set_title("How often is a planted effect found?")
    right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.32), ncol=1, title="claim", frameon=False)
    fig.tight_layout()
    return fig


def _calibration_label(row, first: bool) -> str:
    """A row of the error-rate panel: the claim on its first row only, then the condition (a threat without its
    prefix; an equivalence bound as "NAC <outcome> at bound", "at its bound" for the claim's own), and
    "(equivalence)" for a rate of declaring equivalence."""
    condition = str(row.condition)
    if condition == f"at_bound_{row.claim_id}":
        condition = "at its bound"
    elif condition.startswith("at_bound_nac_no_effect_"):
        condition = f"NAC {condition.removeprefix('at_bound_nac_no_effect_')} at bound"
    condition = condition.removeprefix("threat_").replace("_", " ")
    kind = " (equivalence)" if row.measure != "false-positive rate" else ""
    return f"{row.claim_id} \u00b7 {condition}{kind}" if first else f"{condition}{kind} \u00b7"


@_book_figure
def plot_specification_curve(table: pd.DataFrame, target: str, term: str):
    """Specification curve of one contrast: estimates with CIs sorted, and the choices below them.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`craving_circuits.cocaine.multiverse.multiverse_table`.
    target, term : str
        Which contrast.
    """

    sub = table[(table["target"] == target) & (table["term"] == term)]
    if sub.empty:
        raise ValueError(f"No rows for target {target!r} and term {term!r}.")
    ordered = _spec_order(sub)
    matrix = specification_matrix(sub)
    x = np.arange(len(ordered))
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(COLUMN_WIDTH_IN, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    colors = np.where(ordered["significant"], "#c0392b", "0.5")
    top.vlines(x, ordered["ci_low"], ordered["ci_high"], colors=colors, lw=1.5)
    top.scatter(x, ordered["estimate"], c=colors, zorder=3)
    top.axhline(0, color="k", lw=0.8)
    top.set_ylabel("estimate (Fisher z)")
    top.set_title(
        f"{term} ({target})\n{int(ordered['significant'].sum())} of {len(ordered)} specifications significant (red)"
    )
    for row, name in enumerate(matrix.columns):
        on = matrix[name].to_numpy() == 1
        bottom.scatter(x[on], np.full(on.sum(), row), marker="s", color="k", s=25)
        bottom.scatter(x[~on], np.full((~on).sum(), row), marker="s", color="0.85", s=25)
    bottom.set_yticks(range(len(matrix.columns)), matrix.columns)
    bottom.invert_yaxis()
    bottom.set_xlabel("specification (sorted by estimate)")
    bottom.set_xticks(x)
    fig.tight_layout()
    return fig
