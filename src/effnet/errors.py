"""The one exception type for errors a user can cause."""


class EffnetError(Exception):
    """Bad input from a user: the message names the thing (model, stage, file, tensor).

    The CLI prints it on one line and exits with status 2.
    """
