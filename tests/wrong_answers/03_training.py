"""Plausible wrong answers for notebook 03: answer cell grade_id → what a student might write.

tests/test_grading.py hands these in (the instructor's solution with each of these cells
replaced) and expects each of them to lose points on its own task only. See source/README.md.
"""

WRONG_ANSWERS = {
    # numbers its rows with runner.iter as it is during after_train_iter (0 for the first
    # iteration: the loop counts the iteration only after its hooks ran), one below the log's step
    "loss_lr_hook": '''
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

LossLrLogger = None


@HOOKS.register_module(force=True)
class LossLrLogger(Hook):  # noqa: F811
    def before_train(self, runner):
        self.rows = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        lr = runner.optim_wrapper.get_lr()["lr"][0]
        self.rows.append({"iter": runner.iter, "loss": outputs["loss"].item(), "lr": lr})

    def after_train(self, runner):
        Path(runner.work_dir, "loss_lr.json").write_text(json.dumps(self.rows))
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
