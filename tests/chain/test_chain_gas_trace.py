"""`chorus gas` prices each publication's SSTOREs from a table; check the table against the state
diff of real publications (prestateTracer in diff mode: every storage slot the transaction
changed, with its value before and after)."""

from __future__ import annotations

from node.protocol.enums import Action, Encoding
from node.bench.gas import SSTORE_RESET_COLD, SSTORE_SET_COLD, SSTORES

from chainhelpers import open_task, setup_agents


def _storage_writes(chain, tx_hash: str, contract: str) -> list[int]:
    """The cold SSTORE price of each slot `tx_hash` changed in `contract`."""
    diff = chain.rpc("debug_traceTransaction", tx_hash, {"tracer": "prestateTracer", "tracerConfig": {"diffMode": True}})
    address = contract.lower()
    post = diff["post"].get(address, {}).get("storage", {})
    pre = diff["pre"].get(address, {}).get("storage", {})
    return sorted(SSTORE_RESET_COLD if int(pre.get(slot, "0x0"), 16) else SSTORE_SET_COLD for slot in post)


def test_sstore_table_matches_the_state_diff_of_each_publication(chain) -> None:
    owner, market, _, mid = setup_agents(chain)
    cases = {
        "publishDecision": lambda task: market.publish_decision(task, Action.BUY, 100),
        "publishEmbedding": lambda task: market.publish_embedding(task, mid, Encoding.BINARY, b"\x01"),
    }
    assert set(cases) == set(SSTORES)
    board = chain.deployment.contracts["TaskBoard"]
    for op, publish in cases.items():
        tx_hash = publish(open_task(owner)).tx_hash
        writes = _storage_writes(chain, tx_hash, board)
        assert writes == sorted(gas for _, _, gas in SSTORES[op]), f"{op}: state diff prices {writes}"
