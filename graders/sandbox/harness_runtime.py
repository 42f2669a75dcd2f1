"""The in-sandbox half of the `code` grader's function tests (stdlib only; see graders/code_harness.py).

The local fork server imports it once as module ``rft_harness`` (``--preload-file``), so a run does not
compile it again; a backend without it gets this source inside the program. `run` loads the program
and the test preamble into a fresh namespace, runs the planned check function, and reports one JSON
line per event on a duplicate of fd 3 (fd 3 itself is pointed at /dev/null before the program loads):
``start``; ``values`` (the encoded return values of an outside-judged test); ``ok`` or ``fail`` (an
inside-judged test, or with ``i == -1`` a setup statement that raised); ``load_error``; ``done``.
"""

import builtins
import json
import os

_PLAIN = (type(None), bool, int, float, complex, str, bytes, list, tuple, set, frozenset, dict)
_ITER = {list: list.__iter__, tuple: tuple.__iter__, set: set.__iter__, frozenset: frozenset.__iter__}
_TAG = {list: "l", tuple: "t", set: "s", frozenset: "F"}


def encode(x, depth=0):
    """`x` as JSON data that keeps Python's types. A subclass of a builtin type is encoded as its
    builtin value through the builtin's own methods (its overrides, such as an ``__eq__`` that is always
    True, never run); numpy values through ``tolist()``; anything else raises ValueError."""
    if depth > 60:
        raise ValueError("the value is nested too deeply")
    t = type(x)
    if t not in _PLAIN:
        base = next((b for b in _PLAIN[1:] if issubclass(t, b)), None)
        if base is None:
            if t.__module__ == "numpy" and hasattr(x, "tolist"):
                return encode(x.tolist(), depth + 1)
            raise ValueError(f"returned a {t.__name__} object, not plain data")
        t = base
    if t is type(None) or t is bool:
        return x
    if t is int:
        return ["i", format(int.__index__(x), "x")]
    if t is float:
        return ["f", float.hex(float.__float__(x))]
    if t is complex:
        return ["c", float.hex(complex.real.__get__(x)), float.hex(complex.imag.__get__(x))]
    if t is str:
        return str.__str__(x)
    if t is bytes:
        return ["b", bytes.hex(x)]
    if t is dict:
        return ["d", [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in dict.items(x)]]
    return [_TAG[t], [encode(v, depth + 1) for v in _ITER[t](x)]]


def _describe(e):
    try:
        return type(e).__name__, str(e)[:300]
    except BaseException:
        return type(e).__name__, "?"


class _Reporter:
    def __init__(self, fd, nonce):
        self.fd = fd
        self.nonce = nonce

    def send(self, event, i=-1, **kw):
        line = json.dumps(dict(n=self.nonce, e=event, i=i, **kw)) + "\n"
        os.write(self.fd, line.encode())

    def ok(self, i):
        self.send("ok", i)

    def fail(self, i, e):
        kind, message = _describe(e)
        self.send("fail", i, t=kind, m=message)

    def values(self, i, calls):
        try:
            out = [encode(v) for v in calls()]
        except BaseException as e:
            self.fail(i, e)
            return
        self.send("values", i, v=out)


def run(program, preamble, check_src, entry, nonce):
    """Run `program`, then `preamble`, then ``__rft_check(<entry>, reporter)`` from `check_src`."""
    fd = os.dup(3)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 3)
    os.close(null)
    report = _Reporter(fd, nonce)
    report.send("start")
    ns = {"__name__": "__solution__", "__builtins__": builtins}
    try:
        exec(compile(program, "<solution>", "exec"), ns)
        exec(compile(preamble, "<tests>", "exec"), ns)
        candidate = ns[entry] if entry else None
        if entry and not callable(candidate):
            raise NameError(f"the program does not define a function {entry}()")
    except BaseException as e:
        kind, message = _describe(e)
        report.send("load_error", t=kind, m=message)
        report.send("done")
        return
    exec(compile(check_src, "<tests>", "exec"), ns)
    ns["__rft_check"](candidate, report)
    report.send("done")
