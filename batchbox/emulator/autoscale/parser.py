"""Parse formula text into the syntax tree of :mod:`.nodes` (lark, LALR).

The grammar is the autoscale language as Microsoft documents it: statements ``name = expression`` separated by
``;`` (line breaks are plain whitespace; empty statements and a trailing ``;`` are allowed), ``//`` comments to the
end of the line, double-quoted strings, and C-like operators from loosest to tightest binding:
``?:``, ``||``, ``&&``, ``== !=``, ``< <= > >=``, ``+ -``, ``* /``, unary ``- !``, then ``.member`` / ``.Method(...)``.

The service's own limits apply: at most 8192 characters and 100 statements. Nesting deeper than
:data:`MAX_NESTING` (parentheses, unary operators, ternaries, call arguments) is refused so that evaluation never
recurses deeply.
"""

from __future__ import annotations

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from .errors import FORMULA_TOO_LONG, FormulaError, invalid_formula
from .nodes import Assign, Call, Chain, Conditional, Expr, Logical, Member, MethodCall, Name, Number, String, Unary

__all__ = ["MAX_FORMULA_LENGTH", "MAX_NESTING", "MAX_STATEMENTS", "parse_statements"]

MAX_FORMULA_LENGTH = 8192
"""The longest formula the service accepts, in characters."""
MAX_STATEMENTS = 100
"""The most statements one formula may contain."""
MAX_NESTING = 64
"""The deepest expression nesting accepted (an emulator limit; real formulas stay far below it)."""

_GRAMMAR = r"""
start: (statement? _SEMI)* statement?
statement: NAME "=" expr

?expr: conditional
?conditional: or_expr
    | or_expr "?" expr ":" conditional      -> ternary
?or_expr: and_expr (OR and_expr)*
?and_expr: equality (AND equality)*
?equality: relation (EQUALITY relation)*
?relation: sum (RELATION sum)*
?sum: product ((PLUS | MINUS) product)*
?product: unary ((TIMES | DIVIDE) unary)*
?unary: (MINUS | NOT) unary                 -> prefix
    | postfix
?postfix: primary
    | postfix "." NAME "(" [arguments] ")"  -> method
    | postfix "." NAME                      -> member
?primary: NUMBER                            -> number
    | STRING                                -> string
    | NAME                                  -> name
    | NAME "(" [arguments] ")"              -> call
    | "(" expr ")"
arguments: expr ("," expr)*

OR: "||"
AND: "&&"
EQUALITY: "==" | "!="
RELATION: "<=" | ">=" | "<" | ">"
PLUS: "+"
MINUS: "-"
TIMES: "*"
DIVIDE: "/"
NOT: "!"
_SEMI: ";"
NAME: /\$?[A-Za-z_][A-Za-z0-9_]*/
NUMBER: /(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?/
STRING: /"[^"\n]*"/
COMMENT: /\/\/[^\n]*/

%import common.WS
%ignore WS
%ignore COMMENT
"""

_PARSER = Lark(_GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=False)
_CHAINS = {"sum", "product", "equality", "relation"}
_LOGICAL = {"or_expr": "||", "and_expr": "&&"}


def parse_statements(text: str) -> tuple[Assign, ...]:
    """Parse formula text into its statements.

    Args:
        text: the formula as the user wrote it.

    Returns:
        The statements in order (at least one).

    Raises:
        FormulaError: the text is too long, does not parse, nests too deeply, is empty or has too many statements.
    """
    if len(text) > MAX_FORMULA_LENGTH:
        line, column = _position_of(text, MAX_FORMULA_LENGTH)
        raise FormulaError(
            FORMULA_TOO_LONG, f"The formula is longer than {MAX_FORMULA_LENGTH} characters", line, column
        )
    try:
        tree = _PARSER.parse(text)
    except UnexpectedInput as error:
        raise _syntax_error(text, error) from None
    _check_nesting(tree)
    statements = tuple(_statement(child) for child in tree.children if isinstance(child, Tree))
    if not statements:
        raise invalid_formula("The formula contains no statement", *_position_of(text, len(text)))
    if len(statements) > MAX_STATEMENTS:
        extra = statements[MAX_STATEMENTS]
        raise invalid_formula(f"A formula may contain at most {MAX_STATEMENTS} statements", extra.line, extra.column)
    return statements


def _position_of(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _syntax_error(text: str, error: UnexpectedInput) -> FormulaError:
    if isinstance(error, UnexpectedCharacters):
        shown = text[error.pos_in_stream] if error.pos_in_stream is not None else "?"
        return invalid_formula(f"Unexpected character '{shown}'", error.line, error.column)
    if isinstance(error, UnexpectedToken) and error.token.type != "$END":
        return invalid_formula(f"Unexpected '{error.token}'", error.line, error.column)
    if isinstance(error, (UnexpectedToken, UnexpectedEOF)):
        return invalid_formula("Unexpected end of formula", *_position_of(text, len(text)))
    return invalid_formula(str(error).splitlines()[0])


def _check_nesting(tree: Tree[Token]) -> None:
    pending: list[tuple[Tree[Token], int]] = [(tree, 0)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_NESTING:
            raise invalid_formula(
                f"Expressions may nest at most {MAX_NESTING} levels deep", node.meta.line, node.meta.column
            )
        pending.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))


def _statement(tree: Tree[Token]) -> Assign:
    name_token, value = tree.children
    assert isinstance(name_token, Token) and isinstance(value, (Tree, Token))
    target = Name(str(name_token), name_token.line or 1, name_token.column or 1)
    return Assign(target, _expr(value), tree.meta.line, tree.meta.column)


def _expr(node: Tree[Token] | Token) -> Expr:
    if isinstance(node, Token):
        # A lone token reaches here only through an inlined rule; the grammar gives every literal its own rule.
        raise invalid_formula(f"Unexpected '{node}'", node.line or 1, node.column or 1)
    line, column = node.meta.line, node.meta.column
    kind, children = node.data, node.children
    if kind == "number":
        return Number(float(str(children[0])), line, column)
    if kind == "string":
        return String(str(children[0])[1:-1], line, column)
    if kind == "name":
        return Name(str(children[0]), line, column)
    if kind == "call":
        return Call(str(children[0]), _arguments(children[1:]), line, column)
    if kind == "method":
        target = _expr(_tree(children[0]))
        if not isinstance(target, Name):
            raise invalid_formula("Sample methods apply only to service-defined variables", line, column)
        return MethodCall(target, str(children[1]), _arguments(children[2:]), line, column)
    if kind == "member":
        return Member(_expr(_tree(children[0])), str(children[1]), line, column)
    if kind == "prefix":
        return Unary(str(children[0]), _expr(_tree(children[1])), line, column)
    if kind == "ternary":
        condition, when_true, when_false = (_expr(_tree(child)) for child in children)
        return Conditional(condition, when_true, when_false, line, column)
    if kind in _LOGICAL:
        operands = tuple(_expr(_tree(child)) for child in children[0::2])
        return Logical(_LOGICAL[kind], operands, line, column)
    if kind in _CHAINS:
        operands = tuple(_expr(_tree(child)) for child in children[0::2])
        tokens = [token for token in children[1::2] if isinstance(token, Token)]
        positions = tuple((token.line or line, token.column or column) for token in tokens)
        return Chain(operands, tuple(str(token) for token in tokens), positions, line, column)
    raise invalid_formula(f"Unsupported construct '{kind}'", line, column)


def _tree(node: Tree[Token] | Token) -> Tree[Token]:
    if isinstance(node, Token):
        raise invalid_formula(f"Unexpected '{node}'", node.line or 1, node.column or 1)
    return node


def _arguments(children: list[Tree[Token] | Token]) -> tuple[Expr, ...]:
    if not children:
        return ()
    arguments = _tree(children[0])
    return tuple(_expr(_tree(child)) for child in arguments.children)
