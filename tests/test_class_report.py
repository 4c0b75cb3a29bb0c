"""The similarity report (teacher/similarity.py) and the class report (teacher/report.py).

Hand-ins are the real release notebook 04 with its answer cells filled: four honest students
with their own correct code (checked against the instructor's solutions on random inputs), one
who copies another's answers with the names changed and the comments removed, and one who
handed in the untouched stubs.
"""

from __future__ import annotations

import copy
import csv
import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from teacher import report, similarity, tasks

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "04_predict_evaluate"

ALICE = {
    "blend": '''
    lut = np.array(palette, dtype=float)
    painted = lut[mask]
    mixed = opacity * painted + (1 - opacity) * image
    return mixed.astype(np.uint8)
''',
    "iou_per_class": '''
    cm = np.asarray(cm, dtype=float)
    inter = np.diagonal(cm)
    union = cm.sum(1) + cm.sum(0) - inter
    iou = np.full(len(inter), np.nan)
    seen = union > 0
    iou[seen] = inter[seen] / union[seen]
    return iou * 100
''',
    "most_confused": '''
    m = np.array(cm, dtype=float)
    m[np.eye(len(m), dtype=bool)] = -np.inf
    flat = int(m.argmax())
    return flat // m.shape[1], flat % m.shape[1]
''',
    "segment_my_image": '''
    rgb = mmcv.bgr2rgb(mmcv.imread(path))
    prediction = inference_model(model, path)
    labels = prediction.pred_sem_seg.data.squeeze(0).cpu().numpy()
    overlay = blend(rgb, labels, model.dataset_meta["palette"], opacity)
    names = model.dataset_meta["classes"]
    total = labels.size
    return labels, overlay, {names[int(k)]: 100.0 * int((labels == k).sum()) / total
                             for k in np.unique(labels)}
''',
}

BOB = {
    "blend": '''
    # float maths first, so that nothing wraps around at 255
    base = image.astype(np.float64)
    target = np.take(np.asarray(palette, dtype=np.float64), mask, axis=0)
    out = base + opacity * (target - base)  # the same as (1 - a) * base + a * target
    return np.floor(out).astype(np.uint8)
''',
    "iou_per_class": '''
    ious = []
    for k in range(cm.shape[0]):
        hit = cm[k, k]
        # pixels of class k, true or predicted
        denom = cm[k, :].sum() + cm[:, k].sum() - hit
        ious.append(100.0 * hit / denom if denom else float("nan"))
    return np.array(ious)
''',
    "most_confused": '''
    best, pair = None, None
    for t in range(cm.shape[0]):
        for p in range(cm.shape[1]):
            # off the diagonal only; the first of a tie wins
            if t != p and (best is None or cm[t, p] > best):
                best, pair = cm[t, p], (t, p)
    return pair
''',
    "segment_my_image": '''
    meta = model.dataset_meta
    seg = inference_model(model, str(path)).pred_sem_seg.data[0].cpu().numpy()
    picture = mmcv.imread(path)[:, :, ::-1]  # BGR -> RGB
    colours = np.asarray(meta["palette"], dtype=np.float64)[seg]
    mixed = ((1 - opacity) * picture + opacity * colours).astype(np.uint8)
    counts = np.bincount(seg.ravel(), minlength=len(meta["classes"]))
    # only the classes that occur
    shares = {meta["classes"][i]: 100.0 * c / seg.size for i, c in enumerate(counts) if c > 0}
    return seg, mixed, shares
''',
}

# Eve hands in Bob's answers: every name changed, every comment gone, a blank line here and there.
EVE = {
    "blend": '''
    flt = image.astype(np.float64)

    goal = np.take(np.asarray(palette, dtype=np.float64), mask, axis=0)
    res = flt + opacity * (goal - flt)
    return np.floor(res).astype(np.uint8)
''',
    "iou_per_class": '''
    values = []
    for c in range(cm.shape[0]):
        tp = cm[c, c]
        total = cm[c, :].sum() + cm[:, c].sum() - tp
        values.append(100.0 * tp / total if total else float("nan"))

    return np.array(values)
''',
    "most_confused": '''
    top, found = None, None
    for row in range(cm.shape[0]):
        for col in range(cm.shape[1]):
            if row != col and (top is None or cm[row, col] > top):
                top, found = cm[row, col], (row, col)
    return found
''',
    "segment_my_image": '''
    info = model.dataset_meta
    labels = inference_model(model, str(path)).pred_sem_seg.data[0].cpu().numpy()
    img = mmcv.imread(path)[:, :, ::-1]
    tint = np.asarray(info["palette"], dtype=np.float64)[labels]
    result = ((1 - opacity) * img + opacity * tint).astype(np.uint8)
    freq = np.bincount(labels.ravel(), minlength=len(info["classes"]))
    pct = {info["classes"][j]: 100.0 * n / labels.size for j, n in enumerate(freq) if n > 0}
    return labels, result, pct
''',
}

CAROL = {
    "blend": '''
    out = image.astype(float) * (1 - opacity)
    for c in np.unique(mask):
        where = mask == c
        out[where] += opacity * np.asarray(palette[c], dtype=float)
    return out.astype(np.uint8)
''',
    "iou_per_class": '''
    m = np.array(cm, dtype=np.float64)
    tp = np.diag(m)
    fp = m.sum(axis=0) - tp
    fn = m.sum(axis=1) - tp
    with np.errstate(all="ignore"):
        return np.divide(tp, tp + fp + fn) * 100
''',
    "most_confused": '''
    masked = np.ma.masked_array(cm, mask=np.eye(cm.shape[0], dtype=bool))
    row, col = divmod(int(masked.argmax()), cm.shape[1])
    return row, col
''',
    "segment_my_image": '''
    from collections import Counter

    img = mmcv.imread(path, channel_order="rgb")
    out = inference_model(model, path)
    ids = out.pred_sem_seg.data.cpu().numpy()[0]
    vis = blend(img, ids, model.dataset_meta["palette"], opacity)
    tally = Counter(ids.ravel().tolist())
    n = ids.size
    return ids, vis, {model.dataset_meta["classes"][k]: v * 100 / n for k, v in tally.items()}
''',
}

DAN = {
    "blend": '''
    pal = np.stack([np.asarray(p, dtype=np.float32) for p in palette])
    overlay = pal[mask.astype(np.int64)]
    return np.clip(image * (1.0 - opacity) + overlay * opacity, 0, 255).astype("uint8")
''',
    "iou_per_class": '''
    diag = np.einsum("ii->i", cm).astype(float)
    union = np.add.reduce(cm, axis=0) + np.add.reduce(cm, axis=1) - diag
    safe = np.where(union == 0, 1, union)
    return np.where(union == 0, np.nan, 100 * diag / safe)
''',
    "most_confused": '''
    rows, cols = np.nonzero(~np.eye(len(cm), dtype=bool))
    values = np.asarray(cm)[rows, cols]
    k = int(np.argmax(values))
    return int(rows[k]), int(cols[k])
''',
    "segment_my_image": '''
    classes = list(model.dataset_meta["classes"])
    image = np.ascontiguousarray(mmcv.imread(path, channel_order="rgb"))
    mask = inference_model(model, path).pred_sem_seg.data[0].cpu().numpy()
    overlay = blend(image, mask, model.dataset_meta["palette"], opacity)
    share = {classes[c]: float(np.mean(mask == c)) * 100 for c in np.unique(mask)}
    return mask, overlay, share
''',
}

HONEST = {"alice": ALICE, "bob": BOB, "carol": CAROL, "dan": DAN}


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def _fill(stub: str, body: str) -> str:
    """The stub's signature and docstring with `body` in place of its placeholder."""
    keep = [line for line in stub.splitlines()
            if line.strip() not in ("# YOUR CODE HERE", "pass", "raise NotImplementedError()")]
    return "\n".join(keep) + "\n" + body.strip("\n") + "\n"


def _hand_in(release: dict, answers: dict[str, str] | None) -> dict:
    nb = copy.deepcopy(release)
    for cell in nb["cells"]:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if answers and cell["cell_type"] == "code" and grade_id in answers \
                and cell["metadata"]["nbgrader"].get("solution"):
            cell["source"] = _fill("".join(cell["source"]), answers[grade_id])
    return nb


@pytest.fixture(scope="module")
def submitted(tmp_path_factory) -> Path:
    release = _read(ROOT / "notebooks" / f"{NOTEBOOK}.ipynb")
    folder = tmp_path_factory.mktemp("hand_ins")
    for student, answers in {**HONEST, "eve": EVE, "frank": None}.items():
        (folder / student).mkdir()
        (folder / student / f"{NOTEBOOK}.ipynb").write_text(
            json.dumps(_hand_in(release, answers)))
    return folder


@pytest.fixture(scope="module")
def ranked(submitted) -> list[dict]:
    return similarity.pairs(submitted, ROOT / "notebooks")


# --- the hand-ins are what they claim to be -------------------------------------------------

class _Tensor:
    def __init__(self, a):
        self.a = np.asarray(a)

    def __getitem__(self, i):
        return _Tensor(self.a[i])

    def squeeze(self, dim):
        return _Tensor(self.a.squeeze(dim))

    def cpu(self):
        return self

    def numpy(self):
        return self.a


def _givens(rng) -> dict:
    """numpy, and stand-ins for mmcv, inference_model and a model (one fixed image)."""
    bgr = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    seg = rng.integers(0, 4, (5, 7)).astype(np.int64)
    seg[0, 0] = 20
    mmcv = SimpleNamespace(
        imread=lambda path, channel_order="bgr": bgr[..., ::-1].copy()
        if channel_order == "rgb" else bgr.copy(),
        bgr2rgb=lambda im: im[..., ::-1].copy())
    model = SimpleNamespace(dataset_meta=dict(
        classes=tuple(f"class{i}" for i in range(21)),
        palette=[[int(v) for v in rng.integers(0, 256, 3)] for _ in range(21)]))

    def inference_model(m, path):
        return SimpleNamespace(pred_sem_seg=SimpleNamespace(data=_Tensor(seg[None])))

    return dict(np=np, mmcv=mmcv, model=model, inference_model=inference_model)


def _run(answers: dict[str, str], givens: dict) -> dict:
    ns = dict(givens)
    for code in answers.values():
        exec(code, ns)  # the test's own answers
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    mask = rng.integers(0, 5, (6, 5)).astype(np.int32)
    palette = [[int(v) for v in rng.integers(0, 256, 3)] for _ in range(5)]
    cm = rng.integers(0, 50, (5, 5))
    cm[3, :] = 0
    cm[:, 3] = 0  # a class nowhere: NaN
    cm[4, 4] = 0  # a class never right: 0
    tie = np.array([[5, 2, 2], [2, 5, 0], [0, 0, 5]])
    mask_out, overlay, shares = ns["segment_my_image"](ns["model"], "photo.png", 0.3)
    return dict(blend=ns["blend"](image.copy(), mask, palette, 0.7),
                iou=ns["iou_per_class"](cm), confused=[ns["most_confused"](cm),
                                                       ns["most_confused"](tie)],
                mask=np.asarray(mask_out), overlay=np.asarray(overlay),
                shares={k: round(float(v), 6) for k, v in shares.items()})


def test_every_honest_hand_in_is_correct():
    """Each student's code gives the instructor's results (blends within 1, as graded)."""
    source = _read(ROOT / "source" / "voc" / f"{NOTEBOOK}.ipynb")
    release = tasks.answer_cells(_read(ROOT / "notebooks" / f"{NOTEBOOK}.ipynb"))
    truth = _run(tasks.solutions(source), _givens(np.random.default_rng(1)))
    assert truth["confused"][1] == (0, 1)  # a tie: the first in reading order
    assert np.isnan(truth["iou"][3]) and truth["iou"][4] == 0
    for student, answers in {**HONEST, "eve": EVE}.items():
        got = _run({g: _fill(release[g], body) for g, body in answers.items()},
                   _givens(np.random.default_rng(1)))
        assert got["blend"].dtype == np.uint8, student
        assert np.abs(got["blend"].astype(int) - truth["blend"].astype(int)).max() <= 1, student
        np.testing.assert_allclose(got["iou"], truth["iou"], err_msg=student)
        assert [tuple(map(int, p)) for p in got["confused"]] == truth["confused"], student
        np.testing.assert_array_equal(got["mask"], truth["mask"], err_msg=student)
        assert np.abs(got["overlay"].astype(int) - truth["overlay"].astype(int)).max() <= 1
        assert got["shares"] == pytest.approx(truth["shares"]), student


# --- similarity ------------------------------------------------------------------------------

def test_the_copied_pair_ranks_first(ranked):
    first = ranked[0]
    assert (first["notebook"], first["a"], first["b"]) == (NOTEBOOK, "bob", "eve")
    assert first["flagged"] and first["score"] > 0.9
    assert [m["task"] for m in first["matches"]] == [
        "blend", "iou_per_class", "most_confused", "segment_my_image"]
    # honest students share idioms, never this much
    honest = [p for p in ranked if {p["a"], p["b"]} != {"bob", "eve"}]
    assert honest and all(p["score"] < similarity.THRESHOLD for p in honest)
    assert not any(p["flagged"] for p in honest)
    assert first["score"] > 2 * max(p["score"] for p in honest)
    assert first["median"] == 0  # most pairs share nothing at all


def test_an_untouched_stub_is_not_flagged(ranked):
    # frank handed in the release's stubs: the same signatures and docstrings as everyone's
    assert not [p for p in ranked if "frank" in (p["a"], p["b"])]
    # the honest pair that shares the most shares one idiom, not the signature it was given
    alice_dan = next(p for p in ranked if (p["a"], p["b"]) == ("alice", "dan"))
    (m,) = alice_dan["matches"]
    shared = "".join(m["a_code"][s:e] for s, e in m["a_slices"])
    assert m["task"] == "segment_my_image" and "def " not in shared
    assert "overlay = blend(" in shared


SCAFFOLD = """
    colours = np.asarray(palette, dtype=np.float64)
    height, width = mask.shape[:2]
    rgb = np.asarray(image, dtype=np.float64).reshape(height, width, 3)
"""


def test_the_stub_is_boilerplate(tmp_path):
    """Code the release gives inside a stub never counts as shared; the same lines not in the
    stub would."""
    plain = _read(ROOT / "notebooks" / f"{NOTEBOOK}.ipynb")
    scaffolded = copy.deepcopy(plain)
    for cell in scaffolded["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "blend":
            cell["source"] = "".join(cell["source"]).replace(
                "    # YOUR CODE HERE", SCAFFOLD.strip("\n") + "\n    # YOUR CODE HERE")
    own = {"x": "    return (rgb * (1 - opacity) + colours[mask] * opacity).astype(np.uint8)",
           "y": "    out = rgb * (1.0 - opacity)\n    for c in np.unique(mask):\n"
                "        out[mask == c] += opacity * colours[c]\n    return np.uint8(out)"}
    for student, body in own.items():
        (tmp_path / "in" / student).mkdir(parents=True)
        (tmp_path / "in" / student / f"{NOTEBOOK}.ipynb").write_text(json.dumps(
            _hand_in(scaffolded, {"blend": body})))
    for name, nb in (("scaffolded", scaffolded), ("plain", plain)):
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{NOTEBOOK}.ipynb").write_text(json.dumps(nb))
    assert similarity.pairs(tmp_path / "in", tmp_path / "scaffolded") == []
    (without,) = similarity.pairs(tmp_path / "in", tmp_path / "plain")
    assert without["flagged"] and without["score"] > 0.4


def test_the_matches_point_at_the_copied_lines(ranked):
    blend = ranked[0]["matches"][0]
    assert blend["a_share"] > 0.9 and blend["b_share"] > 0.9
    marked_a = "".join(blend["a_code"][s:e] for s, e in blend["a_slices"])
    marked_b = "".join(blend["b_code"][s:e] for s, e in blend["b_slices"])
    assert "np.take(np.asarray(palette, dtype=np.float64), mask, axis=0)" in marked_a
    assert "np.take(np.asarray(palette, dtype=np.float64), mask, axis=0)" in marked_b
    assert "target" in marked_a and "goal" in marked_b


def test_the_html_shows_both_sides_escaped(ranked, tmp_path):
    page = similarity.write_html(ranked, tmp_path / "similarity.html").read_text()
    assert page.count("<h2 id='pair") == 1  # only the flagged pair in detail
    assert "04_predict_evaluate: bob and eve" in page
    assert page.count("<div class='side'>") == 4
    assert "c &gt; 0" in page and "n &gt; 0" in page and "c > 0" not in page
    assert "<mark>" in page
    assert f"{len(ranked) - 1} more pairs share less code" in page


def test_the_command_line_writes_html_and_json(submitted, tmp_path):
    out = tmp_path / "sim" / "similarity.html"
    assert similarity.main([str(submitted), str(out), "--release",
                            str(ROOT / "notebooks")]) == 0
    pairs = similarity.load(out)
    assert pairs == similarity.load(out.with_suffix(".json"))
    assert (pairs[0]["a"], pairs[0]["b"]) == ("bob", "eve")
    assert out.read_text().startswith("<!DOCTYPE html>")


# --- the class report ------------------------------------------------------------------------

TASKS = {"04_predict_evaluate": {"blend": 2, "iou_per_class": 2, "most_confused": 1,
                                 "segment_my_image": 3},
         "05_onnx": {"export_onnx": 2, "compare_outputs": 2, "adaptive_pool": 1}}
MEM = "stopped: used more than 6G of memory (MEM_LIMIT)"


def _verdicts() -> list[dict]:
    """Eight students, two notebooks, realistic failures."""
    out = []
    wrong = {"blend": "wrong on int32/int64 masks of a few classes, at opacities above 0.5 up "
                      "to 1",
             "iou_per_class": "wrong for classes without a true positive: 0 when present or "
                              "predicted, NaN when nowhere",
             "segment_my_image": "wrong overlay at an opacity other than 0.5 (RGB, uint8, "
                                 "palette colours at that opacity)"}
    for i, student in enumerate(["ann", "ben", "cat", "dev", "eli", "fay", "gus", "hal"]):
        for notebook, worth in TASKS.items():
            tasks_ = {}
            for task, pts in worth.items():
                tasks_[task] = [pts, pts, ""]
            if notebook == "04_predict_evaluate":
                if i in (1, 2, 3):
                    tasks_["blend"] = [1, 2, wrong["blend"]]
                if i in (2, 4):
                    tasks_["iou_per_class"] = [1, 2, wrong["iou_per_class"]]
                if i == 5:
                    tasks_["iou_per_class"] = [0, 2, f"raised KeyError in line {i} of your "
                                                     "answer"]
                if i == 6:
                    tasks_["iou_per_class"] = [0, 2, "raised KeyError in line 2 of your answer"]
                if i == 7:
                    tasks_["most_confused"] = [0, 1, "not answered"]
                    tasks_["segment_my_image"] = [0, 3, "took longer than 240 s"]
                if i == 1:
                    tasks_["segment_my_image"] = [2, 3, wrong["segment_my_image"]]
            if notebook == "05_onnx" and i == 3:
                tasks_["export_onnx"] = [2, 2, ""]
                tasks_["compare_outputs"] = [0, 2, f"not graded: {MEM}"]
                tasks_["adaptive_pool"] = [0, 1, f"not graded: {MEM}"]
            out.append(dict(student=student, notebook=notebook, seconds=30.0 + 7 * i,
                            peak_memory=(1 + i) * 2**29, tasks=tasks_))
    return out


@pytest.fixture()
def feedback(tmp_path) -> Path:
    folder = tmp_path / "feedback"
    folder.mkdir()
    verdicts = _verdicts()
    (folder / "verdicts.json").write_text(json.dumps(verdicts))
    with (tmp_path / "grades.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "notebook", "score", "max_score", "late_days", "penalty"])
        for v in verdicts:
            late = 2 if (v["student"], v["notebook"]) == ("gus", "05_onnx") else 0
            writer.writerow([v["student"], v["notebook"],
                             f"{sum(t[0] for t in v['tasks'].values()):g}",
                             f"{sum(t[1] for t in v['tasks'].values()):g}", late, late * 10])
    with (folder / "messages.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["student", "notebook", "message"], [
            "dev", "05_onnx", f"lost points: compare_outputs (not graded: {MEM}); adaptive_pool "
                              f"(not graded: {MEM}); {MEM}"]])
    return folder


def test_the_class_report(feedback, ranked):
    page = report.build(feedback / "verdicts.json", feedback.parent / "grades.csv", ranked)
    # one histogram per task, each an inline PNG
    hists = re.findall(r"<figure class='task-hist'><img alt='[^']*' "
                       r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'>", page)
    assert len(hists) == 7 and all(h.startswith("iVBORw0KGgo") for h in hists)
    assert page.count("<img ") == 8  # and the time plot
    assert "<figcaption>04_predict_evaluate · blend: points of 8 hand-ins (full marks 5, " \
           "mean 1.62 of 2)</figcaption>" in page
    assert "05_onnx · adaptive_pool: points of 8 hand-ins (full marks 7" in page
    # failure reasons, most common first, line numbers folded
    assert ("<tr><td>blend</td><td class='n'>3</td><td>wrong on int32/int64 masks of a few "
            "classes, at opacities above 0.5 up to 1</td></tr>") in page
    assert ("<tr><td>iou_per_class</td><td class='n'>2</td><td>raised KeyError in line N of "
            "your answer</td></tr>") in page
    assert "<td>most_confused</td><td class='n'>1</td><td>not answered</td>" in page
    # limit hits: dev's sandbox (once, with the tasks it stopped) and hal's task time
    assert "memory (MEM_LIMIT): 1; task time (CELL_TIMEOUT or the task&#x27;s own): 1" in page
    assert (f"<tr><td>dev</td><td>05_onnx</td><td>memory (MEM_LIMIT)</td>"
            f"<td>compare_outputs, adaptive_pool</td><td>{MEM}</td></tr>") in page
    assert "<tr><td>hal</td><td>04_predict_evaluate</td><td>task time" in page
    assert page.count("<td>dev</td><td>05_onnx</td><td>memory") == 1
    # late hand-ins
    assert ("<tr><td>gus</td><td>05_onnx</td><td class='n'>2</td><td class='n'>20</td>"
            "<td>5/5</td></tr>") in page
    assert "<td>ann</td><td>05_onnx</td><td class='n'>0" not in page
    # scores and slowest hand-ins
    assert "<tr><td>04_predict_evaluate</td><td class='n'>8</td><td class='n'>6.25</td>" in page
    assert "<tr><td>hal</td><td>04_predict_evaluate</td><td class='n'>79.0</td>" \
           "<td class='n'>4.00</td></tr>" in page
    # similar pairs
    assert f"Similar hand-ins (top {min(10, len(ranked))} of {len(ranked)})" in page
    assert ("<tr><td>04_predict_evaluate</td><td>bob</td><td>eve</td><td class='n'>"
            f"{ranked[0]['score']:.0%}</td><td>yes</td>"
            "<td>blend, iou_per_class, most_confused, segment_my_image</td></tr>") in page


def test_the_report_command(feedback, tmp_path, ranked):
    similarity.write_json(ranked, tmp_path / "similarity.json")
    out = tmp_path / "report.html"
    assert report.main([str(feedback), str(out), "--similarity",
                        str(tmp_path / "similarity.html")]) == 0
    page = out.read_text()
    assert "<h2>Late hand-ins</h2>" in page  # the grades CSV beside the feedback was found
    assert "<td>bob</td><td>eve</td>" in page
    assert "http" not in page.replace("<!DOCTYPE html>", "")  # self-contained


def test_the_report_without_grades_or_pairs(feedback):
    page = report.build(feedback / "verdicts.json", None)
    assert "Late hand-ins" not in page and "Similar hand-ins" not in page
    assert page.count("<figure class='task-hist'>") == 7


def test_the_report_ranks_the_students_models(feedback, tmp_path):
    board = [dict(student="zoe", rank=1, mIoU=41.5, aAcc=88.0, reason=""),
             dict(student="ann", rank=2, mIoU=12.25, aAcc=70.5, reason=""),
             dict(student="<eve>", rank=None, mIoU=None, aAcc=None,
                  reason="not a checkpoint (an HTML page)")]
    (tmp_path / "board.json").write_text(json.dumps(board))
    page = report.build(feedback / "verdicts.json", leaderboard=tmp_path / "board.json")
    assert "<h2>The students' models on the hidden split</h2>" in page
    rows = re.findall(r"<tr><td class='n'>(\d*)</td><td>([^<]*)</td>", page)
    assert rows[-3:] == [("1", "zoe"), ("2", "ann"), ("", "&lt;eve&gt;")]
    assert "<td class='n'>41.50</td><td class='n'>88.00</td>" in page
    assert "not a checkpoint (an HTML page)" in page
