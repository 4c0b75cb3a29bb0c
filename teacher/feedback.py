"""What feedback shows a student: the visible checks, never the hidden tests.

nbgrader's default ``GenerateFeedback`` shows the instructor's test cells as they ran, hidden
tests included, so one cohort's feedback would be the next one's answer key. The grader's
feedback runs nbgrader's ``ClearHiddenTests`` and then :class:`HideGrading`, which drops the
records that the hidden tests wrote for the grader and turns an error raised inside a test cell
into one line (the traceback would quote the hidden test's code).
"""

from __future__ import annotations

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

from helpers.checks.record import RECORD_MIME

__all__ = ["HideGrading", "PREPROCESSORS"]


class HideGrading(Preprocessor):
    """Drop grader records from every cell; reduce test cells' errors to ``ename: evalue``."""

    enabled = Bool(True, help="nbgrader registers preprocessors without enabling them")

    def preprocess_cell(self, cell, resources, index):
        graded = cell.get("metadata", {}).get("nbgrader", {}).get("grade")
        kept = []
        for out in cell.get("outputs", []):
            if RECORD_MIME in out.get("data", {}):
                continue
            if graded and out.get("output_type") == "error":
                out["traceback"] = [f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"
                                    " (raised while your answer was tested)"]
            kept.append(out)
        cell["outputs"] = kept
        return cell, resources


#: ``GenerateFeedback.preprocessors`` for the grader's nbgrader configuration.
PREPROCESSORS = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "teacher.feedback.HideGrading",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
