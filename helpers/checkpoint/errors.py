"""The course's checkpoint errors, and the guard that turns them into a command-line error."""

from __future__ import annotations

import functools
import pickle
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["CheckpointError", "CheckpointNotFoundError", "UnsafeCheckpointError", "cli_guard"]


class CheckpointError(ValueError):
    """A checkpoint cannot be used; the one-line message names the file and the fix."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No checkpoint file at the given path."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """A checkpoint would run code (or build objects we do not allow) when loaded."""


def _one_line(err: BaseException, limit: int = 240) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def cli_guard(main: Callable[..., int | None]) -> Callable[..., int | None]:
    """Decorate a command line's ``main``: a :class:`CheckpointError` becomes one line
    ``error: <message>`` on stderr and exit status 2, with no traceback."""

    @functools.wraps(main)
    def guarded(*args: Any, **kwargs: Any) -> int | None:
        try:
            return main(*args, **kwargs)
        except CheckpointError as err:
            print(f"error: {_one_line(err, limit=2000)}", file=sys.stderr)
            return 2

    return guarded
