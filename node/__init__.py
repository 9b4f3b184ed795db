"""Chorus agent node runtime: settings, chain client, event watcher, HTTP API, CLI."""

__version__ = "0.1.0"
