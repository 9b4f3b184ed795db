"""The node's durable state, in one SQLite file: the event cursor, the hashes of processed blocks,
what the node knows of each task, the chain events it has seen, and its send log.

Why each part exists:
- `cursor` + `blocks`: resume after a crash exactly where the last committed batch ended, and
  notice a reorg (a stored block hash no longer matches the chain) so the batch can be rolled back.
- `sends` + `send_attempts`: a transaction is written here (nonce, raw bytes, hash) *before* it is
  broadcast, so a restarted node checks the chain for that exact transaction instead of building
  a second publication for the same task.
- `events`: the publications of every agent, so the fusion agent and `GET /tasks/{id}` need no
  extra RPC round trips.

All methods are thread-safe (one connection behind a lock; the API thread reads while the runner
writes). Every multi-row change is one transaction.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

# The node's own view of a task (`status`); the chain's view is `chain_status`.
NEW = "new"              # seen on chain, not handled yet
WAITING = "waiting"      # handled as far as possible; waiting for peers' outputs (fusion)
PUBLISHING = "publishing"  # our transactions are sent, not all mined
PUBLISHED = "published"  # our publications are mined
REJECTED = "rejected"    # the payload is malformed / mismatching: nothing will be published
FAILED = "failed"        # publishing failed for good (e.g. a revert we cannot fix)
SKIPPED = "skipped"      # nothing for this node to do (deadline passed, architecture not served)
RECHECK = "recheck"      # its block was reorganised away: must be looked at again
TASK_STATUSES = (NEW, WAITING, PUBLISHING, PUBLISHED, REJECTED, FAILED, SKIPPED, RECHECK)
TODO_STATUSES = (NEW, WAITING, RECHECK)

CHAIN_OPEN, CHAIN_FINALIZED, CHAIN_RECLAIMED, CHAIN_GONE = "open", "finalized", "reclaimed", "gone"

# What became of this node's reward share of a finalized task (`claim_status`; NULL: not decided
# yet). Besides these, the name of a revert that settled it for good (e.g. "AlreadyClaimed").
CLAIMED = "claimed"      # our claimReward was mined
NO_CLAIM = "none"        # nothing to claim: not a contributor, or a zero share

# Send log statuses.
PREPARED = "prepared"  # signed and written down, maybe not broadcast yet
SENT = "sent"          # the RPC accepted it
MINED = "mined"        # a receipt with status 1
REVERTED = "reverted"  # a receipt with status 0
DROPPED = "dropped"    # not mined, not pending, its nonce used by nothing of ours: gone
OPEN_SEND_STATUSES = (PREPARED, SENT)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (number INTEGER PRIMARY KEY, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY,
    status TEXT NOT NULL,
    chain_status TEXT NOT NULL,
    submitted_block INTEGER,
    submitted_tx TEXT,
    submitter TEXT,
    arch INTEGER,
    deadline INTEGER,
    quorum INTEGER,
    reward TEXT,
    payload_hash TEXT,
    uri TEXT,
    payload_size INTEGER,
    error TEXT,
    note TEXT,
    action INTEGER,
    confidence INTEGER,
    embedding_bytes INTEGER,
    commitment TEXT,
    final_action INTEGER,
    final_block INTEGER,
    final_tx TEXT,
    decisions INTEGER,
    contributors INTEGER,
    claim_status TEXT,
    claimed_wei TEXT,
    seen_at REAL,
    started_at REAL,
    published_at REAL,
    finalized_at REAL,
    updated_at REAL
);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks(status);
CREATE TABLE IF NOT EXISTS events (
    block_number INTEGER NOT NULL,
    log_index INTEGER NOT NULL,
    block_hash TEXT,
    tx_hash TEXT,
    name TEXT NOT NULL,
    task_id INTEGER,
    agent TEXT,
    role INTEGER,
    action INTEGER,
    confidence INTEGER,
    model_id TEXT,
    encoding INTEGER,
    vector BLOB,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX IF NOT EXISTS events_task ON events(task_id);
CREATE TABLE IF NOT EXISTS payloads (task_id INTEGER PRIMARY KEY, raw BLOB NOT NULL);
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
class TaskRecord:
    """One task as this node knows it."""

    id: int
    status: str = NEW
    chain_status: str = CHAIN_OPEN
    submitted_block: int | None = None
    submitted_tx: str | None = None
    submitter: str | None = None
    arch: int | None = None
    deadline: int | None = None
    quorum: int | None = None
    reward: str | None = None  # wei as a decimal string: may exceed SQLite's int64
    payload_hash: str | None = None
    uri: str | None = None
    payload_size: int | None = None
    error: str | None = None
    note: str | None = None
    """How the agent decided (e.g. which model or head), for people reading the API."""
    action: int | None = None
    confidence: int | None = None
    embedding_bytes: int | None = None
    commitment: str | None = None
    """0x-hex sha256 of the embedding this node committed to (the coordinator), or None."""
    final_action: int | None = None
    final_block: int | None = None
    final_tx: str | None = None
    decisions: int | None = None
    contributors: int | None = None
    claim_status: str | None = None
    """What became of this node's share once finalized: None (not decided yet), CLAIMED, NO_CLAIM,
    or the revert that settled it (e.g. "AlreadyClaimed")."""
    claimed_wei: str | None = None  # the share our claim was paid, wei as a decimal string
    seen_at: float | None = None
    started_at: float | None = None
    published_at: float | None = None
    finalized_at: float | None = None
    updated_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StoredEvent:
    """A Chorus event the watcher decoded, flattened to what the node stores."""

    name: str
    block_number: int
    log_index: int
    block_hash: str | None = None
    tx_hash: str | None = None
    task_id: int | None = None
    agent: str | None = None
    role: int | None = None
    action: int | None = None
    confidence: int | None = None
    model_id: str | None = None
    encoding: int | None = None
    vector: bytes | None = field(default=None, repr=False)
    # TaskSubmitted only (not stored in `events`, folded into `tasks`):
    submitter: str | None = None
    arch: int | None = None
    deadline: int | None = None
    quorum: int | None = None
    reward: int | None = None
    payload_hash: str | None = None
    uri: str | None = None
    payload: bytes | None = field(default=None, repr=False)
    # TaskFinalized only:
    decisions: int | None = None
    contributors: int | None = None


@dataclass
class SendAttempt:
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
    status: str
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


@dataclass(frozen=True)
class Rollback:
    """What a reorg rollback undid."""

    to_block: int
    tasks_rechecked: tuple[int, ...]
    tasks_reopened: tuple[int, ...]
    sends_reopened: tuple[int, ...]


_TASK_COLUMNS = tuple(f.name for f in fields(TaskRecord))


class Store:
    """The node's SQLite state. `Store(":memory:")` for tests."""

    def __init__(self, path: str | Path, *, clock: Any = time.time) -> None:
        self.path = str(path)
        self._clock = clock
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed 'about to send' row survives even an OS crash, not only ours.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._add_missing_columns()
            if self.get_meta("schema_version") is None:
                self.set_meta("schema_version", SCHEMA_VERSION)

    def _add_missing_columns(self) -> None:
        """Columns added after a state file was first written (CREATE TABLE IF NOT EXISTS keeps old tables)."""
        have = {row["name"] for row in self._db.execute("PRAGMA table_info(tasks)")}
        if "commitment" not in have:
            self._db.execute("ALTER TABLE tasks ADD COLUMN commitment TEXT")
        for column in ("claim_status", "claimed_wei"):
            if column not in have:
                self._db.execute(f"ALTER TABLE tasks ADD COLUMN {column} TEXT")  # noqa: S608 - fixed names

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ---- meta and namespace -------------------------------------------------------------------

    def get_meta(self, key: str) -> Any:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row["value"])

    def set_meta(self, key: str, value: Any) -> None:
        with self._lock:
            self._db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                             (key, json.dumps(value)))

    def bind(self, namespace: dict[str, Any]) -> bool:
        """Tie the file to one deployment (chain id, contract addresses, genesis hash).

        A file written for another deployment (a restarted devnet) would carry a cursor and task
        ids that mean nothing there: it is wiped. Returns True when it was wiped.
        """
        stored = self.get_meta("namespace")
        if stored == namespace:
            return False
        wiped = stored is not None
        with self._tx() as db:
            for table in ("blocks", "tasks", "events", "payloads", "send_attempts", "sends"):
                db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
            db.execute("DELETE FROM meta WHERE key IN ('cursor', 'namespace')")
            db.execute("INSERT INTO meta(key, value) VALUES ('namespace', ?)", (json.dumps(namespace),))
        return wiped

    # ---- cursor and block hashes --------------------------------------------------------------

    def cursor(self) -> int | None:
        """The last block whose events are fully stored, or None before the first batch."""
        return self.get_meta("cursor")

    def block_hash(self, number: int) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT hash FROM blocks WHERE number = ?", (number,)).fetchone()
        return None if row is None else row["hash"]

    def recent_blocks(self, limit: int = 64) -> list[tuple[int, str]]:
        """(number, hash) of the most recent processed blocks, newest first."""
        with self._lock:
            rows = self._db.execute("SELECT number, hash FROM blocks ORDER BY number DESC LIMIT ?", (limit,)).fetchall()
        return [(r["number"], r["hash"]) for r in rows]

    def apply_batch(self, to_block: int, block_hashes: dict[int, str], events: Iterable[StoredEvent],
                    *, keep_blocks: int = 256, now: float | None = None) -> list[int]:
        """Store one watcher batch atomically: events, task rows, block hashes, the new cursor.

        Returns the ids of tasks that became (or again became) work for this node.
        """
        now = self._clock() if now is None else now
        new_tasks: list[int] = []
        with self._tx() as db:
            for ev in events:
                if ev.name == "TaskSubmitted":
                    if self._task_submitted(db, ev, now):
                        new_tasks.append(int(ev.task_id))
                    continue
                db.execute(
                    "INSERT OR REPLACE INTO events(block_number, log_index, block_hash, tx_hash, name, task_id, agent, "
                    "role, action, confidence, model_id, encoding, vector) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (ev.block_number, ev.log_index, ev.block_hash, ev.tx_hash, ev.name, ev.task_id, ev.agent, ev.role,
                     ev.action, ev.confidence, ev.model_id, ev.encoding, ev.vector))
                if ev.name == "TaskFinalized":
                    db.execute(
                        "UPDATE tasks SET chain_status = ?, final_action = ?, final_block = ?, final_tx = ?, decisions = ?, "
                        "contributors = ?, finalized_at = ?, updated_at = ? WHERE id = ?",
                        (CHAIN_FINALIZED, ev.action, ev.block_number, ev.tx_hash, ev.decisions, ev.contributors, now, now,
                         ev.task_id))
                elif ev.name == "TaskReclaimed":
                    db.execute("UPDATE tasks SET chain_status = ?, updated_at = ? WHERE id = ?",
                               (CHAIN_RECLAIMED, now, ev.task_id))
            for number, block_hash in block_hashes.items():
                db.execute("INSERT OR REPLACE INTO blocks(number, hash) VALUES (?, ?)", (number, block_hash))
            db.execute("DELETE FROM blocks WHERE number <= ?", (to_block - keep_blocks,))
            db.execute("INSERT INTO meta(key, value) VALUES ('cursor', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                       (json.dumps(to_block),))
        return new_tasks

    def _task_submitted(self, db: sqlite3.Connection, ev: StoredEvent, now: float) -> bool:
        row = db.execute("SELECT status, payload_hash, submitted_block FROM tasks WHERE id = ?", (ev.task_id,)).fetchone()
        values = dict(
            submitted_block=ev.block_number, submitted_tx=ev.tx_hash, submitter=ev.submitter, arch=ev.arch,
            deadline=ev.deadline, quorum=ev.quorum, reward=None if ev.reward is None else str(ev.reward),
            payload_hash=ev.payload_hash, uri=ev.uri or None,
            payload_size=len(ev.payload) if ev.payload else None, updated_at=now,
        )
        if row is None:
            values.update(id=ev.task_id, status=NEW, chain_status=CHAIN_OPEN, seen_at=now)
            cols = ", ".join(values)
            db.execute(f"INSERT INTO tasks({cols}) VALUES ({', '.join('?' * len(values))})",  # noqa: S608
                       tuple(values.values()))
        elif row["status"] == RECHECK:
            # Seen again after a reorg, maybe with other content: start over; the chain (not this
            # row) decides later whether our earlier publication still stands.
            values.update(status=NEW, chain_status=CHAIN_OPEN, error=None, action=None, confidence=None,
                          embedding_bytes=None, commitment=None, final_action=None, final_block=None, final_tx=None,
                          decisions=None, contributors=None, published_at=None, finalized_at=None)
            sets = ", ".join(f"{k} = ?" for k in values)
            db.execute(f"UPDATE tasks SET {sets} WHERE id = ?", (*values.values(), ev.task_id))  # noqa: S608
        else:
            return False  # the same event delivered twice (overlapping ranges): nothing new
        if ev.payload:
            db.execute("INSERT OR REPLACE INTO payloads(task_id, raw) VALUES (?, ?)", (ev.task_id, ev.payload))
        else:
            db.execute("DELETE FROM payloads WHERE task_id = ?", (ev.task_id,))
        return True

    def inline_payload(self, task_id: int) -> bytes | None:
        """The inline payload bytes of a task, as its TaskSubmitted event carried them."""
        with self._lock:
            row = self._db.execute("SELECT raw FROM payloads WHERE task_id = ?", (task_id,)).fetchone()
        return None if row is None else bytes(row["raw"])

    def rollback(self, to_block: int, *, now: float | None = None) -> Rollback:
        """Undo everything learned from blocks above `to_block` (a reorg replaced them).

        Tasks submitted there go to RECHECK (their content may differ when they reappear, or
        never reappear); tasks finalized there are open again; sends mined there are open again
        so their receipts are fetched anew. The cursor moves back to `to_block`.
        """
        now = self._clock() if now is None else now
        with self._tx() as db:
            recheck = [r["id"] for r in db.execute("SELECT id FROM tasks WHERE submitted_block > ?", (to_block,))]
            reopened = [r["id"] for r in db.execute(
                "SELECT id FROM tasks WHERE final_block > ? AND (submitted_block IS NULL OR submitted_block <= ?)",
                (to_block, to_block))]
            sends = [r["id"] for r in db.execute("SELECT id FROM sends WHERE block_number > ?", (to_block,))]
            db.execute("UPDATE tasks SET status = ?, chain_status = ?, updated_at = ?, error = ? WHERE submitted_block > ?",
                       (RECHECK, CHAIN_GONE, now, f"block reorganised away (rolled back to {to_block})", to_block))
            db.execute("UPDATE tasks SET chain_status = ?, final_action = NULL, final_block = NULL, final_tx = NULL, "
                       "decisions = NULL, contributors = NULL, finalized_at = NULL, claim_status = NULL, "
                       "claimed_wei = NULL, updated_at = ? WHERE final_block > ?",
                       (CHAIN_OPEN, now, to_block))
            # Published tasks whose publication was in a dropped block must be looked at again.
            db.execute("UPDATE tasks SET status = ?, updated_at = ? WHERE status IN (?, ?) AND id IN "  # noqa: S608
                       "(SELECT task_id FROM sends WHERE block_number > ?)",
                       (RECHECK, now, PUBLISHED, PUBLISHING, to_block))
            db.execute("UPDATE sends SET status = ?, block_number = NULL, mined_at = NULL WHERE block_number > ?",
                       (SENT, to_block))
            db.execute("DELETE FROM events WHERE block_number > ?", (to_block,))
            db.execute("DELETE FROM blocks WHERE number > ?", (to_block,))
            db.execute("INSERT INTO meta(key, value) VALUES ('cursor', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                       (json.dumps(to_block),))
        return Rollback(to_block, tuple(recheck), tuple(reopened), tuple(sends))

    # ---- tasks --------------------------------------------------------------------------------

    def get_task(self, task_id: int) -> TaskRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
        return None if row is None else _task(row)

    def put_task(self, task: TaskRecord) -> None:
        """Insert or replace a whole task row (tests and fakes fill the store this way)."""
        values = task.to_dict()
        with self._lock:
            self._db.execute(f"INSERT OR REPLACE INTO tasks({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",  # noqa: S608
                             tuple(values.values()))

    def update_task(self, task_id: int, **changes: Any) -> None:
        unknown = set(changes) - set(_TASK_COLUMNS)
        if unknown:
            raise ValueError(f"unknown task fields {sorted(unknown)}")
        changes.setdefault("updated_at", self._clock())
        sets = ", ".join(f"{k} = ?" for k in changes)
        with self._lock:
            self._db.execute(f"UPDATE tasks SET {sets} WHERE id = ?", (*changes.values(), task_id))  # noqa: S608

    def list_tasks(self, *, offset: int = 0, limit: int = 50, status: str | None = None) -> list[TaskRecord]:
        """Tasks, newest id first."""
        query, args = "SELECT * FROM tasks", []
        if status is not None:
            query += " WHERE status = ?"
            args.append(status)
        query += " ORDER BY id DESC LIMIT ? OFFSET ?"
        with self._lock:
            rows = self._db.execute(query, (*args, limit, offset)).fetchall()
        return [_task(r) for r in rows]

    def count_tasks(self, status: str | None = None) -> int:
        with self._lock:
            if status is None:
                return self._db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
            return self._db.execute("SELECT COUNT(*) FROM tasks WHERE status = ?", (status,)).fetchone()[0]

    def status_counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) AS n FROM tasks GROUP BY status").fetchall()
        return {r["status"]: r["n"] for r in rows}

    def todo_tasks(self, limit: int = 100) -> list[TaskRecord]:
        """Tasks this node still has to act on, oldest first."""
        marks = ", ".join("?" * len(TODO_STATUSES))
        with self._lock:
            rows = self._db.execute(f"SELECT * FROM tasks WHERE status IN ({marks}) AND chain_status != ? "  # noqa: S608
                                    "ORDER BY id LIMIT ?", (*TODO_STATUSES, CHAIN_GONE, limit)).fetchall()
        return [_task(r) for r in rows]

    def open_tasks(self, limit: int = 500) -> list[TaskRecord]:
        """Tasks still open on chain (finalization candidates), oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM tasks WHERE chain_status = ? ORDER BY id LIMIT ?",
                                    (CHAIN_OPEN, limit)).fetchall()
        return [_task(r) for r in rows]

    def claimable_tasks(self, limit: int = 500) -> list[TaskRecord]:
        """Finalized tasks whose reward share is not decided yet (claim candidates), oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM tasks WHERE chain_status = ? AND claim_status IS NULL "
                                    "ORDER BY id LIMIT ?", (CHAIN_FINALIZED, limit)).fetchall()
        return [_task(r) for r in rows]

    # ---- events -------------------------------------------------------------------------------

    def task_events(self, task_id: int) -> list[StoredEvent]:
        """Publications and finalization of a task, in chain order."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM events WHERE task_id = ? ORDER BY block_number, log_index",
                                    (task_id,)).fetchall()
        return [StoredEvent(**dict(r)) for r in rows]

    # ---- send log -----------------------------------------------------------------------------

    def record_send(self, *, task_id: int | None, kind: str, nonce: int, tx_hash: str, raw: bytes,
                    max_fee_per_gas: int | None = None, max_priority_fee_per_gas: int | None = None) -> int:
        """Write 'about to send tx `tx_hash` (nonce, raw bytes) for task T' and commit. Returns the send id."""
        now = self._clock()
        with self._tx() as db:
            cur = db.execute("INSERT INTO sends(task_id, kind, nonce, status, tx_hash, created_at) VALUES (?,?,?,?,?,?)",
                             (task_id, kind, nonce, PREPARED, tx_hash, now))
            send_id = int(cur.lastrowid)
            db.execute("INSERT INTO send_attempts(tx_hash, send_id, raw, max_fee_per_gas, max_priority_fee_per_gas, "
                       "created_at) VALUES (?,?,?,?,?,?)",
                       (tx_hash, send_id, raw, _int_or_none(max_fee_per_gas), _int_or_none(max_priority_fee_per_gas), now))
        return send_id

    def add_attempt(self, send_id: int, *, tx_hash: str, raw: bytes, max_fee_per_gas: int | None = None,
                    max_priority_fee_per_gas: int | None = None) -> None:
        """A replacement (fee bump) of send `send_id`: same nonce, new hash. Written before it is sent."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO send_attempts(tx_hash, send_id, raw, max_fee_per_gas, "
                       "max_priority_fee_per_gas, created_at) VALUES (?,?,?,?,?,?)",
                       (tx_hash, send_id, raw, _int_or_none(max_fee_per_gas), _int_or_none(max_priority_fee_per_gas),
                        self._clock()))
            db.execute("UPDATE sends SET tx_hash = ? WHERE id = ?", (tx_hash, send_id))

    def mark_send(self, send_id: int, status: str, **changes: Any) -> None:
        allowed = {"tx_hash", "block_number", "gas_used", "effective_gas_price", "error", "sent_at", "mined_at"}
        if set(changes) - allowed:
            raise ValueError(f"unknown send fields {sorted(set(changes) - allowed)}")
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
        return self.sends(statuses=OPEN_SEND_STATUSES)

    def live_send(self, task_id: int | None, kind: str) -> SendRecord | None:
        """The send for (task, kind) that is open or mined, if any: a reason not to build another."""
        live = [s for s in self.sends(task_id=task_id, kind=kind) if s.status in (*OPEN_SEND_STATUSES, MINED)]
        return live[-1] if live else None

    def _send(self, row: sqlite3.Row) -> SendRecord:
        attempts = [SendAttempt(tx_hash=a["tx_hash"], raw=bytes(a["raw"]), max_fee_per_gas=_as_int(a["max_fee_per_gas"]),
                                max_priority_fee_per_gas=_as_int(a["max_priority_fee_per_gas"]), created_at=a["created_at"])
                    for a in self._db.execute("SELECT * FROM send_attempts WHERE send_id = ? ORDER BY created_at, rowid",
                                              (row["id"],))]
        return SendRecord(**dict(row), attempts=attempts)


def _task(row: sqlite3.Row) -> TaskRecord:
    return TaskRecord(**dict(row))


def _int_or_none(value: int | None) -> Any:
    # Fees can exceed int64 on exotic chains; store those as text.
    if value is None:
        return None
    return value if value < 2**63 else str(value)


def _as_int(value: Any) -> int | None:
    return None if value is None else int(value)
