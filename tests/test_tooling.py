"""House tooling: ruff is clean, notebooks are stripped, the pre-commit hooks exist, markers are strict."""

import ast
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


def _marks(decorators) -> set[str]:
    """The ``pytest.mark.<name>`` names among decorators (or a ``pytestmark`` value)."""
    names = set()
    for node in decorators:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Attribute) and sub.value.attr == "mark":
                names.add(sub.attr)
    return names


def _fast_test_files() -> list[Path]:
    """Test files with at least one test that ``make test-fast`` runs (not marked slow or book)."""
    out = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        tree = ast.parse(path.read_text())
        module_marks = set()
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in node.targets):
                module_marks |= _marks([node.value])
        tests = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test")]
        if any(not ({"slow", "book"} & (module_marks | _marks(t.decorator_list))) for t in tests):
            out.append(path)
    return out


def test_fast_tests_reach_every_module():
    """`make test-fast` imports every module of the package in some test file it runs."""
    package = ROOT / "src" / "craving_circuits"
    modules = {
        ".".join(p.relative_to(package.parent).with_suffix("").parts)
        for p in package.rglob("*.py")
        if p.stem not in ("__init__", "__main__")
    }
    imported = set()
    for path in _fast_test_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("craving_circuits"):
                imported |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
    assert not modules - imported, f"no fast test imports {sorted(modules - imported)}"
    assert ROOT / "tests" / "test_compute.py" in _fast_test_files()
    assert ROOT / "tests" / "test_recovery_paper.py" not in _fast_test_files()
