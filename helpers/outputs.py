"""Writing results without destroying work (notebooks 04 and 05, and the command lines).

- :func:`refuse_existing`: a command line never replaces a file it did not write in this run
  unless it was given ``--force``.
- :func:`atomic_path`: a result is written to a temporary file beside its destination and moved
  into place only when complete; on any failure, Ctrl-C included, the temporary file is deleted
  and the destination keeps what it held before.

Standard library only: :mod:`helpers.deploy` uses it on machines without torch.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["atomic_path", "refuse_existing"]


def refuse_existing(paths: Iterable[str | os.PathLike], force: bool = False) -> None:
    """Raise ``FileExistsError`` naming the first of ``paths`` that exists, unless ``force``."""
    if force:
        return
    existing = [Path(p) for p in paths if Path(p).exists()]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise FileExistsError(
            f"{existing[0]} already exists{more}: refusing to replace it. Pass --force "
            "(overwrite=True in Python) to replace it, or choose another output.")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so writers that pick the format from
    it still work); move it onto ``path`` when the block succeeds, delete it when it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a fresh name, created by the writer itself (so it gets the usual permissions)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}.partial{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:  # KeyboardInterrupt and SystemExit too: never leave it behind
        tmp.unlink(missing_ok=True)
        raise
