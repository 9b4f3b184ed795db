"""The chain side of the experiment: its own Anvil (or any EVM RPC), one fresh deployment of the
protocol per session (`Board`), the owner's fusion weights, task submission, finalization feed
and per-task cost accounting.

Why a deployment per session: each session (a seed, or a sweep point) runs its own node
processes with its own models; on a board of its own they see only their own tasks, so the next
session's nodes can start while the current one is still measuring, and no session's traffic
crosses another's.

Keys (`node.experiment.keys`). With dev keys (chain 31337 only): dev key 0 owns every TaskBoard
(it sets the fusion weights) and submits every task; dev key 1 deploys the boards (from the thread
that prepares the next session); node processes get fresh keys from `NODE_KEY_START` on, one per
process for the whole run. On a chain the bench did not start, keys are funded from key 1 when
their balance is low. With a funder keystore (any chain): the funder deploys, owns and submits
(one client, so one nonce sequence, shared by both threads); node processes get generated
keystore accounts funded from it, whose stake and balance go back to it when the run ends
(`return_funds`).

Blocks. Deadlines pass with chain time: `tick` mines a block with `evm_mine` where the RPC has it
(Anvil, Hardhat). Elsewhere the chain's own blocks move time on; only when none came for
`STALL_S` seconds (a chain that mines on demand, such as geth --dev) is an empty transfer sent.
No other Anvil-only method is used.

Costs. Every transaction touching a task is found from the task's own events (TaskSubmitted,
EmbeddingPublished, DecisionPublished, TaskFinalized); receipts and inputs are fetched in JSON-RPC
batches: gas per task is the sum of their `gasUsed`, calldata bytes the sum of their inputs'
lengths, transactions per task their count. For the fee model (`node.chain.fees`) each
transaction's signed, RLP-encoded bytes (`eth_getRawTransactionByHash`) are compressed with
FastLZ and Brotli, and those sizes (and Fjord's estimated batch size) are summed per task the same
way. Owner transactions made for an architecture (M-regret's weight updates) are charged to its
tasks by the caller.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from node.experiment.keys import (
    KEYS_DIR,
    REGISTER_GAS,
    BenchKeys,
    ChainPlan,
    KeyFolder,
    NodeKey,
    auto_fund_per_key,
    fmt_eth,
    owner_gas,
    return_funds,
)
from node.chain.settings import dev_key_index_of

log = logging.getLogger(__name__)

OWNER_KEY = 0
DEPLOYER_KEY = 1
NODE_KEY_START = 2
ANVIL_ACCOUNTS = 400
FUND_WEI = 10**20  # 100 ether per dev node key, far above stake + gas of a run
MIN_BALANCE_WEI = 10**19
STALL_S = 3.0
"""Without evm_mine: seconds without a new block before `tick` sends an empty transfer."""
GIVE_UP_GRACE_S = 8.0
"""Seconds (wall clock) past a degraded task's deadline before the bench stops waiting for it; on a
chain other than 31337 two of its recent block intervals are added (at most `MAX_EXTRA_GRACE_S`):
the deadline passes, and the late finalization lands, only with its real blocks."""
MAX_EXTRA_GRACE_S = 60.0
RPC_BATCH = 200
SUBMIT_GAS_MARGIN = 1.3
SET_WEIGHT_GAS = 80_000  # a zero slot set again: 22,100 + checks, well under this


@dataclass
class Submitted:
    """One submitted task as the submitter saw it."""

    task_id: int
    index: int
    """Position in its stream (the join key with the off-chain labels)."""
    arch: int
    tx_hash: str
    sent_at: float
    """Wall clock (time.perf_counter) when submitTask was sent."""
    block: int = 0
    finalized_at: float | None = None
    finalized_block: int | None = None
    action: int | None = None
    decisions: int | None = None


@dataclass
class TaskCosts:
    """What the chain charged one task: every transaction that touched it, a transaction that touched
    several tasks (a batched publication) in equal shares among them."""

    gas: float = 0
    calldata_bytes: float = 0
    txs: float = 0
    publications: dict[str, int] = field(default_factory=dict)
    fastlz_bytes: float = 0
    """Sum of the FastLZ lengths of the task's signed transactions (`node.chain.fees`)."""
    brotli_bytes: float = 0
    """Sum of their Brotli lengths (Arbitrum's level)."""
    op_da_bytes: float = 0.0
    """Sum of their Fjord estimated batch sizes (each at least 100 bytes): what an OP Stack chain prices."""


@dataclass(frozen=True)
class TxCharge:
    """One transaction as the chain charged it, with its signed bytes' compressed sizes."""

    gas: int
    calldata_bytes: int
    fastlz_bytes: int = 0
    brotli_bytes: int = 0
    op_da_bytes: float = 0.0


class BenchChain:
    """The chain of the run: an Anvil started here (or any RPC), clients, key allocation."""

    def __init__(self, rpc_url: str, work_dir: Path, anvil: Any = None, keys: BenchKeys | None = None,
                 keys_dir: Path | None = None, accounts: int = ANVIL_ACCOUNTS) -> None:
        from node.chain.artifacts import load_protocol_artifacts
        from node.chain.client import Web3Client
        from node.chain.contracts import revert_decoder
        from node.protocol.errors import ConfigError, safe_url
        from node.chain.settings import DEV_CHAIN_ID, dev_account

        self.anvil = anvil
        self.rpc_url = rpc_url
        self.work_dir = Path(work_dir)
        self.keys = keys or BenchKeys()
        self.artifacts = load_protocol_artifacts()
        self.decoder = revert_decoder(self.artifacts)
        reader = Web3Client(rpc_url, None, decoder=self.decoder, retries=5, receipt_timeout=120)
        self.chain_id = reader.chain_id()
        if self.keys.funder is None and self.chain_id != DEV_CHAIN_ID:
            raise ConfigError(f"{safe_url(rpc_url)} is chain {self.chain_id}: without --keystore the bench signs with "
                              f"the public dev keys, which Chorus allows only on chain {DEV_CHAIN_ID} (Anvil, "
                              "Hardhat). To run on this chain, pass --keystore FILE (an encrypted keystore of a funded "
                              "account) with --password-file FILE or CHORUS_KEYSTORE_PASSWORD")
        if self.keys.funder is not None and self.chain_id != DEV_CHAIN_ID:
            index = dev_key_index_of(self.keys.funder.address)
            if index is not None:
                raise ConfigError(f"the --keystore account {self.keys.funder.address} is dev key {index} of the public "
                                  f"Anvil/Hardhat mnemonic: Chorus refuses dev keys on chain {self.chain_id} (only on "
                                  f"{DEV_CHAIN_ID}); use a key of your own")
        self.client = reader.with_account(self.keys.funder or dev_account(OWNER_KEY))
        self.block_interval_s: float | None = None
        if self.chain_id != DEV_CHAIN_ID:
            self.block_interval_s = _block_interval(reader)
            log.info("chain %d: a block every %s s lately; deadlines pass with its real blocks", self.chain_id,
                     "?" if self.block_interval_s is None else f"{self.block_interval_s:.3g}")
        self.key_folder: KeyFolder | None = None
        self.fund_per_key_wei = self.keys.fund_per_key_wei
        if self.keys.keystore:
            self.key_folder = KeyFolder(keys_dir or self.work_dir.parent / KEYS_DIR)
        self._next_key = NODE_KEY_START
        self._keys_lock = threading.Lock()
        self._generated: list[tuple[NodeKey, str | None]] = []
        self.funded_wei = 0
        self.accounts = accounts if anvil is not None else 0
        """Dev accounts the private Anvil funded at start (`start`); 0 on a chain the bench did not start."""
        self.returned_wei = 0
        self._deployer = None
        self._deployer_lock = threading.RLock()  # its nonces: one sender at a time
        self._tick_lock = threading.Lock()
        self._evm_mine: bool | None = None
        self._head = (-1, 0.0)

    @classmethod
    def start(cls, work_dir: Path, rpc_url: str | None = None, block_time: float = 0.0, keys: BenchKeys | None = None,
              keys_dir: Path | None = None, node_keys: int = 0) -> BenchChain:
        """Connect to `rpc_url`, or start a private Anvil (stopped by `stop`, and by the kernel if
        this process dies), auto-mining or mining a block every `block_time` seconds, with a funded
        dev account for each of the `node_keys` node keys the run will allocate (at least
        `ANVIL_ACCOUNTS`): the deployer's own balance funds only keys beyond those."""
        from node.devnet.anvil import Anvil

        work_dir.mkdir(parents=True, exist_ok=True)
        anvil = None
        accounts = max(ANVIL_ACCOUNTS, NODE_KEY_START + node_keys + 1)
        if rpc_url is None:
            anvil = Anvil.start(accounts=accounts, log_path=None, die_with_parent=True,
                                block_time=block_time or None).stop_at_exit()
            rpc_url = anvil.rpc_url
        try:
            return cls(rpc_url, work_dir, anvil, keys, keys_dir, accounts)
        except BaseException:
            if anvil is not None:
                anvil.stop()
            raise

    def stop(self) -> None:
        if self.anvil is not None:
            self.anvil.stop()

    @property
    def own_chain(self) -> bool:
        return self.anvil is not None

    @property
    def keystore(self) -> bool:
        """Whether the funder keystore signs (else the dev keys)."""
        return self.key_folder is not None

    @property
    def give_up_grace_s(self) -> float:
        """How long past its deadline a task that may never finalize is waited for."""
        extra = 0.0 if self.block_interval_s is None else min(2 * self.block_interval_s, MAX_EXTRA_GRACE_S)
        return GIVE_UP_GRACE_S + extra

    def deployer(self):
        """The deploying client: dev key 1 with a client of its own (used from the preparing
        thread), or the funder's own client (its one nonce sequence serves both threads)."""
        from node.chain.client import Web3Client
        from node.chain.settings import dev_account

        if self._deployer is None:  # created on first use, from the thread that prepares sessions
            if self.keystore:
                self._deployer = self.client
            else:
                self._deployer = Web3Client(self.rpc_url, dev_account(DEPLOYER_KEY), decoder=self.decoder, retries=5,
                                            receipt_timeout=120)
        return self._deployer

    def new_board(self, label: str) -> Board:
        """A fresh deployment owned by the owner key (call from one thread at a time)."""
        from node.chain.deploy import deploy

        with self._deployer_lock:
            deployment = deploy(self.deployer(), rpc_url=self.rpc_url, artifacts=self.artifacts, cooldown=0,
                                owner=self.client.address)
        return Board(self, deployment, label)

    # -- keys and funds --------------------------------------------------------------------------

    def allocate_keys(self, n: int, board: Board | None = None) -> list[NodeKey]:
        """`n` fresh, funded keys for node processes (or a submitting thread): dev key indices, or
        generated keystore accounts (`board`: the deployment they will stake in, so their stake
        can be withdrawn at the end)."""
        if self.key_folder is not None:
            registry = board.deployment.address("AgentRegistry") if board is not None else None
            keys = [self.key_folder.create(self.chain_id, registry) for _ in range(n)]
            with self._keys_lock:
                self._generated += [(k, registry) for k in keys]
            self._fund([k.address for k in keys], self.fund_per_key_wei or 0)
            with self._keys_lock:
                self.funded_wei += n * (self.fund_per_key_wei or 0)
            return keys
        with self._keys_lock:
            indices = list(range(self._next_key, self._next_key + n))
            self._next_key += n
        keys = [NodeKey.dev(i) for i in indices]
        if not self.own_chain or indices[-1] >= self.accounts:
            self._fund([k.address for k in keys], FUND_WEI, MIN_BALANCE_WEI)
        return keys

    def _fund(self, addresses: Sequence[str], amount: int, below: int | None = None) -> None:
        """Send `amount` to each address (only to those holding less than `below`, when given)."""
        with self._deployer_lock:
            funder = self.deployer()
            sent = []
            for address in addresses:
                if below is None or funder.balance(address) < below:
                    sent.append(funder.send(address, b"", value=amount, gas=21_000))
            for tx in sent:
                funder.wait(tx)

    def check_funds(self, plan: ChainPlan) -> None:
        """Keystore mode: settle the amount per node key (`auto_fund_per_key` unless given) and
        raise ConfigError, before anything is sent, when the funder cannot cover the run."""
        from node.chain.deploy import DEFAULT_MIN_STAKE
        from node.protocol.errors import ConfigError

        if not self.keystore:
            return
        fee = self.client.suggest_fees().max_fee_per_gas
        if self.fund_per_key_wei is None:
            self.fund_per_key_wei = auto_fund_per_key(plan, fee, DEFAULT_MIN_STAKE)
        elif self.fund_per_key_wei < DEFAULT_MIN_STAKE + REGISTER_GAS * fee:
            raise ConfigError(f"--fund-per-key {fmt_eth(self.fund_per_key_wei)} does not cover a node's stake "
                              f"({fmt_eth(DEFAULT_MIN_STAKE)}) and registration ({REGISTER_GAS:,} gas at "
                              f"{fee / 1e9:.3g} gwei)")
        gas = owner_gas(plan)
        need = plan.keys * self.fund_per_key_wei + gas * fee
        have = self.client.balance()
        log.info("funder %s holds %s on chain %d; the run needs about %s: %d node keys x %s, %s gas at %.3g gwei",
                 self.client.address, fmt_eth(have), self.chain_id, fmt_eth(need), plan.keys,
                 fmt_eth(self.fund_per_key_wei), f"{gas:,}", fee / 1e9)
        if have < need:
            hint = " (a private Anvil funds only its dev keys: pass --rpc-url)" if self.own_chain else ""
            raise ConfigError(
                f"funder {self.client.address} holds {fmt_eth(have)} on chain {self.chain_id}, the run needs about "
                f"{fmt_eth(need)}: {plan.keys} node keys x {fmt_eth(self.fund_per_key_wei)} (--fund-per-key) + "
                f"about {gas:,} gas for {plan.boards} deployments and {plan.tasks} task submissions at "
                f"{fee / 1e9:.3g} gwei{hint}. Fund it, or lower --fund-per-key or the run (--seeds, --tasks, "
                "--no-sweeps, a smaller --profile)")

    def return_leftovers(self) -> int:
        """Keystore mode, before the run: return what generated keys of earlier runs in this --out
        folder (killed before they could) still hold on this chain. Best effort."""
        if self.key_folder is None:
            return 0
        try:
            earlier = self.key_folder.entries(self.chain_id)
            if not earlier:
                return 0
            log.info("returning the funds of %d generated keys of earlier runs in %s", len(earlier),
                     self.key_folder.path)
            return return_funds(self.client, earlier, self.client.address, self.artifacts)
        except Exception:  # never stops the run
            log.exception("returning the funds of earlier runs' generated keys failed (keystores in %s)",
                          self.key_folder.path)
            return 0

    def return_funds(self) -> int:
        """Keystore mode, at the end (node processes stopped): every generated key of this run
        deregisters, withdraws its stake and sends its balance back to the funder. Best effort:
        logged, never raised."""
        if self.key_folder is None:
            return 0
        with self._keys_lock:
            keys = list(self._generated)
        try:
            returned = return_funds(self.client, keys, self.client.address, self.artifacts)
        except Exception:  # never fails the run
            log.exception("returning the generated keys' funds failed; their keystores are in %s",
                          self.key_folder.path)
            return 0
        self.returned_wei += returned
        return returned

    def signing(self) -> dict[str, Any] | None:
        """For the report: who signed and where the funds went (keystore mode; None with dev keys)."""
        if self.key_folder is None:
            return None
        with self._keys_lock:
            n = len(self._generated)
        return {"mode": "keystore", "funder": self.client.address, "chain_id": self.chain_id, "node_keys": n,
                "fund_per_key_wei": self.fund_per_key_wei, "funded_wei": self.funded_wei,
                "returned_wei": self.returned_wei}

    # -- blocks ----------------------------------------------------------------------------------

    def tick(self, client: Any = None) -> None:
        """Let chain time move on (deadlines): `evm_mine` where the chain has it; elsewhere the
        chain's own blocks, with an empty transfer from `client` (default the owner's) only when
        no block came for `STALL_S` seconds."""
        from node.protocol.errors import ChainError, RpcUnavailable, safe_url

        client = client or self.client
        with self._tick_lock:
            if self._evm_mine is not False:
                try:
                    client.request("evm_mine", [])
                    self._evm_mine = True
                    return
                except RpcUnavailable:
                    raise
                except ChainError as exc:
                    if self._evm_mine is None:
                        log.warning("%s does not mine on request (%s): deadlines pass with the chain's own blocks, "
                                    "in real time; an empty transfer is sent only when no block came for %gs",
                                    safe_url(self.rpc_url), str(exc)[:120], STALL_S)
                    self._evm_mine = False
            head, now = client.block_number(), time.monotonic()
            if head != self._head[0]:
                self._head = (head, now)
                return
            if now - self._head[1] < STALL_S:
                return
            self._head = (head, now)
        client.wait(client.send(client.address, b"", gas=21_000))

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """JSON-RPC batch requests (results in order); one HTTP round trip per `RPC_BATCH` calls."""
        import requests

        from node.devnet.anvil import rpc_batch

        out: list[Any] = []
        with requests.Session() as http:
            for start in range(0, len(calls), RPC_BATCH):
                out += [r.get("result") for r in rpc_batch(self.rpc_url, calls[start:start + RPC_BATCH], session=http)]
        return out

    def tx_costs(self, tx_hashes: Iterable[str]) -> dict[str, tuple[int, int]]:
        """tx hash -> (gas used, calldata bytes)."""
        hashes = sorted(set(tx_hashes))
        receipts = self.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
        txs = self.batch([("eth_getTransactionByHash", [h]) for h in hashes])
        out = {}
        for h, receipt, tx in zip(hashes, receipts, txs, strict=True):
            if receipt is None or tx is None:
                continue
            out[h] = (int(receipt["gasUsed"], 16), (len(tx["input"]) - 2) // 2)
        return out

    def tx_charges(self, tx_hashes: Iterable[str]) -> dict[str, TxCharge]:
        """tx hash -> its gas, calldata bytes and the compressed sizes of its signed bytes."""
        from node.chain.fees import TxSize, signed_bytes

        hashes = sorted(set(tx_hashes))
        receipts = self.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
        txs = self.batch([("eth_getTransactionByHash", [h]) for h in hashes])
        raws = self.batch([("eth_getRawTransactionByHash", [h]) for h in hashes])
        out = {}
        for h, receipt, tx, raw in zip(hashes, receipts, txs, raws, strict=True):
            if receipt is None or tx is None:
                continue
            gas = int(receipt["gasUsed"], 16)
            # the signed bytes as the node holds them; an RPC without eth_getRawTransactionByHash
            # (Anvil and geth have it) gets them rebuilt from the transaction's fields
            signed = bytes.fromhex(raw[2:]) if isinstance(raw, str) and raw.startswith("0x") else signed_bytes(tx)
            size = TxSize.of(gas, signed) if signed is not None else None
            out[h] = TxCharge(gas, (len(tx["input"]) - 2) // 2,
                              *((size.fastlz_bytes, size.brotli_bytes, size.op_da_bytes) if size else ()))
        return out


class Board:
    """One deployment of the protocol: the contracts of one session, driven by the owner key."""

    def __init__(self, chain: BenchChain, deployment: Any, label: str, client: Any = None,
                 weights: dict[tuple[int, int], int] | None = None) -> None:
        from node.chain.contracts import ChorusContracts

        self.chain = chain
        self.label = label
        self.deployment = deployment
        self.client = client or chain.client
        self.contracts = ChorusContracts.from_deployment(self.client, deployment, chain.artifacts)
        self.address = deployment.address("TaskBoard")
        self.finalized_topic = self.contracts.interfaces["TaskBoard"].event_topic("TaskFinalized")
        self._weights: dict[tuple[int, int], int] = {} if weights is None else weights
        self._submit_gas: dict[int, int] = {}

    def for_thread(self) -> Board:
        """The same deployment driven from another thread: tasks are submitted by a key of its own
        (anyone may submit), with its own HTTP session; the owner's weights must already be set
        (the weight cache is shared, so a weight already on chain is not sent again)."""
        from node.chain.client import Web3Client

        key = self.chain.allocate_keys(1)[0]
        client = Web3Client(self.rpc_url, key.account, decoder=self.chain.decoder, retries=5,
                            receipt_timeout=120)
        return Board(self.chain, self.deployment, self.label, client, self._weights)

    @property
    def rpc_url(self) -> str:
        return self.chain.rpc_url

    def deployment_file(self) -> Path:
        """The deployment file the session's node processes read, their watchers starting now."""
        path = self.chain.work_dir / f"deployment-{self.label}.json"
        replace(self.deployment, deploy_block=self.chain.deployer().block_number()).save(path)
        return path

    # -- the owner's weights ---------------------------------------------------------------------

    def weight(self, arch: int, role: int) -> int:
        key = (arch, role)
        if key not in self._weights:
            self._weights[key] = self.contracts.weight(arch, role)
        return self._weights[key]

    def set_weights(self, arch: int, weights: dict[int, int]) -> list[str]:
        """Set `weights[role]` for `arch` where it differs from what the chain holds; tx hashes sent."""
        sent = []
        for role, w in sorted(weights.items()):
            if self.weight(arch, role) != int(w):
                # An explicit limit: the weights of an arch share one slot, so an estimate made
                # before the previous update is mined can be short (a zeroed slot set again).
                sent.append(self.contracts.send("TaskBoard", "setWeight", int(arch), int(role), int(w),
                                                gas=SET_WEIGHT_GAS))
                self._weights[(arch, role)] = int(w)
        return [self.contracts.result(tx).tx_hash for tx in sent]

    # -- tasks -----------------------------------------------------------------------------------

    def timestamp(self) -> int:
        return self.client.block_timestamp()

    def block_number(self) -> int:
        return self.client.block_number()

    def submit(self, payloads: Sequence[bytes], arch: int, quorum: int, deadline_s: int,
               indices: Sequence[int]) -> list[Submitted]:
        """Submit tasks (pipelined: all sent, then the receipts); returns them in order.

        The first submission of a size class is estimated; later ones reuse that estimate with a
        margin (the gas of submitTask depends only on the payload length), saving a round trip."""
        from node.chain.events import TaskSubmitted

        deadline = self.timestamp() + deadline_s
        sent = []
        for raw in payloads:
            size = len(raw) // 256
            data = self.contracts.calldata("TaskBoard", "submitTask", raw, int(arch), deadline, int(quorum))
            if size not in self._submit_gas:
                self._submit_gas[size] = int(self.client.estimate_gas(self.address, data) * SUBMIT_GAS_MARGIN) + 20_000
            t = time.perf_counter()
            sent.append((self.client.send(self.address, data, gas=self._submit_gas[size]), t))
        out = []
        for i, (tx, t) in enumerate(sent):
            result = self.contracts.result(tx)
            event = result.event(TaskSubmitted)
            out.append(Submitted(event.task_id, indices[i], arch, result.tx_hash, t, result.receipt.block_number))
        return out

    def finalized_since(self, from_block: int, to_block: int) -> list[Any]:
        from node.chain.events import TaskFinalized

        logs = self.client.get_logs(address=self.address, topics=[self.finalized_topic], from_block=from_block,
                                    to_block=to_block)
        return [e for e in self.contracts.decode_logs(logs) if isinstance(e, TaskFinalized)]

    def tick(self) -> None:
        """Let chain time move on (`BenchChain.tick`; a transfer, if any, from this board's submitting key)."""
        self.chain.tick(self.client)

    # -- costs -----------------------------------------------------------------------------------

    def task_events(self, from_block: int, to_block: int | str = "latest") -> list[Any]:
        names = ("TaskSubmitted", "EmbeddingPublished", "DecisionPublished", "TaskFinalized")
        return self.contracts.events(from_block, to_block, names=names)

    def tx_costs(self, tx_hashes: Iterable[str]) -> dict[str, tuple[int, int]]:
        return self.chain.tx_costs(tx_hashes)

    def tx_charges(self, tx_hashes: Iterable[str]) -> dict[str, TxCharge]:
        return self.chain.tx_charges(tx_hashes)

    def costs(self, task_ids: Iterable[int], from_block: int, to_block: int | str = "latest") -> dict[int, TaskCosts]:
        """Per task: gas, calldata bytes and transactions of everything that touched it; a transaction
        that touched n tasks (a batched publication, of any job) counts 1/n to each."""
        from node.chain.events import DecisionPublished, EmbeddingPublished

        wanted = set(task_ids)
        touching: dict[int, dict[str, str]] = defaultdict(dict)  # task -> tx hash -> kind
        tasks_of: dict[str, set[int]] = defaultdict(set)  # tx hash -> every task it touched
        for event in self.task_events(from_block, to_block):
            task_id = getattr(event, "task_id", None)
            if task_id is not None:
                tasks_of[event.tx_hash].add(task_id)
            if task_id not in wanted:
                continue
            kind = ("decision" if isinstance(event, DecisionPublished) else
                    "embedding" if isinstance(event, EmbeddingPublished) else type(event).__name__)
            touching[task_id][event.tx_hash] = kind
        charges = self.tx_charges(h for txs in touching.values() for h in txs)
        none = TxCharge(0, 0)
        out = {}
        for task_id in wanted:
            c = TaskCosts()
            for h, kind in touching.get(task_id, {}).items():
                charge = charges.get(h, none)
                share = 1 / len(tasks_of[h])
                c.gas += charge.gas * share
                c.calldata_bytes += charge.calldata_bytes * share
                c.fastlz_bytes += charge.fastlz_bytes * share
                c.brotli_bytes += charge.brotli_bytes * share
                c.op_da_bytes += charge.op_da_bytes * share
                c.txs += share
                c.publications[kind] = c.publications.get(kind, 0) + 1
            out[task_id] = c
        return out

    def publications(self, task_ids: Iterable[int], from_block: int, to_block: int | str = "latest"
                     ) -> dict[int, list[Any]]:
        """DecisionPublished events per task (M-regret's feedback reads the agents' actions here)."""
        from node.chain.events import DecisionPublished

        wanted = set(task_ids)
        out: dict[int, list[Any]] = defaultdict(list)
        for event in self.contracts.events(from_block, to_block, names=("DecisionPublished",)):
            if isinstance(event, DecisionPublished) and event.task_id in wanted:
                out[event.task_id].append(event)
        return out

    # -- the model-id mismatch probe -------------------------------------------------------------

    def register_probe_agent(self, key: NodeKey, model_id: bytes, dim: int) -> str:
        """Register `key` as a market agent of `model_id` (it publishes nothing else)."""
        agent = self.contracts.with_client(self.client.with_account(key.account))
        agent.register_agent(0, 1, "http://127.0.0.1:1/bench-probe", model_id, dim)
        return agent.client.address

    def probe_model_mismatch(self, key: NodeKey, task_id: int, wrong_model_id: bytes, encoding: int,
                             vector: bytes) -> dict[str, Any]:
        """Send publishEmbedding under `wrong_model_id` from a registered agent key with an explicit
        gas limit (no estimate), so the rejection is a mined, reverted transaction; decode it."""
        agent = self.contracts.with_client(self.client.with_account(key.account))
        data = agent.calldata("TaskBoard", "publishEmbedding", task_id, wrong_model_id, int(encoding), vector)
        tx = agent.client.send(self.address, data, gas=300_000)
        receipt = agent.client.get_receipt(tx.tx_hash)
        deadline = time.monotonic() + 60
        while receipt is None and time.monotonic() < deadline:
            time.sleep(0.01)
            receipt = agent.client.get_receipt(tx.tx_hash)
        out: dict[str, Any] = {"tx_hash": tx.tx_hash, "mined": receipt is not None,
                               "status": None if receipt is None else receipt.status,
                               "gas_used": None if receipt is None else receipt.gas_used}
        if receipt is not None and not receipt.succeeded:
            revert = agent.client.explain_failure(receipt)
            out.update(error=revert.error_name, args=_plain(revert.error_args))
        return out


def _block_interval(client: Any, span: int = 20) -> float | None:
    """Mean seconds between the chain's last `span` blocks (None on a chain too young to say)."""
    head = client.block_number()
    back = min(head, span)
    if back < 2:
        return None
    return max(0.0, (client.block_timestamp(head) - client.block_timestamp(head - back)) / back)


def vector_for(dim: int) -> bytes:
    """A well-formed f32 vector of `dim` elements (its content does not matter to the check)."""
    import numpy as np

    return np.linspace(-1, 1, dim, dtype="<f4").tobytes()


def _plain(args: Any) -> Any:
    if isinstance(args, dict):
        return {k: _plain(v) for k, v in args.items()}
    if isinstance(args, (list, tuple)):
        return [_plain(v) for v in args]
    if isinstance(args, (bytes, bytearray)):
        return "0x" + bytes(args).hex()
    return args
