"""The error every command turns into one line and exit status 2. Its own module so that the
trainer and the daemon's commands can both raise it without importing each other's CLI."""


class DigitdError(Exception):
    """Any failure the user can act on: printed as one line, exit status 2."""
