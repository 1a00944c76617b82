"""House tooling: ruff is clean, notebooks are stripped, the pre-commit hooks exist, markers are strict."""

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*args):
    return subprocess.run([str(a) for a in args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_lint_and_format_are_clean():
    lint = _run(BIN / "ruff", "check", "--no-cache", ".")
    assert lint.returncode == 0, lint.stdout[-3000:]
    fmt = _run(BIN / "ruff", "format", "--no-cache", "--check", "src", "tests", "benchmarks")
    assert fmt.returncode == 0, fmt.stdout[-3000:]


def test_notebooks_are_stripped_and_parametrised():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        assert not any(c.get("outputs") or c.get("execution_count") for c in code), path.name
        assert sum("parameters" in c.get("metadata", {}).get("tags", []) for c in code) == 1, path.name


def test_pre_commit_hooks_run_the_projects_own_tools():
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {h["id"]: h for repo in config["repos"] for h in repo["hooks"]}
    assert {"ruff-check", "ruff-format", "nbstripout"} <= set(hooks)
    for hook in hooks.values():
        tool = ROOT / hook["entry"].split()[0]
        assert tool.name in ("ruff", "nbstripout") and (BIN / tool.name).is_file(), hook["id"]
    check = _run(BIN / "pre-commit", "validate-config", ROOT / ".pre-commit-config.yaml")
    assert check.returncode == 0, check.stdout + check.stderr


def test_pytest_markers_are_strict_and_declared():
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "--strict-markers" in options["addopts"]
    declared = {m.split(":")[0] for m in options["markers"]}
    used = set()
    for path in (ROOT / "tests").glob("*.py"):
        text = path.read_text()
        used |= {m for m in ("slow", "book") if f"pytest.mark.{m}" in text}
    assert used <= declared
