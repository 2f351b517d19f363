"""Errors that the command line turns into one clear line and a non-zero exit."""


class InputError(Exception):
    """Bad user input; the message names the file, line or key."""


class StorageError(InputError, OSError):
    """A path that cannot be written: a full disk, a quota, no permission, a read-only file system. The message
    names the path. Also an ``OSError``, so code that tolerates a failed write still does."""


class ServiceError(RuntimeError):
    """A service a run depends on (a reward model served over HTTP) stopped answering within its deadline; the
    message names the URL."""
