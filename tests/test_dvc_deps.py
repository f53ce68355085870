"""Every project file a dvc.yaml stage imports is one of its deps, or DVC serves stale results.

Each stage's cmd is `python -m a3lign_dfer <subcommand>`; the files it runs are
__main__.py, cli.py, the modules cli.main() and that subcommand's function import,
and everything those import in turn (module level or inside functions, found by
reading the source). A dep covers a file when it is the file or a folder above it.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[1]
SRC = ROOT / "src"
PACKAGE = "a3lign_dfer"


def module_file(module: str) -> Path | None:
    base = SRC / module.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def project_imports(tree: ast.AST, module: str) -> set[str]:
    """Project modules imported anywhere in `tree` (including `from pkg import submodule`)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(module.split(".")[: -node.level] + ([base] if base else []))
            if base.split(".")[0] != PACKAGE:
                continue
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names if module_file(f"{base}.{a.name}")}
    return found


def closure(roots: set[str]) -> set[Path]:
    """Files of `roots` and of every project module they import, transitively, with parent packages."""
    seen, todo, files = set(), list(roots), set()
    while todo:
        module = todo.pop()
        parts = module.split(".")
        for i in range(1, len(parts)):
            todo.append(".".join(parts[:i]))        # importing a.b.c runs a/__init__ and a/b/__init__
        if module in seen:
            continue
        seen.add(module)
        path = module_file(module)
        if path is None:
            continue
        files.add(path)
        todo += project_imports(ast.parse(path.read_text()), module)
    return {f for f in files if f.read_text().strip()}       # empty __init__.py files hold no code


def stage_files(cmd: str) -> set[Path]:
    match = re.match(rf"python -m {PACKAGE} (\S+)", cmd)
    assert match, f"stage cmd is not a {PACKAGE} subcommand: {cmd}"
    cli_path = SRC / PACKAGE / "cli.py"
    tree = ast.parse(cli_path.read_text())
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    handler = functions[f"cmd_{match.group(1).replace('-', '_')}"]
    roots = project_imports(functions["main"], f"{PACKAGE}.cli") | project_imports(handler, f"{PACKAGE}.cli")
    return {SRC / PACKAGE / "__main__.py", cli_path} | closure(roots)   # cli.py's other subcommands do not run


def missing_deps(stages: dict) -> dict[str, list[str]]:
    missing = {}
    for name, stage in stages.items():
        deps = [ROOT / d for d in stage.get("deps", [])]
        needed = stage_files(stage["cmd"])
        uncovered = sorted(str(f.relative_to(ROOT)) for f in needed if not any(f == d or d in f.parents for d in deps))
        if uncovered:
            missing[name] = uncovered
    return missing


def dvc_stages() -> dict:
    stages = {}
    for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        if "foreach" in stage:
            for item in stage["foreach"]:
                body = yaml.safe_dump(stage["do"]).replace("${item}", str(item))
                stages[f"{name}@{item}"] = yaml.safe_load(body)
        else:
            stages[name] = stage
    return stages


def test_every_stage_lists_every_project_file_it_imports():
    assert missing_deps(dvc_stages()) == {}


@pytest.mark.parametrize("stage", ["train_stage3", "evaluate"])
def test_removing_an_imported_file_from_deps_is_caught(stage):
    stages = dvc_stages()
    needed = sorted(stage_files(stages[stage]["cmd"]))
    assert SRC / PACKAGE / "model" / "a3lign.py" in needed and SRC / PACKAGE / "config.py" in needed
    for dep in list(stages[stage]["deps"]):
        if dep.startswith("src/"):
            trimmed = {**stages, stage: {**stages[stage], "deps": [d for d in stages[stage]["deps"] if d != dep]}}
            assert stage in missing_deps(trimmed), f"{dep} is listed for {stage} but nothing it imports needs it"
