"""The stateful ``python`` tool's costs: starting a session, a call on a warm one, closing it.

Anchor: one stateless program run through the same sandbox backend (``Sandbox.run("x = 1")``, the fork
server warm), which is what a ``python_exec`` call costs. Rows: a session's start (open + first call,
the session's own fork server, isolation probe and driver start included), a call on a warm session
(``x += 1``), a call that prints 10 kB, and close (kill + reap). Medians of --repeat; the ratio is to the
anchor's median. Timings on a shared machine are noisy: compare rows of one run.
Run: python bench/python_session.py [--sandbox auto] [--repeat 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sandbox", default="auto", help="sandbox backend (one that holds sessions)")
    ap.add_argument("--repeat", type=int, default=20, help="report the median of this many")
    args = ap.parse_args()

    from rft.envs.tools.python_session import PythonSessionProvider
    from rft.graders.sandbox import Limits, shared_sandbox

    box = shared_sandbox(args.sandbox)
    limits = Limits(timeout=10)
    box.run("pass", b"", limits)  # the fork server warm
    anchor = median_ms(lambda: box.run("x = 1", b"", limits), args.repeat)

    provider = PythonSessionProvider(sandbox=args.sandbox, timeout=10)
    opened = []

    def start() -> None:
        [tool] = provider.open()
        out = tool.call({"code": "x = 1"})
        assert not out.is_error, out
        opened.append(tool)

    start_ms = median_ms(start, args.repeat)
    tool = opened[0]
    call_ms = median_ms(lambda: tool.call({"code": "x += 1"}), args.repeat * 5)
    print_ms = median_ms(lambda: tool.call({"code": "print('y' * 10000)"}), args.repeat * 5)
    close_ms = median_ms(lambda: opened.pop().close(), len(opened))
    rows = [
        (f"anchor: Sandbox.run ({box.name})", anchor),
        ("session start (open + first call)", start_ms),
        ("call on a warm session (x += 1)", call_ms),
        ("call printing 10 kB", print_ms),
        ("close (kill the session)", close_ms),
    ]
    print(f"{'what':40} {'median ms':>10} {'x anchor':>9}")
    for name, ms in rows:
        print(f"{name:40} {ms:10.2f} {ms / anchor:9.2f}")
    print(f"call_vs_run_ratio={call_ms / anchor:.3f}")


if __name__ == "__main__":
    main()
