"""Exceptions the library raises; front ends turn them into one-line messages."""

import signal

# A command's exit code per signal it stops for: 128 + its number. SIGHUP (the terminal closed) is not on Windows.
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143,
               **({signal.SIGHUP: 129} if hasattr(signal, "SIGHUP") else {})}


class ImpastoError(Exception):
    """Base class of every error impasto reports to a user (bad input, bad setting)."""


class ImageError(ImpastoError):
    """An image file that is missing, unreadable, not an image, truncated, too large or unwritable."""


class ConfigError(ImpastoError, ValueError):
    """A setting that is out of range, unknown or inconsistent with another (a ValueError too, as Python's
    own bad arguments are)."""


class WeightsError(ImpastoError):
    """A VGG-19 weights file that is missing or does not hold what was expected."""


# What the command line says of a signal that stops it before the painting starts (while torch loads, say),
# and of a second one, which quits at once.
NOTHING_WRITTEN = "before the painting started; nothing was written"
BEFORE_PAINTING = f"interrupted {NOTHING_WRITTEN}"
AGAIN = "interrupted again: quit at once, without saving the picture"


class Interrupted(KeyboardInterrupt):
    """A command cut short by a signal, with the exit code that says which (128 + its number). Unlike a
    plain KeyboardInterrupt, which ends a run keeping its best image on the exception's ``result``, it
    goes straight through: the command line's second Ctrl-C aborts at once."""

    def __init__(self, exit_code: int = 130, message: str = "", after_writing: bool = False) -> None:
        super().__init__(*([message] if message else []))
        # ``after_writing``: it came while a picture was written, and waited until it was whole
        self.exit_code, self.after_writing = exit_code, after_writing
