"""RayGraderPool on a real local Ray cluster: the local pool's grades, deadlines, dead workers, make_pool."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'rft[ray]'")

from _graders_for_tests import Behave  # noqa: E402

from rft.graders import load_grader  # noqa: E402
from rft.graders.executor import GraderPool  # noqa: E402
from rft.graders.ray_pool import RayGraderPool, make_pool  # noqa: E402

TESTS = Path(__file__).resolve().parent
PAIRS = TESTS.parents[1] / "shared" / "data" / "math_pairs_dev.jsonl"
MATH = load_grader({"type": "math", "input": "{{ sample.output_text }}", "reference": "{{ item.answer }}"})
EQ = load_grader(
    {
        "type": "string_check",
        "input": "{{ sample.output_text }}",
        "reference": "{{ item.ref }}",
        "operation": "eq",
    }
)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def cluster():
    # Workers import the test grader types (tests/_graders_for_tests.py), so they need this folder.
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": str(TESTS)}})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def pool(cluster):
    with RayGraderPool(workers=2, timeout=5.0) as p:
        assert p.workers == 2
        p.grade(EQ, ["warm"] * 4, [{"ref": "warm"}] * 4)  # start the workers before tests time anything
        yield p


def test_grades_equal_the_local_pools_on_math_pairs(pool):
    if not PAIRS.is_file():
        pytest.skip(f"{PAIRS} is missing")
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines()][::23]
    samples, items = [r["sample"] for r in rows], [r["item"] for r in rows]
    assert len(rows) > 500
    with GraderPool(workers=2, timeout=5.0) as local:
        expected = local.grade(MATH, samples, items)
    seen: list[int] = []
    got = pool.grade(MATH, samples, items, on_result=lambda i, g: seen.append(i))
    assert got == expected  # status, score, passed, extracted and details
    assert sorted(seen) == list(range(len(rows)))
    assert {g.status for g in got} == {"ok"} and 0 < sum(g.passed for g in got) < len(got)


def test_submit_and_agrade(pool):
    assert pool.submit(EQ, "a", {"ref": "a"}).result().passed
    got = asyncio.run(pool.agrade(EQ, ["a", {"output_text": "b"}], [{"ref": "a"}, {"ref": "a"}]))
    assert [g.passed for g in got] == [True, False]
    assert pool.submit(EQ, "a", {}).result().status == "error"  # the row lacks the field: graded as error


def test_hanging_sample_times_out_while_the_rest_finish(pool):
    rows = [f"row{i}" for i in range(40)]
    rows[5] = "sleep"
    start = time.monotonic()
    grades = pool.grade(Behave(timeout=1.0), rows)  # the grader's timeout overrides the pool's 5 s
    took = time.monotonic() - start
    hung = grades[5]
    assert hung.status == "timeout" and hung.failed
    assert hung.details["deadline_s"] == 1.0 and 1.0 <= hung.details["wall_s"] < 1.5
    assert hung.details["cpu_s"] < 0.5 and "retried" not in hung.details  # sleeping is not CPU contention
    assert [g.score for i, g in enumerate(grades) if i != 5] == [len(r) for i, r in enumerate(rows) if i != 5]
    assert all(g.status == "ok" for i, g in enumerate(grades) if i != 5)
    assert took < 15.0  # one deadline to notice, one to pin it on the sample, two worker restarts


def test_python_grader_that_loops_forever_times_out(pool):
    looping = load_grader(
        {"type": "python", "source": "def grade(sample, item):\n    while True: pass\n", "timeout": 1.0}
    )
    grades = pool.grade(looping, ["a", "b", "c"])
    assert [g.status for g in grades] == ["timeout"] * 3


def test_the_kill_reaches_what_the_grader_spawned(pool, tmp_path):
    pid_file = tmp_path / "child.pid"
    grade = pool.submit(Behave(timeout=1.0), f"spawn:{pid_file}").result()
    assert grade.status == "timeout"
    child = int(pid_file.read_text())
    end = time.monotonic() + 5
    while alive(child) and time.monotonic() < end:
        time.sleep(0.05)
    assert not alive(child)


def test_crashing_grader_is_an_error_and_the_rest_are_graded(pool):
    rows = [f"row{i}" for i in range(20)]
    rows[3] = "exit"  # os._exit(3) in the worker
    grades = pool.grade(Behave(timeout=5.0), rows)
    assert grades[3].status == "error" and "grader worker died" in grades[3].details["error"]
    assert all(
        g.status == "ok" and g.score == len(r) for g, r in zip(grades, rows, strict=True) if r != "exit"
    )
    assert pool.submit(EQ, "a", {"ref": "a"}).result().passed  # the pool goes on


def test_each_failure_is_pinned_on_its_own_sample(pool):
    rows = [f"row{i}" for i in range(30)]
    rows[3] = rows[4] = "exit"  # two in a row: Ray drops the grades not yet read when a worker dies
    rows[10] = "sleep"
    grades = pool.grade(Behave(timeout=1.0), rows)
    want = {3: "error", 4: "error", 10: "timeout"}
    assert {i: g.status for i, g in enumerate(grades) if g.status != "ok"} == want
    assert all(g.score == len(r) for i, (g, r) in enumerate(zip(grades, rows, strict=True)) if i not in want)


def test_close_with_cancel_fails_what_is_not_graded(cluster):
    p = RayGraderPool(workers=1, timeout=30.0)
    future = p.submit(Behave(), "sleep")
    time.sleep(0.5)
    p.close(cancel=True)
    with pytest.raises(RuntimeError, match="closed before this sample was graded"):
        future.result(timeout=10)
    with pytest.raises(RuntimeError, match="closed; make a new one"):
        p.submit(EQ, "a")


def test_make_pool(cluster):
    local = make_pool("local", workers=1, timeout=5.0)
    assert isinstance(local, GraderPool)
    local.close()
    with make_pool("ray", workers=1, timeout=5.0) as remote:
        assert isinstance(remote, RayGraderPool) and remote.timeout == 5.0
        assert remote.grade(EQ, ["x"], [{"ref": "x"}])[0].passed
    with pytest.raises(ValueError, match="executor kind must be 'local' or 'ray', got 'dask'"):
        make_pool("dask")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="address .* is for kind='ray'"):
        make_pool("local", address="auto")
    with pytest.raises(ValueError, match=r"workers \(0\) must be at least 1"):
        RayGraderPool(workers=0)


def test_missing_ray_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install 'rft\[ray\]'"):
        RayGraderPool()


def test_graders_package_still_imports_without_ray():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["ray"] = None
        import rft.graders.ray_pool
        assert "ray" in sys.modules and sys.modules["ray"] is None
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_pool_that_starts_ray_shuts_it_down():
    code = textwrap.dedent(
        """
        import ray
        from rft.graders import load_grader
        from rft.graders.ray_pool import RayGraderPool

        eq = load_grader({"type": "string_check", "input": "{{ sample.output_text }}", "reference": "x",
                          "operation": "eq"})
        pool = RayGraderPool(address="local", init_kwargs={"num_cpus": 1, "include_dashboard": False})
        assert pool.workers == 1
        assert [g.passed for g in pool.grade(eq, ["x", "y"])] == [True, False]
        pool.close()
        assert not ray.is_initialized()
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_verl_batch_reward_through_the_ray_pool(pool):
    from rft.integrations.verl import make_compute_score

    score = make_compute_score(executor=pool)
    got = score.batch(["openai/gsm8k"] * 3, ["\\boxed{7}", "\\boxed{6}", "#### 7"], ["7", "7", "7"])
    assert [r["score"] for r in got] == [1.0, 0.0, 1.0]
    assert {r["grader_status"] for r in got} == {"ok"}
