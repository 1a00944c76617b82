"""The package's layers: no module imports a higher layer, the studies stay apart, the simulators share little.

Layers, bottom to top (see the package docstring): ``io`` (files, BIDS naming,
schemas, atlases, the per-run mapper), ``stats`` (study-agnostic statistics),
``simulate``, the studies ``cocaine`` and ``baclofen``, ``verdict`` (truth,
claims, ledger, calibration) and ``book`` (run plan, provenance, figures, CLI).
"""

import ast
import re
import shutil
from pathlib import Path

import pytest

import craving_circuits

PACKAGE = Path(craving_circuits.__file__).resolve().parent

LAYERS = {"io": 0, "stats": 1, "simulate": 2, "cocaine": 3, "baclofen": 3, "verdict": 4, "book": 5}
STUDIES = {"cocaine", "baclofen"}
SHARED_SECTION = "Shared with the analysis"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, root: Path):
    """Every import of the package in a file: ``(target module, names, lineno, nested)``."""
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    nested = {
        id(n)
        for f in ast.walk(tree)
        if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
        for n in ast.walk(f)
        if isinstance(n, (ast.Import, ast.ImportFrom))
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != root.name:
                continue
            names = [a.name for a in node.names]
            if target == root.name:  # from craving_circuits import submodule (or __version__)
                for n in names:
                    yield (f"{target}.{n}" if n != "__version__" else target), [n], node.lineno, id(node) in nested
            else:
                yield target, names, node.lineno, id(node) in nested
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == root.name:
                    yield a.name, [], node.lineno, id(node) in nested


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def check_layers(root: Path) -> list[str]:
    """Every breach of the layer rules in the package at ``root``, as readable lines."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root)
        own = _layer(module)
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        shared = docstring.split(SHARED_SECTION, 1)[1] if SHARED_SECTION in docstring else ""
        for target, names, lineno, nested in _imports(path, root):
            where = f"{path.relative_to(root.parent)}:{lineno}"
            if nested:
                problems.append(f"{where}: imports {target} inside a function; import at the module top")
            other = _layer(target)
            if own is None or other is None:
                if own is not None and other is None and target != root.name:
                    problems.append(f"{where}: imports {target}, which belongs to no layer")
                continue
            if LAYERS[other] > LAYERS[own]:
                problems.append(
                    f"{where}: {own} (layer {LAYERS[own]}) imports {target} of the higher layer "
                    f"{other} (layer {LAYERS[other]})"
                )
            if own in STUDIES and other in STUDIES and own != other:
                problems.append(f"{where}: the {own} study imports the {other} study ({target})")
            if own == "simulate" and other not in ("io", "simulate"):
                for n in names:
                    if f"{target}.{n}" not in shared:
                        problems.append(
                            f"{where}: the simulator imports {target}.{n} from the analysis without "
                            f"naming it under '{SHARED_SECTION}' in its docstring"
                        )
    return problems


def test_the_package_keeps_its_layers():
    assert check_layers(PACKAGE) == []


def test_every_module_belongs_to_a_layer():
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert loose == [], "modules outside the layer folders"
    assert set(p.name for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith("__")) == set(LAYERS)
    # the package's own __init__ imports nothing of the package, so any layer may read __version__
    assert not list(_imports(PACKAGE / "__init__.py", PACKAGE))


def test_the_folders_match_the_parts_of_the_book():
    toc = (PACKAGE.parents[1] / "_toc.yml").read_text()
    captions = re.findall(r"caption: (.+)", toc)
    assert any("cocaine" in c.lower() for c in captions) and any("baclofen" in c.lower() for c in captions)
    assert any("verdict" in c.lower() for c in captions)


@pytest.mark.parametrize(
    "breach, message",
    [
        ("from craving_circuits.verdict import ledger\n", "stats (layer 1) imports craving_circuits.verdict"),
        ("from craving_circuits.baclofen.cue import CONTRAST\n", "the cocaine study imports the baclofen study"),
        ("def f():\n    from craving_circuits.io import files\n", "inside a function"),
        ("from craving_circuits.stats.permutation import t_statistic\n", "without naming it under"),
        ("from ..book import plotting\n", "imports craving_circuits.book"),
    ],
)
def test_the_check_fails_on_a_breach(tmp_path, breach, message):
    copy = tmp_path / "craving_circuits"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = {
        "stats (layer 1)": "stats/contrasts.py",
        "the cocaine study": "cocaine/drug.py",
        "inside a function": "io/files.py",
        "without naming it under": "simulate/signals.py",
        "imports craving_circuits.book": "verdict/ledger.py",
    }
    name = next(v for k, v in target.items() if k in message)
    with open(copy / name, "a") as f:
        f.write("\n" + breach)
    problems = check_layers(copy)
    assert len(problems) == 1 and message in problems[0], problems
