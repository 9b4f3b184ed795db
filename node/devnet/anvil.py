"""A local dev chain: start and stop Anvil, deploy the protocol, remember what runs.

Mining mode. The default is Anvil's auto-mine (`block_time=None`): every transaction is mined
the moment it arrives, which keeps tests and demos fast. Auto-mine has one known trap: when one
key's transactions arrive out of nonce order, Anvil may leave the later ones in its pool and
never mine them (foundry-rs/foundry#10122). Chorus' client sends each key's transactions in
strict nonce order (its nonce manager holds the key's lock until the node accepted the raw
transaction), so auto-mine is safe for everything Chorus sends. Pass `block_time` (seconds) for
interval mining instead: realistic block times, and nothing stranded whatever the clients do.

Disk. Anvil keeps the state of its recent blocks in memory and writes older ones to a cache
directory, one JSON file per block (100 kB on a fresh chain, 12 MB late in a full bench; a long
bench wrote tens of GB), which it does not remove when it is stopped. Chorus gives every Anvil a
cache directory of its own (`chorus-anvil-*` in the system temp directory), keeps at most `MAX_PERSISTED_STATES` states
there, and removes the directory when it stops that Anvil; a directory left by an Anvil that was
killed is removed by the next `Anvil.start`. So state is readable at about the last 600 blocks
(Anvil's in-memory window plus the persisted ones); logs, blocks and receipts stay readable at
every height. Nothing in Chorus reads state at an older block.

State lives in `<project root>/.chorus/`: `devnet.json` (RPC, chain id, deployer, deploy block,
contract addresses, the Anvil pid and port), `anvil.pid` and `anvil.log`.

Processes are stopped by the pid we recorded, never by name, and only after checking that the
pid is still the Anvil we started (same executable, port and start time).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import signal
import socket
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.protocol.errors import ChorusError, ConfigError, RpcUnavailable
from node.chain.settings import DEV_CHAIN_ID, DEV_MNEMONIC, find_project_root, state_dir
from node.devnet import procs
from node.devnet.accounts import DEPLOYER_KEY, DEV_ACCOUNTS
from node.devnet.ports import Port, check_free

log = logging.getLogger(__name__)

DEVNET_FILE = "devnet.json"
PID_FILE = "anvil.pid"
LOG_FILE = "anvil.log"
CACHE_PREFIX = "chorus-anvil-"
CACHE_OWNER = "owner.json"
MAX_PERSISTED_STATES = 256
"""Block states Anvil keeps on disk beyond its in-memory ones (it keeps about 300 there)."""
_SETUP_HINT = "run `make setup` (npm ci installs Foundry's anvil into node_modules)"


class DevnetError(ChorusError):
    """The dev chain could not be started, found or stopped."""


def find_anvil(root: Path | None = None) -> Path:
    """Anvil's native binary from node_modules (the npm wrapper only forwards to it).

    Running the binary itself keeps our pid the Anvil pid, so stopping it never orphans a child.
    """
    root = root or find_project_root()
    scoped = root / "node_modules" / "@foundry-rs"
    for candidate in sorted(scoped.glob("anvil-*/bin/anvil")):
        if os.access(candidate, os.X_OK):
            return candidate
    wrapper = root / "node_modules" / ".bin" / "anvil"
    if wrapper.exists():
        return wrapper
    raise DevnetError(f"anvil not found under {root / 'node_modules'}: {_SETUP_HINT}")


def _new_cache_dir() -> Path:
    """A fresh cache directory for one Anvil, after removing those whose Anvil is gone."""
    sweep_stale_caches()
    return Path(tempfile.mkdtemp(prefix=CACHE_PREFIX))


def sweep_stale_caches(base: Path | None = None, *, grace_s: float = 600.0) -> list[Path]:
    """Remove the `chorus-anvil-*` cache directories whose Anvil no longer runs; returns them.

    A directory records its Anvil's pid and start time in `owner.json`. One without that file
    is an Anvil that never got as far as answering (or another sweep's half-removed directory):
    it is removed once it is older than `grace_s`, so a start in progress elsewhere is left alone.
    """
    base = base or Path(tempfile.gettempdir())
    removed: list[Path] = []
    for directory in base.glob(CACHE_PREFIX + "*"):
        if not directory.is_dir():
            continue
        try:
            owner = json.loads((directory / CACHE_OWNER).read_text())
            running = procs.same_process(int(owner["pid"]), owner.get("start_time"))
        except FileNotFoundError:
            try:
                running = time.time() - directory.stat().st_mtime < grace_s
            except FileNotFoundError:
                continue
        except (OSError, ValueError, KeyError, TypeError):
            running = False
        if not running:
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(directory)
    return removed


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def rpc_ready(url: str, timeout: float = 0.5) -> int | None:
    """The chain id if `url` answers eth_chainId, else None."""
    import requests

    try:
        response = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
                                 timeout=timeout)
        return int(response.json()["result"], 16)
    except (requests.RequestException, ValueError, KeyError, TypeError):
        return None


def rpc_batch(url: str, calls: Sequence[tuple[str, list[Any]]], timeout: float = 60.0,
              session: Any = None) -> list[dict[str, Any]]:
    """One JSON-RPC batch request: each call's reply object, in `calls` order ({} for a missing reply)."""
    import requests

    body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
    answer = (session or requests).post(url, json=body, timeout=timeout).json()
    by_id = {a.get("id"): a for a in ([answer] if isinstance(answer, dict) else answer)}
    return [by_id.get(i, {}) for i in range(len(calls))]


@dataclass
class Anvil:
    """One Anvil process: started by us, in its own process group."""

    pid: int
    port: int
    host: str = "127.0.0.1"
    executable: str = ""
    start_time: float | None = None
    """When the process started (`procs.start_time`): tells our Anvil from a recycled pid."""
    log_path: Path | None = None
    chain_id: int = DEV_CHAIN_ID
    cache_dir: Path | None = None
    """Anvil's state cache (`--cache-path`), removed by `stop`."""
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def rpc_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @classmethod
    def start(cls, *, port: int | None = None, block_time: float | None = None, accounts: int = 20,
              log_path: Path | None = None, root: Path | None = None, startup_timeout: float = 20.0,
              die_with_parent: bool = False, extra_args: tuple[str, ...] = (),
              chain_id: int = DEV_CHAIN_ID) -> Anvil:
        """Start Anvil (chain id 31337, Anvil's public mnemonic) and wait until its RPC answers.

        `chain_id` other than 31337 makes a chain on which Chorus refuses the dev keys (while Anvil
        still funds them): tests of the keystore paths use it. `block_time=None` auto-mines; a number of seconds mines at that interval. Output goes to
        `log_path` (else it is discarded with --silent). `die_with_parent` (Linux) has the kernel
        send Anvil SIGTERM when the thread that started it dies, even by SIGKILL: for throwaway
        chains (tests, `chorus gas`), never for `devnet up`.
        """
        executable = find_anvil(root)
        port = port or free_port()
        if port_in_use(port):
            raise DevnetError(f"port {port} is already in use")
        args = [str(executable), "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(chain_id),
                "--mnemonic", DEV_MNEMONIC, "--accounts", str(accounts)]
        if block_time is not None:
            args += ["--block-time", f"{block_time:g}"]
        if log_path is None:
            args.append("--silent")
        cache_dir = _new_cache_dir()
        args += ["--cache-path", str(cache_dir), "--max-persisted-states", str(MAX_PERSISTED_STATES)]
        args += list(extra_args)
        out: Any = subprocess.DEVNULL
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            out = log_path.open("ab")
        try:
            # A session of its own: Ctrl-C in our terminal does not reach it, and the whole group
            # (the npm wrapper's child included, if the wrapper is all there is) is signalled at once.
            process = procs.spawn(args, stdout=out, death_signal=signal.SIGTERM if die_with_parent else None)
        except BaseException:
            shutil.rmtree(cache_dir, ignore_errors=True)
            raise
        finally:
            if log_path is not None:
                out.close()
        anvil = cls(pid=process.pid, port=port, executable=str(executable), start_time=procs.start_time(process.pid),
                    log_path=log_path, chain_id=chain_id, cache_dir=cache_dir, _process=process)
        (cache_dir / CACHE_OWNER).write_text(json.dumps({"pid": anvil.pid, "start_time": anvil.start_time}))
        anvil._wait_ready(startup_timeout)
        log.info("anvil pid %d listening on %s", anvil.pid, anvil.rpc_url)
        return anvil

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                tail = self._log_tail()
                raise DevnetError(f"anvil exited with code {self._process.returncode} during startup"
                                  + (f": {tail}" if tail else ""))
            if rpc_ready(self.rpc_url) == self.chain_id:
                return
            time.sleep(0.05)
        self.stop()
        raise RpcUnavailable(f"anvil did not answer on {self.rpc_url} within {timeout:g}s")

    def _log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-500:].strip()

    def is_ours(self) -> bool:
        """Whether `pid` is still the Anvil we started (not a recycled pid)."""
        if not procs.same_process(self.pid, self.start_time):
            return False
        cmdline = procs.cmdline(self.pid)
        name = Path(self.executable or "anvil").name
        # cmdline[0] is the binary; through the npm wrapper it is node and the script comes second.
        return any(Path(arg).name == name for arg in cmdline[:2]) and procs.option_value(cmdline, "--port") == str(self.port)

    def stop(self, timeout: float = 5.0) -> bool:
        """SIGTERM its process group, SIGKILL after `timeout`; True if something was stopped."""
        stopped = procs.stop(self.pid, self.is_ours, timeout=timeout, kill_timeout=2.0, group=True, name="anvil")
        self._reap()
        if self.cache_dir is not None and not self.is_ours():
            shutil.rmtree(self.cache_dir, ignore_errors=True)
        return stopped

    def _reap(self) -> None:
        if self._process is not None:
            try:
                self._process.wait(timeout=0)
            except subprocess.TimeoutExpired:
                pass

    def stop_at_exit(self) -> Anvil:
        """Register `stop` with atexit (a safety net beside explicit cleanup)."""
        atexit.register(self.stop)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "port": self.port, "host": self.host, "executable": self.executable,
                "start_time": self.start_time, "log": str(self.log_path) if self.log_path else None,
                "cache": str(self.cache_dir) if self.cache_dir else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Anvil:
        return cls(pid=int(data["pid"]), port=int(data["port"]), host=data.get("host", "127.0.0.1"),
                   executable=data.get("executable", ""), start_time=data.get("start_time"),
                   log_path=Path(data["log"]) if data.get("log") else None,
                   cache_dir=Path(data["cache"]) if data.get("cache") else None)


# --- the devnet: anvil + deployment + state files ---------------------------------------------


@dataclass(frozen=True)
class DevnetStatus:
    """What `chorus devnet status` reports."""

    running: bool
    rpc_up: bool
    state: dict[str, Any] | None
    problem: str | None = None


def _read_state(directory: Path) -> dict[str, Any] | None:
    path = directory / DEVNET_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None


def _recorded_anvil(directory: Path) -> Anvil | None:
    state = _read_state(directory) or {}
    if "anvil" in state:
        return Anvil.from_dict(state["anvil"])
    pid_file = directory / PID_FILE
    if pid_file.exists():
        # A pid without devnet.json (an interrupted `up`): check it against the binary only.
        try:
            pid = int(pid_file.read_text().strip())
        except ValueError:
            return None
        port = procs.option_value(procs.cmdline(pid), "--port") or "0"
        return Anvil(pid=pid, port=int(port) if port.isdigit() else 0, executable=str(find_anvil()))
    return None


def _clear_state(directory: Path) -> None:
    for name in (DEVNET_FILE, PID_FILE):
        (directory / name).unlink(missing_ok=True)


def devnet_up(*, port: int = 8545, block_time: float | None = None, state: Path | None = None,
              min_stake: int | None = None, cooldown: int | None = None,
              also_binds: Sequence[Port] = ()) -> dict[str, Any]:
    """Start Anvil in the background, deploy the protocol with dev key 0, write the state files.

    `state` is the state directory (default `<project root>/.chorus`). Returns the content of
    devnet.json. Anvil keeps running after this process exits; stop it with `devnet_down`.
    Before anything starts, Anvil's `port` and `also_binds` (the ports of the nodes to start next)
    are checked: PortBusy names the first one in use and the option that moves it.
    """
    from node.chain.artifacts import check_fresh, load_protocol_artifacts
    from node.chain.client import Web3Client
    from node.chain.contracts import revert_decoder
    from node.chain.deploy import DEFAULT_COOLDOWN, DEFAULT_MIN_STAKE, deploy
    from node.chain.settings import dev_account

    directory = state or state_dir()
    existing = _recorded_anvil(directory)
    if existing is not None and existing.is_ours():
        raise DevnetError(f"a devnet is already running (anvil pid {existing.pid}, {existing.rpc_url}); "
                          "run `chorus devnet down` first")
    check_free([Port(port, "Anvil's JSON-RPC", "--port"), *also_binds])
    _clear_state(directory)
    check_fresh()
    artifacts = load_protocol_artifacts()
    directory.mkdir(parents=True, exist_ok=True)
    anvil = Anvil.start(port=port, block_time=block_time, accounts=DEV_ACCOUNTS, log_path=directory / LOG_FILE)
    try:
        (directory / PID_FILE).write_text(f"{anvil.pid}\n")
        client = Web3Client(anvil.rpc_url, dev_account(DEPLOYER_KEY), decoder=revert_decoder(artifacts))
        deployment = deploy(client, rpc_url=anvil.rpc_url, artifacts=artifacts,
                            min_stake=DEFAULT_MIN_STAKE if min_stake is None else min_stake,
                            cooldown=DEFAULT_COOLDOWN if cooldown is None else cooldown)
        state = {
            "rpc_url": deployment.rpc_url,
            "chain_id": deployment.chain_id,
            "deployer": deployment.deployer,
            "deploy_block": deployment.deploy_block,
            "contracts": deployment.contracts,
            "min_stake": deployment.extra["min_stake"],
            "cooldown": deployment.extra["cooldown"],
            "mining": "auto" if block_time is None else f"interval {block_time:g}s",
            "anvil": anvil.to_dict(),
        }
        tmp = directory / (DEVNET_FILE + ".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(directory / DEVNET_FILE)
        return state
    except BaseException:
        anvil.stop()
        _clear_state(directory)
        raise


def devnet_down(state: Path | None = None, timeout: float = 5.0) -> str:
    """Stop the recorded Anvil (only if the pid is still ours) and remove the state files."""
    directory = state or state_dir()
    anvil = _recorded_anvil(directory)
    if anvil is None:
        _clear_state(directory)
        return "no devnet recorded"
    if not anvil.is_ours():
        _clear_state(directory)
        return f"anvil pid {anvil.pid} is no longer running (or is not ours); state cleared"
    stopped = anvil.stop(timeout)
    if not stopped:
        raise DevnetError(f"anvil pid {anvil.pid} did not stop")
    _clear_state(directory)
    return f"stopped anvil pid {anvil.pid} ({anvil.rpc_url})"


def devnet_status(state: Path | None = None) -> DevnetStatus:
    """Whether the recorded devnet runs and answers."""
    directory = state or state_dir()
    recorded = _read_state(directory)
    anvil = _recorded_anvil(directory)
    if anvil is None:
        return DevnetStatus(False, False, recorded, "no devnet recorded")
    if not anvil.is_ours():
        return DevnetStatus(False, False, recorded, f"anvil pid {anvil.pid} is not running")
    rpc_up = rpc_ready(anvil.rpc_url) == DEV_CHAIN_ID
    return DevnetStatus(True, rpc_up, recorded, None if rpc_up else f"{anvil.rpc_url} does not answer")
