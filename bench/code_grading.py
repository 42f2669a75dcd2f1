"""Code grading throughput: the 164 HumanEval canonical solutions, rft's `code` grader on the `local`
sandbox vs a human-eval-style process-per-problem baseline, in the same run.

Anchor (the baseline): openai/human-eval's design, `check_correctness` per problem in a thread pool of
`--workers` threads: a `multiprocessing.Manager()` and a forked `Process` per problem, which runs
``prompt + completion + test + check(entry_point)`` under human-eval's time limit and reliability
guard (no namespaces, no uid switch, no limit on processes). rft rows: a `GraderPool` of `--workers`
worker processes, each with its own fork server (user, network, mount, pid, ipc and uts namespaces,
a per-slot uid, rlimits, private root and /tmp), the verdicts judged outside the sandbox; the pool and
its servers are started (and each row's tests planned once) before the clock starts; the second rft row
pins each fork server (and its programs) to one CPU (``sandbox_options: {"pin_cpu": true}``).
Each row is the best of `--repeat` passes over the 164 problems. Reads ../shared/data/humaneval.jsonl.
The docker row needs a running Docker engine (the image is built locally on first use). The remote row
grades through an `rft sandbox serve` started here on loopback (`--workers` local fork servers behind
HTTP with a token), the client pool as above: the cost of the HTTP hop.
Run: python bench/code_grading.py [--workers 2] [--repeat 3] [--no-docker] [--no-remote]
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import io
import json
import multiprocessing
import os
import platform
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rft.graders import load_grader
from rft.graders.executor import GraderPool

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "humaneval.jsonl"
SPEC = {
    "type": "code",
    "name": "humaneval",
    "input": "{{ sample.output_text }}",
    "prefix": "{{ item.prompt }}",
    "tests": "{{ item.test }}",
    "entry_point": "{{ item.entry_point }}",
    "sandbox": "local",
}


# ---- the baseline: human-eval's execution.py, condensed ----------------------------------------------


class _TimeoutError(Exception):
    pass


def _unsafe_execute(program: str, timeout: float, result: Any) -> None:
    import shutil

    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        rmtree, rmdir, chdir = (
            shutil.rmtree,
            os.rmdir,
            os.chdir,
        )  # restored for the clean-up, as human-eval does

        def handler(signum: int, frame: Any) -> None:
            raise _TimeoutError("timed out")

        signal.setitimer(signal.ITIMER_REAL, timeout)
        signal.signal(signal.SIGALRM, handler)
        try:
            stream = io.StringIO()
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                _reliability_guard()
                exec(program, {})
            result.append("passed")
        except _TimeoutError:
            result.append("timed out")
        except BaseException as e:
            result.append(f"failed: {e}")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            shutil.rmtree, os.rmdir, os.chdir = rmtree, rmdir, chdir


def _reliability_guard(max_bytes: int = 2**30) -> None:
    """human-eval's: memory limits, then disable destructive functions (not a security boundary)."""
    resource.setrlimit(resource.RLIMIT_AS, (max_bytes, max_bytes))
    resource.setrlimit(resource.RLIMIT_DATA, (max_bytes, max_bytes))
    if platform.uname().system != "Darwin":
        resource.setrlimit(resource.RLIMIT_STACK, (max_bytes, max_bytes))
    faulthandler.disable()
    import builtins
    import shutil
    import subprocess

    builtins.exit = None  # type: ignore[assignment]
    builtins.quit = None  # type: ignore[assignment]
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in ("kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork",
                 "forkpty", "killpg", "rename", "renames", "truncate", "replace", "unlink", "fchmod",
                 "fchown", "chmod", "chown", "chroot", "lchown", "getcwd", "chdir"):  # fmt: skip
        setattr(os, name, None)
    shutil.rmtree = None  # type: ignore[assignment]
    shutil.move = None  # type: ignore[assignment]
    shutil.chown = None  # type: ignore[assignment]
    subprocess.Popen = None  # type: ignore[assignment,misc]


def check_correctness(problem: dict[str, Any], completion: str, timeout: float = 3.0) -> bool:
    program = (
        problem["prompt"] + completion + "\n" + problem["test"] + "\n" + f"check({problem['entry_point']})"
    )
    manager = multiprocessing.Manager()
    result = manager.list()
    p = multiprocessing.Process(target=_unsafe_execute, args=(program, timeout, result))
    p.start()
    p.join(timeout=timeout + 1)
    if p.is_alive():
        p.kill()
    ok = bool(result) and result[0] == "passed"
    manager.shutdown()
    return ok


def baseline_pass(rows: list[dict[str, Any]], workers: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as ex:
        passed = sum(ex.map(lambda r: check_correctness(r, r["canonical_solution"]), rows))
    return time.perf_counter() - t0, passed


# ---- rft -------------------------------------------------------------------------------------------------


def rft_pass(pool: GraderPool, grader: Any, rows: list[dict[str, Any]]) -> tuple[float, int]:
    samples = [{"output_text": r["canonical_solution"]} for r in rows]
    t0 = time.perf_counter()
    grades = pool.grade(grader, samples, rows)
    dt = time.perf_counter() - t0
    failed = [g for g in grades if g.status != "ok"]
    if failed:
        raise SystemExit(f"{len(failed)} grades failed, first: {failed[0].details.get('error')}")
    return dt, sum(g.passed for g in grades)


def start_remote(workers: int) -> tuple[subprocess.Popen[str], str, str]:
    """`rft sandbox serve` on a free loopback port: the process, its URL and its token."""
    token = secrets.token_hex(16)
    rft = str(Path(sys.executable).with_name("rft"))
    argv = [
        rft,
        "sandbox",
        "serve",
        "--port",
        "0",
        "--workers",
        str(workers),
        "--quiet",
        "--backend",
        "local",
    ]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, text=True, env={**os.environ, "RFT_SANDBOX_TOKEN": token}
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "http://" not in line:
        raise SystemExit(f"rft sandbox serve did not start (exit {proc.wait()}): {line}")
    return proc, line.split(" on ", 1)[1].split()[0], token


def _load() -> str:
    return os.getloadavg().__repr__()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="report the best of this many passes")
    ap.add_argument("--no-docker", action="store_true", help="leave out the docker backend row")
    ap.add_argument("--no-remote", action="store_true", help="leave out the remote (loopback) row")
    args = ap.parse_args()
    if not DATA.exists():
        raise SystemExit(f"{DATA} not found (it lives in shared/data beside the checkout)")
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    graders = {
        "rft": load_grader(SPEC),
        "rft_pinned": load_grader({**SPEC, "sandbox_options": {"pin_cpu": True}}),
    }
    if not args.no_docker:
        graders["rft_docker"] = load_grader({**SPEC, "sandbox": "docker"})
    server = None
    if not args.no_remote:
        server, url, token = start_remote(args.workers)
        options = {"url": url, "token": token}
        graders["rft_remote"] = load_grader({**SPEC, "sandbox": "remote", "sandbox_options": options})
    print(f"HumanEval canonical solutions: {len(rows)}; workers: {args.workers}; load before: {_load()}")
    results: dict[str, list[tuple[float, int]]] = {name: [] for name in [*graders, "baseline"]}
    warm = [{"output_text": r["canonical_solution"]} for r in rows]
    with GraderPool(workers=args.workers, timeout=60) as pool:
        for grader in graders.values():  # start the workers and their fork servers, plan every row's tests
            pool.grade(grader, warm, rows)
        for _ in range(args.repeat):  # interleaved, so that all see the same machine
            for name, grader in graders.items():
                results[name].append(rft_pass(pool, grader, rows))
            results["baseline"].append(baseline_pass(rows, args.workers))
    if server is not None:
        server.terminate()
        server.wait(60)
    n = len(rows)
    best = {k: min(v) for k, v in results.items()}
    rate = {k: n / t for k, (t, _) in best.items()}
    print(f"load after: {_load()}\n")
    print(f"| {'grader':<62} | workers | passed  | problems/s | passes (s)         |")
    print(f"|{'-' * 64}|---------|---------|------------|--------------------|")
    labels = {
        "rft": "rft code grader, local sandbox (namespaces, uid, rlimits)",
        "rft_pinned": "rft code grader, local sandbox, each fork server on one CPU",
        "rft_docker": "rft code grader, docker sandbox (warm container + fork server)",
        "rft_remote": "rft code grader, remote sandbox over loopback (HTTP, local)",
        "baseline": "human-eval style: Manager + Process per problem",
    }
    for k in results:
        times = ", ".join(f"{t:.2f}" for t, _ in results[k])
        print(
            f"| {labels[k]:<62} | {args.workers:>7} | {best[k][1]:>3}/{n} | {rate[k]:>10.1f} | {times:<18} |"
        )
    print(
        f"\nratio rft / baseline: {rate['rft'] / rate['baseline']:.2f}x (pinned: {rate['rft_pinned'] / rate['baseline']:.2f}x)"
    )
    if "rft_docker" in rate:
        print(f"ratio rft docker / baseline: {rate['rft_docker'] / rate['baseline']:.2f}x")
    if "rft_remote" in rate:
        print(f"ratio rft remote / baseline: {rate['rft_remote'] / rate['baseline']:.2f}x")


if __name__ == "__main__":
    main()
