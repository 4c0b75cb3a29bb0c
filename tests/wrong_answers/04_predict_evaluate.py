"""Plausible wrong answers for notebook 04: answer cell grade_id → what a student might write.

tests/test_grading.py hands these in (the instructor's solution with each of these cells
replaced) and expects each of them to lose points on its own task only. See source/README.md.
"""

WRONG_ANSWERS = {
    # the image and the colours swapped: opacity weighs the image instead of the mask's colour
    "blend": '''
def blend(image, mask, palette, opacity):
    colours = np.asarray(palette, dtype=np.float64)[mask]
    return (image * opacity + colours * (1.0 - opacity)).astype(np.uint8)
''',
    # forgets to subtract TP: row + column counts the true positives twice (a Dice-like score)
    "iou_per_class": '''
def iou_per_class(cm):
    tp = np.diag(cm).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100.0 * tp / (cm.sum(axis=0) + cm.sum(axis=1))
''',
    # the largest entry of the whole matrix: a class "confused" with itself
    "most_confused": '''
def most_confused(cm):
    true_class, predicted = np.unravel_index(np.argmax(cm), cm.shape)
    return int(true_class), int(predicted)
''',
    # PIL's RGB array straight into inference_model, which takes an array as BGR (as cv2 reads)
    "segment_my_image": '''
def segment_my_image(model, path, opacity=0.5):
    from PIL import Image

    image = np.asarray(Image.open(path).convert("RGB"))
    mask = inference_model(model, image).pred_sem_seg.data[0].cpu().numpy()
    palette = np.asarray(model.dataset_meta["palette"], dtype=np.float64)
    overlay = (image * (1.0 - opacity) + palette[mask] * opacity).astype(np.uint8)
    ids, counts = np.unique(mask, return_counts=True)
    names = model.dataset_meta["classes"]
    return mask, overlay, {names[i]: 100.0 * c / mask.size for i, c in zip(ids, counts)}
''',
}
