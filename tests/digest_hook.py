"""A test-only mmengine hook: each rank's parameter digest, to prove replicas stay identical.

tests/test_distributed.py trains two torchrun processes with this hook (the config imports this
module through ``custom_imports``, with ``tests/`` on ``PYTHONPATH``). It registers in mmengine's
``HOOKS`` registry only where it is imported: the course's package does not carry it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

__all__ = ["ParamDigestHook", "param_digest"]


def param_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """Return a SHA-256 over names, dtypes, shapes and exact values of ``tensors``."""
    sha = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        sha.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        sha.update(tensor.view(torch.uint8).numpy().tobytes())
    return sha.hexdigest()


@HOOKS.register_module()
class ParamDigestHook(Hook):
    """Write each rank's parameter digest, before and after training, to ``out_dir``.

    A check for replica consistency, used only when a config asks for it:
    ``custom_hooks=[dict(type="ParamDigestHook", out_dir=DIR)]`` (and
    ``custom_imports=dict(imports=["digest_hook"])`` with ``tests/`` on ``PYTHONPATH``).
    Each rank writes
    ``DIR/rank{R}.json`` with ``world_size``, ``names`` (parameter names), ``before`` and
    ``after`` digests (:func:`param_digest`); data parallelism is correct when every rank's
    ``after`` is the same and equals the digest of the saved checkpoint's parameters.
    """

    priority = "VERY_LOW"

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self._before: str | None = None

    @staticmethod
    def _params(runner: Any) -> dict[str, torch.Tensor]:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        return dict(model.named_parameters())

    def before_train(self, runner: Any) -> None:
        self._before = param_digest(self._params(runner))

    def after_train(self, runner: Any) -> None:
        params = self._params(runner)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        record = {
            "rank": runner.rank,
            "world_size": runner.world_size,
            "names": sorted(params),
            "before": self._before,
            "after": param_digest(params),
        }
        path = self.out_dir / f"rank{runner.rank}.json"
        path.write_text(json.dumps(record))
