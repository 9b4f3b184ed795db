"""The send path: persist before broadcast, crash windows, vanished transactions, and fee bumps
checked against geth's replacement rule (not only Anvil's looser one)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nodefakes import FakeChain, anvil_accepts_replacement, geth_accepts_replacement
from testkit import sample

from node.chain.api import Fees
from node.chain.client import bump_fees
from node.protocol.errors import ContractRevert, RpcUnavailable
from node.runtime.metrics import NodeMetrics
from node.runtime.outbox import Outbox, tx_body
from node.runtime.sendlog import SendState
from node.runtime.store import Store

BOARD = "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0"  # checksummed, as the facade gives it


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def clocked_outbox(tmp_path: Path, chain: FakeChain, *, bump_after_s: float,
                   metrics: NodeMetrics | None = None) -> tuple[Clock, Store, Outbox]:
    """An outbox and its store on a clock the test moves by hand."""
    clock = Clock()
    store = Store(tmp_path / "clocked.sqlite", clock=clock)
    return clock, store, Outbox(chain, store, metrics, bump_after_s=bump_after_s, clock=clock)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "outbox.sqlite")


def test_the_send_is_on_disk_before_the_rpc_sees_it(store: Store) -> None:
    chain = FakeChain()
    seen: list[str] = []

    def check(tx_hash: str) -> None:
        send = store.live_send(1, "decision")
        assert send is not None and send.status == SendState.PREPARED and send.attempts[0].tx_hash == tx_hash
        seen.append(tx_hash)

    chain.on_broadcast = check
    send = Outbox(chain, store).send(kind="decision", to=BOARD, data=b"\x01", task_id=1)
    assert seen == [send.tx_hash] and send.status == SendState.SENT


def test_a_revert_at_estimation_writes_nothing(store: Store) -> None:
    chain = FakeChain(estimate_reverts=ContractRevert("AlreadyFinalized", {"taskId": 1}))
    with pytest.raises(ContractRevert):
        Outbox(chain, store).send(kind="decision", to=BOARD, data=b"\x01", task_id=1)
    assert store.sends() == [] and chain.broadcasts == []


def test_receipts_settle_sends_and_count_gas(store: Store) -> None:
    chain = FakeChain()
    metrics = NodeMetrics("market")
    outbox = Outbox(chain, store, metrics)
    outbox.send(kind="decision", to=BOARD, data=b"\x01", task_id=1)
    settled = outbox.poll()
    assert [s.send.status for s in settled] == [SendState.MINED]
    assert sample(metrics, "chorus_gas_used_total", kind="decision") == 45_000


def test_killed_between_persist_and_broadcast_the_same_bytes_go_out_once(store: Store) -> None:
    chain = FakeChain()
    # Simulate the crash window: the send log has the signed tx, the RPC never got it.
    with chain.reserve_nonce() as nonce:
        signed = chain.sign(nonce=nonce, to=BOARD, data=b"\x01", value=0, gas=60_000, fees=chain.base_fees)
        send_id = store.record_send(task_id=3, kind="decision", nonce=nonce, tx_hash=signed.tx_hash, raw=signed.raw,
                                    max_fee_per_gas=signed.fees.max_fee_per_gas,
                                    max_priority_fee_per_gas=signed.fees.max_priority_fee_per_gas)
    restarted = Outbox(chain, store)  # a new process: nothing in memory
    assert restarted.poll() == []  # rebroadcast, not yet settled
    assert chain.broadcasts == [signed.tx_hash]
    settled = restarted.poll()
    assert [s.send.id for s in settled] == [send_id] and settled[0].send.tx_hash == signed.tx_hash
    assert len(store.sends(task_id=3)) == 1


def test_killed_after_broadcast_the_receipt_is_found_and_nothing_is_resent(store: Store) -> None:
    chain = FakeChain()
    Outbox(chain, store).send(kind="decision", to=BOARD, data=b"\x01", task_id=4)
    restarted = Outbox(chain, store)
    assert [s.send.status for s in restarted.poll()] == [SendState.MINED]
    assert len(chain.broadcasts) == 1


def test_a_transaction_the_node_forgot_is_rebroadcast_while_its_nonce_is_free(store: Store) -> None:
    chain = FakeChain(automine=False)
    outbox = Outbox(chain, store)
    send = outbox.send(kind="decision", to=BOARD, data=b"\x01", task_id=5)
    chain.forget(send.tx_hash)  # e.g. the RPC node restarted without its pool
    outbox.poll()
    assert chain.broadcasts == [send.tx_hash, send.tx_hash]
    chain.mine()
    assert [s.send.status for s in outbox.poll()] == [SendState.MINED]


def test_a_nonce_taken_by_another_transaction_marks_the_send_dropped(store: Store) -> None:
    chain = FakeChain(automine=False)
    outbox = Outbox(chain, store)
    send = outbox.send(kind="decision", to=BOARD, data=b"\x01", task_id=6)
    chain.forget(send.tx_hash)
    chain.mined_nonce += 1  # something else of this key used the nonce
    settled = outbox.poll()
    assert [s.send.status for s in settled] == [SendState.DROPPED]


def test_vanished_publication_is_not_resent_when_its_task_changed(store: Store) -> None:
    chain = FakeChain(automine=False)
    outbox = Outbox(chain, store, may_resend=lambda send: False)
    send = outbox.send(kind="decision", to=BOARD, data=b"\x01", task_id=7)
    chain.forget(send.tx_hash)
    assert [s.send.status for s in outbox.poll()] == [SendState.DROPPED]
    assert chain.broadcasts == [send.tx_hash]


def test_resending_a_dropped_transaction_byte_for_byte_is_the_same_attempt(store: Store) -> None:
    # After a reorg: the first send was dropped (its task changed), the new task under the same id
    # gets the same decision, the nonce is free again, the fees are the same: the same hash.
    chain = FakeChain(automine=False)
    resend = [False]
    outbox = Outbox(chain, store, may_resend=lambda send: resend[0])
    first = outbox.send(kind="decision", to=BOARD, data=b"\x01", task_id=7)
    chain.forget(first.tx_hash)
    assert [s.send.status for s in outbox.poll()] == [SendState.DROPPED]
    again = outbox.send(kind="decision", to=BOARD, data=b"\x01", task_id=7)
    assert (again.id, again.tx_hash, again.status) == (first.id, first.tx_hash, SendState.SENT)
    assert chain.broadcasts == [first.tx_hash, first.tx_hash] and len(store.sends()) == 1
    chain.mine()
    resend[0] = True
    assert [s.send.status for s in outbox.poll()] == [SendState.MINED]


def test_rpc_down_while_sending_keeps_the_send_for_a_later_broadcast(store: Store) -> None:
    chain = FakeChain()
    outbox = Outbox(chain, store)
    gas_ok = chain.estimate_gas  # estimation works, the broadcast does not
    chain.estimate_gas = gas_ok  # type: ignore[method-assign]
    original = chain.send_raw

    def down(raw: bytes, tx_hash: str) -> None:
        raise RpcUnavailable("connection refused")

    chain.send_raw = down  # type: ignore[method-assign]
    send = outbox.send(kind="decision", to=BOARD, data=b"\x01", task_id=8)
    assert send.status == SendState.PREPARED
    chain.send_raw = original  # type: ignore[method-assign]
    outbox.poll()  # rebroadcast
    assert [s.send.status for s in outbox.poll()] == [SendState.MINED]
    assert len(store.sends(task_id=8)) == 1


# -- fee bumping ---------------------------------------------------------------------------------------


def test_a_stuck_transaction_is_replaced_past_geths_rule(tmp_path: Path) -> None:
    chain = FakeChain(automine=False, replacement_rule="geth")
    metrics = NodeMetrics("market")
    clock, store, outbox = clocked_outbox(tmp_path, chain, bump_after_s=10, metrics=metrics)
    first = outbox.send(kind="decision", to=BOARD, data=b"\x07", task_id=9)
    clock.now += 5
    outbox.poll()
    assert len(chain.broadcasts) == 1  # not stuck yet
    clock.now += 6  # 11 s after the broadcast
    outbox.poll()
    send = store.get_send(first.id)
    assert len(send.attempts) == 2 and len(chain.broadcasts) == 2
    old, new = send.attempts
    assert geth_accepts_replacement(Fees(old.max_fee_per_gas, old.max_priority_fee_per_gas),
                                    Fees(new.max_fee_per_gas, new.max_priority_fee_per_gas))
    assert tx_body(new.raw) == tx_body(old.raw)  # same call, same gas: only the fees moved
    assert chain.pool[send.nonce].tx_hash == new.tx_hash
    assert sample(metrics, "chorus_fee_bumps_total") == 1
    chain.mine()
    settled = outbox.poll()
    assert [s.send.tx_hash for s in settled] == [new.tx_hash]


def test_the_replacement_raises_both_caps_by_the_chains_bump_percent(tmp_path: Path) -> None:
    chain = FakeChain(automine=False, bump_percent=25)  # the market does not move: only the bump counts
    clock, store, outbox = clocked_outbox(tmp_path, chain, bump_after_s=10)
    first = outbox.send(kind="decision", to=BOARD, data=b"\x07", task_id=9)
    clock.now += 11
    outbox.poll()
    old, new = store.get_send(first.id).attempts
    assert new.max_fee_per_gas > old.max_fee_per_gas * 125 // 100
    assert new.max_priority_fee_per_gas > old.max_priority_fee_per_gas * 125 // 100
    assert chain.pool[first.nonce].tx_hash == new.tx_hash


def test_a_bump_that_only_anvil_accepts_is_refused_by_geth() -> None:
    old = Fees(2_000_000_000, 1_000_000_000)
    small = Fees(int(old.max_fee_per_gas * 1.05), int(old.max_priority_fee_per_gas * 1.05))
    assert anvil_accepts_replacement(old, small)
    assert not geth_accepts_replacement(old, small)
    assert geth_accepts_replacement(old, bump_fees(old))


@given(st.integers(0, 10**13), st.integers(0, 10**12), st.integers(0, 10**13), st.integers(0, 10**12))
def test_bumped_fees_always_satisfy_geths_rule(fee: int, tip: int, market_fee: int, market_tip: int) -> None:
    old = Fees(max(fee, tip), tip)
    new = bump_fees(old, Fees(max(market_fee, market_tip), market_tip))
    assert geth_accepts_replacement(old, new)
    assert new.max_fee_per_gas >= new.max_priority_fee_per_gas  # a valid EIP-1559 transaction


def test_a_replacement_refused_because_the_original_was_mined_is_harmless(tmp_path: Path) -> None:
    chain = FakeChain(automine=False)
    clock, store, outbox = clocked_outbox(tmp_path, chain, bump_after_s=1)
    send = outbox.send(kind="decision", to=BOARD, data=b"\x01", task_id=10)
    clock.now += 5
    chain.mine()
    settled = outbox.poll()  # the receipt wins over the bump
    assert [s.send.tx_hash for s in settled] == [send.tx_hash] and len(chain.broadcasts) == 1
