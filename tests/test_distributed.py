"""Data-parallel GRPO and PPO on two CPU processes (gloo, DDP through accelerate): the update of two ranks,
each with half the groups, equals one process's update on the whole batch; `accelerate launch` trains end
to end with the shipped DDP config."""

from __future__ import annotations

import copy
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from rft.batch import collate
from rft.rl.distributed import Dist
from rft.rl.grpo import CorrectionConfig, GenConfig, GRPOConfig, LossConfig, _advantages, _rewards, _update
from rft.rl.ppo import PPOConfig, PPOLossConfig, _Trained
from rft.rl.ppo import _advantages as ppo_advantages
from rft.rl.ppo import _update as ppo_update
from rft.rollout import Trajectory, chat_prompt_ids
from rft.tiny import make_model, make_tokenizer

torch.set_num_threads(1)
WORLD = 2
GROUP = 4
QUESTIONS = ("What is 12 + 5?", "Hi", "What is 1 + 2 + 3 + 4?", "abc abc")
# group 2 has equal rewards (no trainable rows) and group 1 a failed grade: rank 1 trains fewer rows
REWARDS = ((1, 0, 0, 1), (0, 1, 0.5, 0), (1, 1, 1, 1), (0, 1, 1, 0))
CASES = {
    # name: (GRPOConfig overrides, optimizer, learning rate)
    "dapo": (dict(loss=LossConfig(agg="dapo"), micro_batch=2, max_grad_norm=0), "sgd", 0.5),
    "dapo-tis-mis": (
        dict(
            loss=LossConfig(agg="dapo", correction=CorrectionConfig(tis="token", mis="geometric")),
            micro_batch=2,
        ),
        "sgd",
        0.5,
    ),
    "grpo": (
        dict(
            loss=LossConfig(agg="grpo", scale_rewards="batch", beta=0.05),
            shared_prefix=False,
            epochs=2,
            minibatches=2,
            micro_batch=3,
            max_grad_norm=0,
        ),
        "sgd",
        0.5,
    ),
    "dr_grpo-clip-adamw": (
        dict(loss=LossConfig(agg="dr_grpo"), minibatches=2, micro_batch=2, max_grad_norm=0.05),
        "adamw",
        1e-3,
    ),
}


PPO_CASES = {
    # name: PPOConfig overrides; SGD (a wrong gradient scale would show), lr 0.5 (policy), 0.02 (values)
    "ppo-shared-kl": dict(loss=PPOLossConfig(kl_coef=0.05), epochs=1, minibatches=1, micro_batch=2),
    "ppo-separate": dict(critic="separate", epochs=2, minibatches=2, micro_batch=3, max_grad_norm=0),
}


def tiny():
    tok = make_tokenizer(["What is 12 + 5? abc"] * 20)
    return make_model(tok, hidden=64, heads=2), tok


def fixed_trajectories(tok) -> list[Trajectory]:
    """The whole batch: groups of GROUP samples of each question, completions of seeded random tokens."""
    gen = torch.Generator().manual_seed(0)
    out = []
    for g, (question, rewards) in enumerate(zip(QUESTIONS, REWARDS, strict=True)):
        prompt = chat_prompt_ids(tok, [{"role": "user", "content": question}])
        for k, reward in enumerate(rewards):
            n = int(torch.randint(2, 9, (1,), generator=gen))
            completion = torch.randint(8, len(tok), (n,), generator=gen).tolist()
            ids, mask = prompt + completion, [0] * len(prompt) + [1] * n
            # a sampler's log-probs near the random model's (-log 100 = -4.6): ratios around 1, some rows masked
            sampler = (-3.5 - 2.5 * torch.rand(n, generator=gen)).tolist()
            failed = (g, k) == (1, 2)
            out.append(Trajectory(g, ids, mask, len(prompt), float(reward), failed=failed, info={"k": k},
                                  logprobs=[0.0] * len(prompt) + sampler))  # fmt: skip
    return out


def config(name: str) -> GRPOConfig:
    overrides, _, lr = CASES[name]
    return GRPOConfig(model="tiny", suite="none", prompts_per_step=len(QUESTIONS), group_size=GROUP, lr=lr,
                      gen=GenConfig(max_new_tokens=8), **overrides)  # fmt: skip


def one_update(name: str, trajs: list[Trajectory], dist: Dist) -> tuple[dict, dict, torch.Tensor]:
    """One `_update` of a fresh tiny model on `trajs`: (weights after, loss stats, advantages)."""
    cfg = config(name)
    model, tok = tiny()
    ref = copy.deepcopy(model).requires_grad_(False) if cfg.loss.beta > 0 else None
    _, kind, lr = CASES[name]
    opt = (torch.optim.SGD if kind == "sgd" else torch.optim.AdamW)(model.parameters(), lr=lr)
    model, (opt,), policy = dist.prepare(model, [opt], cfg.micro_batch, cfg.max_grad_norm)
    assert isinstance(model, torch.nn.parallel.DistributedDataParallel) == (dist.world > 1)
    rewards, valid = _rewards(cfg, trajs, max_turns=1)
    adv = _advantages(cfg, rewards, valid, dist)
    stats = _update(cfg, model, ref, opt, trajs, adv, valid, tok.pad_token_id, torch.device("cpu"), 1, 0,
                    dist, policy)  # fmt: skip
    return {k: v.detach().clone() for k, v in policy.state_dict().items()}, stats, adv


def one_ppo_update(name: str, trajs: list[Trajectory], dist: Dist) -> tuple[dict, dict, torch.Tensor]:
    """One PPO `_advantages` + `_update` with fresh tiny models: (weights after, stats, advantages)."""
    cfg = PPOConfig(model="tiny", suite="none", prompts_per_step=len(QUESTIONS), samples_per_prompt=GROUP,
                    lr=0.5, gen=GenConfig(max_new_tokens=8), **PPO_CASES[name])  # fmt: skip
    model, tok = tiny()
    ref = copy.deepcopy(model).requires_grad_(False) if cfg.loss.kl_coef > 0 else None
    critic = make_model(tok, hidden=64, heads=2, seed=1) if cfg.critic == "separate" else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        head = torch.nn.Linear(64, 1)  # the same on every rank
    value_params = list(head.parameters()) + ([] if critic is None else list(critic.parameters()))
    opts = [torch.optim.SGD(model.parameters(), lr=0.5), torch.optim.SGD(value_params, lr=0.02)]
    trained, opts, _ = dist.prepare(_Trained(model, critic, head), opts, cfg.micro_batch, cfg.max_grad_norm)
    batch = collate(trajs, tok.pad_token_id)
    scores = torch.tensor([t.reward for t in trajs])
    # rank 0 trains 4 rows, rank 1 8: with micro_batch 2, rank 0 pads 2 micro-batches (ppo-shared-kl)
    valid = torch.tensor([not t.failed and not (t.group == 0 and t.info["k"] > 0) for t in trajs])
    old, stats = ppo_advantages(cfg, model, critic, head, ref, batch, scores, valid, dist)
    stats |= ppo_update(cfg, 0, model, critic, head, opts, batch, old, dist, trained)
    weights = {f"model.{k}": v for k, v in model.state_dict().items()} | {
        f"head.{k}": v for k, v in head.state_dict().items()
    }
    if critic is not None:
        weights |= {f"critic.{k}": v for k, v in critic.state_dict().items()}
    return {k: v.detach().clone() for k, v in weights.items()}, stats, old["advantages"]


def _worker(rank: int, port: int, out: Path) -> None:
    os.environ |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank), "LOCAL_RANK": str(rank),
                   "WORLD_SIZE": str(WORLD), "LOCAL_WORLD_SIZE": str(WORLD), "ACCELERATE_USE_CPU": "true",
                   "OMP_NUM_THREADS": "1"}  # fmt: skip
    torch.set_num_threads(1)
    dist = Dist.from_env()
    assert (dist.rank, dist.world, dist.kind) == (rank, WORLD, "MULTI_CPU")
    _, tok = tiny()
    trajs = fixed_trajectories(tok)
    n = len(trajs) // WORLD
    mine = trajs[rank * n : (rank + 1) * n]
    pads: list[int] = []  # zero-weighted passes this rank ran, per minibatch
    minibatch = dist.minibatch

    def counted(*args):
        out = minibatch(*args)
        pads.append(out[2].count(None))
        return out

    dist.minibatch = counted  # type: ignore[method-assign]
    results: dict = {}
    for name in CASES:
        results[name] = one_update(name, mine, dist)
        results[f"{name}/pads"], pads[:] = sum(pads), []
    for name in PPO_CASES:
        results[name] = one_ppo_update(name, mine, dist)
        results[f"{name}/pads"], pads[:] = sum(pads), []
    torch.save(results, out / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> list[dict]:
    """Each rank's results of every GRPO and PPO case, from one two-process run on its half of the batch."""
    out = tmp_path_factory.mktemp("ranks")
    mp.spawn(_worker, args=(free_port(), out), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def test_two_ranks_update_grpo_like_one_process_on_the_whole_batch(two_ranks):
    _, tok = tiny()
    trajs = fixed_trajectories(tok)
    half = len(trajs) // WORLD
    nonzero = _advantages(config("dapo"), *_rewards(config("dapo"), trajs, 1), Dist()) != 0
    assert nonzero[:half].sum() > nonzero[half:].sum() > 0  # the ranks run different numbers of micro-batches
    ranks = two_ranks
    assert ranks[1]["dapo/pads"] > 0 == ranks[0]["dapo/pads"]  # rank 1 ran out of rows and padded
    start, _ = tiny()
    for name in CASES:
        want, stats, adv = one_update(name, trajs, Dist())
        moved = max(float((want[k] - v).abs().max()) for k, v in start.state_dict().items())
        assert moved > 1e-4, name  # the update did something
        for r, result in enumerate(ranks):
            got, got_stats, got_adv = result[name]
            torch.testing.assert_close(got_adv, adv[r * half : (r + 1) * half], rtol=0, atol=1e-6)
            for k in want:
                torch.testing.assert_close(got[k], want[k], rtol=0, atol=1e-6, msg=f"{name} rank {r} {k}")
            assert got_stats["rollout/trained_rows"] == stats["rollout/trained_rows"]
            assert got_stats["loss/policy"] == pytest.approx(stats["loss/policy"], rel=1e-5, abs=1e-7)
            assert got_stats["loss/grad_norm"] == pytest.approx(stats["loss/grad_norm"], rel=1e-5)
            if name == "dapo-tis-mis":
                assert 0 < stats["mismatch/seq_masked_frac"] < 1 and stats["mismatch/kl"] > 0.01
            for k in (k for k in stats if k.startswith("mismatch/")):  # over both ranks' tokens
                assert got_stats[k] == pytest.approx(stats[k], rel=1e-5, abs=1e-7), (name, k)


def test_two_ranks_train_ppo_like_one_process_on_the_whole_batch(two_ranks):
    _, tok = tiny()
    trajs = fixed_trajectories(tok)
    half = len(trajs) // WORLD
    assert two_ranks[0]["ppo-shared-kl/pads"] == 2 and two_ranks[1]["ppo-shared-kl/pads"] == 0
    start, _ = tiny()
    for name in PPO_CASES:
        want, stats, adv = one_ppo_update(name, trajs, Dist())
        moved = max(float((want[f"model.{k}"] - v).abs().max()) for k, v in start.state_dict().items())
        assert moved > 1e-4, name
        for r, result in enumerate(two_ranks):
            got, got_stats, got_adv = result[name]
            w = got_adv.shape[1]
            torch.testing.assert_close(got_adv, adv[r * half : (r + 1) * half, :w], rtol=0, atol=1e-5)
            for k in want:
                torch.testing.assert_close(got[k], want[k], rtol=0, atol=1e-6, msg=f"{name} rank {r} {k}")
            for k in (
                "loss/policy",
                "loss/value",
                "loss/grad_norm",
                "loss/explained_var",
                "loss/advantage_std",
            ):
                # explained_var is 1 - a ratio near 1: float32 rounding of the ratio (1e-7) is its error
                tol = 1e-6 if k == "loss/explained_var" else 1e-7
                assert got_stats[k] == pytest.approx(stats[k], rel=1e-5, abs=tol), (name, k)
            assert got_stats["rollout/trained_rows"] == stats["rollout/trained_rows"]


def test_several_processes_say_what_they_need():
    dist = Dist()
    dist.world = 2  # as if launched with two processes
    with pytest.raises(
        ValueError, match=r"prompts_per_step \(3\) must be divisible by the number of processes"
    ):
        dist.check(GRPOConfig(model="m", suite="s", prompts_per_step=3), False)
    with pytest.raises(ValueError, match="engine: hf"):
        dist.check(GRPOConfig(model="m", suite="s", async_rollout=True), False)
    dist.check(GRPOConfig(model="m", suite="s", prompts_per_step=4), False)


ACCELERATE = shutil.which("accelerate") or str(Path(sys.executable).with_name("accelerate"))
DDP_CONFIG = Path(__file__).resolve().parents[1] / "examples" / "accelerate" / "ddp.yaml"


@pytest.mark.parametrize(
    "kind, recipe", [("grpo", "group_size: 4\n"), ("ppo", "samples_per_prompt: 4\ncritic: separate\n")]
)
def test_accelerate_launch_trains_on_two_processes(tmp_path, kind, recipe):
    model, tok = tiny()
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    suite = tmp_path / "like-v0.yaml"
    suite.write_text(
        "id: like-v0\n"
        "source: {type: generator, name: arithmetic, params: {digits: 2, operands: 2}, size: 64}\n"
        "fields: {id: id, reference: answer}\n"
        'prompt: {user: "{{ item.question }}"}\n'
        'grader: {type: string_check, operation: like, input: "{{ sample.output_text }}", reference: "a"}\n'
        "split: 0.25\n"
    )
    (tmp_path / "r.yaml").write_text(
        f"model: {tmp_path / 'm'}\nsuite: {suite}\nout: {tmp_path / 'run'}\nsteps: 2\nprompts_per_step: 4\n"
        "lr: 1.0e-3\nmicro_batch: 3\ngen: {max_new_tokens: 12}\neval: {n: 4}\ngrader_workers: 0\n" + recipe
    )
    env = os.environ | {"OMP_NUM_THREADS": "1", "MASTER_PORT": str(free_port())}
    res = subprocess.run(
        [ACCELERATE, "launch", "--config_file", str(DDP_CONFIG), "--num_processes", "2", "--cpu",
         "--main_process_port", env["MASTER_PORT"], "-m", "rft.app.cli", "train", kind, "--config", "r.yaml"],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert [p.name for p in tmp_path.iterdir() if (p / "config.yaml").exists()] == ["run"]
    run = tmp_path / "run"
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [0, 1, 2]
    assert {"eval/accuracy", "reward/mean", "loss/policy", "rollout/trained_rows"} <= set(metrics[2])
    rollouts = [json.loads(line) for line in (run / "rollouts.jsonl").read_text().splitlines()]
    assert len(rollouts) == 2 * 16  # every rank's samples: 4 prompts x 4 samples per step
    assert sorted({r["group"] for r in rollouts}) == [0, 1, 2, 3]
    assert metrics[1]["reward/mean"] == pytest.approx(
        sum(r["reward"] for r in rollouts if r["step"] == 1) / 16
    )  # over both ranks' samples
    assert (run / "checkpoints" / "step-000002" / "model").is_dir()


@pytest.mark.parametrize("name", ["ddp", "fsdp", "deepspeed_zero2"])
def test_shipped_accelerate_configs_load(name):
    from accelerate.commands.config.config_args import ClusterConfig

    config = ClusterConfig.from_yaml_file(str(DDP_CONFIG.with_name(f"{name}.yaml")))  # unknown keys raise
    assert config.mixed_precision == ("bf16" if name == "deepspeed_zero2" else "no")
