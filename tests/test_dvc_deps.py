"""Every project file a dvc.yaml stage imports is one of its deps, or DVC serves stale results.

Each stage's cmd is `python -m a3lign_dfer.commands.<name>`; the files it runs are that
module and everything it imports in turn (module level or inside functions, found by
reading the source), with their packages' __init__ files. A dep covers a file when it
is the file or a folder above it.
"""
from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
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
    match = re.match(rf"python -m ({PACKAGE}\.commands\.\w+)", cmd)
    assert match, f"stage cmd does not run a module of {PACKAGE}.commands: {cmd}"
    return closure({match.group(1)})


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


@pytest.mark.parametrize("stage, command", [("train_stage3", "train"), ("evaluate", "evaluate")])
def test_removing_an_imported_file_from_deps_is_caught(stage, command):
    stages = dvc_stages()
    needed = sorted(stage_files(stages[stage]["cmd"]))
    assert SRC / PACKAGE / "model" / "a3lign.py" in needed and SRC / PACKAGE / "commands" / f"{command}.py" in needed
    for dep in list(stages[stage]["deps"]):
        if dep.startswith("src/"):
            trimmed = {**stages, stage: {**stages[stage], "deps": [d for d in stages[stage]["deps"] if d != dep]}}
            assert stage in missing_deps(trimmed), f"{dep} is listed for {stage} but nothing it imports needs it"


def test_no_stage_runs_the_subcommand_list_or_the_service_config():
    """What a new subcommand (cli.py) or a new `serve` field (config/serving.py) edits is no stage's code."""
    untouched = {SRC / PACKAGE / rel for rel in ("cli.py", "__main__.py", "config/serving.py", "config/params.py")}
    assert {name: sorted(str(f) for f in stage_files(stage["cmd"]) & untouched)
            for name, stage in dvc_stages().items()} == {name: [] for name in dvc_stages()}


def test_dvc_status_after_a_new_subcommand_and_serve_field_shows_no_stage_changed(tmp_path):
    """The real DVC, on a copy of the code and the committed lock: before and after the edits, the same status."""
    for rel in ("src", "dvc.yaml", "dvc.lock", "params.yaml"):
        copy = shutil.copytree if (ROOT / rel).is_dir() else shutil.copy
        copy(ROOT / rel, tmp_path / rel)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=tmp_path, check=True, env=env)

    def status() -> dict:
        out = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=tmp_path, check=True, env=env,
                             capture_output=True, text=True).stdout
        return json.loads(out)

    before = status()
    package = tmp_path / "src" / PACKAGE
    (package / "commands/hello.py").write_text('HELP = "say hello"\n\n\ndef add_arguments(p):\n    pass\n\n\n'
                                              'def run(args):\n    print("hello")\n')
    cli = package / "cli.py"
    cli.write_text(cli.read_text().replace('COMMANDS = (', 'COMMANDS = ("hello", '))
    serving = package / "config/serving.py"
    serving.write_text(serving.read_text().replace("    metrics_need_key: bool",
                                                   "    metrics_need_key: bool\n    max_clients: int"))
    params = tmp_path / "params.yaml"
    params.write_text(params.read_text() + "\n  max_clients: 8\n")
    assert 'COMMANDS = ("hello", ' in cli.read_text() and "max_clients: 8" in params.read_text()
    assert status() == before
