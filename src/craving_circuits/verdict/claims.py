"""The claims registry: what each chapter estimates, what the two abstracts claim, and where each is read.

Every comparison of the book with a planted truth, and every verdict on a
claim, reads one declaration in this module; nothing matches free-text labels.

Estimands
---------
An :class:`Estimand` is one estimate a chapter reports for a planted effect:
the chapter (the notebook, whose default run folder has the same name), the
result table it is read from, how its row is picked (by key columns, or as the
most significant cluster of a cluster table that overlaps a target ROI), the
planted effect it answers, and a label that says what the test is.
:func:`estimates` reads a chapter's estimands from its result tables (the
tables the notebook writes, or the same tables in memory); the chapter's
"recovered vs planted" table (:func:`craving_circuits.verdict.planted.recovered_vs_planted`)
compares them with the truth, keyed by the estimand's ``id``.

Claims
------
A :class:`Claim` is one claim of the two abstracts, paraphrased: its estimand
(the test this book reports for it), the claimed direction (``None`` for a
claim of absence, which then names the row of its equivalence test), and the
function that computes the test: a chain of :mod:`craving_circuits.cocaine.chapters`
or :mod:`craving_circuits.baclofen.chapters` for a test on tidy tables
(``level="roi"``), or the voxelwise test for a test on maps (``level="voxel"``).
The ledger (:mod:`craving_circuits.verdict.ledger`) reads each claim's
estimand from its chapter's "recovered vs planted" table; the calibration
(:mod:`craving_circuits.verdict.calibration`) runs each ROI-level claim's
function on simulated replicates and reads the same estimand from its output,
and runs each voxel-level claim's function on null maps.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from craving_circuits.baclofen import chapters as baclofen_chapters
from craving_circuits.baclofen import perfusion
from craving_circuits.cocaine import chapters as cocaine_chapters
from craving_circuits.cocaine import secondlevel
from craving_circuits.stats.voxelwise import cluster_on_roi

__all__ = [
    "Estimand",
    "Claim",
    "ESTIMANDS",
    "CLAIMS",
    "DRUG_EFFECTS",
    "ESTIMATE_COLUMNS",
    "estimands",
    "estimand",
    "estimates",
    "claims",
    "claim",
]

#: Columns of :func:`estimates`.
ESTIMATE_COLUMNS = ["estimand", "effect", "test", "estimate", "ci_low", "ci_high", "p"]

#: Planted effect of each drug contrast (the ``contrast`` column of
#: :func:`craving_circuits.cocaine.drug.drug_evidence`).
DRUG_EFFECTS = {
    "drug x state | CUD": "drug_x_state_cud",
    "drug x state | control": "drug_x_state_control",
    "group x state x drug": "group_x_state_x_drug",
}


@dataclass(frozen=True)
class Estimand:
    """One estimate of a chapter and where it is read.

    Attributes
    ----------
    id : str
        Stable key (the ``estimand`` column of the result tables).
    chapter : str
        The notebook that writes ``table`` (its default run folder).
    effect : str
        The planted effect it answers (``ground_truth.json``).
    label : str
        What the test is; ``{column}`` fields are filled from the picked row.
    table : str
        The result table (``results/<run>/<table>.tsv``).
    match : tuple of (column, value)
        Picks the row (``kind="row"``); empty for a one-row table.
    kind : {"row", "cluster", "elsewhere"}
        ``"cluster"``: the most significant cluster overlapping ``target`` (of
        ``sign``, if given): estimate its peak t, p its cluster-level FWE p (1
        without one). ``"elsewhere"``: the count of significant clusters that
        overlap no target ROI (p 0 with one, else 1).
    target, sign : str, int or None
        The ROI and the sign of a ``"cluster"`` estimand.
    estimate, p, ci : str, str, pair of str or None
        Columns of the estimate, its p and its interval.
    each : str or None
        Read one row per value of this column (the id gets ``@<value>``).
    """

    id: str
    chapter: str
    effect: str
    label: str
    table: str
    match: tuple = ()
    kind: str = "row"
    target: str | None = None
    sign: int | None = None
    estimate: str = "estimate"
    p: str = "p"
    ci: tuple | None = ("ci_low", "ci_high")
    each: str | None = None

    def _rows(self, table: pd.DataFrame, path: str) -> pd.DataFrame:
        picked = table
        for column, value in self.match:
            if column not in table.columns:
                raise ValueError(
                    f"{path} has no column {column!r} (estimand {self.id}); was it written by this version of the book?"
                )
            picked = picked[picked[column] == value]
        return picked

    def read(self, tables: dict, where: str = "") -> list[dict]:
        """The estimand's rows (``ESTIMATE_COLUMNS``) from a chapter's tables (name -> DataFrame).

        Returns an empty list when the table holds no such row (e.g. a contrast
        that the data cannot estimate).

        Raises
        ------
        KeyError
            If the table is missing.
        ValueError
            If several rows match.
        """
        path = f"{where}{self.table}" if where else self.table
        if self.table not in tables:
            raise KeyError(f"The result table {path} (estimand {self.id}) is missing.")
        table = tables[self.table]
        if self.kind == "cluster":
            return [_cluster_row(self, table)]
        if self.kind == "elsewhere":
            return [_elsewhere_row(self, table)]
        picked = self._rows(table, path)
        if self.each is None:
            if len(picked) > 1:
                raise ValueError(
                    f"{path}: {len(picked)} rows match {dict(self.match)} (estimand {self.id}); expected one."
                )
            groups = [(None, picked)]
        else:
            groups = list(picked.groupby(self.each, sort=False))
        rows = []
        for value, part in groups:
            if part.empty:
                continue
            if len(part) > 1:
                raise ValueError(
                    f"{path}: {len(part)} rows match {dict(self.match)} and {self.each}={value!r} "
                    f"(estimand {self.id}); expected one."
                )
            row = part.iloc[0]
            rows.append(
                {
                    "estimand": self.id if value is None else f"{self.id}@{value}",
                    "effect": self.effect,
                    "test": self.label.format(**row.to_dict()),
                    "estimate": _number(row[self.estimate]),
                    "ci_low": _number(row[self.ci[0]]) if self.ci else np.nan,
                    "ci_high": _number(row[self.ci[1]]) if self.ci else np.nan,
                    "p": _number(row[self.p]),
                }
            )
        return rows


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


def _cluster_row(e: Estimand, table: pd.DataFrame) -> dict:
    peak_t, p = cluster_on_roi(table, e.target, e.sign)
    return {
        "estimand": e.id,
        "effect": e.effect,
        "test": e.label,
        "estimate": peak_t,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "p": p,
    }


def _elsewhere_row(e: Estimand, table: pd.DataFrame) -> dict:
    overlap = [c for c in table.columns if c.startswith("overlap_")]
    n_other = int((table["significant"].astype(bool) & (table[overlap].sum(axis=1) == 0)).sum()) if len(table) else 0
    return {
        "estimand": e.id,
        "effect": e.effect,
        "test": e.label,
        "estimate": float(n_other),
        "ci_low": np.nan,
        "ci_high": np.nan,
        "p": 0.0 if n_other else 1.0,
    }


@dataclass(frozen=True)
class Claim:
    """One claim of the two abstracts and the test of this book that answers it.

    Attributes
    ----------
    claim_id, study, text : str
    estimand : Estimand
        The test reported for the claim.
    statistic : str
        What its estimate is (for the ledger's table).
    direction : int or None
        +1 or -1 for a claimed rise or fall; None for a claim of absence.
    test : callable
        The function that computes the test (see the module docstring).
    level : {"roi", "voxel"}
    equivalence : Estimand or None
        For a claim of absence, the row of its equivalence test (a table with
        ``p_equivalence`` and ``bound``).
    voxel_test : str or None
        For a voxel-level claim, the name of its test in the voxelwise
        calibration (:func:`craving_circuits.verdict.calibration.voxelwise_null`).
    bound : str or None
        For a claim of absence, what its equivalence test shows when it
        decides, as a format string over the equivalence row (e.g. ``"no effect
        as large as d_z {bound_dz:.2g}"``), so that the verdict says exactly what
        was shown.
    """

    claim_id: str
    study: str
    text: str
    estimand: Estimand
    statistic: str
    direction: int | None
    test: Callable
    level: str
    equivalence: Estimand | None = None
    voxel_test: str | None = None
    bound: str | None = None


def _row(id, chapter, effect, label, table, **kwargs) -> Estimand:
    match = kwargs.pop("match", {})
    return Estimand(
        id=id, chapter=chapter, effect=effect, label=label, table=table, match=tuple(match.items()), **kwargs
    )


# --------------------------------------------------------------------------- the chapters' estimands

_TARGETS = ("dlpfc", "thalamus_midline")
_STATE_EFFECTS = {  # (term of the ROI models, target) -> planted effect
    ("craving - neutral | CUD", "dlpfc"): "craving_nacc_dlpfc_cud",
    ("craving - neutral | CUD", "thalamus_midline"): "craving_nacc_thalamus_cud",
    ("craving - neutral | control", "dlpfc"): "craving_nacc_dlpfc_control",
    ("craving - neutral | control", "thalamus_midline"): "craving_nacc_thalamus_control",
    ("group x state", "dlpfc"): "group_x_state_nacc_dlpfc",
    ("group x state", "thalamus_midline"): "group_x_state_nacc_thalamus",
}
_GROUP_TEST_TERMS = {
    "craving_cud": "craving - neutral | CUD",
    "craving_control": "craving - neutral | control",
    "group_x_state": "group x state",
}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _data_estimands() -> list[Estimand]:
    return [
        _row(
            f"data/rating/{_slug(term)}",
            "data",
            effect,
            f"{test} on ratings: {term}",
            "rating_tests",
            match={"term": term},
        )
        for term, effect, test in (
            ("craving - neutral | CUD", "craving_rating_rise_cud", "t-test"),
            ("drug x state | CUD", "nac_rating_effect_cud", "crossover t, adjusted for period,"),
        )
    ]


def _seed_estimands() -> list[Estimand]:
    ch = "nacc_seed_fc"
    out = [
        _row(
            f"seed/roi/{_slug(term)}/{target}",
            ch,
            effect,
            "ROI {method}: {term} ({target})",
            "roi_tests",
            match={"term": term, "target": target},
        )
        for (term, target), effect in _STATE_EFFECTS.items()
    ]
    for test in secondlevel.GROUP_TESTS:
        for target in _TARGETS:
            out.append(
                Estimand(
                    f"seed/voxel/{test}/{target}",
                    ch,
                    _STATE_EFFECTS[(_GROUP_TEST_TERMS[test], target)],
                    f"voxelwise cluster FWE: {test}, positive cluster on {target}",
                    f"clusters_{test}",
                    kind="cluster",
                    target=target,
                    sign=1,
                )
            )
    out += [
        Estimand(
            f"seed/voxel/{test}/elsewhere",
            ch,
            "fc_change_elsewhere",
            f"voxelwise cluster FWE: {test}, significant clusters off the target ROIs",
            f"clusters_{test}",
            kind="elsewhere",
        )
        for test in secondlevel.GROUP_TESTS
    ]
    return out


def _glutamate_estimands() -> list[Estimand]:
    ch = "thalamus_glutamate"
    coupling = {"thalamus_midline": "thalamus_glu_coupling_cud", "dlpfc": "dlpfc_glu_coupling_cud"}
    out = [
        _row(
            f"glutamate/r/{target}",
            ch,
            effect,
            f"Pearson r within CUD ({target})",
            "couplings",
            match={"sample": "CUD", "method": "pearson", "target": target},
        )
        for target, effect in coupling.items()
    ]
    out.append(_row("glutamate/steiger", ch, "coupling_difference_cud", "Steiger test: {term}", "coupling_difference"))
    out.append(_row("glutamate/glu_rise", ch, "glu_rise_cud", "one-sample t: {term}", "glutamate_rise"))
    predicts = {
        ("thalamus_midline", "ocdus_obsessive"): "ocdus_predicts_thalamus_cud",
        ("thalamus_midline", "cocaine_g_per_week"): "use_predicts_thalamus_cud",
        ("dlpfc", "ocdus_obsessive"): "ocdus_predicts_dlpfc_cud",
        ("dlpfc", "cocaine_g_per_week"): "use_predicts_dlpfc_cud",
    }
    out += [
        _row(
            f"glutamate/beta/{term}/{target}",
            ch,
            effect,
            f"standardised beta of {term} ({target})",
            "predictor_betas",
            match={"target": target, "term": term},
        )
        for (target, term), effect in predicts.items()
    ]
    models = {"thalamus_midline": "clinical_model_thalamus_cud", "dlpfc": "clinical_model_dlpfc_cud"}
    out += [
        _row(
            f"glutamate/model/{target}",
            ch,
            effect,
            f"F test of the predictor model ({target}); estimate R²",
            "predictor_fits",
            match={"target": target},
            estimate="r2",
            p="p_f",
            ci=None,
        )
        for target, effect in models.items()
    ]
    out += [
        Estimand(
            f"glutamate/voxel/{target}",
            ch,
            coupling[target],
            f"voxelwise coupling, cluster on {target}",
            "voxel_clusters",
            kind="cluster",
            target=target,
        )
        for target in ("thalamus_midline", "dlpfc")
    ]
    out.append(
        Estimand(
            "glutamate/voxel/elsewhere",
            ch,
            "glu_coupling_elsewhere",
            "voxelwise coupling, significant clusters off the target ROIs",
            "voxel_clusters",
            kind="elsewhere",
        )
    )
    return out


def _nac_estimands() -> list[Estimand]:
    ch = "nac_null_effect"
    out = [
        _row(
            f"nac/roi/{DRUG_EFFECTS[term]}/{target}",
            ch,
            DRUG_EFFECTS[term],
            f"crossover t, adjusted for period: {term} ({target})",
            "evidence",
            match={"term": f"{term} ({target})"},
        )
        for term in DRUG_EFFECTS
        for target in _TARGETS
    ]
    out.append(
        _row(
            "nac/roi/nac_rating_effect_cud/rating",
            ch,
            "nac_rating_effect_cud",
            "crossover t, adjusted for period: drug x state | CUD (rating)",
            "evidence",
            match={"term": "drug x state | CUD (rating)"},
        )
    )
    out += [
        _row(
            f"nac/period/{outcome}",
            ch,
            effect,
            f"crossover period effect (second minus first session), CUD ({outcome})",
            "periods",
            match={"term": "period | CUD", "outcome": outcome},
        )
        for outcome, effect in (
            ("dlpfc", "habituation_nacc_dlpfc_cud"),
            ("thalamus_midline", "habituation_nacc_thalamus_cud"),
            ("rating", "habituation_rating_cud"),
        )
    ]
    for test in secondlevel.DRUG_TESTS:
        out += [
            Estimand(
                f"nac/voxel/{test}/{target}",
                ch,
                test,
                f"voxelwise cluster FWE: {test}, cluster on {target}",
                f"clusters_{test}",
                kind="cluster",
                target=target,
            )
            for target in _TARGETS
        ]
        out.append(
            Estimand(
                f"nac/voxel/{test}/elsewhere",
                ch,
                "fc_change_elsewhere",
                f"voxelwise cluster FWE: {test}, significant clusters off the target ROIs",
                f"clusters_{test}",
                kind="elsewhere",
            )
        )
    return out


def _cbf_estimands() -> list[Estimand]:
    ch = "baclofen_cbf"
    return [
        Estimand(
            "cbf/voxel/group_x_time",
            ch,
            "group_x_time_dlpfc_cbf",
            "voxelwise cluster FWE: group x time, positive cluster on dlpfc_right",
            "clusters",
            kind="cluster",
            target="dlpfc_right",
            sign=1,
        ),
        Estimand(
            "cbf/voxel/elsewhere",
            ch,
            "cbf_change_elsewhere",
            "voxelwise cluster FWE: group x time, significant clusters off the ROI",
            "clusters",
            kind="elsewhere",
        ),
        _row(
            "cbf/roi/group_x_time",
            ch,
            "group_x_time_dlpfc_cbf",
            "Welch t of the dlpfc_right ROI's T2 - T1 change: group x time",
            "region_tests",
            match={"region": "dlpfc_right", "term": "group x time"},
        ),
        _row(
            "cbf/roi/placebo_time",
            ch,
            "time_dlpfc_cbf_placebo",
            "one-sample t of the dlpfc_right ROI's T2 - T1 change: T2 - T1 | placebo",
            "region_tests",
            match={"region": "dlpfc_right", "term": "T2 - T1 | placebo"},
        ),
    ]


_CUE_ROIS = ("insula_anterior_ventral", "vmpfc")


def _cue_estimands() -> list[Estimand]:
    ch = "baclofen_mediation"
    out = [_row("cue/t1_response", ch, "cue_response_t1", "one-sample t: {term}", "t1_response", each="term")]
    out += [
        _row(
            f"cue/r/{roi}",
            ch,
            "dlpfc_rise_cue_change",
            "Pearson r: {term}",
            "associations",
            match={"term": f"cue change ~ dlPFC CBF change ({roi})"},
        )
        for roi in _CUE_ROIS
    ]
    out += [
        Estimand(
            f"cue/voxel/{roi}",
            ch,
            "dlpfc_rise_cue_change",
            f"voxelwise cluster FWE: cue change ~ dlPFC CBF change, cluster on {roi}",
            "voxel_clusters",
            kind="cluster",
            target=roi,
        )
        for roi in _CUE_ROIS
    ]
    out.append(
        Estimand(
            "cue/voxel/elsewhere",
            ch,
            "cue_change_elsewhere",
            "voxelwise cluster FWE: cue change ~ dlPFC CBF change, significant clusters off the ROIs",
            "voxel_clusters",
            kind="elsewhere",
        )
    )
    out.append(
        _row(
            "cue/craving_t",
            ch,
            "group_x_time_craving",
            "Welch t of the T2 - T1 change of cue-induced craving: group x time",
            "craving_test",
            match={"term": "group x time"},
        )
    )
    out.append(
        _row(
            "cue/indirect",
            ch,
            "indirect_effect_cue",
            "bootstrap: indirect effect of baclofen on the cue change through the dlPFC CBF change",
            "mediation_cue",
            match={"term": "indirect effect (a b)"},
        )
    )
    return out


def _multiverse_estimands() -> list[Estimand]:
    return [
        _row(
            f"multiverse/{_slug(term)}/{target}",
            "multiverse",
            effect,
            "summary-statistic t, {strategy}: " + f"{term} ({target})",
            "multiverse",
            match={"term": term, "target": target},
            each="strategy",
        )
        for (term, target), effect in _STATE_EFFECTS.items()
    ]


#: Every estimand of the book, by chapter.
ESTIMANDS: dict[str, tuple[Estimand, ...]] = {
    "data": tuple(_data_estimands()),
    "nacc_seed_fc": tuple(_seed_estimands()),
    "thalamus_glutamate": tuple(_glutamate_estimands()),
    "nac_null_effect": tuple(_nac_estimands()),
    "baclofen_cbf": tuple(_cbf_estimands()),
    "baclofen_mediation": tuple(_cue_estimands()),
    "multiverse": tuple(_multiverse_estimands()),
}


def estimands(chapter: str) -> tuple[Estimand, ...]:
    """The estimands of one chapter (a notebook name of :data:`ESTIMANDS`)."""
    if chapter not in ESTIMANDS:
        raise ValueError(f"Unknown chapter {chapter!r}; chapters with estimands: {sorted(ESTIMANDS)}.")
    return ESTIMANDS[chapter]


def estimand(estimand_id: str) -> Estimand:
    """One estimand by its id."""
    for group in ESTIMANDS.values():
        for e in group:
            if e.id == estimand_id:
                return e
    raise ValueError(f"Unknown estimand {estimand_id!r}.")


def estimates(chapter: str, tables: dict) -> pd.DataFrame:
    """Every estimand of a chapter read from its result tables.

    Parameters
    ----------
    chapter : str
        A key of :data:`ESTIMANDS`.
    tables : dict of str -> pandas.DataFrame
        The chapter's result tables by name (as the notebook writes them).

    Returns
    -------
    estimates : pandas.DataFrame
        Columns :data:`ESTIMATE_COLUMNS`, in the registry's order.
    """
    rows = [row for e in estimands(chapter) for row in e.read(tables, f"{chapter}/")]
    return pd.DataFrame(rows, columns=ESTIMATE_COLUMNS)


# --------------------------------------------------------------------------- the claims


def _claim(
    claim_id,
    study,
    text,
    estimand_id,
    statistic,
    direction,
    test,
    level,
    equivalence=None,
    voxel_test=None,
    bound=None,
) -> Claim:
    return Claim(
        claim_id=claim_id,
        study=study,
        text=text,
        estimand=estimand(estimand_id),
        statistic=statistic,
        direction=direction,
        test=test,
        level=level,
        voxel_test=voxel_test,
        bound=bound,
        equivalence=None
        if equivalence is None
        else estimand(equivalence)
        if isinstance(equivalence, str)
        else equivalence,
    )


_DLPFC_EQUIVALENCE = Estimand(
    "glutamate/r_equivalence/dlpfc",
    "thalamus_glutamate",
    "dlpfc_glu_coupling_cud",
    "TOST of r within CUD (dlpfc)",
    "coupling_equivalence",
    match=(("target", "dlpfc"), ("sample", "CUD")),
)

#: The claims of the two abstracts, paraphrased, each with the test of this book that answers it.
CLAIMS: tuple[Claim, ...] = (
    _claim(
        "craving_nacc_dlpfc",
        "cocaine",
        "Craving raises NAcc-dlPFC connectivity in CUD",
        "seed/voxel/craving_cud/dlpfc",
        "peak t",
        1,
        secondlevel.group_tests,
        "voxel",
        voxel_test="craving_cud",
    ),
    _claim(
        "craving_nacc_thalamus",
        "cocaine",
        "Craving raises NAcc-midline thalamus connectivity in CUD",
        "seed/voxel/craving_cud/thalamus_midline",
        "peak t",
        1,
        secondlevel.group_tests,
        "voxel",
        voxel_test="craving_cud",
    ),
    _claim(
        "dlpfc_not_glu",
        "cocaine",
        "The NAcc-dlPFC rise is not linked to the NAcc glutamate rise",
        "glutamate/r/dlpfc",
        "Pearson r",
        None,
        cocaine_chapters.glutamate_tests,
        "roi",
        equivalence=_DLPFC_EQUIVALENCE,
        bound="no correlation as large as r {bound:.2g} (at n = {n}, the test of r = 0 detects r {detectable_r:.2g} "
        "with power 0.8)",
    ),
    _claim(
        "ocdus_predicts_thalamus",
        "cocaine",
        "OCDUS obsessive thinking predicts the NAcc-thalamus rise",
        "glutamate/beta/ocdus_obsessive/thalamus_midline",
        "standardised beta",
        1,
        cocaine_chapters.glutamate_tests,
        "roi",
    ),
    _claim(
        "use_predicts_thalamus",
        "cocaine",
        "Cocaine use intensity predicts the NAcc-thalamus rise",
        "glutamate/beta/cocaine_g_per_week/thalamus_midline",
        "standardised beta",
        1,
        cocaine_chapters.glutamate_tests,
        "roi",
    ),
    _claim(
        "thalamus_glu",
        "cocaine",
        "The NAcc-thalamus rise is coupled with the NAcc glutamate rise",
        "glutamate/r/thalamus_midline",
        "Pearson r",
        1,
        cocaine_chapters.glutamate_tests,
        "roi",
    ),
    *(
        _claim(
            f"nac_no_effect_{outcome}",
            "cocaine",
            f"NAC does not change the craving rise of {label} in CUD",
            f"nac/roi/{effect}/{outcome}",
            "mean difference",
            None,
            cocaine_chapters.nac_tests,
            "roi",
            equivalence=f"nac/roi/{effect}/{outcome}",
            bound="no effect as large as d_z {bound_dz:.2g} ({bound:.3g} on the outcome's scale; at n = {n}, the "
            "period-adjusted crossover t test detects d_z {detectable_dz:.2g} with power 0.8)",
        )
        for outcome, effect, label in (
            ("dlpfc", "drug_x_state_cud", "NAcc-dlPFC connectivity"),
            ("thalamus_midline", "drug_x_state_cud", "NAcc-thalamus connectivity"),
            ("rating", "nac_rating_effect_cud", "the craving rating"),
        )
    ),
    _claim(
        "baclofen_dlpfc_cbf",
        "baclofen",
        "Baclofen raises right dlPFC resting CBF (group x time, FWE)",
        "cbf/voxel/group_x_time",
        "peak t",
        1,
        perfusion.group_by_time_test,
        "voxel",
        voxel_test="group_x_time_cbf",
    ),
    _claim(
        "cbf_rise_insula",
        "baclofen",
        "A larger dlPFC CBF rise goes with a smaller cue response in anterior ventral insula",
        "cue/r/insula_anterior_ventral",
        "Pearson r",
        -1,
        baclofen_chapters.cue_tests,
        "roi",
    ),
    _claim(
        "cbf_rise_vmpfc",
        "baclofen",
        "A larger dlPFC CBF rise goes with a smaller cue response in vmPFC",
        "cue/r/vmpfc",
        "Pearson r",
        -1,
        baclofen_chapters.cue_tests,
        "roi",
    ),
    _claim(
        "baclofen_craving",
        "baclofen",
        "Baclofen, not placebo, lowers cue-induced craving",
        "cue/craving_t",
        "difference of T2 - T1 changes",
        -1,
        baclofen_chapters.cue_tests,
        "roi",
    ),
    _claim(
        "baclofen_via_dlpfc",
        "baclofen",
        "Baclofen lowers the cue response through its dlPFC CBF rise (indirect effect)",
        "cue/indirect",
        "indirect effect a b",
        -1,
        baclofen_chapters.cue_tests,
        "roi",
    ),
)


def claims(study: str | None = None, level: str | None = None) -> tuple[Claim, ...]:
    """The claims of one study and/or level (all by default)."""
    return tuple(c for c in CLAIMS if (study is None or c.study == study) and (level is None or c.level == level))


def claim(claim_id: str) -> Claim:
    """One claim by its id."""
    for c in CLAIMS:
        if c.claim_id == claim_id:
            return c
    raise ValueError(f"Unknown claim {claim_id!r}; claims: {[c.claim_id for c in CLAIMS]}.")
