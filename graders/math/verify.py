"""Compare two parsed answers: ``verify(gold=..., pred=...) -> Verdict``.

Order of checks: the cleaned strings; multiple-choice letters; text; then structure (lists, sets, tuples,
intervals, matrices, relations) down to scalars, which are compared exactly by `algebra` (the fast path:
rationals, radicals, pi) or else by `symbolic` (sympy). The policy for percent, degrees, comma lists and
decimal golds is a `Policy` (see the package docstring).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any, Literal

from . import algebra
from .algebra import TooBig
from .parse import Answer, parse

__all__ = ["Policy", "Verdict", "verify", "cached_verify", "DEFAULT_POLICY"]

Node = tuple[Any, ...]
_OO = ("const", "oo")
_NEG_OO = ("neg", ("const", "oo"))
_MAX_ITEMS = 64
_OPTION_VALUE = re.compile(r"\([A-J]\)\s*(.+)")


@dataclass(frozen=True, slots=True)
class Policy:
    """How answers that differ only in presentation are judged (the defaults follow the label policy of
    ``math_pairs_dev.jsonl``)."""

    percent: Literal["value_or_fraction", "value"] = "value_or_fraction"  # 50\% = 50 (= 0.5 too)
    degrees: Literal["ignore", "strict"] = "ignore"  # 30^\circ = 30 (strict: both or neither)
    ordered_lists: bool = False  # bare comma lists compare as multisets unless True
    rel_tol: float = 1e-8  # relative tolerance where the gold is a decimal (capped below its last digit)


DEFAULT_POLICY = Policy()


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of `verify`; truthy when the answers are equal. `rule` names what decided."""

    equal: bool
    rule: str

    def __bool__(self) -> bool:
        return self.equal


class _Ctx:
    __slots__ = ("policy", "scale", "rules")

    def __init__(self, policy: Policy, scale: Fraction) -> None:
        self.policy = policy
        self.scale = scale
        self.rules: list[str] = []

    def rule(self, name: str, result: bool) -> bool:
        self.rules.append(name)
        return result


def verify(*, gold: Answer | str, pred: Answer | str, policy: Policy = DEFAULT_POLICY) -> Verdict:
    """Is the predicted answer equal to the gold one? Strings are parsed first (`parse`)."""
    g = parse(gold) if isinstance(gold, str) else gold
    p = parse(pred) if isinstance(pred, str) else pred
    return cached_verify(g, p, policy)


@lru_cache(maxsize=65536)
def cached_verify(g: Answer, p: Answer, policy: Policy) -> Verdict:
    """`verify` on parsed answers, cached."""
    if policy.degrees == "strict" and g.degrees != p.degrees:
        return Verdict(False, "degrees")
    if g.kind == "empty" or p.kind == "empty":
        return Verdict(False, "empty")
    if g.text == p.text:
        return Verdict(True, "string")
    if g.kind == "based" or p.kind == "based":
        return Verdict(_based_equal(g, p), "base")
    if g.kind == "choice" or p.kind == "choice":
        if g.kind != p.kind:  # "(E) 12" against 12: the option's value decides
            choice, other = (g, p) if g.kind == "choice" else (p, g)
            value = _OPTION_VALUE.fullmatch(choice.text)
            if value is not None and other.kind not in ("text", "unparsed"):
                return cached_verify(
                    *((parse(value.group(1)), other) if choice is g else (other, parse(value.group(1)))),
                    policy,
                )
        return Verdict(g.kind == p.kind and g.node == p.node, "choice")
    if g.kind == "text" and p.kind == "text":
        return Verdict(_words(g.text) == _words(p.text), "text")
    if "text" in (g.kind, p.kind):  # words against math or unparsed text: the words decide
        return Verdict(_words(g.text).replace(" ", "") == _words(p.text).replace(" ", ""), "text")
    if "unparsed" in (g.kind, p.kind):  # one side is not math: the strings decide
        return Verdict("".join(g.text.split()) == "".join(p.text.split()), "string_fallback")
    scales = [Fraction(1)]
    if policy.percent == "value_or_fraction" and g.percent != p.percent:
        scales.append(Fraction(100) if g.percent else Fraction(1, 100))
    rule = "mismatch"
    gn, pn = assignments(g.node), assignments(p.node)
    for scale in scales:
        ctx = _Ctx(policy, scale)
        try:
            ok = _eq(gn, pn, ctx)
        except TooBig:
            ok = gn == pn
            ctx.rules.append("too_large_structural")
        except (ValueError, RecursionError) as e:  # symbolic.SymbolicError: sympy could not compare them
            ok = False  # unequal, and the rule says why
            ctx.rules.append(f"sympy_failed:{type(e.__cause__ or e).__name__}")
        rule = _summarize(ctx.rules) + ("" if scale == 1 else "+percent")
        if ok:
            return Verdict(True, rule)
    return Verdict(False, rule)


def _based_equal(g: Answer, p: Answer) -> bool:
    """``1202_3`` = ``1202_{3}``; against a plain integer, the digits must match (the base is the
    problem's): ``1202_3`` = ``1202``, not ``47``."""
    if g.kind == p.kind == "based":
        return bool(g.node == p.node)
    based, other = (g, p) if g.kind == "based" else (p, g)
    if other.kind != "number" or other.node[2] or other.node[1].denominator != 1:
        return False
    sign, digits, _ = based.node
    return f"{sign}{digits}" == str(other.node[1])


def _words(s: str) -> str:
    return " ".join(s.casefold().split()).strip(" .,;:!?")


def _summarize(rules: list[str]) -> str:
    """The deciding rule: the 'strongest' one used (a numeric check outranks an exact one)."""
    for name in ("too_large_structural", "second_parser", "tolerance", "numeric_probe", "numeric", "solution_set", "cancel",
                 "expand", "symbolic", "exact", "fast_path"):  # fmt: skip
        if name in rules:
            return name
    return rules[-1] if rules else "mismatch"


# ---- structure ---------------------------------------------------------------------------------------


_ARG_TAGS = frozenset({"sym", "num", "set", "group"})


def _is_label(node: Node) -> bool:
    """What names a value on the left of ``=``: a symbol (``x``, ``a_1``), a segment or a function value
    (``AB``, ``f(x)``, ``P(\\{1\\})``: parsed as products), its absolute value (``|AB|``), or a tuple of
    labels (``(p, q)``)."""
    tag = node[0]
    if tag == "sym":
        return True
    if tag == "abs":
        return _is_label(node[1])
    if tag == "div":  # a ratio of labels: V_1 : V_2 = 11 : 21
        return _is_label(node[1]) and _is_label(node[2])
    if tag == "group" and node[1] == "(" and node[2] == ")":
        return all(_is_label(x) for x in node[3])
    return (
        tag == "mul"
        and len(node[1]) <= 3
        and node[1][0][0] == "sym"
        and all(f[0] in _ARG_TAGS for f in node[1][1:])
    )


def _has_symbol(node: Any) -> bool:
    if not isinstance(node, tuple) or not node:
        return False
    if node[0] == "sym":
        return True
    return any(_has_symbol(c) or (isinstance(c, tuple) and any(_has_symbol(x) for x in c)) for c in node[1:])


def _solutions(items: tuple[Node, ...]) -> Node:
    """``p = 5, q = 2, p = 7, q = 2`` (labels repeating in blocks: solutions joined by "and") -> the two
    solutions ``(p = 5, q = 2), (p = 7, q = 2)``, as ``;`` would group them. Other lists stay as they are."""
    labels = [_label_of(x) for x in items]
    if None in labels:
        return ("list", items)
    k = len(dict.fromkeys(labels))  # distinct labels, in order of first use
    if (
        k < 2
        or len(items) <= k
        or len(items) % k
        or any(labels[i] != labels[i % k] for i in range(len(items)))
    ):
        return ("list", items)
    return ("list", tuple(("list", items[i : i + k]) for i in range(0, len(items), k)))


def _tuple_assignment(node: Node) -> tuple[tuple[Node, ...], tuple[Node, ...]] | None:
    """``(p, q) = (3, 2)`` -> its labels and values."""
    if node[0] != "rel" or node[1] != ("=",):
        return None
    lhs, rhs = node[2]
    if (
        lhs[0] == "group"
        and rhs[0] == "group"
        and lhs[1:3] == ("(", ")") == rhs[1:3]
        and len(lhs[3]) == len(rhs[3])
        and all(_is_label(x) for x in lhs[3])
    ):
        return lhs[3], rhs[3]
    return None


def assignments(node: Node, top: bool = True) -> Node:
    """The value an equation states, before comparing: a chain ``x = 5+5+1 = 11`` is ``x = 11``; a
    computation ``3 + 5 = 8`` (no variable anywhere; alone, not in a list, where ``\\cos(\\pi) = -1`` labels
    a value) is ``8``; ``(p, q) = (3, 2)`` is ``p = 3, q = 2`` (in a list beside plain tuples, as in
    ``(x, y) = (5, 8) and (8, 5)``, the tuple ``(5, 8)``). In lists too."""
    if node[0] == "list":
        plain = any(x[0] == "group" for x in node[1])
        items = []
        for x in node[1]:
            pair = _tuple_assignment(x)
            items.append(("group", "(", ")", pair[1]) if pair and plain else assignments(x, top=False))
        return _solutions(tuple(items))
    pair = _tuple_assignment(node)
    if pair is not None:
        return ("list", tuple(("rel", ("=",), (a, b)) for a, b in zip(*pair, strict=True)))
    if node[0] == "rel" and all(op == "=" for op in node[1]):
        sides = node[2]
        if top and not any(_has_symbol(x) for x in sides):  # 3 + 5 = 8: the stated result (not 7 = 11a + c)
            return sides[-1]
        if len(sides) > 2:  # x = 5+5+1 = 11: x = 11; 1 = a = x = 0: 0
            return ("rel", ("=",), (sides[0], sides[-1])) if _is_label(sides[0]) else sides[-1]
    return node


def _label_value(node: Node) -> Node | None:
    """``x = 5`` -> 5, ``f(x) = x + 1`` -> x + 1, ``x \\in [1, 2]`` -> [1, 2]; not ``x + z = 1``."""
    if node[0] == "rel" and len(node[1]) == 1 and node[1][0] in ("=", "in") and _is_label(node[2][0]):
        return node[2][1]
    return None


def _label_of(node: Node) -> Node | None:
    """The label of ``label = value`` (``x = 5``, ``f(x) = 5``, ``|AB| = 5``), else None."""
    if node[0] == "rel" and node[1] == ("=",) and _is_label(node[2][0]):
        return node[2][0]
    return None


def _solution_point(node: Node) -> Node | None:
    """``x = 1, y = 2`` (distinct labels, not tuples of them) -> the point ``(1, 2)``."""
    if node[0] != "list":
        return None
    labels = [_label_of(x) for x in node[1]]
    if any(lab is None or lab[0] == "group" for lab in labels) or len(set(labels)) != len(labels):
        return None
    return ("group", "(", ")", tuple(x[2][1] for x in node[1]))


def _items(node: Node) -> tuple[Node, ...]:
    return node[1] if node[0] in ("list", "set") else (node,)


def _eq(g: Node, p: Node, ctx: _Ctx) -> bool:
    if g == p and ctx.scale == 1:  # the same tree: equal whatever it holds (P(\{1\}) = 3/8 on both sides)
        return ctx.rule("exact", True)
    tg, tp = g[0], p[0]
    if tg == "or" or tp == "or":  # x = 0 or y = 0: only the same disjunction
        return _match(g[1], p[1], ctx, ordered=False) if tg == tp else ctx.rule("structure", False)
    if tg == "sympy" or tp == "sympy":
        return _eq_second(g, p, ctx)
    if tg == "builder" or tp == "builder":
        return _eq_sets(g, p, ctx)
    if tg == "rel" or tp == "rel":
        return _eq_rel(g, p, ctx)
    if tp == "list" and tg not in ("list", "set") and _all_equal(p[1], ctx):  # 12x - 34, or -34 + 12x
        return _eq(g, p[1][0], ctx)
    if tg in ("list", "set") or tp in ("list", "set"):
        if _relations_vs_set(g, p) or _relations_vs_set(p, g):  # x < -2 or x > 3 against a union
            return _eq_sets(g, p, ctx)
        if (tg == "group" and len(_items(p)) == 1) or (tp == "group" and len(_items(g)) == 1):
            return _eq(_items(g)[0], _items(p)[0], ctx)  # \{(1, 2)\}: the one solution (1, 2)
        if tg == "group" or tp == "group":  # (0, 1] is neither the list 0, 1 nor the set {0, 1}
            point = _solution_point(p if tg == "group" else g)  # but (1, 2) is x = 1, y = 2
            if point is None:
                return ctx.rule("structure", False)
            return _eq(g, point, ctx) if tg == "group" else _eq(point, p, ctx)
        gi, pi_ = _items(g), _items(p)
        ordered = ctx.policy.ordered_lists and tg == tp == "list"
        return _match(gi, pi_, ctx, ordered)
    if tg == "group" and tp == "group":
        if g[1] != p[1] or g[2] != p[2] or len(g[3]) != len(p[3]):
            return ctx.rule("structure", False)
        return all(_eq(a, b, ctx) for a, b in zip(g[3], p[3], strict=True))
    if tg in _MATRIX_OPS or tp in _MATRIX_OPS:  # a sum or product of matrices: its value
        gm, pm = _matrix_value(g), _matrix_value(p)
        if gm is not None or pm is not None:
            return _eq_matrix(gm or g, pm or p, ctx)
    if tg == "matrix" or tp == "matrix":
        return _eq_matrix(g, p, ctx)
    if tg == "union" and tp == "union":
        return _match(g[1], p[1], ctx, ordered=False)
    if tg in ("group", "union") or tp in ("group", "union"):
        return ctx.rule("structure", False)
    return _scalar(g, p, ctx)


def _all_equal(items: tuple[Node, ...], ctx: _Ctx) -> bool:
    """One answer written several ways ("$12x - 34$, or $-34 + 12x$"): every item equals the first."""
    if len(items) < 2 or len(items) > 4 or any(x[0] in ("list", "set", "rel", "or") for x in items):
        return False
    probe = _Ctx(ctx.policy, Fraction(1))
    return all(_eq_item(items[0], x, probe) for x in items[1:])


def _relations_vs_set(a: Node, b: Node) -> bool:
    """A list of inequalities (``x < -2, x > 3``: "or" between them) against an interval or a union."""
    return (
        a[0] == "list"
        and all(x[0] == "rel" and x[1] != ("=",) for x in a[1])
        and (b[0] == "union" or (b[0] == "group" and len(b[3]) == 2))
    )


def _distinct_points(items: tuple[Node, ...]) -> tuple[Node, ...]:
    """A list of solutions (tuples) without exact repeats: ``(3,17,3,7)`` listed twice is one solution."""
    if len(items) < 2 or not all(x[0] == "group" for x in items):
        return items
    return tuple(dict.fromkeys(items))


def _match(gi: tuple[Node, ...], pi_: tuple[Node, ...], ctx: _Ctx, ordered: bool) -> bool:
    gi, pi_ = _distinct_points(gi), _distinct_points(pi_)
    if len(gi) != len(pi_):
        return ctx.rule("structure", False)
    if ordered or len(gi) > _MAX_ITEMS:
        return all(_eq_item(a, b, ctx) for a, b in zip(gi, pi_, strict=True))
    left = list(pi_)
    for a in gi:
        for j, b in enumerate(left):
            if _eq_item(a, b, ctx):
                del left[j]
                break
        else:
            return False
    return True


def _eq_item(a: Node, b: Node, ctx: _Ctx) -> bool:
    """`_eq` on two elements of lists; one too large to compute compares by its written structure alone,
    one sympy cannot compare is not a match (another element may be)."""
    try:
        return _eq(a, b, ctx)
    except TooBig:
        ctx.rules.append("too_large_structural")
        return a == b
    except (ValueError, RecursionError) as e:  # sympy could not compare this pair: not a match
        ctx.rules.append(f"sympy_failed:{type(e.__cause__ or e).__name__}")
        return False


def _eq_second(g: Node, p: Node, ctx: _Ctx) -> bool:
    """One side was read by the second parser (latex2sympy2_extended): compare as sympy objects."""
    from . import second

    if ctx.scale != 1:
        return ctx.rule("second_parser", False)
    try:
        a, b = second.to_sympy_any(g), second.to_sympy_any(p)
        return ctx.rule("second_parser", second.equal(a, b))
    except TooBig:
        raise
    except (
        TypeError,
        ValueError,
        ZeroDivisionError,
        OverflowError,
        NotImplementedError,
        AttributeError,
    ) as e:
        ctx.rules.append(f"second_parser_failed:{type(e).__name__}")
        return False


def _eq_sets(g: Node, p: Node, ctx: _Ctx) -> bool:
    """Two descriptions of a set of reals (relations, intervals, unions, set-builders), solved by sympy."""
    from . import symbolic

    same = symbolic.same_set(g, p)
    return ctx.rule("solution_set", same is True)


_MATRIX_OPS = frozenset({"add", "mul", "neg"})


def _matrix_value(node: Node) -> Node | None:
    """The matrix a sum or product of matrices (and numbers) is, entry by entry as nodes; None when
    `node` holds no matrix or the shapes do not fit."""
    tag = node[0]
    if tag == "matrix":
        return node
    if tag == "neg":
        m = _matrix_value(node[1])
        return None if m is None else ("matrix", tuple(tuple(("neg", x) for x in r) for r in m[1]))
    if tag == "add":
        terms = [_matrix_value(t) for t in node[1]]
        if any(t is None for t in terms):
            return None
        rows = [t[1] for t in terms if t is not None]
        if len({(len(r), len(r[0])) for r in rows}) != 1:
            return None
        return (
            "matrix",
            tuple(
                tuple(("add", cells) for cells in zip(*row, strict=True)) for row in zip(*rows, strict=True)
            ),
        )
    if tag == "mul":
        acc: Node | None = None  # the matrix so far
        scalars: list[Node] = []
        for f in node[1]:
            m = _matrix_value(f) if f[0] in ("matrix", "add", "mul", "neg") else None
            if m is None:
                if f[0] in ("matrix", "group", "set", "list"):
                    return None
                scalars.append(f)
                continue
            if acc is None:
                acc = m
                continue
            a, b = acc[1], m[1]
            if len(a[0]) != len(b):
                return None
            acc = ("matrix", tuple(
                tuple(("add", tuple(("mul", (a[i][k], b[k][j])) for k in range(len(b)))) for j in range(len(b[0])))
                for i in range(len(a))
            ))  # fmt: skip
        if acc is None:
            return None
        if scalars:
            acc = ("matrix", tuple(tuple(("mul", (*scalars, x)) for x in r) for r in acc[1]))
        return acc
    return None


def _eq_matrix(g: Node, p: Node, ctx: _Ctx) -> bool:
    def entries(n: Node) -> tuple[tuple[int, int], list[Node]] | None:
        if n[0] == "matrix":
            rows = n[1]
            return (len(rows), len(rows[0])), [x for r in rows for x in r]
        if n[0] == "group" and n[1] == "(" and n[2] == ")":  # a tuple as a column vector
            return (len(n[3]), 1), list(n[3])
        return None

    a, b = entries(g), entries(p)
    if a is None or b is None:
        return ctx.rule("structure", False)
    shape_a, shape_b = a[0], b[0]
    if shape_a != shape_b and not (g[0] != p[0] and sorted(shape_a) == sorted(shape_b) and 1 in shape_a):
        return ctx.rule("structure", False)
    return all(_eq(x, y, ctx) for x, y in zip(a[1], b[1], strict=True))


def _interval(node: Node) -> Node | None:
    """A one-variable inequality as an interval: ``x > 3`` -> (3, oo), ``1 <= x < 2`` -> [1, 2)."""
    ops, sides = node[1], node[2]
    if len(ops) == 1 and ops[0] in ("<", "<="):
        a, b = sides
        if _variable(a) and not _variable(b):
            return ("group", "(", "]" if ops[0] == "<=" else ")", (_NEG_OO, b))
        if _variable(b) and not _variable(a):
            return ("group", "[" if ops[0] == "<=" else "(", ")", (a, _OO))
    if len(ops) == 2 and all(op in ("<", "<=") for op in ops) and _variable(sides[1]):
        return ("group", "[" if ops[0] == "<=" else "(", "]" if ops[1] == "<=" else ")", (sides[0], sides[2]))
    return None


def _variable(node: Node) -> bool:
    """What a one-variable inequality bounds: a symbol, or a function value ``f(x)`` (``0 < f(x) < 1``)."""
    return node[0] == "sym" or (node[0] == "mul" and node[1][0][0] == "sym" and _is_label(node))


def _as_set(node: Node) -> Node | None:
    """The set a one-variable relation describes: ``x \\in S`` -> S, an inequality -> its interval."""
    if node[1] == ("in",) and node[2][0][0] == "sym":
        return node[2][1]
    return _interval(node)


def _eq_rel(g: Node, p: Node, ctx: _Ctx) -> bool:
    if g[0] == "rel" and p[0] == "rel":
        same_shape = g[1] == p[1] and len(g[2]) == len(p[2])
        if same_shape and all(_eq(a, b, ctx) for a, b in zip(g[2], p[2], strict=True)):
            return ctx.rule("relation", True)
        if g[1] == p[1] == ("=",):
            if _eq(g[2][0], p[2][1], ctx) and _eq(g[2][1], p[2][0], ctx):
                return ctx.rule("relation", True)
            from . import symbolic

            lg, lp = _label_value(g), _label_value(p)
            if lg is not None and lp is not None and g[2][0] == p[2][0]:
                return _eq(lg, lp, ctx)  # y = <expr> against y = <expr>: the right sides decide
            if all(_scalar_node(x) for x in (*g[2], *p[2])):
                ctx.rules.append("symbolic")
                return symbolic.equations_equal(g[2], p[2])
        gi, pi_ = _as_set(g), _as_set(p)  # x > 3 against 3 < x, x \in [1, 2] against 1 <= x <= 2
        same_var = {x for x in g[2] if x[0] == "sym"} == {x for x in p[2] if x[0] == "sym"}
        if gi is not None and pi_ is not None and same_var:
            return _eq(gi, pi_, ctx)  # both read as intervals of the same variable: that decides
        if "=" not in g[1] or "=" not in p[1]:  # -x > -1 against x < 1: the same solution set
            return _eq_sets(g, p, ctx)
        return ctx.rule("relation", False)
    rel, other = (g, p) if g[0] == "rel" else (p, g)
    value = _label_value(rel)
    if value is None:
        value = _interval(rel) if other[0] in ("group", "union") else None
        if value is None and other[0] in ("group", "union"):
            return _eq_sets(g, p, ctx)  # 1 - x < 0 against (1, \infty)
    if value is None:
        return ctx.rule("relation", False)
    return _eq(value, other, ctx) if rel is g else _eq(other, value, ctx)


_SCALAR_TAGS = frozenset(
    {
        "num",
        "sym",
        "const",
        "add",
        "neg",
        "mul",
        "div",
        "pow",
        "root",
        "fn",
        "log",
        "fact",
        "binom",
        "abs",
        "mod",
    }
)


def _scalar_node(n: Node) -> bool:
    return n[0] in _SCALAR_TAGS


# ---- scalars -----------------------------------------------------------------------------------------


def _decimal_sig(node: Node) -> int:
    """Significant digits of a decimal literal (``-0.50`` -> 2), 0 for anything else."""
    if node[0] == "neg":
        node = node[1]
    return node[2] if node[0] == "num" else 0


def _within(gold: algebra.Alg, pred: algebra.Alg, rel_tol: float) -> bool:
    """``|pred - gold| <= rel_tol * |gold|``: exactly for rationals, in floats otherwise."""
    if algebra.is_rational(gold) and algebra.is_rational(pred):
        g, p = gold.get((1, 0), Fraction(0)), pred.get((1, 0), Fraction(0))
        return abs(g - p) <= Fraction(rel_tol) * abs(g)
    gf, pf = algebra.to_float(gold), algebra.to_float(pred)
    return abs(gf - pf) <= rel_tol * abs(gf)


def _scalar(g: Node, p: Node, ctx: _Ctx) -> bool:
    if not (_scalar_node(g) and _scalar_node(p)):
        return ctx.rule("structure", False)
    if g == p and ctx.scale == 1:
        return ctx.rule("exact", True)
    ga, pa = algebra.value(g), algebra.value(p)
    if ga is not None and pa is not None:
        if ctx.scale != 1:
            pa = {k: c * ctx.scale for k, c in pa.items()}
        if ga == pa:
            fast = algebra.is_rational(ga) and g[0] == "num" and p[0] == "num"
            return ctx.rule("fast_path" if fast else "exact", True)
        sig = _decimal_sig(g)
        if sig and ctx.policy.rel_tol > 0 and _within(ga, pa, min(ctx.policy.rel_tol, 10.0 ** -(sig + 1))):
            return ctx.rule("tolerance", True)
        return ctx.rule("exact", False)
    from . import symbolic

    sig = _decimal_sig(g)
    if (
        sig
        and ctx.policy.rel_tol > 0
        and symbolic.close(g, p, min(ctx.policy.rel_tol, 10.0 ** -(sig + 1)), ctx.scale)
    ):
        return ctx.rule("tolerance", True)
    ok, rule = symbolic.equal(g, p, ctx.scale)
    return ctx.rule(rule, ok)
