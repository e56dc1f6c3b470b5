"""The one exception a user can cause: bad input, named where it came from."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


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
        self.message = f"{head}; allowed: {allowed}"
        super().__init__(where, value, allowed, problem)  # args rebuild it: SimPy re-raises type(e)(*e.args)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple:  # pickles across processes (dask workers) with its fields
        return (type(self), (self.where, self.value, self.allowed, self.problem))


def plugin_error(where: str, obj: Any, exc: BaseException, allowed: str) -> DcsimInputError:
    """An exception raised inside a user's plug-in (a router, a policy, an arrival process) as one input error
    naming the plug-in and where it was called; a DcsimInputError it raised itself is passed on."""
    if isinstance(exc, DcsimInputError):
        return exc
    name = obj.__name__ if isinstance(obj, type) else type(obj).__name__
    return DcsimInputError(f"{where} ({name})", f"{type(exc).__name__}: {exc}"[:300], allowed,
                           problem="the plug-in raised")


def as_1d_array(where: str, values: Any, what: str = "numbers", *, finite: bool = True,
                nonempty: bool = False) -> "np.ndarray":
    """``values`` as a 1-D float64 array, or a DcsimInputError naming ``where``, the bad value and what is allowed.

    The one array check at the library's boundaries (metrics, state dictionary, latency surrogate).
    """
    import numpy as np

    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DcsimInputError(where, values, f"a 1-D array of {what}", problem="not numeric") from None
    if arr.ndim != 1:
        raise DcsimInputError(where, arr.shape, f"a 1-D array of {what}", problem="array of shape")
    if nonempty and arr.size == 0:
        raise DcsimInputError(where, [], f"at least one of {what}", problem="empty array")
    if finite:
        bad = ~np.isfinite(arr)
        if bad.any():
            i = int(np.argmax(bad))
            raise DcsimInputError(where, float(arr[i]), "finite numbers only (no NaN or inf)",
                                  problem=f"sample {i} is not finite")
    return arr


def check_number(where: str, value: Any, allowed: str, *, low: float = 0.0, low_open: bool = False,
                 high: float = float("inf"), high_open: bool = True, integer: bool = False) -> float | int:
    """``value`` as a float (an int with ``integer``) inside [low, high] (open ends where asked), or a
    DcsimInputError naming ``where``, the value and ``allowed``. The one scalar check at the library's
    boundaries; booleans, NaN and infinities are refused.

    >>> check_number("dt_s", 0.25, "a positive number of seconds", low_open=True)
    0.25
    """
    import math

    if isinstance(value, bool):
        raise DcsimInputError(where, value, allowed)
    if integer:
        import numpy as np

        if not isinstance(value, (int, np.integer)):
            raise DcsimInputError(where, value, allowed)
        v: float | int = int(value)
    else:
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise DcsimInputError(where, value, allowed) from None
        if not math.isfinite(v):
            raise DcsimInputError(where, value, allowed)
    if v < low or (low_open and v == low) or v > high or (high_open and v == high):
        raise DcsimInputError(where, value, allowed)
    return v


def clipped(value: Any, limit: int = 80) -> str:
    """``str(value)`` cut to ``limit`` characters, so a long bad value (a 128 KB CSV field) keeps its message short.

    >>> clipped("x" * 100, 10)
    'xxxxxxxxx…'
    """
    text = str(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"
