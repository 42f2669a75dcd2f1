"""Code grading throughput: the 164 HumanEval canonical solutions, rft's `code` grader on the `local`
sandbox vs a human-eval-style process-per-problem baseline, in the same run.

Anchor (the baseline): openai/human-eval's design, `check_correctness` per problem in a thread pool of
`--workers` threads: a `multiprocessing.Manager()` and a forked `Process` per problem, which runs
``prompt + completion + test + check(entry_point)`` under human-eval's time limit and reliability
guard (no namespaces, no uid switch, no limit on processes). rft rows: a `GraderPool` of `--workers`
worker processes, each with its own fork server (user, network, mount, pid, ipc and uts namespaces,
a per-slot uid, rlimits, private root and /tmp), the verdicts judged outside the sandbox; the pool and
its servers are started (and each row's tests planned once) before the clock starts; the second rft row
pins each fork server (and its programs) to one CPU (``sandbox_options: {"pin_cpu": true}``); the
``seccomp off`` row is the local row without its syscall filter (``sandbox_options: {"seccomp": false}``),
and a last table times a trivial program straight through the local sandbox with the filter on and off
(alternating, the median of the server's wall time per run).
The ``auto`` rows: the default sandbox as this process runs it (as root it picks ``local``), and as a
user other than root (it picks ``userns``: the same fork server in a user namespace of its own), run by
this script as that user in a child process for each pass, timed there the same way (pool started
and warmed before the clock). As root the script makes that user (``--user`` names an existing one).
Each rft row also grades ``return None`` for every problem once (not timed): it must pass 0/164.
Each row is the best of `--repeat` passes over the 164 problems. Reads ../shared/data/humaneval.jsonl.
The docker row needs a running Docker engine (the image is built locally on first use). The remote row
grades through an `rft sandbox serve` started here on loopback (`--workers` local fork servers behind
HTTP with a token), the client pool as above: the cost of the HTTP hop.
Run: python bench/code_grading.py [--workers 2] [--repeat 3] [--no-docker] [--no-remote] [--user NAME | --no-user]
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
import shutil
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


def rft_pass(
    pool: GraderPool, grader: Any, rows: list[dict[str, Any]], completion: str | None = None
) -> tuple[float, int]:
    samples = [{"output_text": r["canonical_solution"] if completion is None else completion} for r in rows]
    t0 = time.perf_counter()
    grades = pool.grade(grader, samples, rows)
    dt = time.perf_counter() - t0
    failed = [g for g in grades if g.status != "ok"]
    if failed:
        raise SystemExit(f"{len(failed)} grades failed, first: {failed[0].details.get('error')}")
    backends = {g.details.get("sandbox") for g in grades}
    if getattr(grader, "sandbox", "") == "auto":
        print(f"  auto ran on {sorted(map(str, backends))} (uid {os.geteuid()})", file=sys.stderr)
    return dt, sum(g.passed for g in grades)


WRONG = "    return None\n"


def child_main(workers: int, out: str) -> None:
    """One timed pass of the auto grader (and the `return None` pass) in this process: for the row run
    as another user. Writes {"time", "passed", "none_passed", "backend"} to `out`."""
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    grader = load_grader({**SPEC, "sandbox": "auto"})
    warm = [{"output_text": r["canonical_solution"]} for r in rows]
    with GraderPool(workers=workers, timeout=60) as pool:
        backend = pool.grade(grader, warm, rows)[0].details.get("sandbox")
        dt, passed = rft_pass(pool, grader, rows)
        _, none_passed = rft_pass(pool, grader, rows, WRONG)
    Path(out).write_text(
        json.dumps({"time": dt, "passed": passed, "none_passed": none_passed, "backend": backend})
    )


class OtherUser:
    """The auto row as a user other than root: made here (useradd) unless named, removed at the end."""

    def __init__(self, name: str | None) -> None:
        self.made = False
        if name is None:
            if shutil.which("useradd") is None:
                raise SystemExit("useradd not found: pass --user NAME (an existing user) or --no-user")
            name = f"rftbench{os.getpid() % 100000}"
            subprocess.run(["useradd", "-m", name], check=True, capture_output=True)
            self.made = True
        self.name = name
        self.none_passed: list[int] = []
        self.backend = ""

    def run_pass(self, workers: int) -> tuple[float, int]:
        fd, out = tempfile.mkstemp(prefix="rft-bench-", suffix=".json")
        os.close(fd)
        os.chmod(out, 0o666)
        argv = [sys.executable, str(Path(__file__).resolve()), "--child", out, "--workers", str(workers)]
        env = ["env", "-i", f"HOME=/home/{self.name}", "PATH=/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE=1"]
        try:
            proc = subprocess.run(
                ["runuser", "-u", self.name, "--", *env, *argv], capture_output=True, text=True
            )
            if proc.returncode != 0:
                raise SystemExit(
                    f"the auto row as {self.name} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
                )
            res = json.loads(Path(out).read_text())
        finally:
            os.unlink(out)
        self.none_passed.append(res["none_passed"])
        self.backend = res["backend"]
        return res["time"], res["passed"]

    def close(self) -> None:
        if self.made:
            uid = subprocess.run(["id", "-u", self.name], capture_output=True, text=True).stdout.strip()
            subprocess.run(["userdel", "-r", self.name], capture_output=True)
            if uid.isdigit():  # its private sandbox folder (graders/sandbox/state.py)
                shutil.rmtree(f"/tmp/rft-sandbox-{uid}", ignore_errors=True)


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
    ap.add_argument("--runs", type=int, default=500, help="trivial programs per setting in the seccomp table")
    ap.add_argument("--user", help="as root: the existing user to run the non-root auto row as")
    ap.add_argument("--no-user", action="store_true", help="leave out the non-root auto row")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--no-remote", action="store_true", help="leave out the remote (loopback) row")
    args = ap.parse_args()
    if args.child:
        return child_main(args.workers, args.child)
    if not DATA.exists():
        raise SystemExit(f"{DATA} not found (it lives in shared/data beside the checkout)")
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    root = os.geteuid() == 0
    graders = {"rft_auto": load_grader({**SPEC, "sandbox": "auto"})}
    if root:
        graders["rft"] = load_grader(SPEC)
        graders["rft_pinned"] = load_grader({**SPEC, "sandbox_options": {"pin_cpu": True}})
        graders["rft_no_seccomp"] = load_grader({**SPEC, "sandbox_options": {"seccomp": False}})
    other = OtherUser(args.user) if root and not args.no_user else None
    if not args.no_docker:
        graders["rft_docker"] = load_grader({**SPEC, "sandbox": "docker"})
    server = None
    if not args.no_remote:
        server, url, token = start_remote(args.workers)
        options = {"url": url, "token": token}
        graders["rft_remote"] = load_grader({**SPEC, "sandbox": "remote", "sandbox_options": options})
    print(f"HumanEval canonical solutions: {len(rows)}; workers: {args.workers}; load before: {_load()}")
    names = [*graders, *(["rft_auto_user"] if other else []), "baseline"]
    results: dict[str, list[tuple[float, int]]] = {name: [] for name in names}
    none_passed: dict[str, int] = {}
    warm = [{"output_text": r["canonical_solution"]} for r in rows]
    try:
        with GraderPool(workers=args.workers, timeout=60) as pool:
            for (
                name,
                grader,
            ) in graders.items():  # start the workers and their servers, plan every row's tests
                pool.grade(grader, warm, rows)
                none_passed[name] = rft_pass(pool, grader, rows, WRONG)[1]
            for _ in range(args.repeat):  # interleaved, so that all see the same machine
                for name, grader in graders.items():
                    results[name].append(rft_pass(pool, grader, rows))
                if other is not None:
                    results["rft_auto_user"].append(other.run_pass(args.workers))
                results["baseline"].append(baseline_pass(rows, args.workers))
    finally:
        if other is not None:
            other.close()
        if server is not None:
            server.terminate()
            server.wait(60)
    if other is not None:
        none_passed["rft_auto_user"] = max(other.none_passed)
    n = len(rows)
    best = {k: min(v) for k, v in results.items()}
    rate = {k: n / t for k, (t, _) in best.items()}
    print(f"load after: {_load()}\n")
    print(f"| {'grader':<62} | workers | passed  | None passes | problems/s | passes (s)         |")
    print(f"|{'-' * 64}|---------|---------|-------------|------------|--------------------|")
    auto_here = "local" if root else "userns"
    labels = {
        "rft_auto": f"rft code grader, sandbox auto as {'root' if root else 'non-root'} ({auto_here})",
        "rft_auto_user": f"rft code grader, sandbox auto as non-root ({other.backend if other else ''})",
        "rft": "rft code grader, local sandbox (namespaces, uid, rlimits)",
        "rft_pinned": "rft code grader, local sandbox, each fork server on one CPU",
        "rft_no_seccomp": "rft code grader, local sandbox, seccomp off",
        "rft_docker": "rft code grader, docker sandbox (warm container + fork server)",
        "rft_remote": "rft code grader, remote sandbox over loopback (HTTP, local)",
        "baseline": "human-eval style: Manager + Process per problem",
    }
    for k in results:
        times = ", ".join(f"{t:.2f}" for t, _ in results[k])
        wrong = f"{none_passed[k]:>3}/{n}" if k in none_passed else "-"
        print(
            f"| {labels[k]:<62} | {args.workers:>7} | {best[k][1]:>3}/{n} | {wrong:>11} | {rate[k]:>10.1f} "
            f"| {times:<18} |"
        )
    print()
    for k in results:
        if k != "baseline":
            print(f"ratio {k} / baseline: {rate[k] / rate['baseline']:.2f}x")
    if "rft_no_seccomp" in rate:
        print(f"seccomp cost (local, per program): {rate['rft_no_seccomp'] / rate['rft'] - 1:+.1%}")
        seccomp_per_run(args.runs)


def seccomp_per_run(runs: int) -> None:
    """A trivial program through one local sandbox with the filter and one without, alternating run by run
    (both see the same load); the median of each run's wall time as the fork server measures it."""
    import statistics

    from rft.graders.sandbox import Limits
    from rft.graders.sandbox.local import LocalSandbox

    boxes = {"on": LocalSandbox(), "off": LocalSandbox(seccomp=False)}
    walls: dict[str, list[float]] = {name: [] for name in boxes}
    try:
        for box in boxes.values():
            box.start()
        for _ in range(runs):
            for name, box in boxes.items():
                res = box.run("x = sum(range(100))", b"", Limits(timeout=10))
                if not res.ok:
                    raise SystemExit(f"a trivial program failed with seccomp {name}: {res}")
                walls[name].append(res.wall_s)
    finally:
        for box in boxes.values():
            box.close()
    med = {name: statistics.median(w) for name, w in walls.items()}
    print(f"\n| local sandbox, trivial program, {runs} runs each | median ms | mean ms |")
    print("|-----------------------------------------------|-----------|---------|")
    for name in boxes:
        print(
            f"| seccomp {name:<37} | {med[name] * 1e3:>9.3f} | {statistics.mean(walls[name]) * 1e3:>7.3f} |"
        )
    print(
        f"seccomp cost per run (medians): {(med['on'] - med['off']) * 1e3:+.3f} ms ({med['on'] / med['off'] - 1:+.1%})"
    )


if __name__ == "__main__":
    main()
