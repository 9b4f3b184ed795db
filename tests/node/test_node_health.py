"""Honest health over a fake chain that falls silent: `/health` turns degraded within two poll
intervals of the RPC going silent (while the loop is still blocked in the request), and the
"reachable again" message reports the whole outage, not the part after a request gave up."""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path

from nodefakes import FakeNodeChain
from testkit import wait_until

from agents.factory import build_agent
from node.chain.deploy import Deployment
from node.runtime.node import NodeRuntime
from node.runtime.settings import NodeSettings
from node.runtime.store import Store

POLL_S = 0.25


def start(tmp_path: Path) -> tuple[NodeRuntime, FakeNodeChain, threading.Event, threading.Thread]:
    chain = FakeNodeChain()
    chain.source.add_block()
    settings = NodeSettings(role="market", port=9302, chain_id=31337, rpc_url="http://127.0.0.1:1",
                            poll_interval_s=POLL_S, backoff_max_s=0.5, rpc_silent_after_s=POLL_S)
    deployment = Deployment(chain_id=31337, rpc_url=settings.rpc_url, contracts={"TaskBoard": chain.board},
                            deploy_block=1)
    node = NodeRuntime(settings, chain, Store(tmp_path / "h.sqlite"), build_agent("market", use_trained=False),
                       deployment=deployment)
    node.bootstrap()
    stop = threading.Event()
    loop = threading.Thread(target=node.run, args=(stop,), daemon=True)
    loop.start()
    wait_until(lambda: node.health()["status"] == "ok", 5, "the node to be healthy")
    return node, chain, stop, loop


def test_a_silent_rpc_turns_the_node_degraded_within_two_poll_intervals(tmp_path: Path, caplog) -> None:
    node, chain, stop, loop = start(tmp_path)
    chain.source.silent_timeout_s = 0.6  # each read gives up after 0.6 s: the loop sees failures too
    with caplog.at_level(logging.WARNING, logger="node.runtime.node"):
        chain.source.go_silent()
        silent_at = time.monotonic()
        # A generous deadline (the figure is printed, not timed here): before the fix it took the
        # read's whole timeout and retries, 10 s and more.
        wait_until(lambda: node.health()["status"] == "degraded", 5,
                   "the node to report its silent RPC")
        to_degraded = time.monotonic() - silent_at
        health = node.health()
        assert health["chain_reachable"] is False and health["rpc_down_since"] is not None
        assert "no answer" in health["last_error"] or "RpcUnavailable" in health["last_error"]
        time.sleep(2.0)  # longer than a read's timeout: rounds fail meanwhile
        assert node.health()["status"] == "degraded"
        chain.source.answer_again()
        silent_for = time.monotonic() - silent_at
        wait_until(lambda: node.health()["status"] == "ok", 5, "the node to be healthy again")
        stop.set()
        loop.join(timeout=5)
    print(f"silent RPC -> degraded in {to_degraded:.3f}s (poll interval {POLL_S}s)")
    (back,) = [r.getMessage() for r in caplog.records if "reachable again" in r.getMessage()]
    reported = float(re.search(r"after ([0-9.]+)s", back).group(1))
    # The first unanswered read began about one poll interval after the RPC fell silent; the part
    # after a read gave up would be 0.6 s shorter still. Margins for a loaded machine.
    assert silent_for - POLL_S - 0.3 <= reported <= silent_for + 1.0, (reported, silent_for)


def test_an_outage_shorter_than_a_requests_timeout_is_reported_too(tmp_path: Path, caplog) -> None:
    node, chain, stop, loop = start(tmp_path)  # reads wait 10 s before they give up: no round fails
    with caplog.at_level(logging.WARNING, logger="node.runtime.node"):
        chain.source.go_silent()
        wait_until(lambda: node.health()["status"] == "degraded", 5, "the node to report its silent RPC")
        time.sleep(1.0)
        chain.source.answer_again()
        wait_until(lambda: node.health()["status"] == "ok", 5, "the node to be healthy again")
        stop.set()
        loop.join(timeout=5)
    (back,) = [r.getMessage() for r in caplog.records if "reachable again" in r.getMessage()]
    assert float(re.search(r"after ([0-9.]+)s", back).group(1)) >= 1.0
