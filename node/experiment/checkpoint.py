"""The run folder's record of finished units (`units.jsonl`) and of the options it was run with (`run.json`).

A unit is written as soon as it is finished, one JSON line fsynced at a time, so a killed run keeps
every unit it finished; a line cut short by the kill is dropped and its unit redone. `run.json`
pins the options: a folder refuses to resume a run with other ones.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from node.experiment.config import RunOptions
from node.protocol.errors import ConfigError

CHECKPOINT = "units.jsonl"
RUN_FILE = "run.json"


class Checkpoint:
    """Finished units, one JSON line each, appended and fsynced as they finish."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.records: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        if not self.path.exists():
            return
        text = self.path.read_text()
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short by a kill: that unit is simply redone
            self.records[record["key"]] = record
        if text and not text.endswith("\n"):
            # Drop the cut tail so the next record starts on a line of its own.
            with open(self.path, "r+") as f:
                f.truncate(text.rfind("\n") + 1)

    def done(self, key: str) -> bool:
        return key in self.records

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def add(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, default=_json_default) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            self.records[record["key"]] = record


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def check_run_file(out: Path, opts: RunOptions) -> None:
    """Refuse to resume a run folder that holds a run with other options."""
    wanted = json.loads(json.dumps(run_identity(opts), default=str))  # tuples as JSON has them
    path = out / RUN_FILE
    if path.exists():
        have = json.loads(path.read_text())
        if have != wanted:
            raise ConfigError(f"{out} holds a run with other options ({path}); pass --fresh to start over "
                              f"or --out for another folder")
        return
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(wanted, indent=2, default=str) + "\n")


def run_identity(opts: RunOptions) -> dict[str, Any]:
    """What a run folder's options must match to resume it (`latent_dim` only where it is not 1, so
    the folders of earlier runs still resume)."""
    identity = {"profile": opts.profile.to_dict(), "seed": opts.seed, "data": str(opts.data) if opts.data else None,
                "sweeps": opts.sweeps}
    if opts.latent_dim != 1:
        identity["latent_dim"] = opts.latent_dim
    return identity
