"""One root error, so the CLI can turn any user-caused failure into one line and an exit code."""


class RouterError(Exception):
    """A failure the user can act on; its message is the one line the CLI prints."""

    exit_code = 125   # router itself failed, as env, nice and timeout say it: rare for a job


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

    job_exit = 127   # the exit recorded for a job that never started, as a shell's


class NotExecutable(BackendError):
    """The program exists but may not be run."""

    job_exit = 126


class ProtocolError(RouterError):
    """A malformed request or reply on the daemon's socket."""


class DaemonUnavailable(RouterError):
    """No daemon answers on the socket."""


class JobLost(RouterError):
    """A job that started but whose end was not seen (its spawner or connection died): it is
    recorded `lost`, never as a measured run, and never run again elsewhere."""
