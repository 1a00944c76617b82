"""Group-level analyses of seed connectivity: voxelwise maps and ROI state contrasts.

Data conventions
----------------
* Maps are ``(n_maps, n_voxels)`` float arrays over the analysis mask (C order
  of ``np.argwhere(mask)``); ``to_img`` puts one back into a 3D image.
* The state contrast of a participant is ``craving - neutral`` Fisher z, per
  session, then combined over sessions (``sessions="both"``: the mean of the
  sessions that have both states; ``"placebo"`` or ``"NAC"``: that session only).
  A session without both states is listed in the exclusions, never dropped
  silently.
* The drug contrast of a participant is the double difference
  ``(craving - neutral | NAC) - (craving - neutral | placebo)``; it needs both
  sessions with both states.
* Voxelwise tests: within a group (one-sample, sign flipping) and CUD vs
  controls (two-sample, Welch's statistic with a variance per group and sign
  flipping), on the state contrast (:data:`GROUP_TESTS`) or on the drug
  contrast (:data:`DRUG_TESTS`, adjusted for period), by
  :func:`craving_circuits.stats.permutation.cluster_permutation_test`.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd

from craving_circuits.cocaine.drug import DRUGS, session_order
from craving_circuits.io.schemas import EXCLUSION_COLUMNS, REPLICATE
from craving_circuits.stats.correlation import mean_change, mean_difference
from craving_circuits.stats.permutation import cluster_permutation_test

__all__ = [
    "state_difference_maps",
    "drug_difference_maps",
    "DRUG_TESTS",
    "GROUP_TESTS",
    "group_test",
    "group_tests",
    "roi_state_differences",
    "participant_state_changes",
    "ROI_TEST_COLUMNS",
    "roi_state_tests",
]

#: Voxelwise group tests of the state contrast maps.
GROUP_TESTS = {
    "craving_cud": "Craving minus neutral within CUD (one-sample)",
    "craving_control": "Craving minus neutral within controls (one-sample)",
    "group_x_state": "CUD minus controls in craving minus neutral (two-sample)",
}

#: Voxelwise tests of the drug contrast maps (:func:`drug_difference_maps`).
DRUG_TESTS = {
    "drug_x_state_cud": "NAC minus placebo in craving minus neutral, CUD (one-sample)",
    "drug_x_state_control": "NAC minus placebo in craving minus neutral, controls (one-sample)",
    "group_x_state_x_drug": "CUD minus controls in the drug contrast (two-sample)",
}

# the group a test keeps (None: both, CUD against controls)
_TEST_GROUP = {
    "craving_cud": "CUD",
    "craving_control": "control",
    "group_x_state": None,
    "drug_x_state_cud": "CUD",
    "drug_x_state_control": "control",
    "group_x_state_x_drug": None,
}


def _check_sessions(sessions: str) -> None:
    if sessions not in ("both", "placebo", "NAC"):
        raise ValueError(f"sessions must be 'both', 'placebo' or 'NAC', got {sessions!r}.")


def _state_map(maps: np.ndarray, pair: pd.DataFrame, state: str) -> np.ndarray:
    """The map of a state in one session: its run's, or the mean over its runs when there are several."""
    rows = pair.index[pair["state"] == state]
    return maps[rows[0]] if len(rows) == 1 else maps[rows].mean(axis=0)


def state_difference_maps(runs: pd.DataFrame, maps: np.ndarray, sessions: str = "both"):
    """Per-participant craving - neutral maps.

    Parameters
    ----------
    runs : pandas.DataFrame
        Analysed runs (``participant_id, group, session_id, drug, state``), row
        ``i`` matching ``maps[i]``. Several runs of a state in a session
        (``collect_runs(..., multiple_runs="average")``) are averaged before
        the difference.
    maps : ndarray, shape (n_runs, n_voxels)
    sessions : {"both", "placebo", "NAC"}

    Returns
    -------
    diff : ndarray of float32, shape (n_participants, n_voxels)
    table : pandas.DataFrame
        ``participant_id, group, n_sessions`` in the row order of ``diff``.
    exclusions : pandas.DataFrame
        Sessions left out (no pair of states, or another drug when
        ``sessions`` names one), stage ``"second level"``.
    """
    _check_sessions(sessions)
    if len(runs) != len(maps):
        raise ValueError(f"{len(runs)} runs but {len(maps)} maps; they must match row by row.")
    runs = runs.reset_index(drop=True)
    rows, diffs, exclusions = [], [], []
    for pid, sub in runs.groupby("participant_id", sort=True):
        per_session = []
        for ses, pair in sub.groupby("session_id", sort=True):
            drug = pair["drug"].iloc[0]
            states = set(pair["state"])
            if sessions != "both" and drug != sessions:
                exclusions.append(
                    {
                        "participant_id": pid,
                        "session_id": ses,
                        "state": "both",
                        "stage": "second level",
                        "file": "",
                        "reason": f"{drug} session; analysis restricted to {sessions}",
                    }
                )
                continue
            if states != {"neutral", "craving"}:
                missing = ({"neutral", "craving"} - states).pop()
                exclusions.append(
                    {
                        "participant_id": pid,
                        "session_id": ses,
                        "state": missing,
                        "stage": "second level",
                        "file": "",
                        "reason": f"no analysable {missing} run in this session, so no craving - neutral",
                    }
                )
                continue
            per_session.append(_state_map(maps, pair, "craving") - _state_map(maps, pair, "neutral"))
        if per_session:
            diffs.append(np.mean(per_session, axis=0))
            rows.append({"participant_id": pid, "group": sub["group"].iloc[0], "n_sessions": len(per_session)})
    n_vox = maps.shape[1] if maps.ndim == 2 else 0
    diff = np.vstack(diffs).astype(np.float32) if diffs else np.zeros((0, n_vox), np.float32)
    return diff, pd.DataFrame(rows), pd.DataFrame(exclusions, columns=EXCLUSION_COLUMNS)


def drug_difference_maps(runs: pd.DataFrame, maps: np.ndarray, drugs=("NAC", "placebo")):
    """Per-participant drug contrast of the state contrast: a double difference map.

    Parameters
    ----------
    runs : pandas.DataFrame
        Analysed runs (``participant_id, group, session_id, drug, state``), row
        ``i`` matching ``maps[i]``; several runs of a state in a session are averaged.
    maps : ndarray, shape (n_runs, n_voxels)
    drugs : (str, str)
        ``(active, reference)``: the map is ``(craving - neutral | active) -
        (craving - neutral | reference)``.

    Returns
    -------
    diff : ndarray of float32, shape (n_participants, n_voxels)
    table : pandas.DataFrame
        ``participant_id, group, sequence`` in the row order of ``diff``;
        ``sequence`` is ``"<active>-<reference>"`` when the active drug's
        session comes first (natural order of the session labels, as
        :func:`craving_circuits.cocaine.drug.session_order`), else
        ``"<reference>-<active>"``.
    exclusions : pandas.DataFrame
        Participants left out (a session without both states, or a drug with
        no session), stage ``"drug contrast"``.
    """
    if len(runs) != len(maps):
        raise ValueError(f"{len(runs)} runs but {len(maps)} maps; they must match row by row.")
    active, reference = drugs
    runs = runs.reset_index(drop=True)
    rank = session_order(runs["session_id"])
    rows, diffs, exclusions = [], [], []
    for pid, sub in runs.groupby("participant_id", sort=True):
        by_drug, missing, when = {}, [], {}
        for drug in (active, reference):
            session = sub[sub["drug"] == drug]
            if len(session):
                when[drug] = rank[session["session_id"].iloc[0]]
            states = set(session["state"])
            if session["session_id"].nunique() > 1:
                raise ValueError(
                    f"{pid} has {session['session_id'].nunique()} {drug} sessions; the crossover "
                    "design has one per drug. Fix the drug column of the sessions table."
                )
            if states != {"neutral", "craving"}:
                missing.append(f"{drug}: " + (", ".join(sorted({"neutral", "craving"} - states)) or "no runs"))
                continue
            by_drug[drug] = _state_map(maps, session, "craving") - _state_map(maps, session, "neutral")
        if missing:
            exclusions.append(
                {
                    "participant_id": pid,
                    "session_id": "",
                    "state": "",
                    "stage": "drug contrast",
                    "file": "",
                    "reason": "no craving - neutral contrast under " + "; ".join(missing),
                }
            )
            continue
        diffs.append(by_drug[active] - by_drug[reference])
        sequence = f"{active}-{reference}" if when[active] < when[reference] else f"{reference}-{active}"
        rows.append({"participant_id": pid, "group": sub["group"].iloc[0], "sequence": sequence})
    n_vox = maps.shape[1] if maps.ndim == 2 else 0
    diff = np.vstack(diffs).astype(np.float32) if diffs else np.zeros((0, n_vox), np.float32)
    return (
        diff,
        pd.DataFrame(rows, columns=["participant_id", "group", "sequence"]),
        pd.DataFrame(exclusions, columns=EXCLUSION_COLUMNS),
    )


def _sequence_confounds(table: pd.DataFrame, keep: np.ndarray, between: bool, drugs=DRUGS) -> np.ndarray:
    """Sequence codes (+1/2 active first, -1/2 reference first), one column per group for a group comparison.

    With these codes the tested coefficient is the average of the two
    sequences' means (within a group) or the difference of those averages
    between groups: the crossover's drug effect adjusted for period.
    """
    active, reference = drugs
    sequence = table["sequence"].to_numpy()[keep]
    known = {f"{active}-{reference}", f"{reference}-{active}"}
    if not set(sequence) <= known:
        raise ValueError(f"Unknown sequence label(s) {sorted(set(sequence) - known)}; expected {sorted(known)}.")
    codes = np.where(sequence == f"{active}-{reference}", 0.5, -0.5)
    groups = table["group"].to_numpy()[keep]
    columns = []
    for group in np.unique(groups) if between else [None]:
        members = np.ones(len(codes), bool) if group is None else groups == group
        n_first, n_second = int((codes[members] > 0).sum()), int((codes[members] < 0).sum())
        if min(n_first, n_second) < 1:
            raise ValueError(
                f"{group or 'The tested group'}: {n_first} participant(s) took {active} first and {n_second} "
                "second; the period adjustment needs both orders. Pass period=False only if a period effect "
                "can be ruled out."
            )
        columns.append(np.where(members, codes, 0.0))
    return np.column_stack(columns)


def group_test(
    test: str,
    diff: np.ndarray,
    table: pd.DataFrame,
    mask_img: nib.Nifti1Image,
    cluster_forming_p: float = 0.001,
    n_perm: int = 5000,
    two_sided: bool = True,
    rng=None,
    period: bool = True,
    variance_groups: bool = True,
    n_jobs: int = 1,
):
    """One voxelwise group test of participant contrast maps.

    Parameters
    ----------
    test : str
        A key of :data:`GROUP_TESTS` (state contrast maps) or of
        :data:`DRUG_TESTS` (drug contrast maps); it names which participants
        are tested and how (one-sample within a group, or CUD against controls).
    diff : ndarray, shape (n_participants, n_voxels)
    table : pandas.DataFrame
        ``participant_id, group`` (and, for the drug tests, ``sequence``) in
        the row order of ``diff``.
    mask_img : nibabel.Nifti1Image
    cluster_forming_p, n_perm, two_sided, rng
        See :func:`craving_circuits.stats.permutation.cluster_permutation_test`.
    period : bool
        Drug tests only: adjust for period with the sequence codes of
        :func:`_sequence_confounds` as confounds (the crossover analysis of
        :func:`craving_circuits.cocaine.drug.drug_samples`, voxel by voxel).
    variance_groups : bool
        CUD against controls only: each group with its own variance (default),
        so the statistic is Welch's t (voxel by voxel the ROI-level test) and
        the resampling sign flipping (Winkler et al. 2014); False: the
        pooled-variance t with Freedman-Lane permutation, which is liberal when
        the smaller group is the more variable one.
    n_jobs : int
        Workers computing the permutation null's chunks (does not change the result).

    Returns
    -------
    PermutationResult
        t (or Welch's statistic) of the tested effect (positive: the contrast
        is positive, or larger in CUD than in controls).
    """

    if test not in _TEST_GROUP:
        raise ValueError(f"Unknown group test {test!r}; choose one of: {', '.join(_TEST_GROUP)}.")
    mask = np.asarray(mask_img.dataobj) > 0
    group = table["group"].to_numpy()
    if _TEST_GROUP[test] is not None:
        keep = group == _TEST_GROUP[test]
        tested = np.ones(int(keep.sum()))
    else:
        keep = np.ones(len(group), bool)
        tested = (group == "CUD").astype(float)
    y = diff[keep]
    if len(y) < 3:
        raise ValueError(f"Test {test!r} needs at least 3 participants, got {len(y)}.")
    confounds = None
    if period and test in DRUG_TESTS:
        if "sequence" not in table:
            raise ValueError(
                "The drug tests adjust for period and need the table's sequence column (from "
                "drug_difference_maps); pass period=False to test without the adjustment."
            )
        confounds = _sequence_confounds(table, keep, between=_TEST_GROUP[test] is None)
    between = _TEST_GROUP[test] is None
    return cluster_permutation_test(
        y,
        tested,
        mask,
        confounds=confounds,
        cluster_forming_p=cluster_forming_p,
        n_perm=n_perm,
        two_sided=two_sided,
        rng=rng,
        variance_groups=group[keep] if between and variance_groups else None,
        n_jobs=n_jobs,
    )


def group_tests(
    diff: np.ndarray,
    table: pd.DataFrame,
    mask_img: nib.Nifti1Image,
    tests=tuple(GROUP_TESTS),
    cluster_forming_p: float = 0.001,
    n_perm: int = 5000,
    two_sided: bool = True,
    rng=None,
    period: bool = True,
    variance_groups: bool = True,
    n_jobs: int = 1,
) -> dict:
    """Run several tests of :func:`group_test` with one random generator; returns ``{test: PermutationResult}``."""
    rng = np.random.default_rng(rng)
    return {
        test: group_test(
            test,
            diff,
            table,
            mask_img,
            cluster_forming_p=cluster_forming_p,
            n_perm=n_perm,
            two_sided=two_sided,
            rng=rng,
            period=period,
            variance_groups=variance_groups,
            n_jobs=n_jobs,
        )
        for test in tests
    }


def roi_state_differences(roi: pd.DataFrame, strategy: str | None = None) -> pd.DataFrame:
    """Craving - neutral ROI couplings per participant, session and target.

    Parameters
    ----------
    roi : pandas.DataFrame
        Long table of :data:`craving_circuits.io.schemas.ROI_COLUMNS`. Several
        values of a state in a session (several runs) are averaged.
    strategy : str, optional
        Keep one strategy (its ``name``); default: all, kept as a column.

    Returns
    -------
    diff : pandas.DataFrame
        ``participant_id, group, session_id, drug, strategy, target, neutral,
        craving, delta``; sessions without both states are absent here and
        listed by :func:`state_difference_maps`. A table of stacked
        replicates keeps its ``replicate`` column, in front.
    """
    data = roi if strategy is None else roi[roi["strategy"] == strategy]
    stacked = [REPLICATE] if REPLICATE in data.columns else []
    wide = data.pivot_table(
        index=[*stacked, "participant_id", "group", "session_id", "drug", "strategy", "target"],
        columns="state",
        values="fisher_z",
        aggfunc="mean",
    ).reset_index()
    wide.columns.name = None
    for state in ("neutral", "craving"):
        if state not in wide:
            wide[state] = np.nan
    wide = wide.dropna(subset=["neutral", "craving"])
    wide["delta"] = wide["craving"] - wide["neutral"]
    return wide


#: Columns of :func:`roi_state_tests`.
ROI_TEST_COLUMNS = ["target", "term", "n", "estimate", "se", "ci_low", "ci_high", "p", "df", "method"]


def participant_state_changes(fc_changes: pd.DataFrame) -> pd.DataFrame:
    """Each participant's craving - neutral change per target, averaged over the sessions that have both states.

    Parameters
    ----------
    fc_changes : pandas.DataFrame
        From :func:`roi_state_differences` (one strategy).

    Returns
    -------
    changes : pandas.DataFrame
        ``participant_id, group, target, delta, n_sessions``.
    """
    if fc_changes["strategy"].nunique() > 1:
        raise ValueError(f"The changes hold several strategies {sorted(fc_changes['strategy'].unique())}; pass one.")
    return (
        fc_changes.groupby(["participant_id", "group", "target"], as_index=False)
        .agg(delta=("delta", "mean"), n_sessions=("delta", "size"))
        .sort_values(["target", "participant_id"], ignore_index=True)
    )


def roi_state_tests(fc_changes: pd.DataFrame, alpha: float = 0.05, groups=("CUD", "control")) -> pd.DataFrame:
    """The state contrasts of the ROI couplings by summary statistics: one number per participant, then t tests.

    Each participant's craving - neutral change (averaged over sessions,
    :func:`participant_state_changes`) is tested against zero within each group
    (one-sample t), and between the groups by Welch's t (no equal-variance
    assumption). The standard error of a within-group rise is the SD of the
    participants' changes over the square root of their number, so the test is
    valid however much the rise varies between people; a mixed model with a
    random intercept only would treat that variation as noise within
    participants and report too small an error.

    Parameters
    ----------
    fc_changes : pandas.DataFrame
        From :func:`roi_state_differences` (one strategy).
    alpha : float
        1 - confidence level of the intervals.
    groups : pair of str
        The groups, the first minus the second in ``group x state``.

    Returns
    -------
    tests : pandas.DataFrame
        Columns :data:`ROI_TEST_COLUMNS`: per target, ``craving - neutral |
        <group>`` for each group and ``group x state``; ``df`` is the t test's
        degrees of freedom and ``method`` names the test.
    """
    if fc_changes.empty:
        raise ValueError("No craving - neutral change to test: no session has both states (see the exclusions).")
    changes = participant_state_changes(fc_changes)
    rows = []
    for target, sub in changes.groupby("target", sort=False):
        values = {g: sub.loc[sub["group"] == g, "delta"].to_numpy() for g in groups}
        for g in groups:
            row = mean_change(values[g], f"craving - neutral | {g}", alpha).iloc[0].to_dict()
            rows.append({**row, "target": target, "df": float(len(values[g]) - 1), "method": "one-sample t"})
        row = mean_difference(values[groups[0]], values[groups[1]], "group x state", alpha).iloc[0].to_dict()
        rows.append({**row, "target": target, "method": "Welch two-sample t"})
    return pd.DataFrame(rows, columns=ROI_TEST_COLUMNS)
