"""`chorus task submit FILE | --example` and `chorus task show ID`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from node.devnet.accounts import DEPLOYER_KEY, SUBMITTER_KEY
from node.protocol.enums import ARCH_NAMES, COORDINATOR_ARCHS, Action, Arch, Role, TaskStatus


def _contracts(deployment_file: Optional[Path], dev_key_index: Optional[int], *, signing: bool,
               default_dev_key: int = DEPLOYER_KEY) -> Any:
    """The contract facade on the deployment, signing with the configured key; on the dev chain
    without one, with dev key `default_dev_key` (the deployer's, 0, unless the caller says: task
    submissions sign with the submitter's, which no node uses; see `node.devnet.accounts`)."""
    from node.chain.client import connect
    from node.chain.contracts import ChorusContracts
    from node.chain.deploy import Deployment
    from node.chain.settings import DEV_CHAIN_ID, ChainSettings, get_settings, state_dir

    path = deployment_file or state_dir() / "devnet.json"
    if not path.is_file():
        from node.protocol.errors import ConfigError

        raise ConfigError(f"no deployment file at {path}: run `chorus devnet up` or pass --deployment")
    deployment = Deployment.load(path)
    overrides: dict[str, Any] = {}
    probe = get_settings(ChainSettings)
    if "rpc_url" not in probe.model_fields_set:
        overrides["rpc_url"] = deployment.rpc_url
    if dev_key_index is not None:
        overrides["dev_key_index"] = dev_key_index
    elif signing and not probe.has_key and deployment.chain_id == DEV_CHAIN_ID:
        overrides["dev_key_index"] = default_dev_key
    settings = get_settings(ChainSettings, **overrides)
    client = connect(settings, signing=signing)
    return ChorusContracts.from_deployment(client, deployment), deployment, path


def default_quorum(devnet_file: Path, arch: int) -> int:
    """The devnet's nodes that serve `arch`: coordinators take U / U-rep, agents the rest."""
    try:
        nodes = json.loads(devnet_file.read_text()).get("nodes") or []
    except (OSError, ValueError):
        nodes = []
    serving = [n for n in nodes if (n.get("role") == Role.COORDINATOR.label) == (arch in COORDINATOR_ARCHS)]
    return max(1, len(serving))


def register(app: typer.Typer) -> None:
    task = typer.Typer(help="Submit tasks and inspect them.", no_args_is_help=True)

    @task.command("submit")
    def submit(
        file: Optional[Path] = typer.Argument(None, help="Payload JSON (schema chorus.task/1)."),
        example: bool = typer.Option(False, "--example", help="Submit a generated example payload."),
        seed: int = typer.Option(0, "--seed", help="Seed of the example payload."),
        arch: int = typer.Option(int(Arch.M_FIXED), "--arch", min=0, max=15,
                                  help=f"Architecture id ({int(Arch.M_FIXED)} = {ARCH_NAMES[Arch.M_FIXED]})."),
        deadline_s: int = typer.Option(600, "--deadline-s", min=1, help="Seconds from now to the deadline."),
        quorum: Optional[int] = typer.Option(None, "--quorum", min=1,
                                             help="Decisions needed to finalize (default: the devnet's nodes "
                                                  "serving --arch)."),
        reward: int = typer.Option(0, "--reward", min=0, help="Reward escrow in wei."),
        uri: Optional[str] = typer.Option(None, "--uri", help="Send by URI (you serve FILE there); the CLI hashes FILE."),
        by_uri: Optional[bool] = typer.Option(None, "--by-uri/--inline",
                                              help="Force URI or calldata (default: inline up to 8 KiB)."),
        validate: bool = typer.Option(True, "--validate/--no-validate", help="Refuse an invalid payload locally."),
        deployment: Optional[Path] = typer.Option(None, "--deployment", help="Deployment JSON (default .chorus/devnet.json)."),
        dev_key_index: Optional[int] = typer.Option(
            None, "--dev-key-index", min=0,
            help=f"Submit with Anvil dev key N (default on the devnet: {SUBMITTER_KEY}, the submitter's, which no "
                 "node signs with; see `chorus devnet accounts`)."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Send TaskBoard.submitTask (payload in calldata) or submitTaskURI (payload by URI + sha256)."""
        from node.protocol import payload as pl
        from node.chain.events import TaskSubmitted
        from node.protocol.errors import ChorusError

        if (file is None) == (not example):
            typer.echo("give a payload FILE or --example (not both)", err=True)
            raise typer.Exit(2)
        try:
            raw = pl.encode(pl.example_payload(seed)) if example else Path(file).read_bytes()  # type: ignore[arg-type]
            if validate:
                pl.decode(raw)
            digest = pl.payload_hash(raw)
            contracts, dep, dep_path = _contracts(deployment, dev_key_index, signing=True,
                                                  default_dev_key=SUBMITTER_KEY)
            use_uri = by_uri if by_uri is not None else (uri is not None or len(raw) > pl.INLINE_MAX_BYTES)
            deadline = contracts.client.block_timestamp() + deadline_s
            q = quorum or default_quorum(dep_path, arch)
            if use_uri:
                if uri is None:
                    # Content-addressed, so the file can never change under its hash.
                    stored = dep_path.parent / "payloads" / f"{digest.hex()}.json"  # beside devnet.json
                    stored.parent.mkdir(parents=True, exist_ok=True)
                    stored.write_bytes(raw)
                    uri = stored.resolve().as_uri()
                result = contracts.submit_task_uri(digest, uri, arch, deadline, q, reward)
            else:
                result = contracts.submit_task(raw, arch, deadline, q, reward)
            event = result.event(TaskSubmitted)
        except (OSError, ChorusError) as exc:
            typer.echo(f"submit failed: {exc}", err=True)
            raise typer.Exit(1) from None
        out = {"task_id": event.task_id, "tx_hash": result.tx_hash, "gas_used": result.gas_used,
               "payload_hash": "0x" + digest.hex(), "bytes": len(raw), "by": "uri" if use_uri else "calldata",
               "uri": pl.redact_uri(uri) if use_uri and uri else None, "arch": arch, "quorum": q, "deadline": deadline}
        if as_json:
            typer.echo(json.dumps(out, indent=2))
        else:
            typer.echo(f"task {event.task_id} submitted in {result.tx_hash} ({len(raw)} bytes by {out['by']}, "
                       f"gas {result.gas_used}, arch {arch}, quorum {q})")

    @task.command("show")
    def show(
        task_id: int = typer.Argument(..., min=1, help="Task id."),
        deployment: Optional[Path] = typer.Option(None, "--deployment", help="Deployment JSON (default .chorus/devnet.json)."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """The task's on-chain state and publications, and each devnet node's view of it."""
        from node.protocol.errors import ChorusError

        try:
            contracts, dep, dep_path = _contracts(deployment, None, signing=False)
            report = task_report(contracts, dep_path, task_id, dep.deploy_block)
        except ChorusError as exc:
            typer.echo(f"show failed: {exc}", err=True)
            raise typer.Exit(1) from None
        if as_json:
            typer.echo(json.dumps(report, indent=2, default=str))
            return
        _print_report(report)
        if report["chain"]["status"] == "none":
            raise typer.Exit(1)

    app.add_typer(task, name="task")


def task_report(contracts: Any, devnet_file: Path, task_id: int, from_block: int = 0) -> dict[str, Any]:
    """On-chain state + publications of a task, and GET /tasks/{id} from every recorded node."""
    import httpx

    from node.chain.events import DecisionPublished, EmbeddingPublished, TaskFinalized, TaskSubmitted

    info = contracts.task_info(task_id)
    tallies = contracts.tallies(task_id)
    chain: dict[str, Any] = {
        "status": TaskStatus(info.status).label if info.status in set(TaskStatus) else str(info.status),
        "submitter": info.submitter, "arch": info.arch, "deadline": info.deadline, "quorum": info.quorum,
        "decisions": info.decisions, "contributors": info.contributors,
        "action": Action(info.action).label if info.status == TaskStatus.FINALIZED else None, "reward": info.reward,
        "payload_hash": "0x" + bytes(info.payload_hash).hex(),
        "tallies": {a.label: getattr(tallies, a.label) for a in Action},
        "publications": [],
    }
    for ev in contracts.events(from_block, "latest", names=("TaskSubmitted", "DecisionPublished", "EmbeddingPublished",
                                                  "TaskFinalized")):
        if getattr(ev, "task_id", None) != task_id:
            continue
        if isinstance(ev, DecisionPublished):
            chain["publications"].append({"kind": "decision", "agent": ev.agent, "role": Role(ev.role).label,
                                          "action": Action(ev.action).label, "confidence": ev.confidence,
                                          "tx": ev.tx_hash})
        elif isinstance(ev, EmbeddingPublished):
            chain["publications"].append({"kind": "embedding", "agent": ev.agent, "bytes": len(ev.vector),
                                          "model_id": "0x" + bytes(ev.model_id).hex(), "tx": ev.tx_hash})
        elif isinstance(ev, TaskSubmitted):
            chain["submitted_tx"] = ev.tx_hash
        elif isinstance(ev, TaskFinalized):
            chain["finalized_tx"] = ev.tx_hash
    nodes = []
    try:
        recorded = json.loads(devnet_file.read_text()).get("nodes") or []
    except (OSError, ValueError):
        recorded = []
    for node in recorded:
        view: dict[str, Any] = {"role": node.get("role"), "address": node.get("address"), "url": node.get("url")}
        try:
            response = httpx.get(f"{node['url']}/tasks/{task_id}", timeout=2.0)
            body = response.json()
            view.update(http=response.status_code, node_status=body.get("node_status"),
                        chain_status=body.get("chain_status"), decisions_on_chain=body.get("decisions_on_chain"),
                        action=body.get("action"), error=body.get("error") or body.get("message"),
                        gas_used=body.get("gas_used"),
                        txs=[t.get("tx_hash") for t in body.get("transactions", [])])
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            view.update(http=None, error=f"unreachable: {type(exc).__name__}")
        nodes.append(view)
    return {"task_id": task_id, "chain": chain, "nodes": nodes}


def _print_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    c = report["chain"]
    console.print(f"[bold]task {report['task_id']}[/bold]: {c['status']}"
                  + (f" -> [bold]{c['action']}[/bold]" if c.get("action") else "")
                  + f"  arch {c['arch']}  quorum {c['quorum']}  decisions {c['decisions']}  "
                    f"tallies sell/hold/buy {c['tallies']['sell']}/{c['tallies']['hold']}/{c['tallies']['buy']}")
    pubs = Table("kind", "agent", "role", "output", "tx", title="on chain")
    for p in c["publications"]:
        output = f"{p['action']} ({p['confidence']})" if p["kind"] == "decision" else f"{p['bytes']} bytes"
        pubs.add_row(p["kind"], p["agent"], p.get("role", ""), output, p["tx"])
    console.print(pubs)
    if report["nodes"]:
        nodes = Table("role", "url", "http", "node status", "chain status", "decisions", "action", "gas", "error",
                      title="nodes")
        for n in report["nodes"]:
            nodes.add_row(str(n.get("role")), str(n.get("url")), str(n.get("http")), str(n.get("node_status")),
                          str(n.get("chain_status")), str(n.get("decisions_on_chain")), str(n.get("action")),
                          str(n.get("gas_used")), str(n.get("error") or ""))
        console.print(nodes)
