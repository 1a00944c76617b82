"""The planted truth of a simulated study, and the chapters' "recovered vs planted" tables.

* :func:`load_ground_truth` reads a simulated study's ``ground_truth.json``
  (None for real data).
* :func:`recovered_vs_planted` compares a chapter's estimates (read from its
  result tables through the claims registry, :func:`craving_circuits.verdict.claims.estimates`;
  :func:`chapter_recovery` does both) with the simulation's ground
  truth. An effect counts as *found* when ``p < alpha`` with the planted sign; a
  planted absence is *recovered* when the test is not significant. ``agree`` says
  whether the analysis and the truth tell the same story. On real data (no
  ground truth) the planted columns are empty.
* :func:`planted_regions_vs_rois` sets the regions where the simulators plant
  their effects (:mod:`craving_circuits.simulate.regions`) against the analysis
  ROIs that stand for them: the planted regions are defined apart from the
  ROIs, which overlap them only in part, so the chapters' ROI estimates are
  diluted versions of the planted amounts.
* :func:`truth_maps` reads the true maps of a simulated study's runs (true
  CBF, true cue response), which the simulator writes into its ground-truth
  folder, never next to the data; :func:`map_recovery` compares the maps a
  chapter measured with them: bias (mean measured minus true) and
  correlations across voxels and across participants, per region. The
  simulator does not make its images with the models the analysis inverts
  (Buxton's kinetic model against the white paper's equation, participants'
  own HRFs against the canonical one), so the bias is not zero by
  construction: the table says how large it is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from craving_circuits.io.files import read_json, read_nifti, read_tsv
from craving_circuits.io.schemas import EVIDENCE_RECOVERY_COLUMNS, MAP_RECOVERY_COLUMNS, RECOVERY_COLUMNS
from craving_circuits.simulate import regions
from craving_circuits.simulate.baclofen import baclofen_params
from craving_circuits.simulate.cocaine import cocaine_params
from craving_circuits.stats.correlation import fisher_z, mean_change
from craving_circuits.verdict import claims

__all__ = [
    "load_ground_truth",
    "planted_table",
    "recovered_vs_planted",
    "chapter_recovery",
    "evidence_vs_planted",
    "RECOVERY_COLUMNS",
    "EVIDENCE_RECOVERY_COLUMNS",
    "agreement_by_effect",
    "planted_regions_vs_rois",
    "truth_maps",
    "map_recovery",
    "MAP_RECOVERY_COLUMNS",
]


def _ground_truth_file(study) -> Path:
    return Path(
        getattr(study, "ground_truth_file", None) or Path(study) / "derivatives" / "simulation" / "ground_truth.json"
    )


def load_ground_truth(study) -> dict | None:
    """The ground truth of a simulated study (a :class:`~craving_circuits.cocaine.layout.Study` or a BIDS root).

    None for a study without one (real data).
    """
    path = _ground_truth_file(study)
    return read_json(path, "ground truth") if path.is_file() else None


def planted_table(truth: dict | None) -> pd.DataFrame:
    """Planted effects as a table: ``effect, description, scale, planted, present``."""
    if truth is None:
        return pd.DataFrame(columns=["effect", "description", "scale", "planted", "present"])
    return pd.DataFrame(truth["effects"])


def recovered_vs_planted(estimates: pd.DataFrame, truth: dict | None, alpha: float = 0.05) -> pd.DataFrame:
    """Compare estimates with the planted effects.

    Parameters
    ----------
    estimates : pandas.DataFrame
        Columns ``effect`` (a planted effect name), ``test``, ``estimate``,
        ``ci_low``, ``ci_high``, ``p``, and ``estimand`` (the registry's id) when
        they come from :func:`craving_circuits.verdict.claims.estimates`.
    truth : dict or None
        From :func:`load_ground_truth`.
    alpha : float

    Returns
    -------
    table : pandas.DataFrame
        Columns :data:`RECOVERY_COLUMNS`.
    """
    missing = {"effect", "test", "estimate", "ci_low", "ci_high", "p"} - set(estimates.columns)
    if missing:
        raise ValueError(f"estimates lack the column(s) {sorted(missing)}.")
    planted = planted_table(truth).set_index("effect") if truth is not None else None
    rows = []
    for row in estimates.itertuples(index=False):
        significant = bool(row.p < alpha) if pd.notna(row.p) else False
        if planted is not None and row.effect in planted.index:
            value = float(planted.loc[row.effect, "planted"])
            present = bool(planted.loc[row.effect, "present"])
            found = significant and (not present or np.sign(row.estimate) == np.sign(value))
            agree = found == present
        else:
            if planted is not None:
                raise ValueError(f"{row.effect!r} is not a planted effect; known: {sorted(planted.index)}.")
            value, present, found, agree = np.nan, None, significant, None
        rows.append(
            {
                "estimand": getattr(row, "estimand", None),
                "effect": row.effect,
                "test": row.test,
                "planted": value,
                "estimate": row.estimate,
                "ci_low": row.ci_low,
                "ci_high": row.ci_high,
                "p": row.p,
                "planted_present": present,
                "found": found,
                "agree": agree,
            }
        )
    return pd.DataFrame(rows, columns=RECOVERY_COLUMNS)


def chapter_recovery(chapter: str, tables: dict, truth: dict | None, alpha: float = 0.05) -> pd.DataFrame:
    """A chapter's "recovered vs planted" table: its registry estimands read from its result tables, against the truth.

    Parameters
    ----------
    chapter : str
        A chapter of :data:`craving_circuits.verdict.claims.ESTIMANDS`.
    tables : dict of str -> pandas.DataFrame
        The chapter's result tables by name.
    truth : dict or None
    alpha : float

    Returns
    -------
    table : pandas.DataFrame
        Columns :data:`RECOVERY_COLUMNS`, one row per estimand (the ledger reads
        its claims' rows by ``estimand``).
    """
    return recovered_vs_planted(claims.estimates(chapter, tables), truth, alpha=alpha)


def evidence_vs_planted(evidence: pd.DataFrame, effects, truth: dict | None) -> pd.DataFrame:
    """Verdicts of the evidence tables (difference, equivalence, Bayes factor) against the planted truth.

    A planted effect is recovered when the verdict shows a difference of the
    planted sign (``"effect"`` or ``"trivial effect"``); a planted absence when
    the verdict shows equivalence (``"equivalent"`` or ``"trivial effect"``):
    merely not finding an effect (``"inconclusive"``) does not count as
    showing its absence.

    Parameters
    ----------
    evidence : pandas.DataFrame
        From :func:`craving_circuits.stats.equivalence.evidence_table` or
        :func:`craving_circuits.cocaine.drug.drug_evidence`.
    effects : sequence of str, or dict
        The planted effect of each row of ``evidence``, or a mapping from the
        ``contrast`` column to it (e.g. :data:`craving_circuits.verdict.claims.DRUG_EFFECTS`).
    truth : dict or None

    Returns
    -------
    table : pandas.DataFrame
        Columns :data:`EVIDENCE_RECOVERY_COLUMNS` (planted columns empty on real data).
    """
    if isinstance(effects, dict):
        unknown = set(evidence["contrast"]) - set(effects)
        if unknown:
            raise ValueError(f"No planted effect given for the contrast(s) {sorted(unknown)}.")
        effects = evidence["contrast"].map(effects)
    effects = list(effects)
    if len(effects) != len(evidence):
        raise ValueError(f"{len(effects)} effect names for {len(evidence)} evidence rows; give one per row.")
    planted = planted_table(truth).set_index("effect") if truth is not None else None
    rows = []
    for effect, row in zip(effects, evidence.itertuples(index=False)):
        value, present, agree = np.nan, None, None
        if planted is not None:
            if effect not in planted.index:
                raise ValueError(f"{effect!r} is not a planted effect; known: {sorted(planted.index)}.")
            value = float(planted.loc[effect, "planted"])
            present = bool(planted.loc[effect, "present"])
            if present:
                agree = row.verdict in ("effect", "trivial effect") and np.sign(row.estimate) == np.sign(value)
            else:
                agree = row.verdict in ("equivalent", "trivial effect")
        rows.append(
            {
                "effect": effect,
                "term": row.term,
                "planted": value,
                "estimate": row.estimate,
                "ci90_low": row.ci90_low,
                "ci90_high": row.ci90_high,
                "bound": row.bound,
                "p": row.p,
                "p_equivalence": row.p_equivalence,
                "bf01": row.bf01,
                "verdict": row.verdict,
                "planted_present": present,
                "agree": agree,
            }
        )
    return pd.DataFrame(rows, columns=EVIDENCE_RECOVERY_COLUMNS)


def agreement_by_effect(recovery: pd.DataFrame) -> pd.DataFrame:
    """Per planted effect: how many of its tests found it, and how many agree with the truth.

    Parameters
    ----------
    recovery : pandas.DataFrame
        From :func:`recovered_vs_planted`.

    Returns
    -------
    summary : pandas.DataFrame
        ``effect, planted, n_tests, n_found, n_agree``.
    """
    out = recovery.groupby("effect", sort=False).agg(
        planted=("planted", "first"), n_tests=("test", "size"), n_found=("found", "sum"), n_agree=("agree", "sum")
    )
    return out.reset_index().astype({"n_found": int, "n_agree": int})


def planted_regions_vs_rois(
    preset: str = "paper", cocaine_overrides: dict | None = None, baclofen_overrides: dict | None = None
) -> pd.DataFrame:
    """Each planted region of the two simulated studies against the analysis ROI it stands for.

    Per study, :func:`craving_circuits.simulate.regions.region_overlap` on the
    study's grid, with its seed and participants: the Dice overlap of the
    planted region (thresholded at half its maximum) with the ROI and the
    distance between their centres of mass, for the template region and as the
    range over the participants' anatomical jitter, and the share of the
    region's peak effect that the ROI mean carries.

    Parameters
    ----------
    preset : str
        A preset of both simulators (``paper``, ``null``, ``tiny``, ``tiny_null``).
    cocaine_overrides, baclofen_overrides : dict, optional
        Parameters of each study that replace the preset's (only the seed, the
        voxel size and the sample sizes matter here).

    Returns
    -------
    table : pandas.DataFrame, one row per study and planted region
        The columns of :func:`~craving_circuits.simulate.regions.region_overlap`,
        plus ``peaks_mm`` (the template's peak coordinates, as text).
    """
    cocaine = cocaine_params(preset, **(cocaine_overrides or {}))
    baclofen = baclofen_params(preset, **(baclofen_overrides or {}))
    tables = [
        regions.region_overlap("cocaine", cocaine.voxel_size_mm, cocaine.seed, cocaine.n_participants),
        regions.region_overlap(
            "baclofen", baclofen.voxel_size_mm, baclofen.seed, baclofen.n_baclofen + baclofen.n_placebo
        ),
    ]
    table = pd.concat(tables, ignore_index=True)
    peaks = {
        name: "; ".join("({:g}, {:g}, {:g})".format(*peak) for peak in region.peaks_mm)
        for name, region in regions.PLANTED_REGIONS.items()
    }
    table.insert(3, "peaks_mm", table["region"].map(peaks))
    return table


#: The kinds of true maps, and the column of the ground truth's sessions table that names each map's file.
_MAP_COLUMNS = {"cbf": "true_cbf_map", "cue": "true_cue_map"}


def truth_maps(study, runs: pd.DataFrame, kind: str, mask_img) -> np.ndarray | None:
    """The true maps of a simulated study's runs, over the analysis mask.

    Parameters
    ----------
    study : path or Study
        A simulated study (its ``derivatives/simulation/ground_truth.json``
        lists the sessions table, whose ``true_<kind>_map`` column names each
        session's map, relative to that folder).
    runs : pandas.DataFrame
        ``participant_id, session_id``: one row per measured map.
    kind : {"cbf", "cue"}
        True CBF (ml/100 g/min) or true smoking - neutral cue response (% signal).
    mask_img : nibabel image
        The analysis mask; the true maps must be on its grid.

    Returns
    -------
    maps : ndarray of float, shape (n_runs, n_voxels), or None
        In the order of ``runs``, over the voxels of ``mask_img``; NaN where
        the simulator had no brain. None for a study without ground truth
        (real data).

    Raises
    ------
    ValueError
        For an unknown ``kind``, a ground truth without such maps, a run
        without its map, or a map on another grid.
    """
    if kind not in _MAP_COLUMNS:
        raise ValueError(f"Unknown kind of true map {kind!r}; known: {sorted(_MAP_COLUMNS)}.")
    truth = load_ground_truth(study)
    if truth is None:
        return None
    folder = _ground_truth_file(study).parent
    column = _MAP_COLUMNS[kind]
    sessions = read_tsv(folder / truth["files"]["sessions"], "ground-truth sessions")
    if column not in sessions:
        raise ValueError(
            f"{folder / truth['files']['sessions']} has no column {column!r}: this study's simulator wrote no true "
            f"{kind} maps; simulate it again with this version."
        )
    keys = ["participant_id", "session_id"]
    merged = runs[keys].reset_index(drop=True).merge(sessions[keys + [column]], on=keys, how="left")
    missing = merged[merged[column].isna()]
    if not missing.empty:
        raise ValueError(f"No true {kind} map for the run(s) {missing[keys].values.tolist()} in the ground truth.")
    mask = np.asarray(mask_img.dataobj) > 0
    out = np.empty((len(merged), int(mask.sum())))
    for i, name in enumerate(merged[column]):
        img = read_nifti(folder / name)
        if tuple(img.shape[:3]) != mask.shape or not np.allclose(img.affine, mask_img.affine, atol=1e-3):
            raise ValueError(f"{folder / name} is not on the grid of the analysis mask {mask.shape}.")
        out[i] = np.asarray(img.dataobj, dtype=float)[mask]
    return out


def _fisher_row(r: float, n: int, alpha: float) -> dict:
    """Pearson r with its t-test p, classical SE and Fisher-z interval (NaN below 4 pairs)."""
    if n < 4 or not np.isfinite(r):
        return {"n": n, "estimate": r, "se": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p": np.nan}
    half = stats.norm.ppf(1 - alpha / 2) / np.sqrt(n - 3)
    t = r * np.sqrt((n - 2) / max(1 - r**2, 1e-300))
    return {
        "n": n,
        "estimate": r,
        "se": float(np.sqrt((1 - r**2) / (n - 2))),
        "ci_low": float(np.tanh(fisher_z(r) - half)),
        "ci_high": float(np.tanh(fisher_z(r) + half)),
        "p": float(2 * stats.t.sf(abs(t), n - 2)),
    }


def _mean_row(values: np.ndarray, term: str, alpha: float) -> dict:
    """One-sample t row of a mean (identical values: SE 0, the value as its interval, p undefined)."""
    if np.ptp(values) == 0:
        v = float(values[0])
        return {"term": term, "n": len(values), "estimate": v, "se": 0.0, "ci_low": v, "ci_high": v, "p": np.nan}
    return mean_change(values, term, alpha=alpha).iloc[0].to_dict()


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or np.std(x) == 0 or np.std(y) == 0:
        return np.nan
    return float(np.corrcoef(x, y)[0, 1])


def map_recovery(
    measured: np.ndarray,
    true: np.ndarray | None,
    runs: pd.DataFrame,
    mask_img,
    regions: dict | None = None,
    unit: str = "ml/100 g/min",
    whole_brain: bool = True,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Measured maps against the true maps: bias and correlations, per region.

    Per run and region: the mean of the measured and of the true map over the
    region's voxels (where the truth is defined), and their Pearson r across
    those voxels. Then, per region:

    * ``bias (<unit>)``: mean measured minus true, each participant's runs
      averaged first, with the one-sample t test over participants;
    * ``bias (%)``: the same relative to the mean true value (its SE and
      interval scaled alike);
    * ``r across voxels``: the mean over participants of the runs' Fisher z,
      back-transformed (SE by the delta method, interval and p from the t test
      of the z);
    * ``r across participants (<session>)``: of the region means, one per
      session, and, with two sessions, of their changes (``<second> - <first>``,
      which the group x time tests analyse), with Fisher-z intervals.

    Parameters
    ----------
    measured : ndarray, shape (n_runs, n_voxels)
        The maps of the analysis (e.g. quantified CBF), over ``mask_img``.
    true : ndarray, shape (n_runs, n_voxels), or None
        From :func:`truth_maps`; None (real data) gives an empty table.
    runs : pandas.DataFrame
        ``participant_id, session_id`` of each row of ``measured``.
    mask_img : nibabel image
    regions : dict of str -> bool ndarray, optional
        Regions on the grid of ``mask_img`` (or over its voxels).
    unit : str
        Unit of the maps, for the bias term.
    whole_brain : bool
        Also (first) the whole mask, as region ``"brain"``.
    alpha : float

    Returns
    -------
    table : pandas.DataFrame
        Columns :data:`MAP_RECOVERY_COLUMNS`.
    """
    if true is None:
        return pd.DataFrame(columns=MAP_RECOVERY_COLUMNS)
    measured, true = np.asarray(measured, dtype=float), np.asarray(true, dtype=float)
    if measured.shape != true.shape or measured.shape[0] != len(runs):
        raise ValueError(
            f"measured maps {measured.shape}, true maps {true.shape} and {len(runs)} runs do not match; "
            "give one row of each per run."
        )
    mask = np.asarray(mask_img.dataobj) > 0
    defined = np.isfinite(true).all(axis=0)
    ids = runs[["participant_id", "session_id"]].reset_index(drop=True)
    rows = []
    everything = {"brain": np.ones(measured.shape[1], bool)} if whole_brain else {}
    if not everything and not regions:
        raise ValueError("No region to compare: give regions, or whole_brain=True.")
    for name, region in {**everything, **(regions or {})}.items():
        region = np.asarray(region, bool)
        inside = (region[mask] if region.shape == mask.shape else region) & defined
        if not inside.any():
            raise ValueError(f"Region {name!r} has no voxel with a true value in the analysis mask.")
        m, t = measured[:, inside], true[:, inside]
        per_run = ids.assign(
            measured=m.mean(axis=1),
            true=t.mean(axis=1),
            z=fisher_z(np.array([_pearson(a, b) for a, b in zip(m, t)])),
        )
        per_run["bias"] = per_run["measured"] - per_run["true"]
        by_participant = per_run.groupby("participant_id", sort=True)[["bias", "true", "z"]].mean()
        bias = _mean_row(by_participant["bias"].to_numpy(), f"bias ({unit})", alpha)
        level = float(by_participant["true"].mean())
        relative = {**bias, "term": "bias (%)"}
        for column in ("estimate", "se", "ci_low", "ci_high"):
            relative[column] = 100 * bias[column] / level if level != 0 else np.nan
        out = [bias, relative]
        z = by_participant["z"].to_numpy()
        z = z[np.isfinite(z)]
        if len(z) >= 2:
            zrow = _mean_row(z, "r across voxels", alpha)
            r = float(np.tanh(zrow["estimate"]))
            out.append(
                {
                    **zrow,
                    "estimate": r,
                    "se": (1 - r**2) * zrow["se"],
                    "ci_low": float(np.tanh(zrow["ci_low"])),
                    "ci_high": float(np.tanh(zrow["ci_high"])),
                }
            )
        sessions = sorted(per_run["session_id"].unique())
        for session in sessions:
            one = per_run[per_run["session_id"] == session]
            r = _pearson(one["measured"].to_numpy(), one["true"].to_numpy())
            out.append({"term": f"r across participants ({session})", **_fisher_row(r, len(one), alpha)})
        if len(sessions) == 2:
            wide = per_run.pivot_table(index="participant_id", columns="session_id", values=["measured", "true"])
            change = (wide.xs(sessions[1], axis=1, level=1) - wide.xs(sessions[0], axis=1, level=1)).dropna()
            r = _pearson(change["measured"].to_numpy(), change["true"].to_numpy())
            term = f"r across participants ({sessions[1]} - {sessions[0]})"
            out.append({"term": term, **_fisher_row(r, len(change), alpha)})
        rows += [{**row, "region": name} for row in out]
    return pd.DataFrame(rows, columns=MAP_RECOVERY_COLUMNS)
