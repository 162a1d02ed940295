"""A strict grammar for the symbolic size expressions stored in ``.pt2`` programs.

torch's deserializer hands every ``expr_str`` to ``sympy.sympify``, which
*evaluates* the string as Python: ``__import__('os').system(...)`` runs. So an
expression is parsed here first and accepted only if it is built from integer
and float literals, size symbols (``s0``, ``u3``, ``zuf1`` ...), arithmetic and
comparison operators and a fixed list of sympy / torch size functions, in
sympy's ``str`` form (``2*s0 + 1``) or its ``srepr`` form, which torch writes
(``Add(Mul(Integer(2), Symbol('s0', positive=True, integer=True)), Integer(1))``).
Nothing is evaluated. Exponents (``**``, shifts, ``PowByNatural``) must be small integer
literals, so an accepted expression cannot make sympy build a huge integer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_EXPR_CHARS = 2000
MAX_EXPR_DEPTH = 60
MAX_LITERAL_DIGITS = 19
MAX_EXPONENT = 64
#: Powers/shifts per expression: (9**64)**64 is fine, five nested ones are not.
MAX_POWERS = 3

#: Functions torch's deserializer defines (torch.utils._sympy.functions) or
#: sympy prints for size expressions.
FUNCTIONS = frozenset(
    {
        "FloorDiv", "ModularIndexing", "Where", "PythonMod", "Mod", "CleanDiv", "CeilToInt",
        "FloorToInt", "CeilDiv", "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv",
        "IntTrueDiv", "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt",
        "RoundToInt", "RoundDecimal", "ToFloat", "Identity",
        "Max", "Min", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "And", "Or", "Not", "Abs",
        "floor", "ceiling", "sqrt",
        # sympy's srepr constructors
        "Integer", "Float", "Rational", "Symbol", "Add", "Mul", "Pow", "Equality", "Unequality",
        "StrictLessThan", "LessThan", "StrictGreaterThan", "GreaterThan",
    }
)  # fmt: skip
#: Functions whose second argument is an exponent or shift amount.
_EXPONENT_FUNCTIONS = frozenset({"LShift", "RShift", "PowByNatural", "FloatPow", "Pow"})
CONSTANTS = frozenset({"True", "False", "true", "false", "oo", "zoo", "nan", "int_oo"})
_KEYWORD_RE = re.compile(r"[a-z_]{1,30}")
_NUMBER_TEXT_RE = re.compile(r"[-+]?[0-9.]{1,40}(?:[eE][-+]?[0-9]{1,4})?")
#: torch's size symbols: a lowercase prefix (s, u, ps, zf, zuf, ...) and a number.
SYMBOL_RE = re.compile(r"[a-z]{1,4}[0-9]{1,9}")

_TOKEN_RE = re.compile(
    r"\s*(?:"
    r"(?P<float>[0-9]+\.[0-9]*(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+)"
    r"|(?P<int>[0-9]+)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<str>'[^'\\]{0,60}')"
    r"|(?P<op>\*\*|//|==|!=|<=|>=|[-+*/%<>&|~(),=])"
    r")"
)
_COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")


class SymExprError(ValueError):
    """The expression is outside the grammar; the message says where."""


@dataclass(frozen=True)
class _Token:
    kind: str  # float, int, name, op, end
    text: str


@dataclass(frozen=True)
class _Value:
    """What the parser knows about a sub-expression: an integer literal or not."""

    literal: int | None = None


def check_sym_expr(text: str) -> None:
    """Raise SymExprError unless ``text`` is a size expression of the grammar above."""
    if not isinstance(text, str):
        raise SymExprError(f"expression is a {type(text).__name__}, not a string")
    if len(text) > MAX_EXPR_CHARS:
        raise SymExprError(f"expression of {len(text):,} characters (limit {MAX_EXPR_CHARS})")
    parser = _Parser(_tokenize(text), text)
    parser.expression(0)
    if parser.peek().kind != "end":
        raise SymExprError(f"unexpected {parser.peek().text!r} in {text[:80]!r}")


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos, n = 0, len(text)
    while pos < n:
        if text[pos:].isspace():
            break
        match = _TOKEN_RE.match(text, pos)
        if match is None or match.end() == pos:
            raise SymExprError(f"character {text[pos]!r} is not allowed in {text[:80]!r}")
        kind = match.lastgroup or "op"
        tokens.append(_Token(kind, match.group(kind)))
        pos = match.end()
    tokens.append(_Token("end", ""))
    return tokens


class _Parser:
    """Recursive descent over the grammar; validates, builds nothing."""

    def __init__(self, tokens: list[_Token], text: str) -> None:
        self.tokens = tokens
        self.i = 0
        self.text = text
        self.powers = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def expect(self, op: str) -> None:
        token = self.take()
        if token.text != op:
            raise SymExprError(
                f"expected {op!r}, got {token.text or 'the end'!r} in {self.text[:80]!r}"
            )

    def _deeper(self, depth: int) -> int:
        if depth >= MAX_EXPR_DEPTH:
            raise SymExprError(f"expression nested deeper than {MAX_EXPR_DEPTH} levels")
        return depth + 1

    def expression(self, depth: int) -> _Value:  # or := and ('|' and)*
        depth = self._deeper(depth)
        value = self.conjunction(depth)
        while self.peek().text == "|":
            self.take()
            value = _Value()
            self.conjunction(depth)
        return value

    def conjunction(self, depth: int) -> _Value:  # and := cmp ('&' cmp)*
        value = self.comparison(depth)
        while self.peek().text == "&":
            self.take()
            value = _Value()
            self.comparison(depth)
        return value

    def comparison(self, depth: int) -> _Value:  # cmp := sum (CMP sum)?
        value = self.sum(depth)
        if self.peek().text in _COMPARISONS:
            self.take()
            self.sum(depth)
            return _Value()
        return value

    def sum(self, depth: int) -> _Value:  # sum := term (('+'|'-') term)*
        value = self.term(depth)
        while self.peek().text in ("+", "-"):
            self.take()
            self.term(depth)
            value = _Value()
        return value

    def term(self, depth: int) -> _Value:  # term := unary (('*'|'/'|'//'|'%') unary)*
        value = self.unary(depth)
        while self.peek().text in ("*", "/", "//", "%"):
            self.take()
            self.unary(depth)
            value = _Value()
        return value

    def unary(self, depth: int) -> _Value:  # unary := ('-'|'+'|'~') unary | power
        if self.peek().text in ("-", "+", "~"):
            sign = self.take().text
            inner = self.unary(self._deeper(depth))
            if sign == "-" and inner.literal is not None:
                return _Value(-inner.literal)
            return _Value(inner.literal if sign == "+" else None)
        return self.power(depth)

    def power(self, depth: int) -> _Value:  # power := atom ('**' unary)?
        base = self.atom(depth)
        if self.peek().text == "**":
            self.take()
            self._power(self.unary(self._deeper(depth)), "**")
            return _Value()
        return base

    def atom(self, depth: int) -> _Value:
        token = self.take()
        if token.kind == "int":
            if len(token.text) > MAX_LITERAL_DIGITS:
                raise SymExprError(f"integer literal of {len(token.text)} digits in an expression")
            return _Value(int(token.text))
        if token.kind == "float":
            if len(token.text) > 40:
                raise SymExprError("float literal too long in an expression")
            return _Value()
        if token.text == "(":
            value = self.expression(depth)
            self.expect(")")
            return value
        if token.kind == "name":
            if self.peek().text == "(":
                return self.call(token.text, depth)
            if token.text in CONSTANTS or SYMBOL_RE.fullmatch(token.text):
                return _Value()
            raise SymExprError(f"name {token.text!r} is not a size symbol in {self.text[:80]!r}")
        raise SymExprError(f"unexpected {token.text or 'end'!r} in {self.text[:80]!r}")

    def call(self, name: str, depth: int) -> _Value:
        if name not in FUNCTIONS:
            raise SymExprError(f"function {name!r} is not allowed in a size expression")
        self.expect("(")
        if name in ("Symbol", "Float"):
            return self._constructor(name, depth)
        args = [self.expression(depth)]
        while self.peek().text == ",":
            self.take()
            args.append(self.expression(depth))
        self.expect(")")
        if name in _EXPONENT_FUNCTIONS:
            if len(args) != 2:
                raise SymExprError(f"{name} takes 2 arguments")
            self._power(args[1], name)
        if name == "Integer" and len(args) == 1:
            return args[0]
        return _Value()

    def _power(self, exponent: _Value, where: str) -> None:
        if exponent.literal is None or abs(exponent.literal) > MAX_EXPONENT:
            raise SymExprError(
                f"exponent of {where} must be an integer literal within +-{MAX_EXPONENT} "
                f"in {self.text[:80]!r}"
            )
        self.powers += 1
        if self.powers > MAX_POWERS:
            raise SymExprError(f"more than {MAX_POWERS} powers or shifts in one expression")

    def _constructor(self, name: str, depth: int) -> _Value:
        """``Symbol('s0', positive=True)`` / ``Float('1.5', precision=53)``: a quoted
        symbol name or number, then keyword flags."""
        token = self.take()
        body = token.text[1:-1] if token.kind == "str" else ""
        wanted = SYMBOL_RE if name == "Symbol" else _NUMBER_TEXT_RE
        if token.kind != "str" or not wanted.fullmatch(body):
            raise SymExprError(
                f"{name}() needs a quoted {'size symbol' if name == 'Symbol' else 'number'}, "
                f"got {token.text[:40]!r}"
            )
        while self.peek().text == ",":
            self.take()
            key = self.take()
            if key.kind != "name" or not _KEYWORD_RE.fullmatch(key.text):
                raise SymExprError(f"bad keyword {key.text[:40]!r} in {name}()")
            self.expect("=")
            self.expression(depth)
        self.expect(")")
        return _Value()
