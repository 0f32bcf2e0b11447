"""The package's architecture, as DESIGN.md states it: a pure JAX core at the top level
of `purejaxppo/`, host shells in subpackages, imports pointing only down.

    cli.py  ->  sweep/, bench/, rlhf's shell  ->  run/  ->  core (config, envs, networks, gae, ...)

`rlhf/` is "pure + its shell": its shell modules (RLHF_SHELL) read YAML, write the run folder
and print; the rest of `rlhf/` is core and may not import them.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "purejaxppo"
SHELLS = ("run", "sweep", "bench")
# What each part may import from inside the package (besides the core, which all may).
ALLOWED = {
    "core": set(),
    "run": {"run"},
    "sweep": {"sweep", "run"},
    "bench": {"bench", "run"},
    "rlhf-shell": {"run"},
}
RLHF_SHELL = ("cli.py", "yamlconfig.py", "report.py", "runner.py")  # the host side of rlhf/


def _is_rlhf_shell(path: Path) -> bool:
    return path.parent == PACKAGE / "rlhf" and path.name in RLHF_SHELL


def _core_modules() -> list[Path]:
    """Top-level modules but the command, and subpackages that are not shells (`envs/`)."""
    top = [p for p in PACKAGE.glob("*.py") if p.name not in ("cli.py", "__main__.py")]
    subs = [d for d in PACKAGE.iterdir() if d.is_dir() and d.name not in (*SHELLS, "__pycache__")]
    modules = top + [p for d in subs for p in d.rglob("*.py")]
    return sorted(p for p in modules if not _is_rlhf_shell(p))


def _part(path: Path) -> str:
    if _is_rlhf_shell(path):
        return "rlhf-shell"
    rel = path.relative_to(PACKAGE).parts
    return rel[0] if len(rel) > 1 and rel[0] in SHELLS else "core"


def _imported(path: Path) -> set[str]:
    """Every `purejaxppo.X...` module a file imports, at any depth (lazy imports too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return {n for n in names if n.startswith("purejaxppo.")}


def _source_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_import_purejaxppo_loads_no_host_shell():
    code = "import sys, purejaxppo; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    loaded = [m for m in out if m.startswith("purejaxppo.")]
    shells = [m for m in loaded if m.split(".")[1] in (*SHELLS, "cli", "__main__")]
    assert not shells, f"`import purejaxppo` loaded host-side modules: {shells}"
    assert "purejaxppo.train" in loaded  # the check can fail: the core is really loaded
    for heavy in ("matplotlib", "orbax"):  # (yaml, rich: flax imports them itself)
        assert heavy not in out, f"`import purejaxppo` imported {heavy}"


@pytest.mark.parametrize("path", _source_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path):
    if path.name in ("cli.py", "__main__.py") and path.parent == PACKAGE:
        return  # the command dispatches to every part
    part = _part(path)
    for name in _imported(path):
        target = name.split(".")[1]
        if target in (*SHELLS, "cli", "__main__"):
            assert target in ALLOWED[part], f"{part} module imports {name}"
        parts = name.split(".")
        if target == "rlhf" and len(parts) > 2 and f"{parts[2]}.py" in RLHF_SHELL:
            assert part != "core", f"core module imports rlhf's shell {name}"


def test_import_rlhf_loads_no_shell():
    code = "import sys, purejaxppo.rlhf; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "purejaxppo.rlhf.trainer" in out  # the check can fail: the core is loaded
    shell = [m for m in out if m.split(".")[0] == "purejaxppo" and m.count(".") >= 1]
    shell = [
        m for m in shell if m.split(".")[1] in SHELLS or m.rsplit(".", 1)[-1] + ".py" in RLHF_SHELL
    ]
    assert not shell, f"`import purejaxppo.rlhf` loaded host-side modules: {shell}"


def _calls(path: Path, names: set[str]) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names:
            found.append(f"{node.func.id}() at line {node.lineno}")
    return found


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_module_neither_prints_nor_opens_files(path: Path):
    assert not _calls(path, {"print", "open", "input"}), path


def test_layout_checks_can_fail(tmp_path: Path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from purejaxppo.run.rundir import final_return\n    print(1)\n")
    assert "purejaxppo.run.rundir" in _imported(bad)
    assert _calls(bad, {"print"})


def test_readme_layout_table_lists_every_module():
    """The README's layout table names every module of the package (and nothing else)."""
    readme = (PACKAGE.parent / "README.md").read_text()
    table = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    for path in _source_files():
        rel = path.relative_to(PACKAGE.parent).as_posix()
        if path.name in ("__init__.py", "__main__.py"):
            continue
        short = path.name
        row_hit = rel in table or (
            f"`{path.parent.relative_to(PACKAGE.parent).as_posix()}/`" in table
            and f"`{short}`" in table
        )
        assert row_hit, f"README layout table does not mention {rel}"
