"""Batch ``$filter``: parsing a filter expression into a predicate over REST documents.

Grammar (Batch's documented subset)::

    expr    := and ('or' and)*
    and     := unary ('and' unary)*
    unary   := 'not' unary | '(' expr ')' | compare | call [('eq'|'ne') (true|false)]
    compare := operand ('eq'|'ne'|'gt'|'ge'|'lt'|'le') operand
    call    := 'startswith' '(' property ',' 'string' ')'
    operand := property | 'string' | integer | decimal | true | false | null | datetime'ISO-8601'

Property names (``state``, ``executionInfo/exitCode``) are case-sensitive and must be in the caller's whitelist;
string values compare case-insensitively. A property missing from a document satisfies only ``eq null`` (any other
comparison with it is false). Any syntax error, unknown property or unsupported function is a 400
``InvalidQueryParameterValue`` naming ``$filter``: a filter is never silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..clock import parse_time
from ..errors import invalid_query

__all__ = ["FILTER_PROPERTIES", "Predicate", "parse_filter"]

Doc = Mapping[str, Any]
Predicate = Callable[[Doc], bool]

_MAX_FILTER_LENGTH = 8192
_MAX_DEPTH = 64


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


FILTER_PROPERTIES: dict[str, frozenset[str]] = {
    "pools": _names(
        "id displayName state allocationState vmSize creationTime lastModified stateTransitionTime "
        "allocationStateTransitionTime currentDedicatedNodes currentLowPriorityNodes targetDedicatedNodes "
        "targetLowPriorityNodes enableAutoScale taskSlotsPerNode eTag"
    ),
    "jobs": _names(
        "id displayName state previousState priority creationTime lastModified stateTransitionTime "
        "previousStateTransitionTime poolInfo/poolId executionInfo/poolId executionInfo/startTime "
        "executionInfo/endTime executionInfo/terminateReason onAllTasksComplete onTaskFailure eTag"
    ),
    "tasks": _names(
        "id displayName state previousState creationTime lastModified stateTransitionTime "
        "previousStateTransitionTime commandLine eTag requiredSlots executionInfo/exitCode "
        "executionInfo/result executionInfo/startTime executionInfo/endTime executionInfo/retryCount "
        "executionInfo/requeueCount executionInfo/lastRetryTime executionInfo/lastRequeueTime "
        "executionInfo/failureInfo/category executionInfo/failureInfo/code nodeInfo/nodeId nodeInfo/poolId "
        "nodeInfo/affinityId"
    ),
    "nodes": _names(
        "id state schedulingState stateTransitionTime lastBootTime allocationTime ipAddress vmSize "
        "isDedicated totalTasksRun runningTasksCount runningTaskSlotsCount totalTasksSucceeded"
    ),
    "files": _names("name isDirectory url properties/contentLength properties/lastModified"),
}
"""Filterable property paths per resource list (a caller may pass its own set)."""


class _FilterSyntaxError(Exception):
    pass


_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<punct>[(),])
  | (?P<datetime>datetime'(?P<dtbody>[^']*)')
  | (?P<string>'(?:[^']|'')*')
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*)
    """,
    re.VERBOSE,
)

_COMPARISONS = frozenset({"eq", "ne", "gt", "ge", "lt", "le"})
_KEYWORDS = _COMPARISONS | {"and", "or", "not", "true", "false", "null"}
_FUNCTIONS = frozenset({"startswith"})


@dataclass(frozen=True)
class _Token:
    kind: str  # punct | datetime | string | number | name | end
    text: str
    pos: int
    value: Any = None


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            raise _FilterSyntaxError(f"unexpected character {text[pos]!r} at position {pos}")
        kind = match.lastgroup
        raw = match.group(0)
        if kind == "datetime":
            parsed = parse_time(match.group("dtbody"))
            if parsed is None:
                raise _FilterSyntaxError(f"invalid datetime literal {raw!r}")
            tokens.append(_Token("datetime", raw, pos, parsed))
        elif kind == "string":
            tokens.append(_Token("string", raw, pos, raw[1:-1].replace("''", "'")))
        elif kind == "number":
            number: int | float = float(raw) if any(c in raw for c in ".eE") else int(raw)
            tokens.append(_Token("number", raw, pos, number))
        elif kind in ("punct", "name"):
            tokens.append(_Token(kind, raw, pos))
        pos = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


@dataclass(frozen=True)
class _Property:
    path: tuple[str, ...]

    def resolve(self, doc: Doc) -> Any:
        current: Any = doc
        for part in self.path:
            if not isinstance(current, Mapping):
                return None
            current = current.get(part)
        return current


@dataclass(frozen=True)
class _Literal:
    value: Any
    is_datetime: bool = False

    def resolve(self, doc: Doc) -> Any:
        return self.value


_Operand = _Property | _Literal


def _cmp(op: str, left: Any, right: Any) -> bool:
    if op == "eq":
        return bool(left == right)
    if op == "ne":
        return bool(left != right)
    try:
        if op == "gt":
            return bool(left > right)
        if op == "ge":
            return bool(left >= right)
        if op == "lt":
            return bool(left < right)
        return bool(left <= right)
    except TypeError:
        return False


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _compare(op: str, left: Any, right: Any, datetime_side: bool, null_side: bool) -> bool:
    if null_side:  # "x eq null" / "x ne null"; no ordering with null
        both_null = left is None and right is None
        return both_null if op == "eq" else (not both_null if op == "ne" else False)
    if left is None or right is None:  # a missing property matches no other comparison
        return False
    if datetime_side:
        left = left if isinstance(left, datetime) else parse_time(left) if isinstance(left, str) else None
        right = right if isinstance(right, datetime) else parse_time(right) if isinstance(right, str) else None
        return left is not None and right is not None and _cmp(op, left, right)
    if isinstance(left, bool) or isinstance(right, bool):
        if isinstance(left, bool) and isinstance(right, bool) and op in ("eq", "ne"):
            return _cmp(op, left, right)
        return False
    if _is_number(left) and _is_number(right):
        return _cmp(op, left, right)
    if isinstance(left, str) and isinstance(right, str):
        return _cmp(op, left.casefold(), right.casefold())
    return False


class _Parser:
    def __init__(self, text: str, allowed: Collection[str] | None) -> None:
        self.tokens = _tokenize(text)
        self.index = 0
        self.allowed = allowed
        self.depth = 0

    @property
    def current(self) -> _Token:
        return self.tokens[self.index]

    def _keyword(self, token: _Token) -> str | None:
        if token.kind == "name" and token.text.lower() in _KEYWORDS:
            return token.text.lower()
        return None

    def _advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def _expect_punct(self, text: str) -> None:
        token = self._advance()
        if token.kind != "punct" or token.text != text:
            raise _FilterSyntaxError(f"expected {text!r} at position {token.pos}")

    def parse(self) -> Predicate:
        predicate = self._or()
        if self.current.kind != "end":
            raise _FilterSyntaxError(f"unexpected {self.current.text!r} at position {self.current.pos}")
        return predicate

    def _or(self) -> Predicate:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise _FilterSyntaxError("the filter is nested too deeply")
        parts = [self._and()]
        while self._keyword(self.current) == "or":
            self._advance()
            parts.append(self._and())
        self.depth -= 1
        if len(parts) == 1:
            return parts[0]
        return lambda doc: any(part(doc) for part in parts)

    def _and(self) -> Predicate:
        parts = [self._unary()]
        while self._keyword(self.current) == "and":
            self._advance()
            parts.append(self._unary())
        if len(parts) == 1:
            return parts[0]
        return lambda doc: all(part(doc) for part in parts)

    def _unary(self) -> Predicate:
        token = self.current
        if self._keyword(token) == "not":
            self._advance()
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise _FilterSyntaxError("the filter is nested too deeply")
            inner = self._unary()
            self.depth -= 1
            return lambda doc: not inner(doc)
        if token.kind == "punct" and token.text == "(":
            self._advance()
            inner = self._or()
            self._expect_punct(")")
            return inner
        if token.kind == "name" and self._keyword(token) is None and self.tokens[self.index + 1].text == "(":
            return self._call()
        left = self._operand()
        op_token = self._advance()
        op = self._keyword(op_token)
        if op not in _COMPARISONS:
            raise _FilterSyntaxError(f"expected a comparison operator at position {op_token.pos}")
        right = self._operand()
        if isinstance(left, _Literal) and isinstance(right, _Literal):
            raise _FilterSyntaxError(f"the comparison at position {token.pos} does not name a property")
        datetime_side = (isinstance(left, _Literal) and left.is_datetime) or (
            isinstance(right, _Literal) and right.is_datetime
        )
        null_side = any(isinstance(side, _Literal) and side.value is None for side in (left, right))
        return lambda doc: _compare(op, left.resolve(doc), right.resolve(doc), datetime_side, null_side)

    def _call(self) -> Predicate:
        name_token = self._advance()
        if name_token.text not in _FUNCTIONS:
            raise _FilterSyntaxError(f"the function '{name_token.text}' is not supported")
        self._expect_punct("(")
        target = self._operand()
        if not isinstance(target, _Property):
            raise _FilterSyntaxError(f"the first argument of {name_token.text} must be a property")
        self._expect_punct(",")
        prefix_token = self._advance()
        if prefix_token.kind != "string":
            raise _FilterSyntaxError(f"the second argument of {name_token.text} must be a string literal")
        self._expect_punct(")")
        prefix = str(prefix_token.value).casefold()

        def startswith(doc: Doc) -> bool:
            value = target.resolve(doc)
            return isinstance(value, str) and value.casefold().startswith(prefix)

        op = self._keyword(self.current)
        if op in ("eq", "ne"):
            self._advance()
            flag_token = self._advance()
            flag = self._keyword(flag_token)
            if flag not in ("true", "false"):
                raise _FilterSyntaxError(f"expected true or false at position {flag_token.pos}")
            wanted = (flag == "true") == (op == "eq")
            return lambda doc: startswith(doc) == wanted
        return startswith

    def _operand(self) -> _Operand:
        token = self._advance()
        if token.kind == "string":
            return _Literal(token.value)
        if token.kind == "number":
            return _Literal(token.value)
        if token.kind == "datetime":
            return _Literal(token.value, is_datetime=True)
        if token.kind == "name":
            keyword = self._keyword(token)
            if keyword in ("true", "false"):
                return _Literal(keyword == "true")
            if keyword == "null":
                return _Literal(None)
            if keyword is not None:
                raise _FilterSyntaxError(f"unexpected keyword {token.text!r} at position {token.pos}")
            if self.allowed is not None and token.text not in self.allowed:
                raise _UnknownProperty(token.text)
            return _Property(tuple(token.text.split("/")))
        raise _FilterSyntaxError(f"expected a property or a value at position {token.pos}")


class _UnknownProperty(Exception):
    pass


def _match_all(doc: Doc) -> bool:
    return True


def parse_filter(text: str | None, allowed: Collection[str] | None = None) -> Predicate:
    """Compile a Batch ``$filter`` expression into a predicate over REST documents.

    Args:
        text: the decoded ``$filter`` value; None or blank matches everything.
        allowed: the property paths that may be filtered on (e.g. ``FILTER_PROPERTIES["tasks"]``); None allows any.

    Returns:
        A function ``doc -> bool``.

    Raises:
        BatchError: 400 ``InvalidQueryParameterValue`` (``$filter``) for a syntax error, an unknown property or an
            unsupported function.
    """
    if text is None or not text.strip():
        return _match_all
    if len(text) > _MAX_FILTER_LENGTH:
        raise invalid_query("$filter", text, "The filter expression is too long.")
    try:
        return _Parser(text, allowed).parse()
    except _UnknownProperty as exc:
        raise invalid_query("$filter", text, f"The property '{exc.args[0]}' cannot be used in a filter.") from None
    except _FilterSyntaxError as exc:
        raise invalid_query("$filter", text, f"Invalid filter expression: {exc}.") from None
