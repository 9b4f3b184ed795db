"""A local dev chain and its node processes: Anvil, the node cluster, process handling."""
