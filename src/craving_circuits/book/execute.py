"""Executing the book's notebooks with papermill, and recording how each run went.

The plan (``book/runs.yml``) lists, in order, which notebook runs with which
parameters into which executed copy under ``book/executed/``. Jupyter Book then
renders those copies and never executes anything itself, so every figure in
the book comes from exactly one recorded run.

For every entry the runner

* fills the placeholders ``{preset}`` and ``{null_preset}`` of its parameters
  (and ``{results_dir}``, the folder of all results, so that a notebook can read
  another's outputs),
  adds the common parameters ``data_dir``, ``output_dir`` (``results/<name>``),
  ``executed_dir`` and ``n_jobs`` when the notebook declares them, and applies
  the caller's overrides (``--set key=value``) to every notebook that declares
  the key;
* executes into a hidden temporary file and renames it into place only on
  success; a failed run is kept as ``<name>.failed.ipynb`` and the build stops
  with the failing cell and its error;
* records parameters, start time, duration and status in
  ``results/<name>/run.json`` and in the log ``book/executed/runs.json``, read
  by the reproducibility appendix.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import papermill
import yaml
from jupyter_client import AsyncKernelManager

from craving_circuits.book.provenance import git_commit
from craving_circuits.io.files import read_json, write_json

__all__ = ["load_plan", "execute_plan", "NotebookFailed", "install_mathjax"]

COMMON_PARAMETERS = ("data_dir", "output_dir", "executed_dir", "n_jobs")


class NotebookFailed(RuntimeError):
    """A notebook of the plan raised; the message shows the cell and the error."""


class QuietKernelManager(AsyncKernelManager):
    """The default kernel manager of papermill, with the kernel's own log limited to errors.

    The kernel otherwise warns on every start that its local TCP sockets are
    unencrypted (the kernel and the runner are processes of the same user on
    one machine), which buried the build's progress lines. Cell errors are
    unaffected: they reach the runner as execution errors, not as kernel log
    lines.
    """

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        return super().format_kernel_cmd(extra_arguments) + ["--IPKernelApp.log_level=ERROR"]


def load_plan(path: str | Path, preset: str = "paper", null_preset: str = "null") -> list[dict]:
    """Read the run plan and fill its placeholders.

    Returns
    -------
    plan : list of dict
        Entries with ``name``, ``notebook`` and ``parameters``.

    Raises
    ------
    ValueError
        If an entry lacks ``name`` or ``notebook``, or names repeat.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Run plan not found: {path}")
    entries = yaml.safe_load(path.read_text()) or []
    names = set()
    plan = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not {"name", "notebook"} <= set(entry):
            raise ValueError(f"{path}: entry {i} needs 'name' and 'notebook'.")
        if entry["name"] in names:
            raise ValueError(f"{path}: the name {entry['name']!r} is used twice.")
        names.add(entry["name"])
        params = {}
        for key, value in (entry.get("parameters") or {}).items():
            if isinstance(value, str):
                value = value.replace("{preset}", preset).replace("{null_preset}", null_preset)
            params[key] = value
        plan.append(
            {
                "name": entry["name"],
                "notebook": entry["notebook"],
                "parameters": params,
                "title": entry.get("title", entry["name"]),
            }
        )
    return plan


def _failure_message(name: str, err) -> str:
    source = getattr(err, "source", "") or ""
    ename = getattr(err, "ename", type(err).__name__)
    evalue = getattr(err, "evalue", str(err))
    return (
        f"Notebook {name!r} failed in cell {getattr(err, 'exec_count', '?')}:\n"
        f"----- cell -----\n{source}\n----- error -----\n{ename}: {evalue}"
    )


def execute_plan(
    plan: list[dict],
    root: str | Path = ".",
    executed_dir: str | Path = "book/executed",
    results_dir: str | Path = "results",
    data_dir: str | Path = "data",
    n_jobs: int = 1,
    only: list[str] | None = None,
    overrides: dict | None = None,
    kernel_name: str = "python3",
) -> list[dict]:
    """Execute the plan's notebooks in order.

    Parameters
    ----------
    plan : list of dict
        From :func:`load_plan`.
    root : path
        Working directory of the notebooks (the repository root); relative
        paths below are relative to it.
    executed_dir, results_dir, data_dir : path
    n_jobs : int
    only : list of str, optional
        Run only these entries (the log keeps the others' last records).
    overrides : dict, optional
        Parameter values applied to every notebook that declares them (after
        the plan's own parameters).
    kernel_name : str

    Returns
    -------
    records : list of dict
        One per executed entry.

    Raises
    ------
    NotebookFailed
        With the failing cell and error.
    """

    root = Path(root).resolve()
    executed_dir = (root / executed_dir).resolve()
    results_dir = (root / results_dir).resolve()
    executed_dir.mkdir(parents=True, exist_ok=True)
    log_path = executed_dir / "runs.json"
    log = read_json(log_path)["runs"] if log_path.is_file() else []
    commit = git_commit(root)
    records = []
    for entry in plan:
        if only and entry["name"] not in only:
            continue
        notebook = root / entry["notebook"]
        if not notebook.is_file():
            raise FileNotFoundError(f"Notebook of plan entry {entry['name']!r} not found: {notebook}")
        declared = set(papermill.inspect_notebook(str(notebook)))
        common = {
            "data_dir": str((root / data_dir).resolve()),
            "output_dir": str(results_dir / entry["name"]),
            "executed_dir": str(executed_dir),
            "n_jobs": n_jobs,
        }
        parameters = {k: v for k, v in common.items() if k in declared}
        unknown = set(entry["parameters"]) - declared
        if unknown:
            raise ValueError(
                f"Plan entry {entry['name']!r} sets {sorted(unknown)}, which {notebook.name} does not "
                f"declare in its parameters cell; declared: {sorted(declared)}."
            )
        parameters.update(
            {
                k: v.replace("{results_dir}", str(results_dir)) if isinstance(v, str) else v
                for k, v in entry["parameters"].items()
            }
        )
        parameters.update({k: v for k, v in (overrides or {}).items() if k in declared})
        target = executed_dir / f"{entry['name']}.ipynb"
        tmp = executed_dir / f".tmp-{entry['name']}.ipynb"
        failed = executed_dir / f"{entry['name']}.failed.ipynb"
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        status, message = "ok", None
        try:
            papermill.execute_notebook(
                str(notebook),
                str(tmp),
                parameters=parameters,
                kernel_name=kernel_name,
                cwd=str(root),
                progress_bar=False,
                log_output=False,
                kernel_manager_class=QuietKernelManager,
            )
        except Exception as err:  # papermill raises PapermillExecutionError and kernel errors
            status, message = "failed", _failure_message(entry["name"], err)
            if tmp.exists():
                os.replace(tmp, failed)
        duration = time.perf_counter() - t0
        record = {
            "name": entry["name"],
            "title": entry["title"],
            "notebook": entry["notebook"],
            "parameters": parameters,
            "status": status,
            "started": started.isoformat(timespec="seconds"),
            "duration_s": round(duration, 1),
            "commit": commit,
            "executed": str(target.relative_to(root)) if target.is_relative_to(root) else str(target),
        }
        if status == "ok":
            os.replace(tmp, target)
            if failed.exists():
                failed.unlink()
        write_json(results_dir / entry["name"] / "run.json", record)
        log = [r for r in log if r["name"] != entry["name"]] + [record]
        write_json(log_path, {"runs": log})
        records.append(record)
        if status != "ok":
            raise NotebookFailed(message + f"\nThe partly executed notebook is in {failed}.")
    return records


def install_mathjax(dest: str | Path) -> Path:
    """Copy MathJax 2 from the installed ``jupyter_server_mathjax`` package to ``dest``.

    The rendered pages then load MathJax from the book itself, not from a CDN.
    Does nothing if ``dest/MathJax.js`` exists.
    """

    dest = Path(dest)
    if (dest / "MathJax.js").is_file():
        return dest
    spec = importlib.util.find_spec("jupyter_server_mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("jupyter_server_mathjax is not installed; run `make venv`.")
    source = Path(list(spec.submodule_search_locations)[0]) / "static"
    tmp = dest.with_name(f".tmp-{dest.name}")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(source, tmp)
    tmp.rename(dest)
    return dest
