"""The thin client and the wire protocol: stdlib only, the submit path."""
