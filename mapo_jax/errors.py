"""Errors in what a user gave us, told apart from bugs in our own code; and a training whose worker failed."""


class UserInputError(ValueError):
    """A bad flag value, file or directory: launchers report it in one line and exit 2.

    Any other exception is a bug of ours and keeps its traceback.
    """


class TrainingFailed(RuntimeError):
    """An actor or the evaluator of a training raised: the message carries its traceback, so the
    run stops with the worker's error rather than hanging or dying silently (launchers exit 1)."""
