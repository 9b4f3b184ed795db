"""The coordinator as a node, in-process against the session's Anvil: it registers as role 4 with
the U model id, takes only U / U-rep tasks (the agents skip them), its decision is the fused one,
and its embedding commitment lands in the task record. Plus settings, the factory, the store
migration, `chorus models register`, and the no-torch rule."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from testkit import run_until, wait_until

from agents.base import TaskInput
from agents.factory import build_agent
from models.manifest import load_manifest
from node.protocol import payload as pl
from node.runtime.api import task_detail
from node.chain.events import DecisionPublished, TaskFinalized, TaskSubmitted
from node.protocol.enums import Modality, Role
from node.chain.nodechain import NodeChain
from node.coordinator.service import CoordinatorSettings
from node.protocol.errors import ConfigError, ModelError
from node.runtime.settings import COORDINATOR_ARCHS, DEFAULT_ARCHS, NodeSettings
from node.runtime.node import NodeRuntime
from node.chain.settings import find_project_root
from node.runtime.store import Store, TaskState

MANIFEST = load_manifest()
COORDINATOR_KEY, MARKET_KEY = 6, 7


def make_node(chain: Any, role: str, key: int, agent: Any, tmp_path: Path) -> NodeRuntime:
    settings = NodeSettings(role=role, port=9200 + key, dev_key_index=key, chain_id=31337, rpc_url=chain.rpc_url,
                            finalize_grace_s=0.0)
    runtime = NodeRuntime(settings, NodeChain(chain.client(key), chain.contracts(key)),
                          Store(tmp_path / f"{role}.sqlite"), agent, deployment=chain.deployment)
    runtime.bootstrap()
    return runtime




def test_the_coordinator_decides_u_tasks_and_the_agents_skip_them(chain: Any, u_agent: Any, tmp_path: Path) -> None:
    coordinator = make_node(chain, "coordinator", COORDINATOR_KEY, u_agent, tmp_path)
    market = make_node(chain, "market", MARKET_KEY, build_agent("market", use_trained=False), tmp_path)
    board = chain.contracts(0)
    info = board.agent_info(coordinator.address)
    assert info.active and info.role == Role.COORDINATOR and bytes(info.model_id) == MANIFEST["u"].model_id
    assert board.model(MANIFEST["u"].model_id).dim == 32  # registered on the way

    deadline = chain.timestamp() + 600
    raw = pl.encode(pl.example_payload(5))
    u_task = board.submit_task(raw, 6, deadline, 1).event(TaskSubmitted).task_id
    m_task = board.submit_task(raw, 2, deadline, 1).event(TaskSubmitted).task_id
    nodes = [coordinator, market]
    run_until(nodes, lambda: board.task_info(u_task).status == 2 and board.task_info(m_task).status == 2)

    events = board.events(chain.deployment.deploy_block, "latest")
    decisions = {(e.task_id, e.role) for e in events if isinstance(e, DecisionPublished)}
    assert decisions == {(u_task, Role.COORDINATOR), (m_task, Role.MARKET)}  # nobody spent gas off its archs
    published = next(e for e in events if isinstance(e, DecisionPublished) and e.task_id == u_task)
    final = next(e for e in events if isinstance(e, TaskFinalized) and e.task_id == u_task)
    expected = u_agent.decide_batch([pl.decode(raw)])[0].output
    assert final.action == published.action == expected.decision.action
    assert published.confidence == expected.decision.confidence

    record = coordinator.store.get_task(u_task)
    assert record.status == TaskState.PUBLISHED and record.commitment == "0x" + expected.commitment.hex()
    assert record.embedding_bytes is None  # committed to, not published (arch 6 is not in embedding_archs)
    assert task_detail(coordinator.store, record).output.embedding_commitment == record.commitment
    assert coordinator.store.get_task(m_task).status == TaskState.SKIPPED
    assert market.store.get_task(u_task).status == TaskState.SKIPPED


def test_models_register_registers_every_embedding_space_once(chain: Any) -> None:
    from node.cli.models import embedding_entries, register_models

    entries = embedding_entries(MANIFEST)
    assert {"market", "sentiment", "risk", "minilm-f32", "u", "u-int8"} <= {e.name for e in entries}
    assert "m-learned" not in {e.name for e in entries}  # a head, no embedding space
    board = chain.contracts(0)
    first = register_models(board, entries)
    assert {r["status"] for r in first} == {"registered"} and all(r["gas"] > 0 for r in first)
    for e in entries:
        on_chain = board.model(e.model_id)
        assert (on_chain.dim, on_chain.dtype) == (e.dim, ("f32", "f16", "i8", "binary").index(e.dtype))
    again = register_models(board, entries)
    assert {r["status"] for r in again} == {"already registered"} and not any(r["gas"] for r in again)


def test_coordinator_settings() -> None:
    s = CoordinatorSettings()
    assert (s.role, s.port, s.archs, s.u_model_name, s.threads, s.max_batch, s.max_wait_ms) == \
        ("coordinator", 8800, list(COORDINATOR_ARCHS), "u", 1, 32, 5.0)
    assert CoordinatorSettings(int8=True).u_model_name == "u-int8"
    assert CoordinatorSettings(int8=True, model_name="u-custom").u_model_name == "u-custom"
    assert CoordinatorSettings(archs=[7]).archs == [7]  # explicit wins
    assert NodeSettings(role="coordinator").archs == list(COORDINATOR_ARCHS)  # `chorus node run --role coordinator`
    assert NodeSettings(role="market").archs == list(DEFAULT_ARCHS)
    from node.chain.settings import get_settings

    for bad in ({"role": "market"}, {"threads": 0}, {"max_batch": 0}, {"max_wait_ms": -1}):
        with pytest.raises(ConfigError):
            get_settings(CoordinatorSettings, **bad)


def test_the_factory_builds_the_coordinator(u_agent: Any) -> None:
    fake = (u_agent.text_encoder, u_agent.text_model_id, u_agent.text_model_name, None)
    agent = build_agent("coordinator", text_encoder=fake)
    ident = agent.identity
    assert (ident.role, ident.modality, ident.model_id, ident.dim, ident.model_name) == \
        (Role.COORDINATOR, Modality.MULTIMODAL, MANIFEST["u"].model_id, 32, "u")
    int8 = build_agent("coordinator", model_name="u-int8", text_encoder=fake)
    assert int8.identity.model_id == MANIFEST["u-int8"].model_id != ident.model_id
    with pytest.raises(ModelError):
        build_agent("coordinator", use_trained=False)
    with pytest.raises(ModelError, match="the coordinator needs"):
        build_agent("coordinator", model_name="u-missing", text_encoder=fake)
    with pytest.raises(ModelError, match="U model takes"):
        build_agent("coordinator", model_name="market", text_encoder=fake)


def test_an_old_state_file_gains_the_commitment_column(tmp_path: Path) -> None:
    from node.runtime.store import TASK_SCHEMA  # the schema a state file of the previous version has, minus one line

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(TASK_SCHEMA.replace("    commitment TEXT,\n", ""))
    assert "commitment" not in {row[1] for row in db.execute("PRAGMA table_info(tasks)")}
    db.execute("INSERT INTO tasks(id, status, chain_status) VALUES (1, 'new', 'open')")
    db.commit()
    db.close()
    store = Store(path)
    store.update_task(1, commitment="0x" + "ab" * 32)
    assert store.get_task(1).commitment == "0x" + "ab" * 32
    store.close()


def test_the_coordinator_runtime_never_imports_torch() -> None:
    # torch made unimportable, then the whole path: settings, factory, service, both routes.
    code = textwrap.dedent("""
        import importlib.abc, sys

        class NoTorch(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is not allowed in the coordinator runtime")

        sys.meta_path.insert(0, NoTorch())
        import node.cli.main, node.cli.coordinator
        from fastapi.testclient import TestClient
        from agents.factory import build_agent
        from node.runtime.api import create_app
        from node.coordinator.service import CoordinatorService, CoordinatorSettings, build_router
        from node.protocol.payload import encode, example_payload
        from coordhelpers import View

        agent = build_agent("coordinator")
        service = CoordinatorService(agent, CoordinatorSettings()).start()
        client = TestClient(create_app(View(), extra_routers=[build_router(service)]))
        assert client.post("/embed", json={"texts": ["hello"]}).status_code == 200
        assert client.post("/decide", content=encode(example_payload(1))).status_code == 200
        service.close()
        assert "torch" not in sys.modules
        print("ok")
    """)
    here = Path(__file__).resolve().parent
    proc = subprocess.run([sys.executable, "-c", code], check=False, cwd=find_project_root(), capture_output=True, text=True,
                          timeout=120, env={**_env(), "PYTHONPATH": str(here)})
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("CHORUS_")}


def test_commitment_is_sha256_of_the_f32_bytes(u_agent: Any) -> None:
    out = u_agent.run(TaskInput(1, 6, pl.example_payload(2)))
    assert out.commitment == hashlib.sha256(out.embedding.vector.astype("<f4").tobytes()).digest()


def test_the_cluster_starts_the_coordinator_command_and_recognises_it(tmp_path: Path) -> None:
    from node.devnet.cluster import NodeProc, node_command
    from node.devnet.procs import start_time  # what a real spawn records

    cmd = node_command("coordinator", 8705, 5, tmp_path / "devnet.json", tmp_path / "c.sqlite")
    assert cmd[cmd.index("node.cli") + 1:][:3] == ["-v", "coordinator", "run"] and "--role" not in cmd
    assert cmd[cmd.index("--port") + 1] == "8705" and cmd[cmd.index("--dev-key-index") + 1] == "5"
    # A harmless stand-in with the coordinator's command line shape.
    fake = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "coordinator", "run", "--port", "18996"])
    try:
        node = NodeProc(role="coordinator", address="0xC", url="http://127.0.0.1:18996", pid=fake.pid, port=18996,
                        key_index=5, db="/tmp/c.sqlite", log="/tmp/c.log", start_time=start_time(fake.pid))
        # A loaded machine may lag the exec.
        wait_until(node.is_ours, 5, "the stand-in to show its coordinator command line", interval=0.01)
        assert node.stop(timeout=5)
    finally:
        fake.kill()
        fake.wait()


def test_task_submit_counts_only_the_nodes_serving_the_architecture(tmp_path: Path) -> None:
    from node.cli.task import default_quorum

    devnet = tmp_path / "devnet.json"
    roles = ["market", "sentiment", "risk", "fusion", "coordinator"]
    devnet.write_text(json.dumps({"nodes": [{"role": r} for r in roles]}))
    assert (default_quorum(devnet, 2), default_quorum(devnet, 6), default_quorum(devnet, 7)) == (4, 1, 1)
    devnet.write_text(json.dumps({"nodes": [{"role": r} for r in roles[:4]]}))
    assert (default_quorum(devnet, 5), default_quorum(devnet, 6)) == (4, 1)
