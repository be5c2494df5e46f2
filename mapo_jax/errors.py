"""Errors in what a user gave us, told apart from bugs in our own code."""


class UserInputError(ValueError):
    """A bad flag value, file or directory: launchers report it in one line and exit 2.

    Any other exception is a bug of ours and keeps its traceback.
    """
