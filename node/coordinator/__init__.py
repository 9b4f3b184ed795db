"""The edge coordinator: an agent node whose HTTP API also serves the unified model, micro-batched."""
