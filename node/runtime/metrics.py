"""Prometheus metrics of one node, on a registry of its own (never the global one), so tests and
several nodes in one process do not collide. `GET /metrics` renders `NodeMetrics.render()`."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Submit-to-publication latency on a devnet is tens of ms to seconds; on a real chain, blocks.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class NodeMetrics:
    """The counters, gauges and histograms a node exports."""

    def __init__(self, role: str = "", registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.tasks_seen = Counter("chorus_tasks_seen", "Tasks the watcher saw submitted.", registry=r)
        self.tasks_processed = Counter("chorus_tasks_processed", "Tasks this node published its output for.",
                                       registry=r)
        self.tasks_failed = Counter("chorus_tasks_failed", "Tasks this node could not process, by reason.",
                                    ["reason"], registry=r)
        self.tasks_finalized = Counter("chorus_tasks_finalized", "TaskFinalized events seen.", registry=r)
        self.finalize_sent = Counter("chorus_finalize_sent", "finalize() transactions this node sent.", registry=r)
        self.publish_latency = Histogram(
            "chorus_publish_latency_seconds",
            "From the node seeing a task to its publication being mined.",
            buckets=LATENCY_BUCKETS, registry=r)
        self.transactions = Counter("chorus_transactions", "Transactions mined, by kind.", ["kind"], registry=r)
        self.gas_used = Counter("chorus_gas_used", "Gas used by this node's mined transactions, by kind.",
                                ["kind"], registry=r)
        self.rpc_errors = Counter("chorus_rpc_errors", "RPC failures (unreachable, timeouts, bad answers).",
                                  ["operation"], registry=r)
        self.reorgs = Counter("chorus_reorgs", "Reorgs detected (stored block hash no longer canonical).",
                              registry=r)
        self.fee_bumps = Counter("chorus_fee_bumps", "Replacement transactions sent with higher fees.", registry=r)
        self.last_block = Gauge("chorus_last_processed_block", "The watcher's cursor.", registry=r)
        self.pending_sends = Gauge("chorus_pending_transactions", "Sent transactions without a receipt yet.",
                                   registry=r)
        self.info = Gauge("chorus_node_info", "Constant 1, labelled with the node's role.", ["role"], registry=r)
        self.info.labels(role=role or "unknown").set(1)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
