"""Who signs for the bench, and where the node processes' keys come from.

Two modes, picked by `chorus bench --keystore`:

- Dev keys (the default; chain id 31337 only, the public Anvil/Hardhat mnemonic): dev key 0 owns
  every TaskBoard and submits the tasks, dev key 1 deploys, node processes get dev key indices.
- A funder keystore (`--keystore FILE`, any chain, 31337 included): the funder (an encrypted
  geth / eth-account keystore, decrypted by `node.chain.settings.ChainSettings`) deploys, owns every
  TaskBoard and submits the tasks; every node process gets a freshly generated account, written
  as an encrypted keystore under `<out>/keys/` and funded from the funder with `--fund-per-key`
  (default: what the profile's busiest session can spend, see `auto_fund_per_key`). At the end of
  the run, and on Ctrl-C, each generated account deregisters, withdraws its stake and sends what
  it holds back to the funder (best effort: a failure is logged, never fails the run).

The generated keystores stay in `<out>/keys/` (never in `.work/`, which a run wipes): a run killed
before it could return the funds leaves them there, and the next keystore run on the same chain
with the same --out returns them first. Their password is random, in `<out>/keys/password` (mode
0600, like the keystores), handed to the node processes as CHORUS_KEYSTORE_PASSWORD_FILE; the
folder holds a `.gitignore` of `*` so none of it can be committed by accident. Neither password
(the funder's nor the generated one) is ever logged, put in an error or written to the report.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.protocol.errors import ConfigError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

log = logging.getLogger(__name__)

KEYS_DIR = "keys"
PASSWORD_FILE = "password"
INDEX_FILE = "index.jsonl"
KDF_WORK = 2**14
"""scrypt n of the generated keystores. Their password lies beside them, so a slow KDF would
protect nothing; a light one keeps each node process' start (it decrypts its key) fast."""

# Gas budgets for the funds estimate (measured with `chorus gas` and on Anvil, rounded up).
DEPLOY_GAS = 4_500_000
"""ModelRegistry + AgentRegistry + TaskBoard: 3.5 M gas used, sent with a 1.2 margin."""
SUBMIT_GAS = 200_000
"""One submitTask with a synthetic task's payload (about 100 k used)."""
WEIGHTS_GAS_PER_BOARD = 40 * 80_000
"""setWeight transactions of one session (architecture weights, M-regret's rounds)."""
REGISTER_GAS = 300_000
"""A node's registration (model and agent records)."""
GAS_PER_TASK_PER_KEY = 150_000
"""What one node key may spend on one task: a decision (60 k) and an embedding (62-98 k), the
finalizations being shared among the nodes; or a submission (about 100 k, the key a deferred
session submits from)."""
TRANSFER_GAS = 21_000
RETURN_WORKERS = 8


def fmt_eth(wei: int) -> str:
    return f"{wei / 10**18:.6g} ETH"


def parse_eth(text: str) -> int:
    """'0.5' (ether) -> wei; ConfigError on anything that is not a non-negative amount."""
    from decimal import Decimal, InvalidOperation

    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise ConfigError(f"--fund-per-key {text!r} is not an amount of ether (e.g. 0.05)") from None
    if not value.is_finite() or value < 0:
        raise ConfigError(f"--fund-per-key {text!r} is not an amount of ether (e.g. 0.05)")
    return int(value * 10**18)


@dataclass(frozen=True)
class BenchKeys:
    """How the bench signs: dev keys (`funder` None) or a funder account from a keystore."""

    funder: LocalAccount | None = field(default=None, repr=False)
    fund_per_key_wei: int | None = None
    """What each generated node key gets (None: `auto_fund_per_key` for the run's plan)."""

    @property
    def keystore(self) -> bool:
        return self.funder is not None

    def __repr__(self) -> str:
        who = self.funder.address if self.funder is not None else "dev keys"
        return f"BenchKeys({who}, fund_per_key_wei={self.fund_per_key_wei})"


def load_funder(keystore: Path, password_file: Path | None = None) -> LocalAccount:
    """Decrypt the funder's keystore through `ChainSettings` (the node's own key loading): the
    password from `password_file`, else CHORUS_KEYSTORE_PASSWORD or CHORUS_KEYSTORE_PASSWORD_FILE.
    Raises ConfigError (never echoing the password) when the file is missing or cannot be decrypted."""
    from node.chain.settings import ChainSettings, get_settings

    keystore = Path(keystore).expanduser()
    if not keystore.is_file():
        raise ConfigError(f"--keystore {keystore}: no such file (an encrypted JSON keystore, geth / eth-account "
                          "format)")
    overrides: dict[str, Any] = {"keystore_path": keystore, "dev_key_index": None}
    if password_file is not None:  # the flag wins over the environment
        overrides.update(keystore_password_file=Path(password_file).expanduser(), keystore_password=None)
    settings = get_settings(ChainSettings, **overrides)
    if settings.keystore_password is None and settings.keystore_password_file is None:
        raise ConfigError("--keystore needs its password: --password-file FILE, or the CHORUS_KEYSTORE_PASSWORD "
                          "environment variable")
    return settings.load_account()


@dataclass(frozen=True)
class NodeKey:
    """The key of one process the bench starts: a dev key index (chain 31337) or a keystore the
    bench generated. Node processes get it as `--dev-key-index N`, or as CHORUS_KEYSTORE_PATH and
    CHORUS_KEYSTORE_PASSWORD_FILE (a path, never the password itself)."""

    account: LocalAccount = field(repr=False, compare=False)
    index: int | None = None
    keystore: Path | None = None
    password_file: Path | None = None

    @classmethod
    def dev(cls, index: int) -> NodeKey:
        from node.chain.settings import dev_account

        return cls(dev_account(index), index=index)

    @property
    def address(self) -> str:
        return self.account.address

    @property
    def key_index(self) -> int:
        """The dev key index, -1 for a generated key (what `NodeProc.key_index` records)."""
        return -1 if self.index is None else self.index

    def args(self) -> list[str]:
        """Command-line flags of `chorus node run` / `chorus coordinator run`."""
        return ["--dev-key-index", str(self.index)] if self.index is not None else []

    def env(self) -> dict[str, str]:
        """Environment of the node process (for a generated key)."""
        if self.keystore is None or self.password_file is None:
            return {}
        return {"CHORUS_KEYSTORE_PATH": str(self.keystore), "CHORUS_KEYSTORE_PASSWORD_FILE": str(self.password_file)}

    def __repr__(self) -> str:
        source = "keystore" if self.index is None else f"dev key {self.index}"
        return f"NodeKey({self.address}, {source})"


def _write_private(path: Path, text: str) -> None:
    """Create `path` readable by its owner only (0600 from the start, not chmod-ed after)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


class KeyFolder:
    """The generated keys of the runs in one --out folder: `<address>.json` keystores, the shared
    random `password`, and `index.jsonl` (address, chain id, the AgentRegistry the key staked in)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path, 0o700)
        ignore = self.path / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# generated keys and their password: never commit\n*\n")
        self.password_file = self.path / PASSWORD_FILE
        if not self.password_file.exists():
            _write_private(self.password_file, secrets.token_urlsafe(32))
        self._lock = threading.Lock()

    def _password(self) -> str:
        return self.password_file.read_text().strip()

    def create(self, chain_id: int, registry: str | None = None) -> NodeKey:
        """A fresh account, written as an encrypted keystore (0600) and recorded in the index."""
        from eth_account import Account

        account = Account.create()
        keyfile = Account.encrypt(account.key, self._password(), kdf="scrypt", iterations=KDF_WORK)
        path = self.path / f"{account.address}.json"
        _write_private(path, json.dumps(keyfile))
        self._record({"address": account.address, "chain_id": chain_id, "registry": registry})
        return NodeKey(account, keystore=path, password_file=self.password_file)

    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock, open(self.path / INDEX_FILE, "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def entries(self, chain_id: int) -> list[tuple[NodeKey, str | None]]:
        """Every key recorded for `chain_id` (this run's and earlier runs'), with its registry."""
        from eth_account import Account

        try:
            lines = (self.path / INDEX_FILE).read_text().splitlines()
        except OSError:
            return []
        seen: dict[str, str | None] = {}
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # cut short by a kill
            if entry.get("chain_id") == chain_id:
                seen[entry["address"]] = entry.get("registry")
        password = self._password() if seen else ""
        out = []
        for address, registry in seen.items():
            path = self.path / f"{address}.json"
            try:
                account = Account.from_key(Account.decrypt(json.loads(path.read_text()), password))
            except (OSError, ValueError):
                log.warning("generated key %s: keystore %s unreadable; its funds (if any) stay there", address, path)
                continue
            out.append((NodeKey(account, keystore=path, password_file=self.password_file), registry))
        return out


# -- funds ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainPlan:
    """What a run will do on chain, from its plan of sessions (for the funds check)."""

    boards: int
    """Deployments (one per session on chain)."""
    keys: int
    """Node keys the run generates and funds."""
    tasks: int
    """Tasks submitted in all."""
    tasks_per_key: int
    """Tasks of the busiest session: the most a node key can act on."""


def auto_fund_per_key(plan: ChainPlan, max_fee_wei: int, stake_wei: int) -> int:
    """Stake + registration + `GAS_PER_TASK_PER_KEY` for every task of the busiest session, at the
    current max fee per gas (2 x base fee + tip: room for the base fee to double)."""
    gas = REGISTER_GAS + plan.tasks_per_key * GAS_PER_TASK_PER_KEY
    return stake_wei + gas * max_fee_wei


def owner_gas(plan: ChainPlan) -> int:
    """Gas the funder spends itself: deployments, weights, submissions, the node keys' funding."""
    return (plan.boards * (DEPLOY_GAS + WEIGHTS_GAS_PER_BOARD) + plan.tasks * SUBMIT_GAS
            + plan.keys * TRANSFER_GAS)


# -- returning the funds -------------------------------------------------------------------------


def return_funds(client: Any, keys: Sequence[tuple[NodeKey, str | None]], funder: str, artifacts: Any) -> int:
    """For every generated key: deregister and withdraw its stake from its AgentRegistry, then send
    its balance (less the transfer's fee) to `funder`. Keys in parallel; best effort (each
    failure is logged). Returns the wei sent back."""
    from concurrent.futures import ThreadPoolExecutor

    if not keys:
        return 0
    with ThreadPoolExecutor(max_workers=min(RETURN_WORKERS, len(keys)), thread_name_prefix="return") as pool:
        results = list(pool.map(lambda kr: _return_one(client, kr[0], kr[1], funder, artifacts), keys))
    total = sum(results)
    log.info("returned %s from %d generated keys to the funder %s", fmt_eth(total), len(keys), funder)
    return total


def _return_one(client: Any, key: NodeKey, registry: str | None, funder: str, artifacts: Any) -> int:
    from node.chain.abi import ContractInterface
    from node.chain.contracts import ChorusContracts

    own = client.with_account(key.account)
    if registry:
        try:
            agents = ChorusContracts(own, {"AgentRegistry": registry},
                                     {"AgentRegistry": ContractInterface("AgentRegistry",
                                                                         artifacts["AgentRegistry"].abi)})
            record = agents.agent()
            if record.active:
                agents.deregister()
            if record.stake > 0 or record.active:
                agents.withdraw()  # the bench's registries have no cooldown
        except Exception as exc:  # noqa: BLE001 - best effort; the balance is returned anyway
            log.warning("could not withdraw the stake of generated key %s from %s: %s", key.address, registry, exc)
    try:
        balance = own.balance()
        fees = own.suggest_fees()
        value = balance - TRANSFER_GAS * fees.max_fee_per_gas
        if value <= 0:
            return 0
        own.wait(own.send(funder, b"", value=value, gas=TRANSFER_GAS, fees=fees))
        return value
    except Exception as exc:  # noqa: BLE001 - best effort: the run's results do not depend on it
        log.warning("could not return the funds of generated key %s (keystore %s): %s", key.address, key.keystore,
                    exc)
        return 0
