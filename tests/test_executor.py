"""GraderPool / grade_batch with real worker processes: order, deadlines, dead workers, threads, asyncio."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from _graders_for_tests import Behave

from rft.graders import Grade, load_grader
from rft.graders.base import Grader, register
from rft.graders.executor import GraderPool, grade_batch

EQ = load_grader(
    {
        "type": "string_check",
        "input": "{{ sample.output_text }}",
        "reference": "{{ item.ref }}",
        "operation": "eq",
    }
)
ILIKE = load_grader(
    {
        "type": "string_check",
        "input": "{{ sample.output_text }}",
        "reference": "{{ item.ref }}",
        "operation": "ilike",
    }
)
SAMPLES = [f"Answer {i % 7}" if i % 3 else {"output_text": f"answer {i % 5}"} for i in range(300)]
ITEMS = [{"ref": f"answer {i % 5}"} if i % 11 else {} for i in range(300)]  # {} rows lack the field: error


def inline(grader: Grader, samples, items=None) -> list[Grade]:
    return [grader.grade(s, i) for s, i in zip(samples, items or [None] * len(samples), strict=True)]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def group_members(pgid: int) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                fields = (p / "stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                out.append(int(p.name))
    return out


@pytest.fixture(scope="module")
def pool():
    with GraderPool(workers=2, timeout=5.0) as p:
        p.grade(EQ, ["warm"] * 4)  # start the workers before tests time anything
        yield p


def test_results_match_inline_grading_in_order(pool):
    expected = inline(EQ, SAMPLES, ITEMS)
    assert {g.status for g in expected} == {"ok", "error"} and any(g.passed for g in expected)
    seen: list[int] = []
    got = pool.grade(EQ, SAMPLES, ITEMS, on_result=lambda i, g: seen.append(i))
    assert got == expected
    assert sorted(seen) == list(range(len(SAMPLES)))
    assert pool.submit(EQ, "answer 1", {"ref": "answer 1"}).result().passed


def test_hung_grader_times_out_within_its_deadline_while_the_rest_complete(pool):
    rows = [f"row{i}" for i in range(40)]
    rows[5] = "sleep"
    start = time.monotonic()
    grades = pool.grade(Behave(timeout=1.0), rows)  # the grader's timeout overrides the pool's 5 s
    took = time.monotonic() - start
    hung = grades[5]
    assert hung.status == "timeout" and hung.failed
    assert hung.details["deadline_s"] == 1.0 and hung.details["wall_s"] >= 1.0
    assert "retried" not in hung.details  # sleeping is not CPU contention
    assert 1.0 <= took < 2.0
    assert [g.score for i, g in enumerate(grades) if i != 5] == [len(r) for i, r in enumerate(rows) if i != 5]
    assert all(g.status == "ok" for i, g in enumerate(grades) if i != 5)


def test_busy_grader_times_out_and_is_retried_only_if_starved(pool):
    grade = pool.submit(Behave(timeout=1.0), "spin").result()
    assert grade.status == "timeout"
    if "retried" in grade.details:  # only a machine too busy to give it the CPU it wanted may do this
        assert grade.details["cpu_s"] < 0.5 and grade.details["cpu_wait_s"] >= 0.25
    else:
        assert grade.details["cpu_s"] >= 0.5


def test_starved_grader_is_retried_once(pool):
    # Three busy loops share one CPU with the grader, which then gets about a quarter of it.
    cpu = min(os.sched_getaffinity(0))
    hog = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"
    hogs = [subprocess.Popen([sys.executable, "-c", hog]) for _ in range(3)]
    try:
        time.sleep(0.2)
        start = time.monotonic()
        grade = pool.submit(Behave(timeout=1.0, pin_cpu=cpu), "spin:5").result()
        took = time.monotonic() - start
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert grade.status == "timeout"
    assert grade.details["retried"] == 1
    assert grade.details["cpu_s"] < 0.5
    assert took >= 2.0  # two attempts of a second each


def test_worker_that_exits_gives_an_error_for_that_row_only(pool):
    rows = ["a", "exit", "bb", "ccc", "exit", "dddd"]
    grades = pool.grade(Behave(), rows)
    assert [g.status for g in grades] == ["ok", "error", "ok", "ok", "error", "ok"]
    assert grades[1].details["error"] == "grader worker died (exit code 3)"
    assert [grades[i].score for i in (0, 2, 3, 5)] == [1.0, 2.0, 3.0, 4.0]


def test_timeout_kills_what_the_grader_spawned(pool, tmp_path):
    pid_file = tmp_path / "child.pid"
    grade = pool.submit(Behave(timeout=1.0), f"spawn:{pid_file}").result()
    assert grade.status == "timeout"
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 2.0
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(child)


def test_deadline_kills_a_python_grader_child_in_its_own_session(pool, tmp_path):
    """A python sub-grader runs user code in a child with its own session, out of the worker's group:
    when the executor kills the worker first, the child must die with it, not linger."""
    source = "import os, time\ndef grade(sample, item):\n    open(item['pid'], 'w').write(str(os.getpid()))\n    time.sleep(3600)\n"
    multi = load_grader(
        {
            "type": "multi",
            "timeout": 1.0,
            "calculate_output": "slow",
            "graders": {"slow": {"type": "python", "source": source, "timeout": 60}},
        }  # fmt: skip
    )
    pid_file = tmp_path / "grader.pid"
    grade = pool.submit(multi, "x", {"pid": str(pid_file)}).result()
    assert grade.status == "timeout" and grade.details["deadline_s"] == 1.0
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 3.0
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(child)


def test_pool_keeps_working_after_kills(pool):
    before = {g.extracted for g in pool.grade(Behave(), ["pid"] * 8)}
    grades = pool.grade(Behave(timeout=0.5), ["sleep", "exit", "pid", "pid"])
    assert [g.status for g in grades] == ["timeout", "error", "ok", "ok"]
    after = pool.grade(EQ, SAMPLES, ITEMS)
    assert after == inline(EQ, SAMPLES, ITEMS)
    assert not any(alive(pid) for pid in before)  # both workers were replaced


def test_same_results_from_a_thread_and_from_asyncio(pool):
    expected = inline(EQ, SAMPLES, ITEMS)
    out: dict[str, list[Grade]] = {}
    threads = [
        threading.Thread(target=lambda: out.__setitem__("pool", pool.grade(EQ, SAMPLES, ITEMS))),
        threading.Thread(target=lambda: out.__setitem__("batch", grade_batch(EQ, SAMPLES, ITEMS, workers=2))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    async def in_a_loop() -> tuple[list[Grade], list[Grade]]:
        return await pool.agrade(EQ, SAMPLES, ITEMS), grade_batch(EQ, SAMPLES, ITEMS, workers=1)

    out["agrade"], out["batch_in_loop"] = asyncio.run(in_a_loop())
    assert out == {k: expected for k in ("pool", "batch", "agrade", "batch_in_loop")}


def test_two_threads_submitting_at_once(pool):
    barrier = threading.Barrier(2)
    out: dict[str, list[Grade]] = {}

    def run(name: str, grader: Grader) -> None:
        barrier.wait()
        out[name] = [
            f.result() for f in [pool.submit(grader, s, i) for s, i in zip(SAMPLES, ITEMS, strict=True)]
        ]

    threads = [threading.Thread(target=run, args=(n, g)) for n, g in (("eq", EQ), ("ilike", ILIKE))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out["eq"] == inline(EQ, SAMPLES, ITEMS)
    assert out["ilike"] == inline(ILIKE, SAMPLES, ITEMS)
    assert out["eq"] != out["ilike"]


def test_grader_type_the_worker_cannot_build_is_an_error_grade(pool):
    @register("test_registered_in_a_function_only")
    class Local(Grader):  # the worker imports this module, but the registration never runs there
        type: str = "test_registered_in_a_function_only"

        def _grade(self, ctx):
            return Grade(1.0, "ok", True)

    assert Local().grade("x").status == "ok"
    grade = pool.submit(Local(), "x").result()
    assert grade.status == "error" and "unknown grader type" in grade.details["error"]


def test_no_processes_left_after_close():
    with GraderPool(workers=2, timeout=5.0) as p:
        pids = {g.extracted for g in p.grade(Behave(), ["pid"] * 64)}
    assert pids and os.getpid() not in pids
    assert not [pid for pid in pids if alive(pid) or group_members(pid)]
    with pytest.raises(RuntimeError, match="closed"):
        p.submit(EQ, "x")


def test_inline_batch_and_argument_checks():
    assert grade_batch(EQ, SAMPLES, ITEMS, workers=0) == inline(EQ, SAMPLES, ITEMS)
    assert grade_batch(EQ, []) == []
    with pytest.raises(ValueError, match="must match samples"):
        grade_batch(EQ, ["a", "b"], [{}])
    with pytest.raises(ValueError, match="workers"):
        GraderPool(workers=0)


def test_interpreter_exit_with_an_open_pool_does_not_hang(tmp_path):
    script = tmp_path / "leave_open.py"
    script.write_text(
        "import sys, time\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from _graders_for_tests import Behave\n"
        "from rft.graders.executor import GraderPool\n"
        "if __name__ == '__main__':\n"
        "    pool = GraderPool(workers=1, timeout=60)\n"
        "    print(pool.grade(Behave(), ['pid'])[0].extracted, flush=True)\n"
        "    pool.submit(Behave(), 'sleep')\n"
        "    time.sleep(0.2)\n"  # exits with the worker asleep in a grader and the pool open
    )
    start = time.monotonic()
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert time.monotonic() - start < 10
    worker = int(res.stdout)
    time.sleep(0.2)
    assert not alive(worker) and not group_members(worker)


def test_leaving_the_block_on_an_exception_cancels_what_is_left():
    with pytest.raises(KeyboardInterrupt), GraderPool(workers=1, timeout=60) as p:
        futures = [p.submit(Behave(), "sleep"), p.submit(Behave(), "a")]
        time.sleep(0.3)
        raise KeyboardInterrupt
    for f in futures:
        with pytest.raises(RuntimeError, match="closed before"):
            f.result(timeout=5)
