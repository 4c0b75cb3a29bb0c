"""Plausible wrong answers for notebook 01: answer cell grade_id → what a student might write.

tests/test_grading.py hands these in (the instructor's solution with each of these cells
replaced) and expects each of them to lose points on its own task only. See source/README.md.
"""

WRONG_ANSWERS = {
    # the homework's reader: cv2 applies the palette and returns BGR display colours
    "read_class_ids": '''
import cv2


def read_class_ids(path):
    return cv2.imread(str(path))
''',
    # no ann_file: BaseSegDataset then lists every JPEG of the folder, unlabelled ones included
    "voc_dataset": '''
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS


@DATASETS.register_module(force=True)
class CourseVOCDataset(BaseSegDataset):
    METAINFO = dict(classes=train_set.metainfo["classes"], palette=train_set.metainfo["palette"])

    def __init__(self, **kwargs):
        super().__init__(img_suffix=".jpg", seg_map_suffix=".png", **kwargs)


dataset_cfg = dict(type="CourseVOCDataset", data_root=VOC_ROOT,
                   data_prefix=dict(img_path="JPEGImages", seg_map_path="SegmentationClass"),
                   pipeline=[])
''',
    # counts the 21 classes only: the void pixels (255) are dropped
    "class_counts": '''
def class_counts(paths):
    pixels = np.zeros(21, np.int64)
    images = np.zeros(21, np.int64)
    for path in paths:
        per_id = np.bincount(read_class_ids(path).ravel(), minlength=256)[:21]
        pixels += per_id
        images += per_id > 0
    return {name: {"pixels": int(p), "images": int(i)}
            for name, p, i in zip(classes, pixels, images)}
''',
    # pads the mask with 0, "background", instead of the ignore index
    "padded_pipeline": '''
padded_pipeline = [*cfg.train_pipeline[:-1],
                   dict(type="Pad", size=cfg.crop_size, pad_val=dict(img=0, seg=0)),
                   cfg.train_pipeline[-1]]
''',
}
