"""The teacher's tooling: release, grading, verdicts, sandbox (never shipped to students)."""
