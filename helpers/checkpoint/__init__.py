"""Load checkpoints safely: the one loader every checkpoint in the course goes through.

Introduced in notebook 03. A ``.pth`` file is a pickle, and unpickling can call any Python
function, so a checkpoint from the internet can run code on your machine. torch >= 2.6 loads
with ``weights_only=True`` by default: only tensors and plain containers, plus the globals one
explicitly allows. mmengine 0.10.7 calls ``torch.load`` without that argument (and its model-zoo
loaders call ``torch.hub.load_state_dict_from_url``, whose default is ``weights_only=False``),
so its own checkpoints fail to load, and the usual workaround (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``)
makes every pickle executable again.

Here every load is ``weights_only=True`` plus exactly the globals OpenMMLab checkpoints need
(``ALLOWED_GLOBALS``). Importing this module points every address scheme of mmengine's
``CheckpointLoader`` at a safe loader (:func:`register_safe_loaders`), so ``Runner``
(``load_from``, ``resume``), ``init_cfg``/``pretrained`` weights and
``mmengine.runner.load_checkpoint`` all use it:

- local files, ``http://`` and ``https://`` URLs: loaded safely (a URL is downloaded once);
- ``open-mmlab://``, ``openmmlab://``, ``mmcls://``, ``torchvision://``, ``modelzoo://``: the name
  is resolved to its URL through mmengine's model-zoo tables, then downloaded and loaded safely;
- every other scheme (``pavi://``, ``s3://``, ``petrel://``, any other registered one): refused
  with :class:`CheckpointError`; download the file yourself and pass its local path.

Configs written by ``helpers.config`` import this module through ``custom_imports``, so mmseg's
``tools/train.py`` does too. A scheme that another library registers after this import is not
covered until :func:`register_safe_loaders` runs again.
"""

from helpers.checkpoint.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    UnsafeCheckpointError,
    cli_guard,
)
from helpers.checkpoint.model import find_checkpoint, init_model
from helpers.checkpoint.safe_load import ALLOWED_GLOBALS, load_checkpoint
from helpers.checkpoint.schemes import (
    checkpoint_cache_path,
    download_checkpoint,
    register_safe_loaders,
)

__all__ = [
    "ALLOWED_GLOBALS",
    "CheckpointError",
    "CheckpointNotFoundError",
    "UnsafeCheckpointError",
    "checkpoint_cache_path",
    "cli_guard",
    "download_checkpoint",
    "find_checkpoint",
    "init_model",
    "load_checkpoint",
    "register_safe_loaders",
]
