"""The user-input error of the run commands (the others: `ConfigError`, `RunDirError`,
`CheckpointError`, each next to what it checks)."""


class UsageError(ValueError):
    """Bad command-line input; `str(err)` is the one-line message."""
