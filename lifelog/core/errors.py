"""Errors that reach the user as one line and an exit code, never a traceback."""


class LifelogError(Exception):
    """Base of the errors the CLI turns into `lifelog: error: <message>`."""

    exit_code = 2


class UsageError(LifelogError):
    """Bad input: a setting, a config file, a path or an option."""

    exit_code = 2


class AlreadyRunning(LifelogError):
    """Another live process holds the database for the same role."""

    exit_code = 1

    def __init__(self, message: str, holder: str = "unknown"):
        super().__init__(message)
        # The holder's PID as its lock file says it, for callers that word their own refusal.
        self.holder = holder
