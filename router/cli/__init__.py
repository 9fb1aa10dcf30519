"""The `router` command: entry and parser, one module per command group."""
