"""User-facing errors.

Every mistake a user can make in their input (a file, a config key, a CLI argument) is raised as a
:class:`RopescopeInputError` that names the input and the fix. The CLI turns it into one line on stderr and
exit code 2; the library lets it propagate (it is a ``ValueError``, so ordinary ``except ValueError`` works).
"""

from __future__ import annotations


class RopescopeInputError(ValueError):
    """Bad input: ``what`` names the input, ``fix`` says what to do about it."""

    def __init__(self, what: str, problem: str, fix: str) -> None:
        self.what = what
        self.problem = problem
        self.fix = fix
        super().__init__(f"{what}: {problem} — {fix}")
