"""Plausible wrong answers for notebook 00: answer cell grade_id → what a student might write.

tests/test_grading.py hands these in (the instructor's solution with each of these cells
replaced) and expects each of them to lose points on its own task only. See source/README.md.
"""

WRONG_ANSWERS = {
    # keeps every file with "voc12" in its name: a notes file or a backup counts as a config
    "voc_configs": '''
def voc_configs(folder):
    return sorted(p.name for p in Path(folder).glob("*voc12*"))
''',
    # compares versions as strings: "2.10.0" < "2.2.0", and "2.0.0" < "2.0.0rc4"
    "mmcv_accepted": '''
def mmcv_accepted(version):
    return mmseg.MMCV_MIN <= version < mmseg.MMCV_MAX
''',
    # forgets the background class: 20 object classes
    "voc_head": '''
head = MODELS.build(dict(type="PSPHead", in_channels=64, channels=16, pool_scales=(1, 2, 3, 6),
                         num_classes=20))
''',
    # takes the crop_size *variable*: a child config that sets it changes no pipeline, and a
    # config without the variable has no such attribute
    "recipe": '''
def recipe(path):
    cfg = Config.fromfile(path)
    model = cfg.model
    heads = [model.decode_head.type]
    if model.get("auxiliary_head"):
        heads.append(model.auxiliary_head.type)
    dataset = cfg.train_dataloader.dataset
    if dataset.type == "ConcatDataset":
        dataset = dataset.datasets[0]
    backbone = model.backbone.type
    if "depth" in model.backbone:
        backbone += f"-{model.backbone.depth}"
    return {"model": model.type, "backbone": backbone, "heads": heads,
            "num_classes": model.decode_head.num_classes, "crop": tuple(cfg.crop_size),
            "batch_size": cfg.train_dataloader.batch_size,
            "iterations": cfg.train_cfg.max_iters, "dataset": dataset.type}
''',
}
