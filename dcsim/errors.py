"""The one exception a user can cause: bad input, named where it came from."""
from __future__ import annotations

from typing import Any


class DcsimInputError(ValueError):
    """Bad user input, reported as one line: where (file or key path), the value, what is allowed.

    >>> str(DcsimInputError("simulation.duration_s", -5, "a positive number of seconds"))
    'simulation.duration_s: got -5; allowed: a positive number of seconds'
    """

    def __init__(self, where: str, value: Any, allowed: str, problem: str | None = None) -> None:
        self.where = where
        self.value = value
        self.allowed = allowed
        self.problem = problem
        shown = value if isinstance(value, (int, float)) else repr(value)
        head = f"{where}: {problem}, got {shown}" if problem else f"{where}: got {shown}"
        super().__init__(f"{head}; allowed: {allowed}")
