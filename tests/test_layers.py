"""The layer check: `lint-imports` (the import-linter contracts in pyproject.toml) passes on the
tree, and fails on a copy of it with one arrow that runs the wrong way, so the check can fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("node", "agents", "models")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` on the packages under `root`, with `root/pyproject.toml`'s contracts."""
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        pytest.fail(f"no lint-imports beside {sys.executable}: install the test extra (pip install -e '.[test]')")
    # The packages are imported from `root` first, not from the editable install of the checkout.
    env = os.environ | {"PYTHONPATH": str(root), "COLUMNS": "1000"}  # one contract a line
    return subprocess.run([str(exe), "--no-cache", "--no-logo"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)


def copy_tree(dst: Path) -> Path:
    """The project's Python sources and pyproject.toml under `dst` (no artifacts, no caches)."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        return {n for n in names if n in ("__pycache__", "artifacts")
                or (Path(directory, n).is_file() and not n.endswith(".py"))}

    for package in PACKAGES:
        shutil.copytree(REPO / package, dst / package, ignore=ignore)
    shutil.copy(REPO / "pyproject.toml", dst / "pyproject.toml")
    return dst


def test_the_tree_keeps_its_layers() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("node/protocol/wrong_way.py", "import node.runtime.store", "The protocol vocabulary is a leaf"),
    ("node/chain/wrong_way.py", "from node.runtime import outbox", "Layers point one way"),
    ("node/runtime/wrong_way.py", "import torch", "Serving code never imports torch"),
])
def test_an_arrow_that_runs_back_up_fails_the_check(tmp_path: Path, module: str, line: str, contract: str) -> None:
    root = copy_tree(tmp_path)
    (root / module).write_text(f'"""An import the layers forbid."""\n\n{line}\n')
    result = lint_imports(root)
    assert result.returncode != 0, result.stdout + result.stderr
    broken = [row for row in result.stdout.splitlines() if row.endswith("BROKEN")]
    assert any(row.startswith(contract) for row in broken), result.stdout
    importer = module.removesuffix(".py").replace("/", ".")
    assert importer in result.stdout, result.stdout  # the copy was checked, and the report names the culprit
