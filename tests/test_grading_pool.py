"""`GradingPool`: the one public pool interface; `GraderPool` and `RayGraderPool` both satisfy it, and
`EnvPool` grades with either (a real local Ray cluster here, no mocks)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import rft.graders
import rft.graders.executor
from rft.envs import EnvPool
from rft.graders import GradingPool
from rft.graders.executor import GraderPool

TESTS = Path(__file__).resolve().parent
ARITH = "rft/arithmetic-v0"
METHODS = {"submit", "grade", "agrade", "close"}


def _members(cls: type) -> set[str]:
    return {n for n, v in vars(cls).items() if callable(v) and not n.startswith("_")}


def _pool_classes() -> list[type]:
    ray_pool = pytest.importorskip("rft.graders.ray_pool")
    return [GraderPool, ray_pool.RayGraderPool]


def test_grading_pool_is_exported_and_has_what_callers_use():
    assert rft.graders.GradingPool is GradingPool is rft.graders.executor.GradingPool
    assert "GradingPool" in rft.graders.__all__ and "GradingPool" in rft.graders.executor.__all__
    assert _members(GradingPool) == METHODS


@pytest.mark.parametrize("name", sorted(METHODS))
def test_both_pools_match_the_protocol_signatures(name):
    want = getattr(GradingPool, name)
    for cls in _pool_classes():
        got = getattr(cls, name)
        assert inspect.signature(got) == inspect.signature(want), f"{cls.__name__}.{name}"
        assert inspect.iscoroutinefunction(got) == inspect.iscoroutinefunction(want), f"{cls.__name__}.{name}"


def test_runtime_check_accepts_a_pool_and_refuses_a_partial_one():
    class NoAgrade:
        def submit(self, grader, sample, item=None): ...
        def grade(self, grader, samples, items=None, on_result=None): ...
        def close(self, cancel=False): ...

    with GraderPool(workers=1) as pool:  # no worker starts until a sample is submitted
        assert isinstance(pool, GradingPool)
    assert not isinstance(NoAgrade(), GradingPool)
    with pytest.raises(TypeError, match="executor must be a GradingPool"):
        EnvPool(ARITH, 2, executor=NoAgrade())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="GradingPool instance"):
        EnvPool(ARITH, 2, executor=GraderPool)  # type: ignore[arg-type]  # the class, not a pool


def test_env_pool_grades_with_a_ray_pool():
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'rft[ray]'")
    from rft.graders.ray_pool import RayGraderPool

    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": str(TESTS)}})
    try:
        with RayGraderPool(workers=2, timeout=10.0) as graders:
            assert isinstance(graders, GradingPool)
            with EnvPool(ARITH, 4, executor=graders) as pool:
                _, infos = pool.reset(seed=3)
                actions = [f"\\boxed{{{i['reference']}}}" if n % 2 == 0 else "\\boxed{-99991}"
                           for n, i in enumerate(infos)]  # fmt: skip
                out = pool.step(actions)
            assert out.rewards == [1.0, 0.0, 1.0, 0.0]
            assert all(i is not None and not i["grade_failed"] for i in out.infos)
            # EnvPool left the pool it was given open
            assert graders.submit(pool.envs[0].grader, "\\boxed{2}", {"reference": "2"}).result().passed
    finally:
        ray.shutdown()
