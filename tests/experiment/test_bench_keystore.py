"""`chorus bench --rpc-url` on a chain that is not the dev chain: a funder keystore signs.

A real Anvil started with chain id 1337 stands for "any EVM RPC": Chorus refuses the dev keys
there, so the bench needs `--keystore`. The funder is a fresh account (funded here by the test
harness, which signs directly); the run must finalize every architecture's tasks through node
processes holding freshly generated keys, and give back what those keys did not spend.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from node.chain.client import Web3Client
from node.devnet.anvil import Anvil
from node.protocol.errors import ChainError, ConfigError
from node.protocol.enums import ARCH_NAMES
from node.chain.settings import dev_account

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]

CHAIN_ID = 1337
PASSWORD = "funder-pass-7c1e9a"
ETHER = 10**18


@pytest.fixture(scope="module")
def other_chain() -> Anvil:
    anvil = Anvil.start(chain_id=CHAIN_ID, block_time=0.25, accounts=10, die_with_parent=True).stop_at_exit()
    yield anvil
    anvil.stop()


def make_funder(folder: Path, rpc_url: str, ether: float, *, account=None) -> tuple[Path, Path, str]:
    """An encrypted keystore (+ password file) of a fresh account holding `ether` on the chain."""
    from eth_account import Account

    account = account or Account.create()
    folder.mkdir(parents=True, exist_ok=True)
    keystore = folder / "funder.json"
    keystore.write_text(json.dumps(Account.encrypt(account.key, PASSWORD, kdf="scrypt", iterations=2**14)))
    password_file = folder / "password.txt"
    password_file.write_text(PASSWORD + "\n")
    if ether:
        # The harness pays from Anvil's dev key 0 (Web3Client itself enforces no key policy).
        bank = Web3Client(rpc_url, dev_account(0))
        bank.wait(bank.send(account.address, b"", value=int(ether * ETHER), gas=21_000))
    return keystore, password_file, account.address


def invoke_bench(*args: str, env: dict[str, str] | None = None):
    """`chorus bench ...` in-process (its SIGTERM handler is put back afterwards)."""
    from node.cli.main import app

    previous = signal.getsignal(signal.SIGTERM)
    try:
        return CliRunner().invoke(app, ["bench", *args], env=env)
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- the run -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keystore_run(other_chain: Anvil, tmp_path_factory: pytest.TempPathFactory):
    from node.experiment.bench import BenchRequest, run_bench

    tmp = tmp_path_factory.mktemp("keystore-bench")
    keystore, password_file, funder = make_funder(tmp / "funder", other_chain.rpc_url, 100)
    reader = Web3Client(other_chain.rpc_url)
    before = reader.balance(funder)
    out = tmp / "out"
    t0 = time.perf_counter()
    results = run_bench(BenchRequest(profile="tiny", seeds=1, sweeps=False, rerun_check=False, out=out,
                                     rpc_url=other_chain.rpc_url, keystore=keystore, password_file=password_file))
    wall = time.perf_counter() - t0
    logging.getLogger(__name__).warning("keystore bench on chain %d took %.1f s", CHAIN_ID, wall)
    assert results is not None
    return {"out": out, "results": results, "funder": funder, "before": before, "reader": reader, "wall": wall}


def test_every_architecture_finalizes_on_a_non_dev_chain(keystore_run) -> None:
    archs = keystore_run["results"]["architectures"]
    assert set(archs) == set(ARCH_NAMES.values())
    for name, a in archs.items():
        assert a["finalized_rate"] == 1.0, name
        assert a["gas_per_task"] > 21_000, name
    assert f"keystore account {keystore_run['funder']}" in keystore_run["results"]["run"]["chain"]


def _generated(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "keys" / "index.jsonl").read_text().splitlines()]


def test_node_keys_were_generated_and_are_the_registered_agents(keystore_run) -> None:
    from node.chain.events import AgentRegistered

    out = keystore_run["out"]
    entries = _generated(out)
    addresses = {e["address"] for e in entries}
    # market, sentiment, risk, fusion, 2 coordinators; each transport session's (report, batch) market,
    # sentiment, risk and fusion
    assert len(addresses) == len(entries) == 14
    dev = {dev_account(i).address for i in range(20)}
    assert not addresses & dev and keystore_run["funder"] not in addresses
    keys = out / "keys"
    assert (keys / ".gitignore").read_text().strip().endswith("*")
    for path in [keys / "password", *(keys / f"{a}.json" for a in addresses)]:
        assert path.stat().st_mode & 0o777 == 0o600, path
    # The node processes signed with exactly these keys: they are who registered on the run's board.
    registered = set()
    for registry in {e["registry"] for e in entries}:
        events = _registry(keystore_run["reader"], registry).events(0, names=("AgentRegistered",))
        registered |= {e.agent for e in events if isinstance(e, AgentRegistered)}
    assert registered == addresses


def test_leftover_funds_went_back_to_the_funder(keystore_run) -> None:
    reader = keystore_run["reader"]
    entries = _generated(keystore_run["out"])
    dust = 21_000 * 10**10  # what the last transfer's fee cap leaves behind, at most
    for e in entries:
        assert reader.balance(e["address"]) <= dust, e["address"]
        record = _registry(reader, e["registry"]).agent(e["address"])
        assert record.stake == 0 and not record.active, e["address"]  # deregistered, stake withdrawn
    signing = keystore_run["results"]["run"]["signing"]
    assert signing["funder"] == keystore_run["funder"] and signing["node_keys"] == len(entries)
    assert signing["funded_wei"] == len(entries) * signing["fund_per_key_wei"]
    # The stakes and every unspent wei came back: more than half of what the keys got.
    assert signing["funded_wei"] / 2 < signing["returned_wei"] < signing["funded_wei"]
    spent = keystore_run["before"] - reader.balance(keystore_run["funder"])
    assert 0 < spent < signing["funded_wei"] - signing["returned_wei"] + 10**18  # plus the funder's own gas


def _registry(reader, address: str):
    from node.chain.abi import ContractInterface
    from node.chain.artifacts import load_protocol_artifacts
    from node.chain.contracts import ChorusContracts

    abi = load_protocol_artifacts()["AgentRegistry"].abi
    return ChorusContracts(reader, {"AgentRegistry": address},
                           {"AgentRegistry": ContractInterface("AgentRegistry", abi)})


def test_no_password_in_the_run_folder(keystore_run) -> None:
    out = keystore_run["out"]
    generated = (out / "keys" / "password").read_text().strip()
    for path in out.rglob("*"):
        if path.is_file() and path.parent.name != "keys":
            text = path.read_text(errors="replace") if path.suffix in (".json", ".md", ".jsonl", ".txt") else ""
            assert PASSWORD not in text and generated not in text, path


# -- refusals ------------------------------------------------------------------------------------


def test_non_dev_chain_without_keystore_is_refused(other_chain: Anvil, tmp_path: Path) -> None:
    from node.experiment.bench import BenchRequest, run_bench

    with pytest.raises(ConfigError, match=r"chain 1337: without --keystore the bench signs with the public dev keys"):
        run_bench(BenchRequest(profile="tiny", seeds=1, sweeps=False, rerun_check=False, out=tmp_path / "out",
                               rpc_url=other_chain.rpc_url))
    result = invoke_bench("--profile", "tiny", "--no-sweeps", "--seeds", "1", "--out", str(tmp_path / "cli"),
                          "--rpc-url", other_chain.rpc_url)
    assert result.exit_code == 1
    assert "--keystore" in result.output and "31337" in result.output


def test_wrong_or_missing_password_is_a_clear_error_without_the_password(other_chain: Anvil, tmp_path: Path) -> None:
    keystore, _, _ = make_funder(tmp_path, other_chain.rpc_url, 0)
    wrong = "not-the-pass-93f2"
    (tmp_path / "wrong.txt").write_text(wrong)
    base = ["--profile", "tiny", "--no-sweeps", "--seeds", "1", "--out", str(tmp_path / "out"),
            "--rpc-url", other_chain.rpc_url, "--keystore", str(keystore)]
    by_file = invoke_bench(*base, "--password-file", str(tmp_path / "wrong.txt"))
    by_env = invoke_bench(*base, env={"CHORUS_KEYSTORE_PASSWORD": wrong})
    for result in (by_file, by_env):
        assert result.exit_code == 1
        assert "cannot decrypt keystore" in result.output and "wrong password" in result.output
        assert wrong not in result.output and PASSWORD not in result.output
    missing = invoke_bench(*base[:-1], str(tmp_path / "nope.json"), "--password-file", str(tmp_path / "wrong.txt"))
    assert missing.exit_code == 1 and "no such file" in missing.output
    no_password = invoke_bench(*base, env={"CHORUS_KEYSTORE_PASSWORD": ""})  # empty: counts as given
    assert no_password.exit_code == 1
    unset = invoke_bench(*base)
    assert unset.exit_code == 1 and "--keystore needs its password" in unset.output


def test_a_dev_key_in_a_keystore_is_refused_on_a_non_dev_chain(other_chain: Anvil, tmp_path: Path) -> None:
    from node.experiment.chain import BenchChain
    from node.experiment.keys import BenchKeys, load_funder

    keystore, password_file, _ = make_funder(tmp_path, other_chain.rpc_url, 0, account=dev_account(3))
    funder = load_funder(keystore, password_file)
    with pytest.raises(ConfigError, match="is dev key 3 of the public Anvil/Hardhat mnemonic"):
        BenchChain(other_chain.rpc_url, tmp_path / ".work", keys=BenchKeys(funder))


def test_a_funder_that_cannot_pay_is_refused_before_anything_is_sent(other_chain: Anvil, tmp_path: Path) -> None:
    from node.experiment.bench import BenchRequest, run_bench

    keystore, password_file, funder = make_funder(tmp_path / "funder", other_chain.rpc_url, 0.02)
    reader = Web3Client(other_chain.rpc_url)
    before, nonce = reader.balance(funder), reader.w3.eth.get_transaction_count(funder)
    with pytest.raises(ConfigError, match=rf"funder {funder} holds 0.02 ETH on chain 1337, the run needs about"):
        run_bench(BenchRequest(profile="tiny", seeds=1, sweeps=False, rerun_check=False, out=tmp_path / "out",
                               rpc_url=other_chain.rpc_url, keystore=keystore, password_file=password_file))
    assert reader.balance(funder) == before and reader.w3.eth.get_transaction_count(funder) == nonce
    assert not (tmp_path / "out" / "keys" / "index.jsonl").exists()
    with pytest.raises(ConfigError, match="does not cover a node's stake"):
        run_bench(BenchRequest(profile="tiny", seeds=1, sweeps=False, rerun_check=False, out=tmp_path / "out",
                               rpc_url=other_chain.rpc_url, keystore=keystore, password_file=password_file,
                               fund_per_key="0.001"))


# -- blocks without evm_mine ---------------------------------------------------------------------


class _NoMiningClient:
    """A chain that answers no evm_mine (a public RPC): blocks come on their own, or not at all."""

    address = "0x000000000000000000000000000000000000dEaD"

    def __init__(self) -> None:
        self.head = 10
        self.sent = 0

    def request(self, method, params):
        raise ChainError(f"{method} failed: {{'code': -32601, 'message': 'Method not found'}}")

    def block_number(self) -> int:
        return self.head

    def send(self, to, data, gas=None):
        self.sent += 1
        self.head += 1
        return "0xtx"

    def wait(self, tx):
        return None


def test_tick_without_evm_mine_waits_for_the_chains_blocks(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    import node.experiment.chain as chain_mod
    from node.experiment.chain import BenchChain

    chain = BenchChain.__new__(BenchChain)  # only the tick state: no RPC needed
    chain.rpc_url = "https://rpc.example/v3/secret-api-key"
    chain._tick_lock, chain._evm_mine, chain._head = __import__("threading").Lock(), None, (-1, 0.0)
    client = _NoMiningClient()
    chain.client = client
    now = [100.0]
    monkeypatch.setattr(chain_mod.time, "monotonic", lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="node.experiment.chain"):
        chain.tick()  # evm_mine refused: said once, and the head is new: nothing sent
        now[0] += 1.0
        client.head += 1  # the chain made a block by itself
        chain.tick()
        now[0] += 1.0
        chain.tick()  # no new block for 1 s: still waiting
    assert client.sent == 0
    warnings = [r.getMessage() for r in caplog.records if "does not mine on request" in r.getMessage()]
    assert len(warnings) == 1 and "secret-api-key" not in warnings[0] and "in real time" in warnings[0]
    now[0] += chain_mod.STALL_S
    chain.tick()  # stalled (a chain that mines on demand): one empty transfer makes a block
    assert client.sent == 1 and chain._evm_mine is False


def test_the_plan_counts_keys_and_tasks(tmp_path: Path) -> None:
    from node.experiment.config import RunOptions, get_profile
    from node.experiment.plan import chain_plan
    from node.experiment.runner import Bench
    from node.protocol.enums import ARCH_NAMES

    opts = RunOptions(profile=get_profile("tiny"), out=tmp_path)
    bench = Bench(opts, tmp_path, background=False)
    plan = chain_plan(bench.sessions(), opts.profile)
    # main-s0, byzantine-s0, degraded-s0 (+ its submitting key and the probe agent), main-s1: 6 processes each;
    # transport-report-s0 and transport-batch-s0: the three modality agents and the fusion node each
    assert (plan.boards, plan.keys) == (6, 4 * 6 + 2 + 2 * 4)
    p, archs = opts.profile, len(ARCH_NAMES)
    main0 = archs * p.tasks + 2 * p.tasks + archs * p.paced + p.n_tasks + 3 * archs * p.robust_tasks
    assert plan.tasks_per_key == main0


def test_the_funders_password_leaves_the_environment_once_it_is_decrypted(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from eth_account import Account

    from node.experiment.bench import bench_keys

    account = Account.create()
    keystore = tmp_path / "funder.json"
    keystore.write_text(json.dumps(Account.encrypt(account.key, "s3cret-pw", kdf="pbkdf2", iterations=2)))
    monkeypatch.setenv("CHORUS_KEYSTORE_PASSWORD", "s3cret-pw")
    keys = bench_keys(keystore, None, None)
    assert keys.funder.address == account.address
    assert not [k for k in os.environ if k.startswith("CHORUS_KEYSTORE")]  # training and node processes inherit none
