"""`python -m node.cli`: the `chorus` command line."""

from node.cli.main import app

app(prog_name="chorus")
