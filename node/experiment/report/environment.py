"""The machine, the packages and the code a run's report names (results.json's `environment`)."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from node.experiment.config import RunOptions


def environment(opts: RunOptions) -> dict[str, Any]:
    from importlib import metadata

    def version(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return {
        "python": platform.python_version(), "platform": platform.platform(), "machine": platform.machine(),
        "cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem, "hostname": platform.node(),
        "packages": {p: version(p) for p in ("chorus", "torch", "onnxruntime", "numpy", "scikit-learn", "web3",
                                             "eth-account", "tokenizers", "matplotlib")},
        "anvil": _anvil_version(), "chain_client": _chain_client(opts.rpc_url), "seed": opts.seed,
        "git_commit": _git_commit(), "git_dirty": _git_dirty(),
    }


def _chain_client(rpc_url: str | None) -> str | None:
    """`web3_clientVersion` of the run's RPC when it was given (the private Anvil is gone by now and is
    the `anvil` entry); None when the chain does not answer it."""
    if rpc_url is None:
        return None
    import requests

    try:
        response = requests.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "web3_clientVersion",
                                                "params": []}, timeout=5)
        version = response.json().get("result")
        return str(version)[:200] if version else None
    except (requests.RequestException, ValueError, AttributeError):
        return None


def _anvil_version() -> str | None:
    import subprocess

    from node.devnet.anvil import DevnetError, find_anvil

    try:
        out = subprocess.run([str(find_anvil()), "--version"], capture_output=True, text=True, timeout=10,
                             check=False)
        return out.stdout.strip().splitlines()[0] if out.stdout else None
    except (DevnetError, OSError, subprocess.SubprocessError, IndexError):
        return None


def _git_dirty() -> bool | None:
    """Whether the working tree has uncommitted changes (the commit alone then does not say what ran)."""
    import subprocess

    from node.chain.settings import find_project_root

    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                             text=True, timeout=10, cwd=find_project_root(), check=False)
        return bool(out.stdout.strip()) if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _git_commit() -> str | None:
    import subprocess

    from node.chain.settings import find_project_root

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=find_project_root(), check=False)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
