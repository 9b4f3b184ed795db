"""Who signs what on a `chorus devnet up` chain: each funded Anvil dev key has one user.

Anvil funds the first `DEV_ACCOUNTS` keys of its public mnemonic (`node.chain.settings.dev_account`;
chain id 31337 only). The devnet gives them out like this, so that no two processes ever share a
key (two senders on one key race for its nonces: one of them gets "nonce too low"):

| dev key | who signs with it |
| --- | --- |
| 0 (`DEPLOYER_KEY`) | `chorus devnet up` deploys the contracts with it and it owns the TaskBoard; `chorus models register` sends with it |
| 1 .. 18 (`FIRST_NODE_KEY` ..) | the node processes of `chorus devnet up --agents N [--coordinator]`, one each, in start order (at most `MAX_NODES`) |
| 19 (`SUBMITTER_KEY`) | you: `chorus task submit` and the README's `cast send` example; no process the devnet starts uses it |

`chorus devnet accounts` prints this table with the addresses (and the submitter's private key,
public knowledge like every dev key). A bench (`chorus bench`) starts an Anvil of its own and hands
out its keys there (`node.experiment.keys`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.protocol.errors import ConfigError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

DEV_ACCOUNTS = 20
"""Dev keys the devnet's Anvil funds (`--accounts`): indices 0 .. DEV_ACCOUNTS - 1."""
DEPLOYER_KEY = 0
"""Deploys the contracts and owns the TaskBoard."""
FIRST_NODE_KEY = 1
"""The first node process's key; the i-th node (from 0) signs with FIRST_NODE_KEY + i."""
SUBMITTER_KEY = DEV_ACCOUNTS - 1
"""The key left for the person at the keyboard: `chorus task submit`, `cast send`, scripts."""
MAX_NODES = SUBMITTER_KEY - FIRST_NODE_KEY
"""Node processes one devnet can start (agents and coordinator together) without reaching the
submitter's key."""


def node_key(i: int) -> int:
    """The dev key of the `i`-th node process (from 0); ConfigError past `MAX_NODES`."""
    if not 0 <= i < MAX_NODES:
        raise ConfigError(f"a devnet runs at most {MAX_NODES} node processes (agents and coordinator together): "
                          f"dev keys {FIRST_NODE_KEY}..{FIRST_NODE_KEY + MAX_NODES - 1} go to the nodes, "
                          f"{DEPLOYER_KEY} deploys and {SUBMITTER_KEY} is the submitter's")
    return FIRST_NODE_KEY + i


def node_keys(n: int) -> list[int]:
    """The dev keys of `n` node processes, in start order; ConfigError past `MAX_NODES`."""
    if n > MAX_NODES:
        node_key(n - 1)  # raises, with the explanation
    return [node_key(i) for i in range(n)]


def submitter() -> LocalAccount:
    """The submitter's account (dev key `SUBMITTER_KEY`)."""
    from node.chain.settings import dev_account

    return dev_account(SUBMITTER_KEY)

