"""Running and measuring processes: the one home of a run's usage, its spawning and its end."""
