"""Plausible wrong answers for notebook 05: answer cell grade_id → what a student might write.

`python -m teacher.tasks 05_onnx` (and tests/test_grading.py) hand these in: the instructor's
solutions with one of these cells replaced, which must lose points on that task only (see
teacher/tasks/n05_onnx.py for the case kinds).
"""

WRONG_ANSWERS = {
    # rounds the end down like the start: disjoint cells that miss the overlapping pixels
    "bin_edges": '''
def bin_edges(n, bins):
    return [(i * n // bins, (i + 1) * n // bins) for i in range(bins)]
''',
    # dynamic height and width, but without the exact pooling: the traced cells are baked in
    "export_exact": '''
my_onnx = None
example = torch.randn(1, 3, 256, 320)
dynamic = torch.export.Dim.DYNAMIC
with torch.no_grad():
    torch.onnx.export(graph, (example,), f"{ONNX_DIR}/mine.onnx",
                      dynamo=True, external_data=False, verbose=False,
                      input_names=["input"], output_names=["logits"],
                      dynamic_shapes=({2: dynamic, 3: dynamic},))
my_onnx = Path(f"{ONNX_DIR}/mine.onnx")
''',
    # the mean absolute difference instead of the largest one
    "ort_vs_pytorch": '''
def ort_vs_pytorch(onnx_path, model, x):
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        want = SegmentorGraph(model).eval()(x).numpy()
    return float(np.abs(got - want).mean()), float((got.argmax(1) == want.argmax(1)).mean())
''',
    # the data preprocessor's numbers, but OpenCV's BGR order left as it is
    "segment_onnx": '''
def segment_onnx(session, image, size):
    resized = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    x = (resized.astype(np.float32) - MEAN) / STD
    x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
    logits = session.run(None, {session.get_inputs()[0].name: x})[0][0]
    height, width = image.shape[:2]
    logits = cv2.resize(logits.transpose(1, 2, 0), (width, height), interpolation=cv2.INTER_LINEAR)
    return logits.argmax(axis=-1).astype(np.uint8)
''',
}
