"""The chain layer: artifacts, the chain client (interface and web3 backend), deployment and the
typed facade over Chorus' contracts. It knows nothing of agents."""
