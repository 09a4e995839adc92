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
