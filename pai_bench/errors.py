"""Exceptions raised by the library.

The library raises; only the CLI turns an error into a message and an exit code (docs/architecture.md).
"""


class PaiBenchError(Exception):
    """Base class of every error the suite raises on purpose."""


class ConfigError(PaiBenchError, ValueError):
    """A bad value in a configuration or on the command line (CLI exit code 2)."""


class DataNotFoundError(PaiBenchError, FileNotFoundError):
    """A data set is missing: the message says where it looked and how to fix it."""


class DataMismatchError(ConfigError):
    """The files under a data root are not the data set its name stands for (their fingerprint
    is not one the name is known by: docs/identity.md); CLI exit code 2."""


class ScoreError(PaiBenchError, ArithmeticError):
    """A scorer produced scores that cannot be turned into a mask (NaN, inf, wrong shape)."""


class RunError(PaiBenchError, RuntimeError):
    """A run cannot go on for a reason outside its own configuration (e.g. the previous level of
    an iterative baseline diverged); a sweep records it as failed and goes on."""


class StorageError(PaiBenchError, OSError):
    """A file or folder cannot be written: read-only, a file where a folder belongs, a name too
    long, no space left (CLI exit code 2). An OSError, so callers that tolerate a failed write
    (the data cache) still do."""


class Diverged(PaiBenchError, ArithmeticError):
    """The training loss, the weights or the final evaluation became NaN or infinite. Not a
    failure of the suite: the run is stored as diverged and a sweep goes on."""

    def __init__(self, step: int, loss: float, where: str = "the training loss"):
        super().__init__(f"training diverged at step {step}: {where} is {loss}")
        self.step, self.loss = step, loss
