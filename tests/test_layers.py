"""The layers are import contracts checked by a real tool: `lint-imports` with pyproject's [tool.importlinter]
(the product never imports the research wing; config imports nothing of ours but errors; inference never
imports serving; GTO only in registry/). A wrong import in a scratch copy of the packages breaks them."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGES = {"a3lign_dfer": ROOT / "src/a3lign_dfer", "a3lign_research": ROOT / "research/a3lign_research"}


def lint_imports(config: Path, path: list[Path]) -> subprocess.CompletedProcess:
    """`lint-imports` on the packages found first on `path` (PYTHONPATH goes before the editable installs)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, path))}
    return subprocess.run([str(Path(sys.executable).parent / "lint-imports"), str(config), "--no-cache"],
                          cwd=config.parent, env=env, capture_output=True, text=True)


def test_the_contracts_hold():
    done = lint_imports(ROOT / "pyproject.toml", [ROOT / "src", ROOT / "research"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 4 kept, 0 broken." in done.stdout


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A copy of both packages and the contracts, to break on purpose."""
    root = tmp_path_factory.mktemp("layers")
    for name, folder in PACKAGES.items():
        shutil.copytree(folder, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", root)
    return root


@pytest.mark.parametrize("module, line, contract", [
    ("a3lign_dfer/data/sampling.py", "import a3lign_research.blocks", "the product never imports the research wing"),
    ("a3lign_dfer/config/schema.py", "import a3lign_dfer.model", "config imports nothing of ours but errors"),
    ("a3lign_dfer/inference/predict.py", "import a3lign_dfer.serving.app", "inference never imports serving"),
    ("a3lign_dfer/serving/app.py", "import gto", "GTO is read in registry/ only"),
])
def test_a_wrong_import_breaks_its_contract(scratch, tmp_path, module, line, contract):
    copy = tmp_path / "copy"
    shutil.copytree(scratch, copy)
    path = copy / module
    path.write_text(path.read_text() + f"\n{line}  # the wrong import\n")
    done = lint_imports(copy / "pyproject.toml", [copy])
    assert done.returncode != 0
    assert f"{contract} BROKEN" in done.stdout and "Contracts: 3 kept, 1 broken." in done.stdout
