"""The compound answer structures of `math_strategies`: equations, inequalities (chained ones too), intervals and
unions, labelled assignments, tuples, sets of tuples, lists of solutions, matrices, ratios, multiple choice, text,
and values with units, percent, degrees or dollars."""

from __future__ import annotations

from fractions import Fraction as Q
from typing import Any

from hypothesis import strategies as st
from math_strategies import Draw, Structure, add, canon, differs, nonzero, num, sep, shuffled, small_q

# ---- equations: y = m x + c -------------------------------------------------------------------------------------

lines = st.tuples(nonzero(-6, 6), st.integers(-9, 9))


def affine(m: int, c: int, x: str = "x", c_first: bool = False, cdot: bool = False) -> str:
    mx = {1: x, -1: f"-{x}"}.get(m, f"{m} \\cdot {x}" if cdot else f"{m}{x}")
    if c == 0:
        return mx
    if c_first:
        return f"{c} - {mx[1:]}" if mx.startswith("-") else f"{c} + {mx}"
    return f"{mx} {'+' if c > 0 else '-'} {abs(c)}"


def line_gold(v: tuple[int, int]) -> str:
    return f"y = {affine(*v)}"


def general(m: int, c: int) -> str:
    """m x - y + c = 0."""
    return f"{affine(m, 0)} - y{f' + {c}' if c > 0 else f' - {-c}' if c < 0 else ''} = 0"


add(Structure(
    "equation", lines, line_gold,
    forms={
        "rhs_reordered": lambda d, v: f"y = {affine(*v, c_first=True)}",
        "sides_swapped": lambda d, v: f"{affine(*v)} = y",
        "general": lambda d, v: general(*v),
        "scaled": lambda d, v: f"2y = {affine(2 * v[0], 2 * v[1])}",
        "moved": lambda d, v: f"y - {affine(v[0], 0)} = {v[1]}".replace("- -", "+ "),
        "cdot": lambda d, v: f"y = {affine(*v, cdot=True)}",
        "left_right": lambda d, v: f"y = \\left({affine(*v)}\\right)",
    },
    perturbations={
        "constant": lambda d, v: line_gold((v[0], v[1] + 1)),
        "slope": lambda d, v: line_gold((v[0] + 1, v[1])) if v[0] != -1 else None,
        "sign_flip": lambda d, v: line_gold((-v[0], -v[1])),
        "variable": lambda d, v: f"z = {affine(*v)}",
        "variables_swapped": lambda d, v: f"x = {affine(*v, x='y')}" if v[0] != -1 and v != (1, 0) else None,
    },
))  # fmt: skip


# ---- inequalities and intervals --------------------------------------------------------------------------------

OPS = {
    "<": ("<", "\\lt", ">"),
    ">": (">", "\\gt", "<"),
    "<=": ("\\le", "\\leq", "\\ge"),
    ">=": ("\\ge", "\\geq", "\\le"),
}
PLAIN = {"<": "<", ">": ">", "<=": "<=", ">=": ">="}
FLIP = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}
STRICT = {"<": "<=", "<=": "<", ">": ">=", ">=": ">"}
inequalities = st.tuples(st.sampled_from(list(OPS)), small_q(-20, 20, 4))


def ineq_gold(v: tuple[str, Q]) -> str:
    return f"x {OPS[v[0]][0]} {canon(v[1])}"


def ray(op: str, a: str, plus: bool = False) -> str:
    inf = "+\\infty" if plus else "\\infty"
    return {"<": f"(-\\infty, {a})", "<=": f"(-\\infty, {a}]", ">": f"({a}, {inf})", ">=": f"[{a}, {inf})"}[
        op
    ]


add(Structure(
    "inequality", inequalities, ineq_gold,
    forms={
        "alt_command": lambda d, v: f"x {OPS[v[0]][1]} {num(d, v[1])}",
        "plain_ascii": lambda d, v: f"x {PLAIN[v[0]]} {num(d, v[1])}",
        "flipped": lambda d, v: f"{num(d, v[1])} {OPS[v[0]][2]} x",
        "interval": lambda d, v: ray(v[0], num(d, v[1])),
        "interval_plus_inf": lambda d, v: ray(v[0], num(d, v[1]), plus=True),
        "in_interval": lambda d, v: f"x \\in {ray(v[0], num(d, v[1]))}",
        "set_builder": lambda d, v: f"\\{{x \\mid x {OPS[v[0]][0]} {canon(v[1])}\\}}",
        "negated": lambda d, v: f"-x {OPS[FLIP[v[0]]][0]} {canon(-v[1])}",
    },
    perturbations={
        "flipped_direction": lambda d, v: ineq_gold((FLIP[v[0]], v[1])),
        "strictness": lambda d, v: ineq_gold((STRICT[v[0]], v[1])),
        "bound": lambda d, v: ineq_gold((v[0], v[1] + 1)),
        "sign_flip": lambda d, v: ineq_gold((v[0], -v[1])) if v[1] else None,
        "variable": lambda d, v: ineq_gold(v).replace("x", "y"),
        "interval_bracket": lambda d, v: ray(STRICT[v[0]], canon(v[1])),
    },
))  # fmt: skip

LE, GEQ = "\\le", "\\geq"
# a (< or <=) x (< or <=) b, a < b
chains = st.tuples(st.booleans(), st.booleans(), small_q(-20, 20, 3), st.integers(1, 20))


def chain_gold(v: tuple[bool, bool, Q, int]) -> str:
    lo_closed, hi_closed, a, w = v
    return f"{canon(a)} {LE if lo_closed else '<'} x {LE if hi_closed else '<'} {canon(a + w)}"


def chain_interval(v: tuple[bool, bool, Q, int], a: str, b: str, lr: bool = False) -> str:
    left, right = "[" if v[0] else "(", "]" if v[1] else ")"
    if lr:
        left, right = f"\\left{left}", f"\\right{right}"
    return f"{left}{a}, {b}{right}"


def chain_reversed(v: tuple[bool, bool, Q, int], a: str, b: str) -> str:
    return f"{b} {GEQ if v[1] else '>'} x {GEQ if v[0] else '>'} {a}"


def ends(draw: Draw, v: tuple[bool, bool, Q, int]) -> tuple[str, str]:
    return num(draw, v[2]), num(draw, v[2] + v[3])


add(Structure(
    "chained_inequality", chains, chain_gold,
    forms={
        "reversed": lambda d, v: chain_reversed(v, *ends(d, v)),
        "interval": lambda d, v: chain_interval(v, *ends(d, v)),
        "interval_left_right": lambda d, v: chain_interval(v, *ends(d, v), lr=True),
        "in_interval": lambda d, v: f"x \\in {chain_interval(v, *ends(d, v))}",
        "ascii": lambda d, v: chain_gold(v).replace("\\le", "<="),
        "leq_command": lambda d, v: chain_gold(v).replace("\\le", "\\leq"),
    },
    perturbations={
        "left_bracket": lambda d, v: chain_gold((not v[0], *v[1:])),
        "right_bracket": lambda d, v: chain_gold((v[0], not v[1], *v[2:])),
        "bound": lambda d, v: chain_gold((*v[:3], v[3] + 1)),
        "one_side_dropped": lambda d, v: f"x {LE if v[1] else '<'} {canon(v[2] + v[3])}",
        "interval_bracket": lambda d, v: chain_interval((not v[0], *v[1:]), canon(v[2]), canon(v[2] + v[3])),
    },
))  # fmt: skip


@st.composite
def unions(draw: Draw) -> list[tuple[bool, Q | None, Q | None, bool]]:
    """Disjoint intervals, sorted, with gaps between them: (closed left, left, right, closed right); None = infinity."""
    cuts = sorted(draw(st.sets(st.integers(-30, 30), min_size=2, max_size=6)))
    cuts = cuts[: len(cuts) // 2 * 2]
    ivs = []
    for i in range(0, len(cuts), 2):
        ivs.append([draw(st.booleans()), Q(cuts[i]), Q(cuts[i + 1]), draw(st.booleans())])
    if draw(st.booleans()):
        ivs[0][0], ivs[0][1] = False, None
    if draw(st.booleans()):
        ivs[-1][3], ivs[-1][2] = False, None
    return [tuple(iv) for iv in ivs]  # type: ignore[misc]


def interval(
    iv: Any, a: str | None = None, b: str | None = None, plus: bool = False, lr: bool = False
) -> str:
    lc, lo, hi, rc = iv
    left = "-\\infty" if lo is None else a or canon(lo)
    right = ("+\\infty" if plus else "\\infty") if hi is None else b or canon(hi)
    lb, rb = "[" if lc else "(", "]" if rc else ")"
    if lr:
        lb, rb = f"\\left{lb}", f"\\right{rb}"
    return f"{lb}{left}, {right}{rb}"


def union_gold(ivs: list[Any]) -> str:
    return " \\cup ".join(interval(iv) for iv in ivs)


def union_changed(draw: Draw, ivs: list[Any], how: str) -> str | None:
    finite = [(i, j) for i, iv in enumerate(ivs) for j in (1, 2) if iv[j] is not None]
    if how == "drop":
        return union_gold(ivs[:-1]) if len(ivs) > 1 else None
    if not finite:
        return None
    i, j = draw(st.sampled_from(finite))
    iv = list(ivs[i])
    if how == "bracket":
        iv[0 if j == 1 else 3] = not iv[0 if j == 1 else 3]
    else:  # move the end outwards by 1/2: stays disjoint from the others (cuts are integers)
        iv[j] = iv[j] + (Q(-1, 2) if j == 1 else Q(1, 2))
    return union_gold([*ivs[:i], tuple(iv), *ivs[i + 1 :]])


add(Structure(
    "interval_union", unions(), union_gold,
    forms={
        "reordered": lambda d, u: " \\cup ".join(interval(iv) for iv in shuffled(d, u)),
        "plus_infinity": lambda d, u: " \\cup ".join(interval(iv, plus=True) for iv in u),
        "left_right": lambda d, u: " \\cup ".join(interval(iv, lr=True) for iv in u),
        "tight": lambda d, u: "\\cup".join(interval(iv).replace(" ", "") for iv in u),
        "number_forms": lambda d, u: " \\cup ".join(
            interval(iv, None if iv[1] is None else num(d, iv[1]), None if iv[2] is None else num(d, iv[2]))
            for iv in u),
    },
    perturbations={
        "bracket": lambda d, u: union_changed(d, u, "bracket"),
        "endpoint": lambda d, u: union_changed(d, u, "endpoint"),
        "piece_dropped": lambda d, u: union_changed(d, u, "drop"),
        "cap_for_cup": lambda d, u: union_gold(u).replace("\\cup", "\\cap") if len(u) > 1 else None,
    },
))  # fmt: skip


# ---- labelled assignments, tuples, sets of tuples, lists ---------------------------------------------------------

NAMES = [("x", "y"), ("x", "y", "z"), ("a", "b"), ("a", "b", "c"), ("p", "q"), ("m", "n")]


@st.composite
def assignments(draw: Draw, tuple_gold: bool) -> tuple[tuple[str, ...], tuple[Q, ...], bool]:
    names = draw(st.sampled_from(NAMES))
    values = tuple(draw(st.lists(small_q(-20, 20, 3), min_size=len(names), max_size=len(names))))
    return names, values, tuple_gold  # gold as '(x, y) = (1, 2)' or 'x = 1, y = 2'


def as_pairs(names: tuple[str, ...], values: tuple[Q, ...]) -> str:
    return ", ".join(f"{n} = {canon(v)}" for n, v in zip(names, values, strict=True))


def as_tuple(names: tuple[str, ...], values: tuple[Q, ...]) -> str:
    return f"({', '.join(names)}) = ({', '.join(canon(v) for v in values)})"


def assign_gold(v: Any) -> str:
    return as_tuple(v[0], v[1]) if v[2] else as_pairs(v[0], v[1])


def assign_joined(draw: Draw, v: Any, joiner: str | None = None, reorder: bool = True) -> str:
    pairs = [f"{n} = {num(draw, x)}" for n, x in zip(v[0], v[1], strict=True)]
    pairs = shuffled(draw, pairs) if reorder else pairs
    return (joiner if joiner is not None else sep(draw)).join(pairs)


def assign_changed(draw: Draw, v: Any, how: str) -> str | None:
    names, values, style = v
    i = draw(st.integers(0, len(names) - 1))
    if how == "swap":
        j = (i + 1) % len(names)
        if values[i] == values[j]:
            return None
        vals = list(values)
        vals[i], vals[j] = vals[j], vals[i]
        return assign_gold((names, tuple(vals), style))
    if how == "value":
        return assign_gold((names, tuple(x + 1 if k == i else x for k, x in enumerate(values)), style))
    if how == "name":
        unused = next(c for c in "uvwrs" if c not in names)
        return assign_gold((tuple(unused if k == i else n for k, n in enumerate(names)), values, style))
    if how == "drop":
        return as_pairs(names[:i] + names[i + 1 :], values[:i] + values[i + 1 :])
    raise ValueError(how)


LABELLED_FORMS: dict[str, Any] = {
    "pairs": lambda d, v: assign_joined(d, v, ", ", reorder=False),
    "pairs_reordered": lambda d, v: assign_joined(d, v),
    "tuple": lambda d, v: f"({', '.join(v[0])}) = ({', '.join(num(d, x) for x in v[1])})",
    "values_tuple": lambda d, v: f"({', '.join(num(d, x) for x in v[1])})",
    "semicolon": lambda d, v: assign_joined(d, v, "; "),
    "and": lambda d, v: assign_joined(d, v, " \\text{ and } "),
    "quad": lambda d, v: assign_joined(d, v, ", \\quad "),
    "cases": lambda d, v: "\\begin{cases} " + assign_joined(d, v, " \\\\ ") + " \\end{cases}",
}
LABELLED_PERTURBATIONS: dict[str, Any] = {
    "values_swapped": lambda d, v: assign_changed(d, v, "swap"),
    "value": lambda d, v: assign_changed(d, v, "value"),
    "name": lambda d, v: assign_changed(d, v, "name"),
    "dropped": lambda d, v: assign_changed(d, v, "drop"),
    "joined_by_or": lambda d, v: " \\text{ or } ".join(
        f"{n} = {canon(x)}" for n, x in zip(v[0], v[1], strict=True)
    ),
}
# gold 'x = 1, y = 2' and gold '(x, y) = (1, 2)'
add(Structure("labelled", assignments(False), assign_gold, LABELLED_FORMS, LABELLED_PERTURBATIONS))
add(Structure("labelled_tuple", assignments(True), assign_gold, LABELLED_FORMS, LABELLED_PERTURBATIONS))

tuples = st.lists(small_q(-30, 30, 5), min_size=2, max_size=4).map(tuple)


def tup(xs: tuple[Q, ...], s: str = ", ") -> str:
    return f"({s.join(canon(x) for x in xs)})"


def tuple_changed(draw: Draw, xs: tuple[Q, ...], how: str) -> str | None:
    i = draw(st.integers(0, len(xs) - 1))
    if how == "swap":
        j = (i + 1) % len(xs)
        if xs[i] == xs[j]:
            return None
        ys = list(xs)
        ys[i], ys[j] = ys[j], ys[i]
        return tup(tuple(ys))
    if how == "drop":
        return tup(xs[:i] + xs[i + 1 :])
    if how == "add":
        return tup((*xs, draw(small_q())))
    if how == "value":
        return tup(tuple(x + 1 if k == i else x for k, x in enumerate(xs)))
    if how == "sign":
        return tup(tuple(-x if k == i else x for k, x in enumerate(xs))) if xs[i] else None
    raise ValueError(how)


add(Structure(
    "tuple", tuples, tup,
    forms={
        "spacing": lambda d, xs: f"({sep(d).join(canon(x) for x in xs)})",
        "left_right": lambda d, xs: f"\\left( {', '.join(canon(x) for x in xs)} \\right)",
        "number_forms": lambda d, xs: f"({', '.join(num(d, x) for x in xs)})",
        "column_vector": lambda d, xs: "\\begin{pmatrix} " + " \\\\ ".join(canon(x) for x in xs) + " \\end{pmatrix}",
    },
    perturbations={
        "swapped": lambda d, xs: tuple_changed(d, xs, "swap"),
        "dropped": lambda d, xs: tuple_changed(d, xs, "drop"),
        "added": lambda d, xs: tuple_changed(d, xs, "add"),
        "value": lambda d, xs: tuple_changed(d, xs, "value"),
        "sign_flip": lambda d, xs: tuple_changed(d, xs, "sign"),
        "square_brackets": lambda d, xs: tup(xs).replace("(", "[").replace(")", "]"),
    },
))  # fmt: skip

pair_sets = st.sets(st.tuples(st.integers(-12, 12), st.integers(-12, 12)), min_size=2, max_size=4).map(sorted)


def pairs_str(ps: list[tuple[int, int]], joiner: str = ", ") -> str:
    return joiner.join(f"({a}, {b})" for a, b in ps)


def pset(ps: list[tuple[int, int]]) -> str:
    return f"\\{{{pairs_str(ps)}\\}}"


def pset_changed(draw: Draw, ps: list[tuple[int, int]], how: str) -> str | None:
    i = draw(st.integers(0, len(ps) - 1))
    a, b = ps[i]
    if how == "swap":
        return None if a == b or (b, a) in ps else pset(ps[:i] + [(b, a)] + ps[i + 1 :])
    if how == "drop":
        return pset(ps[:i] + ps[i + 1 :])
    if how == "value":
        return None if (a, b + 1) in ps else pset(ps[:i] + [(a, b + 1)] + ps[i + 1 :])
    if how == "add":
        extra = (99, -99)
        return pset([*ps, extra])
    raise ValueError(how)


add(Structure(
    "set_of_tuples", pair_sets, pset,
    forms={
        "reordered": lambda d, ps: pset(shuffled(d, ps)),
        "left_right": lambda d, ps: f"\\left\\{{ {pairs_str(shuffled(d, ps))} \\right\\}}",
        "bare_list": lambda d, ps: pairs_str(shuffled(d, ps)),
        "and": lambda d, ps: pairs_str(shuffled(d, ps), " \\text{ and } "),
        "semicolon": lambda d, ps: pairs_str(shuffled(d, ps), "; "),
    },
    perturbations={
        "coordinates_swapped": lambda d, ps: pset_changed(d, ps, "swap"),
        "dropped": lambda d, ps: pset_changed(d, ps, "drop"),
        "value": lambda d, ps: pset_changed(d, ps, "value"),
        "added": lambda d, ps: pset_changed(d, ps, "add"),
    },
))  # fmt: skip

solution_lists = st.lists(small_q(-30, 30, 5), min_size=2, max_size=4, unique=True)


def sol_gold(xs: list[Q]) -> str:
    return ", ".join(canon(x) for x in xs)


def sols_changed(draw: Draw, xs: list[Q], how: str) -> str | None:
    i = draw(st.integers(0, len(xs) - 1))
    if how == "drop":
        return sol_gold(xs[:i] + xs[i + 1 :])
    if how == "add":
        return sol_gold([*xs, max(xs) + 1])
    if how == "value":
        return None if xs[i] + 1 in xs else sol_gold([x + 1 if k == i else x for k, x in enumerate(xs)])
    if how == "sign":
        return None if -xs[i] in xs else sol_gold([-x if k == i else x for k, x in enumerate(xs)])
    raise ValueError(how)


add(Structure(
    "solution_list", solution_lists, sol_gold,
    forms={
        "reordered": lambda d, xs: sep(d).join(num(d, x) for x in differs(d, xs) or xs),
        "set": lambda d, xs: "\\{" + ", ".join(num(d, x) for x in shuffled(d, xs)) + "\\}",
        "labelled": lambda d, xs: ", ".join(f"x = {num(d, x)}" for x in shuffled(d, xs)),
        "subscripts": lambda d, xs: ", ".join(f"x_{k + 1} = {canon(x)}" for k, x in enumerate(shuffled(d, xs))),
        "and": lambda d, xs: " \\text{ and } ".join(canon(x) for x in shuffled(d, xs)),
        "semicolon": lambda d, xs: "; ".join(canon(x) for x in shuffled(d, xs)),
    },
    perturbations={
        "dropped": lambda d, xs: sols_changed(d, xs, "drop"),
        "added": lambda d, xs: sols_changed(d, xs, "add"),
        "value": lambda d, xs: sols_changed(d, xs, "value"),
        "sign_flip": lambda d, xs: sols_changed(d, xs, "sign"),
    },
))  # fmt: skip

pm_values = st.tuples(st.integers(-9, 9), nonzero(1, 9), st.sampled_from([2, 3, 5, 6, 7, 10, 11]))


def pm_gold(v: tuple[int, int, int]) -> str:
    c, a, b = v
    root = f"{a if a != 1 else ''}\\sqrt{{{b}}}"
    return f"{c} \\pm {root}" if c else f"\\pm {root}"


def pm_branch(v: tuple[int, int, int], sign: str) -> str:
    c, a, b = v
    root = f"{a if a != 1 else ''}\\sqrt{{{b}}}"
    return f"{c} {sign} {root}" if c else f"{'-' if sign == '-' else ''}{root}"


add(Structure(
    "plus_minus", pm_values, pm_gold,
    forms={
        "written_out": lambda d, v: ", ".join([pm_branch(v, "+"), pm_branch(v, "-")]),
        "written_out_reversed": lambda d, v: ", ".join([pm_branch(v, "-"), pm_branch(v, "+")]),
        "set": lambda d, v: "\\{" + ", ".join(shuffled(d, [pm_branch(v, "+"), pm_branch(v, "-")])) + "\\}",
        "over_two": lambda d, v: f"\\frac{{{f'{2 * v[0]} ' if v[0] else ''}\\pm {2 * v[1]}\\sqrt{{{v[2]}}}}}{{2}}",
        "labelled": lambda d, v: ", ".join(f"x = {b}" for b in shuffled(d, [pm_branch(v, "+"), pm_branch(v, "-")])),
    },
    perturbations={
        "one_branch": lambda d, v: pm_branch(v, d(st.sampled_from("+-"))),
        "radicand": lambda d, v: pm_gold((v[0], v[1], v[2] + 1 if v[2] != 3 else 5)),
        "constant": lambda d, v: pm_gold((v[0] + 1, v[1], v[2])),
    },
))  # fmt: skip


# ---- matrices -----------------------------------------------------------------------------------------------------

SHAPES = [(2, 2), (2, 1), (3, 1), (2, 3), (1, 2), (3, 3)]


@st.composite
def matrices(draw: Draw) -> tuple[tuple[Q, ...], ...]:
    r, c = draw(st.sampled_from(SHAPES))
    return tuple(tuple(draw(small_q(-9, 9, 2)) for _ in range(c)) for _ in range(r))


def mat(m: Any, env: str = "pmatrix", cell: Any = canon, amp: str = " & ", row: str = " \\\\ ") -> str:
    body = row.join(amp.join(cell(x) for x in r) for r in m)
    if env == "array":
        return f"\\left(\\begin{{array}}{{{'c' * len(m[0])}}} {body} \\end{{array}}\\right)"
    return f"\\begin{{{env}}} {body} \\end{{{env}}}"


def mat_changed(draw: Draw, m: Any, how: str) -> str | None:
    if how == "transpose":
        t = tuple(zip(*m, strict=True))
        return None if t == m else mat(t)
    if how == "rows_swapped":
        return None if len(m) < 2 or m[0] == m[1] else mat((m[1], m[0], *m[2:]))
    if how == "row_dropped":
        return mat(m[:-1]) if len(m) > 1 else None
    i, j = draw(st.integers(0, len(m) - 1)), draw(st.integers(0, len(m[0]) - 1))
    return mat(
        tuple(tuple(x + 1 if (a, b) == (i, j) else x for b, x in enumerate(r)) for a, r in enumerate(m))
    )


add(Structure(
    "matrix", matrices(), mat,
    forms={
        "bmatrix": lambda d, m: mat(m, "bmatrix"),
        "array": lambda d, m: mat(m, "array"),
        "tight": lambda d, m: mat(m, amp="&", row="\\\\"),
        "number_forms": lambda d, m: mat(m, cell=lambda x: num(d, x)),
        "tuple": lambda d, m: f"({', '.join(canon(r[0]) for r in m)})" if len(m[0]) == 1 else None,
    },
    perturbations={
        "entry": lambda d, m: mat_changed(d, m, "entry"),
        "transpose": lambda d, m: mat_changed(d, m, "transpose"),
        "rows_swapped": lambda d, m: mat_changed(d, m, "rows_swapped"),
        "row_dropped": lambda d, m: mat_changed(d, m, "row_dropped"),
    },
))  # fmt: skip


# ---- large exact values: a float comparison would accept their neighbours ------------------------------------------

powers = st.tuples(st.integers(2, 9), st.integers(20, 70))

add(Structure(
    "big_power", powers, lambda v: f"{v[0]}^{{{v[1]}}}",
    forms={
        "digits": lambda d, v: str(v[0] ** v[1]),
        "digits_thousands": lambda d, v: f"{v[0] ** v[1]:,}".replace(",", "{,}"),
        "nested": lambda d, v: f"({v[0]}^{{2}})^{{{v[1] // 2}}}" if v[1] % 2 == 0 else None,
        "product": lambda d, v: f"{v[0]} \\cdot {v[0]}^{{{v[1] - 1}}}",
        "times_one": lambda d, v: f"{v[0] ** v[1]} \\cdot 1",
    },
    perturbations={
        "digits_plus_one": lambda d, v: str(v[0] ** v[1] + d(st.sampled_from([1, -1]))),
        "exponent": lambda d, v: f"{v[0]}^{{{v[1] + 1}}}",
        "plus_one": lambda d, v: f"{v[0]}^{{{v[1]}}} + 1",
        "reciprocal": lambda d, v: f"{v[0]}^{{-{v[1]}}}",
    },
))  # fmt: skip

add(Structure(
    "big_coefficient", powers, lambda v: f"{v[0]}^{{{v[1]}}} x + 1",
    forms={
        "digits": lambda d, v: f"{v[0] ** v[1]}x + 1",
        "reordered": lambda d, v: f"1 + {v[0]}^{{{v[1]}}} x",
        "factored_out": lambda d, v: f"{v[0]}^{{{v[1]}}} (x + {v[0]}^{{-{v[1]}}})",
    },
    perturbations={
        "coefficient_plus_one": lambda d, v: f"{v[0] ** v[1] + 1}x + 1",
        "tiny_constant": lambda d, v: f"{v[0]}^{{{v[1]}}} x + 1 + {v[0]}^{{-{v[1]}}}",
        "constant_dropped": lambda d, v: f"{v[0]}^{{{v[1]}}} x",
    },
))  # fmt: skip
