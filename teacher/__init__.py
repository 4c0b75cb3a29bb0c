"""The teacher's tooling: the student release, grading, verdicts and the grading sandbox (never shipped to students)."""
