"""`chorus bench`: the experiment, end to end through the chain.

Every architecture (`node.protocol.enums.Arch`) runs on the same task stream: tasks are submitted
by contract call, taken by real node processes (agents and U coordinators), published and
finalized on chain; quality is computed from the `TaskFinalized` events, joined off chain with the
generator's labels.

Modules, in the order a run uses them:
- `bench`: one invocation end to end (run folder, signing mode, run, report); `console`: its
  progress bars and summary tables;
- `config`: profiles (tiny, quick, full) and the run's options;
- `plan`: the sessions, their node processes and units; `checkpoint`: the finished units on disk;
- `runner`: the plan executed session by session, resumable;
- `modelsets`: per-seed (and per sweep point) trained and exported models, cached on disk;
- `chain` + `keys`: the bench's own devnet (or any RPC), deployment, weights, submission, receipts,
  and who signs;
- `nodes` + `agentproc`: node processes started with a model set, a role and a mode;
- `tasks` + `jobs`: the task streams, their labels and forward returns, and one unit's tasks on chain;
- `report`: `results` (results.json), `render` (report.md), `plots` (PNGs), `metrics`, `environment`.
"""
