"""Errors that the command line turns into one clear line and a non-zero exit."""


class InputError(Exception):
    """Bad user input; the message names the file, line or key."""
