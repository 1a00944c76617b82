"""Result tables: written by every notebook, read by later chapters and the ledger.

* Every notebook writes its tidy result tables with :func:`write_table` (or
  several at once with :func:`save_tables`) into its output folder; later
  chapters and the claims ledger read those files with :func:`read_table`,
  never numbers copied by hand.
* Only ``n/a`` and empty cells are missing values (BIDS); words such as
  ``null`` (a calibration condition) stay text.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from craving_circuits.io.files import write_tsv
from craving_circuits.io.schemas import EXCLUSION_COLUMNS

__all__ = ["read_table", "write_table", "save_tables", "combine_exclusions", "combine_tables"]


def read_table(out_dir: str | Path, name: str) -> pd.DataFrame:
    """Read a result table written by :func:`write_table` (``<out_dir>/<name>.tsv``).

    Raises
    ------
    FileNotFoundError
        Naming the file and the run that writes it.
    """
    path = Path(out_dir) / f"{name}.tsv"
    if not path.is_file():
        raise FileNotFoundError(
            f"Result table {path} not found; run the notebook whose output folder is "
            f"{Path(out_dir)} first (make notebooks, or the --only option of the runner)."
        )
    # BIDS missing values only: words such as "null" (a condition) or "NA" stay text
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["n/a", ""])


def write_table(df: pd.DataFrame, out_dir: str | Path, name: str) -> Path:
    """Write a result table as ``<out_dir>/<name>.tsv`` (atomically)."""
    return write_tsv(Path(out_dir) / f"{name}.tsv", df)


def combine_exclusions(*tables: pd.DataFrame) -> pd.DataFrame:
    """Stack exclusion tables of several stages into one."""

    frames = [t for t in tables if t is not None and len(t)]
    if not frames:
        return pd.DataFrame(columns=EXCLUSION_COLUMNS)
    return pd.concat(frames, ignore_index=True)[EXCLUSION_COLUMNS]


def combine_tables(*tables: pd.DataFrame) -> pd.DataFrame:
    """Stack tables with possibly different columns (missing cells empty)."""
    frames = [t for t in tables if t is not None and len(t)]
    if not frames:
        columns = list(dict.fromkeys(c for t in tables if t is not None for c in t.columns))
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)


def save_tables(out_dir: str | Path, tables: dict[str, pd.DataFrame]) -> list[Path]:
    """Write several result tables (``<out_dir>/<name>.tsv``)."""
    return [write_table(df, out_dir, name) for name, df in tables.items()]
