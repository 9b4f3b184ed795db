"""Typed loading of forge's build artifacts (`contracts/out/<File>.sol/<Contract>.json`).

ABIs and bytecode are read from what forge built from `contracts/src`; none is ever pasted into
Python. Freshness is decided by content, not mtimes: every artifact carries the compiler's
metadata, whose `sources` map each compiled file to the keccak256 of the exact text the compiler
saw. `check_fresh()` hashes the current files and compares.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from eth_utils import keccak

from node.protocol.errors import ArtifactError
from node.chain.settings import find_project_root

PROTOCOL_CONTRACTS = ("ModelRegistry", "AgentRegistry", "TaskBoard")
"""The deployed contracts, in deployment order."""

_HINT = "run `make setup` (or `cd contracts && ../node_modules/.bin/forge build`)"


def contracts_dir(root: Path | None = None) -> Path:
    """The Foundry project: `<project root>/contracts`."""
    return (root or find_project_root()) / "contracts"


def default_out_dir(root: Path | None = None) -> Path:
    """forge's artifact folder: `<project root>/contracts/out`."""
    return contracts_dir(root) / "out"


@dataclass(frozen=True)
class Artifact:
    """One compiled contract: what deploying, calling and decoding it needs."""

    name: str
    source: str  # path relative to the Foundry root, e.g. "src/TaskBoard.sol"
    abi: list[dict[str, Any]] = field(repr=False)
    bytecode: bytes = field(repr=False)  # creation code, constructor arguments not appended
    deployed_bytecode: bytes = field(repr=False)
    storage_layout: dict[str, Any] | None = field(repr=False)
    source_hashes: dict[str, str] = field(repr=False)  # compiled file -> keccak256 of its text
    compiler: str = ""

    @cached_property
    def errors(self) -> list[dict[str, Any]]:
        """The custom errors the contract can revert with (its own and those it inherits)."""
        return [e for e in self.abi if e.get("type") == "error"]

    @cached_property
    def events(self) -> list[dict[str, Any]]:
        """The events the contract can emit."""
        return [e for e in self.abi if e.get("type") == "event"]

    @cached_property
    def functions(self) -> list[dict[str, Any]]:
        """The external and public functions."""
        return [e for e in self.abi if e.get("type") == "function"]

    def storage_slots(self) -> dict[str, int]:
        """State variable label -> storage slot, from forge's `storageLayout` (empty if not built)."""
        if not self.storage_layout:
            return {}
        return {v["label"]: int(v["slot"]) for v in self.storage_layout.get("storage", [])}


def _hex_bytes(obj: Any, what: str, path: Path) -> bytes:
    text = obj.get("object") if isinstance(obj, dict) else obj
    if not isinstance(text, str):
        raise ArtifactError(f"{path}: no {what}")
    if "__$" in text:
        raise ArtifactError(f"{path}: {what} has unlinked library references")
    try:
        return bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise ArtifactError(f"{path}: {what} is not hex") from None


def _metadata(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    meta = raw.get("metadata")
    if isinstance(meta, str):
        meta = json.loads(meta)
    if not isinstance(meta, dict) and isinstance(raw.get("rawMetadata"), str):
        meta = json.loads(raw["rawMetadata"])
    if not isinstance(meta, dict):
        raise ArtifactError(f"{path}: no compiler metadata; rebuild with forge ({_HINT})")
    return meta


def load_artifact(name: str, out_dir: Path | None = None) -> Artifact:
    """Load contract `name` from `out_dir` (default `contracts/out`); raise ArtifactError if absent."""
    out = Path(out_dir) if out_dir else default_out_dir()
    matches = sorted(out.glob(f"*.sol/{name}.json"))
    if not matches:
        raise ArtifactError(f"no artifact for contract {name} under {out}: {_HINT}")
    # A contract name may repeat across files (tests, mocks); prefer the one compiled from src/.
    artifacts = [_read_artifact(name, p) for p in matches]
    preferred = [a for a in artifacts if a.source.startswith("src/")] or artifacts
    if len(preferred) > 1:
        raise ArtifactError(f"contract name {name} is ambiguous: {[a.source for a in preferred]}")
    return preferred[0]


def _read_artifact(name: str, path: Path) -> Artifact:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot read artifact {path}: {exc}") from None
    meta = _metadata(raw, path)
    targets = meta.get("settings", {}).get("compilationTarget", {})
    source = next((src for src, contract in targets.items() if contract == name), None)
    if source is None:
        raise ArtifactError(f"{path}: metadata names no compilation target for {name}")
    abi = raw.get("abi")
    if not isinstance(abi, list):
        raise ArtifactError(f"{path}: no ABI")
    return Artifact(
        name=name,
        source=source,
        abi=abi,
        bytecode=_hex_bytes(raw.get("bytecode"), "bytecode", path),
        deployed_bytecode=_hex_bytes(raw.get("deployedBytecode"), "deployed bytecode", path),
        storage_layout=raw.get("storageLayout"),
        source_hashes={src: info["keccak256"] for src, info in meta.get("sources", {}).items()
                       if isinstance(info, dict) and "keccak256" in info},
        compiler=meta.get("compiler", {}).get("version", ""),
    )


def load_protocol_artifacts(out_dir: Path | None = None) -> dict[str, Artifact]:
    """ModelRegistry, AgentRegistry and TaskBoard, keyed by name."""
    return {name: load_artifact(name, out_dir) for name in PROTOCOL_CONTRACTS}


def _source_hash(path: Path) -> str:
    return "0x" + keccak(path.read_bytes()).hex()


def stale_sources(root: Path | None = None, out_dir: Path | None = None) -> list[str]:
    """Human-readable reasons why the artifacts do not match `contracts/src`; empty when fresh.

    A source is stale when no artifact was compiled from it, or when the keccak256 of its current
    text differs from the hash the compiler recorded in the metadata of the artifacts compiled from
    it. The protocol contracts are also checked against every file they import.
    """
    base = contracts_dir(root)
    out = Path(out_dir) if out_dir else base / "out"
    as_target: dict[str, set[str]] = {}  # source -> hashes recorded by artifacts compiled from it
    as_import: dict[str, set[str]] = {}  # source -> hashes recorded by any artifact
    for path in sorted(out.glob("*.sol/*.json")):
        try:
            meta = _metadata(json.loads(path.read_text()), path)
        except (OSError, ValueError, ArtifactError):
            continue
        targets = meta.get("settings", {}).get("compilationTarget", {})
        for src, info in meta.get("sources", {}).items():
            if isinstance(info, dict) and "keccak256" in info:
                as_import.setdefault(src, set()).add(info["keccak256"])
                if src in targets:
                    as_target.setdefault(src, set()).add(info["keccak256"])

    reasons: list[str] = []
    for src in sorted((base / "src").rglob("*.sol")):
        rel = src.relative_to(base).as_posix()
        recorded = as_target.get(rel) or as_import.get(rel)
        if not recorded:
            reasons.append(f"{rel} was never compiled")
        elif _source_hash(src) not in recorded:
            reasons.append(f"{rel} changed since it was compiled")
    for name in PROTOCOL_CONTRACTS:
        try:
            artifact = load_artifact(name, out)
        except ArtifactError as exc:
            reasons.append(str(exc))
            continue
        for rel, recorded_hash in artifact.source_hashes.items():
            path = base / rel
            if not path.is_file():
                reasons.append(f"{name} was compiled from {rel}, which no longer exists")
            elif _source_hash(path) != recorded_hash:
                reasons.append(f"{name} is older than {rel}")
    return list(dict.fromkeys(reasons))


def check_fresh(root: Path | None = None, out_dir: Path | None = None) -> None:
    """Raise ArtifactError unless every contracts/src/*.sol matches what its artifacts were built from."""
    reasons = stale_sources(root, out_dir)
    if reasons:
        raise ArtifactError("contract artifacts are stale or missing: " + "; ".join(reasons) + f"; {_HINT}")
