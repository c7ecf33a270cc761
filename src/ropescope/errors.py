"""User-facing errors.

Every mistake a user can make in their input (a file, a config key, a CLI argument) is raised as a
:class:`RopescopeInputError` that names the input and the fix. The CLI turns it into one line on stderr and
exit code 2; the library lets it propagate (it is a ``ValueError``, so ordinary ``except ValueError`` works).
A config of a model without RoPE raises the subclass :class:`NotRopeError`, which carries the scheme.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ropescope.model_types import PositionalScheme


class RopescopeInputError(ValueError):
    """Bad input: ``what`` names the input, ``fix`` says what to do about it."""

    def __init__(self, what: str, problem: str, fix: str) -> None:
        self.what = what
        self.problem = problem
        self.fix = fix
        super().__init__(f"{what}: {problem} — {fix}")


class NotRopeError(RopescopeInputError):
    """The model encodes positions without RoPE: ``scheme`` (a :class:`ropescope.model_types.PositionalScheme`)
    names how, so a caller that reports schemes (the audit) can catch this and use it."""

    def __init__(self, what: str, scheme: PositionalScheme) -> None:
        self.scheme = scheme
        super().__init__(
            what,
            f"{scheme.describe()} ({scheme.reason}), not RoPE, so there is no rotary spectrum",
            "give a RoPE model's config; for this one, `ropescope audit` reports its positional scheme's own limit",
        )
