"""nbgrader settings of the course (read by `nbgrader …` run from the repository root).

Instructor notebooks live in source/voc/ (one nbgrader assignment, `voc`); `make assign` generates
the student release into build/nbgrader/release/voc/ and copies it to notebooks/. `make grade`
builds its own throw-away course folder and loads this file for the shared settings below.
"""

import os

c = get_config()  # noqa: F821 (provided by traitlets when nbgrader loads this file)

c.CourseDirectory.course_id = "voc-segmentation"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = os.path.join("build", "nbgrader", "release")
c.CourseDirectory.submitted_directory = os.path.join("build", "nbgrader", "submitted")
c.CourseDirectory.autograded_directory = os.path.join("build", "nbgrader", "autograded")
c.CourseDirectory.feedback_directory = os.path.join("build", "nbgrader", "feedback")
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(
    c.CourseDirectory.root, "build", "nbgrader", "gradebook.db")

# The release's answer cells get a stub that is valid in a function body and at top level, never
# raises and prints nothing, so "Run All" on a fresh release reaches the end of every notebook.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\npass"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
# `nbgrader validate` and `autograde` interrupt a cell after this many seconds (`make grade` sets
# its own CELL_TIMEOUT); smoke-mode training cells need more than nbgrader's default of 30.
c.Execute.timeout = 600
# A student who deletes a test cell is graded with the instructor's cell all the same.
c.OverwriteCells.add_missing_cells = True
