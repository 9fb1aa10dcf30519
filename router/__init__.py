"""router: send each job to the machine it belongs on, learned from measured runs."""

__version__ = "0.1.0"
