"""`chorus bench`: the experiment, end to end through the chain.

Every architecture of DESIGN.md runs on the same task stream: tasks are submitted by contract
call, taken by real node processes (agents and U coordinators), published and finalized on chain;
quality is computed from the `TaskFinalized` events, joined off chain with the generator's labels.

Modules, in the order a run uses them:
- `config`: profiles (tiny, quick, full) and the run's options;
- `modelsets`: per-seed (and per sweep point) trained and exported models, cached on disk;
- `chain`: the bench's own devnet (or any dev RPC), deployment, weights, submission, receipts;
- `nodes` + `agentproc` + `coordinator`: node processes started with a model set, a role and a mode;
- `tasks`: the task streams, their labels and forward returns;
- `runner` + `sweeps`: the units of work (seed x architecture x sweep point), resumable;
- `metrics`: accuracy, macro-F1, intervals, PnL/Sharpe, latency percentiles, robustness;
- `report` + `plots`: results.json, report.md, PNGs and the summary table.
"""
