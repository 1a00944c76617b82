"""Executing the book's notebooks with papermill, and recording how each run went.

The plan (``book/runs.yml``) lists which notebook runs with which parameters
into which executed copy under ``book/executed/``, and which other runs' results
each one reads (``needs``). Jupyter Book then renders those copies and never
executes anything itself, so every figure in the book comes from exactly one
recorded run.

The plan is a graph: an entry starts as soon as every entry it needs has
finished, and up to ``max_parallel`` independent entries execute side by side
(by default one per worker of ``n_jobs``), each with its share of the workers
(``n_jobs // max_parallel``, at least one), which also caps the threads of its
kernel's numerical libraries (``OMP_NUM_THREADS`` and the like), so that two
kernels do not each start a thread per core. With ``max_parallel=1`` the
entries run one after the other in the plan's order, with the libraries'
default threads.

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
  (no further entry starts; those already running finish) with the failing
  cell and its error;
* sends what the kernel itself prints on its standard streams (warnings of
  worker pools at shutdown, library chatter outside cells) to
  ``book/executed/logs/<name>.log`` instead of the terminal, so that the build
  prints one line per notebook; the log's tail is part of a failure's message;
* records parameters, start time, duration and status in
  ``results/<name>/run.json`` and in the log ``book/executed/runs.json``, read
  by the reproducibility appendix.

On one's own data (an entry with ``own_data``, from
:func:`craving_circuits.book.owndata.own_data_plan`), the runner gives the
entry's notebook the dataset's folders (``bids_dir``, ``fmriprep_dir``,
``aslprep_dir``, where it declares them) and first checks that the chapter's
inputs are there (:func:`craving_circuits.book.owndata.missing_inputs`): a
chapter whose inputs are absent, or that needs a chapter that was skipped, is
not executed; its page says what was absent (status ``"skipped"`` with the
``reason`` in its records; its results folder holds only that record, no
table of an earlier build), and the entries that do not analyse a study (the
ledger, the appendix) run on what there is.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import papermill
import yaml
from jupyter_client import AsyncKernelManager

from craving_circuits.book.owndata import OWN_DATA_PARAMETERS, missing_inputs, skipped_page
from craving_circuits.book.provenance import git_commit
from craving_circuits.book.rendering import book_ready
from craving_circuits.io.files import read_json, write_json

__all__ = ["load_plan", "execute_plan", "NotebookFailed", "install_mathjax"]

COMMON_PARAMETERS = ("data_dir", "output_dir", "executed_dir", "n_jobs")

#: Environment variables that cap the threads of numerical libraries in a kernel.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


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

    #: File that receives the kernel process's standard output and error (None: inherited).
    kernel_log: Path | None = None
    #: Threads of the kernel's numerical libraries (OpenBLAS, MKL, OpenMP); None: their default.
    threads: int | None = None

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        return super().format_kernel_cmd(extra_arguments) + ["--IPKernelApp.log_level=ERROR"]

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        if self.threads is not None:
            env = dict(kw.get("env") or os.environ)
            env.update({name: str(self.threads) for name in THREAD_VARIABLES})
            kw = {**kw, "env": env}
        if self.kernel_log is None:
            return await super()._async_launch_kernel(kernel_cmd, **kw)
        Path(self.kernel_log).parent.mkdir(parents=True, exist_ok=True)
        with open(self.kernel_log, "ab") as log:
            # the child process keeps its own copy of the descriptor
            return await super()._async_launch_kernel(kernel_cmd, **{**kw, "stdout": log, "stderr": log})


def _kernel_manager(log: Path, threads: int | None = None) -> type[QuietKernelManager]:
    """A :class:`QuietKernelManager` whose kernel writes its standard streams to ``log`` (with ``threads``)."""
    return type("LoggedKernelManager", (QuietKernelManager,), {"kernel_log": log, "threads": threads})


def load_plan(path: str | Path, preset: str = "paper", null_preset: str = "null") -> list[dict]:
    """Read the run plan and fill its placeholders.

    Returns
    -------
    plan : list of dict
        Entries with ``name``, ``notebook``, ``parameters``, ``title`` and
        ``needs`` (names of the entries whose results it reads).

    Raises
    ------
    ValueError
        If an entry lacks ``name`` or ``notebook``, names repeat, or an entry
        needs one that is not in the plan or comes after it (the plan's order
        is always a valid order of execution, so the graph has no cycle).
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
        needs = entry.get("needs") or []
        if isinstance(needs, str) or not all(isinstance(n, str) for n in needs):
            raise ValueError(f"{path}: 'needs' of {entry['name']!r} must be a list of entry names, got {needs!r}.")
        for need in needs:
            if need not in names:
                raise ValueError(
                    f"{path}: {entry['name']!r} needs {need!r}, which is not an earlier entry of the plan; "
                    "list every entry after the entries it needs."
                )
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
                "needs": list(needs),
            }
        )
    return plan


def _failure_message(name: str, err, log: Path | None = None) -> str:
    source = getattr(err, "source", "") or ""
    ename = getattr(err, "ename", type(err).__name__)
    evalue = getattr(err, "evalue", str(err))
    message = (
        f"Notebook {name!r} failed in cell {getattr(err, 'exec_count', '?')}:\n"
        f"----- cell -----\n{source}\n----- error -----\n{ename}: {evalue}"
    )
    tail = log.read_text(errors="replace").strip()[-2000:] if log is not None and log.is_file() else ""
    if tail:
        message += f"\n----- kernel log ({log}) -----\n{tail}"
    return message


def _declared(entry: dict, root: Path) -> set[str]:
    """The parameters an entry's notebook declares in its parameters cell."""
    notebook = root / entry["notebook"]
    if not notebook.is_file():
        raise FileNotFoundError(f"Notebook of plan entry {entry['name']!r} not found: {notebook}")
    return set(papermill.inspect_notebook(str(notebook)))


def _check_overrides(overrides: dict | None, declared: dict[str, set[str]]) -> None:
    """Refuse an override that no selected notebook declares (a typo would otherwise be dropped silently)."""
    valid = set().union(*declared.values()) if declared else set()
    unknown = sorted(set(overrides or {}) - valid)
    if unknown:
        raise ValueError(
            f"No notebook of the selected plan entries {sorted(declared)} declares the parameter(s) {unknown}; "
            f"valid parameters: {sorted(valid)}."
        )


def _parameters(
    entry: dict,
    root: Path,
    data_dir,
    results_dir: Path,
    executed_dir: Path,
    n_jobs: int,
    overrides,
    declared: set[str] | None = None,
):
    """The parameters one entry runs with: the common ones it declares, its own, then the overrides."""
    notebook = root / entry["notebook"]
    declared = _declared(entry, root) if declared is None else declared
    common = {
        "data_dir": str((root / data_dir).resolve()),
        "output_dir": str(results_dir / entry["name"]),
        "executed_dir": str(executed_dir),
        "n_jobs": n_jobs,
    }
    common.update({k: v for k, v in (entry.get("own_data") or {}).items() if k in OWN_DATA_PARAMETERS})
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
    return parameters


def _skipped(todo: list[dict], parameters: dict) -> dict[str, str]:
    """The own-data entries that cannot run, with why: their inputs are absent, or they need a skipped entry."""
    skipped: dict[str, str] = {}
    for entry in todo:  # the plan's order puts every entry after those it needs
        if "own_data" not in entry:
            continue
        reason = missing_inputs(entry["notebook"], parameters[entry["name"]])
        gone = [n for n in entry["needs"] if n in skipped]
        if reason is None and gone:
            reason = f"it reads the results of {', '.join(gone)}, which did not run ({skipped[gone[0]]})"
        if reason is not None:
            skipped[entry["name"]] = reason
    return skipped


def _skip_entry(entry: dict, parameters: dict, reason: str, root: Path, executed_dir: Path) -> dict:
    """Write the page of an entry that is not run (its title and ``reason``); return its record."""
    target = skipped_page(executed_dir / f"{entry['name']}.ipynb", entry["title"], reason)
    record = {
        "name": entry["name"],
        "title": entry["title"],
        "notebook": entry["notebook"],
        "parameters": parameters,
        "status": "skipped",
        "reason": reason,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": 0.0,
        "executed": str(target.relative_to(root)) if target.is_relative_to(root) else str(target),
    }
    return {"record": record, "message": None, "failed": None}


def _run_entry(
    entry: dict, parameters: dict, root: Path, executed_dir: Path, kernel_name: str, threads: int | None = None
) -> dict:
    """Execute one entry into place (or into ``<name>.failed.ipynb``); return its record and failure message."""
    notebook = root / entry["notebook"]
    target = executed_dir / f"{entry['name']}.ipynb"
    tmp = executed_dir / f".tmp-{entry['name']}.ipynb"
    failed = executed_dir / f"{entry['name']}.failed.ipynb"
    log = executed_dir / "logs" / f"{entry['name']}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(b"")
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
            kernel_manager_class=_kernel_manager(log, threads),
        )
    except Exception as err:  # papermill raises PapermillExecutionError and kernel errors
        status, message = "failed", _failure_message(entry["name"], err, log)
        if tmp.exists():
            os.replace(tmp, failed)
    duration = time.perf_counter() - t0
    if status == "ok":
        # the page as the book shows it: paths relative to the root, the run's parameters labelled, its title
        ready = book_ready(nbformat.read(tmp, as_version=4), root, title=entry.get("title"), run=entry["name"])
        nbformat.write(ready, tmp)
        os.replace(tmp, target)
        if failed.exists():
            failed.unlink()
    record = {
        "name": entry["name"],
        "title": entry["title"],
        "notebook": entry["notebook"],
        "parameters": parameters,
        "status": status,
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round(duration, 1),
        "executed": str(target.relative_to(root)) if target.is_relative_to(root) else str(target),
    }
    return {"record": record, "message": message, "failed": failed}


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
    engine_options: dict | None = None,
    max_parallel: int | None = None,
    progress=None,
) -> list[dict]:
    """Execute the plan's notebooks, independent ones side by side.

    Parameters
    ----------
    plan : list of dict
        From :func:`load_plan`.
    root : path
        Working directory of the notebooks (the repository root); relative
        paths below are relative to it.
    executed_dir, results_dir, data_dir : path
    n_jobs : int
        Workers of the whole build; each running notebook gets
        ``max(1, n_jobs // max_parallel)`` of them (its ``n_jobs`` parameter).
    only : list of str, optional
        Run only these entries (the log keeps the others' last records; an
        entry's needs outside ``only`` are taken as already done).
    overrides : dict, optional
        Parameter values applied to every notebook that declares them (after
        the plan's own parameters); a key that no selected notebook declares
        is an error (it names the key and lists the valid ones).
    kernel_name : str
    engine_options : dict, optional
        Values (``engine``, ``scheduler_address``) given to the notebooks that
        declare them, without that check.
    max_parallel : int, optional
        Notebooks executing at once (default ``n_jobs``; 1 runs the plan in
        its order).
    progress : callable, optional
        Called with each record as its notebook finishes (the build's
        progress line).

    Returns
    -------
    records : list of dict
        One per executed entry, in the plan's order.

    Raises
    ------
    NotebookFailed
        With the failing cell and error (the first failure, when several
        side-by-side notebooks fail).
    """

    root = Path(root).resolve()
    executed_dir = (root / executed_dir).resolve()
    results_dir = (root / results_dir).resolve()
    executed_dir.mkdir(parents=True, exist_ok=True)
    log_path = executed_dir / "runs.json"
    log = read_json(log_path)["runs"] if log_path.is_file() else []
    commit = git_commit(root)
    max_parallel = max(1, int(max_parallel or n_jobs or 1))
    share = max(1, int(n_jobs) // max_parallel)
    # side by side, each kernel's numerical libraries get its share of the cores too
    threads = share if max_parallel > 1 else None
    unknown = sorted(set(only or ()) - {e["name"] for e in plan})
    if unknown:
        raise ValueError(f"No plan entry named {unknown}; the plan has {[e['name'] for e in plan]}.")
    todo = [e for e in plan if not only or e["name"] in only]
    selected = {e["name"] for e in todo}
    # parameters first: a plan error stops the build before any notebook runs
    declared = {e["name"]: _declared(e, root) for e in todo}
    _check_overrides(overrides, declared)
    given = {**(engine_options or {}), **(overrides or {})}
    parameters = {
        e["name"]: _parameters(e, root, data_dir, results_dir, executed_dir, share, given, declared[e["name"]])
        for e in todo
    }
    skipped = _skipped(todo, parameters)
    done: set[str] = set()
    records: dict[str, dict] = {}
    failures: list[tuple[dict, str]] = []
    lock = threading.Lock()

    def finish(outcome: dict) -> None:
        nonlocal log
        record = {**outcome["record"], "commit": commit}
        with lock:
            write_json(results_dir / record["name"] / "run.json", record)
            log = [r for r in log if r["name"] != record["name"]] + [record]
            write_json(log_path, {"runs": log})
        records[record["name"]] = record
        if record["status"] in ("ok", "skipped"):
            done.add(record["name"])
        else:
            failures.append((outcome, outcome["message"]))
        if progress is not None:
            progress(record)

    def ready(entry: dict) -> bool:
        return all(n in done or n not in selected for n in entry["needs"])

    for entry in todo:
        if entry["name"] in skipped:
            # a skipped chapter has no results: none of an earlier build is left to be read as this one's
            shutil.rmtree(results_dir / entry["name"], ignore_errors=True)
            finish(_skip_entry(entry, parameters[entry["name"]], skipped[entry["name"]], root, executed_dir))
    pending = [e for e in todo if e["name"] not in skipped]
    running = {}
    with ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="notebook") as pool:
        while pending or running:
            if not failures:
                for entry in [e for e in pending if ready(e)]:
                    if len(running) >= max_parallel:
                        break
                    # with one notebook at a time, keep the plan's order exactly
                    if max_parallel == 1 and entry is not pending[0]:
                        break
                    pending.remove(entry)
                    future = pool.submit(
                        _run_entry, entry, parameters[entry["name"]], root, executed_dir, kernel_name, threads
                    )
                    running[future] = entry
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                running.pop(future)
                finish(future.result())
    if failures:
        outcome, message = failures[0]
        raise NotebookFailed(message + f"\nThe partly executed notebook is in {outcome['failed']}.")
    return [records[e["name"]] for e in todo if e["name"] in records]


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
