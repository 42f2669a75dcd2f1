"""EnvPool: batched stepping with real graders and a real GraderPool (no mocks)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from rft.envs import EnvPool, SuiteEnv, suite_path
from rft.graders.executor import GraderPool

ARITH = "rft/arithmetic-v0"
N = 16
SEED = 3
WRONG = "\\boxed{-99991}"

SLEEPY_GRADER = """
def grade(sample, item):
    import time
    time.sleep(float(sample["output_text"]))
    return 1.0
"""


def sleepy_suite(tmp_path: Path, timeout: float) -> Path:
    """A suite whose python grader sleeps as many seconds as the answer says, then scores 1."""
    (tmp_path / "rows.jsonl").write_text('{"q": "how long?", "a": "0"}\n')
    suite = tmp_path / f"sleepy-{timeout:g}.yaml"
    grader = {"type": "python", "name": "sleepy", "source": SLEEPY_GRADER, "timeout": timeout}
    suite.write_text(
        "id: sleepy-v0\nsource: {type: jsonl, path: rows.jsonl}\nfields: {reference: a}\nsplit: 0\n"
        f"prompt: {{user: '{{{{ item.q }}}}'}}\ngrader: {json.dumps(grader)}\n"
    )
    return suite


def arith_suite(tmp_path: Path, episode: str) -> Path:
    """arithmetic-v0 with an ``episode:`` section."""
    path = tmp_path / "arith-episode.yaml"
    path.write_text(
        suite_path(ARITH).read_text().replace("id: arithmetic-v0", "id: arith-episode-v0") + episode
    )
    return path


def answer(n: int, info: dict) -> str:
    """The reference answer for even envs, a wrong one for odd envs."""
    return f"\\boxed{{{info['reference']}}}" if n % 2 == 0 else WRONG


def answers(infos: list[dict]) -> list[str]:
    return [answer(n, i) for n, i in enumerate(infos)]


def comparable(info: dict | None) -> dict | None:
    """An info without measured timings (they differ from run to run)."""
    if info is None:
        return None
    info = json.loads(json.dumps(info))
    for d in (info.get("grade", {}).get("details", {}), info.get("tool", {})):
        for key in ("wall_s", "cpu_s", "cpu_wait_s"):
            d.pop(key, None)
    return info


@pytest.fixture(scope="module")
def graders():
    with GraderPool(workers=2) as pool:
        yield pool


def test_reset_is_seeded_per_env():
    with EnvPool(ARITH, N, executor="inline") as pool:
        obs, infos = pool.reset(seed=SEED)
        assert pool.reset(seed=SEED) == (obs, infos)
        assert len({i["id"] for i in infos}) > N // 2  # env i gets seed 3 + i, not all the same problem
        env = SuiteEnv(suite_path(ARITH))
        assert [env.reset(seed=SEED + n) for n in range(N)] == list(zip(obs, infos, strict=True))
        heldout = pool.reset(options=[{"split": "heldout", "index": n} for n in range(N)])[1]
        assert [i["index"] for i in heldout] == list(range(N)) and heldout[0]["split"] == "heldout"
        assert pool.reset_at(2, seed=SEED + 2) == (obs[2], infos[2])


@pytest.mark.parametrize("executor", ["shared", "inline"])
def test_grades_match_sequential_stepping(executor, graders):
    env = SuiteEnv(suite_path(ARITH))
    expected = []
    for n in range(N):
        _, info = env.reset(seed=SEED + n)
        expected.append(env.step(answer(n, info)))
    with EnvPool(ARITH, N, executor=graders if executor == "shared" else "inline") as pool:
        _, infos = pool.reset(seed=SEED)
        out = pool.step(answers(infos))
    assert out.rewards == [1.0 if n % 2 == 0 else 0.0 for n in range(N)]
    assert out.rewards == [e[1] for e in expected]
    assert out.terminated == [True] * N and out.truncated == [False] * N
    assert out.obs == [e[0] for e in expected]
    assert [comparable(i) for i in out.infos] == [comparable(e[4]) for e in expected]
    assert not any(i["grade_failed"] for i in out.infos if i)
    if executor == "shared":  # the pool did not close a GraderPool it was given
        assert (
            graders.submit(env.grader, {"output_text": "\\boxed{2}"}, {"reference": "2"}).result().score
            == 1.0
        )


def test_none_actions_skip_envs(graders):
    with EnvPool(ARITH, 4, executor=graders) as pool:
        _, infos = pool.reset(seed=SEED)
        right = [f"\\boxed{{{i['reference']}}}" for i in infos]
        out = pool.step([right[0], None, right[2], None])
        assert out.rewards == [1.0, None, 1.0, None] and out.infos[1] is None and out.obs[3] is None
        out = pool.step([None, right[1], None, right[3]])  # the skipped envs step later
        assert out.rewards == [None, 1.0, None, 1.0]
        with pytest.raises(RuntimeError, match=r"env 0: the episode has ended.*reset_at\(0\)"):
            pool.step([right[0], None, None, None])
        pool.reset_at(0, seed=SEED)
        assert pool.step([right[0], None, None, None]).rewards[0] == 1.0


def test_timed_out_grade_is_flagged_and_the_batch_goes_on(tmp_path, graders):
    sleepy = SuiteEnv(sleepy_suite(tmp_path, timeout=0.5))
    envs = [sleepy, *(SuiteEnv(suite_path(ARITH)) for _ in range(3))]
    with EnvPool(envs, executor=graders) as pool:
        _, infos = pool.reset(seed=SEED)
        out = pool.step(["30", *answers(infos)[1:]])
    assert out.infos[0] is not None and out.infos[0]["grade_failed"] is True
    assert out.infos[0]["grade"]["status"] == "timeout" and out.rewards[0] == 0.0 and out.terminated[0]
    assert out.rewards[1:] == [0.0, 1.0, 0.0]
    assert not any(i["grade_failed"] for i in out.infos[1:] if i)


def test_step_async_returns_while_grading_runs(tmp_path, graders):
    with EnvPool(sleepy_suite(tmp_path, timeout=10), 4, executor=graders) as pool:
        pool.reset(seed=0)
        t0 = time.perf_counter()
        pool.step_async(["0.3"] * 4)
        assert time.perf_counter() - t0 < 0.1
        with pytest.raises(TimeoutError, match="still running"):
            pool.step_wait(timeout=0.01)
        out = pool.step_wait()  # the step stayed in flight
        assert time.perf_counter() - t0 >= 0.3
        assert out.rewards == [1.0] * 4


def test_own_grader_pool_is_closed_with_the_env_pool():
    pool = EnvPool(ARITH, 2, workers=1)
    _, infos = pool.reset(seed=SEED)
    assert pool.step(answers(infos)).rewards == [1.0, 0.0]
    pool.close()
    pool.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        pool.reset()


def test_tool_episode_through_the_pool(tmp_path, graders):
    suite = arith_suite(tmp_path, "episode: {type: tool, max_turns: 3}\n")
    with EnvPool(suite, 2, executor=graders) as pool:
        _, infos = pool.reset(seed=SEED)
        out = pool.step(["<python>print(6*7)</python>", None])
        assert out.rewards[0] == 0.0 and out.terminated[0] is False and out.infos[0] is not None
        last = json.loads(out.obs[0] or "[]")[-1]
        assert last["role"] == "tool" and "42" in last["content"]
        assert "42" in out.infos[0]["tool"]["output"] and out.infos[0]["tool"]["code"] == "print(6*7)"
        out = pool.step(answers(infos))
        assert out.rewards == [1.0, 0.0] and out.terminated == [True, True]


def test_feedback_episode_through_the_pool(tmp_path, graders):
    suite = arith_suite(tmp_path, "episode: {type: feedback, max_turns: 2}\n")
    with EnvPool(suite, 2, executor=graders) as pool:
        _, infos = pool.reset(seed=SEED)
        right = f"\\boxed{{{infos[0]['reference']}}}"
        out = pool.step([WRONG, WRONG])
        assert out.rewards == [0.0, 0.0] and out.terminated == [False, False]
        assert json.loads(out.obs[0] or "[]")[-1]["role"] == "user"
        out = pool.step([right, WRONG])
        assert (
            out.rewards == [1.0, 0.0] and out.terminated == [True, False] and out.truncated == [False, True]
        )


def test_errors_say_how_to_fix_them():
    with EnvPool(ARITH, 2, executor="inline") as pool:
        with pytest.raises(RuntimeError, match=r"env 0: .*never reset: reset_at\(0\)"):
            pool.step(["1", "2"])
        pool.reset(seed=0, options={"split": "heldout"})
        with pytest.raises(ValueError, match=r"actions \(1\) must have one entry per env \(2\)"):
            pool.step(["1"])
        with pytest.raises(TypeError, match=r"actions\[1\] must be the completion text"):
            pool.step(["1", 2])  # type: ignore[list-item]
        with pytest.raises(ValueError, match="seed has 3 entries"):
            pool.reset(seed=[1, 2, 3])
        pool.step_async([WRONG, None])
        with pytest.raises(RuntimeError, match="call step_wait"):
            pool.step_async([WRONG, None])
        with pytest.raises(RuntimeError, match="call step_wait"):
            pool.reset()
        pool.reset_at(1)  # not in flight: allowed
        assert pool.step_wait().rewards == [0.0, None]
        with pytest.raises(RuntimeError, match="no step is in flight"):
            pool.step_wait()
    with pytest.raises(ValueError, match="num_envs"):
        EnvPool(ARITH)
    with pytest.raises(ValueError, match="workers"):
        EnvPool(ARITH, 2, executor="inline", workers=2)
