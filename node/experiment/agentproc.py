"""`python -m node.experiment.agentproc [chorus args]`: a `chorus node run` process for the bench.

It is the standard node (`node.cli` -> `node.runner.run_node`, unchanged) with two things the
experiment needs and the node's settings do not offer yet:
- the agent's models come from the manifest named by `CHORUS_BENCH_MANIFEST` (each seed and sweep
  point of the experiment has its own trained models, hence its own model ids);
- `CHORUS_BENCH_MODE` picks what runs behind the node's role: `honest` (default), `byzantine`,
  `wrong-model` (embeddings under an unregistered model id), `coordinator` (the U model, role
  coordinator) or `coordinator-byzantine`. `CHORUS_BENCH_RULES` ("risk_veto,lead") makes a fusion
  node decide architecture 1 by M-rules.

Everything else (registration, watcher, outbox, finalization, API) is the node runtime's own. The
agent factory is wrapped here, in this process only, before the CLI runs.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)

MODES = ("honest", "byzantine", "wrong-model", "coordinator", "coordinator-byzantine")


def install(env: dict[str, str] | None = None) -> None:
    """Wrap `agents.factory.build_agent` according to the CHORUS_BENCH_* variables."""
    import agents.factory as factory

    env = dict(os.environ if env is None else env)
    mode = env.get("CHORUS_BENCH_MODE", "honest")
    if mode not in MODES:
        raise SystemExit(f"CHORUS_BENCH_MODE must be one of {', '.join(MODES)}, got {mode!r}")
    manifest = Path(env["CHORUS_BENCH_MANIFEST"]) if env.get("CHORUS_BENCH_MANIFEST") else None
    rules = env.get("CHORUS_BENCH_RULES")
    original = factory.build_agent

    def build_agent(role: str, *, model_name: str | None = None, use_trained: bool = True,
                    manifest_path: Path | None = None, text_encoder=None):
        from node.experiment.coordinator import ByzantineAgent, RulesFusion, UCoordinatorAgent, WrongModelAgent

        path = manifest_path or manifest
        if mode.startswith("coordinator"):
            if path is None:
                raise SystemExit("a coordinator needs CHORUS_BENCH_MANIFEST (the manifest holding `u`)")
            agent = UCoordinatorAgent(path, text_encoder[0] if text_encoder else None)
        else:
            agent = original(role, model_name=model_name, use_trained=use_trained, manifest_path=path,
                             text_encoder=text_encoder)
        if role == "fusion" and rules and not mode.startswith("coordinator"):
            risk_veto, lead = (float(x) for x in rules.split(","))
            agent = RulesFusion(agent, risk_veto, lead)
        if mode.endswith("byzantine"):
            agent = ByzantineAgent(agent)
        elif mode == "wrong-model":
            agent = WrongModelAgent(agent)
        log.info("bench agent (%s mode, manifest %s): %s", mode, path, agent.describe())
        return agent

    factory.build_agent = build_agent


def main() -> None:
    install()
    from node.cli import app

    app(prog_name="chorus", args=sys.argv[1:])


if __name__ == "__main__":
    main()
