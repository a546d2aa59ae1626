"""The error every backup step raises; the commands show its message as one line."""


class BackupError(RuntimeError):
    """A backup or restore cannot go on; the message says what happened and what to do."""
