"""The node's durable state, in one SQLite file: the event cursor, the hashes of processed blocks,
what the node knows of each task, the chain events it has seen, and its send log.

Why each part exists:
- `cursor` + `blocks`: resume after a crash exactly where the last committed batch ended, and
  notice a reorg (a stored block hash no longer matches the chain) so the batch can be rolled back.
- `sends` + `send_attempts`: the send log (`node.runtime.sendlog`): a transaction is written
  there *before* it is broadcast, so a restarted node looks for that exact transaction.
- `events`: the publications of every agent, so the fusion agent and `GET /tasks/{id}` need no
  extra RPC round trips.
- `reports` (transport "report"): the EIP-712-signed decisions this node holds, its own and, as a
  task's aggregator, those other agents sent it (`POST /tasks/{id}/reports`), so a restarted
  aggregator still has them and a restarted agent knows it signed and where it sent its decision.

All methods are thread-safe (one connection behind a lock; the API thread reads while the runner
writes). Every multi-row change is one transaction. Commits survive a crash of the process; those of
the send log's 'about to send' rows are also synced to disk before the transaction is broadcast.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from node.protocol.reports import SignedDecision
from node.runtime.sendlog import OPEN_SEND_STATES, SEND_SCHEMA, SendLog, SendState

SCHEMA_VERSION = 1

class TaskState(StrEnum):
    """The node's own view of a task (`tasks.status`); the chain's view is `ChainState`."""

    NEW = "new"                # seen on chain, not handled yet
    WAITING = "waiting"        # handled as far as possible; waiting for peers' outputs (fusion) or its report
    PUBLISHING = "publishing"  # our transactions are sent, not all mined
    PUBLISHED = "published"    # our publications are mined
    REJECTED = "rejected"      # the payload is malformed / mismatching: nothing will be published
    FAILED = "failed"          # publishing failed for good (e.g. a revert we cannot fix)
    SKIPPED = "skipped"        # nothing for this node to do (deadline passed, architecture not served)
    RECHECK = "recheck"        # its block was reorganised away: must be looked at again


TODO_STATES = (TaskState.NEW, TaskState.WAITING, TaskState.RECHECK)
"""Tasks in these states are still work for this node."""


class ChainState(StrEnum):
    """The chain's view of a task as this node last saw it (`tasks.chain_status`)."""

    OPEN = "open"
    FINALIZED = "finalized"
    RECLAIMED = "reclaimed"
    GONE = "gone"  # its TaskSubmitted block was reorganised away


class ClaimState(StrEnum):
    """What became of this node's reward share of a finalized task (`tasks.claim_status`; NULL: not
    decided yet). Besides these, the column holds the name of a revert that settled it for good
    (e.g. "AlreadyClaimed")."""

    CLAIMED = "claimed"  # our claimReward was mined
    NONE = "none"        # nothing to claim: not a contributor, or a zero share


TASK_SCHEMA = """
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
    final_tallies TEXT,
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
    probs TEXT,
    PRIMARY KEY (block_number, log_index)
);
CREATE INDEX IF NOT EXISTS events_task ON events(task_id);
CREATE TABLE IF NOT EXISTS payloads (task_id INTEGER PRIMARY KEY, raw BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS reports (
    task_id INTEGER NOT NULL,
    agent TEXT NOT NULL,
    action INTEGER NOT NULL,
    confidence INTEGER NOT NULL,
    model_id TEXT NOT NULL,
    v INTEGER NOT NULL,
    r TEXT NOT NULL,
    s TEXT NOT NULL,
    own INTEGER NOT NULL,
    sent_to TEXT,
    post_status TEXT,
    received_at REAL,
    PRIMARY KEY (task_id, agent)
);
"""
"""The tables of events, blocks and tasks (the send log adds its own: `SEND_SCHEMA`)."""


@dataclass
class TaskRecord:
    """One task as this node knows it."""

    id: int
    status: TaskState = TaskState.NEW
    chain_status: ChainState = ChainState.OPEN
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
    final_tallies: str | None = None
    """The contract's weighted tallies at finalization as JSON `[sell, hold, buy]`, or None."""
    decisions: int | None = None
    contributors: int | None = None
    claim_status: str | None = None
    """What became of this node's share once finalized: None (not decided yet), a `ClaimState`, or
    the revert that settled it (e.g. "AlreadyClaimed")."""
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
    probs: tuple[int, int, int] | None = None
    """ProbabilitiesPublished only: sell, hold, buy in basis points (JSON `[s, h, b]` in the table)."""
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
    tallies: tuple[int, int, int] | None = None
    decisions: int | None = None
    contributors: int | None = None


@dataclass(frozen=True)
class Rollback:
    """What a reorg rollback undid."""

    to_block: int
    tasks_rechecked: tuple[int, ...]
    tasks_reopened: tuple[int, ...]
    sends_reopened: tuple[int, ...]


@dataclass
class HeldReport:
    """One signed decision this node holds for a task (the `reports` table)."""

    task_id: int
    decision: SignedDecision
    own: bool
    """This node's own decision (else one an agent sent it, as the task's aggregator)."""
    sent_to: str | None = None
    """Own only: the aggregator endpoint it was posted to; None when this node aggregates the task."""
    post_status: str | None = None
    """Own only: `held` (this node aggregates), `queued` (to be posted), `accepted`, `unreachable`,
    `refused: <error kind>`, or `no_aggregator`."""
    received_at: float | None = None


_TASK_COLUMNS = tuple(f.name for f in fields(TaskRecord))

_NO_OUTPUT: dict[str, None] = dict.fromkeys((
    "error", "note", "action", "confidence", "embedding_bytes", "commitment", "final_action", "final_block", "final_tx",
    "final_tallies", "decisions", "contributors", "claim_status", "claimed_wei", "started_at", "published_at", "finalized_at"))
"""What a task row learns after its submission: cleared when the submission is reorganised away."""

_TASK_IDENTITY = ("submitter", "arch", "deadline", "quorum", "reward", "payload_hash", "uri")
"""The columns that tell one submitted task from another under the same id."""


class Store(SendLog):
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
            # NORMAL in WAL mode: every commit survives a crash of this process (SIGKILL included)
            # without an fsync of its own. The send log's 'about to send' rows are committed with
            # FULL (`_durable_tx`), which also syncs every commit before them: those survive even
            # an OS crash or a power cut, before the transaction reaches the RPC.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(TASK_SCHEMA + SEND_SCHEMA)
            self._add_missing_columns()
            if self.get_meta("schema_version") is None:
                self.set_meta("schema_version", SCHEMA_VERSION)

    def _add_missing_columns(self) -> None:
        """Columns added after a state file was first written (CREATE TABLE IF NOT EXISTS keeps old tables)."""
        have = {row["name"] for row in self._db.execute("PRAGMA table_info(tasks)")}
        if "commitment" not in have:
            self._db.execute("ALTER TABLE tasks ADD COLUMN commitment TEXT")
        for column in ("claim_status", "claimed_wei", "final_tallies"):
            if column not in have:
                self._db.execute(f"ALTER TABLE tasks ADD COLUMN {column} TEXT")  # noqa: S608 - fixed names
        if "probs" not in {row["name"] for row in self._db.execute("PRAGMA table_info(events)")}:
            self._db.execute("ALTER TABLE events ADD COLUMN probs TEXT")

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

    @contextmanager
    def _durable_tx(self) -> Iterator[sqlite3.Connection]:
        """`_tx` committed with synchronous=FULL: on disk (fsync) when the body's block ends."""
        with self._lock:
            self._db.execute("PRAGMA synchronous=FULL")
            try:
                with self._tx() as db:
                    yield db
            finally:
                self._db.execute("PRAGMA synchronous=NORMAL")

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
            for table in ("blocks", "tasks", "events", "payloads", "reports", "send_attempts", "sends"):
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
                    "role, action, confidence, model_id, encoding, vector, probs) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (ev.block_number, ev.log_index, ev.block_hash, ev.tx_hash, ev.name, ev.task_id, ev.agent, ev.role,
                     ev.action, ev.confidence, ev.model_id, ev.encoding, ev.vector,
                     None if ev.probs is None else json.dumps(list(ev.probs))))
                if ev.name == "TaskFinalized":
                    db.execute(
                        "UPDATE tasks SET chain_status = ?, final_action = ?, final_block = ?, final_tx = ?, final_tallies = ?, "
                        "decisions = ?, contributors = ?, finalized_at = ?, updated_at = ? WHERE id = ?",
                        (ChainState.FINALIZED, ev.action, ev.block_number, ev.tx_hash,
                         None if ev.tallies is None else json.dumps(list(ev.tallies)), ev.decisions, ev.contributors,
                         now, now, ev.task_id))
                elif ev.name == "TaskReclaimed":
                    db.execute("UPDATE tasks SET chain_status = ?, updated_at = ? WHERE id = ?",
                               (ChainState.RECLAIMED, now, ev.task_id))
            for number, block_hash in block_hashes.items():
                db.execute("INSERT OR REPLACE INTO blocks(number, hash) VALUES (?, ?)", (number, block_hash))
            db.execute("DELETE FROM blocks WHERE number <= ?", (to_block - keep_blocks,))
            db.execute("INSERT INTO meta(key, value) VALUES ('cursor', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                       (json.dumps(to_block),))
        return new_tasks

    def _task_submitted(self, db: sqlite3.Connection, ev: StoredEvent, now: float) -> bool:
        row = db.execute("SELECT * FROM tasks WHERE id = ?", (ev.task_id,)).fetchone()
        values = dict(
            submitted_block=ev.block_number, submitted_tx=ev.tx_hash, submitter=ev.submitter, arch=ev.arch,
            deadline=ev.deadline, quorum=ev.quorum, reward=None if ev.reward is None else str(ev.reward),
            payload_hash=ev.payload_hash, uri=ev.uri or None,
            payload_size=len(ev.payload) if ev.payload else None, updated_at=now,
        )
        if row is None:
            values.update(id=ev.task_id, status=TaskState.NEW, chain_status=ChainState.OPEN, seen_at=now)
            cols = ", ".join(values)
            db.execute(f"INSERT INTO tasks({cols}) VALUES ({', '.join('?' * len(values))})",  # noqa: S608
                       tuple(values.values()))
        elif (row["status"] != TaskState.RECHECK and row["submitted_block"] == ev.block_number
              and row["submitted_tx"] == ev.tx_hash):
            return False  # the same event delivered twice (overlapping ranges): nothing new
        else:
            # Seen again after a reorg (RECHECK), or another TaskSubmitted under an id this node
            # holds (a reorg it did not see, e.g. while it was down): a task to handle from the
            # start; the chain (not this row) decides whether an earlier publication still stands.
            self._forget_sends_of(db, row, values)
            values.update(status=TaskState.NEW, chain_status=ChainState.OPEN, seen_at=now, **_NO_OUTPUT)
            sets = ", ".join(f"{k} = ?" for k in values)
            db.execute(f"UPDATE tasks SET {sets} WHERE id = ?", (*values.values(), ev.task_id))  # noqa: S608
        if ev.payload:
            db.execute("INSERT OR REPLACE INTO payloads(task_id, raw) VALUES (?, ?)", (ev.task_id, ev.payload))
        else:
            db.execute("DELETE FROM payloads WHERE task_id = ?", (ev.task_id,))
        return True

    def _forget_sends_of(self, db: sqlite3.Connection, row: sqlite3.Row, task: dict[str, Any]) -> None:
        """Before a task row starts over: sends made for other content under the same id are dropped
        (never rebroadcast, never taken for this task's publication); sends of the same task (its
        submission re-mined by the reorg) are open again, so their receipts are looked up anew."""
        same_task = all(row[k] == task[k] for k in _TASK_IDENTITY)
        if same_task:
            db.execute("UPDATE sends SET status = ?, block_number = NULL, mined_at = NULL WHERE task_id = ? AND status = ?",
                       (SendState.SENT, row["id"], SendState.MINED))
        else:
            db.execute("UPDATE sends SET status = ?, error = ? WHERE task_id = ? AND status IN (?, ?, ?)",
                       (SendState.DROPPED, "made for an earlier task under this id (reorg)", row["id"],
                        *OPEN_SEND_STATES, SendState.MINED))
            db.execute("DELETE FROM reports WHERE task_id = ?", (row["id"],))  # signed for other content

    def inline_payload(self, task_id: int) -> bytes | None:
        """The inline payload bytes of a task, as its TaskSubmitted event carried them."""
        with self._lock:
            row = self._db.execute("SELECT raw FROM payloads WHERE task_id = ?", (task_id,)).fetchone()
        return None if row is None else bytes(row["raw"])

    def rollback(self, to_block: int, *, now: float | None = None) -> Rollback:
        """Undo everything learned from blocks above `to_block` (a reorg replaced them).

        Tasks submitted there are gone: RECHECK, chain status GONE, this node's outputs and the
        finalization dropped (their content may differ when they reappear, or never reappear);
        tasks submitted below and finalized there are open again; sends mined there are open
        again so their receipts are fetched anew. The cursor moves back to `to_block`.
        """
        now = self._clock() if now is None else now
        with self._tx() as db:
            recheck = [r["id"] for r in db.execute("SELECT id FROM tasks WHERE submitted_block > ?", (to_block,))]
            reopened = [r["id"] for r in db.execute(
                "SELECT id FROM tasks WHERE final_block > ? AND (submitted_block IS NULL OR submitted_block <= ?)",
                (to_block, to_block))]
            sends = [r["id"] for r in db.execute("SELECT id FROM sends WHERE block_number > ?", (to_block,))]
            gone = ", ".join(f"{k} = NULL" for k in _NO_OUTPUT if k != "error")
            db.execute(f"UPDATE tasks SET status = ?, chain_status = ?, updated_at = ?, error = ?, {gone} "  # noqa: S608
                       "WHERE submitted_block > ?",
                       (TaskState.RECHECK, ChainState.GONE, now, f"block reorganised away (rolled back to {to_block})",
                        to_block))
            db.execute("DELETE FROM payloads WHERE task_id IN (SELECT id FROM tasks WHERE submitted_block > ?)", (to_block,))
            db.execute("DELETE FROM reports WHERE task_id IN (SELECT id FROM tasks WHERE submitted_block > ?)", (to_block,))
            db.execute("UPDATE tasks SET chain_status = ?, final_action = NULL, final_block = NULL, final_tx = NULL, "
                       "final_tallies = NULL, decisions = NULL, contributors = NULL, finalized_at = NULL, claim_status = NULL, "
                       "claimed_wei = NULL, updated_at = ? WHERE final_block > ? "
                       "AND (submitted_block IS NULL OR submitted_block <= ?)",
                       (ChainState.OPEN, now, to_block, to_block))
            # Published tasks whose publication was in a dropped block must be looked at again.
            db.execute("UPDATE tasks SET status = ?, updated_at = ? WHERE status IN (?, ?) AND id IN "  # noqa: S608
                       "(SELECT task_id FROM sends WHERE block_number > ?)",
                       (TaskState.RECHECK, now, TaskState.PUBLISHED, TaskState.PUBLISHING, to_block))
            db.execute("UPDATE sends SET status = ?, block_number = NULL, mined_at = NULL WHERE block_number > ?",
                       (SendState.SENT, to_block))
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
        marks = ", ".join("?" * len(TODO_STATES))
        with self._lock:
            rows = self._db.execute(f"SELECT * FROM tasks WHERE status IN ({marks}) AND chain_status != ? "  # noqa: S608
                                    "ORDER BY id LIMIT ?", (*TODO_STATES, ChainState.GONE, limit)).fetchall()
        return [_task(r) for r in rows]

    def open_tasks(self, limit: int = 500) -> list[TaskRecord]:
        """Tasks still open on chain (finalization candidates), oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM tasks WHERE chain_status = ? ORDER BY id LIMIT ?",
                                    (ChainState.OPEN, limit)).fetchall()
        return [_task(r) for r in rows]

    def decided_open_tasks(self, limit: int = 500) -> list[tuple[TaskRecord, list[StoredEvent]]]:
        """Open tasks with at least one DecisionPublished event, oldest first, each with those events
        in chain order (finalization candidates): two queries, however many tasks."""
        with self._lock:
            decisions: dict[int, list[StoredEvent]] = {}
            for row in self._db.execute(
                    "SELECT e.* FROM tasks t JOIN events e ON e.task_id = t.id WHERE t.chain_status = ? "
                    "AND e.name = 'DecisionPublished' ORDER BY e.block_number, e.log_index", (ChainState.OPEN,)):
                decisions.setdefault(int(row["task_id"]), []).append(_event(row))
            ids = sorted(decisions)[:limit]
            if not ids:
                return []
            rows = self._db.execute(f"SELECT * FROM tasks WHERE id IN ({', '.join('?' * len(ids))}) ORDER BY id",  # noqa: S608
                                    ids).fetchall()
        return [(task, decisions[task.id]) for task in map(_task, rows)]

    def claimable_tasks(self, limit: int = 500) -> list[TaskRecord]:
        """Finalized tasks whose reward share is not decided yet (claim candidates), oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM tasks WHERE chain_status = ? AND claim_status IS NULL "
                                    "ORDER BY id LIMIT ?", (ChainState.FINALIZED, limit)).fetchall()
        return [_task(r) for r in rows]

    # ---- events -------------------------------------------------------------------------------

    def task_events(self, task_id: int) -> list[StoredEvent]:
        """Publications and finalization of a task, in chain order."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM events WHERE task_id = ? ORDER BY block_number, log_index",
                                    (task_id,)).fetchall()
        return [_event(r) for r in rows]


    # ---- signed reports -----------------------------------------------------------------------

    def put_report(self, task_id: int, decision: SignedDecision, *, own: bool, sent_to: str | None = None,
                   post_status: str | None = None) -> bool:
        """Hold `decision` for task `task_id`; False (nothing written) when one of its agent is held already."""
        d = decision
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO reports(task_id, agent, action, confidence, model_id, v, r, s, own, sent_to, "
                "post_status, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (task_id, d.agent, d.action, d.confidence, "0x" + d.model_id.hex(), d.v, "0x" + d.r.hex(),
                 "0x" + d.s.hex(), int(own), sent_to, post_status, self._clock()))
            return cur.rowcount == 1

    def set_report_post(self, task_id: int, agent: str, post_status: str) -> None:
        """What became of posting this node's own signed decision to the aggregator."""
        with self._lock:
            self._db.execute("UPDATE reports SET post_status = ? WHERE task_id = ? AND agent = ?",
                             (post_status, task_id, agent))

    def held_reports(self, task_id: int) -> list[HeldReport]:
        """The signed decisions held for a task, in the order they arrived."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM reports WHERE task_id = ? ORDER BY received_at, rowid",
                                    (task_id,)).fetchall()
        return [_report(r) for r in rows]

    def own_report(self, task_id: int) -> HeldReport | None:
        """This node's own signed decision for the task, if it signed one."""
        with self._lock:
            row = self._db.execute("SELECT * FROM reports WHERE task_id = ? AND own = 1", (task_id,)).fetchone()
        return None if row is None else _report(row)

    def report_tasks(self, limit: int = 500) -> list[int]:
        """Open tasks for which this node holds signed decisions (aggregation candidates), oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT r.task_id FROM reports r JOIN tasks t ON t.id = r.task_id "
                                    "WHERE t.chain_status = ? ORDER BY r.task_id LIMIT ?",
                                    (ChainState.OPEN, limit)).fetchall()
        return [int(r["task_id"]) for r in rows]


def _report(row: sqlite3.Row) -> HeldReport:
    decision = SignedDecision(row["agent"], int(row["action"]), int(row["confidence"]),
                              bytes.fromhex(row["model_id"][2:]), int(row["v"]), bytes.fromhex(row["r"][2:]),
                              bytes.fromhex(row["s"][2:]))
    return HeldReport(int(row["task_id"]), decision, bool(row["own"]), row["sent_to"], row["post_status"],
                      row["received_at"])


def _event(row: sqlite3.Row) -> StoredEvent:
    values = dict(row)
    probs = values.pop("probs", None)
    return StoredEvent(**values, probs=None if probs is None else tuple(json.loads(probs)))


def _task(row: sqlite3.Row) -> TaskRecord:
    values = dict(row)
    values["status"], values["chain_status"] = TaskState(values["status"]), ChainState(values["chain_status"])
    return TaskRecord(**values)
