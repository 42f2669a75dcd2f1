"""A small LaTeX-math parser: the notation of final answers, to a tuple AST. No sympy, no eval.

Nodes are tuples whose first element is the tag:

- ``("num", Fraction, sig)``: a literal; `sig` is its count of significant digits when it was written as a
  decimal (``0.50`` -> 2), else 0. Repeating decimals (``0.\\overline{3}``) are exact fractions.
- ``("sym", name)``, ``("const", "pi" | "E" | "I" | "oo")``
- ``("add", terms)``, ``("neg", x)``, ``("mul", factors)``, ``("div", a, b)``, ``("pow", a, b)``,
  ``("root", x, n)``, ``("fn", name, x)``, ``("log", base | None, x)``, ``("fact", x)``, ``("binom", n, k)``,
  ``("abs", x)``, ``("mod", a, b)`` (``a \\bmod b``), ``("pm", a, b)`` (a plus-or-minus b)
- ``("group", open, close, items)``: a tuple, a point or an interval, e.g. ``[1, 2)``
- ``("set", items)``, ``("list", items)`` (a bare comma list; ``;`` groups make a list of lists),
  ``("builder", var, conditions)`` (``\\{x \\mid x \\geq 0\\}``), ``("matrix", rows)``,
  ``("rel", ops, sides)`` (``x < 3``, ``y = 2x``; ops among ``= < <= != in``, ``>`` written flipped),
  ``("union", parts)``

Conventions (the ones TeX and answer keys use): a ratio ``a:b`` is the number a/b; ``\\frac12`` and ``\\sqrt2`` take one digit; ``2^10`` is
``2^{10}``; an integer right before a numeric ``\\frac`` is a mixed number (``3\\frac{1}{2}`` = 7/2); ``e`` is
Euler's number and ``i`` the imaginary unit (on both sides alike); ``\\log`` is the natural logarithm.
Raises `ParseError` on anything else, on nesting deeper than `MAX_DEPTH` and on very long inputs.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

__all__ = ["ParseError", "parse_latex", "MAX_DEPTH", "MAX_TOKENS"]

Node = tuple[Any, ...]
MAX_DEPTH = 40  # nested groups
MAX_TOKENS = 3000
MAX_NUMBER_CHARS = 400

_TOKEN = re.compile(
    r"(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d{1,3}(?![\d.A-Za-z\\({]))?)"
    r"|(?P<cmd>\\(?:[A-Za-z]+|[{}|\\]))"
    r"|(?P<op><=|>=|!=|[-+*/^_=<>!(),\[\]{}|&';:])"
    r"|(?P<id>[A-Za-z])"
    r"|(?P<ws>\s+)"
)
_RELOPS = {
    "=": "=", "<": "<", ">": ">", "<=": "<=", ">=": ">=", "!=": "!=",
    "\\lt": "<", "\\gt": ">", "\\le": "<=", "\\leq": "<=", "\\leqslant": "<=", "\\ge": ">=",
    "\\geq": ">=", "\\geqslant": ">=", "\\ne": "!=", "\\neq": "!=", "\\in": "in",
}  # fmt: skip
_FLIP = {">": "<", ">=": "<="}
_MUL = {"*", "\\cdot", "\\times", "\\ast"}
_DIV = {"/", "\\div"}
_FUNCS = {
    "sin", "cos", "tan", "sec", "csc", "cot", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "ln",
    "log", "exp", "lg",
}  # fmt: skip
_INVERSE = {"sin": "arcsin", "cos": "arccos", "tan": "arctan"}
_GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta", "iota",
    "kappa", "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "upsilon", "phi", "varphi", "chi", "psi",
    "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Sigma", "Phi", "Psi", "Omega",
}  # fmt: skip
_MATRIX_ENVS = {
    "pmatrix",
    "bmatrix",
    "Bmatrix",
    "vmatrix",
    "Vmatrix",
    "matrix",
    "smallmatrix",
    "array",
    "cases",
}
_ATOM_CMDS = {"\\frac", "\\sqrt", "\\binom", "\\pi", "\\infty", "\\infin", "\\lfloor", "\\lceil", "\\begin",
              "\\exp", "\\imath"} | {"\\" + f for f in _FUNCS} | {"\\" + g for g in _GREEK}  # fmt: skip
_END = ("end", "")
# Commands that are operators, relations or layout, never a quantity: a parse error, not a symbol.
_OPERATORS = {
    "\\cup", "\\cap", "\\setminus", "\\pm", "\\mp", "\\approx", "\\sim", "\\equiv", "\\to", "\\rightarrow",
    "\\Rightarrow", "\\implies", "\\iff", "\\land", "\\lor", "\\wedge", "\\vee", "\\neg", "\\forall", "\\exists",
    "\\subset", "\\subseteq", "\\supset", "\\supseteq", "\\notin", "\\ni", "\\perp", "\\parallel", "\\cong",
    "\\end", "\\hline", "\\text", "\\quad", "\\qquad", "\\right", "\\left", "\\over", "\\choose", "\\mod",
    "\\bmod", "\\pmod", "\\circ", "\\cdots", "\\ldots", "\\vdots", "\\ddots", "\\sum", "\\prod", "\\int",
    "\\lim", "\\max", "\\min", "\\sup", "\\inf", "\\gcd", "\\det", "\\deg", "\\dim", "\\ker", "\\arg",
    "\\mathbb", "\\mathcal", "\\operatorname", "\\frac", "\\sqrt", "\\binom", "\\in", "\\propto", "\\mid",
}  # fmt: skip


class ParseError(ValueError):
    """The text is not an answer this parser reads."""


def _tokens(s: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos, n = 0, len(s)
    match = _TOKEN.match
    while pos < n:
        m = match(s, pos)
        if m is None:
            raise ParseError(f"unexpected character {s[pos]!r}")
        kind = m.lastgroup
        pos = m.end()
        if kind == "ws":
            continue
        text = m.group()
        if kind == "num" and len(text) > MAX_NUMBER_CHARS:
            raise ParseError("number too long")
        out.append((kind, text))  # type: ignore[arg-type]
        if len(out) > MAX_TOKENS:
            raise ParseError("answer too long")
    return out


def _number(text: str) -> Node:
    value = Fraction(text)
    if "." in text or "e" in text or "E" in text:
        digits = text.split("e")[0].split("E")[0].replace(".", "").lstrip("0")
        return ("num", value, max(len(digits), 1))
    return ("num", value, 0)


def _mul(a: Node, b: Node) -> Node:
    if a[0] == "mul":
        return ("mul", (*a[1], b))
    return ("mul", (a, b))


class _Parser:
    def __init__(self, toks: list[tuple[str, str]]) -> None:
        self.toks = toks
        self.i = 0
        self.depth = 0
        self.bars = 0  # open |...| groups: inside one, a | closes it

    # -- token helpers ---------------------------------------------------------------------------------

    def peek(self, k: int = 0) -> tuple[str, str]:
        j = self.i + k
        return self.toks[j] if 0 <= j < len(self.toks) else _END

    def next(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is _END:
            raise ParseError("unexpected end of answer")
        self.i += 1
        return tok

    def accept(self, text: str) -> bool:
        if self.peek()[1] == text:
            self.i += 1
            return True
        return False

    def expect(self, text: str) -> None:
        tok = self.peek()
        if tok[1] != text:
            raise ParseError(f"expected {text!r}, got {tok[1] or 'the end'!r}")
        self.i += 1

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ParseError(f"nested deeper than {MAX_DEPTH}")

    # -- grammar ---------------------------------------------------------------------------------------

    def top(self) -> Node:
        """A comma list; ``;`` separates groups of it (``p=5,q=2; p=7,q=2``: two solutions)."""
        groups: list[Node] = []
        while True:
            items = [self.rel()]
            while self.accept(","):
                items.append(self.rel())
            groups.append(items[0] if len(items) == 1 else ("list", tuple(items)))
            if not self.accept(";"):
                break
        if self.peek() is not _END:
            raise ParseError(f"unexpected {self.peek()[1]!r}")
        return groups[0] if len(groups) == 1 else ("list", tuple(groups))

    def rel(self) -> Node:
        sides = [self.union()]
        ops: list[str] = []
        while self.peek()[1] in _RELOPS:
            ops.append(_RELOPS[self.next()[1]])
            sides.append(self.union())
        if not ops:
            return sides[0]
        if all(op in (">", ">=") for op in ops):  # a > b > c  ->  c < b < a
            return ("rel", tuple(_FLIP[op] for op in reversed(ops)), tuple(reversed(sides)))
        return ("rel", tuple(ops), tuple(sides))

    def union(self) -> Node:
        parts = [self.ratio()]
        while self.accept("\\cup"):
            parts.append(self.ratio())
        return parts[0] if len(parts) == 1 else ("union", tuple(parts))

    def ratio(self) -> Node:
        a = self.expr()
        if self.accept(":"):  # a ratio 3:1 is the number 3/1
            return ("div", a, self.expr())
        return a

    def expr(self) -> Node:
        terms = [self.term()]
        left: list[Node] | None = None  # the terms before a \pm
        while True:
            op = self.peek()[1]
            if op == "+":
                self.i += 1
                terms.append(self.term())
            elif op == "-":
                self.i += 1
                terms.append(("neg", self.term()))
            elif op in ("\\pm", "\\mp") and left is None:
                self.i += 1
                left, terms = terms, [self.term()]
            else:
                break
        node = terms[0] if len(terms) == 1 else ("add", tuple(terms))
        if left is not None:
            return ("pm", left[0] if len(left) == 1 else ("add", tuple(left)), node)
        return node

    def term(self) -> Node:
        if self.peek()[1] in ("\\pm", "\\mp"):  # a leading \pm: "\pm 2"
            self.i += 1
            return ("pm", ("num", Fraction(0), 0), self.term())
        f = self.unary()
        while True:
            kind, text = self.peek()
            if text in _MUL:
                self.i += 1
                f = _mul(f, self.unary())
            elif text in _DIV:
                self.i += 1
                f = ("div", f, self.unary())
            elif text in ("\\bmod", "\\mod"):  # 17 \bmod 5
                self.i += 1
                f = ("mod", f, self.unary())
            elif kind == "id" or text in ("(", "{") or text in _ATOM_CMDS:
                f = _mul(f, self.power())  # implicit: 2x, 3\sqrt{2}, (x+1)(x-1)
            elif text == "|" and self.bars == 0:
                f = _mul(f, self.power())  # 2|x - 1|
            elif kind == "num" and self.peek(-1)[0] != "num":
                f = _mul(f, self.power())  # n 2^{n-2}, 2^{k} 2^{-n}, (-1) 2x; never "2 3"
            else:
                return f

    def unary(self) -> Node:
        if self.accept("-"):
            return ("neg", self.unary())
        if self.accept("+"):
            return self.unary()
        return self.power()

    def power(self) -> Node:
        base = self.postfix()
        while self.accept("^"):
            base = ("pow", base, self.script())
            while self.accept("!"):
                base = ("fact", base)
        return base

    def script(self) -> Node:
        """A superscript: ``{...}``, a signed number (``2^-3``, ``2^10``) or one symbol or command."""
        kind, text = self.peek()
        if text == "{":
            self.i += 1
            return self.inner("}")
        if text in ("-", "+"):
            self.i += 1
            inner = self.script()
            return ("neg", inner) if text == "-" else inner
        if kind == "num":
            self.i += 1
            return _number(text)
        if kind == "id":
            self.i += 1
            return ("sym", text)
        return self.atom()

    def postfix(self) -> Node:
        node = self.atom()
        while self.accept("!"):
            node = ("fact", node)
        return node

    def inner(self, close: str) -> Node:
        """The content of a group up to `close` (consumed); a comma list becomes a ``list``."""
        self.enter()
        items = [self.rel()]
        while self.accept(","):
            items.append(self.rel())
        self.expect(close)
        self.depth -= 1
        return items[0] if len(items) == 1 else ("list", tuple(items))

    def arg(self) -> Node:
        """A macro argument: ``{...}``, or one token as TeX takes it (``\\frac12`` is 1/2)."""
        kind, text = self.peek()
        if text == "{":
            self.i += 1
            return self.inner("}")
        if kind == "num":
            if len(text) > 1 and text[0].isdigit():
                self.toks[self.i] = ("num", text[1:])  # \frac12: the 1 now, the 2 next
                return ("num", Fraction(int(text[0])), 0)
            self.i += 1
            return _number(text)
        if kind == "id":
            self.i += 1
            return ("sym", text)
        if kind == "cmd":
            return self.atom()
        if text == "(":  # sqrt(4) written in plain text: \sqrt(4)
            self.i += 1
            return self.bracketed("(")
        raise ParseError(f"macro argument expected, got {text or 'the end'!r}")

    def atom(self) -> Node:
        kind, text = self.next()
        if kind == "num":
            return self.number(text)
        if kind == "id":
            return self.symbol(text)
        if text in ("(", "["):
            return self.bracketed(text)
        if text == "{":
            return self.inner("}")
        if text == "\\{":
            self.enter()
            if self.peek()[0] == "id" and self.peek(1)[1] in ("|", ":"):  # \{x \mid x \geq 0\}
                var = self.symbol(self.next()[1])
                self.i += 1
                conds = [self.rel()]
                while self.accept(",") or self.accept("\\land") or self.accept("\\wedge"):
                    conds.append(self.rel())
                self.expect("\\}")
                self.depth -= 1
                return ("builder", var, tuple(conds))
            items = [] if self.peek()[1] == "\\}" else [self.rel()]
            while self.accept(","):
                items.append(self.rel())
            self.expect("\\}")
            self.depth -= 1
            return ("set", tuple(items))
        if text == "|":
            self.enter()
            self.bars += 1
            inner = self.expr()
            self.expect("|")
            self.bars -= 1
            self.depth -= 1
            return ("abs", inner)
        if kind == "cmd":
            return self.command(text)
        raise ParseError(f"unexpected {text!r}")

    def number(self, text: str) -> Node:
        nxt = self.peek()[1]
        if nxt == "\\overline" and "." in text:  # 0.1\overline{6}
            self.i += 1
            self.expect("{")
            digits = self.next()[1]
            self.expect("}")
            if not digits.isdigit():
                raise ParseError("\\overline needs digits")
            whole, _, frac = text.partition(".")
            fixed = Fraction(whole or "0") + (Fraction(int(frac), 10 ** len(frac)) if frac else 0)
            value = fixed + Fraction(int(digits), (10 ** len(digits) - 1) * 10 ** len(frac))
            return ("num", value, 0)
        if nxt == "\\frac" and text.isdigit():  # a mixed number: 3\frac{1}{2}
            save, toks = self.i, list(self.toks)
            self.i += 1
            num, den = self.arg(), self.arg()
            if _is_int(num) and _is_int(den) and den[1] != 0:
                return ("num", Fraction(int(text)) + num[1] / den[1], 0)
            self.i, self.toks = save, toks
        return _number(text)

    def symbol(self, name: str) -> Node:
        if self.peek()[1] == "_":
            self.i += 1
            kind, text = self.peek()
            if text == "{":
                start = self.i
                self.i += 1
                self.inner("}")
                sub = "".join(t for _, t in self.toks[start + 1 : self.i - 1])
            elif kind in ("num", "id"):
                self.i += 1
                sub = text
            else:
                raise ParseError("bad subscript")
            return ("sym", f"{name}_{sub}")
        if name == "e":
            return ("const", "E")
        if name == "i":
            return ("const", "I")
        return ("sym", name)

    def bracketed(self, open_: str) -> Node:
        self.enter()
        items = [self.rel()]
        sep = ";" if self.peek()[1] == ";" else ","  # (0; -2; 6) is the tuple (0, -2, 6)
        while self.accept(sep):
            items.append(self.rel())
        close = self.next()[1]
        if close not in (")", "]"):
            raise ParseError(f"unclosed {open_!r}")
        self.depth -= 1
        if len(items) == 1 and {open_, close} in ({"(", ")"}, {"[", "]"}):
            return items[0]  # plain grouping
        return ("group", open_, close, tuple(items))

    def command(self, cmd: str) -> Node:
        name = cmd[1:]
        if cmd == "\\frac":
            return ("div", self.arg(), self.arg())
        if cmd == "\\sqrt":
            index: Node = ("num", Fraction(2), 0)
            if self.accept("["):
                index = self.expr()
                self.expect("]")
            return ("root", self.arg(), index)
        if cmd == "\\binom":
            return ("binom", self.arg(), self.arg())
        if cmd == "\\pi":
            return ("const", "pi")
        if cmd == "\\emptyset":
            return ("set", ())
        if cmd in ("\\infty", "\\infin"):
            return ("const", "oo")
        if cmd == "\\imath":
            return ("const", "I")
        if name in _GREEK:
            return self.symbol(name) if self.peek()[1] == "_" else ("sym", name)
        if name in _FUNCS:
            return self.function(name)
        if cmd in ("\\lfloor", "\\lceil"):
            self.enter()
            inner = self.expr()
            self.expect("\\rfloor" if cmd == "\\lfloor" else "\\rceil")
            self.depth -= 1
            return ("fn", "floor" if cmd == "\\lfloor" else "ceiling", inner)
        if cmd == "\\begin":
            return self.matrix()
        if (
            len(name) > 1
            and name.isalpha()
            and self.peek()[1] not in ("{", "[", "_", "^")
            and cmd not in _OPERATORS
        ):
            return (
                "sym",
                name,
            )  # \ell, \hbar, a macro of the problem's: an opaque symbol, equal only to itself
        raise ParseError(f"unsupported command {cmd}")

    def function(self, name: str) -> Node:
        power: Node | None = None
        base: Node | None = None
        if self.accept("^"):
            power = self.script()
        if name == "log" and self.accept("_"):
            base = self.script()
        if power == ("neg", ("num", Fraction(1), 0)) and name in _INVERSE:
            name, power = _INVERSE[name], None
        if self.peek()[1] == "(":
            self.i += 1
            x = self.bracketed("(")
        else:  # \sin 2x: the implicit product that follows
            x = self.power()
            while self.peek()[0] == "id" or self.peek()[1] in ("\\pi", "{"):
                x = _mul(x, self.power())
        if name in ("ln", "log", "lg"):
            if name == "lg":
                base = ("num", Fraction(10), 0)
            node: Node = ("log", base, x)
        else:
            node = ("fn", name, x)
        return ("pow", node, power) if power is not None else node

    def env_name(self) -> str:
        self.expect("{")
        parts = []
        while not self.accept("}"):
            parts.append(self.next()[1])
        return "".join(parts)

    def matrix(self) -> Node:
        env = self.env_name()
        if env not in _MATRIX_ENVS:
            raise ParseError(f"unsupported environment {env}")
        if env == "array" and self.peek()[1] == "{":
            self.env_name()  # the column spec
        self.enter()
        rows: list[tuple[Node, ...]] = []
        row: list[Node] = []
        while True:
            if self.peek()[1] == "\\end":
                break
            row.append(self.rel())
            sep = self.next()[1]
            if sep == "&":
                continue
            if sep == "\\\\":
                rows.append(tuple(row))
                row = []
                continue
            if sep == "\\end":
                self.i -= 1
                break
            raise ParseError(f"unexpected {sep!r} in a matrix")
        self.expect("\\end")
        if self.env_name() != env:
            raise ParseError(f"\\begin{{{env}}} closed by another environment")
        self.depth -= 1
        if row:
            rows.append(tuple(row))
        if env == "cases" and rows:  # a system: its lines (a condition after & is dropped)
            return rows[0][0] if len(rows) == 1 else ("list", tuple(r[0] for r in rows))
        if not rows or any(len(r) != len(rows[0]) for r in rows):
            raise ParseError("matrix rows differ in length")
        return ("matrix", tuple(rows))


def _is_int(node: Node) -> bool:
    return node[0] == "num" and node[2] == 0 and node[1].denominator == 1 and node[1] >= 0


def parse_latex(s: str) -> Node:
    """Parse one answer (already cleaned: no ``$``, ``\\left``, ``\\text``) into a tuple AST."""
    toks = _tokens(s)
    if not toks:
        raise ParseError("empty answer")
    try:
        return _Parser(toks).top()
    except RecursionError:
        raise ParseError("nested too deeply") from None
    except (ZeroDivisionError, ValueError) as e:
        if isinstance(e, ParseError):
            raise
        raise ParseError(str(e)) from None
