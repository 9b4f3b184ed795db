"""Artifacts load, carry what the chain layer needs, and are fresh against contracts/src."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from node.chain.artifacts import (
    PROTOCOL_CONTRACTS,
    check_fresh,
    contracts_dir,
    load_artifact,
    load_protocol_artifacts,
    stale_sources,
)
from node.protocol.errors import ArtifactError


def test_artifacts_are_fresh() -> None:
    """Fails when any contracts/src/*.sol differs from what its artifact was compiled from."""
    reasons = stale_sources()
    assert not reasons, "stale artifacts, run `make setup` / forge build:\n" + "\n".join(reasons)


def test_protocol_artifacts_load() -> None:
    artifacts = load_protocol_artifacts()
    assert list(artifacts) == list(PROTOCOL_CONTRACTS)
    for name, artifact in artifacts.items():
        assert artifact.name == name
        assert artifact.source == f"src/{name}.sol"
        assert artifact.bytecode and artifact.deployed_bytecode
        assert artifact.functions and artifact.events and artifact.errors
        assert artifact.source_hashes[artifact.source].startswith("0x")


def test_storage_layout_is_built() -> None:
    slots = load_artifact("TaskBoard").storage_slots()
    assert {"owner", "_tasks"} <= set(slots)


def test_missing_artifact_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="make setup"):
        load_artifact("TaskBoard", tmp_path)


def _copy_project(tmp_path: Path) -> Path:
    """A copy of contracts/src and the artifacts (without build-info) under tmp_path/contracts."""
    src, dst = contracts_dir(), tmp_path / "contracts"
    shutil.copytree(src / "src", dst / "src")
    shutil.copytree(src / "out", dst / "out", ignore=shutil.ignore_patterns("build-info"))
    return tmp_path


def test_check_fresh_detects_an_edited_source(tmp_path: Path) -> None:
    root = _copy_project(tmp_path)
    check_fresh(root)
    source = root / "contracts" / "src" / "TaskBoard.sol"
    source.write_text(source.read_text() + "\n// edited after the build\n")
    with pytest.raises(ArtifactError, match="TaskBoard.sol changed since it was compiled"):
        check_fresh(root)


def test_check_fresh_ignores_mtime_only_changes(tmp_path: Path) -> None:
    root = _copy_project(tmp_path)
    source = root / "contracts" / "src" / "ModelRegistry.sol"
    source.touch()  # newer than the artifact, same content: still fresh
    check_fresh(root)


def test_check_fresh_detects_an_unbuilt_source(tmp_path: Path) -> None:
    root = _copy_project(tmp_path)
    (root / "contracts" / "src" / "New.sol").write_text("// SPDX-License-Identifier: MIT\npragma solidity 0.8.37;\n")
    with pytest.raises(ArtifactError, match="New.sol was never compiled"):
        check_fresh(root)


def test_check_fresh_detects_an_edited_import(tmp_path: Path) -> None:
    root = _copy_project(tmp_path)
    library = root / "contracts" / "src" / "Chorus.sol"
    text = library.read_text()
    edited = text.replace("MAX_ACTION = 2", "MAX_ACTION = 3")
    assert edited != text, "the edit must change the library"
    library.write_text(edited)
    with pytest.raises(ArtifactError, match="Chorus.sol"):
        check_fresh(root)
