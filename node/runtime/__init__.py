"""One agent node process: settings, store, watcher, outbox, metrics, HTTP API and the loop."""
