"""The dispatcher daemon: its life cycle, requests, queues per machine and history writes."""
