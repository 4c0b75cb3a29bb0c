"""VOC's class names and colours, read from MMSegmentation (``PascalVOCDataset.METAINFO``).

The bottom layer under :mod:`helpers.palette` (the colour table) and :mod:`helpers.voc` (which
offers them as ``helpers.voc.CLASSES`` and ``helpers.voc.PALETTE``): it imports no other helpers
module, and mmseg only on the first call, so importing it stays light (no torch).
"""

from __future__ import annotations

import functools

__all__ = ["voc_metainfo"]


@functools.cache
def voc_metainfo() -> tuple[tuple[str, ...], list[list[int]]]:
    """(the 21 class names, their 21 RGB colours), as mmseg's ``PascalVOCDataset`` defines them."""
    from mmseg.datasets import PascalVOCDataset

    meta = PascalVOCDataset.METAINFO
    return tuple(meta["classes"]), [list(map(int, c)) for c in meta["palette"]]
