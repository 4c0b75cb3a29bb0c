"""Plausible wrong answers for notebook 02: answer cell grade_id → what a student might write.

tests/test_grading.py hands these in (the instructor's solution with each of these cells
replaced) and expects each of them to lose points on its own task only. See source/README.md.
"""

WRONG_ANSWERS = {
    # changes the top-level norm_cfg only: the model's copies, resolved at load time, stay SyncBN
    "model_edits": '''
from mmseg.datasets import PascalVOCDataset

cfg.norm_cfg = dict(type="BN", requires_grad=True)
cfg.model.decode_head.num_classes = len(PascalVOCDataset.METAINFO["classes"])
cfg.model.auxiliary_head.num_classes = len(PascalVOCDataset.METAINFO["classes"])
cfg.model.pretrained = None
''',
    # sets the pipelines and the datasets' fields, but keeps the loaders' old pipeline copies
    "data_edits": '''
cfg.dataset_type = "PascalVOCDataset"
cfg.data_root = VOC_ROOT
cfg.crop_size = (256, 256)
cfg.data_preprocessor.size = cfg.crop_size
cfg.model.data_preprocessor.size = cfg.crop_size
cfg.train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations"),
    dict(type="RandomResize", scale=(320, 240), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type="RandomCrop", crop_size=cfg.crop_size, cat_max_ratio=0.75),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackSegInputs"),
]
cfg.test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=(320, 240), keep_ratio=True),
    dict(type="LoadAnnotations"),
    dict(type="PackSegInputs"),
]
for loader, split in ((cfg.train_dataloader, "train"), (cfg.val_dataloader, "val")):
    loader.dataset.type = cfg.dataset_type
    loader.dataset.data_root = cfg.data_root
    loader.dataset.data_prefix = dict(img_path="JPEGImages", seg_map_path="SegmentationClass")
    loader.dataset.ann_file = f"ImageSets/Segmentation/{split}.txt"
cfg.test_dataloader = cfg.val_dataloader
cfg.train_dataloader.batch_size = 8
''',
    # sets the lr in cfg.optimizer only: the optimizer the Runner builds is optim_wrapper's copy
    "schedule_edits": '''
cfg.optimizer.lr = 0.01 / 8
cfg.train_cfg.max_iters = 4000
cfg.train_cfg.val_interval = 1000
cfg.default_hooks.logger.interval = 500
cfg.default_hooks.checkpoint.update(interval=1000, max_keep_ckpts=1, save_best="mIoU",
                                    rule="greater")
cfg.randomness = dict(seed=0)
cfg.work_dir = WORK_DIR
cfg.load_from = str(pretrained) if pretrained else None
''',
    # divides by T = end - begin: mmengine's PolyLR divides by end - begin - 1 (its total_iters),
    # so the lr is off by a little mid-schedule and is not eta_min at the schedule's last step
    "final_lr": '''
def final_lr(cfg):
    poly = cfg.param_scheduler[0]
    total = poly.end - poly.begin
    t = min(cfg.train_cfg.max_iters - poly.begin, total)
    lr0 = cfg.optim_wrapper.optimizer.lr
    return (lr0 - poly.eta_min) * (1 - t / total) ** poly.power + poly.eta_min
''',
}
