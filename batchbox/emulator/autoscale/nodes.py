"""The syntax tree of a parsed formula. Every node keeps the 1-based line and column where it starts.

Left-associative operator chains (``a + b - c``, ``a && b && c``) are kept flat (one node, n operands) so that a long
chain is evaluated by a loop rather than by recursion.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Assign",
    "Call",
    "Chain",
    "Conditional",
    "Expr",
    "Formula",
    "Logical",
    "Member",
    "MethodCall",
    "Name",
    "Number",
    "String",
    "Unary",
]


@dataclass(frozen=True)
class Number:
    """A numeric literal."""

    value: float
    line: int
    column: int


@dataclass(frozen=True)
class String:
    """A double-quoted string literal (without the quotes)."""

    value: str
    line: int
    column: int


@dataclass(frozen=True)
class Name:
    """A variable, constant or bare word (``$PendingTasks``, ``span``, ``TimeInterval_Minute``, ``requeue``)."""

    name: str
    line: int
    column: int


@dataclass(frozen=True)
class Call:
    """A built-in function call: ``avg(...)``."""

    function: str
    args: tuple[Expr, ...]
    line: int
    column: int


@dataclass(frozen=True)
class MethodCall:
    """A sample method on a service-defined variable: ``$CPUPercent.GetSample(...)``."""

    target: Name
    method: str
    args: tuple[Expr, ...]
    line: int
    column: int


@dataclass(frozen=True)
class Member:
    """A timestamp member: ``time().hour``."""

    target: Expr
    member: str
    line: int
    column: int


@dataclass(frozen=True)
class Unary:
    """``-x`` or ``!x``."""

    operator: str
    operand: Expr
    line: int
    column: int


@dataclass(frozen=True)
class Chain:
    """A left-associative chain of arithmetic or comparison operators: ``operands[0] ops[0] operands[1] ...``."""

    operands: tuple[Expr, ...]
    operators: tuple[str, ...]
    operator_positions: tuple[tuple[int, int], ...]
    line: int
    column: int


@dataclass(frozen=True)
class Logical:
    """``a && b && ...`` or ``a || b || ...``, evaluated left to right with short-circuit."""

    operator: str
    operands: tuple[Expr, ...]
    line: int
    column: int


@dataclass(frozen=True)
class Conditional:
    """``condition ? when_true : when_false`` (nonzero is true); only the chosen branch is evaluated."""

    condition: Expr
    when_true: Expr
    when_false: Expr
    line: int
    column: int


Expr = Number | String | Name | Call | MethodCall | Member | Unary | Chain | Logical | Conditional
"""Any expression node."""


@dataclass(frozen=True)
class Assign:
    """One statement: ``name = expression``."""

    target: Name
    value: Expr
    line: int
    column: int


@dataclass(frozen=True)
class Formula:
    """A parsed and checked formula: its statements in order, and the text it came from."""

    statements: tuple[Assign, ...]
    text: str
