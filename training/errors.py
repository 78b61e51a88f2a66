"""The errors that stop a training run; each message is the one line the operator sees."""

import errno


class TrainingError(Exception):
    """A run that must stop: the message is the one line the operator sees."""


class FetchError(TrainingError):
    """Alpaca could not be reached or answered with something unusable."""


class QualityError(TrainingError):
    """The backtest cannot vouch for the model: the message says which guard failed."""


class DataError(TrainingError):
    """The bars are wrong: the message names the day and the values, and the model is not replaced."""


class ConfigError(TrainingError):
    """An operator's mistake in a setting or a file the run reads (assets.toml, a snapshot, MODEL_DIR,
    the previous model's metadata): train.py exits 2 on it, as on a bad argument."""


def short(error: BaseException) -> str:
    """One line describing an exception, whatever its message looks like."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def os_problem(error: OSError) -> str:
    """An OSError in words an operator can act on: "No space left on device (ENOSPC)"."""
    name = errno.errorcode.get(error.errno or 0)
    text = error.strerror or short(error)
    return f"{text} ({name})" if name else text
