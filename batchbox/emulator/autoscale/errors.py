"""Formula errors in the two shapes Batch reports them.

A formula the service cannot accept is refused when it is set (pool add, enable autoscale): an HTTP 400 Batch error.
A formula that fails while it runs is reported inside the pool's ``autoScaleRun.error``::

    {"code": "InsufficientSampleData",
     "message": "Autoscale evaluation failed due to insufficient sample data",
     "values": [{"name": "Message",
                 "value": "Line 1, Col 24: Insufficient data from data set: $RunningTasks wanted 100%, received 0%"}]}

Both carry the position (1-based line and column) of the construct at fault in the ``Message`` value.
"""

from __future__ import annotations

from typing import Any

from batchbox.emulator.errors import BatchError

__all__ = [
    "FORMULA_TOO_LONG",
    "INSUFFICIENT_SAMPLES",
    "SYNTAX_ERROR",
    "FormulaError",
    "FormulaFault",
    "invalid_formula",
]

SYNTAX_ERROR = "AutoScalingFormulaSyntaxError"
"""The formula does not parse, names something that does not exist, or mixes types the language does not allow."""
FORMULA_TOO_LONG = "AutoScalingFormulaTooLong"
"""The formula is longer than the 8 KB the service accepts."""
INSUFFICIENT_SAMPLES = "InsufficientSampleData"
"""A sample method asked for more of a metric's history than is available."""

_MESSAGES = {
    SYNTAX_ERROR: "The specified auto-scaling formula has a syntax error.",
    FORMULA_TOO_LONG: "The specified auto-scaling formula exceeds lengths limit.",
    INSUFFICIENT_SAMPLES: "Autoscale evaluation failed due to insufficient sample data",
}


class FormulaError(Exception):
    """A formula that cannot be accepted or evaluated.

    Args:
        code: the Batch error code (one of the module constants).
        detail: what is wrong, without the position.
        line: 1-based line of the construct at fault.
        column: 1-based column of the construct at fault.
    """

    def __init__(self, code: str, detail: str, line: int = 1, column: int = 1) -> None:
        self.code = code
        self.detail = detail
        self.line = line
        self.column = column
        super().__init__(self.positioned_detail)

    @property
    def message(self) -> str:
        """The error's fixed, user-facing message for its code."""
        return _MESSAGES.get(self.code, _MESSAGES[SYNTAX_ERROR])

    @property
    def positioned_detail(self) -> str:
        """``Line L, Col C: detail``, the form Batch puts in the error's ``Message`` value."""
        return f"Line {self.line}, Col {self.column}: {self.detail}"

    def to_run_error(self) -> dict[str, Any]:
        """The ``autoScaleRun.error`` object (values are name/value pairs)."""
        return {
            "code": self.code,
            "message": self.message,
            "values": [{"name": "Message", "value": self.positioned_detail}],
        }

    def to_batch_error(self) -> BatchError:
        """The HTTP 400 error answered when a request sets this formula."""
        return BatchError(400, self.code, self.message, {"Message": self.positioned_detail})


class FormulaFault(Exception):
    """A fault found while computing a value, before its position is known.

    The evaluator turns it into a :class:`FormulaError` at the position of the expression being evaluated.

    Args:
        detail: what is wrong.
        code: the Batch error code (defaults to :data:`SYNTAX_ERROR`).
    """

    def __init__(self, detail: str, code: str = SYNTAX_ERROR) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code

    def at(self, line: int, column: int) -> FormulaError:
        """The positioned error."""
        return FormulaError(self.code, self.detail, line, column)


def invalid_formula(detail: str, line: int = 1, column: int = 1) -> FormulaError:
    """An :data:`SYNTAX_ERROR` at the given position."""
    return FormulaError(SYNTAX_ERROR, detail, line, column)
