"""NAcc MRS: reading and checking the metabolite table, quality control, change scores.

Data conventions
----------------
* The table is long: one row per spectrum and metabolite, with the columns
  :data:`MRS_COLUMNS` (``fwhm_hz`` and ``snr`` describe the spectrum and repeat
  on each of its rows).
* A *spectrum* is identified by :data:`SPECTRUM`: participant, session and
  state (``neutral`` or ``craving``).
* Change scores are craving minus neutral within a session, on the chosen
  scale (``value_water``, water-scaled institutional units, or ``value_tcr``,
  the ratio to total creatine), and in percent of the neutral value.

Quality control never drops a row silently: every spectrum left out is listed
with the criterion it failed (a spectrum failing several criteria is listed
once per criterion).

A table with a ``replicate`` column holds stacked replicates of a study
(:data:`~craving_circuits.io.schemas.REPLICATE`); :func:`quality_control` and
:func:`session_changes` treat each replicate as its own study and keep the
column in front of their tables.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from craving_circuits.io.files import read_bids_table
from craving_circuits.io.schemas import MRS_COLUMNS, REPLICATE
from craving_circuits.io.schemas import MRS_QC_COLUMNS as QC_COLUMNS

__all__ = [
    "MRS_COLUMNS",
    "SPECTRUM",
    "QC_COLUMNS",
    "MRS_RANGES",
    "read_mrs",
    "quality_control",
    "session_changes",
    "qc_summary",
    "filtering_bias",
]

SPECTRUM = ["participant_id", "session_id", "state"]


def _with_replicate(table: pd.DataFrame, keys: list[str]) -> list[str]:
    """``keys``, after the replicate column when the table has one."""
    return [REPLICATE, *keys] if REPLICATE in table.columns else list(keys)


#: Allowed ranges of the numeric columns of the metabolite table. Concentrations may be
#: zero or even slightly negative in a fit, so they are not bounded here: quality control
#: lists non-positive values as ``invalid value``.
MRS_RANGES = {
    "value_tcr": (None, None),
    "value_water": (None, None),
    "crlb_percent": (0, 999),
    "fwhm_hz": (0, None),
    "snr": (0, None),
}


def read_mrs(path: str | Path) -> pd.DataFrame:
    """Read and check the metabolite table.

    ``n/a`` and empty cells are missing values: quality control lists the
    spectra they remove (:func:`quality_control`). Any other non-numeric cell
    in a numeric column, a CRLB outside 0-999 % and a negative linewidth or
    SNR are errors (:data:`MRS_RANGES`).

    Raises
    ------
    FileNotFoundError
        If the file is missing.
    ValueError
        Naming the file, line(s) and column: the file is empty or has no rows,
        columns are missing, a value is not a number or out of range, a state
        is unknown, or a spectrum lists a metabolite twice (keep one row per
        spectrum and metabolite).
    """
    return read_bids_table(
        path,
        "MRS metabolite table",
        columns=MRS_COLUMNS,
        numeric=MRS_RANGES,
        levels={"state": {"neutral", "craving"}},
        unique=SPECTRUM + ["metabolite"],
        labels=["participant_id", "session_id"],
        fix=f"One row per spectrum and metabolite; the table needs {MRS_COLUMNS}.",
    )


def quality_control(
    mrs: pd.DataFrame,
    metabolite: str = "Glu",
    max_crlb: float | None = 20.0,
    max_fwhm_hz: float | None = 12.8,
    min_snr: float | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep the spectra of one metabolite that pass the quality criteria.

    Criteria, each listed separately when it fails:

    * ``missing``: the spectrum has rows for other metabolites but none for
      ``metabolite``;
    * ``invalid value``: a value is missing or not positive;
    * ``invalid crlb``: the CRLB is missing or negative;
    * ``crlb``: CRLB above ``max_crlb`` (%);
    * ``fwhm``: linewidth above ``max_fwhm_hz`` (or missing);
    * ``snr``: SNR below ``min_snr`` (or missing).

    Any limit set to None is not applied (for example ``max_crlb=None`` for
    the analysis without CRLB filtering).

    Parameters
    ----------
    mrs : pandas.DataFrame
        From :func:`read_mrs`.
    metabolite : str
    max_crlb, max_fwhm_hz, min_snr : float or None
        Defaults: CRLB 20 %, linewidth 12.8 Hz (0.1 ppm at 3 T), no SNR limit.

    Returns
    -------
    kept : pandas.DataFrame
        The rows of ``metabolite`` that pass.
    exclusions : pandas.DataFrame
        Columns :data:`QC_COLUMNS`, one row per failed criterion.
    """
    if not (mrs["metabolite"] == metabolite).any():
        raise ValueError(
            f"No row of metabolite {metabolite!r}; the table has {sorted(set(mrs['metabolite'].unique()))}."
        )
    spectrum = _with_replicate(mrs, SPECTRUM)
    rows = mrs[mrs["metabolite"] == metabolite]
    spectra = mrs[spectrum].drop_duplicates()
    have = rows[spectrum].drop_duplicates()
    absent = spectra.merge(have, how="left", indicator=True).query("_merge == 'left_only'")
    failures = [absent[spectrum].assign(metabolite=metabolite, criterion="missing", value=np.nan, limit=np.nan)]

    def fail(mask, criterion, values, limit):
        failures.append(
            rows.loc[mask, spectrum].assign(
                metabolite=metabolite, criterion=criterion, value=values[mask].astype(float), limit=limit
            )
        )

    value_ok = (rows["value_water"] > 0) & (rows["value_tcr"] > 0)
    fail(~value_ok, "invalid value", rows["value_water"], np.nan)
    crlb = rows["crlb_percent"]
    crlb_ok = crlb.notna() & (crlb >= 0)
    fail(~crlb_ok, "invalid crlb", crlb, np.nan)
    keep = value_ok & crlb_ok
    if max_crlb is not None:
        over = crlb_ok & (crlb > max_crlb)
        fail(over, "crlb", crlb, max_crlb)
        keep &= ~over
    if max_fwhm_hz is not None:
        wide = ~(rows["fwhm_hz"] <= max_fwhm_hz)  # a missing linewidth fails too
        fail(wide, "fwhm", rows["fwhm_hz"], max_fwhm_hz)
        keep &= ~wide
    if min_snr is not None:
        low = ~(rows["snr"] >= min_snr)  # a missing SNR fails too
        fail(low, "snr", rows["snr"], min_snr)
        keep &= ~low
    columns = _with_replicate(mrs, QC_COLUMNS)
    failures = [f for f in failures if len(f)]
    exclusions = pd.concat(failures, ignore_index=True)[columns] if failures else pd.DataFrame(columns=columns)
    if REPLICATE in columns:
        exclusions = exclusions.sort_values(REPLICATE, kind="stable", ignore_index=True)
    return rows[keep].reset_index(drop=True), exclusions


def session_changes(kept: pd.DataFrame, scale: str = "value_water") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Craving - neutral change of a metabolite per participant and session.

    Parameters
    ----------
    kept : pandas.DataFrame
        Rows of one metabolite that passed :func:`quality_control`.
    scale : {"value_water", "value_tcr"}

    Returns
    -------
    changes : pandas.DataFrame
        ``participant_id, session_id, neutral, craving, delta, delta_pct``.
    exclusions : pandas.DataFrame
        Sessions with only one usable state (``participant_id, session_id,
        reason``).
    """
    if scale not in ("value_water", "value_tcr"):
        raise ValueError(f"scale must be 'value_water' or 'value_tcr', got {scale!r}.")
    if kept["metabolite"].nunique() > 1:
        raise ValueError("session_changes takes the rows of one metabolite; filter with quality_control first.")
    keys = _with_replicate(kept, ["participant_id", "session_id"])
    wide = kept.pivot_table(index=keys, columns="state", values=scale, aggfunc="first").reset_index()
    wide.columns.name = None
    for state in ("neutral", "craving"):
        if state not in wide:
            wide[state] = np.nan
    incomplete = wide[wide[["neutral", "craving"]].isna().any(axis=1)]
    exclusions = incomplete[keys].assign(
        reason=np.where(incomplete["neutral"].isna(), "no usable neutral spectrum", "no usable craving spectrum")
    )
    exclusions = exclusions.reset_index(drop=True)
    changes = wide.dropna(subset=["neutral", "craving"]).copy()
    changes["delta"] = changes["craving"] - changes["neutral"]
    changes["delta_pct"] = 100.0 * changes["delta"] / changes["neutral"]
    columns = keys + ["neutral", "craving", "delta", "delta_pct"]
    return changes[columns].reset_index(drop=True), exclusions


def qc_summary(mrs: pd.DataFrame, exclusions: pd.DataFrame, metabolite: str = "Glu") -> pd.DataFrame:
    """How many spectra each criterion removed, and how many remain.

    Returns
    -------
    summary : pandas.DataFrame
        ``criterion, spectra, share`` (share of all spectra), with a last row
        ``kept``.
    """
    n_spectra = len(mrs[SPECTRUM].drop_duplicates())
    counts = exclusions.drop_duplicates(["criterion"] + SPECTRUM).groupby("criterion").size()
    failed = len(exclusions[SPECTRUM].drop_duplicates())
    rows = [{"criterion": c, "spectra": int(n)} for c, n in counts.items()]
    rows.append({"criterion": "kept", "spectra": n_spectra - failed})
    out = pd.DataFrame(rows, columns=["criterion", "spectra"])
    out["share"] = out["spectra"] / n_spectra
    return out


def filtering_bias(mrs: pd.DataFrame, metabolites=("Glu", "Gln", "NAA"), max_crlb: float = 20.0) -> pd.DataFrame:
    """Mean concentration of all spectra against the spectra left by a CRLB threshold.

    A CRLB is relative to the fitted value, so low readings get high CRLBs and
    the threshold removes them more often: the kept mean is biased upwards
    (Kreis 2016). Spectra with invalid values or CRLBs are left out of both
    means.

    Returns
    -------
    table : pandas.DataFrame
        ``metabolite, n_all, mean_all, n_kept, mean_kept, shift_pct``.
    """
    rows = []
    for m in metabolites:
        sub = mrs[(mrs["metabolite"] == m) & (mrs["value_water"] > 0) & (mrs["crlb_percent"] >= 0)]
        kept = sub[sub["crlb_percent"] <= max_crlb]
        mean_all, mean_kept = sub["value_water"].mean(), kept["value_water"].mean()
        rows.append(
            {
                "metabolite": m,
                "n_all": len(sub),
                "mean_all": mean_all,
                "n_kept": len(kept),
                "mean_kept": mean_kept,
                "shift_pct": 100 * (mean_kept - mean_all) / mean_all,
            }
        )
    return pd.DataFrame(rows)
