"""Sub-commands of the `chorus` CLI, one module each."""
