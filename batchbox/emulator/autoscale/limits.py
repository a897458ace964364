"""The sandbox of an evaluation: a step budget bounds its time, element budgets bound its memory.

Formulas are evaluated by walking their syntax tree (no Python ``eval``); every node visited costs one step and every
vector element read or produced costs one more, so the work of an evaluation is bounded whatever the formula does.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import FormulaFault

__all__ = ["DEFAULT_LIMITS", "Budget", "EvaluationLimits"]


@dataclass(frozen=True)
class EvaluationLimits:
    """How much one evaluation may do.

    Attributes:
        max_steps: node visits plus vector elements touched.
        max_vector_length: the longest vector any expression may produce.
        max_elements: vector elements allocated over the whole evaluation.
    """

    max_steps: int = 250_000
    max_vector_length: int = 50_000
    max_elements: int = 500_000


DEFAULT_LIMITS = EvaluationLimits()
"""The limits used unless the caller passes its own."""


class Budget:
    """The running account of one evaluation against its :class:`EvaluationLimits`."""

    def __init__(self, limits: EvaluationLimits) -> None:
        self.limits = limits
        self.steps = 0
        self.elements = 0

    def step(self, cost: int = 1) -> None:
        """Charge ``cost`` steps.

        Raises:
            FormulaFault: the step budget is exhausted.
        """
        self.steps += cost
        if self.steps > self.limits.max_steps:
            raise FormulaFault(f"The formula exceeded the evaluation budget of {self.limits.max_steps} steps")

    def allocate(self, length: int) -> None:
        """Charge a new vector of ``length`` elements (memory and the time to fill it).

        Raises:
            FormulaFault: the vector is too long, or the evaluation allocated too many elements.
        """
        if length > self.limits.max_vector_length:
            raise FormulaFault(f"A vector may hold at most {self.limits.max_vector_length} values, not {length}")
        self.elements += length
        if self.elements > self.limits.max_elements:
            raise FormulaFault(f"The formula allocated more than {self.limits.max_elements} vector values")
        self.step(length)
