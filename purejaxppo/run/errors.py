"""The user-input errors of the run commands: `UsageError` (flags) and `ConfigError`
(config files); `RunDirError` and `CheckpointError` sit next to what they check."""


class UsageError(ValueError):
    """Bad command-line input; `str(err)` is the one-line message."""


class ConfigError(ValueError):
    """A bad configuration; `str(err)` is one line naming the file and the key."""
