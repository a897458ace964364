"""Turn formula text into a checked :class:`~.nodes.Formula`: parse it, then resolve every name it uses.

This is the validity check the service runs when a formula is set (pool add, enable autoscale): unknown functions,
methods and timestamp members, wrong argument counts, sample methods on something that is not a service-defined
metric, variables read before any statement assigns them, and assignments to read-only names are all
``AutoScalingFormulaSyntaxError`` at the position of the offending construct. Type errors depend on values and are
found while evaluating.

Names: ``$``-prefixed service-defined variables are fixed; any other name (with or without ``$``) is a user variable,
case-sensitive. ``$TargetDedicated`` and ``$TargetLowPriority`` are aliases of the two targets.
"""

from __future__ import annotations

from .errors import invalid_formula
from .functions import FUNCTIONS
from .methods import METHODS
from .nodes import Assign, Call, Chain, Conditional, Expr, Formula, Logical, Member, MethodCall, Name, Unary
from .parser import parse_statements
from .samples import METRICS
from .values import NODE_DEALLOCATION_OPTIONS, TIME_INTERVAL_CONSTANTS, TIMESTAMP_MEMBERS

__all__ = [
    "DEALLOCATION",
    "DEDICATED",
    "DEDICATED_ALIAS",
    "LOW_PRIORITY",
    "LOW_PRIORITY_ALIAS",
    "OUTPUTS",
    "parse_formula",
]

DEDICATED = "$TargetDedicatedNodes"
LOW_PRIORITY = "$TargetLowPriorityNodes"
DEALLOCATION = "$NodeDeallocationOption"
DEDICATED_ALIAS = "$TargetDedicated"
LOW_PRIORITY_ALIAS = "$TargetLowPriority"
OUTPUTS = (DEDICATED, LOW_PRIORITY, DEALLOCATION)
"""The read-write service-defined variables, in the order ``autoScaleRun.results`` lists them."""

_WRITABLE_SERVICE_NAMES = frozenset({*OUTPUTS, DEDICATED_ALIAS, LOW_PRIORITY_ALIAS})
_READ_ONLY = frozenset({*METRICS, *TIME_INTERVAL_CONSTANTS, *NODE_DEALLOCATION_OPTIONS})


def parse_formula(text: str) -> Formula:
    """Parse and check a formula.

    Args:
        text: the formula as the user wrote it.

    Returns:
        The checked formula, ready to evaluate any number of times.

    Raises:
        FormulaError: the formula is too long, does not parse, or uses names it may not.
    """
    statements = parse_statements(text)
    assigned: set[str] = set()
    for statement in statements:
        _check_expr(statement.value, assigned)
        _check_target(statement)
        assigned.add(statement.target.name)
    return Formula(statements, text)


def _check_target(statement: Assign) -> None:
    target = statement.target
    if target.name in _READ_ONLY:
        raise invalid_formula(f"{target.name} is read-only", target.line, target.column)


def _check_expr(expr: Expr, assigned: set[str]) -> None:
    pending: list[Expr] = [expr]
    while pending:
        node = pending.pop()
        if isinstance(node, Name):
            _check_name(node, assigned)
        elif isinstance(node, Call):
            function = FUNCTIONS.get(node.function)
            _check_arity(node.function, function[:2] if function else None, len(node.args), node, "function")
            pending.extend(node.args)
        elif isinstance(node, MethodCall):
            if node.target.name not in METRICS:
                raise invalid_formula(
                    f"{node.target.name} is not a service-defined metric with sample methods",
                    node.target.line,
                    node.target.column,
                )
            _check_arity(node.method, METHODS.get(node.method), len(node.args), node, "method")
            pending.extend(node.args)
        elif isinstance(node, Member):
            if node.member not in TIMESTAMP_MEMBERS:
                raise invalid_formula(f"Unknown timestamp member '{node.member}'", node.line, node.column)
            pending.append(node.target)
        elif isinstance(node, Unary):
            pending.append(node.operand)
        elif isinstance(node, (Chain, Logical)):
            pending.extend(node.operands)
        elif isinstance(node, Conditional):
            pending.extend((node.condition, node.when_true, node.when_false))


def _check_name(node: Name, assigned: set[str]) -> None:
    name = node.name
    if name in assigned or name in _READ_ONLY or name in _WRITABLE_SERVICE_NAMES:
        return
    if name.startswith("$"):
        raise invalid_formula(f"Unknown variable {name}", node.line, node.column)
    raise invalid_formula(f"Variable {name} is used before it is assigned", node.line, node.column)


def _check_arity(
    name: str, signature: tuple[int, int | None] | None, count: int, node: Call | MethodCall, kind: str
) -> None:
    if signature is None:
        raise invalid_formula(f"Unknown {kind} {name}", node.line, node.column)
    fewest, most = signature
    if count < fewest or (most is not None and count > most):
        expected = f"{fewest}" if fewest == most else f"{fewest} or more" if most is None else f"{fewest} to {most}"
        raise invalid_formula(
            f"{kind.capitalize()} {name} takes {expected} arguments, not {count}", node.line, node.column
        )
