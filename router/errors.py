"""One root error, so the CLI can turn any user-caused failure into one line and an exit code."""


class RouterError(Exception):
    """A failure the user can act on; its message is the one line the CLI prints."""

    exit_code = 2


class UsageError(RouterError):
    """Bad arguments or input lines."""


class StoreError(RouterError):
    """The history file cannot be opened, written or migrated."""


class DataError(RouterError):
    """Training data that does not parse."""


class ModelError(RouterError):
    """A model file that is missing, corrupt, foreign or for other features."""


class PolicyError(RouterError):
    """A policy file that does not validate."""


class BackendError(RouterError):
    """A machine that cannot run a job: host down, Slurm unreachable."""


class ProtocolError(RouterError):
    """A malformed request or reply on the daemon's socket."""


class DaemonUnavailable(RouterError):
    """No daemon answers on the socket."""


class JobLost(RouterError):
    """A job that started but whose end was not seen (its spawner or connection died): it is
    recorded `lost`, never as a measured run, and never run again elsewhere."""
