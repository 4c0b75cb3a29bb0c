"""Adaptive average pooling that exports exactly at any input size (notebook 05).

PSPNet's Pyramid Pooling Module pools the stride-8 feature map to 1x1, 2x2, 3x3 and 6x6 bins
with ``nn.AdaptiveAvgPool2d``. The old TorchScript exporter handles that only when the feature
map divides by every bin count, and torch's dynamo exporter with dynamic height/width bakes the
bins of the traced size into the graph, which is silently wrong at other sizes.
:class:`ExactAdaptiveAvgPool2d` computes the pooling from the runtime shape with two small
averaging matrices, so an exported graph is exact at every size by construction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["ExactAdaptiveAvgPool2d", "adaptive_pool_matrix", "exact_adaptive_pooling"]


def adaptive_pool_matrix(n: int | torch.SymInt, bins: int, dtype: torch.dtype) -> torch.Tensor:
    """Averaging matrix ``P`` of shape (bins, n) such that ``P @ v`` adaptively pools ``v``.

    Bin ``i`` covers ``[floor(i*n/bins), ceil((i+1)*n/bins))``, PyTorch's definition. Built with
    ``torch.arange`` on the (possibly symbolic) size, so an exported graph recomputes it for
    every input shape.
    """
    i = torch.arange(bins).unsqueeze(1)
    j = torch.arange(n).unsqueeze(0)
    start = torch.div(i * n, bins, rounding_mode="floor")
    end = torch.div((i + 1) * n + bins - 1, bins, rounding_mode="floor")
    inside = ((j >= start) & (j < end)).to(dtype)
    return inside / inside.sum(dim=-1, keepdim=True)


class ExactAdaptiveAvgPool2d(nn.Module):
    """Drop-in replacement for ``nn.AdaptiveAvgPool2d`` that exports exactly at any size.

    ``y = P_h @ x @ P_w^T`` with the separable averaging matrices of
    :func:`adaptive_pool_matrix`; equal to ``F.adaptive_avg_pool2d`` up to float rounding.
    """

    def __init__(self, output_size: int | tuple[int | None, int | None]) -> None:
        super().__init__()
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        self.output_size = tuple(output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2], x.shape[-1]
        bins_h = height if self.output_size[0] is None else self.output_size[0]
        bins_w = width if self.output_size[1] is None else self.output_size[1]
        pool_h = adaptive_pool_matrix(height, bins_h, x.dtype).to(x.device)
        pool_w = adaptive_pool_matrix(width, bins_w, x.dtype).to(x.device)
        return pool_h @ x @ pool_w.transpose(0, 1)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


@contextlib.contextmanager
def exact_adaptive_pooling(model: nn.Module) -> Iterator[nn.Module]:
    """Temporarily swap every ``nn.AdaptiveAvgPool2d`` in ``model`` for the exact version.

    The original modules are put back when the block ends, even on error, so the caller's
    model is never changed permanently.
    """
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    try:
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.AdaptiveAvgPool2d):
                    setattr(parent, name, ExactAdaptiveAvgPool2d(child.output_size))
                    swapped.append((parent, name, child))
        yield model
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)
