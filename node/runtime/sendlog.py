"""The send log: the node's own transactions, written down before they are broadcast.

A transaction is written here (nonce, raw bytes, hash) *before* the RPC sees it, so a restarted
node checks the chain for that exact transaction instead of building a second publication for the
same task. One record is one logical transaction (one nonce); a fee bump adds an attempt (a new
hash for the same nonce), not a record. `node.runtime.outbox` is the only writer.

`SendLog` is the send-log half of `node.runtime.store.Store`: its methods run on the store's one
connection, under its lock, so a reorg rollback can reopen sends and tasks in one transaction.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class SendState(StrEnum):
    """Where one send stands (`sends.status`)."""

    PREPARED = "prepared"  # signed and written down, maybe not broadcast yet
    SENT = "sent"          # the RPC accepted it
    MINED = "mined"        # a receipt with status 1
    REVERTED = "reverted"  # a receipt with status 0
    DROPPED = "dropped"    # not mined, not pending, its nonce used by nothing of ours: gone


OPEN_SEND_STATES = (SendState.PREPARED, SendState.SENT)
"""Sends whose fate is not known yet: the outbox follows these."""


class SendKind(StrEnum):
    """What a send does for its task (`sends.kind`)."""

    EMBEDDING = "embedding"
    DECISION = "decision"
    FINALIZE = "finalize"
    CLAIM = "claim"
    REPORT = "report"  # submitReport: other agents' signed decisions (and its own), as the task's aggregator
    BATCH = "batch"    # publishDecisions: its decisions on several tasks (transport batch; no task id of its own)


PUBLICATION_KINDS = (SendKind.EMBEDDING, SendKind.DECISION)
"""The sends that publish this node's output, in send order: the embedding first."""

SEND_SCHEMA = """
CREATE TABLE IF NOT EXISTS sends (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id INTEGER,
    kind TEXT NOT NULL,
    nonce INTEGER NOT NULL,
    status TEXT NOT NULL,
    tx_hash TEXT,
    block_number INTEGER,
    gas_used INTEGER,
    effective_gas_price INTEGER,
    error TEXT,
    created_at REAL,
    sent_at REAL,
    mined_at REAL
);
CREATE INDEX IF NOT EXISTS sends_task ON sends(task_id, kind);
CREATE INDEX IF NOT EXISTS sends_status ON sends(status);
CREATE TABLE IF NOT EXISTS send_attempts (
    tx_hash TEXT PRIMARY KEY,
    send_id INTEGER NOT NULL REFERENCES sends(id),
    raw BLOB NOT NULL,
    max_fee_per_gas INTEGER,
    max_priority_fee_per_gas INTEGER,
    created_at REAL
);
CREATE INDEX IF NOT EXISTS attempts_send ON send_attempts(send_id);
"""


@dataclass
class SendAttempt:
    """One signed version of a send (the first, or a fee bump of it)."""

    tx_hash: str
    raw: bytes = field(repr=False)
    max_fee_per_gas: int | None = None
    max_priority_fee_per_gas: int | None = None
    created_at: float | None = None


@dataclass
class SendRecord:
    """One logical transaction of the node (one nonce); fee bumps add attempts, not records."""

    id: int
    task_id: int | None
    kind: str
    nonce: int
    status: SendState
    tx_hash: str | None = None  # the attempt that was mined (or the latest one)
    block_number: int | None = None
    gas_used: int | None = None
    effective_gas_price: int | None = None
    error: str | None = None
    created_at: float | None = None
    sent_at: float | None = None
    mined_at: float | None = None
    attempts: list[SendAttempt] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["attempts"] = [a.tx_hash for a in self.attempts]
        return d


_MARKABLE = frozenset({"tx_hash", "block_number", "gas_used", "effective_gas_price", "error", "sent_at", "mined_at"})


class SendLog:
    """The send log's methods; `Store` provides the connection, lock, clock and transactions."""

    _db: sqlite3.Connection
    _lock: threading.RLock
    _clock: Callable[[], float]
    _tx: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _durable_tx: Callable[[], AbstractContextManager[sqlite3.Connection]]

    def record_send(self, *, task_id: int | None, kind: str, nonce: int, tx_hash: str, raw: bytes,
                    max_fee_per_gas: int | None = None, max_priority_fee_per_gas: int | None = None) -> int:
        """Write 'about to send tx `tx_hash` (nonce, raw bytes) for task T' and commit it to disk
        (fsync: it survives an OS crash too). Returns the send id.

        A transaction signed again byte for byte (same nonce, calldata and fees: the same hash),
        say after a reorg dropped the first one, is the same transaction: its record is opened
        again (PREPARED) and its id returned, instead of a second record claiming the same hash."""
        now = self._clock()
        with self._durable_tx() as db:
            known = db.execute("SELECT send_id FROM send_attempts WHERE tx_hash = ?", (tx_hash,)).fetchone()
            if known is not None:
                send_id = int(known["send_id"])
                db.execute("UPDATE sends SET status = ?, tx_hash = ?, block_number = NULL, gas_used = NULL, "
                           "effective_gas_price = NULL, error = NULL, sent_at = NULL, mined_at = NULL WHERE id = ?",
                           (SendState.PREPARED, tx_hash, send_id))
                # Its age restarts: a fee bump counts from this signing, not the first one.
                db.execute("UPDATE send_attempts SET created_at = ? WHERE tx_hash = ?", (now, tx_hash))
                return send_id
            cur = db.execute("INSERT INTO sends(task_id, kind, nonce, status, tx_hash, created_at) VALUES (?,?,?,?,?,?)",
                             (task_id, kind, nonce, SendState.PREPARED, tx_hash, now))
            send_id = int(cur.lastrowid)
            db.execute("INSERT INTO send_attempts(tx_hash, send_id, raw, max_fee_per_gas, max_priority_fee_per_gas, "
                       "created_at) VALUES (?,?,?,?,?,?)",
                       (tx_hash, send_id, raw, _int_or_none(max_fee_per_gas), _int_or_none(max_priority_fee_per_gas), now))
        return send_id

    def add_attempt(self, send_id: int, *, tx_hash: str, raw: bytes, max_fee_per_gas: int | None = None,
                    max_priority_fee_per_gas: int | None = None) -> None:
        """A replacement (fee bump) of send `send_id`: same nonce, new hash. Written (and synced to
        disk) before it is sent."""
        with self._durable_tx() as db:
            db.execute("INSERT OR REPLACE INTO send_attempts(tx_hash, send_id, raw, max_fee_per_gas, "
                       "max_priority_fee_per_gas, created_at) VALUES (?,?,?,?,?,?)",
                       (tx_hash, send_id, raw, _int_or_none(max_fee_per_gas), _int_or_none(max_priority_fee_per_gas),
                        self._clock()))
            db.execute("UPDATE sends SET tx_hash = ? WHERE id = ?", (tx_hash, send_id))

    def mark_send(self, send_id: int, status: SendState, **changes: Any) -> None:
        """Move send `send_id` to `status`, with the receipt's or the error's fields in `changes`."""
        if set(changes) - _MARKABLE:
            raise ValueError(f"unknown send fields {sorted(set(changes) - _MARKABLE)}")
        sets = ", ".join(["status = ?", *(f"{k} = ?" for k in changes)])
        with self._lock:
            self._db.execute(f"UPDATE sends SET {sets} WHERE id = ?", (status, *changes.values(), send_id))  # noqa: S608

    def get_send(self, send_id: int) -> SendRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM sends WHERE id = ?", (send_id,)).fetchone()
            return None if row is None else self._send(row)

    def sends(self, *, task_id: int | None = None, statuses: Iterable[str] | None = None,
              kind: str | None = None) -> list[SendRecord]:
        """Send records, oldest first, filtered by task, status and kind."""
        query, args = "SELECT * FROM sends WHERE 1=1", []
        if task_id is not None:
            query += " AND task_id = ?"
            args.append(task_id)
        if kind is not None:
            query += " AND kind = ?"
            args.append(kind)
        if statuses is not None:
            statuses = tuple(statuses)
            query += f" AND status IN ({', '.join('?' * len(statuses))})"
            args.extend(statuses)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id", args).fetchall()
            return [self._send(r) for r in rows]

    def open_sends(self) -> list[SendRecord]:
        """Sends not yet mined, reverted or dropped, oldest first."""
        return self.sends(statuses=OPEN_SEND_STATES)

    def live_send(self, task_id: int | None, kind: str) -> SendRecord | None:
        """The send for (task, kind) that is open or mined, if any: a reason not to build another."""
        live = [s for s in self.sends(task_id=task_id, kind=kind) if s.status in (*OPEN_SEND_STATES, SendState.MINED)]
        return live[-1] if live else None

    def _send(self, row: sqlite3.Row) -> SendRecord:
        attempts = [SendAttempt(tx_hash=a["tx_hash"], raw=bytes(a["raw"]), max_fee_per_gas=_as_int(a["max_fee_per_gas"]),
                                max_priority_fee_per_gas=_as_int(a["max_priority_fee_per_gas"]), created_at=a["created_at"])
                    for a in self._db.execute("SELECT * FROM send_attempts WHERE send_id = ? ORDER BY created_at, rowid",
                                              (row["id"],))]
        values = dict(row)
        values["status"] = SendState(values["status"])
        return SendRecord(**values, attempts=attempts)


def _int_or_none(value: int | None) -> Any:
    # Fees can exceed int64 on exotic chains; store those as text.
    if value is None:
        return None
    return value if value < 2**63 else str(value)


def _as_int(value: Any) -> int | None:
    return None if value is None else int(value)
