"""Training on several processes: ``torchrun`` + mmengine's ``launcher='pytorch'`` (notebook 03).

Nothing here launches processes or reimplements data parallelism. PyTorch's ``torchrun``
starts one process per GPU and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``
and ``MASTER_PORT``; mmengine's ``Runner`` (``launcher='pytorch'``) joins the process group,
wraps the model in ``MMDistributedDataParallel`` (gradients are averaged across processes),
shards the data with its rank-aware ``InfiniteSampler``/``DefaultSampler``, and writes
checkpoints, logs and ``vis_data`` from rank 0 only. :func:`configure` adapts a config to the
launch: it checks the launcher and the environment, picks the backend (``nccl`` on GPUs,
``gloo`` on CPUs), switches BN to SyncBN where that works (GPUs), and turns on mmengine's
``auto_scale_lr`` (the linear learning-rate scaling rule) unless the config sets it.

    torchrun --nproc_per_node=N -m helpers.train --config FILE --launcher pytorch
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from mmengine.config import Config
from mmengine.logging import print_log

from helpers.config import set_norm_type

__all__ = [
    "SUPPORTED_LAUNCHERS",
    "TORCHRUN_ENV",
    "BatchPlan",
    "LauncherError",
    "batch_plan",
    "configure",
    "distribute_config",
    "launch_help",
    "torchrun_command",
]

SUPPORTED_LAUNCHERS: tuple[str, ...] = ("none", "pytorch")
# What torchrun exports to every process it starts (mmengine's init_dist reads them).
TORCHRUN_ENV: tuple[str, ...] = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class LauncherError(ValueError):
    """The launcher value or the process environment does not fit a (distributed) run."""


def torchrun_command(
    config: str | os.PathLike[str] = "FILE",
    nproc_per_node: int | str = "N",
    nnodes: int = 1,
    node_rank: int | str = "R",
    master_addr: str = "HOST",
    master_port: int = 29500,
) -> str:
    """Return the ``torchrun`` line that trains ``config`` on ``nnodes`` machines.

    One node: ``torchrun --nproc_per_node=N -m helpers.train --config FILE --launcher pytorch``.
    Several nodes: run the same line on every machine, each with its own ``--node_rank``
    (0 on the machine whose address is ``master_addr``).
    """
    parts = ["torchrun"]
    if nnodes > 1:
        parts += [
            f"--nnodes={nnodes}",
            f"--node_rank={node_rank}",
            f"--master_addr={master_addr}",
            f"--master_port={master_port}",
        ]
    parts += [f"--nproc_per_node={nproc_per_node}", "-m", "helpers.train"]
    parts += ["--config", str(config), "--launcher", "pytorch"]
    return " ".join(parts)


def launch_help() -> str:
    """How to start training on one or several processes (for ``--help`` texts and errors)."""
    return (
        "Start distributed training with torchrun, which creates one process per GPU and "
        "sets their environment:\n"
        f"  one node:  {torchrun_command()}\n"
        f"  two nodes: {torchrun_command(nnodes=2)}\n"
        "For a single process, run `python -m helpers.train --config FILE` "
        "(launcher 'none')."
    )


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _note(message: str) -> None:
    """Log once per job (rank 0): before the Runner exists every rank would print it."""
    if _rank() == 0:
        print_log(message, logger="current")


@dataclass(frozen=True)
class BatchPlan:
    """How batch size and learning rate change with the number of processes.

    Each process loads ``per_process_batch`` images per iteration (``train_dataloader.
    batch_size`` is per process), so one optimiser step sees ``total_batch`` images.
    The linear scaling rule (Goyal et al., 2017, https://arxiv.org/abs/1706.02677) keeps the
    learning rate per image constant: lr = base_lr x total_batch / base_batch, where
    ``base_batch`` is the total batch ``base_lr`` was tuned for. mmengine applies it when
    ``auto_scale_lr.enable`` is True.
    """

    world_size: int
    per_process_batch: int
    base_batch: int
    base_lr: float
    scale_lr: bool

    @property
    def total_batch(self) -> int:
        """Images per optimiser step, summed over all processes."""
        return self.world_size * self.per_process_batch

    @property
    def lr_ratio(self) -> float:
        """Factor mmengine multiplies the configured learning rate by."""
        return self.total_batch / self.base_batch if self.scale_lr else 1.0

    @property
    def lr(self) -> float:
        """Learning rate the optimiser starts from."""
        return self.base_lr * self.lr_ratio

    def __str__(self) -> str:
        how = (
            f"auto_scale_lr: lr x {self.total_batch}/{self.base_batch} = {self.lr:g}"
            if self.scale_lr
            else f"auto_scale_lr disabled: lr stays {self.base_lr:g}"
        )
        return (
            f"{self.world_size} process(es) x {self.per_process_batch} images = "
            f"{self.total_batch} images per step (lr {self.base_lr:g} was tuned for "
            f"{self.base_batch}); {how}"
        )


def batch_plan(cfg: Config, world_size: int) -> BatchPlan:
    """Return the :class:`BatchPlan` of ``cfg`` run on ``world_size`` processes.

    Reads ``train_dataloader.batch_size``, ``optim_wrapper.optimizer.lr`` and
    ``auto_scale_lr`` (when absent: base batch = one process's batch, no scaling).
    """
    per_process = int(cfg.train_dataloader.batch_size)
    auto = cfg.get("auto_scale_lr") or {}
    return BatchPlan(
        world_size=world_size,
        per_process_batch=per_process,
        base_batch=int(auto.get("base_batch_size", per_process)),
        base_lr=float(cfg.optim_wrapper.optimizer.lr),
        scale_lr=bool(auto.get("enable", False)),
    )


def distribute_config(cfg: Config, world_size: int, cuda: bool) -> Config:
    """Adapt ``cfg`` in place to ``world_size`` processes on GPUs (``cuda``) or CPUs.

    - backend: ``env_cfg.dist_cfg.backend`` = ``'nccl'`` on GPUs, ``'gloo'`` on CPUs.
    - BN/SyncBN: SyncBN when ``world_size > 1`` on GPUs. torch's ``SyncBatchNorm`` refuses
      CPU tensors ("SyncBatchNorm expected input tensor to be on GPU", torch 2.13), so on CPUs
      every process keeps plain BN: gradients are still averaged, only the batch statistics
      are per process, and rank 0's running statistics go into the checkpoint.
    - CPU model wrapper: mmengine passes ``device_ids=[LOCAL_RANK]`` to
      ``MMDistributedDataParallel``, which DDP accepts only for GPU modules; an explicit
      ``model_wrapper_cfg`` with ``device_ids=None`` overrides that default.
    - learning rate: when the config has no ``auto_scale_lr``, adds
      ``dict(enable=True, base_batch_size=train_dataloader.batch_size)`` (the course's presets
      are tuned on one device), so mmengine applies the linear scaling rule; an existing
      ``auto_scale_lr`` (mmseg ships some with ``enable=False``) is respected.
    """
    env_cfg = cfg.setdefault("env_cfg", {})
    dist_cfg = env_cfg.setdefault("dist_cfg", {})
    dist_cfg["backend"] = "nccl" if cuda else "gloo"
    if world_size > 1 and cuda:
        set_norm_type(cfg, "SyncBN")
    elif world_size > 1:
        set_norm_type(cfg, "BN")
        _note(
            "BN kept instead of SyncBN: torch's SyncBatchNorm works on GPUs only, so on "
            "CPUs each process normalises with its own mini-batch statistics."
        )
    else:
        set_norm_type(cfg, "BN")
    if not cuda:
        wrapper = cfg.get("model_wrapper_cfg") or {
            "type": "MMDistributedDataParallel",
            "broadcast_buffers": False,
            "find_unused_parameters": cfg.get("find_unused_parameters", False),
        }
        wrapper.setdefault("device_ids", None)
        cfg.model_wrapper_cfg = wrapper
    if world_size > 1 and cfg.get("auto_scale_lr") is None:
        cfg.auto_scale_lr = dict(enable=True, base_batch_size=int(cfg.train_dataloader.batch_size))
    return cfg


def _check_env() -> int:
    missing = [name for name in TORCHRUN_ENV if name not in os.environ]
    if missing:
        raise LauncherError(
            f"launcher='pytorch' needs the environment variables {', '.join(missing)}, which "
            "torchrun sets; this process was not started by torchrun.\n" + launch_help()
        )
    return int(os.environ["WORLD_SIZE"])


def _check_gpus(local_processes: int) -> None:
    """nccl needs a GPU of its own for each process of a machine (two ranks on one GPU fail
    inside nccl with "Duplicate GPU detected"): say so before any process group exists."""
    gpus = torch.cuda.device_count()
    if local_processes > gpus:
        raise LauncherError(
            f"torchrun started {local_processes} processes on this machine, which has {gpus} "
            f"GPU(s); nccl needs one GPU per process. Start --nproc_per_node={gpus}, or hide the "
            "GPUs (CUDA_VISIBLE_DEVICES=) to train on the CPU cores with gloo.\n" + launch_help())


def _init_gloo(cfg: Config) -> None:
    """Join the CPU process group ourselves (mmengine 0.10.7 cannot, see :func:`configure`)."""
    if torch.distributed.is_initialized():
        return
    kwargs = dict(cfg.env_cfg.dist_cfg)
    kwargs.pop("backend", None)
    torch.distributed.init_process_group(backend="gloo", **kwargs)


def configure(cfg: Config, launcher: str) -> Config:
    """Prepare ``cfg`` for ``Runner.from_cfg`` under ``launcher`` and return it.

    ``launcher='none'`` trains in this one process; ``'pytorch'`` expects to be one of the
    processes started by ``torchrun`` (see :func:`torchrun_command`) and applies
    :func:`distribute_config` for the world size torchrun reports. Logs the batch and
    learning-rate plan (:class:`BatchPlan`).

    On CPUs the gloo process group is created here: mmengine's ``init_dist`` calls
    ``torch.cuda.set_device``, which fails without CUDA. The Runner then finds the group
    initialised and skips its own call.

    Raises:
        LauncherError: unsupported launcher; ``'pytorch'`` without torchrun's environment
            variables; ``'none'`` inside a multi-process torchrun job.
    """
    if launcher not in SUPPORTED_LAUNCHERS:
        raise LauncherError(
            f"Unsupported launcher {launcher!r}: supported are {', '.join(SUPPORTED_LAUNCHERS)}."
            "\n" + launch_help()
        )
    cfg.launcher = launcher
    if launcher == "none":
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size > 1:
            raise LauncherError(
                f"This process is one of {world_size} started by torchrun, but the launcher is "
                "'none', so every process would train alone and write the same work_dir. "
                "Add `--launcher pytorch`:\n  " + torchrun_command()
            )
        return cfg
    world_size = _check_env()
    cuda = torch.cuda.is_available()
    if cuda:
        _check_gpus(int(os.environ.get("LOCAL_WORLD_SIZE", world_size)))
    distribute_config(cfg, world_size, cuda)
    if not cuda:
        _init_gloo(cfg)
    _note(f"Distributed training: {batch_plan(cfg, world_size)}")
    return cfg
