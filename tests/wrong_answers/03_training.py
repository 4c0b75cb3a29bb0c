"""Plausible wrong answers for notebook 03: answer cell grade_id → what a student might write.

tests/test_grading.py hands these in (the instructor's solution with each of these cells
replaced) and expects the test cell after each of them to fail. See source/README.md.
"""

WRONG_ANSWERS = {
    # builds the runner and stops there: nothing trains
    "train": '''
runner = Runner.from_cfg(run_cfg)
''',
    # the last validation instead of the best one (right on a run whose last validation is its best)
    "best_iteration": '''
def best_iteration(scalars_file):
    rows = [json.loads(line) for line in Path(scalars_file).read_text().splitlines() if line]
    return [row["step"] for row in rows if "mIoU" in row][-1]
''',
    # resumes, but keeps max_iters: the loop is already at its end and trains nothing
    "resume": '''
resume_cfg = copy.deepcopy(cfg)
resume_cfg.resume = True
resume_cfg.load_from = str(last)
resumed = Runner.from_cfg(prepare_config(resume_cfg))
model = resumed.train()
''',
}
