"""Distributed training: configure() on real mmseg configs, and a real 2-process run.

The 2-process test starts ``torchrun --standalone --nproc_per_node=2 -m helpers.train`` on the
demo data: the command a student runs on two GPUs, here on CPUs with the gloo backend.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from digest_hook import param_digest  # tests/ is on sys.path: a test-only mmengine hook
from mmengine.config import Config

from helpers.checkpoint import load_checkpoint
from helpers.config import BASE_CONFIG, build_config, find_config, save_config
from helpers.distributed import (
    TORCHRUN_ENV,
    LauncherError,
    batch_plan,
    configure,
    distribute_config,
    torchrun_command,
)

REPO = Path(__file__).resolve().parents[1]
PSPNET = find_config(BASE_CONFIG)  # mmseg's shipped PSPNet config (SyncBN, 2 images per GPU)
MAX_ITERS = 4


def _norm_types(cfg: Config) -> set[str]:
    m = cfg.model
    return {m.backbone.norm_cfg.type, m.decode_head.norm_cfg.type, m.auxiliary_head.norm_cfg.type}


@pytest.fixture
def no_torchrun_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def single_process_group(monkeypatch: pytest.MonkeyPatch):
    """torchrun's environment for a world of one process; destroys the group afterwards."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1")
    for name, value in {**env, "MASTER_PORT": str(port)}.items():
        monkeypatch.setenv(name, value)
    yield
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("launcher", ["slurm", "mpi", "PyTorch", ""])
def test_unsupported_launcher_lists_supported_and_torchrun(launcher: str) -> None:
    with pytest.raises(LauncherError) as err:
        configure(Config.fromfile(PSPNET), launcher)
    message = str(err.value)
    assert repr(launcher) in message
    assert "none" in message and "pytorch" in message
    assert (
        "torchrun --nproc_per_node=N -m helpers.train --config FILE --launcher pytorch" in message
    )


def test_pytorch_launcher_without_torchrun_env(no_torchrun_env: None) -> None:
    with pytest.raises(LauncherError) as err:
        configure(Config.fromfile(PSPNET), "pytorch")
    message = str(err.value)
    assert all(name in message for name in TORCHRUN_ENV)
    assert "torchrun --nproc_per_node=N" in message
    assert "--nnodes=2 --node_rank=R --master_addr=HOST" in message


def test_launcher_none_inside_torchrun_job(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(LauncherError, match="--launcher pytorch"):
        configure(Config.fromfile(PSPNET), "none")


def test_more_processes_than_gpus_is_refused_before_nccl(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in dict(RANK="0", WORLD_SIZE="2", LOCAL_RANK="0", LOCAL_WORLD_SIZE="2",
                            MASTER_ADDR="127.0.0.1", MASTER_PORT="29555").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(LauncherError, match=r"2 processes on this machine, which has 1 GPU"):
        configure(Config.fromfile(PSPNET), "pytorch")
    assert not torch.distributed.is_initialized()
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)  # one GPU each: accepted
    cfg = distribute_config(Config.fromfile(PSPNET), world_size=2, cuda=True)
    assert cfg.env_cfg.dist_cfg.backend == "nccl"


def test_cli_without_torchrun_says_how_to_launch(tmp_path: Path) -> None:
    config = tmp_path / "pspnet.py"
    Config.fromfile(PSPNET).dump(config)
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_ENV}
    cmd = [sys.executable, "-m", "helpers.train", "--config", str(config), "--launcher", "pytorch"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "torchrun --nproc_per_node=N -m helpers.train" in proc.stderr + proc.stdout


def test_train_help_documents_torchrun() -> None:
    cmd = [sys.executable, "-m", "helpers.train", "--help"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "torchrun --nproc_per_node=" in proc.stdout
    assert "--launcher pytorch" in proc.stdout


# --- what configure changes --------------------------------------------------------------


def test_launcher_none_leaves_model_alone(no_torchrun_env: None) -> None:
    cfg = configure(Config.fromfile(PSPNET), "none")
    assert cfg.launcher == "none"
    assert _norm_types(cfg) == {"SyncBN"}  # mmengine reverts SyncBN itself on one process
    assert "model_wrapper_cfg" not in cfg and "auto_scale_lr" not in cfg


def test_two_gpus_get_syncbn_nccl_and_scaled_lr() -> None:
    cfg = Config.fromfile(PSPNET)
    set_bn = {"model.backbone.norm_cfg.type": "BN", "model.decode_head.norm_cfg.type": "BN"}
    cfg.merge_from_dict(set_bn)
    distribute_config(cfg, world_size=2, cuda=True)
    assert _norm_types(cfg) == {"SyncBN"}
    assert cfg.env_cfg.dist_cfg.backend == "nccl"
    assert "model_wrapper_cfg" not in cfg  # mmengine's GPU default (device_ids=[LOCAL_RANK])
    assert cfg.auto_scale_lr == {"enable": True, "base_batch_size": cfg.train_dataloader.batch_size}


def test_two_cpus_keep_bn_use_gloo_and_no_device_ids() -> None:
    cfg = distribute_config(Config.fromfile(PSPNET), world_size=2, cuda=False)
    assert _norm_types(cfg) == {"BN"}
    assert cfg.env_cfg.dist_cfg.backend == "gloo"
    assert cfg.model_wrapper_cfg.type == "MMDistributedDataParallel"
    assert cfg.model_wrapper_cfg.device_ids is None


def test_existing_auto_scale_lr_is_respected() -> None:
    cfg = Config.fromfile(PSPNET)
    cfg.auto_scale_lr = dict(enable=False, base_batch_size=16)
    distribute_config(cfg, world_size=4, cuda=True)
    plan = batch_plan(cfg, 4)
    assert cfg.auto_scale_lr == {"enable": False, "base_batch_size": 16}
    assert (plan.total_batch, plan.lr_ratio, plan.lr) == (8, 1.0, cfg.optim_wrapper.optimizer.lr)


def test_batch_plan_linear_rule() -> None:
    cfg = Config.fromfile(PSPNET)  # 2 images per process, lr 0.01
    cfg.auto_scale_lr = dict(enable=True, base_batch_size=8)
    plan = batch_plan(cfg, 8)
    assert (plan.per_process_batch, plan.total_batch) == (2, 16)
    assert plan.lr == pytest.approx(0.02)
    assert "8 process(es) x 2 images = 16 images per step" in str(plan)


def test_torch_syncbn_refuses_cpu_tensors(single_process_group: None) -> None:
    """The measured reason why configure() keeps BN on CPUs (re-check when torch changes)."""
    torch.distributed.init_process_group(backend="gloo")
    bn = torch.nn.SyncBatchNorm(4).train()
    with pytest.raises(ValueError, match="GPU"):
        bn(torch.randn(2, 4, 3, 3))


def test_pytorch_launcher_joins_gloo_group_on_cpu(single_process_group: None) -> None:
    if torch.cuda.is_available():
        pytest.skip("the gloo fallback is for CPU-only machines")
    cfg = configure(Config.fromfile(PSPNET), "pytorch")
    assert cfg.launcher == "pytorch"
    assert torch.distributed.is_initialized()
    assert torch.distributed.get_backend() == "gloo"
    assert torch.distributed.get_world_size() == 1


def test_param_digest_sees_every_value() -> None:
    params = {"a.weight": torch.zeros(3, 2), "b.bias": torch.ones(4)}
    base = param_digest(params)
    nudged = {**params, "a.weight": params["a.weight"].clone()}
    nudged["a.weight"][2, 1] = 1e-30
    assert param_digest(dict(reversed(list(params.items())))) == base
    assert param_digest(nudged) != base
    assert param_digest({"a.weight": params["a.weight"]}) != base


def test_torchrun_command_forms() -> None:
    assert torchrun_command("cfg.py", 4) == (
        "torchrun --nproc_per_node=4 -m helpers.train --config cfg.py --launcher pytorch"
    )
    two = torchrun_command("cfg.py", 8, nnodes=2, node_rank=1, master_addr="10.0.0.1")
    assert two.startswith("torchrun --nnodes=2 --node_rank=1 --master_addr=10.0.0.1 ")
    assert "--master_port=29500 --nproc_per_node=8 -m helpers.train" in two


# --- two real processes ------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_process_run(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Train the smoke preset for a few iterations + one validation with 2 gloo processes."""
    base = tmp_path_factory.mktemp("dist")
    work_dir, digests = base / "work_dir", base / "digests"
    cfg = build_config(
        "smoke",
        demo_root,
        work_dir,
        **{
            "train_cfg.max_iters": MAX_ITERS,
            "train_cfg.val_interval": MAX_ITERS,
            "default_hooks.checkpoint.interval": MAX_ITERS,
            "default_hooks.logger.interval": 1,
            "train_dataloader.batch_size": 2,
            "train_dataloader.num_workers": 0,
            "train_dataloader.persistent_workers": False,
            "val_dataloader.num_workers": 0,
            "val_dataloader.persistent_workers": False,
            "load_from": None,
            "custom_imports": dict(imports=["digest_hook"], allow_failed_imports=False),
            "custom_hooks": [dict(type="ParamDigestHook", out_dir=str(digests))],
        },
    )
    config = save_config(cfg, base / "dist_smoke.py")
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_ENV}
    env["MPLBACKEND"] = "Agg"
    env["CUDA_VISIBLE_DEVICES"] = ""  # the CPU path (gloo) on any machine, one GPU or none
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "tests"), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["-m", "helpers.train", "--config", str(config), "--launcher", "pytorch"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    return dict(work_dir=work_dir, digests=digests, output=output)


VAL_LINE = re.compile(r"Iter\(val\) \[[\d/ ]+\]\s+aAcc:")


def test_both_ranks_finish_with_identical_parameters(two_process_run: dict) -> None:
    records = [
        json.loads((two_process_run["digests"] / f"rank{r}.json").read_text()) for r in (0, 1)
    ]
    assert [(r["rank"], r["world_size"]) for r in records] == [(0, 2), (1, 2)]
    assert records[0]["names"] == records[1]["names"] and len(records[0]["names"]) > 10
    assert records[0]["before"] == records[1]["before"]  # rank 0's initial weights broadcast
    assert records[0]["after"] != records[0]["before"]  # training changed them
    assert records[0]["after"] == records[1]["after"]  # ... identically on both ranks
    state = load_checkpoint(two_process_run["work_dir"] / f"iter_{MAX_ITERS}.pth")["state_dict"]
    saved = {name: state[name] for name in records[0]["names"]}
    assert param_digest(saved) == records[0]["after"]  # and that is what rank 0 saved


def test_one_set_of_checkpoints_and_logs(two_process_run: dict) -> None:
    work_dir: Path = two_process_run["work_dir"]
    assert (work_dir / "last_checkpoint").read_text().strip().endswith(f"iter_{MAX_ITERS}.pth")
    checkpoints = {p.name for p in work_dir.glob("*.pth")}
    assert f"iter_{MAX_ITERS}.pth" in checkpoints
    assert checkpoints <= {f"iter_{MAX_ITERS}.pth", f"best_mIoU_iter_{MAX_ITERS}.pth"}
    assert not [p for p in work_dir.rglob("*") if re.search(r"rank[1-9]", p.name)]
    runs = [p for p in work_dir.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs  # one timestamped log folder (the timestamp is rank 0's)
    assert [p.name for p in runs[0].glob("*.log")] == [f"{runs[0].name}.log"]
    steps = [json.loads(line) for line in (runs[0] / "vis_data" / "scalars.json").open()]
    train_steps = [s["step"] for s in steps if "loss" in s]
    assert train_steps == list(range(1, MAX_ITERS + 1))  # each logged once, not once per rank


def test_metrics_reported_once_and_lr_scaled(two_process_run: dict) -> None:
    work_dir: Path = two_process_run["work_dir"]
    log = next(work_dir.glob("*/*.log")).read_text()
    assert len(VAL_LINE.findall(log)) == 1
    assert len(VAL_LINE.findall(two_process_run["output"])) == 1  # both ranks' consoles
    assert two_process_run["output"].count('{"val": {"aAcc": ') == 1  # helpers.train's summary
    steps = [json.loads(line) for line in next(work_dir.glob("*/vis_data/scalars.json")).open()]
    assert len([s for s in steps if "mIoU" in s]) == 1
    ran = Config.fromfile(next(work_dir.glob("*/vis_data/config.py")))  # what mmengine ran
    assert (ran.launcher, ran.env_cfg.dist_cfg.backend) == ("pytorch", "gloo")
    assert _norm_types(ran) == {"BN"}  # no SyncBN on CPUs
    plan = batch_plan(ran, world_size=2)
    assert (plan.total_batch, plan.scale_lr) == (4, True)
    assert f"Scaling the original LR by {plan.lr_ratio}" in log  # mmengine's auto_scale_lr
