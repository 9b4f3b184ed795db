"""Decisions signed off chain (EIP-712) for `TaskBoard.submitReport`, and the packed items of
`TaskBoard.publishDecisions`.

An agent signs its decision as the typed struct

    Decision(uint256 taskId,uint8 action,uint16 confidence,bytes32 modelId,address agent)

under the domain `{name: "Chorus TaskBoard", version: "1", chainId, verifyingContract: the
TaskBoard}`; `modelId` is the agent's registered one (zero for a decisions-only agent). An
aggregator (a registered agent) sends every signed decision of a task in one `submitReport`
transaction; the contract recovers each signer, so the aggregator cannot alter a decision. A
signature is `(v, r, s)` with `v` 27 or 28 and `s` in the lower half of the curve order (eth_account
signs that way; the contract rejects the malleable twin with `BadSignature(index)`).

Pure: eth_account only (no RPC, no web3).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address

from node.protocol.enums import MAX_CONFIDENCE

DOMAIN_NAME = "Chorus TaskBoard"
DOMAIN_VERSION = "1"
DECISION_TYPE = [
    {"name": "taskId", "type": "uint256"},
    {"name": "action", "type": "uint8"},
    {"name": "confidence", "type": "uint16"},
    {"name": "modelId", "type": "bytes32"},
    {"name": "agent", "type": "address"},
]
DECISION_TYPEHASH = keccak(text="Decision(uint256 taskId,uint8 action,uint16 confidence,bytes32 modelId,address agent)")

SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
MAX_ACTION = 2

ITEM_TASK_SHIFT = 24
ITEM_ACTION_SHIFT = 16


def typed_decision(chain_id: int, board: str, task_id: int, action: int, confidence: int, model_id: bytes,
                   agent: str) -> dict[str, Any]:
    """The EIP-712 typed data (eth_account's full-message form) of one decision."""
    if len(model_id) != 32:
        raise ValueError(f"model id must be 32 bytes, got {len(model_id)}")
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Decision": DECISION_TYPE,
        },
        "primaryType": "Decision",
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": int(chain_id),
                   "verifyingContract": to_checksum_address(board)},
        "message": {"taskId": int(task_id), "action": int(action), "confidence": int(confidence),
                    "modelId": bytes(model_id), "agent": to_checksum_address(agent)},
    }


@dataclass(frozen=True)
class SignedDecision:
    """One decision and its signature. On chain it travels packed (`as_tuple`) without its model
    id, which the contract reads from the AgentRegistry: it must be the agent's registered one."""

    agent: str
    action: int
    confidence: int
    model_id: bytes
    v: int
    r: bytes
    s: bytes

    @property
    def head(self) -> int:
        """`TaskBoard.SignedDecision.head`: `agent << 96 | v << 24 | action << 16 | confidence`."""
        return pack_head(self.agent, self.v, self.action, self.confidence)

    def as_tuple(self) -> tuple[int, bytes, bytes]:
        """The ABI tuple `(uint256 head, bytes32 r, bytes32 s)` of `TaskBoard.SignedDecision`."""
        return (self.head, self.r, self.s)


def pack_head(agent: str, v: int, action: int, confidence: int) -> int:
    """The head word of a signed decision on chain (bits 32..95 zero)."""
    if not 0 <= int(v) <= 0xFF or not 0 <= int(action) <= 0xFF or not 0 <= int(confidence) <= 0xFFFF:
        raise ValueError(f"v {v} / action {action} / confidence {confidence} out of the head's fields")
    return (int(agent, 16) << 96) | (int(v) << 24) | (int(action) << 16) | int(confidence)


def unpack_reported(word: int) -> tuple[int, str, int, int, int]:
    """`(task_id, agent, role, action, confidence)` of a `DecisionReported` log's word
    (`taskId << 192 | agent << 32 | role << 24 | action << 16 | confidence`)."""
    agent = to_checksum_address("0x" + ((word >> 32) & ((1 << 160) - 1)).to_bytes(20, "big").hex())
    return word >> 192, agent, (word >> 24) & 0xFF, (word >> 16) & 0xFF, word & 0xFFFF


def decision_digest(chain_id: int, board: str, task_id: int, action: int, confidence: int, model_id: bytes,
                    agent: str) -> bytes:
    """The 32-byte digest an agent signs (`TaskBoard.decisionDigest` on chain)."""
    message = encode_typed_data(full_message=typed_decision(chain_id, board, task_id, action, confidence,
                                                            model_id, agent))
    return keccak(b"\x19" + message.version + message.header + message.body)


def sign_decision(private_key: Any, *, chain_id: int, board: str, task_id: int, action: int, confidence: int,
                  model_id: bytes) -> SignedDecision:
    """Sign a decision with `private_key` (hex, bytes or a LocalAccount's key); the agent is its address."""
    if not 0 <= int(action) <= MAX_ACTION:
        raise ValueError(f"action {action} not in 0..{MAX_ACTION}")
    if not 0 <= int(confidence) <= MAX_CONFIDENCE:
        raise ValueError(f"confidence {confidence} not in 0..{MAX_CONFIDENCE}")
    account = Account.from_key(private_key)
    typed = typed_decision(chain_id, board, task_id, action, confidence, model_id, account.address)
    signed = Account.sign_message(encode_typed_data(full_message=typed), private_key=account.key)
    return SignedDecision(account.address, int(action), int(confidence), bytes(model_id), signed.v,
                          signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big"))


def recover_signer(decision: SignedDecision, *, chain_id: int, board: str, task_id: int) -> str:
    """The address that signed `decision` for task `task_id` (compare it with `decision.agent`).

    Raises ValueError for what the contract rejects as `BadSignature`: v not 27/28, s in the upper half.
    """
    if decision.v not in (27, 28):
        raise ValueError(f"v must be 27 or 28, got {decision.v}")
    if int.from_bytes(decision.s, "big") > SECP256K1_ORDER // 2:
        raise ValueError("s is in the upper half of the curve order (malleable signature)")
    typed = typed_decision(chain_id, board, task_id, decision.action, decision.confidence, decision.model_id,
                           decision.agent)
    return str(Account.recover_message(encode_typed_data(full_message=typed),
                                       vrs=(decision.v, decision.r, decision.s)))


def report_args(decisions: Iterable[SignedDecision]) -> list[tuple[int, bytes, bytes]]:
    """`submitReport`'s second argument: the decisions with their signers in ascending address
    order, as the contract takes them (`UnsortedSigners` otherwise)."""
    return [d.as_tuple() for d in sorted(decisions, key=lambda d: int(d.agent, 16))]


def pack_decision(task_id: int, action: int, confidence: int) -> int:
    """One `publishDecisions` item: `taskId << 24 | action << 16 | confidence` (checked on chain too)."""
    if task_id < 0 or task_id >> (256 - ITEM_TASK_SHIFT):
        raise ValueError(f"task id {task_id} does not fit {256 - ITEM_TASK_SHIFT} bits")
    if not 0 <= int(action) <= 0xFF or not 0 <= int(confidence) <= 0xFFFF:
        raise ValueError(f"action {action} / confidence {confidence} out of the item's fields")
    return (int(task_id) << ITEM_TASK_SHIFT) | (int(action) << ITEM_ACTION_SHIFT) | int(confidence)


def unpack_decision(item: int) -> tuple[int, int, int]:
    """`(task_id, action, confidence)` of a `publishDecisions` item."""
    return item >> ITEM_TASK_SHIFT, (item >> ITEM_ACTION_SHIFT) & 0xFF, item & 0xFFFF
